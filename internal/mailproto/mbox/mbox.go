// Package mbox reads mbox files and maildir metadata for "moxctl import", and
// writes mbox files for exports; moxd-store runs both. It is pure protocol
// code: it takes an io.Reader (moxctl hands the import process an open file
// descriptor) and returns messages ready to be stored, with the flags and
// keywords that mail clients kept in the file, and its Writer turns stored
// messages back into an mbox stream that the Reader reads losslessly. It knows
// nothing of accounts, mailboxes or processes; the role that imports or
// exports wires it to storage.
//
// The package is ours rather than a library because the standard library has no
// mbox reader, and moxd needs properties the usual readers lack: memory bounded
// by the message size limit, and a byte offset and reason for every message that
// cannot be imported, so a damaged file imports everything that is readable.
//
// # Message boundaries
//
// There is no standard for mbox; RFC 4155 describes the common form. moxd uses
// the rule most readers use: a message starts at a line beginning with "From "
// (the From_ line) that is at the start of the file or follows an empty line. A
// "From " line directly after a non-empty line is message content, not a
// separator. Before the first From_ line any "From " line starts a message, and
// bytes before it are reported as a Problem. The empty line before a From_ line
// (and at the end of the file) belongs to the separator, not to the message.
//
// # Quoting
//
// Writers quote body lines that would look like a From_ line. In the mboxo form
// "From " becomes ">From "; in the mboxrd form any ">*From " gains one more
// '>'. moxd removes one '>' from every line matching ">+From ", which is exact
// for mboxrd. For mboxo it is the best possible reading: a line that really was
// ">From " in the original message cannot be told apart from a quoted one.
// The Writer writes mboxrd.
//
// # Status headers
//
// Mail clients keep flags in header fields of the message itself. The letters
// follow the convention documented for Dovecot's mbox format (doc.dovecot.org,
// "Mbox Mailbox Format", section "Dovecot's Metadata"), which mutt and Python's
// mailbox module write the same way:
//
//	Status:   R = \Seen, O = old (seen by a client; moxd ignores it)
//	X-Status: A = \Answered, F = \Flagged, T = \Draft, D = \Deleted
//
// Letters are accepted in either field, since some writers put everything in
// Status. X-Keywords holds keywords separated by spaces or commas. Thunderbird
// keeps its own X-Mozilla-Status field, four hex digits of message flags; moxd
// reads bit 0x0001 (read) as \Seen, 0x0002 (replied) as \Answered, 0x0004
// (marked) as \Flagged and 0x0008 (expunged) as \Deleted. The fields Status,
// X-Status, X-Keywords, X-UID, X-Mozilla-Status* and X-IMAP* are removed from
// the stored message: they describe one client's mailbox state, and left in
// place they would contradict the flags moxd keeps.
package mbox

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Flags are the IMAP system flags an import can carry over (RFC 9051 §2.3.2).
type Flags struct {
	Seen, Answered, Flagged, Deleted, Draft bool
}

// Message is one message read from an mbox file.
type Message struct {
	// Offset is the byte offset of the message's From_ line in the file.
	Offset int64
	// Envelope is the sender on the From_ line, usually the SMTP MAIL FROM
	// address, "MAILER-DAEMON" for a null sender.
	Envelope string
	// Date is the time on the From_ line, the delivery time, meant as the
	// received time of the imported message. Zero if it cannot be parsed.
	Date time.Time
	// Data is the message with the From_ line removed, one '>' removed from
	// lines matching ">+From ", line endings as CRLF and the mbox status
	// header fields removed. A header section that is not ended by an empty
	// line gets one, so the stored message always has a complete header.
	Data []byte
	// Flags from the Status, X-Status and X-Mozilla-Status fields.
	Flags Flags
	// Keywords from X-Keywords that are valid IMAP atoms, without duplicates
	// (compared case-insensitively, RFC 9051 §2.3.2).
	Keywords []string
}

// Problem is a message that was skipped or damaged, a dropped keyword, or
// unusable bytes in the input.
type Problem struct {
	// Offset is the byte offset in the file: the From_ line of the message
	// concerned, or the start of the unusable bytes.
	Offset int64
	Reason string
}

func (p Problem) String() string {
	return fmt.Sprintf("offset %d: %s", p.Offset, p.Reason)
}

// readBufSize is the size of the bufio buffer the Reader reads through.
const readBufSize = 64 * 1024

// Reader reads messages from an mbox file one at a time. Memory use is bounded
// by the maxMessage limit given to NewReader (a few times it, for the current
// line, header field and message, plus a fixed read buffer), whatever the size
// or shape of the input.
type Reader struct {
	br         *bufio.Reader
	maxMessage int64
	pos        int64 // Offset of the next byte to be read from br.

	line      []byte // Current line without its line ending, at most lineCap bytes.
	lineLong  bool   // Current line was longer than lineCap; line holds its start.
	lineNL    bool   // Current line ended with a newline.
	lineStart int64  // Offset of the current line.

	// fromLine holds the From_ line that starts the next message, once it
	// has been read as the separator after the previous message.
	haveFrom   bool
	fromOffset int64
	fromText   string

	buf      []byte // Reused buffer the current message is assembled in.
	started  bool   // Past the bytes before the first From_ line.
	err      error
	problems []Problem
}

// NewReader returns a Reader for the mbox file in r. Messages whose data would
// be larger than maxMessage bytes are skipped and reported as a Problem. A
// maxMessage <= 0 means 100 MiB.
func NewReader(r io.Reader, maxMessage int64) *Reader {
	if maxMessage <= 0 {
		maxMessage = 100 * 1024 * 1024
	}
	return &Reader{
		br:         bufio.NewReaderSize(r, readBufSize),
		maxMessage: maxMessage,
	}
}

// Problems returns the problems found so far: skipped messages, damaged
// messages that were still returned, dropped keywords and unusable bytes.
// Problems are in file order.
func (r *Reader) Problems() []Problem {
	return r.problems
}

func (r *Reader) problem(offset int64, format string, args ...any) {
	r.problems = append(r.problems, Problem{offset, fmt.Sprintf(format, args...)})
}

// lineCap is how much of a single line is kept in memory. A longer line makes
// its message too large anyway; only its start is needed to recognise it.
func (r *Reader) lineCap() int64 {
	return r.maxMessage + 8
}

// readLine reads the next line into r.line. It returns io.EOF when no bytes
// are left, or a read error.
func (r *Reader) readLine() error {
	r.line = r.line[:0]
	r.lineLong = false
	r.lineNL = false
	r.lineStart = r.pos
	limit := r.lineCap()
	for {
		chunk, err := r.br.ReadSlice('\n')
		r.pos += int64(len(chunk))
		if int64(len(r.line)+len(chunk)) <= limit {
			r.line = append(r.line, chunk...)
		} else {
			if n := limit - int64(len(r.line)); n > 0 {
				r.line = append(r.line, chunk[:n]...)
			}
			r.lineLong = true
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == nil {
			r.lineNL = true
			if !r.lineLong {
				r.line = r.line[:len(r.line)-1]
				if n := len(r.line); n > 0 && r.line[n-1] == '\r' {
					r.line = r.line[:n-1]
				}
			}
			return nil
		}
		if err == io.EOF && r.pos > r.lineStart {
			return nil
		}
		if err != io.EOF {
			return fmt.Errorf("read mbox at offset %d: %w", r.pos, err)
		}
		return err
	}
}

func isFromLine(line []byte) bool {
	return bytes.HasPrefix(line, []byte("From "))
}

// Next returns the next message. It returns io.EOF after the last message, or
// an error if reading from the underlying reader failed. Messages that cannot
// be imported are skipped and reported through Problems.
func (r *Reader) Next() (*Message, error) {
	if r.err != nil {
		return nil, r.err
	}
	if !r.started {
		if err := r.findFirst(); err != nil {
			r.err = err
			return nil, err
		}
	}
	for r.haveFrom {
		m, err := r.readMessage()
		if err != nil {
			r.err = err
			return nil, err
		}
		if m != nil {
			return m, nil
		}
	}
	r.err = io.EOF
	return nil, io.EOF
}

// findFirst skips bytes up to the first From_ line.
func (r *Reader) findFirst() error {
	r.started = true
	var skipped int64
	garbage := false
	for {
		err := r.readLine()
		if err == io.EOF {
			break
		} else if err != nil {
			return err
		}
		if isFromLine(r.line) {
			r.setFrom()
			break
		}
		skipped += r.pos - r.lineStart
		if len(bytes.TrimSpace(r.line)) > 0 {
			garbage = true
		}
	}
	if garbage {
		r.problem(0, "%d bytes before the first \"From \" line skipped: not an mbox message", skipped)
	}
	return nil
}

func (r *Reader) setFrom() {
	r.haveFrom = true
	r.fromOffset = r.lineStart
	r.fromText = string(r.line)
	if r.lineLong {
		// An absurdly long From_ line: keep enough to parse, the rest is noise.
		r.fromText = r.fromText[:min(len(r.fromText), 1024)]
	}
}

// header fields holding one client's mailbox state, removed on import.
func isStatusField(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "status", "x-status", "x-keywords", "x-uid":
		return true
	}
	return strings.HasPrefix(n, "x-mozilla-status") || strings.HasPrefix(n, "x-imap")
}

// msgState is where in a message the reader is.
type msgState int

const (
	inHeader msgState = iota
	inBody
)

// readMessage reads the message whose From_ line is in r.from*. It returns nil
// without error for a message that was skipped.
func (r *Reader) readMessage() (*Message, error) {
	m := &Message{Offset: r.fromOffset}
	m.Envelope, m.Date = parseFromLine(r.fromText)
	r.haveFrom = false

	var (
		data         = r.buf[:0]
		field        []byte // Current header field with continuation lines, CRLF-terminated.
		state        = inHeader
		prevBlank    bool // Previous line was empty.
		pendingBlank bool // An empty line in the body, not yet known to be content.
		tooLarge     bool
		truncated    bool
		end          int64 // Offset just past the message.
	)
	keywordsSeen := map[string]bool{}
	// add appends b to the message, or marks it too large.
	add := func(b ...[]byte) {
		if tooLarge {
			return
		}
		n := int64(len(data) + len(field))
		for _, x := range b {
			n += int64(len(x))
		}
		if n > r.maxMessage {
			tooLarge = true
			data, field = data[:0], field[:0]
			return
		}
		for _, x := range b {
			data = append(data, x...)
		}
	}
	flushField := func() {
		if len(field) == 0 {
			return
		}
		f := field
		field = field[:0]
		name, value, ok := bytes.Cut(f, []byte(":"))
		if ok && isStatusField(string(bytes.TrimRight(name, " \t"))) {
			r.statusField(m, strings.ToLower(string(bytes.TrimRight(name, " \t"))), unfold(value), keywordsSeen)
			return
		}
		add(f)
	}
	crlf := []byte("\r\n")

	for {
		err := r.readLine()
		if err == io.EOF {
			end = r.pos
			break
		} else if err != nil {
			return nil, err
		}
		if prevBlank && isFromLine(r.line) {
			// The empty line before this one was the separator.
			end = r.lineStart
			r.setFrom()
			break
		}
		if !r.lineNL {
			truncated = true
		}
		if r.lineLong {
			tooLarge = true
			data, field = data[:0], field[:0]
		}
		line := r.line
		if len(line) > 1 && line[0] == '>' {
			// mboxrd and mboxo quoting: ">+From " loses one '>'.
			t := bytes.TrimLeft(line, ">")
			if isFromLine(t) {
				line = line[1:]
			}
		}
		blank := len(r.line) == 0
		switch state {
		case inHeader:
			switch {
			case blank:
				// RFC 5322 §2.1: an empty line ends the header section.
				flushField()
				add(crlf)
				state = inBody
			case line[0] == ' ' || line[0] == '\t':
				// RFC 5322 §2.2.3: folded field body continues the field.
				if !tooLarge {
					field = append(field, line...)
					field = append(field, crlf...)
					add() // Check the size.
				}
			default:
				flushField()
				if !tooLarge {
					field = append(field, line...)
					field = append(field, crlf...)
					add()
				}
			}
		case inBody:
			if pendingBlank {
				add(crlf)
				pendingBlank = false
			}
			if blank {
				pendingBlank = true
			} else {
				add(line, crlf)
			}
		}
		prevBlank = blank
	}

	r.buf = data[:0]
	size := end - m.Offset
	if tooLarge {
		r.problem(m.Offset, "message skipped: %d bytes in the mbox, over the limit of %d bytes", size, r.maxMessage)
		return nil, nil
	}
	if state == inHeader {
		flushField()
		if len(data) == 0 {
			r.problem(m.Offset, "message skipped: nothing after the \"From \" line")
			return nil, nil
		}
		add(crlf)
		if tooLarge {
			r.problem(m.Offset, "message skipped: %d bytes in the mbox, over the limit of %d bytes", size, r.maxMessage)
			return nil, nil
		}
	}
	if truncated {
		where := "body"
		if state == inHeader {
			where = "header"
		}
		r.problem(m.Offset, "message truncated in its %s: the file ends without a newline; imported as far as it goes", where)
	}
	// Assembled in a reused buffer, copied out once at its final size.
	m.Data = bytes.Clone(data)
	return m, nil
}

// unfold joins the lines of a folded field value (RFC 5322 §2.2.3) and trims
// surrounding whitespace.
func unfold(value []byte) string {
	s := strings.ReplaceAll(string(value), "\r\n", "")
	return strings.TrimSpace(s)
}

// statusField applies one mbox status field to m. The letter meanings are in
// the package comment.
func (r *Reader) statusField(m *Message, name, value string, seen map[string]bool) {
	switch {
	case name == "status" || name == "x-status":
		for _, c := range value {
			switch c {
			case 'R':
				m.Flags.Seen = true
			case 'A':
				m.Flags.Answered = true
			case 'F':
				m.Flags.Flagged = true
			case 'T':
				m.Flags.Draft = true
			case 'D':
				m.Flags.Deleted = true
			}
			// 'O' (old) and anything else carry nothing moxd keeps.
		}
	case name == "x-mozilla-status":
		v, err := strconv.ParseUint(value, 16, 32)
		if err != nil {
			r.problem(m.Offset, "X-Mozilla-Status %q is not hexadecimal, ignored", value)
			return
		}
		m.Flags.Seen = m.Flags.Seen || v&0x0001 != 0
		m.Flags.Answered = m.Flags.Answered || v&0x0002 != 0
		m.Flags.Flagged = m.Flags.Flagged || v&0x0004 != 0
		m.Flags.Deleted = m.Flags.Deleted || v&0x0008 != 0
	case name == "x-keywords":
		for _, kw := range strings.FieldsFunc(value, func(c rune) bool { return c == ',' || c == ' ' || c == '\t' }) {
			if !IsAtom(kw) {
				r.problem(m.Offset, "keyword %q dropped: not an IMAP atom", kw)
				continue
			}
			k := strings.ToLower(kw)
			if seen[k] {
				continue
			}
			seen[k] = true
			m.Keywords = append(m.Keywords, kw)
		}
	}
	// X-UID, X-IMAP, X-IMAPbase and X-Mozilla-Status2 are dropped unread: UIDs
	// are assigned by moxd, and Status2 holds nothing that maps to a flag.
}

// IsAtom reports whether s is an IMAP atom, the form a keyword must have (RFC
// 9051 §9: flag-keyword = atom; atom = 1*ATOM-CHAR).
func IsAtom(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		// RFC 9051 §9: ATOM-CHAR is any CHAR except atom-specials: "(" ")"
		// "{" SP CTL "%" "*" DQUOTE "\" "]". CHAR is 7-bit, CTL is 0-31 and DEL.
		if c <= ' ' || c >= 0x7f {
			return false
		}
		switch c {
		case '(', ')', '{', '%', '*', '"', '\\', ']':
			return false
		}
	}
	return true
}

// fromDateLayouts are the date forms found on From_ lines after whitespace is
// collapsed: the asctime form (RFC 4155 §2), with and without a zone.
var fromDateLayouts = [...]string{
	"Mon Jan 2 15:04:05 2006",
	"Mon Jan 2 15:04:05 2006 -0700",
	"Mon Jan 2 15:04:05 -0700 2006",
	"Mon Jan 2 15:04:05 MST 2006",
	"Mon Jan 2 15:04 2006",
}

// parseFromLine returns the sender and date of a From_ line. RFC 4155 §2:
// "From ", the envelope sender, a space, and a timestamp in asctime form.
func parseFromLine(line string) (string, time.Time) {
	rest := strings.TrimPrefix(line, "From ")
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return "", time.Time{}
	}
	sender := fields[0]
	date := strings.Join(fields[1:], " ")
	for _, layout := range fromDateLayouts {
		if t, err := time.Parse(layout, date); err == nil {
			return sender, t
		}
	}
	return sender, time.Time{}
}
