package queue

import (
	"fmt"
	bolt "go.etcd.io/bbolt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"moxd/internal/config"
	"moxd/internal/ipc"
	"moxd/internal/queue/queueclient"
)

// TestSubmitDurable submits a message and finds it, as submitted, after
// the queue was closed and opened again.
func TestSubmitDurable(t *testing.T) {
	tq := newTestQueue(t, testSlice())
	ctx := testContext(t)
	s := tq.submitter(ipc.RoleSubmission)
	tok := tq.store.token("mjl", ipc.RoleSubmission)
	prefix := "Received: from client.example.net by mail.example.org\r\n\twith ESMTPSA; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
	msg := "From: Mjl <mjl@example.org>\r\n" +
		"X-Moxd-Extra-Customer-ID: 1234\r\n" +
		"To: you@example.net\r\n" +
		"x-moxd-extra-campaign: spring\r\n  sale\r\n" +
		"TLS-Required: No\r\n" +
		"Subject: hello there\r\n" +
		"Message-ID: <abc@example.org>\r\n" +
		"\r\n" +
		"X-Moxd-Extra-NotAHeader: body text stays\r\n"
	// Released in half an hour, so the records are read before the
	// deliverer takes them.
	release := time.Now().Add(30 * time.Minute)
	env := queueclient.Envelope{Token: tok, MailFrom: "mjl+tag@example.org", SMTPUTF8: true, EightBit: true, Ret: ipc.RetHdrs, EnvID: "env1", Prefix: []byte(prefix), FutureRelease: release}
	sp, err := s.NewSpool(ctx, -1)
	if err != nil {
		t.Fatal(err)
	}
	sp.WriteString(msg)
	rcpts := []queueclient.Recipient{
		{Address: "you@example.net", Notify: ipc.NotifyFailure | ipc.NotifyDelay, ORcpt: "rfc822;you@example.net"},
		{Address: "\"two words\"@example.net"},
	}
	id, err := s.Submit(ctx, sp, env, rcpts)
	if err != nil {
		t.Fatal(err)
	}
	dir := tq.dir
	tq.stop()

	q, err := openQueue(dir, testLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	m, rs, err := q.loadMessage(id)
	if err != nil {
		t.Fatal(err)
	}
	// SMTPUTF8 was given, but nothing in this message needs it.
	if m.Account != "mjl" || m.MailFrom != "mjl+tag@example.org" || m.SMTPUTF8 || !m.EightBit || m.Ret != ipc.RetHdrs ||
		m.EnvID != "env1" || m.LocalOnly || m.RequireTLS != RequireTLSNo || m.MessageID != "<abc@example.org>" ||
		m.Subject != "hello there" || m.Queued.IsZero() {
		t.Errorf("message record %+v", m)
	}
	if len(m.Extra) != 2 || m.Extra["customer-id"] != "1234" || m.Extra["campaign"] != "spring  sale" {
		t.Errorf("extra %q", m.Extra)
	}
	want := prefix + "From: Mjl <mjl@example.org>\r\nTo: you@example.net\r\nTLS-Required: No\r\nSubject: hello there\r\nMessage-ID: <abc@example.org>\r\n\r\nX-Moxd-Extra-NotAHeader: body text stays\r\n"
	got, err := os.ReadFile(q.filePath(m.FileID))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("queue file:\n%q\nwant\n%q", got, want)
	}
	if m.Size != int64(len(want)) {
		t.Errorf("size %d, want %d", m.Size, len(want))
	}
	if len(rs) != 2 || rs[0].Address != "you@example.net" || rs[0].Notify != ipc.NotifyFailure|ipc.NotifyDelay ||
		rs[0].ORcpt != "rfc822;you@example.net" || rs[1].Address != "\"two words\"@example.net" {
		t.Fatalf("recipients %+v", rs)
	}
	for _, r := range rs {
		if r.State != RcptQueued || r.Attempts != 0 || r.NextAttempt.IsZero() || !r.NextAttempt.Equal(rs[0].NextAttempt) {
			t.Errorf("recipient %+v", r)
		}
	}
	// Submitted messages are in the outbound due index, not the local
	// one.
	if ids, _, _ := q.dueMessages(dueLocal, time.Now().Add(time.Hour), 10); len(ids) != 0 {
		t.Errorf("submitted message in the local due index: %v", ids)
	}
	if ids, _, _ := q.dueMessages(dueOutbound, time.Now().Add(time.Hour), 10); len(ids) != 1 || ids[0] != id {
		t.Errorf("outbound due index %v, want [%d]", ids, id)
	}
	if n := q.messages.Load(); n != 1 {
		t.Errorf("messages counter %d after reopen", n)
	}
}

// TestSubmitLocalDelivery: a submitted message to an address of a local
// domain goes to store, and leaves a retired record for the account.
func TestSubmitLocalDelivery(t *testing.T) {
	tq := openTestQueue(t, mkdir(t), testSlice(), newFakeStore(), nil)
	ctx := testContext(t)
	s := tq.submitter(ipc.RoleSubmission)
	env := queueclient.Envelope{Token: tq.store.token("mjl", ipc.RoleSubmission), MailFrom: "mjl@example.org"}
	id, err := submit(ctx, s, env, testMessage("mjl@example.org"), "other@example.org")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(testDeadline)
	for len(tq.store.deliveries()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	ds := tq.store.deliveries()
	if len(ds) != 1 || ds[0].rcpt != "other@example.org" || ds[0].mailFrom != "mjl@example.org" || !strings.Contains(ds[0].body, "Subject:") {
		t.Fatalf("store deliveries %+v", ds)
	}
	for time.Now().Before(deadline) && tq.sv.q.messages.Load() != 0 {
		time.Sleep(10 * time.Millisecond)
	}
	if n := tq.sv.q.messages.Load(); n != 0 {
		t.Fatalf("%d messages still queued after the delivery", n)
	}
	var retired []*Retired
	tq.sv.q.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketRetired)).ForEach(func(k, v []byte) error {
			r, err := unmarshalRetired(k, v)
			if err != nil {
				t.Error(err)
				return nil
			}
			retired = append(retired, r)
			return nil
		})
	})
	if len(retired) != 1 || retired[0].Msg != id || !retired[0].Delivered || retired[0].Account != "mjl" || retired[0].Address != "other@example.org" || retired[0].Transport != "local" {
		t.Fatalf("retired records %+v", retired)
	}
}

func mkdir(t testing.TB) string {
	dir := t.TempDir() + "/queue"
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestSubmitSender: queue itself enforces who may send as what, with a
// valid token too.
func TestSubmitSender(t *testing.T) {
	tq := newTestQueue(t, testSlice())
	ctx := testContext(t)
	s := tq.submitter(ipc.RoleSubmission)
	env := queueclient.Envelope{Token: tq.store.token("mjl", ipc.RoleSubmission), MailFrom: "mjl@example.org"}

	tests := []struct {
		name     string
		mailFrom string
		msg      string
		kind     error
		texts    []string
	}{
		{"ok", "mjl@example.org", testMessage("mjl@example.org"), nil, nil},
		{"ok case and separator", "MJL@Example.ORG", testMessage("<mjl+lists@EXAMPLE.org>"), nil, nil},
		{"ok alias", "team@example.org", testMessage("Team <team@example.org>"), nil, nil},
		{"foreign from", "mjl@example.org", testMessage("other@example.org"), queueclient.ErrDenied, []string{"From header address", "other@example.org", `"mjl"`}},
		{"foreign domain from", "mjl@example.org", testMessage("ceo@bank.example"), queueclient.ErrDenied, []string{"From header address"}},
		{"foreign mail from", "other@example.org", testMessage("mjl@example.org"), queueclient.ErrDenied, []string{"MAIL FROM", "other@example.org"}},
		{"null mail from", "", testMessage("mjl@example.org"), queueclient.ErrDenied, []string{"null sender"}},
		{"no from", "mjl@example.org", "To: x@example.net\r\n\r\nbody\r\n", queueclient.ErrBadRequest, []string{"no From header"}},
		{"two froms", "mjl@example.org", "From: mjl@example.org\r\nFrom: other@example.org\r\n\r\nbody\r\n", queueclient.ErrBadRequest, []string{"2 From headers"}},
		{"two addresses", "mjl@example.org", testMessage("mjl@example.org, other@example.org"), queueclient.ErrBadRequest, []string{"2 addresses"}},
		{"group", "mjl@example.org", testMessage("friends: mjl@example.org;"), queueclient.ErrBadRequest, []string{"ambiguous"}},
		{"ambiguous", "mjl@example.org", testMessage("other@example.org <mjl@example.org>"), queueclient.ErrBadRequest, []string{"From header"}},
		{"no separator", "mjl@example.org", "From: mjl@example.org\r\nSubject: x\r\n", queueclient.ErrBadRequest, []string{"no empty line"}},
		{"not a header", "mjl@example.org", "From: mjl@example.org\r\nthis is no header\r\n\r\nbody\r\n", queueclient.ErrBadRequest, []string{"line 2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := env
			env.MailFrom = tc.mailFrom
			_, err := submit(ctx, s, env, tc.msg, "you@example.net")
			if tc.kind == nil {
				if err != nil {
					t.Fatalf("submit: %v", err)
				}
				return
			}
			wantError(t, err, tc.kind, tc.texts...)
		})
	}
	// A submitting role cannot smuggle header fields in the prefix.
	env.Prefix = []byte("Received: by x\r\nFrom: ceo@bank.example\r\n")
	_, err := submit(ctx, s, env, testMessage("mjl@example.org"), "you@example.net")
	wantError(t, err, queueclient.ErrBadRequest, "From", "may not be added")

	// A Message-ID and Date the message lacks may be added; when the
	// message has them, a second one is refused.
	env.Prefix = []byte("Received: by x\r\nMessage-ID: <added@example.org>\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\n")
	id, err := submit(ctx, s, env, "From: mjl@example.org\r\nSubject: x\r\n\r\nbody\r\n", "you@example.net")
	if err != nil {
		t.Fatalf("submit with added Message-ID: %v", err)
	}
	msg, _, err := tq.sv.q.loadMessage(id)
	if err != nil || msg.MessageID != "<added@example.org>" {
		t.Fatalf("recorded message-id %q, %v, want the added one", msg.MessageID, err)
	}
	_, err = submit(ctx, s, env, "From: mjl@example.org\r\nMessage-ID: <own@example.org>\r\n\r\nbody\r\n", "you@example.net")
	wantError(t, err, queueclient.ErrBadRequest, "Message-ID")
}

// TestSubmitToken is the "submission worker bypassed" case: a Submit
// without a valid session token is refused, whatever else it says.
func TestSubmitToken(t *testing.T) {
	tq := newTestQueue(t, testSlice())
	ctx := testContext(t)
	sub := tq.submitter(ipc.RoleSubmission)
	web := tq.submitter(ipc.RoleWeb)
	msg := testMessage("mjl@example.org")

	_, err := submit(ctx, sub, queueclient.Envelope{MailFrom: "mjl@example.org"}, msg, "you@example.net")
	wantError(t, err, queueclient.ErrDenied, "authenticate")

	var forged [32]byte
	copy(forged[:], "not a token store issued")
	_, err = submit(ctx, sub, queueclient.Envelope{Token: forged, MailFrom: "mjl@example.org"}, msg, "you@example.net")
	wantError(t, err, queueclient.ErrDenied, "session not valid")

	// A token issued to web is not valid on the submission channel.
	webTok := tq.store.token("mjl", ipc.RoleWeb)
	_, err = submit(ctx, sub, queueclient.Envelope{Token: webTok, MailFrom: "mjl@example.org"}, msg, "you@example.net")
	wantError(t, err, queueclient.ErrDenied, "session not valid")
	// It is on the web channel.
	if _, err := submit(ctx, web, queueclient.Envelope{Token: webTok, MailFrom: "mjl@example.org"}, msg, "you@example.net"); err != nil {
		t.Fatal(err)
	}

	// An account store knows but the queue's config does not.
	gone := tq.store.token("removed", ipc.RoleSubmission)
	_, err = submit(ctx, sub, queueclient.Envelope{Token: gone, MailFrom: "removed@example.org"}, msg, "you@example.net")
	wantError(t, err, queueclient.ErrDenied, "not in the queue's configuration")

	// Store down: a temporary failure, not a refusal.
	tq.storeDown()
	_, err = submit(ctx, sub, queueclient.Envelope{Token: webTok, MailFrom: "mjl@example.org"}, msg, "you@example.net")
	wantError(t, err, queueclient.ErrUnavailable, "try again later")
}

// TestDailyMessageLimit submits 1000 messages, the default limit, and
// finds the 1001st refused, naming the option; 24 hours later the account
// may send again.
func TestDailyMessageLimit(t *testing.T) {
	if config.DefaultMaxMessagesPerDay != 1000 {
		t.Fatalf("default max_messages_per_day is %d, want 1000", config.DefaultMaxMessagesPerDay)
	}
	slice := testSlice()
	slice.Accounts[0].MaxFirstTimeRecipientsPerDay = 0
	tq := newTestQueue(t, slice)
	ctx := testContext(t)
	env := queueclient.Envelope{Token: tq.store.token("mjl", ipc.RoleSubmission), MailFrom: "mjl@example.org"}
	msg := testMessage("mjl@example.org")

	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for w := range 8 {
		s := tq.submitter(ipc.RoleSubmission)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 1000; i += 8 {
				if _, err := submit(ctx, s, env, msg, fmt.Sprintf("r%d@example.net", i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("1000 submissions in %v, %d commits", time.Since(start), tq.sv.q.commits.Load())

	s := tq.submitter(ipc.RoleSubmission)
	_, err := submit(ctx, s, env, msg, "last@example.net")
	wantError(t, err, queueclient.ErrLimit, `account "mjl" reached its limit of 1000 messages in 24 hours`, "max_messages_per_day")
	// Another account has its own count.
	other := queueclient.Envelope{Token: tq.store.token("other", ipc.RoleSubmission), MailFrom: "other@example.org"}
	if _, err := submit(ctx, s, other, testMessage("other@example.org"), "x@example.net"); err != nil {
		t.Fatal(err)
	}
	tq.advance(24*time.Hour + time.Second)
	if _, err := submit(ctx, s, env, msg, "later@example.net"); err != nil {
		t.Fatalf("submit a day later: %v", err)
	}
	if n := tq.sv.q.messages.Load(); n != 1002 {
		t.Errorf("%d messages queued, want 1002", n)
	}
	tq.verifyStopped()
}

// TestFirstTimeRecipientsLimit counts only addresses the account never
// sent to.
func TestFirstTimeRecipientsLimit(t *testing.T) {
	slice := testSlice()
	slice.Accounts[0].MaxFirstTimeRecipientsPerDay = 3
	tq := newTestQueue(t, slice)
	ctx := testContext(t)
	s := tq.submitter(ipc.RoleSubmission)
	env := queueclient.Envelope{Token: tq.store.token("mjl", ipc.RoleSubmission), MailFrom: "mjl@example.org"}
	msg := testMessage("mjl@example.org")

	steps := []struct {
		rcpts []string
		ok    bool
	}{
		{[]string{"a@example.net", "b@example.net", "A@EXAMPLE.NET"}, true}, // 2 new
		{[]string{"a@example.net", "c@example.net"}, true},                  // 1 new: 3 in all
		{[]string{"d@example.net"}, false},                                  // would be the 4th
		{[]string{"b@example.net", "c@example.net"}, true},                  // known
	}
	for i, st := range steps {
		_, err := submit(ctx, s, env, msg, st.rcpts...)
		if st.ok && err != nil {
			t.Fatalf("step %d: %v", i, err)
		} else if !st.ok {
			wantError(t, err, queueclient.ErrLimit, "limit of 3 first-time recipients", "max_first_time_recipients_per_day")
		}
	}
	// The window moves: a day later there is room again, and the
	// addresses are still known.
	tq.advance(25 * time.Hour)
	if _, err := submit(ctx, s, env, msg, "d@example.net", "e@example.net", "f@example.net", "a@example.net"); err != nil {
		t.Fatal(err)
	}
}

// TestSubmitManyRecipients sends more recipients than fit one frame; the
// client puts them in AddRecipients first.
func TestSubmitManyRecipients(t *testing.T) {
	slice := testSlice()
	slice.Accounts[0].MaxFirstTimeRecipientsPerDay = 0
	tq := newTestQueue(t, slice)
	ctx := testContext(t)
	s := tq.submitter(ipc.RoleSubmission)
	env := queueclient.Envelope{Token: tq.store.token("mjl", ipc.RoleSubmission), MailFrom: "mjl@example.org"}
	var rcpts []string
	for i := range 450 {
		rcpts = append(rcpts, fmt.Sprintf("%s%d@example.net", strings.Repeat("x", 60), i))
	}
	id, err := submit(ctx, s, env, testMessage("mjl@example.org"), rcpts...)
	if err != nil {
		t.Fatal(err)
	}
	_, rs, err := tq.sv.q.loadMessage(id)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != len(rcpts) {
		t.Fatalf("%d recipients recorded, want %d", len(rs), len(rcpts))
	}
	for i, r := range rs {
		if r.Address != rcpts[i] {
			t.Fatalf("recipient %d is %s, want %s", i, r.Address, rcpts[i])
		}
	}
}

// TestSubmitFutureRelease schedules the first attempt.
func TestSubmitFutureRelease(t *testing.T) {
	tq := newTestQueue(t, testSlice())
	ctx := testContext(t)
	s := tq.submitter(ipc.RoleSubmission)
	at := time.Now().Add(3 * time.Hour).Truncate(time.Second)
	env := queueclient.Envelope{Token: tq.store.token("mjl", ipc.RoleSubmission), MailFrom: "mjl@example.org", FutureRelease: at}
	id, err := submit(ctx, s, env, testMessage("mjl@example.org"), "you@example.net")
	if err != nil {
		t.Fatal(err)
	}
	_, rs, _ := tq.sv.q.loadMessage(id)
	if !rs[0].NextAttempt.Equal(at) {
		t.Errorf("next attempt %v, want %v", rs[0].NextAttempt, at)
	}
	env.FutureRelease = time.Now().Add(100 * 24 * time.Hour)
	_, err = submit(ctx, s, env, testMessage("mjl@example.org"), "you@example.net")
	wantError(t, err, queueclient.ErrBadRequest, "more than 60 days")
}

func TestParseAddress(t *testing.T) {
	tests := []struct {
		in, lp, dom string
		ok          bool
	}{
		{"mjl@example.org", "mjl", "example.org", true},
		{"Mjl@Example.ORG", "Mjl", "example.org", true},
		{`"a b"@example.org`, "a b", "example.org", true},
		{`"a\"b"@example.org`, `a"b`, "example.org", true},
		{"jörg@exämple.org", "jörg", "exämple.org", true},
		{"mjl", "", "", false},
		{"@example.org", "", "", false},
		{"mjl@", "", "", false},
		{"a b@example.org", "", "", false},
		{"mjl@exa mple.org", "", "", false},
		{`"unterminated@example.org`, "", "", false},
		{"<mjl@example.org>", "", "", false},
	}
	for _, tc := range tests {
		lp, dom, err := parseAddress(tc.in)
		if (err == nil) != tc.ok || lp != tc.lp || dom != tc.dom {
			t.Errorf("parseAddress(%q) = %q, %q, %v; want %q, %q, ok %v", tc.in, lp, dom, err, tc.lp, tc.dom, tc.ok)
		}
	}
}

func TestHeaderExtra(t *testing.T) {
	tests := []struct {
		header string
		extra  map[string]string
		err    string
	}{
		{"From: a@b\r\nX-Moxd-Extra-A: 1\r\nx-moxd-extra-b: 2\r\n\r\n", map[string]string{"a": "1", "b": "2"}, ""},
		{"From: a@b\r\nX-Moxd-Extra-A: 1\r\nX-MOXD-EXTRA-a: 2\r\n\r\n", nil, "more than once"},
		{"From: a@b\r\nX-Moxd-Extra-: 1\r\n\r\n", nil, "no key"},
		{"From: a@b\r\nX-Moxd-Extra-" + strings.Repeat("k", 65) + ": 1\r\n\r\n", nil, "longer than 64"},
		{"From: a@b\r\nX-Moxd-Extra-A: " + strings.Repeat("v", 1025) + "\r\n\r\n", nil, "longer than 1024"},
	}
	for _, tc := range tests {
		h, err := scanHeader(strings.NewReader(tc.header), int64(len(tc.header)))
		if err != nil {
			t.Fatalf("scan %q: %v", tc.header, err)
		}
		extra, _, err := h.extra()
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("extra of %q: %v, want error with %q", tc.header, err, tc.err)
			}
			continue
		}
		if err != nil || fmt.Sprint(extra) != fmt.Sprint(tc.extra) {
			t.Errorf("extra of %q: %v, %v; want %v", tc.header, extra, err, tc.extra)
		}
	}
	// Too many keys.
	var b strings.Builder
	b.WriteString("From: a@b\r\n")
	for i := range maxExtraFields + 1 {
		fmt.Fprintf(&b, "X-Moxd-Extra-K%d: v\r\n", i)
	}
	b.WriteString("\r\n")
	h, err := scanHeader(strings.NewReader(b.String()), int64(b.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.extra(); err == nil || !strings.Contains(err.Error(), "more than 32") {
		t.Errorf("%d extra headers: %v", maxExtraFields+1, err)
	}
}

func TestHeaderTooLong(t *testing.T) {
	msg := "From: a@b\r\nX-Long: " + strings.Repeat("x", maxHeader) + "\r\n\r\nbody"
	_, err := scanHeader(strings.NewReader(msg), int64(len(msg)))
	if err == nil || !strings.Contains(err.Error(), "too long") {
		t.Errorf("long header: %v", err)
	}
	// LF-only line endings are read like CRLF ones.
	msg = "From: a@b\nSubject: x\n\nbody\n"
	h, err := scanHeader(strings.NewReader(msg), int64(len(msg)))
	if err != nil || h.first("Subject") != "x" || h.body != int64(strings.Index(msg, "body")) {
		t.Errorf("LF header: %+v, %v", h, err)
	}
}

// TestReload applies a new slice: an account removed from the config may
// no longer submit.
func TestReload(t *testing.T) {
	tq := newTestQueue(t, testSlice())
	ctx := testContext(t)
	s := tq.submitter(ipc.RoleSubmission)
	env := queueclient.Envelope{Token: tq.store.token("other", ipc.RoleSubmission), MailFrom: "other@example.org"}
	if _, err := submit(ctx, s, env, testMessage("other@example.org"), "x@example.net"); err != nil {
		t.Fatal(err)
	}
	slice := testSlice()
	slice.Accounts = slice.Accounts[:1]
	if err := tq.sv.configure(slice); err != nil {
		t.Fatal(err)
	}
	_, err := submit(ctx, s, env, testMessage("other@example.org"), "x@example.net")
	wantError(t, err, queueclient.ErrDenied, "not in the queue's configuration")
	bad := testSlice()
	bad.Accounts = append(bad.Accounts, config.QueueAccount{Name: "x", Addresses: []string{"x@not-local.example"}})
	if err := tq.sv.configure(bad); err == nil {
		t.Errorf("slice with an address outside the local domains accepted")
	}
}
