package queue

import (
	"strings"
	"testing"
	"time"
)

// TestVerifyFromIDs: verifydata checks that the fromids index and the
// retired records of messages with a FromID agree.
func TestVerifyFromIDs(t *testing.T) {
	dir := mkdir(t)
	q, err := openQueue(dir, testLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	m := &Message{ID: 7, Account: "mjl", MailFrom: "mjl@example.org", FromID: "k3jd8xq2"}
	rc := &Recipient{Msg: 7, Seq: 0, Address: "you@example.net"}
	if err := q.do(func(w *wtx) error { return w.retire(m, rc, now, true, "") }); err != nil {
		t.Fatal(err)
	}
	q.Close()
	if problems, err := Verify(dir); err != nil || len(problems) != 0 {
		t.Fatalf("verify: %v %v", problems, err)
	}

	q, err = openQueue(dir, testLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = q.do(func(w *wtx) error {
		return w.tx.Bucket([]byte(bucketFromIDs)).Delete(fromIDKey(m.FromID, retiredKey(now, 7, 0)))
	})
	q.Close()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := Verify(dir)
	if err != nil || len(problems) != 1 || !strings.Contains(problems[0].What, "from id k3jd8xq2 missing") {
		t.Fatalf("verify without the index entry: %v %v", problems, err)
	}
}
