package account

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// withDB runs f in a write transaction on a closed account's database.
func withDB(t *testing.T, dir string, f func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, indexName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(f); err != nil {
		t.Fatal(err)
	}
}

func verifyClean(t *testing.T, dir string) {
	t.Helper()
	problems, err := Verify(dir, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("verify: %s: %s", p.Where, p.What)
	}
}

// TestRecovery simulates a crash (files linked by an uncommitted
// transaction, temporary files, pending unlinks, an unpublished import) and
// checks that Open leaves nothing for Verify to report.
func TestRecovery(t *testing.T) {
	base := testDir(t)
	dir := filepath.Join(base, "acct")
	tmp := filepath.Join(base, "tmp")
	os.Mkdir(tmp, 0o700)
	a, err := Create(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	for i := range 3 {
		deliver(t, a, tmp, "", msgText(fmt.Sprintf("r%d", i), "x"), FlagDeleted)
	}
	im, err := a.BeginImport(ctx, "Imported")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := im.Add(ctx, []byte(msgText(fmt.Sprintf("imp%d", i), "y")), 0, nil, a.now()); err != nil {
			t.Fatal(err)
		}
	}
	if err := im.flush(ctx); err != nil {
		t.Fatal(err)
	}
	inbox := mustMailbox(t, a, "INBOX")
	msgs, _ := a.Messages(inbox.ID, inbox.UIDValidity, 1, 0)
	// Hold back unlinking as a backup would, then "crash" (close without
	// clearing the unlink records or removing files).
	a.backupMu.Lock()
	a.backups++
	a.backupMu.Unlock()
	if _, _, err := a.Expunge(ctx, inbox.ID, inbox.UIDValidity, []UIDRange{{1, 1}}); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if _, err := os.Stat(a.filePath(msgs[0].FileID)); err != nil {
		t.Fatalf("file unlinked during backup: %v", err)
	}
	var nextfile uint64
	withDB(t, dir, func(tx *bolt.Tx) error {
		nextfile = be64(tx.Bucket([]byte(bucketMeta)).Get([]byte(metaNextfile)))
		return nil
	})
	// Files of a batch that never committed, one in a new fan-out directory.
	for _, id := range []uint64{nextfile, nextfile + 1, nextfile + 5000} {
		os.MkdirAll(filepath.Dir(a.filePath(id)), 0o700)
		if err := os.WriteFile(a.filePath(id), []byte("uncommitted"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "tmp", "body-leftover"), []byte("x"), 0o600)

	problems, err := Verify(dir, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wheres []string
	for _, p := range problems {
		wheres = append(wheres, p.Where)
	}
	joined := strings.Join(wheres, "\n")
	for _, want := range []string{"(import staging)", fileWhere(nextfile), fileWhere(nextfile + 5000), fileWhere(msgs[0].FileID), "tmp/body-leftover"} {
		if !strings.Contains(joined, want) {
			t.Errorf("verify before open does not report %q; got:\n%s", want, joined)
		}
	}

	a, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a.filePath(msgs[0].FileID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unlinked file still there after open: %v", err)
	}
	if size, n := a.Usage(); n != 2 || size != 2*msgs[0].Size {
		t.Errorf("usage after recovery %d %d", size, n)
	}
	l, _ := a.Mailboxes()
	for _, mb := range l {
		if mb.Name == "Imported" {
			t.Errorf("unpublished import visible: %+v", mb)
		}
	}
	a.Close()
	verifyClean(t, dir)
}

// TestVerifyDamage plants damage and checks that Verify reports it with
// its location, and that fix repairs what it can.
func TestVerifyDamage(t *testing.T) {
	setup := func(t *testing.T) (dir string, inbox Mailbox, msgs []Message) {
		base := testDir(t)
		dir = filepath.Join(base, "acct")
		tmp := filepath.Join(base, "tmp")
		os.Mkdir(tmp, 0o700)
		a, err := Create(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			deliver(t, a, tmp, "", msgText(fmt.Sprintf("v%d", i), "x"), 0)
		}
		inbox = mustMailbox(t, a, "INBOX")
		if _, err := a.Copy(testCtx(t), inbox.ID, inbox.UIDValidity, []UIDRange{{1, 1}}, "Archive"); err != nil {
			t.Fatal(err)
		}
		msgs, _ = a.Messages(inbox.ID, inbox.UIDValidity, 1, 0)
		a.Close()
		verifyClean(t, dir)
		return dir, inbox, msgs
	}
	tests := []struct {
		name    string
		damage  func(t *testing.T, dir string, inbox Mailbox, msgs []Message)
		where   string // a substring of a reported Where
		fixable bool
	}{
		{"missing file", func(t *testing.T, dir string, inbox Mailbox, msgs []Message) {
			os.Remove(filepath.Join(dir, filePathRel(msgs[1].FileID)))
		}, "mailbox INBOX uid 2", true},
		{"stray file", func(t *testing.T, dir string, inbox Mailbox, msgs []Message) {
			// An id below nextfile that no message uses.
			os.WriteFile(filepath.Join(dir, filePathRel(0x100)), nil, 0o600)
			withDB(t, dir, func(tx *bolt.Tx) error {
				return tx.Bucket([]byte(bucketMeta)).Put([]byte(metaNextfile), key64(0x1000))
			})
		}, "file msg/0000/100", true},
		{"wrong summary", func(t *testing.T, dir string, inbox Mailbox, msgs []Message) {
			withDB(t, dir, func(tx *bolt.Tx) error {
				b := tx.Bucket([]byte(bucketSummary))
				s, _ := parseSummaryRec(b.Get(key32(inbox.ID)))
				s.Unseen += 5
				return b.Put(key32(inbox.ID), s.marshal())
			})
		}, "mailbox INBOX summary", true},
		{"bad refcount", func(t *testing.T, dir string, inbox Mailbox, msgs []Message) {
			withDB(t, dir, func(tx *bolt.Tx) error {
				b := tx.Bucket([]byte(bucketFiles))
				v, _ := setFileRefs(b.Get(key64(msgs[0].FileID)), 7)
				return b.Put(key64(msgs[0].FileID), v)
			})
		}, fileWhere(msgs0FileID), true},
		{"uid not below uidnext", func(t *testing.T, dir string, inbox Mailbox, msgs []Message) {
			withDB(t, dir, func(tx *bolt.Tx) error {
				b := tx.Bucket([]byte(bucketSummary))
				s, _ := parseSummaryRec(b.Get(key32(inbox.ID)))
				s.UIDNext = 2
				return b.Put(key32(inbox.ID), s.marshal())
			})
		}, "mailbox INBOX uid 3", true},
		{"missing modseq entry", func(t *testing.T, dir string, inbox Mailbox, msgs []Message) {
			withDB(t, dir, func(tx *bolt.Tx) error {
				return tx.Bucket([]byte(bucketModseq)).Delete(modseqKey(inbox.ID, msgs[2].ModSeq, 3))
			})
		}, "mailbox INBOX uid 3", true},
		{"database missing", func(t *testing.T, dir string, inbox Mailbox, msgs []Message) {
			os.Remove(filepath.Join(dir, indexName))
		}, indexName, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, inbox, msgs := setup(t)
			where := tc.where
			if where == fileWhere(msgs0FileID) {
				where = fileWhere(msgs[0].FileID)
			}
			tc.damage(t, dir, inbox, msgs)
			problems, err := Verify(dir, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, p := range problems {
				found = found || strings.Contains(p.Where, where)
				if p.Fixed {
					t.Errorf("problem marked fixed without fix: %+v", p)
				}
			}
			if !found {
				t.Fatalf("damage not reported at %q: %+v", where, problems)
			}
			if !tc.fixable {
				return
			}
			problems, err = Verify(dir, true, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range problems {
				if !p.Fixed {
					t.Errorf("not fixed: %+v", p)
				}
			}
			verifyClean(t, dir)
			// The repaired account opens and works.
			a, err := Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if _, err := a.Store(testCtx(t), inbox.ID, inbox.UIDValidity, []UIDRange{{1, 9}}, StoreAdd, FlagSeen, nil, 0); err != nil {
				t.Fatal(err)
			}
			checkInvariants(t, a)
		})
	}
}

// msgs0FileID is a placeholder in the table for the first message's file.
const msgs0FileID = 1<<64 - 1
