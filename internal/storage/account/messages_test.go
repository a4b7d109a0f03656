package account

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"testing"
	"time"
)

// fillInbox delivers n messages to INBOX (one shared body) and returns it.
func fillInbox(t testing.TB, a *Account, tmp string, n int) Mailbox {
	t.Helper()
	body := newBody(t, tmp, msgText("fill", "x"))
	ds := make([]Delivery, n)
	for i := range ds {
		ds[i] = Delivery{Body: body}
	}
	for i, r := range a.Deliver(testCtx(t), ds) {
		if r.Err != nil {
			t.Fatalf("delivery %d: %v", i, r.Err)
		}
	}
	return mustMailbox(t, a, "INBOX")
}

func TestStore(t *testing.T) {
	a, tmp := newAccount(t, Options{})
	ctx := testCtx(t)
	deliver(t, a, tmp, "", msgText("a", "a"), FlagSeen, "$Label1")
	deliver(t, a, tmp, "", msgText("b", "b"), FlagDraft)
	deliver(t, a, tmp, "", msgText("c", "c"), 0)
	mb := mustMailbox(t, a, "INBOX")
	all := []UIDRange{{1, 0xffffffff}}

	type want struct {
		changed  []uint32
		modified []uint32
		flags    []Flags
		keywords [][]string
	}
	tests := []struct {
		name  string
		uids  []UIDRange
		mode  StoreMode
		flags Flags
		kw    []string
		since uint64 // relative: 0 = none, 1 = the mailbox's modseq before the store
		want  want
	}{
		{"add seen", all, StoreAdd, FlagSeen, nil, 0,
			want{[]uint32{2, 3}, nil, []Flags{FlagSeen, FlagSeen | FlagDraft, FlagSeen}, [][]string{{"$Label1"}, nil, nil}}},
		{"add again changes nothing", all, StoreAdd, FlagSeen, nil, 0,
			want{nil, nil, []Flags{FlagSeen, FlagSeen | FlagDraft, FlagSeen}, [][]string{{"$Label1"}, nil, nil}}},
		{"keyword case-insensitive", []UIDRange{{1, 2}}, StoreAdd, 0, []string{"$label1"}, 0,
			want{[]uint32{2}, nil, []Flags{FlagSeen, FlagSeen | FlagDraft, FlagSeen}, [][]string{{"$Label1"}, {"$Label1"}, nil}}},
		{"remove", []UIDRange{{2, 3}}, StoreRemove, FlagSeen | FlagDraft, []string{"$LABEL1"}, 0,
			want{[]uint32{2, 3}, nil, []Flags{FlagSeen, 0, 0}, [][]string{{"$Label1"}, nil, nil}}},
		{"set", []UIDRange{{3, 3}, {1, 1}}, StoreSet, FlagFlagged | FlagDeleted, []string{"Work", "work"}, 0,
			want{[]uint32{1, 3}, nil, []Flags{FlagFlagged | FlagDeleted, 0, FlagFlagged | FlagDeleted}, [][]string{{"Work"}, nil, {"Work"}}}},
		{"unchangedsince", all, StoreAdd, FlagAnswered, nil, 1,
			want{[]uint32{2}, []uint32{1, 3}, []Flags{FlagFlagged | FlagDeleted, FlagAnswered, FlagFlagged | FlagDeleted}, [][]string{{"Work"}, nil, {"Work"}}}},
	}
	for _, tc := range tests {
		before, _ := a.Messages(mb.ID, mb.UIDValidity, 1, 0)
		modseqBefore := mustMailbox(t, a, "INBOX").Summary.HighestModSeq
		since := uint64(0)
		if tc.since == 1 {
			// Message 2 is unchanged since the previous test; 1 and 3 were changed by it.
			since = before[1].ModSeq
		}
		res, err := a.Store(ctx, mb.ID, mb.UIDValidity, tc.uids, tc.mode, tc.flags, tc.kw, since)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := uidsOf(res.Changed); !slices.Equal(got, tc.want.changed) {
			t.Errorf("%s: changed %v, want %v", tc.name, got, tc.want.changed)
		}
		if !slices.Equal(res.Modified, tc.want.modified) {
			t.Errorf("%s: modified %v, want %v", tc.name, res.Modified, tc.want.modified)
		}
		after, _ := a.Messages(mb.ID, mb.UIDValidity, 1, 0)
		sum := mustMailbox(t, a, "INBOX").Summary
		for i, m := range after {
			if m.Flags != tc.want.flags[i] || !reflect.DeepEqual(m.Keywords, tc.want.keywords[i]) {
				t.Errorf("%s: uid %d flags %v keywords %v, want %v %v", tc.name, m.UID, m.Flags, m.Keywords, tc.want.flags[i], tc.want.keywords[i])
			}
			// RFC 7162 §3.2: only changed messages get a new modseq.
			changed := slices.Contains(tc.want.changed, m.UID)
			if changed != (m.ModSeq != before[i].ModSeq) || changed && m.ModSeq != sum.HighestModSeq {
				t.Errorf("%s: uid %d modseq %d -> %d (changed %v, highest %d)", tc.name, m.UID, before[i].ModSeq, m.ModSeq, changed, sum.HighestModSeq)
			}
		}
		if len(tc.want.changed) == 0 && sum.HighestModSeq != modseqBefore {
			t.Errorf("%s: no change but highest modseq %d -> %d", tc.name, modseqBefore, sum.HighestModSeq)
		}
		if res.ModSeq != sum.HighestModSeq {
			t.Errorf("%s: result modseq %d, mailbox %d", tc.name, res.ModSeq, sum.HighestModSeq)
		}
	}
	if _, err := a.Store(ctx, mb.ID, mb.UIDValidity, all, StoreAdd, 0, []string{"no spaces"}, 0); !errors.Is(err, ErrBadName) {
		t.Errorf("bad keyword: %v", err)
	}
	if _, err := a.Store(ctx, mb.ID, mb.UIDValidity+1, all, StoreAdd, FlagSeen, nil, 0); !errors.Is(err, ErrUIDValidity) {
		t.Errorf("stale uidvalidity: %v", err)
	}
	if got := mustMailbox(t, a, "INBOX").Keywords; !reflect.DeepEqual(got, []string{"$Label1", "Work"}) {
		t.Errorf("mailbox keywords %v", got)
	}
	checkInvariants(t, a)
}

// TestStoreChunks checks that a large STORE is split into transactions.
func TestStoreChunks(t *testing.T) {
	a, tmp := newAccount(t, Options{})
	mb := fillInbox(t, a, tmp, storeChunk+10)
	before := a.commits.Load()
	res, err := a.Store(testCtx(t), mb.ID, mb.UIDValidity, []UIDRange{{1, 0xffffffff}}, StoreAdd, FlagSeen, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changed) != storeChunk+10 {
		t.Errorf("%d changed", len(res.Changed))
	}
	if n := a.commits.Load() - before; n != 2 {
		t.Errorf("%d transactions for %d messages, want 2", n, storeChunk+10)
	}
	if s := mustMailbox(t, a, "INBOX").Summary; s.Unseen != 0 || s.HighestModSeq != res.ModSeq {
		t.Errorf("summary %+v, result modseq %d", s, res.ModSeq)
	}
	checkInvariants(t, a)
}

func TestCopyMoveExpungeChanges(t *testing.T) {
	a, tmp := newAccount(t, Options{})
	ctx := testCtx(t)
	for i := range 5 {
		deliver(t, a, tmp, "", msgText(fmt.Sprintf("m%d", i), "x"), 0)
	}
	inbox := mustMailbox(t, a, "INBOX")
	archive := mustMailbox(t, a, "Archive")
	start := inbox.Summary.HighestModSeq

	cr, err := a.Copy(ctx, inbox.ID, inbox.UIDValidity, []UIDRange{{2, 3}, {5, 5}}, "Archive")
	if err != nil {
		t.Fatal(err)
	}
	if cr.UIDValidity != archive.UIDValidity || !slices.Equal(cr.From, []uint32{2, 3, 5}) || !slices.Equal(cr.To, []uint32{1, 2, 3}) {
		t.Errorf("copy %+v", cr)
	}
	src, _ := a.Messages(inbox.ID, inbox.UIDValidity, 1, 0)
	dst, _ := a.Messages(archive.ID, archive.UIDValidity, 1, 0)
	if dst[0].FileID != src[1].FileID || dst[0].CreateSeq != cr.ModSeq {
		t.Errorf("copy shares no file or wrong createseq: %+v %+v", dst[0], src[1])
	}
	if _, err := a.Copy(ctx, inbox.ID, inbox.UIDValidity, []UIDRange{{1, 1}}, "Nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("copy to missing mailbox: %v", err)
	}

	mr, err := a.Move(ctx, inbox.ID, inbox.UIDValidity, []UIDRange{{1, 2}}, "Archive")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(mr.From, []uint32{1, 2}) || !slices.Equal(mr.To, []uint32{4, 5}) {
		t.Errorf("move %+v", mr)
	}
	if uids, _ := a.UIDs(inbox.ID, inbox.UIDValidity); !slices.Equal(uids, []uint32{3, 4, 5}) {
		t.Errorf("inbox after move %v", uids)
	}

	// Expunge only removes \Deleted messages within the range.
	a.Store(ctx, inbox.ID, inbox.UIDValidity, []UIDRange{{3, 4}}, StoreAdd, FlagDeleted, nil, 0)
	a.Store(ctx, inbox.ID, inbox.UIDValidity, []UIDRange{{5, 5}}, StoreAdd, FlagDeleted, nil, 0)
	exp, modseq, err := a.Expunge(ctx, inbox.ID, inbox.UIDValidity, []UIDRange{{1, 3}, {5, 9}})
	if err != nil || !slices.Equal(exp, []uint32{3, 5}) {
		t.Fatalf("expunge %v %v", exp, err)
	}
	if s := mustMailbox(t, a, "INBOX").Summary; s.HighestModSeq != modseq || s.Messages != 1 || s.Deleted != 1 {
		t.Errorf("summary after expunge %+v (modseq %d)", s, modseq)
	}
	exp, _, err = a.Expunge(ctx, inbox.ID, inbox.UIDValidity, nil)
	if err != nil || !slices.Equal(exp, []uint32{4}) {
		t.Fatalf("expunge all deleted %v %v", exp, err)
	}

	// Changes since the start: everything that left the inbox vanished.
	cs, err := a.Changes(inbox.ID, inbox.UIDValidity, start, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs.Changed) != 0 || !slices.Equal(cs.Vanished, []uint32{1, 2, 3, 4, 5}) || cs.Last != cs.HighestModSeq {
		t.Errorf("changes %+v", cs)
	}
	// Changes since the move: the flag change on 3 was followed by its
	// expunge, so only tombstones remain.
	cs, _ = a.Changes(inbox.ID, inbox.UIDValidity, mr.ModSeq, 0)
	if !slices.Equal(cs.Vanished, []uint32{3, 4, 5}) {
		t.Errorf("changes since move %+v", cs)
	}
	// Archive: the copies and moves are changes with createseq.
	cs, _ = a.Changes(archive.ID, archive.UIDValidity, 0, 0)
	if got := uidsOf(cs.Changed); !slices.Equal(got, []uint32{1, 2, 3, 4, 5}) {
		t.Errorf("archive changes %v", got)
	}
	// max pages without splitting a modseq: the copy (3 entries) and the
	// move (2 entries) are separate modseqs.
	cs, _ = a.Changes(archive.ID, archive.UIDValidity, start, 1)
	if got := uidsOf(cs.Changed); !slices.Equal(got, []uint32{1, 2, 3}) || cs.Last != cr.ModSeq {
		t.Errorf("first page %v last %d, want copy at %d", got, cs.Last, cr.ModSeq)
	}
	cs, _ = a.Changes(archive.ID, archive.UIDValidity, cs.Last, 1)
	if got := uidsOf(cs.Changed); !slices.Equal(got, []uint32{4, 5}) || cs.Last != cs.HighestModSeq {
		t.Errorf("second page %v last %d", got, cs.Last)
	}
	checkInvariants(t, a)
}

func TestAppend(t *testing.T) {
	now := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	a, tmp := newAccount(t, Options{Quota: 10000})
	ctx := testCtx(t)
	body := newBody(t, tmp, msgText("draft", "d"))
	d, err := a.Append(ctx, "Drafts", body, FlagDraft|FlagSeen, []string{"$MDNSent"}, now)
	if err != nil {
		t.Fatal(err)
	}
	drafts := mustMailbox(t, a, "Drafts")
	if d.UID != 1 || d.UIDValidity != drafts.UIDValidity || d.MailboxID != drafts.ID {
		t.Errorf("appended %+v", d)
	}
	msgs, _ := a.Messages(drafts.ID, drafts.UIDValidity, 1, 0)
	if !msgs[0].Received.Equal(now) || msgs[0].Flags != FlagDraft|FlagSeen {
		t.Errorf("message %+v", msgs[0])
	}
	if _, err := a.Append(ctx, "Missing", body, 0, nil, now); !errors.Is(err, ErrNotFound) {
		t.Errorf("append to missing mailbox: %v", err)
	}
	if _, err := mustMailboxErr(a, "Missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("append created the mailbox: %v", err)
	}
	big := newBody(t, tmp, msgText("big", string(make([]byte, 20000))))
	if _, err := a.Append(ctx, "Drafts", big, 0, nil, now); !errors.Is(err, ErrQuota) {
		t.Errorf("append over quota: %v", err)
	}
	a.SetQuota(0)
	if _, err := a.Append(ctx, "Drafts", big, 0, nil, now); err != nil {
		t.Errorf("append without quota: %v", err)
	}
	a2, tmp2 := newAccount(t, Options{MaxMessage: 100})
	if _, err := a2.Append(ctx, "INBOX", newBody(t, tmp2, msgText("big", string(make([]byte, 200)))), 0, nil, now); !errors.Is(err, ErrTooLarge) {
		t.Errorf("append too large: %v", err)
	}
	checkInvariants(t, a)
}

func mustMailboxErr(a *Account, name string) (Mailbox, error) { return a.Mailbox(name) }

// TestRandomOps runs a long random sequence of operations and checks every
// invariant of docs/storage.md afterwards (summaries equal recounts,
// modseq index, reference counts, files).
func TestRandomOps(t *testing.T) {
	a, tmp := newAccount(t, Options{})
	ctx := testCtx(t)
	rng := rand.New(rand.NewPCG(1, 2))
	names := []string{"INBOX", "Archive", "Lists/a", "Lists/b", "Trash"}
	bodies := make([]*Body, 4)
	for i := range bodies {
		bodies[i] = newBody(t, tmp, msgText(fmt.Sprintf("random %d", i), fmt.Sprint(i)))
	}
	kws := []string{"$Label1", "Work", "$Junk"}
	pick := func() Mailbox {
		for {
			mb, err := a.Mailbox(names[rng.IntN(len(names))])
			if err == nil {
				return mb
			}
		}
	}
	rangeOf := func() []UIDRange {
		f := uint32(rng.IntN(30) + 1)
		return []UIDRange{{f, f + uint32(rng.IntN(10))}}
	}
	for i := range 600 {
		mb := pick()
		var err error
		switch op := rng.IntN(10); op {
		case 0, 1, 2:
			var ds []Delivery
			for range rng.IntN(4) + 1 {
				ds = append(ds, Delivery{Body: bodies[rng.IntN(len(bodies))], Mailbox: names[rng.IntN(len(names))],
					Flags: Flags(rng.IntN(32)), Keywords: kws[:rng.IntN(len(kws)+1)]})
			}
			for _, r := range a.Deliver(ctx, ds) {
				if r.Err != nil {
					err = r.Err
				}
			}
		case 3:
			_, err = a.Store(ctx, mb.ID, mb.UIDValidity, rangeOf(), StoreMode(rng.IntN(3)+1), Flags(rng.IntN(32)), kws[rng.IntN(len(kws)):], uint64(rng.IntN(2))*mb.Summary.HighestModSeq)
		case 4:
			_, err = a.Copy(ctx, mb.ID, mb.UIDValidity, rangeOf(), names[rng.IntN(len(names))])
		case 5:
			_, err = a.Move(ctx, mb.ID, mb.UIDValidity, rangeOf(), names[rng.IntN(len(names))])
		case 6:
			_, _, err = a.Expunge(ctx, mb.ID, mb.UIDValidity, nil)
		case 7:
			if mb.Name != "INBOX" && rng.IntN(4) == 0 {
				err = a.DeleteMailbox(ctx, mb.Name)
				if errors.Is(err, ErrBadName) { // has children
					err = nil
				}
			}
		case 8:
			_, err = a.CreateMailbox(ctx, names[rng.IntN(len(names))], SpecialNone)
			if errors.Is(err, ErrExists) {
				err = nil
			}
		case 9:
			if rng.IntN(5) == 0 {
				from := names[rng.IntN(len(names))]
				to := fmt.Sprintf("Renamed/%d", i)
				err = a.RenameMailbox(ctx, from, to)
				if errors.Is(err, ErrNotFound) {
					err = nil
				}
				names = append(names, to)
			}
		}
		if err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatalf("op %d: %v", i, err)
		}
	}
	checkInvariants(t, a)
	// The files on disk are exactly the referenced ones.
	var total int64
	l, _ := a.Mailboxes()
	for _, mb := range l {
		total += int64(mb.Summary.Messages)
	}
	if _, n := a.Usage(); n != total {
		t.Errorf("usage counts %d messages, mailboxes %d", n, total)
	}
	if entries, _ := os.ReadDir(a.dir + "/tmp"); len(entries) != 0 {
		t.Errorf("account tmp not empty: %v", entries)
	}
}
