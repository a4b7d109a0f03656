package account

import (
	"errors"
	"os"
	"reflect"
	"testing"
)

func mailboxNames(t *testing.T, a *Account) []string {
	t.Helper()
	l, err := a.Mailboxes()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mb := range l {
		names = append(names, mb.Name)
	}
	return names
}

func TestMailboxOps(t *testing.T) {
	a, tmp := newAccount(t, Options{})
	ctx := testCtx(t)

	mb, err := a.CreateMailbox(ctx, "Work/Projects/moxd", SpecialNone)
	if err != nil {
		t.Fatal(err)
	}
	if mb.Name != "Work/Projects/moxd" || mb.Subscribed {
		t.Errorf("created %+v", mb)
	}
	if _, err := a.CreateMailbox(ctx, "Work/Projects", SpecialNone); !errors.Is(err, ErrExists) {
		t.Errorf("create existing parent: %v", err)
	}
	if _, err := a.CreateMailbox(ctx, "a*b", SpecialNone); !errors.Is(err, ErrBadName) {
		t.Errorf("create bad name: %v", err)
	}
	want := []string{"Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash", "Work", "Work/Projects", "Work/Projects/moxd"}
	if got := mailboxNames(t, a); !reflect.DeepEqual(got, want) {
		t.Errorf("mailboxes %v, want %v", got, want)
	}

	// Messages in a mailbox that is renamed keep their uids; uidvalidity stays.
	d := deliver(t, a, tmp, "Work/Projects/moxd", msgText("m1", "x"), 0)
	if err := a.Subscribe(ctx, "Work/Projects/moxd", true); err != nil {
		t.Fatal(err)
	}
	if err := a.RenameMailbox(ctx, "Work", "Old/Work"); err != nil {
		t.Fatal(err)
	}
	want = []string{"Archive", "Drafts", "INBOX", "Junk", "Old", "Old/Work", "Old/Work/Projects", "Old/Work/Projects/moxd", "Sent", "Trash"}
	if got := mailboxNames(t, a); !reflect.DeepEqual(got, want) {
		t.Errorf("after rename %v, want %v", got, want)
	}
	moved := mustMailbox(t, a, "Old/Work/Projects/moxd")
	if moved.ID != mb.ID || moved.UIDValidity != mb.UIDValidity || !moved.Subscribed || moved.Summary.Messages != 1 {
		t.Errorf("renamed mailbox %+v, was %+v", moved, mb)
	}
	if uids, err := a.UIDs(moved.ID, moved.UIDValidity); err != nil || !reflect.DeepEqual(uids, []uint32{d.UID}) {
		t.Errorf("uids after rename %v %v", uids, err)
	}
	if _, err := a.Mailbox("Work"); !errors.Is(err, ErrNotFound) {
		t.Errorf("old name: %v", err)
	}

	renameErrs := []struct {
		from, to string
		want     error
	}{
		{"Nope", "X", ErrNotFound},
		{"Sent", "Trash", ErrExists},
		{"Old", "Old/Sub", ErrBadName},
		{"Sent", "INBOX", ErrExists},
		{"Sent", "bad%", ErrBadName},
	}
	for _, tc := range renameErrs {
		if err := a.RenameMailbox(ctx, tc.from, tc.to); !errors.Is(err, tc.want) {
			t.Errorf("rename %s to %s: %v, want %v", tc.from, tc.to, err, tc.want)
		}
	}

	// Delete refuses INBOX and parents; deleting removes the messages and,
	// with the last reference, the file.
	if err := a.DeleteMailbox(ctx, "inbox"); !errors.Is(err, ErrBadName) {
		t.Errorf("delete INBOX: %v", err)
	}
	if err := a.DeleteMailbox(ctx, "Old/Work"); !errors.Is(err, ErrBadName) {
		t.Errorf("delete parent: %v", err)
	}
	if err := a.DeleteMailbox(ctx, "Nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete missing: %v", err)
	}
	msgs, _ := a.Messages(moved.ID, moved.UIDValidity, 1, 0)
	path := a.filePath(msgs[0].FileID)
	if err := a.DeleteMailbox(ctx, "Old/Work/Projects/moxd"); err != nil {
		t.Fatal(err)
	}
	settle(t, a)
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file of deleted mailbox still there: %v", err)
	}
	if _, err := a.Messages(moved.ID, moved.UIDValidity, 1, 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("messages of deleted mailbox: %v", err)
	}
	// Recreating gives a new uidvalidity.
	re, err := a.CreateMailbox(ctx, "Old/Work/Projects/moxd", SpecialNone)
	if err != nil || re.UIDValidity == moved.UIDValidity || re.ID == moved.ID {
		t.Errorf("recreated %+v, %v", re, err)
	}
	if size, n := a.Usage(); size != 0 || n != 0 {
		t.Errorf("usage after delete %d %d", size, n)
	}

	// Special use and subscriptions.
	if err := a.SetSpecialUse(ctx, "Old", SpecialAll); err != nil {
		t.Fatal(err)
	}
	if mb := mustMailbox(t, a, "Old"); mb.SpecialUse != SpecialAll || mb.SpecialUse.String() != `\All` {
		t.Errorf("special use %v", mb.SpecialUse)
	}
	if err := a.Subscribe(ctx, "Not/There", true); err != nil {
		t.Fatal(err)
	}
	if err := a.Subscribe(ctx, "Junk", false); err != nil {
		t.Fatal(err)
	}
	subs, _ := a.Subscriptions()
	wantSubs := []string{"Archive", "Drafts", "INBOX", "Not/There", "Old/Work/Projects/moxd", "Sent", "Trash"}
	if !reflect.DeepEqual(subs, wantSubs) {
		t.Errorf("subscriptions %v, want %v", subs, wantSubs)
	}
	checkInvariants(t, a)
}

// TestRenameInbox checks RFC 9051 §6.3.6: renaming INBOX moves its
// messages to the new mailbox and leaves INBOX empty, with tombstones.
func TestRenameInbox(t *testing.T) {
	a, tmp := newAccount(t, Options{})
	ctx := testCtx(t)
	deliver(t, a, tmp, "", msgText("one", "1"), FlagSeen, "$Work")
	deliver(t, a, tmp, "", msgText("two", "2"), 0)
	before := mustMailbox(t, a, "INBOX")
	if err := a.RenameMailbox(ctx, "INBOX", "Saved/Inbox"); err != nil {
		t.Fatal(err)
	}
	inbox := mustMailbox(t, a, "INBOX")
	saved := mustMailbox(t, a, "Saved/Inbox")
	if inbox.ID != before.ID || inbox.UIDValidity != before.UIDValidity || inbox.Summary.Messages != 0 || inbox.Summary.UIDNext != 3 {
		t.Errorf("inbox after rename %+v", inbox)
	}
	if saved.Summary.Messages != 2 || saved.Summary.Unseen != 1 || !reflect.DeepEqual(saved.Keywords, []string{"$Work"}) {
		t.Errorf("new mailbox %+v", saved)
	}
	cs, err := a.Changes(inbox.ID, inbox.UIDValidity, before.Summary.HighestModSeq, 0)
	if err != nil || !reflect.DeepEqual(cs.Vanished, []uint32{1, 2}) {
		t.Errorf("inbox changes %+v %v", cs, err)
	}
	checkInvariants(t, a)
}
