package smtpd

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"moxd/internal/connlimit"
	"moxd/internal/dns"
	"moxd/internal/mailproto/smtp"
	"moxd/internal/storage/storeclient"
)

var netipLoopback = netip.MustParseAddr("127.0.0.1")

// FuzzSession runs whole sessions of arbitrary client bytes through the
// real policy (MX and submission, with fake store and queue): no panic,
// no hang, and the session ends.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"EHLO c\r\nMAIL FROM:<a@sender.example>\r\nRCPT TO:<mjl@example.org>\r\nRCPT TO:<nobody@example.org>\r\nDATA\r\nFrom: <a@sender.example>\r\nDKIM-Signature: v=1; a=ed25519-sha256; d=x; s=y; h=from; bh=; b=\r\n\r\nhi\r\n.\r\nQUIT\r\n",
		"EHLO c\r\nMAIL FROM:<mailfromtemperror@x>\r\nMAIL FROM:<a@x>\r\nRCPT TO:<rcptto550@example.org>\r\nRCPT TO:<x452@example.org>\r\nBDAT 3 LAST\r\nabc",
		"EHLO c\r\nAUTH PLAIN AG1qbABzZWNyZXQ=\r\nMAIL FROM:<mjl@example.org>\r\nRCPT TO:<x@y.example>\r\nDATA\r\nFrom: mjl@example.org\r\n\r\n.\r\n",
		"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<Postmaster>\r\nDATA\r\n" + strings.Repeat("Received: x\r\n", 120) + "\r\n.\r\n",
	} {
		f.Add([]byte(s), false, false)
		f.Add([]byte(s), true, true)
	}
	// A simulated timeout must not outlast the test.
	localserveTimeout = 10 * time.Millisecond
	f.Fuzz(func(t *testing.T, data []byte, submission, localserve bool) {
		sc := defaultSlice()
		sc.Submission = submission
		sc.Localserve = localserve
		srv := &server{
			hostname:   "mail.example.org",
			submission: submission,
			localserve: localserve,
			log:        slog.New(slog.DiscardHandler),
			store:      &fakeStore{accounts: map[string]string{"mjl@example.org": "mjl", "postmaster": "mjl"}, results: map[string]storeclient.RcptState{}},
			auth:       &fakeAuth{},
			queue:      &fakeQueue{},
			limiter:    connlimit.New(nil, [3]int{}, [3]int{}, nil),
			now:        time.Now,
		}
		set := &settings{cfg: sc, resolver: dns.Offline()}
		srv.settings.Store(set)
		cs, cc := net.Pipe()
		defer cc.Close()
		sess := newSession(srv, set, netipLoopback, srv.log)
		done := make(chan error, 1)
		go func() {
			done <- smtp.Serve(context.Background(), cs, smtp.Config{
				Hostname: "mail.example.org", Submission: submission, Session: sess,
				CommandTimeout: 20 * time.Millisecond, MaxMessageSize: 1 << 16,
			})
		}()
		go io.Copy(io.Discard, cc)
		cc.SetWriteDeadline(time.Now().Add(testDeadline))
		cc.Write(data)
		cc.Write([]byte("\r\n.\r\nQUIT\r\n"))
		select {
		case err := <-done:
			if err != nil && strings.Contains(err.Error(), "panic") {
				t.Fatalf("session: %v", err)
			}
		case <-time.After(testDeadline):
			t.Fatalf("session did not end")
		}
		sess.end()
	})
}
