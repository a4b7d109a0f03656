package account

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// testClock is an Options.Now that tests move forward.
type testClock struct{ unix atomic.Int64 }

func newTestClock(start time.Time) *testClock {
	c := &testClock{}
	c.unix.Store(start.Unix())
	return c
}

func (c *testClock) now() time.Time          { return time.Unix(c.unix.Load(), 0) }
func (c *testClock) advance(d time.Duration) { c.unix.Add(int64(d / time.Second)) }
func (c *testClock) set(t time.Time)         { c.unix.Store(t.Unix()) }

func (c *testClock) opts(o Options) Options {
	o.Now = c.now
	return o
}

func sortedKeywords(m Message) []string {
	l := slices.Clone(m.Keywords)
	slices.Sort(l)
	return l
}

// messagesOf returns all messages of mailbox name.
func messagesOf(t *testing.T, a *Account, name string) []Message {
	t.Helper()
	mb := mustMailbox(t, a, name)
	l, err := a.Messages(mb.ID, mb.UIDValidity, 1, 0)
	if err != nil {
		t.Fatalf("messages of %s: %v", name, err)
	}
	return l
}

// lastMessage returns the message with the highest uid in mailbox name.
func lastMessage(t *testing.T, a *Account, name string) Message {
	t.Helper()
	l := messagesOf(t, a, name)
	if len(l) == 0 {
		t.Fatalf("mailbox %s is empty", name)
	}
	return l[len(l)-1]
}

// checkJunk fails the test unless m has exactly keywords kw (sorted) and
// training state tr.
func checkJunk(t *testing.T, what string, m Message, tr Training, kw ...string) {
	t.Helper()
	slices.Sort(kw)
	if got := sortedKeywords(m); !slices.Equal(got, kw) || m.Training != tr {
		t.Errorf("%s: keywords %v, training %s; want %v, %s", what, got, m.Training, kw, tr)
	}
}

func TestJunkFlagsDeliverAppend(t *testing.T) {
	a, tmp := newAccount(t, Options{})
	ctx := testCtx(t)
	for _, tc := range []struct {
		mailbox string
		given   []string
		want    []string
		tr      Training
	}{
		{"Junk", nil, []string{"$Junk"}, TrainSpam},
		{"spam", nil, []string{"$Junk"}, TrainSpam},
		{"Junk/Phishing", []string{"work"}, []string{"$Junk", "work"}, TrainSpam},
		{"Archive", nil, []string{"$NotJunk"}, TrainHam},
		{"Lists/moxd", nil, []string{"$NotJunk"}, TrainHam},
		{"Junkyard", nil, []string{"$NotJunk"}, TrainHam}, // not "Junk" nor below it
		{"", nil, nil, TrainNone},                         // INBOX
		{"INBOX/Receipts", nil, nil, TrainNone},
		{"Neutral stuff", nil, nil, TrainNone},
		{"DMARC", nil, nil, TrainNone},
		{"Rejects", nil, nil, TrainNone},
		// Explicit junk keywords of the delivery win over the rule.
		{"Junk", []string{"$notjunk"}, []string{"$NotJunk"}, TrainHam}, // the account spells it $NotJunk already
		{"", []string{"$Junk"}, []string{"$Junk"}, TrainSpam},
	} {
		deliver(t, a, tmp, tc.mailbox, msgText("d", "d"), 0, tc.given...)
		name := tc.mailbox
		if name == "" {
			name = "INBOX"
		}
		checkJunk(t, "deliver to "+name+" with "+fmtKeywords(tc.given), lastMessage(t, a, name), tc.tr, tc.want...)
	}

	// APPEND: the same rules, and explicit junk keywords are kept.
	for _, tc := range []struct {
		mailbox string
		given   []string
		want    []string
		tr      Training
	}{
		{"Junk", []string{"work"}, []string{"$Junk", "work"}, TrainSpam},
		{"Sent", nil, []string{"$NotJunk"}, TrainHam},
		{"INBOX", []string{"$NotJunk"}, []string{"$NotJunk"}, TrainHam},
		{"Junk", []string{"$NotJunk"}, []string{"$NotJunk"}, TrainHam},
		{"Archive", []string{"$Junk", "$NotJunk"}, []string{"$Junk", "$NotJunk"}, TrainNone},
	} {
		if _, err := a.Append(ctx, tc.mailbox, newBody(t, tmp, msgText("a", "a")), FlagSeen, tc.given, time.Time{}); err != nil {
			t.Fatalf("append to %s: %v", tc.mailbox, err)
		}
		m := lastMessage(t, a, tc.mailbox)
		checkJunk(t, "append to "+tc.mailbox+" with "+fmtKeywords(tc.given), m, tc.tr, tc.want...)
		if m.Flags != FlagSeen {
			t.Errorf("append to %s: flags %v, want \\Seen", tc.mailbox, m.Flags)
		}
	}
	if kw := mustMailbox(t, a, "Junk").Keywords; !slices.Contains(kw, "$Junk") {
		t.Errorf("Junk keywords in use %v, want $Junk among them (for FLAGS)", kw)
	}
	checkInvariants(t, a)
}

func fmtKeywords(l []string) string {
	if len(l) == 0 {
		return "no keywords"
	}
	return fmt.Sprintf("keywords %v", l)
}

func TestJunkFlagsCopyMove(t *testing.T) {
	a, tmp := newAccount(t, Options{})
	ctx := testCtx(t)
	deliver(t, a, tmp, "", msgText("ham", "x"), 0, "$NotJunk", "work")
	deliver(t, a, tmp, "Junk", msgText("spam", "x"), 0)
	inbox, junk := mustMailbox(t, a, "INBOX"), mustMailbox(t, a, "Junk")

	// COPY INBOX -> Junk sets $Junk and clears $NotJunk on the copy only.
	res, err := a.Copy(ctx, inbox.ID, inbox.UIDValidity, []UIDRange{{1, 1}}, "Junk")
	if err != nil || len(res.To) != 1 {
		t.Fatalf("copy: %+v %v", res, err)
	}
	checkJunk(t, "copy in Junk", lastMessage(t, a, "Junk"), TrainSpam, "$Junk", "work")
	checkJunk(t, "original in INBOX", messagesOf(t, a, "INBOX")[0], TrainHam, "$NotJunk", "work")

	// MOVE Junk -> INBOX clears $Junk.
	if _, err := a.Move(ctx, junk.ID, junk.UIDValidity, []UIDRange{{1, 1}}, "INBOX"); err != nil {
		t.Fatal(err)
	}
	checkJunk(t, "moved to INBOX", lastMessage(t, a, "INBOX"), TrainNone)
	if l := messagesOf(t, a, "Junk"); len(l) != 1 {
		t.Errorf("Junk has %d messages after the move, want 1 (the copy)", len(l))
	}

	// MOVE INBOX -> Archive sets $NotJunk.
	if _, err := a.Move(ctx, inbox.ID, inbox.UIDValidity, []UIDRange{{2, 2}}, "Archive"); err != nil {
		t.Fatal(err)
	}
	checkJunk(t, "moved to Archive", lastMessage(t, a, "Archive"), TrainHam, "$NotJunk")

	// RENAME applies no rule: the messages of Junk keep $Junk in "Old".
	if err := a.RenameMailbox(ctx, "Junk", "Old"); err != nil {
		t.Fatal(err)
	}
	checkJunk(t, "renamed Junk", lastMessage(t, a, "Old"), TrainSpam, "$Junk", "work")
	checkInvariants(t, a)
}

func TestJunkFlagsCustomAndOff(t *testing.T) {
	rules := JunkRules{Rules: []JunkRule{
		{regexp.MustCompile(`(?i)^(?:lists/.*)$`), JunkFlagJunk},
		{regexp.MustCompile(`(?i)^(?:archive)$`), JunkFlagNeither},
		{regexp.MustCompile(`(?i)^(?:ham)$`), JunkFlagNotJunk},
	}}
	a, tmp := newAccount(t, Options{Junk: rules})
	ctx := testCtx(t)
	deliver(t, a, tmp, "Lists/spamlist", msgText("l", "l"), 0)
	checkJunk(t, "custom rule, Lists/spamlist", lastMessage(t, a, "Lists/spamlist"), TrainSpam, "$Junk")
	deliver(t, a, tmp, "Ham", msgText("h", "h"), 0)
	checkJunk(t, "custom rule, Ham", lastMessage(t, a, "Ham"), TrainHam, "$NotJunk")
	// No rule matches Junk: the message keeps what it came with.
	deliver(t, a, tmp, "Junk", msgText("j", "j"), 0)
	checkJunk(t, "no matching rule, Junk", lastMessage(t, a, "Junk"), TrainNone)
	lists := mustMailbox(t, a, "Lists/spamlist")
	if _, err := a.Copy(ctx, lists.ID, lists.UIDValidity, []UIDRange{{1, 1}}, "Archive"); err != nil {
		t.Fatal(err)
	}
	checkJunk(t, "custom neither rule, copy to Archive", lastMessage(t, a, "Archive"), TrainNone)
	if _, err := a.Copy(ctx, lists.ID, lists.UIDValidity, []UIDRange{{1, 1}}, "Sent"); err != nil {
		t.Fatal(err)
	}
	checkJunk(t, "no matching rule, copy to Sent", lastMessage(t, a, "Sent"), TrainSpam, "$Junk")

	// Off: nothing is set or cleared.
	a.SetJunkRules(JunkRules{Off: true})
	deliver(t, a, tmp, "Junk", msgText("off", "off"), 0)
	checkJunk(t, "off, deliver to Junk", lastMessage(t, a, "Junk"), TrainNone)
	deliver(t, a, tmp, "Archive", msgText("off", "off"), 0)
	checkJunk(t, "off, deliver to Archive", lastMessage(t, a, "Archive"), TrainNone)
	if _, err := a.Copy(ctx, lists.ID, lists.UIDValidity, []UIDRange{{1, 1}}, "INBOX"); err != nil {
		t.Fatal(err)
	}
	checkJunk(t, "off, copy to INBOX", lastMessage(t, a, "INBOX"), TrainSpam, "$Junk")

	// Back to the defaults.
	a.SetJunkRules(JunkRules{})
	deliver(t, a, tmp, "Junk", msgText("def", "def"), 0)
	checkJunk(t, "defaults again, Junk", lastMessage(t, a, "Junk"), TrainSpam, "$Junk")
	checkInvariants(t, a)
}

func TestTrainingFollowsStore(t *testing.T) {
	clock := newTestClock(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	a, tmp := newAccount(t, clock.opts(Options{}))
	ctx := testCtx(t)
	deliver(t, a, tmp, "", msgText("s", "s"), 0, "work")
	mb := mustMailbox(t, a, "INBOX")
	saved := lastMessage(t, a, "INBOX").SaveDate
	one := []UIDRange{{1, 1}}
	for _, tc := range []struct {
		mode StoreMode
		kw   []string
		want []string
		tr   Training
	}{
		{StoreAdd, []string{"$Junk"}, []string{"$Junk", "work"}, TrainSpam},
		{StoreAdd, []string{"$NotJunk"}, []string{"$Junk", "$NotJunk", "work"}, TrainNone}, // both: neither
		{StoreRemove, []string{"$junk"}, []string{"$NotJunk", "work"}, TrainHam},
		{StoreSet, nil, nil, TrainNone},
		{StoreSet, []string{"$Junk"}, []string{"$Junk"}, TrainSpam},
	} {
		clock.advance(time.Hour)
		res, err := a.Store(ctx, mb.ID, mb.UIDValidity, one, tc.mode, 0, tc.kw, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Changed) != 1 || res.Changed[0].Training != tc.tr {
			t.Errorf("store %d %v: changed %+v, want training %s", tc.mode, tc.kw, res.Changed, tc.tr)
		}
		m := lastMessage(t, a, "INBOX")
		checkJunk(t, "after store", m, tc.tr, tc.want...)
		if !m.SaveDate.Equal(saved) {
			t.Errorf("store changed the save date from %v to %v", saved, m.SaveDate)
		}
	}
	// A STORE that changes only system flags keeps the training state.
	if _, err := a.Store(ctx, mb.ID, mb.UIDValidity, one, StoreAdd, FlagSeen, nil, 0); err != nil {
		t.Fatal(err)
	}
	checkJunk(t, "after \\Seen", lastMessage(t, a, "INBOX"), TrainSpam, "$Junk")
	checkInvariants(t, a)
}

func TestSaveDate(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := newTestClock(t0)
	a, tmp := newAccount(t, clock.opts(Options{}))
	ctx := testCtx(t)
	deliver(t, a, tmp, "", msgText("s", "s"), 0)
	inbox := mustMailbox(t, a, "INBOX")
	if m := lastMessage(t, a, "INBOX"); !m.SaveDate.Equal(t0) || !m.Received.Equal(t0) {
		t.Errorf("delivered: saved %v, received %v; want both %v", m.SaveDate, m.Received, t0)
	}

	// A flag change keeps the save date.
	clock.advance(time.Hour)
	if _, err := a.Store(ctx, inbox.ID, inbox.UIDValidity, []UIDRange{{1, 1}}, StoreAdd, FlagFlagged, []string{"work"}, 0); err != nil {
		t.Fatal(err)
	}
	if m := lastMessage(t, a, "INBOX"); !m.SaveDate.Equal(t0) {
		t.Errorf("after store: saved %v, want %v", m.SaveDate, t0)
	}

	// COPY: the copy is saved now and keeps its internal date; the
	// original keeps its save date.
	t2 := t0.Add(2 * time.Hour)
	clock.set(t2)
	if _, err := a.Copy(ctx, inbox.ID, inbox.UIDValidity, []UIDRange{{1, 1}}, "Archive"); err != nil {
		t.Fatal(err)
	}
	if m := lastMessage(t, a, "Archive"); !m.SaveDate.Equal(t2) || !m.Received.Equal(t0) {
		t.Errorf("copy: saved %v, received %v; want %v, %v", m.SaveDate, m.Received, t2, t0)
	}
	if m := lastMessage(t, a, "INBOX"); !m.SaveDate.Equal(t0) {
		t.Errorf("copied original: saved %v, want %v", m.SaveDate, t0)
	}

	// MOVE: saved at the move.
	t3 := t0.Add(3 * time.Hour)
	clock.set(t3)
	if _, err := a.Move(ctx, inbox.ID, inbox.UIDValidity, []UIDRange{{1, 1}}, "Trash"); err != nil {
		t.Fatal(err)
	}
	if m := lastMessage(t, a, "Trash"); !m.SaveDate.Equal(t3) || !m.Received.Equal(t0) {
		t.Errorf("move: saved %v, received %v; want %v, %v", m.SaveDate, m.Received, t3, t0)
	}

	// APPEND with an internal date in the past: saved now.
	past := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if _, err := a.Append(ctx, "Drafts", newBody(t, tmp, msgText("a", "a")), FlagDraft, nil, past); err != nil {
		t.Fatal(err)
	}
	if m := lastMessage(t, a, "Drafts"); !m.SaveDate.Equal(t3) || !m.Received.Equal(past) {
		t.Errorf("append: saved %v, received %v; want %v, %v", m.SaveDate, m.Received, t3, past)
	}

	// Changes reports the save date too.
	tr := mustMailbox(t, a, "Trash")
	cs, err := a.Changes(tr.ID, tr.UIDValidity, 0, 0)
	if err != nil || len(cs.Changed) != 1 || !cs.Changed[0].SaveDate.Equal(t3) {
		t.Errorf("changes of Trash: %+v %v, want one message saved at %v", cs.Changed, err, t3)
	}
	checkInvariants(t, a)
}

// oldMsgRecord encodes r as the first moxd wrote message records: without
// save date and training state.
func oldMsgRecord(r msgRec) []byte {
	e := newEnc()
	e.uvarint(r.FileID)
	e.varint(r.Size)
	e.varint(r.Received)
	e.uvarint(r.ModSeq)
	e.uvarint(r.CreateSeq)
	e.byte(byte(r.Flags))
	e.ids(r.Keywords)
	return e.b
}

func TestOldMsgRecord(t *testing.T) {
	// The bytes of a record of the first layout, spelled out.
	// file 7, size 194, received 1700000000, modseq 9, createseq 3,
	// \Seen, keyword ids 1 and 4.
	old := []byte{recordVersion, 7, 0x84, 0x03, 0x80, 0xc4, 0x9f, 0xd5, 0x0c, 9, 3, byte(FlagSeen), 2, 1, 4}
	r, err := parseMsgRec(old)
	if err != nil {
		t.Fatal(err)
	}
	want := msgRec{FileID: 7, Size: 194, Received: 1700000000, ModSeq: 9, CreateSeq: 3, Flags: FlagSeen, Keywords: []uint32{1, 4},
		SaveDate: 1700000000, Training: trainUnset}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("old record reads as %+v, want %+v", r, want)
	}
	if enc := oldMsgRecord(want); !slices.Equal(enc, old) {
		t.Fatalf("old layout encodes as %x, test bytes are %x", enc, old)
	}
	// A current record round-trips, and a bad training state is refused.
	cur := want
	cur.SaveDate, cur.Training = want.Received+60, TrainHam
	if back, err := parseMsgRec(cur.marshal()); err != nil || !reflect.DeepEqual(back, cur) {
		t.Errorf("round trip: %+v %v, want %+v", back, err, cur)
	}
	bad := cur.marshal()
	bad[len(bad)-1] = 9
	if _, err := parseMsgRec(bad); err == nil {
		t.Errorf("training state 9 accepted")
	}

	// In an account: an old record of a message with $Junk reads with its
	// received time as save date and the training state of its keywords,
	// verifies clean, and gains both fields at its next write.
	received := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := newTestClock(received)
	a, tmp := newAccount(t, clock.opts(Options{}))
	ctx := testCtx(t)
	deliver(t, a, tmp, "Junk", msgText("old", "old"), 0)
	mb := mustMailbox(t, a, "Junk")
	err = a.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketMsgs))
		r, err := parseMsgRec(b.Get(msgKey(mb.ID, 1)))
		if err != nil {
			return err
		}
		r.SaveDate = 0
		return b.Put(msgKey(mb.ID, 1), oldMsgRecord(r))
	})
	if err != nil {
		t.Fatal(err)
	}
	m := lastMessage(t, a, "Junk")
	if !m.SaveDate.Equal(received) || m.Training != TrainSpam {
		t.Errorf("old record: saved %v, training %s; want %v, spam", m.SaveDate, m.Training, received)
	}
	checkInvariants(t, a)
	clock.advance(time.Hour)
	if _, err := a.Store(ctx, mb.ID, mb.UIDValidity, []UIDRange{{1, 1}}, StoreAdd, 0, []string{"$NotJunk"}, 0); err != nil {
		t.Fatal(err)
	}
	err = a.db.View(func(tx *bolt.Tx) error {
		r, err := parseMsgRec(tx.Bucket([]byte(bucketMsgs)).Get(msgKey(mb.ID, 1)))
		if err == nil && (r.Training != TrainNone || r.SaveDate != received.Unix()) {
			t.Errorf("rewritten old record: training %s, save date %d; want none, %d", r.Training, r.SaveDate, received.Unix())
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, a)
}

func TestVerifyTraining(t *testing.T) {
	a, tmp := newAccount(t, Options{})
	deliver(t, a, tmp, "Junk", msgText("v", "v"), 0)
	mb := mustMailbox(t, a, "Junk")
	// Damage: the record says ham while it carries $Junk.
	err := a.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketMsgs))
		r, err := parseMsgRec(b.Get(msgKey(mb.ID, 1)))
		if err != nil {
			return err
		}
		r.Training = TrainHam
		return b.Put(msgKey(mb.ID, 1), r.marshal())
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	problems, err := Verify(a.dir, false, nil)
	if err != nil || len(problems) != 1 || problems[0].Fixed {
		t.Fatalf("verify: %+v %v, want one unfixed problem", problems, err)
	}
	if problems[0].What != "junk training state ham, but its keywords ask for spam" {
		t.Errorf("problem %q", problems[0].What)
	}
	if problems, err := Verify(a.dir, true, nil); err != nil || len(problems) != 1 || !problems[0].Fixed {
		t.Fatalf("verify -fix: %+v %v", problems, err)
	}
	if problems, err := Verify(a.dir, false, nil); err != nil || len(problems) != 0 {
		t.Fatalf("verify after fix: %+v %v", problems, err)
	}
	b, err := Open(a.dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if m := lastMessage(t, b, "Junk"); m.Training != TrainSpam {
		t.Errorf("after fix: training %s, want spam", m.Training)
	}
}
