package queue

// Test helpers for outbound delivery: SMTP servers on loopback
// (github.com/emersion/go-smtp, an independent implementation), a DNS
// server (dnstest) pointing the test domains at them, a fake moxd-keys
// that signs DKIM digests, and readers of the queue's records.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/mail"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
	bolt "go.etcd.io/bbolt"

	"moxd/internal/auth"
	"moxd/internal/config"
	"moxd/internal/dns/dnstest"
	"moxd/internal/ipc"
	"moxd/internal/mailproto/dsn"
	"moxd/internal/queue/queueclient"
)

// smtpTx is one mail transaction a test server received completely.
type smtpTx struct {
	from     string
	mailOpts gosmtp.MailOptions
	rcpts    []string
	rcptOpts []gosmtp.RcptOptions
	data     string
	tls      bool   // the session was over TLS
	user     string // the authenticated user, "" without AUTH
}

// smtpServer is a go-smtp server on 127.0.0.1:0 that records what it
// receives.
type smtpServer struct {
	addr string
	port int

	// Set before the first connection, or under mu.
	mu sync.Mutex
	// rcptErr decides a RCPT: nil accepts; called for every RCPT.
	rcptErr func(to string) error
	// dataDelay delays the reply after the message data (it is recorded
	// first).
	dataDelay time.Duration
	// user and password, when user is set, are the only credentials
	// accepted, and MAIL needs a successful AUTH first.
	user, password string

	accepted atomic.Int32 // TCP connections accepted
	conns    []net.Conn
	mails    int
	rcpts    []string // every RCPT TO, refused ones included
	auths    []string // "user:password" of every AUTH attempt
	txs      []smtpTx
}

// smtpOpts adjust a test server before it starts.
type smtpOpts struct {
	tls       *tls.Config // offered with STARTTLS
	rcptMax   int         // announced as LIMITS RCPTMAX
	dsn       bool        // announce DSN
	hide8bit  bool        // do not announce 8BITMIME
	smtputf8  bool        // announce SMTPUTF8
	configure func(*gosmtp.Server)
}

func startSMTP(t *testing.T, o smtpOpts) *smtpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{addr: ln.Addr().String(), port: ln.Addr().(*net.TCPAddr).Port}
	srv := gosmtp.NewServer(s)
	srv.Domain = "mx.test.example"
	srv.ReadTimeout = testDeadline
	srv.WriteTimeout = testDeadline
	srv.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLSConfig = o.tls
	srv.MaxRecipients = o.rcptMax
	srv.EnableDSN = o.dsn
	srv.EnableSMTPUTF8 = o.smtputf8
	if o.configure != nil {
		o.configure(srv)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(&countingListener{Listener: ln, s: s, hide8bit: o.hide8bit})
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return s
}

// countingListener counts connections and, with hide8bit, removes
// 8BITMIME from EHLO replies (go-smtp always announces it).
type countingListener struct {
	net.Listener
	s        *smtpServer
	hide8bit bool
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.s.accepted.Add(1)
	l.s.mu.Lock()
	l.s.conns = append(l.s.conns, c)
	l.s.mu.Unlock()
	if l.hide8bit {
		c = &hide8bitConn{Conn: c}
	}
	return c, nil
}

// hide8bitConn drops the EHLO line announcing 8BITMIME: go-smtp writes
// and flushes each reply line on its own, and 8BITMIME is never the last
// one.
type hide8bitConn struct{ net.Conn }

func (c *hide8bitConn) Write(b []byte) (int, error) {
	if string(b) == "250-8BITMIME\r\n" {
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// dropConns closes the server's end of every connection so far, as a
// server does with idle sessions.
func (s *smtpServer) dropConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

func (s *smtpServer) transactions() []smtpTx {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]smtpTx(nil), s.txs...)
}

func (s *smtpServer) rcptsSeen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.rcpts...)
}

func (s *smtpServer) set(fn func(s *smtpServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s)
}

func (s *smtpServer) NewSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	return &smtpSession{s: s, c: c}, nil
}

type smtpSession struct {
	s    *smtpServer
	c    *gosmtp.Conn
	user string
	cur  smtpTx
}

func (ss *smtpSession) AuthMechanisms() []string {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	if ss.s.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *smtpSession) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, gosmtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		ss.s.mu.Lock()
		defer ss.s.mu.Unlock()
		ss.s.auths = append(ss.s.auths, username+":"+password)
		if username != ss.s.user || password != ss.s.password {
			return gosmtp.ErrAuthFailed
		}
		ss.user = username
		return nil
	}), nil
}

func (ss *smtpSession) Mail(from string, opts *gosmtp.MailOptions) error {
	ss.s.mu.Lock()
	ss.s.mails++
	needAuth := ss.s.user != "" && ss.user == ""
	ss.s.mu.Unlock()
	if needAuth {
		return gosmtp.ErrAuthRequired
	}
	ss.cur = smtpTx{from: from, user: ss.user}
	if opts != nil {
		ss.cur.mailOpts = *opts
	}
	return nil
}

func (ss *smtpSession) Rcpt(to string, opts *gosmtp.RcptOptions) error {
	ss.s.mu.Lock()
	ss.s.rcpts = append(ss.s.rcpts, to)
	check := ss.s.rcptErr
	ss.s.mu.Unlock()
	if check != nil {
		if err := check(to); err != nil {
			return err
		}
	}
	ss.cur.rcpts = append(ss.cur.rcpts, to)
	if opts != nil {
		ss.cur.rcptOpts = append(ss.cur.rcptOpts, *opts)
	}
	return nil
}

func (ss *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.cur.data = string(b)
	_, ss.cur.tls = ss.c.TLSConnectionState()
	ss.s.mu.Lock()
	ss.s.txs = append(ss.s.txs, ss.cur)
	delay := ss.s.dataDelay
	ss.s.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	return nil
}

func (ss *smtpSession) Reset()        { ss.cur = smtpTx{} }
func (ss *smtpSession) Logout() error { return nil }

// smtpErr is a reply for go-smtp to send.
func smtpErr(code int, enhanced [3]int, msg string) error {
	return &gosmtp.SMTPError{Code: code, EnhancedCode: gosmtp.EnhancedCode(enhanced), Message: msg}
}

// testCert returns a self-signed certificate for names (an IP address
// becomes an IP SAN) and its PEM, usable as [queue] test_ca.
func testCert(t testing.TB, names ...string) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: names[0]},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return cert, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// fakeKeys answers DKIMSign as moxd-keys does, with keys made here.
type fakeKeys struct {
	mu   sync.Mutex
	keys map[string]crypto.Signer // "domain/selector"
	n    int                      // signatures made
}

func newFakeKeys() *fakeKeys { return &fakeKeys{keys: map[string]crypto.Signer{}} }

// add makes a key for selector of domain and returns its DNS TXT record.
func (k *fakeKeys) add(t testing.TB, domain, selector, alg string) string {
	t.Helper()
	var s crypto.Signer
	var rec string
	switch alg {
	case "ed25519":
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		s, rec = priv, "v=DKIM1; k=ed25519; p="+b64(pub)
	default:
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		s, rec = key, "v=DKIM1; k=rsa; p="+b64(der)
	}
	k.mu.Lock()
	k.keys[domain+"/"+selector] = s
	k.mu.Unlock()
	return rec
}

func (k *fakeKeys) serve(ctx context.Context, req *ipc.Request) (ipc.Message, []*os.File, error) {
	defer closeFiles(req.Files)
	m, ok := req.Msg.(*ipc.DKIMSign)
	if !ok {
		return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "fake keys does not serve %s", req.Msg.Type())
	}
	k.mu.Lock()
	s := k.keys[m.Domain+"/"+m.Selector]
	k.n++
	k.mu.Unlock()
	var sig []byte
	var err error
	switch key := s.(type) {
	case nil:
		return nil, nil, ipc.Errorf(ipc.CodeNotFound, "no DKIM key for selector %s of %s", m.Selector, m.Domain)
	case ed25519.PrivateKey:
		// RFC 8463 §3: Ed25519 signs the SHA-256 hash as its message.
		sig = ed25519.Sign(key, m.Digest)
	case *rsa.PrivateKey:
		sig, err = rsa.SignPKCS1v15(rand.Reader, key, crypto.Hash(m.Hash), m.Digest)
	}
	if err != nil {
		return nil, nil, ipc.Errorf(ipc.CodeFailed, "sign: %v", err)
	}
	return &ipc.DKIMSignature{Sig: sig}, nil, nil
}

// keysUp connects queue to k on a fresh channel.
func (tq *testQueue) keysUp(k *fakeKeys) {
	t := tq.t
	a, b, err := ipc.Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	qc, err := ipc.New(a, ipc.Options{Local: ipc.RoleQueue, Peer: ipc.RoleKeys})
	if err != nil {
		t.Fatal(err)
	}
	kc, err := ipc.New(b, ipc.Options{Local: ipc.RoleKeys, Peer: ipc.RoleQueue, Handler: ipc.HandlerFunc(k.serve)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { qc.Close(); kc.Close() })
	tq.mu.Lock()
	tq.keysConn = qc
	tq.mu.Unlock()
}

// outEnv is a queue delivering to test servers through a test DNS.
type outEnv struct {
	t     *testing.T
	tq    *testQueue
	dns   *dnstest.Server
	ctx   context.Context
	sub   *queueclient.Submitter
	tok   auth.Token
	slice config.QueueSlice
}

// Test domains: a.example and b.example have MX hosts at 127.0.0.1.
var baseRecords = []string{
	"a.example. 300 IN MX 10 mx.a.example.",
	"mx.a.example. 300 IN A 127.0.0.1",
	"b.example. 300 IN MX 10 mx.b.example.",
	"mx.b.example. 300 IN A 127.0.0.1",
}

// outboundSlice is testSlice with DNS at dnsAddr, direct delivery to port
// and a short schedule: 3 attempts, an hour apart at first, a delayed DSN
// after the second.
func outboundSlice(dnsAddr string, port int) config.QueueSlice {
	s := testSlice()
	s.DNS = config.DNSSlice{Servers: []string{dnsAddr}}
	s.Delivery = config.QueueDelivery{MaxAttempts: 3, FirstRetry: time.Hour, DelayedDSNAfter: 2, MTASTS: true, Port: port}
	return s
}

// newOutEnv starts DNS with baseRecords and records, and a queue whose
// direct deliveries go to port; adjust changes the slice first.
func newOutEnv(t *testing.T, port int, adjust func(*config.QueueSlice), records ...string) *outEnv {
	t.Helper()
	zone := dnstest.Start(t, append(append([]string(nil), baseRecords...), records...)...)
	slice := outboundSlice(zone.Addr(), port)
	if adjust != nil {
		adjust(&slice)
	}
	tq := openTestQueue(t, mkdir(t), slice, newFakeStore(), nil)
	e := &outEnv{t: t, tq: tq, dns: zone, ctx: testContext(t), slice: slice}
	e.sub = tq.submitter(ipc.RoleSubmission)
	e.tok = tq.store.token("mjl", ipc.RoleSubmission)
	return e
}

// with returns e for subtest t: its helpers fail t.
func (e *outEnv) with(t *testing.T) *outEnv {
	c := *e
	c.t = t
	return &c
}

// send submits msg from account mjl; env.MailFrom defaults to
// mjl@example.org.
func (e *outEnv) send(env queueclient.Envelope, msg string, rcpts ...string) uint64 {
	e.t.Helper()
	id, err := e.trySend(env, msg, rcpts...)
	if err != nil {
		e.t.Fatalf("submit: %v", err)
	}
	return id
}

func (e *outEnv) trySend(env queueclient.Envelope, msg string, rcpts ...string) (uint64, error) {
	env.Token = e.tok
	if env.MailFrom == "" {
		env.MailFrom = "mjl@example.org"
	}
	return submit(e.ctx, e.sub, env, msg, rcpts...)
}

// sendRcpts submits with DSN parameters per recipient.
func (e *outEnv) sendRcpts(env queueclient.Envelope, msg string, rcpts []queueclient.Recipient) uint64 {
	e.t.Helper()
	env.Token = e.tok
	if env.MailFrom == "" {
		env.MailFrom = "mjl@example.org"
	}
	sp, err := e.sub.NewSpool(e.ctx, int64(len(msg)))
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := io.WriteString(sp, msg); err != nil {
		e.t.Fatal(err)
	}
	id, err := e.sub.Submit(e.ctx, sp, env, rcpts)
	if err != nil {
		e.t.Fatalf("submit: %v", err)
	}
	return id
}

// advance moves the queue's clock and wakes the deliverer.
func (e *outEnv) advance(d time.Duration) {
	e.tq.advance(d)
	e.tq.sv.q.notifyOutbound()
}

// queued returns the message's queued recipients, nil when the message
// is gone.
func (e *outEnv) queued(id uint64) []*Recipient {
	_, rcpts, err := e.tq.sv.q.loadMessage(id)
	if errors.Is(err, errNoMessage) {
		return nil
	} else if err != nil {
		e.t.Fatal(err)
	}
	return rcpts
}

// waitGone waits until message id left the queue.
func (e *outEnv) waitGone(id uint64) {
	e.t.Helper()
	waitFor(e.t, "message to leave the queue", func() bool {
		_, _, err := e.tq.sv.q.loadMessage(id)
		return errors.Is(err, errNoMessage)
	})
}

// waitAttempts waits until every queued recipient of id has had n
// attempts, and returns them.
func (e *outEnv) waitAttempts(id uint64, n int) []*Recipient {
	e.t.Helper()
	var rcpts []*Recipient
	waitFor(e.t, "delivery attempt", func() bool {
		rcpts = e.queued(id)
		if len(rcpts) == 0 {
			return false
		}
		for _, rc := range rcpts {
			if rc.Attempts < n {
				return false
			}
		}
		return true
	})
	return rcpts
}

// messageIDs returns the ids of every message record in the queue.
func (e *outEnv) messageIDs() []uint64 {
	var ids []uint64
	e.tq.sv.q.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketMsgs)).ForEach(func(k, v []byte) error {
			ids = append(ids, binary.BigEndian.Uint64(k))
			return nil
		})
	})
	return ids
}

// retired returns the retired records of message id, by seq.
func (e *outEnv) retired(id uint64) map[uint32]*Retired {
	e.t.Helper()
	l := map[uint32]*Retired{}
	e.tq.sv.q.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketRetired)).ForEach(func(k, v []byte) error {
			r, err := unmarshalRetired(k, v)
			if err != nil {
				e.t.Error(err)
				return nil
			}
			if r.Msg == id {
				l[r.Seq] = r
			}
			return nil
		})
	})
	return l
}

// retiredByAddr returns the retired records of message id by address.
func (e *outEnv) retiredByAddr(id uint64) map[string]*Retired {
	l := map[string]*Retired{}
	for _, r := range e.retired(id) {
		l[r.Address] = r
	}
	return l
}

// gotDSN is a DSN the fake store received.
type gotDSN struct {
	rcpt   string
	header mail.Header
	report *dsn.Report
	body   string
}

// dsns returns the DSNs store received so far (deliveries from the null
// sender), failing the test for one that does not parse.
func (e *outEnv) dsns() []gotDSN {
	e.t.Helper()
	var l []gotDSN
	for _, d := range e.tq.store.deliveries() {
		if d.mailFrom != "" {
			continue
		}
		msg, err := mail.ReadMessage(strings.NewReader(d.body))
		if err != nil {
			e.t.Fatalf("DSN does not parse as a message: %v", err)
		}
		rep, err := dsn.Parse(strings.NewReader(d.body))
		if err != nil {
			e.t.Fatalf("DSN does not parse: %v\n%s", err, d.body)
		}
		l = append(l, gotDSN{d.rcpt, msg.Header, rep, d.body})
	}
	return l
}

// waitDSNs waits until store received n DSNs and returns them.
func (e *outEnv) waitDSNs(n int) []gotDSN {
	e.t.Helper()
	waitFor(e.t, "DSN delivered to the sender", func() bool { return len(e.dsns()) >= n })
	l := e.dsns()
	if len(l) != n {
		e.t.Fatalf("%d DSNs, want %d", len(l), n)
	}
	return l
}

// checkDSN checks a DSN about the message with Message-ID origID to
// mjl@example.org: action and status per final recipient.
func checkDSN(t *testing.T, d gotDSN, origID, action string, status map[string]string) {
	t.Helper()
	if d.rcpt != "mjl@example.org" {
		t.Errorf("DSN delivered to %q, want the sender mjl@example.org", d.rcpt)
	}
	if got := d.header.Get("In-Reply-To"); got != origID {
		t.Errorf("DSN In-Reply-To %q, want %q", got, origID)
	}
	if got := d.header.Get("References"); !strings.Contains(got, origID) {
		t.Errorf("DSN References %q, want %q", got, origID)
	}
	if len(d.report.Recipients) != len(status) {
		t.Fatalf("DSN reports %d recipients, want %d: %+v", len(d.report.Recipients), len(status), d.report.Recipients)
	}
	for _, r := range d.report.Recipients {
		want, ok := status[r.FinalRecipient]
		if !ok {
			t.Errorf("DSN reports on %q, not a recipient it should", r.FinalRecipient)
			continue
		}
		if string(r.Action) != action || r.Status != want {
			t.Errorf("DSN for %s: action %q status %q, want %q %q", r.FinalRecipient, r.Action, r.Status, action, want)
		}
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
