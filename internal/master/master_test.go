package master

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestDescribeStatus describes the wait status of real exited processes.
func TestDescribeStatus(t *testing.T) {
	tests := []struct {
		name   string
		script string
		want   string
	}{
		{"exit 0", "exit 0", "exit status 0"},
		{"exit 3", "exit 3", "exit status 3"},
		{"exit 75", "exit 75", "exit status 75"},
		{"SIGKILL", "kill -KILL $$", "killed by signal " + syscall.SIGKILL.String()},
		{"SIGSEGV", "kill -SEGV $$", "killed by signal " + syscall.SIGSEGV.String()},
		{"SIGTERM", "kill -TERM $$", "killed by signal " + syscall.SIGTERM.String()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("/bin/sh", "-c", tc.script)
			err := cmd.Run()
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Fatalf("run sh: %v", err)
			}
			ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
			if !ok {
				t.Fatalf("no wait status: %T", cmd.ProcessState.Sys())
			}
			if got := describeStatus(ws); got != tc.want {
				t.Errorf("describeStatus = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestDescribeStatusOther checks a status that is neither an exit nor a
// signal (a stopped process) is still shown, as a number.
func TestDescribeStatusOther(t *testing.T) {
	stopped := syscall.WaitStatus(0x7f | uint32(syscall.SIGSTOP)<<8)
	if stopped.Exited() || stopped.Signaled() {
		t.Skip("wait status encoding of this system differs")
	}
	got := describeStatus(stopped)
	if !strings.HasPrefix(got, "wait status 0x") || !strings.Contains(got, "7f") {
		t.Errorf("describeStatus(stopped) = %q, want the raw status in hex", got)
	}
}

func TestCheckBinary(t *testing.T) {
	isRoot := os.Geteuid() == 0
	tests := []struct {
		name     string
		rootOnly bool // needs root to create the fixture (chown)
		mode     os.FileMode
		dir      bool
		missing  bool
		uid      int // owner; -1: leave as created
		asRoot   bool
		wantErr  string
	}{
		{name: "executable", mode: 0o755, uid: -1},
		{name: "executable only by owner", mode: 0o700, uid: -1},
		{name: "executable by others only", mode: 0o601, uid: -1},
		{name: "not executable", mode: 0o644, uid: -1, wantErr: "not an executable file"},
		{name: "not executable as root", mode: 0o644, uid: -1, asRoot: true, wantErr: "not an executable file"},
		{name: "directory", mode: 0o755, dir: true, uid: -1, wantErr: "not an executable file"},
		{name: "missing", missing: true, uid: -1, wantErr: "worker binary"},
		{name: "group-writable without root", mode: 0o775, uid: -1},
		{name: "group-writable as root", rootOnly: true, mode: 0o775, uid: 0, asRoot: true, wantErr: "writable by group or others"},
		{name: "world-writable as root", rootOnly: true, mode: 0o757, uid: 0, asRoot: true, wantErr: "writable by group or others"},
		{name: "root-owned as root", rootOnly: true, mode: 0o755, uid: 0, asRoot: true},
		{name: "root-owned read-only as root", rootOnly: true, mode: 0o555, uid: 0, asRoot: true},
		{name: "other owner as root", rootOnly: true, mode: 0o755, uid: 60001, asRoot: true, wantErr: "not owned by root"},
		{name: "other owner without root", rootOnly: true, mode: 0o755, uid: 60001},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.rootOnly && !isRoot {
				t.Skip("needs root to set the owner")
			}
			p := filepath.Join(t.TempDir(), "moxd-smtp")
			switch {
			case tc.missing:
			case tc.dir:
				if err := os.Mkdir(p, tc.mode); err != nil {
					t.Fatal(err)
				}
			default:
				if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				if tc.uid >= 0 {
					if err := os.Chown(p, tc.uid, tc.uid); err != nil {
						t.Fatal(err)
					}
				}
				if err := os.Chmod(p, tc.mode); err != nil {
					t.Fatal(err)
				}
			}
			err := checkBinary(p, tc.asRoot)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("checkBinary: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("checkBinary: %v, want error containing %q", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name %s", err, p)
			}
		})
	}
}

// TestCheckBinarySymlink checks that a symlink is judged by the file it
// points to.
func TestCheckBinarySymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real")
	if err := os.WriteFile(target, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "moxd-smtp")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := checkBinary(link, false); err == nil || !strings.Contains(err.Error(), "not an executable file") {
		t.Fatalf("checkBinary via symlink to a non-executable file: %v", err)
	}
	if err := os.Chmod(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := checkBinary(link, false); err != nil {
		t.Fatalf("checkBinary via symlink to an executable file: %v", err)
	}
}
