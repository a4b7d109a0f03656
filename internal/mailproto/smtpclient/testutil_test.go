package smtpclient

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
	testServerName = "mx.example.org"
	testClientName = "client.example.net"
	testDeadline   = 10 * time.Second
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// testTLS returns a server config with a fresh self-signed certificate for
// testServerName, and a client config that trusts it.
func testTLS(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: testServerName},
		DNSNames:              []string{testServerName},
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
	client = &tls.Config{RootCAs: pool, ServerName: testServerName}
	return server, client
}

// syncBuffer is a log sink safe for several goroutines.
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

// traceLogger logs everything down to LevelTrace into the returned buffer.
func traceLogger() (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: LevelTrace})), buf
}

// errScriptAbort ends a fake server script after a failed check.
var errScriptAbort = errors.New("script aborted")

// fakeServer is the server end of a scripted session: a test writes the
// dialogue line by line and checks what the client sends.
type fakeServer struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

// startFake runs script as the server on one end of a pipe and returns the
// client end. The script's failures are reported with t.Errorf; the test
// waits for the script to end before it finishes.
func startFake(t *testing.T, script func(s *fakeServer)) net.Conn {
	t.Helper()
	srv, cli := net.Pipe()
	s := &fakeServer{t: t, conn: srv, br: bufio.NewReader(srv)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer srv.Close()
		defer func() {
			if x := recover(); x != nil && x != errScriptAbort {
				panic(x)
			}
		}()
		script(s)
	}()
	t.Cleanup(func() {
		cli.Close()
		select {
		case <-done:
		case <-time.After(testDeadline):
			t.Errorf("fake server script did not end")
		}
	})
	return cli
}

func (s *fakeServer) fail(format string, args ...any) {
	s.t.Helper()
	s.t.Errorf("fake server: "+format, args...)
	panic(errScriptAbort)
}

// send writes lines, each with CRLF, in one write.
func (s *fakeServer) send(lines ...string) {
	s.t.Helper()
	s.sendRaw(strings.Join(lines, "\r\n") + "\r\n")
}

func (s *fakeServer) sendRaw(data string) {
	s.t.Helper()
	s.conn.SetWriteDeadline(time.Now().Add(testDeadline))
	if _, err := io.WriteString(s.conn, data); err != nil {
		s.fail("write %q: %v", data, err)
	}
}

// line reads one line from the client, without CRLF.
func (s *fakeServer) line() string {
	s.t.Helper()
	s.conn.SetReadDeadline(time.Now().Add(testDeadline))
	l, err := s.br.ReadString('\n')
	if err != nil {
		s.fail("read line (got %q): %v", l, err)
	}
	if !strings.HasSuffix(l, "\r\n") {
		s.fail("line %q does not end in CRLF", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

// expect reads a line and checks it equals want.
func (s *fakeServer) expect(want string) {
	s.t.Helper()
	if got := s.line(); got != want {
		s.fail("client sent %q, want %q", got, want)
	}
}

// expectPrefix reads a line and checks it starts with want.
func (s *fakeServer) expectPrefix(want string) string {
	s.t.Helper()
	got := s.line()
	if !strings.HasPrefix(got, want) {
		s.fail("client sent %q, want prefix %q", got, want)
	}
	return got
}

// greet sends the greeting, reads EHLO and answers with the extensions.
func (s *fakeServer) greet(exts ...string) {
	s.t.Helper()
	s.send("220 " + testServerName + " ESMTP fake")
	s.expect("EHLO " + testClientName)
	s.ehloReply(exts...)
}

func (s *fakeServer) ehloReply(exts ...string) {
	s.t.Helper()
	lines := []string{testServerName + " hello"}
	lines = append(lines, exts...)
	var out []string
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		out = append(out, "250"+sep+l)
	}
	s.send(out...)
}

// data reads message data up to the end-of-data line and returns it
// dot-unstuffed.
func (s *fakeServer) data() string {
	s.t.Helper()
	var b strings.Builder
	for {
		l := s.line()
		if l == "." {
			return b.String()
		}
		b.WriteString(strings.TrimPrefix(l, "."))
		b.WriteString("\r\n")
	}
}

// quit answers QUIT.
func (s *fakeServer) quit() {
	s.t.Helper()
	s.expect("QUIT")
	s.send("221 2.0.0 bye")
}

// expectEOF checks that the client closes without sending more.
func (s *fakeServer) expectEOF() {
	s.t.Helper()
	s.conn.SetReadDeadline(time.Now().Add(testDeadline))
	rest, err := io.ReadAll(s.br)
	if len(rest) > 0 {
		s.fail("client sent %q, want the connection closed", rest)
	}
	if err != nil && !errors.Is(err, io.ErrClosedPipe) {
		s.fail("read after close: %v", err)
	}
}

// testConfig is a client configuration with short timeouts.
func testConfig() Config {
	return Config{
		Hostname:         testClientName,
		GreetingTimeout:  testDeadline,
		CommandTimeout:   testDeadline,
		DataInitTimeout:  testDeadline,
		DataBlockTimeout: testDeadline,
		DataTermTimeout:  testDeadline,
	}
}

// newClient runs New on conn and fails the test on error.
func newClient(t *testing.T, conn net.Conn, cfg Config) *Client {
	t.Helper()
	c, err := New(testContext(t), conn, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// envelope returns an envelope from sender to the recipients.
func envelope(from string, to ...string) Envelope {
	env := Envelope{MailFrom: from}
	for _, r := range to {
		env.Recipients = append(env.Recipients, Recipient{Addr: r})
	}
	return env
}

// deliver runs Deliver with msg as the data.
func deliver(t *testing.T, c *Client, env Envelope, msg string) ([]RcptResult, error) {
	t.Helper()
	return c.Deliver(testContext(t), env, strings.NewReader(msg), int64(len(msg)))
}

// countingConn records every Write call on a connection, to check which
// commands went out together.
type countingConn struct {
	net.Conn
	mu     sync.Mutex
	writes []string
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, string(p))
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// writeWith returns the write that contains s, or "".
func (c *countingConn) writeWith(s string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range c.writes {
		if strings.Contains(w, s) {
			return w
		}
	}
	return ""
}

func (c *countingConn) all() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.writes, "")
}
