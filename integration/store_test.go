//go:build linux

package integration

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"moxd/internal/ctl"
	"moxd/internal/mailproto/mbox"
)

// storeMessage is message n of a test, with a unique Message-ID.
func storeMessage(tag string, n int) string {
	return fmt.Sprintf("From: sender@example.net\r\nTo: mox@localhost\r\nSubject: %s %d\r\nMessage-ID: <%d@%s.test>\r\n\r\nBody of message %d.\r\n", tag, n, n, tag, n)
}

// moxctlDeliver delivers one message with moxctl deliver.
func moxctlDeliver(conf, addr, msg string) error {
	cmd := exec.Command(filepath.Join(binDir, "moxctl"), "-f", conf, "deliver", addr)
	cmd.Stdin = strings.NewReader(msg)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// exportIDs exports mailbox of account and returns how often each
// Message-ID occurs.
func exportIDs(t *testing.T, conf, account, mailbox string) map[string]int {
	t.Helper()
	out := filepath.Join(t.TempDir(), "export")
	if text, code := moxctlRun(t, conf, "", "export", "mbox", account, out, mailbox); code != 0 {
		t.Fatalf("export: exit %d\n%s", code, text)
	}
	var file string
	filepath.Walk(out, func(path string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			file = path
		}
		return nil
	})
	if file == "" {
		t.Fatalf("export wrote no file into %s", out)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ids := map[string]int{}
	r := mbox.NewReader(f, 1<<20)
	for {
		m, err := r.Next()
		if err != nil {
			break
		}
		for _, line := range strings.Split(string(m.Data), "\r\n") {
			if strings.HasPrefix(line, "Message-ID: ") {
				ids[strings.TrimPrefix(line, "Message-ID: ")]++
			}
		}
	}
	return ids
}

func pidOf(in *instance, name string) int {
	st, err := in.status()
	if err != nil {
		return 0
	}
	return role(st, name).PID
}

// TestStoreCrash: deliveries through the IPC API while moxd-store is
// killed: every acknowledged delivery is stored exactly once, and
// verifydata finds nothing.
func TestStoreCrash(t *testing.T) {
	needRoot(t)
	const base = 64420
	dir, conf := writeConfig(t, confOptions{baseUID: base})
	in := start(t, dir, conf, base)
	defer func() {
		in.stop()
		waitNoProcs(t, base, base+7)
	}()
	in.waitReady()

	const total = 1000
	var acked sync.Map
	var next, done atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := int(next.Add(1))
				if n > total {
					return
				}
				if err := moxctlDeliver(conf, "mox@localhost", storeMessage("crash", n)); err == nil {
					acked.Store(fmt.Sprintf("<%d@crash.test>", n), true)
				}
				done.Add(1)
			}
		}()
	}
	kills := 0
	for _, at := range []int64{150, 400, 650} {
		for done.Load() < at {
			time.Sleep(5 * time.Millisecond)
		}
		pid := pidOf(in, "store")
		if pid == 0 {
			t.Fatal("no store pid")
		}
		syscall.Kill(pid, syscall.SIGKILL)
		kills++
		in.waitStatus("store restarted", func(st ctl.Status) bool {
			r := role(st, "store")
			return r.PID != pid && r.State == "ready"
		})
	}
	wg.Wait()
	nacked := 0
	acked.Range(func(any, any) bool { nacked++; return true })
	t.Logf("%d of %d deliveries acknowledged across %d kills of moxd-store", nacked, total, kills)
	if nacked < total/2 {
		t.Fatalf("only %d of %d deliveries acknowledged", nacked, total)
	}

	ids := exportIDs(t, conf, "mox", "INBOX")
	acked.Range(func(k, _ any) bool {
		if n := ids[k.(string)]; n != 1 {
			t.Errorf("acknowledged message %s stored %d times", k, n)
		}
		return true
	})
	for id, n := range ids {
		if n != 1 {
			t.Errorf("message %s stored %d times", id, n)
		}
	}

	in.stop()
	out, code := moxctlRun(t, conf, "", "verifydata", filepath.Join(dir, "data"))
	if code != 0 {
		t.Errorf("verifydata after the crashes: exit %d\n%s", code, out)
	}
}

// submitSTARTTLS submits msg from account mox through the submission
// listener at addr with Go's net/smtp: STARTTLS verified against the
// instance's local CA, then AUTH PLAIN.
func submitSTARTTLS(dir, addr, password string, rcpts []string, msg string) error {
	pem, err := os.ReadFile(filepath.Join(dir, "data", "localca.pem"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("no certificate in localca.pem")
	}
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		return err
	}
	if err := c.StartTLS(&tls.Config{ServerName: "localhost", RootCAs: pool}); err != nil {
		return fmt.Errorf("starttls: %w", err)
	}
	// net/smtp names the server by the host it dialed.
	host, _, _ := strings.Cut(addr, ":")
	if err := c.Auth(smtp.PlainAuth("", "mox", password, host)); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if err := c.Mail("mox@localhost"); err != nil {
		return err
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// queued returns queue's messages_queued and recipients_queued counters.
func queued(t *testing.T, in *instance) (uint64, uint64) {
	t.Helper()
	st := in.waitReady()
	m, ok1 := counter(st, "queue", "messages_queued")
	r, ok2 := counter(st, "queue", "recipients_queued")
	if !ok1 || !ok2 {
		t.Fatalf("queue reports no messages_queued/recipients_queued: %+v", role(st, "queue").Counters)
	}
	return m, r
}

// TestBackupRestore: a backup taken during a delivery storm, with messages
// waiting in the queue, passes verifydata, and a server restored from it
// serves the same messages and has the same queue.
func TestBackupRestore(t *testing.T) {
	needRoot(t)
	const base = 64430
	dir, conf := writeConfig(t, confOptions{baseUID: base})
	in := start(t, dir, conf, base)
	defer func() {
		in.stop()
		waitNoProcs(t, base, base+7)
	}()
	in.waitReady()

	// Submitted messages wait in the queue, held by a hold rule that
	// holds everything: only the queue's part of the backup has them.
	const password = "integration-Backup-1"
	if out, code := moxctlRun(t, conf, password+"\n", "account", "password", "mox"); code != 0 {
		t.Fatalf("account password: exit %d\n%s", code, out)
	}
	if out, code := moxctlRun(t, conf, "", "queue", "holdrules", "add"); code != 0 {
		t.Fatalf("queue holdrules add: exit %d\n%s", code, out)
	}
	const submitted = 5
	subAddr := listenerAddr(in.waitReady(), "submission")
	for n := 1; n <= submitted; n++ {
		msg := fmt.Sprintf("From: <mox@localhost>\r\nTo: a@remote.test\r\nSubject: queued %d\r\nMessage-ID: <%d@queued.test>\r\nX-Moxd-Extra-Batch: %d\r\n\r\nWaiting in the queue.\r\n", n, n, n)
		if err := submitSTARTTLS(dir, subAddr, password, []string{"a@remote.test", fmt.Sprintf("b%d@remote.test", n)}, msg); err != nil {
			t.Fatalf("submission %d: %v", n, err)
		}
	}
	if m, r := queued(t, in); m != submitted || r != 2*submitted {
		t.Fatalf("queue has %d messages, %d recipients; want %d, %d", m, r, submitted, 2*submitted)
	}

	for n := 1; n <= 50; n++ {
		if err := moxctlDeliver(conf, "mox@localhost", storeMessage("before", n)); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := w * 100000; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				moxctlDeliver(conf, "mox@localhost", storeMessage("storm", n))
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	backup := filepath.Join(dir, "backup")
	out, code := moxctlRun(t, conf, "", "backup", backup)
	close(stop)
	wg.Wait()
	if code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, fmt.Sprintf("queue: %d messages, %d recipients", submitted, 2*submitted)) {
		t.Errorf("backup output lacks the queue's counts:\n%s", out)
	}
	manifest, err := os.ReadFile(filepath.Join(backup, "manifest.txt"))
	if err != nil {
		t.Errorf("backup has no manifest: %v", err)
	}
	for _, want := range []string{fmt.Sprintf("queue: %d messages, %d recipients", submitted, 2*submitted), "  queue/queue.db\n", "  queue/reports.db\n", "  queue/msg/0000/1\n"} {
		if !strings.Contains(string(manifest), want) {
			t.Errorf("manifest lacks %q", want)
		}
	}
	for part, uid := range map[string]uint32{"queue": base + 2, "store": base + 1} { // roleNames order: keys, store, queue
		fi, err := os.Stat(filepath.Join(backup, part))
		if err != nil || fi.Mode().Perm() != 0o700 || fi.Sys().(*syscall.Stat_t).Uid != uid {
			t.Errorf("backup part %s: %v %v, want owner %d, mode 0700", part, fi.Mode(), err, uid)
		}
	}
	if out, code := moxctlRun(t, conf, "", "verifydata", backup); code != 0 || !strings.Contains(out, "queue checked in "+filepath.Join(backup, "queue")+", 0 problems") {
		t.Errorf("verifydata of the backup: exit %d\n%s", code, out)
	}
	in.stop()

	// Restore as moxctl(8) says: a fresh data directory with the backup's
	// queue, store and keys parts, owned by their users.
	rdir, rconf := writeConfig(t, confOptions{baseUID: base})
	data := filepath.Join(rdir, "data")
	os.MkdirAll(data, 0o755)
	for i, part := range []string{"keys", "store", "queue"} {
		if out, err := exec.Command("cp", "-a", filepath.Join(backup, part), filepath.Join(data, part)).CombinedOutput(); err != nil {
			t.Fatalf("copy %s: %v\n%s", part, err, out)
		}
		uid := fmt.Sprint(base + uint32(i)) // roleNames order: keys, store, queue
		if out, err := exec.Command("chown", "-R", uid+":"+uid, filepath.Join(data, part)).CombinedOutput(); err != nil {
			t.Fatalf("chown %s: %v\n%s", part, err, out)
		}
	}
	if out, code := moxctlRun(t, rconf, "", "verifydata", data); code != 0 {
		t.Errorf("verifydata of the restored data directory: exit %d\n%s", code, out)
	}
	rin := start(t, rdir, rconf, base)
	defer rin.stop()
	rin.waitReady()
	if m, r := queued(t, rin); m != submitted || r != 2*submitted {
		t.Errorf("restored queue has %d messages, %d recipients; want %d, %d", m, r, submitted, 2*submitted)
	}
	ids := exportIDs(t, rconf, "mox", "INBOX")
	for n := 1; n <= 50; n++ {
		if id := fmt.Sprintf("<%d@before.test>", n); ids[id] != 1 {
			t.Errorf("restored server has message %s %d times", id, ids[id])
		}
	}
	storm := 0
	for id, c := range ids {
		if c != 1 {
			t.Errorf("restored message %s stored %d times", id, c)
		}
		if strings.Contains(id, "storm") {
			storm++
		}
	}
	t.Logf("restored %d messages, %d from the storm during the backup", len(ids), storm)
}

// TestImportExport: moxctl import of a damaged mbox reports each skipped
// message by offset, and an export gives the imported messages back.
func TestImportExport(t *testing.T) {
	in := suite(t)
	in.waitReady()
	var buf bytes.Buffer
	w := mbox.NewWriter(&buf)
	for i := 1; i <= 20; i++ {
		w.WriteMessage("sender@example.net", time.Unix(1700000000+int64(i), 0), mbox.Flags{Seen: i%2 == 0}, []string{"imported"}, strings.NewReader(storeMessage("import", i)))
	}
	w.Flush()
	damaged := buf.Len()
	buf.WriteString("From nobody Thu Jan  1 00:00:00 2026\n")
	path := filepath.Join(t.TempDir(), "in.mbox")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := moxctlRun(t, in.conf, "", "import", "mbox", "mox", "Imported", path)
	if code != 1 {
		t.Fatalf("import with a skipped message: exit %d, want 1 (problems found)\n%s", code, out)
	}
	if !strings.Contains(out, "20") || !strings.Contains(out, fmt.Sprintf("offset %d", damaged)) {
		t.Errorf("import summary lacks the count or the skipped message's offset %d:\n%s", damaged, out)
	}
	ids := exportIDs(t, in.conf, "mox", "Imported")
	for i := 1; i <= 20; i++ {
		if id := fmt.Sprintf("<%d@import.test>", i); ids[id] != 1 {
			t.Errorf("exported %s %d times", id, ids[id])
		}
	}
}
