package queue

// Test data (moxctl gentestdata, testdata/upgrade): a queue directory
// written with the code moxd-queue runs, without the role around it.
// Submitted messages take the path a Submit takes after its checks (header
// scan, X-Moxd-Extra fields taken out, the file written, fsynced, linked
// and committed); the local retry takes LocalRetry's path and then one
// delivery attempt's outcome. The clock is fixed, so every run writes the
// same records.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"moxd/internal/config"
	"moxd/internal/ipc"
	"moxd/internal/mailproto/mtasts"
)

// TestData says what GenTestData wrote.
type TestData struct {
	Messages    int // message records
	Recipients  int // recipient records, queued or failed
	Evaluations int // DMARC evaluations in reports.db
	Retired     int // retired recipients
	Hooks       int // webhook events waiting
}

// testSubmission is a submitted message of the test data.
type testSubmission struct {
	account, mailFrom string
	rcpts             []Recipient
	msg               string
	requireTLS        bool
	ret               uint8
	envID             string
	release           time.Duration // FUTURERELEASE after now
}

var testSubmissions = []testSubmission{
	{
		account: "alice", mailFrom: "alice@example.com",
		rcpts: []Recipient{
			{Address: "carol@example.net", Notify: ipc.NotifyFailure | ipc.NotifyDelay, ORcpt: "rfc822;carol@example.net"},
			{Address: "dave@example.org"},
		},
		msg: "From: Alice <alice@example.com>\r\nTo: carol@example.net, dave@example.org\r\nSubject: queued for two\r\n" +
			"Message-ID: <q1@example.com>\r\nX-Moxd-Extra-Campaign: spring\r\nX-Moxd-Extra-Customer-ID: 42\r\n\r\nTwo recipients, extra data.\r\n",
		requireTLS: true, ret: ipc.RetHdrs, envID: "env-q1",
	},
	{
		account: "bob", mailFrom: "bob@example.com",
		rcpts: []Recipient{{Address: "erin@example.net"}},
		msg: "From: bob@example.com\r\nTo: erin@example.net\r\nSubject: later\r\nMessage-ID: <q2@example.com>\r\n" +
			"TLS-Required: No\r\n\r\nReleased in two days.\r\n",
		release: 48 * time.Hour,
	},
	{
		account: "alice", mailFrom: "alice+lists@example.com",
		rcpts: []Recipient{{Address: "list@lists.example.org"}},
		msg:   "From: alice@example.com\r\nTo: list@lists.example.org\r\nSubject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <q3@example.com>\r\n\r\nHello list.\r\n",
	},
}

// GenTestData writes a queue into dir, a new or empty directory, with the
// clock at now: three submitted messages (one with two recipients, DSN
// parameters and X-Moxd-Extra fields, one released later), a local retry
// after one attempt (one recipient delivered, one waiting for its next
// attempt, one failed for good), two DMARC evaluations, and the outbound
// records of schema 2: an attempt with its history, a retired
// recipient, webhook events, a suppression entry, a hold rule, a cached
// MTA-STS policy and a TLS result.
func GenTestData(dir string, now time.Time) (TestData, error) {
	var td TestData
	log := slog.New(slog.DiscardHandler)
	clock := func() time.Time { return now }
	q, err := openQueue(dir, log, clock)
	if err != nil {
		return td, err
	}
	defer q.Close()
	ctx := context.Background()
	prefix := func(client, with, id string) []byte {
		return []byte(fmt.Sprintf("Received: from %s by mail.example.com (moxd) with %s id %s; %s\r\n", client, with, id, now.Format(time.RFC1123Z)))
	}
	for i, s := range testSubmissions {
		if err := genSubmission(q, s, prefix("client.example.com", "ESMTPSA", fmt.Sprintf("s%d", i+1)), now); err != nil {
			return td, fmt.Errorf("submission %d: %w", i+1, err)
		}
	}

	// A local retry: smtp's body file, copied as LocalRetry does.
	src := filepath.Join(q.tmpDir, "body")
	body := "From: someone@example.net\r\nTo: alice@example.com, bob@example.com, gone@example.com\r\nSubject: retry\r\nMessage-ID: <r1@example.net>\r\n\r\nStore was busy.\r\n"
	if err := os.WriteFile(src, []byte(body), fileMode); err != nil {
		return td, err
	}
	f, err := os.Open(src)
	if err != nil {
		return td, err
	}
	tmp, size, err := copyRegularFile(ctx, q.tmpDir, prefix("mx.example.net", "ESMTPS", "r1"), f, DefaultMaxMessage)
	f.Close()
	os.Remove(src)
	if err != nil {
		return td, err
	}
	delays := DefaultRetryDelays()
	id, err := q.addMessage(&newMessage{
		msg:   Message{MailFrom: "someone@example.net", LocalOnly: true, Received: now.Add(-time.Minute)},
		rcpts: []Recipient{{Address: "alice@example.com"}, {Address: "bob@example.com"}, {Address: "gone@example.com"}},
		tmp:   tmp,
		size:  size,
		first: now.Add(delays[0]),
	})
	if err != nil {
		os.Remove(tmp)
		return td, fmt.Errorf("local retry: %w", err)
	}
	outs := []outcome{
		{Seq: 0, Delivered: true},
		{Seq: 1, Error: "account over quota"},
		{Seq: 2, Permanent: true, Error: "no such recipient"},
	}
	if _, err := q.recordAttempt(id, outs, now.Add(delays[0]), delays); err != nil {
		return td, fmt.Errorf("local retry attempt: %w", err)
	}

	// Outbound (schema 2): an attempt on the first submission (one
	// recipient delivered and retired, one deferred, both with their
	// attempt, a webhook event each), a suppression entry, a hold rule
	// and a cached MTA-STS policy.
	ds := newDeliverySettings(config.QueueDelivery{})
	st := &settings{accounts: map[string]config.QueueAccount{"alice": {Name: "alice", Webhooks: []config.QueueWebhook{{Kind: "outgoing", URL: "https://hooks.example.com/moxd"}}}}}
	m1, rcpts1, err := q.loadMessage(1)
	if err != nil {
		return td, err
	}
	plans := []outcome{
		{Seq: 0, Error: "451 4.3.0 try again later", Status: "4.3.0", Host: "mx.example.net", TLS: "TLS 1.3 TLS_AES_128_GCM_SHA256, opportunistic policy"},
		{Seq: 1, Delivered: true, final: true, Error: "250 2.0.0 ok", Status: "2.0.0", Host: "mx.example.org"},
	}
	var hooks []*Hook
	for i, o := range plans {
		event := "delayed"
		if o.Delivered {
			event = "delivered"
		}
		hooks = append(hooks, newOutgoingHook(st, m1, rcpts1[i], o, event, false, now))
	}
	if err := q.recordOutbound(1, plans, now, ds, nil, hooks); err != nil {
		return td, fmt.Errorf("outbound attempt: %w", err)
	}
	if err := q.addSuppression("alice", "gone@example.net", "550 5.1.1 no such user", false); err != nil {
		return td, err
	}
	err = q.do(func(w *wtx) error {
		id, err := nextID(w.tx, metaNextrule)
		if err != nil {
			return err
		}
		h := &HoldRule{ID: id, RecipientDomain: "held.example"}
		if err := w.tx.Bucket([]byte(bucketHoldRules)).Put(key64(id), h.marshal()); err != nil {
			return err
		}
		pol, err := mtasts.ParsePolicy([]byte("version: STSv1\nmode: enforce\nmx: mx.example.net\nmax_age: 86400\n"))
		if err != nil {
			return err
		}
		r := newRecord()
		r.string("20250601")
		r.time(now)
		r.string(pol.String())
		return w.tx.Bucket([]byte(bucketMTASTS)).Put([]byte("example.net"), r.b)
	})
	if err != nil {
		return td, err
	}

	rep, err := openReports(dir, log)
	if err != nil {
		return td, err
	}
	rep.addTLS(now, "example.net", tlsPolicyNoPolicy, "mx.example.net", tlsResultSuccess, "")
	for i, domain := range []string{"example.net", "example.org"} {
		rep.add(&ipc.DMARCEval{
			PolicyDomain: domain, HeaderFrom: domain, EnvelopeFrom: "bounce." + domain, EnvelopeTo: "example.com",
			SourceIP: fmt.Sprintf("192.0.2.%d", 10+i), Time: now.Add(-time.Duration(i+1) * time.Hour).Unix(),
			Disposition: "none", P: "none", ADKIM: "r", ASPF: "r", Pct: 100, FO: "0", HasRUA: true,
			Result: "pass", DKIMAligned: true, SPFResult: "pass", SPFDomain: "bounce." + domain, SPFScope: "mfrom",
			DKIM: []ipc.DMARCDKIM{{Domain: domain, Selector: "s1", Result: "pass"}},
		})
	}
	rep.close()
	td.Evaluations = int(rep.stored.Load())
	td.Messages = int(q.messages.Load())
	td.Recipients = int(q.recipients.Load())
	q.db.View(func(tx *bolt.Tx) error {
		td.Retired = tx.Bucket([]byte(bucketRetired)).Stats().KeyN
		td.Hooks = tx.Bucket([]byte(bucketHooks)).Stats().KeyN
		return nil
	})
	return td, q.Close()
}

// genSubmission queues s as Submit does once the checks passed.
func genSubmission(q *Queue, s testSubmission, prefix []byte, now time.Time) error {
	src, err := createTemp(q.tmpDir, "spool")
	if err != nil {
		return err
	}
	defer os.Remove(src.Name())
	defer src.Close()
	if _, err := src.WriteString(s.msg); err != nil {
		return err
	}
	size := int64(len(s.msg))
	h, err := scanHeader(src, size)
	if err != nil {
		return err
	}
	extra, drop, err := h.extra()
	if err != nil {
		return err
	}
	msg := Message{
		Account:   s.account,
		MailFrom:  s.mailFrom,
		Ret:       s.ret,
		EnvID:     s.envID,
		Extra:     extra,
		MessageID: recordString(h.first("Message-ID")),
		Subject:   recordString(h.first("Subject")),
	}
	switch {
	case s.requireTLS:
		msg.RequireTLS = RequireTLSYes
	case h.tlsRequiredNo():
		msg.RequireTLS = RequireTLSNo
	}
	tmp, n, err := writeQueueFile(q.tmpDir, prefix, src, size, drop)
	if err != nil {
		return err
	}
	_, err = q.addMessage(&newMessage{msg: msg, rcpts: s.rcpts, tmp: tmp, size: n, first: now.Add(s.release)})
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
