package account

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"moxd/internal/auth"
)

func TestCreateOpen(t *testing.T) {
	base := testDir(t)
	dir := filepath.Join(base, "acct")
	a, err := Create(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := a.Mailboxes()
	if err != nil {
		t.Fatal(err)
	}
	type mbx struct {
		name string
		use  SpecialUse
		sub  bool
	}
	var got []mbx
	for _, mb := range l {
		got = append(got, mbx{mb.Name, mb.SpecialUse, mb.Subscribed})
		if mb.Summary.UIDNext != 1 || mb.Summary.HighestModSeq == 0 || mb.UIDValidity == 0 {
			t.Errorf("mailbox %s: summary %+v uidvalidity %d", mb.Name, mb.Summary, mb.UIDValidity)
		}
	}
	want := []mbx{{"Archive", SpecialArchive, true}, {"Drafts", SpecialDrafts, true}, {"INBOX", SpecialNone, true},
		{"Junk", SpecialJunk, true}, {"Sent", SpecialSent, true}, {"Trash", SpecialTrash, true}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("default mailboxes %v, want %v", got, want)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("account dir mode: %v %v", st.Mode(), err)
	}

	// A second opener fails fast with a clear message.
	_, err = Open(dir, Options{LockTimeout: 50 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Errorf("second open: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second close: %v", err)
	}
	if _, err := a.CreateMailbox(testCtx(t), "x", 0); !errors.Is(err, ErrClosed) {
		t.Errorf("create after close: %v", err)
	}
	if _, err := Create(dir, Options{}); !errors.Is(err, ErrExists) {
		t.Errorf("create again: %v", err)
	}
	a, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if mb := mustMailbox(t, a, "inbox"); mb.Name != "INBOX" {
		t.Errorf("inbox name %q", mb.Name)
	}
	a.Close()

	if _, err := Open(filepath.Join(base, "missing"), Options{}); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("open missing: %v", err)
	}

	// A database from a newer moxd is refused.
	db, err := bolt.Open(filepath.Join(dir, indexName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketMeta)).Put([]byte(metaSchema), key64(schemaVersion+1))
	})
	db.Close()
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("open newer schema: %v", err)
	}
}

func TestCleanName(t *testing.T) {
	tests := []struct {
		in, want string
		bad      bool
	}{
		{"INBOX", "INBOX", false},
		{"inbox", "INBOX", false},
		{"Inbox/Sub", "INBOX/Sub", false},
		{"Inboxes", "Inboxes", false},
		{"Lists/moxd", "Lists/moxd", false},
		{"Ünïcode", "Ünïcode", false},
		{"", "", true},
		{"/a", "", true},
		{"a/", "", true},
		{"a//b", "", true},
		{"a*", "", true},
		{"a%", "", true},
		{"a\tb", "", true},
		{"a\x7fb", "", true},
		{"a\u0085b", "", true},
		{"\xff", "", true},
		{strings.Repeat("x", 256), "", true},
		{strings.Repeat("a/", 32) + "a", "", true},
		{strings.Repeat("a/", 31) + "a", strings.Repeat("a/", 31) + "a", false},
	}
	for _, tc := range tests {
		got, err := CleanName(tc.in)
		if tc.bad {
			if !errors.Is(err, ErrBadName) {
				t.Errorf("CleanName(%q) = %q, %v; want ErrBadName", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("CleanName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestDeliverAndRead(t *testing.T) {
	now := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	a, tmp := newAccount(t, Options{Now: func() time.Time { return now }})
	text := "From: a@example.org\r\nSubject: Re: [list] Fwd: Hello\r\nMessage-ID: <m1@example.org>\r\n" +
		"In-Reply-To: <p1@example.org>\r\nReferences: <r0@example.org>\r\n <p1@example.org>\r\n\r\nbody\r\n"
	body := newBody(t, tmp, text)
	prefix := []byte("Received: from x by y\r\n")
	res := a.Deliver(testCtx(t), []Delivery{{Body: body, Flags: FlagSeen, Keywords: []string{"$Label1"}, Prefix: prefix}})
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	inbox := mustMailbox(t, a, "INBOX")
	if res[0].MailboxID != inbox.ID || res[0].UIDValidity != inbox.UIDValidity || res[0].UID != 1 || res[0].ModSeq != inbox.Summary.HighestModSeq {
		t.Errorf("delivered %+v, inbox %+v", res[0], inbox)
	}
	wantSum := Summary{Messages: 1, Unseen: 0, Size: int64(len(prefix) + len(text)), UIDNext: 2, HighestModSeq: res[0].ModSeq}
	if inbox.Summary != wantSum {
		t.Errorf("summary %+v, want %+v", inbox.Summary, wantSum)
	}
	if !reflect.DeepEqual(inbox.Keywords, []string{"$Label1"}) {
		t.Errorf("keywords %v", inbox.Keywords)
	}
	msgs, err := a.Messages(inbox.ID, inbox.UIDValidity, 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []Message{{UID: 1, ModSeq: res[0].ModSeq, CreateSeq: res[0].ModSeq, Flags: FlagSeen, Keywords: []string{"$Label1"}, Size: wantSum.Size, Received: now, SaveDate: now, FileID: msgs[0].FileID}}
	if len(msgs) != 1 || !reflect.DeepEqual(msgs[0].Keywords, want[0].Keywords) || !msgs[0].Received.Equal(now) || !msgs[0].SaveDate.Equal(now) {
		t.Fatalf("messages %+v", msgs)
	}
	msgs[0].Received, msgs[0].SaveDate = now, now
	if !reflect.DeepEqual(msgs, want) {
		t.Errorf("messages %+v, want %+v", msgs, want)
	}

	f, m, p, err := a.OpenMessage(inbox.ID, inbox.UIDValidity, 1)
	if err != nil {
		t.Fatal(err)
	}
	content, _ := io.ReadAll(f)
	f.Close()
	if string(p)+string(content) != string(prefix)+text || m.Size != int64(len(p)+len(content)) {
		t.Errorf("message content %q %q size %d", p, content, m.Size)
	}
	d, err := a.Detail(inbox.ID, inbox.UIDValidity, 1)
	if err != nil {
		t.Fatal(err)
	}
	if d.MessageID != "<m1@example.org>" || !reflect.DeepEqual(d.InReplyTo, []string{"<p1@example.org>"}) ||
		!reflect.DeepEqual(d.References, []string{"<r0@example.org>", "<p1@example.org>"}) || d.BaseSubject != "Hello" ||
		!bytes.Equal(d.Prefix, prefix) || d.Part == nil || d.Part.End != int64(len(text)) {
		t.Errorf("detail %+v", d)
	}

	// Wrong uidvalidity, unknown mailbox, unknown uid.
	if _, err := a.Messages(inbox.ID, inbox.UIDValidity+1, 1, 10); !errors.Is(err, ErrUIDValidity) {
		t.Errorf("stale uidvalidity: %v", err)
	}
	if _, err := a.UIDs(999, 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown mailbox: %v", err)
	}
	if _, _, _, err := a.OpenMessage(inbox.ID, inbox.UIDValidity, 7); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown uid: %v", err)
	}
	if size, n := a.Usage(); size != wantSum.Size || n != 1 {
		t.Errorf("usage %d %d", size, n)
	}
	checkInvariants(t, a)
}

func TestDeliverResults(t *testing.T) {
	a, tmp := newAccount(t, Options{Quota: 1000})
	small := newBody(t, tmp, msgText("small", "x"))
	big := newBody(t, tmp, msgText("big", strings.Repeat("y", 2000)))
	gone := newBody(t, tmp, msgText("gone", "z"))
	gone.Remove() // linking it fails: a non-clean failure, the batch is retried op by op

	var changes []Change
	var mu sync.Mutex
	a.onChange = func(c Change) { mu.Lock(); changes = append(changes, c); mu.Unlock() }

	ds := []Delivery{
		{Body: small},
		{Body: big},
		{Body: small, Mailbox: "bad*name"},
		{Body: small, Mailbox: "Lists/new"},
		{Body: small, Keywords: []string{"bad keyword"}},
		{Body: gone},
		{Body: small, Prefix: []byte("X-No-CRLF: 1")},
		{Body: nil},
		{Body: small, Mailbox: "inbox"},
	}
	res := a.Deliver(testCtx(t), ds)
	wantErr := []error{nil, ErrQuota, ErrBadName, nil, ErrBadName, os.ErrNotExist, ErrBadBody, ErrBadBody, nil}
	for i, r := range res {
		if wantErr[i] == nil && r.Err != nil || wantErr[i] != nil && !errors.Is(r.Err, wantErr[i]) {
			t.Errorf("delivery %d: err %v, want %v", i, r.Err, wantErr[i])
		}
	}
	inbox := mustMailbox(t, a, "INBOX")
	lists := mustMailbox(t, a, "Lists/new")
	mustMailbox(t, a, "Lists")
	if inbox.Summary.Messages != 2 || lists.Summary.Messages != 1 {
		t.Errorf("inbox %+v lists %+v", inbox.Summary, lists.Summary)
	}
	if res[0].UID == res[8].UID || res[0].MailboxID != inbox.ID || res[3].MailboxID != lists.ID {
		t.Errorf("results %+v", res)
	}
	mu.Lock()
	var sawList, sawInbox bool
	for _, c := range changes {
		sawList = sawList || c.MailboxID == 0
		sawInbox = sawInbox || c.MailboxID == inbox.ID && c.ModSeq > 0
	}
	mu.Unlock()
	if !sawList || !sawInbox {
		t.Errorf("changes %+v", changes)
	}
	checkInvariants(t, a)
}

// TestGroupCommit checks that concurrent deliveries share commits: while
// the commit goroutine is busy, 20 deliveries queue up and then commit in
// one transaction.
func TestGroupCommit(t *testing.T) {
	a, tmp := newAccount(t, Options{})
	body := newBody(t, tmp, msgText("group", "commit"))
	release := make(chan struct{})
	blocker := newOp(0, func(w *wtx) error { <-release; return nil })
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock()
	if err := a.enqueue(blocker); err != nil {
		t.Fatal(err)
	}
	// Wait until the commit goroutine runs the blocker alone.
	for deadline := time.Now().Add(30 * time.Second); blocker.state.Load() != opTaken; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("blocker not started")
		}
	}
	const n = 20
	before := a.commits.Load()
	var wg sync.WaitGroup
	results := make([]Delivered, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = a.Deliver(testCtx(t), []Delivery{{Body: body}})[0]
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		a.qmu.Lock()
		queued := len(a.queue)
		a.qmu.Unlock()
		if queued == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d deliveries queued", queued)
		}
		time.Sleep(time.Millisecond)
	}
	unblock()
	wg.Wait()
	if err := a.wait(testCtx(t), blocker); err != nil {
		t.Fatal(err)
	}
	seen := map[uint32]bool{}
	var modseq uint64
	for _, r := range results {
		if r.Err != nil || seen[r.UID] {
			t.Fatalf("results %+v", results)
		}
		seen[r.UID] = true
		if modseq != 0 && r.ModSeq != modseq {
			t.Errorf("deliveries of one batch have modseqs %d and %d", modseq, r.ModSeq)
		}
		modseq = r.ModSeq
	}
	if commits := a.commits.Load() - before; commits != 2 {
		t.Errorf("%d commits for %d deliveries after a blocked commit, want 2", commits, n)
	}
	checkInvariants(t, a)
}

func TestDeliverCanceled(t *testing.T) {
	a, tmp := newAccount(t, Options{})
	body := newBody(t, tmp, msgText("c", "c"))
	release := make(chan struct{})
	blocker := newOp(0, func(w *wtx) error { <-release; return nil })
	a.enqueue(blocker)
	for deadline := time.Now().Add(30 * time.Second); blocker.state.Load() != opTaken; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			close(release)
			t.Fatal("blocker not started")
		}
	}
	ctx, cancel := context.WithCancel(testCtx(t))
	cancel()
	res := a.Deliver(ctx, []Delivery{{Body: body}})
	close(release)
	if !errors.Is(res[0].Err, context.Canceled) {
		t.Fatalf("canceled delivery: %v", res[0].Err)
	}
	settle(t, a)
	if mb := mustMailbox(t, a, "INBOX"); mb.Summary.Messages != 0 {
		t.Errorf("canceled delivery committed: %+v", mb.Summary)
	}
}

func TestCredentials(t *testing.T) {
	a, _ := newAccount(t, Options{})
	if _, ok, err := a.Credentials(); ok || err != nil {
		t.Fatalf("credentials before set: %v %v", ok, err)
	}
	c, err := auth.NewCredentials("secret", auth.Params{Argon2Time: 1, Argon2MemoryKiB: 64, Argon2Threads: 1, SCRAMIterations: auth.MinSCRAMIterations})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetCredentials(testCtx(t), c); err != nil {
		t.Fatal(err)
	}
	got, ok, err := a.Credentials()
	if err != nil || !ok || !got.VerifyPassword("secret") || got.VerifyPassword("other") {
		t.Errorf("credentials: %v %v", ok, err)
	}
}

// TestBodySharedAccounts delivers one Body to two accounts; each links its
// own file, and removing the body afterwards leaves both intact.
func TestBodySharedAccounts(t *testing.T) {
	a1, tmp := newAccount(t, Options{})
	a2, _ := newAccount(t, Options{})
	text := msgText("shared", "s")
	body := newBody(t, tmp, text)
	for _, a := range []*Account{a1, a2} {
		if r := a.Deliver(testCtx(t), []Delivery{{Body: body}}); r[0].Err != nil {
			t.Fatal(r[0].Err)
		}
	}
	body.Remove()
	for _, a := range []*Account{a1, a2} {
		inbox := mustMailbox(t, a, "INBOX")
		f, _, _, err := a.OpenMessage(inbox.ID, inbox.UIDValidity, 1)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(f)
		f.Close()
		if string(data) != text {
			t.Errorf("account %s: %q", a.Dir(), data)
		}
		checkInvariants(t, a)
	}
	// A message file replaced by a symlink is not followed.
	inbox := mustMailbox(t, a1, "INBOX")
	msgs, _ := a1.Messages(inbox.ID, inbox.UIDValidity, 1, 0)
	p := a1.filePath(msgs[0].FileID)
	os.Remove(p)
	os.Symlink(filepath.Join(a2.Dir(), "index.db"), p)
	if f, _, _, err := a1.OpenMessage(inbox.ID, inbox.UIDValidity, 1); err == nil {
		f.Close()
		t.Error("symlinked message file opened")
	}
}
