package spf

import (
	"moxd/internal/mailproto/headerfield"
	"strings"
)

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
	add("envelope-from", headerfield.Quote(rcv.MailFrom))
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
		add("problem", headerfield.Quote(problem))
	}
	for i, pair := range kv {
		if i < len(kv)-1 {
			pair += ";"
		}
		// Split at spaces (only quoted strings have them): a fold there
		// is FWS inside the quoted-string (RFC 5322 §3.2.4).
		tokens = append(tokens, strings.Split(pair, " ")...)
	}
	return headerfield.Fold("Received-SPF", tokens)
}

func atomOrQuoted(s string) string {
	if headerfield.IsDotAtom(s) {
		return s
	}
	return headerfield.Quote(s)
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
