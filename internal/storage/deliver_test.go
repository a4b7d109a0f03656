package storage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"moxd/internal/addrbook"
	"moxd/internal/config"
	"moxd/internal/ipc"
	"moxd/internal/storage/storeclient"
)

// addressingSlice has an alias, a catchall, localpart separators and a
// destination.
func addressingSlice() config.StoreSlice {
	return config.StoreSlice{
		Domains: []config.AddrDomain{
			{Name: "example.org", LocalpartSeparators: []string{"+"}, Aliases: []config.AddrAlias{
				{Address: "team@example.org", Members: []string{"mjl@example.org", "full@example.org", "mjl+dup@example.org", "lists@example.org"}},
			}},
			{Name: "catch.example"},
		},
		Accounts: []config.StoreAccount{
			{Name: "mjl", Addresses: []string{"mjl@example.org", "postmaster@example.org"}, Destinations: map[string]string{"lists@example.org": "Lists/moxd"}},
			{Name: "full", Addresses: []string{"full@example.org"}},
			{Name: "catcher", Addresses: []string{"@catch.example", "postmaster@catch.example"}},
		},
		Postmaster: "mjl",
	}
}

func TestDeliverAddressing(t *testing.T) {
	ts := newTestStoreSlice(t, addressingSlice())
	d := storeclient.NewDeliverer(peerOf(ts.conn(ipc.RoleSMTP)))
	ctx := testContext(t)

	for _, tc := range []struct {
		addr    string
		state   storeclient.RcptState
		account string
	}{
		{"mjl@example.org", storeclient.RcptOK, "mjl"},
		{"MJL+tag@Example.ORG", storeclient.RcptOK, "mjl"},
		{"team@example.org", storeclient.RcptOK, "mjl"},
		{"team+x@example.org", storeclient.RcptOK, "mjl"},
		{"lists@example.org", storeclient.RcptOK, "mjl"},
		{"anything@catch.example", storeclient.RcptOK, "catcher"},
		{"nobody@example.org", storeclient.RcptUnknown, ""},
		{"mjl@example.net", storeclient.RcptUnknown, ""},
		{"mjl", storeclient.RcptUnknown, ""},
		{"", storeclient.RcptUnknown, ""},
		// RFC 5321 §4.1.1.3: the bare postmaster.
		{"postmaster", storeclient.RcptOK, "mjl"},
		{"PostMaster", storeclient.RcptOK, "mjl"},
	} {
		st, acct, err := d.CheckRcpt(ctx, tc.addr)
		if err != nil || st != tc.state || acct != tc.account {
			t.Errorf("CheckRcpt %q: %v %q %v, want %v %q", tc.addr, st, acct, err, tc.state, tc.account)
		}
	}

	res, err := deliver(t, d, message(1), "team@example.org", "mjl+x@example.org", "lists@example.org", "who@catch.example", "nobody@example.org")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		state   storeclient.RcptState
		account string
		mailbox string
	}{
		{storeclient.RcptOK, "mjl", "INBOX"},
		{storeclient.RcptOK, "mjl", "INBOX"},
		{storeclient.RcptOK, "mjl", "Lists/moxd"},
		{storeclient.RcptOK, "catcher", "INBOX"},
		{storeclient.RcptUnknown, "", ""},
	}
	for i, w := range want {
		r := res[i]
		if r.State != w.state || r.Account != w.account || r.Mailbox != w.mailbox || len(r.Retry) != 0 {
			t.Errorf("recipient %d: %+v, want %+v", i, r, w)
		}
	}
	// The alias reached mjl's Inbox once (mjl@ and mjl+dup@ are one
	// target), its Lists/moxd (created on first delivery) and full's
	// Inbox; the other recipients added one message each.
	for _, c := range []struct {
		acct, mailbox string
		n             uint32
	}{
		{"mjl", "INBOX", 2},
		{"mjl", "Lists/moxd", 2},
		{"full", "INBOX", 1},
		{"catcher", "INBOX", 1},
	} {
		if n := ts.count(c.acct, c.mailbox); n != c.n {
			t.Errorf("%s %s has %d messages, want %d", c.acct, c.mailbox, n, c.n)
		}
	}
}

// TestDeliverAliasRetry: an alias whose members partly fail temporarily
// names the failed members in Retry.
func TestDeliverAliasRetry(t *testing.T) {
	slice := addressingSlice()
	slice.Accounts[1].Quota = 10 // full: any message exceeds it
	ts := newTestStoreSlice(t, slice)
	d := storeclient.NewDeliverer(peerOf(ts.conn(ipc.RoleSMTP)))

	res, err := deliver(t, d, message(1), "team@example.org", "full@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if r := res[0]; r.State != storeclient.RcptOverQuota || r.Account != "mjl" || r.UID == 0 || !reflect.DeepEqual(r.Retry, []string{"full@example.org"}) || !strings.Contains(r.Text, "quota") {
		t.Errorf("alias: %+v, want over quota with Retry [full@example.org]", r)
	}
	// Not an alias: a temporary state without Retry, retry the address.
	if r := res[1]; r.State != storeclient.RcptOverQuota || len(r.Retry) != 0 {
		t.Errorf("plain address: %+v", r)
	}
	if n := ts.count("mjl", "INBOX"); n != 1 {
		t.Errorf("mjl has %d messages, want 1", n)
	}

	// Nothing delivered: no Retry, the alias itself is retried.
	slice.Domains[0].Aliases = []config.AddrAlias{{Address: "team@example.org", Members: []string{"full@example.org"}}}
	if err := ts.sv.store.configure(slice); err != nil {
		t.Fatal(err)
	}
	res, err = deliver(t, d, message(2), "team@example.org")
	if err != nil || res[0].State != storeclient.RcptOverQuota || len(res[0].Retry) != 0 {
		t.Errorf("alias without deliveries: %+v %v", res, err)
	}
}

func TestCombine(t *testing.T) {
	targets := []addrbook.Target{{Account: "a", Address: "a@x"}, {Account: "b", Address: "b@x"}, {Account: "c", Address: "c@x"}}
	ok := outcome{state: ipc.RcptOK, mailbox: "INBOX", uid: 5}
	tmp := outcome{state: ipc.RcptFailed, mailbox: "INBOX", text: "io error"}
	quota := outcome{state: ipc.RcptOverQuota, mailbox: "INBOX", text: "quota"}
	refused := outcome{state: ipc.RcptRefused, mailbox: "INBOX", text: "too large"}
	tests := []struct {
		name string
		outs []outcome
		want ipc.RcptDelivered
	}{
		{"all ok", []outcome{ok, ok, ok}, ipc.RcptDelivered{State: ipc.RcptOK, Account: "a", Mailbox: "INBOX", UID: 5}},
		{"one temporary", []outcome{ok, tmp, ok}, ipc.RcptDelivered{State: ipc.RcptFailed, Account: "a", Mailbox: "INBOX", UID: 5, Text: "io error", Retry: []string{"b@x"}}},
		{"worst wins", []outcome{quota, ok, tmp}, ipc.RcptDelivered{State: ipc.RcptFailed, Account: "a", Mailbox: "INBOX", Text: "io error", Retry: []string{"a@x", "c@x"}}},
		{"permanent and temporary", []outcome{ok, refused, tmp}, ipc.RcptDelivered{State: ipc.RcptRefused, Account: "a", Mailbox: "INBOX", UID: 5, Text: "too large", Retry: []string{"c@x"}}},
		{"none delivered", []outcome{tmp, quota, tmp}, ipc.RcptDelivered{State: ipc.RcptFailed, Account: "a", Mailbox: "INBOX", Text: "io error"}},
	}
	for _, tc := range tests {
		if got := combine(targets, tc.outs); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}

	// More failed members than Retry can carry: retry the whole alias.
	var many []addrbook.Target
	outs := []outcome{ok}
	many = append(many, addrbook.Target{Account: "ok", Address: "ok@x"})
	for i := range ipc.MaxRetry + 1 {
		many = append(many, addrbook.Target{Account: fmt.Sprint(i), Address: fmt.Sprintf("m%d@x", i)})
		outs = append(outs, tmp)
	}
	if r := combine(many, outs); r.State != ipc.RcptFailed || r.Retry != nil {
		t.Errorf("too many to retry: %+v", r)
	}
}

// TestFitResult: the result of 32 recipients always fits one frame.
func TestFitResult(t *testing.T) {
	res := &ipc.DeliverResult{}
	long := strings.Repeat("x", ipc.MaxReplyText)
	for i := range ipc.MaxRecipients {
		var retry []string
		for j := range ipc.MaxRetry {
			retry = append(retry, fmt.Sprintf("%s%d.%d@example.org", strings.Repeat("m", 200), i, j))
		}
		res.Results = append(res.Results, ipc.RcptDelivered{State: ipc.RcptFailed, Account: strings.Repeat("a", 64), Mailbox: strings.Repeat("b", 1000), Text: long, Retry: retry})
	}
	res.Results[0].State = ipc.RcptOK
	fitResult(res)
	if _, err := ipc.PayloadSize(res); err != nil {
		t.Fatalf("does not fit: %v", err)
	}
	if res.Results[0].Mailbox == "" || res.Results[0].Text == "" {
		t.Errorf("cut more than needed: %+v", res.Results[0])
	}
}

// TestFallbackAccount: with a fallback account (localserve), every address
// at any domain is delivered, to that account when nothing else matches.
func TestFallbackAccount(t *testing.T) {
	slice := addressingSlice()
	slice.FallbackAccount = "catcher"
	ts := newTestStoreSlice(t, slice)
	d := storeclient.NewDeliverer(peerOf(ts.conn(ipc.RoleSMTP)))
	ctx := testContext(t)
	for _, addr := range []string{"nobody@example.org", "someone@elsewhere.example", "x@[192.0.2.1]"} {
		if st, acct, err := d.CheckRcpt(ctx, addr); err != nil || st != storeclient.RcptOK || acct != "catcher" {
			t.Errorf("CheckRcpt %s: %v %q %v", addr, st, acct, err)
		}
	}
	if st, acct, _ := d.CheckRcpt(ctx, "mjl@example.org"); st != storeclient.RcptOK || acct != "mjl" {
		t.Errorf("configured address: %v %q", st, acct)
	}
	if st, _, _ := d.CheckRcpt(ctx, "not-an-address"); st != storeclient.RcptUnknown {
		t.Errorf("no @: %v", st)
	}
	res, err := deliver(t, d, message(1), "someone@elsewhere.example")
	if err != nil || res[0].State != storeclient.RcptOK || res[0].Account != "catcher" {
		t.Fatalf("deliver: %+v %v", res, err)
	}
	// Logins never go through the fallback.
	if _, ok := ts.sv.store.Resolve("someone@elsewhere.example"); ok {
		t.Errorf("login name resolves through the fallback account")
	}
	// An unconfigured fallback is reported and ignored.
	slice.FallbackAccount = "ghost"
	if err := ts.sv.store.configure(slice); err == nil || !strings.Contains(err.Error(), `fallback account "ghost"`) {
		t.Errorf("configure with unknown fallback: %v", err)
	}
	if st, _, _ := d.CheckRcpt(ctx, "someone@elsewhere.example"); st != storeclient.RcptUnknown {
		t.Errorf("unknown fallback still used: %v", st)
	}
}

// TestDiskReserve: with less free space than the reserve, bodies and
// deliveries are refused with ErrDiskFull and nothing is written.
func TestDiskReserve(t *testing.T) {
	slice := addressingSlice()
	ts := newTestStoreSlice(t, slice)
	smtp := storeclient.NewDeliverer(peerOf(ts.conn(ipc.RoleSMTP)))
	queue := storeclient.NewDeliverer(peerOf(ts.conn(ipc.RoleQueue)))
	ctx := testContext(t)
	env := storeclient.Envelope{MailFrom: "x@example.net"}
	rcpt := []storeclient.Recipient{{Address: "mjl@example.org"}}

	// A body received before the disk filled up.
	early, err := smtp.NewBody(ctx, int64(len(message(1))))
	if err != nil {
		t.Fatal(err)
	}
	early.Write(message(1))

	free, err := freeSpace(ts.dir)
	if err != nil {
		t.Fatal(err)
	}
	slice.DiskReserve = int64(free) + 1<<40 // More than this disk has.
	if err := ts.sv.store.configure(slice); err != nil {
		t.Fatal(err)
	}

	if _, err := smtp.NewBody(ctx, 100); !errors.Is(err, storeclient.ErrDiskFull) {
		t.Errorf("NewBody: %v, want ErrDiskFull", err)
	}
	if _, err := smtp.Deliver(ctx, early, env, rcpt); !errors.Is(err, storeclient.ErrDiskFull) {
		t.Errorf("Deliver: %v, want ErrDiskFull", err)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "msg"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(message(2))
	if _, err := queue.DeliverFile(ctx, f, env, rcpt); !errors.Is(err, storeclient.ErrDiskFull) {
		t.Errorf("DeliverFile: %v, want ErrDiskFull", err)
	}
	if _, _, err := ts.sv.localDeliver(ctx, &ipc.LocalDeliver{Address: "mjl@example.org"}, f); err == nil {
		t.Errorf("local delivery with a full disk")
	}
	if n := ts.count("mjl", "INBOX"); n != 0 {
		t.Errorf("INBOX has %d messages, want 0", n)
	}
	// The refused Deliver released its body: nothing half-written is left.
	waitEmpty(t, ts.sv.store.tmpDir)

	// With space again (reserve 0 is no check), mail flows.
	slice.DiskReserve = 0
	if err := ts.sv.store.configure(slice); err != nil {
		t.Fatal(err)
	}
	if res, err := queue.DeliverFile(ctx, f, env, rcpt); err != nil || res[0].State != storeclient.RcptOK {
		t.Errorf("after freeing space: %+v %v", res, err)
	}
}

// TestDiskSpaceCache: statfs is asked at most once a second.
func TestDiskSpaceCache(t *testing.T) {
	now := time.Unix(1700000000, 0)
	calls := 0
	free := uint64(1000)
	d := &diskSpace{dir: "/x", now: func() time.Time { return now }, free: func(string) (uint64, error) { calls++; return free, nil }}
	if err := d.check(500); err != nil {
		t.Fatal(err)
	}
	free = 100
	now = now.Add(500 * time.Millisecond)
	if err := d.check(500); err != nil || calls != 1 {
		t.Errorf("within a second: %v, %d statfs calls", err, calls)
	}
	now = now.Add(600 * time.Millisecond)
	var re *ipc.RemoteError
	if err := d.check(500); !errors.As(err, &re) || re.Code != ipc.CodeDiskFull || calls != 2 || !strings.Contains(re.Message, "store.disk_reserve") {
		t.Errorf("after a second: %v, %d statfs calls", err, calls)
	}
	if err := d.check(0); err != nil {
		t.Errorf("reserve 0: %v", err)
	}
	// A failing statfs does not stop mail.
	d = &diskSpace{dir: "/x", now: time.Now, free: func(string) (uint64, error) { return 0, errors.New("EIO") }}
	if err := d.check(500); err != nil {
		t.Errorf("statfs error: %v", err)
	}
}

// TestMaxMessageSize: the slice's limit, plus room for header lines.
func TestMaxMessageSize(t *testing.T) {
	slice := addressingSlice()
	slice.MaxMessageSize = 1000
	ts := newTestStoreSlice(t, slice)
	d := storeclient.NewDeliverer(peerOf(ts.conn(ipc.RoleQueue)))
	ctx := testContext(t)
	limit := int64(1000 + ipc.MaxPrefix)
	if _, err := d.NewBody(ctx, limit+1); !errors.Is(err, storeclient.ErrRefused) {
		t.Errorf("NewBody over the limit: %v", err)
	}
	b, err := d.NewBody(ctx, -1)
	if err != nil {
		t.Fatal(err)
	}
	if b.MaxSize != limit {
		t.Errorf("BodyPipe.MaxSize %d, want %d", b.MaxSize, limit)
	}
	b.Release()
	f, err := os.Create(filepath.Join(t.TempDir(), "big"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write([]byte("Subject: big\r\n\r\n" + strings.Repeat("x", int(limit))))
	if _, err := d.DeliverFile(ctx, f, storeclient.Envelope{}, []storeclient.Recipient{{Address: "mjl@example.org"}}); !errors.Is(err, storeclient.ErrRefused) {
		t.Errorf("file over the limit: %v", err)
	}
	// Accounts opened before a reload get the new limit.
	slice.MaxMessageSize = 100 << 20
	if err := ts.sv.store.configure(slice); err != nil {
		t.Fatal(err)
	}
	if res, err := d.DeliverFile(ctx, f, storeclient.Envelope{}, []storeclient.Recipient{{Address: "mjl@example.org"}}); err != nil || res[0].State != storeclient.RcptOK {
		t.Errorf("after raising the limit: %+v %v", res, err)
	}
}

// TestBodyFile: after DeliverKeep, smtp gets a read-only fd of store's
// copy of the body for a local retry, until it releases the body.
func TestBodyFile(t *testing.T) {
	slice := addressingSlice()
	slice.Accounts[1].Quota = 10
	ts := newTestStoreSlice(t, slice)
	c := ts.conn(ipc.RoleSMTP)
	d := storeclient.NewDeliverer(peerOf(c))
	ctx := testContext(t)
	msg := message(7)

	b, err := d.NewBody(ctx, int64(len(msg)))
	if err != nil {
		t.Fatal(err)
	}
	b.Write(msg)
	res, err := d.DeliverKeep(ctx, b, storeclient.Envelope{Prefix: []byte("Received: x\r\n")}, []storeclient.Recipient{{Address: "mjl@example.org"}, {Address: "full@example.org"}})
	if err != nil || res[0].State != storeclient.RcptOK || !res[1].State.Temporary() {
		t.Fatalf("DeliverKeep: %+v %v", res, err)
	}

	f, size, err := d.BodyFile(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil || string(data) != string(msg) || size != int64(len(msg)) {
		t.Errorf("body file: %d bytes %q (size %d), %v; want the message", len(data), data, size, err)
	}
	if _, err := f.Write([]byte("x")); err == nil {
		t.Errorf("body file is writable")
	}
	// Another channel cannot have it.
	other := storeclient.NewDeliverer(peerOf(ts.conn(ipc.RoleQueue)))
	if _, _, err := other.BodyFile(ctx, &storeclient.Body{ID: b.ID}); !errors.Is(err, storeclient.ErrNotFound) {
		t.Errorf("other channel: %v, want ErrNotFound", err)
	}
	// The kept body can be delivered again (the retry of queue goes this
	// way too, with the file), then released.
	if res, err := d.DeliverKeep(ctx, b, storeclient.Envelope{}, []storeclient.Recipient{{Address: "mjl@example.org"}}); err != nil || res[0].State != storeclient.RcptOK {
		t.Errorf("second DeliverKeep: %+v %v", res, err)
	}
	if err := b.Release(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, _, err := d.BodyFile(ctx, b)
		if errors.Is(err, storeclient.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("BodyFile after release: %v, want ErrNotFound", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitEmpty(t, ts.sv.store.tmpDir)
	// The fd stays readable: it is store's immutable copy.
	if n, err := f.ReadAt(make([]byte, 4), 0); err != nil || n != 4 {
		t.Errorf("fd after release: %d %v", n, err)
	}
	if n := ts.count("mjl", "INBOX"); n != 2 {
		t.Errorf("INBOX has %d messages, want 2", n)
	}
}

// TestLoginNames: logins resolve account names and the accounts' own
// addresses, never aliases, tags, catchalls or destinations.
func TestLoginNames(t *testing.T) {
	ts := newTestStoreSlice(t, addressingSlice())
	for _, tc := range []struct {
		name, want string
	}{
		{"mjl", "mjl"},
		{"MJL@example.org", "mjl"},
		{"mjl+tag@example.org", ""},
		{"team@example.org", ""},
		{"@catch.example", ""},
		{"any@catch.example", ""},
		{"lists@example.org", ""},
	} {
		got, ok := ts.sv.store.Resolve(tc.name)
		if ok != (tc.want != "") || got != tc.want && ok {
			t.Errorf("Resolve(%q) = %q, %v; want %q", tc.name, got, ok, tc.want)
		}
	}
}
