package imapd

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// selectState returns UIDVALIDITY and HIGHESTMODSEQ from SELECT's lines.
func selectState(t *testing.T, u []string) (string, string) {
	t.Helper()
	var v, m string
	for _, l := range u {
		if x := regexp.MustCompile(`^\* OK \[UIDVALIDITY (\d+)\]`).FindStringSubmatch(l); x != nil {
			v = x[1]
		}
		if x := regexp.MustCompile(`^\* OK \[HIGHESTMODSEQ (\d+)\]`).FindStringSubmatch(l); x != nil {
			m = x[1]
		}
	}
	if v == "" || m == "" {
		t.Fatalf("SELECT without UIDVALIDITY or HIGHESTMODSEQ: %q", u)
	}
	return v, m
}

// changeBehind makes the changes a resynchronizing client has to learn of,
// in another session: UID 1 expunged, UID 3 seen, UID 4 new.
func changeBehind(t *testing.T, e *env) {
	t.Helper()
	c2 := e.loggedIn(t)
	c2.ok("SELECT INBOX")
	c2.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	c2.ok("EXPUNGE")
	c2.ok(`UID STORE 3 +FLAGS.SILENT (\Seen)`)
	e.st.Deliver(t, "mjl@example.org", testMsgs[0])
	c2.ok("LOGOUT")
}

// untaggedAfter returns the lines of a SELECT after its HIGHESTMODSEQ.
func untaggedAfter(u []string) []string {
	for i, l := range u {
		if strings.HasPrefix(l, "* OK [HIGHESTMODSEQ ") {
			return u[i+1:]
		}
	}
	return nil
}

func TestQResync(t *testing.T) {
	e := pushEnv(t)
	c := e.loggedIn(t)
	if !strings.Contains(strings.Join(c.ok("CAPABILITY"), " "), " QRESYNC") {
		t.Fatal("QRESYNC not announced")
	}
	c.expect("SELECT INBOX (QRESYNC (1 1))", "BAD") // RFC 7162 §3.2.5: ENABLE first
	if u := c.ok("ENABLE QRESYNC"); strings.Join(u, "\n") != "* ENABLED QRESYNC" {
		t.Fatalf("ENABLE: %q", u)
	}
	v, m := selectState(t, c.ok("SELECT INBOX"))
	c.ok("LOGOUT")

	changeBehind(t, e)

	c = e.loggedIn(t)
	c.ok("ENABLE QRESYNC")
	// With known UIDs: only they are reported; the new message is in
	// EXISTS.
	u := c.ok("SELECT INBOX (QRESYNC (" + v + " " + m + " 1:3))")
	if u[0] != "* 3 EXISTS" {
		t.Fatalf("SELECT QRESYNC: %q", u)
	}
	got := untaggedAfter(u)
	if len(got) != 2 || got[0] != "* VANISHED (EARLIER) 1" || !regexp.MustCompile(`^\* 2 FETCH \(UID 3 FLAGS \(\\Seen\) MODSEQ \(\d+\)\)$`).MatchString(got[1]) {
		t.Fatalf("SELECT QRESYNC with known UIDs:\n%s", strings.Join(u, "\n"))
	}
	// Without them: all changes, the new message too; [CLOSED] first.
	u = c.ok("SELECT INBOX (QRESYNC (" + v + " " + m + "))")
	if u[0] != "* OK [CLOSED] previous mailbox closed" {
		t.Fatalf("reselect: %q", u)
	}
	got = untaggedAfter(u)
	if len(got) != 3 || got[0] != "* VANISHED (EARLIER) 1" || !strings.HasPrefix(got[1], `* 2 FETCH (UID 3 FLAGS (\Seen) MODSEQ (`) ||
		!strings.HasPrefix(got[2], `* 3 FETCH (UID 4 FLAGS () MODSEQ (`) {
		t.Fatalf("SELECT QRESYNC without known UIDs:\n%s", strings.Join(u, "\n"))
	}
	// Another UIDVALIDITY: a plain SELECT.
	vn, _ := strconv.ParseUint(v, 10, 32)
	other := strconv.FormatUint(vn%1000+1000, 10)
	if got := untaggedAfter(c.ok("EXAMINE INBOX (QRESYNC (" + other + " " + m + " 1:3))")); len(got) != 0 {
		t.Fatalf("QRESYNC with another UIDVALIDITY: %q", got)
	}

	c.ok("SELECT INBOX")
	u = c.ok("UID FETCH 1:* (FLAGS) (CHANGEDSINCE " + m + " VANISHED)")
	if len(u) != 3 || u[0] != "* VANISHED (EARLIER) 1" || !strings.HasPrefix(u[1], `* 2 FETCH (UID 3 FLAGS (\Seen) MODSEQ (`) ||
		!strings.HasPrefix(u[2], `* 3 FETCH (UID 4 FLAGS () MODSEQ (`) {
		t.Fatalf("UID FETCH VANISHED: %q", u)
	}
	if u := c.ok("UID FETCH 3:* (FLAGS) (CHANGEDSINCE " + m + " VANISHED)"); len(u) != 2 {
		t.Fatalf("UID FETCH 3:* VANISHED: %q", u)
	}
	c.expect("FETCH 1:* (FLAGS) (CHANGEDSINCE "+m+" VANISHED)", "BAD") // §3.2.6: UID FETCH only

	// Expunges elsewhere are VANISHED here (§3.2.10), as are our own.
	c2 := e.loggedIn(t)
	c2.ok("SELECT INBOX")
	c2.ok(`UID STORE 2,3 +FLAGS.SILENT (\Deleted)`)
	c2.ok("UID EXPUNGE 2")
	if u := c.ok("NOOP"); len(u) != 2 || u[0] != "* VANISHED 2" || !strings.HasPrefix(u[1], `* 1 FETCH (UID 3 FLAGS (\Seen \Deleted) MODSEQ (`) {
		t.Fatalf("NOOP under QRESYNC: %q", u)
	}
	if u := c.ok("EXPUNGE"); strings.Join(u, "\n") != "* VANISHED 3" {
		t.Fatalf("EXPUNGE under QRESYNC: %q", u)
	}
	// A session without QRESYNC keeps EXPUNGE.
	if u := c2.ok("NOOP"); strings.Join(u, "\n") != "* 1 EXPUNGE" {
		t.Fatalf("NOOP without QRESYNC: %q", u)
	}
}

// TestPythonImaplibQResync: Python's imaplib, an independent client,
// resynchronizes with QRESYNC after changes made while it was away.
func TestPythonImaplibQResync(t *testing.T) {
	e := pushEnv(t)
	script := `
M.login("mjl@example.org", "secret")
typ, dat = M._simple_command("ENABLE", "CONDSTORE", "QRESYNC")
print(typ, M._untagged_response(typ, dat, "ENABLED")[1])
if len(sys.argv) == 3:
    M.select("INBOX")
    print(M.response("UIDVALIDITY")[1][0].decode(), M.response("HIGHESTMODSEQ")[1][0].decode())
else:
    M.state = "AUTH"
    typ, dat = M._simple_command("SELECT", "INBOX", "(QRESYNC (%s %s 1:3))" % (sys.argv[3], sys.argv[4]))
    print(typ, M.response("EXISTS")[1])
    print(M.response("VANISHED")[1])
    print(M.response("FETCH")[1])
print(M.logout()[0])
`
	out, err := imaplibCommand(t, e.addr, script).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	lines := strings.Split(string(out), "\n")
	state := regexp.MustCompile(`^(\d+) (\d+)$`).FindStringSubmatch(lines[1])
	if len(lines) < 3 || lines[0] != "OK [b'CONDSTORE QRESYNC']" || state == nil || lines[2] != "BYE" {
		t.Fatalf("python, first session:\n%s", out)
	}

	changeBehind(t, e)

	out, err = imaplibCommand(t, e.addr, script, state[1], state[2]).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	want := regexp.MustCompile(`^OK \[b'CONDSTORE QRESYNC'\]
OK \[b'3'\]
\[b'\(EARLIER\) 1'\]
\[b'2 \(UID 3 FLAGS \(\\\\Seen\) MODSEQ \(\d+\)\)'\]
BYE
$`)
	if !want.Match(out) {
		t.Fatalf("python, resynchronizing:\n%s", out)
	}
}
