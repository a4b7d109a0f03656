package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"testing"
	"time"

	"moxd/internal/config"
	"moxd/internal/ipc"
	"moxd/internal/storage/storeclient"
)

// testDSN is a DSN as Postfix sends it, for the message <orig-1@example.org>.
const testDSN = "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n" +
	"To: mjl+%s@example.org\r\n" +
	"Subject: Undelivered Mail Returned to Sender\r\n" +
	"Message-ID: <dsn-1@mx.example.net>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/report; report-type=delivery-status; boundary=\"B1\"\r\n" +
	"\r\n" +
	"--B1\r\n" +
	"Content-Type: text/plain\r\n" +
	"\r\n" +
	"I'm sorry to have to inform you that your message could not be delivered.\r\n" +
	"--B1\r\n" +
	"Content-Type: message/delivery-status\r\n" +
	"\r\n" +
	"Reporting-MTA: dns; mx.example.net\r\n" +
	"\r\n" +
	"Final-Recipient: rfc822; gone@example.net\r\n" +
	"Action: failed\r\n" +
	"Status: 5.1.1\r\n" +
	"Diagnostic-Code: smtp; 550 5.1.1 <gone@example.net>: Recipient address rejected\r\n" +
	"\r\n" +
	"Final-Recipient: rfc822; slow@example.net\r\n" +
	"Action: delayed\r\n" +
	"Status: 4.4.1\r\n" +
	"--B1\r\n" +
	"Content-Type: text/rfc822-headers\r\n" +
	"\r\n" +
	"Message-ID: <orig-1@example.org>\r\n" +
	"Subject: hi\r\n" +
	"--B1--\r\n"

// incomingQueue connects the store of ts to a fake queue over a real
// channel (so the allow-matrix is checked on both ends) and returns the
// events queue receives.
func incomingQueue(t *testing.T, ts *testStore) <-chan *ipc.IncomingDelivery {
	t.Helper()
	fs, fq, err := ipc.Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	store, err := ipc.New(fs, ipc.Options{Local: ipc.RoleStore, Peer: ipc.RoleQueue, Handler: ipc.HandlerFunc(ts.sv.serve)})
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan *ipc.IncomingDelivery, 100)
	queue, err := ipc.New(fq, ipc.Options{Local: ipc.RoleQueue, Peer: ipc.RoleStore, Handler: ipc.HandlerFunc(func(ctx context.Context, req *ipc.Request) (ipc.Message, []*os.File, error) {
		if m, ok := req.Msg.(*ipc.IncomingDelivery); ok && req.Event {
			events <- m
		}
		return nil, nil, nil
	})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		store.Close()
		queue.Close()
	})
	ts.sv.incoming.send = func(m ipc.Message) error { return store.Notify(m) }
	return events
}

// deliverFrom delivers msg from mailFrom to rcpts through smtp's channel.
func deliverFrom(t *testing.T, d *storeclient.Deliverer, mailFrom, msg string, rcpts ...string) {
	t.Helper()
	ctx := testContext(t)
	b, err := d.NewBody(ctx, int64(len(msg)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	var l []storeclient.Recipient
	for _, r := range rcpts {
		l = append(l, storeclient.Recipient{Address: r})
	}
	res, err := d.Deliver(ctx, b, storeclient.Envelope{MailFrom: mailFrom, Prefix: []byte("Received: from test\r\n"), Received: time.Unix(1700000000, 0)}, l)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.State != storeclient.RcptOK {
			t.Fatalf("delivery to %s: %+v", rcpts[i], r)
		}
	}
}

func nextIncoming(t *testing.T, events <-chan *ipc.IncomingDelivery) *ipc.IncomingDelivery {
	t.Helper()
	select {
	case m := <-events:
		return m
	case <-time.After(testDeadline):
		t.Fatal("no incoming event")
		return nil
	}
}

func TestIncomingEvents(t *testing.T) {
	slice := config.StoreSlice{
		Domains: []config.AddrDomain{{Name: "example.org", LocalpartSeparators: []string{"+"}}},
		Accounts: []config.StoreAccount{
			{Name: "mjl", Addresses: []string{"mjl@example.org"}},
			{Name: "hooked", Addresses: []string{"hooked@example.org"}, IncomingWebhook: true},
		},
	}
	ts := newTestStoreSlice(t, slice)
	events := incomingQueue(t, ts)
	d := storeclient.NewDeliverer(peerOf(ts.conn(ipc.RoleSMTP)))

	// Ordinary mail to an account without webhook, also to a tagged
	// address, and a DSN to an address without tag: no event. The DSN
	// after them is the first event queue sees.
	deliverFrom(t, d, "sender@example.net", string(message(1)), "mjl@example.org", "mjl+abc@example.org")
	deliverFrom(t, d, "", fmt.Sprintf(testDSN, "x"), "mjl@example.org")
	// A null sender message that is no report: no event either.
	deliverFrom(t, d, "", string(message(2)), "mjl+abcdefgh@example.org")

	deliverFrom(t, d, "", fmt.Sprintf(testDSN, "k3jd8xq2mm4a7bzy"), "mjl+k3jd8xq2mm4a7bzy@example.org")
	ev := nextIncoming(t, events)
	want := &ipc.IncomingDelivery{
		Account: "mjl", Mailbox: "INBOX", Rcpt: "mjl+k3jd8xq2mm4a7bzy@example.org",
		MessageID: "<dsn-1@mx.example.net>", Subject: "Undelivered Mail Returned to Sender", From: "MAILER-DAEMON@mx.example.net",
		Size: int64(len("Received: from test\r\n") + len(fmt.Sprintf(testDSN, "k3jd8xq2mm4a7bzy"))), Received: time.Unix(1700000000, 0).UnixNano(),
		DSN: &ipc.IncomingDSN{FromID: "k3jd8xq2mm4a7bzy", Results: []ipc.DSNResult{
			{FinalRecipient: "gone@example.net", Action: "failed", Status: "5.1.1", Diagnostic: "550 5.1.1 <gone@example.net>: Recipient address rejected"},
			{FinalRecipient: "slow@example.net", Action: "delayed", Status: "4.4.1"},
		}},
	}
	if !reflect.DeepEqual(ev, want) {
		t.Errorf("DSN event\n got %+v %+v\nwant %+v %+v", ev, ev.DSN, want, want.DSN)
	}

	// An account with an incoming webhook: every delivery, with the
	// header fields; a DSN without tag carries its results, no FromID.
	deliverFrom(t, d, "sender@example.net", "From: \"Sender\" <sender@example.net>\r\nSubject: =?utf-8?q?h=C3=A9llo?=\r\nMessage-ID: <m1@example.net>\r\n\r\nHi.\r\n", "hooked@example.org", "mjl@example.org")
	ev = nextIncoming(t, events)
	if ev.Account != "hooked" || ev.Rcpt != "hooked@example.org" || ev.MailFrom != "sender@example.net" || ev.Subject != "héllo" ||
		ev.From != "sender@example.net" || ev.MessageID != "<m1@example.net>" || ev.DSN != nil {
		t.Errorf("webhook event %+v", ev)
	}
	deliverFrom(t, d, "", fmt.Sprintf(testDSN, "x"), "hooked@example.org")
	ev = nextIncoming(t, events)
	if ev.Account != "hooked" || ev.DSN == nil || ev.DSN.FromID != "" || len(ev.DSN.Results) != 2 {
		t.Errorf("webhook event of a DSN %+v %+v", ev, ev.DSN)
	}
	// The counter follows the send the fake queue has seen.
	for deadline := time.Now().Add(testDeadline); ts.sv.incoming.sent.Load() < 3 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if n := ts.sv.incoming.sent.Load(); n != 3 {
		t.Errorf("%d events sent, want 3", n)
	}

	// Queue down: the delivery succeeds, the event is dropped and
	// counted.
	ts.sv.incoming.send = func(ipc.Message) error { return ipc.ErrClosed }
	deliverFrom(t, d, "", fmt.Sprintf(testDSN, "k3jd8xq2mm4a7bzy"), "mjl+k3jd8xq2mm4a7bzy@example.org")
	deadline := time.Now().Add(testDeadline)
	for ts.sv.incoming.dropped.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := ts.sv.incoming.dropped.Load(); n != 1 {
		t.Errorf("%d events dropped, want 1", n)
	}
	if n := ts.count("mjl", "INBOX"); n != 7 {
		t.Errorf("mjl has %d messages, want 7", n)
	}
}

// TestIncomingBufferFull: a full buffer drops jobs (closing their body
// files) instead of blocking the delivery.
func TestIncomingBufferFull(t *testing.T) {
	in := newIncoming(slog.New(slog.DiscardHandler))
	for range maxPendingIncoming {
		in.add(&incomingJob{targets: make([]incomingTarget, 1)})
	}
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	in.add(&incomingJob{targets: make([]incomingTarget, 2), body: f})
	if n := in.dropped.Load(); n != 2 {
		t.Errorf("dropped %d, want 2", n)
	}
	if _, err := f.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("body file of a dropped job not closed: %v", err)
	}
	if n := len(in.jobs); n != maxPendingIncoming {
		t.Errorf("%d jobs pending, want %d", n, maxPendingIncoming)
	}
}
