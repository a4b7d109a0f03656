package spf

import (
	"strings"
)

// maxLine is the line length header fields are folded at (RFC 5322 §2.1.1:
// lines SHOULD be no longer than 78 characters, excluding CRLF).
const maxLine = 78

// Header renders the Received-SPF header field for rcv (RFC 7208 §9.1),
// folded at 78 columns and terminated with CRLF:
//
//	Received-SPF: pass (mx.example.org: domain of a@example.com designates
//		192.0.2.1 as permitted sender) receiver=mx.example.org; client-ip=192.0.2.1;
//		envelope-from="a@example.com"; helo=mail.example.com; identity=mailfrom
func (rcv Received) Header() string {
	result := rcv.Result
	if result == "" {
		result = StatusNone
	}
	tokens := []string{string(result)}

	// RFC 7208 §9.1: header-field = "Received-SPF:" [CFWS] result FWS
	// [comment FWS] [ key-value-list ] CRLF. The comment is split into
	// words so it can fold like the rest.
	comment := rcv.Explanation
	if rcv.Receiver != "" {
		comment = rcv.Receiver + ": " + comment
	}
	if words := strings.Fields(escapeComment(comment)); len(words) > 0 {
		words[0] = "(" + words[0]
		words[len(words)-1] += ")"
		tokens = append(tokens, words...)
	}

	// key-value-pair = key [CFWS] "=" ( dot-atom / quoted-string ).
	var kv []string
	add := func(key, value string) {
		kv = append(kv, key+"="+value)
	}
	if rcv.Receiver != "" {
		add("receiver", atomOrQuoted(rcv.Receiver))
	}
	if rcv.RemoteIP.IsValid() {
		add("client-ip", atomOrQuoted(rcv.RemoteIP.String()))
	}
	// The envelope sender is always quoted, as in the RFC's examples; the
	// null reverse path is the empty quoted string.
	add("envelope-from", quoted(rcv.MailFrom))
	if rcv.HelloDomain != "" {
		add("helo", atomOrQuoted(rcv.HelloDomain))
	}
	if rcv.Identity != "" {
		add("identity", string(rcv.Identity))
	}
	if rcv.Err != nil && (rcv.Result == StatusTemperror || rcv.Result == StatusPermerror) {
		// RFC 7208 §9.1: "problem" describes the error that was found.
		problem := strings.Join(strings.Fields(rcv.Err.Error()), " ")
		if len(problem) > 200 {
			problem = strings.ToValidUTF8(problem[:200], "") + "..."
		}
		add("problem", quoted(problem))
	}
	for i, pair := range kv {
		if i < len(kv)-1 {
			pair += ";"
		}
		// Split at spaces (only quoted strings have them): a fold there
		// is FWS inside the quoted-string (RFC 5322 §3.2.4).
		tokens = append(tokens, strings.Split(pair, " ")...)
	}
	return fold("Received-SPF:", tokens)
}

// fold joins tokens with single spaces after name, starting a new line
// (CRLF TAB) before a token that would make the line longer than maxLine.
// A token longer than a line stays whole.
func fold(name string, tokens []string) string {
	var b strings.Builder
	b.WriteString(name)
	n := len(name)
	fresh := false // nothing written on the current continuation line yet
	for _, t := range tokens {
		if !fresh && n+1+len(t) > maxLine {
			b.WriteString("\r\n\t")
			n = 1
			fresh = true
		}
		if fresh {
			fresh = false
		} else {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(t)
		n += len(t)
	}
	b.WriteString("\r\n")
	return b.String()
}

// isAtext reports whether c is RFC 5322 §3.2.3 atext (ASCII only).
func isAtext(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// isDotAtom reports whether s is an RFC 5322 §3.2.3 dot-atom-text.
func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '.' && !isAtext(s[i]) {
			return false
		}
	}
	return true
}

func atomOrQuoted(s string) string {
	if isDotAtom(s) {
		return s
	}
	return quoted(s)
}

// quoted returns s as an RFC 5322 §3.2.4 quoted-string. Control characters
// and invalid UTF-8 become "?" (UTF-8 text is allowed, RFC 6532 §3.2).
func quoted(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range strings.ToValidUTF8(s, "?") {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			b.WriteByte('?')
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// escapeComment makes s valid comment content (RFC 5322 §3.2.2): "(", ")"
// and "\" are quoted-pairs, control characters become "?", runs of white
// space become one space.
func escapeComment(s string) string {
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "?") {
		switch {
		case r == '(' || r == ')' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\t':
			b.WriteByte(' ')
		case r < 0x20 || r == 0x7f:
			b.WriteByte('?')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
