package smtp

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"

	"moxd/internal/mailproto/headerfield"
)

// Path is an SMTP reverse-path or forward-path (RFC 5321 §4.1.2): a mailbox,
// or the null path "<>" (both fields empty). Source routes are accepted
// when parsing and dropped (RFC 5321 §4.1.1.3, Appendix C).
type Path struct {
	// Localpart is the local part as the client meant it: a quoted
	// string's content with its quoted-pairs resolved. It may contain
	// UTF-8 only when the transaction has SMTPUTF8 (RFC 6531).
	Localpart string
	// Domain is the domain as sent (ASCII, or U-labels with SMTPUTF8), or
	// an address literal including its brackets ("[192.0.2.1]").
	Domain string
}

// IsNull reports whether p is the null reverse-path "<>".
func (p Path) IsNull() bool { return p.Localpart == "" && p.Domain == "" }

// Address returns "localpart@domain" with the local part quoted when it is
// not a dot-string (RFC 5321 §4.1.2), or "" for the null path.
func (p Path) Address() string {
	if p.IsNull() {
		return ""
	}
	lp := p.Localpart
	if !isDotString(lp, true) {
		lp = quoteLocalpart(lp)
	}
	if p.Domain == "" {
		return lp
	}
	return lp + "@" + p.Domain
}

// String returns the path as it appears in MAIL and RCPT: "<address>".
func (p Path) String() string { return "<" + p.Address() + ">" }

// LogString is how the path appears in logs: like String, with any
// non-ASCII characters escaped, so a log shows that they were there.
func (p Path) LogString() string {
	s := p.String()
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return fmt.Sprintf("%+q", s)
		}
	}
	return s
}

// ASCIIDomain returns the domain with A-labels (RFC 5890), lower-cased; an
// address literal is returned as is.
func (p Path) ASCIIDomain() (string, error) {
	if strings.HasPrefix(p.Domain, "[") {
		return p.Domain, nil
	}
	return asciiDomain(p.Domain)
}

// UTF8 reports whether the path contains non-ASCII characters, which need
// SMTPUTF8 on the next hop.
func (p Path) UTF8() bool {
	for _, s := range []string{p.Localpart, p.Domain} {
		for i := 0; i < len(s); i++ {
			if s[i] >= utf8.RuneSelf {
				return true
			}
		}
	}
	return false
}

// asciiDomain converts a domain name to lower-case A-labels and checks its
// syntax.
func asciiDomain(d string) (string, error) {
	ascii := true
	for i := 0; i < len(d); i++ {
		if d[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if !ascii {
		a, err := idna.Lookup.ToASCII(d)
		if err != nil {
			return "", fmt.Errorf("internationalized domain %q: %v", d, err)
		}
		d = a
	}
	d = strings.ToLower(d)
	if !validDomain(d) {
		return "", fmt.Errorf("invalid domain %q", d)
	}
	return d, nil
}

// Limits of RFC 5321 §4.5.3.1.
const (
	maxLocalpart = 64  // §4.5.3.1.1
	maxDomain    = 255 // §4.5.3.1.2
	maxPath      = 256 // §4.5.3.1.3, including the angle brackets
)

// errPathSyntax and friends describe what is wrong with a path; the MAIL and
// RCPT handlers turn them into 501/553 replies.
var (
	errNotUTF8Allowed = errors.New("non-ASCII address without the SMTPUTF8 parameter (RFC 6531)")
)

// parsePath parses a path at the start of s ("<...>"), returning it and the
// rest of s. utf8OK allows UTF-8 in the local part and domain (SMTPUTF8).
// A bare "<postmaster>" (any case) is returned as a Path with Localpart
// "postmaster" and no domain, with postmaster true; the caller decides
// whether that is allowed (RCPT only).
func parsePath(s string, utf8OK bool) (p Path, postmaster bool, rest string, err error) {
	if !strings.HasPrefix(s, "<") {
		return Path{}, false, s, errors.New("the address must be enclosed in <>")
	}
	// A '>' inside a quoted local part must not end the path: scan past
	// quoted strings.
	end := pathEnd(s)
	if end < 0 {
		return Path{}, false, s, errors.New("missing > at the end of the address")
	}
	inner := s[1:end]
	rest = s[end+1:]
	if end+1 > maxPath {
		return Path{}, false, rest, fmt.Errorf("path longer than %d octets (RFC 5321 §4.5.3.1.3)", maxPath)
	}
	if inner == "" {
		return Path{}, false, rest, nil
	}
	if !utf8.ValidString(inner) {
		return Path{}, false, rest, errors.New("address is not valid UTF-8")
	}
	// RFC 5321 §4.1.2 / Appendix C: a source route "@a,@b:" before the
	// mailbox is accepted and ignored.
	if strings.HasPrefix(inner, "@") {
		i := strings.IndexByte(inner, ':')
		if i < 0 {
			return Path{}, false, rest, errors.New("source route without ':'")
		}
		for _, hop := range strings.Split(inner[:i], ",") {
			if !strings.HasPrefix(hop, "@") || !validPathDomain(hop[1:], utf8OK) {
				return Path{}, false, rest, fmt.Errorf("invalid source route %q", inner[:i])
			}
		}
		inner = inner[i+1:]
	}
	if strings.EqualFold(inner, "postmaster") {
		// RFC 5321 §4.1.1.3: "<Postmaster>" without domain.
		return Path{Localpart: "postmaster"}, true, rest, nil
	}
	lp, after, err := parseLocalpart(inner, utf8OK)
	if err != nil {
		return Path{}, false, rest, err
	}
	if !strings.HasPrefix(after, "@") {
		return Path{}, false, rest, errors.New("address needs @domain")
	}
	dom := after[1:]
	if len(dom) > maxDomain {
		return Path{}, false, rest, fmt.Errorf("domain longer than %d octets (RFC 5321 §4.5.3.1.2)", maxDomain)
	}
	if strings.HasPrefix(dom, "[") {
		if !strings.HasSuffix(dom, "]") || !validAddressLiteral(dom[1:len(dom)-1]) {
			return Path{}, false, rest, fmt.Errorf("invalid address literal %q", dom)
		}
	} else if !validPathDomain(dom, utf8OK) {
		if !utf8OK && !isASCII(dom) {
			return Path{}, false, rest, errNotUTF8Allowed
		}
		return Path{}, false, rest, fmt.Errorf("invalid domain %q", dom)
	}
	return Path{Localpart: lp, Domain: dom}, false, rest, nil
}

// pathEnd returns the index of the '>' that closes the path starting at
// s[0] == '<', skipping quoted strings, or -1.
func pathEnd(s string) int {
	quoted := false
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == '>':
			return i
		}
	}
	return -1
}

// parseLocalpart parses a Local-part (RFC 5321 §4.1.2) at the start of s.
func parseLocalpart(s string, utf8OK bool) (lp, rest string, err error) {
	if strings.HasPrefix(s, `"`) {
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			c := s[i]
			switch {
			case c == '\\':
				// quoted-pairSMTP = %d92 %d32-126 (RFC 6531: or UTF-8).
				if i+1 >= len(s) {
					return "", "", errors.New("unterminated quoted local part")
				}
				i++
				c = s[i]
				if c < 32 || c == 127 || c >= utf8.RuneSelf && !utf8OK {
					return "", "", errors.New("invalid character after \\ in quoted local part")
				}
				b.WriteByte(c)
			case c == '"':
				lp = b.String()
				if len(s[:i+1]) > maxLocalpart+2 || len(lp) > maxLocalpart {
					return "", "", fmt.Errorf("local part longer than %d octets (RFC 5321 §4.5.3.1.1)", maxLocalpart)
				}
				return lp, s[i+1:], nil
			case c >= utf8.RuneSelf:
				if !utf8OK {
					return "", "", errNotUTF8Allowed
				}
				b.WriteByte(c)
			case c >= 32 && c <= 126:
				// qtextSMTP = %d32-33 / %d35-91 / %d93-126; '"' and
				// '\' were handled above.
				b.WriteByte(c)
			default:
				return "", "", errors.New("control character in quoted local part")
			}
		}
		return "", "", errors.New("unterminated quoted local part")
	}
	i := strings.LastIndexByte(s, '@')
	if i < 0 {
		i = len(s)
	}
	lp = s[:i]
	if lp == "" {
		return "", "", errors.New("empty local part")
	}
	if len(lp) > maxLocalpart {
		return "", "", fmt.Errorf("local part longer than %d octets (RFC 5321 §4.5.3.1.1)", maxLocalpart)
	}
	if !utf8OK && !isASCII(lp) {
		return "", "", errNotUTF8Allowed
	}
	if !isDotString(lp, utf8OK) {
		return "", "", fmt.Errorf("invalid local part %q: use a quoted string for special characters", lp)
	}
	return lp, s[i:], nil
}

// isDotString reports whether s is a Dot-string: atoms of atext joined by
// single dots (RFC 5321 §4.1.2, atext from RFC 5322 §3.2.3, extended with
// UTF-8 by RFC 6531 §3.3 when utf8OK).
func isDotString(s string, utf8OK bool) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '.' || headerfield.IsAtext(c) || c >= utf8.RuneSelf && utf8OK {
			continue
		}
		return false
	}
	return true
}

// quoteLocalpart returns lp as a Quoted-string.
func quoteLocalpart(lp string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(lp); i++ {
		if lp[i] == '"' || lp[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(lp[i])
	}
	b.WriteByte('"')
	return b.String()
}

// validPathDomain checks a domain of a path: LDH labels, or with utf8OK
// U-labels that convert to valid A-labels.
func validPathDomain(d string, utf8OK bool) bool {
	if isASCII(d) {
		return validDomain(d)
	}
	if !utf8OK {
		return false
	}
	_, err := asciiDomain(d)
	return err == nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
