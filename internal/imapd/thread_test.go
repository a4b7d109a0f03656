package imapd

import (
	"strings"
	"testing"
)

func TestThread(t *testing.T) {
	_, c, _ := searchEnv(t)
	tests := []struct {
		thread, want string
	}{
		// By base subject, each thread's first message the parent of
		// the others; threads by the date of their first message.
		{"ORDEREDSUBJECT UTF-8 ALL", "(1 (2)(4)(3)(7))(5 (6)(20))(8 9)(10 11)(12)(13 14)(15 16)(17)(19)(18)"},
		// RFC 5256 §3 REFERENCES, by hand:
		//   1 <- 2 <- 3 and 1 <- 4 by References/In-Reply-To; 7 "Fwd:"
		//   joins 1 by subject.
		//   5 and 6 reference the missing <b1@missing>: a dummy with
		//   two children stays at the root.
		//   20 references <d2@x>, which 9 has as <"d2"@x>.
		//   8 and 9 "Meeting", neither a reply: a new dummy.
		//   11 "Re: Café" (base64) joins 10 "Café" (q).
		//   12 duplicates 1's Message-ID: a thread of its own.
		//   13 "[list] Announcement (fwd)" is a reply: under 14.
		//   15 and 16 reference each other: no loop, 16 (processed
		//   last) keeps 15 as child.
		//   18 has no Date: its internal date, in March, sorts it last.
		{"REFERENCES UTF-8 ALL", "(1 (2 3)(4)(7))((5)(6))((8)(9 20))(10 11)(12)(14 13)(16 15)(17)(19)(18)"},
		// Parents outside the result: dummies, pruned.
		{"REFERENCES UTF-8 1:4", "(1 (2 3)(4))"},
		{"REFERENCES UTF-8 2:3", "(2 3)"},
		{"REFERENCES UTF-8 3:4", "((4)(3))"},
		{"REFERENCES US-ASCII 5:6", "((5)(6))"},
		{"ORDEREDSUBJECT UTF-8 SUBJECT lunch", "(5 (6)(20))"},
		{"REFERENCES UTF-8 KEYWORD nosuch", ""},
	}
	for _, tc := range tests {
		u, res := c.cmd("THREAD " + tc.thread)
		if !strings.HasPrefix(res, "OK") {
			t.Errorf("THREAD %s: %s", tc.thread, res)
			continue
		}
		if got := nums(t, u, "THREAD"); got != tc.want {
			t.Errorf("THREAD %s:\n got %s\nwant %s", tc.thread, got, tc.want)
		}
	}
	c.expect("THREAD NOSUCH UTF-8 ALL", "BAD")
	c.expect("THREAD REFERENCES KOI8-R ALL", "NO [BADCHARSET (US-ASCII UTF-8)]")

	// After an expunge, UIDs and sequence numbers differ.
	c.ok("UID EXPUNGE 13")
	if got := nums(t, c.ok("UID THREAD REFERENCES UTF-8 10:*"), "THREAD"); got != "(10 11)(12)(14)(16 15)(17)(19)(20)(18)" {
		t.Errorf("UID THREAD after expunge: %s", got)
	}
	if got := nums(t, c.ok("THREAD REFERENCES UTF-8 10:*"), "THREAD"); got != "(10 11)(12)(13)(15 14)(16)(18)(19)(17)" {
		t.Errorf("THREAD after expunge: %s", got)
	}
	if got := c.ok("CAPABILITY")[0]; !strings.Contains(got, " THREAD=ORDEREDSUBJECT") || !strings.Contains(got, " THREAD=REFERENCES") {
		t.Errorf("capabilities: %q", got)
	}
}

// TestSearchPythonImaplib uses Python's imaplib as an independent client
// for SEARCH, SORT and THREAD.
func TestSearchPythonImaplib(t *testing.T) {
	e, c, _ := searchEnv(t)
	c.ok("LOGOUT")
	script := `
M.login("mjl@example.org", "secret")
M.select("INBOX")
print(M.search(None, "FLAGGED")[1][0].decode())
print(M.uid("SEARCH", "KEYWORD", "$Work")[1][0].decode())
print(M.search("UTF-8", "SUBJECT", "Meeting")[1][0].decode())
print(M.sort("(REVERSE ARRIVAL)", "UTF-8", "1:5")[1][0].decode())
print(M.thread("REFERENCES", "UTF-8", "1:9")[1][0].decode())
print(M.logout()[0])
`
	out, err := imaplibCommand(t, e.addr, script).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	want := `3 8
4 9 14
8 9
1 2 3 4 5
(1 (2 3)(4)(7))((5)(6))((8)(9))
BYE
`
	if string(out) != want {
		t.Fatalf("python output:\n%s\nwant:\n%s", out, want)
	}
}
