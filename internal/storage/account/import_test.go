package account

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestImport(t *testing.T) {
	a, tmp := newAccount(t, Options{})
	ctx := testCtx(t)
	deliver(t, a, tmp, "Imported", msgText("existing", "e"), 0)
	im, err := a.BeginImport(ctx, "Imported")
	if err != nil {
		t.Fatal(err)
	}
	const n = 2*importChunkMessages + 17
	received := time.Date(2019, 3, 4, 5, 6, 7, 0, time.UTC)
	for i := range n {
		text := msgText(fmt.Sprintf("import %d", i), fmt.Sprint(i))
		if i%2 == 0 {
			err = im.Add(ctx, []byte(text), FlagSeen, []string{"$Imported"}, received)
		} else {
			b := newBody(t, im.TmpDir(), text)
			err = im.AddBody(ctx, b, 0, nil, received)
			b.Remove()
		}
		if err != nil {
			t.Fatalf("add %d: %v", i, err)
		}
	}
	// Staged messages are invisible until published.
	if mb := mustMailbox(t, a, "Imported"); mb.Summary.Messages != 1 {
		t.Errorf("before publish %+v", mb.Summary)
	}
	if l, _ := a.Mailboxes(); len(l) != 7 {
		t.Errorf("staging mailbox listed: %d mailboxes", len(l))
	}
	mb, count, err := im.Publish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if count != n || mb.Summary.Messages != n+1 || mb.Summary.UIDNext != n+2 || mb.Summary.Unseen != n/2+1 {
		t.Errorf("published %d, mailbox %+v", count, mb.Summary)
	}
	// UIDs ascend in the order the messages were added.
	msgs, err := a.Messages(mb.ID, mb.UIDValidity, 2, 0)
	if err != nil || len(msgs) != n {
		t.Fatalf("%d messages, %v", len(msgs), err)
	}
	for _, i := range []int{0, 1, 999, 1000, n - 1} {
		f, m, _, err := a.OpenMessage(mb.ID, mb.UIDValidity, msgs[i].UID)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(f)
		f.Close()
		if !strings.Contains(string(data), fmt.Sprintf("Subject: import %d\r\n", i)) || !m.Received.Equal(received) || m.UID != uint32(i+2) {
			t.Errorf("uid %d holds %q", m.UID, data[:60])
		}
	}
	if err := im.Add(ctx, []byte("x"), 0, nil, received); err == nil {
		t.Error("add after publish accepted")
	}
	checkInvariants(t, a)

	// Aborting drops everything staged, the target is not created.
	im, err = a.BeginImport(ctx, "Aborted")
	if err != nil {
		t.Fatal(err)
	}
	sizeBefore, _ := a.Usage()
	for i := range importChunkMessages + 5 {
		if err := im.Add(ctx, []byte(msgText(fmt.Sprint(i), "a")), 0, nil, received); err != nil {
			t.Fatal(err)
		}
	}
	if err := im.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Mailbox("Aborted"); !errors.Is(err, ErrNotFound) {
		t.Errorf("aborted import target: %v", err)
	}
	if size, _ := a.Usage(); size != sizeBefore {
		t.Errorf("usage after abort %d, before %d", size, sizeBefore)
	}
	checkInvariants(t, a)
	if l, _ := os.ReadDir(filepath.Join(a.dir, "tmp")); len(l) != 0 {
		t.Errorf("staging files left: %d", len(l))
	}
}

func TestImportQuota(t *testing.T) {
	a, _ := newAccount(t, Options{Quota: 5000})
	ctx := testCtx(t)
	im, err := a.BeginImport(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	var added int
	for i := range 100 {
		err = im.Add(ctx, []byte(msgText(fmt.Sprint(i), strings.Repeat("q", 100))), 0, nil, time.Time{})
		if err != nil {
			break
		}
		added++
	}
	if !errors.Is(err, ErrQuota) || added == 0 {
		t.Fatalf("after %d messages: %v", added, err)
	}
	_, n, err := im.Publish(ctx)
	if err != nil || n != added {
		t.Fatalf("published %d of %d: %v", n, added, err)
	}
	if size, _ := a.Usage(); size > 5000 {
		t.Errorf("usage %d above quota", size)
	}
	checkInvariants(t, a)
}

func TestBackup(t *testing.T) {
	a, tmp := newAccount(t, Options{})
	ctx := testCtx(t)
	for i := range 5 {
		deliver(t, a, tmp, "", msgText(fmt.Sprintf("b%d", i), "b"), FlagDeleted)
	}
	inbox := mustMailbox(t, a, "INBOX")
	dst := filepath.Join(testDir(t), "backup")
	if err := a.Backup(ctx, dst); err != nil {
		t.Fatal(err)
	}
	if err := a.Backup(ctx, dst); err == nil {
		t.Error("backup over an existing backup accepted")
	}
	// Messages expunged after the backup do not affect it.
	if _, _, err := a.Expunge(ctx, inbox.ID, inbox.UIDValidity, nil); err != nil {
		t.Fatal(err)
	}
	settle(t, a)
	verifyClean(t, dst)
	b, err := Open(dst, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	bi := mustMailbox(t, b, "INBOX")
	if bi.Summary.Messages != 5 || bi.UIDValidity != inbox.UIDValidity {
		t.Errorf("backup inbox %+v", bi)
	}
	f, _, _, err := b.OpenMessage(bi.ID, bi.UIDValidity, 3)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(f)
	f.Close()
	if !strings.Contains(string(data), "Subject: b2\r\n") {
		t.Errorf("backup message %q", data)
	}
}

// TestBackupHoldsUnlink checks that files are not removed while a backup
// runs, and are removed after it.
func TestBackupHoldsUnlink(t *testing.T) {
	a, tmp := newAccount(t, Options{})
	ctx := testCtx(t)
	deliver(t, a, tmp, "", msgText("held", "h"), FlagDeleted)
	inbox := mustMailbox(t, a, "INBOX")
	msgs, _ := a.Messages(inbox.ID, inbox.UIDValidity, 1, 0)
	path := a.filePath(msgs[0].FileID)
	a.backupMu.Lock()
	a.backups++
	a.backupMu.Unlock()
	if _, _, err := a.Expunge(ctx, inbox.ID, inbox.UIDValidity, nil); err != nil {
		t.Fatal(err)
	}
	settle(t, a)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("file removed during backup: %v", err)
	}
	a.backupMu.Lock()
	a.backups--
	a.backupMu.Unlock()
	settle(t, a)
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("file kept after backup: %v", err)
	}
	checkInvariants(t, a)
}

func TestOnChange(t *testing.T) {
	var got []Change
	ch := make(chan Change, 100)
	a, tmp := newAccount(t, Options{OnChange: func(c Change) { ch <- c }})
	ctx := testCtx(t)
	d := deliver(t, a, tmp, "", msgText("c", "c"), 0)
	if _, err := a.Store(ctx, d.MailboxID, d.UIDValidity, []UIDRange{{1, 1}}, StoreAdd, FlagSeen, nil, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateMailbox(ctx, "New", 0); err != nil {
		t.Fatal(err)
	}
	settle(t, a)
	close(ch)
	for c := range ch {
		got = append(got, c)
	}
	inbox := mustMailbox(t, a, "INBOX")
	var inboxMods []uint64
	var listChange bool
	for _, c := range got {
		if c.MailboxID == inbox.ID {
			inboxMods = append(inboxMods, c.ModSeq)
		}
		listChange = listChange || c.MailboxID == 0
	}
	if len(inboxMods) != 2 || inboxMods[0] != d.ModSeq || inboxMods[1] != inbox.Summary.HighestModSeq || !listChange {
		t.Errorf("changes %+v", got)
	}
	if slices.ContainsFunc(got, func(c Change) bool { return c.ModSeq == 0 }) {
		t.Errorf("change without modseq: %+v", got)
	}
}
