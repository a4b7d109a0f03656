package master

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"moxd/internal/config"
	"moxd/internal/ctl"
	"moxd/internal/ipc"
)

// fakeRole answers a role's side of a channel to master with handle and
// records the requests and events it got.
type fakeRole struct {
	mu     sync.Mutex
	msgs   []ipc.Message
	handle func(req *ipc.Request) (ipc.Message, []*os.File, error)
	conn   *ipc.Conn // the role's end
}

func (f *fakeRole) got() []ipc.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.msgs)
}

// gotType returns the recorded messages of type T.
func gotType[T ipc.Message](f *fakeRole) []T {
	var l []T
	for _, m := range f.got() {
		if x, ok := m.(T); ok {
			l = append(l, x)
		}
	}
	return l
}

type testMaster struct {
	*Master
	dir     string
	logBuf  *syncBuf
	store   *fakeRole
	keys    *fakeRole
	queue   *fakeRole // connected by the tests that need it
	domains string    // path of domains.conf
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const testDomains = `[[domain]]
name = "example.com"
[[domain.dkim]]
selector = "s1"
algorithm = "ed25519"

[[account]]
name = "mjl"
addresses = ["mjl@example.com", "postmaster@example.com"]

[[account]]
name = "jo"
addresses = ["jo@example.com"]
quota = "1G"
`

// newTestMaster runs a Master's loop over a configuration in a new
// directory, with fake store and keys roles on real ipc channels. A nil
// handler leaves the role down.
func newTestMaster(t *testing.T, storeHandler, keysHandler func(req *ipc.Request) (ipc.Message, []*os.File, error)) *testMaster {
	t.Helper()
	dir, err := os.MkdirTemp("", "moxd-master-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	conf := filepath.Join(dir, "moxd.conf")
	var users strings.Builder
	for i, r := range config.RoleNames() {
		fmt.Fprintf(&users, "%s = \"%d:%d\"\n", r, 64500+i, 64500+i)
	}
	confText := fmt.Sprintf("hostname = \"mail.example.com\"\ndata_dir = %q\nrun_dir = %q\nlocalserve = true\n[dns]\noffline = true\n[users]\n%s", filepath.Join(dir, "data"), filepath.Join(dir, "run"), users.String())
	if err := os.WriteFile(conf, []byte(confText), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "domains.conf"), []byte(testDomains), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"data", "data/keys", "run"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Load(conf)
	if err != nil {
		t.Fatal(err)
	}
	logBuf := &syncBuf{}
	m := &Master{
		log:      slog.New(slog.NewTextHandler(logBuf, &slog.HandlerOptions{Level: slog.LevelDebug - 4})),
		cfg:      cfg,
		procs:    map[ipc.Role]*proc{},
		loop:     make(chan func(), 16),
		stopped:  make(chan struct{}),
		levels:   map[ipc.Role]slog.Level{},
		progress: map[uint64]func(ipc.Progress){},
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case f := <-m.loop:
				f()
			case <-done:
				return
			}
		}
	}()
	t.Cleanup(func() { close(done) })
	for _, r := range ipc.WorkerRoles() {
		p := &proc{role: r, user: cfg.Users[r.String()]}
		m.procs[r] = p
		m.updateSlice(p, cfg)
	}
	tm := &testMaster{Master: m, dir: dir, logBuf: logBuf, domains: cfg.DomainsPath}
	tm.store = tm.connect(t, ipc.RoleStore, storeHandler)
	tm.keys = tm.connect(t, ipc.RoleKeys, keysHandler)
	return tm
}

// connect gives master a fake role r on a real ipc channel, ready; a nil
// handler leaves the role down.
func (tm *testMaster) connect(t *testing.T, r ipc.Role, h func(req *ipc.Request) (ipc.Message, []*os.File, error)) *fakeRole {
	t.Helper()
	m := tm.Master
	if h == nil {
		return nil
	}
	ours, theirs, err := ipc.Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	p := m.procs[r]
	p.gen = 1
	mc, err := ipc.New(ours, ipc.Options{Local: ipc.RoleMaster, Peer: r, Handler: m.ctlHandler(p, 1)})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRole{handle: h}
	rc, err := ipc.New(theirs, ipc.Options{Local: r, Peer: ipc.RoleMaster, Handler: ipc.HandlerFunc(func(ctx context.Context, req *ipc.Request) (ipc.Message, []*os.File, error) {
		f.mu.Lock()
		f.msgs = append(f.msgs, req.Msg)
		f.mu.Unlock()
		if req.Event {
			return nil, nil, nil
		}
		return f.handle(req)
	})})
	if err != nil {
		t.Fatal(err)
	}
	f.conn = rc
	p.conn = mc
	p.state = stateReady
	p.provisioned = true
	t.Cleanup(func() { mc.Close(); rc.Close() })
	return f
}

// ackStore answers every store administration request with success.
func ackStore(req *ipc.Request) (ipc.Message, []*os.File, error) {
	for _, f := range req.Files {
		f.Close()
	}
	switch m := req.Msg.(type) {
	case *ipc.AccountUsage:
		return &ipc.AccountUsageReply{Size: 1234, Messages: 5, Mailboxes: 6, HasPassword: m.Account == "mjl"}, nil, nil
	case *ipc.ImportEnd:
		return &ipc.ImportResult{Imported: 3}, nil, nil
	}
	return &ipc.Ack{}, nil, nil
}

// keysFake answers keys' provisioning and DKIM requests.
func keysFake(req *ipc.Request) (ipc.Message, []*os.File, error) {
	switch m := req.Msg.(type) {
	case *ipc.EnsureDKIM:
		rec := "v=DKIM1; k=ed25519; p=" + strings.Repeat("E", 44)
		if m.Algorithm == "rsa2048" {
			rec = "v=DKIM1; k=rsa; p=" + strings.Repeat("R", 392)
		}
		return &ipc.DKIMPublic{Domain: m.Domain, Selector: m.Selector, Algorithm: m.Algorithm, Record: rec}, nil, nil
	}
	return &ipc.Ack{}, nil, nil
}

func (tm *testMaster) auditLines(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(tm.dir, "data", AuditLogName))
	if err != nil {
		t.Fatalf("audit log: %v", err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// session returns a control session as a connection from this process
// would get, for calling handle directly.
func (tm *testMaster) session(t *testing.T) (*ctlSession, *ctl.Conn) {
	t.Helper()
	a, b, err := unixPair()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return &ctlSession{m: tm.Master, c: ctl.NewConn(a), uid: uint32(os.Getuid())}, ctl.NewConn(b)
}

// unixPair returns a connected pair of unix stream sockets.
func unixPair() (*net.UnixConn, *net.UnixConn, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	conv := func(fd int) (*net.UnixConn, error) {
		f := os.NewFile(uintptr(fd), "ctl")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			return nil, err
		}
		return c.(*net.UnixConn), nil
	}
	a, err := conv(fds[0])
	if err != nil {
		return nil, nil, err
	}
	b, err := conv(fds[1])
	return a, b, err
}

// call runs one request through a session and decodes the answer.
func (tm *testMaster) call(t *testing.T, req ctl.Request, v any) error {
	t.Helper()
	s, peer := tm.session(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if !s.handle(req, nil) {
			s.respond(nil, fmt.Errorf("unknown command %q", req.Cmd))
		}
	}()
	peer.SetDeadline(time.Now().Add(30 * time.Second))
	cl := &ctl.Client{Conn: peer}
	files, err := cl.Next(v)
	closeAll(files)
	<-done
	return err
}

func TestAccountAddPassword(t *testing.T) {
	const password = "s3cret-Pa55word!"
	notFoundOnce := true
	var mu sync.Mutex
	tm := newTestMaster(t, func(req *ipc.Request) (ipc.Message, []*os.File, error) {
		if _, ok := req.Msg.(*ipc.AccountPassword); ok {
			mu.Lock()
			defer mu.Unlock()
			// A new account takes store a moment: master retries.
			if notFoundOnce {
				notFoundOnce = false
				return nil, nil, ipc.Errorf(ipc.CodeNotFound, "no account")
			}
		}
		return ackStore(req)
	}, nil)

	var res ctl.ChangeResult
	err := tm.call(t, ctl.Request{Cmd: "account add", Args: []string{"new", "new@example.com"}, Secret: password}, &res)
	if err != nil || res.Warning != "" {
		t.Fatalf("account add: %v, %+v", err, res)
	}
	// domains.conf has the account and loads; master runs with it.
	c, err := config.Load(tm.cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	if i := c.Dynamic.FindAccount("new"); i < 0 || !slices.Equal(c.Dynamic.Accounts[i].Addresses, []string{"new@example.com"}) {
		t.Errorf("domains.conf accounts %+v", c.Dynamic.Accounts)
	}
	if tm.config().DynamicHash != c.DynamicHash || tm.config().Dynamic.FindAccount("new") < 0 {
		t.Errorf("master does not run with the written domains.conf")
	}
	// Store got the new slice (a Reload event, and the slice has the account) and the password.
	if len(gotType[*ipc.Reload](tm.store)) == 0 {
		t.Errorf("store got no Reload event")
	}
	if !strings.Contains(string(*tm.procs[ipc.RoleStore].slice.Load()), `"name":"new"`) {
		t.Errorf("store's slice lacks the account: %s", *tm.procs[ipc.RoleStore].slice.Load())
	}
	pws := gotType[*ipc.AccountPassword](tm.store)
	if len(pws) != 2 || pws[1].Account != "new" || pws[1].Password != password {
		t.Errorf("password requests %+v", pws)
	}
	lines := tm.auditLines(t)
	if len(lines) != 1 || !strings.Contains(lines[0], ` cmd="account add" args=["new","new@example.com"] result="ok"`) || !strings.Contains(lines[0], fmt.Sprintf(" uid=%d ", os.Getuid())) {
		t.Errorf("audit log %q", lines)
	}
	if _, err := time.Parse(time.RFC3339, strings.Fields(lines[0])[0]); err != nil {
		t.Errorf("audit line does not start with an RFC 3339 time: %v", err)
	}
	fi, err := os.Stat(filepath.Join(tm.dir, "data", AuditLogName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("audit log mode %v, %v", fi.Mode(), err)
	}

	// account password: same rules.
	if err := tm.call(t, ctl.Request{Cmd: "account password", Args: []string{"MJL"}, Secret: password + "2"}, nil); err != nil {
		t.Fatalf("account password: %v", err)
	}
	if err := tm.call(t, ctl.Request{Cmd: "account password", Args: []string{"nobody"}, Secret: password}, nil); err == nil || !strings.Contains(err.Error(), `no account "nobody"`) {
		t.Errorf("password of unknown account: %v", err)
	}
	if err := tm.call(t, ctl.Request{Cmd: "account password", Args: []string{"mjl"}}, nil); err == nil || !strings.Contains(err.Error(), "empty password") {
		t.Errorf("empty password: %v", err)
	}
	lines = tm.auditLines(t)
	if len(lines) != 4 || !strings.Contains(lines[1], `cmd="account password" args=["MJL"] result="ok"`) || !strings.Contains(lines[2], `result="failed: no account \"nobody\""`) {
		t.Errorf("audit log %q", lines)
	}
	// The password is in neither the audit log nor master's log.
	audit, _ := os.ReadFile(filepath.Join(tm.dir, "data", AuditLogName))
	for what, text := range map[string]string{"audit log": string(audit), "master log": tm.logBuf.String()} {
		if strings.Contains(text, password) {
			t.Errorf("%s contains the password:\n%s", what, text)
		}
	}
}

func TestConfigCommands(t *testing.T) {
	tests := []struct {
		name     string
		req      ctl.Request
		wantErr  string
		wantConf func(d *config.Dynamic) bool
	}{
		{"address add", ctl.Request{Cmd: "address add", Args: []string{"x@example.com", "jo"}}, "", func(d *config.Dynamic) bool {
			i, _, ok := d.AddressOwner("x@example.com")
			return ok && d.Accounts[i].Name == "jo"
		}},
		{"address add owned", ctl.Request{Cmd: "address add", Args: []string{"mjl@example.com", "jo"}}, `address "mjl@example.com" already belongs to account "mjl"`, nil},
		{"address rm", ctl.Request{Cmd: "address rm", Args: []string{"jo@example.com"}}, "", func(d *config.Dynamic) bool {
			_, _, ok := d.AddressOwner("jo@example.com")
			return !ok
		}},
		{"address rm postmaster", ctl.Request{Cmd: "address rm", Args: []string{"postmaster@example.com"}}, "postmaster address of its domain", nil},
		{"address move", ctl.Request{Cmd: "address move", Args: []string{"postmaster@example.com", "jo"}}, "", func(d *config.Dynamic) bool {
			i, _, ok := d.AddressOwner("postmaster@example.com")
			return ok && d.Accounts[i].Name == "jo"
		}},
		{"account add duplicate", ctl.Request{Cmd: "account add", Args: []string{"JO", "other@example.com"}}, `account "jo" already exists`, nil},
		{"account add usage", ctl.Request{Cmd: "account add", Args: []string{"x"}}, "usage: account add NAME ADDRESS...", nil},
		{"domain rm used", ctl.Request{Cmd: "domain rm", Args: []string{"example.com"}}, "still used by mjl@example.com (account mjl), jo@example.com (account jo)", nil},
		{"domain rm unknown", ctl.Request{Cmd: "domain rm", Args: []string{"example.net"}}, `no domain "example.net"`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tm := newTestMaster(t, ackStore, nil)
			before, _ := os.ReadFile(tm.domains)
			err := tm.call(t, tc.req, nil)
			if strings.HasPrefix(tc.wantErr, "usage:") {
				// Nothing was tried, so nothing is audited.
				if _, err := os.Stat(filepath.Join(tm.dir, "data", AuditLogName)); err == nil {
					t.Errorf("usage error audited")
				}
			} else if lines := tm.auditLines(t); len(lines) != 1 || !strings.Contains(lines[0], fmt.Sprintf(" cmd=%q ", tc.req.Cmd)) {
				t.Errorf("audit log %q", lines)
			}
			after, _ := os.ReadFile(tm.domains)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want error with %q", err, tc.wantErr)
				}
				if !bytes.Equal(before, after) {
					t.Errorf("domains.conf changed by a refused command")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c, err := config.Load(tm.cfg.Path)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.wantConf(&c.Dynamic) {
				t.Errorf("domains.conf after %s: %+v", tc.name, c.Dynamic)
			}
			if lines := tm.auditLines(t); !strings.HasSuffix(lines[0], `result="ok"`) {
				t.Errorf("audit line %q", lines[0])
			}
			// The previous version is kept.
			if prev, err := os.ReadFile(tm.domains + ".1"); err != nil || !bytes.Equal(prev, before) {
				t.Errorf("previous version not kept: %v", err)
			}
		})
	}
}

// TestHandEditRefused: a domains.conf edited by hand since master loaded
// it is never overwritten; the admin is told to reload.
func TestHandEditRefused(t *testing.T) {
	tm := newTestMaster(t, ackStore, nil)
	edited := testDomains + "\n# edited by hand\n"
	if err := os.WriteFile(tm.domains, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	err := tm.call(t, ctl.Request{Cmd: "account add", Args: []string{"new", "new@example.com"}}, nil)
	if err == nil || !strings.Contains(err.Error(), `run "moxctl reload"`) {
		t.Fatalf("got %v, want the reload hint", err)
	}
	if b, _ := os.ReadFile(tm.domains); string(b) != edited {
		t.Errorf("hand edit overwritten")
	}
	// After a reload the change goes through.
	if _, err := tm.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := tm.call(t, ctl.Request{Cmd: "account add", Args: []string{"new", "new@example.com"}}, nil); err != nil {
		t.Fatalf("after reload: %v", err)
	}
}

func TestAccountRemoveTwoPhase(t *testing.T) {
	tests := []struct {
		name      string
		prepare   func(tm *testMaster) error // store's answer to Prepare
		wantErr   string
		wantPhase []uint8
		removed   bool
	}{
		{"ok", nil, "", []uint8{ipc.RemovePrepare, ipc.RemoveFinish}, true},
		{"store refuses prepare", func(*testMaster) error { return ipc.Errorf(ipc.CodeFailed, "disk on fire") },
			"store: disk on fire; account jo not removed", []uint8{ipc.RemovePrepare}, false},
		{"write fails", func(tm *testMaster) error {
			// A hand edit lands between the check and the write.
			return os.WriteFile(tm.domains, []byte(testDomains+"# edit\n"), 0o644)
		}, `run "moxctl reload"`, []uint8{ipc.RemovePrepare, ipc.RemoveCancel}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var tmp atomic.Pointer[testMaster] // set before any request
			tm := newTestMaster(t, func(req *ipc.Request) (ipc.Message, []*os.File, error) {
				if r, ok := req.Msg.(*ipc.AccountRemove); ok && r.Phase == ipc.RemovePrepare && tc.prepare != nil {
					if err := tc.prepare(tmp.Load()); err != nil {
						return nil, nil, err
					}
				}
				return ackStore(req)
			}, nil)
			tmp.Store(tm)
			err := tm.call(t, ctl.Request{Cmd: "account rm", Args: []string{"jo"}}, nil)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("got error %v, want %q", err, tc.wantErr)
			}
			var phases []uint8
			for _, r := range gotType[*ipc.AccountRemove](tm.store) {
				if r.Account != "jo" {
					t.Errorf("removal of %q", r.Account)
				}
				phases = append(phases, r.Phase)
			}
			if !slices.Equal(phases, tc.wantPhase) {
				t.Errorf("phases %v, want %v", phases, tc.wantPhase)
			}
			b, _ := os.ReadFile(tm.domains)
			d, _ := config.ParseDynamic("domains.conf", b)
			if gone := d == nil || d.FindAccount("jo") < 0; gone != tc.removed {
				t.Errorf("account removed from domains.conf: %v, want %v", gone, tc.removed)
			}
			lines := tm.auditLines(t)
			if len(lines) != 1 || !strings.Contains(lines[0], `cmd="account rm" args=["jo"]`) {
				t.Errorf("audit %q", lines)
			}
		})
	}
	// Removing the postmaster's account is refused before store is asked.
	tm := newTestMaster(t, ackStore, nil)
	if err := tm.call(t, ctl.Request{Cmd: "account rm", Args: []string{"mjl"}}, nil); err == nil || !strings.Contains(err.Error(), "postmaster") {
		t.Errorf("removing the postmaster's account: %v", err)
	}
	if n := len(gotType[*ipc.AccountRemove](tm.store)); n != 0 {
		t.Errorf("store asked %d times", n)
	}
}

func TestAccountList(t *testing.T) {
	var l ctl.AccountList
	tm := newTestMaster(t, ackStore, nil)
	if err := tm.call(t, ctl.Request{Cmd: "account list"}, &l); err != nil {
		t.Fatal(err)
	}
	want := []ctl.AccountInfo{
		{Name: "mjl", Addresses: []string{"mjl@example.com", "postmaster@example.com"}, Size: 1234, Messages: 5, Mailboxes: 6, HasPassword: true},
		{Name: "jo", Addresses: []string{"jo@example.com"}, Quota: 1 << 30, Size: 1234, Messages: 5, Mailboxes: 6},
	}
	if fmt.Sprint(l.Accounts) != fmt.Sprint(want) {
		t.Errorf("accounts %+v\nwant %+v", l.Accounts, want)
	}
	// With store down, the configured accounts are still listed.
	tm = newTestMaster(t, nil, nil)
	if err := tm.call(t, ctl.Request{Cmd: "account list"}, &l); err != nil {
		t.Fatal(err)
	}
	if len(l.Accounts) != 2 || l.Accounts[0].UsageError != "store unavailable" {
		t.Errorf("accounts with store down: %+v", l.Accounts)
	}
}

func TestDomainAdd(t *testing.T) {
	tm := newTestMaster(t, ackStore, keysFake)
	var res ctl.DomainAdded
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	s, peer := tm.session(t)
	go func() {
		v, err := s.audited(ctl.Request{Cmd: "domain add", Args: []string{"New.Example", "jo"}}, func() (any, error) { return tm.domainAdd("New.Example", "jo", now) })
		s.respond(v, err)
	}()
	peer.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := (&ctl.Client{Conn: peer}).Next(&res); err != nil {
		t.Fatal(err)
	}
	if res.Domain != "new.example" || res.Postmaster != "jo" || res.Warning != "" {
		t.Errorf("result %+v", res)
	}
	var lines []string
	for _, r := range res.Records {
		lines = append(lines, r.ZoneLine())
	}
	want := []string{
		`new.example. IN MX 10 mail.example.com.`,
		`new.example. IN TXT "v=spf1 mx -all"`,
		`_dmarc.new.example. IN TXT "v=DMARC1;p=reject;rua=mailto:postmaster@new.example"`,
		`2026a-ed._domainkey.new.example. IN TXT "v=DKIM1; k=ed25519; p=` + strings.Repeat("E", 44) + `"`,
	}
	if len(lines) != 5 || !slices.Equal(lines[:4], want) {
		t.Fatalf("records:\n%s", strings.Join(lines, "\n"))
	}
	// The RSA record is longer than one TXT string may be.
	rsa := lines[4]
	if !strings.HasPrefix(rsa, `2026a-rsa._domainkey.new.example. IN TXT "v=DKIM1; k=rsa; p=`) || !strings.Contains(rsa, `" "`) {
		t.Errorf("rsa record %s", rsa)
	}
	for _, part := range strings.Split(strings.TrimPrefix(rsa, "2026a-rsa._domainkey.new.example. IN TXT "), " ") {
		if len(strings.Trim(part, `"`)) > 255 {
			t.Errorf("TXT string of %d bytes", len(part))
		}
	}
	// domains.conf has the domain, its selectors and its postmaster.
	c, err := config.Load(tm.cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	i := c.Dynamic.FindDomain("new.example")
	if i < 0 || fmt.Sprint(c.Dynamic.Domains[i].DKIM) != "[{2026a-ed ed25519} {2026a-rsa rsa2048}]" {
		t.Errorf("domains %+v", c.Dynamic.Domains)
	}
	if a, _, ok := c.Dynamic.AddressOwner("postmaster@new.example"); !ok || c.Dynamic.Accounts[a].Name != "jo" {
		t.Errorf("postmaster not added")
	}
	// Keys was asked for the keys.
	var sels []string
	for _, e := range gotType[*ipc.EnsureDKIM](tm.keys) {
		if e.Domain == "new.example" {
			sels = append(sels, e.Selector+"/"+e.Algorithm)
		}
	}
	if !slices.Contains(sels, "2026a-ed/ed25519") || !slices.Contains(sels, "2026a-rsa/rsa2048") {
		t.Errorf("EnsureDKIM %q", sels)
	}
	if l := tm.auditLines(t); len(l) != 1 || !strings.Contains(l[0], `cmd="domain add" args=["New.Example","jo"] result="ok"`) {
		t.Errorf("audit %q", l)
	}

	// domain list shows it; domain rm removes it with its postmaster.
	var dl ctl.DomainList
	if err := tm.call(t, ctl.Request{Cmd: "domain list"}, &dl); err != nil || len(dl.Domains) != 2 || dl.Domains[1].Name != "new.example" || dl.Domains[1].Addresses != 1 {
		t.Errorf("domain list %+v, %v", dl, err)
	}
	if err := tm.call(t, ctl.Request{Cmd: "domain rm", Args: []string{"new.example"}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := tm.config().Dynamic.AddressOwner("postmaster@new.example"); ok || tm.config().Dynamic.FindDomain("new.example") >= 0 {
		t.Errorf("domain not removed")
	}
}

// dialControl runs master's side of a control connection and returns the
// client side.
func (tm *testMaster) dialControl(t *testing.T) *ctl.Client {
	t.Helper()
	a, b, err := unixPair()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		tm.controlConn(a, -1)
	}()
	cl := &ctl.Client{Conn: ctl.NewConn(b)}
	cl.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() {
		cl.Close()
		<-done
	})
	return cl
}

// pipeEnds returns a pipe, closed when the test ends.
func pipeEnds(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// writeEndClosed reports, once the caller closed its copy of the write end,
// whether every other copy is closed too: the read end sees EOF.
func writeEndClosed(t *testing.T, r *os.File) bool {
	t.Helper()
	r.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := r.Read(make([]byte, 1))
	return err == io.EOF
}

func TestControlFDs(t *testing.T) {
	var mu sync.Mutex
	var delivered string
	tm := newTestMaster(t, func(req *ipc.Request) (ipc.Message, []*os.File, error) {
		if m, ok := req.Msg.(*ipc.LocalDeliver); ok {
			// As store does: from the start, whatever the offset.
			fi, _ := req.Files[0].Stat()
			b, _ := io.ReadAll(io.NewSectionReader(req.Files[0], 0, fi.Size()))
			req.Files[0].Close()
			mu.Lock()
			delivered = m.Address + ": " + string(b)
			mu.Unlock()
			return &ipc.LocalDelivered{Account: "mjl", Mailbox: "INBOX", UID: 7}, nil, nil
		}
		return ackStore(req)
	}, nil)

	tests := []struct {
		name    string
		req     ctl.Request
		nfd     int
		wantErr string
	}{
		{"fds to a command without", ctl.Request{Cmd: "domain list"}, 1, `command "domain list" takes no file descriptors, 1 were passed (closed)`},
		{"too many for deliver", ctl.Request{Cmd: "deliver", Args: []string{"mjl@example.com"}}, 2, `command "deliver" takes 1 to 1 file descriptors, 2 were passed (closed)`},
		{"none for deliver", ctl.Request{Cmd: "deliver", Args: []string{"mjl@example.com"}}, 0, `command "deliver" takes 1 to 1 file descriptors, 0 were passed`},
		{"import files without description", ctl.Request{Cmd: "import files"}, 1, `describes 0 files but passed 1 file descriptors (closed)`},
		{"pipe for deliver", ctl.Request{Cmd: "deliver", Args: []string{"mjl@example.com"}}, 1, "passed file is not a regular file"},
	}
	cl := tm.dialControl(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var files []*os.File
			var readers []*os.File
			for range tc.nfd {
				r, w := pipeEnds(t)
				files = append(files, w)
				readers = append(readers, r)
			}
			_, err := cl.Call(tc.req, files, nil)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want %q", err, tc.wantErr)
			}
			for i, w := range files {
				w.Close()
				if !writeEndClosed(t, readers[i]) {
					t.Errorf("master kept fd %d open", i)
				}
			}
		})
	}

	// A regular file is delivered; master closes its copy.
	f, err := os.CreateTemp(t.TempDir(), "msg")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("Subject: hi\r\n\r\nbody\r\n")
	var d ctl.Delivered
	if _, err := cl.Call(ctl.Request{Cmd: "deliver", Args: []string{"mjl@example.com"}}, []*os.File{f}, &d); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if d != (ctl.Delivered{Account: "mjl", Mailbox: "INBOX", UID: 7}) {
		t.Errorf("delivered %+v", d)
	}
	mu.Lock()
	if delivered != "mjl@example.com: Subject: hi\r\n\r\nbody\r\n" {
		t.Errorf("store got %q", delivered)
	}
	mu.Unlock()
	if l := tm.auditLines(t); !strings.Contains(l[len(l)-1], `cmd="deliver" args=["mjl@example.com"] result="ok"`) {
		t.Errorf("audit %q", l)
	}
}

func TestImportRelay(t *testing.T) {
	tm := newTestMaster(t, func(req *ipc.Request) (ipc.Message, []*os.File, error) {
		switch m := req.Msg.(type) {
		case *ipc.ImportFiles:
			for _, f := range req.Files {
				f.Close()
			}
			req.Conn.Notify(&ipc.Progress{Job: m.Job, Messages: uint64(len(m.Files)), Bytes: 100})
			// Let the progress event arrive before the answer.
			time.Sleep(50 * time.Millisecond)
			return &ipc.Ack{}, nil, nil
		case *ipc.ImportEnd:
			return &ipc.ImportResult{Imported: 2, Skipped: 1, Problems: []ipc.ImportProblem{{Where: "cur/3", Reason: "no header"}}}, nil, nil
		}
		return ackStore(req)
	}, nil)

	cl := tm.dialControl(t)
	var progress []ctl.Progress
	cl.OnProgress = func(p ctl.Progress) { progress = append(progress, p) }
	if _, err := cl.Call(ctl.Request{Cmd: "import files"}, nil, nil); err == nil {
		t.Fatalf("import files without fds accepted")
	}
	if _, err := cl.Call(ctl.Request{Cmd: "import begin", Args: []string{"mjl", "Archive"}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	var files []*os.File
	for i := range 2 {
		f, err := os.CreateTemp(t.TempDir(), "m")
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "Subject: %d\r\n\r\n", i)
		files = append(files, f)
	}
	desc := []ctl.ImportFile{{Name: "cur/1:2,S", Flags: ipc.FlagSeen}, {Name: "new/2", Keywords: []string{"$label1"}, Received: 1700000000}}
	if _, err := cl.Call(ctl.Request{Cmd: "import files", Files: desc}, files, nil); err != nil {
		t.Fatal(err)
	}
	closeAll(files)
	var res ctl.ImportResult
	if _, err := cl.Call(ctl.Request{Cmd: "import end"}, nil, &res); err != nil {
		t.Fatal(err)
	}
	if res.Imported != 2 || res.Skipped != 1 || len(res.Problems) != 1 || res.Problems[0].Where != "cur/3" {
		t.Errorf("result %+v", res)
	}
	if len(progress) != 1 || progress[0].Messages != 2 {
		t.Errorf("progress %+v", progress)
	}
	begins := gotType[*ipc.ImportBegin](tm.store)
	ifs := gotType[*ipc.ImportFiles](tm.store)
	ends := gotType[*ipc.ImportEnd](tm.store)
	if len(begins) != 1 || begins[0].Account != "mjl" || begins[0].Mailbox != "Archive" || len(ifs) != 1 || len(ends) != 1 || ends[0].Abort {
		t.Fatalf("store got %+v %+v %+v", begins, ifs, ends)
	}
	if ifs[0].Job != begins[0].Job || ends[0].Job != begins[0].Job {
		t.Errorf("job ids differ")
	}
	if got := ifs[0].Files; len(got) != 2 || got[0].Flags != ipc.FlagSeen || got[1].Keywords[0] != "$label1" || got[1].Received != 1700000000 {
		t.Errorf("files %+v", got)
	}

	// A connection closed during an import aborts it.
	cl2 := tm.dialControl(t)
	if _, err := cl2.Call(ctl.Request{Cmd: "import begin", Args: []string{"jo", "INBOX"}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	cl2.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ends = gotType[*ipc.ImportEnd](tm.store)
		if len(ends) == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(ends) != 2 || !ends[1].Abort {
		t.Errorf("no abort after the connection closed: %+v", ends)
	}
}

func TestExportRelay(t *testing.T) {
	const stream = "From a@example.com Thu Jan  1 00:00:00 2026\nSubject: x\n\nbody\n\n"
	tm := newTestMaster(t, func(req *ipc.Request) (ipc.Message, []*os.File, error) {
		if _, ok := req.Msg.(*ipc.Export); ok {
			w := req.Files[0]
			w.WriteString(stream)
			w.Close()
			return &ipc.ExportResult{Messages: 1, Bytes: uint64(len(stream))}, nil, nil
		}
		return ackStore(req)
	}, nil)
	cl := tm.dialControl(t)
	files, err := cl.Call(ctl.Request{Cmd: "export", Args: []string{"mjl", "INBOX"}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 {
		t.Fatalf("%d fds", len(files))
	}
	b, err := io.ReadAll(files[0])
	files[0].Close()
	if err != nil || string(b) != stream {
		t.Errorf("stream %q, %v", b, err)
	}
	var res ctl.ExportResult
	if _, err := cl.Next(&res); err != nil || res.Messages != 1 {
		t.Errorf("result %+v, %v", res, err)
	}
}

func TestBackup(t *testing.T) {
	var order []string
	var orderMu sync.Mutex
	// The fd of each part must be the directory master made.
	writePart := func(req *ipc.Request, path, file string) error {
		defer req.Files[0].Close()
		fi, err := req.Files[0].Stat()
		if pfi, perr := os.Stat(path); err != nil || perr != nil || !os.SameFile(fi, pfi) {
			return fmt.Errorf("fd is not %s", path)
		}
		orderMu.Lock()
		order = append(order, filepath.Base(path))
		orderMu.Unlock()
		p := filepath.Join(path, file)
		os.MkdirAll(filepath.Dir(p), 0o700)
		return os.WriteFile(p, []byte("db"), 0o600)
	}
	tm := newTestMaster(t, func(req *ipc.Request) (ipc.Message, []*os.File, error) {
		if m, ok := req.Msg.(*ipc.Backup); ok {
			if err := writePart(req, m.Path, "accounts/mjl/index.db"); err != nil {
				return nil, nil, err
			}
			return &ipc.BackupResult{Accounts: 1, Messages: 2, Bytes: 3}, nil, nil
		}
		return ackStore(req)
	}, nil)
	os.WriteFile(filepath.Join(tm.dir, "data", "keys", "dkim.key"), []byte("secret key"), 0o600)
	dir := filepath.Join(tm.dir, "backup")
	if err := tm.call(t, ctl.Request{Cmd: "backup", Args: []string{dir}}, nil); err == nil || !strings.Contains(err.Error(), "queue unavailable (see moxctl status); no backup made") {
		t.Errorf("backup without queue: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("backup directory made without queue: %v", err)
	}
	tm.queue = tm.connect(t, ipc.RoleQueue, func(req *ipc.Request) (ipc.Message, []*os.File, error) {
		if m, ok := req.Msg.(*ipc.QueueBackup); ok {
			if err := writePart(req, m.Path, "queue.db"); err != nil {
				return nil, nil, err
			}
			return &ipc.QueueBackupResult{Messages: 4, Recipients: 6, Files: 4}, nil, nil
		}
		return ackStore(req)
	})
	var res ctl.BackupResult
	if err := tm.call(t, ctl.Request{Cmd: "backup", Args: []string{dir}}, &res); err != nil {
		t.Fatal(err)
	}
	if res.Accounts != 1 || res.Messages != 2 || res.QueueMessages != 4 || res.QueueRecipients != 6 || res.Files != 5 {
		t.Errorf("result %+v", res)
	}
	if strings.Join(order, " ") != "queue store" {
		t.Errorf("parts written in order %v, want queue before store", order)
	}
	for _, d := range []string{"", "queue", "store", "config"} {
		if fi, err := os.Stat(filepath.Join(dir, d)); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v", d, fi.Mode(), err)
		}
	}
	manifest, err := os.ReadFile(filepath.Join(dir, "manifest.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"store: 1 accounts, 2 messages, 3 bytes",
		"queue: 4 messages, 6 recipients",
		"  queue/queue.db\n",
		"hostname: mail.example.com",
		"  config/domains.conf\n", "  config/moxd.conf\n", "  keys/dkim.key\n",
		"  store/accounts/mjl/index.db\n",
	} {
		if !strings.Contains(string(manifest), want) {
			t.Errorf("manifest lacks %q:\n%s", want, manifest)
		}
	}
	sum, err := fileSHA256(filepath.Join(dir, "store/accounts/mjl/index.db"))
	if err != nil || len(sum) != 64 || !strings.Contains(string(manifest), "\n"+sum+"  store/accounts/mjl/index.db\n") {
		t.Errorf("manifest lacks the hash of index.db (%s, %v)", sum, err)
	}
	if err := tm.call(t, ctl.Request{Cmd: "backup", Args: []string{dir}}, nil); err == nil || !strings.Contains(err.Error(), "exists; give a new directory") {
		t.Errorf("backup into existing dir: %v", err)
	}
	if err := tm.call(t, ctl.Request{Cmd: "backup", Args: []string{"relative"}}, nil); err == nil || !strings.Contains(err.Error(), "not an absolute path") {
		t.Errorf("relative dir: %v", err)
	}
	b, _ := json.Marshal(res)
	if !strings.Contains(string(b), dir) {
		t.Errorf("result lacks the dir: %s", b)
	}
}
