package imapd

import (
	"bufio"
	"compress/flate"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"moxd/internal/ipc"
)

// TestIdlePush: during IDLE a session gets another session's flag
// changes and expunges and new deliveries as they happen.
func TestIdlePush(t *testing.T) {
	e := pushEnv(t)
	c1 := e.loggedIn(t)
	c2 := e.loggedIn(t)
	if !strings.Contains(strings.Join(c1.ok("CAPABILITY"), " "), " IDLE") {
		t.Fatal("IDLE not announced")
	}
	c1.ok("SELECT INBOX")
	c2.ok("SELECT INBOX")

	c1.idle()
	c2.ok(`STORE 1 +FLAGS.SILENT (\Flagged)`)
	if l := c1.line(); l != `* 1 FETCH (FLAGS (\Flagged))` {
		t.Fatalf("IDLE after STORE elsewhere: %q", l)
	}
	e.st.Deliver(t, "mjl@example.org", testMsgs[0])
	if l := c1.line(); l != "* 4 EXISTS" {
		t.Fatalf("IDLE after delivery: %q", l)
	}
	c2.ok(`STORE 2 +FLAGS.SILENT (\Deleted)`)
	c2.ok("EXPUNGE")
	// The flag change may or may not come before the expunge, as the
	// events coalesce; the expunge comes.
	l := c1.line()
	if l == `* 2 FETCH (FLAGS (\Deleted))` {
		l = c1.line()
	}
	if l != "* 2 EXPUNGE" {
		t.Fatalf("IDLE after EXPUNGE elsewhere: %q", l)
	}
	if u := c1.done(); len(u) != 0 {
		t.Fatalf("DONE: %q", u)
	}
	if u := c1.ok("FETCH 1:* (UID FLAGS)"); strings.Join(u, "\n") != "* 1 FETCH (UID 1 FLAGS (\\Flagged))\n* 2 FETCH (UID 3 FLAGS ())\n* 3 FETCH (UID 4 FLAGS ())" {
		t.Fatalf("FETCH after IDLE: %q", u)
	}
	// c2's own changes were reported to it once, by its commands.
	if u := c2.ok("NOOP"); len(u) != 0 {
		t.Fatalf("NOOP in c2: %q", u)
	}

	// IDLE with CONDSTORE reports UID and MODSEQ (RFC 7162 §3.2).
	c1.ok("FETCH 1 (MODSEQ)") // enables CONDSTORE
	c1.idle()
	c2.ok(`STORE 1 -FLAGS.SILENT (\Flagged)`)
	if l := c1.line(); !strings.HasPrefix(l, `* 1 FETCH (UID 1 FLAGS () MODSEQ (`) {
		t.Fatalf("IDLE with CONDSTORE: %q", l)
	}
	c1.done()

	// Anything but DONE ends IDLE with BAD.
	c1.idle()
	c1.send("NOOP")
	if l := c1.line(); !strings.HasPrefix(l, "i BAD ") {
		t.Fatalf("NOOP in IDLE: %q", l)
	}
	c1.ok("NOOP")
}

// TestExpungeHeldBack: another session's expunge reaches a session at the
// next command that may report it, never during FETCH, STORE or SEARCH,
// and sequence numbers stay until then.
func TestExpungeHeldBack(t *testing.T) {
	e := pushEnv(t)
	c1 := e.loggedIn(t)
	c2 := e.loggedIn(t)
	c3 := e.loggedIn(t)
	for _, c := range []*client{c1, c2, c3} {
		c.ok("SELECT INBOX")
	}
	c3.idle()
	c2.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	c2.ok("EXPUNGE")
	// Once c3 has it, the shared cache has it.
	for l := c3.line(); l != "* 1 EXPUNGE"; l = c3.line() {
		if l != `* 1 FETCH (FLAGS (\Deleted))` {
			t.Fatalf("c3: %q", l)
		}
	}
	c3.done()

	u := c1.ok("FETCH 1:* (UID)")
	if strings.Join(u, "\n") != "* 1 FETCH (UID 1)\n* 2 FETCH (UID 2)\n* 3 FETCH (UID 3)" {
		t.Fatalf("FETCH with an expunge pending: %q", u)
	}
	if u := c1.ok(`STORE 3 +FLAGS (\Seen)`); strings.Join(u, "\n") != "* 3 FETCH (FLAGS (\\Seen))" {
		t.Fatalf("STORE with an expunge pending: %q", u)
	}
	// With CONDSTORE, a FETCH while an expunge waits says a
	// HIGHESTMODSEQ below it (RFC 7162 §3.2), lower than the MODSEQ
	// values it sends.
	u = c1.ok("FETCH 3 (MODSEQ)")
	if len(u) != 2 || !strings.HasPrefix(u[1], "* OK [HIGHESTMODSEQ ") || modseqOf(t, u[0]) <= hmsOf(t, u[1]) {
		t.Fatalf("FETCH MODSEQ with an expunge pending: %q", u)
	}
	if u := c1.ok("NOOP"); strings.Join(u, "\n") != "* 1 EXPUNGE" {
		t.Fatalf("NOOP: %q", u)
	}
	if u := c1.ok("FETCH 1:* (UID)"); strings.Join(u, "\n") != "* 1 FETCH (UID 2)\n* 2 FETCH (UID 3)" {
		t.Fatalf("FETCH after NOOP: %q", u)
	}
	// c2 saw its own changes once, then gets c1's.
	if u := c2.ok("NOOP"); strings.Join(u, "\n") != "* 2 FETCH (FLAGS (\\Seen))" {
		t.Fatalf("c2 NOOP: %q", u)
	}
	if u := c3.ok("NOOP"); strings.Join(u, "\n") != "* 2 FETCH (FLAGS (\\Seen))" {
		t.Fatalf("c3 NOOP: %q", u)
	}
}

// TestIdleEnds: the idle timeout and a store restart end IDLE with BYE.
func TestIdleEnds(t *testing.T) {
	e := newEnv(t, func(e *env) { e.srv.IdleTimeout = 300 * time.Millisecond })
	c := e.loggedIn(t)
	c.ok("SELECT INBOX")
	c.idle()
	if l := c.line(); l != "* BYE autologout: idle for too long" {
		t.Fatalf("IDLE past the timeout: %q", l)
	}

	var sc *ipc.Conn
	e = newEnv(t, func(e *env) {
		sc = e.st.Conn(t, ipc.RoleIMAP, nil)
		e.srv.Store = func() (*ipc.Conn, error) { return sc, nil }
	})
	c = e.loggedIn(t)
	c.ok("SELECT INBOX")
	c.idle()
	sc.Close()
	if l := c.line(); l != "* BYE [UNAVAILABLE] store restarted; log in again" {
		t.Fatalf("IDLE when store went away: %q", l)
	}
}

func hmsOf(t *testing.T, l string) uint64 {
	t.Helper()
	m := regexp.MustCompile(`HIGHESTMODSEQ (\d+)`).FindStringSubmatch(l)
	if m == nil {
		t.Fatalf("no HIGHESTMODSEQ in %q", l)
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n
}

// TestSelectedGone: a selected mailbox deleted elsewhere ends the session
// with BYE, in IDLE as after a command.
func TestSelectedGone(t *testing.T) {
	e := pushEnv(t)
	c1 := e.loggedIn(t)
	c2 := e.loggedIn(t)
	c2.ok("CREATE Other")
	c1.ok("SELECT Other")
	c1.idle()
	c2.ok("DELETE Other")
	if l := c1.line(); l != "* BYE selected mailbox was deleted or recreated, log in again" {
		t.Fatalf("IDLE after DELETE elsewhere: %q", l)
	}
}

// flateConn is the client side of COMPRESS=DEFLATE.
type flateConn struct {
	net.Conn
	r io.Reader
	w *flate.Writer
}

func (f *flateConn) Read(p []byte) (int, error) { return f.r.Read(p) }
func (f *flateConn) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err == nil {
		err = f.w.Flush()
	}
	return n, err
}

// TestIdleCompress: IDLE pushes changes under COMPRESS=DEFLATE too, where
// the session cannot be woken through the read deadline.
func TestIdleCompress(t *testing.T) {
	e := pushEnv(t)
	c1 := e.loggedIn(t)
	c2 := e.loggedIn(t)
	c1.ok("COMPRESS DEFLATE")
	zw, _ := flate.NewWriter(c1.nc, flate.BestSpeed)
	zc := &flateConn{Conn: c1.nc, r: flate.NewReader(c1.nc), w: zw}
	c1.nc, c1.br = zc, bufio.NewReader(zc)
	c1.ok("SELECT INBOX")
	c2.ok("SELECT INBOX")
	c1.idle()
	c2.ok(`STORE 2 +FLAGS.SILENT (\Answered)`)
	if l := c1.line(); l != `* 2 FETCH (FLAGS (\Answered))` {
		t.Fatalf("IDLE under COMPRESS: %q", l)
	}
	e.st.Deliver(t, "mjl@example.org", testMsgs[0])
	if l := c1.line(); l != "* 4 EXISTS" {
		t.Fatalf("IDLE under COMPRESS after delivery: %q", l)
	}
	if u := c1.done(); len(u) != 0 {
		t.Fatalf("DONE: %q", u)
	}
	c1.ok("NOOP")
}
