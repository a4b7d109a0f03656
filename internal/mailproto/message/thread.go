package message

import "strings"

// BaseSubject returns the base subject of RFC 5256 §2.1, used to group
// messages into threads by subject. It works on the raw header value: step
// (1) of the algorithm, RFC 2047 decoding, is not done here (callers that
// want it decode before calling); whitespace is collapsed as step (1) asks.
// Letter case is kept; RFC 5256 compares base subjects case-insensitively.
func BaseSubject(subject string) string {
	// Step 1: tabs and runs of whitespace (including unfolded line
	// breaks) become a single space.
	s := strings.Join(strings.Fields(subject), " ")
	for {
		// Step 2: remove subj-trailer: "(fwd)" and whitespace at the end.
		for {
			t := strings.TrimRight(s, " ")
			if len(t) >= 5 && strings.EqualFold(t[len(t)-5:], "(fwd)") {
				t = t[:len(t)-5]
			}
			if t == s {
				break
			}
			s = t
		}
		// Steps 3-5: remove subj-leader and, unless nothing would remain,
		// a leading subj-blob, until neither applies.
		for {
			t := removeLeader(s)
			if b, ok := skipBlob(t); ok && b != "" {
				t = b
			}
			if t == s {
				break
			}
			s = t
		}
		// Step 6: "[fwd:" ... "]" around the whole subject.
		if len(s) >= 6 && strings.EqualFold(s[:5], "[fwd:") && s[len(s)-1] == ']' {
			s = s[5 : len(s)-1]
			continue
		}
		return s
	}
}

// removeLeader removes all leading subj-leader text (RFC 5256 §5):
// subj-leader = (*subj-blob subj-refwd) / WSP
func removeLeader(s string) string {
	for {
		if strings.HasPrefix(s, " ") {
			s = s[1:]
			continue
		}
		t := s
		for {
			b, ok := skipBlob(t)
			if !ok {
				break
			}
			t = b
		}
		r, ok := skipRefwd(t)
		if !ok {
			return s
		}
		s = r
	}
}

// skipBlob removes one subj-blob at the start of s (RFC 5256 §5):
// subj-blob = "[" *BLOBCHAR "]" *WSP, BLOBCHAR excluding "[" and "]".
func skipBlob(s string) (string, bool) {
	if !strings.HasPrefix(s, "[") {
		return s, false
	}
	i := strings.IndexAny(s[1:], "[]")
	if i < 0 || s[1+i] != ']' {
		return s, false
	}
	return strings.TrimLeft(s[i+2:], " "), true
}

// skipRefwd removes one subj-refwd at the start of s (RFC 5256 §5):
// subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
func skipRefwd(s string) (string, bool) {
	var t string
	switch l := strings.ToLower(s); {
	case strings.HasPrefix(l, "re"):
		t = s[2:]
	case strings.HasPrefix(l, "fwd"):
		t = s[3:]
	case strings.HasPrefix(l, "fw"):
		t = s[2:]
	default:
		return s, false
	}
	t = strings.TrimLeft(t, " ")
	if b, ok := skipBlob(t); ok {
		t = b
	}
	if !strings.HasPrefix(t, ":") {
		return s, false
	}
	return t[1:], true
}

// MessageIDs returns the message ids ("<...>", brackets included) in a
// References, In-Reply-To or Message-ID value, in order, as RFC 5256 §2.2
// uses them. Whitespace inside an id (left by folding) is removed; text
// outside brackets, such as phrases in old In-Reply-To values, is ignored.
func MessageIDs(headerValue string) []string {
	var ids []string
	s := headerValue
	for {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			return ids
		}
		s = s[i:]
		j := strings.IndexAny(s[1:], "<>")
		if j < 0 {
			return ids
		}
		if s[1+j] == '<' {
			// An unclosed "<": start again at the next one.
			s = s[1+j:]
			continue
		}
		id := strings.Join(strings.Fields(s[1:1+j]), "")
		if id != "" {
			ids = append(ids, "<"+id+">")
		}
		s = s[j+2:]
	}
}
