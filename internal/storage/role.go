// Package storage is moxd-store: the only process that opens account
// databases, message files and credentials (DESIGN.md §5, §6).
//
// It serves deliveries from smtp and queue (bodies through pipes, one
// group commit per account; after the commit, events for queue about
// deliveries to accounts with an incoming webhook and about DSNs,
// incoming.go), authentication and account sessions for smtp,
// submission, imap and web, and administration relayed by master
// (passwords, account removal, import, export, backup, local delivery).
// The storage itself is package account; the layout and commit protocol
// are described in docs/storage.md. Other roles talk to this process
// through package storeclient, never through these packages.
package storage

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"moxd/internal/auth"
	"moxd/internal/config"
	"moxd/internal/datadir"
	"moxd/internal/ipc"
	"moxd/internal/storage/login"
	"moxd/internal/worker"
)

// DefaultMaxMessage is the largest message store accepts when its slice
// sets no limit (smtp.max_message_size).
const DefaultMaxMessage = 100 << 20

// MaxHandlers is the number of requests store serves at once per peer
// channel: a failed login holds a handler through its failure delay, and
// must not make the channel's other requests busy.
const MaxHandlers = 512

// service is the running store role.
type service struct {
	log      *slog.Logger
	store    *Store
	bodies   *bodies
	sessions *sessions
	tokens   *auth.Tokens
	hasher   *auth.Hasher
	login    *login.Service
	events   *events
	incoming *incoming
	side     *sideRecords
	disk     *diskSpace

	importsMu sync.Mutex
	imports   map[uint64]*importJob

	// channel returns the peer role and generation of a connection.
	channel      func(c *ipc.Conn) (ipc.Role, uint64, bool)
	notifyMaster func(m ipc.Message)

	delivered atomic.Uint64
}

// Run is the store role.
func Run(ctx context.Context, w *worker.Worker) error {
	var slice config.Slice
	if err := w.Config(&slice); err != nil {
		return err
	}
	if err := datadir.Check(slice.Dir); err != nil {
		return fmt.Errorf("%s: %w", w.Role, err)
	}
	if slice.Store == nil {
		return fmt.Errorf("config slice without store section")
	}
	sv, err := newService(slice.Dir, w.Log, time.Now)
	if err != nil {
		return err
	}
	defer sv.close()
	sv.channel = w.Channel
	sv.notifyMaster = func(m ipc.Message) {
		if err := w.NotifyMaster(m); err != nil {
			w.Log.Debug("notify master", "err", err)
		}
	}
	sv.events.send = func(role ipc.Role, m ipc.Message) error {
		c, err := w.Peer(role)
		if err != nil {
			// No channel: the role has no sessions that could miss this.
			return nil
		}
		return c.Notify(m)
	}
	sv.incoming.send = func(m ipc.Message) error {
		c, err := w.Peer(ipc.RoleQueue)
		if err != nil {
			return err
		}
		return c.Notify(m)
	}
	if err := sv.store.configure(*slice.Store); err != nil {
		w.Log.Error("accounts", "err", err)
	}
	w.OnReload(func(ctx context.Context) error {
		var slice config.Slice
		if err := w.Config(&slice); err != nil {
			return err
		}
		if slice.Store == nil {
			return fmt.Errorf("config slice without store section")
		}
		return sv.store.configure(*slice.Store)
	})
	w.OnPeerClosed(sv.channelClosed)
	w.OnStatus(sv.counters)
	h := ipc.HandlerFunc(sv.serve)
	for _, r := range []ipc.Role{ipc.RoleMaster, ipc.RoleSMTP, ipc.RoleSubmission, ipc.RoleQueue, ipc.RoleIMAP, ipc.RoleWeb} {
		w.Handle(r, h)
	}
	go sv.events.run(ctx)
	go sv.incoming.run(ctx)
	go sv.login.Run(ctx)
	go sv.housekeeping(ctx)
	w.Ready()
	<-ctx.Done()
	return nil
}

// newService opens the store in dir.
func newService(dir string, log *slog.Logger, now func() time.Time) (*service, error) {
	st, err := openStore(dir, log, now)
	if err != nil {
		return nil, err
	}
	side, err := openSideRecords(dir, log)
	if err != nil {
		return nil, err
	}
	sv := &service{
		log:      log,
		store:    st,
		bodies:   newBodies(log, st.tmpDir, func() int64 { max, _ := st.limits(); return max }, now),
		disk:     newDiskSpace(dir, now),
		sessions: newSessions(),
		tokens:   auth.NewTokens(now),
		hasher:   auth.NewHasher(runtime.NumCPU()),
		side:     side,
		imports:  map[uint64]*importJob{},
	}
	sv.events = newEvents(log, func(ipc.Role, ipc.Message) error { return nil }, sv.sessions.watched)
	sv.incoming = newIncoming(log)
	st.onChange = sv.events.add
	sv.login = login.New(login.Config{
		Lookup:         sv.lookupCredentials,
		Hasher:         sv.hasher,
		Limiter:        auth.NewLimiter(auth.DefaultLimiterConfig(), now),
		Tokens:         sv.tokens,
		Log:            log,
		Now:            now,
		RecordFailures: side.recordFailures,
	})
	return sv, nil
}

func (sv *service) close() {
	sv.store.close()
	sv.side.close()
}

// lookupCredentials resolves a login name (an address or an account name)
// to the account and its credentials.
func (sv *service) lookupCredentials(ctx context.Context, name string) (string, auth.Credentials, error) {
	acct, ok := sv.store.Resolve(name)
	if !ok {
		return "", auth.Credentials{}, auth.ErrUnknownUser
	}
	a, err := sv.store.Account(acct)
	if err != nil {
		return "", auth.Credentials{}, err
	}
	c, has, err := a.Credentials()
	if err != nil {
		return "", auth.Credentials{}, err
	}
	if !has {
		return "", auth.Credentials{}, fmt.Errorf("%w: account %s has no password set", auth.ErrUnknownUser, acct)
	}
	return acct, c, nil
}

// serve dispatches one request by the family of its message; the IPC
// allow-matrix has already checked that the peer may send that family.
func (sv *service) serve(ctx context.Context, req *ipc.Request) (ipc.Message, []*os.File, error) {
	fam, _ := ipc.TypeFamily(req.Msg.Type())
	if fam == ipc.FamStoreAdmin {
		// Only master's channel carries this family (the allow-matrix).
		return sv.serveAdmin(ctx, req)
	}
	role, gen, ok := sv.channel(req.Conn)
	if !ok {
		closeFiles(req.Files)
		return nil, nil, ipc.Errorf(ipc.CodeUnavailable, "channel is being replaced")
	}
	ch := channelKey{role, gen}
	switch fam {
	case ipc.FamDeliver:
		return sv.serveDeliver(ctx, ch, req)
	case ipc.FamSession:
		if login.Handles(req.Msg.Type()) {
			reply, err := sv.login.Handle(ctx, role, gen, req)
			return reply, nil, err
		}
		return sv.serveSession(ctx, ch, req)
	}
	closeFiles(req.Files)
	return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "store does not serve %s", req.Msg.Type())
}

// channelClosed drops what was bound to a closed channel: its sessions,
// tokens, login exchanges and bodies.
func (sv *service) channelClosed(role ipc.Role, gen uint64) {
	ch := channelKey{role, gen}
	sv.sessions.removeWhere(func(s *session) bool { return s.ch == ch })
	sv.tokens.RevokeGeneration(role.String(), gen)
	sv.login.RevokeGeneration(role, gen)
	sv.bodies.releaseWhere(func(pb *pendingBody) bool { return pb.owner == ch })
}

// housekeeping expires old bodies and idle imports and writes side
// records.
func (sv *service) housekeeping(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			sv.side.flush()
			return
		case now := <-t.C:
			sv.bodies.releaseWhere(func(pb *pendingBody) bool { return now.Sub(pb.created) > bodyLifetime })
			sv.expireImports(now)
			sv.side.flush()
		}
	}
}

func (sv *service) counters() []ipc.Counter {
	return []ipc.Counter{
		{Name: "accounts_open", Value: uint64(sv.store.openCount())},
		{Name: "sessions", Value: uint64(sv.sessions.count())},
		{Name: "bodies_pending", Value: uint64(sv.bodies.count())},
		{Name: "delivered", Value: sv.delivered.Load()},
		{Name: "incoming_events_sent", Value: sv.incoming.sent.Load()},
		{Name: "incoming_events_dropped", Value: sv.incoming.dropped.Load()},
	}
}
