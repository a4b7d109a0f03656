package smtp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// The message of a transaction: DATA (RFC 5321 §4.1.1.4, dot-stuffing
// §4.5.2) and BDAT (RFC 3030).
//
// The end of DATA is CRLF "." CRLF and nothing else. A CR or LF that is not
// part of a CRLF pair anywhere in the message makes the message refused
// (after its real end), and a bare LF never starts a line: "\n.\n",
// "\n.\r\n", "\r\n.\n" and "\r.\r" are data, never an end of data. Servers
// that accept such sequences as line endings let a sender hide a second
// message inside the first one and have it relayed with the first one's
// authentication ("SMTP smuggling").

// bodyReader is the reader a Session gets in Data, for DATA or BDAT.
type bodyReader interface {
	io.Reader
	// finish reads and discards what the Session left unread of the
	// message. An error ends the session.
	finish() error
	// complete reports whether the whole message was read.
	complete() bool
	// violation is ErrBareLineEnding or ErrTooLarge when the message
	// broke that rule.
	violation() error
	// interrupted returns the error to send instead of a Data reply when
	// a BDAT sequence was ended by another command (stored in
	// conn.pending), with ok true; ok false otherwise.
	interrupted() (reply error, ok bool)
}

// drainExtra is how many octets beyond the size limit are read and
// discarded before the session is closed instead: a client sending far
// more than the limit does not keep the server reading.
const drainExtra = 1 << 20

// refreshReadDeadline moves the read deadline CommandTimeout ahead, at most
// once a second, and reports a cancelled session.
func (c *conn) refreshReadDeadline() error {
	now := time.Now()
	if now.Sub(c.lastReadDeadline) < time.Second {
		return nil
	}
	c.lastReadDeadline = now
	if err := c.raw.SetReadDeadline(now.Add(c.cfg.CommandTimeout)); err != nil {
		return fmt.Errorf("set read deadline: %w", err)
	}
	// After setting the deadline, as in readCommand: a cancellation is
	// never lost.
	if err := c.ctx.Err(); err != nil {
		return c.shutdown(err)
	}
	return nil
}

// readFailure turns a read error in the middle of a message into the error
// that ends the session.
func (c *conn) readFailure(err error) error {
	switch {
	case c.ctx.Err() != nil:
		return c.shutdown(c.ctx.Err())
	case errors.Is(err, os.ErrDeadlineExceeded):
		return &closeError{
			reply: &Reply{Code: 421, Enhanced: "4.4.2", Lines: []string{c.cfg.Hostname + " timeout waiting for message data, closing connection"}},
			cause: fmt.Errorf("read message: %w", err),
		}
	case peerClosed(err):
		return fmt.Errorf("client closed connection during message: %w", io.EOF)
	}
	return fmt.Errorf("read message: %w", err)
}

// cmdDATA receives a message (RFC 5321 §4.1.1.4).
func (c *conn) cmdDATA(arg string) error {
	if arg != "" {
		return errorReply(501, "5.5.4", "DATA takes no arguments")
	}
	if err := c.writeReply(&Reply{Code: 354, Lines: []string{"send the message, end with <CR><LF>.<CR><LF>"}}); err != nil {
		return err
	}
	c.lastReadDeadline = time.Time{}
	return c.receive(&dotReader{c: c, br: c.br, lineStart: true, max: c.cfg.MaxMessageSize})
}

// receive hands the message to the Session and replies.
func (c *conn) receive(body bodyReader) error {
	err := c.sess.Data(c.ctx, &c.st, body)
	ferr := body.finish()
	c.endTransaction()
	if ferr != nil {
		return ferr
	}
	if reply, ok := body.interrupted(); ok {
		return reply
	}
	switch v := body.violation(); {
	case errors.Is(v, ErrBareLineEnding):
		return errorReply(554, "5.6.0", "message refused: it contains a CR or LF that is not part of CRLF; lines must end in CRLF")
	case errors.Is(v, ErrTooLarge):
		// RFC 1870 §6.3.
		return errorReply(552, "5.3.4", "message exceeds the size limit of "+strconv.FormatInt(c.cfg.MaxMessageSize, 10)+" bytes")
	}
	if err != nil {
		if r := successReply(err); r != nil {
			return c.writeReply(r)
		}
		return c.sessionError("data", err)
	}
	if !body.complete() {
		c.log.Error("smtp session returned from Data before the end of the message")
		return errorReply(451, "4.3.0", "local error, try again later")
	}
	return c.writeReply(errorReply(250, "2.0.0", "message accepted"))
}

// dotReader reads a DATA message: dot-unstuffed, up to CRLF.CRLF.
type dotReader struct {
	c  *conn
	br *bufio.Reader

	lineStart bool  // the next byte starts a line (after CRLF, or first)
	prevCR    bool  // the last byte of the previous piece was CR
	done      bool  // CRLF.CRLF seen
	n         int64 // octets of message content so far
	read      int64 // octets read from the connection
	max       int64
	viol      error  // ErrBareLineEnding or ErrTooLarge, sticky
	ioErr     error  // session-ending read failure, sticky
	out       []byte // content of the current piece not yet returned
}

// Read returns message content. It fills p with as many lines as have
// arrived, so the Session writes the message on in large pieces, not a
// line at a time; it only waits for the network when it has nothing.
func (r *dotReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.out) == 0 {
			if n > 0 && (r.br.Buffered() == 0 || r.viol != nil || r.ioErr != nil || r.done) {
				break
			}
			switch {
			case r.viol != nil:
				return 0, r.viol
			case r.ioErr != nil:
				return 0, r.ioErr
			case r.done:
				return 0, io.EOF
			}
			r.next(true)
			continue
		}
		k := copy(p[n:], r.out)
		r.out = r.out[k:]
		n += k
	}
	return n, nil
}

// next reads one piece (a line, or a buffer-full part of a long line) and
// sets out to its content when keep is set.
func (r *dotReader) next(keep bool) {
	if err := r.c.refreshReadDeadline(); err != nil {
		r.ioErr = err
		return
	}
	piece, err := r.br.ReadSlice('\n')
	r.read += int64(len(piece))
	if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
		r.ioErr = r.c.readFailure(err)
		return
	}
	whole := err == nil // the piece ends with LF
	data := piece
	if r.lineStart {
		// RFC 5321 §4.1.1.4: the end of data is "." alone on a line,
		// after a CRLF.
		if whole && len(data) == 3 && data[0] == '.' && data[1] == '\r' {
			r.done = true
			return
		}
		// RFC 5321 §4.5.2: a leading dot was added by the client.
		if len(data) > 0 && data[0] == '.' {
			data = data[1:]
		}
	}
	if r.viol == nil && bareLineEnding(data, r.prevCR, whole) {
		r.viol = ErrBareLineEnding
	}
	endsCRLF := whole && (len(data) >= 2 && data[len(data)-2] == '\r' || len(data) == 1 && r.prevCR)
	r.lineStart = endsCRLF
	r.prevCR = len(data) > 0 && data[len(data)-1] == '\r'
	r.n += int64(len(data))
	if r.viol == nil && r.n > r.max {
		r.viol = ErrTooLarge
	}
	if keep && r.viol == nil {
		r.out = data
	}
}

// bareLineEnding reports whether data holds a CR or LF outside a CRLF pair.
// prevCR says the byte before data was CR; whole says data ends the line
// (with LF), so a CR at its end cannot be followed by LF in the next piece.
func bareLineEnding(data []byte, prevCR, whole bool) bool {
	if prevCR && (len(data) == 0 || data[0] != '\n') {
		return true
	}
	for i, b := range data {
		switch b {
		case '\n':
			if i == 0 && !prevCR || i > 0 && data[i-1] != '\r' {
				return true
			}
		case '\r':
			if i+1 < len(data) && data[i+1] != '\n' {
				return true
			}
		}
	}
	return false
}

func (r *dotReader) finish() error {
	r.out = nil
	for !r.done && r.ioErr == nil {
		if r.read > r.max+drainExtra {
			return &closeError{
				reply: errorReply(552, "5.3.4", "message exceeds the size limit of "+strconv.FormatInt(r.max, 10)+" bytes; closing connection"),
				cause: fmt.Errorf("client sent more than %d bytes of message data", r.max+drainExtra),
			}
		}
		r.next(false)
	}
	return r.ioErr
}

func (r *dotReader) complete() bool             { return r.done && r.viol == nil }
func (r *dotReader) violation() error           { return r.viol }
func (r *dotReader) interrupted() (error, bool) { return nil, false }

// parseBDAT parses "BDAT chunk-size [LAST]" (RFC 3030 §2).
func parseBDAT(arg string) (size int64, last bool, err error) {
	f := strings.Split(arg, " ")
	if len(f) == 0 || len(f) > 2 || f[0] == "" || len(f[0]) > 18 {
		return 0, false, errors.New("expected BDAT chunk-size [LAST]")
	}
	for _, ch := range f[0] {
		if ch < '0' || ch > '9' {
			return 0, false, errors.New("chunk size must be digits")
		}
	}
	size, err = strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return 0, false, errors.New("chunk size out of range")
	}
	if len(f) == 2 {
		if !strings.EqualFold(f[1], "LAST") {
			return 0, false, errors.New("expected LAST after the chunk size")
		}
		last = true
	}
	return size, last, nil
}

// cmdBDAT receives a message in chunks (RFC 3030).
func (c *conn) cmdBDAT(arg string) error {
	size, last, err := parseBDAT(arg)
	if err != nil {
		// Without the chunk size the data that follows cannot be told
		// from commands: the session ends.
		return &closeError{
			reply: errorReply(501, "5.5.4", "syntax error in BDAT ("+err.Error()+"); closing connection"),
			cause: fmt.Errorf("BDAT syntax: %w", err),
		}
	}
	if c.state != stateRcpt {
		// RFC 3030 §2: the chunk is read and discarded even when the
		// command is refused, so it is not taken for commands; a chunk
		// larger than any message would be is not worth reading.
		if size > c.cfg.MaxMessageSize+drainExtra {
			return &closeError{
				reply: errorReply(552, "5.3.4", "BDAT chunk larger than the message size limit; closing connection"),
				cause: fmt.Errorf("BDAT chunk of %d bytes outside a transaction", size),
			}
		}
		c.lastReadDeadline = time.Time{}
		if err := c.discard(size); err != nil {
			return err
		}
		return c.sequenceError("BDAT")
	}
	c.st.Chunking = true
	c.lastReadDeadline = time.Time{}
	return c.receive(&chunkReader{c: c, remaining: size, last: last, chunkSize: size, max: c.cfg.MaxMessageSize})
}

// discard reads and drops n octets of chunk data.
func (c *conn) discard(n int64) error {
	for n > 0 {
		if err := c.refreshReadDeadline(); err != nil {
			return err
		}
		k := min(int64(c.br.Size()), n)
		m, err := c.br.Discard(int(k))
		n -= int64(m)
		if err != nil {
			return c.readFailure(err)
		}
	}
	return nil
}

// chunkReader reads a BDAT message: the current chunk, then (when it was not
// LAST) the next BDAT command and its chunk, and so on.
type chunkReader struct {
	c         *conn
	remaining int64 // octets left in the current chunk
	last      bool  // the current chunk is the last
	chunkSize int64 // size of the current chunk, for its reply
	n         int64
	max       int64
	prevCR    bool
	done      bool
	viol      error
	ioErr     error
	// intr is set when a command other than BDAT ended the sequence: the
	// command is in conn.pending, or intrReply is the error reply for a
	// line that could not be read as a command.
	intr      bool
	intrReply error
}

// errChunkingInterrupted is what the Session's Read returns when the client
// sent another command instead of the next BDAT.
var errChunkingInterrupted = errors.New("BDAT sequence ended by another command")

func (r *chunkReader) Read(p []byte) (int, error) {
	for {
		switch {
		case r.viol != nil:
			return 0, r.viol
		case r.ioErr != nil:
			return 0, r.ioErr
		case r.intr:
			return 0, errChunkingInterrupted
		case r.done:
			return 0, io.EOF
		}
		if r.remaining > 0 {
			break
		}
		if r.last {
			r.done = true
			if r.prevCR {
				r.viol = ErrBareLineEnding
			}
			continue
		}
		r.nextChunk()
	}
	if err := r.c.refreshReadDeadline(); err != nil {
		r.ioErr = err
		return 0, err
	}
	k := min(int64(len(p)), r.remaining)
	n, err := r.c.br.Read(p[:k])
	r.remaining -= int64(n)
	r.n += int64(n)
	if err != nil {
		r.ioErr = r.c.readFailure(err)
	}
	if r.viol == nil && bareLineEnding(p[:n], r.prevCR, false) {
		r.viol = ErrBareLineEnding
	}
	if n > 0 {
		r.prevCR = p[n-1] == '\r'
	}
	if r.viol == nil && r.n > r.max {
		r.viol = ErrTooLarge
	}
	if r.viol != nil {
		return 0, r.viol
	}
	return n, nil
}

// nextChunk acknowledges the chunk just read and reads the next command,
// which continues the message if it is a BDAT.
func (r *chunkReader) nextChunk() {
	c := r.c
	// RFC 3030 §2: every non-last chunk gets its own reply.
	if err := c.writeReply(errorReply(250, "2.0.0", strconv.FormatInt(r.chunkSize, 10)+" octets received")); err != nil {
		r.ioErr = err
		return
	}
	line, err := c.readCommand()
	if err != nil {
		var reply *Reply
		if errors.As(err, &reply) {
			r.intr, r.intrReply = true, reply
			return
		}
		r.ioErr = err
		return
	}
	verb, arg, _ := strings.Cut(line, " ")
	if !strings.EqualFold(verb, "BDAT") {
		c.pending, c.hasPending = line, true
		r.intr = true
		return
	}
	size, last, err := parseBDAT(arg)
	if err != nil {
		r.ioErr = &closeError{
			reply: errorReply(501, "5.5.4", "syntax error in BDAT ("+err.Error()+"); closing connection"),
			cause: fmt.Errorf("BDAT syntax: %w", err),
		}
		return
	}
	c.lastReadDeadline = time.Time{}
	r.remaining, r.last, r.chunkSize = size, last, size
}

func (r *chunkReader) finish() error {
	if r.ioErr != nil {
		return r.ioErr
	}
	if r.intr {
		return nil
	}
	// The rest of the current chunk; chunks the client sends after this
	// reply are discarded by cmdBDAT outside a transaction.
	if r.n+r.remaining > r.max+drainExtra {
		return &closeError{
			reply: errorReply(552, "5.3.4", "message exceeds the size limit of "+strconv.FormatInt(r.max, 10)+" bytes; closing connection"),
			cause: fmt.Errorf("client sent a BDAT chunk beyond %d bytes", r.max+drainExtra),
		}
	}
	err := r.c.discard(r.remaining)
	r.remaining = 0
	return err
}

func (r *chunkReader) complete() bool   { return r.done && r.viol == nil }
func (r *chunkReader) violation() error { return r.viol }
func (r *chunkReader) interrupted() (error, bool) {
	if !r.intr {
		return nil, false
	}
	return r.intrReply, true
}
