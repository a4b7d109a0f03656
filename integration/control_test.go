//go:build linux

package integration

import (
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestControlSocketAccess: only root and members of admin_group may use
// moxctl; the socket's mode and master's peer-credential check both hold.
func TestControlSocketAccess(t *testing.T) {
	needRoot(t)
	const base = 64280
	const adminGID = 64290
	dir, conf := writeConfig(t, confOptions{baseUID: base, extraTop: "admin_group = \"64290\"\n"})
	in := start(t, dir, conf, base)
	defer func() {
		in.stop()
		waitNoProcs(t, base, base+7)
	}()
	in.waitReady()
	moxctl := func(uid, gid uint32, groups ...uint32) (string, int) {
		cmd := exec.Command(filepath.Join(binDir, "moxctl"), "-f", conf, "status")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: groups}}
		cmd.Dir = "/"
		out, _ := cmd.CombinedOutput()
		return string(out), cmd.ProcessState.ExitCode()
	}
	if out, code := moxctl(64291, adminGID); code != 0 || !strings.Contains(out, "ready") {
		t.Errorf("member of admin_group (primary group): exit %d\n%s", code, out)
	}
	if out, code := moxctl(64292, 64292, adminGID); code != 0 {
		t.Errorf("member of admin_group (supplementary group): exit %d\n%s", code, out)
	}
	if out, code := moxctl(64293, 64293); code == 0 || strings.Contains(out, "ROLE") {
		t.Errorf("a user outside admin_group got status: exit %d\n%s", code, out)
	}
	// A role's own uid is no admin either.
	if out, code := moxctl(base+3, base+3); code == 0 {
		t.Errorf("the smtp role's uid got status: exit %d\n%s", code, out)
	}
}
