package account

import (
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestDeletedSize follows the bytes of \Deleted messages in the mailbox
// summary (IMAP STATUS DELETED-STORAGE) through deliveries, flag changes,
// copies and expunges, and the upgrade of summaries that lack it.
func TestDeletedSize(t *testing.T) {
	a, tmp := newAccount(t, Options{})
	ctx := testCtx(t)
	sizes := map[uint32]int64{}
	for i, flags := range []Flags{FlagDeleted, 0, FlagDeleted | FlagSeen, 0} {
		deliver(t, a, tmp, "INBOX", msgText("message "+string(rune('a'+i)), "body"+strings.Repeat("x", i*100)), flags)
	}
	msgs, err := a.Messages(mustMailbox(t, a, "INBOX").ID, mustMailbox(t, a, "INBOX").UIDValidity, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		sizes[m.UID] = m.Size
	}
	check := func(name string, want int64, deleted uint32) {
		t.Helper()
		s := mustMailbox(t, a, name).Summary
		if s.DeletedSize != want || s.Deleted != deleted {
			t.Errorf("%s: %d deleted with %d bytes, want %d with %d", name, s.Deleted, s.DeletedSize, deleted, want)
		}
	}
	check("INBOX", sizes[1]+sizes[3], 2)

	mb := mustMailbox(t, a, "INBOX")
	if _, err := a.Store(ctx, mb.ID, mb.UIDValidity, []UIDRange{{1, 2}}, StoreRemove, FlagDeleted, nil, 0); err != nil {
		t.Fatal(err)
	}
	check("INBOX", sizes[3], 1)
	if _, err := a.Store(ctx, mb.ID, mb.UIDValidity, []UIDRange{{4, 4}}, StoreAdd, FlagDeleted, nil, 0); err != nil {
		t.Fatal(err)
	}
	check("INBOX", sizes[3]+sizes[4], 2)
	// A copy keeps the flag, and counts in the destination.
	if _, err := a.Copy(ctx, mb.ID, mb.UIDValidity, []UIDRange{{3, 4}}, "Archive"); err != nil {
		t.Fatal(err)
	}
	check("Archive", sizes[3]+sizes[4], 2)
	if _, _, err := a.Expunge(ctx, mb.ID, mb.UIDValidity, []UIDRange{{4, 4}}); err != nil {
		t.Fatal(err)
	}
	check("INBOX", sizes[3], 1)
	checkInvariants(t, a)

	// Summaries written before deleted sizes were kept: Verify accepts
	// them, and Open counts them.
	err = a.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketSummary))
		return b.ForEach(func(k, v []byte) error {
			r, err := parseSummaryRec(v)
			if err != nil {
				return err
			}
			r.DeletedSize = -1
			return b.Put(k, r.marshal())
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, a)
	dir := a.dir
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	check("INBOX", sizes[3], 1)
	check("Archive", sizes[3]+sizes[4], 2)
	check("Sent", 0, 0)
	err = a.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketSummary)).ForEach(func(k, v []byte) error {
			if r, _ := parseSummaryRec(v); r.DeletedSize < 0 {
				t.Errorf("mailbox id %d: summary still without deleted size after Open", beU32(k))
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, a)
}
