package queue

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	gosmtp "github.com/emersion/go-smtp"
	bolt "go.etcd.io/bbolt"

	"moxd/internal/config"
	"moxd/internal/ipc"
	"moxd/internal/queue/queueclient"
)

// End-to-end tests of the deliverer: messages submitted through the IPC
// API are delivered to go-smtp servers on loopback, found through a test
// DNS server; DSNs go to the sender's account through the fake store.

const origID = "<1@example.org>" // Message-ID of testMessage

// TestOutboundDirect: one transaction per recipient domain, the data as
// queued, retired records per recipient, nothing left in the queue.
func TestOutboundDirect(t *testing.T) {
	mx := startSMTP(t, smtpOpts{})
	e := newOutEnv(t, mx.port, nil)
	msg := testMessage("mjl@example.org")
	id := e.send(queueclient.Envelope{}, msg, "x@a.example", "y@a.example", "w@b.example", "z@a.example")
	e.waitGone(id)

	txs := mx.transactions()
	if len(txs) != 2 {
		t.Fatalf("%d transactions, want one per domain (2): %+v", len(txs), txs)
	}
	slices.SortFunc(txs, func(a, b smtpTx) int { return len(b.rcpts) - len(a.rcpts) })
	if got := strings.Join(txs[0].rcpts, " "); got != "x@a.example y@a.example z@a.example" {
		t.Errorf("a.example transaction has recipients %q", got)
	}
	if got := strings.Join(txs[1].rcpts, " "); got != "w@b.example" {
		t.Errorf("b.example transaction has recipients %q", got)
	}
	for _, tx := range txs {
		if tx.from != "mjl@example.org" {
			t.Errorf("MAIL FROM %q", tx.from)
		}
		if tx.data != msg {
			t.Errorf("data differs from the submitted message:\n got %q\nwant %q", tx.data, msg)
		}
	}
	mx.set(func(s *smtpServer) {
		if s.mails != 2 || len(s.rcpts) != 4 {
			t.Errorf("server saw %d MAIL and %d RCPT, want 2 and 4", s.mails, len(s.rcpts))
		}
	})
	if ids := e.messageIDs(); len(ids) != 0 {
		t.Errorf("messages left in the queue: %v", ids)
	}
	ret := e.retiredByAddr(id)
	if len(ret) != 4 {
		t.Fatalf("%d retired records, want 4: %+v", len(ret), ret)
	}
	for addr, r := range ret {
		wantHost := "mx.a.example"
		if strings.HasSuffix(addr, "@b.example") {
			wantHost = "mx.b.example"
		}
		if !r.Delivered || r.LastHost != wantHost || r.Transport != "" || r.Account != "mjl" || r.Attempts != 0 ||
			!strings.HasPrefix(r.LastError, "250") || r.MessageID != origID {
			t.Errorf("retired record of %s: %+v", addr, r)
		}
	}
	if len(e.tq.store.deliveries()) != 0 {
		t.Errorf("store got deliveries (a DSN?): %+v", e.tq.store.deliveries())
	}
	e.tq.verifyStopped()
}

// TestOutboundUniqueMailFrom: with unique_mail_from, MAIL FROM carries
// the message's id after the domain's separator.
func TestOutboundUniqueMailFrom(t *testing.T) {
	mx := startSMTP(t, smtpOpts{})
	e := newOutEnv(t, mx.port, func(s *config.QueueSlice) { s.Accounts[0].UniqueMailFrom = true })
	var ids []string
	for range 2 {
		release := e.tq.sv.now().Add(time.Hour)
		id := e.send(queueclient.Envelope{FutureRelease: release}, testMessage("mjl@example.org"), "you@a.example")
		m, _, err := e.tq.sv.q.loadMessage(id)
		if err != nil {
			t.Fatal(err)
		}
		if m.FromID == "" || slices.Contains(ids, m.FromID) {
			t.Fatalf("message id for MAIL FROM %q, earlier %q", m.FromID, ids)
		}
		ids = append(ids, m.FromID)
	}
	e.advance(time.Hour + time.Second)
	waitFor(t, "both delivered", func() bool { return len(mx.transactions()) == 2 })
	var got []string
	for _, tx := range mx.transactions() {
		got = append(got, tx.from)
	}
	slices.Sort(got)
	want := []string{"mjl+" + ids[0] + "@example.org", "mjl+" + ids[1] + "@example.org"}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("MAIL FROM %q, want %q", got, want)
	}
}

// TestOutboundConnectionReuse: messages to one destination share a
// connection, and a pooled connection the server closed meanwhile costs
// no attempt.
func TestOutboundConnectionReuse(t *testing.T) {
	mx := startSMTP(t, smtpOpts{})
	e := newOutEnv(t, mx.port, func(s *config.QueueSlice) {
		// One delivery at a time to the destination: each finds the
		// previous one's connection idle in the pool.
		s.Delivery.DestinationConcurrency = 1
	})
	var ids []uint64
	for i := range 5 {
		ids = append(ids, e.send(queueclient.Envelope{}, testMessage("mjl@example.org"), fmt.Sprintf("r%d@a.example", i)))
	}
	for _, id := range ids {
		e.waitGone(id)
	}
	if n, c := len(mx.transactions()), mx.accepted.Load(); n != 5 || c != 1 {
		t.Fatalf("%d transactions on %d connections, want 5 on 1", n, c)
	}

	// The server ends the idle session; the next delivery finds out and
	// connects again, within the same attempt.
	mx.dropConns()
	id := e.send(queueclient.Envelope{}, testMessage("mjl@example.org"), "late@a.example")
	waitFor(t, "delivery or failed attempt", func() bool {
		rc := e.queued(id)
		return rc == nil || rc[0].Attempts > 0
	})
	if rc := e.queued(id); rc != nil {
		t.Fatalf("delivery over a connection the server had closed counted as a failed attempt: %+v", rc[0])
	}
	if r := e.retired(id)[0]; r == nil || !r.Delivered || r.Attempts != 0 {
		t.Fatalf("retired record %+v", r)
	}
	if n, c := len(mx.transactions()), mx.accepted.Load(); n != 6 || c != 2 {
		t.Fatalf("%d transactions on %d connections, want 6 on 2", n, c)
	}
}

// TestOutboundPermanentFailure: a 550 5.1.1 fails the recipient at once
// with a DSN to the sender, and puts the address on the account's
// suppression list, so the next message to it fails without a RCPT.
func TestOutboundPermanentFailure(t *testing.T) {
	mx := startSMTP(t, smtpOpts{})
	mx.set(func(s *smtpServer) {
		s.rcptErr = func(to string) error {
			if to == "gone@a.example" {
				return smtpErr(550, [3]int{5, 1, 1}, "no such user here")
			}
			return nil
		}
	})
	e := newOutEnv(t, mx.port, nil)
	id := e.send(queueclient.Envelope{}, testMessage("mjl@example.org"), "gone@a.example", "ok@a.example")
	e.waitGone(id)
	ds := e.waitDSNs(1)
	checkDSN(t, ds[0], origID, "failed", map[string]string{"gone@a.example": "5.1.1"})
	r := ds[0].report.Recipients[0]
	if !strings.Contains(r.Diagnostic, "550 5.1.1") || r.RemoteMTA != "mx.a.example" {
		t.Errorf("DSN diagnostic %q, remote MTA %q", r.Diagnostic, r.RemoteMTA)
	}
	if ds[0].report.OriginalMessageID != strings.Trim(origID, "<>") {
		t.Errorf("DSN returns message %q", ds[0].report.OriginalMessageID)
	}
	ret := e.retiredByAddr(id)
	if g, o := ret["gone@a.example"], ret["ok@a.example"]; g == nil || g.Delivered || g.LastStatus != "5.1.1" || g.Attempts != 1 || o == nil || !o.Delivered {
		t.Fatalf("retired records %+v, %+v", g, o)
	}
	if s, ok := e.tq.sv.q.suppressed("mjl", "Gone@a.example"); !ok || s.Manual || !strings.Contains(s.Reason, "5.1.1") {
		t.Fatalf("address not on mjl's suppression list: %+v", s)
	}

	seen := len(mx.rcptsSeen())
	id2 := e.send(queueclient.Envelope{}, testMessage("mjl@example.org"), "gone@a.example")
	e.waitGone(id2)
	if n := len(mx.rcptsSeen()); n != seen {
		t.Errorf("server saw %d more RCPTs for a suppressed address", n-seen)
	}
	g := e.retired(id2)[0]
	if g == nil || g.Delivered || g.LastStatus != "5.1.1" || !strings.Contains(g.LastError, "suppression list") {
		t.Fatalf("retired record of the suppressed recipient: %+v", g)
	}
	checkDSN(t, e.waitDSNs(2)[1], origID, "failed", map[string]string{"gone@a.example": "5.1.1"})
}

// TestOutboundRetry: a 451 is retried after first_retry, then after
// twice that; the delayed DSN goes out once, after delayed_dsn_after
// attempts, and the failure DSN after max_attempts.
func TestOutboundRetry(t *testing.T) {
	mx := startSMTP(t, smtpOpts{})
	mx.set(func(s *smtpServer) {
		s.rcptErr = func(to string) error { return smtpErr(451, [3]int{4, 3, 0}, "try again later") }
	})
	e := newOutEnv(t, mx.port, nil)
	id := e.send(queueclient.Envelope{}, testMessage("mjl@example.org"), "busy@a.example")

	rc := e.waitAttempts(id, 1)[0]
	if rc.LastStatus != "4.3.0" || rc.LastHost != "mx.a.example" || !strings.Contains(rc.LastError, "try again later") || rc.DelayedSent {
		t.Fatalf("after attempt 1: %+v", rc)
	}
	if d := rc.NextAttempt.Sub(rc.LastAttempt); d != time.Hour {
		t.Fatalf("next attempt %v after the first, want first_retry (1h)", d)
	}
	if ids := e.messageIDs(); len(ids) != 1 {
		t.Fatalf("queue holds %v after one failed attempt, want only the message (no DSN yet)", ids)
	}

	e.advance(time.Hour)
	rc = e.waitAttempts(id, 2)[0]
	if !rc.DelayedSent {
		t.Fatalf("delayed DSN not recorded as sent after attempt 2: %+v", rc)
	}
	if d := rc.NextAttempt.Sub(rc.LastAttempt); d != 2*time.Hour {
		t.Fatalf("next attempt %v after the second, want 2h", d)
	}
	checkDSN(t, e.waitDSNs(1)[0], origID, "delayed", map[string]string{"busy@a.example": "4.3.0"})

	e.advance(2 * time.Hour)
	e.waitGone(id)
	ds := e.waitDSNs(2)
	checkDSN(t, ds[1], origID, "failed", map[string]string{"busy@a.example": "4.3.0"})
	if n := len(mx.rcptsSeen()); n != 3 {
		t.Errorf("server saw %d RCPTs, want one per attempt (3)", n)
	}
	if r := e.retired(id)[0]; r == nil || r.Delivered || r.Attempts != 3 || r.LastStatus != "4.3.0" {
		t.Errorf("retired record %+v", r)
	} else if len(r.History) != 3 || !r.History[0].Time.Before(r.History[1].Time) || !r.History[1].Time.Before(r.History[2].Time) ||
		r.History[2].Host != "mx.a.example" || r.History[2].Status != "4.3.0" || r.History[2].Delivered {
		// Every attempt is kept with the recipient and its retired record.
		t.Errorf("attempt history %+v", r.History)
	}
	// A temporary failure is no reason to suppress the address.
	if _, ok := e.tq.sv.q.suppressed("mjl", "busy@a.example"); ok {
		t.Errorf("address suppressed after temporary failures")
	}
}

// TestOutboundNotify: NOTIFY=NEVER gets no DSN, NOTIFY=SUCCESS through a
// server without DSN a "relayed" one, and a DSN that fails gets none.
func TestOutboundNotify(t *testing.T) {
	mx := startSMTP(t, smtpOpts{})
	mx.set(func(s *smtpServer) {
		s.rcptErr = func(to string) error {
			if strings.HasPrefix(to, "gone") {
				return smtpErr(550, [3]int{5, 1, 1}, "no such user")
			}
			return nil
		}
	})
	withDSN := startSMTP(t, smtpOpts{dsn: true})
	e := newOutEnv(t, mx.port, func(s *config.QueueSlice) {
		s.Transports = []config.QueueTransport{{Name: "dsnrelay", Kind: config.TransportSMTP, Host: "127.0.0.1", Port: withDSN.port}}
		s.Routes = []config.QueueRoute{{ToDomains: []string{"b.example"}, Transport: "dsnrelay"}}
	})

	t.Run("never", func(t *testing.T) {
		e := e.with(t)
		id := e.sendRcpts(queueclient.Envelope{}, testMessage("mjl@example.org"), []queueclient.Recipient{{Address: "gone1@a.example", Notify: ipc.NotifyNever}})
		e.waitGone(id)
		if ids := e.messageIDs(); len(ids) != 0 {
			t.Fatalf("DSN queued for NOTIFY=NEVER: %v", ids)
		}
		if r := e.retired(id)[0]; r == nil || r.Delivered || r.LastStatus != "5.1.1" {
			t.Fatalf("retired record %+v", r)
		}
	})

	t.Run("success relayed", func(t *testing.T) {
		e := e.with(t)
		id := e.sendRcpts(queueclient.Envelope{}, testMessage("mjl@example.org"), []queueclient.Recipient{{Address: "ok@a.example", Notify: ipc.NotifySuccess | ipc.NotifyFailure}})
		e.waitGone(id)
		checkDSN(t, e.waitDSNs(1)[0], origID, "relayed", map[string]string{"ok@a.example": "2.0.0"})
	})

	t.Run("success passed on", func(t *testing.T) {
		e := e.with(t)
		// A server with DSN gets the request and owes the notice
		// itself: no "relayed" DSN from us.
		id := e.sendRcpts(queueclient.Envelope{EnvID: "env-7"}, testMessage("mjl@example.org"), []queueclient.Recipient{{Address: "ok@b.example", Notify: ipc.NotifySuccess, ORcpt: "rfc822;ok@b.example"}})
		e.waitGone(id)
		if ids := e.messageIDs(); len(ids) != 0 {
			t.Fatalf("DSN queued although the server takes DSN requests: %v", ids)
		}
		txs := withDSN.transactions()
		if len(txs) != 1 || len(txs[0].rcptOpts) != 1 || !slices.Equal(txs[0].rcptOpts[0].Notify, []gosmtp.DSNNotify{gosmtp.DSNNotifySuccess}) ||
			txs[0].rcptOpts[0].OriginalRecipient != "ok@b.example" || txs[0].mailOpts.EnvelopeID != "env-7" {
			t.Fatalf("DSN parameters not passed on: %+v", txs)
		}
		if n := len(e.dsns()); n != 1 {
			t.Fatalf("%d DSNs, want the earlier one only", n)
		}
	})

	t.Run("dsn fails", func(t *testing.T) {
		e := e.with(t)
		// A DSN (null sender) to a remote address that is refused.
		q := e.tq.sv.q
		f, err := createTemp(q.tmpDir, "dsn")
		if err != nil {
			t.Fatal(err)
		}
		body := "From: postmaster@localhost\r\nTo: gone2@a.example\r\nSubject: delivery status\r\nMessage-ID: <d1@localhost>\r\n\r\nReport.\r\n"
		f.WriteString(body)
		f.Sync()
		f.Close()
		id, err := q.addMessage(&newMessage{msg: Message{DSN: true, MessageID: "<d1@localhost>"}, rcpts: []Recipient{{Address: "gone2@a.example"}}, tmp: f.Name(), size: int64(len(body)), first: e.tq.sv.now()})
		if err != nil {
			t.Fatal(err)
		}
		e.waitGone(id)
		if ids := e.messageIDs(); len(ids) != 0 {
			t.Fatalf("DSN queued about a DSN: %v", ids)
		}
		if r := e.retired(id)[0]; r == nil || r.Delivered || r.LastStatus != "5.1.1" {
			t.Fatalf("retired record %+v", r)
		}
		// The server refused the only recipient: no transaction, but it
		// saw the RCPT.
		if !slices.Contains(mx.rcptsSeen(), "gone2@a.example") {
			t.Fatalf("server never saw the DSN's recipient")
		}
	})
}

// TestOutboundRcptMax: recipients beyond the server's LIMITS RCPTMAX, and
// those refused with 452, go in further transactions of the same attempt.
func TestOutboundRcptMax(t *testing.T) {
	t.Run("rcptmax", func(t *testing.T) {
		mx := startSMTP(t, smtpOpts{rcptMax: 2})
		e := newOutEnv(t, mx.port, nil)
		rcpts := []string{"r1@a.example", "r2@a.example", "r3@a.example", "r4@a.example", "r5@a.example"}
		id := e.send(queueclient.Envelope{}, testMessage("mjl@example.org"), rcpts...)
		e.waitGone(id)
		txs := mx.transactions()
		var got []string
		for _, tx := range txs {
			got = append(got, strings.Join(tx.rcpts, ","))
		}
		if strings.Join(got, " ") != "r1@a.example,r2@a.example r3@a.example,r4@a.example r5@a.example" {
			t.Fatalf("transactions with recipients %q, want three of at most 2", got)
		}
		if c := mx.accepted.Load(); c != 1 {
			t.Errorf("%d connections, want 1", c)
		}
		for _, r := range e.retired(id) {
			if !r.Delivered || r.Attempts != 0 {
				t.Errorf("retired %+v", r)
			}
		}
	})

	t.Run("452", func(t *testing.T) {
		mx := startSMTP(t, smtpOpts{})
		var refused atomic.Bool
		mx.set(func(s *smtpServer) {
			s.rcptErr = func(to string) error {
				if to == "r2@a.example" && !refused.Swap(true) {
					return smtpErr(452, [3]int{4, 5, 3}, "too many recipients")
				}
				return nil
			}
		})
		e := newOutEnv(t, mx.port, nil)
		id := e.send(queueclient.Envelope{}, testMessage("mjl@example.org"), "r1@a.example", "r2@a.example", "r3@a.example")
		e.waitGone(id)
		txs := mx.transactions()
		if len(txs) != 2 || strings.Join(txs[0].rcpts, ",") != "r1@a.example,r3@a.example" || strings.Join(txs[1].rcpts, ",") != "r2@a.example" {
			t.Fatalf("transactions %+v, want r1,r3 then r2", txs)
		}
		if r := e.retiredByAddr(id)["r2@a.example"]; r == nil || !r.Delivered || r.Attempts != 0 {
			t.Fatalf("retired record of r2: %+v", r)
		}
	})
}

// TestOutboundDNS: a null MX and a domain that does not exist fail at
// once without a connection; SERVFAIL is temporary; a domain with only
// an address record is its own mail host.
func TestOutboundDNS(t *testing.T) {
	mx := startSMTP(t, smtpOpts{})
	e := newOutEnv(t, mx.port, nil,
		"nullmx.example. 300 IN MX 0 .",
		"nullmx.example. 300 IN A 127.0.0.1",
		"aonly.example. 300 IN A 127.0.0.1",
		"servfail.example. 300 IN MX 10 mx.a.example.",
	)
	e.dns.SetServFail("servfail.example")
	ndsn := 0
	for _, tc := range []struct {
		domain string
		status string
	}{
		{"nullmx.example", "5.1.10"},
		{"nx.example", "5.1.2"},
	} {
		t.Run(tc.domain, func(t *testing.T) {
			e := e.with(t)
			id := e.send(queueclient.Envelope{}, testMessage("mjl@example.org"), "u@"+tc.domain)
			e.waitGone(id)
			if r := e.retired(id)[0]; r == nil || r.Delivered || r.LastStatus != tc.status || r.Attempts != 1 {
				t.Fatalf("retired record %+v", r)
			}
			ndsn++
			checkDSN(t, e.waitDSNs(ndsn)[ndsn-1], origID, "failed", map[string]string{"u@" + tc.domain: tc.status})
			if c := mx.accepted.Load(); c != 0 {
				t.Fatalf("%d connections for a domain without mail", c)
			}
		})
	}
	t.Run("servfail", func(t *testing.T) {
		e := e.with(t)
		id := e.send(queueclient.Envelope{}, testMessage("mjl@example.org"), "u@servfail.example")
		rc := e.waitAttempts(id, 1)[0]
		if rc.LastStatus != "4.4.3" || !strings.Contains(rc.LastError, "SERVFAIL") {
			t.Fatalf("recipient after SERVFAIL: %+v", rc)
		}
		if c := mx.accepted.Load(); c != 0 {
			t.Fatalf("%d connections after SERVFAIL", c)
		}
	})
	t.Run("address record only", func(t *testing.T) {
		e := e.with(t)
		id := e.send(queueclient.Envelope{}, testMessage("mjl@example.org"), "u@aonly.example")
		e.waitGone(id)
		if r := e.retired(id)[0]; r == nil || !r.Delivered || r.LastHost != "aonly.example" {
			t.Fatalf("retired record %+v", r)
		}
		if txs := mx.transactions(); len(txs) != 1 || txs[0].rcpts[0] != "u@aonly.example" {
			t.Fatalf("transactions %+v", txs)
		}
	})
}

// TestOutboundDKIM: submitted messages are signed with every selector of
// the From header's domain, whatever the MAIL FROM; the signatures
// verify at the receiver. Without keys, submissions are refused for now.
func TestOutboundDKIM(t *testing.T) {
	mx := startSMTP(t, smtpOpts{})
	keys := newFakeKeys()
	txt := map[string]string{
		"s1._domainkey.example.org": keys.add(t, "example.org", "s1", "ed25519"),
		"s2._domainkey.example.org": keys.add(t, "example.org", "s2", "rsa2048"),
		"c1._domainkey.example.com": keys.add(t, "example.com", "c1", "ed25519"),
	}
	adjust := func(s *config.QueueSlice) {
		s.Domains = append(s.Domains, config.AddrDomain{Name: "example.com"})
		s.Accounts[0].Addresses = append(s.Accounts[0].Addresses, "mjl@example.com")
		s.DKIM = map[string][]config.QueueDKIM{
			"example.org": {{Selector: "s1", Algorithm: "ed25519"}, {Selector: "s2", Algorithm: "rsa2048"}},
			"example.com": {{Selector: "c1", Algorithm: "ed25519"}},
		}
	}
	e := newOutEnv(t, mx.port, adjust)
	e.tq.keysUp(keys)
	lookup := func(name string) ([]string, error) {
		if r, ok := txt[strings.TrimSuffix(name, ".")]; ok {
			return []string{r}, nil
		}
		return nil, errors.New("no such record")
	}

	for _, tc := range []struct {
		from, mailFrom string
		want           string // domain/selector of the signatures
	}{
		{"mjl@example.org", "team@example.org", "example.org/s1 example.org/s2"},
		{"Team <team@example.org>", "mjl@example.org", "example.org/s1 example.org/s2"},
		{"Mjl <mjl@example.org>", "mjl@example.com", "example.org/s1 example.org/s2"},
		{"mjl@example.com", "mjl@example.org", "example.com/c1"},
	} {
		t.Run(tc.from+" "+tc.mailFrom, func(t *testing.T) {
			e := e.with(t)
			msg := testMessage(tc.from, "Date: Mon, 1 Jan 2024 00:00:00 +0000")
			n := len(mx.transactions())
			id := e.send(queueclient.Envelope{MailFrom: tc.mailFrom}, msg, "you@a.example")
			e.waitGone(id)
			txs := mx.transactions()
			if len(txs) != n+1 {
				t.Fatalf("%d transactions, want %d", len(txs), n+1)
			}
			tx := txs[n]
			if tx.from != tc.mailFrom {
				t.Errorf("MAIL FROM %q, want %q", tx.from, tc.mailFrom)
			}
			// The data is the DKIM-Signature fields, then the message as
			// submitted.
			sigs, ok := strings.CutSuffix(tx.data, msg)
			if !ok {
				t.Fatalf("data does not end with the submitted message:\n%s", tx.data)
			}
			hdr, err := mail.ReadMessage(strings.NewReader(sigs + "\r\n"))
			if err != nil {
				t.Fatalf("prepended lines %q: %v", sigs, err)
			}
			if len(hdr.Header) != 1 || len(hdr.Header["Dkim-Signature"]) != len(strings.Fields(tc.want)) {
				t.Fatalf("prepended lines are not just the signatures: %q", sigs)
			}
			vs, err := dkim.VerifyWithOptions(strings.NewReader(tx.data), &dkim.VerifyOptions{LookupTXT: lookup})
			if err != nil {
				t.Fatal(err)
			}
			if len(vs) != len(hdr.Header["Dkim-Signature"]) {
				t.Fatalf("%d verifications for %d signatures", len(vs), len(hdr.Header["Dkim-Signature"]))
			}
			for _, v := range vs {
				if v.Err != nil {
					t.Errorf("signature of %s does not verify: %v", v.Domain, v.Err)
				}
			}
			var got []string
			for _, sig := range hdr.Header["Dkim-Signature"] {
				tags := map[string]string{}
				for _, f := range strings.Split(sig, ";") {
					if k, v, ok := strings.Cut(f, "="); ok {
						tags[strings.TrimSpace(k)] = strings.Join(strings.Fields(v), "")
					}
				}
				got = append(got, tags["d"]+"/"+tags["s"])
			}
			slices.Sort(got)
			if strings.Join(got, " ") != tc.want {
				t.Errorf("signatures %q, want %q", got, tc.want)
			}
		})
	}

	t.Run("keys down", func(t *testing.T) {
		e := e.with(t)
		e.tq.mu.Lock()
		e.tq.keysConn = nil
		e.tq.mu.Unlock()
		before := e.messageIDs()
		_, err := e.trySend(queueclient.Envelope{}, testMessage("mjl@example.org"), "you@a.example")
		wantError(t, err, queueclient.ErrUnavailable, "DKIM", "try again later")
		if ids := e.messageIDs(); len(ids) != len(before) {
			t.Fatalf("message queued without signatures: %v", ids)
		}
		// A domain without selectors does not need keys.
		e2 := newOutEnv(t, mx.port, nil)
		id := e2.send(queueclient.Envelope{}, testMessage("mjl@example.org"), "you@a.example")
		e2.waitGone(id)
	})
}

// TestOutbound8BitMIME: for a server without 8BITMIME an 8-bit body is
// sent as quoted-printable; an 8-bit header cannot be, and a message that
// needs SMTPUTF8 cannot go to a server without it: both fail with a DSN.
func TestOutbound8BitMIME(t *testing.T) {
	mx := startSMTP(t, smtpOpts{hide8bit: true})
	e := newOutEnv(t, mx.port, nil)

	t.Run("body", func(t *testing.T) {
		e := e.with(t)
		body := "Grüße aus Köln.\r\nZweite Zeile: naïve café.\r\n"
		msg := "From: mjl@example.org\r\nTo: you@a.example\r\nSubject: 8bit\r\nMessage-ID: <1@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body
		id := e.send(queueclient.Envelope{EightBit: true}, msg, "you@a.example")
		e.waitGone(id)
		txs := mx.transactions()
		if len(txs) != 1 {
			t.Fatalf("%d transactions", len(txs))
		}
		tx := txs[0]
		if tx.mailOpts.Body != "" {
			t.Errorf("MAIL FROM with BODY=%s to a server without 8BITMIME", tx.mailOpts.Body)
		}
		for i := 0; i < len(tx.data); i++ {
			if tx.data[i] >= 0x80 {
				t.Fatalf("8-bit octet at %d of the data: %q", i, tx.data)
			}
		}
		m, err := mail.ReadMessage(strings.NewReader(tx.data))
		if err != nil {
			t.Fatal(err)
		}
		if cte := m.Header.Get("Content-Transfer-Encoding"); !strings.EqualFold(cte, "quoted-printable") {
			t.Fatalf("Content-Transfer-Encoding %q", cte)
		}
		dec, err := io.ReadAll(quotedprintable.NewReader(m.Body))
		if err != nil {
			t.Fatal(err)
		}
		if string(dec) != body {
			t.Fatalf("decoded body %q, want %q", dec, body)
		}
	})

	t.Run("body signed", func(t *testing.T) {
		// The 7-bit form is signed again: the signature made at
		// submission covered the 8-bit body.
		mx := startSMTP(t, smtpOpts{hide8bit: true})
		keys := newFakeKeys()
		txt := keys.add(t, "example.org", "s1", "ed25519")
		e := newOutEnv(t, mx.port, func(s *config.QueueSlice) {
			s.DKIM = map[string][]config.QueueDKIM{"example.org": {{Selector: "s1", Algorithm: "ed25519"}}}
		})
		e.tq.keysUp(keys)
		msg := "From: mjl@example.org\r\nTo: you@a.example\r\nSubject: 8bit\r\nMessage-ID: <2@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße.\r\n"
		id := e.send(queueclient.Envelope{EightBit: true}, msg, "you@a.example")
		e.waitGone(id)
		txs := mx.transactions()
		if len(txs) != 1 {
			t.Fatalf("%d transactions", len(txs))
		}
		lookup := func(name string) ([]string, error) {
			if strings.TrimSuffix(name, ".") == "s1._domainkey.example.org" {
				return []string{txt}, nil
			}
			return nil, errors.New("no such record")
		}
		vs, err := dkim.VerifyWithOptions(strings.NewReader(txs[0].data), &dkim.VerifyOptions{LookupTXT: lookup})
		if err != nil || len(vs) != 1 || vs[0].Err != nil {
			t.Fatalf("signature of the converted message: %+v, %v\n%s", vs, err, txs[0].data)
		}
		if !strings.Contains(txs[0].data, "quoted-printable") {
			t.Fatalf("message not converted:\n%s", txs[0].data)
		}
	})

	t.Run("header", func(t *testing.T) {
		e := e.with(t)
		msg := "From: mjl@example.org\r\nTo: you@a.example\r\nSubject: Grüße\r\nMessage-ID: <1@example.org>\r\n\r\nbody\r\n"
		mails := 0
		mx.set(func(s *smtpServer) { mails = s.mails })
		id := e.send(queueclient.Envelope{EightBit: true}, msg, "you@a.example")
		e.waitGone(id)
		if r := e.retired(id)[0]; r == nil || r.Delivered || r.LastStatus != "5.6.3" {
			t.Fatalf("retired record %+v", r)
		}
		checkDSN(t, e.waitDSNs(1)[0], origID, "failed", map[string]string{"you@a.example": "5.6.3"})
		mx.set(func(s *smtpServer) {
			if s.mails != mails {
				t.Errorf("transaction started for a message the server cannot take")
			}
		})
	})

	t.Run("smtputf8", func(t *testing.T) {
		e := e.with(t)
		id := e.send(queueclient.Envelope{SMTPUTF8: true}, testMessage("mjl@example.org"), "jürgen@a.example")
		e.waitGone(id)
		if r := e.retired(id)[0]; r == nil || r.Delivered || r.LastStatus != "5.6.7" {
			t.Fatalf("retired record %+v", r)
		}
		checkDSN(t, e.waitDSNs(2)[1], origID, "failed", map[string]string{"jürgen@a.example": "5.6.7"})
	})

	t.Run("smtputf8 not needed", func(t *testing.T) {
		// The client said SMTPUTF8, but the message is ASCII: it goes
		// to a server without SMTPUTF8 (RFC 6531 §3.4).
		e := e.with(t)
		id := e.send(queueclient.Envelope{SMTPUTF8: true}, testMessage("mjl@example.org"), "you@a.example")
		e.waitGone(id)
		if r := e.retired(id)[0]; r == nil || !r.Delivered {
			t.Fatalf("retired record %+v", r)
		}
	})
}

// TestOutboundSTARTTLS: opportunistic TLS is used when offered, and a
// failed handshake falls back to plaintext.
func TestOutboundSTARTTLS(t *testing.T) {
	cert, _ := testCert(t, "other.example") // not the MX name: unverified is fine
	t.Run("tls", func(t *testing.T) {
		mx := startSMTP(t, smtpOpts{tls: &tls.Config{Certificates: []tls.Certificate{cert}}})
		e := newOutEnv(t, mx.port, nil)
		id := e.send(queueclient.Envelope{}, testMessage("mjl@example.org"), "you@a.example")
		e.waitGone(id)
		if txs := mx.transactions(); len(txs) != 1 || !txs[0].tls {
			t.Fatalf("transactions %+v, want one over TLS", txs)
		}
	})
	t.Run("handshake fails", func(t *testing.T) {
		// The server speaks TLS 1.0 and 1.1 only; the client wants 1.2.
		mx := startSMTP(t, smtpOpts{tls: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}})
		e := newOutEnv(t, mx.port, nil)
		id := e.send(queueclient.Envelope{}, testMessage("mjl@example.org"), "you@a.example")
		e.waitGone(id)
		if txs := mx.transactions(); len(txs) != 1 || txs[0].tls {
			t.Fatalf("transactions %+v, want one in plaintext", txs)
		}
		if c := mx.accepted.Load(); c != 2 {
			t.Fatalf("%d connections, want 2 (TLS, then plaintext)", c)
		}
		if r := e.retired(id)[0]; r == nil || !r.Delivered || r.Attempts != 0 {
			t.Fatalf("retired %+v", r)
		}
	})
}

// TestOutboundRequireTLS: REQUIRETLS without DANE or MTA-STS fails before
// any connection; "TLS-Required: No" delivers where the domain's MTA-STS
// demands a verified certificate and the server's does not verify.
func TestOutboundRequireTLS(t *testing.T) {
	cert, _ := testCert(t, "wrong.example")
	mx := startSMTP(t, smtpOpts{tls: &tls.Config{Certificates: []tls.Certificate{cert}}})
	// b.example announces MTA-STS, but its policy cannot be fetched
	// (mta-sts.b.example does not exist): verified TLS is required.
	e := newOutEnv(t, mx.port, nil, `_mta-sts.b.example. 300 IN TXT "v=STSv1; id=20240101"`)

	t.Run("requiretls", func(t *testing.T) {
		e := e.with(t)
		id := e.send(queueclient.Envelope{RequireTLS: true}, testMessage("mjl@example.org"), "you@a.example")
		e.waitGone(id)
		if r := e.retired(id)[0]; r == nil || r.Delivered || r.LastStatus != "5.7.30" || !strings.Contains(r.LastError, "REQUIRETLS") {
			t.Fatalf("retired record %+v", r)
		}
		checkDSN(t, e.waitDSNs(1)[0], origID, "failed", map[string]string{"you@a.example": "5.7.30"})
		if c := mx.accepted.Load(); c != 0 {
			t.Fatalf("%d connections for a REQUIRETLS message without verifiable TLS", c)
		}
	})
	t.Run("mta-sts unverified", func(t *testing.T) {
		e := e.with(t)
		id := e.send(queueclient.Envelope{}, testMessage("mjl@example.org"), "you@b.example")
		rc := e.waitAttempts(id, 1)[0]
		if rc.LastStatus != "4.7.5" || !strings.Contains(rc.LastError, "mta-sts") {
			t.Fatalf("recipient %+v, want a TLS failure under the MTA-STS policy", rc)
		}
		if len(mx.transactions()) != 0 {
			t.Fatalf("delivered over TLS that did not verify")
		}
	})
	t.Run("tls-required no", func(t *testing.T) {
		e := e.with(t)
		id := e.send(queueclient.Envelope{}, testMessage("mjl@example.org", "TLS-Required: No"), "you@b.example")
		e.waitGone(id)
		if txs := mx.transactions(); len(txs) != 1 || !txs[0].tls || txs[0].rcpts[0] != "you@b.example" {
			t.Fatalf("transactions %+v, want one over (unverified) TLS", txs)
		}
	})
	t.Run("no reuse without tls-required no", func(t *testing.T) {
		e := e.with(t)
		// The unverified session of the previous message is idle in the
		// pool; a message without the header must not use it.
		id := e.send(queueclient.Envelope{}, testMessage("mjl@example.org"), "other@b.example")
		waitFor(t, "delivery or failed attempt", func() bool {
			rc := e.queued(id)
			return rc == nil || rc[0].Attempts > 0
		})
		if rc := e.queued(id); rc == nil || rc[0].LastStatus != "4.7.5" || len(mx.transactions()) != 1 {
			t.Fatalf("recipient %+v, transactions %+v: delivered on the unverified session of a TLS-Required: No message", rc, mx.transactions())
		}
	})
}

// TestOutboundRoutes: a route from the second attempt on sends through a
// smarthost; a transport set on the message skips the routes.
func TestOutboundRoutes(t *testing.T) {
	direct := startSMTP(t, smtpOpts{})
	direct.set(func(s *smtpServer) {
		s.rcptErr = func(string) error { return smtpErr(451, [3]int{4, 4, 0}, "greylisted") }
	})
	relay := startSMTP(t, smtpOpts{})
	e := newOutEnv(t, direct.port, func(s *config.QueueSlice) {
		s.Transports = []config.QueueTransport{
			{Name: "relay", Kind: config.TransportSMTP, Host: "127.0.0.1", Port: relay.port},
			{Name: "other", Kind: config.TransportSMTP, Host: "127.0.0.1", Port: relay.port},
		}
		s.Routes = []config.QueueRoute{{MinimumAttempts: 1, Transport: "relay"}}
	})

	id := e.send(queueclient.Envelope{}, testMessage("mjl@example.org"), "you@a.example")
	rc := e.waitAttempts(id, 1)[0]
	if rc.LastHost != "mx.a.example" || rc.LastStatus != "4.4.0" || len(relay.transactions()) != 0 {
		t.Fatalf("first attempt not direct: %+v", rc)
	}
	e.advance(time.Hour)
	e.waitGone(id)
	if txs := relay.transactions(); len(txs) != 1 || txs[0].rcpts[0] != "you@a.example" {
		t.Fatalf("relay transactions %+v", txs)
	}
	if r := e.retired(id)[0]; r == nil || !r.Delivered || r.Transport != "relay" || r.LastHost != "127.0.0.1" || r.Attempts != 1 {
		t.Fatalf("retired record %+v", r)
	}

	// Released in an hour; meanwhile an admin sets its transport.
	rcpts := len(direct.rcptsSeen())
	id = e.send(queueclient.Envelope{FutureRelease: e.tq.sv.now().Add(time.Hour)}, testMessage("mjl@example.org"), "you@b.example")
	setTransport(t, e.tq.sv.q, id, "other")
	e.advance(time.Hour + time.Second)
	e.waitGone(id)
	if r := e.retired(id)[0]; r == nil || !r.Delivered || r.Transport != "other" || r.Attempts != 0 {
		t.Fatalf("retired record %+v", r)
	}
	if len(relay.transactions()) != 2 || len(direct.rcptsSeen()) != rcpts {
		t.Fatalf("message with a transport went direct")
	}
}

// setTransport sets the transport of message id, as moxctl queue
// transport does.
func setTransport(t *testing.T, q *Queue, id uint64, name string) {
	t.Helper()
	err := q.do(func(w *wtx) error {
		m, _, err := readMessage(w.tx, id)
		if err != nil {
			return err
		}
		m.Transport = name
		return w.tx.Bucket([]byte(bucketMsgs)).Put(key64(id), m.marshal())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestOutboundSubmissionTransport: a submission smarthost with AUTH over
// verified STARTTLS; wrong credentials keep the message queued with an
// error naming the transport, until the admin fixes them.
func TestOutboundSubmissionTransport(t *testing.T) {
	cert, certPEM := testCert(t, "127.0.0.1")
	sub := startSMTP(t, smtpOpts{tls: &tls.Config{Certificates: []tls.Certificate{cert}}})
	sub.set(func(s *smtpServer) { s.user, s.password = "mjl", "secret" })
	slice := func(password string) func(s *config.QueueSlice) {
		return func(s *config.QueueSlice) {
			s.Delivery.TestCA = certPEM
			s.Transports = []config.QueueTransport{{Name: "sub", Kind: config.TransportSubmission, Host: "127.0.0.1", Port: sub.port, Username: "mjl", Password: password}}
			s.Routes = []config.QueueRoute{{Transport: "sub"}}
		}
	}
	e := newOutEnv(t, 1, slice("wrong"))
	id := e.send(queueclient.Envelope{}, testMessage("mjl@example.org"), "you@a.example")
	rc := e.waitAttempts(id, 1)[0]
	if !strings.Contains(rc.LastError, "transport sub") || !strings.Contains(rc.LastError, "authentication") || rc.LastStatus != "4.7.8" {
		t.Fatalf("recipient after a failed AUTH: %+v", rc)
	}
	if len(sub.transactions()) != 0 {
		t.Fatalf("delivered without authentication")
	}

	good := e.slice
	slice("secret")(&good)
	if err := e.tq.sv.configure(good); err != nil {
		t.Fatal(err)
	}
	e.advance(time.Hour)
	e.waitGone(id)
	txs := sub.transactions()
	if len(txs) != 1 || txs[0].user != "mjl" || !txs[0].tls || txs[0].rcpts[0] != "you@a.example" {
		t.Fatalf("transactions %+v, want one authenticated over TLS", txs)
	}
	sub.set(func(s *smtpServer) {
		if strings.Join(s.auths, " ") != "mjl:wrong mjl:secret" {
			t.Errorf("server saw credentials %q", s.auths)
		}
	})
	if r := e.retired(id)[0]; r == nil || !r.Delivered || r.Transport != "sub" || r.Attempts != 1 {
		t.Fatalf("retired %+v", r)
	}
}

// TestOutboundHoldRule: a hold rule holds new messages' matching
// recipients: they have no due entry and are not delivered; the others
// are.
func TestOutboundHoldRule(t *testing.T) {
	testHoldRule(t, "z@b.example", "y@a.example")
}

// TestOutboundHoldRuleLastHeld is TestOutboundHoldRule with the held
// recipient last in the message.
func TestOutboundHoldRuleLastHeld(t *testing.T) {
	testHoldRule(t, "y@a.example", "z@b.example")
}

// testHoldRule submits a message to x@b.example and one to mixed (one
// recipient at a.example, one at b.example) with a hold rule for
// b.example.
func testHoldRule(t *testing.T, mixed ...string) {
	mx := startSMTP(t, smtpOpts{})
	e := newOutEnv(t, mx.port, nil)
	q := e.tq.sv.q
	err := q.do(func(w *wtx) error {
		h := HoldRule{RecipientDomain: "b.example"}
		return w.tx.Bucket([]byte(bucketHoldRules)).Put(key64(1), h.marshal())
	})
	if err != nil {
		t.Fatal(err)
	}
	held := e.send(queueclient.Envelope{}, testMessage("mjl@example.org"), "x@b.example")
	both := e.send(queueclient.Envelope{}, testMessage("mjl@example.org"), mixed...)
	if rcpts := e.queued(held); len(rcpts) != 1 || !rcpts[0].Held {
		t.Fatalf("recipient not held: %+v", rcpts)
	}
	// Until the a.example recipient is retired, the message is due.
	q.db.View(func(tx *bolt.Tx) error {
		_, rcpts, err := readMessage(tx, both)
		if err != nil {
			t.Fatal(err)
		}
		for _, rc := range rcpts {
			if !rc.Held && tx.Bucket([]byte(bucketDue)).Get(dueKey(dueOutbound, rc.NextAttempt, both)) == nil {
				t.Fatalf("recipient %s is not held but its message has no due entry", rc.Address)
			}
		}
		return nil
	})
	waitFor(t, "delivery to a.example", func() bool { return len(mx.transactions()) == 1 })
	waitFor(t, "a.example recipient retired", func() bool { return e.retiredByAddr(both)["y@a.example"] != nil })
	for _, id := range []uint64{held, both} {
		rcpts := e.queued(id)
		if len(rcpts) != 1 || !rcpts[0].Held || !strings.HasSuffix(rcpts[0].Address, "@b.example") || rcpts[0].Attempts != 0 {
			t.Fatalf("message %d: recipients %+v, want the b.example one held", id, rcpts)
		}
	}
	for _, kind := range []byte{dueOutbound, dueLocal} {
		ids, _, err := q.dueMessages(kind, e.tq.sv.now().Add(365*24*time.Hour), 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != 0 {
			t.Fatalf("due index %c has %v, want no entry for held recipients", kind, ids)
		}
	}
	for _, r := range mx.rcptsSeen() {
		if strings.HasSuffix(r, "@b.example") {
			t.Fatalf("server saw held recipient %s", r)
		}
	}
}

// TestOutboundCrash: moxd-queue stopping while the server has the data
// but has not answered leaves the message queued; after a restart it is
// delivered. It is never lost.
func TestOutboundCrash(t *testing.T) {
	mx := startSMTP(t, smtpOpts{})
	mx.set(func(s *smtpServer) { s.dataDelay = time.Second })
	e := newOutEnv(t, mx.port, nil)
	msg := testMessage("mjl@example.org")
	id := e.send(queueclient.Envelope{}, msg, "you@a.example")
	waitFor(t, "data at the server", func() bool { return len(mx.transactions()) == 1 })
	dir, store := e.tq.dir, e.tq.store
	e.tq.stop()

	tq := openTestQueue(t, dir, e.slice, store, nil)
	e.tq = tq
	_, rcpts, err := tq.sv.q.loadMessage(id)
	switch {
	case err == nil:
		if len(rcpts) != 1 || rcpts[0].Attempts != 0 {
			t.Fatalf("after the restart: %+v; stopping is not an attempt", rcpts)
		}
	case errors.Is(err, errNoMessage):
		// Delivered just before the stop: then the server has it whole
		// and it is retired as delivered.
		if r := e.retired(id)[0]; r == nil || !r.Delivered {
			t.Fatalf("message gone without being delivered: %+v", r)
		}
	default:
		t.Fatal(err)
	}
	mx.set(func(s *smtpServer) { s.dataDelay = 0 })
	e.advance(notAttemptDelay + time.Second)
	e.waitGone(id)
	for _, tx := range mx.transactions() {
		if tx.data != msg {
			t.Fatalf("server has incomplete data %q", tx.data)
		}
	}
	if r := e.retired(id)[0]; r == nil || !r.Delivered {
		t.Fatalf("retired %+v", r)
	}
	tq.verifyStopped()
}

// TestOutboundLocalserve: under localserve, special local parts get their
// simulated outcome and every other recipient goes to store.
func TestOutboundLocalserve(t *testing.T) {
	slice := testSlice()
	slice.Localserve = true
	slice.Delivery = config.QueueDelivery{MaxAttempts: 3, FirstRetry: time.Hour}
	tq := openTestQueue(t, mkdir(t), slice, newFakeStore(), nil)
	e := &outEnv{t: t, tq: tq, ctx: testContext(t), slice: slice}
	e.sub = tq.submitter(ipc.RoleSubmission)
	e.tok = tq.store.token("mjl", ipc.RoleSubmission)

	id := e.send(queueclient.Envelope{}, testMessage("mjl@example.org"),
		"bob@anywhere.example", "x-temperror@remote.example", "y-permerror@remote.example", "z550@remote.example")
	rc := e.waitAttempts(id, 1)
	if len(rc) != 1 || rc[0].Address != "x-temperror@remote.example" || rc[0].LastStatus != "4.0.0" {
		t.Fatalf("queued after the first attempt: %+v", rc)
	}
	ds := e.waitDSNs(1)
	checkDSN(t, ds[0], origID, "failed", map[string]string{"y-permerror@remote.example": "5.0.0", "z550@remote.example": "5.1.1"})
	var to []string
	for _, d := range tq.store.deliveries() {
		if d.mailFrom != "" {
			to = append(to, d.rcpt)
		}
	}
	if strings.Join(to, " ") != "bob@anywhere.example" {
		t.Fatalf("store got the message for %q, want bob@anywhere.example", to)
	}
	if _, ok := tq.sv.q.suppressed("mjl", "z550@remote.example"); !ok {
		t.Errorf("550 recipient not on the suppression list")
	}
	if _, ok := tq.sv.q.suppressed("mjl", "y-permerror@remote.example"); ok {
		t.Errorf("5.0.0 recipient on the suppression list")
	}
	if r := e.retiredByAddr(id)["bob@anywhere.example"]; r == nil || !r.Delivered || r.Transport != "local" {
		t.Errorf("retired %+v", r)
	}
	e.advance(time.Hour)
	if rc := e.waitAttempts(id, 2); rc[0].LastStatus != "4.0.0" {
		t.Fatalf("second attempt %+v", rc[0])
	}
}

// TestOutboundSourceIP: direct delivery connects from [queue] source_ips.
func TestOutboundSourceIP(t *testing.T) {
	mx := startSMTP(t, smtpOpts{})
	e := newOutEnv(t, mx.port, func(s *config.QueueSlice) { s.Delivery.SourceIPs = []string{"127.0.0.2"} })
	id := e.send(queueclient.Envelope{}, testMessage("mjl@example.org"), "you@a.example")
	e.waitGone(id)
	mx.mu.Lock()
	defer mx.mu.Unlock()
	if len(mx.conns) == 0 {
		t.Fatal("no connection")
	}
	if host, _, _ := net.SplitHostPort(mx.conns[0].RemoteAddr().String()); host != "127.0.0.2" {
		t.Fatalf("connection from %s, want 127.0.0.2", host)
	}
}
