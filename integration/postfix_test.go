//go:build linux

package integration

import (
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPostfixRelay: a real Postfix, in a configuration directory of its
// own on loopback, relays a message into moxd's port 25 over STARTTLS; the
// message arrives once, with Postfix's and moxd's trace headers.
func TestPostfixRelay(t *testing.T) {
	in := mailSuite(t)
	swaks := needTool(t, "swaks")
	postfixBin := needTool(t, "postfix")
	_, moxPort := mailAddr(t, in, "smtp")
	// Postfix's processes run as user postfix: the directory must be
	// reachable for it (t.TempDir's parent is not).
	dir, err := os.MkdirTemp("", "moxd-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	port := freePort(t)
	ca := filepath.Join(in.dir, "data", "localca.pem")
	mainCF := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.sender.test
mydomain = sender.test
myorigin = sender.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:%[2]s
default_transport = smtp
relay_transport = smtp
smtp_dns_support_level = disabled
smtp_helo_name = client.sender.test
smtp_tls_security_level = encrypt
smtp_tls_CAfile = %[3]s
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
alias_maps =
alias_database =
`, dir, moxPort, ca)
	masterCF := fmt.Sprintf(`127.0.0.1:%d inet n - n - - smtpd
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
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
tlsmgr unix - - n 1000? 1 tlsmgr
postlog unix-dgram n - n - 1 postlogd
`, port)
	for name, data := range map[string]string{"main.cf": mainCF, "master.cf": masterCF} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// postfix start creates what is below these two, not them.
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
	if out, err := runTool(t, "", postfixBin, "-c", dir, "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "maillog"))
		t.Fatalf("postfix start: %v\n%s\n%s", err, out, log)
	}
	t.Cleanup(func() {
		runTool(t, "", postfixBin, "-c", dir, "stop")
		// postfix stop returns before master exits; wait for it.
		pid := readPID(filepath.Join(dir, "queue", "pid", "master.pid"))
		for i := 0; pid > 0 && i < 100 && syscall.Kill(pid, 0) == nil; i++ {
			time.Sleep(50 * time.Millisecond)
		}
	})
	waitListening(t, "127.0.0.1:"+strconv.Itoa(port))

	out, err := runTool(t, "", swaks, "--server", "127.0.0.1", "--port", strconv.Itoa(port), "--from", "a@sender.test", "--to", "mox@localhost",
		"--header", "From: <a@sender.test>", "--header", "Message-ID: <postfix-relay@sender.test>", "--body", "relayed by postfix", "--timeout", "30")
	if err != nil {
		t.Fatalf("swaks into postfix: %v\n%s", err, out)
	}
	var msg string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range exportMessages(t, in.conf, "mox", "INBOX") {
			if strings.Contains(m, "Message-ID: <postfix-relay@sender.test>") {
				msg = m
			}
		}
		if msg != "" {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if msg == "" {
		log, _ := os.ReadFile(filepath.Join(dir, "maillog"))
		t.Fatalf("message relayed by postfix never arrived; postfix log:\n%s", log)
	}
	findMessage(t, exportMessages(t, in.conf, "mox", "INBOX"), "postfix-relay@sender.test")
	m := unfold(msg)
	for _, want := range []string{"Received: from client.sender.test (client.sender.test [127.0.0.1]) by localhost (moxd) with ESMTPS (TLS 1.", "by relay.sender.test (Postfix)", "spf=pass", "relayed by postfix"} {
		if !strings.Contains(m, want) {
			t.Errorf("relayed message lacks %q:\n%s", want, msg)
		}
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitListening waits until addr accepts connections.
func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s", addr)
}

func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}
