package ipc

// Implementation notes.
//
// One goroutine (readLoop) reads frames. It never blocks on anything but the
// socket: replies go into a per-call buffered channel, requests and events
// start a handler goroutine if one of MaxHandlers slots is free; a request
// that finds none is answered CodeBusy by busyLoop, an event is dropped.
//
// Writes are serialized by wmu, one frame per sendmsg, each under a write
// deadline of WriteTimeout; a peer that does not drain its socket for that
// long gets the channel closed.
//
// mu guards pending, nextID, down and err. The reader hands a reply to its
// caller while holding mu, and a caller that gives up removes its entry under
// mu; so exactly one of them owns the reply's fds, and neither leaks them.
//
// Every fd received is either handed over (Reply.Files, Request.Files) or
// closed on the path that refuses it.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultCallTimeout bounds a Call whose context has no deadline.
const DefaultCallTimeout = 30 * time.Second

const (
	defaultMaxInFlight  = 64
	defaultMaxHandlers  = 32
	defaultWriteTimeout = 10 * time.Second
)

// Socketpair returns the two ends of a new AF_UNIX SOCK_SEQPACKET channel,
// both close-on-exec. Master passes one end to each side of an edge.
func Socketpair() (a, b *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("ipc: create seqpacket socketpair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "ipc-channel"), os.NewFile(uintptr(fds[1]), "ipc-channel"), nil
}

// Options configure a Conn.
type Options struct {
	Local, Peer Role // the roles at this end and the other end

	// Handler serves incoming requests and events. With a nil Handler any
	// incoming request or event is a protocol error.
	Handler Handler

	// MaxInFlight bounds outgoing calls awaiting replies (default 64); Call
	// waits for a slot, honouring its context.
	MaxInFlight int

	// MaxHandlers bounds concurrently running handlers (default 32). A
	// request arriving when all are busy is answered at once with CodeBusy;
	// an event is dropped and logged.
	MaxHandlers int

	// WriteTimeout is how long one frame may wait for the peer to drain its
	// socket before the channel is closed (default 10s). The deadline is
	// refreshed lazily, so a stuck peer is noticed after between half and
	// all of it.
	WriteTimeout time.Duration

	// CallTimeout bounds a Call whose context has no deadline (default
	// DefaultCallTimeout); such calls are failed by a once-a-second sweep,
	// so they cost no timer.
	CallTimeout time.Duration

	// Inline lists request types whose handler runs on the reader goroutine
	// instead of a goroutine of its own. Only for short, bounded CPU work
	// (signatures): it saves a goroutine handoff per request, and requests
	// of these types are then served one at a time per channel.
	Inline []MsgType

	Log *slog.Logger // nil: discard
}

// Handler serves a channel's incoming requests and events.
type Handler interface {
	ServeIPC(ctx context.Context, req *Request) (Message, []*os.File, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req *Request) (Message, []*os.File, error)

// ServeIPC calls f.
func (f HandlerFunc) ServeIPC(ctx context.Context, req *Request) (Message, []*os.File, error) {
	return f(ctx, req)
}

// Request is an incoming request or event.
//
// Files belong to the handler. For a request, the Message the handler
// returns is sent as the reply together with the returned files, which Conn
// closes after sending (also when sending fails). A returned error becomes
// an ErrorReply: a *RemoteError keeps its Code, any other error is sent as
// CodeFailed with err.Error(). For an event the returned message and error
// are ignored and returned files are closed. ctx is cancelled when the Conn
// goes down.
type Request struct {
	Msg   Message
	Files []*os.File
	Event bool
	Conn  *Conn
}

// Reply is the answer to a Call. The caller owns Files and must close them.
type Reply struct {
	Msg   Message
	Files []*os.File
}

type callResult struct {
	reply *Reply
	err   error
}

type pendingCall struct {
	want MsgType
	ch   chan callResult // buffered, 1
	// expires is set for calls whose context has no deadline: the sweeper
	// fails them after DefaultCallTimeout, so such calls need no timer.
	expires time.Time
}

// Conn is one end of a channel: it sends calls and events, matches replies
// to calls, and serves the peer's requests with a Handler.
type Conn struct {
	uc           *net.UnixConn
	local, peer  Role
	handler      Handler
	inline       map[MsgType]bool
	log          *slog.Logger
	writeTimeout time.Duration
	wdeadline    time.Time // write deadline in force; guarded by wmu
	callTimeout  time.Duration

	inflight chan struct{} // semaphore: outgoing calls awaiting replies
	handlers chan struct{} // semaphore: running handlers
	busy     chan uint64   // ids of requests to answer CodeBusy

	ctx    context.Context // handlers' context, cancelled when down
	cancel context.CancelFunc
	done   chan struct{}

	wmu sync.Mutex // serializes writes

	mu      sync.Mutex
	pending map[uint64]*pendingCall
	nextID  uint64
	down    bool
	err     error
}

// New starts a Conn on f, one end of a seqpacket channel from Socketpair
// (possibly received in a PeerUp). New takes ownership of f, also when it
// returns an error.
func New(f *os.File, opts Options) (*Conn, error) {
	if f == nil {
		return nil, errors.New("ipc: new channel: nil file")
	}
	defer f.Close() // net.FileConn works on a duplicate
	if !opts.Local.Valid() || !opts.Peer.Valid() {
		return nil, fmt.Errorf("ipc: new channel: roles %s and %s must both be defined roles", opts.Local, opts.Peer)
	}
	if !linked(opts.Local, opts.Peer) {
		return nil, fmt.Errorf("ipc: new channel: the allow-matrix has no edge between %s and %s", opts.Local, opts.Peer)
	}
	if err := checkSeqpacket(f); err != nil {
		return nil, err
	}
	fc, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("ipc: new channel to %s: %w", opts.Peer, err)
	}
	uc, ok := fc.(*net.UnixConn)
	if !ok {
		fc.Close()
		return nil, fmt.Errorf("ipc: new channel to %s: fd is a %T, not a unix socket", opts.Peer, fc)
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = defaultMaxInFlight
	}
	if opts.MaxHandlers <= 0 {
		opts.MaxHandlers = defaultMaxHandlers
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = defaultWriteTimeout
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = DefaultCallTimeout
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Conn{
		uc:           uc,
		local:        opts.Local,
		peer:         opts.Peer,
		handler:      opts.Handler,
		inline:       map[MsgType]bool{},
		log:          log.With("ipc_local", opts.Local.String(), "ipc_peer", opts.Peer.String()),
		writeTimeout: opts.WriteTimeout,
		callTimeout:  opts.CallTimeout,
		inflight:     make(chan struct{}, opts.MaxInFlight),
		handlers:     make(chan struct{}, opts.MaxHandlers),
		busy:         make(chan uint64, opts.MaxHandlers),
		done:         make(chan struct{}),
		pending:      map[uint64]*pendingCall{},
	}
	for _, t := range opts.Inline {
		if IsRequest(t) {
			c.inline[t] = true
		}
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	go c.readLoop()
	go c.busyLoop()
	go c.sweepLoop()
	return c, nil
}

// checkSeqpacket makes sure f is a SOCK_SEQPACKET socket: on a stream socket
// frames would lose their boundaries.
func checkSeqpacket(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("ipc: new channel: %w", err)
	}
	var typ int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		typ, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE)
	}); err != nil {
		return fmt.Errorf("ipc: new channel: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("ipc: new channel: fd is not a socket: %w", serr)
	}
	if typ != unix.SOCK_SEQPACKET {
		return fmt.Errorf("ipc: new channel: socket type is %d, need SOCK_SEQPACKET (create channels with ipc.Socketpair)", typ)
	}
	return nil
}

// Peer returns the role at the other end.
func (c *Conn) Peer() Role { return c.peer }

// Done is closed when the channel is down.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err says why the channel went down: nil while up and after Close, io.EOF
// when the peer closed it, a *ProtocolError when the peer broke the
// protocol, another error when reading or writing failed.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close takes the channel down. Calls waiting for replies return ErrClosed,
// handlers' contexts are cancelled.
func (c *Conn) Close() error {
	c.shutdown(nil)
	return nil
}

func (c *Conn) isDown() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.down
}

// shutdown takes the channel down once, recording why.
func (c *Conn) shutdown(why error) {
	c.mu.Lock()
	if c.down {
		c.mu.Unlock()
		return
	}
	c.down = true
	c.err = why
	c.mu.Unlock()

	c.cancel()
	c.uc.Close()
	close(c.done)

	var perr *ProtocolError
	switch {
	case why == nil:
		c.log.Debug("ipc channel closed")
	case errors.As(why, &perr):
		c.log.Error("ipc protocol error, channel closed", "err", why)
	case errors.Is(why, io.EOF):
		c.log.Info("ipc channel closed by peer")
	default:
		c.log.Error("ipc channel failed", "err", why)
	}
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}

// Call sends request m with files and waits for its reply. The caller keeps
// ownership of files and must not close them before Call returns.
//
// If ctx has no deadline, DefaultCallTimeout applies. An ErrorReply comes
// back as a *RemoteError; a reply of a type that does not answer m is a
// *ProtocolError and takes the channel down. When the channel is down, or
// goes down while waiting, Call returns an error matching ErrClosed
// (errors.Is). A reply arriving after Call gave up is dropped and its fds
// closed.
func (c *Conn) Call(ctx context.Context, m Message, files ...*os.File) (*Reply, error) {
	if m == nil {
		return nil, errors.New("ipc: call with nil message")
	}
	t := m.Type()
	info, ok := lookupType(t)
	if !ok || info.kind != kindRequest {
		return nil, fmt.Errorf("ipc: call %s: not a request type", MessageName(t))
	}
	if c.isDown() {
		return nil, fmt.Errorf("ipc: call %s to %s: %w", info.name, c.peer, ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("ipc: call %s to %s: %w", info.name, c.peer, err)
	}
	// A call without a deadline gets DefaultCallTimeout from the sweeper
	// rather than from a timer: creating a timer per call is the most
	// expensive part of a call on the TLS signing path.
	_, hasDeadline := ctx.Deadline()
	select {
	case c.inflight <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("ipc: call %s to %s: waiting for an in-flight slot: %w", info.name, c.peer, ctx.Err())
	case <-c.done:
		return nil, fmt.Errorf("ipc: call %s to %s: %w", info.name, c.peer, ErrClosed)
	}
	defer func() { <-c.inflight }()

	pc := &pendingCall{want: info.reply, ch: make(chan callResult, 1)}
	if !hasDeadline {
		pc.expires = time.Now().Add(c.callTimeout)
	}
	c.mu.Lock()
	if c.down {
		c.mu.Unlock()
		return nil, fmt.Errorf("ipc: call %s to %s: %w", info.name, c.peer, ErrClosed)
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = pc
	c.mu.Unlock()

	if err := c.send(Header{Type: t, ID: id}, m, files); err != nil {
		c.abandon(id, pc)
		return nil, err
	}
	select {
	case r := <-pc.ch:
		return r.reply, r.err
	case <-ctx.Done():
		if r, ok := c.abandon(id, pc); ok {
			return r.reply, r.err
		}
		return nil, fmt.Errorf("ipc: call %s to %s: %w", info.name, c.peer, ctx.Err())
	case <-c.done:
		if r, ok := c.abandon(id, pc); ok {
			return r.reply, r.err
		}
		return nil, fmt.Errorf("ipc: call %s to %s: %w", info.name, c.peer, ErrClosed)
	}
}

// sweepInterval is how often calls without a context deadline are checked
// against DefaultCallTimeout.
const sweepInterval = time.Second

// sweepLoop fails calls that passed their DefaultCallTimeout.
func (c *Conn) sweepLoop() {
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case now := <-t.C:
			c.mu.Lock()
			for id, pc := range c.pending {
				if !pc.expires.IsZero() && now.After(pc.expires) {
					delete(c.pending, id)
					pc.ch <- callResult{err: fmt.Errorf("ipc: call to %s: no reply within %s: %w", c.peer, c.callTimeout, context.DeadlineExceeded)}
				}
			}
			c.mu.Unlock()
		}
	}
}

// abandon removes a call from pending. If the reader had already taken it,
// its result is waiting in pc.ch and is returned with ok true.
func (c *Conn) abandon(id uint64, pc *pendingCall) (callResult, bool) {
	c.mu.Lock()
	_, still := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if still {
		return callResult{}, false
	}
	return <-pc.ch, true
}

// Notify sends event m with files. The caller keeps ownership of files.
func (c *Conn) Notify(m Message, files ...*os.File) error {
	if m == nil {
		return errors.New("ipc: notify with nil message")
	}
	if !IsEvent(m.Type()) {
		return fmt.Errorf("ipc: notify %s: not an event type", MessageName(m.Type()))
	}
	return c.send(Header{Type: m.Type(), Flags: FlagEvent}, m, files)
}

// send checks m against the allow-matrix and writes one frame. Errors from
// the check or the encoding leave the channel up; write errors take it down
// and match ErrClosed.
func (c *Conn) send(h Header, m Message, files []*os.File) error {
	name := MessageName(h.Type)
	if err := Allowed(c.local, c.peer, h.Type, len(files)); err != nil {
		return err
	}
	if n := m.FDs(); n != len(files) {
		return fmt.Errorf("ipc: send %s to %s: it carries %d fds, %d given", name, c.peer, n, len(files))
	}
	h.NFD = uint8(len(files))
	b, err := EncodeFrame(h, m)
	if err != nil {
		return err
	}
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			if f == nil {
				return fmt.Errorf("ipc: send %s to %s: file %d is nil", name, c.peer, i)
			}
			rc, err := f.SyscallConn()
			if err != nil {
				return fmt.Errorf("ipc: send %s to %s: file %s: %w", name, c.peer, f.Name(), err)
			}
			if err := rc.Control(func(fd uintptr) { fds[i] = int(fd) }); err != nil {
				return fmt.Errorf("ipc: send %s to %s: file %s: %w", name, c.peer, f.Name(), err)
			}
		}
		oob = unix.UnixRights(fds...)
	}

	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.isDown() {
		return fmt.Errorf("ipc: send %s to %s: %w", name, c.peer, ErrClosed)
	}
	// The deadline is moved only when less than half of WriteTimeout is
	// left, not on every frame: a stuck peer is detected after between half
	// and all of WriteTimeout, and most sends touch no timer.
	if now := time.Now(); c.wdeadline.Sub(now) < c.writeTimeout/2 {
		c.wdeadline = now.Add(c.writeTimeout)
		if err := c.uc.SetWriteDeadline(c.wdeadline); err != nil {
			c.shutdown(fmt.Errorf("ipc: set write deadline: %w", err))
			return fmt.Errorf("ipc: send %s to %s: %w", name, c.peer, ErrClosed)
		}
	}
	n, _, err := c.uc.WriteMsgUnix(b, oob, nil)
	runtime.KeepAlive(files) // the fds stay open until sendmsg copied them
	if err == nil && n != len(b) {
		err = fmt.Errorf("short write of %d of %d bytes", n, len(b))
	}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("%s did not read its channel for %s", c.peer, c.writeTimeout)
		}
		c.shutdown(fmt.Errorf("ipc: send %s: %w", name, err))
		return fmt.Errorf("ipc: send %s to %s: %w (%v)", name, c.peer, ErrClosed, err)
	}
	return nil
}

// readLoop reads and dispatches frames until the channel goes down.
func (c *Conn) readLoop() {
	buf := make([]byte, MaxFrame)
	// Room for one fd more than a frame may carry, so an excess shows as a
	// count rather than only as MSG_CTRUNC.
	oob := make([]byte, unix.CmsgSpace((MaxFDs+1)*4))
	for {
		n, oobn, flags, _, err := c.uc.ReadMsgUnix(buf, oob)
		files, ferr := receivedFiles(oob[:oobn])
		if err != nil {
			closeFiles(files)
			switch {
			case errors.Is(err, io.EOF) && (len(files) > 0 || ferr != nil):
				// An empty frame reads like EOF; with fds it is neither.
				c.shutdown(protoErrorf("empty frame with control data"))
			case errors.Is(err, io.EOF):
				c.shutdown(io.EOF)
			default:
				c.shutdown(fmt.Errorf("ipc: read from %s: %w", c.peer, err))
			}
			return
		}
		var perr *ProtocolError
		switch {
		case flags&unix.MSG_TRUNC != 0:
			perr = protoErrorf("frame longer than %d bytes (truncated)", MaxFrame)
		case flags&unix.MSG_CTRUNC != 0:
			perr = protoErrorf("control data truncated: more than %d fds sent", MaxFDs+1)
		case ferr != nil:
			perr = ferr
		}
		if perr != nil {
			closeFiles(files)
			c.shutdown(perr)
			return
		}
		h, m, err := DecodeFrame(buf[:n], len(files))
		if err != nil {
			closeFiles(files)
			c.shutdown(err)
			return
		}
		if !c.dispatch(h, m, files) {
			return
		}
	}
}

// receivedFiles turns the SCM_RIGHTS control messages in oob into files.
// Anything else in oob is a protocol error; the files are returned anyway so
// the caller closes them.
func receivedFiles(oob []byte) ([]*os.File, *ProtocolError) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, protoErrorf("malformed control data: %v", err)
	}
	var files []*os.File
	var perr *ProtocolError
	for i := range msgs {
		cm := &msgs[i]
		if cm.Header.Level != unix.SOL_SOCKET || cm.Header.Type != unix.SCM_RIGHTS {
			if perr == nil {
				perr = protoErrorf("unexpected control message level %d type %d", cm.Header.Level, cm.Header.Type)
			}
			continue
		}
		fds, err := unix.ParseUnixRights(cm)
		if err != nil {
			if perr == nil {
				perr = protoErrorf("malformed SCM_RIGHTS: %v", err)
			}
			continue
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "ipc-received"))
		}
	}
	return files, perr
}

// dispatch routes one decoded frame. It returns false when the channel went
// down. It never blocks.
func (c *Conn) dispatch(h Header, m Message, files []*os.File) bool {
	if err := Allowed(c.peer, c.local, h.Type, len(files)); err != nil {
		closeFiles(files)
		c.shutdown(&ProtocolError{Reason: err.Error()})
		return false
	}
	if h.Flags&FlagReply != 0 {
		return c.deliver(h, m, files)
	}
	event := h.Flags&FlagEvent != 0
	if c.handler == nil {
		closeFiles(files)
		c.shutdown(protoErrorf("%s sent %s, but this end serves no requests or events", c.peer, MessageName(h.Type)))
		return false
	}
	if !event && c.inline[h.Type] {
		// Served here, without a handler slot, so it never waits for one.
		req := &Request{Msg: m, Files: files, Conn: c}
		rm, rfiles, err := c.runHandler(h, req)
		c.reply(h, rm, rfiles, err)
		return true
	}
	select {
	case c.handlers <- struct{}{}:
		go c.serve(h, &Request{Msg: m, Files: files, Event: event, Conn: c})
		return true
	default:
	}
	closeFiles(files)
	if event {
		c.log.Warn("ipc event dropped: every handler is busy", "msg", MessageName(h.Type))
		return true
	}
	select {
	case c.busy <- h.ID:
		return true
	default:
		// The peer keeps sending while not reading our answers.
		c.shutdown(protoErrorf("%s keeps more than %d requests waiting for a busy answer", c.peer, cap(c.busy)))
		return false
	}
}

// deliver hands a reply to its waiting call; a reply nobody waits for any
// more is dropped with its fds.
func (c *Conn) deliver(h Header, m Message, files []*os.File) bool {
	c.mu.Lock()
	pc, ok := c.pending[h.ID]
	if !ok {
		c.mu.Unlock()
		closeFiles(files)
		c.log.Debug("ipc late reply dropped", "msg", MessageName(h.Type), "id", h.ID)
		return true
	}
	delete(c.pending, h.ID)
	var perr *ProtocolError
	var res callResult
	switch {
	case h.Type == TypeErrorReply:
		er := m.(*ErrorReply)
		res.err = &RemoteError{Code: er.Code, Message: er.Message}
	case h.Type != pc.want:
		perr = protoErrorf("reply %s to a request expecting %s", MessageName(h.Type), MessageName(pc.want))
		res.err = perr
	default:
		res.reply = &Reply{Msg: m, Files: files}
	}
	pc.ch <- res
	c.mu.Unlock()
	if perr != nil {
		closeFiles(files)
		c.shutdown(perr)
		return false
	}
	return true
}

// busyLoop answers requests that found every handler slot taken.
func (c *Conn) busyLoop() {
	for {
		select {
		case <-c.done:
			return
		case id := <-c.busy:
			m := &ErrorReply{Code: CodeBusy, Message: fmt.Sprintf("%s is busy: all %d handlers are running", c.local, cap(c.handlers))}
			if err := c.send(Header{Type: TypeErrorReply, Flags: FlagReply, ID: id}, m, nil); err != nil {
				c.log.Debug("ipc busy reply not sent", "err", err)
			}
		}
	}
}

// serve runs the handler for one request or event and sends the reply.
func (c *Conn) serve(h Header, req *Request) {
	defer func() { <-c.handlers }()
	m, files, err := c.runHandler(h, req)
	if req.Event {
		closeFiles(files)
		if err != nil {
			c.log.Debug("ipc event handler failed", "msg", MessageName(h.Type), "err", err)
		}
		return
	}
	c.reply(h, m, files, err)
}

// runHandler calls the handler; a panic becomes a CodeFailed error.
func (c *Conn) runHandler(h Header, req *Request) (m Message, files []*os.File, err error) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("ipc handler panicked", "msg", MessageName(h.Type), "panic", p, "stack", string(debug.Stack()))
			m, files, err = nil, nil, Errorf(CodeFailed, "%s failed handling %s", c.local, MessageName(h.Type))
		}
	}()
	return c.handler.ServeIPC(c.ctx, req)
}

// reply sends the handler's answer to request h, or an ErrorReply.
func (c *Conn) reply(h Header, m Message, files []*os.File, herr error) {
	defer closeFiles(files)
	name := MessageName(h.Type)
	want := messageTable[h.Type].reply
	if herr == nil {
		var bad error
		switch {
		case m == nil:
			bad = fmt.Errorf("handler for %s returned no reply", name)
		case m.Type() != want && m.Type() != TypeErrorReply:
			bad = fmt.Errorf("handler for %s returned %s, want %s", name, MessageName(m.Type()), MessageName(want))
		case m.FDs() != len(files):
			bad = fmt.Errorf("handler for %s returned %s with %d files, it carries %d", name, MessageName(m.Type()), len(files), m.FDs())
		}
		if bad != nil {
			c.log.Error("ipc handler returned a bad reply", "err", bad)
			herr = Errorf(CodeFailed, "%s: internal error: %v", c.local, bad)
		}
	}
	send, sendFiles := m, files
	if herr != nil {
		send, sendFiles = errorReply(herr), nil
	}
	err := c.send(Header{Type: send.Type(), Flags: FlagReply, ID: h.ID}, send, sendFiles)
	if err == nil || errors.Is(err, ErrClosed) {
		return
	}
	// The reply could not be encoded or is not allowed here: say so, so the
	// caller does not wait for its deadline.
	c.log.Error("ipc reply not sent", "msg", name, "err", err)
	er := errorReply(Errorf(CodeFailed, "%s: internal error: reply to %s: %v", c.local, name, err))
	if err := c.send(Header{Type: TypeErrorReply, Flags: FlagReply, ID: h.ID}, er, nil); err != nil {
		c.log.Debug("ipc error reply not sent", "err", err)
	}
}

// errorReply turns a handler's error into an ErrorReply.
func errorReply(err error) *ErrorReply {
	var re *RemoteError
	if errors.As(err, &re) {
		return &ErrorReply{Code: re.Code, Message: ClipText(re.Message, MaxErrorMessage)}
	}
	return &ErrorReply{Code: CodeFailed, Message: ClipText(err.Error(), MaxErrorMessage)}
}
