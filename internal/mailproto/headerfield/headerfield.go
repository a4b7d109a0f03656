// Package headerfield writes message header fields (RFC 5322 §2.2): the
// folding of long fields and the quoting of values. The trace and result
// fields moxd adds to messages (Received, Received-SPF,
// Authentication-Results) are built with it.
package headerfield

import "strings"

// MaxLine is the line length fields are folded at (RFC 5322 §2.1.1: lines
// should be at most 78 characters).
const MaxLine = 78

// Builder writes one header field from tokens, folding before a token that
// would make the line longer than MaxLine. A token longer than a line stays
// whole. The zero value is not usable; use New.
type Builder struct {
	b     strings.Builder
	col   int
	fresh bool // nothing written on the current continuation line yet
}

// New starts the field "name:" (name given without the colon).
func New(name string) *Builder {
	h := &Builder{}
	h.b.WriteString(name)
	h.b.WriteByte(':')
	h.col = len(name) + 1
	return h
}

// Add appends tokens, each after a space or at the start of a
// continuation line (CRLF TAB; RFC 5322 §2.2.3).
func (h *Builder) Add(tokens ...string) {
	for _, t := range tokens {
		if !h.fresh && h.col+1+len(t) > MaxLine {
			h.Break()
		}
		if h.fresh {
			h.fresh = false
		} else {
			h.b.WriteByte(' ')
			h.col++
		}
		h.b.WriteString(t)
		h.col += len(t)
	}
}

// Break starts a continuation line, for fields that put each part on a line
// of its own (RFC 8601 results, say).
func (h *Builder) Break() {
	h.b.WriteString("\r\n\t")
	h.col = 1
	h.fresh = true
}

// String returns the field, CRLF-terminated.
func (h *Builder) String() string {
	return h.b.String() + "\r\n"
}

// Fold returns the field name with tokens, folded as Builder does.
func Fold(name string, tokens []string) string {
	h := New(name)
	h.Add(tokens...)
	return h.String()
}

// IsAtext reports whether c is RFC 5322 §3.2.3 atext (ASCII only).
func IsAtext(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// IsDotAtom reports whether s is an RFC 5322 §3.2.3 dot-atom-text.
func IsDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '.' && !IsAtext(s[i]) {
			return false
		}
	}
	return true
}

// Quote returns s as an RFC 5322 §3.2.4 quoted-string. Control characters
// and invalid UTF-8 become "?"; other UTF-8 is kept (RFC 6532 §3.2), which
// only internationalized addresses and domains need.
func Quote(s string) string {
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
