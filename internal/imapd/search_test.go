package imapd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"moxd/internal/ipc"
	"moxd/internal/mailproto/imap"
	"moxd/internal/storage/storeclient"
)

// searchMsg is one message of the search fixture.
type searchMsg struct {
	hdr      string // header lines, CRLF-terminated
	body     string
	received time.Time
}

// searchFixture returns the 20 messages of the search, sort and thread
// tests; message n (sequence number and UID) is element n-1. now is the
// test's clock, for the recent messages 19 and 20.
func searchFixture(now time.Time) []searchMsg {
	date := func(n int) string { return fmt.Sprintf("Date: %d Jan 2024 10:00:00 +0000\r\n", n) }
	hdrs := []string{
		1:  date(1) + "From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nCc: carol@example.org\r\nSubject: Project plan\r\nMessage-ID: <a1@x>\r\n",
		2:  date(2) + "From: Bob <bob@example.org>\r\nTo: Alice <alice@example.org>\r\nSubject: Re: Project plan\r\nMessage-ID: <a2@x>\r\nIn-Reply-To: <a1@x> (Alice's message)\r\n",
		3:  "Date: Wed, 3 Jan 2024 10:00:00 -0300\r\nFrom: carol@example.org\r\nTo: Alice <alice@example.org>\r\nCc: dave@example.org\r\nSubject: Re: Project plan\r\nMessage-ID: <a3@x>\r\nReferences: <a1@x>\r\n <a2@x>\r\n",
		4:  "Date: Thu, 4 Jan 2024 01:00:00 +1400\r\nFrom: \"Zed Alpha\" <zed@example.org>\r\nTo: bob@example.org\r\nSubject: RE: Project plan\r\nMessage-ID: <a4@x>\r\nReferences: <a1@x>\r\n",
		5:  date(5) + "From: Dave <dave@example.org>\r\nTo: team@example.org\r\nBcc: secret@example.org\r\nSubject: Lunch\r\nMessage-ID: <b2@x>\r\nReferences: <b1@missing>\r\n",
		6:  date(6) + "From: bob@example.org\r\nTo: team@example.org\r\nSubject: Re: Lunch\r\nMessage-ID: <b3@x>\r\nReferences: <b1@missing>\r\n",
		7:  date(7) + "From: Alice <alice@example.org>\r\nTo: team@example.org\r\nSubject: Fwd: Project plan\r\nMessage-ID: <c1@x>\r\n",
		8:  date(8) + "From: Eve <eve@example.org>\r\nTo: team@example.org\r\nSubject: Meeting\r\nMessage-ID: <d1@x>\r\nX-Priority: 1\r\n",
		9:  date(9) + "From: Frank <frank@example.org>\r\nTo: team@example.org\r\nSubject: Meeting\r\nMessage-ID: <\"d2\"@x>\r\n",
		10: date(10) + "From: =?utf-8?q?Ren=C3=A9e?= <renee@example.com>\r\nTo: team@example.org\r\nSubject: =?utf-8?q?Caf=C3=A9?=\r\nMessage-ID: <e1@x>\r\n",
		11: date(11) + "From: Alice <alice@example.org>\r\nTo: team@example.org\r\nSubject: Re: =?utf-8?b?Q2Fmw6k=?=\r\nMessage-ID: <e2@x>\r\n",
		12: date(12) + "From: mallory@example.net\r\nTo: team@example.org\r\nSubject: Duplicate\r\nMessage-ID: <a1@x>\r\n",
		13: date(13) + "From: list@lists.example\r\nTo: team@example.org\r\nSubject: [list] Announcement (fwd)\r\n",
		14: date(14) + "From: list@lists.example\r\nTo: team@example.org\r\nSubject: Announcement\r\n",
		15: date(15) + "From: Bob <bob@example.org>\r\nTo: team@example.org\r\nSubject: Loop\r\nMessage-ID: <f1@x>\r\nReferences: <f2@x>\r\n",
		16: date(16) + "From: Alice <alice@example.org>\r\nTo: team@example.org\r\nSubject: Re: Loop\r\nMessage-ID: <f2@x>\r\nReferences: <f1@x>\r\n",
		17: date(17) + "To: team@example.org\r\nMessage-ID: <g1@x>\r\n",
		18: "From: Carol <carol@example.org>\r\nTo: team@example.org\r\nSubject: No date\r\nMessage-ID: <h1@x>\r\n",
		19: date(19) + "From: Bob <bob@example.org>\r\nTo: team@example.org\r\nSubject: Big attachment\r\nMessage-ID: <i1@x>\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n",
		20: date(20) + "From: Dave <dave@example.org>\r\nTo: team@example.org\r\nSubject: Re: [list] Re: Lunch\r\nMessage-ID: <j1@x>\r\nReferences: <d2@x>\r\n",
	}
	var l []searchMsg
	for n := 1; n <= 20; n++ {
		// Received: five messages a day from 1 March 2024, later
		// sequence numbers earlier in the day; 19 and 20 are recent.
		rcv := time.Date(2024, 3, 1+(n-1)/5, 5-(n-1)%5, 0, 0, 0, time.UTC)
		switch n {
		case 19:
			rcv = now.Add(-72 * time.Hour)
		case 20:
			rcv = now.Add(-time.Hour)
		}
		body := fmt.Sprintf("Message %d.\r\n", n)
		switch n {
		case 9:
			body = "A haystack needle.\r\n"
		case 19:
			body = strings.Repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\r\n", 100)
		}
		l = append(l, searchMsg{hdrs[n], body, rcv})
	}
	return l
}

// searchEnv delivers the fixture, sets its flags and returns a client
// with INBOX selected.
func searchEnv(t *testing.T) (*env, *client, []searchMsg) {
	t.Helper()
	e := newEnv(t)
	msgs := searchFixture(time.Now())
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	d := storeclient.NewDeliverer(e.st.Peer(ipc.RoleSMTP))
	for _, m := range msgs {
		text := m.hdr + "\r\n" + m.body
		b, err := d.NewBody(ctx, int64(len(text)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Write([]byte(text)); err != nil {
			t.Fatal(err)
		}
		res, err := d.Deliver(ctx, b, storeclient.Envelope{MailFrom: "sender@example.net", Received: m.received}, []storeclient.Recipient{{Address: "mjl@example.org"}})
		if err != nil || len(res) != 1 || res[0].State != storeclient.RcptOK {
			t.Fatalf("deliver: %v %v", err, res)
		}
	}
	c, _ := e.dial(t)
	c.login()
	c.ok("SELECT INBOX")
	for _, s := range []string{
		`STORE 1:10 +FLAGS.SILENT (\Seen)`,
		`STORE 3,8 +FLAGS.SILENT (\Flagged)`,
		`STORE 2 +FLAGS.SILENT (\Answered)`,
		`STORE 13 +FLAGS.SILENT (\Deleted)`,
		`STORE 17 +FLAGS.SILENT (\Draft)`,
		`STORE 4,9,14 +FLAGS.SILENT ($Work)`,
		`STORE 9 +FLAGS.SILENT (Urgent)`,
	} {
		c.ok(s)
	}
	return e, c, msgs
}

// nums returns the numbers of an untagged "* NAME n n n" response.
func nums(t *testing.T, u []string, name string) string {
	t.Helper()
	if len(u) != 1 || !strings.HasPrefix(u[0], "* "+name) {
		t.Fatalf("want one %s response, got %q", name, u)
	}
	return strings.TrimPrefix(strings.TrimPrefix(u[0], "* "+name), " ")
}

// seqRange returns "a b ... z" for the numbers a..z.
func seqRange(a, z int) string {
	var l []string
	for i := a; i <= z; i++ {
		l = append(l, strconv.Itoa(i))
	}
	return strings.Join(l, " ")
}

func TestSearchKeys(t *testing.T) {
	_, c, _ := searchEnv(t)
	tests := []struct {
		search, want string
	}{
		{"ALL", seqRange(1, 20)},
		{"SEEN", seqRange(1, 10)},
		{"UNSEEN", seqRange(11, 20)},
		{"FLAGGED", "3 8"},
		{"UNFLAGGED", "1 2 4 5 6 7 " + seqRange(9, 20)},
		{"ANSWERED", "2"},
		{"UNANSWERED", "1 " + seqRange(3, 20)},
		{"DELETED", "13"},
		{"UNDELETED", seqRange(1, 12) + " " + seqRange(14, 20)},
		{"DRAFT", "17"},
		{"UNDRAFT", seqRange(1, 16) + " " + seqRange(18, 20)},
		{"KEYWORD $Work", "4 9 14"},
		{"KEYWORD $WORK", "4 9 14"}, // keywords compare case-insensitively
		{"UNKEYWORD $Work", "1 2 3 5 6 7 8 " + seqRange(10, 13) + " " + seqRange(15, 20)},
		{"KEYWORD Urgent", "9"},
		{"KEYWORD nosuch", ""},
		{"KEYWORD " + strings.Repeat("k", 300), ""},
		// No \Recent in moxd: nothing is recent or new, all is old.
		{"RECENT", ""},
		{"NEW", ""},
		{"OLD", seqRange(1, 20)},
		{"FROM alice", "1 7 11 16"},
		{"FROM {6+}\r\nRenée", "10"}, // the encoded word, decoded
		{"TO alice", "2 3"},
		{"CC carol", "1"},
		{"CC dave", "3"},
		{"BCC secret", "5"},
		{`SUBJECT "project plan"`, "1 2 3 4 7"},
		{"SUBJECT {5+}\r\ncafé", "10 11"}, // q and b encoded words
		{`HEADER Message-ID "<a1@x>"`, "1 12"},
		{`HEADER X-Priority ""`, "8"},
		{"BODY needle", "9"},
		{"BODY renee", ""},
		{"TEXT renee", "10"},
		{"TEXT needle", "9"},
		{"LARGER 3000", "19"},
		{"SMALLER 3000", seqRange(1, 18) + " 20"},
		{"BEFORE 2-Mar-2024", "1 2 3 4 5"},
		{"ON 2-Mar-2024", "6 7 8 9 10"},
		{`SINCE "4-Mar-2024"`, "16 17 18 19 20"},
		// The Date header's own day, whatever its zone.
		{"SENTBEFORE 3-Jan-2024", "1 2"},
		{"SENTON 3-Jan-2024", "3"},
		{"SENTON 4-Jan-2024", "4"},
		{"SENTSINCE 19-Jan-2024", "19 20"},
		// RFC 5032 WITHIN.
		{"YOUNGER 7200", "20"},
		{"YOUNGER 345600", "19 20"},
		{"OLDER 7200", seqRange(1, 19)},
		{"OLDER 345600", seqRange(1, 18)},
		{"2:4", "2 3 4"},
		{"18:*", "18 19 20"},
		{"*", "20"},
		{"1,3,5,7,9,11 SEEN", "1 3 5 7 9"},
		{"UID 5,7", "5 7"},
		{"UID 19:*", "19 20"},
		{"NOT SEEN", seqRange(11, 20)},
		{"NOT NOT SEEN", seqRange(1, 10)},
		{"OR FLAGGED DRAFT", "3 8 17"},
		{"NOT OR SEEN DELETED", "11 12 " + seqRange(14, 20)},
		{"(SEEN FLAGGED)", "3 8"},
		{"OR (SEEN FLAGGED) KEYWORD Urgent", "3 8 9"},
		{"SEEN KEYWORD $Work FROM frank", "9"},
		{"OR OR 1 2 (3 (4))", "1 2"},
		{"OR OR 1 2 (3 (3))", "1 2 3"},
		{"CHARSET UTF-8 SUBJECT {5+}\r\ncafé", "10 11"},
		{"CHARSET US-ASCII KEYWORD $Work", "4 9 14"},
		{`CHARSET "utf-8" DELETED`, "13"},
	}
	for _, tc := range tests {
		u, res := c.cmd("SEARCH " + tc.search)
		if !strings.HasPrefix(res, "OK") {
			t.Errorf("SEARCH %s: %s", tc.search, res)
			continue
		}
		if got := nums(t, u, "SEARCH"); got != tc.want {
			t.Errorf("SEARCH %s: %q, want %q", tc.search, got, tc.want)
		}
	}
	// UID SEARCH answers UIDs; here they equal the sequence numbers,
	// so compare after an expunge below.
	for _, s := range []string{"SAVEDBEFORE 1-Jan", "21", "UID 1:*:3"} {
		c.expect("SEARCH "+s, "BAD")
	}
	c.expect("SEARCH CHARSET ISO-8859-1 ALL", "NO [BADCHARSET (US-ASCII UTF-8)]")
	c.expect("SEARCH SUBJECT "+strings.Repeat("x", 2000), "NO [LIMIT]")
	c.expect("SEARCH "+strings.Repeat("OR SEEN ", 20)+"SEEN", "NO [LIMIT]")

	// After an expunge, sequence numbers and UIDs part.
	c.ok("UID EXPUNGE 13")
	if got := nums(t, c.ok("UID SEARCH UNSEEN"), "SEARCH"); got != "11 12 "+seqRange(14, 20) {
		t.Errorf("UID SEARCH UNSEEN after expunge: %q", got)
	}
	if got := nums(t, c.ok("SEARCH UNSEEN"), "SEARCH"); got != seqRange(11, 19) {
		t.Errorf("SEARCH UNSEEN after expunge: %q", got)
	}
	if got := nums(t, c.ok("UID SEARCH 13"), "SEARCH"); got != "14" {
		t.Errorf("UID SEARCH 13 (a sequence number) after expunge: %q", got)
	}
	if got := nums(t, c.ok("SEARCH UID 13:14"), "SEARCH"); got != "13" {
		t.Errorf("SEARCH UID 13:14 after expunge: %q", got)
	}
}

// TestSearchView: results only name messages the session knows of.
func TestSearchView(t *testing.T) {
	e, c := selEnv(t)
	c.ok("SELECT INBOX")
	e.st.Deliver(t, "mjl@example.org", "Subject: late\r\n\r\nlate\r\n")
	if got := nums(t, c.ok("SEARCH ALL"), "SEARCH"); got != "1 2 3" {
		t.Fatalf("SEARCH ALL before NOOP: %q", got)
	}
	if got := nums(t, c.ok("UID SEARCH NOT 1"), "SEARCH"); got != "2 3" {
		t.Fatalf("UID SEARCH NOT 1 before NOOP: %q", got)
	}
	c.ok("NOOP")
	if got := nums(t, c.ok("SEARCH SUBJECT late"), "SEARCH"); got != "4" {
		t.Fatalf("SEARCH after NOOP: %q", got)
	}
	c.ok("UNSELECT")
	c.expect("SEARCH ALL", "BAD")
}

func TestSearchUTF8Accept(t *testing.T) {
	e := newEnv(t)
	e.st.Deliver(t, "mjl@example.org", "Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\n\r\nhi\r\n")
	c, _ := e.dial(t)
	c.login()
	c.ok("ENABLE UTF8=ACCEPT")
	c.ok("SELECT INBOX")
	// RFC 6855 §3: no CHARSET after ENABLE UTF8=ACCEPT; UTF-8 strings
	// work without.
	c.expect("SEARCH CHARSET UTF-8 ALL", "BAD")
	if got := nums(t, c.ok(`SEARCH SUBJECT "grüße"`), "SEARCH"); got != "1" {
		t.Fatalf("SEARCH SUBJECT grüße: %q", got)
	}
}

func TestSearchModSeq(t *testing.T) {
	_, c, _ := searchEnv(t)
	// The MODSEQ criterion enables CONDSTORE (RFC 7162 §3.1): STORE
	// responses carry MODSEQ from then on.
	if u := c.ok(`STORE 1 +FLAGS (\Seen)`); len(u) != 1 || strings.Contains(u[0], "MODSEQ") {
		t.Fatalf("STORE before SEARCH MODSEQ: %q", u)
	}
	c.ok("SEARCH MODSEQ 1 1")
	if u := c.ok(`STORE 1 +FLAGS (\Seen)`); len(u) != 1 || !strings.Contains(u[0], "MODSEQ (") {
		t.Fatalf("STORE after SEARCH MODSEQ: %q", u)
	}
	modseqs := map[int]uint64{}
	re := regexp.MustCompile(`^\* (\d+) FETCH \(.*MODSEQ \((\d+)\)`)
	for _, l := range c.ok("FETCH 1:* (MODSEQ)") {
		m := re.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("FETCH MODSEQ: %q", l)
		}
		n, _ := strconv.Atoi(m[1])
		modseqs[n], _ = strconv.ParseUint(m[2], 10, 64)
	}
	// The keyword on 9 was the last store.
	last := modseqs[9]
	if got := nums(t, c.ok("SEARCH MODSEQ "+strconv.FormatUint(last, 10)), "SEARCH"); got != fmt.Sprintf("9 (MODSEQ %d)", last) {
		t.Fatalf("SEARCH MODSEQ: %q", got)
	}
	// The highest of the results, with the entry-name form.
	got := nums(t, c.ok(`SEARCH MODSEQ "/flags/\\seen" all 1 1:3`), "SEARCH")
	want := fmt.Sprintf("1 2 3 (MODSEQ %d)", max(modseqs[1], modseqs[2], modseqs[3]))
	if got != want {
		t.Fatalf("SEARCH MODSEQ 1:3: %q, want %q", got, want)
	}
	if got := nums(t, c.ok(fmt.Sprintf("SEARCH MODSEQ %d", last+1)), "SEARCH"); got != "" {
		t.Fatalf("SEARCH MODSEQ above all: %q (no MODSEQ on an empty result)", got)
	}
	// RFC 4731 §3.2: MIN alone gives the modseq of that message.
	u, _ := c.cmd("SEARCH RETURN (MIN) MODSEQ 1 2:3")
	if len(u) != 1 || !strings.HasSuffix(u[0], fmt.Sprintf(" MIN 2 MODSEQ %d", modseqs[2])) {
		t.Fatalf("ESEARCH MIN MODSEQ: %q", u)
	}
}

func TestESearch(t *testing.T) {
	_, c, _ := searchEnv(t)
	tests := []struct {
		cmd, want string // want without `* ESEARCH (TAG "..")`
	}{
		{"SEARCH RETURN (MIN MAX COUNT) SEEN", " MIN 1 MAX 10 COUNT 10"},
		{"SEARCH RETURN () FLAGGED", " ALL 3,8"},
		{"SEARCH RETURN (ALL) OR 1:5 UNSEEN", " ALL 1:5,11:20"},
		{"SEARCH RETURN (COUNT ALL) KEYWORD $Work", " ALL 4,9,14 COUNT 3"},
		{"UID SEARCH RETURN (COUNT) DELETED", " UID COUNT 1"},
		{"UID SEARCH RETURN (MIN) UNSEEN", " UID MIN 11"},
		{"SEARCH RETURN (MIN MAX ALL) KEYWORD nosuch", ""},
		{"SEARCH RETURN (MIN COUNT) KEYWORD nosuch", " COUNT 0"},
	}
	for _, tc := range tests {
		u, res := c.cmd(tc.cmd)
		tag := "a" + strconv.Itoa(c.n)
		want := `* ESEARCH (TAG "` + tag + `")` + tc.want
		if !strings.HasPrefix(res, "OK") || len(u) != 1 || u[0] != want {
			t.Errorf("%s: %q %s, want %q", tc.cmd, u, res, want)
		}
	}
	if got := c.ok("CAPABILITY")[0]; !strings.Contains(got, " ESEARCH ") || !strings.Contains(got, " SEARCHRES ") || !strings.Contains(got, " WITHIN") {
		t.Errorf("capabilities: %q", got)
	}
}

func TestSearchRes(t *testing.T) {
	_, c, _ := searchEnv(t)
	fetched := func(cmd string) string {
		t.Helper()
		var l []string
		for _, s := range c.ok(cmd) {
			n, _, _ := strings.Cut(strings.TrimPrefix(s, "* "), " ")
			l = append(l, n)
		}
		return strings.Join(l, " ")
	}
	// "$" before anything was saved is empty.
	if got := nums(t, c.ok("SEARCH $"), "SEARCH"); got != "" {
		t.Fatalf("SEARCH $ before SAVE: %q", got)
	}
	if got := fetched("FETCH $ (FLAGS)"); got != "" {
		t.Fatalf("FETCH $ before SAVE: %q", got)
	}
	// RFC 5182: SAVE alone returns no ESEARCH.
	u, res := c.cmd("SEARCH RETURN (SAVE) KEYWORD $Work")
	if len(u) != 0 || !strings.HasPrefix(res, "OK") {
		t.Fatalf("SEARCH RETURN (SAVE): %q %q", u, res)
	}
	if got := fetched("FETCH $ (UID)"); got != "4 9 14" {
		t.Fatalf("FETCH $: %q", got)
	}
	if got := nums(t, c.ok("UID SEARCH UID $"), "SEARCH"); got != "4 9 14" {
		t.Fatalf("UID SEARCH UID $: %q", got)
	}
	if got := nums(t, c.ok("SEARCH $ SEEN"), "SEARCH"); got != "4 9" {
		t.Fatalf("SEARCH $ SEEN: %q", got)
	}
	if got := nums(t, c.ok("SEARCH NOT $ KEYWORD Urgent"), "SEARCH"); got != "" {
		t.Fatalf("SEARCH NOT $ KEYWORD Urgent: %q", got)
	}
	c.ok(`STORE $ +FLAGS.SILENT (\Flagged)`)
	if got := nums(t, c.ok("SEARCH FLAGGED"), "SEARCH"); got != "3 4 8 9 14" {
		t.Fatalf("SEARCH FLAGGED after STORE $: %q", got)
	}
	// An expunged message leaves the saved result; numbers move.
	c.ok(`UID STORE 9 +FLAGS.SILENT (\Deleted)`)
	c.ok("UID EXPUNGE 9")
	if got := nums(t, c.ok("UID SEARCH UID $"), "SEARCH"); got != "4 14" {
		t.Fatalf("UID SEARCH UID $ after expunge: %q", got)
	}
	if got := fetched("FETCH $ (FLAGS)"); got != "4 13" {
		t.Fatalf("FETCH $ after expunge: %q", got)
	}
	// MIN and MAX alone save only those; with COUNT, everything.
	c.ok("SEARCH RETURN (SAVE MIN) UNSEEN")
	if got := fetched("UID FETCH $ (FLAGS)"); got != "10" { // UID 11
		t.Fatalf("after SAVE MIN: %q", got)
	}
	c.ok("SEARCH RETURN (SAVE MIN MAX) UNSEEN")
	if got := nums(t, c.ok("UID SEARCH $"), "SEARCH"); got != "11 20" {
		t.Fatalf("after SAVE MIN MAX: %q", got)
	}
	u = c.ok("SEARCH RETURN (MIN COUNT SAVE) 1:3")
	if len(u) != 1 || !strings.HasSuffix(u[0], ") MIN 1 COUNT 3") {
		t.Fatalf("SEARCH RETURN (MIN COUNT SAVE): %q", u)
	}
	if got := nums(t, c.ok("SEARCH $"), "SEARCH"); got != "1 2 3" {
		t.Fatalf("after SAVE MIN COUNT: %q", got)
	}
	// A SEARCH RETURN (SAVE) that fails with NO empties it.
	c.expect("SEARCH RETURN (SAVE) CHARSET KOI8-R ALL", "NO [BADCHARSET")
	if got := nums(t, c.ok("SEARCH $"), "SEARCH"); got != "" {
		t.Fatalf("after a failed SAVE: %q", got)
	}
	// SORT RETURN (SAVE) saves too; SELECT and UNSELECT reset it.
	c.ok("SORT RETURN (SAVE) (FROM) UTF-8 FROM dave")
	if got := nums(t, c.ok("SEARCH $"), "SEARCH"); got != "5 19" {
		t.Fatalf("after SORT SAVE: %q", got)
	}
	c.ok("EXAMINE INBOX")
	if got := nums(t, c.ok("SEARCH $"), "SEARCH"); got != "" {
		t.Fatalf("after EXAMINE: %q", got)
	}
	c.ok("SEARCH RETURN (SAVE) ALL")
	c.ok("UNSELECT")
	c.ok("SELECT INBOX")
	if got := nums(t, c.ok("SEARCH $"), "SEARCH"); got != "" {
		t.Fatalf("after UNSELECT and SELECT: %q", got)
	}
}

// TestSearchWindows: a program whose sets do not fit one store request is
// searched in windows, with the same result.
func TestSearchWindows(t *testing.T) {
	e, c, _ := searchEnv(t)
	c.ok("LOGOUT")
	tok := e.st.Login(t, ipc.RoleIMAP, "mjl@example.org", "secret")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	sess, err := storeclient.OpenSession(ctx, e.st.Peer(ipc.RoleIMAP), tok)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	sc := &conn{srv: e.srv, ctx: ctx, sess: sess}
	sc.w = bufio.NewWriter(io.Discard)
	if err := sc.cmdSelect(&imap.Command{Name: "SELECT", Args: &imap.SelectArgs{Mailbox: "INBOX"}}); err != nil {
		if _, ok := err.(*okText); !ok {
			t.Fatal(err)
		}
	}
	for _, prog := range []string{
		"1,3,5,7,9,11,13,15,17,19 OR SEEN UID 2,4,6,8,20",
		"NOT 2,5,8,11,14 KEYWORD $Work",
		"OR 1:3 NOT UID 4,6,8,10,12,14,16,18,20",
	} {
		cmd, err := imap.ReadCommand(imap.NewReader(strings.NewReader("x SEARCH " + prog + "\r\n")))
		if err != nil {
			t.Fatal(err)
		}
		key := &cmd.Args.(*imap.SearchArgs).Key
		p, err := sc.translate(key)
		if err != nil {
			t.Fatal(err)
		}
		want, err := p.run(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// A budget for the criteria and a few ranges: windows of one
		// or two messages.
		p.budget = p.size() + 24 + 8*(len(p.sets)+1)*2
		got, err := p.run(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) || len(want) == 0 {
			t.Errorf("%s: windows %v, one request %v", prog, got, want)
		}
	}
}
