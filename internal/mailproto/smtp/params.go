package smtp

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// param is one ESMTP parameter of MAIL or RCPT (RFC 5321 §4.1.2):
// esmtp-keyword ["=" esmtp-value].
type param struct {
	key   string // upper-cased
	value string
	set   bool // "=" was present
}

// parseParams splits the parameters after a path. utf8OK allows UTF-8 in
// values (RFC 6531 §3.3 extends esmtp-value).
func parseParams(s string, utf8OK bool) ([]param, error) {
	var l []param
	seen := map[string]bool{}
	for f := range strings.SplitSeq(s, " ") {
		if f == "" {
			// Several spaces: tolerated, as clients send them.
			continue
		}
		k, v, set := strings.Cut(f, "=")
		if k == "" || !isKeyword(k) {
			return nil, fmt.Errorf("invalid parameter %q", f)
		}
		if set && !validParamValue(v, utf8OK) {
			return nil, fmt.Errorf("invalid value of parameter %s", k)
		}
		k = strings.ToUpper(k)
		if seen[k] {
			return nil, fmt.Errorf("parameter %s given twice", k)
		}
		seen[k] = true
		l = append(l, param{key: k, value: v, set: set})
	}
	return l, nil
}

// isKeyword: esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-").
func isKeyword(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '-') {
			return false
		}
	}
	return s != ""
}

// validParamValue: esmtp-value = 1*(%d33-60 / %d62-126), plus UTF-8 with
// SMTPUTF8.
func validParamValue(s string, utf8OK bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			if !utf8OK {
				return false
			}
			continue
		}
		if c < 33 || c > 126 || c == '=' {
			return false
		}
	}
	return utf8.ValidString(s)
}

// decodeXtext decodes RFC 3461 §4 xtext: printable ASCII except "+" and
// "=", with "+" and two upper-case hex digits for any other octet.
func decodeXtext(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			if i+2 >= len(s) {
				return "", errors.New("truncated xtext hex escape")
			}
			hi, ok1 := hexUpper(s[i+1])
			lo, ok2 := hexUpper(s[i+2])
			if !ok1 || !ok2 {
				return "", errors.New("invalid xtext hex escape (two upper-case hex digits after +)")
			}
			b.WriteByte(hi<<4 | lo)
			i += 2
		case c >= 33 && c <= 126 && c != '=':
			b.WriteByte(c)
		default:
			return "", errors.New("invalid character in xtext")
		}
	}
	return b.String(), nil
}

func hexUpper(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// parseNotify parses RCPT's NOTIFY value (RFC 3461 §4.1): "NEVER", or a
// comma-separated list of SUCCESS, FAILURE and DELAY.
func parseNotify(v string) (uint8, error) {
	if strings.EqualFold(v, "NEVER") {
		return NotifyNever, nil
	}
	var n uint8
	for f := range strings.SplitSeq(v, ",") {
		var bit uint8
		switch strings.ToUpper(f) {
		case "SUCCESS":
			bit = NotifySuccess
		case "FAILURE":
			bit = NotifyFailure
		case "DELAY":
			bit = NotifyDelay
		default:
			return 0, fmt.Errorf("NOTIFY value %q: use NEVER, or SUCCESS, FAILURE and DELAY separated by commas", f)
		}
		if n&bit != 0 {
			return 0, fmt.Errorf("NOTIFY lists %s twice", f)
		}
		n |= bit
	}
	return n, nil
}
