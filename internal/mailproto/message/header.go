package message

import (
	"bytes"
	"sort"
	"strconv"
	"strings"
)

// field is one header field, unfolded: Name as written, Value with the line
// breaks of folding removed and surrounding whitespace trimmed.
type field struct {
	Name, Value string
}

// parseHeader splits a raw header block (as collected, possibly cut at the
// header byte limit) into fields. Lines that are neither a field nor a
// continuation are skipped: a damaged header still yields the good fields.
func parseHeader(raw []byte) []field {
	var fields []field
	var cur *field
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			continue
		}
		// RFC 5322 §2.2.3: a line starting with WSP continues the previous
		// field; unfolding removes the line break only.
		if line[0] == ' ' || line[0] == '\t' {
			if cur != nil {
				cur.Value += string(line)
			}
			continue
		}
		i := bytes.IndexByte(line, ':')
		if i <= 0 {
			cur = nil
			continue
		}
		name := strings.TrimRight(string(line[:i]), " \t")
		fields = append(fields, field{Name: name, Value: string(line[i+1:])})
		cur = &fields[len(fields)-1]
	}
	for i := range fields {
		fields[i].Value = strings.TrimSpace(fields[i].Value)
	}
	return fields
}

// get returns the value of the first field named name (case-insensitive).
func get(fields []field, name string) (string, bool) {
	for _, f := range fields {
		if strings.EqualFold(f.Name, name) {
			return f.Value, true
		}
	}
	return "", false
}

// parseParamHeader parses a Content-Type or Content-Disposition value: a
// value (type/subtype or disposition type) followed by ";"-separated
// parameters (RFC 2045 §5.1, RFC 2183 §2). It is lenient: a malformed
// parameter ends the list, the ones before it are kept. ok is false when no
// value could be read.
func parseParamHeader(s string) (value string, params []Param, ok bool) {
	s = skipCFWS(s)
	i := 0
	for i < len(s) && s[i] != ';' && s[i] != ' ' && s[i] != '\t' && s[i] != '(' {
		i++
	}
	value = strings.ToLower(s[:i])
	if value == "" {
		return "", nil, false
	}
	s = s[i:]
	type raw struct {
		name    string // lower-cased, without the RFC 2231 section and "*"
		section int    // -1 without section
		ext     bool   // value is RFC 2231 extended (charset'lang'%XX)
		value   string
	}
	var raws []raw
	for {
		s = skipCFWS(s)
		if s == "" || s[0] != ';' {
			break
		}
		s = skipCFWS(s[1:])
		j := 0
		for j < len(s) && isTokenChar(s[j]) {
			j++
		}
		if j == 0 {
			break
		}
		name := strings.ToLower(s[:j])
		s = skipCFWS(s[j:])
		if s == "" || s[0] != '=' {
			break
		}
		s = skipCFWS(s[1:])
		var v string
		if s != "" && s[0] == '"' {
			var rest string
			v, rest = readQuoted(s)
			s = rest
		} else {
			j = 0
			for j < len(s) && isTokenChar(s[j]) {
				j++
			}
			v, s = s[:j], s[j:]
		}
		r := raw{name: name, section: -1, value: v}
		// RFC 2231 §3-§4: name*N for continuations, a trailing "*" for an
		// extended value.
		if strings.HasSuffix(r.name, "*") {
			r.ext = true
			r.name = r.name[:len(r.name)-1]
		}
		if k := strings.LastIndexByte(r.name, '*'); k > 0 {
			if sec, err := strconv.Atoi(r.name[k+1:]); err == nil && sec >= 0 && sec < 1000 && (sec == 0 || r.name[k+1] != '0') {
				r.section = sec
				r.name = r.name[:k]
			}
		}
		raws = append(raws, r)
	}

	// Join continuations in section order; stop at the first missing
	// section (RFC 2231 §3). A parameter keeps the position of its first
	// appearance; a repeated parameter keeps its first value.
	type joined struct {
		name, value string
		ext         bool
	}
	var out []joined
	seen := map[string]bool{}
	for _, r := range raws {
		if seen[r.name] {
			continue
		}
		seen[r.name] = true
		if r.section < 0 {
			out = append(out, joined{r.name, r.value, r.ext})
			continue
		}
		var secs []raw
		for _, q := range raws {
			if q.name == r.name && q.section >= 0 {
				secs = append(secs, q)
			}
		}
		sort.SliceStable(secs, func(a, b int) bool { return secs[a].section < secs[b].section })
		if secs[0].section != 0 {
			continue
		}
		ext := secs[0].ext
		var b strings.Builder
		for k, q := range secs {
			if q.section != k {
				break
			}
			if ext && !q.ext {
				// A plain section inside an extended value is percent-encoded
				// so the joined value stays one RFC 2231 extended value.
				b.WriteString(percentEncode(q.value))
			} else {
				b.WriteString(q.value)
			}
		}
		out = append(out, joined{r.name, b.String(), ext})
	}
	for _, j := range out {
		name := j.name
		if j.ext {
			name += "*"
		}
		params = append(params, Param{Name: name, Value: j.value})
	}
	return value, params, true
}

// isTokenChar reports whether c may appear in an RFC 2045 §5.1 token.
func isTokenChar(c byte) bool {
	if c <= ' ' || c >= 0x7f {
		return false
	}
	return !strings.ContainsRune(`()<>@,;:\"/[]?=`, rune(c))
}

// percentEncode encodes the bytes that RFC 2231 §7 does not allow as
// attribute-char.
func percentEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isTokenChar(c) && c != '*' && c != '\'' && c != '%' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// readQuoted reads an RFC 5322 §3.2.4 quoted-string at the start of s and
// returns its content without quotes and escapes. An unterminated string
// runs to the end of s.
func readQuoted(s string) (value, rest string) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		case '"':
			return b.String(), s[i+1:]
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String(), ""
}

// skipCFWS skips whitespace and RFC 5322 §3.2.2 comments (nested).
func skipCFWS(s string) string {
	for {
		s = strings.TrimLeft(s, " \t\r\n")
		if s == "" || s[0] != '(' {
			return s
		}
		depth := 0
		i := 0
	comment:
		for ; i < len(s); i++ {
			switch s[i] {
			case '\\':
				i++
			case '(':
				depth++
			case ')':
				depth--
				if depth == 0 {
					i++
					break comment
				}
			}
		}
		if i > len(s) {
			i = len(s)
		}
		s = s[i:]
	}
}

// parseLanguage parses a Content-Language value (RFC 3282 §2): a
// comma-separated list of language tags.
func parseLanguage(s string) []string {
	var l []string
	for _, t := range strings.Split(s, ",") {
		t = strings.TrimSpace(skipCFWS(t))
		if i := strings.IndexAny(t, " \t("); i >= 0 {
			t = t[:i]
		}
		if t != "" {
			l = append(l, t)
		}
	}
	return l
}
