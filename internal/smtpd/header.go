package smtpd

import (
	"bytes"
)

// maxCapturedHeader bounds the header section smtpd keeps of a message it
// streams to store or queue: enough for any real header, and a message with
// a larger one is treated as having no usable header (DMARC none, no loop
// count beyond what was seen).
const maxCapturedHeader = 1 << 20

// headerCapture is a writer that keeps the header section of the message
// written through it (up to the empty line), bounded by maxCapturedHeader.
// It never fails, so it can sit in an io.MultiWriter.
type headerCapture struct {
	buf      []byte
	done     bool // the empty line was seen
	overflow bool // the header was larger than the bound
}

func (h *headerCapture) Write(p []byte) (int, error) {
	if h.done || h.overflow {
		return len(p), nil
	}
	start := len(h.buf)
	h.buf = append(h.buf, p...)
	// Look for the end of the header from a little before the new data,
	// so a CRLFCRLF split across writes is found.
	from := max(0, start-3)
	if len(h.buf) >= 2 && h.buf[0] == '\r' && h.buf[1] == '\n' {
		// No header at all: the message starts with the empty line.
		h.buf = h.buf[:0]
		h.done = true
		return len(p), nil
	}
	if i := bytes.Index(h.buf[from:], []byte("\r\n\r\n")); i >= 0 {
		h.buf = h.buf[:from+i+2]
		h.done = true
		return len(p), nil
	}
	if len(h.buf) > maxCapturedHeader {
		h.overflow = true
		h.buf = nil
	}
	return len(p), nil
}

// header returns the header section (each field CRLF-terminated; for a
// message without an empty line, all of it), or nil when it was too large.
func (h *headerCapture) header() []byte {
	if h.overflow {
		return nil
	}
	return h.buf
}

// count returns how many fields named name (case-insensitive) the header
// section has.
func (h *headerCapture) count(name string) int {
	n, want := 0, []byte(name)
	for line := range bytes.Lines(h.header()) {
		if len(line) == 0 || line[0] == ' ' || line[0] == '\t' {
			continue // continuation of a folded field
		}
		if i := bytes.IndexByte(line, ':'); i > 0 && bytes.EqualFold(bytes.TrimRight(line[:i], " \t"), want) {
			n++
		}
	}
	return n
}
