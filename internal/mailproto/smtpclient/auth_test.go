package smtpclient

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"moxd/internal/auth"
	"moxd/internal/mailproto/smtp"
)

// AUTH against moxd's own SMTP server engine with the SASL server
// mechanisms of internal/auth: an implementation written separately from
// this client, including SCRAM -PLUS with tls-exporter.

const (
	testUser     = "mjl@example.org"
	testPassword = "correct horse, battery=staple"
)

var fastParams = auth.Params{Argon2Time: 1, Argon2MemoryKiB: 64, Argon2Threads: 1, SCRAMIterations: auth.MinSCRAMIterations}

// authSession is an smtp.Session for a submission server that runs the
// internal/auth mechanisms and records what happened.
type authSession struct {
	creds  auth.Credentials
	hasher *auth.Hasher

	mu       sync.Mutex
	mechs    []string // mechanisms that ran
	accounts []string // successful logins
	messages int
}

func (s *authSession) lookup(ctx context.Context, user string) (auth.Credentials, error) {
	if user != testUser {
		return auth.Credentials{}, fmt.Errorf("%q: %w", user, auth.ErrUnknownUser)
	}
	return s.creds, nil
}

func (s *authSession) Hello(ctx context.Context, st *smtp.State) error { return nil }

func (s *authSession) AuthMechanisms(st *smtp.State) []string {
	return auth.Mechanisms(st.TLS != nil, len(auth.ServerChannelBindings(st.TLS)) > 0)
}

func (s *authSession) Auth(ctx context.Context, st *smtp.State, mech string, initial []byte, hasInitial bool, exchange func([]byte) ([]byte, error)) (string, error) {
	s.mu.Lock()
	s.mechs = append(s.mechs, mech)
	s.mu.Unlock()
	m, err := auth.NewServer(mech, s.lookup, s.hasher, st.TLS != nil, auth.ServerChannelBindings(st.TLS))
	if err != nil {
		return "", &smtp.Reply{Code: 504, Enhanced: "5.5.4", Lines: []string{err.Error()}}
	}
	resp := initial
	if !hasInitial {
		resp = nil
	}
	for {
		challenge, done, err := m.Next(ctx, resp)
		switch {
		case errors.Is(err, auth.ErrAborted):
			return "", smtp.ErrAuthAborted
		case err != nil:
			return "", &smtp.Reply{Code: 535, Enhanced: "5.7.8", Lines: []string{"authentication failed"}}
		case done:
			s.mu.Lock()
			s.accounts = append(s.accounts, m.Identity())
			s.mu.Unlock()
			return m.Identity(), nil
		}
		if resp, err = exchange(challenge); err != nil {
			return "", err
		}
	}
}

func (s *authSession) Mail(ctx context.Context, st *smtp.State, m *smtp.MailFrom) error { return nil }
func (s *authSession) Rcpt(ctx context.Context, st *smtp.State, r *smtp.RcptTo) error   { return nil }
func (s *authSession) Data(ctx context.Context, st *smtp.State, body io.Reader) error {
	if _, err := io.Copy(io.Discard, body); err != nil {
		return err
	}
	s.mu.Lock()
	s.messages++
	s.mu.Unlock()
	return nil
}
func (s *authSession) Reset(st *smtp.State) {}

func (s *authSession) result() (mechs, accounts []string, messages int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.mechs...), append([]string(nil), s.accounts...), s.messages
}

// startMoxSubmission runs one session of moxd's SMTP server in submission
// mode on loopback and returns a client connected to it.
func startMoxSubmission(t *testing.T, cfg Config) (*Client, *authSession, *tls.Config) {
	t.Helper()
	creds, err := auth.NewCredentials(testPassword, fastParams)
	if err != nil {
		t.Fatal(err)
	}
	sess := &authSession{creds: creds, hasher: auth.NewHasher(1)}
	serverTLS, clientTLS := testTLS(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := l.Accept()
		l.Close()
		if err != nil {
			return
		}
		smtp.Serve(ctx, conn, smtp.Config{Hostname: testServerName, TLSConfig: serverTLS, Submission: true, Session: sess})
	}()
	t.Cleanup(func() {
		cancel()
		l.Close()
		<-done
	})
	conn, err := net.DialTimeout("tcp", l.Addr().String(), testDeadline)
	if err != nil {
		t.Fatal(err)
	}
	return newClient(t, conn, cfg), sess, clientTLS
}

func TestAuthMechanisms(t *testing.T) {
	for _, tt := range []struct {
		mech   string
		tls    bool
		tlsMax uint16
	}{
		{"PLAIN", true, 0},
		{"CRAM-MD5", false, 0},
		{"SCRAM-SHA-1", false, 0},
		{"SCRAM-SHA-256", false, 0},
		{"SCRAM-SHA-256", true, 0}, // caller chose no binding although both could: gs2 flag "n"
		{"SCRAM-SHA-256-PLUS", true, 0},
		{"SCRAM-SHA-1-PLUS", true, 0},
		{"SCRAM-SHA-256", true, tls.VersionTLS12},
	} {
		name := tt.mech
		if tt.tls {
			name += "/tls"
		}
		if tt.tlsMax != 0 {
			name += "1.2"
		}
		t.Run(name, func(t *testing.T) {
			log, buf := traceLogger()
			cfg := testConfig()
			cfg.Log = log
			c, sess, clientTLS := startMoxSubmission(t, cfg)
			if tt.tls {
				clientTLS.MaxVersion = tt.tlsMax
				if err := c.StartTLS(testContext(t), clientTLS); err != nil {
					t.Fatalf("StartTLS: %v", err)
				}
			}
			// Submission needs AUTH first (RFC 4954 §6).
			if _, err := deliver(t, c, envelope(testUser, "b@example.org"), "x\r\n"); err == nil {
				t.Fatalf("Deliver without AUTH succeeded")
			}
			// Wrong password: the server's 535.
			err := c.Auth(testContext(t), []string{tt.mech}, testUser, "wrong password")
			var e *Error
			if !errors.As(err, &e) || e.Reply == nil || e.Reply.Code != 535 || !e.Permanent() {
				t.Fatalf("Auth with wrong password: %v, want 535", err)
			}
			if c.Broken() {
				t.Fatalf("broken after failed AUTH")
			}
			if err := c.Auth(testContext(t), []string{tt.mech}, testUser, testPassword); err != nil {
				t.Fatalf("Auth: %v", err)
			}
			mechs, accounts, _ := sess.result()
			if len(mechs) != 2 || mechs[1] != tt.mech || len(accounts) != 1 || accounts[0] != testUser {
				t.Fatalf("server ran %v, accounts %v", mechs, accounts)
			}
			if res, err := deliver(t, c, envelope(testUser, "b@example.org"), "x\r\n"); err != nil || !res[0].Accepted {
				t.Fatalf("Deliver after AUTH: %v %+v", err, res)
			}
			if err := c.Auth(testContext(t), []string{tt.mech}, testUser, testPassword); err == nil {
				t.Fatalf("second Auth succeeded")
			}
			c.Quit(testContext(t))
			// The transcript shows the mechanism but no credentials.
			out := buf.String()
			if !strings.Contains(out, "AUTH "+tt.mech) {
				t.Fatalf("transcript lacks the AUTH command:\n%s", out)
			}
			plainIR := base64.StdEncoding.EncodeToString([]byte("\x00" + testUser + "\x00" + testPassword))
			for _, secret := range []string{testPassword, "wrong password", plainIR} {
				if strings.Contains(out, secret) {
					t.Fatalf("transcript contains %q:\n%s", secret, out)
				}
			}
			if strings.Count(out, `line="334 `) != strings.Count(out, `line="334 [sasl data redacted]"`) {
				t.Fatalf("transcript shows a challenge:\n%s", out)
			}
		})
	}
}

func TestAuthAutomaticChoice(t *testing.T) {
	for _, tt := range []struct {
		name   string
		tls    bool
		tlsMax uint16
		mechs  []string
		want   string
	}{
		{"plain text", false, 0, nil, "SCRAM-SHA-256"},
		{"tls 1.3", true, 0, nil, "SCRAM-SHA-256-PLUS"},
		// The server binds with TLS 1.2 too (extended master secret);
		// the client binds with TLS 1.3 only.
		{"tls 1.2", true, tls.VersionTLS12, nil, "SCRAM-SHA-256"},
		{"caller's order", true, 0, []string{"cram-md5", "SCRAM-SHA-256"}, "CRAM-MD5"},
		{"caller's unknown first", false, 0, []string{"XOAUTH2", "PLAIN", "SCRAM-SHA-1"}, "SCRAM-SHA-1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, sess, clientTLS := startMoxSubmission(t, testConfig())
			if tt.tls {
				clientTLS.MaxVersion = tt.tlsMax
				if err := c.StartTLS(testContext(t), clientTLS); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.Auth(testContext(t), tt.mechs, testUser, testPassword); err != nil {
				t.Fatalf("Auth: %v", err)
			}
			if mechs, _, _ := sess.result(); len(mechs) != 1 || mechs[0] != tt.want {
				t.Fatalf("server ran %v, want %s", mechs, tt.want)
			}
			c.Quit(testContext(t))
		})
	}
}

func TestAuthPlainNeedsTLS(t *testing.T) {
	conn := startFake(t, func(s *fakeServer) {
		s.greet("AUTH PLAIN LOGIN")
		// No AUTH goes out: the next command is QUIT.
		s.quit()
	})
	c := newClient(t, conn, testConfig())
	for _, mechs := range [][]string{nil, {"PLAIN"}} {
		err := c.Auth(testContext(t), mechs, testUser, testPassword)
		if !errors.Is(err, ErrNoMechanism) || !strings.Contains(err.Error(), "never used without TLS") {
			t.Fatalf("Auth(%v) without TLS: %v", mechs, err)
		}
	}
	if err := c.Auth(testContext(t), []string{"LOGIN"}, testUser, testPassword); !errors.Is(err, ErrNoMechanism) {
		t.Fatalf("Auth(LOGIN): %v", err)
	}
	if c.Broken() {
		t.Fatalf("broken")
	}
	c.Quit(testContext(t))
}

// scramFake plays a SCRAM-SHA-256 server on the fake, answering the
// client's first message; final decides what follows the client's proof.
func scramFake(s *fakeServer, final func(s *fakeServer)) {
	line := s.expectPrefix("AUTH SCRAM-SHA-256 ")
	first, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(line, "AUTH SCRAM-SHA-256 "))
	if err != nil || !strings.HasPrefix(string(first), "n,,n=mjl@example.org,r=") {
		s.fail("client-first %q", first)
	}
	nonce := strings.TrimPrefix(string(first), "n,,n=mjl@example.org,r=")
	serverFirst := "r=" + nonce + "server,s=" + base64.StdEncoding.EncodeToString([]byte("salt")) + ",i=4096"
	s.send("334 " + base64.StdEncoding.EncodeToString([]byte(serverFirst)))
	s.line() // client-final
	final(s)
}

func TestAuthSCRAMServerSignature(t *testing.T) {
	t.Run("wrong signature", func(t *testing.T) {
		conn := startFake(t, func(s *fakeServer) {
			s.greet("AUTH SCRAM-SHA-256")
			scramFake(s, func(s *fakeServer) {
				bogus := "v=" + base64.StdEncoding.EncodeToString(make([]byte, 32))
				s.send("334 " + base64.StdEncoding.EncodeToString([]byte(bogus)))
				// RFC 4954 §4: the client cancels.
				s.expect("*")
				s.send("501 5.0.0 authentication cancelled")
			})
			s.quit()
		})
		c := newClient(t, conn, testConfig())
		err := c.Auth(testContext(t), nil, testUser, testPassword)
		if !errors.Is(err, errSASL) || !strings.Contains(err.Error(), "server signature") {
			t.Fatalf("Auth: %v, want a server signature failure", err)
		}
		c.Quit(testContext(t))
	})
	t.Run("accepted without signature", func(t *testing.T) {
		conn := startFake(t, func(s *fakeServer) {
			s.greet("AUTH SCRAM-SHA-256")
			scramFake(s, func(s *fakeServer) { s.send("235 2.7.0 welcome") })
			s.expectEOF()
		})
		c := newClient(t, conn, testConfig())
		if err := c.Auth(testContext(t), nil, testUser, testPassword); !errors.Is(err, errSASL) || !c.Broken() {
			t.Fatalf("Auth: %v, broken %v; want failure and the session ended: the server did not prove itself", err, c.Broken())
		}
	})
	t.Run("server error", func(t *testing.T) {
		conn := startFake(t, func(s *fakeServer) {
			s.greet("AUTH SCRAM-SHA-256")
			scramFake(s, func(s *fakeServer) {
				s.send("334 " + base64.StdEncoding.EncodeToString([]byte("e=invalid-proof")))
				// The client answers empty so the server can send its
				// final reply.
				s.expect("")
				s.send("535 5.7.8 authentication failed")
			})
			s.quit()
		})
		c := newClient(t, conn, testConfig())
		err := c.Auth(testContext(t), nil, testUser, testPassword)
		var e *Error
		if !errors.As(err, &e) || e.Reply == nil || e.Reply.Code != 535 || !strings.Contains(err.Error(), "invalid-proof") {
			t.Fatalf("Auth: %v, want 535 with the server's e=", err)
		}
		c.Quit(testContext(t))
	})
}

func TestSCRAMAgainstAuthServer(t *testing.T) {
	creds, err := auth.NewCredentials(testPassword, fastParams)
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(ctx context.Context, user string) (auth.Credentials, error) {
		if user != "user,with=specials" {
			return auth.Credentials{}, auth.ErrUnknownUser
		}
		return creds, nil
	}
	cb := []byte("0123456789abcdef0123456789abcdef")
	run := func(t *testing.T, mech string, client *scramClient, plusOffered bool) error {
		t.Helper()
		var bindings []auth.ChannelBinding
		if plusOffered {
			bindings = []auth.ChannelBinding{{Type: auth.CBTLSExporter, Data: cb}}
		}
		srv, err := auth.NewServer(mech, lookup, auth.NewHasher(1), true, bindings)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.start()
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			challenge, done, err := srv.Next(context.Background(), resp)
			if err != nil {
				return err
			}
			if done {
				if !client.done() {
					t.Fatalf("server done before the client verified it")
				}
				return nil
			}
			if resp, err = client.next(challenge); err != nil {
				return err
			}
		}
		t.Fatalf("exchange did not end")
		return nil
	}
	// A user name with "," and "=" is escaped (RFC 5802 §5.1).
	if err := run(t, "SCRAM-SHA-256-PLUS", newSCRAM(mechSCRAMSHA256Plus, "user,with=specials", testPassword, cb, true), true); err != nil {
		t.Fatalf("SCRAM-SHA-256-PLUS: %v", err)
	}
	// Channel binding data that differs (a TLS man in the middle) fails.
	if err := run(t, "SCRAM-SHA-256-PLUS", newSCRAM(mechSCRAMSHA256Plus, "user,with=specials", testPassword, []byte("other"), true), true); !errors.Is(err, auth.ErrAuthFailed) {
		t.Fatalf("mismatched binding: %v, want failure", err)
	}
	// RFC 5802 §6: a client that could bind but saw no -PLUS sends "y";
	// a server that does offer -PLUS takes that as a downgrade.
	c := newSCRAM(mechSCRAMSHA256, "user,with=specials", testPassword, cb, false)
	if err := run(t, "SCRAM-SHA-256", c, true); !errors.Is(err, auth.ErrAuthFailed) || c.gs2Flag != "y" {
		t.Fatalf("downgrade: %v (flag %q), want failure", err, c.gs2Flag)
	}
	if err := run(t, "SCRAM-SHA-256", newSCRAM(mechSCRAMSHA256, "user,with=specials", testPassword, cb, false), false); err != nil {
		t.Fatalf("flag y with a server without -PLUS: %v", err)
	}
	if err := run(t, "SCRAM-SHA-1", newSCRAM(mechSCRAMSHA1, "user,with=specials", "wrong", nil, false), false); !errors.Is(err, auth.ErrAuthFailed) {
		t.Fatalf("wrong password: %v", err)
	}
}

func TestSCRAMServerFirstChecks(t *testing.T) {
	for _, tt := range []struct {
		name, msg string
	}{
		{"nonce not extended", "r=cnonce,s=c2FsdA==,i=4096"},
		{"other nonce", "r=xyzserver,s=c2FsdA==,i=4096"},
		{"bad salt", "r=cnonceserver,s=!!,i=4096"},
		{"zero iterations", "r=cnonceserver,s=c2FsdA==,i=0"},
		{"huge iterations", "r=cnonceserver,s=c2FsdA==,i=999999999"},
		{"mandatory extension", "m=ext,r=cnonceserver,s=c2FsdA==,i=4096"},
		{"missing attributes", "r=cnonceserver"},
		{"server error", "e=other-error"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newSCRAM(mechSCRAMSHA256, "u", "p", nil, false)
			c.nonce = "cnonce"
			c.start()
			if _, err := c.next([]byte(tt.msg)); err == nil {
				t.Fatalf("server-first %q accepted", tt.msg)
			}
		})
	}
}

func TestCRAMMD5Vector(t *testing.T) {
	// RFC 2195 §2 example.
	c := &cramClient{user: "tim", pass: "tanstaaftanstaaf"}
	if ir, _ := c.start(); ir != nil {
		t.Fatalf("CRAM-MD5 initial response %q", ir)
	}
	resp, err := c.next([]byte("<1896.697170952@postoffice.reston.mci.net>"))
	if err != nil || string(resp) != "tim b913a602c7eda7a495b4e6e7334d3890" {
		t.Fatalf("response %q, %v", resp, err)
	}
}
