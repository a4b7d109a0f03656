//go:build linux

package integration

// IMAP against the real processes: moxd-imap as its own user, logins and
// mailboxes through moxd-store, TLS through moxd-keys; and what a crash of
// either does to the sessions.

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"moxd/internal/ctl"
)

const imapBaseUID = 64700

const imapPassword = "imap-test-password"

// imapClient is a minimal IMAP client over implicit TLS: tagged commands,
// untagged lines collected.
type imapClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	n    int
}

func dialIMAPS(t *testing.T, addr, caFile string) *imapClient {
	t.Helper()
	ca, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("imaps %s: %v", addr, err)
	}
	c := &imapClient{t: t, conn: conn, r: bufio.NewReader(conn)}
	if l := c.line(10 * time.Second); !strings.HasPrefix(l, "* OK ") {
		t.Fatalf("imaps greeting %q", l)
	}
	return c
}

func (c *imapClient) line(timeout time.Duration) string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("reading from imap: %v (have %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

// cmd sends a command and returns the untagged lines and the tagged one.
func (c *imapClient) cmd(format string, args ...any) ([]string, string) {
	c.t.Helper()
	c.n++
	tag := fmt.Sprintf("t%d", c.n)
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c.conn, "%s %s\r\n", tag, fmt.Sprintf(format, args...))
	var untagged []string
	for {
		l := c.line(30 * time.Second)
		if strings.HasPrefix(l, tag+" ") {
			return untagged, strings.TrimPrefix(l, tag+" ")
		}
		untagged = append(untagged, l)
	}
}

func (c *imapClient) ok(format string, args ...any) []string {
	c.t.Helper()
	u, st := c.cmd(format, args...)
	if !strings.HasPrefix(st, "OK") {
		c.t.Fatalf("%s: %s (untagged %q)", fmt.Sprintf(format, args...), st, u)
	}
	return u
}

// imapInstance starts an instance of its own: the tests kill its roles.
func imapInstance(t *testing.T) (*instance, ctl.Status, string) {
	t.Helper()
	needRoot(t)
	dir, conf := writeConfig(t, confOptions{baseUID: imapBaseUID})
	in := start(t, dir, conf, imapBaseUID)
	t.Cleanup(func() {
		in.stop()
		waitNoProcs(t, imapBaseUID, imapBaseUID+7)
		os.RemoveAll(dir)
	})
	st := in.waitReady()
	if out, code := moxctlRun(t, conf, imapPassword+"\n", "account", "password", "mox"); code != 0 {
		t.Fatalf("setting the password: exit %d: %s", code, out)
	}
	return in, st, filepath.Join(dir, "data", "localca.pem")
}

// TestIMAPCrashes: kill -9 of moxd-imap drops its sessions and nothing
// else; kill -9 of moxd-store ends the logged-in sessions with BYE, and
// after both come back every delivered message and flag is as before.
func TestIMAPCrashes(t *testing.T) {
	in, st, ca := imapInstance(t)
	for i := 1; i <= 3; i++ {
		if err := moxctlDeliver(in.conf, "mox@localhost", storeMessage("imapcrash", i)); err != nil {
			t.Fatal(err)
		}
	}
	addr := listenerAddr(st, "imaps")
	c := dialIMAPS(t, addr, ca)
	c.ok("LOGIN mox@localhost %s", imapPassword)
	c.ok("SELECT INBOX")
	c.ok("STORE 2 +FLAGS (\\Flagged)")

	// kill -9 imap: this session's connection drops; smtp is untouched.
	smtpPID := role(st, "smtp").PID
	imapPID := role(st, "imap").PID
	syscall.Kill(imapPID, syscall.SIGKILL)
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.r.ReadString('\n'); err == nil {
		t.Errorf("imap session still answering after moxd-imap was killed")
	}
	st = in.waitStatus("imap restarted", func(st ctl.Status) bool {
		r := role(st, "imap")
		return r.State == "ready" && r.PID != imapPID
	})
	if pid := role(st, "smtp").PID; pid != smtpPID {
		t.Errorf("smtp restarted (pid %d, was %d) when only imap was killed", pid, smtpPID)
	}

	// A new session sees the flag; then kill -9 store while it is logged
	// in: BYE [UNAVAILABLE], never wrong data.
	c = dialIMAPS(t, addr, ca)
	c.ok("LOGIN mox@localhost %s", imapPassword)
	c.ok("SELECT INBOX")
	u := c.ok("FETCH 1:* (FLAGS)")
	if len(u) != 3 || !strings.Contains(u[1], `\Flagged`) || strings.Contains(u[0]+u[2], `\Flagged`) {
		t.Errorf("flags after imap restart: %q", u)
	}
	storePID := role(st, "store").PID
	syscall.Kill(storePID, syscall.SIGKILL)
	if l := c.line(20 * time.Second); !strings.HasPrefix(l, "* BYE [UNAVAILABLE]") {
		t.Errorf("after store was killed, the session got %q, want * BYE [UNAVAILABLE]", l)
	}
	in.waitStatus("store restarted", func(st ctl.Status) bool {
		r := role(st, "store")
		return r.State == "ready" && r.PID != storePID
	})
	var c2 *imapClient
	deadline := time.Now().Add(20 * time.Second)
	for {
		c2 = dialIMAPS(t, addr, ca)
		_, status := c2.cmd("LOGIN mox@localhost %s", imapPassword)
		if strings.HasPrefix(status, "OK") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("login after store restart: %s", status)
		}
		c2.conn.Close()
		time.Sleep(200 * time.Millisecond)
	}
	c2.ok("SELECT INBOX")
	u = c2.ok("FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
	got := strings.Join(u, "\n")
	for i := 1; i <= 3; i++ {
		if !strings.Contains(got, fmt.Sprintf("Subject: imapcrash %d", i)) {
			t.Errorf("message %d missing after store restart:\n%s", i, got)
		}
	}
	if strings.Count(got, `\Flagged`) != 1 {
		t.Errorf("want exactly one \\Flagged message after store restart:\n%s", got)
	}
	c2.ok("LOGOUT")
}
