package smtp

import (
	"bytes"
	"strconv"
	"strings"
)

// Reply is an SMTP reply: a three-digit code (RFC 5321 §4.2), an enhanced
// status code (RFC 3463, announced with ENHANCEDSTATUSCODES, RFC 2034) and
// one or more text lines. Handlers return a *Reply as an error to have it
// sent; the session loop is the only place that writes error replies.
type Reply struct {
	Code     int      // 200..599
	Enhanced string   // "class.subject.detail", e.g. "5.5.1"; empty for the greeting and EHLO/HELO replies (RFC 2034 §3)
	Lines    []string // text, one element per reply line; no CR or LF inside
}

// Error returns the reply as it would be sent, on one line.
func (r *Reply) Error() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(r.Code))
	if r.Enhanced != "" {
		b.WriteByte(' ')
		b.WriteString(r.Enhanced)
	}
	for _, l := range r.Lines {
		b.WriteByte(' ')
		b.WriteString(l)
	}
	return b.String()
}

// appendTo appends the wire form of r to buf. RFC 5321 §4.2.1: every line
// but the last has "-" after the code, the last has a space. RFC 2034 §3: the
// enhanced code starts the text of every line.
func (r *Reply) appendTo(buf []byte) []byte {
	lines := r.Lines
	if len(lines) == 0 {
		lines = []string{""}
	}
	for i, l := range lines {
		buf = strconv.AppendInt(buf, int64(r.Code), 10)
		if i < len(lines)-1 {
			buf = append(buf, '-')
		} else {
			buf = append(buf, ' ')
		}
		if r.Enhanced != "" {
			buf = append(buf, r.Enhanced...)
			if l != "" {
				buf = append(buf, ' ')
			}
		}
		// A CR or LF in the text would end the reply early and let the
		// rest pass for another reply; never send one.
		for j := 0; j < len(l); j++ {
			if l[j] == '\r' || l[j] == '\n' {
				buf = append(buf, ' ')
			} else {
				buf = append(buf, l[j])
			}
		}
		buf = append(buf, '\r', '\n')
	}
	return buf
}

// errorReply builds a one-line reply.
func errorReply(code int, enhanced, text string) *Reply {
	return &Reply{Code: code, Enhanced: enhanced, Lines: []string{text}}
}

// logLine renders a protocol line for a log: the line ending removed, and
// control characters and non-ASCII bytes escaped so the log shows exactly
// what came over the wire.
func logLine(b []byte) string {
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	var s strings.Builder
	for _, c := range b {
		if c >= 0x20 && c < 0x7f && c != '\\' {
			s.WriteByte(c)
			continue
		}
		switch c {
		case '\\':
			s.WriteString(`\\`)
		case '\r':
			s.WriteString(`\r`)
		case '\n':
			s.WriteString(`\n`)
		case '\t':
			s.WriteString(`\t`)
		default:
			s.WriteString(`\x`)
			s.WriteByte("0123456789abcdef"[c>>4])
			s.WriteByte("0123456789abcdef"[c&0xf])
		}
	}
	return s.String()
}

// redactAuth hides everything after the mechanism of an AUTH command line:
// initial responses carry credentials (RFC 4954 §4).
func redactAuth(line []byte) []byte {
	if len(line) < 5 || !strings.EqualFold(string(line[:5]), "AUTH ") {
		return line
	}
	rest := line[5:]
	i := bytes.IndexByte(rest, ' ')
	if i < 0 {
		return line
	}
	out := make([]byte, 0, 5+i+11)
	out = append(out, line[:5+i]...)
	return append(out, " [redacted]"...)
}
