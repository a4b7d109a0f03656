package imapd

import (
	"regexp"
	"strings"
	"testing"
)

var copyUIDRe = regexp.MustCompile(`\[COPYUID (\d+) ([0-9:,]+) ([0-9:,]+)\]`)

// uidValidity returns the UIDVALIDITY of mailbox.
func (c *client) uidValidity(mailbox string) string {
	c.t.Helper()
	return regexp.MustCompile(`UIDVALIDITY (\d+)`).FindStringSubmatch(c.mailboxStatus(mailbox, "UIDVALIDITY"))[1]
}

func TestCopy(t *testing.T) {
	_, c := selEnv(t)
	if caps := c.ok("CAPABILITY")[0]; !strings.Contains(caps, " MOVE") {
		t.Fatalf("CAPABILITY lacks MOVE: %q", caps)
	}
	archive := c.uidValidity("Archive")
	c.ok("SELECT INBOX")
	_, res := c.cmd("COPY 2:3 Archive")
	m := copyUIDRe.FindStringSubmatch(res)
	if !strings.HasPrefix(res, "OK [COPYUID ") || m == nil || m[1] != archive || m[2] != "2:3" || m[3] != "1:2" {
		t.Fatalf("COPY: %q, want OK [COPYUID %s 2:3 1:2]", res, archive)
	}
	_, res = c.cmd("UID COPY 1 Archive")
	if m := copyUIDRe.FindStringSubmatch(res); m == nil || m[2] != "1" || m[3] != "3" {
		t.Fatalf("UID COPY: %q", res)
	}
	// UIDs that match nothing are no error, and report no COPYUID.
	if _, res := c.cmd("UID COPY 100:200 Archive"); !strings.HasPrefix(res, "OK") || strings.Contains(res, "COPYUID") {
		t.Fatalf("UID COPY of nothing: %q", res)
	}
	c.expect("COPY 1 Nope", "NO [TRYCREATE]")
	c.expect("COPY 9 Archive", "BAD")
	// The source is unchanged.
	if u := c.ok("NOOP"); len(u) != 0 {
		t.Fatalf("NOOP after COPY: %q", u)
	}

	// The COPYUID destination UIDs hold the copies.
	c.ok("EXAMINE Archive")
	out, _ := c.raw("UID FETCH 1:3 BODY.PEEK[]")
	for _, want := range []string{"UID 1 BODY[] {", "Subject: two", "UID 2 BODY[] {", "Subject: three", "UID 3 BODY[] {", "Subject: one"} {
		if !strings.Contains(out, want) {
			t.Fatalf("Archive lacks %q:\n%s", want, out)
		}
	}
	if i1, i2, i3 := strings.Index(out, "UID 1 "), strings.Index(out, "Subject: two"), strings.Index(out, "UID 2 "); !(i1 < i2 && i2 < i3) {
		t.Fatalf("Archive UID 1 is not message two:\n%s", out)
	}
	if i1, i2 := strings.Index(out, "UID 3 "), strings.Index(out, "Subject: one"); i2 < i1 {
		t.Fatalf("Archive UID 3 is not message one:\n%s", out)
	}
	// MOVE needs a read-write mailbox (RFC 6851 §3.3).
	c.expect("MOVE 1 INBOX", "NO")
}

func TestMove(t *testing.T) {
	_, c := selEnv(t)
	trash := c.uidValidity("Trash")
	c.ok("SELECT INBOX")
	u, res := c.cmd("UID MOVE 2 Trash")
	// RFC 6851 §4.3: COPYUID untagged before the EXPUNGE.
	if res != "OK MOVE completed" || len(u) != 2 || !strings.HasPrefix(u[0], "* OK [COPYUID "+trash+" 2 1] ") || u[1] != "* 2 EXPUNGE" {
		t.Fatalf("UID MOVE: %q %q", u, res)
	}
	out, _ := c.raw("FETCH 1:* (UID)")
	if out != "* 1 FETCH (UID 1)\r\n* 2 FETCH (UID 3)\r\n" {
		t.Fatalf("INBOX after MOVE:\n%s", out)
	}
	u, res = c.cmd("MOVE 1:* Trash")
	if res != "OK MOVE completed" || len(u) != 3 || !strings.HasPrefix(u[0], "* OK [COPYUID "+trash+" 1,3 2:3] ") ||
		u[1] != "* 2 EXPUNGE" || u[2] != "* 1 EXPUNGE" {
		t.Fatalf("MOVE 1:*: %q %q", u, res)
	}
	c.expect("MOVE 1 Trash", "BAD") // no messages left
	c.expect("UID MOVE 1 Nope", "OK")
	if st := c.mailboxStatus("Trash", "MESSAGES"); st != "* STATUS Trash (MESSAGES 3)" {
		t.Fatalf("Trash: %q", st)
	}
	c.ok("SELECT Trash")
	c.expect("MOVE 1 Nope", "NO [TRYCREATE]")
	out, _ = c.raw("UID FETCH 1:3 BODY.PEEK[HEADER]")
	for _, want := range []string{"Subject: two", "Subject: one", "Subject: three"} {
		if !strings.Contains(out, want) {
			t.Fatalf("Trash lacks %q:\n%s", want, out)
		}
	}
}

func TestCopyQuota(t *testing.T) {
	msg := "Subject: big\r\n\r\n" + strings.Repeat("x", 1000) + "\r\n"
	// Room for one copy, with the header lines delivery adds, not two.
	e := newEnv(t, withQuota(t, int64(len(msg))*3/2))
	e.st.Deliver(t, "mjl@example.org", msg)
	c, _ := e.dial(t)
	c.login()
	c.ok("SELECT INBOX")
	c.expect("COPY 1 Archive", "NO [OVERQUOTA]")
	if st := c.mailboxStatus("Archive", "MESSAGES"); st != "* STATUS Archive (MESSAGES 0)" {
		t.Fatalf("Archive after refused COPY: %q", st)
	}
	// A move takes no more room.
	c.ok("MOVE 1 Archive")
}

func TestPythonAppendCopyMove(t *testing.T) {
	e := newEnv(t)
	script := `
M.login("mjl@example.org", "secret")
msg = b"From: a@example.net\r\nSubject: from python\r\n\r\nhi\r\n"
typ, data = M.append("INBOX", r"(\Flagged)", imaplib.Time2Internaldate(1700000000), msg)
print(typ, data[0].decode().split("]")[0].split()[0])
print(M.select("INBOX")[1][0].decode())
typ, data = M.copy("1", "Archive")
print(typ, data[0].decode().split("]")[0].split()[0])
typ, data = M.uid("MOVE", "1", "Trash")
print(typ, M.response("EXPUNGE")[1])
print(M.status("Archive", "(MESSAGES)")[1][0].decode())
print(M.status("Trash", "(MESSAGES)")[1][0].decode())
print(M.status("INBOX", "(MESSAGES)")[1][0].decode())
typ, data = M.select("Trash")
typ, data = M.fetch("1", "(FLAGS BODY.PEEK[])")
print(data[0][0].decode().startswith("1 (FLAGS (\\Flagged"))
print(data[0][1] == msg)
M.logout()
`
	out, err := imaplibCommand(t, e.addr, script).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	want := `OK [APPENDUID
1
OK [COPYUID
OK [b'1']
Archive (MESSAGES 1)
Trash (MESSAGES 1)
INBOX (MESSAGES 0)
True
True
`
	if string(out) != want {
		t.Fatalf("python output:\n%s\nwant:\n%s", out, want)
	}
}
