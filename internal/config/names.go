package config

// Syntax checks for the names found in the configuration: domain names
// (including internationalized ones, converted with Punycode), DKIM
// selectors, account names and email addresses.
//
// The IDNA handling is deliberately small: labels are lower-cased with
// strings.ToLower and encoded with Punycode (RFC 3492); the full UTS #46
// mapping and the RFC 5892 code point rules are not applied. Names that are
// already ASCII, which is what nearly every configuration holds, are
// checked exactly. Package addrbook compares addresses at delivery with
// golang.org/x/net/idna and falls back to this encoding, so every name
// accepted here is found there.

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// normalizeDomain checks a domain name and returns its lower-cased form (as
// written, possibly Unicode) and its ASCII form (A-labels).
func normalizeDomain(s string) (name, ascii string, err error) {
	if s == "" {
		return "", "", errors.New("empty domain name")
	}
	if strings.HasSuffix(s, ".") {
		return "", "", fmt.Errorf("domain name %q ends with a dot; remove it", s)
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return "", "", fmt.Errorf("%q is an IP address, a domain name is needed", s)
	}
	if !utf8.ValidString(s) {
		return "", "", fmt.Errorf("domain name %q is not valid UTF-8", s)
	}
	name = strings.ToLower(s)
	labels := strings.Split(name, ".")
	asciiLabels := make([]string, len(labels))
	for i, l := range labels {
		a, err := asciiLabel(l)
		if err != nil {
			return "", "", fmt.Errorf("domain name %q: %w", s, err)
		}
		asciiLabels[i] = a
	}
	ascii = strings.Join(asciiLabels, ".")
	// RFC 1035 §2.3.4: at most 255 octets on the wire, 253 as text.
	if len(ascii) > 253 {
		return "", "", fmt.Errorf("domain name %q is longer than 253 characters", s)
	}
	// RFC 3696 §2: a top-level domain is never all-numeric.
	if last := asciiLabels[len(asciiLabels)-1]; strings.Trim(last, "0123456789") == "" {
		return "", "", fmt.Errorf("domain name %q has an all-numeric last label", s)
	}
	return name, ascii, nil
}

// asciiLabel checks one lower-case label and returns its ASCII form.
func asciiLabel(l string) (string, error) {
	if l == "" {
		return "", errors.New("empty label (two dots in a row, or a leading dot)")
	}
	a := l
	for _, c := range l {
		if c >= utf8.RuneSelf {
			enc, err := punycodeEncode(l)
			if err != nil {
				return "", fmt.Errorf("label %q: %w", l, err)
			}
			// RFC 5890 §2.3.2.1: an A-label is "xn--" and the Punycode form.
			a = "xn--" + enc
			break
		}
	}
	// RFC 1035 §2.3.4: labels are 63 octets or less.
	if len(a) > 63 {
		return "", fmt.Errorf("label %q is longer than 63 characters", l)
	}
	// RFC 1123 §2.1 / RFC 5890 §2.3.1: letters, digits and hyphens, no hyphen
	// at either end. Non-ASCII characters were encoded above.
	for _, c := range l {
		if c < utf8.RuneSelf && !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return "", fmt.Errorf("label %q contains %q, only letters, digits and '-' are allowed", l, c)
		}
	}
	if l[0] == '-' || l[len(l)-1] == '-' {
		return "", fmt.Errorf("label %q starts or ends with '-'", l)
	}
	return a, nil
}

// Punycode parameters, RFC 3492 §5.
const (
	pcBase        = 36
	pcTmin        = 1
	pcTmax        = 26
	pcSkew        = 38
	pcDamp        = 700
	pcInitialBias = 72
	pcInitialN    = 128
)

// punycodeEncode encodes a Unicode label as Punycode, RFC 3492 §6.3 (without
// the "xn--" prefix).
func punycodeEncode(s string) (string, error) {
	runes := []rune(s)
	var out []byte
	for _, r := range runes {
		if r < 0x80 {
			out = append(out, byte(r))
		}
	}
	b := len(out)
	h := b
	if b > 0 {
		out = append(out, '-')
	}
	n := rune(pcInitialN)
	delta, bias := 0, pcInitialBias
	const maxDelta = 1 << 30 // Labels are short; anything near this is garbage.
	for h < len(runes) {
		m := rune(utf8.MaxRune + 1)
		for _, r := range runes {
			if r >= n && r < m {
				m = r
			}
		}
		delta += int(m-n) * (h + 1)
		if delta > maxDelta {
			return "", errors.New("punycode overflow")
		}
		n = m
		for _, r := range runes {
			if r < n {
				delta++
			}
			if r != n {
				continue
			}
			q := delta
			for k := pcBase; ; k += pcBase {
				t := k - bias
				t = max(pcTmin, min(pcTmax, t))
				if q < t {
					break
				}
				out = append(out, punycodeDigit(t+(q-t)%(pcBase-t)))
				q = (q - t) / (pcBase - t)
			}
			out = append(out, punycodeDigit(q))
			bias = punycodeAdapt(delta, h+1, h == b)
			delta = 0
			h++
		}
		delta++
		n++
	}
	return string(out), nil
}

func punycodeDigit(d int) byte {
	if d < 26 {
		return byte('a' + d)
	}
	return byte('0' + d - 26)
}

// punycodeAdapt is the bias adaptation function, RFC 3492 §6.1.
func punycodeAdapt(delta, numPoints int, first bool) int {
	if first {
		delta /= pcDamp
	} else {
		delta /= 2
	}
	delta += delta / numPoints
	k := 0
	for delta > ((pcBase-pcTmin)*pcTmax)/2 {
		delta /= pcBase - pcTmin
		k += pcBase
	}
	return k + (pcBase-pcTmin+1)*delta/(delta+pcSkew)
}

// checkSelector checks a DKIM selector. RFC 6376 §3.1: selector =
// sub-domain *( "." sub-domain ), sub-domain as in RFC 5321 §4.1.2.
func checkSelector(s string) error {
	if s == "" {
		return errors.New("empty selector")
	}
	if len(s) > 253 {
		return errors.New("selector longer than 253 characters")
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" {
			return fmt.Errorf("selector %q has an empty label", s)
		}
		if len(l) > 63 {
			return fmt.Errorf("selector %q has a label longer than 63 characters", s)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("selector %q may contain only letters, digits, '-' and '.'", s)
			}
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("selector %q has a label starting or ending with '-'", s)
		}
	}
	return nil
}

// checkAccountName checks an account name: it is used in logins and as a
// directory name.
func checkAccountName(s string) error {
	if s == "" {
		return errors.New("empty account name")
	}
	if len(s) > 64 {
		return fmt.Errorf("account name %q is longer than 64 characters", s)
	}
	if s[0] == '.' || s[0] == '-' {
		return fmt.Errorf("account name %q starts with %q", s, s[0])
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("account name %q may contain only letters, digits, '.', '-' and '_'", s)
		}
	}
	return nil
}

// splitAddress splits "localpart@domain" and checks the local part. The
// domain is returned as written.
func splitAddress(addr string) (localpart, domain string, err error) {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return "", "", fmt.Errorf("address %q has no '@'", addr)
	}
	localpart, domain = addr[:at], addr[at+1:]
	if err := checkLocalpart(localpart); err != nil {
		return "", "", fmt.Errorf("address %q: %w", addr, err)
	}
	if domain == "" {
		return "", "", fmt.Errorf("address %q has no domain", addr)
	}
	return localpart, domain, nil
}

// splitAccountAddress is splitAddress that also accepts a catchall,
// "@domain", returned with an empty local part.
func splitAccountAddress(addr string) (localpart, domain string, err error) {
	if rest, ok := strings.CutPrefix(addr, "@"); ok && rest != "" && !strings.Contains(rest, "@") {
		return "", rest, nil
	}
	return splitAddress(addr)
}

// LocalpartKey returns the form in which local parts are compared. A quoted
// local part stands for its content (RFC 5322 §3.4.1: "\"mjl\"" and "mjl"
// are the same local part). Unless caseSensitive, the key is lower-cased;
// "postmaster" is lower-cased always (RFC 5321 §4.5.1). Store and queue
// (package addrbook) compare with the same function, so what validation
// calls one address is one address at delivery too.
func LocalpartKey(lp string, caseSensitive bool) string {
	lp = unquoteLocalpart(lp)
	if !caseSensitive || strings.EqualFold(lp, "postmaster") {
		return strings.ToLower(lp)
	}
	return lp
}

// unquoteLocalpart returns the content of a quoted local part, with its
// quoted pairs resolved; other local parts are returned as they are.
func unquoteLocalpart(lp string) string {
	if len(lp) < 2 || lp[0] != '"' || lp[len(lp)-1] != '"' {
		return lp
	}
	inner := lp[1 : len(lp)-1]
	if !strings.Contains(inner, `\`) {
		return inner
	}
	var b strings.Builder
	for i := 0; i < len(inner); i++ {
		if inner[i] == '\\' && i+1 < len(inner) {
			i++
		}
		b.WriteByte(inner[i])
	}
	return b.String()
}

// checkLocalpart checks the local part of an address: RFC 5321 §4.1.2
// Dot-string or Quoted-string, with UTF-8 allowed as in RFC 6531 §3.3.
func checkLocalpart(lp string) error {
	if lp == "" {
		return errors.New("empty local part")
	}
	if !utf8.ValidString(lp) {
		return errors.New("local part is not valid UTF-8")
	}
	// RFC 5321 §4.5.3.1.1: at most 64 octets.
	if len(lp) > 64 {
		return errors.New("local part is longer than 64 octets")
	}
	if lp[0] == '"' {
		if len(lp) < 2 || lp[len(lp)-1] != '"' {
			return errors.New("unterminated quoted local part")
		}
		inner := lp[1 : len(lp)-1]
		for i := 0; i < len(inner); i++ {
			c := inner[i]
			switch {
			case c == '\\':
				// quoted-pairSMTP = %d92 %d32-126
				if i+1 >= len(inner) || inner[i+1] < 32 || inner[i+1] > 126 {
					return errors.New("bad backslash escape in quoted local part")
				}
				i++
			case c == '"':
				return errors.New("unescaped '\"' in quoted local part")
			case c < 32 || c == 127:
				return errors.New("control character in local part")
			}
		}
		return nil
	}
	for _, atom := range strings.Split(lp, ".") {
		if atom == "" {
			return errors.New("local part has an empty part around a dot (leading, trailing or double dot)")
		}
		for _, c := range atom {
			if !isAtext(c) {
				return fmt.Errorf("local part contains %q; use a quoted local part for special characters", c)
			}
		}
	}
	return nil
}

// isAtext reports whether c is atext, RFC 5322 §3.2.3, extended with non-ASCII
// by RFC 6531 §3.3.
func isAtext(c rune) bool {
	if c >= utf8.RuneSelf {
		return true
	}
	if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
		return true
	}
	return strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", c)
}

// DomainASCII returns the ASCII form (A-labels) of a domain name, as DNS
// zone files need it.
func DomainASCII(name string) (string, error) {
	_, ascii, err := normalizeDomain(name)
	return ascii, err
}
