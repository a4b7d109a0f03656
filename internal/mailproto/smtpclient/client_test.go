package smtpclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// Scripted-server tests: the dialogue is written out line by line, so each
// test shows what the client sends and how it reads what comes back.

func TestGreetingRefused(t *testing.T) {
	for _, tt := range []struct {
		greeting  string
		permanent bool
		quit      bool
	}{
		{"554 5.7.1 no service for you", true, true},
		{"421 4.3.2 busy, try later", false, false},
		{"220-" + testServerName + "\r\n221 odd", false, true}, // code changes: protocol error
	} {
		t.Run(tt.greeting[:3], func(t *testing.T) {
			conn := startFake(t, func(s *fakeServer) {
				s.sendRaw(tt.greeting + "\r\n")
				if tt.quit && tt.permanent {
					// RFC 5321 §3.1: QUIT after a 554 greeting.
					s.quit()
				}
				s.expectEOF()
			})
			_, err := New(testContext(t), conn, testConfig())
			var e *Error
			if !errors.As(err, &e) || e.Stage != StageGreeting {
				t.Fatalf("New: %v, want *Error at stage greeting", err)
			}
			if e.Permanent() != tt.permanent {
				t.Fatalf("Permanent() = %v, want %v (%v)", e.Permanent(), tt.permanent, err)
			}
		})
	}
}

func TestHELOFallback(t *testing.T) {
	conn := startFake(t, func(s *fakeServer) {
		s.send("220 " + testServerName + " old SMTP")
		s.expect("EHLO " + testClientName)
		s.send("502 5.5.1 command not implemented")
		s.expect("HELO " + testClientName)
		s.send("250 " + testServerName)
		// Without PIPELINING the client waits for each reply: nothing
		// may follow MAIL before its reply.
		s.expect("MAIL FROM:<a@example.net>")
		if n := s.br.Buffered(); n > 0 {
			s.fail("client pipelined %d bytes without PIPELINING", n)
		}
		s.send("250 ok")
		s.expect("RCPT TO:<b@example.org>")
		s.send("250 ok")
		s.expect("RCPT TO:<c@example.org>")
		s.send("550 no such user")
		s.expect("DATA")
		s.send("354 go ahead")
		if got := s.data(); got != "hello\r\n" {
			s.fail("data %q", got)
		}
		s.send("250 queued")
		s.quit()
	})
	c := newClient(t, conn, testConfig())
	ext := c.Extensions()
	if ext.EHLO || ext.Pipelining || ext.Greeting != testServerName {
		t.Fatalf("extensions after HELO: %+v", ext)
	}
	res, err := deliver(t, c, envelope("a@example.net", "b@example.org", "c@example.org"), "hello\r\n")
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if !res[0].Accepted || res[0].Reply.Code != 250 || res[1].Accepted || res[1].Reply.Code != 550 {
		t.Fatalf("results %+v", res)
	}
	if err := c.Quit(testContext(t)); err != nil {
		t.Fatalf("Quit: %v", err)
	}
}

func TestEHLOTemporaryFailure(t *testing.T) {
	conn := startFake(t, func(s *fakeServer) {
		s.send("220 " + testServerName)
		s.expect("EHLO " + testClientName)
		s.send("421 4.7.0 go away")
		s.expectEOF()
	})
	_, err := New(testContext(t), conn, testConfig())
	var e *Error
	if !errors.As(err, &e) || e.Stage != StageEHLO || e.Reply == nil || e.Reply.Code != 421 {
		t.Fatalf("New: %v, want 421 at stage ehlo", err)
	}
}

func TestPipelinedGroup(t *testing.T) {
	const msg = "Subject: hi\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nend"
	conn := startFake(t, func(s *fakeServer) {
		s.greet("PIPELINING", "8BITMIME", "SIZE 100000", "ENHANCEDSTATUSCODES")
		s.expect("MAIL FROM:<> SIZE=" + fmt.Sprint(len(msg)) + " BODY=8BITMIME")
		s.expect("RCPT TO:<a@example.org>")
		s.expect("RCPT TO:<b@example.org>")
		s.expect("RCPT TO:<c@example.org>")
		s.expect("DATA")
		s.send("250 2.1.0 ok", "250 2.1.5 ok", "550 5.1.1 no such user", "452 4.2.2 mailbox full", "354 go ahead")
		// RFC 5321 §4.5.2: dot-stuffed; the last line completed with
		// CRLF before the end-of-data line.
		if got, want := s.data(), msg+"\r\n"; got != want {
			s.fail("data %q, want %q", got, want)
		}
		s.send("250 2.0.0 queued as X")
		s.quit()
	})
	cc := &countingConn{Conn: conn}
	c := newClient(t, cc, testConfig())
	env := envelope("", "a@example.org", "b@example.org", "c@example.org")
	env.EightBitMIME = true
	res, err := deliver(t, c, env, msg)
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	// RFC 2920 §3.1: MAIL, RCPTs and DATA in one write.
	if w := cc.writeWith("MAIL FROM"); !strings.Contains(w, "RCPT TO:<c@example.org>\r\nDATA\r\n") {
		t.Fatalf("MAIL and DATA not in one write: %q", w)
	}
	want := []struct {
		code     int
		enhanced string
		accepted bool
	}{{250, "2.0.0", true}, {550, "5.1.1", false}, {452, "4.2.2", false}}
	for i, w := range want {
		r := res[i]
		if r.Reply.Code != w.code || r.Reply.Enhanced != w.enhanced || r.Accepted != w.accepted || !r.Tried {
			t.Fatalf("result %d: %+v, want %+v", i, r, w)
		}
	}
	if res[0].Reply.Text[0] != "queued as X" {
		t.Fatalf("accepted recipient's reply %+v, want the reply after the data", res[0].Reply)
	}
	if c.Transactions() != 1 {
		t.Fatalf("Transactions() = %d", c.Transactions())
	}
	if err := c.Quit(testContext(t)); err != nil {
		t.Fatalf("Quit: %v", err)
	}
}

func TestRcptMaxAndReuse(t *testing.T) {
	conn := startFake(t, func(s *fakeServer) {
		s.greet("PIPELINING", "LIMITS RCPTMAX=2 MAILMAX=5")
		for _, group := range [][]string{{"r1", "r2"}, {"r3", "r4"}, {"r5"}} {
			s.expect("MAIL FROM:<a@example.net>")
			replies := []string{"250 ok"}
			for _, r := range group {
				s.expect("RCPT TO:<" + r + "@example.org>")
				replies = append(replies, "250 ok")
			}
			s.expect("DATA")
			s.send(append(replies, "354 go")...)
			if got := s.data(); got != "x\r\n" {
				s.fail("data %q", got)
			}
			s.send("250 ok")
		}
		s.quit()
	})
	c := newClient(t, conn, testConfig())
	if ext := c.Extensions(); ext.RcptMax != 2 || ext.MailMax != 5 {
		t.Fatalf("LIMITS not parsed: %+v", ext)
	}
	env := envelope("a@example.net", "r1@example.org", "r2@example.org", "r3@example.org", "r4@example.org", "r5@example.org")
	var delivered []string
	for round := 0; len(env.Recipients) > 0; round++ {
		if round > 3 {
			t.Fatalf("too many rounds")
		}
		res, err := deliver(t, c, env, "x\r\n")
		if err != nil {
			t.Fatalf("Deliver round %d: %v", round, err)
		}
		var rest []Recipient
		for i, r := range res {
			switch {
			case !r.Tried:
				rest = append(rest, env.Recipients[i])
			case r.Accepted:
				delivered = append(delivered, env.Recipients[i].Addr)
			default:
				t.Fatalf("round %d recipient %d: %+v", round, i, r)
			}
		}
		if len(res)-len(rest) > 2 {
			t.Fatalf("round %d sent %d recipients, RCPTMAX is 2", round, len(res)-len(rest))
		}
		env.Recipients = rest
	}
	if len(delivered) != 5 || c.Transactions() != 3 {
		t.Fatalf("delivered %v in %d transactions", delivered, c.Transactions())
	}
	if err := c.Quit(testContext(t)); err != nil {
		t.Fatal(err)
	}
}

func TestMailRefusedPipelined(t *testing.T) {
	conn := startFake(t, func(s *fakeServer) {
		s.greet("PIPELINING", "ENHANCEDSTATUSCODES")
		s.expect("MAIL FROM:<spam@example.net>")
		s.expect("RCPT TO:<a@example.org>")
		s.expect("RCPT TO:<b@example.org>")
		s.expect("DATA")
		s.send("550 5.7.1 sender rejected", "503 5.5.1 no MAIL", "503 5.5.1 no MAIL", "503 5.5.1 no valid recipients")
		// The session goes on: a second transaction works.
		s.expect("MAIL FROM:<ok@example.net>")
		s.expect("RCPT TO:<a@example.org>")
		s.expect("DATA")
		s.send("250 ok", "250 ok", "354 go")
		s.data()
		s.send("250 ok")
		s.quit()
	})
	c := newClient(t, conn, testConfig())
	res, err := deliver(t, c, envelope("spam@example.net", "a@example.org", "b@example.org"), "x\r\n")
	var e *Error
	if !errors.As(err, &e) || e.Stage != StageMail || !e.Permanent() || e.Reply.Enhanced != "5.7.1" {
		t.Fatalf("Deliver: %v, want permanent *Error at mail", err)
	}
	for i, r := range res {
		if r.Accepted || r.Reply.Code != 550 || r.Reply.Enhanced != "5.7.1" {
			t.Fatalf("result %d: %+v, want the MAIL reply", i, r)
		}
	}
	if c.Broken() || c.Transactions() != 0 {
		t.Fatalf("Broken %v, Transactions %d after refused MAIL", c.Broken(), c.Transactions())
	}
	res, err = deliver(t, c, envelope("ok@example.net", "a@example.org"), "x\r\n")
	if err != nil || !res[0].Accepted {
		t.Fatalf("second Deliver: %v %+v", err, res)
	}
	c.Quit(testContext(t))
}

func TestAllRecipientsRefusedButData354(t *testing.T) {
	conn := startFake(t, func(s *fakeServer) {
		s.greet("PIPELINING")
		s.expect("MAIL FROM:<a@example.net>")
		s.expect("RCPT TO:<x@example.org>")
		s.expect("RCPT TO:<y@example.org>")
		s.expect("DATA")
		// A broken server: 354 although no recipient was accepted.
		s.send("250 ok", "550 5.1.1 no", "450 4.2.1 later", "354 go ahead anyway")
		// RFC 2920 §3.1: the client sends only the end-of-data line.
		s.expect(".")
		s.send("554 5.5.1 no valid recipients")
		s.expect("RSET")
		s.send("250 ok")
		s.quit()
	})
	c := newClient(t, conn, testConfig())
	res, err := deliver(t, c, envelope("a@example.net", "x@example.org", "y@example.org"), "secret message\r\n")
	if err != nil {
		t.Fatalf("Deliver: %v (all refused is not a transaction failure)", err)
	}
	if res[0].Reply.Code != 550 || res[1].Reply.Code != 450 || res[0].Accepted || res[1].Accepted {
		t.Fatalf("results %+v", res)
	}
	if c.Broken() {
		t.Fatalf("client broken")
	}
	c.Quit(testContext(t))
}

func TestAllRecipientsRefusedNoPipelining(t *testing.T) {
	conn := startFake(t, func(s *fakeServer) {
		s.greet("SIZE")
		s.expectPrefix("MAIL FROM:<a@example.net> SIZE=")
		s.send("250 ok")
		s.expect("RCPT TO:<x@example.org>")
		s.send("550 no")
		// No DATA without an accepted recipient; RSET ends the
		// transaction.
		s.expect("RSET")
		s.send("250 ok")
		s.quit()
	})
	c := newClient(t, conn, testConfig())
	res, err := deliver(t, c, envelope("a@example.net", "x@example.org"), "m\r\n")
	if err != nil || res[0].Reply.Code != 550 {
		t.Fatalf("Deliver: %v %+v", err, res)
	}
	c.Quit(testContext(t))
}

func TestDataRefused(t *testing.T) {
	conn := startFake(t, func(s *fakeServer) {
		s.greet("PIPELINING")
		s.expect("MAIL FROM:<a@example.net>")
		s.expect("RCPT TO:<x@example.org>")
		s.expect("DATA")
		s.send("250 ok", "250 ok", "451 4.3.0 try later")
		s.expect("RSET")
		s.send("250 ok")
		s.quit()
	})
	c := newClient(t, conn, testConfig())
	res, err := deliver(t, c, envelope("a@example.net", "x@example.org"), "m\r\n")
	var e *Error
	if !errors.As(err, &e) || e.Stage != StageData || e.Permanent() {
		t.Fatalf("Deliver: %v, want temporary failure at data", err)
	}
	if res[0].Reply.Code != 451 || res[0].Accepted {
		t.Fatalf("result %+v", res[0])
	}
	c.Quit(testContext(t))
}

func TestFinalReplyRefused(t *testing.T) {
	conn := startFake(t, func(s *fakeServer) {
		s.greet("PIPELINING")
		s.expect("MAIL FROM:<a@example.net>")
		s.expect("RCPT TO:<x@example.org>")
		s.expect("RCPT TO:<y@example.org>")
		s.expect("DATA")
		s.send("250 ok", "250 ok", "550 5.1.1 no such user", "354 go")
		s.data()
		s.send("554 5.6.0 message looks like spam")
		s.quit()
	})
	c := newClient(t, conn, testConfig())
	res, err := deliver(t, c, envelope("a@example.net", "x@example.org", "y@example.org"), "m\r\n")
	var e *Error
	if !errors.As(err, &e) || e.Stage != StageDataEnd || !e.Permanent() {
		t.Fatalf("Deliver: %v, want permanent failure at data-end", err)
	}
	if res[0].Reply.Enhanced != "5.6.0" || res[0].Accepted || res[1].Reply.Enhanced != "5.1.1" {
		t.Fatalf("results %+v", res)
	}
	if c.Transactions() != 1 {
		t.Fatalf("Transactions %d, the data stage was reached", c.Transactions())
	}
	c.Quit(testContext(t))
}

func Test421DuringRcpt(t *testing.T) {
	conn := startFake(t, func(s *fakeServer) {
		s.greet("ENHANCEDSTATUSCODES")
		s.expect("MAIL FROM:<a@example.net>")
		s.send("250 ok")
		s.expect("RCPT TO:<x@example.org>")
		s.send("550 5.1.1 no")
		s.expect("RCPT TO:<y@example.org>")
		s.send("250 ok")
		s.expect("RCPT TO:<z@example.org>")
		s.send("421 4.3.2 shutting down")
		s.expectEOF()
	})
	c := newClient(t, conn, testConfig())
	res, err := deliver(t, c, envelope("a@example.net", "x@example.org", "y@example.org", "z@example.org", "w@example.org"), "m\r\n")
	var e *Error
	if !errors.As(err, &e) || e.Reply == nil || e.Reply.Code != 421 || e.Permanent() {
		t.Fatalf("Deliver: %v, want 421", err)
	}
	if !c.Broken() {
		t.Fatalf("not broken after 421")
	}
	if res[0].Reply.Code != 550 {
		t.Fatalf("refused recipient lost its reply: %+v", res[0])
	}
	for i := 1; i < 4; i++ {
		if res[i].Reply.Code != 421 || res[i].Accepted {
			t.Fatalf("result %d: %+v, want 421", i, res[i])
		}
	}
	// A broken client sends nothing more.
	res, err = deliver(t, c, envelope("a@example.net", "x@example.org"), "m\r\n")
	if err == nil || res[0].Reply.Code/100 != 4 {
		t.Fatalf("Deliver on broken client: %v %+v", err, res)
	}
}

func TestServerSilentTimeout(t *testing.T) {
	release := make(chan struct{})
	conn := startFake(t, func(s *fakeServer) {
		s.greet("PIPELINING")
		s.expect("MAIL FROM:<a@example.net>")
		s.expect("RCPT TO:<x@example.org>")
		s.expect("DATA")
		<-release // never answer
	})
	defer close(release)
	cfg := testConfig()
	c := newClient(t, conn, cfg)
	c.cfg.CommandTimeout = 200 * time.Millisecond
	start := time.Now()
	res, err := deliver(t, c, envelope("a@example.net", "x@example.org"), "m\r\n")
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Deliver took %v with a 200ms timeout", d)
	}
	var e *Error
	if !errors.As(err, &e) || e.Reply != nil || !errors.Is(err, os.ErrDeadlineExceeded) || e.Stage != StageMail {
		t.Fatalf("Deliver: %v, want timeout at mail", err)
	}
	if !c.Broken() {
		t.Fatalf("not broken after timeout")
	}
	if r := res[0]; r.Accepted || r.Reply.Code != 451 || r.Reply.Enhanced != "4.4.2" {
		t.Fatalf("result %+v, want synthetic 451 4.4.2", r)
	}
}

func TestGreetingTimeout(t *testing.T) {
	release := make(chan struct{})
	conn := startFake(t, func(s *fakeServer) { <-release })
	defer close(release)
	cfg := testConfig()
	cfg.GreetingTimeout = 150 * time.Millisecond
	start := time.Now()
	_, err := New(testContext(t), conn, cfg)
	if !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) > 3*time.Second {
		t.Fatalf("New: %v after %v, want a timeout", err, time.Since(start))
	}
}

func TestDataTermTimeout(t *testing.T) {
	release := make(chan struct{})
	conn := startFake(t, func(s *fakeServer) {
		s.greet("PIPELINING")
		s.expect("MAIL FROM:<a@example.net>")
		s.expect("RCPT TO:<x@example.org>")
		s.expect("DATA")
		s.send("250 ok", "250 ok", "354 go")
		s.data()
		<-release
	})
	defer close(release)
	cfg := testConfig()
	cfg.DataTermTimeout = 200 * time.Millisecond
	c := newClient(t, conn, cfg)
	res, err := deliver(t, c, envelope("a@example.net", "x@example.org"), "m\r\n")
	var e *Error
	if !errors.As(err, &e) || e.Stage != StageDataEnd || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Deliver: %v, want timeout at data-end", err)
	}
	if res[0].Accepted || res[0].Reply.Code != 451 || !c.Broken() {
		t.Fatalf("result %+v, broken %v", res[0], c.Broken())
	}
}

func TestContextCancel(t *testing.T) {
	release := make(chan struct{})
	conn := startFake(t, func(s *fakeServer) {
		s.greet("PIPELINING")
		s.expect("MAIL FROM:<a@example.net>")
		<-release
	})
	defer close(release)
	c := newClient(t, conn, testConfig()) // 10s timeouts
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := c.Deliver(ctx, envelope("a@example.net", "x@example.org"), strings.NewReader("m\r\n"), 3)
	if !errors.Is(err, context.Canceled) || time.Since(start) > 3*time.Second {
		t.Fatalf("Deliver: %v after %v, want context.Canceled soon", err, time.Since(start))
	}
	if !c.Broken() {
		t.Fatalf("not broken after cancel")
	}
}

func TestBadReplies(t *testing.T) {
	for _, tt := range []struct {
		name  string
		reply string
	}{
		{"code changes", "250-ok\r\n550 no\r\n"},
		{"line too long", "250 " + strings.Repeat("x", 5000) + "\r\n"},
		{"too many lines", strings.Repeat("250-x\r\n", 150) + "250 x\r\n"},
		{"garbage", "hello there\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn := startFake(t, func(s *fakeServer) {
				s.greet()
				s.expect("MAIL FROM:<a@example.net>")
				s.sendRaw(tt.reply)
				s.expectEOF()
			})
			c := newClient(t, conn, testConfig())
			res, err := deliver(t, c, envelope("a@example.net", "x@example.org"), "m\r\n")
			if !errors.Is(err, errProtocol) || !c.Broken() {
				t.Fatalf("Deliver: %v, broken %v; want protocol error", err, c.Broken())
			}
			if res[0].Reply.Code != 451 {
				t.Fatalf("result %+v", res[0])
			}
		})
	}
}

func TestEnvelopeChecks(t *testing.T) {
	for _, tt := range []struct {
		name     string
		exts     []string
		env      Envelope
		sentinel error
		code     int
	}{
		{"8bitmime missing", nil, Envelope{MailFrom: "a@example.net", EightBitMIME: true}, ErrNeeds8BitMIME, 554},
		{"smtputf8 missing on server", []string{"8BITMIME"}, Envelope{MailFrom: "a@example.net", SMTPUTF8: true}, ErrNeedsSMTPUTF8, 553},
		{"non-ascii without smtputf8", []string{"SMTPUTF8"}, Envelope{MailFrom: "jörg@example.net"}, ErrNeedsSMTPUTF8, 553},
		{"requiretls without tls", []string{"REQUIRETLS"}, Envelope{MailFrom: "a@example.net", RequireTLS: true}, ErrNeedsRequireTLS, 550},
		{"size over limit", []string{"SIZE 1000"}, Envelope{MailFrom: "a@example.net", Size: 2000}, nil, 552},
		{"bad sender", nil, Envelope{MailFrom: "a@example.net>\r\nRSET"}, nil, 501},
		{"bad ret", []string{"DSN"}, Envelope{MailFrom: "a@example.net", Ret: "ALL"}, nil, 501},
		{"mail line too long", nil, Envelope{MailFrom: strings.Repeat("a", 500) + "@example.net"}, nil, 500},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn := startFake(t, func(s *fakeServer) {
				s.greet(tt.exts...)
				// Nothing is sent for a refused envelope.
				s.quit()
			})
			c := newClient(t, conn, testConfig())
			env := tt.env
			env.Recipients = []Recipient{{Addr: "x@example.org"}, {Addr: "y@example.org"}}
			res, err := deliver(t, c, env, "m\r\n")
			var e *Error
			if !errors.As(err, &e) || e.Stage != StageMail || !e.Permanent() || e.Reply.Code != tt.code {
				t.Fatalf("Deliver: %v, want permanent *Error %d at mail", err, tt.code)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Fatalf("Deliver: %v, want %v", err, tt.sentinel)
			}
			if tt.name == "size over limit" && e.Reply.Enhanced != "5.3.4" {
				t.Fatalf("size refusal %v, want 5.3.4", e.Reply)
			}
			if len(res) != 2 || res[0].Reply.Code != tt.code || res[1].Reply.Code != tt.code {
				t.Fatalf("results %+v", res)
			}
			if c.Broken() {
				t.Fatalf("broken after a local refusal")
			}
			if err := c.Quit(testContext(t)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestParametersAndRecipientChecks(t *testing.T) {
	long := strings.Repeat("l", 490) + "@example.org"
	conn := startFake(t, func(s *fakeServer) {
		s.greet("PIPELINING", "DSN", "SIZE 0", "SMTPUTF8", "8BITMIME")
		// RFC 3461 §4: ENVID and the ORCPT address as xtext.
		s.expect("MAIL FROM:<jörg@example.net> SIZE=1234 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id+2Bx+3Dy+20z")
		s.expect("RCPT TO:<a@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+2Bb@example.org")
		s.expect("RCPT TO:<b@example.org> NOTIFY=NEVER")
		s.expect("DATA")
		s.send("250 ok", "250 ok", "250 ok", "354 go")
		s.data()
		s.send("250 ok")
		s.quit()
	})
	c := newClient(t, conn, testConfig())
	env := Envelope{
		MailFrom:     "jörg@example.net",
		SMTPUTF8:     true,
		EightBitMIME: true,
		Ret:          "hdrs",
		EnvID:        "id+x=y z",
		Size:         1234,
		Recipients: []Recipient{
			{Addr: "a@example.org", Notify: "success,failure", ORcpt: "rfc822;a+b@example.org"},
			{Addr: "bad\r\nRSET@example.org"},
			{Addr: "b@example.org", Notify: "NEVER"},
			{Addr: "c@example.org", Notify: "NEVER,SUCCESS"},
			{Addr: long},
		},
	}
	res, err := deliver(t, c, env, "m\r\n")
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if !res[0].Accepted || !res[2].Accepted {
		t.Fatalf("valid recipients not delivered: %+v", res)
	}
	for _, i := range []int{1, 3, 4} {
		if r := res[i]; r.Accepted || !r.Reply.Permanent() || !strings.HasPrefix(r.Reply.Text[0], "not sent:") {
			t.Fatalf("invalid recipient %d: %+v, want a local permanent refusal", i, r)
		}
	}
	if res[4].Reply.Code != 500 {
		t.Fatalf("too long RCPT: %+v, want 500", res[4])
	}
	c.Quit(testContext(t))
}

func TestQuitWithoutReply(t *testing.T) {
	release := make(chan struct{})
	conn := startFake(t, func(s *fakeServer) {
		s.greet()
		s.expect("QUIT")
		<-release
	})
	defer close(release)
	c := newClient(t, conn, testConfig())
	c.cfg.CommandTimeout = 100 * time.Millisecond
	if err := c.Quit(testContext(t)); err != nil {
		t.Fatalf("Quit without 221: %v, want nil", err)
	}
	if !c.Broken() {
		t.Fatalf("client usable after Quit")
	}
}

func TestResetCommand(t *testing.T) {
	conn := startFake(t, func(s *fakeServer) {
		s.greet()
		s.expect("RSET")
		s.send("250 ok")
		s.expect("RSET")
		s.send("500 what")
		s.expectEOF()
	})
	c := newClient(t, conn, testConfig())
	if err := c.Reset(testContext(t)); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	err := c.Reset(testContext(t))
	var e *Error
	if !errors.As(err, &e) || e.Stage != StageReset || !c.Broken() {
		t.Fatalf("Reset refused: %v, broken %v", err, c.Broken())
	}
}

func TestLargeGroupNoDeadlock(t *testing.T) {
	// A group larger than the fake server's read buffer over an
	// unbuffered pipe: the server answers while the client still writes.
	const n = 300
	conn := startFake(t, func(s *fakeServer) {
		s.greet("PIPELINING")
		s.expect("MAIL FROM:<a@example.net>")
		s.send("250 ok")
		for i := range n {
			s.expect(fmt.Sprintf("RCPT TO:<recipient-with-a-long-name-%03d@example.org>", i))
			s.send("250 ok")
		}
		s.expect("DATA")
		s.send("354 go")
		s.data()
		s.send("250 ok")
		s.quit()
	})
	c := newClient(t, conn, testConfig())
	env := Envelope{MailFrom: "a@example.net"}
	for i := range n {
		env.Recipients = append(env.Recipients, Recipient{Addr: fmt.Sprintf("recipient-with-a-long-name-%03d@example.org", i)})
	}
	res, err := deliver(t, c, env, "m\r\n")
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	for i, r := range res {
		if !r.Accepted {
			t.Fatalf("recipient %d: %+v", i, r)
		}
	}
	c.Quit(testContext(t))
}

func TestShortData(t *testing.T) {
	conn := startFake(t, func(s *fakeServer) {
		s.greet("CHUNKING")
		s.expect("MAIL FROM:<a@example.net>")
		s.send("250 ok")
		s.expect("RCPT TO:<x@example.org>")
		s.send("250 ok")
		// The client must not send a short chunk and wait: it closes,
		// without ever completing the announced 100 octets.
		s.conn.SetReadDeadline(time.Now().Add(testDeadline))
		rest, _ := io.ReadAll(s.br)
		if len(rest) >= len("BDAT 100 LAST\r\n")+100 {
			s.fail("client sent %q", rest)
		}
	})
	c := newClient(t, conn, testConfig())
	res, err := c.Deliver(testContext(t), envelope("a@example.net", "x@example.org"), strings.NewReader("only ten!\n"), 100)
	if err == nil || !c.Broken() || res[0].Accepted || res[0].Reply.Code != 451 {
		t.Fatalf("Deliver with short data: %v %+v broken %v", err, res, c.Broken())
	}
}

func TestTranscript(t *testing.T) {
	conn := startFake(t, func(s *fakeServer) {
		s.greet("PIPELINING")
		s.expect("MAIL FROM:<a@example.net>")
		s.expect("RCPT TO:<x@example.org>")
		s.expect("DATA")
		s.send("250 ok", "250 ok", "354 go")
		s.data()
		s.send("250 ok")
		s.quit()
	})
	log, buf := traceLogger()
	cfg := testConfig()
	cfg.Log = log
	c := newClient(t, conn, cfg)
	if _, err := deliver(t, c, envelope("a@example.net", "x@example.org"), "secret body\r\n"); err != nil {
		t.Fatal(err)
	}
	c.Quit(testContext(t))
	out := buf.String()
	for _, want := range []string{`line="EHLO client.example.net"`, `line="RCPT TO:<x@example.org>"`, `line="354 go"`, "bytes of message data"} {
		if !strings.Contains(out, want) {
			t.Errorf("transcript lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "secret body") {
		t.Errorf("transcript contains the message body")
	}
}
