package smtpd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"moxd/internal/auth"
	"moxd/internal/config"
	"moxd/internal/connlimit"
	"moxd/internal/dns"
	"moxd/internal/mailproto/dmarc"
	"moxd/internal/mailproto/smtp"
	"moxd/internal/queue/queueclient"
	"moxd/internal/storage/storeclient"
)

const testDeadline = 10 * time.Second

// fakeStore is a mailStore in memory.
type fakeStore struct {
	mu sync.Mutex
	// accounts maps an address to its account.
	accounts map[string]string
	// results overrides the delivery state per address.
	results map[string]storeclient.RcptState
	// errNewBody, errRcpt fail those calls.
	errNewBody, errRcpt error

	delivered []fakeDelivery
	released  int
}

type fakeDelivery struct {
	env   storeclient.Envelope
	rcpts []string
	body  string
}

func (f *fakeStore) CheckRcpt(ctx context.Context, addr string) (storeclient.RcptState, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.errRcpt != nil {
		return 0, "", f.errRcpt
	}
	a, ok := f.accounts[strings.ToLower(addr)]
	if !ok {
		return storeclient.RcptUnknown, "", nil
	}
	return storeclient.RcptOK, a, nil
}

func (f *fakeStore) NewBody(ctx context.Context) (storeBody, error) {
	if f.errNewBody != nil {
		return nil, f.errNewBody
	}
	return &fakeBody{store: f}, nil
}

type fakeBody struct {
	store  *fakeStore
	buf    bytes.Buffer
	closed bool
}

func (b *fakeBody) Write(p []byte) (int, error) { return b.buf.Write(p) }
func (b *fakeBody) CloseWrite() error           { b.closed = true; return nil }

func (b *fakeBody) Deliver(ctx context.Context, env storeclient.Envelope, rcpts []storeclient.Recipient) ([]storeclient.Result, error) {
	f := b.store
	f.mu.Lock()
	defer f.mu.Unlock()
	if !b.closed {
		return nil, errors.New("deliver before the body was complete")
	}
	var res []storeclient.Result
	var ok []string
	for _, r := range rcpts {
		st := storeclient.RcptOK
		if s, found := f.results[strings.ToLower(r.Address)]; found {
			st = s
		}
		res = append(res, storeclient.Result{State: st, Account: f.accounts[strings.ToLower(r.Address)]})
		if st == storeclient.RcptOK {
			ok = append(ok, r.Address)
		}
	}
	if len(ok) > 0 {
		f.delivered = append(f.delivered, fakeDelivery{env: env, rcpts: ok, body: b.buf.String()})
	}
	return res, nil
}

func (b *fakeBody) File(ctx context.Context) (*os.File, error) {
	fp, err := os.CreateTemp("", "body")
	if err != nil {
		return nil, err
	}
	os.Remove(fp.Name())
	fp.Write(b.buf.Bytes())
	fp.Seek(0, 0)
	return fp, nil
}

func (b *fakeBody) Release() {
	b.store.mu.Lock()
	b.store.released++
	b.store.mu.Unlock()
}

func (f *fakeStore) got() []fakeDelivery {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeDelivery(nil), f.delivered...)
}

// fakeQueue is a queueService in memory.
type fakeQueue struct {
	mu          sync.Mutex
	retries     []fakeRetry
	evaluations []dmarc.Evaluation
	submitted   []fakeSubmission
	errRetry    error
	errSubmit   error
}

type fakeRetry struct {
	mailFrom string
	rcpts    []string
	body     string
	prefix   string
}

type fakeSubmission struct {
	env   queueclient.Envelope
	rcpts []queueclient.Recipient
	body  string
}

func (q *fakeQueue) LocalRetry(ctx context.Context, body *os.File, mailFrom string, rcpts []string, prefix []byte, received time.Time) error {
	if q.errRetry != nil {
		return q.errRetry
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.retries = append(q.retries, fakeRetry{mailFrom, rcpts, string(b), string(prefix)})
	return nil
}

func (q *fakeQueue) DMARCEvaluation(ev dmarc.Evaluation) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.evaluations = append(q.evaluations, ev)
}

func (q *fakeQueue) NewSpool(ctx context.Context) (spool, error) {
	return &fakeSpool{q: q}, nil
}

type fakeSpool struct {
	q   *fakeQueue
	buf bytes.Buffer
}

func (s *fakeSpool) Write(p []byte) (int, error) { return s.buf.Write(p) }
func (s *fakeSpool) CloseWrite() error           { return nil }
func (s *fakeSpool) Release()                    {}
func (s *fakeSpool) Submit(ctx context.Context, env queueclient.Envelope, rcpts []queueclient.Recipient) (uint64, error) {
	s.q.mu.Lock()
	defer s.q.mu.Unlock()
	if s.q.errSubmit != nil {
		return 0, s.q.errSubmit
	}
	s.q.submitted = append(s.q.submitted, fakeSubmission{env: env, rcpts: rcpts, body: s.buf.String()})
	return uint64(len(s.q.submitted)), nil
}

// fakeAuth accepts PLAIN for mjl with password "secret".
type fakeAuth struct {
	mu      sync.Mutex
	revoked int
}

func (a *fakeAuth) Start(ctx context.Context, mech string, ip netip.Addr, tls bool, cbs []auth.ChannelBinding, initial []byte, hasInitial bool) (storeclient.Step, error) {
	if mech != "PLAIN" {
		return storeclient.Step{}, storeclient.ErrMalformed
	}
	if !hasInitial {
		return storeclient.Step{Exchange: 1}, nil
	}
	return a.Continue(ctx, 1, initial)
}

func (a *fakeAuth) Continue(ctx context.Context, ex uint64, resp []byte) (storeclient.Step, error) {
	if string(resp) != "\x00mjl\x00secret" {
		return storeclient.Step{}, storeclient.ErrAuthFailed
	}
	return storeclient.Step{Done: true, Account: "mjl", Token: auth.Token{1, 2, 3}}, nil
}

func (a *fakeAuth) Abort(ctx context.Context, ex uint64) error { return nil }

func (a *fakeAuth) RevokeToken(tok auth.Token) error {
	a.mu.Lock()
	a.revoked++
	a.mu.Unlock()
	return nil
}

// testServer is a server with fakes, listening on 127.0.0.1.
type testServer struct {
	*server
	store *fakeStore
	queue *fakeQueue
	auth  *fakeAuth
	addr  string
	cfg   smtp.Config
}

func defaultSlice() config.SMTPSlice {
	return config.SMTPSlice{
		MaxMessageSize: 1 << 20,
		MaxRecipients:  1000,
		RequireTLS:     true,
		RejectDMARC:    true,
		Limits: config.LimitsSlice{
			ConnectionsPerMinute:  [3]int{300, 1200, 4800},
			ConcurrentConnections: [3]int{100, 300, 1000},
			MaxAuthFailures:       3,
		},
	}
}

// startServer runs an instance with the given slice and resolver.
func startServer(t *testing.T, sc config.SMTPSlice, r dns.Resolver) *testServer {
	t.Helper()
	if r == nil {
		r = dns.Offline()
	}
	trusted, err := connlimit.ParseTrusted(sc.Limits.TrustedNetworks)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{
		store: &fakeStore{accounts: map[string]string{"mjl@example.org": "mjl", "other@example.org": "other", "postmaster": "mjl"}, results: map[string]storeclient.RcptState{}},
		queue: &fakeQueue{},
		auth:  &fakeAuth{},
	}
	ts.server = &server{
		hostname:   "mail.example.org",
		submission: sc.Submission,
		localserve: sc.Localserve,
		log:        slog.New(slog.DiscardHandler),
		store:      ts.store,
		auth:       ts.auth,
		queue:      ts.queue,
		limiter:    connlimit.New(trusted, sc.Limits.ConnectionsPerMinute, sc.Limits.ConcurrentConnections, nil),
		now:        time.Now,
	}
	ts.settings.Store(&settings{cfg: sc, resolver: r})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	ts.cfg = smtp.Config{Hostname: "mail.example.org", Submission: sc.Submission, CommandTimeout: testDeadline, TLSConfig: testServerTLS(t)}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				ts.serve(ctx, c, ts.cfg, "smtp")
			}()
		}
	}()
	t.Cleanup(func() {
		cancel()
		ln.Close()
		wg.Wait()
	})
	return ts
}

// client is a line-based SMTP client for tests.
type client struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

func (ts *testServer) dial(t *testing.T) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", ts.addr, testDeadline)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn, br: bufio.NewReader(conn)}
}

// reply reads one reply, lines joined by "\n".
func (c *client) reply() string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(testDeadline))
	var lines []string
	for {
		l, err := c.br.ReadString('\n')
		if err != nil {
			c.t.Fatalf("read reply after %q: %v", lines, err)
		}
		l = strings.TrimSuffix(l, "\r\n")
		lines = append(lines, l)
		if len(l) < 4 || l[3] != '-' {
			return strings.Join(lines, "\n")
		}
	}
}

func (c *client) send(s string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(testDeadline))
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// expect sends a line and checks the reply's start.
func (c *client) expect(line, want string) string {
	c.t.Helper()
	c.send(line + "\r\n")
	got := c.reply()
	if !strings.HasPrefix(got, want) {
		c.t.Fatalf("%q: reply %q, want %q", line, got, want)
	}
	return got
}

// testServerTLS returns a TLS config with a fresh self-signed certificate.
func testServerTLS(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"mail.example.org"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// startTLS does STARTTLS and EHLO again.
func (c *client) startTLS() {
	c.t.Helper()
	c.expect("STARTTLS", "220")
	tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("tls handshake: %v", err)
	}
	c.conn = tc
	c.br = bufio.NewReader(tc)
	c.expect("EHLO client.example", "250")
}

// greet reads the greeting and sends EHLO.
func (c *client) greet() {
	c.t.Helper()
	if got := c.reply(); !strings.HasPrefix(got, "220 ") {
		c.t.Fatalf("greeting %q", got)
	}
	c.expect("EHLO client.example", "250")
}

// message sends DATA with msg (CRLF lines, without the final dot) and
// returns the reply.
func (c *client) message(msg string) string {
	c.t.Helper()
	c.expect("DATA", "354")
	c.send(msg + ".\r\n")
	return c.reply()
}
