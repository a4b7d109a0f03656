package smtpclient

import (
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// Interoperability with github.com/emersion/go-smtp as an independent
// server implementation, on loopback.

// goMessage is one message a go-smtp session received.
type goMessage struct {
	from     string
	mailOpts gosmtp.MailOptions
	rcpts    []string
	rcptOpts []gosmtp.RcptOptions
	data     string
}

// goBackend records what go-smtp's sessions receive.
type goBackend struct {
	mu sync.Mutex
	// refuseMail and refuseRcpt, when set, make MAIL or a RCPT fail.
	refuseMail func(from string) error
	refuseRcpt func(to string) error

	mails, rcpts, datas int
	messages            []goMessage
}

func (b *goBackend) NewSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	return &goSession{b: b}, nil
}

func (b *goBackend) counts() (mails, rcpts, datas int, msgs []goMessage) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mails, b.rcpts, b.datas, append([]goMessage(nil), b.messages...)
}

type goSession struct {
	b   *goBackend
	cur goMessage
}

func (s *goSession) Mail(from string, opts *gosmtp.MailOptions) error {
	s.b.mu.Lock()
	s.b.mails++
	s.b.mu.Unlock()
	if s.b.refuseMail != nil {
		if err := s.b.refuseMail(from); err != nil {
			return err
		}
	}
	s.cur = goMessage{from: from}
	if opts != nil {
		s.cur.mailOpts = *opts
	}
	return nil
}

func (s *goSession) Rcpt(to string, opts *gosmtp.RcptOptions) error {
	s.b.mu.Lock()
	s.b.rcpts++
	s.b.mu.Unlock()
	if s.b.refuseRcpt != nil {
		if err := s.b.refuseRcpt(to); err != nil {
			return err
		}
	}
	s.cur.rcpts = append(s.cur.rcpts, to)
	if opts != nil {
		s.cur.rcptOpts = append(s.cur.rcptOpts, *opts)
	}
	return nil
}

func (s *goSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = string(b)
	s.b.mu.Lock()
	s.b.datas++
	s.b.messages = append(s.b.messages, s.cur)
	s.b.mu.Unlock()
	return nil
}

func (s *goSession) Reset()        { s.cur = goMessage{} }
func (s *goSession) Logout() error { return nil }

// startGoSMTP runs a go-smtp server on 127.0.0.1:0; configure adjusts it
// before it starts. With implicitTLS the listener is TLS from the start.
func startGoSMTP(t *testing.T, be *goBackend, implicitTLS *tls.Config, configure func(s *gosmtp.Server)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if implicitTLS != nil {
		l = tls.NewListener(l, implicitTLS)
	}
	s := gosmtp.NewServer(be)
	s.Domain = testServerName
	s.ReadTimeout = testDeadline
	s.WriteTimeout = testDeadline
	s.ErrorLog = log.New(io.Discard, "", 0)
	if configure != nil {
		configure(s)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Serve(l)
	}()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	return l.Addr().String()
}

func dialGoSMTP(t *testing.T, addr string, cfg Config) (*Client, *countingConn) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, testDeadline)
	if err != nil {
		t.Fatal(err)
	}
	cc := &countingConn{Conn: conn}
	return newClient(t, cc, cfg), cc
}

// A message with lines that need dot-stuffing, a line that is only a dot,
// and an 8-bit line.
const dotMessage = "From: a@example.net\r\nTo: b@example.org\r\nSubject: dots\r\n\r\n" +
	".starts with a dot\r\n..two dots\r\n.\r\nmiddle\r\n. space\r\nüñí\r\nlast line\r\n"

func TestGoSMTPPipelinedData(t *testing.T) {
	be := &goBackend{}
	addr := startGoSMTP(t, be, nil, nil)
	cfg := testConfig()
	cfg.DisableChunking = true // go-smtp always offers CHUNKING
	c, cc := dialGoSMTP(t, addr, cfg)
	ext := c.Extensions()
	if !ext.Pipelining || !ext.Chunking || !ext.EightBitMIME || !ext.EnhancedStatusCodes {
		t.Fatalf("extensions %+v", ext)
	}
	env := envelope("a@example.net", "b@example.org", "c@example.org", "d@example.org")
	env.EightBitMIME = true
	res, err := deliver(t, c, env, dotMessage)
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	for i, r := range res {
		if !r.Accepted || r.Reply.Code != 250 {
			t.Fatalf("recipient %d: %+v", i, r)
		}
	}
	mails, rcpts, datas, msgs := be.counts()
	if mails != 1 || rcpts != 3 || datas != 1 {
		t.Fatalf("server saw %d MAIL, %d RCPT, %d DATA; want 1, 3, 1", mails, rcpts, datas)
	}
	m := msgs[0]
	if m.data != dotMessage {
		t.Fatalf("data differs after dot-unstuffing:\n got %q\nwant %q", m.data, dotMessage)
	}
	if m.from != "a@example.net" || strings.Join(m.rcpts, " ") != "b@example.org c@example.org d@example.org" || m.mailOpts.Body != gosmtp.Body8BitMIME {
		t.Fatalf("envelope %+v", m)
	}
	if w := cc.writeWith("MAIL FROM"); !strings.Contains(w, "RCPT TO:<d@example.org>\r\nDATA\r\n") {
		t.Fatalf("MAIL, RCPTs and DATA not pipelined in one write: %q", w)
	}
	if !strings.Contains(cc.all(), "\r\n...two dots\r\n..\r\n") {
		t.Fatalf("data was not dot-stuffed on the wire")
	}
	if err := c.Quit(testContext(t)); err != nil {
		t.Fatal(err)
	}
}

func TestGoSMTPChunking(t *testing.T) {
	be := &goBackend{}
	addr := startGoSMTP(t, be, nil, nil)
	c, cc := dialGoSMTP(t, addr, testConfig())
	// BDAT sends the octets as they are: no dot-stuffing, and a message
	// without a final CRLF stays so.
	msg := dotMessage + "no final line break"
	res, err := deliver(t, c, envelope("a@example.net", "b@example.org", "c@example.org"), msg)
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if !res[0].Accepted || !res[1].Accepted {
		t.Fatalf("results %+v", res)
	}
	_, rcpts, datas, msgs := be.counts()
	if rcpts != 2 || datas != 1 || msgs[0].data != msg {
		t.Fatalf("server saw %d RCPT, %d messages, data %q", rcpts, datas, msgs[0].data)
	}
	all := cc.all()
	if !strings.Contains(all, "BDAT "+strconv.Itoa(len(msg))+" LAST\r\n"+msg) || strings.Contains(all, "\r\nDATA\r\n") {
		t.Fatalf("BDAT not used as expected: %q", all)
	}
	if c.Transactions() != 1 {
		t.Fatalf("Transactions %d", c.Transactions())
	}
	c.Quit(testContext(t))
}

func TestGoSMTPRefusals(t *testing.T) {
	for _, chunking := range []bool{true, false} {
		name := "bdat"
		if !chunking {
			name = "data"
		}
		t.Run(name, func(t *testing.T) {
			be := &goBackend{
				refuseRcpt: func(to string) error {
					switch to {
					case "unknown@example.org":
						return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
					case "full@example.org":
						return &gosmtp.SMTPError{Code: 452, EnhancedCode: gosmtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"}
					}
					return nil
				},
			}
			addr := startGoSMTP(t, be, nil, nil)
			cfg := testConfig()
			cfg.DisableChunking = !chunking
			c, _ := dialGoSMTP(t, addr, cfg)
			env := envelope("a@example.net", "unknown@example.org", "ok@example.org", "full@example.org")
			res, err := deliver(t, c, env, "Subject: x\r\n\r\nbody\r\n")
			if err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			if r := res[0]; r.Accepted || r.Reply.Code != 550 || r.Reply.Enhanced != "5.1.1" || !r.Reply.Permanent() {
				t.Fatalf("unknown: %+v", r)
			}
			if r := res[1]; !r.Accepted || r.Reply.Code != 250 {
				t.Fatalf("ok: %+v", r)
			}
			if r := res[2]; r.Accepted || r.Reply.Code != 452 || r.Reply.Permanent() {
				t.Fatalf("full: %+v", r)
			}
			_, _, _, msgs := be.counts()
			if len(msgs) != 1 || strings.Join(msgs[0].rcpts, ",") != "ok@example.org" {
				t.Fatalf("messages %+v", msgs)
			}

			// All recipients refused: no data, no error, the
			// session is reset and still usable.
			res, err = deliver(t, c, envelope("a@example.net", "unknown@example.org"), "x\r\n")
			if err != nil || res[0].Reply.Code != 550 || c.Broken() {
				t.Fatalf("all refused: %v %+v broken %v", err, res, c.Broken())
			}
			res, err = deliver(t, c, envelope("a@example.net", "ok@example.org"), "y\r\n")
			if err != nil || !res[0].Accepted {
				t.Fatalf("after all refused: %v %+v", err, res)
			}
			if _, _, datas, _ := be.counts(); datas != 2 {
				t.Fatalf("%d messages, want 2", datas)
			}
			if c.Transactions() != 2 {
				t.Fatalf("Transactions %d, want 2", c.Transactions())
			}
			c.Quit(testContext(t))
		})
	}
}

func TestGoSMTPMailRefused(t *testing.T) {
	be := &goBackend{refuseMail: func(from string) error {
		return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 7, 1}, Message: "sender blocked"}
	}}
	addr := startGoSMTP(t, be, nil, nil)
	cfg := testConfig()
	cfg.DisableChunking = true
	c, _ := dialGoSMTP(t, addr, cfg)
	res, err := deliver(t, c, envelope("bad@example.net", "a@example.org", "b@example.org"), "x\r\n")
	var e *Error
	if !errors.As(err, &e) || e.Stage != StageMail || !e.Permanent() {
		t.Fatalf("Deliver: %v", err)
	}
	for _, r := range res {
		if r.Reply.Enhanced != "5.7.1" || r.Accepted {
			t.Fatalf("results %+v", res)
		}
	}
	if c.Broken() {
		t.Fatalf("broken after refused MAIL")
	}
	if _, _, datas, _ := be.counts(); datas != 0 {
		t.Fatalf("server got %d messages", datas)
	}
	c.Quit(testContext(t))
}

func TestGoSMTPRcptMax(t *testing.T) {
	be := &goBackend{}
	addr := startGoSMTP(t, be, nil, func(s *gosmtp.Server) { s.MaxRecipients = 2 })
	c, _ := dialGoSMTP(t, addr, testConfig())
	if c.Extensions().RcptMax != 2 {
		t.Fatalf("RcptMax %d, go-smtp announces LIMITS RCPTMAX=2", c.Extensions().RcptMax)
	}
	res, err := deliver(t, c, envelope("a@example.net", "r1@example.org", "r2@example.org", "r3@example.org"), "x\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Accepted || !res[1].Accepted || res[2].Tried || res[2].Accepted {
		t.Fatalf("results %+v", res)
	}
	// No RCPT was sent beyond the limit, so none was refused with 452.
	if _, rcpts, _, _ := be.counts(); rcpts != 2 {
		t.Fatalf("server saw %d RCPT", rcpts)
	}
	c.Quit(testContext(t))
}

func TestGoSMTPStartTLS(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	be := &goBackend{}
	addr := startGoSMTP(t, be, nil, func(s *gosmtp.Server) {
		s.TLSConfig = serverTLS
		s.EnableREQUIRETLS = true
		s.EnableSMTPUTF8 = true
		s.EnableDSN = true
	})
	c, _ := dialGoSMTP(t, addr, testConfig())
	if !c.Extensions().StartTLS || c.Extensions().RequireTLS {
		t.Fatalf("before TLS: %+v", c.Extensions())
	}
	if _, ok := c.TLS(); ok {
		t.Fatalf("TLS before StartTLS")
	}
	// REQUIRETLS is refused locally before TLS.
	env := envelope("a@example.net", "b@example.org")
	env.RequireTLS = true
	if _, err := deliver(t, c, env, "x\r\n"); !errors.Is(err, ErrNeedsRequireTLS) {
		t.Fatalf("REQUIRETLS without TLS: %v", err)
	}
	if err := c.StartTLS(testContext(t), clientTLS); err != nil {
		t.Fatalf("StartTLS: %v", err)
	}
	st, ok := c.TLS()
	if !ok || !st.HandshakeComplete || st.ServerName != testServerName {
		t.Fatalf("TLS state %v %+v", ok, st)
	}
	// RFC 3207 §4.2: the extensions are those of the EHLO after TLS.
	ext := c.Extensions()
	if ext.StartTLS || !ext.RequireTLS || !ext.SMTPUTF8 || !ext.DSN {
		t.Fatalf("after TLS: %+v", ext)
	}
	env = Envelope{
		MailFrom:   "jörg@example.net",
		SMTPUTF8:   true,
		RequireTLS: true,
		Ret:        "FULL",
		EnvID:      "env+id=1",
		Recipients: []Recipient{{Addr: "b@example.org", Notify: "FAILURE,DELAY", ORcpt: "rfc822;b+tag@example.org"}},
	}
	res, err := deliver(t, c, env, "Subject: tls\r\n\r\nx\r\n")
	if err != nil || !res[0].Accepted {
		t.Fatalf("Deliver: %v %+v", err, res)
	}
	_, _, _, msgs := be.counts()
	m := msgs[0]
	o := m.mailOpts
	if !o.RequireTLS || !o.UTF8 || o.Return != gosmtp.DSNReturnFull || o.EnvelopeID != "env+id=1" || m.from != "jörg@example.net" {
		t.Fatalf("MAIL options %+v from %q", o, m.from)
	}
	r := m.rcptOpts[0]
	if len(r.Notify) != 2 || r.Notify[0] != gosmtp.DSNNotifyFailure || r.Notify[1] != gosmtp.DSNNotifyDelayed ||
		r.OriginalRecipient != "b+tag@example.org" || r.OriginalRecipientType != gosmtp.DSNAddressTypeRFC822 {
		t.Fatalf("RCPT options %+v", r)
	}
	if err := c.Quit(testContext(t)); err != nil {
		t.Fatal(err)
	}
}

func TestGoSMTPStartTLSVerifyFails(t *testing.T) {
	serverTLS, _ := testTLS(t)
	_, otherClientTLS := testTLS(t) // trusts a different certificate
	addr := startGoSMTP(t, &goBackend{}, nil, func(s *gosmtp.Server) { s.TLSConfig = serverTLS })
	c, _ := dialGoSMTP(t, addr, testConfig())
	err := c.StartTLS(testContext(t), otherClientTLS)
	if err == nil || !IsTLSError(err) {
		t.Fatalf("StartTLS with untrusted certificate: %v, want a TLS error", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Stage != StageStartTLS || e.Reply != nil {
		t.Fatalf("error %v", err)
	}
	if !c.Broken() {
		t.Fatalf("not broken after a failed handshake")
	}
}

func TestStartTLSRefused(t *testing.T) {
	conn := startFake(t, func(s *fakeServer) {
		s.greet("STARTTLS", "PIPELINING")
		s.expect("STARTTLS")
		s.send("454 4.7.0 TLS not available due to temporary reason")
		s.expect("MAIL FROM:<a@example.net>")
		s.expect("RCPT TO:<b@example.org>")
		s.expect("DATA")
		s.send("250 ok", "250 ok", "354 go")
		s.data()
		s.send("250 ok")
		s.quit()
	})
	c := newClient(t, conn, testConfig())
	_, clientTLS := testTLS(t)
	err := c.StartTLS(testContext(t), clientTLS)
	var e *Error
	if !errors.As(err, &e) || e.Stage != StageStartTLS || e.Reply == nil || e.Reply.Code != 454 || IsTLSError(err) {
		t.Fatalf("StartTLS: %v, want the 454 reply and no TLS error", err)
	}
	if c.Broken() {
		t.Fatalf("broken after refused STARTTLS")
	}
	// The caller may go on in plain text.
	if res, err := deliver(t, c, envelope("a@example.net", "b@example.org"), "x\r\n"); err != nil || !res[0].Accepted {
		t.Fatalf("Deliver after refused STARTTLS: %v", err)
	}
	c.Quit(testContext(t))
}

func TestStartTLSInjection(t *testing.T) {
	conn := startFake(t, func(s *fakeServer) {
		s.greet("STARTTLS")
		s.expect("STARTTLS")
		// A reply sent in plain text after the 220 would be read as if
		// it came over TLS.
		s.send("220 go ahead", "250-injected", "250 AUTH PLAIN")
		s.expectEOF()
	})
	c := newClient(t, conn, testConfig())
	_, clientTLS := testTLS(t)
	err := c.StartTLS(testContext(t), clientTLS)
	if !errors.Is(err, errProtocol) || IsTLSError(err) || !c.Broken() {
		t.Fatalf("StartTLS: %v, broken %v; want a protocol error", err, c.Broken())
	}
}

func TestGoSMTPImplicitTLS(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	be := &goBackend{}
	addr := startGoSMTP(t, be, serverTLS, nil)
	conn, err := net.DialTimeout("tcp", addr, testDeadline)
	if err != nil {
		t.Fatal(err)
	}
	// New does the handshake of a *tls.Conn itself.
	c := newClient(t, tls.Client(conn, clientTLS), testConfig())
	st, ok := c.TLS()
	if !ok || !st.HandshakeComplete {
		t.Fatalf("implicit TLS not seen: %v", ok)
	}
	if res, err := deliver(t, c, envelope("a@example.net", "b@example.org"), dotMessage); err != nil || !res[0].Accepted {
		t.Fatalf("Deliver: %v %+v", err, res)
	}
	if _, _, _, msgs := be.counts(); msgs[0].data != dotMessage {
		t.Fatalf("data %q", msgs[0].data)
	}
	// STARTTLS on a TLS session is refused without asking the server.
	if err := c.StartTLS(testContext(t), clientTLS); err == nil || c.Broken() {
		t.Fatalf("StartTLS on implicit TLS: %v", err)
	}
	if err := c.Quit(testContext(t)); err != nil {
		t.Fatal(err)
	}
}

func TestImplicitTLSHandshakeFails(t *testing.T) {
	serverTLS, _ := testTLS(t)
	_, otherClientTLS := testTLS(t)
	addr := startGoSMTP(t, &goBackend{}, serverTLS, nil)
	conn, err := net.DialTimeout("tcp", addr, testDeadline)
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(testContext(t), tls.Client(conn, otherClientTLS), testConfig())
	if !IsTLSError(err) {
		t.Fatalf("New: %v, want a TLS error", err)
	}
}

func TestGoSMTPLargeMessage(t *testing.T) {
	// A message far larger than the socket buffers and than one data
	// block, with a DataBlockTimeout short enough that one deadline for
	// the whole message would be tight: every block gets its own.
	be := &goBackend{}
	addr := startGoSMTP(t, be, nil, nil)
	cfg := testConfig()
	cfg.DisableChunking = true
	cfg.DataBlockTimeout = 2 * time.Second
	c, _ := dialGoSMTP(t, addr, cfg)
	var b strings.Builder
	for i := 0; b.Len() < 3<<20; i++ {
		b.WriteString(".line ")
		b.WriteString(strconv.Itoa(i))
		b.WriteString(" of a large message\r\n")
	}
	msg := b.String()
	res, err := deliver(t, c, envelope("a@example.net", "b@example.org"), msg)
	if err != nil || !res[0].Accepted {
		t.Fatalf("Deliver: %v", err)
	}
	if _, _, _, msgs := be.counts(); msgs[0].data != msg {
		t.Fatalf("large message differs (%d vs %d bytes)", len(msgs[0].data), len(msg))
	}
	c.Quit(testContext(t))
}
