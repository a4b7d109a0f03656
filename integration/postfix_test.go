//go:build linux

package integration

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPostfixRelay: a real Postfix, in a configuration directory of its
// own on loopback, relays a message into moxd's port 25 over STARTTLS; the
// message arrives once, with Postfix's and moxd's trace headers.
func TestPostfixRelay(t *testing.T) {
	in := mailSuite(t)
	swaks := needTool(t, "swaks")
	_, moxPort := mailAddr(t, in, "smtp")
	ca := filepath.Join(in.dir, "data", "localca.pem")
	pf := startPostfix(t, fmt.Sprintf(`myhostname = relay.sender.test
mydomain = sender.test
myorigin = sender.test
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:%s
default_transport = smtp
relay_transport = smtp
smtp_helo_name = client.sender.test
smtp_tls_security_level = encrypt
smtp_tls_CAfile = %s
`, moxPort, ca))
	port := pf.port

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
		t.Fatalf("message relayed by postfix never arrived; postfix log:\n%s", pf.log())
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

func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}
