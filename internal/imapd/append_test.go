package imapd

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"moxd/internal/config"
	"moxd/internal/ipc"
	"moxd/internal/storage/storetest"
)

// withQuota replaces the env's store by one whose account mjl has a quota
// of quota bytes.
func withQuota(t *testing.T, quota int64) func(*env) {
	return func(e *env) {
		slice := testSlice
		slice.Accounts = []config.StoreAccount{{Name: "mjl", Addresses: []string{"mjl@example.org"}, Quota: quota}}
		e.st = storetest.Start(t, slice)
		e.st.SetPassword(t, "mjl", "secret")
		e.srv.Store = e.st.Peer(ipc.RoleIMAP)
	}
}

// syncLit sends line, which ends in a synchronizing literal, waits for the
// continuation and sends data.
func (c *client) syncLit(line, data string) {
	c.t.Helper()
	c.send(line)
	if l := c.line(); !strings.HasPrefix(l, "+ ") {
		c.t.Fatalf("after %q: %q, want a continuation", line, l)
	}
	c.write(data)
}

func (c *client) write(s string) {
	c.t.Helper()
	if _, err := c.nc.Write([]byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

// tagged reads the responses up to the tagged one of tag.
func (c *client) tagged(tag string) ([]string, string) {
	c.t.Helper()
	var untagged []string
	for {
		l := c.line()
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			return untagged, rest
		}
		untagged = append(untagged, l)
	}
}

var appendUIDRe = regexp.MustCompile(`^OK \[APPENDUID (\d+) ([0-9:,]+)\] `)

// appendUID parses the tagged OK of an APPEND: UIDVALIDITY and UID set.
func appendUID(t *testing.T, res string) (string, string) {
	t.Helper()
	m := appendUIDRe.FindStringSubmatch(res)
	if m == nil {
		t.Fatalf("APPEND: %q, want OK [APPENDUID ...]", res)
	}
	return m[1], m[2]
}

// mailboxStatus returns the STATUS data of mailbox for items.
func (c *client) mailboxStatus(mailbox, items string) string {
	c.t.Helper()
	u := c.ok("STATUS " + mailbox + " (" + items + ")")
	if len(u) != 1 {
		c.t.Fatalf("STATUS %s: %q", mailbox, u)
	}
	return u[0]
}

func TestAppend(t *testing.T) {
	e := newEnv(t, func(e *env) { e.srv.MaxAppendSize = 1000 })
	c, _ := e.dial(t)
	c.login()
	if caps := c.ok("CAPABILITY")[0]; !strings.Contains(caps, " APPENDLIMIT=1000") || !strings.Contains(caps, " MULTIAPPEND") || !strings.Contains(caps, " UIDPLUS") {
		t.Fatalf("CAPABILITY: %q", caps)
	}
	uidvalidity := regexp.MustCompile(`UIDVALIDITY (\d+)`).FindStringSubmatch(c.mailboxStatus("Drafts", "UIDVALIDITY"))[1]

	// A synchronizing literal with flags and a date.
	msg := "From: a@example.net\r\nSubject: draft\r\n\r\nhello\r\n"
	c.syncLit(fmt.Sprintf(`s1 APPEND Drafts (\Draft \Seen $Work) "14-Jul-2023 02:44:25 +0200" {%d}`, len(msg)), msg)
	c.send("")
	_, res := c.tagged("s1")
	v, uid := appendUID(t, res)
	if v != uidvalidity || uid != "1" {
		t.Fatalf("APPENDUID %s %s, want %s 1", v, uid, uidvalidity)
	}

	// A non-synchronizing literal (LITERAL-), no flags.
	msg2 := "Subject: second\r\n\r\nbody\r\n"
	_, res = c.cmd(fmt.Sprintf("APPEND Drafts {%d+}\r\n%s", len(msg2), msg2))
	if _, uid := appendUID(t, res); uid != "2" {
		t.Fatalf("second APPENDUID %q", res)
	}

	// literal8 may hold NUL (RFC 3516 §4.4) and is stored as given; a
	// plain literal may not.
	bin := "Subject: binary\r\nContent-Transfer-Encoding: binary\r\n\r\na\x00b\r\n"
	_, res = c.cmd(fmt.Sprintf("APPEND Drafts ~{%d+}\r\n%s", len(bin), bin))
	if _, uid := appendUID(t, res); uid != "3" {
		t.Fatalf("literal8 APPENDUID %q", res)
	}
	c.expect(fmt.Sprintf("APPEND Drafts {%d+}\r\n%s", len(bin), bin), "BAD")

	c.ok("SELECT Drafts")
	out, res := c.raw("UID FETCH 1:3 (FLAGS INTERNALDATE BODY.PEEK[])")
	if !strings.HasPrefix(res, "OK") {
		t.Fatalf("UID FETCH: %q", res)
	}
	for _, want := range []string{
		// Junk flag rules (account/junk.go) may add $NotJunk.
		`* 1 FETCH (UID 1 FLAGS (\Seen \Draft $Work`,
		`INTERNALDATE "14-Jul-2023 00:44:25 +0000" BODY[] {` + strconv.Itoa(len(msg)) + "}\r\n" + msg + ")",
		"BODY[] {" + strconv.Itoa(len(msg2)) + "}\r\n" + msg2 + ")",
		"BODY[] {" + strconv.Itoa(len(bin)) + "}\r\n" + bin + ")",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("UID FETCH lacks %q:\n%s", want, out)
		}
	}

	// A missing mailbox: TRYCREATE (RFC 9051 §6.3.12).
	c.expect(fmt.Sprintf("APPEND Nope {%d+}\r\n%s", len(msg2), msg2), "NO [TRYCREATE]")

	// Over APPENDLIMIT: refused before the continuation (RFC 7889 §4),
	// and the connection goes on.
	c.send("s2 APPEND Drafts {1001}")
	if l := c.line(); !strings.HasPrefix(l, "s2 NO [TOOBIG]") {
		t.Fatalf("APPEND over the limit: %q", l)
	}
	c.ok("NOOP")
	if st := c.mailboxStatus("Drafts", "MESSAGES"); st != "* STATUS Drafts (MESSAGES 3)" {
		t.Fatalf("after the refused APPEND: %q", st)
	}
}

func TestMultiAppend(t *testing.T) {
	e := newEnv(t, func(e *env) { e.srv.MaxAppendSize = 1000 })
	c, _ := e.dial(t)
	c.login()
	msgs := []string{
		"Subject: m1\r\n\r\none\r\n",
		"Subject: m2\r\n\r\ntwo\r\n",
		"Subject: m3\r\n\r\nthree\r\n",
	}
	c.syncLit(fmt.Sprintf("m1 APPEND INBOX (\\Seen) {%d}", len(msgs[0])), msgs[0])
	c.syncLit(fmt.Sprintf(` "01-Feb-2024 10:00:00 +0000" {%d}`, len(msgs[1])), msgs[1])
	c.write(fmt.Sprintf(" (\\Flagged) {%d+}\r\n%s\r\n", len(msgs[2]), msgs[2]))
	_, res := c.tagged("m1")
	if _, set := appendUID(t, res); set != "1:3" {
		t.Fatalf("MULTIAPPEND APPENDUID set %q, want 1:3", set)
	}
	c.ok("SELECT INBOX")
	out, _ := c.raw("UID FETCH 1:* (FLAGS BODY.PEEK[])")
	for i, m := range msgs {
		if !strings.Contains(out, fmt.Sprintf("* %d FETCH (UID %d FLAGS ", i+1, i+1)) || !strings.Contains(out, m) {
			t.Errorf("message %d missing:\n%s", i+1, out)
		}
	}
	if !strings.Contains(out, `* 3 FETCH (UID 3 FLAGS (\Flagged`) || strings.Contains(out, `* 2 FETCH (UID 2 FLAGS (\Flagged`) {
		t.Errorf("flags of message 3:\n%s", out)
	}

	// All or nothing: the second message is over the limit; the first,
	// already sent, is not stored either.
	c.syncLit(fmt.Sprintf("m2 APPEND INBOX {%d}", len(msgs[0])), msgs[0])
	c.send(" {5000}")
	if l := c.line(); !strings.HasPrefix(l, "m2 NO [TOOBIG]") {
		t.Fatalf("MULTIAPPEND with a message over the limit: %q", l)
	}
	// The first message of the failed command goes with its spool; the
	// next APPEND stores exactly its own message.
	_, res = c.cmd(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msgs[2]), msgs[2]))
	if _, uid := appendUID(t, res); uid != "4" {
		t.Fatalf("APPEND after a failed MULTIAPPEND: %q", res)
	}
	out, _ = c.raw("UID FETCH 4 BODY.PEEK[]")
	if !strings.Contains(out, "BODY[] {"+strconv.Itoa(len(msgs[2]))+"}\r\n"+msgs[2]+")") {
		t.Fatalf("message 4:\n%s", out)
	}
	if st := c.mailboxStatus("INBOX", "MESSAGES"); st != "* STATUS INBOX (MESSAGES 4)" {
		t.Fatalf("after MULTIAPPENDs: %q", st)
	}
}

func TestAppendQuota(t *testing.T) {
	msg := "Subject: big\r\n\r\n" + strings.Repeat("x", 700) + "\r\n"
	e := newEnv(t, withQuota(t, int64(len(msg))*3/2))
	c, _ := e.dial(t)
	c.login()
	// Two messages do not fit together: store refuses both, in one
	// transaction (RFC 3502: all or none).
	c.syncLit(fmt.Sprintf("q1 APPEND INBOX {%d}", len(msg)), msg)
	c.write(fmt.Sprintf(" {%d+}\r\n%s\r\n", len(msg), msg))
	if _, res := c.tagged("q1"); !strings.HasPrefix(res, "NO [OVERQUOTA]") {
		t.Fatalf("MULTIAPPEND over quota: %q", res)
	}
	if st := c.mailboxStatus("INBOX", "MESSAGES"); st != "* STATUS INBOX (MESSAGES 0)" {
		t.Fatalf("after the refused MULTIAPPEND: %q", st)
	}
	// One fits, the next does not.
	_, res := c.cmd(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg))
	appendUID(t, res)
	c.expect(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg), "NO [OVERQUOTA]")
	if st := c.mailboxStatus("INBOX", "MESSAGES"); st != "* STATUS INBOX (MESSAGES 1)" {
		t.Fatalf("after the refused APPEND: %q", st)
	}
}

func TestAppendBeforeLogin(t *testing.T) {
	e := newEnv(t)
	c, _ := e.dial(t)
	msg := "Subject: x\r\n\r\nx\r\n"
	_, res := c.cmd(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg))
	if !strings.HasPrefix(res, "NO") && !strings.HasPrefix(res, "BAD") {
		t.Fatalf("APPEND before login: %q", res)
	}
	c.ok("NOOP")
}
