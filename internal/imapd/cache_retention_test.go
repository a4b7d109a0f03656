package imapd

import (
	"slices"
	"strconv"
	"testing"
)

// TestCacheRetention: a mailbox no session has selected keeps its cache
// for a while; selecting it again sees what changed meanwhile (a delivery,
// a flag set and an expunge by another session).
func TestCacheRetention(t *testing.T) {
	e, c := selEnv(t)
	c.ok("SELECT INBOX")
	n := len(testMsgs)
	c.ok("UNSELECT")
	if got := e.srv.caches.count(); got != 0 {
		t.Fatalf("%d caches in use after UNSELECT", got)
	}
	if got := e.srv.caches.retained(); got != 1 {
		t.Fatalf("%d caches retained after UNSELECT, want 1", got)
	}
	c2, _ := e.dial(t)
	c2.login()
	c2.ok("SELECT INBOX")
	c2.ok(`STORE 1 +FLAGS (\Flagged \Deleted)`)
	c2.ok("EXPUNGE")
	c2.ok(`STORE 1 +FLAGS (\Answered)`)
	c2.ok("LOGOUT")
	e.st.Deliver(t, "mjl@example.org", testMsgs[0])
	u := c.ok("SELECT INBOX")
	if want := "* " + strconv.Itoa(n) + " EXISTS"; !slices.Contains(u, want) {
		t.Errorf("SELECT after changes: %q, want %q (one expunged, one delivered)", u, want)
	}
	u = c.ok("FETCH 1:* (FLAGS)")
	if len(u) != n || u[0] != `* 1 FETCH (FLAGS (\Answered))` {
		t.Errorf("flags after reselect: %q", u)
	}
}
