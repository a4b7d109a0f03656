//go:build linux

package integration

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"moxd/internal/ctl"
	"moxd/internal/ipc"
)

// suiteBaseUID: uids of the shared instance (distinct from localserve's
// 64100.. so a developer's "make run" is never touched).
const suiteBaseUID = 64200

// shared is the instance most tests use; started by the first test that
// needs it and stopped at the end of the run.
var shared *instance

func suite(t *testing.T) *instance {
	t.Helper()
	needRoot(t)
	if shared != nil {
		select {
		case <-shared.done:
			t.Fatalf("shared moxd-master has exited; log:\n%s", shared.stderr)
		default:
		}
		shared.t = t
		shared.waitReady()
		return shared
	}
	// The directory outlives this test; TestZZStopShared removes it.
	dir, conf := writeConfig(t, confOptions{baseUID: suiteBaseUID, keep: true})
	in := start(t, dir, conf, suiteBaseUID)
	in.waitReady()
	shared = in
	// Cold start order: keys, store, queue, then the network roles, each
	// after its dependencies reported ready.
	checkOrder(t, in.stderr.String(), `msg="role ready" role=`, [][]string{{"keys"}, {"store"}, {"queue"}, {"smtp", "submission", "imap", "web"}})
	return in
}

// checkOrder checks that the log lines containing marker+role appear in the
// order of groups (any order within a group).
func checkOrder(t *testing.T, log, marker string, groups [][]string) {
	t.Helper()
	pos := map[string]int{}
	for _, g := range groups {
		for _, r := range g {
			i := strings.Index(log, marker+r+" ")
			if i < 0 {
				t.Errorf("log lacks %q:\n%s", marker+r, log)
				return
			}
			pos[r] = i
		}
	}
	for gi := 1; gi < len(groups); gi++ {
		for _, a := range groups[gi-1] {
			for _, b := range groups[gi] {
				if pos[a] > pos[b] {
					t.Errorf("%s%s logged after %s%s; want the order %v", marker, a, marker, b, groups)
				}
			}
		}
	}
}

// TestLeftoverProcesses: before a role starts, master ends every process
// left under the role's uid.
func TestLeftoverProcesses(t *testing.T) {
	in := suite(t)
	st := in.waitReady()
	smtpUID := uint32(suiteBaseUID + 3)
	stray := exec.Command("/bin/sleep", "300")
	stray.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: smtpUID, Gid: smtpUID, Groups: []uint32{}}}
	if err := stray.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- stray.Wait() }()
	defer stray.Process.Kill()
	old := role(st, "smtp").PID
	syscall.Kill(old, syscall.SIGKILL)
	waitRestarted(in, "smtp", old, 0)
	select {
	case err := <-exited:
		if ws, ok := stray.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Errorf("leftover process ended with %v, want killed by SIGKILL", err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("leftover process of the smtp uid still runs after smtp restarted")
	}
	if !strings.Contains(in.stderr.String(), "ended leftover processes of role uid") {
		t.Errorf("master did not log ending the leftover process")
	}
}

// TestWorkerCredentials checks every worker's ids and restrictions as the
// kernel reports them.
func TestWorkerCredentials(t *testing.T) {
	in := suite(t)
	st := in.waitReady()
	seen := map[string]string{}
	for i, name := range roleNames {
		r := role(st, name)
		want := strconv.Itoa(int(suiteBaseUID) + i)
		ps, err := procStatus(r.PID)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, field := range []string{"Uid", "Gid"} {
			ids := strings.Fields(ps[field])
			if len(ids) != 4 {
				t.Fatalf("%s: %s line %q", name, field, ps[field])
			}
			for _, id := range ids {
				if id != want {
					t.Errorf("%s: %s = %v, want all four %s", name, field, ids, want)
				}
				if id == "0" {
					t.Errorf("%s: runs with %s 0", name, field)
				}
			}
		}
		if other, ok := seen[ps["Uid"]]; ok {
			t.Errorf("%s and %s share uid %s", name, other, ps["Uid"])
		}
		seen[ps["Uid"]] = name
		if ps["Groups"] != "" {
			t.Errorf("%s: supplementary groups %q, want none", name, ps["Groups"])
		}
		if ps["CapEff"] != "0000000000000000" {
			t.Errorf("%s: CapEff %s, want 0", name, ps["CapEff"])
		}
		if ps["NoNewPrivs"] != "1" {
			t.Errorf("%s: NoNewPrivs %q, want 1", name, ps["NoNewPrivs"])
		}
		if r.UID != uint32(suiteBaseUID+i) || r.GID != uint32(suiteBaseUID+i) {
			t.Errorf("%s: status reports %d:%d, want %s", name, r.UID, r.GID, want)
		}
	}
	// Another worker's uid cannot read a worker's environment.
	smtp, keys := role(st, "smtp"), role(st, "keys")
	out, err := runAs(uint32(suiteBaseUID+3), "/bin/cat", fmt.Sprintf("/proc/%d/environ", keys.PID))
	if err == nil {
		t.Errorf("smtp uid read keys' /proc/%d/environ: %q", keys.PID, out)
	} else if !strings.Contains(out, "Permission denied") {
		t.Errorf("reading keys' environ as smtp uid: %v %q, want Permission denied", err, out)
	}
	out, err = runAs(uint32(suiteBaseUID), "/bin/cat", fmt.Sprintf("/proc/%d/environ", smtp.PID))
	if err == nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("keys uid reading smtp's environ: err %v, output %q, want Permission denied", err, out)
	}
}

// runAs runs a command under uid (gid = uid) with no supplementary groups.
func runAs(uid uint32, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}}}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestNetworkWorkersHoldNoSecrets checks the fds of smtp and submission and
// that the smtp uid cannot open key files.
func TestNetworkWorkersHoldNoSecrets(t *testing.T) {
	in := suite(t)
	st := in.waitReady()
	data := filepath.Join(in.dir, "data")
	for _, name := range []string{"smtp", "submission"} {
		pid := role(st, name).PID
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			t.Fatal(err)
		}
		var sockets int
		for _, fd := range fds {
			target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
			if err != nil {
				continue
			}
			if strings.HasPrefix(target, "socket:") {
				sockets++
			}
			for _, d := range []string{"keys", "store", "queue"} {
				if strings.HasPrefix(target, filepath.Join(data, d)) {
					t.Errorf("%s holds fd %s -> %s (a file of %s)", name, fd.Name(), target, d)
				}
			}
			if strings.HasSuffix(target, ".db") || strings.HasSuffix(target, ".key") || strings.HasSuffix(target, ".pem") {
				t.Errorf("%s holds fd %s -> %s", name, fd.Name(), target)
			}
		}
		if sockets == 0 {
			t.Errorf("%s holds no socket fds; the check looked at nothing", name)
		}
	}
	keyFiles, _ := filepath.Glob(filepath.Join(data, "keys", "*", "*.key"))
	if len(keyFiles) == 0 {
		t.Fatalf("no key files found under %s/keys", data)
	}
	for _, kf := range keyFiles {
		out, err := runAs(uint32(suiteBaseUID+3), "/bin/cat", kf)
		if err == nil || !strings.Contains(out, "Permission denied") {
			t.Errorf("smtp uid opening %s: err %v, output %q, want Permission denied (EACCES)", kf, err, out)
		}
	}
	// The port-25 instance has no edge to queue's submit service; the
	// submission instance has.
	if _, ok := ipc.Lookup(ipc.RoleSMTP, ipc.RoleQueue, ipc.FamSubmit); ok {
		t.Errorf("the allow-matrix lets smtp (port 25) submit to queue")
	}
	if _, ok := ipc.Lookup(ipc.RoleSubmission, ipc.RoleQueue, ipc.FamSubmit); !ok {
		t.Errorf("the allow-matrix lacks submission -> queue submit")
	}
	if _, ok := ipc.Lookup(ipc.RoleSMTP, ipc.RoleKeys, ipc.FamDKIM); ok {
		t.Errorf("the allow-matrix lets smtp ask for DKIM signatures")
	}
}

// listenInode finds the inode of the listening TCP socket on addr.
func listenInode(t *testing.T, addr string) string {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(":%04X", ap.Port())
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 9 && strings.HasSuffix(f[1], want) && f[3] == "0A" {
			return f[9]
		}
	}
	t.Fatalf("no listening socket for %s in /proc/net/tcp", addr)
	return ""
}

func hasFD(pid int, target string) bool {
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && l == target {
			return true
		}
	}
	return false
}

// masterCounts returns master's open fd count and its zombie children.
func masterCounts(pid int) (fds, zombies int) {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	fds = len(ents)
	procs, _ := os.ReadDir("/proc")
	for _, e := range procs {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := procStatus(p)
		if err == nil && st["PPid"] == strconv.Itoa(pid) && strings.HasPrefix(st["State"], "Z") {
			zombies++
		}
	}
	return
}

// waitRestarted waits for a new, ready process of role name (other than old).
func waitRestarted(in *instance, name string, old int, minUptime float64) ctl.Status {
	return in.waitStatus(name+" restarted", func(st ctl.Status) bool {
		r := role(st, name)
		return r.State == "ready" && r.PID != 0 && r.PID != old && r.UptimeSeconds >= minUptime && len(st.Down()) == 0
	})
}

// TestKillSMTP: a killed smtp worker is replaced on the same listening
// socket, and repeated kills leak nothing in master.
func TestKillSMTP(t *testing.T) {
	in := suite(t)
	st := in.waitReady()
	addr := listenerAddr(st, "smtp")
	inode := listenInode(t, addr)
	old := role(st, "smtp").PID
	if !hasFD(old, "socket:["+inode+"]") {
		t.Fatalf("smtp (pid %d) does not hold the listening socket inode %s", old, inode)
	}
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st = waitRestarted(in, "smtp", old, 0)
	nw := role(st, "smtp").PID
	if !hasFD(nw, "socket:["+inode+"]") {
		t.Errorf("restarted smtp (pid %d) does not hold the same listening socket inode %s", nw, inode)
	}
	if got := listenInode(t, addr); got != inode {
		t.Errorf("listening socket changed: inode %s, was %s", got, inode)
	}
	if g, err := greeting(addr); err != nil || !strings.HasPrefix(g, "220 ") {
		t.Errorf("greeting after restart: %q, %v", g, err)
	}

	// 20 kill cycles of a worker that has been ready for more than a second
	// (restarted at once, not throttled) leave master's fds and zombies as
	// they were.
	master := st.Master.PID
	// Let the first restart settle.
	waitRestarted(in, "smtp", old, 1.1)
	// Baseline: the settled count (a control connection of the status poll
	// may still be open for a moment).
	fds0, z0 := masterCounts(master)
	for i := 0; i < 20; i++ {
		time.Sleep(20 * time.Millisecond)
		f, z := masterCounts(master)
		fds0, z0 = min(fds0, f), min(z0, z)
	}
	restarts0 := role(st, "smtp").Restarts
	for i := 0; i < 20; i++ {
		st = waitRestarted(in, "smtp", 0, 1.1)
		pid := role(st, "smtp").PID
		syscall.Kill(pid, syscall.SIGKILL)
		waitRestarted(in, "smtp", pid, 0)
	}
	st = waitRestarted(in, "smtp", 0, 0)
	if got := role(st, "smtp").Restarts - restarts0; got != 20 {
		t.Errorf("restarts grew by %d, want 20", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		fds, z := masterCounts(master)
		if fds <= fds0 && z <= z0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("after 20 kill cycles master has %d fds and %d zombies, before %d and %d", fds, z, fds0, z0)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if g, err := greeting(addr); err != nil || !strings.HasPrefix(g, "220 ") {
		t.Errorf("greeting after kill cycles: %q, %v", g, err)
	}
}

func caPool(t *testing.T, in *instance) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(in.dir, "data", "localca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatal("bad localca.pem")
	}
	return pool
}

// TestKillKeys: while keys is down, handshakes fail at once and no worker
// crashes; after keys is back they succeed.
func TestKillKeys(t *testing.T) {
	in := suite(t)
	st := in.waitReady()
	addr := listenerAddr(st, "submissions")
	pool := caPool(t, in)
	handshake := func() error {
		d := &net.Dialer{Timeout: 5 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
		if err != nil {
			return err
		}
		c.Close()
		return nil
	}
	if err := handshake(); err != nil {
		t.Fatalf("handshake before: %v", err)
	}
	workers := map[string]int{}
	for _, n := range []string{"smtp", "submission", "imap", "web"} {
		workers[n] = role(st, n).PID
	}
	// Keep keys from coming back for a moment: its binary is not executable.
	keysBin := filepath.Join(binDir, "moxd-keys")
	if err := os.Chmod(keysBin, 0); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			os.Chmod(keysBin, 0o755)
			restored = true
		}
	}
	defer restore()
	oldKeys := role(st, "keys").PID
	syscall.Kill(oldKeys, syscall.SIGKILL)
	in.waitStatus("keys down", func(st ctl.Status) bool { return role(st, "keys").State != "ready" })
	for i := 0; i < 3; i++ {
		t0 := time.Now()
		err := handshake()
		if err == nil {
			t.Fatalf("handshake succeeded while keys is down")
		}
		if d := time.Since(t0); d > 2*time.Second {
			t.Errorf("handshake took %s to fail while keys is down; want it to fail at once", d)
		}
	}
	restore()
	st = waitRestarted(in, "keys", oldKeys, 0)
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if err = handshake(); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Errorf("handshake after keys restart: %v", err)
	}
	st, _ = in.status()
	for n, pid := range workers {
		if got := role(st, n).PID; got != pid {
			t.Errorf("%s was restarted (pid %d -> %d) while keys was down; workers must survive", n, pid, got)
		}
	}
}

// TestOpenSSLClients: a real TLS client completes STARTTLS on 587 and
// implicit TLS on 465, verifying against the local CA, and every full
// handshake costs exactly one signature in keys.
func TestOpenSSLClients(t *testing.T) {
	in := suite(t)
	st := in.waitReady()
	ca := filepath.Join(in.dir, "data", "localca.pem")
	signs := func() uint64 {
		st, err := in.status()
		if err != nil {
			t.Fatal(err)
		}
		v, ok := counter(st, "keys", "signs tls:localca")
		if !ok {
			t.Fatalf("no sign counter for tls:localca in status: %+v", role(st, "keys").Counters)
		}
		return v
	}
	cases := []struct {
		name string
		args []string
	}{
		{"starttls-587", []string{"-starttls", "smtp", "-connect", listenerAddr(st, "submission")}},
		{"implicit-465", []string{"-connect", listenerAddr(st, "submissions")}},
		{"starttls-25", []string{"-starttls", "smtp", "-connect", listenerAddr(st, "smtp")}},
	}
	for _, c := range cases {
		before := signs()
		args := append([]string{"s_client", "-brief", "-verify_return_error", "-CAfile", ca, "-verify_hostname", "localhost", "-servername", "localhost"}, c.args...)
		cmd := exec.Command("openssl", args...)
		cmd.Stdin = strings.NewReader("QUIT\r\n")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("%s: openssl s_client: %v\n%s", c.name, err, out)
			continue
		}
		if !strings.Contains(string(out), "Verification: OK") || !strings.Contains(string(out), "CONNECTION ESTABLISHED") {
			t.Errorf("%s: openssl output lacks a verified connection:\n%s", c.name, out)
		}
		if got := signs() - before; got != 1 {
			t.Errorf("%s: sign counter grew by %d for one full handshake, want 1", c.name, got)
		}
	}
	// RSA key exchange is never offered: a client that offers only RSA key
	// exchange suites gets no connection.
	cmd := exec.Command("openssl", "s_client", "-tls1_2", "-cipher", "AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA", "-connect", listenerAddr(st, "submissions"))
	cmd.Stdin = strings.NewReader("")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "alert") {
		t.Errorf("handshake with only RSA key exchange suites: %v\n%s", err, out)
	}
}

// TestKillMaster: when master dies, every worker exits.
func TestKillMaster(t *testing.T) {
	needRoot(t)
	const base = 64220
	dir, conf := writeConfig(t, confOptions{baseUID: base})
	in := start(t, dir, conf, base)
	in.waitReady()
	if n := len(pidsOfUIDs(base, base+7)); n != 7 {
		t.Fatalf("%d worker processes, want 7", n)
	}
	in.cmd.Process.Signal(syscall.SIGKILL)
	in.exitCode(10 * time.Second)
	waitNoProcs(t, base, base+7)
}

// TestMoxctl: the admin commands against a running instance.
func TestMoxctl(t *testing.T) {
	in := suite(t)
	in.waitReady()
	moxctl := filepath.Join(binDir, "moxctl")
	out, err := exec.Command(moxctl, "-f", in.conf, "status").CombinedOutput()
	if err != nil {
		t.Fatalf("moxctl status: %v\n%s", err, out)
	}
	for _, want := range []string{"ROLE", "keys", "submission", "signs tls:localca", "ready"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("moxctl status output lacks %q:\n%s", want, out)
		}
	}
	out, err = exec.Command(moxctl, "-f", in.conf, "-j", "status").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"bound"`) && !strings.Contains(string(out), `"addr": "127.0.0.1:`) {
		t.Errorf("moxctl -j status: %v\n%s", err, out)
	}
	out, err = exec.Command(moxctl, "-f", in.conf, "loglevel", "debug", "smtp").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "smtp") || !strings.Contains(string(out), "debug") {
		t.Errorf("moxctl loglevel debug smtp: %v\n%s", err, out)
	}
	exec.Command(moxctl, "-f", in.conf, "loglevel", "info", "smtp").Run()
	out, err = exec.Command(moxctl, "-f", in.conf, "reload").CombinedOutput()
	if err != nil {
		t.Errorf("moxctl reload: %v\n%s", err, out)
	}
	cmd := exec.Command(moxctl, "-f", in.conf, "bogus")
	out, _ = cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(string(out), "usage:") {
		t.Errorf("moxctl bogus: exit %d, output %q; want 2 and usage", code, out)
	}
	// A role that is down makes status exit non-zero: stop the imap binary
	// from coming back, kill imap.
	imapBin := filepath.Join(binDir, "moxd-imap")
	os.Chmod(imapBin, 0)
	defer os.Chmod(imapBin, 0o755)
	st, _ := in.status()
	syscall.Kill(role(st, "imap").PID, syscall.SIGKILL)
	in.waitStatus("imap down", func(st ctl.Status) bool { return role(st, "imap").State != "ready" })
	cmd = exec.Command(moxctl, "-f", in.conf, "status")
	out, _ = cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(string(out), "not ready: imap") {
		t.Errorf("moxctl status with imap down: exit %d, want 1\n%s", code, out)
	}
	// A role failing right after start is restarted with growing delays.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(in.stderr.String(), `"role keeps failing right after start; throttling restarts" role=imap`) {
		if time.Now().After(deadline) {
			t.Errorf("no throttling of imap's failing restarts logged:\n%s", in.stderr)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	os.Chmod(imapBin, 0o755)
	in.waitReady()
}
