package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"moxd/internal/auth"
	"moxd/internal/config"
	"moxd/internal/ipc"
	"moxd/internal/mailproto/mbox"
	"moxd/internal/storage/account"
	"moxd/internal/storage/storeclient"
)

const testDeadline = 30 * time.Second

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	t.Cleanup(cancel)
	return ctx
}

// testStore is a store service in a temporary directory with channels
// from test clients.
type testStore struct {
	t   *testing.T
	dir string
	sv  *service

	mu    sync.Mutex
	chans map[*ipc.Conn]channelKey
	peers map[ipc.Role]*ipc.Conn // client ends, for events
	gen   uint64
}

func newTestStore(t *testing.T, accounts ...config.StoreAccount) *testStore {
	t.Helper()
	if len(accounts) == 0 {
		accounts = []config.StoreAccount{
			{Name: "mjl", Addresses: []string{"mjl@example.org", "postmaster@example.org"}},
			{Name: "other", Addresses: []string{"other@example.org"}},
		}
	}
	return newTestStoreSlice(t, config.StoreSlice{Domains: []config.AddrDomain{{Name: "example.org"}}, Accounts: accounts})
}

// newTestStoreSlice is newTestStore configured with slice.
func newTestStoreSlice(t *testing.T, slice config.StoreSlice) *testStore {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	sv, err := newService(dir, log, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testStore{t: t, dir: dir, sv: sv, chans: map[*ipc.Conn]channelKey{}, peers: map[ipc.Role]*ipc.Conn{}}
	sv.channel = func(c *ipc.Conn) (ipc.Role, uint64, bool) {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		k, ok := ts.chans[c]
		return k.role, k.gen, ok
	}
	if err := sv.store.configure(slice); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go sv.events.run(ctx)
	go sv.incoming.run(ctx)
	t.Cleanup(func() {
		cancel()
		sv.close()
	})
	return ts
}

// conn returns a new channel from role to the store, its client end.
func (ts *testStore) conn(role ipc.Role) *ipc.Conn {
	t := ts.t
	t.Helper()
	fs, fc, err := ipc.Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	store, err := ipc.New(fs, ipc.Options{Local: ipc.RoleStore, Peer: role, Handler: ipc.HandlerFunc(ts.sv.serve), MaxHandlers: MaxHandlers})
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan ipc.Message, 100)
	client, err := ipc.New(fc, ipc.Options{Local: role, Peer: ipc.RoleStore, Handler: ipc.HandlerFunc(func(ctx context.Context, req *ipc.Request) (ipc.Message, []*os.File, error) {
		select {
		case events <- req.Msg:
		default:
		}
		return nil, nil, nil
	})})
	if err != nil {
		t.Fatal(err)
	}
	ts.mu.Lock()
	ts.gen++
	key := channelKey{role, ts.gen}
	ts.chans[store] = key
	ts.peers[role] = store
	ts.mu.Unlock()
	go func() {
		<-store.Done()
		ts.sv.channelClosed(key.role, key.gen)
	}()
	t.Cleanup(func() {
		client.Close()
		store.Close()
	})
	return client
}

func peerOf(c *ipc.Conn) func() (*ipc.Conn, error) {
	return func() (*ipc.Conn, error) { return c, nil }
}

const testMessage = "From: sender@example.net\r\nTo: mjl@example.org\r\nSubject: test %d\r\nMessage-ID: <%d@example.net>\r\n\r\nHello %d.\r\n"

func message(i int) []byte { return []byte(fmt.Sprintf(testMessage, i, i, i)) }

// deliver sends msg through a body pipe for rcpts.
func deliver(t *testing.T, d *storeclient.Deliverer, msg []byte, rcpts ...string) ([]storeclient.Result, error) {
	t.Helper()
	ctx := testContext(t)
	b, err := d.NewBody(ctx, int64(len(msg)))
	if err != nil {
		return nil, err
	}
	if _, err := b.Write(msg); err != nil {
		b.Release()
		return nil, err
	}
	var l []storeclient.Recipient
	for _, r := range rcpts {
		l = append(l, storeclient.Recipient{Address: r})
	}
	return d.Deliver(ctx, b, storeclient.Envelope{MailFrom: "sender@example.net", Prefix: []byte("Received: from test\r\n")}, l)
}

func (ts *testStore) count(acct, mailbox string) uint32 {
	ts.t.Helper()
	a, err := ts.sv.store.Account(acct)
	if err != nil {
		ts.t.Fatal(err)
	}
	mb, err := a.Mailbox(mailbox)
	if err != nil {
		ts.t.Fatal(err)
	}
	return mb.Summary.Messages
}

func TestDeliverPerRecipient(t *testing.T) {
	ts := newTestStore(t,
		config.StoreAccount{Name: "mjl", Addresses: []string{"mjl@example.org", "postmaster@example.org"}},
		config.StoreAccount{Name: "full", Addresses: []string{"full@example.org"}, Quota: 10},
	)
	d := storeclient.NewDeliverer(peerOf(ts.conn(ipc.RoleSMTP)))
	ctx := testContext(t)

	tests := []struct {
		addr  string
		state storeclient.RcptState
	}{
		{"MJL@Example.org", storeclient.RcptOK},
		{"nobody@example.org", storeclient.RcptUnknown},
		{"full@example.org", storeclient.RcptOK}, // empty account: under quota yet
	}
	for _, tc := range tests {
		st, _, err := d.CheckRcpt(ctx, tc.addr)
		if err != nil || st != tc.state {
			t.Errorf("CheckRcpt %s: %v %v, want %v", tc.addr, st, err, tc.state)
		}
	}

	res, err := deliver(t, d, message(1), "mjl@example.org", "nobody@example.org", "full@example.org", "postmaster@example.org")
	if err != nil {
		t.Fatal(err)
	}
	want := []storeclient.RcptState{storeclient.RcptOK, storeclient.RcptUnknown, storeclient.RcptOverQuota, storeclient.RcptOK}
	for i, r := range res {
		if r.State != want[i] {
			t.Errorf("recipient %d: state %v (%s), want %v", i, r.State, r.Text, want[i])
		}
	}
	if res[0].UID == 0 || res[3].UID == res[0].UID {
		t.Errorf("uids %d and %d: want two different uids in one mailbox", res[0].UID, res[3].UID)
	}
	if n := ts.count("mjl", "INBOX"); n != 2 {
		t.Errorf("mjl INBOX has %d messages, want 2", n)
	}
	if n := ts.count("full", "INBOX"); n != 0 {
		t.Errorf("full INBOX has %d messages, want 0", n)
	}
	if st, _, _ := d.CheckRcpt(ctx, "full@example.org"); st != storeclient.RcptOK {
		t.Errorf("still under quota: %v", st)
	}
	// Nothing left in store's tmp once the body is released.
	waitEmpty(t, ts.sv.store.tmpDir)
}

func waitEmpty(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(l) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still holds %d files", dir, len(l))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBadBodies: a sender can spoil only its own message.
func TestBadBodies(t *testing.T) {
	ts := newTestStore(t)
	c := ts.conn(ipc.RoleSMTP)
	d := storeclient.NewDeliverer(peerOf(c))
	ctx := testContext(t)
	rcpt := []storeclient.Recipient{{Address: "mjl@example.org"}}
	env := storeclient.Envelope{MailFrom: "x@example.net"}

	// Closed early: fewer bytes than declared.
	b, err := d.NewBody(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	b.Write([]byte("Subject: short\r\n\r\nx"))
	if _, err := d.Deliver(ctx, b, env, rcpt); !errors.Is(err, storeclient.ErrRefused) {
		t.Errorf("short body: %v, want refused", err)
	}

	// Keeps writing: more than declared. The writer must not hang.
	b, err = d.NewBody(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		chunk := bytes.Repeat([]byte("x"), 4096)
		for i := 0; i < 1000; i++ {
			if _, err := b.Write(chunk); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("4 MB written into a 100-byte body without error")
		}
	case <-ctx.Done():
		t.Fatal("writer hangs")
	}
	if _, err := d.Deliver(ctx, b, env, rcpt); !errors.Is(err, storeclient.ErrRefused) {
		t.Errorf("long body: %v, want refused", err)
	}

	// Meanwhile a good message from the same channel is delivered.
	res, err := deliver(t, d, message(2), "mjl@example.org")
	if err != nil || res[0].State != storeclient.RcptOK {
		t.Fatalf("good delivery: %v %v", res, err)
	}
	if n := ts.count("mjl", "INBOX"); n != 1 {
		t.Errorf("INBOX has %d messages, want 1", n)
	}
	// Another channel cannot deliver this channel's body.
	other := storeclient.NewDeliverer(peerOf(ts.conn(ipc.RoleQueue)))
	b, err = d.NewBody(ctx, int64(len(message(3))))
	if err != nil {
		t.Fatal(err)
	}
	b.Write(message(3))
	b.Close()
	if _, err := other.Deliver(ctx, &storeclient.Body{File: b.File, ID: b.ID}, env, rcpt); !errors.Is(err, storeclient.ErrNotFound) {
		t.Errorf("body of another channel: %v, want not found", err)
	}
	b.Release()
}

// TestBadFiles: FIFOs, sockets and growing files passed as fds are refused
// without hanging store.
func TestBadFiles(t *testing.T) {
	ts := newTestStore(t)
	d := storeclient.NewDeliverer(peerOf(ts.conn(ipc.RoleQueue)))
	ctx := testContext(t)
	rcpt := []storeclient.Recipient{{Address: "mjl@example.org"}}
	env := storeclient.Envelope{MailFrom: "x@example.net"}

	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	ff, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ff.Close()
	if _, err := d.DeliverFile(ctx, ff, env, rcpt); !errors.Is(err, storeclient.ErrRefused) {
		t.Errorf("fifo: %v, want refused", err)
	}

	sp, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	sock := os.NewFile(uintptr(sp[0]), "sock")
	defer sock.Close()
	defer syscall.Close(sp[1])
	if _, err := d.DeliverFile(ctx, sock, env, rcpt); !errors.Is(err, storeclient.ErrRefused) {
		t.Errorf("socket: %v, want refused", err)
	}

	// A file that keeps growing while store reads it.
	grow, err := os.Create(filepath.Join(t.TempDir(), "grow"))
	if err != nil {
		t.Fatal(err)
	}
	defer grow.Close()
	// Large enough that reading it takes longer than the writer's next
	// append; the account package tests the same refusal with a hook.
	grow.Write(bytes.Repeat([]byte("Subject: x\r\n"), 3<<20))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w, _ := os.OpenFile(grow.Name(), os.O_WRONLY|os.O_APPEND, 0)
		defer w.Close()
		for {
			select {
			case <-stop:
				return
			default:
				w.Write(bytes.Repeat([]byte("y"), 4<<10))
			}
		}
	}()
	for fi, _ := grow.Stat(); fi.Size() == 3<<20*12; fi, _ = grow.Stat() {
		time.Sleep(time.Millisecond)
	}
	_, err = d.DeliverFile(ctx, grow, env, rcpt)
	close(stop)
	wg.Wait()
	if !errors.Is(err, storeclient.ErrRefused) {
		t.Errorf("growing file: %v, want refused", err)
	}
	if n := ts.count("mjl", "INBOX"); n != 0 {
		t.Errorf("INBOX has %d messages, want 0", n)
	}

	// A regular file is fine.
	good, err := os.Create(filepath.Join(t.TempDir(), "good"))
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	good.Write(message(1))
	res, err := d.DeliverFile(ctx, good, env, rcpt)
	if err != nil || res[0].State != storeclient.RcptOK {
		t.Fatalf("regular file: %v %v", res, err)
	}
}

// login logs account in over role's channel with PLAIN and opens a session.
func (ts *testStore) login(c *ipc.Conn, name, password string) (*storeclient.Session, error) {
	ctx := testContext(ts.t)
	a := storeclient.NewAuth(peerOf(c))
	step, err := a.Start(ctx, "PLAIN", netip.MustParseAddr("192.0.2.1"), true, nil, []byte("\x00"+name+"\x00"+password), true)
	if err != nil {
		return nil, err
	}
	if !step.Done {
		return nil, fmt.Errorf("PLAIN not done after one step")
	}
	return storeclient.OpenSession(ctx, peerOf(c), step.Token)
}

func (ts *testStore) setPassword(acct, password string) {
	ts.t.Helper()
	_, _, err := ts.sv.serveAdmin(testContext(ts.t), &ipc.Request{Msg: &ipc.AccountPassword{Account: acct, Password: password}})
	if err != nil {
		ts.t.Fatal(err)
	}
}

func TestSession(t *testing.T) {
	ts := newTestStore(t)
	ts.setPassword("mjl", "secret password")
	ctx := testContext(t)
	imap := ts.conn(ipc.RoleIMAP)
	if _, err := ts.login(imap, "mjl@example.org", "wrong"); !errors.Is(err, storeclient.ErrAuthFailed) {
		t.Fatalf("wrong password: %v", err)
	}
	s, err := ts.login(imap, "mjl@example.org", "secret password")
	if err != nil {
		t.Fatal(err)
	}
	if s.Account != "mjl" {
		t.Fatalf("session account %q", s.Account)
	}

	d := storeclient.NewDeliverer(peerOf(ts.conn(ipc.RoleSMTP)))
	for i := 1; i <= 5; i++ {
		if res, err := deliver(t, d, message(i), "mjl@example.org"); err != nil || res[0].State != storeclient.RcptOK {
			t.Fatalf("deliver: %v %v", res, err)
		}
	}

	inbox, err := s.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if inbox.Messages != 5 || inbox.UIDNext != 6 || inbox.Unseen != 5 {
		t.Fatalf("INBOX summary %+v", inbox)
	}
	ref := s.Ref(inbox)
	var uids []uint32
	err = s.Messages(ctx, ref, 1, func(kw []string, l []ipc.MessageMeta) bool {
		for _, m := range l {
			uids = append(uids, m.UID)
		}
		return true
	})
	if err != nil || fmt.Sprint(uids) != "[1 2 3 4 5]" {
		t.Fatalf("messages %v %v", uids, err)
	}

	// The body: prefix + read-only file, and the structure.
	m, err := s.Open(ctx, ref, 3, true)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(m.File)
	m.File.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got := string(m.Prefix) + string(data); got != "Received: from test\r\n"+string(message(3)) {
		t.Errorf("message 3 reads %q", got)
	}
	if int64(len(data)) != m.FileSize || m.Part == nil || m.Part.Envelope == nil || m.Part.Envelope.Subject != "test 3" {
		t.Errorf("file size %d (read %d), part %+v", m.FileSize, len(data), m.Part)
	}
	if _, err := m.File.Write([]byte("x")); err == nil {
		t.Errorf("message file is writable")
	}

	// Flags with CONDSTORE: the second store with an old modseq fails.
	st, err := s.Store(ctx, ref, []ipc.UIDRange{{First: 1, Last: 2}}, ipc.StoreAdd, ipc.FlagSeen|ipc.FlagDeleted, []string{"$Work"}, 0)
	if err != nil || st.Changed != 2 {
		t.Fatalf("store: %+v %v", st, err)
	}
	st2, err := s.Store(ctx, ref, []ipc.UIDRange{{First: 1, Last: 1}}, ipc.StoreRemove, ipc.FlagSeen, nil, st.FromModSeq)
	if err != nil || st2.Changed != 0 || len(st2.Modified) != 1 {
		t.Fatalf("store unchangedsince: %+v %v", st2, err)
	}
	var changed []uint32
	_, err = s.Changes(ctx, ref, st.FromModSeq, func(r *ipc.ChangesReply) bool {
		for _, m := range r.Changed {
			changed = append(changed, m.UID)
			if m.Flags&ipc.FlagSeen == 0 || len(m.Keywords) != 1 || r.Keywords[m.Keywords[0]] != "$Work" {
				t.Errorf("changed message %+v keywords %v", m, r.Keywords)
			}
		}
		return true
	})
	if err != nil || fmt.Sprint(changed) != "[1 2]" {
		t.Errorf("changes since %d: %v %v", st.FromModSeq, changed, err)
	}

	// Copy, move, expunge.
	cr, err := s.Copy(ctx, ref, []ipc.UIDRange{{First: 3, Last: 4}}, "Archive", false)
	if err != nil || len(cr.To) != 1 || cr.To[0] != (ipc.UIDRange{First: 1, Last: 2}) {
		t.Fatalf("copy: %+v %v", cr, err)
	}
	mr, err := s.Copy(ctx, ref, []ipc.UIDRange{{First: 5, Last: 5}}, "Archive", true)
	if err != nil || mr.To[0] != (ipc.UIDRange{First: 3, Last: 3}) {
		t.Fatalf("move: %+v %v", mr, err)
	}
	ex, err := s.Expunge(ctx, ref, nil)
	if err != nil || fmt.Sprint(ex.UIDs) != "[{1 2}]" {
		t.Fatalf("expunge: %+v %v", ex, err)
	}
	var vanished []ipc.UIDRange
	_, err = s.Changes(ctx, ref, st.ToModSeq, func(r *ipc.ChangesReply) bool {
		vanished = append(vanished, r.Vanished...)
		return true
	})
	if err != nil || fmt.Sprint(vanished) != "[{1 2} {5 5}]" {
		t.Errorf("vanished: %v %v", vanished, err)
	}
	if _, err := s.Copy(ctx, ref, []ipc.UIDRange{{First: 3, Last: 3}}, "Nonexistent", false); !errors.Is(err, storeclient.ErrNotFound) {
		t.Errorf("copy to missing mailbox: %v", err)
	}
	stale := ref
	stale.UIDValidity++
	if _, err := s.Store(ctx, stale, []ipc.UIDRange{{First: 3, Last: 3}}, ipc.StoreAdd, ipc.FlagSeen, nil, 0); !errors.Is(err, storeclient.ErrStale) {
		t.Errorf("stale uidvalidity: %v", err)
	}

	// Mailboxes: create with parents, rename with children, delete.
	if _, err := s.ChangeMailbox(ctx, ipc.MailboxCreate, "Lists/moxd/dev", "", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ChangeMailbox(ctx, ipc.MailboxCreate, "Lists", "", 0); !errors.Is(err, storeclient.ErrExists) {
		t.Errorf("create existing: %v", err)
	}
	if _, err := s.ChangeMailbox(ctx, ipc.MailboxRename, "Lists", "Old lists", 0); err != nil {
		t.Fatal(err)
	}
	all, err := s.Mailboxes(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mb := range all {
		names = append(names, mb.Name)
	}
	if got := strings.Join(names, ","); !strings.Contains(got, "Old lists/moxd/dev") || strings.Contains(got, "Lists/") && !strings.Contains(got, "Old lists/") {
		t.Errorf("mailboxes after rename: %s", got)
	}
	if _, err := s.ChangeMailbox(ctx, ipc.MailboxCreate, "bad*name", "", 0); !errors.Is(err, storeclient.ErrRefused) {
		t.Errorf("bad name: %v", err)
	}

	// Append from a file, then search.
	f, err := os.Create(filepath.Join(t.TempDir(), "append"))
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("Subject: quarterly report\r\n\r\nnumbers\r\n")
	ap, err := s.AppendAll(ctx, "Drafts", f, 0, []storeclient.AppendMessage{{Size: int64(len("Subject: quarterly report\r\n\r\nnumbers\r\n")), Flags: ipc.FlagDraft}})
	f.Close()
	if err != nil || len(ap.UIDs) != 1 || ap.UIDs[0] != (ipc.UIDRange{First: 1, Last: 1}) {
		t.Fatalf("append: %+v %v", ap, err)
	}
	drafts, err := s.Mailbox(ctx, "Drafts")
	if err != nil {
		t.Fatal(err)
	}
	found, err := s.Search(ctx, s.Ref(drafts), ipc.SearchNode{Op: ipc.SearchHeader, Name: "subject", Text: "REPORT"})
	if err != nil || fmt.Sprint(found) != "[{1 1}]" {
		t.Errorf("search: %v %v", found, err)
	}

	// A zero token opens nothing.
	web := ts.conn(ipc.RoleWeb)
	if _, err := storeclient.OpenSession(ctx, peerOf(web), auth.Token{}); !errors.Is(err, storeclient.ErrAuthFailed) {
		t.Errorf("open session with zero token: %v", err)
	}
}

func TestEvents(t *testing.T) {
	ts := newTestStore(t)
	ts.setPassword("mjl", "pw")
	events := make(chan ipc.Message, 100)
	imap := ts.connEvents(ipc.RoleIMAP, events)
	if _, err := ts.login(imap, "mjl", "pw"); err != nil {
		t.Fatal(err)
	}
	d := storeclient.NewDeliverer(peerOf(ts.conn(ipc.RoleSMTP)))
	for i := 0; i < 10; i++ {
		if _, err := deliver(t, d, message(i), "mjl@example.org", "other@example.org"); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := ts.sv.store.Account("mjl")
	inbox, _ := a.Mailbox("INBOX")
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-events:
			mc, ok := m.(*ipc.MailboxChanged)
			if !ok {
				continue
			}
			if mc.Account != "mjl" {
				t.Fatalf("event for account %q without session", mc.Account)
			}
			if mc.Mailbox == inbox.ID && mc.ModSeq == inbox.Summary.HighestModSeq {
				return
			}
		case <-deadline:
			t.Fatalf("no event for INBOX up to modseq %d", inbox.Summary.HighestModSeq)
		}
	}
}

// connEvents is conn with events delivered to ch.
func (ts *testStore) connEvents(role ipc.Role, ch chan ipc.Message) *ipc.Conn {
	c := ts.conn(role)
	ts.mu.Lock()
	store := ts.peers[role]
	ts.mu.Unlock()
	ts.sv.events.send = func(r ipc.Role, m ipc.Message) error {
		if r != role {
			return nil
		}
		select {
		case ch <- m:
		default:
		}
		return store.Notify(m)
	}
	return c
}

func TestAdmin(t *testing.T) {
	ts := newTestStore(t)
	ctx := testContext(t)
	admin := func(m ipc.Message, files ...*os.File) (ipc.Message, error) {
		reply, _, err := ts.sv.serveAdmin(ctx, &ipc.Request{Msg: m, Files: files})
		return reply, err
	}

	// Import an mbox with a damaged message in the middle.
	var buf bytes.Buffer
	w := mbox.NewWriter(&buf)
	for i := 0; i < 3; i++ {
		w.WriteMessage("sender@example.net", time.Unix(1700000000+int64(i), 0), mbox.Flags{Seen: i == 1}, []string{"imported"}, bytes.NewReader(message(i)))
	}
	w.Flush()
	data := buf.Bytes()
	data = append(data, []byte("From nobody Thu Jan  1 00:00:00 2026\n")...) // nothing after the From_ line
	path := filepath.Join(t.TempDir(), "mbox")
	os.WriteFile(path, data, 0o600)
	f, _ := os.Open(path)
	defer f.Close()
	if _, err := admin(&ipc.ImportBegin{Job: 1, Account: "mjl", Mailbox: "Imported/2025"}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin(&ipc.ImportMbox{Job: 1}, f); err != nil {
		t.Fatal(err)
	}
	if _, err := mustAccount(t, ts.sv.store, "mjl").Mailbox("Imported/2025"); err == nil {
		t.Errorf("import visible before it was published")
	}
	r, err := admin(&ipc.ImportEnd{Job: 1})
	if err != nil {
		t.Fatal(err)
	}
	res := r.(*ipc.ImportResult)
	if res.Imported != 3 || res.Skipped != 1 || len(res.Problems) != 1 || !strings.HasPrefix(res.Problems[0].Where, "offset ") {
		t.Errorf("import result %+v", res)
	}
	if n := ts.count("mjl", "Imported/2025"); n != 3 {
		t.Errorf("imported mailbox has %d messages", n)
	}

	// An aborted import leaves nothing.
	admin(&ipc.ImportBegin{Job: 2, Account: "mjl", Mailbox: "Aborted"})
	f2, _ := os.Open(path)
	admin(&ipc.ImportMbox{Job: 2}, f2)
	f2.Close()
	if _, err := admin(&ipc.ImportEnd{Job: 2, Abort: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := mustAccount(t, ts.sv.store, "mjl").Mailbox("Aborted"); err == nil {
		t.Errorf("aborted import visible")
	}

	// Export the imported mailbox and read it back.
	pr, pw, _ := os.Pipe()
	var exported []byte
	done := make(chan struct{})
	go func() {
		exported, _ = io.ReadAll(pr)
		close(done)
	}()
	r, err = admin(&ipc.Export{Account: "mjl", Mailbox: "Imported/2025"}, pw)
	pw.Close()
	<-done
	if err != nil || r.(*ipc.ExportResult).Messages != 3 {
		t.Fatalf("export: %v %v", r, err)
	}
	rd := mbox.NewReader(bytes.NewReader(exported), 1<<20)
	for i := 0; i < 3; i++ {
		m, err := rd.Next()
		if err != nil {
			t.Fatalf("exported message %d: %v", i, err)
		}
		if !bytes.Equal(m.Data, message(i)) || m.Flags.Seen != (i == 1) || len(m.Keywords) != 1 {
			t.Errorf("exported message %d: %q flags %+v keywords %v", i, m.Data, m.Flags, m.Keywords)
		}
	}

	// Usage and local delivery.
	lf, _ := os.Create(filepath.Join(t.TempDir(), "local"))
	lf.Write(message(9))
	r, err = admin(&ipc.LocalDeliver{Address: "postmaster@example.org"}, lf)
	lf.Close()
	if err != nil || r.(*ipc.LocalDelivered).Account != "mjl" || r.(*ipc.LocalDelivered).Mailbox != "INBOX" {
		t.Fatalf("local deliver: %v %v", r, err)
	}
	r, err = admin(&ipc.AccountUsage{Account: "mjl"})
	if err != nil || r.(*ipc.AccountUsageReply).Messages != 4 || r.(*ipc.AccountUsageReply).HasPassword {
		t.Errorf("usage: %+v %v", r, err)
	}
}

func TestAccountRemove(t *testing.T) {
	ts := newTestStore(t)
	ctx := testContext(t)
	admin := func(m ipc.Message) error {
		_, _, err := ts.sv.serveAdmin(ctx, &ipc.Request{Msg: m})
		return err
	}
	d := storeclient.NewDeliverer(peerOf(ts.conn(ipc.RoleSMTP)))
	deliver(t, d, message(1), "other@example.org")
	dir := ts.sv.store.accountDir("other")

	// Prepare, then the config write fails: cancel keeps everything.
	if err := admin(&ipc.AccountRemove{Account: "other", Phase: ipc.RemovePrepare}); err != nil {
		t.Fatal(err)
	}
	if res, err := deliver(t, d, message(2), "other@example.org"); err != nil || res[0].State != storeclient.RcptFailed {
		t.Errorf("delivery during removal: %v %v", res, err)
	}
	if err := admin(&ipc.AccountRemove{Account: "other", Phase: ipc.RemoveCancel}); err != nil {
		t.Fatal(err)
	}
	if n := ts.count("other", "INBOX"); n != 1 {
		t.Errorf("after cancel: %d messages", n)
	}

	// A crash after prepare, with the account still configured: the
	// marker is cleared at start.
	if err := admin(&ipc.AccountRemove{Account: "other", Phase: ipc.RemovePrepare}); err != nil {
		t.Fatal(err)
	}
	ts.sv.store.mu.Lock()
	delete(ts.sv.store.removing, "other") // as after a restart
	ts.sv.store.mu.Unlock()
	if err := ts.sv.store.configure(ts.sv.store.slice); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, markerName)); err == nil {
		t.Errorf("marker kept for a configured account")
	}

	// The full removal.
	if err := admin(&ipc.AccountRemove{Account: "other", Phase: ipc.RemovePrepare}); err != nil {
		t.Fatal(err)
	}
	slice := config.StoreSlice{Domains: []config.AddrDomain{{Name: "example.org"}}, Accounts: []config.StoreAccount{{Name: "mjl", Addresses: []string{"mjl@example.org"}}}}
	if err := ts.sv.store.configure(slice); err != nil {
		t.Fatal(err)
	}
	if err := admin(&ipc.AccountRemove{Account: "other", Phase: ipc.RemoveFinish}); err == nil {
		// configure already finished the marked, unconfigured account.
		t.Logf("finish after configure succeeded")
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("account directory still there: %v", err)
	}
	l, _ := os.ReadDir(ts.sv.store.accountsDir())
	if len(l) != 1 || l[0].Name() != "mjl" {
		t.Errorf("accounts dir holds %v", l)
	}

	// An unconfigured directory without marker is left alone.
	os.MkdirAll(filepath.Join(ts.sv.store.accountsDir(), "typo"), 0o700)
	ts.sv.store.configure(slice)
	if _, err := os.Stat(filepath.Join(ts.sv.store.accountsDir(), "typo")); err != nil {
		t.Errorf("orphan directory removed: %v", err)
	}
}

func mustAccount(t *testing.T, s *Store, name string) *account.Account {
	t.Helper()
	a, err := s.Account(name)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestChangesPaging: the changes of one large STORE, all under one
// modseq, come back completely through pages of the IPC size.
func TestChangesPaging(t *testing.T) {
	ts := newTestStore(t)
	ts.setPassword("mjl", "pw")
	ctx := testContext(t)
	a := mustAccount(t, ts.sv.store, "mjl")
	body, err := account.BodyFromBytes(ts.sv.store.tmpDir, message(1), true)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Remove()
	const n = 1000
	ds := make([]account.Delivery, n)
	for i := range ds {
		ds[i] = account.Delivery{Body: body}
	}
	for _, d := range a.Deliver(ctx, ds) {
		if d.Err != nil {
			t.Fatal(d.Err)
		}
	}
	s, err := ts.login(ts.conn(ipc.RoleIMAP), "mjl", "pw")
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := s.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	ref := s.Ref(inbox)
	st, err := s.Store(ctx, ref, []ipc.UIDRange{{First: 1, Last: 0xffffffff}}, ipc.StoreAdd, ipc.FlagSeen, nil, 0)
	if err != nil || st.Changed != n {
		t.Fatalf("store: %+v %v", st, err)
	}
	if _, err := s.Expunge(ctx, ref, nil); err != nil {
		t.Fatal(err)
	}
	seen := map[uint32]bool{}
	pages := 0
	highest, err := s.Changes(ctx, ref, inbox.HighestModSeq, func(r *ipc.ChangesReply) bool {
		pages++
		for _, m := range r.Changed {
			if seen[m.UID] {
				t.Errorf("uid %d reported twice", m.UID)
			}
			seen[m.UID] = true
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != n || pages < 3 || highest != st.ToModSeq {
		t.Errorf("%d changed messages in %d pages, highest modseq %d (store said %d); want %d in ≥ 3 pages", len(seen), pages, highest, st.ToModSeq, n)
	}
}
