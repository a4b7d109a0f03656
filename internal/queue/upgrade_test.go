package queue

import (
	"encoding/binary"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// queueRecords reads every message with its recipients.
func queueRecords(t *testing.T, q *Queue) map[uint64][2]any {
	t.Helper()
	l := map[uint64][2]any{}
	err := q.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketMsgs)).ForEach(func(k, v []byte) error {
			m, rs, err := readMessage(tx, binary.BigEndian.Uint64(k))
			if err != nil {
				return err
			}
			l[m.ID] = [2]any{m, rs}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestUpgrade opens the queues written by earlier versions
// (testdata/upgrade/v*/queue) with the current code: each verifies clean,
// opens, and holds what GenTestData wrote.
func TestUpgrade(t *testing.T) {
	versions, err := filepath.Glob("../../testdata/upgrade/v*/queue")
	if err != nil || len(versions) == 0 {
		t.Fatalf("no queue under testdata/upgrade: %v", err)
	}
	for _, v := range versions {
		t.Run(filepath.Base(filepath.Dir(v)), func(t *testing.T) {
			// Work on a copy: opening may change the directory.
			dst := filepath.Join(t.TempDir(), "queue")
			if out, err := exec.Command("cp", "-a", v, dst).CombinedOutput(); err != nil {
				t.Fatalf("copy %s: %v\n%s", v, err, out)
			}
			if problems, err := Verify(dst); err != nil || len(problems) != 0 {
				t.Fatalf("verify %s: %v %v", v, problems, err)
			}
			q, err := openQueue(dst, testLog(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			recs := queueRecords(t, q)
			var extra, local, failed, attempted bool
			for id, r := range recs {
				m, rs := r[0].(*Message), r[1].([]*Recipient)
				if len(rs) == 0 || m.Size == 0 || m.Queued.IsZero() {
					t.Errorf("message %d: %+v, %d recipients", id, m, len(rs))
				}
				extra = extra || len(m.Extra) > 0
				local = local || m.LocalOnly
				for _, rc := range rs {
					failed = failed || rc.State == RcptFailed
					attempted = attempted || rc.State == RcptQueued && rc.Attempts > 0
				}
			}
			if len(recs) == 0 || !extra || !local || !failed || !attempted {
				t.Errorf("%d messages; extra data %v, local retry %v, failed recipient %v, recipient after an attempt %v", len(recs), extra, local, failed, attempted)
			}
			if ids, _, err := q.dueMessages(dueLocal, time.Now().Add(365*24*time.Hour), 10); err != nil || len(ids) == 0 {
				t.Errorf("local due index: %v %v", ids, err)
			}
			r, err := openReports(dst, testLog())
			if err != nil {
				t.Fatal(err)
			}
			l, err := r.evaluations("example.net")
			r.close()
			if err != nil || len(l) == 0 {
				t.Errorf("dmarc evaluations: %d, %v", len(l), err)
			}
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			if problems, err := Verify(dst); err != nil || len(problems) != 0 {
				t.Errorf("verify after opening: %v %v", problems, err)
			}
		})
	}
}

// TestGenTestData: the test data verifies clean and is the same on every
// run.
func TestGenTestData(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	var runs []map[uint64][2]any
	for range 2 {
		dir := mkdir(t)
		td, err := GenTestData(dir, now)
		if err != nil {
			t.Fatal(err)
		}
		if td != (TestData{Messages: 4, Recipients: 5, Evaluations: 2, Retired: 1, Hooks: 2}) {
			t.Errorf("wrote %+v", td)
		}
		if problems, err := Verify(dir); err != nil || len(problems) != 0 {
			t.Fatalf("verify: %v %v", problems, err)
		}
		q, err := openQueue(dir, testLog(), nil)
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, queueRecords(t, q))
		q.Close()
	}
	if !reflect.DeepEqual(runs[0], runs[1]) {
		t.Errorf("second run differs:\n%v\n%v", runs[0], runs[1])
	}
	m := runs[0][1][0].(*Message)
	if m.Extra["campaign"] != "spring" || m.Extra["customer-id"] != "42" || m.RequireTLS != RequireTLSYes || m.EnvID != "env-q1" {
		t.Errorf("message 1: %+v", m)
	}
}
