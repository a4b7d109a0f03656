package imapd

import (
	"fmt"
	"strings"
	"testing"
)

// TestFetchFailsWithoutSeen: a FETCH that would set \Seen but answers BAD
// (BINARY of a multipart part) or NO [UNKNOWN-CTE] leaves every message
// unread, and sends no FETCH data.
func TestFetchFailsWithoutSeen(t *testing.T) {
	_, c := fetchEnv(t)
	// Message 1 part 1 is multipart/alternative; message 4 part 1 is
	// x-uuencode; messages 2 and 3 have decodable first parts.
	for _, tc := range []struct{ cmd, want string }{
		{"FETCH 1:3 (BODY[TEXT] BINARY.SIZE[1])", "BAD"},
		{"FETCH 2:4 BINARY[1]", "NO [UNKNOWN-CTE]"},
		{"FETCH 2:4 (BINARY.PEEK[1] RFC822.TEXT)", "NO [UNKNOWN-CTE]"},
		{"UID FETCH 1:* (BODY[] BINARY.SIZE[1])", "BAD"},
	} {
		if u := c.expect(tc.cmd, tc.want); len(u) != 0 {
			t.Errorf("%s: %q, want no untagged responses", tc.cmd, u)
		}
		if u := c.ok("FETCH 1:4 FLAGS"); strings.Contains(strings.Join(u, "\n"), `\Seen`) {
			t.Fatalf("after %s: %q, want no \\Seen", tc.cmd, u)
		}
	}
	// The same items on messages they fit: \Seen set, reported.
	out := c.fetchOne("FETCH 2:3 (BINARY.SIZE[1] BODY[TEXT])")
	if n := strings.Count(out, `FLAGS (\Seen)`); n != 2 {
		t.Errorf("FETCH 2:3 with BINARY.SIZE and BODY: %d FLAGS (\\Seen), want 2:\n%s", n, out)
	}
	if u := c.ok("FETCH 1:4 FLAGS"); strings.Join(u, "\n") != "* 1 FETCH (FLAGS ())\n* 2 FETCH (FLAGS (\\Seen))\n* 3 FETCH (FLAGS (\\Seen))\n* 4 FETCH (FLAGS ())" {
		t.Errorf("flags: %q", u)
	}
}

// TestAppendAfterFailedMultiAppend: the messages a MULTIAPPEND sent before
// it failed do not count against the next APPEND's limits, and are not
// stored.
func TestAppendAfterFailedMultiAppend(t *testing.T) {
	e := newEnv(t, func(e *env) { e.srv.MaxAppendSize = 1000 })
	c, _ := e.dial(t)
	c.login()
	msg := "Subject: x\r\n\r\n" + strings.Repeat("x", 880) + "\r\n"
	// Three messages (2700 of the 4000 octets one APPEND may have), then
	// a syntax error in the fourth.
	c.syncLit(fmt.Sprintf("f1 APPEND INBOX {%d}", len(msg)), msg)
	c.syncLit(fmt.Sprintf(" {%d}", len(msg)), msg)
	c.syncLit(fmt.Sprintf(" {%d}", len(msg)), msg)
	c.send(` "not a date" {10}`)
	if _, res := c.tagged("f1"); !strings.HasPrefix(res, "BAD") {
		t.Fatalf("MULTIAPPEND with a bad date: %q", res)
	}
	// Two more messages: 1800 octets, within the limit.
	c.syncLit(fmt.Sprintf("f2 APPEND INBOX {%d}", len(msg)), msg)
	c.syncLit(fmt.Sprintf(" {%d}", len(msg)), msg)
	c.send("")
	_, res := c.tagged("f2")
	if _, set := appendUID(t, res); set != "1:2" {
		t.Fatalf("APPEND after the failed one: UIDs %s, want 1:2", set)
	}
	if st := c.mailboxStatus("INBOX", "MESSAGES"); st != "* STATUS INBOX (MESSAGES 2)" {
		t.Fatalf("after the APPENDs: %q", st)
	}
	// A refused literal (over APPENDLIMIT) midway, then a single APPEND.
	c.syncLit(fmt.Sprintf("f3 APPEND INBOX {%d}", len(msg)), msg)
	c.syncLit(fmt.Sprintf(" {%d}", len(msg)), msg)
	c.send(" {1001}")
	if _, res := c.tagged("f3"); !strings.HasPrefix(res, "NO [TOOBIG]") {
		t.Fatalf("MULTIAPPEND with a message over the limit: %q", res)
	}
	for i := range 3 {
		_, res = c.cmd(fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg))
		if _, uid := appendUID(t, res); uid != fmt.Sprint(3+i) {
			t.Fatalf("APPEND %d after the refused MULTIAPPEND: %q", i+1, res)
		}
	}
}

// indexOf returns the index of the first line with prefix, -1 if none.
func indexOf(u []string, prefix string) int {
	for i, l := range u {
		if strings.HasPrefix(l, prefix) {
			return i
		}
	}
	return -1
}

// TestFlagsNewKeyword: a keyword new to the mailbox is announced with FLAGS
// and PERMANENTFLAGS before the first FETCH that shows it, in the session
// that stored it and in the others, once.
func TestFlagsNewKeyword(t *testing.T) {
	e, a := selEnv(t)
	a.ok("SELECT INBOX")
	b, _ := e.dial(t)
	b.login()
	if u := b.ok("SELECT INBOX"); indexOf(u, `* FLAGS (\Seen \Answered \Flagged \Deleted \Draft`) < 0 {
		t.Fatalf("SELECT: %q", u)
	}
	r, _ := e.dial(t)
	r.login()
	r.ok("EXAMINE INBOX")

	// The storing session: FLAGS first, then its FETCH.
	u := b.ok("STORE 1 +FLAGS (Project-X)")
	fl, perm, fetch := indexOf(u, "* FLAGS "), indexOf(u, "* OK [PERMANENTFLAGS "), indexOf(u, "* 1 FETCH ")
	if fl < 0 || perm < 0 || fetch < 0 || fl > fetch || perm > fetch {
		t.Fatalf("STORE of a new keyword: %q, want FLAGS and PERMANENTFLAGS before FETCH", u)
	}
	if !strings.Contains(u[fl], " Project-X)") || !strings.HasSuffix(strings.SplitN(u[perm], "]", 2)[0], ` Project-X \*)`) {
		t.Errorf("FLAGS %q, PERMANENTFLAGS %q: want Project-X in both", u[fl], u[perm])
	}
	// A known keyword: no FLAGS again.
	if u := b.ok("STORE 2 +FLAGS (project-x)"); indexOf(u, "* FLAGS ") >= 0 {
		t.Errorf("STORE of a known keyword: %q", u)
	}

	// Another session learns of it with NOOP: FLAGS, then the FETCHes.
	u = a.ok("NOOP")
	fl, fetch = indexOf(u, "* FLAGS "), indexOf(u, "* 1 FETCH ")
	if fl < 0 || fetch < 0 || fl > fetch || indexOf(u, "* OK [PERMANENTFLAGS ") < 0 || !strings.Contains(u[fl], "Project-X") {
		t.Fatalf("NOOP after another session's STORE: %q", u)
	}
	if u := a.ok("NOOP"); indexOf(u, "* FLAGS ") >= 0 {
		t.Errorf("second NOOP: %q", u)
	}
	// A read-only session: its PERMANENTFLAGS stay empty.
	u = r.ok("FETCH 1:2 FLAGS")
	fl, fetch = indexOf(u, "* FLAGS "), indexOf(u, "* 1 FETCH ")
	if fl < 0 || fetch < fl || !strings.Contains(u[fetch], "Project-X") {
		t.Fatalf("FETCH FLAGS in the read-only session: %q", u)
	}
	if perm := indexOf(u, "* OK [PERMANENTFLAGS "); perm < 0 || !strings.HasPrefix(u[perm], "* OK [PERMANENTFLAGS ()]") {
		t.Errorf("read-only session: %q, want PERMANENTFLAGS ()", u)
	}

	// An APPEND to the selected mailbox with a new keyword: FLAGS with
	// the EXISTS, before the client can fetch the message.
	msg := "Subject: new\r\n\r\nnew\r\n"
	u, res := a.cmd(fmt.Sprintf("APPEND INBOX (Later $Todo) {%d+}\r\n%s", len(msg), msg))
	appendUID(t, res)
	if fl := indexOf(u, "* FLAGS "); fl < 0 || !strings.Contains(u[fl], " Later") || !strings.Contains(u[fl], " $Todo") || indexOf(u, "* 4 EXISTS") < 0 {
		t.Errorf("APPEND with new keywords: %q", u)
	}
}
