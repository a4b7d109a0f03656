package mbox

// The writer is the export side of the package: moxd-store uses it to turn a
// mailbox into an mbox stream that Reader (and mutt, Dovecot, Python's mailbox
// module) reads back with the same messages, flags and keywords.
//
// Implementation notes. A message is copied line by line through a reused
// read buffer, so memory does not grow with the message. Three decisions are
// made at the start of each line, each by looking at only a few bytes:
//
//   - mboxrd quoting: a line that is '>'* followed by "From " gets one more
//     '>'. Because every such line is quoted, no line of a message can be
//     taken for a From_ line, and Reader's removal of one '>' is exact.
//   - the end of the header section: the first empty line (RFC 5322 §2.1).
//   - in the header, whether a line starts a new field, continues the
//     previous one (RFC 5322 §2.2.3), or starts a status field that the
//     message itself carries (Status, X-Status, X-Keywords, X-UID,
//     X-Mozilla-Status*, X-IMAP*). Those are dropped with their continuation
//     lines: Reader takes flags from them, so left in place they would give
//     the exported message flags it does not have in moxd.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// fromDateLayout is the asctime form of the From_ line's date (RFC 4155 §2),
// day of month padded with a space.
const fromDateLayout = "Mon Jan _2 15:04:05 2006"

// maxStatusName is the longest header line prefix the writer looks at to
// recognise a status field. A header line without ':' in that many bytes is
// kept as message content.
const maxStatusName = readBufSize

// Writer writes messages to an mbox stream in the mboxrd form: From_ line,
// status fields, the message with quoted From lines and LF line endings, and
// an empty line. Call Flush after the last message.
type Writer struct {
	bw  *bufio.Writer
	src *bufio.Reader // Reused for every message; Reset onto msg.
	msg stickyReader  // The current message, read through src.
	err error         // First write error; every later call returns it.
}

// NewWriter returns a Writer that writes the mbox stream to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{
		bw:  bufio.NewWriterSize(w, readBufSize),
		src: bufio.NewReaderSize(nil, readBufSize),
	}
}

// Flush writes buffered data to the underlying writer.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if err := w.bw.Flush(); err != nil {
		w.err = fmt.Errorf("write mbox: %w", err)
	}
	return w.err
}

// WriteMessage writes one message read from msg. The From_ line carries
// envelope, the SMTP MAIL FROM address ("MAILER-DAEMON" when empty or "<>";
// white space and control characters become '_', since the line is split on
// white space), and received in UTC to the second (a year outside 1..9999
// cannot be written in asctime form and reads back as no date). Flags and keywords go into Status,
// X-Status and X-Keywords fields at the top of the header. Keywords are written
// once each (compared case-insensitively, RFC 9051 §2.3.2); a keyword that is
// not an IMAP atom, or that contains ',' (a separator in X-Keywords), is an
// error and nothing is written.
//
// The message may have CRLF or LF line endings; CR characters at the end of a
// line are removed and lines end in LF. A missing final newline is added.
// Status fields the message itself has are removed (see the package comment).
// A read error from msg ends the message in the stream, so the mbox stays
// readable, and is returned. After a write error the Writer is unusable.
func (w *Writer) WriteMessage(envelope string, received time.Time, flags Flags, keywords []string, msg io.Reader) error {
	if w.err != nil {
		return w.err
	}
	kw, err := uniqueKeywords(keywords)
	if err != nil {
		return err
	}
	w.writeFromLine(envelope, received)
	status := statusFields(flags, kw)

	w.msg = stickyReader{r: msg}
	w.src.Reset(&w.msg)
	defer func() {
		w.msg = stickyReader{}
		w.src.Reset(nil)
	}()
	readErr := w.copyMessage(status)
	// End the message: the empty line before the next From_ line (RFC 4155
	// §2) is part of the separator, not of the message.
	w.bw.WriteByte('\n')
	if err := w.checkWrite(); err != nil {
		return err
	}
	if readErr != nil {
		return fmt.Errorf("read message for mbox (written up to the error): %w", readErr)
	}
	return nil
}

func (w *Writer) checkWrite() error {
	if w.err != nil {
		return w.err
	}
	// bufio.Writer keeps its first error and returns it from every Write.
	if _, err := w.bw.Write(nil); err != nil {
		w.err = fmt.Errorf("write mbox: %w", err)
	}
	return w.err
}

// uniqueKeywords checks keywords and removes repeats.
func uniqueKeywords(keywords []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, k := range keywords {
		if !IsAtom(k) {
			return nil, fmt.Errorf("keyword %q cannot be written to an mbox: not an IMAP atom (RFC 9051 §9)", k)
		}
		if strings.IndexByte(k, ',') >= 0 {
			return nil, fmt.Errorf("keyword %q cannot be written to an mbox: X-Keywords separates keywords with ','", k)
		}
		l := strings.ToLower(k)
		if seen[l] {
			continue
		}
		seen[l] = true
		out = append(out, k)
	}
	return out, nil
}

// writeFromLine writes the From_ line (RFC 4155 §2): "From ", the envelope
// sender, a space and the date in asctime form.
func (w *Writer) writeFromLine(envelope string, received time.Time) {
	if envelope == "" || envelope == "<>" {
		envelope = "MAILER-DAEMON"
	}
	w.bw.WriteString("From ")
	for i := 0; i < len(envelope); i++ {
		c := envelope[i]
		if c <= ' ' || c == 0x7f {
			c = '_'
		}
		w.bw.WriteByte(c)
	}
	w.bw.WriteByte(' ')
	w.bw.WriteString(received.UTC().Format(fromDateLayout))
	w.bw.WriteByte('\n')
}

// statusFields returns the header lines for flags and keywords, in the
// letters described in the package comment.
func statusFields(flags Flags, keywords []string) []byte {
	var b bytes.Buffer
	// 'O' marks the message as not new to a client; 'R' is \Seen.
	if flags.Seen {
		b.WriteString("Status: RO\n")
	} else {
		b.WriteString("Status: O\n")
	}
	var x []byte
	for _, f := range []struct {
		set    bool
		letter byte
	}{
		{flags.Answered, 'A'},
		{flags.Flagged, 'F'},
		{flags.Draft, 'T'},
		{flags.Deleted, 'D'},
	} {
		if f.set {
			x = append(x, f.letter)
		}
	}
	if len(x) > 0 {
		fmt.Fprintf(&b, "X-Status: %s\n", x)
	}
	if len(keywords) > 0 {
		fmt.Fprintf(&b, "X-Keywords: %s\n", strings.Join(keywords, " "))
	}
	return b.Bytes()
}

// lineKind is what the start of a line says about it.
type lineKind int

const (
	lineBody         lineKind = iota // Body line (or any line after the header).
	lineBlank                        // Empty line: in the header, its end.
	lineField                        // Header line that starts a field.
	lineContinuation                 // Header line that continues a field.
	lineStatus                       // Header line that starts a status field.
)

// copyMessage copies the message from w.src, writing status before the first
// header line that starts a field (or at the end of the header). It returns
// a read error from the source; write errors are left in w.bw.
func (w *Writer) copyMessage(status []byte) error {
	inHeader := true
	skipping := false // In a status field of the message, being dropped.
	statusDone := false
	writeStatus := func() {
		if !statusDone {
			w.bw.Write(status)
			statusDone = true
		}
	}
	for {
		// A line starts here.
		kind, err := w.classify(inHeader)
		if err != nil && err != io.EOF {
			if inHeader {
				writeStatus()
			}
			return err
		}
		if err == io.EOF && kind == lineBlank {
			// No bytes left: the message ended with a newline, or is empty.
			if inHeader {
				writeStatus()
			}
			return nil
		}
		if inHeader {
			switch kind {
			case lineContinuation:
			case lineStatus:
				writeStatus()
				skipping = true
			case lineBlank:
				writeStatus()
				inHeader = false
				skipping = false
			default:
				writeStatus()
				skipping = false
			}
		}
		blank, last, err := w.copyLine(skipping && inHeader)
		if err != nil {
			if !last {
				w.bw.WriteByte('\n')
			}
			if inHeader {
				writeStatus()
			}
			return err
		}
		if inHeader && blank {
			// A line of CRs too long for classify to see its end.
			inHeader = false
		}
		if last {
			// The message ended without a newline; one was written.
			if inHeader {
				writeStatus()
			}
			return nil
		}
	}
}

// classify looks at the start of the next line. It returns lineBlank with
// io.EOF when the source has no bytes left. An empty line is a line with
// nothing but CR characters before LF or the end of the message.
func (w *Writer) classify(inHeader bool) (lineKind, error) {
	// Peek grows to what is needed; the common case decides on a few bytes.
	want := 64
	for {
		head, err := w.src.Peek(want)
		full := len(head) == want
		if len(head) == 0 {
			if err != nil && err != io.EOF {
				return lineBody, fmt.Errorf("read message: %w", err)
			}
			return lineBlank, io.EOF
		}
		// On a read error, head is all there is; copyLine reports the error.
		kind, decided := classifyHead(head, inHeader, !full)
		if decided {
			return kind, nil
		}
		if want >= maxStatusName {
			// A header line without ':' or end in the first 64 KiB.
			return lineField, nil
		}
		want = min(want*4, maxStatusName)
	}
}

// classifyHead decides what a line is from its first bytes. complete says
// head holds everything left in the message.
func classifyHead(head []byte, inHeader, complete bool) (lineKind, bool) {
	eol := bytes.IndexByte(head, '\n')
	line := head
	if eol >= 0 {
		line = head[:eol]
	}
	lineDone := eol >= 0 || complete
	// Blank: only CRs up to the end of the line.
	if len(bytes.TrimLeft(line, "\r")) == 0 {
		if lineDone {
			return lineBlank, true
		}
		if len(line) > 0 {
			// A run of CRs not yet ended: blank or not, it is decided later.
			return lineBody, false
		}
	}
	if !inHeader {
		return lineBody, true
	}
	if line[0] == ' ' || line[0] == '\t' {
		return lineContinuation, true
	}
	name, _, ok := bytes.Cut(line, []byte(":"))
	if !ok {
		if lineDone {
			return lineField, true
		}
		return lineField, false
	}
	if isStatusField(string(bytes.TrimRight(name, " \t"))) {
		return lineStatus, true
	}
	return lineField, true
}

// copyLine copies one line, quoting it when it looks like a From_ line,
// removing CRs before its end and writing LF at its end. With skip it reads
// the line without writing it. blank reports that the line had nothing but
// CRs; last that the message ended without a newline (one was written unless
// skipping); err is a read error.
func (w *Writer) copyLine(skip bool) (blank, last bool, err error) {
	if !skip {
		if err := w.quote(); err != nil {
			return false, false, err
		}
	}
	blank = true
	pendingCR := 0 // CRs read but not written: they may end the line.
	for {
		chunk, err := w.src.ReadSlice('\n')
		readErr := err != nil && err != io.EOF && err != bufio.ErrBufferFull
		end := err == nil || err == io.EOF
		body := chunk
		if err == nil {
			body = chunk[:len(chunk)-1]
		}
		if len(body) > 0 {
			trimmed := bytes.TrimRight(body, "\r")
			if len(trimmed) > 0 {
				blank = false
			}
			if !skip && len(trimmed) > 0 {
				for ; pendingCR > 0; pendingCR-- {
					w.bw.WriteByte('\r')
				}
				w.bw.Write(trimmed)
			}
			pendingCR += len(body) - len(trimmed)
		}
		if readErr {
			// What was read is written; the caller ends the line.
			return blank, false, fmt.Errorf("read message: %w", err)
		}
		if end {
			if !skip {
				w.bw.WriteByte('\n')
			}
			return blank, err == io.EOF, nil
		}
	}
}

// quote writes the extra '>' when the line at w.src is '>'* "From ". A run
// of '>' longer than the read buffer is written out as it is read; one more
// '>' in such a run is the same quoting wherever it goes.
func (w *Writer) quote() error {
	want := 64
	for {
		head, err := w.src.Peek(want)
		if err != nil && err != io.EOF && len(head) == 0 {
			return fmt.Errorf("read message: %w", err)
		}
		// On a read error, head is all there is; copyLine reports the error.
		n := 0
		for n < len(head) && head[n] == '>' {
			n++
		}
		rest := head[n:]
		if len(rest) >= len("From ") || len(head) < want {
			// Decided, or head is all that is left of the message.
			if bytes.HasPrefix(rest, []byte("From ")) {
				w.bw.WriteByte('>')
			}
			return nil
		}
		if want < w.src.Size() {
			want = min(want*4, w.src.Size())
			continue
		}
		// The buffer is '>' but for a few bytes: move the run out.
		w.bw.Write(head[:n])
		w.src.Discard(n)
		want = 64
	}
}

// MaildirInfo returns the info part of a maildir file name for flags and
// Dovecot keyword letters, ":2," and the letters in ASCII order as the
// maildir convention asks (https://cr.yp.to/proto/maildir.html): D (draft),
// F (flagged), R (replied), S (seen), T (trashed), then keyword letters a..z
// once each. Letters outside a..z are left out. ParseMaildirInfo reads it
// back.
func MaildirInfo(flags Flags, keywordLetters []byte) string {
	b := []byte(":2,")
	for _, f := range []struct {
		set    bool
		letter byte
	}{
		{flags.Draft, 'D'},
		{flags.Flagged, 'F'},
		{flags.Answered, 'R'},
		{flags.Seen, 'S'},
		{flags.Deleted, 'T'},
	} {
		if f.set {
			b = append(b, f.letter)
		}
	}
	var kw []byte
	for _, c := range keywordLetters {
		if c >= 'a' && c <= 'z' {
			kw = append(kw, c)
		}
	}
	slices.Sort(kw)
	kw = slices.Compact(kw)
	return string(append(b, kw...))
}

// stickyReader returns the first error of r on every later Read, so that an
// error seen while looking ahead at a line start (bufio.Reader hands it out
// once) is still there when the line is copied.
type stickyReader struct {
	r   io.Reader
	err error
}

func (s *stickyReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.r.Read(p)
	s.err = err
	return n, err
}
