package mtasts

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Mode is a policy's mode (RFC 8461 §5).
type Mode string

// The policy modes.
const (
	// ModeEnforce: deliver only to MX hosts that match the policy, over
	// TLS with a certificate valid for the MX host name.
	ModeEnforce Mode = "enforce"
	// ModeTesting: deliver as without a policy, but report failures
	// (TLSRPT, RFC 8460).
	ModeTesting Mode = "testing"
	// ModeNone: the domain has withdrawn its policy.
	ModeNone Mode = "none"
)

// MaxPolicySize is the largest policy file accepted, 64 KiB (RFC 8461
// §3.3).
const MaxPolicySize = 64 << 10

// MaxMaxAge is the largest max_age allowed (RFC 8461 §3.2), about a year.
const MaxMaxAge = 31557600 * time.Second

// Policy is a parsed policy file (RFC 8461 §3.2).
type Policy struct {
	Mode Mode
	// MX are the allowed MX host patterns, lower case without trailing
	// dot: host names, or "*.example.com" for any name one label below
	// example.com. Empty only with ModeNone.
	MX []string
	// MaxAge is how long the policy may be cached (whole seconds, at most
	// MaxMaxAge).
	MaxAge time.Duration
	// Extensions are the lines with keys RFC 8461 does not define, "key:
	// value", in file order. They are kept for logs and ignored.
	Extensions []string
}

// ParsePolicy parses a policy file (RFC 8461 §3.2): "key: value" lines
// ended by CRLF or LF. version (STSv1), mode and max_age must each appear
// once; mx appears once per pattern and at least once unless the mode is
// none. Keys are case-sensitive; lines with other keys are kept in
// Extensions. Blank lines are skipped.
func ParsePolicy(b []byte) (*Policy, error) {
	if len(b) > MaxPolicySize {
		return nil, fmt.Errorf("policy is %d bytes, more than the %d allowed", len(b), MaxPolicySize)
	}
	if !utf8.Valid(b) {
		return nil, errors.New("policy is not valid UTF-8")
	}
	p := &Policy{}
	seen := map[string]bool{}
	for i, line := range strings.Split(string(b), "\n") {
		// RFC 8461 §3.2: "Parsers MUST accept TXT policy files with
		// either CRLF or LF line endings".
		line = strings.TrimSuffix(line, "\r")
		if strings.Trim(line, " \t") == "" {
			continue
		}
		errorf := func(format string, args ...any) error {
			return fmt.Errorf("line %d: %s", i+1, fmt.Sprintf(format, args...))
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, errorf("no colon in %q", line)
		}
		// sts-policy-field-delim = ":" *WSP; trailing *WSP is allowed too.
		value = strings.Trim(value, " \t")
		if !validExtName(key) {
			return nil, errorf("invalid key %q", key)
		}
		if key != "mx" {
			if seen[key] {
				return nil, errorf("%s given more than once", key)
			}
			seen[key] = true
		}
		switch key {
		case "version":
			if value != "STSv1" {
				return nil, errorf("version %q, only STSv1 is known", value)
			}
		case "mode":
			switch m := Mode(value); m {
			case ModeEnforce, ModeTesting, ModeNone:
				p.Mode = m
			default:
				return nil, errorf("mode %q, want enforce, testing or none", value)
			}
		case "max_age":
			// sts-policy-max-age-value = 1*10(DIGIT), at most 31557600.
			n, err := strconv.ParseUint(value, 10, 64)
			if err != nil || len(value) > 10 || n > uint64(MaxMaxAge/time.Second) {
				return nil, errorf("max_age %q, want seconds from 0 to %d", value, int64(MaxMaxAge/time.Second))
			}
			p.MaxAge = time.Duration(n) * time.Second
		case "mx":
			pat := strings.ToLower(strings.TrimSuffix(value, "."))
			if !validDomain(strings.TrimPrefix(pat, "*.")) {
				return nil, errorf("mx %q is not a host name or *.domain pattern", value)
			}
			p.MX = append(p.MX, pat)
		default:
			for j := 0; j < len(value); j++ {
				if c := value[j]; c < 0x20 && c != '\t' || c == 0x7f {
					return nil, errorf("control character in the value of %s", key)
				}
			}
			p.Extensions = append(p.Extensions, key+": "+value)
		}
	}
	for _, k := range []string{"version", "mode", "max_age"} {
		if !seen[k] {
			return nil, fmt.Errorf("no %s in policy", k)
		}
	}
	if len(p.MX) == 0 && p.Mode != ModeNone {
		return nil, fmt.Errorf("no mx in policy with mode %s", p.Mode)
	}
	return p, nil
}

// String returns the policy as a policy file with LF line endings, for
// logs and dumps; ParsePolicy reads it back.
func (p *Policy) String() string {
	var b strings.Builder
	b.WriteString("version: STSv1\n")
	b.WriteString("mode: " + string(p.Mode) + "\n")
	for _, mx := range p.MX {
		b.WriteString("mx: " + mx + "\n")
	}
	b.WriteString("max_age: " + strconv.FormatInt(int64(p.MaxAge/time.Second), 10) + "\n")
	for _, e := range p.Extensions {
		b.WriteString(e + "\n")
	}
	return b.String()
}

// Matches reports whether the MX host name host (ASCII, A-labels for
// IDNs, any case, trailing dot or not) is allowed by the policy (RFC 8461
// §4.1): it equals a pattern, or a pattern is "*.domain" and host is
// domain with exactly one more label in front.
func (p *Policy) Matches(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "" {
		return false
	}
	for _, pat := range p.MX {
		pat = strings.ToLower(strings.TrimSuffix(pat, "."))
		if parent, ok := strings.CutPrefix(pat, "*."); ok {
			// RFC 8461 §4.1: the wildcard stands for exactly one label,
			// the leftmost.
			label, rest, found := strings.Cut(host, ".")
			if found && label != "" && rest == parent {
				return true
			}
		} else if host == pat {
			return true
		}
	}
	return false
}

// validDomain checks an ASCII domain name in the RFC 5321 §4.1.2 Domain
// syntax: labels of letters, digits and inner hyphens, 1 to 63
// characters, at most 253 in all, no trailing dot.
func validDomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !isAlnum(c) && c != '-' {
				return false
			}
		}
	}
	return true
}
