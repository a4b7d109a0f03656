package imapd

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"moxd/internal/ipc"
	"moxd/internal/storage/storeclient"
)

// pushEnv is newEnv with store's change events going to the server, as
// moxd-imap gets them, and the test messages delivered.
func pushEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t, func(e *env) {
		// The helpers' channel first: events go to a role's newest
		// channel, which must be the server's.
		if _, err := e.st.Peer(ipc.RoleIMAP)(); err != nil {
			t.Fatal(err)
		}
		sc := e.st.Conn(t, ipc.RoleIMAP, e.srv)
		e.srv.Store = func() (*ipc.Conn, error) { return sc, nil }
	})
	for _, m := range testMsgs {
		e.st.Deliver(t, "mjl@example.org", m)
	}
	return e
}

// loggedIn dials and logs in.
func (e *env) loggedIn(t *testing.T) *client {
	t.Helper()
	c, _ := e.dial(t)
	c.login()
	return c
}

// idle starts IDLE with tag "i".
func (c *client) idle() {
	c.t.Helper()
	c.send("i IDLE")
	if l := c.line(); l != "+ idling" {
		c.t.Fatalf("IDLE: %q", l)
	}
}

// done ends IDLE and returns the untagged lines before the tagged OK.
func (c *client) done() []string {
	c.t.Helper()
	c.send("DONE")
	var l []string
	for {
		s := c.line()
		if s == "i OK IDLE terminated" {
			return l
		}
		if strings.HasPrefix(s, "i ") {
			c.t.Fatalf("DONE: %q", s)
		}
		l = append(l, s)
	}
}

// storeSession opens a store session of its own for mjl, which changes
// the mailbox behind the server's back.
func storeSession(t *testing.T, e *env) (*storeclient.Session, ipc.MailboxRef) {
	t.Helper()
	tok := e.st.Login(t, ipc.RoleIMAP, "mjl@example.org", "secret")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := storeclient.OpenSession(ctx, e.st.Peer(ipc.RoleIMAP), tok)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	mb, err := s.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	return s, s.Ref(mb)
}

// TestCacheShared: sessions of one mailbox share one cache, which goes
// with the last of them.
func TestCacheShared(t *testing.T) {
	e := pushEnv(t)
	var cs []*client
	for range 5 {
		c := e.loggedIn(t)
		c.ok("SELECT INBOX")
		cs = append(cs, c)
	}
	if n := e.srv.caches.count(); n != 1 {
		t.Fatalf("5 sessions on INBOX: %d caches", n)
	}
	cs[0].ok("CREATE Other")
	cs[0].ok("SELECT Other")
	cs[1].ok("EXAMINE INBOX")
	if n := e.srv.caches.count(); n != 2 {
		t.Fatalf("INBOX and Other: %d caches", n)
	}
	cs[0].ok("UNSELECT")
	if n := e.srv.caches.count(); n != 1 {
		t.Fatalf("after leaving Other: %d caches", n)
	}
	for _, c := range cs[1:] {
		c.ok("LOGOUT")
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.srv.caches.count() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after all logged out: %d caches", e.srv.caches.count())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCacheResync: a Resync event reloads the cache, and an idling
// session gets what changed behind its back.
func TestCacheResync(t *testing.T) {
	e, c := selEnv(t) // events are dropped in this env
	c.ok("SELECT INBOX")
	c.idle()
	s, ref := storeSession(t, e)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := s.Store(ctx, ref, []ipc.UIDRange{{First: 1, Last: 1}}, ipc.StoreAdd, ipc.FlagDeleted, nil, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctx, ref, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store(ctx, ref, []ipc.UIDRange{{First: 3, Last: 3}}, ipc.StoreAdd, ipc.FlagSeen, []string{"$Done"}, 0); err != nil {
		t.Fatal(err)
	}
	e.srv.ServeIPC(ctx, &ipc.Request{Msg: &ipc.Resync{Account: "mjl"}, Event: true})
	if l := c.line(); l != "* 1 EXPUNGE" {
		t.Fatalf("after Resync: %q", l)
	}
	// The new keyword is announced first (RFC 9051 §7.3.5).
	if l := c.line(); l != `* FLAGS (\Seen \Answered \Flagged \Deleted \Draft $Done)` {
		t.Fatalf("after Resync: %q", l)
	}
	if l := c.line(); !strings.HasPrefix(l, `* OK [PERMANENTFLAGS (\Seen \Answered \Flagged \Deleted \Draft $Done \*)]`) {
		t.Fatalf("after Resync: %q", l)
	}
	if l := c.line(); l != `* 2 FETCH (FLAGS (\Seen $Done))` {
		t.Fatalf("after Resync: %q", l)
	}
	if u := c.done(); len(u) != 0 {
		t.Fatalf("DONE: %q", u)
	}
	if u := c.ok("FETCH 1:* (UID FLAGS)"); strings.Join(u, "\n") != "* 1 FETCH (UID 2 FLAGS ())\n* 2 FETCH (UID 3 FLAGS (\\Seen $Done))" {
		t.Fatalf("FETCH after Resync: %q", u)
	}
}

// TestSessionMemory measures what an idle selected session costs beyond
// its connection: its view state in the shared cache.
func TestSessionMemory(t *testing.T) {
	mc := &mbCache{kwIndex: map[string]uint16{}}
	for i := range 1000 {
		mc.msgs = append(mc.msgs, cacheMsg{uid: uint32(i + 1), modseq: uint64(i + 1)})
	}
	mc.modseq = 1000
	c := &conn{}
	const n = 1000
	l := make([]*selected, 0, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range n {
		s := &selected{cache: mc, conn: c, ref: ipc.MailboxRef{Session: 1, Mailbox: 1, UIDValidity: 1}}
		mc.join(s)
		l = append(l, s)
	}
	runtime.ReadMemStats(&after)
	// TotalAlloc only grows: frees elsewhere in the process do not hide
	// anything (other goroutines' allocations can only add to it).
	per := int64(after.TotalAlloc-before.TotalAlloc) / n
	t.Logf("%d bytes allocated per idle selected session (view state %d bytes, cache membership included)", per, unsafe.Sizeof(selected{}))
	if per > 512 {
		t.Fatalf("%d bytes per idle selected session, want at most 512", per)
	}
	// The views work.
	if got := l[n-1].count(); got != 1000 {
		t.Fatalf("count %d", got)
	}
	runtime.KeepAlive(l)
}
