package smtpd

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"moxd/internal/dns"
	"moxd/internal/dns/dnstest"
	"moxd/internal/ipc"
	"moxd/internal/mailproto/smtp"
	"moxd/internal/storage/storeclient"
)

const testMsg = "From: <a@sender.example>\r\nTo: <mjl@example.org>\r\nSubject: test\r\nMessage-ID: <1@sender.example>\r\n\r\nHello.\r\n"

func TestMXDelivery(t *testing.T) {
	sc := defaultSlice()
	sc.Limits.UnknownRecipientDelay = 100 * time.Millisecond
	ts := startServer(t, sc, nil)
	c := ts.dial(t)
	c.greet()
	c.expect("MAIL FROM:<a@sender.example>", "250")
	c.expect("RCPT TO:<mjl@example.org>", "250")
	start := time.Now()
	c.expect("RCPT TO:<nobody@example.org>", "550 5.1.1")
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("unknown recipient answered after %v, want the 100ms delay", d)
	}
	c.expect("RCPT TO:<Postmaster>", "250")
	if got := c.message(testMsg); !strings.HasPrefix(got, "250 2.0.0") {
		t.Fatalf("DATA reply %q", got)
	}
	d := ts.store.got()
	if len(d) != 1 || d[0].body != testMsg || strings.Join(d[0].rcpts, ",") != "mjl@example.org,postmaster" || d[0].env.MailFrom != "a@sender.example" {
		t.Fatalf("delivered %+v", d)
	}
	prefix := strings.ReplaceAll(string(d[0].env.Prefix), "\r\n\t", " ")
	for _, want := range []string{"Authentication-Results: mail.example.org", "dkim=none", "Received: from client.example ([127.0.0.1]) by mail.example.org (moxd) with ESMTP (no dnssec-authentic lookups) id ", "spf=none"} {
		if !strings.Contains(prefix, want) {
			t.Errorf("prefix lacks %q:\n%s", want, prefix)
		}
	}
	if ts.store.released != 1 {
		t.Errorf("body released %d times, want 1", ts.store.released)
	}
	if c := ts.counters(); c[0].Value != 1 || c[2].Name != "messages_delivered" || c[2].Value != 1 {
		t.Errorf("counters %+v, want 1 connection and 1 message", c)
	}
}

func TestMXStoreFailures(t *testing.T) {
	ts := startServer(t, defaultSlice(), nil)
	c := ts.dial(t)
	c.greet()
	ts.store.errRcpt = fmt.Errorf("x: %w", storeclient.ErrUnavailable)
	c.expect("MAIL FROM:<a@sender.example>", "250")
	c.expect("RCPT TO:<mjl@example.org>", "451 4.3.0")
	ts.store.errRcpt = nil
	c.expect("RCPT TO:<mjl@example.org>", "250")
	ts.store.errNewBody = fmt.Errorf("x: %w", storeclient.ErrDiskFull)
	if got := c.message(testMsg); !strings.HasPrefix(got, "452 4.3.1") {
		t.Fatalf("disk full: %q, want 452 4.3.1", got)
	}
	ts.store.errNewBody = nil
	if len(ts.store.got()) != 0 {
		t.Fatalf("delivered despite failures")
	}
}

func TestMXPartialFailure(t *testing.T) {
	ts := startServer(t, defaultSlice(), nil)
	ts.store.results["other@example.org"] = storeclient.RcptFailed
	c := ts.dial(t)
	c.greet()
	c.expect("MAIL FROM:<a@sender.example>", "250")
	c.expect("RCPT TO:<mjl@example.org>", "250")
	c.expect("RCPT TO:<other@example.org>", "250")
	// One delivered, one failed: the failed one goes to queue and the
	// client hears 250.
	if got := c.message(testMsg); !strings.HasPrefix(got, "250 2.0.0") {
		t.Fatalf("reply %q, want 250", got)
	}
	if r := ts.queue.retries; len(r) != 1 || strings.Join(r[0].rcpts, ",") != "other@example.org" || r[0].body != testMsg || !strings.Contains(r[0].prefix, "Received:") {
		t.Fatalf("retries %+v", r)
	}
	// Queue refusing the retry: a temporary failure, so nothing is lost.
	ts.queue.errRetry = errors.New("queue down")
	c.expect("MAIL FROM:<a@sender.example>", "250")
	c.expect("RCPT TO:<mjl@example.org>", "250")
	c.expect("RCPT TO:<other@example.org>", "250")
	if got := c.message(testMsg); !strings.HasPrefix(got, "451 4.3.0") {
		t.Fatalf("reply %q, want 451", got)
	}
	// All recipients failing temporarily: 451 and no retry.
	ts.queue.errRetry = nil
	c.expect("MAIL FROM:<a@sender.example>", "250")
	c.expect("RCPT TO:<other@example.org>", "250")
	if got := c.message(testMsg); !strings.HasPrefix(got, "451") {
		t.Fatalf("reply %q, want 451", got)
	}
	if len(ts.queue.retries) != 1 {
		t.Fatalf("%d retries, want still 1", len(ts.queue.retries))
	}
}

func TestMailLoop(t *testing.T) {
	ts := startServer(t, defaultSlice(), nil)
	c := ts.dial(t)
	c.greet()
	c.expect("MAIL FROM:<a@sender.example>", "250")
	c.expect("RCPT TO:<mjl@example.org>", "250")
	msg := strings.Repeat("Received: from x by y; Tue, 1 Dec 2026 10:00:00 +0000\r\n", maxHops) + testMsg
	if got := c.message(msg); !strings.HasPrefix(got, "554 5.4.6") {
		t.Fatalf("reply %q, want 554 5.4.6", got)
	}
	c.expect("MAIL FROM:<a@sender.example>", "250")
	c.expect("RCPT TO:<mjl@example.org>", "250")
	msg = strings.Repeat("Received: from x by y; Tue, 1 Dec 2026 10:00:00 +0000\r\n", maxHops-1) + testMsg
	if got := c.message(msg); !strings.HasPrefix(got, "250") {
		t.Fatalf("reply %q, want 250 below the limit", got)
	}
}

// signEd25519 signs msg for domain with selector, returning the signed
// message and the DNS record of the key.
func signEd25519(t *testing.T, msg, domain, selector string) (string, string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := dkim.Sign(&out, strings.NewReader(msg), &dkim.SignOptions{Domain: domain, Selector: selector, Signer: priv, HeaderKeys: []string{"From", "To", "Subject", "Message-ID"}}); err != nil {
		t.Fatal(err)
	}
	return out.String(), "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
}

func TestMXAuthChecks(t *testing.T) {
	signed, rec := signEd25519(t, testMsg, "sender.example", "sel")
	zone := dnstest.Start(t,
		`sender.example. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`sel._domainkey.sender.example. 300 IN TXT "`+rec+`"`,
		`_dmarc.sender.example. 300 IN TXT "v=DMARC1; p=reject; rua=mailto:dmarc@sender.example"`,
		`_dmarc.strict.example. 300 IN TXT "v=DMARC1; p=reject; rua=mailto:r@strict.example"`,
		`strict.example. 300 IN TXT "v=spf1 -all"`,
		`1.0.0.127.in-addr.arpa. 300 IN PTR client.sender.example.`,
		`client.sender.example. 300 IN A 127.0.0.1`,
	)
	zone.SetAuthentic("sender.example", "in-addr.arpa")
	r, err := dns.New(dns.Config{Servers: []string{zone.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, defaultSlice(), r)
	c := ts.dial(t)
	c.greet()
	c.expect("MAIL FROM:<a@sender.example>", "250")
	c.expect("RCPT TO:<mjl@example.org>", "250")
	if got := c.message(signed); !strings.HasPrefix(got, "250") {
		t.Fatalf("reply %q", got)
	}
	d := ts.store.got()
	if len(d) != 1 {
		t.Fatalf("not delivered")
	}
	prefix := string(d[0].env.Prefix)
	unfolded := strings.ReplaceAll(prefix, "\r\n\t", " ")
	for _, want := range []string{"iprev=pass", "spf=pass", "dkim=pass", "header.d=sender.example", "dmarc=pass", "header.from=sender.example", "client.sender.example [127.0.0.1]", "dnssec-authentic: iprev spf dkim dmarc"} {
		if !strings.Contains(unfolded, want) {
			t.Errorf("prefix lacks %q:\n%s", want, prefix)
		}
	}
	if len(ts.queue.evaluations) != 1 || ts.queue.evaluations[0].PolicyDomain != "sender.example" || !ts.queue.evaluations[0].HasRUA {
		t.Fatalf("dmarc evaluations %+v", ts.queue.evaluations)
	}

	// DMARC reject: SPF fails for the domain, no signature.
	c.expect("MAIL FROM:<a@strict.example>", "250")
	c.expect("RCPT TO:<mjl@example.org>", "250")
	got := c.message(strings.ReplaceAll(testMsg, "sender.example", "strict.example"))
	if !strings.HasPrefix(got, "550 5.7.1") || !strings.Contains(got, "strict.example") {
		t.Fatalf("reply %q, want 550 5.7.1 naming the domain", got)
	}
	if len(ts.store.got()) != 1 {
		t.Fatalf("rejected message was delivered")
	}
	if len(ts.queue.evaluations) != 2 || ts.queue.evaluations[1].Disposition != "reject" {
		t.Fatalf("dmarc evaluations %+v", ts.queue.evaluations)
	}
}

func TestLocalserveFailures(t *testing.T) {
	sc := defaultSlice()
	sc.Localserve = true
	ts := startServer(t, sc, nil)
	ts.store.accounts["temperror@example.org"] = "mjl"
	ts.store.accounts["x452@example.org"] = "mjl"
	ts.store.accounts["permerror@example.org"] = "mjl"
	c := ts.dial(t)
	c.greet()
	c.expect("MAIL FROM:<mailfromtemperror@sender.example>", "451 4.0.0")
	c.expect("MAIL FROM:<mailfrom550@sender.example>", "550 5.0.0")
	c.expect("MAIL FROM:<a@sender.example>", "250")
	c.expect("RCPT TO:<rcpttopermerror@example.org>", "550 5.0.0")
	c.expect("RCPT TO:<rcptto421@example.org>", "421 4.0.0")

	c = ts.dial(t)
	c.greet()
	for _, tc := range []struct{ rcpt, want string }{{"temperror@example.org", "451 4.0.0"}, {"permerror@example.org", "550 5.0.0"}, {"x452@example.org", "452 4.0.0"}} {
		c.expect("MAIL FROM:<a@sender.example>", "250")
		c.expect("RCPT TO:<"+tc.rcpt+">", "250")
		if got := c.message(testMsg); !strings.HasPrefix(got, tc.want) {
			t.Fatalf("%s: reply %q, want %q", tc.rcpt, got, tc.want)
		}
	}
	if len(ts.store.got()) != 0 {
		t.Fatalf("simulated failures were delivered")
	}
}

func TestSubmission(t *testing.T) {
	sc := defaultSlice()
	sc.Submission = true
	ts := startServer(t, sc, nil)
	c := ts.dial(t)
	c.greet()
	c.expect("MAIL FROM:<mjl@example.org>", "530 5.7.0")
	// PLAIN is offered only under TLS.
	c.expect("AUTH PLAIN AG1qbAB3cm9uZw==", "504 5.5.4")
	c.startTLS()
	c.expect("AUTH PLAIN AG1qbAB3cm9uZw==", "535 5.7.8")
	c.expect("AUTH PLAIN AG1qbABzZWNyZXQ=", "235 2.7.0")
	c.expect("MAIL FROM:<>", "550 5.7.1")
	c.expect("MAIL FROM:<mjl@example.org> RET=HDRS ENVID=e1 REQUIRETLS", "250")
	c.expect("RCPT TO:<x@remote.example> NOTIFY=FAILURE,DELAY", "250")
	c.expect("RCPT TO:<y@remote.example>", "250")
	msg := "From: <mjl@example.org>\r\nSubject: hi\r\nX-Moxd-Extra-Campaign: 7\r\n\r\nbody\r\n"
	if got := c.message(msg); !strings.HasPrefix(got, "250 2.0.0 message queued as 1") {
		t.Fatalf("reply %q", got)
	}
	s := ts.queue.submitted
	if len(s) != 1 || s[0].body != msg || s[0].env.MailFrom != "mjl@example.org" || s[0].env.Token[0] != 1 || s[0].env.Ret != ipc.RetHdrs || s[0].env.EnvID != "e1" || !s[0].env.RequireTLS || len(s[0].rcpts) != 2 || s[0].rcpts[0].Notify != ipc.NotifyFailure|ipc.NotifyDelay {
		t.Fatalf("submitted %+v", s)
	}
	prefix := strings.ReplaceAll(string(s[0].env.Prefix), "\r\n\t", " ")
	for _, want := range []string{"Received: from client.example", "with ESMTPSA", "(requiretls)", "Message-ID: <", "Date: "} {
		if !strings.Contains(prefix, want) {
			t.Errorf("prefix lacks %q:\n%s", want, prefix)
		}
	}
	c.expect("QUIT", "221")
	time.Sleep(50 * time.Millisecond)
	ts.auth.mu.Lock()
	revoked := ts.auth.revoked
	ts.auth.mu.Unlock()
	if revoked != 1 {
		t.Fatalf("token revoked %d times after the session, want 1", revoked)
	}
}

func TestSubmissionAuthFailures(t *testing.T) {
	sc := defaultSlice()
	sc.Submission = true
	sc.Limits.AuthFailureDelay = 20 * time.Millisecond
	sc.Limits.MaxAuthFailures = 3
	ts := startServer(t, sc, nil)
	c := ts.dial(t)
	c.greet()
	c.startTLS()
	start := time.Now()
	c.expect("AUTH PLAIN AG1qbAB3cm9uZw==", "535 5.7.8")
	c.expect("AUTH PLAIN AG1qbAB3cm9uZw==", "535 5.7.8")
	c.expect("AUTH PLAIN AG1qbAB3cm9uZw==", "421 4.7.0")
	// 20 + 40 + 80 ms: the delay doubles per failure.
	if d := time.Since(start); d < 140*time.Millisecond {
		t.Fatalf("three failures took %v, want at least 140ms of delay", d)
	}
}

// TestReconfigure: a reload changes the limits for new connections.
func TestReconfigure(t *testing.T) {
	ts := startServer(t, defaultSlice(), nil)
	c1 := ts.dial(t)
	c1.greet()
	c2 := ts.dial(t)
	c2.greet()
	sc := defaultSlice()
	sc.Limits.ConcurrentConnections = [3]int{2, 0, 0}
	sc.MaxRecipients = 100
	if err := ts.reconfigure(sc, ts.log); err != nil {
		t.Fatal(err)
	}
	c3 := ts.dial(t)
	if got := c3.reply(); !strings.HasPrefix(got, "421 4.7.0") || !strings.Contains(got, "concurrent_connections") {
		t.Fatalf("third connection: %q, want 421 naming the limit", got)
	}
	c1.expect("QUIT", "221")
	time.Sleep(100 * time.Millisecond)
	c4 := ts.dial(t)
	c4.reply()
	if got := c4.expect("EHLO client.example", "250"); !strings.Contains(got, "RCPTMAX=100") {
		t.Fatalf("EHLO after reload %q, want the new RCPTMAX", got)
	}
}

// TestDKIMLazy: the verifier starts only for a signed message, also when
// the header arrives in small pieces.
func TestDKIMLazy(t *testing.T) {
	signed, rec := signEd25519(t, testMsg, "sender.example", "sel")
	zone := dnstest.Start(t, `sel._domainkey.sender.example. 300 IN TXT "`+rec+`"`)
	r, err := dns.New(dns.Config{Servers: []string{zone.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	s := &session{set: &settings{resolver: r}, log: slog.New(slog.DiscardHandler)}
	for _, tc := range []struct {
		msg    string
		signed bool
	}{{signed, true}, {testMsg, false}} {
		hc := &headerCapture{}
		dk := s.startDKIM(context.Background(), hc)
		for i := 0; i < len(tc.msg); i += 7 {
			p := []byte(tc.msg[i:min(i+7, len(tc.msg))])
			hc.Write(p)
			dk.Write(p)
		}
		if (dk.pw != nil) != tc.signed {
			t.Fatalf("signed %v: verifier started %v", tc.signed, dk.pw != nil)
		}
		res := dk.finish(nil)
		if tc.signed && (len(res) != 1 || res[0].Status != "pass") {
			t.Fatalf("results %+v, want one pass", res)
		}
		if !tc.signed && res != nil {
			t.Fatalf("unsigned message has results %+v", res)
		}
	}
}

// TestStoreAddress: store and queue get mailboxes as RFC 5321 writes them,
// with A-label domains, and a quoted local part reaches store quoted.
func TestStoreAddress(t *testing.T) {
	for _, tc := range []struct {
		p    smtp.Path
		want string
	}{
		{smtp.Path{Localpart: "mjl", Domain: "Example.ORG"}, "mjl@example.org"},
		{smtp.Path{Localpart: "a b", Domain: "example.org"}, `"a b"@example.org`},
		{smtp.Path{Localpart: `a"b@c`, Domain: "example.org"}, `"a\"b@c"@example.org`},
		{smtp.Path{Localpart: "jörg", Domain: "bücher.example"}, "jörg@xn--bcher-kva.example"},
	} {
		if got, err := storeAddress(tc.p); err != nil || got != tc.want {
			t.Errorf("storeAddress(%+v) = %q, %v, want %q", tc.p, got, err, tc.want)
		}
	}
	ts := startServer(t, defaultSlice(), nil)
	ts.store.accounts[`"a b"@example.org`] = "mjl"
	c := ts.dial(t)
	c.greet()
	c.expect("MAIL FROM:<a@sender.example>", "250")
	c.expect(`RCPT TO:<"a b"@example.org>`, "250")
}
