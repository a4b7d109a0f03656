package imapd

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"moxd/internal/mailproto/imap"
)

var saveDateRe = regexp.MustCompile(`^\* (\d+) FETCH \(SAVEDATE "([^"]+)" INTERNALDATE "([^"]+)"\)$`)

// TestSaveDate: FETCH SAVEDATE and the SAVED* search keys (RFC 8514) use
// when a message was saved into the mailbox, not its internal date.
func TestSaveDate(t *testing.T) {
	_, c := selEnv(t)
	if caps := c.ok("CAPABILITY")[0]; !strings.Contains(caps, " SAVEDATE") {
		t.Fatalf("CAPABILITY lacks SAVEDATE: %q", caps)
	}
	// Message 4: appended now with an internal date in 2020.
	before := time.Now().Add(-time.Second).Truncate(time.Second)
	msg := "Subject: old\r\n\r\nold\r\n"
	_, res := c.cmd(fmt.Sprintf(`APPEND INBOX "01-Feb-2020 10:00:00 +0000" {%d+}`+"\r\n%s", len(msg), msg))
	appendUID(t, res)
	c.ok("SELECT INBOX")
	u := c.ok("FETCH 1:4 (SAVEDATE INTERNALDATE)")
	after := time.Now()
	if len(u) != 4 {
		t.Fatalf("FETCH SAVEDATE: %q", u)
	}
	var saved time.Time
	for i, l := range u {
		m := saveDateRe.FindStringSubmatch(l)
		if m == nil || m[1] != fmt.Sprint(i+1) {
			t.Fatalf("FETCH response %q", l)
		}
		sd, err := imap.ParseDateTime(m[2])
		if err != nil {
			t.Fatalf("SAVEDATE %q: %v", m[2], err)
		}
		if sd.Before(before) || sd.After(after) {
			t.Errorf("message %d saved %v, want between %v and %v", i+1, sd, before, after)
		}
		saved = sd
	}
	if !strings.Contains(u[3], `INTERNALDATE "01-Feb-2020 10:00:00 +0000"`) {
		t.Errorf("message 4: %q, want the internal date of the APPEND", u[3])
	}

	// The day the messages were saved (store compares UTC dates), from
	// what FETCH said: no race with midnight.
	day := saved.UTC()
	date := func(d time.Time) string { return d.Format("2-Jan-2006") }
	next, prev := date(day.AddDate(0, 0, 1)), date(day.AddDate(0, 0, -1))
	tests := []struct{ search, want string }{
		{"SAVEDON " + date(day), "1 2 3 4"},
		{"ON 1-Feb-2020", "4"},
		{"SAVEDON 1-Feb-2020", ""},
		{"SAVEDBEFORE " + date(day), ""},
		{"SAVEDBEFORE " + next, "1 2 3 4"},
		{"SAVEDSINCE " + date(day), "1 2 3 4"},
		{"SAVEDSINCE " + next, ""},
		{"SAVEDSINCE " + prev + " BEFORE 1-Jan-2021", "4"},
		{"SAVEDATESUPPORTED", "1 2 3 4"},
		{"NOT SAVEDATESUPPORTED", ""},
		{"OR SAVEDBEFORE " + prev + " SUBJECT old", "4"},
	}
	for _, tc := range tests {
		if got := nums(t, c.ok("SEARCH "+tc.search), "SEARCH"); got != tc.want {
			t.Errorf("SEARCH %s: %q, want %q", tc.search, got, tc.want)
		}
	}
	// A copy is saved anew; its internal date stays.
	c.ok("COPY 4 Archive")
	c.ok("SELECT Archive")
	u = c.ok("FETCH 1 (SAVEDATE INTERNALDATE)")
	if len(u) != 1 || !strings.HasSuffix(u[0], `INTERNALDATE "01-Feb-2020 10:00:00 +0000")`) || strings.Contains(u[0], `SAVEDATE "01-Feb-2020`) {
		t.Errorf("FETCH of the copy: %q", u)
	}
	if got := nums(t, c.ok("UID SEARCH SAVEDSINCE "+date(day)), "SEARCH"); got != "1" {
		t.Errorf("UID SEARCH SAVEDSINCE in Archive: %q", got)
	}
}
