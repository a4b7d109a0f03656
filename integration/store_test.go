//go:build linux

package integration

import (
	"bytes"
	"fmt"
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

// TestBackupRestore: a backup taken during a delivery storm passes
// verifydata, and a server restored from it serves the same messages.
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
	if _, err := os.Stat(filepath.Join(backup, "manifest.txt")); err != nil {
		t.Errorf("backup has no manifest: %v", err)
	}
	if out, code := moxctlRun(t, conf, "", "verifydata", backup); code != 0 {
		t.Errorf("verifydata of the backup: exit %d\n%s", code, out)
	}
	in.stop()

	// Restore as moxctl(8) says: a fresh data directory with the backup's
	// store and keys parts, owned by their users.
	rdir, rconf := writeConfig(t, confOptions{baseUID: base})
	data := filepath.Join(rdir, "data")
	os.MkdirAll(data, 0o755)
	for i, part := range []string{"keys", "store"} {
		if out, err := exec.Command("cp", "-a", filepath.Join(backup, part), filepath.Join(data, part)).CombinedOutput(); err != nil {
			t.Fatalf("copy %s: %v\n%s", part, err, out)
		}
		uid := fmt.Sprint(base + uint32(i)) // roleNames order: keys, store
		if out, err := exec.Command("chown", "-R", uid+":"+uid, filepath.Join(data, part)).CombinedOutput(); err != nil {
			t.Fatalf("chown %s: %v\n%s", part, err, out)
		}
	}
	rin := start(t, rdir, rconf, base)
	defer rin.stop()
	rin.waitReady()
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
