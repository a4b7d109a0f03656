//go:build linux

// Package integration runs the real moxd binaries and checks what an admin
// would check on a running system: process credentials and restrictions in
// /proc, fds, restarts on the same sockets, TLS through moxd-keys, and how
// bad input is reported.
//
// Most tests need root (master drops privileges to per-role uids). Without
// root they are skipped, except in CI (CI set), where they fail: CI runs as
// root and these tests must run there.
package integration

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"moxd/internal/ctl"
)

// binDir holds binaries built for this test run, with buildID.
var binDir string

const buildID = "integration-test-build"

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "moxd-integration-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// Workers run under other uids and must reach the binaries.
	os.Chmod(dir, 0o755)
	binDir = dir
	if err := buildBinaries(dir, buildID, "./cmd/..."); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Orphans of a killed master become our children; reap them (see reapOrphans).
	unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	return m.Run()
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("go list -m: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func buildBinaries(dir, id string, pkgs ...string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	args := []string{"build", "-p", "2", "-trimpath", "-ldflags", "-X moxd/internal/version.buildID=" + id, "-o", dir + "/"}
	if os.Getenv("MOXD_RACE") != "" {
		// make test-race: the binaries themselves run under the race detector.
		args = append(args, "-race")
	}
	args = append(args, pkgs...)
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	return nil
}

// needRoot skips without root, but fails in CI.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("this test needs root and CI must run it as root")
	}
	t.Skip("needs root (runs in CI as root)")
}

// instance is one running moxd-master.
type instance struct {
	t       *testing.T
	dir     string
	conf    string
	baseUID uint32
	cmd     *exec.Cmd
	stderr  *syncBuffer
	done    chan struct{}
	exitErr error
}

type syncBuffer struct {
	mu  chanMutex
	buf bytes.Buffer
}

type chanMutex chan struct{}

func newSyncBuffer() *syncBuffer { return &syncBuffer{mu: make(chanMutex, 1)} }
func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}
func (b *syncBuffer) String() string {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.String()
}

var roleNames = []string{"keys", "store", "queue", "smtp", "submission", "imap", "web"}

// confOptions shape a test config.
type confOptions struct {
	baseUID    uint32
	libexec    string
	extraTop   string            // lines added at the top level
	listen     map[string]string // kind => addr; default every kind on 127.0.0.1:0
	userSpec   map[string]string // role => spec override
	domainsCfg string
	keep       bool   // do not remove the directory when the test ends (shared instance)
	dataDir    string // relative to the config dir; default "data"
	tlsExtra   string // appended after the [tls] table, e.g. [[tls.certificate]]
	// dns is the [dns] table's body; default "offline = true": no test
	// uses the machine's resolver (DESIGN.md §11).
	dns string
	// extra is appended at the end of moxd.conf (more tables).
	extra string
}

// writeConfig writes moxd.conf and domains.conf into a new directory that
// the role uids can traverse.
func writeConfig(t *testing.T, o confOptions) (dir, conf string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "moxd-it-")
	if err != nil {
		t.Fatal(err)
	}
	if !o.keep {
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	os.Chmod(dir, 0o755)
	var b strings.Builder
	data := "data"
	if o.dataDir != "" {
		data = o.dataDir
	}
	fmt.Fprintf(&b, "hostname = \"localhost\"\ndata_dir = %q\nrun_dir = %q\n", filepath.Join(dir, data), filepath.Join(dir, "run"))
	if o.libexec != "" {
		fmt.Fprintf(&b, "libexec_dir = %q\n", o.libexec)
	}
	b.WriteString(o.extraTop)
	b.WriteString("\n[users]\n")
	for i, r := range roleNames {
		spec := fmt.Sprintf("%d:%d", o.baseUID+uint32(i), o.baseUID+uint32(i))
		if s, ok := o.userSpec[r]; ok {
			spec = s
		}
		fmt.Fprintf(&b, "%s = %q\n", r, spec)
	}
	b.WriteString("\n[listen]\n")
	for _, k := range []string{"smtp", "submission", "submissions", "imap", "imaps", "http", "https"} {
		addr := "127.0.0.1:0"
		if a, ok := o.listen[k]; ok {
			addr = a
		}
		fmt.Fprintf(&b, "%s = [%q]\n", k, addr)
	}
	b.WriteString("\n[tls]\nlocal_ca = true\n")
	b.WriteString(o.tlsExtra)
	dnsConf := o.dns
	if dnsConf == "" {
		dnsConf = "offline = true\n"
	}
	b.WriteString("\n[dns]\n" + dnsConf)
	b.WriteString(o.extra)
	conf = filepath.Join(dir, "moxd.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	domains := o.domainsCfg
	if domains == "" {
		domains = "[[domain]]\nname = \"localhost\"\n[[domain.dkim]]\nselector = \"sel-ed\"\nalgorithm = \"ed25519\"\n\n[[account]]\nname = \"mox\"\naddresses = [\"mox@localhost\", \"postmaster@localhost\"]\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "domains.conf"), []byte(domains), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, conf
}

// start runs moxd-master -d -f conf.
func start(t *testing.T, dir, conf string, baseUID uint32) *instance {
	t.Helper()
	in := &instance{t: t, dir: dir, conf: conf, baseUID: baseUID, stderr: newSyncBuffer(), done: make(chan struct{})}
	in.cmd = exec.Command(filepath.Join(binDir, "moxd-master"), "-d", "-f", conf)
	in.cmd.Stderr = in.stderr
	in.cmd.Stdout = in.stderr
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		in.exitErr = in.cmd.Wait()
		close(in.done)
	}()
	return in
}

// exitCode waits for master to exit and returns its exit code.
func (in *instance) exitCode(timeout time.Duration) int {
	in.t.Helper()
	select {
	case <-in.done:
	case <-time.After(timeout):
		in.t.Fatalf("moxd-master did not exit within %s; log:\n%s", timeout, in.stderr)
	}
	return in.cmd.ProcessState.ExitCode()
}

// stop ends master with SIGTERM and waits.
func (in *instance) stop() {
	select {
	case <-in.done:
		return
	default:
	}
	in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.done:
	case <-time.After(30 * time.Second):
		in.cmd.Process.Kill()
		<-in.done
		in.t.Errorf("moxd-master did not stop within 30s after SIGTERM; log:\n%s", in.stderr)
	}
	reapOrphans()
}

func (in *instance) socket() string {
	return ctl.SocketPath(filepath.Join(in.dir, "run"))
}

func (in *instance) status() (ctl.Status, error) {
	var st ctl.Status
	err := ctl.Do(in.socket(), ctl.Request{Cmd: "status"}, &st, 10*time.Second)
	return st, err
}

// waitReady waits until every role is ready and returns the status.
func (in *instance) waitReady() ctl.Status {
	in.t.Helper()
	return in.waitStatus("all roles ready", func(st ctl.Status) bool { return len(st.Down()) == 0 })
}

func (in *instance) waitStatus(what string, ok func(ctl.Status) bool) ctl.Status {
	in.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last ctl.Status
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-in.done:
			in.t.Fatalf("moxd-master exited (%v) while waiting for %s; log:\n%s", in.exitErr, what, in.stderr)
		default:
		}
		st, err := in.status()
		if err == nil && ok(st) {
			return st
		}
		last, lastErr = st, err
		time.Sleep(50 * time.Millisecond)
	}
	in.t.Fatalf("timeout waiting for %s: last status %+v, err %v; log:\n%s", what, last, lastErr, in.stderr)
	return ctl.Status{}
}

func role(st ctl.Status, name string) ctl.RoleStatus {
	for _, r := range st.Roles {
		if r.Role == name {
			return r
		}
	}
	return ctl.RoleStatus{}
}

func listenerAddr(st ctl.Status, kind string) string {
	for _, r := range st.Roles {
		for _, l := range r.Listeners {
			if l.Kind == kind {
				return l.Addr
			}
		}
	}
	return ""
}

func counter(st ctl.Status, roleName, name string) (uint64, bool) {
	for _, c := range role(st, roleName).Counters {
		if c.Name == name {
			return c.Value, true
		}
	}
	return 0, false
}

// procStatus parses /proc/<pid>/status.
func procStatus(pid int) (map[string]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m, nil
}

// pidsOfUIDs lists live (non-zombie) processes whose real uid is in [lo, hi).
func pidsOfUIDs(lo, hi uint32) []int {
	ents, _ := os.ReadDir("/proc")
	var l []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := procStatus(pid)
		if err != nil || strings.HasPrefix(st["State"], "Z") {
			continue
		}
		f := strings.Fields(st["Uid"])
		if len(f) == 0 {
			continue
		}
		uid, _ := strconv.ParseUint(f[0], 10, 32)
		if uint32(uid) >= lo && uint32(uid) < hi {
			l = append(l, pid)
		}
	}
	return l
}

// reapOrphans collects zombie children of the test process that are not
// exec.Cmd children (orphaned workers reparented to us as subreaper).
func reapOrphans() {
	self := strconv.Itoa(os.Getpid())
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := procStatus(pid)
		if err != nil || st["PPid"] != self || !strings.HasPrefix(st["State"], "Z") || !strings.HasPrefix(st["Name"], "moxd-") || st["Name"] == "moxd-master" {
			continue
		}
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
	}
}

// greeting connects to addr and returns the first line.
func greeting(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err
}

func waitNoProcs(t *testing.T, lo, hi uint32) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		reapOrphans()
		pids := pidsOfUIDs(lo, hi)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes of uids %d..%d still running: %v", lo, hi-1, pids)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
