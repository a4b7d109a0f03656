package imapd

// Content-Transfer-Encoding decoding for FETCH BINARY (RFC 3516, RFC 9051
// §6.4.5): streaming decoders that write the decoded data to another
// writer, so a part of any size is decoded in a bounded buffer, once to
// learn the size and whether it holds NUL, once to send it.
//
// Implementation notes:
//   - The decoders are lenient, as mail in the wild needs: base64 skips
//     characters outside its alphabet and ends a quantum early at "=";
//     quoted-printable passes "=" not followed by two hex digits through
//     and keeps control characters. Neither ever fails on its input, and
//     both are deterministic: the sizing pass and the sending pass
//     produce the same bytes from the same file.

import (
	"bytes"
	"io"
)

// cteDecodable says whether BINARY can remove the encoding enc (lower
// case, as message.Part keeps it), and whether it is an identity
// encoding that needs no decoding (RFC 2045 §6.2: 7bit, 8bit, binary).
func cteDecodable(enc string) (ok, identity bool) {
	switch enc {
	case "", "7bit", "8bit", "binary":
		return true, true
	case "base64", "quoted-printable":
		return true, false
	}
	return false, false
}

// newDecoder returns a writer that decodes enc (one cteDecodable accepts)
// and writes the result to w. Close writes what is pending.
func newDecoder(enc string, w io.Writer) io.WriteCloser {
	switch enc {
	case "base64":
		return &base64Writer{w: w}
	case "quoted-printable":
		return &qpWriter{w: w}
	}
	return nopCloser{w}
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// base64Values maps a byte to its RFC 2045 §6.8 value, 0xff for bytes
// outside the alphabet.
var base64Values = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") {
		t[c] = byte(i)
	}
	return t
}()

// base64Writer decodes base64 (RFC 2045 §6.8).
type base64Writer struct {
	w   io.Writer
	q   [4]byte // the quantum being collected
	n   int
	out []byte
}

func (d *base64Writer) Write(p []byte) (int, error) {
	d.out = d.out[:0]
	for _, c := range p {
		if c == '=' {
			// RFC 2045 §6.8: padding ends the data of the quantum.
			d.flushPartial()
			continue
		}
		v := base64Values[c]
		if v == 0xff {
			// RFC 2045 §6.8: characters not in the alphabet are ignored
			// (line breaks, and whatever else got in).
			continue
		}
		d.q[d.n] = v
		d.n++
		if d.n == 4 {
			d.out = append(d.out, d.q[0]<<2|d.q[1]>>4, d.q[1]<<4|d.q[2]>>2, d.q[2]<<6|d.q[3])
			d.n = 0
		}
	}
	if _, err := d.w.Write(d.out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// flushPartial decodes an incomplete quantum: 2 or 3 characters hold 1 or
// 2 bytes, a single character holds none.
func (d *base64Writer) flushPartial() {
	switch d.n {
	case 2:
		d.out = append(d.out, d.q[0]<<2|d.q[1]>>4)
	case 3:
		d.out = append(d.out, d.q[0]<<2|d.q[1]>>4, d.q[1]<<4|d.q[2]>>2)
	}
	d.n = 0
}

func (d *base64Writer) Close() error {
	d.out = d.out[:0]
	d.flushPartial()
	_, err := d.w.Write(d.out)
	return err
}

// qpWriter decodes quoted-printable (RFC 2045 §6.7).
type qpWriter struct {
	w     io.Writer
	state qpState
	hi    byte   // first hex digit after "="
	ws    []byte // spaces and tabs that may be trailing on their line
	eqWS  []byte // spaces and tabs after "=" (a soft break with trailing space)
	out   []byte
}

type qpState int

const (
	qpText  qpState = iota
	qpEq            // after "="
	qpEqHex         // after "=" and one hex digit
	qpEqWS          // after "=" and white space
	qpEqCR          // after "=" CR (or "=" white space CR)
	qpCR            // after a CR in text
)

// qpMaxWS bounds the white space held back in case it is trailing; a
// longer run is written out (and kept even if it turns out to be
// trailing).
const qpMaxWS = 1024

func hexValue(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	case c >= 'a' && c <= 'f':
		// RFC 2045 §6.7 (1): upper case only, but a robust decoder
		// accepts lower case.
		return c - 'a' + 10, true
	}
	return 0, false
}

func (d *qpWriter) Write(p []byte) (int, error) {
	d.out = d.out[:0]
	for _, c := range p {
		d.byte(c)
	}
	if _, err := d.w.Write(d.out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// flushWS emits the held-back white space: it was not trailing.
func (d *qpWriter) flushWS() {
	d.out = append(d.out, d.ws...)
	d.ws = d.ws[:0]
}

func (d *qpWriter) byte(c byte) {
	switch d.state {
	case qpEq:
		if _, ok := hexValue(c); ok {
			d.hi, d.state = c, qpEqHex
			return
		}
		switch c {
		case '\r':
			d.state = qpEqCR
			return
		case '\n':
			d.state = qpText // RFC 2045 §6.7 (5): soft line break
			return
		case ' ', '\t':
			d.eqWS = append(d.eqWS[:0], c)
			d.state = qpEqWS
			return
		}
		// Not an escape: the "=" stands for itself.
		d.out = append(d.out, '=')
		d.state = qpText
	case qpEqHex:
		d.state = qpText
		if lo, ok := hexValue(c); ok {
			hi, _ := hexValue(d.hi)
			d.out = append(d.out, hi<<4|lo) // RFC 2045 §6.7 (1)
			return
		}
		d.out = append(d.out, '=', d.hi)
	case qpEqWS:
		switch c {
		case ' ', '\t':
			if len(d.eqWS) < qpMaxWS {
				d.eqWS = append(d.eqWS, c)
				return
			}
		case '\r':
			d.state = qpEqCR
			return
		case '\n':
			// RFC 2045 §6.7 (3): white space after a soft break's "=" is
			// trailing and removed.
			d.state = qpText
			return
		}
		d.out = append(d.out, '=')
		d.ws = append(d.ws[:0], d.eqWS...)
		d.state = qpText
	case qpEqCR:
		d.state = qpText
		if c == '\n' {
			return // soft line break "=" CRLF
		}
		// "=" CR without LF: treat it as a soft break all the same.
	case qpCR:
		d.state = qpText
		if c == '\n' {
			// RFC 2045 §6.7 (3), (4): trailing white space is removed,
			// the line break is a CRLF.
			d.ws = d.ws[:0]
			d.out = append(d.out, '\r', '\n')
			return
		}
		d.flushWS()
		d.out = append(d.out, '\r')
	}
	// qpText.
	switch c {
	case ' ', '\t':
		if len(d.ws) >= qpMaxWS {
			d.flushWS()
		}
		d.ws = append(d.ws, c)
	case '=':
		d.flushWS()
		d.state = qpEq
	case '\r':
		d.state = qpCR
	case '\n':
		// A bare LF is a line break as well.
		d.ws = d.ws[:0]
		d.out = append(d.out, '\r', '\n')
	default:
		d.flushWS()
		d.out = append(d.out, c)
	}
}

func (d *qpWriter) Close() error {
	d.out = d.out[:0]
	switch d.state {
	case qpEqHex:
		d.out = append(d.out, '=', d.hi)
	case qpCR:
		d.flushWS()
		d.out = append(d.out, '\r')
	}
	// A "=" at the very end is a soft break; white space at the end is
	// trailing on the last line (RFC 2045 §6.7 (3)).
	d.state, d.ws = qpText, d.ws[:0]
	_, err := d.w.Write(d.out)
	return err
}

// crlfWriter makes every line end CRLF: RFC 3516 §6 wants textual
// sections sent with CRLF whatever the stored form.
type crlfWriter struct {
	w  io.Writer
	cr bool // the last byte written was CR
}

func (c *crlfWriter) Write(p []byte) (int, error) {
	start := 0
	for i := bytes.IndexByte(p, '\n'); i >= 0; {
		if !(i > 0 && p[i-1] == '\r' || i == 0 && c.cr) {
			if _, err := c.w.Write(p[start:i]); err != nil {
				return 0, err
			}
			if _, err := c.w.Write([]byte("\r")); err != nil {
				return 0, err
			}
			start = i
		}
		j := bytes.IndexByte(p[i+1:], '\n')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	if _, err := c.w.Write(p[start:]); err != nil {
		return 0, err
	}
	if len(p) > 0 {
		c.cr = p[len(p)-1] == '\r'
	}
	return len(p), nil
}

// sizeWriter counts what is written to it and notes a NUL (which makes a
// BINARY response a literal8, RFC 3516 §4.3).
type sizeWriter struct {
	n   int64
	nul bool
}

func (s *sizeWriter) Write(p []byte) (int, error) {
	s.n += int64(len(p))
	s.nul = s.nul || bytes.IndexByte(p, 0) >= 0
	return len(p), nil
}
