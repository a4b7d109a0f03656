// Package sevenbit downgrades a message with 8-bit content for a server
// that does not announce 8BITMIME (RFC 6152 §3): every MIME leaf part whose
// body has 8-bit octets (or lines too long for SMTP) is re-encoded as
// quoted-printable (RFC 2045 §6.7), and everything else is copied as it is.
//
// The queue calls Needed on a message before sending it to such a server,
// and Convert when it is. What cannot be downgraded is reported, so the
// queue can fail the recipient with a DSN: 8-bit header fields need
// SMTPUTF8 (ErrHeader8Bit), parts labeled binary need BINARYMIME
// (ErrBinary), and header lines over 998 octets are not rewritten
// (ErrLongHeader).
//
// The converter works on a stream of lines and keeps one leaf part in memory
// at a time (and the converted content of a composite part labeled 8bit,
// until it is known whether the label must change). It is written here
// rather than on mime/multipart, which hides
// the exact bytes of headers, boundaries, preamble and epilogue that must be
// kept. Malformed structure (a missing close delimiter, a boundary in a
// non-multipart, a part without header) is handled like a MIME reader
// would, without failing; nesting deeper than MaxDepth is treated as an
// opaque leaf.
package sevenbit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"
)

// Errors of Convert; compare with errors.Is.
var (
	// ErrHeader8Bit: a header field, of the message or of a part, has 8-bit
	// octets. Only SMTPUTF8 (RFC 6531) can carry it.
	ErrHeader8Bit = errors.New("sevenbit: header field with 8-bit octets needs SMTPUTF8")
	// ErrBinary: a part has Content-Transfer-Encoding binary (RFC 3030),
	// which a 7-bit channel cannot carry.
	ErrBinary = errors.New("sevenbit: part with Content-Transfer-Encoding binary cannot be sent without BINARYMIME")
	// ErrTooLarge: the message is larger than the maxSize given to Convert.
	ErrTooLarge = errors.New("sevenbit: message larger than the size limit")
	// ErrLongHeader: a header line is longer than 998 octets (RFC 5322
	// §2.1.1); header fields are not rewritten, so it cannot be sent.
	ErrLongHeader = errors.New("sevenbit: header line longer than 998 octets")
)

const (
	// MaxDepth is the deepest nesting of multipart and message/rfc822
	// parts that is looked into; deeper parts are converted as leaves.
	MaxDepth = 10
	// maxLine is the longest line SMTP carries, CRLF excluded (RFC 5321
	// §4.5.3.1.6).
	maxLine = 998
	// maxBoundary bounds the boundary parameter that is honoured; RFC
	// 2046 §5.1.1 allows 70 characters.
	maxBoundary = 200
)

// Needed reports whether the message read from r has any 8-bit octet, that
// is, whether it must be converted (or sent with 8BITMIME or SMTPUTF8).
func Needed(r io.Reader) (bool, error) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if has8bit(buf[:n]) {
			return true, nil
		}
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("sevenbit: read message: %w", err)
		}
	}
}

// Convert copies the message from r to w with every leaf part that has
// 8-bit octets, or lines longer than 998 octets, re-encoded as
// quoted-printable; its Content-Transfer-Encoding field is replaced (and
// MIME-Version added to a message header without one). Multipart bodies are
// followed through their boundaries and message/rfc822 parts into the
// enclosed message; a composite part labeled 8bit is relabeled 7bit.
// Quoted-printable and base64 parts are copied unchanged unless they hold
// 8-bit octets or overlong lines in violation of their encoding; then they
// are repaired (decoded leniently and encoded again, or stripped of what is
// not base64). Lines that need no change are copied byte for byte; all line
// endings become CRLF.
//
// The output is 7-bit and its lines are at most 998 octets. An 8-bit header
// field gives ErrHeader8Bit, a binary part ErrBinary, more than maxSize
// input bytes ErrTooLarge (maxSize <= 0: no limit); w may then have received
// part of the output.
func Convert(w io.Writer, r io.Reader, maxSize int64) error {
	c := &converter{
		in: &lineReader{br: bufio.NewReaderSize(r, 64<<10), max: maxSize},
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	c.out = &errWriter{w: bw}
	if err := c.entity(0, "text/plain", true); err != nil {
		return err
	}
	// Nothing should be left; whatever is, is outside any part.
	for {
		l, err := c.in.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		c.ignorable(l)
	}
	if c.out.err == nil {
		c.out.err = bw.Flush()
	}
	if c.out.err != nil {
		return fmt.Errorf("sevenbit: write: %w", c.out.err)
	}
	return nil
}

// converter holds the state of one Convert call.
type converter struct {
	in     *lineReader
	out    *errWriter
	bounds []string // boundaries of the enclosing multiparts, outermost first
	// changes counts the leaves converted and lines altered, so a
	// composite labeled 8bit is relabeled only if its content changed.
	changes int
}

// entity converts one entity: a header and its body, up to the next
// boundary line of an enclosing multipart (which it leaves unread) or the
// end of input. defType is the type without a Content-Type field
// (message/rfc822 in multipart/digest, RFC 2046 §5.1.5); isMessage is set
// for a message header (top-level or inside message/rfc822).
func (c *converter) entity(depth int, defType string, isMessage bool) error {
	h, err := c.header()
	if err != nil {
		return err
	}
	mt, params := h.contentType(defType)
	cte := h.encoding()
	composite := cte == "" || cte == "7bit" || cte == "8bit" || cte == "binary"
	switch {
	case strings.HasPrefix(mt, "multipart/") && composite && depth < MaxDepth && validBoundary(params["boundary"]):
		if cte == "binary" {
			return ErrBinary
		}
		child := "text/plain"
		if mt == "multipart/digest" {
			child = "message/rfc822"
		}
		return c.composite(h, cte, func() error { return c.multipart(depth, params["boundary"], child) })
	case (mt == "message/rfc822" || mt == "message/global") && composite && depth < MaxDepth:
		// RFC 2046 §5.2.1: no encoding but 7bit, 8bit or binary; after
		// conversion the enclosed message is 7-bit.
		if cte == "binary" {
			return ErrBinary
		}
		return c.composite(h, cte, func() error { return c.entity(depth+1, "text/plain", true) })
	}
	return c.leafBody(h, cte, isMessage)
}

// composite writes the header h of a multipart or message part and runs
// body to convert its content. A part labeled 8bit whose content changed
// is relabeled 7bit, which it now is; to know, its content is collected
// in memory first. Other labels are left as they are.
func (c *converter) composite(h *header, cte string, body func() error) error {
	if cte != "8bit" {
		c.writeHeader(h)
		return body()
	}
	out, before := c.out, c.changes
	var buf bytes.Buffer
	c.out = &errWriter{w: &buf}
	err := body()
	c.out = out
	if err != nil {
		return err
	}
	if c.changes > before {
		h.setEncoding("7bit", false)
	}
	c.writeHeader(h)
	c.out.write(buf.Bytes())
	return nil
}

// multipart converts a multipart body: preamble, parts, epilogue (RFC 2046
// §5.1.1). A boundary line of an enclosing multipart ends it early.
func (c *converter) multipart(depth int, boundary, child string) error {
	c.bounds = append(c.bounds, boundary)
	defer func() { c.bounds = c.bounds[:len(c.bounds)-1] }()
	level := len(c.bounds) - 1

	for {
		l, err := c.in.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		lvl, closing, ok := c.boundaryLine(l.text)
		switch {
		case !ok:
			// Preamble, or text between an entity and the boundary, which
			// cannot happen as entity stops at boundaries.
			c.ignorable(l)
			continue
		case lvl < level:
			c.in.unread(l)
			return nil
		}
		c.delimiter(l)
		if closing {
			return c.epilogue(level)
		}
		if err := c.entity(depth+1, child, false); err != nil {
			return err
		}
		if err := c.out.err; err != nil {
			return fmt.Errorf("sevenbit: write: %w", err)
		}
	}
}

// epilogue copies what follows a close delimiter, up to a boundary of an
// enclosing multipart.
func (c *converter) epilogue(level int) error {
	for {
		l, err := c.in.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if lvl, _, ok := c.boundaryLine(l.text); ok && lvl < level {
			c.in.unread(l)
			return nil
		}
		c.ignorable(l)
	}
}

// boundaryLine reports whether text is a delimiter line of one of the
// enclosing multiparts (RFC 2046 §5.1.1: "--" boundary ["--"] *LWSP),
// innermost first, and whether it is the close delimiter.
func (c *converter) boundaryLine(text []byte) (level int, closing, ok bool) {
	if len(c.bounds) == 0 || !bytes.HasPrefix(text, []byte("--")) {
		return 0, false, false
	}
	for i := len(c.bounds) - 1; i >= 0; i-- {
		rest, found := bytes.CutPrefix(text[2:], []byte(c.bounds[i]))
		if !found {
			continue
		}
		rest, closing = bytes.CutPrefix(rest, []byte("--"))
		if len(bytes.TrimRight(rest, " \t")) == 0 {
			return i, closing, true
		}
	}
	return 0, false, false
}

func validBoundary(b string) bool {
	return b != "" && len(b) <= maxBoundary && !strings.ContainsAny(b, "\r\n")
}

// delimiter writes a boundary line, without its transport padding if that
// makes it too long.
func (c *converter) delimiter(l line) {
	text := l.text
	if len(text) > maxLine {
		text = bytes.TrimRight(text, " \t")
	}
	c.out.write(text)
	c.out.write(crlf)
}

// ignorable writes a line of a preamble or epilogue, which readers discard
// (RFC 2046 §5.1.1): 8-bit octets become "?", and an overlong line is left
// out (cutting it could turn it into a delimiter).
func (c *converter) ignorable(l line) {
	text := l.text
	switch {
	case len(text) > maxLine:
		text = nil
		c.changes++
	case has8bit(text):
		c.changes++
		text = bytes.Clone(text)
		for i, b := range text {
			if b >= 0x80 {
				text[i] = '?'
			}
		}
	}
	c.out.write(text)
	if l.eol || len(text) == 0 {
		c.out.write(crlf)
	}
}

// leafBody reads the body of a leaf part and writes its header h and the
// body, converted when needed.
func (c *converter) leafBody(h *header, cte string, isMessage bool) error {
	var body []byte
	eight, long, atBoundary := false, false, false
	for {
		l, err := c.in.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if _, _, ok := c.boundaryLine(l.text); ok {
			c.in.unread(l)
			atBoundary = true
			break
		}
		eight = eight || has8bit(l.text)
		long = long || len(l.text) > maxLine
		body = append(body, l.text...)
		if l.eol {
			body = append(body, crlf...)
		}
	}
	if cte == "binary" {
		return ErrBinary
	}
	if !eight && !long {
		c.writeHeader(h)
		c.out.write(body)
		return nil
	}

	c.changes++
	// The CRLF before a delimiter belongs to the delimiter (RFC 2046
	// §5.1.1), not to the content.
	content := body
	if atBoundary {
		content = bytes.TrimSuffix(content, crlf)
	}
	var enc []byte
	switch cte {
	case "base64":
		enc = rewrapBase64(content)
	case "quoted-printable":
		enc = qpEncode(qpDecode(content))
	default:
		enc = qpEncode(content)
		h.setEncoding("quoted-printable", isMessage)
	}
	if !bytes.HasSuffix(enc, crlf) {
		if atBoundary || cte == "base64" {
			enc = append(enc, crlf...)
		} else {
			// A soft line break ends the output with CRLF without adding
			// to the content.
			enc = append(enc, "=\r\n"...)
		}
	} else if atBoundary {
		enc = append(enc, crlf...)
	}
	c.writeHeader(h)
	c.out.write(enc)
	return nil
}

var crlf = []byte("\r\n")

// header is the header of an entity as read.
type header struct {
	lines [][]byte // raw lines, without line endings
	ended bool     // terminated by an empty line (else by a boundary, the body or the end)
}

// header reads the header of an entity. It ends at an empty line, at a
// boundary line, at the end of input, or at a line that is neither a field
// nor a continuation, which starts the body of a part that lacks the empty
// line (or a header altogether).
func (c *converter) header() (*header, error) {
	h := &header{}
	for {
		l, err := c.in.next()
		if err == io.EOF {
			return h, nil
		}
		if err != nil {
			return nil, err
		}
		if len(l.text) == 0 && l.eol {
			h.ended = true
			return h, nil
		}
		if _, _, ok := c.boundaryLine(l.text); ok || !isHeaderLine(l.text, len(h.lines) > 0) {
			c.in.unread(l)
			return h, nil
		}
		if has8bit(l.text) {
			name, _, _ := bytes.Cut(l.text, []byte(":"))
			if l.text[0] == ' ' || l.text[0] == '\t' {
				name = []byte("continuation line")
			}
			return nil, fmt.Errorf("%w (%q)", ErrHeader8Bit, strings.ToValidUTF8(string(name), "?"))
		}
		if len(l.text) > maxLine {
			return nil, ErrLongHeader
		}
		h.lines = append(h.lines, l.text)
	}
}

// isHeaderLine reports whether line can be part of a header: a
// continuation (after a first line) or "name:" with a name without
// whitespace or control characters (8-bit octets allowed, so such a field
// is reported instead of taken for body text).
func isHeaderLine(line []byte, cont bool) bool {
	if len(line) == 0 {
		return false
	}
	if line[0] == ' ' || line[0] == '\t' {
		return cont
	}
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return false
	}
	name := bytes.TrimRight(line[:i], " \t")
	if len(name) == 0 {
		return false
	}
	for _, b := range name {
		if b <= ' ' || b == 0x7f {
			return false
		}
	}
	return true
}

// field returns the unfolded value of the first field called name.
func (h *header) field(name string) (string, bool) {
	for i := 0; i < len(h.lines); i++ {
		n, v, ok := bytes.Cut(h.lines[i], []byte(":"))
		if !ok || h.lines[i][0] == ' ' || h.lines[i][0] == '\t' || !strings.EqualFold(string(bytes.TrimRight(n, " \t")), name) {
			continue
		}
		val := string(v)
		for i+1 < len(h.lines) && (h.lines[i+1][0] == ' ' || h.lines[i+1][0] == '\t') {
			i++
			val += string(h.lines[i])
		}
		return strings.TrimSpace(val), true
	}
	return "", false
}

// contentType returns the media type (lower case) and parameters; defType
// without a Content-Type field; application/octet-stream for one that
// cannot be parsed.
func (h *header) contentType(defType string) (string, map[string]string) {
	v, ok := h.field("Content-Type")
	if !ok || v == "" {
		return defType, nil
	}
	mt, params, err := mime.ParseMediaType(v)
	if mt == "" || (err != nil && err != mime.ErrInvalidMediaParameter) {
		return "application/octet-stream", nil
	}
	return mt, params
}

// encoding returns the Content-Transfer-Encoding mechanism, lower case,
// without comments; "" when absent.
func (h *header) encoding() string {
	v, _ := h.field("Content-Transfer-Encoding")
	if i := strings.IndexAny(v, " \t("); i >= 0 {
		v = v[:i]
	}
	return strings.ToLower(v)
}

// setEncoding replaces the Content-Transfer-Encoding fields with one of
// value cte, added at the end of the header; a message header without
// MIME-Version gets one, so the field is understood (RFC 2045 §4).
func (h *header) setEncoding(cte string, isMessage bool) {
	var kept [][]byte
	skip := false
	for _, l := range h.lines {
		if l[0] == ' ' || l[0] == '\t' {
			if !skip {
				kept = append(kept, l)
			}
			continue
		}
		n, _, _ := bytes.Cut(l, []byte(":"))
		skip = strings.EqualFold(string(bytes.TrimRight(n, " \t")), "Content-Transfer-Encoding")
		if !skip {
			kept = append(kept, l)
		}
	}
	h.lines = kept
	if _, ok := h.field("MIME-Version"); isMessage && !ok {
		h.lines = append(h.lines, []byte("MIME-Version: 1.0"))
	}
	h.lines = append(h.lines, []byte("Content-Transfer-Encoding: "+cte))
	h.ended = true
}

func (c *converter) writeHeader(h *header) {
	for _, l := range h.lines {
		c.out.write(l)
		c.out.write(crlf)
	}
	if h.ended {
		c.out.write(crlf)
	}
}

// line is one input line without its line ending; eol tells whether it had
// one (only the last line of the input may lack it).
type line struct {
	text []byte
	eol  bool
}

// lineReader reads lines, one of which can be pushed back, and enforces
// the size limit.
type lineReader struct {
	br     *bufio.Reader
	n, max int64
	back   *line
}

func (r *lineReader) next() (line, error) {
	if r.back != nil {
		l := *r.back
		r.back = nil
		return l, nil
	}
	var text []byte
	for {
		frag, err := r.br.ReadSlice('\n')
		r.n += int64(len(frag))
		if r.max > 0 && r.n > r.max {
			return line{}, fmt.Errorf("%w (%d bytes)", ErrTooLarge, r.max)
		}
		text = append(text, frag...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && len(text) == 0 {
			return line{}, io.EOF
		}
		if err != nil && err != io.EOF {
			return line{}, fmt.Errorf("sevenbit: read message: %w", err)
		}
		break
	}
	l := line{text: text}
	if t, ok := bytes.CutSuffix(text, []byte("\n")); ok {
		l.eol = true
		l.text = bytes.TrimSuffix(t, []byte("\r"))
	}
	return l, nil
}

func (r *lineReader) unread(l line) {
	r.back = &l
}

// errWriter remembers the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (w *errWriter) write(b []byte) {
	if w.err == nil {
		_, w.err = w.w.Write(b)
	}
}

func has8bit(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}
