package smtp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

func TestGreetingAndEHLO(t *testing.T) {
	serverTLS, _ := testTLS(t)
	tests := []struct {
		name     string
		cfg      Config
		greeting string
		ehlo     string
	}{
		{"mx plain", Config{}, "220 mail.example.org ESMTP moxd",
			"250-mail.example.org\n250-PIPELINING\n250-SIZE 104857600\n250-8BITMIME\n250-SMTPUTF8\n250-ENHANCEDSTATUSCODES\n250-CHUNKING\n250-LIMITS RCPTMAX=1000\n250 DSN"},
		{"mx starttls", Config{TLSConfig: serverTLS, RequireTLS: true}, "220 mail.example.org ESMTP moxd",
			"250-mail.example.org\n250-PIPELINING\n250-SIZE 104857600\n250-8BITMIME\n250-SMTPUTF8\n250-ENHANCEDSTATUSCODES\n250-STARTTLS\n250-CHUNKING\n250-LIMITS RCPTMAX=1000\n250 DSN"},
		{"submission", Config{Submission: true, TLSConfig: serverTLS, Session: &testSession{mechs: []string{"SCRAM-SHA-256"}}}, "220 mail.example.org ESMTP moxd mail submission",
			"250-mail.example.org\n250-PIPELINING\n250-SIZE 104857600\n250-8BITMIME\n250-SMTPUTF8\n250-ENHANCEDSTATUSCODES\n250-STARTTLS\n250-AUTH SCRAM-SHA-256\n250-CHUNKING\n250-LIMITS RCPTMAX=1000\n250 DSN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startSession(t, tt.cfg)
			if got := s.reply(); got != tt.greeting {
				t.Fatalf("greeting %q, want %q", got, tt.greeting)
			}
			if got := s.cmd("EHLO client.example"); got != tt.ehlo {
				t.Fatalf("EHLO reply %q, want %q", got, tt.ehlo)
			}
			if got := s.cmd("HELO client.example"); got != "250 mail.example.org" {
				t.Fatalf("HELO reply %q, want plain 250 with the host name", got)
			}
			if got := s.cmd("QUIT"); got != "221 2.0.0 mail.example.org closing connection" {
				t.Fatalf("QUIT reply %q", got)
			}
			s.expectClosed()
			if err := s.wait(); err != nil {
				t.Fatalf("Serve after QUIT: %v, want nil", err)
			}
		})
	}
}

func TestHelloSyntax(t *testing.T) {
	tests := []struct {
		arg  string
		want string
	}{
		{"client.example", "250"},
		{"CLIENT.Example", "250"},
		{"localhost", "250"},
		{"a-b.c1.example", "250"},
		{"client.example  ", "250"}, // trailing spaces tolerated
		{"[192.0.2.1]", "250"},
		{"[IPv6:2001:db8::1]", "250"},
		{"[ipv6:::ffff:192.0.2.1]", "250"},
		{"", "501 5.5.4"},
		{"bad..example", "501 5.5.4"},
		{"client.example.", "501 5.5.4"},
		{"-client.example", "501 5.5.4"},
		{"client-.example", "501 5.5.4"},
		{"under_score.example", "501 5.5.4"},
		{"two words", "501 5.5.4"},
		{strings.Repeat("a", 64) + ".example", "501 5.5.4"},
		{strings.Repeat("abcdefg.", 32) + "example", "501 5.5.4"}, // > 255 octets
		{"[300.1.1.1]", "501 5.5.4"},
		{"[2001:db8::1]", "501 5.5.4"},
		{"[IPv6:192.0.2.1]", "501 5.5.4"},
		{"[IPv6:fe80::1%eth0]", "501 5.5.4"},
		{"[x-tag:foo]", "501 5.5.4"},
		{"[192.0.2.1", "501 5.5.4"},
		{"clïent.example", "501 5.5.4"},
	}
	for _, verb := range []string{"EHLO", "HELO"} {
		for _, tt := range tests {
			t.Run(verb+" "+tt.arg, func(t *testing.T) {
				s := startSession(t, Config{})
				s.reply()
				line := verb
				if tt.arg != "" {
					line += " " + tt.arg
				}
				s.expect(line, tt.want)
				// After a refused hello the session is still not
				// greeted; after an accepted one it is.
				want := "503 5.5.1"
				if tt.want == "250" {
					want = "250 2.1.0"
				}
				s.expect("MAIL FROM:<a@example.org>", want)
			})
		}
	}
}

// prepare brings a fresh session into one of the states the verb table
// test covers.
type prepare struct {
	name  string
	tls   bool // STARTTLS listener
	setup func(s *session)
}

func TestVerbsInEveryState(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	states := []prepare{
		{"init", false, func(s *session) {}},
		{"ready", false, func(s *session) { s.expect("EHLO client.example", "250") }},
		{"ready-helo", false, func(s *session) { s.expect("HELO client.example", "250") }},
		{"tls-init", true, func(s *session) {
			s.expect("EHLO client.example", "250")
			s.expect("STARTTLS", "220 2.0.0")
			s.startTLS(clientTLS)
		}},
		{"tls-ready", true, func(s *session) {
			s.expect("EHLO client.example", "250")
			s.expect("STARTTLS", "220 2.0.0")
			s.startTLS(clientTLS)
			s.expect("EHLO client.example", "250")
		}},
	}
	// want maps state name to the expected reply prefix.
	tests := []struct {
		line string
		want map[string]string
	}{
		{"EHLO client.example", map[string]string{"init": "250", "ready": "250", "ready-helo": "250", "tls-init": "250", "tls-ready": "250"}},
		{"HELO client.example", map[string]string{"init": "250", "ready": "250", "ready-helo": "250", "tls-init": "250", "tls-ready": "250"}},
		{"STARTTLS", map[string]string{"init": "502 5.5.1", "ready": "502 5.5.1", "ready-helo": "502 5.5.1", "tls-init": "503 5.5.1", "tls-ready": "503 5.5.1"}},
		{"NOOP", map[string]string{"init": "250 2.0.0", "ready": "250 2.0.0", "ready-helo": "250 2.0.0", "tls-init": "250 2.0.0", "tls-ready": "250 2.0.0"}},
		{"NOOP anything", map[string]string{"init": "250 2.0.0", "ready": "250 2.0.0", "ready-helo": "250 2.0.0", "tls-init": "250 2.0.0", "tls-ready": "250 2.0.0"}},
		{"RSET", map[string]string{"init": "250 2.0.0", "ready": "250 2.0.0", "ready-helo": "250 2.0.0", "tls-init": "250 2.0.0", "tls-ready": "250 2.0.0"}},
		{"RSET x", map[string]string{"init": "501 5.5.4", "ready": "501 5.5.4", "ready-helo": "501 5.5.4", "tls-init": "501 5.5.4", "tls-ready": "501 5.5.4"}},
		{"HELP", map[string]string{"init": "214-2.0.0", "ready": "214-2.0.0", "ready-helo": "214-2.0.0", "tls-init": "214-2.0.0", "tls-ready": "214-2.0.0"}},
		{"VRFY postmaster", map[string]string{"init": "252 2.5.0", "ready": "252 2.5.0", "ready-helo": "252 2.5.0", "tls-init": "252 2.5.0", "tls-ready": "252 2.5.0"}},
		{"VRFY", map[string]string{"init": "501 5.5.4", "ready": "501 5.5.4", "ready-helo": "501 5.5.4", "tls-init": "501 5.5.4", "tls-ready": "501 5.5.4"}},
		{"EXPN staff", map[string]string{"init": "252 2.5.0", "ready": "252 2.5.0", "ready-helo": "252 2.5.0", "tls-init": "252 2.5.0", "tls-ready": "252 2.5.0"}},
		{"MAIL FROM:<a@example.org>", map[string]string{"init": "503 5.5.1", "ready": "250 2.1.0", "ready-helo": "250 2.1.0", "tls-init": "503 5.5.1", "tls-ready": "250 2.1.0"}},
		{"RCPT TO:<b@example.org>", map[string]string{"init": "503 5.5.1", "ready": "503 5.5.1 send MAIL FROM first", "ready-helo": "503 5.5.1", "tls-init": "503 5.5.1", "tls-ready": "503 5.5.1"}},
		{"DATA", map[string]string{"init": "503 5.5.1", "ready": "503 5.5.1 send MAIL FROM and RCPT TO first", "ready-helo": "503 5.5.1", "tls-init": "503 5.5.1", "tls-ready": "503 5.5.1"}},
		{"BDAT 0 LAST", map[string]string{"init": "503 5.5.1", "ready": "503 5.5.1", "ready-helo": "503 5.5.1", "tls-init": "503 5.5.1", "tls-ready": "503 5.5.1"}},
		{"AUTH PLAIN AGEAYg==", map[string]string{"init": "503 5.5.1", "ready": "502 5.5.1 AUTH is not available", "ready-helo": "502 5.5.1", "tls-init": "503 5.5.1", "tls-ready": "502 5.5.1"}},
		{"mail FROM:<a@example.org>", map[string]string{"init": "503 5.5.1", "ready": "250 2.1.0", "ready-helo": "250 2.1.0", "tls-init": "503 5.5.1", "tls-ready": "250 2.1.0"}},
		{"XYZZY", map[string]string{"init": "500 5.5.2", "ready": "500 5.5.2", "ready-helo": "500 5.5.2", "tls-init": "500 5.5.2", "tls-ready": "500 5.5.2"}},
		{"TURN", map[string]string{"init": "500 5.5.2", "ready": "500 5.5.2", "ready-helo": "500 5.5.2", "tls-init": "500 5.5.2", "tls-ready": "500 5.5.2"}},
		{"QUIT", map[string]string{"init": "221 2.0.0", "ready": "221 2.0.0", "ready-helo": "221 2.0.0", "tls-init": "221 2.0.0", "tls-ready": "221 2.0.0"}},
		{"QUIT now", map[string]string{"init": "501 5.5.4", "ready": "501 5.5.4", "ready-helo": "501 5.5.4", "tls-init": "501 5.5.4", "tls-ready": "501 5.5.4"}},
	}
	for _, st := range states {
		for _, tt := range tests {
			want, ok := tt.want[st.name]
			if !ok {
				t.Fatalf("%q: no expectation for state %s", tt.line, st.name)
			}
			t.Run(st.name+"/"+tt.line, func(t *testing.T) {
				cfg := Config{}
				if st.tls {
					cfg.TLSConfig = serverTLS
				}
				s := startSession(t, cfg)
				s.reply()
				st.setup(s)
				// The "ready" states run on a listener without TLS, so
				// STARTTLS is refused there; TestSTARTTLS covers success.
				s.expect(tt.line, want)
				if strings.HasPrefix(want, "221") {
					s.expectClosed()
					if err := s.wait(); err != nil {
						t.Fatalf("Serve after QUIT: %v", err)
					}
					return
				}
				// The session goes on after every other reply.
				s.expect("NOOP", "250 2.0.0")
				s.expect("QUIT", "221 2.0.0")
			})
		}
	}
}

func TestHelpIsHonest(t *testing.T) {
	serverTLS, _ := testTLS(t)
	for _, tc := range []struct {
		cfg      Config
		starttls bool
	}{{Config{}, false}, {Config{TLSConfig: serverTLS}, true}} {
		s := startSession(t, tc.cfg)
		s.reply()
		got := s.cmd("HELP")
		for _, verb := range []string{"MAIL", "RCPT", "DATA", "BDAT"} {
			if !strings.Contains(got, verb) {
				t.Errorf("HELP %q does not list %s", got, verb)
			}
		}
		if strings.Contains(got, "STARTTLS") != tc.starttls {
			t.Errorf("HELP %q: mentions STARTTLS = %v, want %v", got, !tc.starttls, tc.starttls)
		}
		if strings.Contains(got, "AUTH") {
			t.Errorf("HELP %q lists AUTH, which this session does not offer", got)
		}
	}
}

func TestSTARTTLS(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	log, logBuf := testLogger()
	s := startSession(t, Config{TLSConfig: serverTLS, Log: log, ConnID: 42})
	s.reply()
	s.expect("EHLO client.example", "250")
	s.expect("STARTTLS now", "501 5.5.4")
	if got := s.cmd("STARTTLS"); got != "220 2.0.0 ready to start TLS" {
		t.Fatalf("STARTTLS reply %q", got)
	}
	tc := s.startTLS(clientTLS)
	if !tc.ConnectionState().HandshakeComplete {
		t.Fatalf("handshake not complete")
	}
	// RFC 3207 §4.2: state was reset; EHLO is required again.
	s.expect("MAIL FROM:<a@example.org>", "503 5.5.1 send EHLO or HELO first")
	if got := s.cmd("EHLO client.example"); strings.Contains(got, "STARTTLS") || !strings.Contains(got, "250-ENHANCEDSTATUSCODES") {
		t.Fatalf("EHLO after TLS %q, want no STARTTLS announced", got)
	}
	s.expect("STARTTLS", "503 5.5.1")
	s.expect("QUIT", "221 2.0.0")
	s.expectClosed() // reads the server's TLS close_notify
	if err := s.wait(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	logs := logBuf.String()
	for _, want := range []string{"smtp tls established", "version=\"TLS 1.3\"", "cipher=TLS_", "sni=mail.example.org", "conn=42", "remote=pipe"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

// TestSTARTTLSBeforeEHLO: a client starting TLS right after the greeting
// (as GNU gsasl does) is served; EHLO follows inside TLS.
func TestSTARTTLSBeforeEHLO(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	s := startSession(t, Config{TLSConfig: serverTLS})
	s.reply()
	s.expect("STARTTLS", "220 2.0.0")
	s.startTLS(clientTLS)
	s.expect("MAIL FROM:<a@example.org>", "503 5.5.1 send EHLO or HELO first")
	s.expect("EHLO client.example", "250")
	s.expect("STARTTLS", "503 5.5.1")
}

func TestSTARTTLSPipelinedInjection(t *testing.T) {
	serverTLS, _ := testTLS(t)
	for _, tail := range []string{"MAIL FROM:<attacker@example.org>\r\n", "x"} {
		s := startSession(t, Config{TLSConfig: serverTLS})
		s.reply()
		s.expect("EHLO client.example", "250")
		s.send("STARTTLS\r\n" + tail)
		got := s.reply()
		if !strings.HasPrefix(got, "554 5.5.0") {
			t.Fatalf("STARTTLS with pipelined %q: reply %q, want 554 5.5.0", tail, got)
		}
		s.expectClosed()
		err := s.wait()
		if err == nil || !strings.Contains(err.Error(), "after STARTTLS") {
			t.Fatalf("Serve: %v, want the injection named", err)
		}
	}
}

func TestSTARTTLSHandshakeFailure(t *testing.T) {
	serverTLS, _ := testTLS(t)
	log, logBuf := testLogger()
	s := startSession(t, Config{TLSConfig: serverTLS, Log: log})
	s.reply()
	s.expect("EHLO client.example", "250")
	s.expect("STARTTLS", "220 2.0.0")
	// Not a TLS ClientHello: the server must give up and close.
	s.send("EHLO client.example\r\n")
	s.expectClosed()
	err := s.wait()
	if err == nil || !strings.Contains(err.Error(), "tls handshake") {
		t.Fatalf("Serve: %v, want a tls handshake error", err)
	}
	if !strings.Contains(logBuf.String(), "smtp tls handshake failed") {
		t.Fatalf("handshake failure not logged:\n%s", logBuf.String())
	}
}

func TestImplicitTLS(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	s := startSession(t, Config{TLSConfig: serverTLS, ImplicitTLS: true, Submission: true})
	s.startTLS(clientTLS)
	if got := s.reply(); got != "220 mail.example.org ESMTP moxd mail submission" {
		t.Fatalf("greeting over TLS %q", got)
	}
	if got := s.cmd("EHLO client.example"); strings.Contains(got, "STARTTLS") || !strings.Contains(got, "250-ENHANCEDSTATUSCODES") {
		t.Fatalf("EHLO on implicit TLS %q, want no STARTTLS", got)
	}
	s.expect("STARTTLS", "503 5.5.1")
	s.expect("QUIT", "221 2.0.0")
	s.expectClosed() // reads the server's TLS close_notify
	if err := s.wait(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

func TestImplicitTLSPlaintextClient(t *testing.T) {
	serverTLS, _ := testTLS(t)
	s := startSession(t, Config{TLSConfig: serverTLS, ImplicitTLS: true})
	s.send("EHLO client.example\r\n")
	s.expectClosed()
	if err := s.wait(); err == nil || !strings.Contains(err.Error(), "tls handshake") {
		t.Fatalf("Serve: %v, want a tls handshake error", err)
	}
}

// recordConn keeps a copy of everything read from it.
type recordConn struct {
	net.Conn
	got bytes.Buffer
}

func (c *recordConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.got.Write(p[:n])
	return n, err
}

// TestPanicRecovered makes the session panic inside the TLS handshake (a
// certificate callback runs on the session goroutine) and checks the panic
// does not escape Serve, is logged, and is answered with 421.
func TestPanicRecovered(t *testing.T) {
	log, logBuf := testLogger()
	serverTLS := &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		panic("certificate store exploded")
	}}
	_, clientTLS := testTLS(t)
	s := startSession(t, Config{TLSConfig: serverTLS, ImplicitTLS: true, Log: log})
	rc := &recordConn{Conn: s.raw}
	tc := tls.Client(rc, clientTLS)
	tc.SetDeadline(time.Now().Add(testDeadline))
	if err := tc.Handshake(); err == nil {
		t.Fatalf("handshake succeeded with a panicking certificate callback")
	}
	err := s.wait()
	if err == nil || !strings.Contains(err.Error(), "certificate store exploded") {
		t.Fatalf("Serve: %v, want the panic reported", err)
	}
	if !strings.Contains(rc.got.String(), "421 4.3.0 mail.example.org internal server error") {
		t.Fatalf("client got %q, want a 421 4.3.0 reply", rc.got.String())
	}
	if !strings.Contains(logBuf.String(), "smtp session panic") {
		t.Fatalf("panic not logged:\n%s", logBuf.String())
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no hostname", Config{}, "Hostname"},
		{"implicit without tls", Config{Hostname: testHost, ImplicitTLS: true}, "TLSConfig"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, cli := net.Pipe()
			defer cli.Close()
			err := Serve(context.Background(), srv, tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Serve: %v, want an error naming %s", err, tt.want)
			}
			cli.SetReadDeadline(time.Now().Add(testDeadline))
			if n, err := cli.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
				t.Fatalf("conn not closed: read %d, %v", n, err)
			}
		})
	}
}

func TestTooManyErrors(t *testing.T) {
	tests := []struct {
		maxErrors int
		allowed   int
	}{{3, 3}, {0, DefaultMaxErrors}}
	for _, tt := range tests {
		s := startSession(t, Config{MaxErrors: tt.maxErrors})
		s.reply()
		s.expect("NOOP", "250") // successes do not count
		for i := 0; i < tt.allowed-1; i++ {
			s.expect("XYZZY", "500 5.5.2")
		}
		s.expect("EHLO client.example", "250")
		// The last allowed error is answered, then the session ends.
		s.expect("RCPT TO:<a@example.org>", "503 5.5.1")
		if got := s.reply(); got != "421 4.7.0 mail.example.org too many errors, closing connection" {
			t.Fatalf("after %d errors: %q, want 421 4.7.0", tt.allowed, got)
		}
		s.expectClosed()
		if err := s.wait(); err == nil || !strings.Contains(err.Error(), "errors") {
			t.Fatalf("Serve: %v", err)
		}
	}
}

func TestLineFraming(t *testing.T) {
	tests := []struct {
		name string
		data string
		want string
	}{
		{"longest line", "NOOP " + strings.Repeat("x", maxLineLength-len("NOOP \r\n")) + "\r\n", "250 2.0.0"},
		{"one octet too long", "NOOP " + strings.Repeat("x", maxLineLength-len("NOOP \r\n")+1) + "\r\n", "500 5.5.6"},
		{"far too long", "NOOP " + strings.Repeat("x", 100*maxLineLength) + "\r\n", "500 5.5.6"},
		{"too long with bare LF end", strings.Repeat("x", 2*maxLineLength) + "\n", "500 5.5.6"},
		{"bare LF", "NOOP\n", "500 5.5.2"},
		{"bare LF in EHLO", "EHLO client.example\n", "500 5.5.2"},
		{"bare CR inside", "NOOP\rRSET\r\n", "500 5.5.2"},
		{"CR CR LF", "NOOP\r\r\n", "500 5.5.2"},
		{"empty line", "\r\n", "500 5.5.2"},
		{"leading space", " NOOP\r\n", "500 5.5.2"},
		{"non-ASCII verb", "NÖOP\r\n", "500 5.5.2"},
		{"8-bit verb", "NO\xffP\r\n", "500 5.5.2"},
		{"tab after verb", "NOOP\tx\r\n", "500 5.5.2"},
		{"NUL in verb", "NO\x00OP\r\n", "500 5.5.2"},
		{"lower-case verb", "noop\r\n", "250 2.0.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startSession(t, Config{})
			s.reply()
			s.send(tt.data)
			if got := s.reply(); !strings.HasPrefix(got, tt.want) {
				t.Fatalf("reply %q, want %s", got, tt.want)
			}
			// The rest of a bad line was discarded: the next command is
			// read cleanly.
			s.expect("NOOP", "250 2.0.0")
		})
	}
}

func TestHTTPProbe(t *testing.T) {
	tests := []struct {
		name   string
		first  string
		closed bool
	}{
		{"GET", "GET / HTTP/1.1\r\nHost: mail.example.org\r\n\r\n", true},
		{"POST", "POST /x HTTP/1.1\r\n", true},
		{"HEAD", "HEAD / HTTP/1.0\r\n", true},
		{"PUT", "PUT /x HTTP/1.1\r\n", true},
		{"CONNECT", "CONNECT mail.example.org:25 HTTP/1.1\r\n", true},
		{"OPTIONS", "OPTIONS * HTTP/1.1\r\n", true},
		{"long GET", "GET /" + strings.Repeat("a", 3*maxLineLength) + " HTTP/1.1\r\n", true},
		{"bare LF GET", "GET / HTTP/1.0\n", true},
		{"not first line", "NOOP\r\nGET / HTTP/1.1\r\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startSession(t, Config{})
			s.reply()
			if tt.closed {
				// The server may close before reading everything; a
				// write error is expected then.
				s.conn.SetWriteDeadline(time.Now().Add(testDeadline))
				io.WriteString(s.conn, tt.first)
				s.expectClosed()
				if err := s.wait(); err == nil || !strings.Contains(err.Error(), "HTTP") {
					t.Fatalf("Serve: %v, want the HTTP probe named", err)
				}
				return
			}
			s.send(tt.first)
			s.reply() // NOOP
			if got := s.reply(); !strings.HasPrefix(got, "500 5.5.2") {
				t.Fatalf("GET as a later line: %q, want 500 5.5.2", got)
			}
		})
	}
}

func TestCommandTimeout(t *testing.T) {
	s := startSession(t, Config{CommandTimeout: 100 * time.Millisecond})
	s.reply()
	// Send nothing: the server gives up on its own.
	if got := s.reply(); got != "421 4.4.2 mail.example.org timeout waiting for a command, closing connection" {
		t.Fatalf("reply %q, want 421 4.4.2", got)
	}
	s.expectClosed()
	if err := s.wait(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Serve: %v, want a deadline error", err)
	}
}

func TestContextCancel(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	tests := []struct {
		name  string
		setup func(s *session)
	}{
		{"idle before EHLO", func(s *session) {}},
		{"idle after EHLO", func(s *session) { s.expect("EHLO client.example", "250") }},
		{"inside TLS", func(s *session) {
			s.expect("EHLO client.example", "250")
			s.expect("STARTTLS", "220")
			s.startTLS(clientTLS)
			// A round trip makes sure the server finished its side of
			// the handshake; a cancel during it closes without reply.
			s.expect("NOOP", "250")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startSession(t, Config{TLSConfig: serverTLS})
			s.reply()
			tt.setup(s)
			s.cancel()
			if got := s.reply(); got != "421 4.3.2 mail.example.org server shutting down, closing connection" {
				t.Fatalf("reply %q, want 421 4.3.2", got)
			}
			s.expectClosed()
			if err := s.wait(); !errors.Is(err, context.Canceled) {
				t.Fatalf("Serve: %v, want context.Canceled", err)
			}
		})
	}
}

func TestCanceledBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	srv, cli := net.Pipe()
	defer cli.Close()
	errc := make(chan error, 1)
	go func() { errc <- Serve(ctx, srv, Config{Hostname: testHost, Session: &testSession{}}) }()
	cli.SetReadDeadline(time.Now().Add(testDeadline))
	data, _ := io.ReadAll(cli)
	if want := "220 mail.example.org ESMTP moxd\r\n421 4.3.2 mail.example.org server shutting down, closing connection\r\n"; string(data) != want {
		t.Fatalf("got %q, want %q", data, want)
	}
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve: %v", err)
	}
}

func TestClientCloseWithoutQuit(t *testing.T) {
	s := startSession(t, Config{})
	s.reply()
	s.expect("EHLO client.example", "250")
	s.conn.Close()
	if err := s.wait(); !errors.Is(err, io.EOF) {
		t.Fatalf("Serve: %v, want io.EOF", err)
	}
}

func TestTranscriptRedactsAuth(t *testing.T) {
	log, logBuf := testLogger()
	s := startSession(t, Config{Log: log, Session: &testSession{mechs: []string{"PLAIN", "LOGIN"}}})
	s.reply()
	s.expect("EHLO client.example", "250")
	s.expect("AUTH PLAIN AHVzZXIAc2VjcmV0", "235 2.7.0")
	s.expect("RSET", "250")
	s2 := startSession(t, Config{Log: log, Session: &testSession{mechs: []string{"PLAIN", "LOGIN"}}})
	s2.reply()
	s2.expect("EHLO client.example", "250")
	s2.expect("AUTH LOGIN", "334 ")
	s2.expect("c2VjcmV0cGFzc3dvcmQ=", "235 2.7.0")
	s.expect("QUIT", "221")
	s.wait()
	s2.expect("QUIT", "221")
	s2.wait()
	logs := logBuf.String()
	if strings.Contains(logs, "AHVzZXIAc2VjcmV0") || strings.Contains(logs, "c2VjcmV0cGFzc3dvcmQ") {
		t.Fatalf("AUTH credentials in the log:\n%s", logs)
	}
	for _, want := range []string{`line="AUTH PLAIN [redacted]"`, `line="[authentication response redacted]"`, `line="EHLO client.example"`, `reply="250 DSN"`, "level=DEBUG-4"} {
		if !strings.Contains(logs, want) {
			t.Errorf("transcript lacks %s:\n%s", want, logs)
		}
	}
}

// TestGoSMTPClient drives the server with an independent client library
// over real TCP.
func TestGoSMTPClient(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	ts := &testSession{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		errc <- Serve(context.Background(), conn, Config{Hostname: testHost, TLSConfig: serverTLS, CommandTimeout: testDeadline, Session: ts})
	}()

	conn, err := net.DialTimeout("tcp", ln.Addr().String(), testDeadline)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c, err := gosmtp.NewClientStartTLS(conn, clientTLS)
	if err != nil {
		t.Fatalf("go-smtp STARTTLS: %v", err)
	}
	defer c.Close()
	c.CommandTimeout = testDeadline
	if err := c.Hello("client.example"); err != nil {
		t.Fatalf("EHLO after STARTTLS: %v", err)
	}
	if st, ok := c.TLSConnectionState(); !ok || !st.HandshakeComplete {
		t.Fatalf("go-smtp has no TLS state after StartTLS")
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Errorf("STARTTLS announced again inside TLS")
	}
	if ok, _ := c.Extension("ENHANCEDSTATUSCODES"); !ok {
		t.Errorf("ENHANCEDSTATUSCODES not announced")
	}
	if err := c.Noop(); err != nil {
		t.Fatalf("NOOP: %v", err)
	}
	var se *gosmtp.SMTPError
	if err := c.Verify("postmaster@example.org"); !errors.As(err, &se) || se.Code != 252 {
		t.Fatalf("VRFY: %v, want 252", err)
	}
	msg := "Subject: hi\r\n\r\n.leading dot\r\nbody\r\n"
	if err := c.SendMail("a@example.org", []string{"b@example.org", "c@example.org"}, strings.NewReader(msg)); err != nil {
		t.Fatalf("send mail: %v", err)
	}
	err = c.Mail("a@example.org", &gosmtp.MailOptions{Size: 200 << 20})
	if !errors.As(err, &se) || se.Code != 552 || se.EnhancedCode != (gosmtp.EnhancedCode{5, 3, 4}) {
		t.Fatalf("MAIL with too large SIZE: %v, want 552 5.3.4", err)
	}
	if got := ts.got(); len(got) != 1 || got[0].body != msg || len(got[0].rcpts) != 2 || got[0].from.Address() != "a@example.org" {
		t.Fatalf("session received %+v, want the message for 2 recipients", got)
	}
	if err := c.Reset(); err != nil {
		t.Fatalf("RSET: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Fatalf("QUIT: %v", err)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(testDeadline):
		t.Fatalf("Serve did not return after QUIT")
	}
}

// TestGoSMTPImplicitTLS uses go-smtp over an implicit TLS listener.
func TestGoSMTPImplicitTLS(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		errc <- Serve(context.Background(), conn, Config{Hostname: testHost, TLSConfig: serverTLS, ImplicitTLS: true, Submission: true, Session: &testSession{}})
	}()
	c, err := gosmtp.DialTLS(ln.Addr().String(), clientTLS)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	c.CommandTimeout = testDeadline
	if err := c.Hello("client.example"); err != nil {
		t.Fatalf("EHLO: %v", err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Errorf("STARTTLS announced on implicit TLS")
	}
	if err := c.Quit(); err != nil {
		t.Fatalf("QUIT: %v", err)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(testDeadline):
		t.Fatalf("Serve did not return after QUIT")
	}
}

func TestReplyWireForm(t *testing.T) {
	tests := []struct {
		name  string
		reply Reply
		wire  string
		err   string
	}{
		{"one line", Reply{Code: 250, Enhanced: "2.0.0", Lines: []string{"OK"}}, "250 2.0.0 OK\r\n", "250 2.0.0 OK"},
		{"multi line", Reply{Code: 214, Enhanced: "2.0.0", Lines: []string{"a", "b"}}, "214-2.0.0 a\r\n214 2.0.0 b\r\n", "214 2.0.0 a b"},
		{"no enhanced", Reply{Code: 250, Lines: []string{"host", "EXT"}}, "250-host\r\n250 EXT\r\n", "250 host EXT"},
		{"no text", Reply{Code: 354}, "354 \r\n", "354"},
		{"code only enhanced", Reply{Code: 221, Enhanced: "2.0.0"}, "221 2.0.0\r\n", "221 2.0.0"},
		{"CR LF in text neutralized", Reply{Code: 550, Enhanced: "5.0.0", Lines: []string{"a\r\n250 b"}}, "550 5.0.0 a  250 b\r\n", "550 5.0.0 a\r\n250 b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(tt.reply.appendTo(nil)); got != tt.wire {
				t.Errorf("wire %q, want %q", got, tt.wire)
			}
			if got := tt.reply.Error(); got != tt.err {
				t.Errorf("Error() %q, want %q", got, tt.err)
			}
		})
	}
}
