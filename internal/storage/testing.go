package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"moxd/internal/config"
	"moxd/internal/ipc"
)

// TestService is a store service running in the calling process, for the
// tests of other roles (package storetest wraps it): they talk to it over
// real IPC channels, through package storeclient, as they would to
// moxd-store. It is not used by moxd itself.
//
// Each channel from Conn gets a new generation, like a channel master
// hands out; change events and incoming-delivery events for a role go to
// that role's most recent channel.
type TestService struct {
	sv     *service
	cancel context.CancelFunc
	bg     sync.WaitGroup // the service's background goroutines
	master *ipc.Conn      // for SetPassword

	mu       sync.Mutex
	closed   bool
	gen      uint64
	chans    map[*ipc.Conn]channelKey // store ends
	latest   map[ipc.Role]*ipc.Conn   // store end of each role's newest channel
	conns    []*ipc.Conn              // both ends of all channels, to close
	handlers sync.WaitGroup           // requests being served, and channel watchers
}

// NewTestService opens a store in dir (an existing, empty directory for a
// new store) configured with slice, and starts its background work. Close
// stops it.
func NewTestService(dir string, log *slog.Logger, slice config.StoreSlice) (*TestService, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sv, err := newService(dir, log, time.Now)
	if err != nil {
		return nil, err
	}
	ts := &TestService{sv: sv, chans: map[*ipc.Conn]channelKey{}, latest: map[ipc.Role]*ipc.Conn{}}
	sv.channel = func(c *ipc.Conn) (ipc.Role, uint64, bool) {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		k, ok := ts.chans[c]
		return k.role, k.gen, ok
	}
	sv.notifyMaster = func(ipc.Message) {}
	sv.events.send = func(role ipc.Role, m ipc.Message) error {
		c := ts.latestConn(role)
		if c == nil {
			return nil // as in Run: no channel, no sessions to miss this
		}
		return c.Notify(m)
	}
	sv.incoming.send = func(m ipc.Message) error {
		c := ts.latestConn(ipc.RoleQueue)
		if c == nil {
			return ipc.ErrClosed
		}
		return c.Notify(m)
	}
	if err := sv.store.configure(slice); err != nil {
		sv.close()
		return nil, fmt.Errorf("configure test store: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts.cancel = cancel
	for _, run := range []func(context.Context){
		sv.events.run,
		sv.incoming.run,
		func(ctx context.Context) { sv.login.Run(ctx) },
		sv.housekeeping,
	} {
		ts.bg.Add(1)
		go func() {
			defer ts.bg.Done()
			run(ctx)
		}()
	}
	ts.master, err = ts.Conn(ipc.RoleMaster, nil)
	if err != nil {
		ts.Close()
		return nil, err
	}
	return ts, nil
}

func (ts *TestService) latestConn(role ipc.Role) *ipc.Conn {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.latest[role]
}

// Conn returns the client end of a new channel from role to the store.
// Requests and events store sends on it (change events for imap and web,
// incoming deliveries for queue) go to h; with a nil h they are dropped.
// The channel is closed by Close, or earlier by the caller, which store
// then treats like a role restart (its sessions and tokens end).
func (ts *TestService) Conn(role ipc.Role, h ipc.Handler) (*ipc.Conn, error) {
	if h == nil {
		h = ipc.HandlerFunc(func(context.Context, *ipc.Request) (ipc.Message, []*os.File, error) {
			return nil, nil, nil
		})
	}
	fs, fc, err := ipc.Socketpair()
	if err != nil {
		return nil, fmt.Errorf("test store channel: %w", err)
	}
	store, err := ipc.New(fs, ipc.Options{Local: ipc.RoleStore, Peer: role, Handler: ipc.HandlerFunc(ts.serve), MaxHandlers: MaxHandlers})
	if err != nil {
		fc.Close()
		return nil, fmt.Errorf("test store channel: %w", err)
	}
	client, err := ipc.New(fc, ipc.Options{Local: role, Peer: ipc.RoleStore, Handler: h})
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("test store channel: %w", err)
	}
	ts.mu.Lock()
	if ts.closed {
		ts.mu.Unlock()
		store.Close()
		client.Close()
		return nil, errors.New("test store closed")
	}
	ts.gen++
	key := channelKey{role, ts.gen}
	ts.chans[store] = key
	ts.latest[role] = store
	ts.conns = append(ts.conns, client, store)
	ts.handlers.Add(1)
	ts.mu.Unlock()
	go func() {
		defer ts.handlers.Done()
		<-store.Done()
		ts.mu.Lock()
		delete(ts.chans, store)
		if ts.latest[role] == store {
			delete(ts.latest, role)
		}
		ts.mu.Unlock()
		ts.sv.channelClosed(key.role, key.gen)
	}()
	return client, nil
}

// serve is the service's handler, counted so Close can wait for it.
func (ts *TestService) serve(ctx context.Context, req *ipc.Request) (ipc.Message, []*os.File, error) {
	ts.mu.Lock()
	if ts.closed {
		ts.mu.Unlock()
		return nil, nil, ipc.Errorf(ipc.CodeUnavailable, "test store closing")
	}
	ts.handlers.Add(1)
	ts.mu.Unlock()
	defer ts.handlers.Done()
	return ts.sv.serve(ctx, req)
}

// SetPassword sets account's password, as master does for moxctl: an
// AccountPassword request on the master channel.
func (ts *TestService) SetPassword(ctx context.Context, account, password string) error {
	if _, err := ts.master.Call(ctx, &ipc.AccountPassword{Account: account, Password: password}); err != nil {
		return fmt.Errorf("set password of %s: %w", account, err)
	}
	return nil
}

// Close closes all channels, waits for the requests being served and the
// background work, and closes the store. It may be called more than once.
func (ts *TestService) Close() {
	ts.mu.Lock()
	if ts.closed {
		ts.mu.Unlock()
		return
	}
	ts.closed = true
	conns := ts.conns
	ts.conns = nil
	ts.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	ts.handlers.Wait()
	ts.cancel()
	ts.bg.Wait()
	ts.sv.close()
}
