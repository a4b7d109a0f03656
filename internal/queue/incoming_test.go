package queue

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"moxd/internal/config"
	"moxd/internal/ipc"
	"moxd/internal/queue/queueclient"
)

// rawHookServer records the JSON bodies posted to it.
type rawHookServer struct {
	*httptest.Server
	mu   sync.Mutex
	got  []map[string]any
	auth []string
}

func newRawHookServer(t *testing.T) *rawHookServer {
	hs := &rawHookServer{}
	hs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var p map[string]any
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &p) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		hs.mu.Lock()
		defer hs.mu.Unlock()
		hs.got = append(hs.got, p)
		hs.auth = append(hs.auth, r.Header.Get("Authorization"))
	}))
	t.Cleanup(hs.Close)
	return hs
}

// events returns the posted bodies whose event is one of events.
func (hs *rawHookServer) events(events ...string) []map[string]any {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	var l []map[string]any
	for _, p := range hs.got {
		for _, e := range events {
			if p["event"] == e {
				l = append(l, p)
			}
		}
	}
	return l
}

// storeEvents returns a function that sends an event on a channel from
// store, as moxd-store does after a commit.
func storeEvents(t *testing.T, tq *testQueue) func(m *ipc.IncomingDelivery) {
	c := tq.conn(ipc.RoleStore)
	return func(m *ipc.IncomingDelivery) {
		t.Helper()
		if err := c.Notify(m); err != nil {
			t.Fatal(err)
		}
	}
}

// fromIDEntries counts the fromids index entries of fromID.
func fromIDEntries(q *Queue, fromID string) int {
	n := 0
	q.db.View(func(tx *bolt.Tx) error {
		prefix := fromIDKey(fromID, nil)
		c := tx.Bucket([]byte(bucketFromIDs)).Cursor()
		for k, _ := c.Seek(prefix); k != nil && strings.HasPrefix(string(k), string(prefix)); k, _ = c.Next() {
			n++
		}
		return nil
	})
	return n
}

// TestIncomingDSN: a DSN to the unique MAIL FROM of a delivered message
// marks its retired recipients; a failed one whose address is gone gets
// on the suppression list and an outgoing webhook event "failed".
// Duplicates, other accounts and unknown ids change nothing else.
func TestIncomingDSN(t *testing.T) {
	mx := startSMTP(t, smtpOpts{})
	hs := newRawHookServer(t)
	e := newOutEnv(t, mx.port, func(s *config.QueueSlice) {
		s.Accounts[0].UniqueMailFrom = true
		s.Accounts[0].Webhooks = []config.QueueWebhook{{Kind: "outgoing", URL: hs.URL, Events: []string{"failed"}}}
		s.Delivery.WebhookAllowPrivate = true
	})
	send := storeEvents(t, e.tq)
	id := e.send(queueclient.Envelope{}, testMessage("mjl@example.org"), "gone@a.example", "slow@a.example", "fine@b.example")
	e.waitGone(id)
	m := e.retiredByAddr(id)
	fromID := m["gone@a.example"].FromID
	if fromID == "" || m["slow@a.example"].FromID != fromID {
		t.Fatalf("retired records without the message's from id: %+v", m)
	}
	if n := fromIDEntries(e.tq.sv.q, fromID); n != 3 {
		t.Fatalf("%d fromids index entries, want 3", n)
	}

	dsnEvent := func(account, fromID string, results ...ipc.DSNResult) *ipc.IncomingDelivery {
		return &ipc.IncomingDelivery{Account: account, Mailbox: "INBOX", Rcpt: "mjl+" + fromID + "@example.org",
			Subject: "Undelivered Mail Returned to Sender", Size: 2000, Received: e.tq.sv.now().UnixNano(),
			DSN: &ipc.IncomingDSN{FromID: fromID, Results: results}}
	}
	failed := ipc.DSNResult{FinalRecipient: "Gone@a.example", Action: "failed", Status: "5.1.1", Diagnostic: "550 5.1.1 no such user"}
	delayed := ipc.DSNResult{FinalRecipient: "slow@a.example", Action: "delayed", Status: "4.4.1", Diagnostic: "connection timed out"}

	// Another account's DSN with the id, and an unknown id: ignored.
	send(dsnEvent("other", fromID, failed))
	send(dsnEvent("mjl", "nosuchid", failed))
	waitFor(t, "unmatched DSNs", func() bool { return e.tq.sv.incomingStats.unmatched.Load() == 2 })
	if r := e.retiredByAddr(id)["gone@a.example"]; r.RemoteDSN != "" {
		t.Fatalf("record marked by an unmatched DSN: %q", r.RemoteDSN)
	}

	send(dsnEvent("mjl", fromID, failed, delayed))
	waitFor(t, "matched DSN", func() bool { return e.tq.sv.incomingStats.matched.Load() == 1 })
	m = e.retiredByAddr(id)
	if r := m["gone@a.example"]; r.RemoteDSN != "failed 5.1.1: 550 5.1.1 no such user" || !r.Delivered {
		t.Errorf("gone: remote DSN %q, delivered %v", r.RemoteDSN, r.Delivered)
	}
	if r := m["slow@a.example"]; r.RemoteDSN != "delayed 4.4.1: connection timed out" {
		t.Errorf("slow: remote DSN %q", r.RemoteDSN)
	}
	if r := m["fine@b.example"]; r.RemoteDSN != "" {
		t.Errorf("fine: remote DSN %q", r.RemoteDSN)
	}
	s, ok := e.tq.sv.q.suppressed("mjl", "gone@a.example")
	if !ok || s.Manual || !strings.Contains(s.Reason, "failed 5.1.1") {
		t.Errorf("suppression of gone@a.example: %+v %v", s, ok)
	}
	if _, ok := e.tq.sv.q.suppressed("mjl", "slow@a.example"); ok {
		t.Errorf("a delayed recipient was suppressed")
	}
	waitFor(t, "failed webhook event", func() bool { return len(hs.events("failed")) == 1 })
	p := hs.events("failed")[0]
	if p["recipient"] != "gone@a.example" || p["suppressing"] != true || p["smtpCode"] != float64(550) ||
		p["smtpEnhancedCode"] != "5.1.1" || p["fromID"] != fromID || p["queueMsgID"] != float64(id) {
		t.Errorf("failed event %v", p)
	}
	// The admin listing shows what the DSN said.
	if got := retiredIPC(m["gone@a.example"]).History; !strings.HasSuffix(got, "remote DSN: failed 5.1.1: 550 5.1.1 no such user\n") {
		t.Errorf("retired history %q", got)
	}

	// A second copy of the DSN, and a later delayed for the failed
	// recipient: no new event, the failure stays recorded.
	send(dsnEvent("mjl", fromID, failed))
	send(dsnEvent("mjl", fromID, ipc.DSNResult{FinalRecipient: "gone@a.example", Action: "delayed", Status: "4.0.0"}))
	waitFor(t, "duplicate DSNs", func() bool { return e.tq.sv.incomingStats.matched.Load() == 3 })
	if r := e.retiredByAddr(id)["gone@a.example"]; !strings.HasPrefix(r.RemoteDSN, "failed 5.1.1") {
		t.Errorf("gone after duplicates: %q", r.RemoteDSN)
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(hs.events("failed")); n != 1 {
		t.Errorf("%d failed events after a duplicate DSN, want 1", n)
	}

	// Expiring the retired records removes their index entries.
	if n, err := e.tq.sv.q.expireRetired(e.tq.sv.now().Add(time.Hour), time.Minute, 1000); err != nil || n != 3 {
		t.Fatalf("expired %d, %v", n, err)
	}
	if n := fromIDEntries(e.tq.sv.q, fromID); n != 0 {
		t.Errorf("%d fromids index entries after expiry", n)
	}
}

// TestIncomingDSNTaggedSender: with a tagged sender address the id comes
// after the tag (mjl+tag+<id>); a single recipient forwarded elsewhere
// still matches.
func TestIncomingDSNTaggedSender(t *testing.T) {
	mx := startSMTP(t, smtpOpts{})
	e := newOutEnv(t, mx.port, func(s *config.QueueSlice) { s.Accounts[0].UniqueMailFrom = true })
	send := storeEvents(t, e.tq)
	id := e.send(queueclient.Envelope{MailFrom: "mjl+news@example.org"}, testMessage("mjl@example.org"), "user@a.example")
	e.waitGone(id)
	fromID := e.retiredByAddr(id)["user@a.example"].FromID
	if txs := mx.transactions(); len(txs) != 1 || txs[0].from != "mjl+news+"+fromID+"@example.org" {
		t.Fatalf("transactions %+v", txs)
	}
	send(&ipc.IncomingDelivery{Account: "mjl", Mailbox: "INBOX", Rcpt: "mjl+news+" + fromID + "@example.org",
		DSN: &ipc.IncomingDSN{FromID: "news+" + fromID, Results: []ipc.DSNResult{{FinalRecipient: "user@forward.example", Action: "failed", Status: "5.2.2"}}}})
	waitFor(t, "matched DSN", func() bool { return e.tq.sv.incomingStats.matched.Load() == 1 })
	if r := e.retiredByAddr(id)["user@a.example"]; r.RemoteDSN != "failed 5.2.2" {
		t.Errorf("remote DSN %q", r.RemoteDSN)
	}
	// 5.2.2 (mailbox full) is no reason to suppress the address.
	if _, ok := e.tq.sv.q.suppressed("mjl", "user@a.example"); ok {
		t.Errorf("address suppressed after a full mailbox")
	}
}

// TestIncomingWebhook: a delivery to an account with an incoming webhook
// is posted with the message's details and a DSN's results; accounts
// without one get nothing.
func TestIncomingWebhook(t *testing.T) {
	hs := newRawHookServer(t)
	slice := testSlice()
	slice.Delivery.WebhookAllowPrivate = true
	slice.Accounts[0].Webhooks = []config.QueueWebhook{{Kind: "incoming", URL: hs.URL + "/in", Authorization: "Bearer in"}}
	tq := openTestQueue(t, mkdir(t), slice, newFakeStore(), nil)
	send := storeEvents(t, tq)
	received := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
	send(&ipc.IncomingDelivery{Account: "other", Mailbox: "INBOX", MailFrom: "a@example.net", Rcpt: "other@example.org", Size: 10, Received: received.UnixNano()})
	send(&ipc.IncomingDelivery{Account: "mjl", Mailbox: "Lists/moxd", MailFrom: "a@example.net", Rcpt: "mjl+list@example.org",
		MessageID: "<m1@example.net>", Subject: "héllo", From: "a@example.net", Size: 1234, Received: received.UnixNano()})
	send(&ipc.IncomingDelivery{Account: "mjl", Mailbox: "INBOX", Rcpt: "mjl@example.org", Size: 2000, Received: received.UnixNano(),
		DSN: &ipc.IncomingDSN{Results: []ipc.DSNResult{{FinalRecipient: "x@example.net", Action: "failed", Status: "5.1.1", Diagnostic: "550 no"}}}})
	waitFor(t, "incoming events posted", func() bool { return len(hs.events("incoming")) == 2 })
	l := hs.events("incoming")
	if l[0]["mailbox"] == "INBOX" {
		l[0], l[1] = l[1], l[0]
	}
	p := l[0]
	if p["from"] != "a@example.net" || p["to"] != "mjl+list@example.org" || p["mailFrom"] != "a@example.net" || p["subject"] != "héllo" ||
		p["messageID"] != "<m1@example.net>" || p["mailbox"] != "Lists/moxd" || p["size"] != float64(1234) ||
		p["received"] != "2026-11-03T10:00:00Z" || p["dsn"] != nil {
		t.Errorf("incoming event %v", p)
	}
	d, _ := l[1]["dsn"].(map[string]any)
	res, _ := d["results"].([]any)
	if len(res) != 1 || res[0].(map[string]any)["recipient"] != "x@example.net" || res[0].(map[string]any)["status"] != "5.1.1" {
		t.Errorf("incoming event of a DSN %v", l[1])
	}
	hs.mu.Lock()
	auth := hs.auth[0]
	hs.mu.Unlock()
	if auth != "Bearer in" {
		t.Errorf("authorization %q", auth)
	}
	if n := tq.sv.incomingStats.hooks.Load(); n != 2 {
		t.Errorf("%d incoming webhook events, want 2", n)
	}
	waitFor(t, "retired webhook events", func() bool {
		r, _ := tq.sv.q.Hooks("mjl", true, 0)
		return len(r) == 2 && r[0].Posted && r[0].Event == "incoming"
	})
	if r, _ := tq.sv.q.Hooks("other", true, 0); len(r) != 0 {
		t.Errorf("events for an account without webhook: %+v", r)
	}
}
