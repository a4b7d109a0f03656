//go:build linux

package integration

import (
	"os"
	"strings"
	"testing"
)

// TestZZStopShared stops the shared instance. It is in the last file so it
// runs after every test that uses the instance (go test runs tests in file
// name order, then source order).
func TestZZStopShared(t *testing.T) {
	stopMailSuite(t)
	if shared == nil {
		t.Skip("shared instance never started")
	}
	shared.t = t
	shared.stop()
	if code := shared.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("moxd-master exit code after SIGTERM = %d, want 0; log:\n%s", code, shared.stderr)
	}
	waitNoProcs(t, suiteBaseUID, suiteBaseUID+7)
	// Stop order: network roles drain first, keys last.
	log := shared.stderr.String()
	if i := strings.Index(log, "msg=stopping"); i >= 0 {
		checkOrder(t, log[i:], `msg="role stopped" role=`, [][]string{{"smtp", "submission", "imap", "web"}, {"queue"}, {"store"}, {"keys"}})
	} else {
		t.Errorf("master did not log stopping:\n%s", log)
	}
	os.RemoveAll(shared.dir)
}
