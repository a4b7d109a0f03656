package imapd

import (
	"context"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"moxd/internal/ipc"
	"moxd/internal/storage/storeclient"
)

var testMsgs = []string{
	"From: a@example.net\r\nSubject: one\r\n\r\nbody one\r\n",
	"From: b@example.net\r\nSubject: two\r\n\r\nbody two\r\nline 2\r\n",
	"From: c@example.net\r\nSubject: three\r\n\r\nbody three\r\n",
}

// selEnv delivers the test messages and returns a logged-in client.
func selEnv(t *testing.T) (*env, *client) {
	t.Helper()
	e := newEnv(t)
	for _, m := range testMsgs {
		e.st.Deliver(t, "mjl@example.org", m)
	}
	c, _ := e.dial(t)
	c.login()
	return e, c
}

// raw sends a command and returns everything before the tagged line,
// literals included, and the tagged response without the tag.
func (c *client) raw(s string) (string, string) {
	c.t.Helper()
	c.n++
	tag := "a" + strconv.Itoa(c.n)
	c.send(tag + " " + s)
	var b strings.Builder
	lit := regexp.MustCompile(`\{(\d+)\}$`)
	for {
		l := c.line()
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			return b.String(), rest
		}
		b.WriteString(l + "\r\n")
		for {
			m := lit.FindStringSubmatch(l)
			if m == nil {
				break
			}
			n, _ := strconv.Atoi(m[1])
			buf := make([]byte, n)
			c.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
			if _, err := io.ReadFull(c.br, buf); err != nil {
				c.t.Fatal(err)
			}
			b.Write(buf)
			l = c.line()
			b.WriteString(l + "\r\n")
		}
	}
}

// stored returns message uid of INBOX as store serves it (prefix + file).
func stored(t *testing.T, e *env, uid uint32) string {
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
	msg, err := s.Open(ctx, s.Ref(mb), uid, true)
	if err != nil {
		t.Fatal(err)
	}
	defer msg.File.Close()
	data, err := io.ReadAll(msg.File)
	if err != nil {
		t.Fatal(err)
	}
	return string(msg.Prefix) + string(data)
}

func TestSelect(t *testing.T) {
	_, c := selEnv(t)
	u, res := c.cmd("SELECT INBOX")
	if res != "OK [READ-WRITE] SELECT completed" {
		t.Fatalf("SELECT: %q", res)
	}
	want := []string{
		"* 3 EXISTS",
		"* 0 RECENT",
		`* FLAGS (\Seen \Answered \Flagged \Deleted \Draft)`,
		`* OK [PERMANENTFLAGS (\Seen \Answered \Flagged \Deleted \Draft \*)] flags and new keywords are kept`,
		"* OK [UNSEEN 1] first unseen message",
	}
	if len(u) != 8 || strings.Join(u[:5], "\n") != strings.Join(want, "\n") ||
		!regexp.MustCompile(`^\* OK \[UIDVALIDITY \d+\] `).MatchString(u[5]) || !strings.HasPrefix(u[6], "* OK [UIDNEXT 4] ") ||
		!regexp.MustCompile(`^\* OK \[HIGHESTMODSEQ \d+\] `).MatchString(u[7]) {
		t.Fatalf("SELECT:\n%s", strings.Join(u, "\n"))
	}
	c.expect("SELECT Nonexistent", "NO [NONEXISTENT]")
	c.expect("FETCH 1 FLAGS", "BAD") // the failed SELECT deselected
	c.ok("SELECT INBOX")
	u, res = c.cmd("EXAMINE INBOX")
	if res != "OK [READ-ONLY] EXAMINE completed" || u[0] != "* OK [CLOSED] previous mailbox closed" {
		t.Fatalf("EXAMINE: %q %q", u, res)
	}
	c.expect("STORE 1 +FLAGS (\\Deleted)", "NO [CANNOT]")
	c.expect("EXPUNGE", "NO [CANNOT]")
	// BODY[] in a read-only mailbox does not set \Seen.
	c.raw("FETCH 1 BODY[]")
	if u := c.ok("FETCH 1 FLAGS"); len(u) != 1 || u[0] != "* 1 FETCH (FLAGS ())" {
		t.Fatalf("FETCH after EXAMINE BODY[]: %q", u)
	}
	c.ok("UNSELECT")
	c.expect("FETCH 1 FLAGS", "BAD")
	c.expect("UNSELECT", "BAD")
}

func TestFetch(t *testing.T) {
	e, c := selEnv(t)
	c.ok("SELECT INBOX")
	u := c.ok("FETCH 1:* (FLAGS UID RFC822.SIZE)")
	if len(u) != 3 {
		t.Fatalf("FETCH 1:*: %q", u)
	}
	var sizes []int
	for i, l := range u {
		m := regexp.MustCompile(`^\* (\d) FETCH \(FLAGS \(\) UID (\d) RFC822.SIZE (\d+)\)$`).FindStringSubmatch(l)
		if m == nil || m[1] != strconv.Itoa(i+1) || m[2] != strconv.Itoa(i+1) {
			t.Fatalf("FETCH 1:*: %q", u)
		}
		n, _ := strconv.Atoi(m[3])
		sizes = append(sizes, n)
	}

	want := stored(t, e, 2)
	if !strings.HasSuffix(want, testMsgs[1]) || len(want) != sizes[1] {
		t.Fatalf("stored message %q, size %d", want, sizes[1])
	}
	out, res := c.raw("UID FETCH 2 BODY.PEEK[]")
	if exp := "* 2 FETCH (UID 2 BODY[] {" + strconv.Itoa(len(want)) + "}\r\n" + want + ")\r\n"; !strings.HasPrefix(res, "OK") || out != exp {
		t.Fatalf("UID FETCH BODY.PEEK[]:\n%q\nwant\n%q", out, exp)
	}
	hdr := want[:strings.Index(want, "\r\n\r\n")+4]
	out, _ = c.raw("FETCH 2 BODY.PEEK[HEADER]")
	if exp := "* 2 FETCH (BODY[HEADER] {" + strconv.Itoa(len(hdr)) + "}\r\n" + hdr + ")\r\n"; out != exp {
		t.Fatalf("BODY.PEEK[HEADER]:\n%q\nwant\n%q", out, exp)
	}
	out, _ = c.raw("FETCH 2 BODY.PEEK[TEXT]<5.6>")
	if exp := "* 2 FETCH (BODY[TEXT]<5> {6}\r\n" + want[len(hdr)+5:len(hdr)+11] + ")\r\n"; out != exp {
		t.Fatalf("partial TEXT:\n%q\nwant\n%q", out, exp)
	}
	out, _ = c.raw("FETCH 2 BODY.PEEK[]<3.10000>")
	if exp := "* 2 FETCH (BODY[]<3> {" + strconv.Itoa(len(want)-3) + "}\r\n" + want[3:] + ")\r\n"; out != exp {
		t.Fatalf("partial past the end:\n%q\nwant\n%q", out, exp)
	}
	if u := c.ok("FETCH 2 FLAGS"); u[0] != "* 2 FETCH (FLAGS ())" {
		t.Fatalf("PEEK set flags: %q", u)
	}
	// BODY[] sets \Seen and reports it.
	out, _ = c.raw("FETCH 2 BODY[]")
	if !strings.HasSuffix(out, want+" FLAGS (\\Seen))\r\n") {
		t.Fatalf("BODY[]: %q", out)
	}
	if u := c.ok("FETCH 2 (FLAGS INTERNALDATE)"); len(u) != 1 || !regexp.MustCompile(`^\* 2 FETCH \(FLAGS \(\\Seen\) INTERNALDATE "\d\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d \+0000"\)$`).MatchString(u[0]) {
		t.Fatalf("after BODY[]: %q", u)
	}
	out, _ = c.raw("FETCH 3 RFC822")
	if !strings.HasPrefix(out, "* 3 FETCH (RFC822 {") || !strings.Contains(out, testMsgs[2]+" FLAGS (\\Seen))") {
		t.Fatalf("RFC822: %q", out)
	}

	c.expect("FETCH 4 FLAGS", "BAD")
	if u := c.ok("UID FETCH 4:* FLAGS"); len(u) != 1 || u[0] != "* 3 FETCH (UID 3 FLAGS (\\Seen))" {
		t.Fatalf("UID FETCH 4:*: %q", u) // RFC 9051 §6.4.9: n:* includes the highest UID
	}
	if u := c.ok("UID FETCH 7 FLAGS"); len(u) != 0 {
		t.Fatalf("UID FETCH 7: %q", u)
	}
}

func TestStoreExpunge(t *testing.T) {
	e, c := selEnv(t)
	c.ok("SELECT INBOX")
	// A new keyword: FLAGS and PERMANENTFLAGS before the FETCH (RFC 9051
	// §7.3.5).
	if u := c.ok(`STORE 2 +FLAGS (\Deleted $Label1)`); len(u) != 3 || !strings.HasPrefix(u[0], "* FLAGS ") || u[2] != `* 2 FETCH (FLAGS (\Deleted $Label1))` {
		t.Fatalf("STORE +FLAGS: %q", u)
	}
	if u := c.ok(`UID STORE 1 FLAGS.SILENT (\Flagged \Seen)`); len(u) != 0 {
		t.Fatalf("STORE FLAGS.SILENT: %q", u)
	}
	if u := c.ok(`UID STORE 1 -FLAGS (\Seen)`); len(u) != 1 || u[0] != `* 1 FETCH (UID 1 FLAGS (\Flagged))` {
		t.Fatalf("UID STORE -FLAGS: %q", u)
	}
	c.expect(`STORE 1 +FLAGS (\Recent)`, "BAD")
	if u := c.ok("SELECT INBOX"); !strings.Contains(strings.Join(u, "\n"), `* FLAGS (\Seen \Answered \Flagged \Deleted \Draft $Label1)`) {
		t.Fatalf("SELECT keywords: %q", u)
	}
	if u := c.ok("EXPUNGE"); len(u) != 1 || u[0] != "* 2 EXPUNGE" {
		t.Fatalf("EXPUNGE: %q", u)
	}
	if u := c.ok("FETCH 1:* (UID FLAGS)"); strings.Join(u, "\n") != "* 1 FETCH (UID 1 FLAGS (\\Flagged))\n* 2 FETCH (UID 3 FLAGS ())" {
		t.Fatalf("FETCH after EXPUNGE: %q", u)
	}

	// UID EXPUNGE removes only the given \Deleted messages.
	c.ok(`STORE 1:2 +FLAGS.SILENT (\Deleted)`)
	if u := c.ok("UID EXPUNGE 3"); len(u) != 1 || u[0] != "* 2 EXPUNGE" {
		t.Fatalf("UID EXPUNGE: %q", u)
	}
	// NOOP reports a new message.
	e.st.Deliver(t, "mjl@example.org", testMsgs[0])
	if u := c.ok("NOOP"); len(u) != 1 || u[0] != "* 2 EXISTS" {
		t.Fatalf("NOOP: %q", u)
	}
	// CLOSE expunges silently.
	if u := c.ok("CLOSE"); len(u) != 0 {
		t.Fatalf("CLOSE: %q", u)
	}
	c.expect("FETCH 1 FLAGS", "BAD")
	u := c.ok("SELECT INBOX")
	if u[0] != "* 1 EXISTS" {
		t.Fatalf("SELECT after CLOSE: %q", u)
	}
	if u := c.ok("FETCH 1 UID"); u[0] != "* 1 FETCH (UID 4)" {
		t.Fatalf("FETCH after CLOSE: %q", u)
	}
}

// TestNoopChanges: another session's flag change and expunge reach NOOP.
func TestNoopChanges(t *testing.T) {
	e, c := selEnv(t)
	c.ok("SELECT INBOX")
	c2, _ := e.dial(t)
	c2.login()
	c2.ok("SELECT INBOX")
	c2.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	c2.ok(`STORE 3 +FLAGS.SILENT (\Answered)`)
	if u := c.ok("NOOP"); strings.Join(u, "\n") != "* 1 FETCH (FLAGS (\\Deleted))\n* 3 FETCH (FLAGS (\\Answered))" {
		t.Fatalf("NOOP flags: %q", u)
	}
	c2.ok("EXPUNGE")
	if u := c.ok("NOOP"); strings.Join(u, "\n") != "* 1 EXPUNGE" {
		t.Fatalf("NOOP expunge: %q", u)
	}
	if u := c.ok("FETCH 1:* UID"); strings.Join(u, "\n") != "* 1 FETCH (UID 2)\n* 2 FETCH (UID 3)" {
		t.Fatalf("FETCH after NOOP: %q", u)
	}
}

func TestPythonImaplibSelected(t *testing.T) {
	e := newEnv(t)
	for _, m := range testMsgs {
		e.st.Deliver(t, "mjl@example.org", m)
	}
	script := `
M.login("mjl@example.org", "secret")
print(M.select("INBOX"))
typ, data = M.uid("FETCH", "2", "(BODY.PEEK[])")
print(typ, data[0][1].endswith(b"body two\r\nline 2\r\n"))
print(M.store("2", "+FLAGS", "(\\Deleted)"))
print(M.expunge())
print(M.fetch("1:*", "(UID FLAGS)"))
print(M.close()[0])
print(M.logout()[0])
`
	out, err := imaplibCommand(t, e.addr, script).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	want := `('OK', [b'3'])
OK True
('OK', [b'2 (FLAGS (\\Deleted))'])
('OK', [b'2'])
('OK', [b'1 (UID 1 FLAGS ())', b'2 (UID 3 FLAGS ())'])
OK
BYE
`
	if string(out) != want {
		t.Fatalf("python output:\n%s\nwant:\n%s", out, want)
	}
}

// TestMsgReader: the prefix store adds is served before the file, also
// for reads that span both and for the header section.
func TestMsgReader(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "msg")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("Subject: x\r\n\r\nbody\r\n")
	prefix := "Received: by moxd\r\n"
	whole := prefix + "Subject: x\r\n\r\nbody\r\n"
	r := &msgReader{prefix: []byte(prefix), f: f}
	for _, c := range [][2]int{{0, len(whole)}, {5, 30}, {len(prefix), len(whole)}, {len(prefix) + 3, len(whole) - 1}} {
		got, err := io.ReadAll(io.NewSectionReader(r, int64(c[0]), int64(c[1]-c[0])))
		if err != nil || string(got) != whole[c[0]:c[1]] {
			t.Fatalf("read %v: %q %v", c, got, err)
		}
	}
	n, err := headerLen(io.NewSectionReader(r, 0, int64(len(whole))))
	if err != nil || int(n) != strings.Index(whole, "\r\n\r\n")+4 {
		t.Fatalf("headerLen %d %v", n, err)
	}
	if n, _ := headerLen(strings.NewReader("A: b\r\nC: d\r\n")); n != 12 {
		t.Fatalf("headerLen without body %d", n)
	}
}
