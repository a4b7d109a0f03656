package master

import (
	"log/slog"
	"os"
	"os/exec"
	"testing"
	"time"

	"moxd/internal/ipc"
)

// TestViolationRateLimit: a violation report restarts the named peer, but a
// worker repeating reports cannot keep it restarting.
func TestViolationRateLimit(t *testing.T) {
	m := &Master{
		log:        slog.New(slog.DiscardHandler),
		procs:      map[ipc.Role]*proc{},
		violations: map[[2]ipc.Role]time.Time{},
	}
	reporter := &proc{role: ipc.RoleSMTP, gen: 1, state: stateReady}
	m.procs[ipc.RoleSMTP] = reporter
	store := &proc{role: ipc.RoleStore, state: stateReady, startedAt: time.Now().Add(-time.Hour)}
	m.procs[ipc.RoleStore] = store

	// runPeer gives store a live process to be killed.
	runPeer := func() *exec.Cmd {
		cmd := exec.Command("sleep", "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		store.process, _ = os.FindProcess(cmd.Process.Pid)
		return cmd
	}
	killed := func(cmd *exec.Cmd) bool {
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
			return true
		case <-time.After(time.Second):
			cmd.Process.Kill()
			<-done
			return false
		}
	}

	first := runPeer()
	m.violation(reporter, 1, ipc.RoleStore, "bad frame")
	if !killed(first) {
		t.Fatalf("first violation report did not restart store")
	}
	second := runPeer()
	m.violation(reporter, 1, ipc.RoleStore, "bad frame again")
	if killed(second) {
		t.Errorf("a second report within %s restarted store again", violationWindow)
	}
	// Another reporter's first report counts on its own.
	imap := &proc{role: ipc.RoleIMAP, gen: 7, state: stateReady}
	m.procs[ipc.RoleIMAP] = imap
	third := runPeer()
	m.violation(imap, 7, ipc.RoleStore, "bad frame")
	if !killed(third) {
		t.Errorf("a report from another role was ignored")
	}
	// A report from a reporter's previous generation is ignored.
	fourth := runPeer()
	m.violations = map[[2]ipc.Role]time.Time{}
	m.violation(reporter, 0, ipc.RoleStore, "stale")
	if killed(fourth) {
		t.Errorf("a report from a dead reporter generation restarted store")
	}
}
