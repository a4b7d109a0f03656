//go:build linux

package integration

// IMAP clients written by others against a running moxd: Python's imaplib,
// go-imap v2, imapflow (npm), GNU gsasl, mbsync (isync) and offlineimap.
// Each test starts an instance of its own (a second or so), so one
// client's changes never show up in another's mailbox; all of them speak
// TLS with the instance's local CA, as a user would configure them.
//
// The npm peer is installed by .ci/run (npm ci in integration/imapclients);
// the Debian ones by the package list there. A missing peer fails in CI
// (needTool) and skips elsewhere.

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	imap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"moxd/internal/mailproto/mbox"
)

const clientsBaseUID = 64720

const clientsPassword = "imap-Clients-Password-1"

// clientsEnv is a running instance for one client test.
type clientsEnv struct {
	in    *instance
	imaps string // implicit TLS listener, host:port
	imap  string // STARTTLS listener
	ca    string // the local CA, PEM
}

// clientsInstance starts an instance of its own for t, with a password for
// account mox, stopped when t ends.
func clientsInstance(t *testing.T) *clientsEnv {
	t.Helper()
	needRoot(t)
	dir, conf := writeConfig(t, confOptions{baseUID: clientsBaseUID})
	t0 := time.Now()
	in := start(t, dir, conf, clientsBaseUID)
	t.Cleanup(func() {
		in.stop()
		waitNoProcs(t, clientsBaseUID, clientsBaseUID+uint32(len(roleNames)))
	})
	st := in.waitReady()
	if out, code := moxctlRun(t, conf, clientsPassword+"\n", "account", "password", "mox"); code != 0 {
		t.Fatalf("setting the password: exit %d: %s", code, out)
	}
	t.Logf("instance ready in %s", time.Since(t0).Round(time.Millisecond))
	return &clientsEnv{in: in, imaps: listenerAddr(st, "imaps"), imap: listenerAddr(st, "imap"), ca: filepath.Join(dir, "data", "localca.pem")}
}

// session is a raw IMAP session of the test itself, for checking what a
// client did on the server.
func (e *clientsEnv) session(t *testing.T) *imapClient {
	t.Helper()
	c := dialIMAPS(t, e.imaps, e.ca)
	t.Cleanup(func() { c.conn.Close() })
	c.ok("LOGIN mox@localhost %s", clientsPassword)
	return c
}

// tlsConfig trusts the instance's CA for the name on its certificate.
func (e *clientsEnv) tlsConfig(t *testing.T) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(e.ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", e.ca)
	}
	return &tls.Config{RootCAs: pool, ServerName: "localhost"}
}

func clientHostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return h, p
}

// clientMessage is message n of a client test, with a unique Message-ID.
func clientMessage(tag string, n int) string {
	return fmt.Sprintf("From: Sender %d <sender@example.net>\r\nTo: mox@localhost\r\nSubject: %s %d\r\nMessage-ID: <%d@%s.test>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\n\r\nBody of %s message %d.\r\n", n, tag, n, n, tag, tag, n)
}

func clientsDeliver(t *testing.T, e *clientsEnv, tag string, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		if err := moxctlDeliver(e.in.conf, "mox@localhost", clientMessage(tag, i)); err != nil {
			t.Fatalf("deliver %s %d: %v", tag, i, err)
		}
	}
}

// The UID, the flags and the mod-sequence in an untagged FETCH, which may
// come in any order.
var (
	reFetchUID    = regexp.MustCompile(`\bUID (\d+)`)
	reFetchFlags  = regexp.MustCompile(`\bFLAGS \(([^)]*)\)`)
	reFetchModSeq = regexp.MustCompile(`\bMODSEQ \((\d+)\)`)
)

func fetchUID(l string) int {
	m := reFetchUID.FindStringSubmatch(l)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func fetchModSeq(l string) uint64 {
	m := reFetchModSeq.FindStringSubmatch(l)
	if m == nil {
		return 0
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n
}

func fetchFlags(l string) string {
	m := reFetchFlags.FindStringSubmatch(l)
	if m == nil {
		return ""
	}
	return m[1]
}

// pythonQresync is one session of Python's imaplib: "first" selects INBOX
// and fetches every message's flags and mod-sequence; "resync" selects with
// QRESYNC from a state the first one remembered, and reports the VANISHED
// and FETCH responses that SELECT gave.
const pythonQresync = `
import imaplib, json, ssl, sys

mode, host, port, ca, user, password = sys.argv[1:7]

class IMAPS(imaplib.IMAP4_SSL):
    # The certificate names localhost; the listener is an address.
    def _create_socket(self, timeout):
        sock = imaplib.IMAP4._create_socket(self, timeout)
        return self.ssl_context.wrap_socket(sock, server_hostname="localhost")

ctx = ssl.create_default_context(cafile=ca)
M = IMAPS(host, int(port), ssl_context=ctx, timeout=20)
M.login(user, password)
typ, _ = M._simple_command("ENABLE", "CONDSTORE", "QRESYNC")
out = {"enable": typ, "enabled": b" ".join(M.untagged_responses.pop("ENABLED", [b""])).decode().split()}
M.untagged_responses.clear()
if mode == "first":
    typ, _ = M.select("INBOX")
    out["select"] = typ
    out["uidvalidity"] = M.untagged_responses["UIDVALIDITY"][0].decode()
    out["highestmodseq"] = M.untagged_responses["HIGHESTMODSEQ"][0].decode()
    typ, data = M.uid("FETCH", "1:*", "(FLAGS MODSEQ)")
    out["fetch"] = [d.decode() for d in data if d]
else:
    uidvalidity, modseq = sys.argv[7:9]
    typ, data = M._simple_command("SELECT", "INBOX", "(QRESYNC (%s %s))" % (uidvalidity, modseq))
    out["select"] = typ
    out["vanished"] = [d.decode() for d in M.untagged_responses.get("VANISHED", [])]
    out["fetch"] = [d.decode() for d in M.untagged_responses.get("FETCH", [])]
    out["highestmodseq"] = M.untagged_responses.get("HIGHESTMODSEQ", [b""])[0].decode()
M.logout()
print(json.dumps(out))
`

type pythonResult struct {
	Enable        string   `json:"enable"`
	Enabled       []string `json:"enabled"`
	Select        string   `json:"select"`
	UIDValidity   string   `json:"uidvalidity"`
	HighestModSeq string   `json:"highestmodseq"`
	Fetch         []string `json:"fetch"`
	Vanished      []string `json:"vanished"`
}

// runPythonQresync runs the first session, or with UIDVALIDITY and
// HIGHESTMODSEQ as args the resync session.
func runPythonQresync(t *testing.T, e *clientsEnv, args ...string) pythonResult {
	t.Helper()
	py := needTool(t, "/usr/bin/python3")
	host, port := clientHostPort(t, e.imaps)
	mode := "first"
	if len(args) > 0 {
		mode = "resync"
	}
	out, err := runTool(t, "", py, append([]string{"-c", pythonQresync, mode, host, port, e.ca, "mox@localhost", clientsPassword}, args...)...)
	if err != nil {
		t.Fatalf("python imaplib: %v\n%s", err, out)
	}
	var r pythonResult
	if err := json.Unmarshal([]byte(lastLine(out)), &r); err != nil {
		t.Fatalf("python output: %v\n%s", err, out)
	}
	return r
}

func hasAllFold(l []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, s := range l {
			if strings.EqualFold(s, w) {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// TestIMAPClientPythonQresync: a client that remembered UIDVALIDITY and
// HIGHESTMODSEQ learns, with one SELECT ... (QRESYNC ...), exactly which
// messages another session expunged (VANISHED (EARLIER)) and whose flags
// it changed (FETCH), and nothing about the untouched message (RFC 7162
// §3.2.5). The client is Python's imaplib.
func TestIMAPClientPythonQresync(t *testing.T) {
	e := clientsInstance(t)
	clientsDeliver(t, e, "python", 3)

	first := runPythonQresync(t, e)
	if first.Enable != "OK" || !hasAllFold(first.Enabled, "CONDSTORE", "QRESYNC") {
		t.Fatalf("ENABLE CONDSTORE QRESYNC: %s, enabled %q", first.Enable, first.Enabled)
	}
	if first.Select != "OK" || len(first.Fetch) != 3 {
		t.Fatalf("SELECT %s, UID FETCH 1:* gave %q; want 3 messages", first.Select, first.Fetch)
	}
	var uids []int
	highest, _ := strconv.ParseUint(first.HighestModSeq, 10, 64)
	for _, l := range first.Fetch {
		uid, ms := fetchUID(l), fetchModSeq(l)
		if uid == 0 || ms == 0 || ms > highest {
			t.Fatalf("FETCH line %q: want a UID and a MODSEQ <= HIGHESTMODSEQ %d", l, highest)
		}
		uids = append(uids, uid)
	}
	sort.Ints(uids)
	gone, flagged, untouched := uids[1], uids[2], uids[0]

	// Another session: expunge the second message, flag the third.
	c := e.session(t)
	c.ok("SELECT INBOX")
	c.ok(`UID STORE %d +FLAGS.SILENT (\Deleted)`, gone)
	c.ok("EXPUNGE")
	c.ok(`UID STORE %d +FLAGS.SILENT (\Flagged)`, flagged)
	c.ok("LOGOUT")

	r := runPythonQresync(t, e, first.UIDValidity, first.HighestModSeq)
	t.Logf("SELECT INBOX (QRESYNC (%s %s)): VANISHED %q, FETCH %q", first.UIDValidity, first.HighestModSeq, r.Vanished, r.Fetch)
	if r.Select != "OK" || !hasAllFold(r.Enabled, "QRESYNC") {
		t.Fatalf("SELECT INBOX (QRESYNC ...): %s, enabled %q", r.Select, r.Enabled)
	}
	if want := fmt.Sprintf("(EARLIER) %d", gone); len(r.Vanished) != 1 || r.Vanished[0] != want {
		t.Errorf("VANISHED responses %q, want exactly %q", r.Vanished, want)
	}
	if len(r.Fetch) != 1 || fetchUID(r.Fetch[0]) != flagged || !strings.Contains(fetchFlags(r.Fetch[0]), `\Flagged`) {
		t.Errorf("FETCH responses %q, want one for UID %d with \\Flagged (UID %d is untouched)", r.Fetch, flagged, untouched)
	} else if ms := fetchModSeq(r.Fetch[0]); ms <= highest {
		t.Errorf("flagged message's MODSEQ %d not above the remembered HIGHESTMODSEQ %d", ms, highest)
	}
	if h, _ := strconv.ParseUint(r.HighestModSeq, 10, 64); h <= highest {
		t.Errorf("HIGHESTMODSEQ after the changes %q, want above %d", r.HighestModSeq, highest)
	}
}

// TestIMAPClientGoIMAP: the everyday commands of a mail client through
// go-imap v2's client: LIST shows the special-use mailboxes, SELECT with
// CONDSTORE, FETCH of flags, envelope and body, STORE, SEARCH, APPEND,
// COPY and MOVE with the UIDs they assigned, and IDLE reporting a new
// delivery as it happens.
func TestIMAPClientGoIMAP(t *testing.T) {
	e := clientsInstance(t)
	clientsDeliver(t, e, "goimap", 2)

	exists := make(chan uint32, 16)
	// The transcript, shown when the test fails.
	transcript := newSyncBuffer()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("go-imap transcript (password elided):\n%s", strings.ReplaceAll(transcript.String(), clientsPassword, "***"))
		}
	})
	c, err := imapclient.DialTLS(e.imaps, &imapclient.Options{
		TLSConfig:   e.tlsConfig(t),
		DebugWriter: transcript,
		Dialer:      &net.Dialer{Timeout: 10 * time.Second},
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					exists <- *d.NumMessages
				}
			},
		},
	})
	if err != nil {
		t.Fatalf("DialTLS: %v", err)
	}
	defer c.Close()
	if err := c.Login("mox@localhost", clientsPassword).Wait(); err != nil {
		t.Fatalf("Login: %v", err)
	}

	mailboxes, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	names := map[string]bool{}
	for _, m := range mailboxes {
		names[m.Mailbox] = true
	}
	for _, want := range []string{"INBOX", "Archive", "Drafts", "Sent", "Trash"} {
		if !names[want] {
			t.Errorf("LIST lacks %s: %v", want, names)
		}
	}

	sel, err := c.Select("INBOX", &imap.SelectOptions{CondStore: true}).Wait()
	if err != nil {
		t.Fatalf("Select: %v", err)
	}
	if sel.NumMessages != 2 || sel.HighestModSeq == 0 || sel.UIDValidity == 0 {
		t.Fatalf("Select INBOX: %d messages, HIGHESTMODSEQ %d, UIDVALIDITY %d; want 2 and both set", sel.NumMessages, sel.HighestModSeq, sel.UIDValidity)
	}

	msgs, err := c.Fetch(imap.SeqSetNum(1, 2), &imap.FetchOptions{
		UID: true, Flags: true, Envelope: true, ModSeq: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if len(msgs) != 2 {
		t.Fatalf("Fetch 1:2 gave %d messages", len(msgs))
	}
	for i, m := range msgs {
		n := i + 1
		if m.Envelope == nil || m.Envelope.Subject != fmt.Sprintf("goimap %d", n) || len(m.Envelope.From) != 1 || m.Envelope.From[0].Addr() != "sender@example.net" || m.Envelope.From[0].Name != fmt.Sprintf("Sender %d", n) {
			t.Errorf("message %d envelope %+v", n, m.Envelope)
		}
		if m.Envelope != nil && m.Envelope.MessageID != fmt.Sprintf("%d@goimap.test", n) {
			t.Errorf("message %d envelope Message-ID %q", n, m.Envelope.MessageID)
		}
		if len(m.BodySection) != 1 || !bytes.Equal(m.BodySection[0].Bytes, []byte(clientMessage("goimap", n))) {
			t.Errorf("message %d BODY.PEEK[] differs from what was delivered: %+v", n, m.BodySection)
		}
		if m.UID == 0 || m.ModSeq == 0 || m.ModSeq > sel.HighestModSeq {
			t.Errorf("message %d UID %d MODSEQ %d (HIGHESTMODSEQ %d)", n, m.UID, m.ModSeq, sel.HighestModSeq)
		}
		for _, f := range m.Flags {
			if f == imap.FlagSeen {
				t.Errorf("message %d is \\Seen after BODY.PEEK[]", n)
			}
		}
	}
	uid1, uid2 := msgs[0].UID, msgs[1].UID

	stored, err := c.Store(imap.UIDSetNum(uid1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Collect()
	if err != nil {
		t.Fatalf("Store: %v", err)
	}
	if len(stored) != 1 || !hasIMAPFlag(stored[0].Flags, imap.FlagFlagged) || stored[0].ModSeq <= msgs[0].ModSeq {
		t.Errorf("Store +FLAGS \\Flagged answered %+v", stored)
	}

	found, err := c.UIDSearch(&imap.SearchCriteria{Flag: []imap.Flag{imap.FlagFlagged}}, nil).Wait()
	if err != nil {
		t.Errorf("UID SEARCH FLAGGED: %v", err)
	} else if got := found.AllUIDs(); len(got) != 1 || got[0] != uid1 {
		t.Errorf("UID SEARCH FLAGGED = %v, want [%d]", got, uid1)
	}
	found, err = c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "goimap 2"}}}, nil).Wait()
	if err != nil {
		t.Errorf("UID SEARCH HEADER Subject: %v", err)
	} else if got := found.AllUIDs(); len(got) != 1 || got[0] != uid2 {
		t.Errorf("UID SEARCH HEADER Subject \"goimap 2\" = %v, want [%d]", got, uid2)
	}

	draft := "From: mox@localhost\r\nTo: someone@example.net\r\nSubject: draft by go-imap\r\nMessage-ID: <draft@goimap.test>\r\n\r\nNot finished.\r\n"
	app := c.Append("Drafts", int64(len(draft)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagDraft}})
	io.WriteString(app, draft)
	if err := app.Close(); err != nil {
		t.Errorf("Append: %v", err)
	} else if ad, err := app.Wait(); err != nil {
		t.Errorf("Append: %v", err)
	} else if ad.UID == 0 || ad.UIDValidity == 0 {
		t.Errorf("Append gave no APPENDUID: %+v", ad)
	} else {
		st, err := c.Status("Drafts", &imap.StatusOptions{NumMessages: true, UIDNext: true}).Wait()
		if err != nil || st.NumMessages == nil || *st.NumMessages != 1 || st.UIDNext != ad.UID+1 {
			t.Errorf("Status Drafts after Append (UID %d): %+v, %v", ad.UID, st, err)
		}
	}

	cd, err := c.Copy(imap.UIDSetNum(uid1), "Archive").Wait()
	if err != nil {
		t.Errorf("Copy: %v", err)
	} else if dest, ok := cd.DestUIDs.Nums(); !ok || len(dest) != 1 || cd.UIDValidity == 0 {
		t.Errorf("Copy gave COPYUID %+v", cd)
	}
	if !c.Caps().Has(imap.CapMove) {
		t.Errorf("no MOVE capability (go-imap would emulate it with COPY and EXPUNGE): %v", c.Caps())
	} else if md, err := c.Move(imap.UIDSetNum(uid2), "Trash").Wait(); err != nil {
		t.Errorf("Move: %v", err)
	} else if dest, ok := md.DestUIDs.(imap.UIDSet); !ok || len(dest) != 1 {
		t.Errorf("Move gave COPYUID %+v", md)
	}
	for box, want := range map[string]uint32{"Archive": 1, "Trash": 1} {
		st, err := c.Status(box, &imap.StatusOptions{NumMessages: true}).Wait()
		if err != nil || st.NumMessages == nil || *st.NumMessages != want {
			t.Errorf("Status %s: %+v, %v; want %d messages", box, st, err, want)
		}
	}
	// The moved message left INBOX.
	if n := c.Mailbox().NumMessages; n != 1 {
		t.Errorf("INBOX has %d messages after the move, want 1", n)
	}
	drainExists(exists)

	idle, err := c.Idle()
	if err != nil {
		t.Fatalf("Idle: %v", err)
	}
	if err := moxctlDeliver(e.in.conf, "mox@localhost", clientMessage("goimap", 3)); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-exists:
		if n != 2 {
			t.Errorf("during IDLE: %d EXISTS, want 2", n)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("no EXISTS within 10s of a delivery during IDLE")
	}
	if err := idle.Close(); err != nil {
		t.Errorf("ending IDLE: %v", err)
	}
	if err := idle.Wait(); err != nil {
		t.Errorf("IDLE: %v", err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Errorf("Logout: %v", err)
	}
}

func hasIMAPFlag(l []imap.Flag, f imap.Flag) bool {
	for _, x := range l {
		if strings.EqualFold(string(x), string(f)) {
			return true
		}
	}
	return false
}

func drainExists(ch chan uint32) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// imapflowResult is what integration/imapclients/qresync.mjs prints.
type imapflowResult struct {
	Enabled       []string `json:"enabled"`
	UIDValidity   string   `json:"uidValidity"`
	HighestModseq string   `json:"highestModseq"`
	Messages      []struct {
		UID    int      `json:"uid"`
		Modseq string   `json:"modseq"`
		Flags  []string `json:"flags"`
	} `json:"messages"`
	Deleted int             `json:"deleted"`
	Flagged int             `json:"flagged"`
	Live    []imapflowEvent `json:"live"`
	Resync  []imapflowEvent `json:"resync"`
	Error   string          `json:"error"`
}

type imapflowEvent struct {
	Event    string   `json:"event"`
	UID      int      `json:"uid"`
	Vanished bool     `json:"vanished"`
	Earlier  bool     `json:"earlier"`
	Flags    []string `json:"flags"`
}

// TestIMAPClientImapflow: imapflow, a QRESYNC client, enables CONDSTORE
// and QRESYNC, reads the mod-sequences, hears a second connection's
// expunge as VANISHED while its own mailbox is open, and on reopening with
// the state it remembered is told of the expunge (VANISHED (EARLIER)) and
// the flag change (RFC 7162 §3.2.5, §3.2.10).
func TestIMAPClientImapflow(t *testing.T) {
	node := needTool(t, "node")
	dir, err := filepath.Abs("imapclients")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "imapflow", "package.json")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("imapflow not installed in integration/imapclients (.ci/run runs npm ci there): %v", err)
		}
		t.Skipf("imapflow not installed (npm ci in integration/imapclients): %v", err)
	}
	e := clientsInstance(t)
	clientsDeliver(t, e, "imapflow", 3)
	host, port := clientHostPort(t, e.imaps)
	out, err := runToolIn(t, dir, node, "qresync.mjs", host, port, e.ca, "mox@localhost", clientsPassword)
	var r imapflowResult
	if jerr := json.Unmarshal([]byte(lastLine(out)), &r); jerr != nil || err != nil || r.Error != "" {
		t.Fatalf("imapflow script: %v, %v, %s\n%s", err, jerr, r.Error, out)
	}
	t.Logf("imapflow: deleted UID %d, flagged UID %d; events while open %+v; on reopening %+v", r.Deleted, r.Flagged, r.Live, r.Resync)
	if !hasAllFold(r.Enabled, "CONDSTORE", "QRESYNC") {
		t.Errorf("imapflow enabled %q, want CONDSTORE and QRESYNC", r.Enabled)
	}
	highest, _ := strconv.ParseUint(r.HighestModseq, 10, 64)
	if len(r.Messages) != 3 || highest == 0 {
		t.Fatalf("imapflow saw %d messages, highestModseq %q; want 3 and a value", len(r.Messages), r.HighestModseq)
	}
	for _, m := range r.Messages {
		if ms, _ := strconv.ParseUint(m.Modseq, 10, 64); ms == 0 || ms > highest {
			t.Errorf("message UID %d modseq %q, want 1..%d", m.UID, m.Modseq, highest)
		}
	}
	// While open: the other connection's expunge arrives as VANISHED
	// naming the UID (QRESYNC enabled: no EXPUNGE with a sequence number).
	var liveGone []int
	for _, ev := range r.Live {
		if ev.Event == "expunge" {
			if !ev.Vanished || ev.Earlier {
				t.Errorf("live expunge event %+v, want vanished without earlier", ev)
			}
			liveGone = append(liveGone, ev.UID)
		}
	}
	if len(liveGone) != 1 || liveGone[0] != r.Deleted {
		t.Errorf("live expunge events for UIDs %v, want [%d]", liveGone, r.Deleted)
	}
	// Reopened with the remembered state: exactly the changes.
	var earlier, flagged []int
	for _, ev := range r.Resync {
		switch ev.Event {
		case "expunge":
			if !ev.Vanished || !ev.Earlier {
				t.Errorf("resync expunge event %+v, want vanished earlier", ev)
			}
			earlier = append(earlier, ev.UID)
		case "flags":
			if !hasAllFold(ev.Flags, `\Flagged`) {
				t.Errorf("resync flags event %+v lacks \\Flagged", ev)
			}
			flagged = append(flagged, ev.UID)
		}
	}
	if len(earlier) != 1 || earlier[0] != r.Deleted {
		t.Errorf("resync VANISHED (EARLIER) for UIDs %v, want [%d]", earlier, r.Deleted)
	}
	if len(flagged) != 1 || flagged[0] != r.Flagged {
		t.Errorf("resync flag changes for UIDs %v, want [%d]", flagged, r.Flagged)
	}
}

// TestIMAPClientGSASL: GNU gsasl logs in over STARTTLS on the imap port
// with SCRAM-SHA-256-PLUS, binding to the TLS connection (tls-exporter),
// and with the other mechanisms moxd offers; a wrong password is refused.
func TestIMAPClientGSASL(t *testing.T) {
	gsasl := needTool(t, "gsasl")
	e := clientsInstance(t)
	host, port := clientHostPort(t, e.imap)
	// The client-first message of a binding SCRAM client starts with
	// the GS2 header naming the binding (RFC 5802 §7, RFC 9266 §2).
	bound := base64.StdEncoding.EncodeToString([]byte("p=tls-exporter,"))
	for _, mech := range []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "CRAM-MD5"} {
		args := []string{"--imap", "--connect", host + ":" + port, "--hostname", "localhost", "--starttls", "--x509-ca-file", e.ca,
			"--mechanism", mech, "--authentication-id", "mox@localhost", "--password", clientsPassword, "--verbose"}
		if !strings.HasSuffix(mech, "-PLUS") {
			// Without --no-cb gsasl says it could bind ("y" flag), which
			// against a server offering -PLUS is a downgrade (RFC 5802 §6).
			args = append(args, "--no-cb")
		}
		out, err := runTool(t, "", gsasl, args...)
		if res := authenticateResult(out); err != nil || res != "OK" {
			t.Errorf("gsasl %s: %v, AUTHENTICATE answered %q\n%s", mech, err, res, out)
		}
		if strings.HasSuffix(mech, "-PLUS") && !strings.Contains(out, bound) {
			t.Errorf("gsasl %s did not bind to tls-exporter:\n%s", mech, out)
		}
	}
	out, _ := runTool(t, "", gsasl, "--imap", "--connect", host+":"+port, "--hostname", "localhost", "--starttls", "--x509-ca-file", e.ca,
		"--mechanism", "SCRAM-SHA-256-PLUS", "--authentication-id", "mox@localhost", "--password", "wrong-password", "--verbose")
	if res := authenticateResult(out); res != "NO" {
		t.Errorf("gsasl with a wrong password: AUTHENTICATE answered %q, want NO\n%s", res, out)
	}
}

// authenticateResult returns the status of the tagged response to
// AUTHENTICATE in a gsasl transcript (gsasl tags every command ".").
func authenticateResult(out string) string {
	_, after, ok := strings.Cut(out, ". AUTHENTICATE ")
	if !ok {
		return ""
	}
	m := regexp.MustCompile(`(?m)^\. (OK|NO|BAD)\b`).FindStringSubmatch(after)
	if m == nil {
		return ""
	}
	return m[1]
}

// bulkImport puts n generated messages into account mox's INBOX with moxctl
// import mbox; every tenth is \Seen.
func bulkImport(t *testing.T, e *clientsEnv, tag string, n int) {
	t.Helper()
	var buf bytes.Buffer
	w := mbox.NewWriter(&buf)
	for i := 1; i <= n; i++ {
		if err := w.WriteMessage("sender@example.net", time.Unix(1700000000+int64(i), 0), mbox.Flags{Seen: i%10 == 0}, nil, strings.NewReader(clientMessage(tag, i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "bulk.mbox")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if out, code := moxctlRun(t, e.in.conf, "", "import", "mbox", "mox", "INBOX", path); code != 0 {
		t.Fatalf("import of %d messages: exit %d\n%s", n, code, out)
	}
	t.Logf("imported %d messages in %s", n, time.Since(t0).Round(time.Millisecond))
}

// serverMessage is a message as the test's own IMAP session sees it.
type serverMessage struct {
	uid   int
	flags string
}

// serverState returns INBOX's messages by Message-ID.
func serverState(t *testing.T, e *clientsEnv) map[string]serverMessage {
	t.Helper()
	c := e.session(t)
	defer c.conn.Close()
	c.ok("EXAMINE INBOX")
	c.n++
	tag := fmt.Sprintf("t%d", c.n)
	fmt.Fprintf(c.conn, "%s FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])\r\n", tag)
	state := map[string]serverMessage{}
	reLit := regexp.MustCompile(`\{(\d+)\}$`)
	for {
		l := c.line(30 * time.Second)
		if strings.HasPrefix(l, tag+" ") {
			if !strings.HasPrefix(l, tag+" OK") {
				t.Fatalf("FETCH: %s", l)
			}
			break
		}
		m := reLit.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		size, _ := strconv.Atoi(m[1])
		lit := make([]byte, size)
		if _, err := io.ReadFull(c.r, lit); err != nil {
			t.Fatal(err)
		}
		rest := c.line(10 * time.Second)
		full := l + rest
		id := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(lit)), "Message-ID:"))
		state[id] = serverMessage{uid: fetchUID(full), flags: fetchFlags(full)}
	}
	return state
}

// maildirMessage is a message file of a maildir folder.
type maildirMessage struct {
	path  string
	flags string // the letters after ":2,"
}

// readMaildir returns a maildir folder's messages by Message-ID.
func readMaildir(t *testing.T, folder string) map[string]maildirMessage {
	t.Helper()
	l := map[string]maildirMessage{}
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(folder, sub))
		if err != nil {
			t.Fatalf("maildir: %v", err)
		}
		for _, ent := range ents {
			p := filepath.Join(folder, sub, ent.Name())
			id := maildirMessageID(t, p)
			if _, dup := l[id]; dup {
				t.Errorf("maildir has message %s twice", id)
			}
			var flags string
			if _, info, ok := strings.Cut(ent.Name(), ":2,"); ok {
				flags = info
			}
			l[id] = maildirMessage{path: p, flags: flags}
		}
	}
	return l
}

func maildirMessageID(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimRight(s.Text(), "\r")
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Message-ID") {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no Message-ID in %s", path)
	return ""
}

// syncCase is what a sync test changes on both sides between its first
// and second run, and checks afterwards.
type syncCase struct {
	tag      string
	n        int
	serverFl []int // messages flagged \Flagged on the server
	localSn  int   // message marked seen in the maildir
	localDel int   // message deleted in the maildir
	added    string
}

func newSyncCase(tag string) syncCase {
	return syncCase{
		tag: tag, n: 1000,
		serverFl: []int{1, 2, 3, 4, 5},
		localSn:  501, // not one of the tenths, which are seen already
		localDel: 600,
		added:    fmt.Sprintf("From: mox@localhost\r\nTo: mox@localhost\r\nSubject: written locally\r\nMessage-ID: <local@%s.test>\r\nDate: Mon, 2 Mar 2026 11:00:00 +0000\r\n\r\nAdded to the maildir.\r\n", tag),
	}
}

func (sc syncCase) id(n int) string { return fmt.Sprintf("<%d@%s.test>", n, sc.tag) }

// checkFirstSync: the maildir has every message, with \Seen as S.
func (sc syncCase) checkFirstSync(t *testing.T, md map[string]maildirMessage) {
	t.Helper()
	if len(md) != sc.n {
		t.Fatalf("maildir has %d messages after the first sync, want %d", len(md), sc.n)
	}
	for i := 1; i <= sc.n; i++ {
		m, ok := md[sc.id(i)]
		if !ok {
			t.Fatalf("maildir lacks message %s", sc.id(i))
		}
		if seen := strings.Contains(m.flags, "S"); seen != (i%10 == 0) {
			t.Errorf("message %d in the maildir: flags %q, want seen %v", i, m.flags, i%10 == 0)
		}
	}
}

// changeBothSides flags messages on the server and changes the maildir:
// one message seen, one deleted, one added.
func (sc syncCase) changeBothSides(t *testing.T, e *clientsEnv, folder string, md map[string]maildirMessage) {
	t.Helper()
	srv := serverState(t, e)
	c := e.session(t)
	c.ok("SELECT INBOX")
	for _, n := range sc.serverFl {
		c.ok(`UID STORE %d +FLAGS.SILENT (\Flagged)`, srv[sc.id(n)].uid)
	}
	c.ok("LOGOUT")

	m := md[sc.id(sc.localSn)]
	dir, name := filepath.Split(m.path)
	if !strings.Contains(name, ":2,") {
		name += ":2,"
	}
	if err := os.Rename(m.path, filepath.Join(filepath.Dir(filepath.Clean(dir)), "cur", name+"S")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(md[sc.id(sc.localDel)].path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(folder, "new", "1772450000.M1P1.local.test"), []byte(sc.added), 0o600); err != nil {
		t.Fatal(err)
	}
}

// checkBothSides: after the second sync, server and maildir agree.
func (sc syncCase) checkBothSides(t *testing.T, e *clientsEnv, folder string) {
	t.Helper()
	srv := serverState(t, e)
	if len(srv) != sc.n {
		t.Errorf("server INBOX has %d messages, want %d (one deleted, one added)", len(srv), sc.n)
	}
	if _, ok := srv[sc.id(sc.localDel)]; ok {
		t.Errorf("message %d deleted in the maildir is still on the server", sc.localDel)
	}
	if _, ok := srv[fmt.Sprintf("<local@%s.test>", sc.tag)]; !ok {
		t.Errorf("message added to the maildir is not on the server")
	}
	if m := srv[sc.id(sc.localSn)]; !strings.Contains(m.flags, `\Seen`) {
		t.Errorf("message %d marked seen in the maildir has flags %q on the server", sc.localSn, m.flags)
	}
	md := readMaildir(t, folder)
	if len(md) != sc.n {
		t.Errorf("maildir has %d messages, want %d", len(md), sc.n)
	}
	for _, n := range sc.serverFl {
		if m := md[sc.id(n)]; !strings.Contains(m.flags, "F") {
			t.Errorf("message %d flagged on the server has flags %q in the maildir", n, m.flags)
		}
	}
	if strings.Contains(srv[sc.id(sc.localSn+1)].flags, `\Seen`) || strings.Contains(md[sc.id(sc.localSn+1)].flags, "S") {
		t.Errorf("message %d, changed nowhere, became seen", sc.localSn+1)
	}
}

// mbsyncCounts matches mbsync 1.4's progress counters, e.g.
// "C: 1/1  B: 1/1  F: +1/1 *2/2 #0/0  N: +0/0 *5/5 #0/0": new messages,
// flag changes and messages moved to a trash folder, propagated to the far
// (server) side and to the near (maildir) side.
var mbsyncCounts = regexp.MustCompile(`F: \+(\d+)/\d+ \*(\d+)/\d+ #(\d+)/\d+\s+N: \+(\d+)/\d+ \*(\d+)/\d+ #(\d+)/\d+`)

// mbsyncRun runs mbsync -V and returns its final counts. mbsync shows
// its counters only on a terminal, so it runs under script(1).
func mbsyncRun(t *testing.T, mbsync, rc string) [6]int {
	t.Helper()
	script := needTool(t, "script")
	t0 := time.Now()
	out, err := runTool(t, "", script, "-qec", fmt.Sprintf("%s -V -c '%s' -a", mbsync, rc), "/dev/null")
	out = strings.ReplaceAll(out, "\r", "\n")
	if err != nil {
		t.Fatalf("mbsync: %v\n%s", err, out)
	}
	all := mbsyncCounts.FindAllStringSubmatch(out, -1)
	if all == nil {
		t.Fatalf("no counts in mbsync's output:\n%s", out)
	}
	var n [6]int
	for i := range n {
		n[i], _ = strconv.Atoi(all[len(all)-1][i+1])
	}
	t.Logf("mbsync in %s: far +%d *%d #%d, near +%d *%d #%d", time.Since(t0).Round(time.Millisecond), n[0], n[1], n[2], n[3], n[4], n[5])
	return n
}

// TestIMAPClientMbsync: mbsync mirrors a 1000-message INBOX into a maildir
// over implicit TLS with flags intact; then a flag set on the server, a
// message marked seen, one deleted and one added in the maildir all reach
// the other side in one run that moves only those changes; a third run
// has nothing to do.
func TestIMAPClientMbsync(t *testing.T) {
	mbsync := needTool(t, "mbsync")
	e := clientsInstance(t)
	sc := newSyncCase("mbsync")
	bulkImport(t, e, sc.tag, sc.n)
	// The certificate's name, which /etc/hosts maps to 127.0.0.1, the
	// listener's address.
	_, port := clientHostPort(t, e.imaps)
	work := t.TempDir()
	mail := filepath.Join(work, "mail")
	rc := filepath.Join(work, "mbsyncrc")
	conf := fmt.Sprintf(`IMAPAccount moxd
Host localhost
Port %s
User mox@localhost
Pass %s
SSLType IMAPS
CertificateFile %s
AuthMechs LOGIN

IMAPStore moxd-remote
Account moxd

MaildirStore local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel moxd
Far :moxd-remote:
Near :local:
Patterns INBOX
Create Both
Expunge Both
SyncState *
Sync All
`, port, clientsPassword, e.ca, mail, mail)
	if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	// mbsync creates folders, not the store's directory.
	if err := os.Mkdir(mail, 0o700); err != nil {
		t.Fatal(err)
	}

	if n := mbsyncRun(t, mbsync, rc); n != [6]int{0, 0, 0, sc.n, 0, 0} {
		t.Errorf("first mbsync run: counts %v, want %d messages to the maildir and nothing else", n, sc.n)
	}
	folder := filepath.Join(mail, "INBOX")
	md := readMaildir(t, folder)
	sc.checkFirstSync(t, md)

	sc.changeBothSides(t, e, folder, md)
	// Far: the added message, and two flag changes: \Seen, and \Deleted
	// for the deleted message (then expunged). Near: the five \Flagged.
	// Nothing is fetched again.
	if n := mbsyncRun(t, mbsync, rc); n != [6]int{1, 2, 0, 0, len(sc.serverFl), 0} {
		t.Errorf("second mbsync run: counts %v, want far +1 *2, near *%d, nothing else", n, len(sc.serverFl))
	}
	sc.checkBothSides(t, e, folder)

	if n := mbsyncRun(t, mbsync, rc); n != [6]int{} {
		t.Errorf("third mbsync run with nothing changed: counts %v, want all zero", n)
	}
}

// offlineimapRun runs offlineimap once and returns its log.
func offlineimapRun(t *testing.T, offlineimap, rc string) string {
	t.Helper()
	t0 := time.Now()
	out, err := runTool(t, "", offlineimap, "-c", rc, "-o", "-u", "basic")
	if err != nil || strings.Contains(out, "ERROR") {
		t.Fatalf("offlineimap: %v\n%s", err, out)
	}
	t.Logf("offlineimap in %s", time.Since(t0).Round(time.Millisecond))
	return out
}

// offlineimapCounts counts what a run did, from its log at -u basic:
// messages copied to the maildir ("Copy message UID 7 (7/1000)
// remote:INBOX -> local:INBOX") and to the server, messages deleted on the
// server ("Deleting 1 messages (600) in IMAP[INBOX]"), and flags added by
// letter ("Adding flag F to 5 messages on INBOX", either side).
type offlineimapCounts struct {
	toLocal, toRemote, deleted int
	flags                      map[string]int
}

var (
	reOfflineimapCopy   = regexp.MustCompile(`^Copy message UID -?\d+ \(\d+/\d+\) (local|remote):\S+ -> (local|remote):`)
	reOfflineimapDelete = regexp.MustCompile(`^Deleting (\d+) messages? .* in IMAP\[`)
	reOfflineimapFlag   = regexp.MustCompile(`^Adding flags? (\S+) to (\d+) messages?`)
)

func countOfflineimap(log string) offlineimapCounts {
	n := offlineimapCounts{flags: map[string]int{}}
	for _, l := range strings.Split(log, "\n") {
		l = strings.TrimSpace(l)
		if m := reOfflineimapCopy.FindStringSubmatch(l); m != nil {
			if m[2] == "local" {
				n.toLocal++
			} else {
				n.toRemote++
			}
		} else if m := reOfflineimapDelete.FindStringSubmatch(l); m != nil {
			k, _ := strconv.Atoi(m[1])
			n.deleted += k
		} else if m := reOfflineimapFlag.FindStringSubmatch(l); m != nil {
			k, _ := strconv.Atoi(m[2])
			n.flags[m[1]] += k
		}
	}
	return n
}

// TestIMAPClientOfflineimap: offlineimap mirrors a 1000-message INBOX over
// implicit TLS into a maildir with flags intact; a flag set on the server
// and a message marked seen, deleted and added in the maildir reach the
// other side in a second run that copies only the added message; a third
// run copies nothing.
func TestIMAPClientOfflineimap(t *testing.T) {
	offlineimap := needTool(t, "offlineimap")
	e := clientsInstance(t)
	sc := newSyncCase("offlineimap")
	bulkImport(t, e, sc.tag, sc.n)
	_, port := clientHostPort(t, e.imaps)
	work := t.TempDir()
	mail := filepath.Join(work, "mail")
	rc := filepath.Join(work, "offlineimaprc")
	conf := fmt.Sprintf(`[general]
accounts = moxd
metadata = %s/meta

[Account moxd]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = %s

[Repository remote]
type = IMAP
remotehost = localhost
remoteport = %s
remoteuser = mox@localhost
remotepass = %s
ssl = yes
sslcacertfile = %s
folderfilter = lambda f: f == 'INBOX'
`, work, mail, port, clientsPassword, e.ca)
	if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}

	out := offlineimapRun(t, offlineimap, rc)
	if n := countOfflineimap(out); n.toLocal != sc.n || n.toRemote != 0 || n.deleted != 0 || len(n.flags) != 0 {
		t.Errorf("first offlineimap run: %+v, want %d copied to the maildir and nothing else\n%s", n, sc.n, out)
	}
	folder := filepath.Join(mail, "INBOX")
	md := readMaildir(t, folder)
	sc.checkFirstSync(t, md)

	sc.changeBothSides(t, e, folder, md)
	// Only the changes: F on the five flagged on the server, S on the
	// one seen in the maildir, the added message up, the deleted one
	// deleted; no message copied to the maildir again.
	out = offlineimapRun(t, offlineimap, rc)
	if n := countOfflineimap(out); n.toLocal != 0 || n.toRemote != 1 || n.deleted != 1 || len(n.flags) != 2 || n.flags["F"] != len(sc.serverFl) || n.flags["S"] != 1 {
		t.Errorf("second offlineimap run: %+v, want 1 copied to the server, 1 deleted, flags F on %d and S on 1\n%s", n, len(sc.serverFl), out)
	}
	sc.checkBothSides(t, e, folder)

	out = offlineimapRun(t, offlineimap, rc)
	if n := countOfflineimap(out); n.toLocal+n.toRemote+n.deleted+len(n.flags) != 0 {
		t.Errorf("third offlineimap run with nothing changed: %+v\n%s", n, out)
	}
}
