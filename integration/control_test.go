//go:build linux

package integration

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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

// TestServiceManagerNotify: with NOTIFY_SOCKET set (systemd Type=notify),
// master reports READY=1 once every role is ready, RELOADING=1 then READY=1
// around a reload, and STOPPING=1 when it stops.
func TestServiceManagerNotify(t *testing.T) {
	needRoot(t)
	const base = 64310
	dir, conf := writeConfig(t, confOptions{baseUID: base})
	sock := filepath.Join(dir, "notify.sock")
	pc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	msgs := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := pc.Read(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	expect := func(want string) string {
		t.Helper()
		select {
		case m := <-msgs:
			if !strings.Contains(m, want) {
				t.Fatalf("notify message %q, want %s", m, want)
			}
			return m
		case <-time.After(30 * time.Second):
			t.Fatalf("no %s notification", want)
		}
		return ""
	}

	in := &instance{t: t, dir: dir, conf: conf, baseUID: base, stderr: newSyncBuffer(), done: make(chan struct{})}
	in.cmd = exec.Command(filepath.Join(binDir, "moxd-master"), "-d", "-f", conf)
	in.cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	in.cmd.Stderr, in.cmd.Stdout = in.stderr, in.stderr
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { in.exitErr = in.cmd.Wait(); close(in.done) }()
	defer func() {
		in.stop()
		waitNoProcs(t, base, base+7)
	}()

	m := expect("READY=1")
	if !strings.Contains(m, fmt.Sprintf("MAINPID=%d", in.cmd.Process.Pid)) {
		t.Errorf("READY message %q lacks MAINPID=%d", m, in.cmd.Process.Pid)
	}
	if st, err := in.status(); err != nil || len(st.Down()) != 0 {
		t.Errorf("READY=1 sent before every role was ready: %+v, %v", st, err)
	}
	if out, err := exec.Command(filepath.Join(binDir, "moxctl"), "-f", conf, "reload").CombinedOutput(); err != nil {
		t.Fatalf("moxctl reload: %v\n%s", err, out)
	}
	expect("RELOADING=1")
	expect("READY=1")
	in.cmd.Process.Signal(syscall.SIGTERM)
	expect("STOPPING=1")
	// No worker may inherit the variable: their environment is empty.
	if strings.Contains(in.stderr.String(), "NOTIFY_SOCKET") {
		t.Errorf("NOTIFY_SOCKET leaked into logs")
	}
}
