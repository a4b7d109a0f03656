// Package smtp is moxd's SMTP server protocol engine (RFC 5321 and the
// extensions moxd announces). It runs inside moxd-smtp, both in the port-25
// (MX) instance and in the submission instance (587/465). It is pure
// protocol: it is given an accepted net.Conn, a TLS configuration, a logger
// and a Session (session.go) that decides about senders, recipients and
// where the message goes; it knows nothing about processes, IPC or config
// files; the smtpd role wires it to those.
//
// Commands: EHLO, HELO, MAIL, RCPT, DATA, BDAT, RSET, NOOP, QUIT, VRFY and
// EXPN (252), HELP, STARTTLS (RFC 3207), AUTH (RFC 4954, when the Session
// offers mechanisms). Extensions: PIPELINING (RFC 2920), SIZE (RFC 1870),
// 8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531), ENHANCEDSTATUSCODES (RFC 2034),
// CHUNKING (RFC 3030), REQUIRETLS (RFC 8689), LIMITS (RFC 9422), DSN (RFC
// 3461).
//
// moxd writes its own server rather than using a library server: the smtpd
// role needs control over every read (deadlines, sizes, pipelining checks
// around STARTTLS, the exact end-of-data rule that stops SMTP smuggling) and
// over where the body goes (a pipe to moxd-store, see DESIGN.md §4), which
// general-purpose server libraries hide behind their own session
// interfaces.
package smtp

// Implementation notes.
//
// One goroutine runs one session (Serve); nothing in a conn is shared with
// other goroutines except the raw net.Conn, whose read deadline a
// context.AfterFunc moves into the past when ctx is canceled, to interrupt a
// blocked read. The loop sets a fresh read deadline *before* checking ctx.Err,
// so a cancellation is never lost between the check and the read.
//
// Order per command: read one line under a deadline (readline.go), check the
// line's framing (length, bare CR/LF), split the verb, look it up in the
// command table (commands.go), check the verb is allowed in the current state,
// then run its handler. A handler writes its own success reply and returns
// either nil, a *Reply (an error reply the loop sends and counts), or a
// *closeError (a final reply after which the session ends). Only the loop
// writes error replies.
//
// The session state (connState) moves through: stateInit (greeting sent, no
// EHLO/HELO) -> stateReady (EHLO/HELO accepted) -> stateMail (MAIL accepted)
// -> stateRcpt (at least one RCPT accepted) -> back to stateReady after
// DATA/BDAT LAST, RSET or a failed transaction. EHLO/HELO and STARTTLS
// (RFC 3207 §4.2, back to stateInit) abort a transaction.
//
// Replies are written into a buffer that is flushed before every read that
// would block (flushReader), so pipelined commands (RFC 2920) get their
// replies in one write and a single command still gets its reply at once.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"syscall"
	"time"
)

// LevelTrace is the slog level of protocol transcripts: below debug, so a
// debug log does not contain every command line.
const LevelTrace = slog.LevelDebug - 4

// Defaults for zero Config fields.
const (
	// RFC 5321 §4.5.3.2.7: the server should wait at least 5 minutes for the
	// next command.
	DefaultCommandTimeout = 5 * time.Minute
	DefaultTLSTimeout     = 30 * time.Second
	DefaultMaxErrors      = 10
	// DefaultMaxMessageSize is the SIZE limit when Config leaves it 0.
	DefaultMaxMessageSize = 100 << 20
	// DefaultMaxRecipients is the RCPTMAX when Config leaves it 0. RFC 5321
	// §4.5.3.1.8: at least 100 must be accepted.
	DefaultMaxRecipients = 1000
)

// finalWriteTimeout bounds the write of the last reply when the session ends
// because of cancellation, a timeout or an internal error: a client that does
// not read must not hold the session open for a whole CommandTimeout.
const finalWriteTimeout = 5 * time.Second

// Config is the configuration of one SMTP session.
type Config struct {
	// Hostname is the server's name in the greeting and the EHLO reply.
	// Required.
	Hostname string
	// TLSConfig enables TLS. With ImplicitTLS false it is offered through
	// STARTTLS; nil means no TLS at all.
	TLSConfig *tls.Config
	// ImplicitTLS means the listener is implicit TLS (port 465, RFC 8314
	// §3.3): Serve does the TLS handshake before the greeting, and STARTTLS
	// is not offered. Requires TLSConfig.
	ImplicitTLS bool
	// Submission marks a submission instance (587/465) rather than an MX
	// (25): MAIL needs a successful AUTH first (RFC 4954 §6, RFC 6409 §4.3).
	Submission bool
	// Session decides about the mail transactions. Required.
	Session Session
	// MaxMessageSize is announced with SIZE and enforced on DATA and BDAT.
	// Zero means DefaultMaxMessageSize.
	MaxMessageSize int64
	// MaxRecipients is the most recipients per transaction, announced as
	// LIMITS RCPTMAX. Zero means DefaultMaxRecipients; less than 100 is
	// raised to 100 (RFC 5321 §4.5.3.1.8).
	MaxRecipients int
	// RequireTLS announces REQUIRETLS (RFC 8689) once TLS is active.
	RequireTLS bool
	// CommandTimeout bounds every read of a command line and every write of
	// a reply. Zero means DefaultCommandTimeout (5 minutes).
	CommandTimeout time.Duration
	// TLSTimeout bounds a TLS handshake. Zero means DefaultTLSTimeout.
	TLSTimeout time.Duration
	// MaxErrors is how many error replies a client may provoke before the
	// session ends with "421 4.7.0". Zero means DefaultMaxErrors.
	MaxErrors int
	// Log receives the session's log; nil discards it. Transcripts are logged
	// at LevelTrace.
	Log *slog.Logger
	// ConnID identifies the connection in logs.
	ConnID uint64
}

// connState is where a session is in the SMTP dialogue.
type connState uint8

const (
	// stateInit: greeting sent, no EHLO/HELO yet (also right after
	// STARTTLS).
	stateInit connState = iota
	// stateReady: EHLO or HELO accepted, no mail transaction.
	stateReady
	// stateMail: MAIL accepted, no recipient yet.
	stateMail
	// stateRcpt: at least one recipient accepted.
	stateRcpt
)

func (s connState) String() string {
	switch s {
	case stateInit:
		return "init"
	case stateReady:
		return "ready"
	case stateMail:
		return "mail"
	case stateRcpt:
		return "rcpt"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// stateSet is a set of connStates, used by the command table.
type stateSet uint32

func statesOf(states ...connState) stateSet {
	var s stateSet
	for _, st := range states {
		s |= 1 << st
	}
	return s
}

func (s stateSet) has(st connState) bool { return s&(1<<st) != 0 }

// conn is one SMTP session.
type conn struct {
	ctx context.Context
	cfg Config
	log *slog.Logger

	raw      net.Conn             // the accepted connection; deadlines are set here
	nc       net.Conn             // raw, or the *tls.Conn over it
	br       *bufio.Reader        // reads nc through flushReader; replaced after a TLS handshake
	bw       *bufio.Writer        // replies to nc; flushed before every blocking read
	tlsState *tls.ConnectionState // non-nil once TLS is up

	state     connState
	helloName string // the EHLO/HELO argument, empty in stateInit
	errCount  int    // error replies sent so far
	lines     int    // command lines read so far

	// lastReadDeadline is when the read deadline was last moved while
	// reading message data (refreshReadDeadline).
	lastReadDeadline time.Time

	st   State // what the Session sees
	sess Session
	// pending is a command line read while a BDAT sequence was expected,
	// to be dispatched after the transaction ended (data.go).
	pending    string
	hasPending bool
}

// flushReader is the reader under br: it flushes pending replies before it
// reads, so a reply is never held back while the server waits for input.
type flushReader struct{ c *conn }

func (f flushReader) Read(p []byte) (int, error) {
	if err := f.c.flush(); err != nil {
		return 0, err
	}
	return f.c.nc.Read(p)
}

// closeError ends the session after sending reply (if non-nil). cause is what
// Serve returns.
type closeError struct {
	reply *Reply
	cause error
}

func (e *closeError) Error() string { return e.cause.Error() }
func (e *closeError) Unwrap() error { return e.cause }

// errQuit is the cause of a session ended by QUIT; Serve returns nil for it.
var errQuit = errors.New("client sent QUIT")

// Serve runs one SMTP session on conn until QUIT, an I/O error, too many
// errors, a timeout, or cancellation of ctx (then it replies "421 4.3.2" and
// closes). It always closes conn before returning. It returns nil after QUIT,
// otherwise the reason the session ended: errors.Is(err, io.EOF) when the
// client closed without QUIT, os.ErrDeadlineExceeded on a timeout, ctx.Err()
// on cancellation. A panic inside the session is recovered, logged, answered
// with "421 4.3.0" and returned as an error.
func Serve(ctx context.Context, conn net.Conn, cfg Config) error {
	c := newConn(ctx, conn, cfg)
	defer func() {
		// Closing the TLS connection (when TLS is up) sends close_notify;
		// its failure, like any close error, changes nothing for the
		// session's outcome.
		if err := c.nc.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			c.log.Debug("smtp close connection", "err", err)
		}
	}()

	if cfg.Hostname == "" {
		return errors.New("smtp: Config.Hostname is empty; set the server's host name")
	}
	if cfg.ImplicitTLS && cfg.TLSConfig == nil {
		return errors.New("smtp: Config.ImplicitTLS is set without Config.TLSConfig; configure a certificate for the implicit TLS listener")
	}
	if cfg.Session == nil {
		return errors.New("smtp: Config.Session is nil")
	}
	defer c.abortTransaction()

	// Interrupt a blocked read when ctx is canceled. Only the read deadline
	// is moved: a timed-out write leaves a TLS connection unusable, and the
	// final 421 must still be written.
	interrupted := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		c.raw.SetReadDeadline(time.Unix(1, 0))
		close(interrupted)
	})
	defer func() {
		if !stop() && ctx.Err() != nil {
			<-interrupted
		}
	}()

	err := c.runRecover()
	var ce *closeError
	if errors.As(err, &ce) {
		if ce.reply != nil {
			c.writeFinal(ce.reply)
		}
		err = ce.cause
	}
	if errors.Is(err, errQuit) {
		c.log.Debug("smtp session ended by QUIT")
		return nil
	}
	c.log.Info("smtp session ended", "reason", err.Error())
	return err
}

// runRecover runs the session loop and turns a panic into the end of the
// session with a 421 reply: panics never leave this package.
func (c *conn) runRecover() (err error) {
	defer func() {
		if x := recover(); x != nil {
			c.log.Error("smtp session panic", "panic", x, "stack", string(debug.Stack()))
			err = &closeError{
				reply: &Reply{Code: 421, Enhanced: "4.3.0", Lines: []string{c.cfg.Hostname + " internal server error, closing connection"}},
				cause: fmt.Errorf("smtp session panic: %v", x),
			}
		}
	}()
	return c.run()
}

func newConn(ctx context.Context, nc net.Conn, cfg Config) *conn {
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = DefaultCommandTimeout
	}
	if cfg.TLSTimeout <= 0 {
		cfg.TLSTimeout = DefaultTLSTimeout
	}
	if cfg.MaxErrors <= 0 {
		cfg.MaxErrors = DefaultMaxErrors
	}
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = DefaultMaxMessageSize
	}
	if cfg.MaxRecipients <= 0 {
		cfg.MaxRecipients = DefaultMaxRecipients
	}
	cfg.MaxRecipients = max(cfg.MaxRecipients, 100)
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	remote := "unknown"
	if a := nc.RemoteAddr(); a != nil {
		remote = a.String()
	}
	log = log.With("conn", cfg.ConnID, "remote", remote)
	c := &conn{
		ctx:  ctx,
		cfg:  cfg,
		log:  log,
		raw:  nc,
		nc:   nc,
		sess: cfg.Session,
	}
	c.st.Remote = addrPort(nc.RemoteAddr())
	c.st.Local = addrPort(nc.LocalAddr())
	c.br = newLineReader(flushReader{c})
	c.bw = bufio.NewWriterSize(nc, 4096)
	return c
}

// run is the session loop. It returns the reason the session must end,
// usually a *closeError.
func (c *conn) run() error {
	if c.cfg.ImplicitTLS {
		// RFC 8314 §3.3: on an implicit TLS port the handshake comes first.
		if err := c.handshake(); err != nil {
			return err
		}
	}
	c.log.Debug("smtp session start", "implicittls", c.cfg.ImplicitTLS, "submission", c.cfg.Submission)

	// RFC 5321 §4.2, §4.3.1: the greeting is a 220 reply starting with our
	// domain. RFC 2034 §3: the greeting carries no enhanced status code.
	greeting := c.cfg.Hostname + " ESMTP moxd"
	if c.cfg.Submission {
		greeting += " mail submission"
	}
	if err := c.writeReply(&Reply{Code: 220, Lines: []string{greeting}}); err != nil {
		return err
	}

	for {
		var line string
		if c.hasPending {
			line, c.hasPending = c.pending, false
		} else {
			l, err := c.readCommand()
			if err != nil {
				if err := c.replyError(err); err != nil {
					return err
				}
				continue
			}
			line = l
		}
		if err := c.dispatch(line); err != nil {
			if err := c.replyError(err); err != nil {
				return err
			}
		}
	}
}

// replyError sends the reply a handler returned instead of nil: a *Reply
// (2xx as success, 421 ending the session, others counted as errors), or
// for any other error a 451 when the session can go on. Errors that end
// the session (*closeError, I/O errors) are returned.
func (c *conn) replyError(err error) error {
	var ce *closeError
	if errors.As(err, &ce) {
		return err
	}
	var r *Reply
	if !errors.As(err, &r) {
		return err
	}
	switch {
	case r.Code < 400:
		return c.writeReply(r)
	case r.Code == 421:
		return &closeError{reply: r, cause: fmt.Errorf("session ended with %s", r.Error())}
	}
	return c.writeError(r)
}

// sessionError turns an error a Session method returned into the error a
// handler returns: a *Reply as is, anything else logged and answered "451
// 4.3.0" (the session goes on).
func (c *conn) sessionError(op string, err error) error {
	var r *Reply
	if errors.As(err, &r) {
		return r
	}
	var ce *closeError
	if errors.As(err, &ce) {
		return err
	}
	c.log.Error("smtp session "+op+" failed", "err", err)
	return errorReply(451, "4.3.0", "local error, try again later")
}

// addrPort returns the address of a TCP connection end, or the zero value.
func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

// readCommand reads and frames one command line. A *Reply error is a
// recoverable protocol error to answer; any other error ends the session.
func (c *conn) readCommand() (string, error) {
	// The deadline goes first, the ctx check second: see the implementation
	// notes.
	if err := c.raw.SetReadDeadline(time.Now().Add(c.cfg.CommandTimeout)); err != nil {
		if peerClosed(err) {
			return "", fmt.Errorf("client closed connection without QUIT: %w", io.EOF)
		}
		return "", fmt.Errorf("set read deadline: %w", err)
	}
	if err := c.ctx.Err(); err != nil {
		return "", c.shutdown(err)
	}
	raw, lerr := readLine(c.br)
	first := c.lines == 0
	c.lines++
	if first && looksLikeHTTP(raw) {
		// A browser or an HTTP client pointed at an SMTP port, or a
		// cross-protocol attack that hopes some of our replies are taken
		// as HTTP: answer nothing.
		c.log.Info("smtp first line looks like an HTTP request, closing without reply", "line", logLine(raw))
		return "", &closeError{cause: errors.New("HTTP request on SMTP port")}
	}
	if lerr != nil {
		var r *Reply
		if errors.As(lerr, &r) {
			c.traceRecv(raw)
			return "", r
		}
		switch {
		case c.ctx.Err() != nil:
			return "", c.shutdown(c.ctx.Err())
		case errors.Is(lerr, os.ErrDeadlineExceeded):
			// RFC 5321 §4.5.3.2.7: a server may close after its timeout; it
			// says why first (§3.8: 421 is how the server closes).
			return "", &closeError{
				reply: &Reply{Code: 421, Enhanced: "4.4.2", Lines: []string{c.cfg.Hostname + " timeout waiting for a command, closing connection"}},
				cause: fmt.Errorf("read command: %w", lerr),
			}
		case peerClosed(lerr):
			return "", fmt.Errorf("client closed connection without QUIT: %w", io.EOF)
		}
		return "", fmt.Errorf("read command: %w", lerr)
	}
	c.traceRecv(raw)
	return string(raw[:len(raw)-2]), nil
}

// peerClosed reports whether err means the client went away: end of
// stream, a reset, or (for in-process pipes) the other end closed.
func peerClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, io.ErrClosedPipe) || errors.Is(err, syscall.ECONNRESET)
}

// shutdown is the session's end on ctx cancellation.
func (c *conn) shutdown(cause error) error {
	return &closeError{
		reply: &Reply{Code: 421, Enhanced: "4.3.2", Lines: []string{c.cfg.Hostname + " server shutting down, closing connection"}},
		cause: fmt.Errorf("session canceled: %w", cause),
	}
}

// writeError sends an error reply and counts it. After MaxErrors error
// replies the session ends with 421 4.7.0, before the client can send
// another command.
func (c *conn) writeError(r *Reply) error {
	if err := c.writeReply(r); err != nil {
		return err
	}
	c.errCount++
	if c.errCount >= c.cfg.MaxErrors {
		return &closeError{
			reply: &Reply{Code: 421, Enhanced: "4.7.0", Lines: []string{c.cfg.Hostname + " too many errors, closing connection"}},
			cause: fmt.Errorf("client made %d errors", c.errCount),
		}
	}
	return nil
}

// writeReply writes one reply under the command deadline.
func (c *conn) writeReply(r *Reply) error {
	return c.write(r, c.cfg.CommandTimeout)
}

// writeFinal writes the last reply of a session under a short deadline,
// ignoring errors: the connection is closed next anyway.
func (c *conn) writeFinal(r *Reply) {
	timeout := min(finalWriteTimeout, c.cfg.CommandTimeout)
	err := c.write(r, timeout)
	if err == nil {
		err = c.flushTimeout(timeout)
	}
	if err != nil {
		c.log.Debug("smtp write final reply", "err", err)
	}
}

// write buffers a reply; it is sent before the next blocking read, or at
// once when the buffer fills. timeout is the write deadline of sends.
func (c *conn) write(r *Reply, timeout time.Duration) error {
	buf := r.appendTo(nil)
	if c.log.Enabled(c.ctx, LevelTrace) {
		for line := range bytes.Lines(buf) {
			c.log.Log(c.ctx, LevelTrace, "smtp send", "reply", logLine(line))
		}
	}
	if c.bw.Available() < len(buf) {
		if err := c.flushTimeout(timeout); err != nil {
			return err
		}
	}
	if _, err := c.bw.Write(buf); err != nil {
		return fmt.Errorf("write reply: %w", err)
	}
	return nil
}

// flush sends buffered replies under the command deadline.
func (c *conn) flush() error {
	return c.flushTimeout(c.cfg.CommandTimeout)
}

func (c *conn) flushTimeout(timeout time.Duration) error {
	if c.bw.Buffered() == 0 {
		return nil
	}
	if err := c.raw.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return fmt.Errorf("set write deadline: %w", err)
	}
	if err := c.bw.Flush(); err != nil {
		return fmt.Errorf("write reply: %w", err)
	}
	return nil
}

// traceRecv logs a received command line at LevelTrace, with AUTH
// credentials redacted.
func (c *conn) traceRecv(line []byte) {
	if !c.log.Enabled(c.ctx, LevelTrace) {
		return
	}
	c.log.Log(c.ctx, LevelTrace, "smtp recv", "line", logLine(redactAuth(line)))
}
