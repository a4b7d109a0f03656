package queue

import (
	"encoding/binary"
	"errors"
	bolt "go.etcd.io/bbolt"
	"moxd/internal/mailproto/dsn"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"moxd/internal/ipc"
)

// localRetry sends a LocalRetry from smtp with body as store's copy.
func localRetry(t testing.TB, tq *testQueue, c *ipc.Conn, body string, rcpts ...string) error {
	t.Helper()
	p := filepath.Join(t.TempDir(), "body")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = c.Call(testContext(t), &ipc.LocalRetry{MailFrom: "sender@example.net", Recipients: rcpts,
		Prefix: []byte("Received: from mx.example.net\r\n"), Received: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()}, f)
	return err
}

// TestLocalRetry: a recipient store failed for is delivered on a later
// attempt; the message and its file go when no recipient is left.
func TestLocalRetry(t *testing.T) {
	fs := newFakeStore()
	var fail atomic.Int32
	fail.Store(2) // the first two attempts for b fail
	fs.state = func(addr string) uint8 {
		if addr == "b@example.org" && fail.Add(-1) >= 0 {
			return ipc.RcptFailed
		}
		return ipc.RcptOK
	}
	delays := []time.Duration{20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond}
	tq := openTestQueue(t, mkdir(t), testSlice(), fs, delays)
	smtp := tq.conn(ipc.RoleSMTP)
	body := "From: x@example.net\r\nSubject: retry\r\n\r\nbody\r\n"
	if err := localRetry(t, tq, smtp, body, "a@example.org", "b@example.org"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both delivered", func() bool { return len(fs.deliveries()) == 2 })
	d := fs.deliveries()
	for _, x := range d {
		if x.body != "Received: from mx.example.net\r\n"+body || x.mailFrom != "sender@example.net" || !x.received.Equal(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)) {
			t.Errorf("delivery %+v", x)
		}
	}
	if d[0].rcpt != "a@example.org" || d[1].rcpt != "b@example.org" {
		t.Errorf("deliveries to %s, %s", d[0].rcpt, d[1].rcpt)
	}
	if n := fs.deliverN.Load(); n != 3 {
		t.Errorf("%d delivery calls, want 3 (a and b, b failed, b)", n)
	}
	waitFor(t, "message removed", func() bool { return tq.sv.q.messages.Load() == 0 && tq.sv.q.recipients.Load() == 0 })
	waitFor(t, "file removed", func() bool { return countFiles(t, tq.sv.q.msgDir) == 0 })
	tq.verifyStopped()
}

// TestLocalRetryFailures: a permanent failure and used-up attempts retire
// the recipients with a DSN to the sender each time, and a store restart
// is not an attempt.
func TestLocalRetryFailures(t *testing.T) {
	fs := newFakeStore()
	fs.state = func(addr string) uint8 {
		if addr == "gone@example.org" {
			return ipc.RcptUnknown
		}
		return ipc.RcptOverQuota
	}
	delays := []time.Duration{10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond}
	tq := openTestQueue(t, mkdir(t), testSlice(), fs, delays)
	tq.storeDown()
	smtp := tq.conn(ipc.RoleSMTP)
	if err := localRetry(t, tq, smtp, "Subject: x\r\n\r\nbody\r\n", "full@example.org", "gone@example.org"); err != nil {
		t.Fatal(err)
	}
	// While store is down, nothing counts.
	time.Sleep(100 * time.Millisecond)
	ids, _, err := tq.sv.q.dueMessages(dueLocal, time.Now().Add(time.Hour), 10)
	if err != nil || len(ids) != 1 {
		t.Fatalf("due %v, %v", ids, err)
	}
	_, rs, _ := tq.sv.q.loadMessage(ids[0])
	for _, r := range rs {
		if r.Attempts != 0 {
			t.Fatalf("recipient %s has %d attempts while store was down", r.Address, r.Attempts)
		}
	}
	tq.storeUp()
	// Both fail for good, one at once, one after its attempts: they are
	// retired as not delivered, and the sender gets a DSN (queued for
	// outbound delivery) for each.
	waitFor(t, "recipients retired", func() bool {
		_, rs, err := tq.sv.q.loadMessage(ids[0])
		return errors.Is(err, errNoMessage) && len(rs) == 0 && tq.sv.retrier.failed.Load() == 2
	})
	retired := map[string]*Retired{}
	var dsnIDs []uint64
	tq.sv.q.db.View(func(tx *bolt.Tx) error {
		tx.Bucket([]byte(bucketRetired)).ForEach(func(k, v []byte) error {
			r, err := unmarshalRetired(k, v)
			if err != nil {
				t.Error(err)
				return nil
			}
			retired[r.Address] = r
			return nil
		})
		return tx.Bucket([]byte(bucketMsgs)).ForEach(func(k, v []byte) error {
			m, err := unmarshalMessage(binary.BigEndian.Uint64(k), v)
			if err == nil && m.DSN {
				dsnIDs = append(dsnIDs, m.ID)
			}
			return nil
		})
	})
	if r := retired["full@example.org"]; r == nil || r.Delivered || r.Attempts != 3 || !strings.Contains(r.LastError, "simulated") {
		t.Errorf("over-quota recipient retired as %+v: want 3 attempts", r)
	}
	if r := retired["gone@example.org"]; r == nil || r.Delivered || r.Attempts != 1 {
		t.Errorf("unknown recipient retired as %+v: want 1 attempt (permanent)", r)
	}
	if len(dsnIDs) != 2 {
		t.Fatalf("%d DSNs queued, want 2", len(dsnIDs))
	}
	var reported []string
	for _, id := range dsnIDs {
		m, rs, err := tq.sv.q.loadMessage(id)
		if err != nil || m.MailFrom != "" || len(rs) != 1 || rs[0].Address != "sender@example.net" {
			t.Fatalf("DSN %+v to %+v, %v", m, rs, err)
		}
		f, err := os.Open(tq.sv.q.filePath(m.FileID))
		if err != nil {
			t.Fatal(err)
		}
		rep, err := dsn.Parse(f)
		f.Close()
		if err != nil || len(rep.Recipients) != 1 || rep.Recipients[0].Action != dsn.Failed {
			t.Fatalf("DSN report %+v, %v", rep, err)
		}
		reported = append(reported, rep.Recipients[0].FinalRecipient)
	}
	slices.Sort(reported)
	if !slices.Equal(reported, []string{"full@example.org", "gone@example.org"}) {
		t.Fatalf("DSNs report %v", reported)
	}
	tq.verifyStopped()
}

// TestLocalRetryFile: queue takes only regular files within the limit.
func TestLocalRetryFile(t *testing.T) {
	slice := testSlice()
	slice.MaxMessageSize = 100
	tq := newTestQueue(t, slice)
	smtp := tq.conn(ipc.RoleSMTP)
	ctx := testContext(t)

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	_, err = smtp.Call(ctx, &ipc.LocalRetry{Recipients: []string{"a@example.org"}}, r)
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("pipe as message file: %v", err)
	}
	err = localRetry(t, tq, smtp, strings.Repeat("x", 101), "a@example.org")
	if err == nil || !strings.Contains(err.Error(), "limit 100") {
		t.Errorf("large file: %v", err)
	}
	_, err = smtp.Call(ctx, &ipc.LocalRetry{Recipients: nil}, devNull(t))
	if err == nil || !strings.Contains(err.Error(), "without recipients") {
		t.Errorf("no recipients: %v", err)
	}
	if n := tq.sv.q.messages.Load(); n != 0 {
		t.Errorf("%d messages queued", n)
	}
}

// TestRetrySchedule checks the default schedule and the attempt count.
func TestRetrySchedule(t *testing.T) {
	d := DefaultRetryDelays()
	want := []time.Duration{1, 2, 4, 8, 16, 32, 64, 128}
	if len(d) != len(want) {
		t.Fatalf("%d attempts, want %d", len(d), len(want))
	}
	for i := range want {
		if d[i] != want[i]*time.Minute {
			t.Errorf("delay %d is %v, want %v", i, d[i], want[i]*time.Minute)
		}
	}

	// Recorded attempts follow the schedule: next attempt after each
	// failure, failed after the 8th.
	tq := newTestQueue(t, testSlice())
	tq.storeDown() // the retrier must not interfere
	q := tq.sv.q
	tmp, err := createTemp(q.tmpDir, "msg")
	if err != nil {
		t.Fatal(err)
	}
	tmp.Close()
	start := time.Now()
	id, err := q.addMessage(&newMessage{msg: Message{LocalOnly: true}, rcpts: []Recipient{{Address: "a@example.org"}}, tmp: tmp.Name(), first: start.Add(d[0])})
	if err != nil {
		t.Fatal(err)
	}
	now := start.Add(d[0])
	for i := 1; i <= len(d); i++ {
		failed, err := q.recordAttempt(id, []outcome{{Seq: 0, Error: "busy"}}, now, d)
		if err != nil {
			t.Fatal(err)
		}
		_, rs, _ := q.loadMessage(id)
		r := rs[0]
		if r.Attempts != i {
			t.Fatalf("attempts %d, want %d", r.Attempts, i)
		}
		if i < len(d) {
			if r.State != RcptQueued || !r.NextAttempt.Equal(now.Add(d[i])) || len(failed) != 0 {
				t.Fatalf("after attempt %d: %+v, want next attempt %v later", i, r, d[i])
			}
			ids, _, _ := q.dueMessages(dueLocal, r.NextAttempt, 10)
			if early, _, _ := q.dueMessages(dueLocal, r.NextAttempt.Add(-time.Nanosecond), 10); len(ids) != 1 || len(early) != 0 {
				t.Fatalf("due index after attempt %d: at %v, before %v", i, ids, early)
			}
			now = r.NextAttempt
		} else if r.State != RcptFailed || len(failed) != 1 {
			t.Fatalf("after the last attempt: %+v", r)
		}
	}
	tq.verifyStopped()
}
