//go:build linux

package integration

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"moxd/internal/master"
)

// nobody runs the non-root localserve when the tests run as root.
const nobody = 65534

// freeOffset finds a port offset at which all seven localserve ports are free.
func freeOffset(t *testing.T) int {
	t.Helper()
	for off := 20000 + os.Getpid()%10000; off < 60000; off += 997 {
		ok := true
		for _, p := range []int{25, 587, 465, 143, 993, 80, 443} {
			l, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", p+off))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return off
		}
	}
	t.Fatal("no free port offset")
	return 0
}

// TestLocalserveNonRoot is the newcomer's path: localserve as an ordinary
// user, every role its own process under that user.
func TestLocalserveNonRoot(t *testing.T) {
	dir, err := os.MkdirTemp("", "moxd-it-localserve-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	uid := uint32(os.Getuid())
	cmd := exec.Command(filepath.Join(binDir, "moxd-master"), "localserve", "-dir", filepath.Join(dir, "ls"), "-port-offset", fmt.Sprint(freeOffset(t)))
	if uid == 0 {
		uid = nobody
		os.Chown(dir, nobody, nobody)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
	}
	out := newSyncBuffer()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Dir = "/"
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Errorf("localserve did not stop on SIGTERM")
		}
		reapOrphans()
	}()
	conf := filepath.Join(dir, "ls", "moxd.conf")
	in := &instance{t: t, dir: filepath.Join(dir, "ls"), conf: conf, done: done, stderr: out}
	in.exitErr = nil
	st := in.waitReady()
	for _, r := range st.Roles {
		if r.UID != uid {
			t.Errorf("%s runs as uid %d, want %d", r.Role, r.UID, uid)
		}
	}
	if g, err := greeting(listenerAddr(st, "smtp")); err != nil || !strings.HasPrefix(g, "220 localhost ESMTP") {
		t.Errorf("smtp greeting %q, %v", g, err)
	}
	if g, err := greeting(listenerAddr(st, "imap")); err != nil || !strings.HasPrefix(g, "* OK [CAPABILITY IMAP4rev1 ") {
		t.Errorf("imap greeting %q, %v", g, err)
	}
	// The banner tells the newcomer what to do next.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "moxd localserve is ready") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range []string{"moxd localserve is ready", "mox@localhost", "localca.pem", "moxctl -f " + conf + " status"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("localserve output lacks %q:\n%s", want, out)
		}
	}
	// The banner comes after the password is set.
	localserveIMAP(t, listenerAddr(st, "imap"), filepath.Join(dir, "ls", "data", "localca.pem"))
	if !strings.Contains(out.String(), "not isolated") {
		t.Errorf("localserve as non-root does not say once that roles are not isolated:\n%s", out)
	}
	// TLS through moxd-keys, verified against localserve's own CA.
	ca := filepath.Join(dir, "ls", "data", "localca.pem")
	for _, c := range [][]string{
		{"-starttls", "smtp", "-connect", listenerAddr(st, "submission")},
		{"-connect", listenerAddr(st, "submissions")},
		{"-starttls", "imap", "-connect", listenerAddr(st, "imap")},
		{"-connect", listenerAddr(st, "imaps")},
	} {
		args := append([]string{"s_client", "-brief", "-verify_return_error", "-CAfile", ca, "-verify_hostname", "localhost"}, c...)
		cmd := exec.Command("openssl", args...)
		cmd.Stdin = strings.NewReader("QUIT\r\n")
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "Verification: OK") {
			t.Errorf("openssl %v against localserve: %v\n%s", c, err, out)
		}
	}
	// Mail for any address is accepted and lands in mox's inbox; a
	// special local part fails as the README says; submission takes the
	// printed password.
	caPEM, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	dial := func(kind string) *smtp.Client {
		conn, err := net.DialTimeout("tcp", listenerAddr(st, kind), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c, err := smtp.NewClient(conn, "localhost")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.StartTLS(&tls.Config{RootCAs: pool, ServerName: "localhost"}); err != nil {
			t.Fatalf("STARTTLS on %s: %v", kind, err)
		}
		return c
	}
	send := func(rcpt string) error {
		c := dial("smtp")
		defer c.Quit()
		if err := c.Mail("a@example.net"); err != nil {
			return err
		}
		if err := c.Rcpt(rcpt); err != nil {
			return err
		}
		w, err := c.Data()
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "From: <a@example.net>\r\nSubject: hi\r\nMessage-ID: <%s>\r\n\r\nhello\r\n", rcpt)
		return w.Close()
	}
	if err := send("bob@example.com"); err != nil {
		t.Errorf("send to localserve's smtp: %v", err)
	}
	if err := send("bob-permerror@example.com"); err == nil || !strings.Contains(err.Error(), "550") {
		t.Errorf("send to a permerror local part: %v, want a 550", err)
	}
	sc := dial("submission")
	if err := sc.Auth(smtp.PlainAuth("", "mox@localhost", "moxmoxmox", "localhost")); err != nil {
		t.Errorf("AUTH with the password the banner prints: %v", err)
	}
	sc.Quit()

	// The command the banner prints works.
	moxctl := exec.Command(filepath.Join(binDir, "moxctl"), "-f", conf, "status")
	if uid != uint32(os.Getuid()) {
		moxctl.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}}}
	}
	if out, err := moxctl.CombinedOutput(); err != nil || !strings.Contains(string(out), "ready") {
		t.Errorf("moxctl -f %s status as the localserve user: %v\n%s", conf, err, out)
	}
}

// localserveIMAP logs in to localserve's IMAP with Python's imaplib, as a
// newcomer's client would: LOGIN in plain text on loopback (localserve
// only), and after STARTTLS verified against localserve's CA.
func localserveIMAP(t *testing.T, addr, ca string) {
	t.Helper()
	py := needTool(t, "/usr/bin/python3")
	host, port, _ := net.SplitHostPort(addr)
	script := `
import imaplib, ssl, sys
host, port, ca, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
m = imaplib.IMAP4(host, port)
m.login("mox@localhost", pw)
typ, data = m.select("INBOX")
assert typ == "OK", (typ, data)
typ, data = m.list()
names = b" ".join(data)
for want in (b"Sent", b"Drafts", b"Trash", b"Junk", b"Archive"):
    assert want in names, names
m.logout()
ctx = ssl.create_default_context(cafile=ca)
# The certificate names localhost; the chain is what is checked here
# (openssl above checks the name).
ctx.check_hostname = False
m = imaplib.IMAP4(host, port)
m.starttls(ssl_context=ctx)
m.login("mox@localhost", pw)
m.logout()
print("imap ok")
`
	out, err := runTool(t, "", py, "-c", script, host, port, ca, master.LocalservePassword)
	if err != nil || !strings.Contains(out, "imap ok") {
		t.Errorf("imap login to localserve: %v\n%s", err, out)
	}
}
