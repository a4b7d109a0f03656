//go:build linux

package integration

import (
	"bufio"
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

// runMaster runs moxd-master -d -f conf to completion.
func runMaster(t *testing.T, conf string) (int, string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "moxd-master"), "-d", "-f", conf)
	done := make(chan struct{})
	var out []byte
	go func() {
		out, _ = cmd.CombinedOutput()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("moxd-master kept running with a bad configuration:\n%s", out)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

// TestBadConfig: a configuration error exits non-zero, names file:line (or
// the address, role and key) and starts no worker.
func TestBadConfig(t *testing.T) {
	needRoot(t)
	const base = 64230
	busy, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyAddr := busy.Addr().String()

	cases := []struct {
		name  string
		opts  confOptions
		wants func(conf string) []string
	}{
		{
			name:  "unknown key",
			opts:  confOptions{extraTop: "log_levle = \"debug\"\n"},
			wants: func(conf string) []string { return []string{conf + ":4:", "log_levle", "unknown key"} },
		},
		{
			name:  "port in use",
			opts:  confOptions{listen: map[string]string{"submission": busyAddr}},
			wants: func(conf string) []string { return []string{busyAddr, "already in use", "listen.submission"} },
		},
		{
			name:  "unknown user",
			opts:  confOptions{userSpec: map[string]string{"smtp": "_moxd-no-such-user"}},
			wants: func(conf string) []string { return []string{"users.smtp", "_moxd-no-such-user", conf} },
		},
		{
			name:  "root user for a role",
			opts:  confOptions{userSpec: map[string]string{"keys": "0:0"}},
			wants: func(conf string) []string { return []string{"users.keys", conf} },
		},
		{
			name: "bad DKIM algorithm in domains.conf",
			opts: confOptions{domainsCfg: "[[domain]]\nname = \"localhost\"\n[[domain.dkim]]\nselector = \"s\"\nalgorithm = \"dsa\"\n"},
			wants: func(conf string) []string {
				return []string{filepath.Join(filepath.Dir(conf), "domains.conf") + ":5:", "algorithm"}
			},
		},
	}
	cases = append(cases, struct {
		name  string
		opts  confOptions
		wants func(conf string) []string
	}{
		name:  "data_dir not reachable by the role users",
		opts:  confOptions{dataDir: "private/data"},
		wants: func(conf string) []string { return []string{"data_dir in " + conf, "cannot enter", "private"} },
	})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.opts.baseUID = base
			dir, conf := writeConfig(t, c.opts)
			if c.opts.dataDir != "" {
				os.Mkdir(filepath.Join(dir, "private"), 0o700)
			}
			code, out := runMaster(t, conf)
			if code == 0 {
				t.Fatalf("exit code 0 for a bad configuration; output:\n%s", out)
			}
			for _, w := range c.wants(conf) {
				if !strings.Contains(out, w) {
					t.Errorf("error output lacks %q:\n%s", w, out)
				}
			}
			if pids := pidsOfUIDs(base, base+7); len(pids) > 0 {
				t.Errorf("worker processes started despite the bad configuration: %v", pids)
			}
			if strings.Contains(out, "role ready") {
				t.Errorf("roles were started:\n%s", out)
			}
		})
	}

	// -n checks without starting anything.
	_, conf := writeConfig(t, confOptions{baseUID: base, extraTop: "bogus = 1\n"})
	cmd := exec.Command(filepath.Join(binDir, "moxd-master"), "-n", "-f", conf)
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() == 0 || !strings.Contains(string(out), conf+":4:") {
		t.Errorf("moxd-master -n on a bad config: exit %d, output %q", cmd.ProcessState.ExitCode(), out)
	}
	_, conf = writeConfig(t, confOptions{baseUID: base})
	cmd = exec.Command(filepath.Join(binDir, "moxd-master"), "-n", "-f", conf)
	out, _ = cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 0 || !strings.Contains(string(out), "OK") {
		t.Errorf("moxd-master -n on a good config: exit %d, output %q", cmd.ProcessState.ExitCode(), out)
	}
}

// TestBuildMismatch: a worker binary from another build makes master stop
// everything and exit 75, for the service manager to restart moxd.
func TestBuildMismatch(t *testing.T) {
	needRoot(t)
	const base = 64240
	lib, err := os.MkdirTemp("", "moxd-it-libexec-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(lib)
	os.Chmod(lib, 0o755)
	for _, b := range []string{"moxd-master", "moxd-keys", "moxd-store", "moxd-queue", "moxd-imap", "moxd-web"} {
		data, err := os.ReadFile(filepath.Join(binDir, b))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(lib, b), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// smtp from "an upgrade".
	if err := buildBinaries(lib, buildID+"-upgraded", "./cmd/moxd-smtp"); err != nil {
		t.Fatal(err)
	}
	_, conf := writeConfig(t, confOptions{baseUID: base, libexec: lib})
	in := start(t, filepath.Dir(conf), conf, base)
	code := in.exitCode(60 * time.Second)
	if code != 75 {
		t.Errorf("exit code %d, want 75; log:\n%s", code, in.stderr)
	}
	if !strings.Contains(in.stderr.String(), "build") {
		t.Errorf("log does not explain the build mismatch:\n%s", in.stderr)
	}
	waitNoProcs(t, base, base+7)
}

// TestDaemon: without -d master detaches, returns 0 once everything is
// ready, writes its pid file and logs to syslog with facility mail.
func TestDaemon(t *testing.T) {
	needRoot(t)
	const base = 64250
	// Receive syslog ourselves when no syslog daemon runs (CI machines).
	var logged chan string
	if _, err := os.Stat("/dev/log"); os.IsNotExist(err) {
		pc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: "/dev/log", Net: "unixgram"})
		if err != nil {
			t.Fatalf("create /dev/log for the test: %v", err)
		}
		defer os.Remove("/dev/log")
		defer pc.Close()
		logged = make(chan string, 1000)
		go func() {
			buf := make([]byte, 8192)
			for {
				n, err := pc.Read(buf)
				if err != nil {
					return
				}
				select {
				case logged <- string(buf[:n]):
				default:
				}
			}
		}()
	}
	dir, conf := writeConfig(t, confOptions{baseUID: base})
	cmd := exec.Command(filepath.Join(binDir, "moxd-master"), "-f", conf)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("daemon start: %v\n%s", err, out)
	}
	pidb, err := os.ReadFile(filepath.Join(dir, "run", "moxd.pid"))
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	var pid int
	fmt.Sscanf(string(pidb), "%d", &pid)
	in := &instance{t: t, dir: dir, conf: conf}
	st, err := in.status()
	if err != nil || len(st.Down()) != 0 || st.Master.PID != pid {
		t.Fatalf("status after daemon start: %+v, %v (pid file says %d)", st, err, pid)
	}
	// Detached: its own session (setsid), no controlling terminal.
	if sid, err := sessionID(pid); err != nil || sid != pid {
		t.Errorf("daemon session id %d (%v), want its own session %d", sid, err, pid)
	}
	// A session open during stop is drained: it gets a 421, not a reset.
	sess, err := net.DialTimeout("tcp", listenerAddr(st, "smtp"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	sess.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(sess)
	if g, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(g, "220 ") {
		t.Fatalf("greeting: %q, %v", g, err)
	}
	moxctl := exec.Command(filepath.Join(binDir, "moxctl"), "-f", conf, "stop")
	if out, err := moxctl.CombinedOutput(); err != nil {
		t.Fatalf("moxctl stop: %v\n%s", err, out)
	}
	if l, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(l, "421 4.3.2") {
		t.Errorf("open session during stop got %q, %v; want 421 4.3.2", l, err)
	}
	waitNoProcs(t, base, base+7)
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The detached master was reparented to this test process (a
		// subreaper): reap it once it has exited.
		if ps, err := procStatus(pid); err != nil || strings.HasPrefix(ps["State"], "Z") {
			var ws syscall.WaitStatus
			syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon master %d still running after moxctl stop", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if logged != nil {
		var all []string
	collect:
		for {
			select {
			case l := <-logged:
				all = append(all, l)
			default:
				break collect
			}
		}
		text := strings.Join(all, "\n")
		// Facility mail (2) and severity info (6): <22>.
		if !strings.Contains(text, "<22>") || !strings.Contains(text, "moxd") || !strings.Contains(text, "all roles ready") {
			t.Errorf("syslog lacks mail.info lines from moxd:\n%s", text)
		}
		if !strings.Contains(text, "smtp: ") {
			t.Errorf("syslog lacks worker lines prefixed with their role:\n%s", text)
		}
	}
}

// sessionID reads the session id of pid from /proc/<pid>/stat.
func sessionID(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the parenthesised command name: state ppid pgrp session.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 4 {
		return 0, fmt.Errorf("short stat line %q", s)
	}
	var sid int
	_, err = fmt.Sscanf(f[3], "%d", &sid)
	return sid, err
}

// TestWorkerByHand: a worker binary started by hand refuses clearly: as root
// always, and otherwise because it has no channel to master.
func TestWorkerByHand(t *testing.T) {
	for _, c := range []struct {
		name string
		uid  uint32
		want string
	}{
		{"as root", 0, "refusing to run as root"},
		{"as a user", 64299, "started by moxd-master"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.uid == 0 {
				needRoot(t)
			}
			cmd := exec.Command(filepath.Join(binDir, "moxd-smtp"), "smtp")
			if os.Geteuid() == 0 && c.uid != 0 {
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: c.uid, Gid: c.uid, Groups: []uint32{}}}
			}
			cmd.Dir = "/"
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), c.want) {
				t.Errorf("moxd-smtp by hand: %v\n%s\nwant a failure saying %q", err, out, c.want)
			}
		})
	}
}
