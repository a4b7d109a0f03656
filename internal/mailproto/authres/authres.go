// Package authres writes the Authentication-Results header field (RFC
// 8601) that moxd-smtp adds to inbound messages, from the results of
// packages iprev, spf, dkim and dmarc.
//
// go-msgauth's authres.Format does not fold, does not write comments and
// leaves some values unquoted that the grammar requires quoted (a "/" in
// header.b, a ":" in an IPv6 address), so the header is written here;
// tests parse it back with go-msgauth's parser.
//
// DNSSEC status is deliberately not part of it: RFC 8601 defines no
// property for it, and the Received header (written by moxd-smtp) carries
// it.
//
// Pure protocol code: no IPC, no configuration.
package authres

import (
	"fmt"
	"moxd/internal/mailproto/headerfield"
	"net/netip"
	"strings"

	"moxd/internal/mailproto/dkim"
	"moxd/internal/mailproto/dmarc"
	"moxd/internal/mailproto/iprev"
	"moxd/internal/mailproto/spf"
)

// Method is one result of the header ("resinfo", RFC 8601 §2.2), such as
// "dkim=pass reason=... header.d=example.com".
type Method struct {
	// Method and Result are keywords (RFC 8601 §2.2, registered in §6).
	Method string
	Result string
	// Comment, if set, follows the result in parentheses.
	Comment string
	// Reason, if set, is the reasonspec (RFC 8601 §2.2 "reason").
	Reason string
	Props  []Prop
}

// Prop is one property of a result ("propspec", RFC 8601 §2.2), such as
// header.d=example.com.
type Prop struct {
	Type     string // ptype: "smtp", "header", "body" or "policy"
	Property string
	Value    string
	// Comment, if set, follows the value in parentheses.
	Comment string
}

// maxText bounds reasons and comments taken from error messages.
const maxText = 200

// Header renders the Authentication-Results header field for authservID
// (normally the host name of this server, RFC 8601 §2.5) with one result
// per method, or "none" without any (RFC 8601 §2.2 no-result). Each result
// starts on its own line; lines are folded at 78 columns with CRLF TAB,
// and the field ends with CRLF.
func Header(authservID string, methods []Method) string {
	id := formatValue(authservID)
	if len(methods) == 0 {
		return headerfield.Fold("Authentication-Results", []string{id + ";", "none"})
	}
	h := headerfield.New("Authentication-Results")
	h.Add(id + ";")
	for i, m := range methods {
		toks := m.tokens()
		if i < len(methods)-1 {
			toks[len(toks)-1] += ";"
		}
		h.Break()
		h.Add(toks...)
	}
	return h.String()
}

// tokens returns the parts of a resinfo between which it may be folded.
func (m Method) tokens() []string {
	toks := []string{m.Method + "=" + m.Result}
	toks = append(toks, commentTokens(m.Comment)...)
	if m.Reason != "" {
		// The quoted string is split at its spaces too: a fold there is
		// FWS inside the quoted-string (RFC 5322 §3.2.4), so a long reason
		// folds like the rest (the space becomes the continuation tab).
		words := strings.Split(headerfield.Quote(cleanText(m.Reason)), " ")
		words[0] = "reason=" + words[0]
		toks = append(toks, words...)
	}
	for _, p := range m.Props {
		toks = append(toks, p.Type+"."+p.Property+"="+formatPvalue(p.Value))
		toks = append(toks, commentTokens(p.Comment)...)
	}
	return toks
}

// commentTokens returns a comment split into words, so it can fold.
func commentTokens(s string) []string {
	var b strings.Builder
	for _, r := range cleanText(s) {
		if r == '(' || r == ')' || r == '\\' {
			b.WriteByte('\\') // RFC 5322 §3.2.2: quoted-pair in ccontent
		}
		b.WriteRune(r)
	}
	words := strings.Fields(b.String())
	if len(words) == 0 {
		return nil
	}
	words[0] = "(" + words[0]
	words[len(words)-1] += ")"
	return words
}

// cleanText makes s printable ASCII of at most maxText characters for a
// reason or comment: other characters become "?", runs of white space one
// space.
func cleanText(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= maxText {
			b.WriteString("...")
			break
		}
		switch {
		case r == '\t' || r == '\r' || r == '\n':
			b.WriteByte(' ')
		case r < 0x20 || r >= 0x7f:
			b.WriteByte('?')
		default:
			b.WriteRune(r)
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

// isTokenChar: RFC 2045 §5.1 token characters, any US-ASCII CHAR except
// SPACE, CTLs and tspecials.
func isTokenChar(c byte) bool {
	return c > ' ' && c < 0x7f && !strings.ContainsRune(`()<>@,;:\"/[]?=`, rune(c))
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

// formatValue renders value = token / quoted-string (RFC 8601 §2.2, RFC
// 2045 §5.1).
func formatValue(s string) string {
	if isToken(s) {
		return s
	}
	return headerfield.Quote(s)
}

// formatPvalue renders pvalue = [CFWS] ( value / [ [ local-part ] "@" ]
// domain-name ) [CFWS] (RFC 8601 §2.2): a token or an address with a
// dot-atom local part stays bare, anything else is quoted.
func formatPvalue(s string) string {
	if isToken(s) {
		return s
	}
	if i := strings.LastIndexByte(s, '@'); i >= 0 && (i == 0 || headerfield.IsDotAtom(s[:i])) && isDomainName(s[i+1:]) {
		return s
	}
	return headerfield.Quote(s)
}

// isDomainName reports whether s is an ASCII domain name of letters,
// digits, "-" and "_".
func isDomainName(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// errReason returns the text of err for a reason, without the "dkim: "
// style prefix of library errors.
func errReason(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	for _, p := range []string{"dkim: ", "dmarc: "} {
		s = strings.TrimPrefix(s, p)
	}
	return s
}

// IPRev returns the iprev result for the client at ip (RFC 8601 §2.7.3:
// property policy.iprev with the address), with the verified or first PTR
// name as comment.
func IPRev(res iprev.Result, ip netip.Addr) Method {
	return Method{
		Method: "iprev",
		Result: string(res.Status),
		Reason: errReason(res.Err),
		Props:  []Prop{{Type: "policy", Property: "iprev", Value: ip.WithZone("").Unmap().String(), Comment: res.Name}},
	}
}

// SPF returns the spf result (RFC 8601 §2.7.2): smtp.mailfrom with the
// MAIL FROM address, or smtp.helo with the HELO name when the reverse path
// was null.
func SPF(rcv spf.Received) Method {
	m := Method{Method: "spf", Result: string(rcv.Result)}
	if m.Result == "" {
		m.Result = string(spf.StatusNone)
	}
	if rcv.Result == spf.StatusTemperror || rcv.Result == spf.StatusPermerror {
		m.Reason = errReason(rcv.Err)
	}
	if rcv.Identity == spf.IdentityHELO {
		m.Props = []Prop{{Type: "smtp", Property: "helo", Value: rcv.HelloDomain}}
	} else {
		m.Props = []Prop{{Type: "smtp", Property: "mailfrom", Value: rcv.MailFrom}}
	}
	return m
}

// DKIM returns one dkim result per signature (RFC 8601 §2.7.1, header.b
// from RFC 6008, header.a and header.s from RFC 8601), or "dkim=none" for
// an unsigned message.
func DKIM(results []dkim.Result) []Method {
	if len(results) == 0 {
		return []Method{{Method: "dkim", Result: string(dkim.StatusNone)}}
	}
	var ms []Method
	for _, r := range results {
		m := Method{Method: "dkim", Result: string(r.Status), Reason: errReason(r.Err)}
		add := func(prop, value string) {
			if value != "" {
				m.Props = append(m.Props, Prop{Type: "header", Property: prop, Value: value})
			}
		}
		add("d", r.Domain)
		add("i", r.Identity)
		add("s", r.Selector)
		add("a", r.Algorithm)
		add("b", r.HeaderB)
		ms = append(ms, m)
	}
	return ms
}

// DMARC returns the dmarc result (RFC 7489 §11.2: header.from with the
// From domain), with the published policy and the disposition it asks for
// as comment, e.g. "(p=reject dis=reject)".
func DMARC(res dmarc.Result) Method {
	m := Method{Method: "dmarc", Result: string(res.Status)}
	if m.Result == "" {
		m.Result = string(dmarc.StatusNone)
	}
	if res.Status == dmarc.StatusTemperror || res.Status == dmarc.StatusPermerror {
		m.Reason = errReason(res.Err)
	}
	if res.Record != nil {
		dis := "none"
		switch {
		case res.Reject:
			dis = "reject"
		case res.Quarantine:
			dis = "quarantine"
		}
		m.Comment = fmt.Sprintf("p=%s dis=%s", res.Policy, dis)
	}
	if res.FromDomain != "" {
		m.Props = []Prop{{Type: "header", Property: "from", Value: res.FromDomain}}
	}
	return m
}
