package dkim

import (
	"errors"
	"fmt"
	"strings"
)

// parseTags parses a DKIM tag-list (RFC 6376 §3.2), as found in a
// DKIM-Signature header field value and in a key record. Values are
// returned with surrounding folding white space removed; white space
// inside a value is kept (callers strip it where the RFC says it is to be
// ignored, e.g. b=, bh=, h=, p=).
//
// Empty tag-specs (";;", a trailing ";") are accepted, as go-msgauth does.
func parseTags(s string) (map[string]string, error) {
	tags := map[string]string{}
	for spec := range strings.SplitSeq(s, ";") {
		if trimFWS(spec) == "" {
			continue
		}
		name, value, ok := strings.Cut(spec, "=")
		if !ok {
			return nil, fmt.Errorf("tag-spec %q without \"=\"", shorten(trimFWS(spec)))
		}
		name = trimFWS(name)
		if !validTagName(name) {
			return nil, fmt.Errorf("invalid tag name %q", shorten(name))
		}
		value = trimFWS(value)
		if err := checkTagValue(value); err != nil {
			return nil, fmt.Errorf("tag %s: %w", name, err)
		}
		// RFC 6376 §3.2: a duplicate tag name invalidates the entire
		// tag-list. Tag names are case-sensitive.
		if _, dup := tags[name]; dup {
			return nil, fmt.Errorf("duplicate tag %q", name)
		}
		tags[name] = value
	}
	return tags, nil
}

// isFWS reports whether c can be part of folding white space.
func isFWS(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n'
}

func trimFWS(s string) string {
	i, j := 0, len(s)
	for i < j && isFWS(s[i]) {
		i++
	}
	for j > i && isFWS(s[j-1]) {
		j--
	}
	return s[i:j]
}

// validTagName checks tag-name = ALPHA *ALNUMPUNC, ALNUMPUNC = ALPHA /
// DIGIT / "_" (RFC 6376 §3.2).
func validTagName(s string) bool {
	if s == "" || !isAlpha(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isAlpha(c) && !(c >= '0' && c <= '9') && c != '_' {
			return false
		}
	}
	return true
}

func isAlpha(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

var errTagValue = errors.New("control character in value")

// checkTagValue checks tag-value = [ tval *( 1*(WSP / FWS) tval ) ], tval =
// 1*VALCHAR, VALCHAR = %x21-3A / %x3C-7E (RFC 6376 §3.2). Octets of 0x80
// and above are allowed too, for UTF-8 in i= and d= (RFC 8616 §4).
func checkTagValue(s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 && !isFWS(c) || c == 0x7f {
			return errTagValue
		}
	}
	return nil
}

// stripFWS removes all folding white space from s, for values in which
// the RFC says white space is ignored (RFC 6376 §3.5 b=, bh=, h=).
func stripFWS(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return r < 0x80 && isFWS(byte(r)) }) < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if !isFWS(s[i]) {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// shorten cuts s for use in an error message.
func shorten(s string) string {
	const max = 40
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
