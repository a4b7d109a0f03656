package queue

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"moxd/internal/ipc"
	"moxd/internal/queue/queueclient"
)

// TestCrashBeforeCommit kills a queue process after the message file was
// written and linked but before the commit: on reopen there is no record,
// no message file and nothing in tmp/; the submitter never got an answer.
func TestCrashBeforeCommit(t *testing.T) {
	if os.Getenv("MOXD_QUEUE_CRASH_DIR") != "" {
		t.Skip("helper process")
	}
	dir := mkdir(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "MOXD_QUEUE_CRASH_DIR="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(testDeadline)
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("helper ended before the commit point")
			}
			if l == "before-commit" {
				break wait
			}
		case <-timeout:
			t.Fatal("helper did not reach the commit point")
		}
	}
	// The file is in tmp/ and linked into msg/ now.
	if n := countFiles(t, filepath.Join(dir, "msg")); n != 1 {
		t.Fatalf("%d files in msg/ at the commit point, want 1", n)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed = true
	for range lines {
	}

	q, err := openQueue(dir, testLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if n := q.messages.Load(); n != 0 {
		t.Errorf("%d messages after the crash, want 0", n)
	}
	if _, _, err := q.loadMessage(1); err == nil {
		t.Errorf("message 1 recorded")
	}
	if n := countFiles(t, q.msgDir); n != 0 {
		t.Errorf("%d message files after reopen, want 0", n)
	}
	if ents, _ := os.ReadDir(q.tmpDir); len(ents) != 0 {
		t.Errorf("%d files in tmp/ after reopen", len(ents))
	}
	// The queue works on: the next message gets file id 1 again.
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
	if err != nil || m.FileID != 1 {
		t.Fatalf("message after crash: %+v, %v", m, err)
	}
	if b, err := os.ReadFile(q.filePath(1)); err != nil || string(b) != "x" {
		t.Errorf("file 1: %q, %v", b, err)
	}
	q.Close()
	problems, err := Verify(dir)
	if err != nil || len(problems) != 0 {
		t.Errorf("verify after the crash: %v, %v", problems, err)
	}
}

// TestCrashHelper is the process TestCrashBeforeCommit kills: it submits
// a message and stops in the commit, before the commit.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv("MOXD_QUEUE_CRASH_DIR")
	if dir == "" {
		t.Skip("run by TestCrashBeforeCommit")
	}
	tq := openTestQueue(t, dir, testSlice(), newFakeStore(), nil)
	tq.sv.q.beforeCommit = func() {
		os.Stdout.WriteString("before-commit\n")
		select {} // killed here
	}
	s := tq.submitter(ipc.RoleSubmission)
	env := queueclient.Envelope{Token: tq.store.token("mjl", ipc.RoleSubmission), MailFrom: "mjl@example.org"}
	_, err := submit(testContext(t), s, env, testMessage("mjl@example.org"), "you@example.net")
	t.Fatalf("submit returned (%v) instead of being killed", err)
}

func countFiles(t testing.TB, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDBInUse: a second opener fails fast with a clear error.
func TestDBInUse(t *testing.T) {
	dir := mkdir(t)
	q, err := openQueue(dir, testLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	start := time.Now()
	_, err = openDB(filepath.Join(dir, dbName), 100*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open: %v, want an in-use error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second open took %v", d)
	}
}

// TestRecords round-trips the record encodings and refuses damaged ones.
func TestRecords(t *testing.T) {
	m := &Message{ID: 7, FileID: 9, Size: 1234, Account: "mjl", MailFrom: "mjl@example.org", RequireTLS: RequireTLSYes,
		SMTPUTF8: true, LocalOnly: true, Ret: ipc.RetFull, EnvID: "e", Extra: map[string]string{"b": "2", "a": "1"},
		MessageID: "<x@y>", Subject: "s", Queued: time.Unix(0, 1700000000123456789), Received: time.Unix(0, 1700000000000000001)}
	b := m.marshal()
	got, err := unmarshalMessage(7, b)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Queued.Equal(m.Queued) || !got.Received.Equal(m.Received) {
		t.Errorf("times %v %v", got.Queued, got.Received)
	}
	got.Queued, got.Received = m.Queued, m.Received
	if got.ID != m.ID || got.FileID != m.FileID || got.Extra["a"] != "1" || got.Extra["b"] != "2" || got.Subject != "s" || got.RequireTLS != RequireTLSYes || !got.LocalOnly || !got.SMTPUTF8 || got.EightBit {
		t.Errorf("message round trip: %+v", got)
	}
	for _, bad := range [][]byte{nil, {2}, b[:len(b)-1], append(append([]byte{}, b...), 0)} {
		if _, err := unmarshalMessage(7, bad); err == nil {
			t.Errorf("damaged record %x decoded", bad)
		}
	}
	rc := &Recipient{Msg: 7, Seq: 3, Address: "a@b", Notify: ipc.NotifyNever, NextAttempt: time.Unix(5, 0), Attempts: 2, LastError: "x", Held: true, State: RcptFailed}
	gr, err := unmarshalRecipient(rcptKey(7, 3), rc.marshal())
	if err != nil || gr.Msg != 7 || gr.Seq != 3 || gr.Address != "a@b" || gr.Attempts != 2 || !gr.Held || gr.State != RcptFailed || !gr.NextAttempt.Equal(rc.NextAttempt) {
		t.Errorf("recipient round trip: %+v, %v", gr, err)
	}
}

// TestCounters reports what the status command shows.
func TestCounters(t *testing.T) {
	tq := newTestQueue(t, testSlice())
	ctx := testContext(t)
	s := tq.submitter(ipc.RoleSubmission)
	env := queueclient.Envelope{Token: tq.store.token("mjl", ipc.RoleSubmission), MailFrom: "mjl@example.org"}
	if _, err := submit(ctx, s, env, testMessage("mjl@example.org"), "a@example.net", "b@example.net"); err != nil {
		t.Fatal(err)
	}
	submit(ctx, s, env, testMessage("other@example.org"), "a@example.net")
	got := map[string]uint64{}
	for _, c := range tq.sv.counters() {
		got[c.Name] = c.Value
	}
	want := map[string]uint64{"messages_queued": 1, "recipients_queued": 2, "submissions_accepted": 1, "submissions_refused": 1, "dmarc_evaluations_stored": 0}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("counter %s = %d, want %d", k, got[k], v)
		}
	}
}

// TestVerify finds what a damaged queue directory has.
func TestVerify(t *testing.T) {
	tq := newTestQueue(t, testSlice())
	ctx := testContext(t)
	s := tq.submitter(ipc.RoleSubmission)
	env := queueclient.Envelope{Token: tq.store.token("mjl", ipc.RoleSubmission), MailFrom: "mjl@example.org"}
	for range 2 {
		if _, err := submit(ctx, s, env, testMessage("mjl@example.org"), "you@example.net"); err != nil {
			t.Fatal(err)
		}
	}
	q := tq.sv.q
	if _, err := Verify(tq.dir); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("verify of a queue in use: %v", err)
	}
	tq.stop()
	if problems, err := Verify(tq.dir); err != nil || len(problems) != 0 {
		t.Fatalf("verify of a good queue: %v, %v", problems, err)
	}
	if err := os.Remove(q.filePath(1)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(q.filePath(2), []byte("changed"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(q.filePath(9), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	problems, err := Verify(tq.dir)
	if err != nil {
		t.Fatal(err)
	}
	var l []string
	for _, p := range problems {
		l = append(l, p.Where+": "+p.What)
	}
	got := strings.Join(l, "\n")
	for _, want := range []string{"message 1: message file:", "message 2: message file has 7 bytes", "file 0000/9: at or above nextfile"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
}
