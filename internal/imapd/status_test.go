package imapd

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestStatusDeleted checks STATUS DELETED (RFC 9051 §6.3.11) and
// DELETED-STORAGE (RFC 9208 §4.1.4), also as LIST-STATUS (RFC 5819), as
// messages get and lose \Deleted and are expunged.
func TestStatusDeleted(t *testing.T) {
	e := newEnv(t)
	for i := range 3 {
		e.st.Deliver(t, "mjl@example.org", fmt.Sprintf("From: a@example.net\r\nSubject: m%d\r\n\r\n%s\r\n", i, strings.Repeat("x", 1500*(i+1))))
	}
	c, _ := e.dial(t)
	c.login()
	c.ok("SELECT INBOX")
	sizes := map[int]int64{}
	re := regexp.MustCompile(`^\* (\d+) FETCH \(RFC822\.SIZE (\d+)\)$`)
	for _, l := range c.ok("FETCH 1:3 RFC822.SIZE") {
		m := re.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("fetch: %q", l)
		}
		seq, _ := strconv.Atoi(m[1])
		sizes[seq], _ = strconv.ParseInt(m[2], 10, 64)
	}
	kib := func(n int64) int64 { return (n + 1023) / 1024 }
	status := func(want string) {
		t.Helper()
		if got := c.mailboxStatus("INBOX", "DELETED DELETED-STORAGE"); got != "* STATUS INBOX ("+want+")" {
			t.Errorf("STATUS: %q, want (%s)", got, want)
		}
		var listed string
		for _, l := range c.ok(`LIST "" "INBOX" RETURN (STATUS (DELETED DELETED-STORAGE))`) {
			if strings.HasPrefix(l, "* STATUS ") {
				listed = l
			}
		}
		if listed != "* STATUS INBOX ("+want+")" {
			t.Errorf("LIST-STATUS: %q, want (%s)", listed, want)
		}
	}
	status("DELETED 0 DELETED-STORAGE 0")
	c.ok(`STORE 1,3 +FLAGS.SILENT (\Deleted)`)
	status(fmt.Sprintf("DELETED 2 DELETED-STORAGE %d", kib(sizes[1]+sizes[3])))
	c.ok(`STORE 1 -FLAGS.SILENT (\Deleted)`)
	status(fmt.Sprintf("DELETED 1 DELETED-STORAGE %d", kib(sizes[3])))
	c.ok("EXPUNGE")
	status("DELETED 0 DELETED-STORAGE 0")
	if got := c.ok("CAPABILITY")[0]; !strings.Contains(got, " QUOTA=RES-STORAGE") {
		t.Errorf("capabilities: %q", got)
	}
}

// TestStatusDeletedPythonImaplib asks for DELETED-STORAGE with Python's
// imaplib as an independent client.
func TestStatusDeletedPythonImaplib(t *testing.T) {
	e := newEnv(t)
	e.st.Deliver(t, "mjl@example.org", "Subject: big\r\n\r\n"+strings.Repeat("y", 4000)+"\r\n")
	script := `
M.login("mjl@example.org", "secret")
M.select("INBOX")
M.store("1", "+FLAGS", "(\\Deleted)")
print(M.fetch("1", "(RFC822.SIZE)")[1][0].decode())
M.select("Archive")
print(M.status("INBOX", "(DELETED DELETED-STORAGE)")[1][0].decode())
print(M.logout()[0])
`
	out, err := imaplibCommand(t, e.addr, script).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`^1 \(RFC822\.SIZE (\d+)\)\n`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("python output:\n%s", out)
	}
	size, _ := strconv.Atoi(m[1])
	want := fmt.Sprintf("INBOX (DELETED 1 DELETED-STORAGE %d)\nBYE\n", (size+1023)/1024)
	if rest := string(out)[len(m[0]):]; rest != want || size < 4000 {
		t.Fatalf("python output:\n%s\nwant after the size:\n%s", out, want)
	}
}
