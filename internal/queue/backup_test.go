package queue

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"moxd/internal/ipc"
	"moxd/internal/queue/queueclient"
)

// masterConn returns a new channel from master to the queue, served by
// the handler Run installs for master.
func (tq *testQueue) masterConn() *ipc.Conn {
	t := tq.t
	t.Helper()
	a, b, err := ipc.Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	qc, err := ipc.New(a, ipc.Options{Local: ipc.RoleQueue, Peer: ipc.RoleMaster, Handler: ipc.HandlerFunc(tq.sv.serveMaster)})
	if err != nil {
		t.Fatal(err)
	}
	mc, err := ipc.New(b, ipc.Options{Local: ipc.RoleMaster, Peer: ipc.RoleQueue})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		<-mc.Done()
		qc.Close()
	}()
	t.Cleanup(func() { mc.Close() })
	return mc
}

// backupDir makes DIR/queue as master does: DIR closed to others, the
// part opened by master. It returns the part's path and its fd.
func backupDir(t *testing.T) (string, *os.File) {
	t.Helper()
	top := filepath.Join(t.TempDir(), "backup")
	part := filepath.Join(top, "queue")
	if err := os.MkdirAll(part, 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(part)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return part, f
}

// TestBackup: master's QueueBackup writes a queue that verifies clean and
// opens with the submitted messages, the local retry and the DMARC
// evaluations, including those still buffered.
func TestBackup(t *testing.T) {
	tq := newTestQueue(t, testSlice())
	ctx := testContext(t)
	s := tq.submitter(ipc.RoleSubmission)
	env := queueclient.Envelope{Token: tq.store.token("mjl", ipc.RoleSubmission), MailFrom: "mjl@example.org"}
	for i := range 3 {
		if _, err := submit(ctx, s, env, testMessage("mjl@example.org", "X-Moxd-Extra-N: "+string(rune('a'+i))), "a@example.net", "b@example.net"); err != nil {
			t.Fatal(err)
		}
	}
	// The local retry's first attempt is a minute away.
	smtp := tq.conn(ipc.RoleSMTP)
	if err := localRetry(t, tq, smtp, "Subject: r\r\n\r\nbody\r\n", "x@example.org"); err != nil {
		t.Fatal(err)
	}
	if err := smtp.Notify(sampleEval("example.net", time.Now().Unix())); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "evaluation buffered", func() bool {
		tq.sv.reports.mu.Lock()
		defer tq.sv.reports.mu.Unlock()
		return len(tq.sv.reports.buf) == 1
	})

	part, df := backupDir(t)
	mc := tq.masterConn()
	rep, err := mc.Call(ctx, &ipc.QueueBackup{Path: part}, df)
	if err != nil {
		t.Fatal(err)
	}
	res := rep.Msg.(*ipc.QueueBackupResult)
	if res.Messages != 4 || res.Recipients != 7 || res.Files != 4 {
		t.Errorf("result %+v, want 4 messages, 7 recipients, 4 files", res)
	}
	// The running queue goes on; a second backup into the same part is
	// refused.
	if _, err := mc.Call(ctx, &ipc.QueueBackup{Path: part}, df); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("backup into a used directory: %v", err)
	}
	for _, name := range []string{dbName, reportsDBName} {
		if fi, err := os.Stat(filepath.Join(part, name)); err != nil || fi.Mode().Perm() != fileMode {
			t.Errorf("%s: %v %v", name, fi, err)
		}
	}

	problems, err := Verify(part)
	if err != nil || len(problems) != 0 {
		t.Fatalf("verify backup: %v %v", problems, err)
	}
	q, err := openQueue(part, testLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if n := q.messages.Load(); n != 4 {
		t.Errorf("%d messages in the restored queue", n)
	}
	for id := uint64(1); id <= 4; id++ {
		m, rs, err := q.loadMessage(id)
		if err != nil {
			t.Fatalf("message %d: %v", id, err)
		}
		b, err := os.ReadFile(q.filePath(m.FileID))
		if err != nil || int64(len(b)) != m.Size {
			t.Errorf("message %d: file of %d bytes (%v), record says %d", id, len(b), err, m.Size)
		}
		if id <= 3 && (m.Extra["n"] != string(rune('a'+id-1)) || len(rs) != 2) {
			t.Errorf("message %d: extra %v, %d recipients", id, m.Extra, len(rs))
		}
		if id == 4 && (!m.LocalOnly || len(rs) != 1) {
			t.Errorf("local retry %+v, %d recipients", m, len(rs))
		}
	}
	r, err := openReports(part, testLog())
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	if l, err := r.evaluations("example.net"); err != nil || len(l) != 1 {
		t.Errorf("evaluations in the backup: %d, %v", len(l), err)
	}
}

// TestBackupHoldsFiles: a message that leaves the queue while a backup
// runs keeps its file until the backup ends; then the file and its unlink
// record go.
func TestBackupHoldsFiles(t *testing.T) {
	dir := mkdir(t)
	q, err := openQueue(dir, testLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	tmp, err := createTemp(q.tmpDir, "msg")
	if err != nil {
		t.Fatal(err)
	}
	tmp.WriteString("x")
	tmp.Close()
	id, err := q.addMessage(&newMessage{msg: Message{LocalOnly: true}, rcpts: []Recipient{{Address: "a@example.org"}}, tmp: tmp.Name(), size: 1, first: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := q.loadMessage(id)
	if err != nil {
		t.Fatal(err)
	}
	q.backupMu.Lock()
	q.backups++ // as backup does before its snapshot
	q.backupMu.Unlock()
	if _, err := q.recordAttempt(id, []outcome{{Seq: 0, Delivered: true}}, time.Now(), DefaultRetryDelays()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(q.filePath(m.FileID)); err != nil {
		t.Fatalf("file deleted during the backup: %v", err)
	}
	q.releaseHeld()
	if _, err := os.Stat(q.filePath(m.FileID)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("file after the backup: %v", err)
	}
	// The unlink record is cleared in the next commit.
	if err := q.do(func(w *wtx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	q.db.View(func(tx *bolt.Tx) error {
		if n := tx.Bucket([]byte(bucketUnlink)).Stats().KeyN; n != 0 {
			t.Errorf("%d unlink records after the backup", n)
		}
		return nil
	})
	q.Close()
	problems, err := Verify(dir)
	if err != nil || len(problems) != 0 {
		t.Errorf("verify: %v %v", problems, err)
	}
}

// TestBackupOnlyFromMaster: web cannot send the backup request with the
// directory (its rule carries no fds), and queue's handler for web does
// not serve queue administration at all.
func TestBackupOnlyFromMaster(t *testing.T) {
	tq := newTestQueue(t, testSlice())
	ctx := testContext(t)
	part, df := backupDir(t)
	web := tq.conn(ipc.RoleWeb)
	if _, err := web.Call(ctx, &ipc.QueueBackup{Path: part}, df); err == nil || !strings.Contains(err.Error(), "may not pass fds") {
		t.Errorf("backup request from web: %v", err)
	}
	// Even if it arrived, on web's channel.
	tq.sv.channel = func(*ipc.Conn) (ipc.Role, uint64, bool) { return ipc.RoleWeb, 1, true }
	dup, err := os.Open(part)
	if err != nil {
		t.Fatal(err)
	}
	req := &ipc.Request{Msg: &ipc.QueueBackup{Path: part}, Files: []*os.File{dup}}
	if _, _, err := tq.sv.serve(ctx, req); err == nil || !strings.Contains(err.Error(), "does not serve") {
		t.Errorf("queueadmin through the handler for the other roles: %v", err)
	}
	if ents, _ := os.ReadDir(part); len(ents) != 0 {
		t.Errorf("backup written: %v", ents)
	}
}

// TestVerifyFix: -fix removes what moxd-queue would remove at start, and
// nothing else.
func TestVerifyFix(t *testing.T) {
	tq := newTestQueue(t, testSlice())
	smtp := tq.conn(ipc.RoleSMTP)
	if err := localRetry(t, tq, smtp, "Subject: r\r\n\r\nbody\r\n", "x@example.org"); err != nil {
		t.Fatal(err)
	}
	tq.stop()
	// A file of a transaction that never committed and a spool left in
	// tmp/; the message's own file must stay.
	uncommitted := filepath.Join(tq.dir, "msg", "0000", "ff")
	msgFile := filepath.Join(tq.dir, "msg", "0000", "1")
	m, _, _ := func() (*Message, []*Recipient, error) {
		q, err := openQueue(tq.dir, testLog(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		return q.loadMessage(1)
	}()
	if m == nil || m.FileID != 1 {
		t.Fatalf("message 1: %+v", m)
	}
	os.WriteFile(uncommitted, []byte("x"), 0o600)
	os.WriteFile(filepath.Join(tq.dir, "tmp", "spool-left"), []byte("x"), 0o600)
	problems, err := VerifyFix(tq.dir, false)
	if err != nil || len(problems) != 1 || !strings.Contains(problems[0].What, "nextfile") || problems[0].Fixed {
		t.Fatalf("verify: %+v %v", problems, err)
	}
	problems, err = VerifyFix(tq.dir, true)
	if err != nil || len(problems) != 2 || !problems[0].Fixed || !problems[1].Fixed || problems[1].Where != "tmp/spool-left" {
		t.Fatalf("verify -fix: %+v %v", problems, err)
	}
	if _, err := os.Stat(uncommitted); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("uncommitted file after -fix: %v", err)
	}
	if _, err := os.Stat(msgFile); err != nil {
		t.Errorf("message file after -fix: %v", err)
	}
	if problems, err := Verify(tq.dir); err != nil || len(problems) != 0 {
		t.Errorf("verify after -fix: %+v %v", problems, err)
	}
}
