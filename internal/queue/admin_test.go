package queue

import (
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"moxd/internal/config"
	"moxd/internal/ipc"
)

// adminQueue is a queue service that does not run: nothing is attempted,
// so the records stay as a test made them. Its clock stands at now.
type adminQueue struct {
	t    *testing.T
	dir  string
	sv   *service
	q    *Queue
	now  time.Time
	once sync.Once
}

var adminNow = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func newAdminQueue(t *testing.T, slice config.QueueSlice) *adminQueue {
	t.Helper()
	dir := mkdir(t)
	aq := &adminQueue{t: t, dir: dir, now: adminNow}
	sv, err := newService(dir, testLog(), func() time.Time { return aq.now }, slice)
	if err != nil {
		t.Fatal(err)
	}
	sv.hostname = "mail.example.org"
	aq.sv, aq.q = sv, sv.q
	t.Cleanup(aq.close)
	return aq
}

func (aq *adminQueue) close() {
	aq.once.Do(aq.sv.close)
}

// verify closes the queue and checks its directory.
func (aq *adminQueue) verify() {
	t := aq.t
	t.Helper()
	aq.close()
	problems, err := Verify(aq.dir)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	for _, p := range problems {
		t.Errorf("verify: %s: %s", p.Where, p.What)
	}
}

// add queues a message from m.MailFrom to rcpts, first attempt at first.
func (aq *adminQueue) add(m Message, first time.Time, rcpts ...Recipient) uint64 {
	t := aq.t
	t.Helper()
	f, err := os.CreateTemp(aq.q.tmpDir, "test")
	if err != nil {
		t.Fatal(err)
	}
	body := "From: <" + m.MailFrom + ">\r\nSubject: " + m.Subject + "\r\nX-Test: \x1b[31mred\r\n\r\nHello.\r\n"
	if _, err := f.WriteString(body); err != nil {
		t.Fatal(err)
	}
	f.Close()
	id, err := aq.q.addMessage(&newMessage{msg: m, rcpts: rcpts, tmp: f.Name(), size: int64(len(body)), first: first})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// due returns the due index: next attempt by message id.
func (aq *adminQueue) due() map[uint64]time.Time {
	aq.t.Helper()
	d := map[uint64]time.Time{}
	err := aq.q.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketDue)).ForEach(func(k, v []byte) error {
			next, id, ok := parseDueKey(k)
			if !ok {
				aq.t.Errorf("bad due key %x", k)
			}
			if _, dup := d[id]; dup {
				aq.t.Errorf("message %d has two due entries", id)
			}
			d[id] = next
			return nil
		})
	})
	if err != nil {
		aq.t.Fatal(err)
	}
	return d
}

func (aq *adminQueue) rcpts(id uint64) []*Recipient {
	aq.t.Helper()
	_, l, err := aq.q.loadMessage(id)
	if err != nil {
		aq.t.Fatal(err)
	}
	return l
}

func (aq *adminQueue) master() *ipc.Conn {
	return (&testQueue{t: aq.t, sv: aq.sv}).masterConn()
}

func rcpt(addr string) Recipient { return Recipient{Address: addr} }

func ptr[T any](v T) *T { return &v }

// adminFixture queues three messages: 1 from mjl to two recipients, 2
// from other to one, 3 from mjl with transport "relay", queued one minute
// apart and due in one, two and three hours.
func adminFixture(t *testing.T) (*adminQueue, [3]uint64) {
	slice := testSlice()
	slice.Transports = []config.QueueTransport{{Name: "relay", Kind: config.TransportSMTP, Host: "relay.example.net", Port: 25}}
	aq := newAdminQueue(t, slice)
	var ids [3]uint64
	ids[0] = aq.add(Message{Account: "mjl", MailFrom: "mjl@example.org", Subject: "one"}, adminNow.Add(time.Hour),
		rcpt("a@example.net"), rcpt("B@Other.example"))
	aq.now = aq.now.Add(time.Minute)
	ids[1] = aq.add(Message{Account: "other", MailFrom: "other@example.org", Subject: "two"}, adminNow.Add(2*time.Hour),
		rcpt("c@example.net"))
	aq.now = aq.now.Add(time.Minute)
	ids[2] = aq.add(Message{Account: "mjl", MailFrom: "mjl+lists@example.org", Subject: "three", Transport: "relay"}, adminNow.Add(3*time.Hour),
		rcpt("d@example.com"))
	return aq, ids
}

func TestAdminList(t *testing.T) {
	aq, ids := adminFixture(t)
	if _, err := aq.q.Hold(Filter{IDs: []uint64{ids[1]}}); err != nil {
		t.Fatal(err)
	}
	type row struct {
		msg uint64
		seq uint32
	}
	tests := []struct {
		name string
		f    Filter
		sort string
		want []row
	}{
		{"all", Filter{}, "", []row{{ids[0], 0}, {ids[0], 1}, {ids[1], 0}, {ids[2], 0}}},
		{"account", Filter{Account: "mjl"}, "", []row{{ids[0], 0}, {ids[0], 1}, {ids[2], 0}}},
		{"from substring, any case", Filter{From: "+LISTS@"}, "", []row{{ids[2], 0}}},
		{"to substring, any case", Filter{To: "b@other"}, "", []row{{ids[0], 1}}},
		{"to and account", Filter{Account: "mjl", To: "example.net"}, "", []row{{ids[0], 0}}},
		{"ids", Filter{IDs: []uint64{ids[2], ids[0], ids[2], 999}}, "", []row{{ids[0], 0}, {ids[0], 1}, {ids[2], 0}}},
		{"transport", Filter{Transport: "relay"}, "", []row{{ids[2], 0}}},
		{"held", Filter{Held: ptr(true)}, "", []row{{ids[1], 0}}},
		{"not held", Filter{Held: ptr(false)}, "-queued", []row{{ids[2], 0}, {ids[0], 1}, {ids[0], 0}}},
		{"newest first", Filter{}, "-queued", []row{{ids[2], 0}, {ids[1], 0}, {ids[0], 1}, {ids[0], 0}}},
		{"next last first", Filter{}, "-next", []row{{ids[2], 0}, {ids[1], 0}, {ids[0], 1}, {ids[0], 0}}},
		{"nothing", Filter{Account: "nobody"}, "next", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, total, err := aq.q.List(tc.f, tc.sort, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			var got []row
			for _, e := range l {
				got = append(got, row{e.Msg, e.Seq})
			}
			if !slices.Equal(got, tc.want) || total != len(tc.want) {
				t.Errorf("got %v (total %d), want %v", got, total, tc.want)
			}
		})
	}

	// Pages: from index 1, two entries.
	l, total, err := aq.q.List(Filter{}, "next", 1, 2)
	if err != nil || total != 4 || len(l) != 2 || l[0].Msg != ids[0] || l[0].Seq != 1 || l[1].Msg != ids[1] {
		t.Errorf("page: %v, total %d, %v", l, total, err)
	}
	if _, _, err := aq.q.List(Filter{}, "size", 0, 0); err == nil {
		t.Errorf("unknown sort order accepted")
	}
	e := l[1]
	if e.Account != "other" || e.MailFrom != "other@example.org" || e.Recipient != "c@example.net" || !e.Held ||
		!e.NextAttempt.Equal(adminNow.Add(2*time.Hour)) || !e.Queued.Equal(adminNow.Add(time.Minute)) || e.Size == 0 {
		t.Errorf("entry %+v", e)
	}
}

func TestAdminHold(t *testing.T) {
	aq, ids := adminFixture(t)
	// Holding one of two recipients keeps the message due for the other.
	n, err := aq.q.Hold(Filter{To: "a@example.net"})
	if err != nil || n != 1 {
		t.Fatalf("hold: %d, %v", n, err)
	}
	if d := aq.due(); !d[ids[0]].Equal(adminNow.Add(time.Hour)) {
		t.Errorf("due %v", d)
	}
	// Holding the other takes the message out of the due index; holding
	// again changes nothing.
	if n, err := aq.q.Hold(Filter{IDs: []uint64{ids[0]}}); err != nil || n != 1 {
		t.Fatalf("hold: %d, %v", n, err)
	}
	if n, err := aq.q.Hold(Filter{IDs: []uint64{ids[0]}}); err != nil || n != 0 {
		t.Fatalf("hold again: %d, %v", n, err)
	}
	if _, ok := aq.due()[ids[0]]; ok {
		t.Errorf("held message still due")
	}
	// The other recipient is rescheduled while the first is held; the
	// released one joins the earliest next attempt.
	if n, err := aq.q.Schedule(Filter{IDs: []uint64{ids[0]}}, adminNow.Add(-time.Minute)); err != nil || n != 2 {
		t.Fatalf("schedule: %d, %v", n, err)
	}
	if n, err := aq.q.Unhold(Filter{To: "b@other"}); err != nil || n != 1 {
		t.Fatalf("unhold: %d, %v", n, err)
	}
	if d := aq.due(); !d[ids[0]].Equal(adminNow.Add(-time.Minute)) {
		t.Errorf("after unhold: due %v, want the past (due at once)", d[ids[0]])
	}
	if n, err := aq.q.Unhold(Filter{Held: ptr(true)}); err != nil || n != 1 {
		t.Fatalf("unhold held: %d, %v", n, err)
	}
	for _, rc := range aq.rcpts(ids[0]) {
		if rc.Held || !rc.NextAttempt.Equal(adminNow.Add(-time.Minute)) {
			t.Errorf("recipient %+v", rc)
		}
	}
	// Others untouched.
	if d := aq.due(); !d[ids[1]].Equal(adminNow.Add(2*time.Hour)) || !d[ids[2]].Equal(adminNow.Add(3*time.Hour)) {
		t.Errorf("due %v", d)
	}
	aq.verify()
}

func TestAdminSchedule(t *testing.T) {
	aq, ids := adminFixture(t)
	// A recipient filter reschedules its whole message: recipients share
	// their next attempt.
	at := adminNow.Add(10 * time.Minute)
	n, err := aq.q.Schedule(Filter{To: "b@other.example"}, at)
	if err != nil || n != 2 {
		t.Fatalf("schedule: %d, %v", n, err)
	}
	for _, rc := range aq.rcpts(ids[0]) {
		if !rc.NextAttempt.Equal(at) {
			t.Errorf("recipient %d next %v, want %v", rc.Seq, rc.NextAttempt, at)
		}
	}
	// A held message gets the time but stays out of the due index.
	aq.q.Hold(Filter{IDs: []uint64{ids[1]}})
	if n, err := aq.q.Schedule(Filter{Account: "other"}, at); err != nil || n != 1 {
		t.Fatalf("schedule held: %d, %v", n, err)
	}
	d := aq.due()
	if !d[ids[0]].Equal(at) || !d[ids[2]].Equal(adminNow.Add(3*time.Hour)) {
		t.Errorf("due %v", d)
	}
	if _, ok := d[ids[1]]; ok {
		t.Errorf("held message due")
	}
	aq.verify()
}

// retired returns the retired records of msg.
func (aq *adminQueue) retired(msg uint64) []Retired {
	aq.t.Helper()
	l, err := aq.q.RetiredGet(msg, -1)
	if err != nil {
		aq.t.Fatal(err)
	}
	return l
}

func TestAdminDrop(t *testing.T) {
	aq, ids := adminFixture(t)
	before := aq.q.recipients.Load()
	n, err := aq.q.Drop(Filter{To: "a@example.net"})
	if err != nil || n != 1 {
		t.Fatalf("drop: %d, %v", n, err)
	}
	if rs := aq.rcpts(ids[0]); len(rs) != 1 || rs[0].Address != "B@Other.example" {
		t.Errorf("left %v", rs)
	}
	n, err = aq.q.Drop(Filter{Account: "mjl"})
	if err != nil || n != 2 {
		t.Fatalf("drop account: %d, %v", n, err)
	}
	if _, _, err := aq.q.loadMessage(ids[0]); !errors.Is(err, errNoMessage) {
		t.Errorf("message without recipients not removed: %v", err)
	}
	if got := aq.q.recipients.Load(); got != before-3 {
		t.Errorf("recipient counter %d, want %d", got, before-3)
	}
	if d := aq.due(); len(d) != 1 {
		t.Errorf("due %v, want only message %d", d, ids[1])
	}
	r := aq.retired(ids[0])
	if len(r) != 2 {
		t.Fatalf("retired %v", r)
	}
	for _, e := range r {
		if e.Delivered || !strings.HasPrefix(e.LastError, "dropped by admin") || e.Account != "mjl" {
			t.Errorf("retired %+v", e)
		}
	}
	aq.verify()
}

func TestAdminFail(t *testing.T) {
	aq, ids := adminFixture(t)
	nullSender := aq.add(Message{Account: "mjl", MailFrom: ""}, adminNow.Add(time.Hour), rcpt("e@example.net"))
	never := aq.add(Message{Account: "mjl", MailFrom: "mjl@example.org"}, adminNow.Add(time.Hour),
		Recipient{Address: "f@example.net", Notify: ipc.NotifyNever})
	msgsBefore := aq.q.messages.Load()

	n, dsns, err := aq.sv.Fail(Filter{IDs: []uint64{ids[0], nullSender, never}})
	if err != nil || n != 4 || dsns != 1 {
		t.Fatalf("fail: %d recipients, %d DSNs, %v; want 4, 1", n, dsns, err)
	}
	// Three messages gone, one DSN queued.
	if got := aq.q.messages.Load(); got != msgsBefore-2 {
		t.Errorf("messages %d, want %d", got, msgsBefore-2)
	}
	l, _, err := aq.q.List(Filter{To: "mjl@example.org"}, "", 0, 0)
	if err != nil || len(l) != 1 || !l[0].DSN || l[0].MailFrom != "" {
		t.Fatalf("DSN not queued: %v, %v", l, err)
	}
	if !aq.due()[l[0].Msg].Equal(aq.now) {
		t.Errorf("DSN not due now")
	}
	text, err := aq.q.Dump(l[0].Msg)
	if err != nil || !strings.Contains(text, "delivery status: failed") {
		t.Errorf("DSN dump: %v\n%s", err, text)
	}
	for _, r := range aq.retired(ids[0]) {
		if r.Delivered || r.LastStatus != "5.0.0" || !strings.HasPrefix(r.LastError, "failed by admin") {
			t.Errorf("retired %+v", r)
		}
	}
	// A message failed already is not failed twice.
	if n, dsns, err := aq.sv.Fail(Filter{IDs: []uint64{ids[0]}}); err != nil || n != 0 || dsns != 0 {
		t.Errorf("fail again: %d, %d, %v", n, dsns, err)
	}
	aq.verify()
}

func TestAdminHoldRules(t *testing.T) {
	aq, ids := adminFixture(t)
	id, held, err := aq.q.AddHoldRule(HoldRule{Account: "mjl", RecipientDomain: "Example.NET."})
	if err != nil || id != 1 || held != 1 {
		t.Fatalf("add rule: id %d, held %d, %v", id, held, err)
	}
	if rs := aq.rcpts(ids[0]); !rs[0].Held || rs[1].Held {
		t.Errorf("rule held %+v %+v", rs[0], rs[1])
	}
	// New messages are held by the rule; a DSN is not.
	nid := aq.add(Message{Account: "mjl", MailFrom: "mjl@example.org"}, adminNow, rcpt("g@example.net"))
	dsn := aq.add(Message{Account: "mjl", DSN: true}, adminNow, rcpt("h@example.net"))
	if !aq.rcpts(nid)[0].Held || aq.rcpts(dsn)[0].Held {
		t.Errorf("new message not held, or DSN held")
	}
	id2, held, err := aq.q.AddHoldRule(HoldRule{SenderDomain: "example.org"})
	if err != nil || id2 != 2 || held != 3 {
		t.Fatalf("second rule: id %d, held %d, %v", id2, held, err)
	}
	rules, err := aq.q.HoldRules()
	if err != nil || len(rules) != 2 || rules[0].RecipientDomain != "example.net" || rules[1].SenderDomain != "example.org" {
		t.Errorf("rules %+v, %v", rules, err)
	}
	// Removing a rule leaves what it held held.
	if h, found, err := aq.q.RemoveHoldRule(id); err != nil || !found || h.Account != "mjl" {
		t.Errorf("remove: %+v %v %v", h, found, err)
	}
	if _, found, err := aq.q.RemoveHoldRule(id); err != nil || found {
		t.Errorf("remove again: %v %v", found, err)
	}
	if !aq.rcpts(nid)[0].Held {
		t.Errorf("removing the rule released its message")
	}
	aq.verify()
}

func TestAdminRetired(t *testing.T) {
	aq, ids := adminFixture(t)
	aq.q.Drop(Filter{IDs: []uint64{ids[0]}})
	aq.now = aq.now.Add(time.Minute)
	aq.q.Drop(Filter{IDs: []uint64{ids[1]}})

	l, total, err := aq.q.RetiredList("", 0, 0, true)
	if err != nil || total != 3 || len(l) != 3 || l[0].Msg != ids[1] {
		t.Fatalf("newest first: %v, %d, %v", l, total, err)
	}
	l, total, err = aq.q.RetiredList("mjl", 1, 5, false)
	if err != nil || total != 2 || len(l) != 1 || l[0].Msg != ids[0] || l[0].Seq != 1 {
		t.Errorf("mjl from 1: %v, %d, %v", l, total, err)
	}
	if l, err := aq.q.RetiredGet(ids[0], 1); err != nil || len(l) != 1 || l[0].Address != "B@Other.example" {
		t.Errorf("get: %v, %v", l, err)
	}
	if l, err := aq.q.RetiredGet(ids[2], -1); err != nil || len(l) != 0 {
		t.Errorf("get queued message: %v, %v", l, err)
	}
}

func TestAdminSuppress(t *testing.T) {
	aq := newAdminQueue(t, testSlice())
	mc := aq.master()
	ctx := testContext(t)
	call := func(m ipc.Message) (*ipc.QueueSuppressionList, error) {
		rep, err := mc.Call(ctx, m)
		if err != nil {
			return nil, err
		}
		return rep.Msg.(*ipc.QueueSuppressionList), nil
	}
	add := &ipc.QueueSuppress{Op: ipc.QueueSuppressOpAdd, Account: "mjl", Address: "Gone@Example.net", Reason: "asked to be left alone"}
	if l, err := call(add); err != nil || len(l.Entries) != 1 || !l.Entries[0].Manual || l.Entries[0].Added != adminNow.UnixNano() {
		t.Fatalf("add: %+v, %v", l, err)
	}
	// Adding again keeps the first reason.
	add.Reason = "again"
	if l, err := call(add); err != nil || l.Entries[0].Reason != "asked to be left alone" {
		t.Errorf("add again: %+v, %v", l, err)
	}
	if l, err := call(&ipc.QueueSuppress{Op: ipc.QueueSuppressOpLookup, Account: "mjl", Address: "gone@example.NET"}); err != nil || len(l.Entries) != 1 {
		t.Errorf("lookup: %+v, %v", l, err)
	}
	if l, err := call(&ipc.QueueSuppress{Op: ipc.QueueSuppressOpLookup, Account: "other", Address: "gone@example.net"}); err != nil || len(l.Entries) != 0 {
		t.Errorf("lookup other account: %+v, %v", l, err)
	}
	if l, err := call(&ipc.QueueSuppress{Op: ipc.QueueSuppressOpList, Account: "mjl"}); err != nil || l.Total != 1 || l.Entries[0].Address != "Gone@Example.net" {
		t.Errorf("list: %+v, %v", l, err)
	}
	refusals := []struct {
		m    ipc.Message
		code uint16
		want string
	}{
		{&ipc.QueueSuppress{Op: ipc.QueueSuppressOpAdd, Account: "nobody", Address: "a@example.net"}, ipc.CodeNotFound, `no account "nobody"`},
		{&ipc.QueueSuppress{Op: ipc.QueueSuppressOpAdd, Account: "mjl", Address: "not an address"}, ipc.CodeBadRequest, "user@domain"},
		{&ipc.QueueSuppress{Op: ipc.QueueSuppressOpRm, Account: "mjl", Address: "x@example.net"}, ipc.CodeNotFound, "not on the suppression list"},
	}
	for _, r := range refusals {
		_, err := call(r.m)
		var re *ipc.RemoteError
		if !errors.As(err, &re) || re.Code != r.code || !strings.Contains(re.Message, r.want) {
			t.Errorf("%+v: got %v, want code %d with %q", r.m, err, r.code, r.want)
		}
	}
	if l, err := call(&ipc.QueueSuppress{Op: ipc.QueueSuppressOpRm, Account: "mjl", Address: "gone@example.net"}); err != nil || len(l.Entries) != 1 {
		t.Errorf("rm: %+v, %v", l, err)
	}
	if l, err := aq.q.SuppressionList(""); err != nil || len(l) != 0 {
		t.Errorf("list after rm: %v, %v", l, err)
	}
}

func TestAdminDump(t *testing.T) {
	aq, ids := adminFixture(t)
	err := aq.q.do(func(w *wtx) error {
		_, rcpts, err := readMessage(w.tx, ids[0])
		if err != nil {
			return err
		}
		rc := rcpts[0]
		rc.Attempts, rc.LastHost, rc.LastStatus = 2, "mx.example.net", "4.7.5"
		rc.LastError = "dane: no TLSA record of mx.example.net matches its certificate\x1b[2J"
		return w.tx.Bucket([]byte(bucketRcpts)).Put(rcptKey(rc.Msg, rc.Seq), rc.marshal())
	})
	if err != nil {
		t.Fatal(err)
	}
	text, err := aq.sv.q.dump(ids[0], aq.sv.routeOf)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"message 1", "<mjl@example.org>", "recipient 0 <a@example.net>", "recipient 1 <B@Other.example>",
		"dane: no TLSA record of mx.example.net matches its certificate?[2J", "4.7.5", "transport direct (kind direct): no route",
		"header:\nFrom: <mjl@example.org>\nSubject: one\nX-Test: ?[31mred\n",
	} {
		if !strings.Contains(text, s) {
			t.Errorf("dump lacks %q:\n%s", s, text)
		}
	}
	if strings.ContainsAny(text, "\x1b\r") || strings.Contains(text, "Hello.") {
		t.Errorf("dump has control characters or the body:\n%q", text)
	}
	text, err = aq.sv.q.dump(ids[2], aq.sv.routeOf)
	if err != nil || !strings.Contains(text, "transport relay (kind smtp): transport set on the message") {
		t.Errorf("dump of message with transport: %v\n%s", err, text)
	}
	if _, err := aq.q.Dump(999); !errors.Is(err, errNoMessage) {
		t.Errorf("dump of unknown message: %v", err)
	}
	long := clipDump(strings.Repeat("ä", dumpMaxText))
	if len(long) > dumpMaxText || !strings.HasSuffix(long, "every recipient]\n") {
		t.Errorf("clipped dump of %d bytes ends %q", len(long), long[len(long)-40:])
	}
}

// TestAdminIPC drives the actions through master's channel as master
// relays them.
func TestAdminIPC(t *testing.T) {
	aq, ids := adminFixture(t)
	mc := aq.master()
	ctx := testContext(t)
	act := func(m *ipc.QueueAction) (*ipc.QueueCount, error) {
		rep, err := mc.Call(ctx, m)
		if err != nil {
			return nil, err
		}
		return rep.Msg.(*ipc.QueueCount), nil
	}
	refused := func(what string, err error, code uint16, want string) {
		t.Helper()
		var re *ipc.RemoteError
		if !errors.As(err, &re) || re.Code != code || !strings.Contains(re.Message, want) {
			t.Errorf("%s: got %v, want code %d with %q", what, err, code, want)
		}
	}

	_, err := act(&ipc.QueueAction{Action: ipc.QueueDrop})
	refused("drop without filter", err, ipc.CodeBadRequest, "-all")
	if c, err := act(&ipc.QueueAction{Action: ipc.QueueHold, All: true}); err != nil || c.N != 4 {
		t.Errorf("hold all: %+v, %v", c, err)
	}
	if c, err := act(&ipc.QueueAction{Action: ipc.QueueSchedule, Filter: ipc.QueueFilter{Account: "other"}, Delay: int64(-time.Hour)}); err != nil || c.N != 1 {
		t.Errorf("schedule: %+v, %v", c, err)
	}
	if rcs := aq.rcpts(ids[1]); !rcs[0].NextAttempt.Equal(adminNow.Add(2*time.Minute - time.Hour)) {
		t.Errorf("scheduled at %v", rcs[0].NextAttempt)
	}
	if c, err := act(&ipc.QueueAction{Action: ipc.QueueUnhold, Filter: ipc.QueueFilter{Held: ipc.QueueHeldYes}}); err != nil || c.N != 4 {
		t.Errorf("unhold: %+v, %v", c, err)
	}

	_, err = act(&ipc.QueueAction{Action: ipc.QueueTransport, Filter: ipc.QueueFilter{IDs: []uint64{ids[0]}}, Arg: "nope"})
	refused("unknown transport", err, ipc.CodeNotFound, "configured transports: relay")
	if c, err := act(&ipc.QueueAction{Action: ipc.QueueTransport, Filter: ipc.QueueFilter{Account: "mjl"}, Arg: "relay"}); err != nil || c.N != 1 {
		t.Errorf("transport: %+v, %v", c, err)
	}
	if c, err := act(&ipc.QueueAction{Action: ipc.QueueTransport, Filter: ipc.QueueFilter{Transport: "relay"}}); err != nil || c.N != 2 {
		t.Errorf("transport cleared: %+v, %v", c, err)
	}
	if c, err := act(&ipc.QueueAction{Action: ipc.QueueRequireTLS, Filter: ipc.QueueFilter{From: "other@"}, Arg: "yes"}); err != nil || c.N != 1 {
		t.Errorf("requiretls: %+v, %v", c, err)
	}
	rep, err := mc.Call(ctx, &ipc.QueueList{Sort: "queued"})
	if err != nil {
		t.Fatal(err)
	}
	l := rep.Msg.(*ipc.QueueListing)
	if l.Total != 4 || l.More || len(l.Entries) != 4 {
		t.Fatalf("listing %+v", l)
	}
	for _, e := range l.Entries {
		if e.Held || e.Transport != "" || (e.RequireTLS == 1) != (e.Msg == ids[1]) {
			t.Errorf("entry %+v", e)
		}
	}

	rep, err = mc.Call(ctx, &ipc.QueueDump{ID: ids[1]})
	if err != nil || !strings.Contains(rep.Msg.(*ipc.QueueText).Text, "yes (REQUIRETLS)") {
		t.Errorf("dump: %v %v", rep, err)
	}
	_, err = mc.Call(ctx, &ipc.QueueDump{ID: 999})
	refused("dump of unknown message", err, ipc.CodeNotFound, "no message 999")

	rep, err = mc.Call(ctx, &ipc.QueueHoldRules{Op: ipc.QueueRulesOpAdd, Rule: ipc.QueueHoldRule{Account: "other"}})
	if err != nil || rep.Msg.(*ipc.QueueHoldRuleList).Held != 1 || rep.Msg.(*ipc.QueueHoldRuleList).Rules[0].ID != 1 {
		t.Errorf("hold rule add: %+v, %v", rep, err)
	}
	_, err = mc.Call(ctx, &ipc.QueueHoldRules{Op: ipc.QueueRulesOpAdd, Rule: ipc.QueueHoldRule{Account: "nobody"}})
	refused("hold rule of unknown account", err, ipc.CodeNotFound, "nobody")
	_, err = mc.Call(ctx, &ipc.QueueHoldRules{Op: ipc.QueueRulesOpRm, Rule: ipc.QueueHoldRule{ID: 5}})
	refused("remove unknown hold rule", err, ipc.CodeNotFound, "no hold rule 5")

	if c, err := act(&ipc.QueueAction{Action: ipc.QueueFail, Filter: ipc.QueueFilter{IDs: []uint64{ids[1]}}}); err != nil || c.N != 1 || c.DSNs != 1 {
		t.Errorf("fail: %+v, %v", c, err)
	}
	rep, err = mc.Call(ctx, &ipc.QueueRetired{Op: ipc.QueueRetiredOpGet, Msg: ids[1], AnySeq: true})
	if err != nil || len(rep.Msg.(*ipc.QueueRetiredList).Entries) != 1 || rep.Msg.(*ipc.QueueRetiredList).Entries[0].LastStatus != "5.0.0" {
		t.Errorf("retired get: %+v, %v", rep, err)
	}
	_, err = mc.Call(ctx, &ipc.QueueRetired{Op: ipc.QueueRetiredOpGet, Msg: ids[0], AnySeq: true})
	refused("retired of queued message", err, ipc.CodeNotFound, "no retired recipient")
	aq.verify()
}

// TestAdminListPages: a listing of recipients with long errors comes in
// pages that each fit a frame, and together hold every recipient.
func TestAdminListPages(t *testing.T) {
	aq := newAdminQueue(t, testSlice())
	var rcpts []Recipient
	for i := range 120 {
		rcpts = append(rcpts, rcpt(strings.Repeat("x", 60)+string(rune('a'+i%26))+"@example.net"))
	}
	id := aq.add(Message{Account: "mjl", MailFrom: "mjl@example.org"}, adminNow.Add(time.Hour), rcpts...)
	err := aq.q.do(func(w *wtx) error {
		_, l, err := readMessage(w.tx, id)
		for _, rc := range l {
			rc.LastError = strings.Repeat("ö", 400)
			if err := w.tx.Bucket([]byte(bucketRcpts)).Put(rcptKey(rc.Msg, rc.Seq), rc.marshal()); err != nil {
				return err
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	mc := aq.master()
	ctx := testContext(t)
	var got []ipc.QueueEntry
	pages := 0
	for {
		rep, err := mc.Call(ctx, &ipc.QueueList{Start: uint32(len(got))})
		if err != nil {
			t.Fatal(err)
		}
		l := rep.Msg.(*ipc.QueueListing)
		pages++
		if l.Total != 120 || len(l.Entries) == 0 {
			t.Fatalf("page %d: total %d, %d entries", pages, l.Total, len(l.Entries))
		}
		got = append(got, l.Entries...)
		if !l.More {
			break
		}
	}
	if len(got) != 120 || pages < 3 {
		t.Errorf("%d entries in %d pages", len(got), pages)
	}
	for i, e := range got {
		if e.Seq != uint32(i) || len(e.LastError) > ipc.MaxQueueError || !strings.HasPrefix(e.LastError, "ööö") {
			t.Errorf("entry %d: seq %d, error of %d bytes", i, e.Seq, len(e.LastError))
		}
	}
}
