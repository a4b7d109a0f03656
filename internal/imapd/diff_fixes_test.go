package imapd

// Behaviour fixed after the differential test against Dovecot
// (integration/imapdiff): each test is what a client would check.

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

// DELETE of a mailbox with children, which store refuses, says why with
// [HASCHILDREN] (RFC 9051 §6.3.5, §7.1), and the mailboxes stay.
func TestDeleteHasChildren(t *testing.T) {
	e := newEnv(t)
	c, _ := e.dial(t)
	c.login()
	c.ok("CREATE p/q")
	if _, res := c.cmd("DELETE p"); !strings.HasPrefix(res, "NO [HASCHILDREN]") {
		t.Fatalf("DELETE p: %q, want NO [HASCHILDREN]", res)
	}
	u := c.ok(`LIST "" "p*"`)
	if !slices.Contains(u, `* LIST (\HasChildren) "/" p`) || !slices.Contains(u, `* LIST (\HasNoChildren) "/" p/q`) {
		t.Fatalf("after refused DELETE: %q", u)
	}
	// A mailbox without children is deleted as before.
	c.ok("DELETE p/q")
	if _, res := c.cmd("DELETE nosuch"); !strings.HasPrefix(res, "NO [NONEXISTENT]") {
		t.Fatalf("DELETE nosuch: %q", res)
	}
}

// A deleted mailbox that is still subscribed is not listed by plain LIST
// (RFC 5258 §3); LIST (SUBSCRIBED) shows it as \NonExistent.
func TestListDeletedSubscribed(t *testing.T) {
	e := newEnv(t)
	c, _ := e.dial(t)
	c.login()
	c.ok("CREATE gone")
	c.ok("SUBSCRIBE gone")
	c.ok("DELETE gone")
	if u := c.ok(`LIST "" "gone"`); len(u) != 0 {
		t.Fatalf("plain LIST of a deleted subscribed mailbox: %q, want nothing", u)
	}
	if u := c.ok(`LIST "" "%"`); slices.ContainsFunc(u, func(l string) bool { return strings.HasSuffix(l, " gone") }) {
		t.Fatalf(`LIST "" "%%" lists the deleted mailbox: %q`, u)
	}
	u := c.ok(`LIST (SUBSCRIBED) "" "gone"`)
	if len(u) != 1 || !strings.Contains(u[0], `\NonExistent`) || !strings.Contains(u[0], `\Subscribed`) {
		t.Fatalf("LIST (SUBSCRIBED): %q, want one \\NonExistent \\Subscribed entry", u)
	}
}

var modseqCode = regexp.MustCompile(`^OK \[HIGHESTMODSEQ (\d+)\]`)

// With QRESYNC enabled, EXPUNGE and UID EXPUNGE end with the new
// HIGHESTMODSEQ (RFC 7162 §3.2), which a later STATUS confirms; without
// QRESYNC the tagged OK has no such code.
func TestExpungeHighestModSeq(t *testing.T) {
	_, c := selEnv(t)
	c.ok("SELECT INBOX")
	c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
	if _, res := c.cmd("EXPUNGE"); strings.Contains(res, "HIGHESTMODSEQ") {
		t.Fatalf("EXPUNGE without QRESYNC: %q", res)
	}
	c.ok("UNSELECT")
	c.ok("ENABLE QRESYNC")
	c.ok("SELECT INBOX")
	for _, cmd := range []string{"EXPUNGE", "UID EXPUNGE 3"} {
		c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
		u, res := c.cmd(cmd)
		m := modseqCode.FindStringSubmatch(res)
		if m == nil {
			t.Fatalf("%s: %q, want OK [HIGHESTMODSEQ n]", cmd, res)
		}
		if len(u) != 1 || !strings.HasPrefix(u[0], "* VANISHED ") {
			t.Fatalf("%s: untagged %q, want one VANISHED", cmd, u)
		}
		c.ok("UNSELECT")
		st := c.ok("STATUS INBOX (HIGHESTMODSEQ)")
		if len(st) != 1 || !strings.Contains(st[0], "HIGHESTMODSEQ "+m[1]+")") {
			t.Fatalf("%s reported HIGHESTMODSEQ %s, STATUS says %q", cmd, m[1], st)
		}
		c.ok("SELECT INBOX")
	}
}
