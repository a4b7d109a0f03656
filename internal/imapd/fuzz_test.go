package imapd

// FuzzSession feeds arbitrary client input to a logged-in session with a
// mailbox selected, against a real store (STYLE.md "Tests": fuzz targets
// with a seed corpus that runs in the normal test run).
//
// How the harness works:
//   - The store with the test messages is made once; each input gets a
//     copy of its directory and a store of its own on it, so every input
//     starts from the same mailboxes, UIDs and flags, and a failure found
//     while fuzzing reproduces from its input alone. The session logs in
//     with CRAM-MD5, which costs store no password hashing.
//   - The input is client lines, sent as a careful client sends them: a
//     line ending in a literal announcement ({n}, {n+}, ~{n}, ~{n+})
//     takes the next n bytes of the input as the literal's data (padded
//     with "x" when the input ends first), sent at once for a
//     non-synchronizing literal and only after "+" for a synchronizing
//     one; the line after the data continues the command. After each
//     complete command the harness waits for its tagged answer, and
//     answers a "+" that does not ask for literal data (IDLE) with the
//     next line, or DONE at the end of the input.
//   - The checks: the server never panics (a handler's panic is caught
//     and logged, so no error may be logged at all); every response line
//     starts with "* ", "+ " or the tag of the command being answered,
//     ends in CRLF and holds no CR, LF or NUL of its own outside the
//     literals it announces, and no status response ends in what reads
//     as a literal announcement; every complete command gets its tagged
//     response (or "* BAD" when it has no tag); the server closes the
//     connection only after a BYE; after the input, LOGOUT gets its
//     answer and Serve returns.
//   - After COMPRESS DEFLATE succeeds the rest of the conversation would
//     be compressed; the harness stops there.

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"moxd/internal/ipc"
	"moxd/internal/storage"
	"moxd/internal/storage/storeclient"
)

const (
	fuzzAnswerTimeout = 10 * time.Second
	fuzzMaxLiteral    = 64 << 10 // literal data sent at most; store limits are lower
	fuzzMaxResponse   = 16 << 20
)

// fuzzMessages are the messages of the fuzzed INBOX, UIDs 1 to 5.
var fuzzMessages = []string{testMsgs[0], testMsgs[1], testMsgs[2], fMixed, fUU}

// fuzzSeeds are the seed corpus: command sequences like the other tests',
// with literal data following the line that announces it.
func fuzzSeeds() []string {
	msg := "From: a@example.net\r\nSubject: draft\r\n\r\nhello\r\n"
	bin := "Subject: binary\r\nContent-Transfer-Encoding: binary\r\n\r\na\x00b\r\n"
	lit := func(s string) string { return "{" + strconv.Itoa(len(s)) + "}\n" + s }
	litPlus := func(s string) string { return "{" + strconv.Itoa(len(s)) + "+}\n" + s }
	return []string{
		"a1 NOOP\na2 CAPABILITY\na3 FETCH 1:* (FLAGS UID RFC822.SIZE INTERNALDATE)\n",
		"b1 FETCH 4 (BODYSTRUCTURE ENVELOPE BODY.PEEK[1.1] BODY.PEEK[HEADER.FIELDS (From Subject)] BODY[]<0.10>)\nb2 FETCH 4 (BODY[3.HEADER] BODY[3.1] BODY.PEEK[2.MIME] BODY[HEADER.FIELDS.NOT (To)])\n",
		"c1 FETCH 4 (BINARY.PEEK[1.1] BINARY.SIZE[2] BINARY[3.1])\nc2 FETCH 4 BINARY[1]\nc3 FETCH 5 BINARY[1]\nc4 FETCH 1:5 FLAGS\n",
		"d1 STORE 1:2 +FLAGS ($Work \\Flagged)\nd2 STORE 1 -FLAGS.SILENT (\\Seen)\nd3 UID STORE 3 FLAGS (\\Deleted)\nd4 EXPUNGE\nd5 NOOP\nd6 FETCH 1:* FLAGS\n",
		"e1 SEARCH UNSEEN\ne2 UID SEARCH RETURN (MIN MAX COUNT) FROM a\ne3 SEARCH CHARSET UTF-8 SUBJECT " + litPlus("café") + "\ne4 SEARCH OR SEEN NOT DELETED\n",
		"e5 SEARCH LARGER 10 SMALLER 100000 HEADER Subject one\ne6 SEARCH BODY body TEXT two\ne7 SEARCH SENTSINCE 1-Jan-2020 SAVEDON 1-Jan-2024\ne8 SEARCH YOUNGER 3600 SAVEDATESUPPORTED\ne9 SEARCH KEYWORD $Work UNKEYWORD x 1:3,5\n",
		"f1 APPEND INBOX (\\Seen $Draft) \"14-Jul-2023 02:44:25 +0200\" " + lit(msg) + "\nf2 NOOP\nf3 UID FETCH 6 (FLAGS BODY[])\n",
		"f4 APPEND Drafts " + litPlus(msg) + " (\\Flagged) " + litPlus(msg) + "\nf5 STATUS Drafts (MESSAGES UIDNEXT)\n",
		"f6 APPEND INBOX ~" + litPlus(bin) + "\nf7 APPEND INBOX " + litPlus(bin) + "\nf8 FETCH 6 BINARY[]\n",
		"f9 APPEND INBOX " + lit(msg) + " " + lit("Subject: \r\n") + "\nf10 APPEND INBOX {100000}\nf11 APPEND Nope " + litPlus(msg) + "\n",
		"g1 COPY 1:2 Archive\ng2 MOVE 3 Trash\ng3 UID COPY 1:* Archive\ng4 STATUS Archive (MESSAGES UIDNEXT UNSEEN SIZE)\ng5 UID MOVE 4:5 Archive\ng6 FETCH 1:* UID\n",
		"h1 IDLE\nDONE\nh2 NOOP\nh3 IDLE\nnot done\nh4 IDLE\n",
		"i1 UNSELECT\ni2 ENABLE QRESYNC CONDSTORE\ni3 SELECT INBOX (QRESYNC (1 1 1:5))\ni4 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)\ni5 UID EXPUNGE 2\n",
		"j1 FETCH 1:* (MODSEQ)\nj2 STORE 1 (UNCHANGEDSINCE 1) +FLAGS (\\Answered)\nj3 SEARCH MODSEQ 2\nj4 FETCH 1:* (FLAGS) (CHANGEDSINCE 2)\n",
		"k1 CREATE Work/Sub\nk2 LIST \"\" *\nk3 LIST (SUBSCRIBED) \"\" * RETURN (STATUS (MESSAGES))\nk4 RENAME Work Play\nk5 DELETE Play/Sub\nk6 LSUB \"\" *\nk7 SUBSCRIBE Play\nk8 NAMESPACE\nk9 CREATE Lists (USE (\\Archive))\n",
		"l1 SORT (SUBJECT REVERSE DATE) UTF-8 ALL\nl2 UID THREAD REFERENCES UTF-8 ALL\nl3 THREAD ORDEREDSUBJECT US-ASCII SEEN\nl4 UID SORT RETURN (MIN COUNT) (ARRIVAL) UTF-8 1:*\n",
		"m1 EXAMINE INBOX\nm2 STORE 1 +FLAGS (x)\nm3 FETCH 1 BODY[]\nm4 CLOSE\nm5 SELECT Drafts\nm6 FETCH 1:* ALL\nm7 SELECT INBOX\n",
		"n1 FETCH\nn2 FETCH 1 (BODY[\n\nn3 SEARCH (\nBAD\n* NOOP\nn4 NOOP extra\nn5 UID FROB\nn6 FETCH 99 FLAGS\nn7 STORE 1 +FLAGS (\\Recent)\n+ NOOP\n",
		"o1 LOGIN {3}\nabc {3}\ndef\no2 SELECT {5+}\nINBOX\no3 STATUS {5}\nINBOX (MESSAGES)\no4 NOOP {5}\no5 NOOP {3+}\nabc\n",
		"p1 UNSELECT\np2 ENABLE UTF8=ACCEPT IMAP4rev2\np3 CREATE Bücher\np4 SELECT Bücher\np5 LIST \"\" *\np6 SEARCH ALL\np7 SELECT INBOX\np8 FETCH 4 (ENVELOPE BODYSTRUCTURE)\n",
		"q1 GETQUOTAROOT INBOX\nq2 GETQUOTA \"\"\nq3 ID (\"name\" \"fuzz\")\nq4 ID NIL\nq5 CHECK\n",
		"r1 FETCH 1:3 FAST\nr2 FETCH 2 FULL\nr3 FETCH 1 (RFC822.HEADER RFC822.TEXT RFC822)\nr4 FETCH * BODY.PEEK[TEXT]<2.3>\nr5 FETCH 1,3 (SAVEDATE BINARY.SIZE[1])\n",
		"s1 SEARCH RETURN (SAVE) SEEN\ns2 FETCH $ FLAGS\ns3 UID SEARCH RETURN (ALL) UID $\ns4 COPY $ Archive\ns5 SEARCH RETURN (SAVE MIN) ALL\ns6 UID FETCH $ UID\n",
		"t1 NOOP\nt2 LOGOUT\nt3 NOOP\n",
		"u1 COMPRESS DEFLATE\nu2 NOOP\n",
		"v1 STORE 1:* +FLAGS.SILENT (\\Deleted)\nv2 UID EXPUNGE 2\nv3 FETCH 1:* UID\nv4 EXPUNGE\nv5 SEARCH ALL\nv6 CLOSE\n",
		"w1 UNSELECT\nw2 ENABLE IMAP4rev2\nw3 SELECT INBOX\nw4 SEARCH UNSEEN\nw5 LIST \"\" % RETURN (SPECIAL-USE)\nw6 STATUS INBOX (MESSAGES SIZE HIGHESTMODSEQ)\n",
	}
}

func FuzzSession(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s))
	}
	dir := fuzzStoreDir(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		runFuzzSession(t, dir, data)
	})
}

// fuzzStoreDir makes the store every input starts from: the account with
// its password and the test messages in INBOX.
func fuzzStoreDir(f *testing.F) string {
	dir := f.TempDir()
	ts, err := storage.NewTestService(dir, nil, testSlice)
	if err != nil {
		f.Fatal(err)
	}
	defer ts.Close()
	ctx, cancel := context.WithTimeout(f.Context(), 30*time.Second)
	defer cancel()
	if err := ts.SetPassword(ctx, "mjl", "secret"); err != nil {
		f.Fatal(err)
	}
	sc, err := ts.Conn(ipc.RoleSMTP, nil)
	if err != nil {
		f.Fatal(err)
	}
	d := storeclient.NewDeliverer(func() (*ipc.Conn, error) { return sc, nil })
	for _, m := range fuzzMessages {
		b, err := d.NewBody(ctx, int64(len(m)))
		if err != nil {
			f.Fatal(err)
		}
		if _, err := b.Write([]byte(m)); err != nil {
			f.Fatal(err)
		}
		res, err := d.Deliver(ctx, b, storeclient.Envelope{MailFrom: "sender@example.net"}, []storeclient.Recipient{{Address: "mjl@example.org"}})
		if err != nil || len(res) != 1 || res[0].State != storeclient.RcptOK {
			f.Fatalf("deliver: %v %v", err, res)
		}
	}
	return dir
}

// errorLog fails the test for every error the server logs: a caught
// panic, or a handler error that was not a response.
type errorLog struct {
	mu   sync.Mutex
	msgs []string
}

func (l *errorLog) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelError }
func (l *errorLog) WithAttrs([]slog.Attr) slog.Handler            { return l }
func (l *errorLog) WithGroup(string) slog.Handler                 { return l }
func (l *errorLog) Handle(_ context.Context, r slog.Record) error {
	s := r.Message
	r.Attrs(func(a slog.Attr) bool {
		s += " " + a.String()
		return true
	})
	l.mu.Lock()
	l.msgs = append(l.msgs, s)
	l.mu.Unlock()
	return nil
}

func (l *errorLog) errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.msgs
}

func runFuzzSession(t *testing.T, pristine string, data []byte) {
	dir := t.TempDir()
	if err := copyStoreDir(dir, pristine); err != nil {
		t.Fatal(err)
	}
	ts, err := storage.NewTestService(dir, nil, testSlice)
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close()
	elog := &errorLog{}
	srv := &Server{
		Hostname:      "mail.example.org",
		Log:           slog.New(elog),
		IdleTimeout:   3 * time.Second, // below fuzzAnswerTimeout: a lost command shows as autologout
		WriteTimeout:  fuzzAnswerTimeout,
		MaxLine:       16 << 10,
		MaxAppendSize: 16 << 10,
	}
	sc, err := ts.Conn(ipc.RoleIMAP, ipc.HandlerFunc(srv.ServeIPC))
	if err != nil {
		t.Fatal(err)
	}
	srv.Store = func() (*ipc.Conn, error) { return sc, nil }

	client, server := net.Pipe()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ctx, addrConn{server}, false)
	}()
	h := newFuzzClient(t, client)
	defer client.Close()
	h.start()
	h.feed(&fuzzInput{b: data})
	h.finish()
	client.Close()
	select {
	case <-served:
	case <-time.After(fuzzAnswerTimeout):
		t.Fatalf("Serve did not return after the client closed")
	}
	for _, e := range elog.errors() {
		t.Errorf("server logged an error: %s", e)
	}
}

// copyStoreDir copies the store directory src into dst, keeping the holes
// of the sparse database files (bbolt grows them by truncating, so most of
// their size is a hole): a plain copy would write megabytes per input.
func copyStoreDir(dst, src string) error {
	return filepath.WalkDir(src, func(path string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if de.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		return copySparse(target, path)
	})
}

const (
	seekData = 3 // SEEK_DATA, lseek(2)
	seekHole = 4 // SEEK_HOLE
)

func copySparse(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	if err := out.Truncate(fi.Size()); err != nil {
		return err
	}
	for off := int64(0); off < fi.Size(); {
		start, err := in.Seek(off, seekData)
		if err != nil {
			// No data after off (ENXIO), or no SEEK_DATA here: copy
			// the rest as it is.
			if off == 0 {
				start = 0
			} else {
				break
			}
		}
		end, err := in.Seek(start, seekHole)
		if err != nil {
			end = fi.Size()
		}
		if _, err := in.Seek(start, io.SeekStart); err != nil {
			return err
		}
		if _, err := out.Seek(start, io.SeekStart); err != nil {
			return err
		}
		if _, err := io.CopyN(out, in, end-start); err != nil {
			return err
		}
		off = end
	}
	return out.Close()
}

// addrConn gives a net.Pipe end the remote address of a client: store
// wants one to log in.
type addrConn struct{ net.Conn }

func (addrConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 143}
}

// fuzzInput hands out the input as lines and literal data.
type fuzzInput struct{ b []byte }

// line returns the next line without its line end; false at the end.
func (in *fuzzInput) line() (string, bool) {
	if len(in.b) == 0 {
		return "", false
	}
	i := strings.IndexByte(string(in.b), '\n')
	var l []byte
	if i < 0 {
		l, in.b = in.b, nil
	} else {
		l, in.b = in.b[:i], in.b[i+1:]
	}
	return strings.TrimSuffix(string(l), "\r"), true
}

// data returns the next n bytes, padded with "x" where the input ends.
func (in *fuzzInput) data(n int) []byte {
	k := min(n, len(in.b))
	d := append([]byte(nil), in.b[:k]...)
	in.b = in.b[k:]
	for len(d) < n {
		d = append(d, 'x')
	}
	return d
}

// fuzzResp is one server response: its first line and, for responses with
// literals, the rest (without the literal data).
type fuzzResp struct {
	text string
	err  error // the connection ended (io.EOF) or failed
}

type fuzzClient struct {
	t     *testing.T
	nc    net.Conn
	resps chan fuzzResp
	quit  chan struct{} // closed when the test is done with the client
	tag   string        // the command being answered
	bye   bool          // a BYE was received
	ended bool          // the connection is closed (or, after COMPRESS, unusable)
	n     int
}

func newFuzzClient(t *testing.T, nc net.Conn) *fuzzClient {
	h := &fuzzClient{t: t, nc: nc, resps: make(chan fuzzResp, 64), quit: make(chan struct{})}
	t.Cleanup(func() { close(h.quit) })
	go h.read()
	return h
}

var (
	// A literal announced at the end of a line (RFC 9051 §4.3, RFC 7888,
	// RFC 3516 literal8).
	clientLiteralRe = regexp.MustCompile(`~?\{([0-9]+)(\+?)\}$`)
	serverLiteralRe = regexp.MustCompile(`~?\{([0-9]+)\}$`)
	statusRe        = regexp.MustCompile(`^[^ ]+ (OK|NO|BAD|BYE|PREAUTH)( |$)`)
)

// read reads responses, checks their form and hands them to the harness.
func (h *fuzzClient) read() {
	push := func(r fuzzResp) bool {
		select {
		case h.resps <- r:
			return true
		case <-h.quit:
			return false
		}
	}
	br := bufio.NewReader(h.nc)
	readLine := func() (string, error) {
		l, err := br.ReadString('\n')
		if err != nil {
			if l != "" {
				return "", fmt.Errorf("connection ended in a line: %q", l)
			}
			return "", err
		}
		body, ok := strings.CutSuffix(l, "\r\n")
		if !ok {
			return "", fmt.Errorf("line without CRLF: %q", l)
		}
		if strings.ContainsAny(body, "\r\n\x00") {
			return "", fmt.Errorf("CR, LF or NUL in a line: %q", l)
		}
		return body, nil
	}
	for {
		first, err := readLine()
		if err != nil {
			push(fuzzResp{err: err})
			return
		}
		if statusRe.MatchString(first) && serverLiteralRe.MatchString(first) {
			push(fuzzResp{err: fmt.Errorf("status response ending in a literal announcement: %q", first)})
			return
		}
		line, total := first, len(first)
		for {
			m := serverLiteralRe.FindStringSubmatch(line)
			if m == nil {
				break
			}
			n, err := strconv.Atoi(m[1])
			if err != nil || total+n > fuzzMaxResponse {
				push(fuzzResp{err: fmt.Errorf("literal of %s octets in %q", m[1], first)})
				return
			}
			if _, err := io.CopyN(io.Discard, br, int64(n)); err != nil {
				push(fuzzResp{err: fmt.Errorf("literal data of %q: %v", first, err)})
				return
			}
			if line, err = readLine(); err != nil {
				push(fuzzResp{err: fmt.Errorf("after a literal of %q: %v", first, err)})
				return
			}
			total += n + len(line)
		}
		if !push(fuzzResp{text: first}) {
			return
		}
	}
}

// next returns the next response, failing the test when there is none in
// time or it is malformed.
func (h *fuzzClient) next() fuzzResp {
	h.t.Helper()
	select {
	case r := <-h.resps:
		if r.err != nil && r.err != io.EOF {
			h.t.Fatalf("waiting for the answer to %q: %v", h.tag, r.err)
		}
		if r.err == io.EOF {
			h.ended = true
			if !h.bye {
				h.t.Fatalf("server closed the connection without BYE, waiting for the answer to %q", h.tag)
			}
		}
		return r
	case <-time.After(fuzzAnswerTimeout):
		h.t.Fatalf("no answer to %q after %v", h.tag, fuzzAnswerTimeout)
	}
	panic("not reached")
}

type awaited int

const (
	answered  awaited = iota // the tagged response
	continued                // "+"
	closed                   // the connection ended after BYE
)

// await reads responses up to the tagged answer of the current command, a
// continuation request or the end.
func (h *fuzzClient) await() (awaited, string) {
	h.t.Helper()
	for {
		r := h.next()
		switch {
		case r.err != nil:
			return closed, ""
		case strings.HasPrefix(r.text, "+ "):
			return continued, r.text
		case strings.HasPrefix(r.text, "* "):
			if strings.HasPrefix(r.text, "* BYE ") {
				if strings.Contains(r.text, "autologout") {
					h.t.Fatalf("server waited for more input after %q: %q", h.tag, r.text)
				}
				h.bye = true
			}
			if h.tag == "" && strings.HasPrefix(r.text, "* BAD ") {
				return answered, r.text
			}
		default:
			tag, rest, _ := strings.Cut(r.text, " ")
			if tag != h.tag || h.tag == "" {
				h.t.Fatalf("tagged response %q while waiting for the answer to %q", r.text, h.tag)
			}
			return answered, rest
		}
	}
}

func (h *fuzzClient) send(b []byte) bool {
	if h.ended {
		return false
	}
	h.nc.SetWriteDeadline(time.Now().Add(fuzzAnswerTimeout))
	if _, err := h.nc.Write(b); err != nil {
		// The server closed the connection; what it said before is
		// checked by the next await.
		return false
	}
	return true
}

// command sends one command and answers its literals and continuations
// until its tagged response.
func (h *fuzzClient) command(in *fuzzInput, line string) {
	h.t.Helper()
	h.tag = fuzzTag(line)
	name := fuzzCommandName(line)
	for {
		sent := h.send([]byte(line + "\r\n"))
		m := clientLiteralRe.FindStringSubmatch(line)
		n, err := 0, error(nil)
		if m != nil {
			n, err = strconv.Atoi(m[1])
		}
		if m == nil || err != nil {
			break
		}
		n = min(n, fuzzMaxLiteral)
		if m[2] == "" && sent {
			// Synchronizing: data only after "+".
			switch what, _ := h.await(); what {
			case answered:
				// Refused: the data and the rest of the command are
				// not sent, as a client would drop them.
				in.data(n)
				in.line()
				return
			case closed:
				return
			}
		}
		h.send(in.data(n))
		line, _ = in.line()
	}
	for {
		what, rest := h.await()
		switch what {
		case answered:
			if name == "COMPRESS" && strings.HasPrefix(rest, "OK") {
				h.ended = true // the rest would be compressed
			}
			return
		case closed:
			return
		}
		// A continuation that asks for a line (IDLE): the next line of
		// the input, or DONE.
		l, ok := in.line()
		if !ok {
			l = "DONE"
		}
		h.send([]byte(l + "\r\n"))
	}
}

// fuzzTag returns the tag of a command line as the parser takes it (RFC
// 9051 §9: tag = 1*<any ASTRING-CHAR except "+">), "" if it has none.
func fuzzTag(line string) string {
	for i := 0; i < len(line); i++ {
		c := line[i]
		if c <= 0x1f || c >= 0x7f || strings.IndexByte(`(){ %*"\+`, c) >= 0 {
			return line[:i]
		}
	}
	return line
}

// fuzzCommandName returns the upper-case second word of a line.
func fuzzCommandName(line string) string {
	f := strings.Fields(line)
	if len(f) < 2 {
		return ""
	}
	return strings.ToUpper(f[1])
}

func (h *fuzzClient) nextTag() string {
	h.n++
	return "zz" + strconv.Itoa(h.n)
}

// simple sends a command of the harness's own and checks its answer.
func (h *fuzzClient) simple(line, want string) string {
	h.t.Helper()
	h.tag = fuzzTag(line)
	if !h.send([]byte(line + "\r\n")) {
		h.t.Fatalf("%s: connection closed", line)
	}
	what, rest := h.await()
	if what != answered || !strings.HasPrefix(rest, want) {
		h.t.Fatalf("%s: %q, want %q", line, rest, want)
	}
	return rest
}

// start reads the greeting, logs in with CRAM-MD5 and selects INBOX.
func (h *fuzzClient) start() {
	h.t.Helper()
	h.tag = "greeting"
	if r := h.next(); !strings.HasPrefix(r.text, "* OK ") {
		h.t.Fatalf("greeting %q", r.text)
	}
	h.tag = h.nextTag()
	h.send([]byte(h.tag + " AUTHENTICATE CRAM-MD5\r\n"))
	what, text := h.await()
	if what != continued {
		h.t.Fatalf("AUTHENTICATE CRAM-MD5: %q", text)
	}
	// RFC 2195 §2: the user name, a space and the keyed MD5 digest of the
	// challenge, in hex.
	challenge, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(text, "+ "))
	if err != nil {
		h.t.Fatalf("CRAM-MD5 challenge %q: %v", text, err)
	}
	mac := hmac.New(md5.New, []byte("secret"))
	mac.Write(challenge)
	h.send([]byte(base64.StdEncoding.EncodeToString([]byte("mjl@example.org "+hex.EncodeToString(mac.Sum(nil)))) + "\r\n"))
	if what, rest := h.await(); what != answered || !strings.HasPrefix(rest, "OK") {
		h.t.Fatalf("CRAM-MD5 login: %q", rest)
	}
	h.simple(h.nextTag()+" SELECT INBOX", "OK")
}

// feed sends the input's commands.
func (h *fuzzClient) feed(in *fuzzInput) {
	h.t.Helper()
	for !h.ended {
		line, ok := in.line()
		if !ok {
			return
		}
		h.command(in, line)
	}
}

// finish logs out, unless the session already ended, and waits for the
// server to close the connection.
func (h *fuzzClient) finish() {
	h.t.Helper()
	if !h.ended {
		h.simple(h.nextTag()+" LOGOUT", "OK")
		if !h.bye {
			h.t.Fatalf("LOGOUT without BYE")
		}
	}
	if h.bye {
		for !h.ended {
			if r := h.next(); r.err == nil {
				h.t.Fatalf("response after BYE: %q", r.text)
			}
		}
	}
}
