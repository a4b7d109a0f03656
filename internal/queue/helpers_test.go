package queue

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"moxd/internal/auth"
	"moxd/internal/config"
	"moxd/internal/ipc"
	"moxd/internal/queue/queueclient"
)

const testDeadline = 30 * time.Second

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	t.Cleanup(cancel)
	return ctx
}

func testLog() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// testSlice is the queue config of the tests: accounts mjl and other in
// example.org, with an alias members may send as.
func testSlice() config.QueueSlice {
	return config.QueueSlice{
		MaxMessageSize: 1 << 20,
		DNS:            config.DNSSlice{Offline: true},
		Domains: []config.AddrDomain{{
			Name:                "example.org",
			LocalpartSeparators: []string{"+"},
			Aliases:             []config.AddrAlias{{Address: "team@example.org", Members: []string{"mjl@example.org"}, MembersMaySend: true}},
		}},
		Accounts: []config.QueueAccount{
			{Name: "mjl", Addresses: []string{"mjl@example.org"}, MaxMessagesPerDay: config.DefaultMaxMessagesPerDay, MaxFirstTimeRecipientsPerDay: config.DefaultMaxFirstTimeRecipientsPerDay},
			{Name: "other", Addresses: []string{"other@example.org"}},
		},
	}
}

// fakeStore answers queue's requests to store: token checks and
// deliveries of queue files.
type fakeStore struct {
	mu     sync.Mutex
	tokens map[auth.Token]fakeToken
	// state decides a recipient's delivery state (nil: all delivered).
	state     func(addr string) uint8
	delivered []fakeDelivery
	deliverN  atomic.Int64 // Deliver requests seen
}

type fakeToken struct {
	account string
	issuer  ipc.Role
}

type fakeDelivery struct {
	mailFrom string
	rcpt     string
	body     string
	received time.Time
}

func newFakeStore() *fakeStore {
	return &fakeStore{tokens: map[auth.Token]fakeToken{}}
}

// token issues a session token for account to role.
func (fs *fakeStore) token(account string, role ipc.Role) auth.Token {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var tok auth.Token
	tok[0] = byte(len(fs.tokens) + 1)
	copy(tok[1:], account)
	fs.tokens[tok] = fakeToken{account, role}
	return tok
}

func (fs *fakeStore) deliveries() []fakeDelivery {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]fakeDelivery(nil), fs.delivered...)
}

func (fs *fakeStore) serve(ctx context.Context, req *ipc.Request) (ipc.Message, []*os.File, error) {
	defer closeFiles(req.Files)
	switch m := req.Msg.(type) {
	case *ipc.TokenCheck:
		fs.mu.Lock()
		ti, ok := fs.tokens[auth.Token(m.Token)]
		fs.mu.Unlock()
		if !ok || ti.issuer != m.Issuer {
			return nil, nil, ipc.Errorf(ipc.CodeDenied, "token not valid")
		}
		return &ipc.TokenInfo{Account: ti.account, Expires: time.Now().Add(time.Hour).Unix()}, nil, nil
	case *ipc.Deliver:
		fs.deliverN.Add(1)
		if !m.File {
			return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "fake store takes files only")
		}
		body, err := io.ReadAll(io.NewSectionReader(req.Files[0], 0, 1<<30))
		if err != nil {
			return nil, nil, err
		}
		res := &ipc.DeliverResult{}
		fs.mu.Lock()
		for _, r := range m.Recipients {
			st := ipc.RcptOK
			if fs.state != nil {
				st = fs.state(r.Address)
			}
			res.Results = append(res.Results, ipc.RcptDelivered{State: st, Account: "x", Text: map[bool]string{true: "", false: "simulated failure"}[st == ipc.RcptOK]})
			if st == ipc.RcptOK {
				var rcv time.Time
				if m.Received != 0 {
					rcv = time.Unix(0, m.Received)
				}
				fs.delivered = append(fs.delivered, fakeDelivery{m.MailFrom, r.Address, string(body), rcv})
			}
		}
		fs.mu.Unlock()
		return res, nil, nil
	}
	return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "fake store does not serve %s", req.Msg.Type())
}

// testQueue is a queue service in a directory, with channels from test
// clients and to a fake store.
type testQueue struct {
	t      testing.TB
	dir    string
	sv     *service
	store  *fakeStore
	clock  atomic.Int64 // offset added to time.Now, nanoseconds
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	mu        sync.Mutex
	chans     map[*ipc.Conn]channelKey
	gen       uint64
	storeConn *ipc.Conn // queue's end to the fake store; nil while "down"
	keysConn  *ipc.Conn // queue's end to a fake keys (keysUp); nil: none
}

func newTestQueue(t testing.TB, slice config.QueueSlice) *testQueue {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "queue")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return openTestQueue(t, dir, slice, newFakeStore(), nil)
}

// openTestQueue starts the service on dir. delays replaces the retry
// schedule when set.
func openTestQueue(t testing.TB, dir string, slice config.QueueSlice, store *fakeStore, delays []time.Duration) *testQueue {
	t.Helper()
	tq := &testQueue{t: t, dir: dir, store: store, chans: map[*ipc.Conn]channelKey{}, done: make(chan struct{})}
	now := func() time.Time { return time.Now().Add(time.Duration(tq.clock.Load())) }
	sv, err := newService(dir, testLog(), now, slice)
	if err != nil {
		t.Fatal(err)
	}
	tq.sv = sv
	if delays != nil {
		sv.retrier.delays = delays
	}
	sv.channel = func(c *ipc.Conn) (ipc.Role, uint64, bool) {
		tq.mu.Lock()
		defer tq.mu.Unlock()
		k, ok := tq.chans[c]
		return k.role, k.gen, ok
	}
	sv.storePeer = func() (*ipc.Conn, error) {
		tq.mu.Lock()
		defer tq.mu.Unlock()
		if tq.storeConn == nil {
			return nil, ipc.ErrClosed
		}
		return tq.storeConn, nil
	}
	sv.keysPeer = func() (*ipc.Conn, error) {
		tq.mu.Lock()
		defer tq.mu.Unlock()
		if tq.keysConn == nil {
			return nil, ipc.ErrClosed
		}
		return tq.keysConn, nil
	}
	tq.storeUp()
	ctx, cancel := context.WithCancel(context.Background())
	tq.cancel = cancel
	go func() {
		defer close(tq.done)
		sv.run(ctx)
	}()
	t.Cleanup(tq.stop)
	return tq
}

// stop ends the service and closes the databases; safe to call twice.
func (tq *testQueue) stop() {
	tq.once.Do(func() {
		tq.cancel()
		<-tq.done
		tq.storeDown()
		tq.sv.close()
	})
}

// storeUp connects queue to the fake store on a fresh channel.
func (tq *testQueue) storeUp() {
	t := tq.t
	a, b, err := ipc.Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	qc, err := ipc.New(a, ipc.Options{Local: ipc.RoleQueue, Peer: ipc.RoleStore})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ipc.New(b, ipc.Options{Local: ipc.RoleStore, Peer: ipc.RoleQueue, Handler: ipc.HandlerFunc(tq.store.serve)})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		<-qc.Done()
		sc.Close()
	}()
	tq.mu.Lock()
	old := tq.storeConn
	tq.storeConn = qc
	tq.mu.Unlock()
	if old != nil {
		old.Close()
	}
	tq.sv.q.notifyChanged()
}

// storeDown takes the channel to store away, as a store restart does.
func (tq *testQueue) storeDown() {
	tq.mu.Lock()
	old := tq.storeConn
	tq.storeConn = nil
	tq.mu.Unlock()
	if old != nil {
		old.Close()
	}
}

// conn returns a new channel from role to queue, its client end.
func (tq *testQueue) conn(role ipc.Role) *ipc.Conn {
	t := tq.t
	t.Helper()
	a, b, err := ipc.Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	qc, err := ipc.New(a, ipc.Options{Local: ipc.RoleQueue, Peer: role, Handler: ipc.HandlerFunc(tq.sv.serve)})
	if err != nil {
		t.Fatal(err)
	}
	client, err := ipc.New(b, ipc.Options{Local: role, Peer: ipc.RoleQueue})
	if err != nil {
		t.Fatal(err)
	}
	tq.mu.Lock()
	tq.gen++
	key := channelKey{role, tq.gen}
	tq.chans[qc] = key
	tq.mu.Unlock()
	go func() {
		<-qc.Done()
		tq.sv.channelClosed(key.role, key.gen)
	}()
	go func() {
		<-client.Done()
		qc.Close()
	}()
	t.Cleanup(func() { client.Close() })
	return client
}

// submitter returns a queueclient for a new channel from role.
func (tq *testQueue) submitter(role ipc.Role) *queueclient.Submitter {
	c := tq.conn(role)
	return queueclient.NewSubmitter(func() (*ipc.Conn, error) { return c, nil })
}

// advance moves the queue's clock forward.
func (tq *testQueue) advance(d time.Duration) {
	tq.clock.Add(int64(d))
}

// submit spools msg through s and submits it.
func submit(ctx context.Context, s *queueclient.Submitter, env queueclient.Envelope, msg string, rcpts ...string) (uint64, error) {
	sp, err := s.NewSpool(ctx, int64(len(msg)))
	if err != nil {
		return 0, err
	}
	if _, err := io.WriteString(sp, msg); err != nil {
		sp.Close()
		return 0, err
	}
	var l []queueclient.Recipient
	for _, r := range rcpts {
		l = append(l, queueclient.Recipient{Address: r})
	}
	return s.Submit(ctx, sp, env, l)
}

// testMessage is a message from addr.
func testMessage(from string, extra ...string) string {
	h := "From: " + from + "\r\nTo: you@example.net\r\nSubject: test\r\nMessage-ID: <1@example.org>\r\n"
	for _, e := range extra {
		h += e + "\r\n"
	}
	return h + "\r\nHello.\r\n"
}

// wantError checks that err is a queueclient error of kind whose text
// contains each of texts.
func wantError(t testing.TB, err error, kind error, texts ...string) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("got error %v, want kind %v", err, kind)
	}
	for _, s := range texts {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("error %q does not mention %q", err, s)
		}
	}
}

// waitFor polls cond until it holds or the test deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timeout waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// verifyStopped stops the queue and checks its directory with Verify.
func (tq *testQueue) verifyStopped() {
	t := tq.t
	t.Helper()
	tq.stop()
	problems, err := Verify(tq.dir)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	for _, p := range problems {
		t.Errorf("verify: %s: %s", p.Where, p.What)
	}
}
