package dmarc

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/idna"

	"moxd/internal/mailproto/headerfield"
)

// Errors of FromDomain.
var (
	ErrNoFrom       = errors.New("dmarc: no From header field")
	ErrMultipleFrom = errors.New("dmarc: more than one From header field")
	ErrFromSyntax   = errors.New("dmarc: malformed From header field")
)

// FromDomain returns the domain of the single author address in the From
// header field of a message's header section (RFC 7489 §6.6.1), in ASCII
// (A-labels) and lower case. It is an error when there is no From field,
// more than one, or a From field with no address or more than one.
//
// The address list is parsed per RFC 5322 §3.4 with the obsolete syntax of
// §4.4: folding, comments, quoted strings, group syntax (RFC 6854), routes
// in angle addresses, and RFC 2047 encoded-words in display names even when
// they hold specials. UTF-8 is allowed (RFC 6532). A display name holding
// an unquoted "@" (a common forgery) does not hide the angle address
// that follows it. Work is linear in the size of header.
func FromDomain(header []byte) (string, error) {
	value, err := fromField(header)
	if err != nil {
		return "", err
	}
	toks, err := tokenize(value)
	if err != nil {
		return "", err
	}
	domains, err := parseAddressList(toks)
	if err != nil {
		return "", err
	}
	switch len(domains) {
	case 0:
		return "", fmt.Errorf("%w: no address", ErrFromSyntax)
	case 1:
	default:
		return "", fmt.Errorf("%w: %d addresses", ErrFromSyntax, len(domains))
	}
	return asciiDomain(domains[0])
}

// fromField returns the unfolded value of the only From field in the
// header section (which ends at the first empty line).
func fromField(header []byte) (string, error) {
	var value []byte
	found, inFrom := false, false
	for len(header) > 0 {
		line := header
		if i := bytes.IndexByte(header, '\n'); i >= 0 {
			line, header = header[:i], header[i+1:]
		} else {
			header = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break // end of the header section
		}
		if line[0] == ' ' || line[0] == '\t' {
			// RFC 5322 §2.2.3: unfolding removes the CRLF only.
			if inFrom {
				value = append(value, line...)
			}
			continue
		}
		inFrom = false
		name, rest, ok := bytes.Cut(line, []byte(":"))
		// RFC 5322 §4.5.3 (obs-fields): white space before the colon.
		if !ok || !strings.EqualFold(string(bytes.TrimRight(name, " \t")), "From") {
			continue
		}
		if found {
			return "", ErrMultipleFrom
		}
		found, inFrom = true, true
		value = append(value, rest...)
	}
	if !found {
		return "", ErrNoFrom
	}
	return string(value), nil
}

type tokKind int

const (
	tokAtom    tokKind = iota // atom or encoded-word
	tokQuoted                 // quoted-string, unquoted
	tokLiteral                // domain literal, with brackets
	tokSpecial                // one of < > @ , ; : .
)

type token struct {
	kind tokKind
	text string
}

func (t token) is(c byte) bool {
	return t.kind == tokSpecial && t.text[0] == c
}

// isAtext reports whether c is atext (RFC 5322 §3.2.3), with the UTF-8
// octets of RFC 6532 §3.2.
func isAtext(c byte) bool {
	return c >= 0x80 || headerfield.IsAtext(c)
}

// tokenize splits an address list into tokens, dropping comments and
// white space (CFWS, RFC 5322 §3.2.2).
func tokenize(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == '(':
			// Comments nest; a counter, not recursion, bounds the work.
			depth := 0
			for ; i < len(s); i++ {
				if s[i] == '\\' {
					i++
				} else if s[i] == '(' {
					depth++
				} else if s[i] == ')' {
					depth--
					if depth == 0 {
						break
					}
				}
			}
			if depth != 0 {
				return nil, fmt.Errorf("%w: unterminated comment", ErrFromSyntax)
			}
			i++
		case c == '"':
			var b strings.Builder
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				b.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("%w: unterminated quoted string", ErrFromSyntax)
			}
			i++
			toks = append(toks, token{tokQuoted, b.String()})
		case c == '[':
			j := strings.IndexByte(s[i:], ']')
			if j < 0 {
				return nil, fmt.Errorf("%w: unterminated domain literal", ErrFromSyntax)
			}
			toks = append(toks, token{tokLiteral, s[i : i+j+1]})
			i += j + 1
		case strings.IndexByte("<>@,;:.", c) >= 0:
			toks = append(toks, token{tokSpecial, s[i : i+1]})
			i++
		case c == '=' && strings.HasPrefix(s[i:], "=?"):
			if n := encodedWordLen(s[i:]); n > 0 {
				toks = append(toks, token{tokAtom, s[i : i+n]})
				i += n
				continue
			}
			fallthrough
		case isAtext(c):
			j := i
			for j < len(s) && isAtext(s[j]) {
				j++
			}
			toks = append(toks, token{tokAtom, s[i:j]})
			i = j
		default:
			return nil, fmt.Errorf("%w: unexpected character %q", ErrFromSyntax, c)
		}
	}
	return toks, nil
}

// encodedWordLen returns the length of the RFC 2047 §2 encoded-word at the
// start of s ("=?" charset "?" encoding "?" encoded-text "?="), or 0. The
// encoded text is taken as anything printable up to "?=", since senders put
// specials such as "," and "@" in it (RFC 2047 §5(3) forbids that).
func encodedWordLen(s string) int {
	if len(s) > 200 {
		s = s[:200] // RFC 2047 §2: at most 75 characters
	}
	rest, ok := strings.CutPrefix(s, "=?")
	if !ok {
		return 0
	}
	charset, rest, ok := strings.Cut(rest, "?")
	if !ok || charset == "" || strings.ContainsAny(charset, " \t()<>@,;:\"/[]\\.=") {
		return 0
	}
	if len(rest) < 2 || rest[1] != '?' || !strings.ContainsRune("bBqQ", rune(rest[0])) {
		return 0
	}
	text := rest[2:]
	end := strings.Index(text, "?=")
	if end < 0 {
		return 0
	}
	for i := 0; i < end; i++ {
		if text[i] <= ' ' || text[i] == 0x7f {
			return 0
		}
	}
	return len(s) - len(text) + end + 2
}

// parseAddressList parses address-list (RFC 5322 §3.4, obs-addr-list §4.4)
// and returns the domain of every mailbox, groups included.
func parseAddressList(toks []token) ([]string, error) {
	var domains []string
	i := 0
	for i < len(toks) {
		if toks[i].is(',') {
			i++ // obs-addr-list: empty elements
			continue
		}
		// group = display-name ":" [group-list] ";" [CFWS]
		j := i
		for j < len(toks) && (toks[j].kind == tokAtom || toks[j].kind == tokQuoted || toks[j].is('.')) {
			j++
		}
		if j > i && j < len(toks) && toks[j].is(':') {
			i = j + 1
			for i < len(toks) && !toks[i].is(';') {
				if toks[i].is(',') {
					i++
					continue
				}
				d, next, err := parseMailbox(toks, i)
				if err != nil {
					return nil, err
				}
				domains = append(domains, d)
				i = next
				if i < len(toks) && !toks[i].is(',') && !toks[i].is(';') {
					return nil, fmt.Errorf("%w: junk after address in group", ErrFromSyntax)
				}
			}
			if i < len(toks) {
				i++ // ";"; a missing one at the end is tolerated
			}
		} else {
			d, next, err := parseMailbox(toks, i)
			if err != nil {
				return nil, err
			}
			domains = append(domains, d)
			i = next
		}
		if i < len(toks) && !toks[i].is(',') {
			return nil, fmt.Errorf("%w: junk after address", ErrFromSyntax)
		}
	}
	return domains, nil
}

// parseMailbox parses a mailbox (name-addr or addr-spec) at toks[i] and
// returns its domain and the index after it.
func parseMailbox(toks []token, i int) (string, int, error) {
	// An angle address before the next "," or ";" makes everything before
	// it the display name, whatever it holds.
	for j := i; j < len(toks) && !toks[j].is(',') && !toks[j].is(';'); j++ {
		if !toks[j].is('<') {
			continue
		}
		k := j + 1
		// obs-route = obs-domain-list ":" (RFC 5322 §4.4)
		if k < len(toks) && (toks[k].is('@') || toks[k].is(',')) {
			for k < len(toks) && !toks[k].is(':') && !toks[k].is('>') {
				k++
			}
			if k == len(toks) || !toks[k].is(':') {
				return "", 0, fmt.Errorf("%w: malformed route", ErrFromSyntax)
			}
			k++
		}
		d, next, err := parseAddrSpec(toks, k)
		if err != nil {
			return "", 0, err
		}
		if next >= len(toks) || !toks[next].is('>') {
			return "", 0, fmt.Errorf("%w: angle address not closed", ErrFromSyntax)
		}
		return d, next + 1, nil
	}
	return parseAddrSpec(toks, i)
}

// parseAddrSpec parses addr-spec = local-part "@" domain (RFC 5322 §3.4.1,
// obs-local-part and obs-domain of §4.4).
func parseAddrSpec(toks []token, i int) (string, int, error) {
	start := i
	for i < len(toks) && (toks[i].kind == tokAtom || toks[i].kind == tokQuoted || toks[i].is('.')) {
		i++
	}
	if i == start {
		return "", 0, fmt.Errorf("%w: missing local part", ErrFromSyntax)
	}
	if i >= len(toks) || !toks[i].is('@') {
		return "", 0, fmt.Errorf("%w: address without @", ErrFromSyntax)
	}
	i++
	if i < len(toks) && toks[i].kind == tokLiteral {
		return "", 0, fmt.Errorf("%w: domain literal %s has no DMARC policy", ErrFromSyntax, toks[i].text)
	}
	var labels []string
	for {
		if i >= len(toks) || toks[i].kind != tokAtom {
			return "", 0, fmt.Errorf("%w: malformed domain", ErrFromSyntax)
		}
		labels = append(labels, toks[i].text)
		i++
		if i < len(toks) && toks[i].is('.') {
			i++
			continue
		}
		return strings.Join(labels, "."), i, nil
	}
}

// asciiDomain returns d in lower-case A-labels (RFC 5890), checking that
// it is a host name of valid length.
func asciiDomain(d string) (string, error) {
	ascii := true
	for i := 0; i < len(d); i++ {
		if d[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if !ascii {
		a, err := idna.Lookup.ToASCII(d)
		if err != nil {
			return "", fmt.Errorf("%w: domain %q: %v", ErrFromSyntax, d, err)
		}
		d = a
	}
	d = strings.ToLower(d)
	if len(d) > 253 {
		return "", fmt.Errorf("%w: domain too long", ErrFromSyntax)
	}
	for l := range strings.SplitSeq(d, ".") {
		if len(l) == 0 || len(l) > 63 {
			return "", fmt.Errorf("%w: domain %q has an empty or too long label", ErrFromSyntax, d)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("%w: domain %q has invalid character %q", ErrFromSyntax, d, c)
			}
		}
	}
	return d, nil
}
