package smtp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testHost     = "mail.example.org"
	testDeadline = 10 * time.Second
)

// testTLS returns a server config with a fresh self-signed certificate for
// testHost, and a client config that trusts it.
func testTLS(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: testHost},
		DNSNames:              []string{testHost},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("create certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}
	client = &tls.Config{RootCAs: pool, ServerName: testHost}
	return server, client
}

// syncBuffer is a log sink safe for the server goroutine and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testLogger logs everything down to LevelTrace into the returned buffer.
func testLogger() (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: LevelTrace})), buf
}

// session is a server session over net.Pipe and the client end of it.
type session struct {
	t      *testing.T
	raw    net.Conn // the client end of the pipe
	conn   net.Conn // raw, or TLS over it
	br     *bufio.Reader
	cancel context.CancelFunc
	done   chan struct{}
	err    error // Serve's result, valid once done is closed
}

// startSession runs Serve on one end of a pipe. cfg.Hostname defaults to
// testHost.
func startSession(t *testing.T, cfg Config) *session {
	t.Helper()
	if cfg.Hostname == "" {
		cfg.Hostname = testHost
	}
	if cfg.Session == nil {
		cfg.Session = &testSession{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, cli := net.Pipe()
	s := &session{t: t, raw: cli, conn: cli, br: bufio.NewReader(cli), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.err = Serve(ctx, srv, cfg)
	}()
	t.Cleanup(func() {
		cancel()
		// Close the pipe itself: a TLS close_notify would block on the
		// unbuffered pipe while the server writes its own.
		s.raw.Close()
		select {
		case <-s.done:
		case <-time.After(testDeadline):
			t.Errorf("Serve did not return after the client closed")
		}
	})
	return s
}

// wait returns Serve's result once it has returned.
func (s *session) wait() error {
	s.t.Helper()
	select {
	case <-s.done:
		return s.err
	case <-time.After(testDeadline):
		s.t.Fatalf("Serve did not return")
		return nil
	}
}

// send writes raw bytes.
func (s *session) send(data string) {
	s.t.Helper()
	s.conn.SetWriteDeadline(time.Now().Add(testDeadline))
	if _, err := io.WriteString(s.conn, data); err != nil {
		s.t.Fatalf("write %.200q: %v", data, err)
	}
}

// sendAsync writes raw bytes from another goroutine, for input larger than
// what the pipe takes while the server's replies are not read yet.
func (s *session) sendAsync(data string) {
	conn := s.conn
	go func() {
		conn.SetWriteDeadline(time.Now().Add(testDeadline))
		io.WriteString(conn, data)
	}()
}

// reply reads one (possibly multi-line) reply and returns its lines joined
// by "\n", without CRLF.
func (s *session) reply() string {
	s.t.Helper()
	s.conn.SetReadDeadline(time.Now().Add(testDeadline))
	var lines []string
	for {
		line, err := s.br.ReadString('\n')
		if err != nil {
			s.t.Fatalf("read reply (after %q): %v", lines, err)
		}
		if !strings.HasSuffix(line, "\r\n") {
			s.t.Fatalf("reply line %q does not end in CRLF", line)
		}
		line = strings.TrimSuffix(line, "\r\n")
		lines = append(lines, line)
		if len(line) < 4 {
			s.t.Fatalf("short reply line %q", line)
		}
		if line[3] == ' ' {
			return strings.Join(lines, "\n")
		}
		if line[3] != '-' {
			s.t.Fatalf("reply line %q: want '-' or ' ' after the code", line)
		}
	}
}

// cmd sends one command line and returns the reply.
func (s *session) cmd(line string) string {
	s.t.Helper()
	s.send(line + "\r\n")
	return s.reply()
}

// expect sends a command and checks the reply starts with want.
func (s *session) expect(line, want string) string {
	s.t.Helper()
	got := s.cmd(line)
	if !strings.HasPrefix(got, want) {
		s.t.Fatalf("%q: got reply %q, want prefix %q", line, got, want)
	}
	return got
}

// expectClosed checks the server sends nothing more and closes.
func (s *session) expectClosed() {
	s.t.Helper()
	s.conn.SetReadDeadline(time.Now().Add(testDeadline))
	rest, err := io.ReadAll(s.br)
	if len(rest) > 0 {
		s.t.Fatalf("got %q, want the connection closed", rest)
	}
	if err != nil && !errors.Is(err, io.ErrClosedPipe) {
		s.t.Fatalf("read after close: %v, want EOF", err)
	}
}

// startTLS runs the client side of a TLS handshake and switches the session
// to it.
func (s *session) startTLS(cfg *tls.Config) *tls.Conn {
	s.t.Helper()
	if n := s.br.Buffered(); n > 0 {
		s.t.Fatalf("%d bytes buffered before TLS", n)
	}
	tc := tls.Client(s.conn, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		s.t.Fatalf("client TLS handshake: %v", err)
	}
	s.conn = tc
	s.br = bufio.NewReader(tc)
	return tc
}

// delivered is one message a testSession received.
type delivered struct {
	from  Path
	mail  MailFrom
	rcpts []string
	body  string
}

// testSession is a Session for tests: it accepts everything unless told
// otherwise and records what it received.
type testSession struct {
	mu sync.Mutex
	// mechs are offered as AUTH mechanisms (all before and after TLS).
	mechs []string
	// auth runs an AUTH; nil accepts any exchange as account "mjl" after
	// one empty challenge when there was no initial response.
	auth func(mech string, initial []byte, hasInitial bool, exchange func([]byte) ([]byte, error)) (string, error)
	// mail, rcpt and data may refuse; nil accepts.
	mail func(m *MailFrom) error
	rcpt func(r *RcptTo) error
	data func(body []byte) error
	// readErr, set by Data, is the error the body reader returned.
	readErr error

	messages []delivered
	resets   int
	hellos   []string
}

func (ts *testSession) Hello(ctx context.Context, st *State) error {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.hellos = append(ts.hellos, st.HelloName)
	return nil
}

func (ts *testSession) AuthMechanisms(st *State) []string { return ts.mechs }

func (ts *testSession) Auth(ctx context.Context, st *State, mech string, initial []byte, hasInitial bool, exchange func([]byte) ([]byte, error)) (string, error) {
	if ts.auth != nil {
		return ts.auth(mech, initial, hasInitial, exchange)
	}
	if !hasInitial {
		if _, err := exchange(nil); err != nil {
			return "", err
		}
	}
	return "mjl", nil
}

func (ts *testSession) Mail(ctx context.Context, st *State, m *MailFrom) error {
	if ts.mail != nil {
		return ts.mail(m)
	}
	return nil
}

func (ts *testSession) Rcpt(ctx context.Context, st *State, r *RcptTo) error {
	if ts.rcpt != nil {
		return ts.rcpt(r)
	}
	return nil
}

func (ts *testSession) Data(ctx context.Context, st *State, body io.Reader) error {
	b, err := io.ReadAll(body)
	ts.mu.Lock()
	ts.readErr = err
	ts.mu.Unlock()
	if err != nil {
		return err
	}
	if ts.data != nil {
		if err := ts.data(b); err != nil {
			return err
		}
	}
	var rcpts []string
	for _, r := range st.Rcpts {
		rcpts = append(rcpts, r.Path.Address())
	}
	ts.mu.Lock()
	ts.messages = append(ts.messages, delivered{from: st.Mail.Path, mail: *st.Mail, rcpts: rcpts, body: string(b)})
	ts.mu.Unlock()
	return nil
}

func (ts *testSession) Reset(st *State) {
	ts.mu.Lock()
	ts.resets++
	ts.mu.Unlock()
}

// got returns the messages received so far.
func (ts *testSession) got() []delivered {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]delivered(nil), ts.messages...)
}
