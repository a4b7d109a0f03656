//go:build linux

package integration

// Peers of the outbound tests (outbound_test.go), each started on
// loopback by the test and stopped by its PID: Postfix's smtp-sink as a
// recording MX, a real Postfix (MX with STARTTLS, or a submission server
// with Dovecot SASL), Dovecot's auth service, and microsocks as a SOCKS5
// proxy. Their output goes to files, so no process can hold a pipe of
// the test open.

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// peerDir returns a new directory that users other than root (nobody,
// postfix, dovecot) can traverse; t.TempDir's parent is not.
func peerDir(t *testing.T, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// peer is a running peer program, writing its output into a file.
type peer struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	outPath string
	done    chan struct{}
}

// startPeer runs name with args; the test's cleanup stops it by its PID
// (SIGTERM, then SIGKILL after 10 seconds).
func startPeer(t *testing.T, outPath, name string, args ...string) *peer {
	t.Helper()
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	p := &peer{t: t, name: filepath.Base(name), outPath: outPath, done: make(chan struct{})}
	p.cmd = exec.Command(name, args...)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.stop)
	return p
}

func (p *peer) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		p.t.Errorf("%s (pid %d) did not stop within 10s after SIGTERM", p.name, p.cmd.Process.Pid)
	}
}

// output returns what the peer wrote so far.
func (p *peer) output() string {
	b, _ := os.ReadFile(p.outPath)
	return string(b)
}

// checkRunning fails the test when the peer is no longer running.
func (p *peer) checkRunning() {
	p.t.Helper()
	select {
	case <-p.done:
		p.t.Fatalf("%s exited early: %v\n%s", p.name, p.cmd.ProcessState, p.output())
	default:
	}
}

// waitOutput waits until the peer's output has a line containing s.
func (p *peer) waitOutput(s string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.output(), s) {
		if time.Now().After(deadline) {
			p.t.Fatalf("%s did not print %q within %s; output:\n%s", p.name, s, timeout, p.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tcpListening reports whether something listens on 127.0.0.1:port,
// from /proc/net/tcp, without connecting (a connection would show in the
// logs the tests count).
func tcpListening(port int) bool {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return false
	}
	defer f.Close()
	want := fmt.Sprintf("0100007F:%04X", port)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) > 3 && fl[1] == want && fl[3] == "0A" {
			return true
		}
	}
	return false
}

func waitTCPListening(t *testing.T, p *peer, port int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !tcpListening(port) {
		p.checkRunning()
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on 127.0.0.1:%d; output:\n%s", p.name, port, p.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// smtpSink is Postfix's smtp-sink: an MX that logs the dialogue (-v) and
// dumps each transaction into a file of its own.
type smtpSink struct {
	*peer
	port    int
	dumpDir string
}

func startSink(t *testing.T, extra ...string) *smtpSink {
	t.Helper()
	bin := needTool(t, "smtp-sink")
	dir := peerDir(t, "moxd-sink-")
	dump := filepath.Join(dir, "dump")
	if err := os.Mkdir(dump, 0o755); err != nil {
		t.Fatal(err)
	}
	// As root, smtp-sink must switch to another user (-u), which then
	// writes the dump files.
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	os.Chown(dump, uid, -1)
	port := freePort(t)
	args := append([]string{"-v", "-u", "nobody", "-d", dump + "/%H%M%S."}, extra...)
	args = append(args, fmt.Sprintf("127.0.0.1:%d", port), "100")
	s := &smtpSink{peer: startPeer(t, filepath.Join(dir, "sink.log"), bin, args...), port: port, dumpDir: dump}
	waitTCPListening(t, s.peer, port)
	return s
}

// commands returns the SMTP commands of the log ("EHLO x", "MAIL
// FROM:<...>", ".", and also "connect" and "disconnect"), in order.
func (s *smtpSink) commands() []string {
	var l []string
	for _, line := range strings.Split(s.output(), "\n") {
		// smtp-sink names itself by its argv[0].
		_, c, ok := strings.Cut(line, "smtp-sink: ")
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(c, "connect ("):
			l = append(l, "connect")
		case c == "disconnect":
			l = append(l, c)
		case c == "." || strings.HasPrefix(strings.ToUpper(c), "EHLO ") || strings.HasPrefix(strings.ToUpper(c), "HELO ") ||
			strings.HasPrefix(strings.ToUpper(c), "MAIL FROM:") || strings.HasPrefix(strings.ToUpper(c), "RCPT TO:") ||
			slices.Contains([]string{"DATA", "RSET", "QUIT", "NOOP"}, strings.ToUpper(c)):
			l = append(l, c)
		}
	}
	return l
}

// count returns how many logged commands start with prefix (any case).
func (s *smtpSink) count(prefix string) int {
	n := 0
	for _, c := range s.commands() {
		if strings.HasPrefix(strings.ToUpper(c), strings.ToUpper(prefix)) {
			n++
		}
	}
	return n
}

// sinkDump is one transaction captured by smtp-sink.
type sinkDump struct {
	file     string
	helo     string
	mailFrom string   // X-Mail-Args
	rcpts    []string // X-Rcpt-Args
	message  string   // the message as received, with CRLF line ends
}

// dumps parses the dump files: smtp-sink's own X- lines and its
// three-line Received header come first, then the message, then an empty
// line.
func (s *smtpSink) dumps(t *testing.T) []sinkDump {
	t.Helper()
	ents, err := os.ReadDir(s.dumpDir)
	if err != nil {
		t.Fatal(err)
	}
	var l []sinkDump
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(s.dumpDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		d := sinkDump{file: e.Name()}
		lines := strings.Split(string(b), "\n")
		i := 0
		for ; i < len(lines); i++ {
			k, v, _ := strings.Cut(lines[i], ": ")
			switch k {
			case "X-Client-Addr", "X-Client-Proto":
				continue
			case "X-Helo-Args":
				d.helo = v
				continue
			case "X-Mail-Args":
				d.mailFrom = v
				continue
			case "X-Rcpt-Args":
				d.rcpts = append(d.rcpts, v)
				continue
			case "Received":
				// "Received: from helo ([addr])", "\tby host (smtp-sink) ...", "\tdate".
				i++
				for i < len(lines) && strings.HasPrefix(lines[i], "\t") {
					i++
				}
			}
			break
		}
		msg := strings.Join(lines[i:], "\n")
		// The empty line smtp-sink appends, after the message's own final
		// line end.
		msg = strings.TrimSuffix(msg, "\n")
		d.message = strings.ReplaceAll(msg, "\n", "\r\n")
		l = append(l, d)
	}
	return l
}

// issueLeaf writes a certificate of ca for names and ips and its key.
func issueLeaf(t *testing.T, ca *testCA, names []string, ips []net.IP, certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		IPAddresses:  ips,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})...)
	if err := os.WriteFile(certPath, chain, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeCA writes the CA certificate as PEM.
func writeCA(t *testing.T, ca *testCA, path string) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
}

// postfixPeer is a real Postfix with a configuration directory of its own.
type postfixPeer struct {
	t    *testing.T
	dir  string
	port int
}

// startPostfix starts Postfix with smtpd on 127.0.0.1:port; mainCF is
// added to the common main.cf (queue and data directories in dir, log
// file, IPv4 loopback), smtpdArgs are -o options of the smtpd service.
func startPostfix(t *testing.T, mainCF string, smtpdArgs ...string) *postfixPeer {
	t.Helper()
	postfixBin := needTool(t, "postfix")
	dir := peerDir(t, "moxd-postfix-")
	port := freePort(t)
	common := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
alias_maps =
alias_database =
mydestination =
smtp_dns_support_level = disabled
`, dir)
	listener := fmt.Sprintf("127.0.0.1:%d inet n - n - - smtpd", port)
	for _, a := range smtpdArgs {
		listener += "\n  -o " + a
	}
	masterCF := listener + `
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
virtual unix - n n - - virtual
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
tlsmgr unix - - n 1000? 1 tlsmgr
postlog unix-dgram n - n - 1 postlogd
`
	for name, data := range map[string]string{"main.cf": common + mainCF, "master.cf": masterCF} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pu, err := user.Lookup("postfix")
	if err != nil {
		t.Fatalf("the postfix package creates user postfix: %v", err)
	}
	uid, _ := strconv.Atoi(pu.Uid)
	if err := os.Mkdir(filepath.Join(dir, "queue"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chown(filepath.Join(dir, "data"), uid, -1)
	p := &postfixPeer{t: t, dir: dir, port: port}
	if out, err := runTool(t, "", postfixBin, "-c", dir, "start"); err != nil {
		t.Fatalf("postfix start: %v\n%s\n%s", err, out, p.log())
	}
	t.Cleanup(func() {
		pid := readPID(filepath.Join(dir, "queue", "pid", "master.pid"))
		runTool(t, "", postfixBin, "-c", dir, "stop")
		// postfix stop returns before master exits; wait for it. Master
		// left its parent when it started, so it is a child of this
		// process (the subreaper, see TestMain): reap it.
		for i := 0; pid > 0 && i < 200 && running(pid); i++ {
			time.Sleep(50 * time.Millisecond)
		}
		if pid > 0 && running(pid) {
			t.Errorf("postfix master (pid %d) still runs 10s after postfix stop", pid)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for !tcpListening(port) {
		if time.Now().After(deadline) {
			t.Fatalf("postfix does not listen on 127.0.0.1:%d; log:\n%s", port, p.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return p
}

// running reports whether process pid exists and is not a zombie; a
// zombie child of this process is reaped.
func running(pid int) bool {
	st, err := procStatus(pid)
	if err != nil {
		return false
	}
	if strings.HasPrefix(st["State"], "Z") {
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		return false
	}
	return true
}

func (p *postfixPeer) log() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "maillog"))
	return string(b)
}

// waitLog waits until Postfix's log has a line containing all of want.
func (p *postfixPeer) waitLog(timeout time.Duration, want ...string) string {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, line := range strings.Split(p.log(), "\n") {
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(line, w)
			}
			if ok {
				return line
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("postfix log has no line with %q within %s:\n%s", want, timeout, p.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// maildirMessages waits until dir/new has n messages and returns them.
func maildirMessages(t *testing.T, dir string, n int, timeout time.Duration, why func() string) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ents, _ := os.ReadDir(filepath.Join(dir, "new"))
		if len(ents) >= n {
			var l []string
			for _, e := range ents {
				b, err := os.ReadFile(filepath.Join(dir, "new", e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				l = append(l, string(b))
			}
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/new has %d messages after %s, want %d\n%s", dir, len(ents), timeout, n, why())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startDovecotAuth runs Dovecot with only its auth service: a
// passwd-file with user and a plain-text password (so Dovecot can also do
// SCRAM), mechanisms PLAIN and SCRAM-SHA-256, and a socket for Postfix's
// smtpd. It returns the socket's path. The system's /etc/dovecot is not
// read.
func startDovecotAuth(t *testing.T, username, password string) string {
	t.Helper()
	bin := needTool(t, "dovecot")
	dir := peerDir(t, "moxd-dovecot-")
	conf := fmt.Sprintf(`protocols = none
base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain scram-sha-256
auth_verbose = yes
passdb {
  driver = passwd-file
  args = scheme=PLAIN %[1]s/passwd
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=%[1]s/home/%%u
}
service auth {
  unix_listener auth-postfix {
    mode = 0666
  }
}
`, dir)
	if err := os.WriteFile(filepath.Join(dir, "dovecot.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "passwd"), []byte(username+":{PLAIN}"+password+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startPeer(t, filepath.Join(dir, "out.log"), bin, "-F", "-c", filepath.Join(dir, "dovecot.conf"))
	sock := filepath.Join(dir, "run", "auth-postfix")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if fi, err := os.Stat(sock); err == nil && fi.Mode()&os.ModeSocket != 0 {
			break
		}
		p.checkRunning()
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
			t.Fatalf("dovecot made no socket %s:\n%s\n%s", sock, p.output(), log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return sock
}

// startMicrosocks runs the SOCKS5 proxy microsocks on 127.0.0.1 in a
// mount namespace of its own whose /etc/hosts holds hosts (name =>
// address): the proxy resolves the names it is asked for, and the
// machine's resolver knows none of the test names.
func startMicrosocks(t *testing.T, hosts map[string]string) (*peer, int) {
	t.Helper()
	bin := needTool(t, "microsocks")
	unshare := needTool(t, "unshare")
	dir := peerDir(t, "moxd-socks-")
	var b strings.Builder
	b.WriteString("127.0.0.1 localhost\n")
	for name, addr := range hosts {
		fmt.Fprintf(&b, "%s %s\n", addr, name)
	}
	hostsFile := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hostsFile, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	// unshare and sh exec, so the PID is microsocks'.
	p := startPeer(t, filepath.Join(dir, "socks.log"), unshare, "-m", "--propagation", "private", "sh", "-c",
		`mount --bind "$0" /etc/hosts && exec "$@"`, hostsFile, bin, "-i", "127.0.0.1", "-p", strconv.Itoa(port))
	waitTCPListening(t, p, port)
	return p, port
}
