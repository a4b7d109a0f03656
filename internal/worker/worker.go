// Package worker is the runtime shared by every moxd worker process (keys,
// store, queue, smtp, submission, imap, web).
//
// A worker is exec'd by moxd-master under its own uid with exactly one
// inherited channel, fd 3, to master. Startup is always the same:
//
//  1. harden the process (no core dumps, not dumpable, no new privileges) and
//     refuse to run as root;
//  2. say Hello with the role and build id; master refuses a build that differs
//     from its own;
//  3. pull the role's config slice and its listener fds;
//  4. run the role, which calls Ready when it serves.
//
// Master pushes channels to peer roles (PeerUp) whenever a peer (re)starts; the
// worker keeps the newest per peer. When the master channel closes, the worker
// exits at once: nothing runs without supervision.
package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"moxd/internal/ipc"
	"moxd/internal/mlog"
	"moxd/internal/version"
)

// MasterFD is the fd number of the channel to master in every worker.
const MasterFD = 3

// Exit codes of a worker; master logs them.
const (
	ExitOK            = 0
	ExitFailed        = 1
	ExitUsage         = 2
	ExitBuildMismatch = 3
)

// Listener is one listening socket handed over by master.
type Listener struct {
	Kind string // config key: smtp, submission, submissions, imap, imaps, http, https
	Addr string // bound address
	net.Listener
}

// Role is what a role package provides to the runtime.
type Role struct {
	Role ipc.Role
	// Run serves until ctx is cancelled (shutdown or master gone), then returns
	// after draining. It calls w.Ready once it serves.
	Run func(ctx context.Context, w *Worker) error
	// Inline are request types from peers served on the channel's reader
	// goroutine (short CPU-bound work such as signatures); see ipc.Options.
	Inline []ipc.MsgType
	// MaxHandlers is the number of requests from one peer served at once
	// (0: the ipc default). Store raises it: a failed login holds its
	// handler through the failure delay.
	MaxHandlers int
}

// Worker is the running worker's connection to master and peers.
type Worker struct {
	Role       ipc.Role
	Log        *slog.Logger
	Level      *slog.LevelVar
	Generation uint64

	master    *ipc.Conn
	config    []byte
	listeners []Listener

	mu        sync.Mutex
	peers     map[ipc.Role]*peer
	handlers  map[ipc.Role]ipc.Handler
	status    func() []ipc.Counter
	reload    func(ctx context.Context) error
	closed    func(p ipc.Role, gen uint64)
	readyOnce sync.Once

	inline       []ipc.MsgType
	maxHandlers  int
	shutdown     context.CancelFunc
	shutdownOnce sync.Once
	grace        chan time.Duration
	done         chan struct{} // closed when Run has returned
}

type peer struct {
	conn    *ipc.Conn
	gen     uint64
	changed chan struct{} // closed and replaced on every change
}

// Main runs a worker process for r and never returns.
func Main(r Role) {
	os.Exit(run(r))
}

func run(r Role) int {
	name := r.Role.String()
	if err := harden(); err != nil {
		fmt.Fprintf(os.Stderr, "moxd-%s: %v\n", name, err)
		return ExitFailed
	}
	if os.Getuid() == 0 || os.Geteuid() == 0 || os.Getgid() == 0 || os.Getegid() == 0 {
		fmt.Fprintf(os.Stderr, "moxd-%s: refusing to run as root: workers are started by moxd-master under their own user (see users.%s in moxd.conf)\n", name, name)
		return ExitFailed
	}
	if typ, err := unix.GetsockoptInt(MasterFD, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || typ != unix.SOCK_SEQPACKET {
		fmt.Fprintf(os.Stderr, "moxd-%s: no channel to moxd-master on fd %d: this program is started by moxd-master, not by hand\n", name, MasterFD)
		return ExitUsage
	}
	unix.CloseOnExec(MasterFD)

	level := new(slog.LevelVar)
	log := slog.New(mlog.NewHandler(os.Stderr, mlog.Options{Level: level}))
	// Master owns our lifetime; terminal signals are not ours to act on.
	signal.Ignore(syscall.SIGINT, syscall.SIGHUP, syscall.SIGPIPE)

	w := &Worker{
		Role:        r.Role,
		Log:         log,
		Level:       level,
		peers:       map[ipc.Role]*peer{},
		handlers:    map[ipc.Role]ipc.Handler{},
		grace:       make(chan time.Duration, 1),
		done:        make(chan struct{}),
		inline:      r.Inline,
		maxHandlers: r.MaxHandlers,
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.shutdown = cancel
	defer cancel()

	mc, err := ipc.New(os.NewFile(MasterFD, "master"), ipc.Options{
		Local:   r.Role,
		Peer:    ipc.RoleMaster,
		Handler: ipc.HandlerFunc(w.serveMaster),
		Log:     log,
	})
	if err != nil {
		log.Error("master channel", "err", err)
		return ExitFailed
	}
	w.master = mc
	go func() {
		<-mc.Done()
		// Master is gone or broke the channel: nothing may run unsupervised.
		os.Exit(ExitFailed)
	}()

	if code, err := w.handshake(ctx); err != nil {
		log.Error("handshake with master", "err", err)
		return code
	}

	runErr := make(chan error, 1)
	go func() {
		defer close(w.done)
		runErr <- r.Run(ctx, w)
	}()
	select {
	case err := <-runErr:
		if err != nil {
			log.Error("role stopped", "err", err)
			return ExitFailed
		}
		if ctx.Err() == nil {
			log.Error("role stopped without being asked to")
			return ExitFailed
		}
		return ExitOK
	case <-ctx.Done():
		// Shutdown requested: give Run its grace period.
		grace := <-w.grace
		select {
		case err := <-runErr:
			if err != nil && !errors.Is(err, context.Canceled) {
				log.Error("role stopped", "err", err)
			}
		case <-time.After(grace):
			log.Warn("role did not drain within the grace period", "grace", grace)
		}
		return ExitOK
	}
}

func (w *Worker) handshake(ctx context.Context) (int, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rep, err := w.master.Call(cctx, &ipc.Hello{Role: w.Role, BuildID: version.BuildID(), PID: uint32(os.Getpid())})
	if err != nil {
		var re *ipc.RemoteError
		if errors.As(err, &re) && re.Code == ipc.CodeBuildMismatch {
			return ExitBuildMismatch, err
		}
		return ExitFailed, err
	}
	hr := rep.Msg.(*ipc.HelloReply)
	w.Generation = hr.Generation

	buf, err := w.pullConfig(cctx)
	if err != nil {
		return ExitFailed, err
	}
	w.config = buf

	// Listeners, pulled in batches of at most ipc.MaxFDs.
	for {
		rep, err := w.master.Call(cctx, &ipc.GetListeners{Start: uint16(len(w.listeners))})
		if err != nil {
			return ExitFailed, fmt.Errorf("get listeners: %w", err)
		}
		b := rep.Msg.(*ipc.ListenerBatch)
		for i, li := range b.Listeners {
			f := rep.Files[i]
			ln, err := net.FileListener(f)
			f.Close()
			if err != nil {
				for _, g := range rep.Files[i+1:] {
					g.Close()
				}
				return ExitFailed, fmt.Errorf("listener %s %s: %w", li.Kind, li.Addr, err)
			}
			w.listeners = append(w.listeners, Listener{Kind: li.Kind, Addr: li.Addr, Listener: ln})
		}
		if len(w.listeners) >= int(b.Total) || len(b.Listeners) == 0 {
			break
		}
	}
	return ExitOK, nil
}

// pullConfig fetches the role's config slice from master in chunks.
func (w *Worker) pullConfig(ctx context.Context) ([]byte, error) {
	var buf []byte
	for {
		rep, err := w.master.Call(ctx, &ipc.GetConfig{Offset: uint32(len(buf))})
		if err != nil {
			return nil, fmt.Errorf("get config: %w", err)
		}
		c := rep.Msg.(*ipc.ConfigChunk)
		buf = append(buf, c.Data...)
		if uint32(len(buf)) >= c.Total || len(c.Data) == 0 {
			if uint32(len(buf)) != c.Total {
				return nil, fmt.Errorf("config: got %d bytes, master announced %d", len(buf), c.Total)
			}
			return buf, nil
		}
	}
}

// Config decodes the role's config slice (JSON written by master) into v,
// rejecting unknown fields.
func (w *Worker) Config(v any) error {
	return DecodeSlice(w.config, v)
}

// DecodeSlice strictly decodes a config slice.
func DecodeSlice(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("config slice from master: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("config slice from master: trailing data")
	}
	return nil
}

// Listeners returns the listeners master passed.
func (w *Worker) Listeners() []Listener {
	return w.listeners
}

// Ready tells master this role serves. Only the first call counts.
func (w *Worker) Ready() {
	w.readyOnce.Do(func() {
		if err := w.master.Notify(&ipc.Ready{}); err != nil {
			w.Log.Error("report ready", "err", err)
		}
	})
}

// Handle sets the handler for requests from peer role p. Requests arriving
// before a handler is set are answered "unavailable".
func (w *Worker) Handle(p ipc.Role, h ipc.Handler) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.handlers[p] = h
}

// OnStatus sets the function that provides counters for moxctl status.
func (w *Worker) OnStatus(f func() []ipc.Counter) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.status = f
}

// OnReload sets the function called after master says the config changed; the
// new slice is already available through Config.
func (w *Worker) OnReload(f func(ctx context.Context) error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.reload = f
}

// OnPeerClosed sets the function called when a channel to a peer closes,
// with the channel's generation; store revokes what was bound to it.
func (w *Worker) OnPeerClosed(f func(p ipc.Role, gen uint64)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = f
}

// Channel returns the peer role and generation of c when it is the
// worker's current channel to that peer.
func (w *Worker) Channel(c *ipc.Conn) (ipc.Role, uint64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for r, pe := range w.peers {
		if pe.conn == c {
			return r, pe.gen, true
		}
	}
	return 0, 0, false
}

// NotifyMaster sends an event to master (progress of a long job).
func (w *Worker) NotifyMaster(m ipc.Message) error {
	return w.master.Notify(m)
}

// Violation reports to master that peer broke the protocol; master restarts it.
func (w *Worker) Violation(p ipc.Role, reason string) {
	if err := w.master.Notify(&ipc.Violation{Peer: p, Reason: reason}); err != nil {
		w.Log.Error("report protocol violation", "peer", p.String(), "err", err)
	}
}

// Peer returns the current channel to role p, or ipc.ErrClosed at once when
// there is none (the peer is down or restarting).
func (w *Worker) Peer(p ipc.Role) (*ipc.Conn, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	pe := w.peers[p]
	if pe == nil || pe.conn == nil {
		return nil, ipc.ErrClosed
	}
	select {
	case <-pe.conn.Done():
		return nil, ipc.ErrClosed
	default:
		return pe.conn, nil
	}
}

// WaitPeer waits until a channel to role p is up, or ctx ends.
func (w *Worker) WaitPeer(ctx context.Context, p ipc.Role) (*ipc.Conn, error) {
	for {
		w.mu.Lock()
		pe := w.peerLocked(p)
		conn, changed := pe.conn, pe.changed
		w.mu.Unlock()
		if conn != nil {
			select {
			case <-conn.Done():
			default:
				return conn, nil
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %s: %w", p, ctx.Err())
		}
	}
}

// PeerChanged returns a channel that is closed when the channel to p is
// replaced, e.g. to refetch certificates after keys restarted.
func (w *Worker) PeerChanged(p ipc.Role) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.peerLocked(p).changed
}

func (w *Worker) peerLocked(p ipc.Role) *peer {
	pe := w.peers[p]
	if pe == nil {
		pe = &peer{changed: make(chan struct{})}
		w.peers[p] = pe
	}
	return pe
}

// serveMaster handles master's supervision messages.
func (w *Worker) serveMaster(ctx context.Context, req *ipc.Request) (ipc.Message, []*os.File, error) {
	switch m := req.Msg.(type) {
	case *ipc.PeerUp:
		w.peerUp(m.Peer, m.Generation, req.Files[0])
		return nil, nil, nil
	case *ipc.SetLogLevel:
		if old := w.Level.Level(); old != slog.Level(m.Level) {
			w.Level.Set(slog.Level(m.Level))
			w.Log.Info("log level changed", "level", slog.Level(m.Level).String(), "was", old.String())
		}
		return nil, nil, nil
	case *ipc.GetStatus:
		w.mu.Lock()
		f := w.status
		w.mu.Unlock()
		var counters []ipc.Counter
		if f != nil {
			counters = f()
		}
		start := int(m.Start)
		if start > len(counters) {
			start = len(counters)
		}
		rest := counters[start:]
		if len(rest) > maxStatusBatch {
			rest = rest[:maxStatusBatch]
		}
		return &ipc.StatusReply{Total: uint16(len(counters)), Counters: rest}, nil, nil
	case *ipc.Shutdown:
		w.shutdownOnce.Do(func() {
			w.Log.Info("shutting down", "grace", time.Duration(m.GraceMillis)*time.Millisecond)
			w.grace <- time.Duration(m.GraceMillis) * time.Millisecond
			w.shutdown()
		})
		select {
		case <-w.done:
		case <-time.After(time.Duration(m.GraceMillis) * time.Millisecond):
		}
		return &ipc.ShutdownDone{}, nil, nil
	case *ipc.Reload:
		go w.doReload()
		return nil, nil, nil
	}
	// Other families from master (e.g. keys administration) go to the role.
	w.mu.Lock()
	h := w.handlers[ipc.RoleMaster]
	w.mu.Unlock()
	if h == nil {
		for _, f := range req.Files {
			f.Close()
		}
		return nil, nil, ipc.Errorf(ipc.CodeUnavailable, "%s does not serve %s (yet)", w.Role, ipc.MessageName(req.Msg.Type()))
	}
	return h.ServeIPC(ctx, req)
}

func (w *Worker) doReload() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	buf, err := w.pullConfig(ctx)
	if err != nil {
		w.Log.Error("reload", "err", err)
		return
	}
	w.mu.Lock()
	w.config = buf
	f := w.reload
	w.mu.Unlock()
	if f != nil {
		if err := f(ctx); err != nil {
			w.Log.Error("reload", "err", err)
			return
		}
	}
	w.Log.Info("configuration reloaded")
}

func (w *Worker) peerUp(p ipc.Role, gen uint64, f *os.File) {
	conn, err := ipc.New(f, ipc.Options{
		Local: w.Role,
		Peer:  p,
		Handler: ipc.HandlerFunc(func(ctx context.Context, req *ipc.Request) (ipc.Message, []*os.File, error) {
			w.mu.Lock()
			h := w.handlers[p]
			w.mu.Unlock()
			if h == nil {
				for _, f := range req.Files {
					f.Close()
				}
				return nil, nil, ipc.Errorf(ipc.CodeUnavailable, "%s serves no requests from %s", w.Role, p)
			}
			return h.ServeIPC(ctx, req)
		}),
		Inline:      w.inline,
		MaxHandlers: w.maxHandlers,
		Log:         w.Log.With("peer", p.String()),
	})
	if err != nil {
		w.Log.Error("new peer channel", "peer", p.String(), "err", err)
		return
	}
	w.mu.Lock()
	pe := w.peerLocked(p)
	if pe.conn != nil && gen <= pe.gen {
		// Handover events may be handled out of order; an older channel
		// than the one in use is stale.
		w.mu.Unlock()
		conn.Close()
		return
	}
	old := pe.conn
	pe.conn, pe.gen = conn, gen
	close(pe.changed)
	pe.changed = make(chan struct{})
	w.mu.Unlock()
	if old != nil {
		old.Close()
	}
	w.Log.Debug("peer channel up", "peer", p.String(), "generation", gen)
	go func() {
		<-conn.Done()
		var pe *ipc.ProtocolError
		if err := conn.Err(); errors.As(err, &pe) {
			w.Violation(p, pe.Error())
		}
		w.mu.Lock()
		f := w.closed
		w.mu.Unlock()
		if f != nil {
			f(p, gen)
		}
	}()
}

// maxStatusBatch bounds the counters in one StatusReply frame.
const maxStatusBatch = 100

// Accept serves every listener: each accepted connection runs handle in its
// own goroutine. The returned wait blocks until ctx ends, then closes the
// listeners and waits for the running handlers (which see ctx cancelled).
func (w *Worker) Accept(ctx context.Context, handle func(ctx context.Context, l Listener, conn net.Conn)) (wait func()) {
	var loops, sessions sync.WaitGroup
	for _, l := range w.listeners {
		loops.Add(1)
		go func() {
			defer loops.Done()
			for {
				conn, err := l.Accept()
				if err != nil {
					if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
						return
					}
					// E.g. out of fds: back off instead of spinning.
					w.Log.Error("accept", "listener", l.Kind, "addr", l.Addr, "err", err)
					time.Sleep(100 * time.Millisecond)
					continue
				}
				sessions.Add(1)
				go func() {
					defer sessions.Done()
					handle(ctx, l, conn)
				}()
			}
		}()
	}
	return func() {
		<-ctx.Done()
		for _, l := range w.listeners {
			l.Close()
		}
		loops.Wait()
		sessions.Wait()
	}
}
