// Package smtpclient is moxd's SMTP client for outbound delivery (RFC 5321):
// the queue uses it to hand messages to remote MX hosts, and to smarthosts
// with authentication. It is pure protocol code: it is given a connected
// net.Conn (plain, or a *tls.Conn for implicit TLS, RFC 8314 §3.3), a
// Config and a logger, and knows nothing about processes, DNS or
// configuration files; the caller dials, picks the host and decides what a
// failure means for the message.
//
// Extensions used when the server announces them: PIPELINING (RFC 2920),
// CHUNKING (RFC 3030), SIZE (RFC 1870), 8BITMIME (RFC 6152), SMTPUTF8 (RFC
// 6531), ENHANCEDSTATUSCODES (RFC 2034, RFC 3463), DSN (RFC 3461),
// REQUIRETLS (RFC 8689), LIMITS (RFC 9422), STARTTLS (RFC 3207) and AUTH
// (RFC 4954) with the client mechanisms in sasl.go: PLAIN (RFC 4616),
// CRAM-MD5 (RFC 2195), SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677)
// and SCRAM-SHA-256-PLUS with the tls-exporter channel binding (RFC 9266).
//
// moxd has its own client rather than net/smtp or a library client because
// delivery needs things those do not give: one pipelined round trip for
// MAIL, all RCPTs and DATA (RFC 2920 §3.1), a per-recipient result for
// every reply, the RFC 5321 §4.5.3.2 timeouts for each stage, RCPTMAX, and
// errors that tell a refused STARTTLS from a failed certificate check.
package smtpclient

// Implementation notes.
//
// A Client is used by one goroutine at a time. Each exported method that
// talks to the server arms its ctx with context.AfterFunc: when ctx ends,
// the connection's deadlines move into the past, which interrupts a blocked
// read or write. Every read and write first sets its own deadline and then
// checks ctx, so a cancellation is never lost between the two.
//
// Deadlines are set on raw, the connection New was given (for a *tls.Conn
// that passes them through to the TCP connection), so they also bound TLS
// reads and writes after STARTTLS.
//
// The only other goroutine is the writer of a pipelined command group
// (deliver.go): it writes while the caller's goroutine reads the replies, so
// a group larger than the socket buffers cannot deadlock against a server
// that answers before it has read everything. It owns bw until it is
// joined; nothing else writes meanwhile.
//
// Any network error, timeout, cancellation, protocol error or 421 reply
// makes the Client broken: the connection is closed at once and every later
// call fails without I/O.

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"
)

// LevelTrace is the slog level of protocol transcripts.
const LevelTrace = slog.Level(-8)

// RFC 5321 §4.5.3.2 timeouts, used for zero Config fields.
const (
	DefaultGreetingTimeout  = 5 * time.Minute  // §4.5.3.2.1
	DefaultCommandTimeout   = 5 * time.Minute  // §4.5.3.2.2, §4.5.3.2.3
	DefaultDataInitTimeout  = 2 * time.Minute  // §4.5.3.2.4
	DefaultDataBlockTimeout = 3 * time.Minute  // §4.5.3.2.5
	DefaultDataTermTimeout  = 10 * time.Minute // §4.5.3.2.6
)

// quitReplyTimeout bounds the wait for the reply to QUIT: nothing depends on
// it, so a silent server must not hold the caller for a CommandTimeout.
const quitReplyTimeout = 30 * time.Second

// maxCommandLine is the longest command line the client writes, CRLF
// included (RFC 5321 §4.5.3.1.4).
const maxCommandLine = 512

// Config configures one client session.
type Config struct {
	// Hostname is sent in EHLO/HELO: the client's host name in ASCII
	// (A-labels), or an address literal. Required.
	Hostname string
	// Timeouts of the stages; zero means the RFC 5321 §4.5.3.2 default:
	// GreetingTimeout 5 minutes, CommandTimeout 5 minutes (EHLO, MAIL,
	// RCPT, RSET, AUTH, STARTTLS and its handshake), DataInitTimeout 2
	// minutes (the reply to DATA), DataBlockTimeout 3 minutes (each write
	// of message data), DataTermTimeout 10 minutes (the reply after the
	// message data).
	GreetingTimeout, CommandTimeout, DataInitTimeout, DataBlockTimeout, DataTermTimeout time.Duration
	// DisableChunking makes Deliver use DATA even when the server
	// announces CHUNKING, for servers whose BDAT is known to be broken.
	DisableChunking bool
	// Log, when set, receives the protocol transcript at LevelTrace with
	// AUTH data redacted, and session events at debug level. May be nil.
	Log *slog.Logger
}

// Extensions is what the server announced in its EHLO reply (RFC 5321
// §4.1.1.1).
type Extensions struct {
	EHLO bool // false when the server only took HELO

	Pipelining, EightBitMIME, SMTPUTF8, StartTLS, Chunking, RequireTLS, DSN, EnhancedStatusCodes, BinaryMIME bool

	// Size is the SIZE value (RFC 1870 §4); 0 when SIZE has no value or
	// was not announced. SizeOffered tells whether SIZE was announced.
	Size        int64
	SizeOffered bool
	// Auth are the announced SASL mechanisms, upper-cased.
	Auth []string
	// RcptMax and MailMax are the LIMITS values (RFC 9422 §4); 0 when not
	// announced. Deliver honours RcptMax; MailMax is for the caller's
	// decision to reuse the connection (see Client.Transactions).
	RcptMax int
	MailMax int
	// Greeting is the host name from the server's greeting, informational.
	Greeting string
}

// Client is one SMTP session with a server. It is not safe for concurrent
// use.
type Client struct {
	cfg Config
	log *slog.Logger

	raw     net.Conn // as given to New; deadlines are set here
	netConn net.Conn // the transport under any TLS, closed on failure
	conn    net.Conn // raw, or TLS over it after STARTTLS
	br      *bufio.Reader
	bw      *bufio.Writer

	greeting     string
	ext          Extensions
	tlsState     *tls.ConnectionState
	authed       bool
	redact       bool // transcript hides lines (during AUTH)
	broken       bool
	closed       bool
	transactions int
}

// New starts a session on conn: for a *tls.Conn it completes the TLS
// handshake first (implicit TLS), then reads the greeting and sends EHLO,
// falling back to HELO when the server refuses EHLO with a 5xx reply (RFC
// 5321 §4.1.4). A greeting other than 220 gives an *Error with the
// greeting (554 is permanent, RFC 5321 §3.1). On any error conn is closed.
func New(ctx context.Context, conn net.Conn, cfg Config) (*Client, error) {
	if err := checkHostname(cfg.Hostname); err != nil {
		conn.Close()
		return nil, err
	}
	setDefault(&cfg.GreetingTimeout, DefaultGreetingTimeout)
	setDefault(&cfg.CommandTimeout, DefaultCommandTimeout)
	setDefault(&cfg.DataInitTimeout, DefaultDataInitTimeout)
	setDefault(&cfg.DataBlockTimeout, DefaultDataBlockTimeout)
	setDefault(&cfg.DataTermTimeout, DefaultDataTermTimeout)
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	remote := "unknown"
	if a := conn.RemoteAddr(); a != nil {
		remote = a.String()
	}
	c := &Client{
		cfg:     cfg,
		log:     log.With("remote", remote),
		raw:     conn,
		netConn: conn,
		conn:    conn,
	}
	c.br = bufio.NewReaderSize(conn, 4096)
	c.bw = bufio.NewWriterSize(conn, 4096)

	end := c.arm(ctx)
	defer end()

	if tc, ok := conn.(*tls.Conn); ok {
		// RFC 8314 §3.3: on an implicit TLS port the handshake comes
		// before the greeting.
		c.netConn = tc.NetConn()
		if err := c.handshake(ctx, tc, StageConnect); err != nil {
			return nil, err
		}
	}

	greeting, err := c.readReply(ctx, StageGreeting, cfg.GreetingTimeout)
	if err != nil {
		return nil, err
	}
	if greeting.Code != 220 {
		if greeting.Code != 421 {
			// RFC 5321 §3.1: after a 554 greeting the client should
			// send QUIT; the answer does not matter.
			if c.writeLines(ctx, StageGreeting, min(c.cfg.CommandTimeout, quitReplyTimeout), "QUIT") == nil {
				c.readReply(ctx, StageGreeting, min(c.cfg.CommandTimeout, quitReplyTimeout))
			}
		}
		c.fail()
		return nil, &Error{Stage: StageGreeting, Reply: &greeting}
	}
	// RFC 5321 §4.2: the greeting starts with the server's domain.
	if len(greeting.Text) > 0 {
		c.greeting, _, _ = strings.Cut(greeting.Text[0], " ")
	}
	if err := c.hello(ctx); err != nil {
		c.fail()
		return nil, err
	}
	return c, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// checkHostname checks the EHLO argument: a domain in ASCII or an address
// literal, printable without spaces (RFC 5321 §4.1.1.1).
func checkHostname(h string) error {
	if h == "" {
		return errors.New("smtpclient: Config.Hostname is empty; set the host name to send in EHLO")
	}
	for i := 0; i < len(h); i++ {
		if h[i] <= ' ' || h[i] >= 0x7f {
			return fmt.Errorf("smtpclient: Config.Hostname %q must be ASCII without spaces (use the A-label form of an IDN)", logLine(h))
		}
	}
	return nil
}

// Extensions returns what the server announced in its latest EHLO reply.
func (c *Client) Extensions() Extensions {
	e := c.ext
	e.Auth = append([]string(nil), c.ext.Auth...)
	return e
}

// TLS returns the TLS connection state when the session runs over TLS,
// after StartTLS or from the start (implicit TLS).
func (c *Client) TLS() (tls.ConnectionState, bool) {
	if c.tlsState == nil {
		return tls.ConnectionState{}, false
	}
	return *c.tlsState, true
}

// Broken reports that the connection cannot be used for another
// transaction: a network error, timeout, cancellation, protocol error or a
// 421 reply happened, or the client was closed.
func (c *Client) Broken() bool { return c.broken }

// Transactions returns how many Deliver calls on this connection reached
// the data stage (DATA answered with 354, or BDAT sent), for connection
// reuse accounting against Extensions.MailMax.
func (c *Client) Transactions() int { return c.transactions }

// hello sends EHLO and records the extensions, or falls back to HELO.
func (c *Client) hello(ctx context.Context) error {
	r, err := c.command(ctx, StageEHLO, c.cfg.CommandTimeout, "EHLO "+c.cfg.Hostname)
	if err != nil {
		return err
	}
	if r.Code == 250 {
		c.ext = parseEHLO(r)
		c.ext.Greeting = c.greeting
		return nil
	}
	if !r.Permanent() {
		return &Error{Stage: StageEHLO, Reply: &r}
	}
	// RFC 5321 §4.1.4: a server that does not take EHLO answers 5xx
	// (500, 502, 550 and others); the client then tries HELO.
	c.log.Debug("smtp server refused EHLO, trying HELO", "reply", r.String())
	r2, err := c.command(ctx, StageEHLO, c.cfg.CommandTimeout, "HELO "+c.cfg.Hostname)
	if err != nil {
		return err
	}
	if r2.Code != 250 {
		return &Error{Stage: StageEHLO, Reply: &r2}
	}
	c.ext = Extensions{Greeting: c.greeting}
	return nil
}

// parseEHLO reads the extensions from an EHLO reply: RFC 5321 §4.1.1.1, the
// first line is the server's domain, every further line an ehlo-keyword
// and its parameters. Keywords are case-insensitive; unknown ones and empty
// lines are ignored.
func parseEHLO(r Reply) Extensions {
	e := Extensions{EHLO: true}
	for _, line := range r.Text[1:] {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		kw, params := strings.ToUpper(f[0]), f[1:]
		if rest, ok := strings.CutPrefix(kw, "AUTH="); ok {
			// Pre-RFC 4954 form some servers still send besides AUTH.
			kw, params = "AUTH", append([]string{rest}, params...)
		}
		switch kw {
		case "PIPELINING":
			e.Pipelining = true
		case "8BITMIME":
			e.EightBitMIME = true
		case "SMTPUTF8":
			e.SMTPUTF8 = true
		case "STARTTLS":
			e.StartTLS = true
		case "CHUNKING":
			e.Chunking = true
		case "REQUIRETLS":
			e.RequireTLS = true
		case "DSN":
			e.DSN = true
		case "ENHANCEDSTATUSCODES":
			e.EnhancedStatusCodes = true
		case "BINARYMIME":
			e.BinaryMIME = true
		case "SIZE":
			// RFC 1870 §4: optional maximum size, 0 meaning no limit.
			e.SizeOffered = true
			if len(params) > 0 {
				e.Size = parseNumber(params[0])
			}
		case "AUTH":
			for _, m := range params {
				m = strings.ToUpper(m)
				if m != "" && !contains(e.Auth, m) {
					e.Auth = append(e.Auth, m)
				}
			}
		case "LIMITS":
			// RFC 9422 §4: limit names and values, space separated.
			for _, p := range params {
				name, value, _ := strings.Cut(p, "=")
				n := int(min(parseNumber(value), 1<<30))
				switch strings.ToUpper(name) {
				case "RCPTMAX":
					e.RcptMax = n
				case "MAILMAX":
					e.MailMax = n
				}
			}
		}
	}
	return e
}

// parseNumber parses a non-negative decimal of at most 18 digits; anything
// else is 0.
func parseNumber(s string) int64 {
	if s == "" || len(s) > 18 {
		return 0
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// Reset sends RSET (RFC 5321 §4.1.1.5), ending any transaction. A reply
// other than 250 leaves the client broken: the session state is unknown.
func (c *Client) Reset(ctx context.Context) error {
	if err := c.usable(StageReset); err != nil {
		return err
	}
	end := c.arm(ctx)
	defer end()
	return c.reset(ctx)
}

func (c *Client) reset(ctx context.Context) error {
	r, err := c.command(ctx, StageReset, c.cfg.CommandTimeout, "RSET")
	if err != nil {
		return err
	}
	if r.Code != 250 {
		c.fail()
		return &Error{Stage: StageReset, Reply: &r}
	}
	return nil
}

// Quit sends QUIT (RFC 5321 §4.1.1.10), waits a short while for the 221
// reply and closes the connection. A missing or odd reply is only logged:
// the server has what it needs once QUIT was written. It returns an error
// only when QUIT could not be written.
func (c *Client) Quit(ctx context.Context) error {
	if c.closed || c.broken {
		return c.Close()
	}
	end := c.arm(ctx)
	defer end()
	timeout := min(c.cfg.CommandTimeout, quitReplyTimeout)
	if err := c.writeLines(ctx, StageQuit, timeout, "QUIT"); err != nil {
		c.Close()
		return err
	}
	if r, err := c.readReply(ctx, StageQuit, timeout); err != nil {
		c.log.Debug("smtp no reply to QUIT", "err", err)
	} else if r.Code != 221 {
		c.log.Debug("smtp unexpected reply to QUIT", "reply", r.String())
	}
	c.Close()
	return nil
}

// Close closes the connection without QUIT. The client is broken
// afterwards. Closing twice is not an error.
func (c *Client) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	c.broken = true
	// For TLS this sends close_notify, which crypto/tls bounds itself.
	if err := c.conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("smtp close connection: %w", err)
	}
	return nil
}

// fail makes the client broken and closes the transport at once (no TLS
// close_notify: the connection is not trusted to take more writes).
func (c *Client) fail() {
	c.broken = true
	if !c.closed {
		c.closed = true
		c.netConn.Close()
	}
}

// usable is the check at the start of every call that talks to the server.
func (c *Client) usable(stage Stage) error {
	if c.broken {
		return &Error{Stage: stage, Err: errBroken}
	}
	return nil
}

// errBroken is the error of calls on a broken client.
var errBroken = errors.New("connection is broken or closed; open a new one")

// arm makes ctx's end interrupt the connection's reads and writes, until
// the returned function is called.
func (c *Client) arm(ctx context.Context) (disarm func()) {
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		c.raw.SetDeadline(time.Unix(1, 0))
	})
	return func() {
		if !stop() {
			<-fired
		}
	}
}

// ioError turns a failed read or write into the *Error for stage, and
// makes the client broken.
func (c *Client) ioError(ctx context.Context, stage Stage, err error) *Error {
	c.fail()
	switch {
	case ctx.Err() != nil:
		err = fmt.Errorf("%w (%v)", context.Cause(ctx), err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = fmt.Errorf("timeout: %w", err)
	case errors.Is(err, errProtocol):
	default:
		err = fmt.Errorf("connection failed: %w", err)
	}
	return &Error{Stage: stage, Err: err}
}

// readDeadline sets the read deadline, then checks ctx (see the
// implementation notes for the order).
func (c *Client) readDeadline(ctx context.Context, timeout time.Duration) error {
	if err := c.raw.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	return context.Cause(ctx)
}

func (c *Client) writeDeadline(ctx context.Context, timeout time.Duration) error {
	if err := c.raw.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	return context.Cause(ctx)
}

// readReply reads one reply under timeout. A 421 reply (RFC 5321 §3.8: the
// server is closing the connection) makes the client broken but is returned
// as a reply, for the caller to report.
func (c *Client) readReply(ctx context.Context, stage Stage, timeout time.Duration) (Reply, error) {
	if err := c.readDeadline(ctx, timeout); err != nil {
		return Reply{}, c.ioError(ctx, stage, err)
	}
	r, raw, err := readReply(c.br)
	if c.log.Enabled(ctx, LevelTrace) {
		for _, l := range raw {
			if c.redact && strings.HasPrefix(l, "334") {
				l = "334 [sasl data redacted]"
			}
			c.log.Log(ctx, LevelTrace, "smtp recv", "line", logLine(l))
		}
	}
	if err != nil {
		return Reply{}, c.ioError(ctx, stage, err)
	}
	if r.Code == 421 {
		c.log.Debug("smtp server closes the session", "reply", r.String())
		c.fail()
	}
	return r, nil
}

// writeLines writes command lines, each with CRLF, and flushes them under
// timeout.
func (c *Client) writeLines(ctx context.Context, stage Stage, timeout time.Duration, lines ...string) error {
	if err := c.writeDeadline(ctx, timeout); err != nil {
		return c.ioError(ctx, stage, err)
	}
	for _, l := range lines {
		if c.log.Enabled(ctx, LevelTrace) {
			c.log.Log(ctx, LevelTrace, "smtp send", "line", logLine(c.redactLine(l)))
		}
		c.bw.WriteString(l)
		c.bw.WriteString("\r\n")
	}
	if err := c.bw.Flush(); err != nil {
		return c.ioError(ctx, stage, err)
	}
	return nil
}

// redactLine hides SASL data in the transcript: everything after the
// mechanism name of AUTH, and every line sent during the exchange.
func (c *Client) redactLine(l string) string {
	if c.redact {
		if mech, ok := strings.CutPrefix(l, "AUTH "); ok {
			mech, _, _ = strings.Cut(mech, " ")
			return "AUTH " + mech + " [redacted]"
		}
		return "[sasl data redacted]"
	}
	return l
}

// command writes one command and reads its reply.
func (c *Client) command(ctx context.Context, stage Stage, timeout time.Duration, line string) (Reply, error) {
	if err := c.writeLines(ctx, stage, timeout, line); err != nil {
		return Reply{}, err
	}
	return c.readReply(ctx, stage, timeout)
}
