package moxctl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"moxd/internal/ctl"
	"moxd/internal/ipc"
	"moxd/internal/mailproto/mbox"
)

// scriptedMaster serves the control protocol like master: several requests
// per connection, fds in both directions. handle answers each request.
type scriptedMaster struct {
	mu     sync.Mutex
	reqs   []ctl.Request
	handle func(req ctl.Request, files []*os.File, c *ctl.Conn)
}

func (f *scriptedMaster) requests() []ctl.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

func startScripted(t *testing.T, runDir string, handle func(req ctl.Request, files []*os.File, c *ctl.Conn)) *scriptedMaster {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: ctl.SocketPath(runDir), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	f := &scriptedMaster{handle: handle}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			uc, err := ln.AcceptUnix()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := ctl.NewConn(uc)
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				for {
					req, files, err := c.ReadRequest()
					if err != nil {
						return
					}
					f.mu.Lock()
					f.reqs = append(f.reqs, req)
					f.mu.Unlock()
					f.handle(req, files, c)
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return f
}

func respondOK(c *ctl.Conn, data any, files ...*os.File) {
	resp := ctl.Response{OK: true}
	if data != nil {
		resp.Data, _ = json.Marshal(data)
	}
	c.WriteResponse(resp, files...)
}

// runIn runs moxctl with stdin from a file holding input (nil: /dev/null).
func runIn(t *testing.T, stdin *os.File, args ...string) (int, string, string) {
	t.Helper()
	if stdin == nil {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		stdin = f
	}
	var o, e bytes.Buffer
	code := MainIO(args, stdin, &o, &e)
	return code, o.String(), e.String()
}

// fileWith returns a file holding s, at offset 0.
func fileWith(t *testing.T, s string) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "stdin")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(s)
	f.Seek(0, 0)
	t.Cleanup(func() { f.Close() })
	return f
}

func TestAdminCommands(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		stdin   string
		resp    any
		refuse  string
		wantReq ctl.Request
		code    int
		out     []string
		errOut  string
	}{
		{name: "account add with password", args: []string{"account", "add", "jo", "jo@example.org"}, stdin: "s3cret\n", resp: ctl.ChangeResult{},
			wantReq: ctl.Request{Cmd: "account add", Args: []string{"jo", "jo@example.org"}, Secret: "s3cret"}, out: []string{"account jo added"}},
		{name: "account add without password", args: []string{"account", "add", "jo", "jo@example.org", "j@example.org"}, resp: ctl.ChangeResult{},
			wantReq: ctl.Request{Cmd: "account add", Args: []string{"jo", "jo@example.org", "j@example.org"}}, out: []string{"account jo added"}},
		{name: "account add warning", args: []string{"account", "add", "jo", "jo@example.org"}, resp: ctl.ChangeResult{Warning: "store unavailable"},
			wantReq: ctl.Request{Cmd: "account add", Args: []string{"jo", "jo@example.org"}}, code: ExitFailed, errOut: "warning: store unavailable"},
		{name: "account add refused", args: []string{"account", "add", "mjl", "x@example.org"}, refuse: `account "mjl" already exists`,
			wantReq: ctl.Request{Cmd: "account add", Args: []string{"mjl", "x@example.org"}}, code: ExitFailed, errOut: `moxctl: account "mjl" already exists`},
		{name: "account rm", args: []string{"account", "rm", "jo"}, resp: ctl.ChangeResult{},
			wantReq: ctl.Request{Cmd: "account rm", Args: []string{"jo"}}, out: []string{"account jo removed"}},
		{name: "account password from stdin", args: []string{"account", "password", "jo"}, stdin: "n3w\r\n",
			wantReq: ctl.Request{Cmd: "account password", Args: []string{"jo"}, Secret: "n3w"}, out: []string{"password of jo set"}},
		{name: "account list", args: []string{"account", "list"}, resp: ctl.AccountList{Accounts: []ctl.AccountInfo{
			{Name: "mjl", Addresses: []string{"mjl@example.org", "postmaster@example.org"}, Size: 3 << 20, Messages: 12, HasPassword: true, Quota: 1 << 30},
			{Name: "jo", Addresses: []string{"jo@example.org"}, UsageError: "store unavailable"},
		}}, wantReq: ctl.Request{Cmd: "account list"},
			out: []string{"mjl      12        3.0M  1.0G   yes       mjl@example.org postmaster@example.org", "jo       ?         ?     -      ?", "usage not known: store unavailable"}},
		{name: "address add", args: []string{"address", "add", "x@example.org", "jo"}, resp: ctl.ChangeResult{},
			wantReq: ctl.Request{Cmd: "address add", Args: []string{"x@example.org", "jo"}}, out: []string{"address x@example.org added to account jo"}},
		{name: "address move", args: []string{"address", "move", "postmaster@example.org", "jo"}, resp: ctl.ChangeResult{},
			wantReq: ctl.Request{Cmd: "address move", Args: []string{"postmaster@example.org", "jo"}}, out: []string{"moved to account jo"}},
		{name: "address rm", args: []string{"address", "rm", "x@example.org"}, resp: ctl.ChangeResult{},
			wantReq: ctl.Request{Cmd: "address rm", Args: []string{"x@example.org"}}, out: []string{"address x@example.org removed"}},
		{name: "domain add", args: []string{"domain", "add", "new.example", "jo"}, resp: ctl.DomainAdded{Domain: "new.example", Postmaster: "jo", Records: []ctl.DNSRecord{
			{Name: "new.example.", Type: "MX", Value: "10 mail.example.org."},
			{Name: "2026a-ed._domainkey.new.example.", Type: "TXT", Value: `"v=DKIM1; k=ed25519; p=abc"`},
		}}, wantReq: ctl.Request{Cmd: "domain add", Args: []string{"new.example", "jo"}},
			out: []string{"postmaster@new.example goes to account jo", "new.example. IN MX 10 mail.example.org.\n2026a-ed._domainkey.new.example. IN TXT \"v=DKIM1; k=ed25519; p=abc\"\n"}},
		{name: "domain rm refused", args: []string{"domain", "rm", "example.org"}, refuse: `domain "example.org" is still used by mjl@example.org (account mjl)`,
			wantReq: ctl.Request{Cmd: "domain rm", Args: []string{"example.org"}}, code: ExitFailed, errOut: "still used by mjl@example.org"},
		{name: "domain list", args: []string{"domain", "list"}, resp: ctl.DomainList{Domains: []ctl.DomainInfo{{Name: "example.org", Addresses: 2, Selectors: []string{"s1 (ed25519)"}}}},
			wantReq: ctl.Request{Cmd: "domain list"}, out: []string{"example.org  2          s1 (ed25519)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := shortDir(t)
			p := writeConf(t, dir, "")
			fake := startScripted(t, filepath.Join(dir, "run"), func(req ctl.Request, files []*os.File, c *ctl.Conn) {
				if tc.refuse != "" {
					c.WriteResponse(ctl.Response{Error: tc.refuse})
					return
				}
				respondOK(c, tc.resp)
			})
			var stdin *os.File
			if tc.stdin != "" {
				stdin = fileWith(t, tc.stdin)
			}
			code, stdout, stderr := runIn(t, stdin, append([]string{"-f", p}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tc.code, stderr)
			}
			for _, s := range tc.out {
				if !strings.Contains(stdout, s) {
					t.Errorf("output lacks %q:\n%s", s, stdout)
				}
			}
			if tc.errOut != "" && !strings.Contains(stderr, tc.errOut) {
				t.Errorf("stderr %q lacks %q", stderr, tc.errOut)
			}
			if reqs := fake.requests(); len(reqs) != 1 || !reflect.DeepEqual(reqs[0], tc.wantReq) {
				t.Errorf("requests %+v, want [%+v]", reqs, tc.wantReq)
			}
		})
	}
}

func TestAdminUsage(t *testing.T) {
	for _, args := range [][]string{
		{"account"}, {"account", "add", "x"}, {"account", "rm"}, {"account", "list", "x"}, {"account", "password"},
		{"address", "add", "x"}, {"address", "rm"}, {"domain", "add", "x"}, {"domain", "frob"},
		{"import", "mbox", "a", "b"}, {"import", "pst", "a", "b", "c"}, {"export", "mbox", "a"}, {"export", "tar", "a", "b"},
		{"deliver"}, {"backup"}, {"verifydata"}, {"gentestdata"},
	} {
		code, _, stderr := runIn(t, nil, args...)
		if code != ExitUsage || !strings.Contains(stderr, "usage: moxctl") {
			t.Errorf("%q: exit %d, stderr %q", args, code, stderr)
		}
	}
	code, stdout, _ := runIn(t, nil, "help")
	for _, want := range []string{"account password NAME", "import mbox|maildir", "verifydata DIR [-fix]", "exit status: 0 ok, 1 failed"} {
		if code != ExitOK || !strings.Contains(stdout, want) {
			t.Errorf("help lacks %q (exit %d)", want, code)
		}
	}
}

func TestMaildirFileMapping(t *testing.T) {
	keywords := map[byte]string{'a': "$Forwarded", 'b': "todo", 'c': "$label1"}
	mtime := time.Unix(1700000000, 0)
	tests := []struct {
		name     string
		flags    uint8
		keywords []string
		problems int
	}{
		{"new/1700000000.M1P2.host", 0, nil, 0},
		{"cur/1700000000.M1P2.host:2,", 0, nil, 0},
		{"cur/1700000000.M1P2.host:2,S", ipc.FlagSeen, nil, 0},
		{"cur/1700000000.M1P2.host:2,DFPRST", ipc.FlagDraft | ipc.FlagFlagged | ipc.FlagAnswered | ipc.FlagSeen | ipc.FlagDeleted, nil, 0},
		{"cur/x:2,Sac", ipc.FlagSeen, []string{"$Forwarded", "$label1"}, 0},
		{"cur/x:2,Fz", ipc.FlagFlagged, nil, 1},
		{"cur/x:2,S!", 0, nil, 0}, // not a valid info: no flags
	}
	for _, tc := range tests {
		f, problems := maildirFile(tc.name, mtime, keywords)
		if f.Name != tc.name || f.Flags != tc.flags || !slices.Equal(f.Keywords, tc.keywords) || f.Received != 1700000000 || len(problems) != tc.problems {
			t.Errorf("%s: %+v, problems %q", tc.name, f, problems)
		}
	}
}

// writeMaildirFixture writes a maildir with a dovecot-keywords file.
func writeMaildirFixture(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"cur", "new", "tmp"} {
		os.Mkdir(filepath.Join(dir, d), 0o700)
	}
	os.WriteFile(filepath.Join(dir, "dovecot-keywords"), []byte("0 $Forwarded\n1 todo\nbogus line\n"), 0o600)
	for i, name := range []string{"cur/1.a:2,S", "cur/2.b:2,RSa", "cur/3.c:2,Fb", "new/4.d", "new/5.e", "cur/.hidden", "tmp/6.f"} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(fmt.Sprintf("Subject: %d\n\nbody\n", i)), 0o600)
		ts := time.Unix(int64(1700000000+i), 0)
		os.Chtimes(p, ts, ts)
	}
	return dir
}

func TestScanMaildir(t *testing.T) {
	dir := writeMaildirFixture(t)
	entries, problems, err := scanMaildir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, fmt.Sprintf("%s %d %v %d", e.desc.Name, e.desc.Flags, e.desc.Keywords, e.desc.Received))
	}
	want := []string{
		"cur/1.a:2,S 1 [] 1700000000",
		"cur/2.b:2,RSa 3 [$Forwarded] 1700000001",
		"cur/3.c:2,Fb 4 [todo] 1700000002",
		"new/4.d 0 [] 1700000003",
		"new/5.e 0 [] 1700000004",
	}
	if !slices.Equal(got, want) {
		t.Errorf("entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(problems) != 1 || !strings.Contains(problems[0], "dovecot-keywords: offset 20") {
		t.Errorf("problems %q", problems)
	}
	if _, _, err := scanMaildir(t.TempDir()); err == nil || !strings.Contains(err.Error(), "is not a maildir") {
		t.Errorf("empty dir: %v", err)
	}
}

// TestImportMaildir runs "import maildir" against a scripted master: the
// files go in groups of at most four, each fd with its description.
func TestImportMaildir(t *testing.T) {
	dir := shortDir(t)
	p := writeConf(t, dir, "")
	md := writeMaildirFixture(t)
	var mu sync.Mutex
	var contents []string
	fake := startScripted(t, filepath.Join(dir, "run"), func(req ctl.Request, files []*os.File, c *ctl.Conn) {
		switch req.Cmd {
		case "import files":
			for _, f := range files {
				fi, _ := f.Stat()
				b, _ := io.ReadAll(io.NewSectionReader(f, 0, fi.Size()))
				mu.Lock()
				contents = append(contents, string(b))
				mu.Unlock()
				f.Close()
			}
			c.WriteResponse(ctl.Response{OK: true, Progress: &ctl.Progress{Messages: 4}})
			respondOK(c, nil)
		case "import end":
			respondOK(c, ctl.ImportResult{Imported: 5})
		default:
			respondOK(c, nil)
		}
	})
	code, stdout, stderr := runIn(t, nil, "-f", p, "import", "maildir", "mjl", "Old/Mail", md)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "imported 5 messages into Old/Mail of mjl, skipped 0") || !strings.Contains(stdout, "dovecot-keywords: offset 20") {
		t.Errorf("output %q", stdout)
	}
	var cmds []string
	var groups []int
	for _, r := range fake.requests() {
		cmds = append(cmds, r.Cmd)
		if r.Cmd == "import files" {
			groups = append(groups, len(r.Files))
			if r.FDs != len(r.Files) {
				t.Errorf("request says %d fds for %d files", r.FDs, len(r.Files))
			}
		}
	}
	if !slices.Equal(cmds, []string{"import begin", "import files", "import files", "import end"}) || !slices.Equal(groups, []int{4, 1}) {
		t.Errorf("requests %q, groups %v", cmds, groups)
	}
	sort.Strings(contents)
	if len(contents) != 5 || contents[0] != "Subject: 0\n\nbody\n" {
		t.Errorf("store would get %q", contents)
	}
}

func TestWriteMaildirFromExport(t *testing.T) {
	var stream bytes.Buffer
	w := mbox.NewWriter(&stream)
	msgs := []struct {
		flags    mbox.Flags
		keywords []string
		received time.Time
	}{
		{mbox.Flags{Seen: true}, nil, time.Unix(1700000000, 0)},
		{mbox.Flags{Answered: true, Flagged: true}, []string{"todo", "$Forwarded"}, time.Unix(1700000100, 0)},
		{mbox.Flags{}, []string{"Todo"}, time.Unix(1700000200, 0)},
	}
	for i, m := range msgs {
		if err := w.WriteMessage("a@example.org", m.received, m.flags, m.keywords, strings.NewReader(fmt.Sprintf("Subject: %d\r\n\r\nFrom here\r\n", i))); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	dir := filepath.Join(t.TempDir(), "INBOX")
	n, problems, err := writeMaildir(dir, &stream, "host", 42)
	if err != nil || n != 3 || len(problems) != 0 {
		t.Fatalf("writeMaildir: %d, %q, %v", n, problems, err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "cur"))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"1700000000.M0P42.host:2,S", "1700000100.M1P42.host:2,FRab", "1700000200.M2P42.host:2,a"}
	if !slices.Equal(names, want) {
		t.Errorf("files %q, want %q", names, want)
	}
	kw, _ := os.ReadFile(filepath.Join(dir, "dovecot-keywords"))
	if string(kw) != "0 todo\n1 $Forwarded\n" {
		t.Errorf("dovecot-keywords %q", kw)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "cur", want[1]))
	if string(data) != "Subject: 1\n\nFrom here\n" {
		t.Errorf("message %q", data)
	}
	fi, _ := os.Stat(filepath.Join(dir, "cur", want[2]))
	if !fi.ModTime().Equal(time.Unix(1700000200, 0)) {
		t.Errorf("mtime %v", fi.ModTime())
	}
	for _, d := range []string{"new", "tmp"} {
		if fi, err := os.Stat(filepath.Join(dir, d)); err != nil || !fi.IsDir() {
			t.Errorf("%s missing", d)
		}
	}
	// Reading it back as an import gives the same flags and keywords.
	scanned, _, err := scanMaildir(dir)
	if err != nil || len(scanned) != 3 || scanned[1].desc.Flags != ipc.FlagAnswered|ipc.FlagFlagged || !slices.Equal(scanned[1].desc.Keywords, []string{"todo", "$Forwarded"}) {
		t.Errorf("round trip %+v, %v", scanned, err)
	}
}

// TestExport runs "export" against a scripted master passing streams.
func TestExport(t *testing.T) {
	for _, format := range []string{"mbox", "maildir"} {
		t.Run(format, func(t *testing.T) {
			dir := shortDir(t)
			p := writeConf(t, dir, "")
			fake := startScripted(t, filepath.Join(dir, "run"), func(req ctl.Request, files []*os.File, c *ctl.Conn) {
				switch req.Cmd {
				case "mailbox list":
					respondOK(c, ctl.MailboxList{Mailboxes: []string{"INBOX", "Lists/Go", "../escape"}})
				case "export":
					r, w, _ := os.Pipe()
					respondOK(c, struct{}{}, r)
					r.Close()
					s := "From a@example.org Tue Nov 14 22:13:20 2023\nStatus: RO\nSubject: " + req.Args[1] + "\n\nbody\n\n"
					w.WriteString(s)
					w.Close()
					respondOK(c, ctl.ExportResult{Messages: 1, Bytes: uint64(len(s))})
				}
			})
			out := filepath.Join(dir, "out")
			code, stdout, stderr := runIn(t, nil, "-f", p, "export", format, "mjl", out)
			if code != ExitFailed || !strings.Contains(stderr, `mailbox "../escape" cannot be written`) {
				t.Errorf("exit %d, stderr %q", code, stderr)
			}
			if !strings.Contains(stdout, "INBOX: 1 messages") || !strings.Contains(stdout, "Lists/Go: 1 messages") {
				t.Errorf("output %q", stdout)
			}
			if format == "mbox" {
				b, err := os.ReadFile(filepath.Join(out, "Lists", "Go.mbox"))
				if err != nil || !strings.Contains(string(b), "Subject: Lists/Go") {
					t.Errorf("Lists/Go.mbox: %q, %v", b, err)
				}
			} else {
				entries, err := os.ReadDir(filepath.Join(out, "Lists", "Go", "cur"))
				if err != nil || len(entries) != 1 || !strings.HasSuffix(entries[0].Name(), ":2,S") {
					t.Errorf("maildir Lists/Go: %v, %v", entries, err)
				}
			}
			if n := len(fake.requests()); n != 3 {
				t.Errorf("%d requests", n)
			}
			// A non-empty directory is refused before anything is asked.
			code, _, stderr = runIn(t, nil, "-f", p, "export", format, "mjl", out, "INBOX")
			if code != ExitFailed || !strings.Contains(stderr, "is not empty") {
				t.Errorf("exit %d, %q", code, stderr)
			}
		})
	}
}

// TestMessageFile: stdin that is a pipe becomes an unlinked temporary file
// with the message; a regular stdin is passed as is.
func TestMessageFile(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	const msg = "Subject: hi\r\n\r\nhello\r\n"
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() { w.WriteString(msg); w.Close() }()
	f, err := messageFile(r)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 || fi.Size() != int64(len(msg)) {
		t.Fatalf("temp file %v %v", fi, err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Nlink != 0 {
		t.Errorf("temporary file has %d links, want it unlinked", st.Nlink)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("left in TMPDIR: %v", entries)
	}
	b, _ := io.ReadAll(io.NewSectionReader(f, 0, fi.Size()))
	if string(b) != msg {
		t.Errorf("content %q", b)
	}

	reg := fileWith(t, msg)
	g, err := messageFile(reg)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	a, _ := reg.Stat()
	bfi, _ := g.Stat()
	if !os.SameFile(a, bfi) {
		t.Errorf("regular stdin was copied")
	}
}

// TestDeliver runs "deliver" with a pipe as stdin against a scripted
// master, which gets a regular file.
func TestDeliver(t *testing.T) {
	dir := shortDir(t)
	p := writeConf(t, dir, "")
	var got string
	fake := startScripted(t, filepath.Join(dir, "run"), func(req ctl.Request, files []*os.File, c *ctl.Conn) {
		fi, _ := files[0].Stat()
		if fi.Mode().IsRegular() {
			b, _ := io.ReadAll(io.NewSectionReader(files[0], 0, fi.Size()))
			got = string(b)
		}
		files[0].Close()
		respondOK(c, ctl.Delivered{Account: "mjl", Mailbox: "INBOX", UID: 3})
	})
	r, w, _ := os.Pipe()
	go func() { w.WriteString("Subject: x\r\n\r\n"); w.Close() }()
	defer r.Close()
	code, stdout, stderr := runIn(t, r, "-f", p, "deliver", "mjl@example.org")
	if code != ExitOK || !strings.Contains(stdout, "delivered to account mjl, mailbox INBOX, uid 3") {
		t.Errorf("exit %d, %q %q", code, stdout, stderr)
	}
	if got != "Subject: x\r\n\r\n" {
		t.Errorf("master got %q", got)
	}
	if reqs := fake.requests(); len(reqs) != 1 || reqs[0].FDs != 1 || !slices.Equal(reqs[0].Args, []string{"mjl@example.org"}) {
		t.Errorf("requests %+v", reqs)
	}
}

func TestAccountsDir(t *testing.T) {
	dir := t.TempDir()
	if _, err := accountsDir(dir); err == nil || !strings.Contains(err.Error(), "neither store/accounts nor accounts") {
		t.Errorf("empty dir: %v", err)
	}
	os.MkdirAll(filepath.Join(dir, "accounts"), 0o700)
	if got, err := accountsDir(dir); err != nil || got != filepath.Join(dir, "accounts") {
		t.Errorf("store dir: %q %v", got, err)
	}
	os.MkdirAll(filepath.Join(dir, "store", "accounts"), 0o700)
	if got, err := accountsDir(dir); err != nil || got != filepath.Join(dir, "store", "accounts") {
		t.Errorf("data dir: %q %v", got, err)
	}
}

func TestGenTestData(t *testing.T) {
	dir := t.TempDir()
	var log bytes.Buffer
	sum, err := genTestData(dir, &log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sum, "wrote 2 accounts") || !strings.Contains(sum, "a queue with 4 messages") {
		t.Errorf("summary %q", sum)
	}
	for _, a := range testdataAccounts {
		if _, err := os.Stat(filepath.Join(dir, "store", "accounts", a, "index.db")); err != nil {
			t.Errorf("account %s: %v", a, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "queue", "queue.db")); err != nil {
		t.Errorf("queue: %v", err)
	}
	// Deterministic: a second run writes the same report.
	var log2 bytes.Buffer
	if _, err := genTestData(t.TempDir(), &log2); err != nil || log.String() != log2.String() {
		t.Errorf("second run differs: %q vs %q (%v)", log.String(), log2.String(), err)
	}
}

// TestVerifyData checks generated data (clean), then the same data with a
// message file gone. It runs the subcommand verifydata runs as the store
// user; re-executing as that user is in the integration tests.
func TestVerifyData(t *testing.T) {
	dir := t.TempDir()
	if _, err := genTestData(dir, io.Discard); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runIn(t, nil, verifyChild, dir)
	if code != ExitOK || !strings.Contains(stdout, "2 accounts checked") || !strings.Contains(stdout, ", 0 problems") {
		t.Fatalf("clean data: exit %d\n%s%s", code, stdout, stderr)
	}
	var victim string
	filepath.WalkDir(filepath.Join(dir, "store", "accounts", "bob", "msg"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && victim == "" {
			victim = p
		}
		return nil
	})
	if victim == "" {
		t.Fatal("no message file found")
	}
	os.Remove(victim)
	code, stdout, _ = runIn(t, nil, verifyChild, dir)
	if code != ExitFailed || !strings.Contains(stdout, "account bob: ") || strings.Contains(stdout, "account alice: ") {
		t.Errorf("damaged data: exit %d\n%s", code, stdout)
	}
}

// TestVerifyQueue checks the generated queue (clean), then with a message
// file gone and a file of a transaction that never committed, which -fix
// removes while the missing file stays a problem. It runs the subcommand
// verifydata runs as the queue user.
func TestVerifyQueue(t *testing.T) {
	dir := t.TempDir()
	if _, err := genTestData(dir, io.Discard); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runIn(t, nil, verifyQueueChild, dir)
	if code != ExitOK || !strings.Contains(stdout, "queue checked in "+filepath.Join(dir, "queue")+", 0 problems") {
		t.Fatalf("clean data: exit %d\n%s%s", code, stdout, stderr)
	}
	os.Remove(filepath.Join(dir, "queue", "msg", "0000", "2"))
	os.WriteFile(filepath.Join(dir, "queue", "msg", "0000", "ff"), []byte("x"), 0o600)
	code, stdout, _ = runIn(t, nil, verifyQueueChild, filepath.Join(dir, "queue"), "-fix")
	if code != ExitFailed || !strings.Contains(stdout, "queue: message 2: message file: ") || !strings.Contains(stdout, "queue: file 0000/ff: at or above nextfile 5 (left by a transaction that did not commit) (fixed)") || !strings.Contains(stdout, "2 problems") {
		t.Errorf("damaged data: exit %d\n%s", code, stdout)
	}
	code, stdout, _ = runIn(t, nil, verifyQueueChild, dir)
	if code != ExitFailed || !strings.Contains(stdout, ", 1 problems") {
		t.Errorf("after -fix: exit %d\n%s", code, stdout)
	}
	if code, _, stderr := runIn(t, nil, verifyQueueChild, t.TempDir()); code != ExitFailed || !strings.Contains(stderr, "has no queue") {
		t.Errorf("directory without queue: exit %d\n%s", code, stderr)
	}
}
