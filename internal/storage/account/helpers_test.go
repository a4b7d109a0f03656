package account

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestMain makes a base directory for the tests (MOXD_ACCOUNT_TEST_BASE),
// then points TMPDIR at a directory that does not exist, so any use of it by
// the package fails.
func TestMain(m *testing.M) {
	base, err := os.MkdirTemp("", "moxd-account-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Setenv("TMPDIR", filepath.Join(base, "no-such-dir"))
	os.Setenv("MOXD_ACCOUNT_TEST_BASE", base)
	code := m.Run()
	os.RemoveAll(base)
	os.Exit(code)
}

var dirSeq atomic.Int64

// testDir returns a new empty directory below the test base.
func testDir(t testing.TB) string {
	t.Helper()
	d := filepath.Join(os.Getenv("MOXD_ACCOUNT_TEST_BASE"), fmt.Sprintf("%s-%d", strings.ReplaceAll(t.Name(), "/", "_"), dirSeq.Add(1)))
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newAccount creates an account with a store-like tmp dir for bodies.
func newAccount(t testing.TB, opts Options) (*Account, string) {
	t.Helper()
	base := testDir(t)
	a, err := Create(filepath.Join(base, "acct"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	tmp := filepath.Join(base, "storetmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	return a, tmp
}

// msgText returns a small message.
func msgText(subject, body string) string {
	return "From: Alice <alice@example.org>\r\nTo: bob@example.com\r\nSubject: " + subject +
		"\r\nDate: Mon, 2 Jan 2006 15:04:05 -0700\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@example.org>\r\n\r\n" + body + "\r\n"
}

func newBody(t testing.TB, tmp, text string) *Body {
	t.Helper()
	b, err := BodyFromBytes(tmp, []byte(text), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Remove() })
	return b
}

// deliver delivers one message and fails the test on error.
func deliver(t testing.TB, a *Account, tmp, mailbox, text string, flags Flags, kw ...string) Delivered {
	t.Helper()
	res := a.Deliver(testCtx(t), []Delivery{{Body: newBody(t, tmp, text), Mailbox: mailbox, Flags: flags, Keywords: kw}})
	if res[0].Err != nil {
		t.Fatalf("deliver: %v", res[0].Err)
	}
	return res[0]
}

func mustMailbox(t testing.TB, a *Account, name string) Mailbox {
	t.Helper()
	mb, err := a.Mailbox(name)
	if err != nil {
		t.Fatalf("mailbox %s: %v", name, err)
	}
	return mb
}

// settle waits until files of earlier commits are removed and their
// unlink records cleared: two empty operations through the commit queue
// (the commit goroutine removes files after answering an operation, so the
// second one starts only after the first one's removals).
func settle(t testing.TB, a *Account) {
	t.Helper()
	for range 2 {
		if err := a.do(testCtx(t), func(w *wtx) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
}

// checkInvariants runs Verify's checks on an open account and fails the
// test on any problem: summaries equal recounts, indexes agree, files and
// reference counts match.
func checkInvariants(t testing.TB, a *Account) {
	t.Helper()
	settle(t, a)
	v := &verifier{dir: a.dir}
	if err := a.db.View(func(tx *bolt.Tx) error { return v.run(tx) }); err != nil {
		t.Fatal(err)
	}
	for _, p := range v.problems {
		t.Errorf("invariant: %s: %s", p.Where, p.What)
	}
}

func uidsOf(msgs []Message) []uint32 {
	var l []uint32
	for _, m := range msgs {
		l = append(l, m.UID)
	}
	return l
}
