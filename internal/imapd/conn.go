package imapd

// The IMAP connection: states, the verb table and the one place that turns
// handler errors into responses (STYLE.md "Protocol servers").
//
// Implementation notes:
//   - One goroutine per connection reads a command, runs its handler and
//     writes the responses; only it writes to the connection. A server
//     shutdown (context.AfterFunc) or a store restart (one goroutine per
//     store channel, watchStore) only sets c.stop and a read deadline in
//     the past, so the reader wakes up and the connection goroutine writes
//     the BYE.
//   - Deadline order (why an interrupt cannot be missed): the reader sets
//     its idle deadline, then checks c.stop, then reads; interrupt sets
//     c.stop, then the past deadline.
//   - After login all store calls go over the one channel the login
//     happened on (store binds tokens and sessions to it); when it closes,
//     the session ends with BYE [UNAVAILABLE] (the client logs in again,
//     over the new channel).
//   - Commands live in the file of their concept and register themselves
//     (addVerbs, addCaps, enablers): commands_auth.go (before SELECT),
//     selected.go (the selected mailbox), fetch.go, search.go, sort.go,
//     thread.go, append.go, copy.go, quota.go, idle.go, qresync.go,
//     condstore.go, compress.go, rev2.go. A command the parser knows but
//     no file registers gets BAD; the capability list names only what is
//     registered.
//   - After every command, before its tagged response, afterCommand
//     reports the selected mailbox's changes where RFC 9051 §7.5.1 allows
//     it (selected.go).

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"moxd/internal/auth"
	"moxd/internal/connlimit"
	"moxd/internal/ipc"
	"moxd/internal/mailproto/imap"
	"moxd/internal/storage/storeclient"
)

// Defaults for the Server's limits.
const (
	// RFC 9051 §5.4: the autologout timer is at least 30 minutes.
	DefaultIdleTimeout     = 30 * time.Minute
	DefaultWriteTimeout    = 2 * time.Minute
	DefaultMaxBadCommands  = 20
	DefaultMaxAuthFailures = 5
	storeCallTimeout       = 30 * time.Second
)

// Server serves IMAP connections. The fields are set before the first
// Serve and not changed afterwards.
type Server struct {
	// Store returns the current channel to store.
	Store func() (*ipc.Conn, error)
	// TLS is the configuration for STARTTLS and implicit TLS; nil means
	// no STARTTLS (and no implicit TLS).
	TLS *tls.Config
	// Hostname names the server in logs.
	Hostname string
	Log      *slog.Logger

	// IdleTimeout bounds the wait for a command or a SASL response
	// (DefaultIdleTimeout if 0).
	IdleTimeout time.Duration
	// WriteTimeout bounds each write to the client (DefaultWriteTimeout
	// if 0).
	WriteTimeout time.Duration
	// MaxBadCommands BAD responses in one connection end it with BYE
	// (DefaultMaxBadCommands if 0).
	MaxBadCommands int
	// MaxAuthFailures failed logins in one connection end it with BYE
	// (DefaultMaxAuthFailures if 0); SetAuthLimits changes it later.
	MaxAuthFailures int
	// LoginFailureDelay is waited after a failed login, doubled for each
	// further failure in the connection; SetAuthLimits changes it later.
	// Store delays failures too.
	LoginFailureDelay time.Duration
	// authLimits, once set, replaces the two fields above (config reload).
	authLimits atomic.Pointer[authLimits]

	// The logged-in sessions per store channel (watchStore).
	storeMu       sync.Mutex
	storeSessions map[*ipc.Conn]map[*conn]struct{}
	// MaxLine bounds a command line with its in-memory literals
	// (imap.DefaultMaxLine if 0).
	MaxLine int
	// MaxAppendSize bounds one APPEND message, in bytes, announced as
	// APPENDLIMIT (DefaultMaxAppendSize if 0; append.go). Set it to
	// store's max_message_size, which store applies anyway.
	MaxAppendSize int64
	// PlaintextLoopback allows LOGIN and AUTHENTICATE PLAIN without TLS
	// on loopback connections (localserve).
	PlaintextLoopback bool
	// Limiter, if set, counts connections per IP prefix and refuses those
	// over its limits with a BYE greeting.
	Limiter *connlimit.Limiter

	// Counters for moxctl status.
	accepted, refused, logins atomic.Uint64

	// The selected mailboxes' shared caches (cache.go).
	caches cacheRegistry
}

// Counters reports the server's counters for moxctl status.
func (s *Server) Counters() []ipc.Counter {
	return []ipc.Counter{
		{Name: "connections", Value: s.accepted.Load()},
		{Name: "connections_refused_limits", Value: s.refused.Load()},
		{Name: "logins", Value: s.logins.Load()},
	}
}

type state int

const (
	stateNotAuth state = iota
	stateAuth
	stateSelected
	stateLogout
)

func (st state) String() string {
	return [...]string{"not authenticated", "authenticated", "selected", "logout"}[st]
}

func states(l ...state) uint8 {
	var m uint8
	for _, s := range l {
		m |= 1 << s
	}
	return m
}

var (
	anyState  = states(stateNotAuth, stateAuth, stateSelected)
	notAuth   = states(stateNotAuth)
	authState = states(stateAuth, stateSelected)
)

type handler func(c *conn, cmd *imap.Command) error

type verb struct {
	states uint8
	fn     handler
}

// verbs is the table from command to handler and the states it is allowed
// in (RFC 9051 §6). Commands the parser knows but that are missing here
// answer BAD. Files of the package add their commands in their init
// functions with addVerbs.
var verbs = map[string]verb{}

// addVerbs adds commands to the verb table.
func addVerbs(m map[string]verb) {
	for name, v := range m {
		if _, dup := verbs[name]; dup {
			panic("imapd: command " + name + " registered twice")
		}
		verbs[name] = v
	}
}

func init() {
	addVerbs(map[string]verb{
		// RFC 9051 §6.1: any state.
		"CAPABILITY": {anyState, (*conn).cmdCapability},
		"NOOP":       {anyState, (*conn).cmdNoop},
		"LOGOUT":     {anyState, (*conn).cmdLogout},
		"ID":         {anyState, (*conn).cmdID}, // RFC 2971 §3.1
		// RFC 9051 §6.2: not authenticated.
		"STARTTLS":     {notAuth, (*conn).cmdStartTLS},
		"LOGIN":        {notAuth, (*conn).cmdLogin},
		"AUTHENTICATE": {notAuth, (*conn).cmdAuthenticate},
		// RFC 9051 §6.3: authenticated (and selected).
		"ENABLE":      {states(stateAuth), (*conn).cmdEnable}, // RFC 5161 §3.1
		"SELECT":      {authState, (*conn).cmdSelect},
		"EXAMINE":     {authState, (*conn).cmdSelect},
		"NAMESPACE":   {authState, (*conn).cmdNamespace},
		"LIST":        {authState, (*conn).cmdList},
		"LSUB":        {authState, (*conn).cmdLsub},
		"STATUS":      {authState, (*conn).cmdStatus},
		"CREATE":      {authState, (*conn).cmdCreate},
		"DELETE":      {authState, (*conn).cmdDelete},
		"RENAME":      {authState, (*conn).cmdRename},
		"SUBSCRIBE":   {authState, (*conn).cmdSubscribe},
		"UNSUBSCRIBE": {authState, (*conn).cmdUnsubscribe},
		// RFC 9051 §6.4: selected (selected.go).
		"CHECK":    {states(stateSelected), (*conn).cmdNoop}, // IMAP4rev1
		"CLOSE":    {states(stateSelected), (*conn).cmdClose},
		"UNSELECT": {states(stateSelected), (*conn).cmdUnselect}, // RFC 3691
		"EXPUNGE":  {states(stateSelected), (*conn).cmdExpunge},
		"FETCH":    {states(stateSelected), (*conn).cmdFetch},
		"STORE":    {states(stateSelected), (*conn).cmdStore},
	})
}

// respError is a handler's answer other than OK: the tagged status with
// its response code and text. bye ends the connection after it is sent.
type respError struct {
	status imap.Status
	code   string
	text   string
	bye    bool
	cause  error // for the log, not the client
}

func (e *respError) Error() string {
	return fmt.Sprintf("%s [%s] %s", e.status, e.code, e.text)
}

func respNO(code, format string, args ...any) *respError {
	return &respError{status: imap.NO, code: code, text: fmt.Sprintf(format, args...)}
}

func respBAD(format string, args ...any) *respError {
	return &respError{status: imap.BAD, text: fmt.Sprintf(format, args...)}
}

// okText is returned by handlers that want a tagged OK with a code or text
// of their own.
type okText struct{ code, text string }

func (o *okText) Error() string { return "OK " + o.text }

// ioError is a failure of the client connection: the connection ends
// without further responses.
type ioError struct{ err error }

func (e *ioError) Error() string { return e.err.Error() }
func (e *ioError) Unwrap() error { return e.err }

// conn is one client connection.
type conn struct {
	srv         *Server
	log         *slog.Logger
	ctx         context.Context
	nc          net.Conn
	r           *imap.Reader
	w           *bufio.Writer
	ip          netip.Addr
	implicitTLS bool
	tls         *tls.ConnectionState // nil without TLS
	state       state

	bad          int
	authFailures int
	utf8         bool           // UTF-8 strings and names: UTF8=ACCEPT or IMAP4rev2 enabled
	utf8Accept   bool           // UTF8=ACCEPT enabled (RFC 6855)
	rev2         bool           // IMAP4rev2 enabled (RFC 9051 §6.3.1; rev2.go)
	condstore    bool           // CONDSTORE enabled (RFC 7162 §3.1)
	qresync      bool           // QRESYNC enabled (RFC 7162 §3.2, qresync.go)
	deflate      *deflateWriter // COMPRESS=DEFLATE active (compress.go)

	// After login.
	storeConn *ipc.Conn
	sess      *storeclient.Session
	sel       *selected    // in the selected state
	spool     *appendSpool // APPEND data being received (append.go)
	// The search result variable of SEARCHRES (RFC 5182, searchres.go).
	saved savedResult
	// IDLE (idle.go): the input waiter below the command reader, and
	// the wake-up state the mailbox cache sets.
	in   *waitReader
	idle idleWait

	stop atomic.Value // string: why the watcher stopped the connection
	raw  net.Conn     // the TCP connection under TLS and compression
}

// Serve runs the IMAP protocol on conn until the client logs out, the
// connection fails or ctx is done; it closes conn. implicitTLS is for the
// imaps port (993): the TLS handshake comes first.
func (s *Server) Serve(ctx context.Context, nc net.Conn, implicitTLS bool) {
	defer nc.Close()
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &conn{srv: s, ctx: ctx, nc: nc, implicitTLS: implicitTLS, raw: nc}
	c.log = log.With("remote", nc.RemoteAddr().String())
	if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
		c.ip = ap.Addr().Unmap()
	}
	if s.Limiter != nil {
		release, err := s.Limiter.Acquire(c.ip)
		if err != nil {
			s.refused.Add(1)
			c.log.Info("connection refused by limits", "reason", err)
			if !implicitTLS {
				// RFC 9051 §7.1.5: BYE as the greeting. On the TLS port
				// the connection just closes: a handshake per refused
				// connection is what the limit saves.
				nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
				nc.Write(imap.AppendStatus(nil, "", imap.BYE, imap.CodeUnavailable, err.Error()+", try again later"))
			}
			return
		}
		defer release()
	}
	s.accepted.Add(1)
	defer c.cleanup()
	if implicitTLS {
		if s.TLS == nil {
			c.log.Error("implicit TLS without a TLS configuration")
			return
		}
		if err := c.handshake(); err != nil {
			c.log.Debug("tls handshake", "err", err)
			return
		}
	} else {
		c.setReader(nc)
	}
	stopShutdown := context.AfterFunc(ctx, func() { c.interrupt("server shutting down") })
	defer stopShutdown()
	c.writeStatus("", imap.OK, imap.CodeCapability(c.capabilities()...), "moxd ready")
	if err := c.flush(); err != nil {
		return
	}
	c.loop()
}

func (c *conn) cleanup() {
	c.srv.unwatchStore(c)
	c.closeSpool()
	c.dropSelection()
	if c.sess != nil {
		c.sess.Close()
	}
}

func (c *conn) setReader(rd io.Reader) {
	c.setStreams(rd, c.nc)
}

// setStreams sets the reader commands come from and the writer responses
// go to: the connection, its TLS layer or a compression layer on top.
func (c *conn) setStreams(rd io.Reader, wr io.Writer) {
	c.in = &waitReader{r: rd}
	c.r = imap.NewReader(c.in)
	if c.srv.MaxLine > 0 {
		c.r.MaxLine = c.srv.MaxLine
	}
	c.r.UTF8 = c.utf8
	c.setAppendHooks()
	// RFC 9051 §7.5: "+" before a synchronizing literal is read.
	c.r.Continue = func(n int64) error {
		c.w.WriteString("+ Ready for literal data\r\n")
		return c.flush()
	}
	c.w = bufio.NewWriter(wr)
}

func (c *conn) handshake() error {
	tc := tls.Server(c.nc, c.srv.TLS)
	tc.SetDeadline(time.Now().Add(c.writeTimeout()))
	if err := tc.HandshakeContext(c.ctx); err != nil {
		return err
	}
	tc.SetDeadline(time.Time{})
	cs := tc.ConnectionState()
	c.nc, c.tls = tc, &cs
	c.setReader(tc)
	return nil
}

// Logged-in sessions end when the store channel they logged in over
// closes (a store restart). One goroutine per store channel, not per
// connection, waits for that and interrupts its sessions: an idle
// connection costs no goroutine of its own (P3).

// watchStore adds c, logged in over sc, to the sessions ended when sc
// closes.
func (s *Server) watchStore(sc *ipc.Conn, c *conn) {
	s.storeMu.Lock()
	defer s.storeMu.Unlock()
	if s.storeSessions == nil {
		s.storeSessions = map[*ipc.Conn]map[*conn]struct{}{}
	}
	set := s.storeSessions[sc]
	if set == nil {
		set = map[*conn]struct{}{}
		s.storeSessions[sc] = set
		go s.endStoreSessions(sc)
	}
	set[c] = struct{}{}
}

// unwatchStore removes c when its connection ends.
func (s *Server) unwatchStore(c *conn) {
	if c.storeConn == nil {
		return
	}
	s.storeMu.Lock()
	defer s.storeMu.Unlock()
	delete(s.storeSessions[c.storeConn], c)
}

// endStoreSessions interrupts every session of sc once sc closes.
func (s *Server) endStoreSessions(sc *ipc.Conn) {
	<-sc.Done()
	s.storeMu.Lock()
	defer s.storeMu.Unlock()
	for c := range s.storeSessions[sc] {
		c.interrupt("store restarted; log in again")
	}
	delete(s.storeSessions, sc)
}

// interrupt makes the connection goroutine stop with a BYE saying why:
// the read deadline, set on the TCP connection, wakes its read.
func (c *conn) interrupt(why string) {
	c.stop.Store(why)
	c.raw.SetReadDeadline(time.Unix(1, 0))
}

func (c *conn) stopped() string {
	s, _ := c.stop.Load().(string)
	return s
}

func (c *conn) idleTimeout() time.Duration {
	if c.srv.IdleTimeout > 0 {
		return c.srv.IdleTimeout
	}
	return DefaultIdleTimeout
}

func (c *conn) writeTimeout() time.Duration {
	if c.srv.WriteTimeout > 0 {
		return c.srv.WriteTimeout
	}
	return DefaultWriteTimeout
}

// armRead sets the idle deadline for the next read and reports why the
// connection was stopped, if it was.
func (c *conn) armRead() string {
	c.nc.SetReadDeadline(time.Now().Add(c.idleTimeout()))
	return c.stopped()
}

func (c *conn) flush() error {
	c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout()))
	if err := c.w.Flush(); err != nil {
		return &ioError{err}
	}
	if err := c.flushDeflate(); err != nil {
		return &ioError{err}
	}
	return nil
}

func (c *conn) writeStatus(tag string, st imap.Status, code, text string) {
	c.w.Write(imap.AppendStatus(nil, tag, st, code, text))
}

// bye sends an untagged BYE and flushes.
func (c *conn) bye(code, text string) {
	c.writeStatus("", imap.BYE, code, text)
	c.flush()
}

// readFailed answers a read error that ends the connection.
func (c *conn) readFailed(err error) {
	var be *imap.ByeError
	var ne net.Error
	switch {
	case errors.As(err, &be):
		c.bye("", be.Msg)
	case c.stopped() != "":
		c.bye(imap.CodeUnavailable, c.stopped())
	case errors.As(err, &ne) && ne.Timeout():
		// RFC 9051 §5.4: autologout.
		c.bye("", "autologout: idle for too long")
	default:
		c.log.Debug("connection ended", "err", err)
	}
}

func (c *conn) loop() {
	for c.state != stateLogout {
		if why := c.armRead(); why != "" {
			c.bye(imap.CodeUnavailable, why)
			return
		}
		c.closeSpool() // every APPEND starts with an empty spool (append.go)
		cmd, err := imap.ReadCommand(c.r)
		var se *imap.SyntaxError
		var re *imap.RefusedError
		switch {
		case errors.As(err, &se):
			if !c.answer(se.Tag, &respError{status: imap.BAD, text: se.Msg}) {
				return
			}
			continue
		case errors.As(err, &re):
			code := imap.CodeCannot
			if errors.Is(re, imap.ErrLiteralTooBig) {
				code = imap.CodeTooBig
			}
			if !c.answer(re.Tag, respNO(code, "%v", re.Err)) {
				return
			}
			continue
		case err != nil:
			c.readFailed(err)
			return
		}
		if !c.answer(cmd.Tag, c.dispatch(cmd)) {
			return
		}
	}
}

// dispatch checks the command against the verb table and runs it.
func (c *conn) dispatch(cmd *imap.Command) (err error) {
	v, ok := verbs[cmd.Name]
	if !ok {
		if selectedOnly[cmd.Name] && c.state != stateSelected {
			return respBAD("%s needs a selected mailbox", cmd.Name)
		}
		// Commands the parser knows that this server does not offer
		// (none of them is in CAPABILITY): RFC 9051 §7.1.3, BAD for an
		// unknown command.
		return respBAD("%s is not supported by moxd (see CAPABILITY)", cmd.Name)
	}
	if v.states&(1<<c.state) == 0 {
		return respBAD("%s is not allowed in the %s state", cmd.Name, c.state)
	}
	defer func() {
		// Panics never cross the connection: the client gets
		// SERVERBUG, the connection ends.
		if x := recover(); x != nil {
			c.log.Error("panic in command", "cmd", cmd.Name, "panic", x)
			err = &respError{status: imap.NO, code: imap.CodeServerBug, text: "internal error", bye: true}
		}
	}()
	err = v.fn(c, cmd)
	// Untagged mailbox changes before the tagged response (selected.go).
	c.afterCommand(cmd)
	return err
}

// selectedOnly are the commands of the selected state (RFC 9051 §6.4).
var selectedOnly = map[string]bool{
	"CLOSE": true, "UNSELECT": true, "EXPUNGE": true, "SEARCH": true, "FETCH": true,
	"STORE": true, "COPY": true, "MOVE": true, "SORT": true, "THREAD": true, "IDLE": true,
}

// answer sends the tagged response for a handler's result: the one place
// where handler errors become responses. It returns false when the
// connection must end.
func (c *conn) answer(tag string, err error) bool {
	var re *respError
	var ok *okText
	var ie *ioError
	switch {
	case err == errNoTagged:
	case err == nil:
		c.writeStatus(tag, imap.OK, "", "completed")
	case errors.As(err, &ok):
		c.writeStatus(tag, imap.OK, ok.code, ok.text)
	case errors.As(err, &ie):
		c.log.Debug("connection ended", "err", ie.err)
		return false
	case errors.As(err, &re):
		if re.cause != nil {
			c.log.Info("command failed", "status", re.status, "code", re.code, "err", re.cause)
		}
		c.writeStatus(tag, re.status, re.code, re.text)
		if re.status == imap.BAD {
			c.bad++
			if c.bad >= c.maxBad() {
				c.bye("", "too many bad commands")
				return false
			}
		}
		if re.bye {
			c.bye("", re.text)
			return false
		}
	default:
		c.log.Error("command failed", "err", err)
		c.writeStatus(tag, imap.NO, imap.CodeServerBug, "internal error")
	}
	if c.state == stateLogout {
		c.flush()
		return false
	}
	return c.flush() == nil
}

func (c *conn) maxBad() int {
	if c.srv.MaxBadCommands > 0 {
		return c.srv.MaxBadCommands
	}
	return DefaultMaxBadCommands
}

// capabilities returns the list for the current state and connection
// (RFC 9051 §7.2.2). Only what is implemented is listed; a session is
// IMAP4rev1 until the client enables IMAP4rev2 (rev2.go).
func (c *conn) capabilities() []string {
	l := []string{"IMAP4rev1", "IMAP4rev2", "SASL-IR", "LITERAL-", "ID", "ENABLE"}
	if c.state == stateNotAuth {
		if c.tls == nil && c.srv.TLS != nil && !c.implicitTLS {
			l = append(l, "STARTTLS")
		}
		if !c.private() {
			// RFC 9051 §6.2.3: LOGIN is refused without TLS.
			l = append(l, "LOGINDISABLED")
		}
		for _, m := range c.mechanisms() {
			l = append(l, "AUTH="+m)
		}
		return l
	}
	l = append(l, "NAMESPACE", "UTF8=ACCEPT", "LIST-EXTENDED", "LIST-STATUS", "SPECIAL-USE", "CREATE-SPECIAL-USE", "STATUS=SIZE", "UNSELECT", "CONDSTORE")
	for _, e := range extraCaps {
		if e.offered == nil || e.offered(c) {
			name := e.name
			if e.value != nil {
				name += "=" + e.value(c)
			}
			l = append(l, name)
		}
	}
	return l
}

// capEntry is a capability announced after login by the file that
// implements it (addCaps in its init function); offered, when set, decides
// per connection; value, when set, makes it name=value (APPENDLIMIT=n).
type capEntry struct {
	name    string
	offered func(c *conn) bool
	value   func(c *conn) string
}

var extraCaps []capEntry

// addCaps adds capabilities announced after login.
func addCaps(l ...capEntry) { extraCaps = append(extraCaps, l...) }

// mechanisms returns the SASL mechanisms to offer, strongest first: PLAIN
// only under TLS, -PLUS only with tls-exporter binding data.
func (c *conn) mechanisms() []string {
	var l []string
	if c.tls != nil && len(auth.ServerChannelBindings(c.tls)) > 0 {
		l = append(l, auth.MechSCRAMSHA256Plus, auth.MechSCRAMSHA1Plus)
	}
	l = append(l, auth.MechSCRAMSHA256, auth.MechSCRAMSHA1, auth.MechCRAMMD5)
	if c.private() {
		l = append(l, auth.MechPLAIN)
	}
	return l
}

func (c *conn) cmdCapability(cmd *imap.Command) error {
	c.w.WriteString("* CAPABILITY " + strings.Join(c.capabilities(), " ") + "\r\n")
	return nil
}

func (c *conn) cmdNoop(cmd *imap.Command) error {
	if c.state == stateSelected {
		// RFC 9051 §6.1.2: report the mailbox's changes.
		return c.cmdSelNoop(cmd)
	}
	return nil
}

func (c *conn) cmdLogout(cmd *imap.Command) error {
	// RFC 9051 §6.1.3: untagged BYE, then the tagged OK.
	c.writeStatus("", imap.BYE, "", "moxd logging out")
	c.state = stateLogout
	return &okText{text: "logout done"}
}

func (c *conn) cmdID(cmd *imap.Command) error {
	a := cmd.Args.(*imap.IDArgs)
	if !a.Nil && len(a.Fields) > 0 {
		var attrs []any
		for _, f := range a.Fields {
			v := "NIL"
			if f.Value != nil {
				v = *f.Value
			}
			attrs = append(attrs, slog.String(f.Key, v))
		}
		c.log.Debug("client id", attrs...)
	}
	c.w.WriteString(`* ID ("name" "moxd")` + "\r\n")
	return nil
}

func (c *conn) cmdStartTLS(cmd *imap.Command) error {
	switch {
	case c.tls != nil:
		return respBAD("TLS is already active")
	case c.srv.TLS == nil || c.implicitTLS:
		return respBAD("STARTTLS is not available")
	}
	// RFC 9051 §6.2.1: octets after STARTTLS before the handshake are
	// not commands (command injection).
	if c.r.Buffered() > 0 {
		return &respError{status: imap.BAD, text: "data after STARTTLS before the TLS handshake", bye: true}
	}
	c.writeStatus(cmd.Tag, imap.OK, "", "begin TLS negotiation now")
	if err := c.flush(); err != nil {
		return err
	}
	c.nc.SetReadDeadline(time.Now().Add(c.writeTimeout()))
	if err := c.handshake(); err != nil {
		return &ioError{fmt.Errorf("starttls handshake: %w", err)}
	}
	return errNoTagged
}

// errNoTagged: the handler already sent its tagged response.
var errNoTagged = errors.New("tagged response sent")

func (c *conn) cmdEnable(cmd *imap.Command) error {
	a := cmd.Args.(*imap.EnableArgs)
	var enabled []string
	for _, capa := range a.Caps {
		// RFC 5161 §3.1: unknown capabilities are ignored, and so are
		// those already enabled.
		if f := enablers[strings.ToUpper(capa)]; f != nil && f(c) {
			enabled = append(enabled, canonicalCap(capa))
		}
	}
	c.w.WriteString("* ENABLED")
	for _, e := range enabled {
		c.w.WriteString(" " + e)
	}
	c.w.WriteString("\r\n")
	return nil
}

// canonicalCap is the spelling of a capability in responses: upper case,
// but for the protocol version (as in CAPABILITY).
func canonicalCap(upper string) string {
	if upper == "IMAP4REV2" {
		return "IMAP4rev2"
	}
	return upper
}

// enablers are the capabilities ENABLE knows (RFC 5161), by upper-case
// name; each enables its extension for the connection and reports whether
// it was not enabled before. Files add theirs in their init functions.
var enablers = map[string]func(c *conn) bool{
	"UTF8=ACCEPT": func(c *conn) bool {
		if c.utf8Accept {
			return false
		}
		c.utf8Accept = true
		c.utf8, c.r.UTF8 = true, true
		return true
	},
	"CONDSTORE": func(c *conn) bool {
		if c.condstore {
			return false
		}
		c.enableCondStore()
		return true
	},
}

func (c *conn) cmdNamespace(cmd *imap.Command) error {
	// RFC 2342 §5: one personal namespace, no prefix, "/" delimiter.
	c.w.WriteString(`* NAMESPACE (("" "/")) NIL NIL` + "\r\n")
	return nil
}
