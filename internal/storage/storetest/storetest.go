// Package storetest runs a real moxd-store service inside a test, so the
// tests of other roles (imapd, web, smtpd) talk to store over real IPC
// channels through package storeclient instead of a fake. Only tests import
// it.
//
//	st := storetest.Start(t, slice)
//	st.SetPassword(t, "mjl", "pw")
//	tok := st.Login(t, ipc.RoleIMAP, "mjl@example.org", "pw")
//	s, err := storeclient.OpenSession(ctx, st.Peer(ipc.RoleIMAP), tok)
//
// Store hands a role's tokens only to the channel they were issued on, so
// Login and Peer of one role share one channel (made on first use); Conn
// makes further channels, for instance one whose events a test watches.
package storetest

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"moxd/internal/auth"
	"moxd/internal/config"
	"moxd/internal/ipc"
	"moxd/internal/storage"
	"moxd/internal/storage/storeclient"
)

// Timeout bounds each call the helpers make to store.
const Timeout = 30 * time.Second

// Store is a store service running for one test.
type Store struct {
	TS *storage.TestService

	mu    sync.Mutex
	peers map[ipc.Role]*ipc.Conn // each role's channel for Peer and Login
}

// Start runs a store with slice in a temporary directory; it is stopped
// when the test ends. Store logs to the test's output at debug level.
func Start(t testing.TB, slice config.StoreSlice) *Store {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	ts, err := storage.NewTestService(t.TempDir(), log, slice)
	if err != nil {
		t.Fatalf("start store: %v", err)
	}
	t.Cleanup(ts.Close)
	return &Store{TS: ts, peers: map[ipc.Role]*ipc.Conn{}}
}

// Conn returns a new channel from role to store; store's requests and
// events on it go to h (nil: dropped).
func (st *Store) Conn(t testing.TB, role ipc.Role, h ipc.Handler) *ipc.Conn {
	t.Helper()
	c, err := st.TS.Conn(role, h)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Peer returns the function storeclient wants for reaching store as role:
// it always returns role's one channel of Peer and Login, made on first
// use, until store is closed.
func (st *Store) Peer(role ipc.Role) func() (*ipc.Conn, error) {
	return func() (*ipc.Conn, error) {
		st.mu.Lock()
		defer st.mu.Unlock()
		if c := st.peers[role]; c != nil {
			return c, nil
		}
		c, err := st.TS.Conn(role, nil)
		if err != nil {
			return nil, err
		}
		st.peers[role] = c
		return c, nil
	}
}

func callContext(t testing.TB) (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.Context(), Timeout)
}

// SetPassword sets account's password, as master does for moxctl.
func (st *Store) SetPassword(t testing.TB, account, password string) {
	t.Helper()
	ctx, cancel := callContext(t)
	defer cancel()
	if err := st.TS.SetPassword(ctx, account, password); err != nil {
		t.Fatal(err)
	}
}

// Login logs name (an address or account name) in with SASL PLAIN over
// TLS as role, on Peer(role)'s channel, and returns the session token for
// storeclient.OpenSession on that channel.
func (st *Store) Login(t testing.TB, role ipc.Role, name, password string) auth.Token {
	t.Helper()
	ctx, cancel := callContext(t)
	defer cancel()
	a := storeclient.NewAuth(st.Peer(role))
	step, err := a.Start(ctx, "PLAIN", netip.MustParseAddr("192.0.2.1"), true, nil, []byte("\x00"+name+"\x00"+password), true)
	if err != nil {
		t.Fatalf("login %s: %v", name, err)
	}
	if !step.Done {
		t.Fatalf("login %s: PLAIN not done after its one step", name)
	}
	return step.Token
}

// Deliver delivers msg (CRLF line endings) to addr as smtp would, into
// the address's default mailbox, and returns its UID there.
func (st *Store) Deliver(t testing.TB, addr, msg string) uint32 {
	t.Helper()
	ctx, cancel := callContext(t)
	defer cancel()
	d := storeclient.NewDeliverer(st.Peer(ipc.RoleSMTP))
	b, err := d.NewBody(ctx, int64(len(msg)))
	if err != nil {
		t.Fatalf("deliver to %s: %v", addr, err)
	}
	if _, err := b.Write([]byte(msg)); err != nil {
		b.Release()
		t.Fatalf("deliver to %s: write body: %v", addr, err)
	}
	res, err := d.Deliver(ctx, b, storeclient.Envelope{MailFrom: "sender@example.net"}, []storeclient.Recipient{{Address: addr}})
	if err != nil {
		t.Fatalf("deliver to %s: %v", addr, err)
	}
	if len(res) != 1 || res[0].State != storeclient.RcptOK {
		t.Fatalf("deliver to %s: %s", addr, describe(res))
	}
	return res[0].UID
}

func describe(res []storeclient.Result) string {
	if len(res) != 1 {
		return fmt.Sprintf("%d results for 1 recipient", len(res))
	}
	return fmt.Sprintf("state %v: %s", res[0].State, res[0].Text)
}
