// Package mlog sets up moxd's structured logging on top of log/slog.
//
// Every process logs through a handler made here. Two conventions keep logs
// trustworthy for an admin reading them years later:
//   - A value with a LogString method (domains, addresses) is logged through it,
//     so an internationalized name shows both its forms.
//   - Any string value with non-ASCII or control characters is logged with those
//     characters escaped (\u00fc, \n), so look-alike characters are visible and a
//     value can never start a forged log line.
package mlog

import (
	"io"
	"log/slog"
	"strconv"
	"strings"
	"unicode/utf8"
)

// LevelTrace is below debug: protocol transcripts.
const LevelTrace = slog.LevelDebug - 4

// LogStringer is implemented by values that have a special log form.
type LogStringer interface {
	LogString() string
}

// Options configure NewHandler.
type Options struct {
	Level    slog.Leveler
	WithTime bool
}

// NewHandler returns a text handler writing to w that applies the conventions
// of this package.
func NewHandler(w io.Writer, opts Options) slog.Handler {
	return slog.NewTextHandler(w, &slog.HandlerOptions{
		Level: opts.Level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey && !opts.WithTime {
				return slog.Attr{}
			}
			if len(groups) == 0 && a.Key == slog.LevelKey {
				if l, ok := a.Value.Any().(slog.Level); ok && l < slog.LevelDebug {
					return slog.String(slog.LevelKey, "TRACE")
				}
				return a
			}
			return ReplaceAttr(a)
		},
	})
}

// ReplaceAttr rewrites one attribute according to the package conventions.
func ReplaceAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		if s := v.String(); NeedsEscape(s) {
			return slog.String(a.Key, Escape(s))
		}
	case slog.KindAny:
		if ls, ok := v.Any().(LogStringer); ok {
			return slog.String(a.Key, Escape(ls.LogString()))
		}
		if err, ok := v.Any().(error); ok {
			if s := err.Error(); NeedsEscape(s) {
				return slog.String(a.Key, Escape(s))
			}
		}
	}
	if a.Key == slog.MessageKey {
		return a
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// NeedsEscape reports whether s has characters outside printable ASCII.
func NeedsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return true
		}
	}
	return false
}

// Escape returns s with every non-ASCII and control character escaped as in a
// Go string literal, without surrounding quotes. Invalid UTF-8 is escaped as
// \xNN.
func Escape(s string) string {
	if !NeedsEscape(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		c := s[i]
		switch {
		case r == utf8.RuneError && size <= 1:
			b.WriteString(`\x` + strconv.FormatUint(uint64(c)|0x100, 16)[1:])
		case c >= 0x20 && c < 0x7f:
			b.WriteByte(c)
		default:
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
	}
	return b.String()
}

// Discard is a logger that drops everything.
func Discard() *slog.Logger {
	return slog.New(slog.DiscardHandler)
}
