package imapd

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"moxd/internal/ipc"
	"moxd/internal/storage/storeclient"
)

// storeHighestModSeq returns INBOX's HIGHESTMODSEQ as store reports it.
func storeHighestModSeq(t *testing.T, e *env) uint64 {
	t.Helper()
	tok := e.st.Login(t, ipc.RoleIMAP, "mjl@example.org", "secret")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := storeclient.OpenSession(ctx, e.st.Peer(ipc.RoleIMAP), tok)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mb, err := s.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	return mb.HighestModSeq
}

var modseqRe = regexp.MustCompile(`MODSEQ \((\d+)\)`)

func modseqOf(t *testing.T, l string) uint64 {
	t.Helper()
	m := modseqRe.FindStringSubmatch(l)
	if m == nil {
		t.Fatalf("no MODSEQ in %q", l)
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n
}

func TestCondStore(t *testing.T) {
	e, c := selEnv(t)
	if u := c.ok("ENABLE CONDSTORE"); len(u) != 1 || u[0] != "* ENABLED CONDSTORE" {
		t.Fatalf("ENABLE: %q", u)
	}
	caps := strings.Join(c.ok("CAPABILITY"), " ")
	if !strings.Contains(caps, " CONDSTORE") {
		t.Fatalf("CONDSTORE not announced: %q", caps)
	}
	u := c.ok("SELECT INBOX (CONDSTORE)")
	want := "* OK [HIGHESTMODSEQ " + strconv.FormatUint(storeHighestModSeq(t, e), 10) + "] "
	if !strings.HasPrefix(u[len(u)-1], want) {
		t.Fatalf("SELECT (CONDSTORE): %q, want %q", u, want)
	}

	// MODSEQ increases with delivery.
	u = c.ok("FETCH 1:* (MODSEQ)")
	if len(u) != 3 {
		t.Fatalf("FETCH MODSEQ: %q", u)
	}
	var ms []uint64
	for i, l := range u {
		if !strings.HasPrefix(l, "* "+strconv.Itoa(i+1)+" FETCH (MODSEQ (") {
			t.Fatalf("FETCH MODSEQ: %q", u)
		}
		ms = append(ms, modseqOf(t, l))
		if i > 0 && ms[i] <= ms[i-1] {
			t.Fatalf("modseqs not increasing: %q", u)
		}
	}

	// STORE reports the new modseq, with UID (§3.2), and FETCH agrees.
	u = c.ok(`STORE 1 +FLAGS (\Seen)`)
	if len(u) != 1 || !strings.HasPrefix(u[0], `* 1 FETCH (UID 1 FLAGS (\Seen) MODSEQ (`) || modseqOf(t, u[0]) <= ms[2] {
		t.Fatalf("STORE: %q", u)
	}
	m1 := modseqOf(t, u[0])
	if u := c.ok("FETCH 1 (FLAGS MODSEQ)"); len(u) != 1 || u[0] != `* 1 FETCH (FLAGS (\Seen) MODSEQ (`+strconv.FormatUint(m1, 10)+`))` {
		t.Fatalf("FETCH after STORE: %q", u)
	}

	// Message 2 changes after m; .SILENT still reports the modseq.
	m := storeHighestModSeq(t, e)
	u = c.ok(`STORE 2 +FLAGS.SILENT (\Answered)`)
	if len(u) != 1 || !strings.HasPrefix(u[0], "* 2 FETCH (UID 2 MODSEQ (") || modseqOf(t, u[0]) <= m {
		t.Fatalf("STORE .SILENT: %q", u)
	}
	m2 := modseqOf(t, u[0])
	ms2 := strconv.FormatUint(m2, 10)
	mstr := strconv.FormatUint(m, 10)
	if u := c.ok("FETCH 1:* (FLAGS) (CHANGEDSINCE " + mstr + ")"); len(u) != 1 || u[0] != `* 2 FETCH (FLAGS (\Answered) MODSEQ (`+ms2+`))` {
		t.Fatalf("FETCH CHANGEDSINCE: %q", u)
	}
	if u := c.ok("UID FETCH 1:* (FLAGS) (CHANGEDSINCE " + ms2 + ")"); len(u) != 0 {
		t.Fatalf("FETCH CHANGEDSINCE highest: %q", u)
	}

	// UNCHANGEDSINCE m: message 2 changed after m and is left alone.
	u, res := c.cmd(`STORE 1:3 (UNCHANGEDSINCE ` + mstr + `) +FLAGS (\Flagged)`)
	if !strings.HasPrefix(res, "OK [MODIFIED 2] ") || len(u) != 2 ||
		!strings.HasPrefix(u[0], `* 1 FETCH (UID 1 FLAGS (\Seen \Flagged) MODSEQ (`) ||
		!strings.HasPrefix(u[1], `* 3 FETCH (UID 3 FLAGS (\Flagged) MODSEQ (`) {
		t.Fatalf("STORE UNCHANGEDSINCE: %q %q", u, res)
	}
	if u := c.ok("FETCH 2 (FLAGS MODSEQ)"); len(u) != 1 || u[0] != `* 2 FETCH (FLAGS (\Answered) MODSEQ (`+ms2+`))` {
		t.Fatalf("message 2 after conditional STORE: %q", u)
	}

	// Another session changes message 3 (UID 3); UID STORE reports UIDs.
	c.ok(`STORE 1 -FLAGS.SILENT (\Seen)`)
	c2, _ := e.dial(t)
	c2.login()
	c2.ok("SELECT INBOX")
	m = storeHighestModSeq(t, e)
	c2.ok(`STORE 3 +FLAGS.SILENT (\Draft)`)
	u, res = c.cmd(`UID STORE 1:3 (UNCHANGEDSINCE ` + strconv.FormatUint(m, 10) + `) FLAGS.SILENT (\Deleted)`)
	// The other session's change comes along, after the command's own
	// responses (the STORE brought the shared cache up to date).
	if !strings.HasPrefix(res, "OK [MODIFIED 3] ") || len(u) != 3 ||
		!strings.HasPrefix(u[0], "* 1 FETCH (UID 1 MODSEQ (") || !strings.HasPrefix(u[1], "* 2 FETCH (UID 2 MODSEQ (") ||
		!strings.HasPrefix(u[2], `* 3 FETCH (UID 3 FLAGS (\Flagged \Draft) MODSEQ (`) {
		t.Fatalf("UID STORE UNCHANGEDSINCE: %q %q", u, res)
	}
	// UNCHANGEDSINCE 0 fails for all.
	if _, res := c.cmd(`UID STORE 1,3 (UNCHANGEDSINCE 0) +FLAGS (\Seen)`); !strings.HasPrefix(res, "OK [MODIFIED 1,3] ") {
		t.Fatalf("UNCHANGEDSINCE 0: %q", res)
	}
	// NOOP reports the other session's change with UID and MODSEQ, once.
	c2.ok(`STORE 2 +FLAGS.SILENT ($Two)`)
	// The new keyword: FLAGS and PERMANENTFLAGS first (RFC 9051 §7.3.5).
	if u := c.ok("NOOP"); len(u) != 3 || !strings.HasPrefix(u[0], "* FLAGS ") || !strings.HasPrefix(u[2], `* 2 FETCH (UID 2 FLAGS (\Deleted $Two) MODSEQ (`) {
		t.Fatalf("NOOP: %q", u)
	}
	if u := c.ok("NOOP"); len(u) != 0 {
		t.Fatalf("second NOOP: %q", u)
	}
}

// TestCondStoreEnabling: each enabling command turns on MODSEQ in
// flag-change FETCH responses (RFC 7162 §3.1).
func TestCondStoreEnabling(t *testing.T) {
	for _, enable := range []string{"SELECT INBOX (CONDSTORE)", "FETCH 1 (MODSEQ)", "FETCH 1 (FLAGS) (CHANGEDSINCE 1)", `STORE 1 (UNCHANGEDSINCE 1000000) +FLAGS.SILENT ($X)`} {
		t.Run(enable, func(t *testing.T) {
			_, c := selEnv(t)
			u := c.ok("SELECT INBOX")
			if !strings.HasPrefix(u[len(u)-1], "* OK [HIGHESTMODSEQ ") {
				t.Fatalf("SELECT without CONDSTORE: %q", u)
			}
			if u := c.ok(`STORE 2 +FLAGS (\Seen)`); len(u) != 1 || u[0] != `* 2 FETCH (FLAGS (\Seen))` {
				t.Fatalf("STORE before enabling: %q", u)
			}
			c.ok(enable)
			if u := c.ok(`STORE 2 -FLAGS (\Seen)`); len(u) != 1 || !strings.HasPrefix(u[0], `* 2 FETCH (UID 2 FLAGS () MODSEQ (`) {
				t.Fatalf("STORE after %s: %q", enable, u)
			}
			if u := c.ok(`FETCH 2 BODY[TEXT]`); !regexp.MustCompile(` FLAGS \(\\Seen\) MODSEQ \(\d+\) UID 2\)$`).MatchString(u[len(u)-1]) {
				t.Fatalf("FETCH setting \\Seen after %s: %q", enable, u)
			}
		})
	}
}
