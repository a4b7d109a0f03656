package imapd

import (
	"slices"
	"strings"
	"testing"
)

// TestIMAP4rev2: a session is IMAP4rev1 until ENABLE IMAP4rev2; then names
// are UTF-8, SELECT sends LIST instead of RECENT and UNSEEN, and SEARCH
// answers ESEARCH. Another, rev1 session sees the same mailbox name in
// modified UTF-7.
func TestIMAP4rev2(t *testing.T) {
	e, c := selEnv(t)
	caps := strings.Fields(strings.TrimPrefix(c.ok("CAPABILITY")[0], "* CAPABILITY "))
	for _, want := range []string{"IMAP4rev1", "IMAP4rev2"} {
		if !slices.Contains(caps, want) {
			t.Errorf("capabilities %q lack %s", caps, want)
		}
	}
	// Before ENABLE: IMAP4rev1 answers.
	u := c.ok("SELECT INBOX")
	if !slices.Contains(u, "* 0 RECENT") || slices.ContainsFunc(u, func(l string) bool { return strings.HasPrefix(l, "* LIST") }) {
		t.Errorf("rev1 SELECT: %q", u)
	}
	if u := c.ok("SEARCH ALL"); len(u) != 1 || !strings.HasPrefix(u[0], "* SEARCH 1 2") {
		t.Errorf("rev1 SEARCH: %q", u)
	}
	c.ok("UNSELECT")

	if u := c.ok("ENABLE IMAP4rev2"); len(u) != 1 || u[0] != "* ENABLED IMAP4rev2" {
		t.Fatalf("ENABLE IMAP4rev2: %q", u)
	}
	if u := c.ok("ENABLE IMAP4rev2"); len(u) != 1 || u[0] != "* ENABLED" {
		t.Errorf("second ENABLE IMAP4rev2: %q, want nothing enabled", u)
	}
	u = c.ok("SELECT INBOX")
	for _, l := range u {
		if strings.HasSuffix(l, " RECENT") || strings.Contains(l, "[UNSEEN ") {
			t.Errorf("rev2 SELECT sent %q", l)
		}
	}
	if !slices.Contains(u, `* LIST () "/" INBOX`) {
		t.Errorf("rev2 SELECT without LIST response: %q", u)
	}
	if u := c.ok("SEARCH ALL"); len(u) != 1 || !strings.HasPrefix(u[0], "* ESEARCH (TAG ") || !strings.Contains(u[0], " ALL 1:") {
		t.Errorf("rev2 SEARCH: %q, want ESEARCH", u)
	}
	if u := c.ok("UID SEARCH ALL"); len(u) != 1 || !strings.Contains(u[0], ") UID ALL ") {
		t.Errorf("rev2 UID SEARCH: %q, want ESEARCH with UID", u)
	}
	if u := c.ok("SELECT Sent"); !slices.Contains(u, `* LIST (\Sent) "/" Sent`) {
		t.Errorf("rev2 SELECT Sent: %q, want its special use in LIST", u)
	}

	// UTF-8 names both ways.
	c.ok(`CREATE "Résumé"`)
	u = c.ok(`LIST "" "R*"`)
	if len(u) != 1 || !strings.HasSuffix(u[0], `"/" "Résumé"`) && !strings.HasSuffix(u[0], `"/" Résumé`) {
		t.Errorf("rev2 LIST: %q, want the UTF-8 name", u)
	}
	c2, _ := e.dial(t)
	c2.login()
	u = c2.ok(`LIST "" "R*"`)
	if len(u) != 1 || !strings.Contains(u[0], "R&AOk-sum&AOk-") {
		t.Errorf("rev1 LIST: %q, want the modified UTF-7 name", u)
	}
	c2.ok(`SELECT "R&AOk-sum&AOk-"`)
}
