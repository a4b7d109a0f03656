package account

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"moxd/internal/mailproto/message"
)

// Flags are the IMAP system flags (RFC 9051 §2.3.2) other than \Recent.
type Flags uint8

// Flag bits; the values match the IPC flag bits.
const (
	FlagSeen Flags = 1 << iota
	FlagAnswered
	FlagFlagged
	FlagDeleted
	FlagDraft
	flagsAll = FlagSeen | FlagAnswered | FlagFlagged | FlagDeleted | FlagDraft
)

// Message is the light data of one message.
type Message struct {
	UID               uint32
	ModSeq, CreateSeq uint64
	Flags             Flags
	Keywords          []string
	Size              int64     // prefix + file
	Received          time.Time // the IMAP internal date
	// SaveDate is when the message was saved into this mailbox (RFC 8514
	// §2): by delivery, APPEND, COPY, MOVE, an import, or RENAME of INBOX,
	// which moves its messages. Flag changes leave it alone. Messages saved
	// before moxd kept save dates have their Received time here.
	SaveDate time.Time
	Training Training // junk-filter training state (junk.go)
	FileID   uint64
}

// UIDRange is an inclusive range of UIDs; Last 0xffffffff stands for "*".
type UIDRange struct{ First, Last uint32 }

// StoreMode says how Store combines flags (RFC 9051 §6.4.6); the values
// match the IPC store modes.
type StoreMode uint8

// Store modes.
const (
	StoreSet    StoreMode = 1 // FLAGS
	StoreAdd    StoreMode = 2 // +FLAGS
	StoreRemove StoreMode = 3 // -FLAGS
)

// StoreResult reports a Store.
type StoreResult struct {
	Changed  []Message
	Modified []uint32 // failed UNCHANGEDSINCE (RFC 7162 §3.1.3)
	ModSeq   uint64   // the mailbox's highest modseq afterwards
}

// CopyResult is the COPYUID response data (RFC 4315 §3).
type CopyResult struct {
	UIDValidity uint32
	From, To    []uint32
	ModSeq      uint64
}

// ChangeSet is what Changes returns.
type ChangeSet struct {
	Changed       []Message
	Vanished      []uint32
	HighestModSeq uint64
	// Last is the highest modseq the answer covers completely: a caller
	// resumes with since = Last. It equals HighestModSeq when nothing more
	// is left.
	Last uint64
}

// Detail is the heavy data of a message.
type Detail struct {
	Prefix                []byte
	Part                  *message.Part // offsets into the file, without prefix
	MessageID             string
	InReplyTo, References []string
	BaseSubject           string
}

// storeChunk bounds the messages Store changes per transaction, so other
// sessions' writes interleave with a large STORE.
const storeChunk = 5000

// Keywords.

const (
	maxKeywordLen      = 255
	maxAccountKeywords = 10000
)

// foldKeyword is the form keywords are compared in: keywords are atoms
// (ASCII) and compare case-insensitively.
func foldKeyword(k string) string { return strings.ToLower(k) }

// checkKeyword checks that k is an IMAP flag-keyword atom (RFC 9051 §9:
// atom = 1*ATOM-CHAR, excluding atom-specials).
func checkKeyword(k string) error {
	if k == "" || len(k) > maxKeywordLen {
		return fmt.Errorf("%w: keyword %q must be 1 to %d characters", ErrBadName, k, maxKeywordLen)
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return fmt.Errorf("%w: keyword %q is not an IMAP atom (no spaces, controls, non-ASCII or any of (){%%*\"\\])", ErrBadName, k)
		}
	}
	return nil
}

func checkKeywords(l []string) error {
	for _, k := range l {
		if err := checkKeyword(k); err != nil {
			return err
		}
	}
	return nil
}

// keywordNames maps keyword ids to names for a read transaction.
func (a *Account) keywordNames(tx *bolt.Tx, ids []uint32) []string {
	if len(ids) == 0 {
		return nil
	}
	l := make([]string, 0, len(ids))
	a.kwmu.RLock()
	miss := false
	for _, id := range ids {
		if n, ok := a.kwByID[id]; ok {
			l = append(l, n)
		} else {
			miss = true
		}
	}
	a.kwmu.RUnlock()
	if !miss {
		return l
	}
	l = l[:0]
	b := tx.Bucket([]byte(bucketKwids))
	for _, id := range ids {
		a.kwmu.RLock()
		n, ok := a.kwByID[id]
		a.kwmu.RUnlock()
		if !ok {
			v := b.Get(key32(id))
			if v == nil {
				continue
			}
			n = string(v)
		}
		l = append(l, n)
	}
	return l
}

// keywordID returns the id of keyword k, allocating one if create is set;
// 0 if none exists and create is not set.
func (w *wtx) keywordID(k string, create bool) (uint32, error) {
	f := foldKeyword(k)
	w.a.kwmu.RLock()
	id, ok := w.a.kwByFold[f]
	n := len(w.a.kwByID)
	w.a.kwmu.RUnlock()
	if ok {
		return id, nil
	}
	for id, name := range w.newKw {
		if foldKeyword(name) == f {
			return id, nil
		}
	}
	if !create {
		return 0, nil
	}
	if n+len(w.newKw) >= maxAccountKeywords {
		return 0, fmt.Errorf("%w: the account already uses %d keywords, the maximum", ErrBadName, maxAccountKeywords)
	}
	kb := w.bucket(bucketKwids)
	last, _ := kb.Cursor().Last()
	id = beU32(last) + 1
	if err := kb.Put(key32(id), []byte(k)); err != nil {
		return 0, err
	}
	if err := w.bucket(bucketKeywords).Put([]byte(k), key32(id)); err != nil {
		return 0, err
	}
	if w.newKw == nil {
		w.newKw = map[uint32]string{}
	}
	w.newKw[id] = k
	return id, nil
}

// keywordIDs resolves keywords, without duplicates.
func (w *wtx) keywordIDs(l []string, create bool) ([]uint32, error) {
	var ids []uint32
	for _, k := range l {
		id, err := w.keywordID(k, create)
		if err != nil {
			return nil, err
		}
		if id != 0 && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// names maps keyword ids to names inside the write transaction.
func (w *wtx) names(ids []uint32) []string {
	if len(ids) == 0 {
		return nil
	}
	l := make([]string, 0, len(ids))
	for _, id := range ids {
		if n, ok := w.newKw[id]; ok {
			l = append(l, n)
			continue
		}
		l = append(l, w.a.keywordNames(w.tx, []uint32{id})...)
	}
	return l
}

// useKeywords adds keyword ids to the mailbox's keywords in use.
func (w *wtx) useKeywords(s *mbState, ids []uint32) {
	for _, id := range ids {
		if !slices.Contains(s.rec.Keywords, id) {
			s.rec.Keywords = append(s.rec.Keywords, id)
			s.recDirty = true
		}
	}
}

func toMessage(uid uint32, r *msgRec, kw []string) Message {
	training := r.Training
	if training == trainUnset {
		training = trainingOfNames(kw)
	}
	return Message{
		UID: uid, ModSeq: r.ModSeq, CreateSeq: r.CreateSeq, Flags: r.Flags, Keywords: kw,
		Size: r.Size, Received: time.Unix(r.Received, 0), SaveDate: time.Unix(r.SaveDate, 0),
		Training: training, FileID: r.FileID,
	}
}

// Reads.

// Messages returns up to max messages (max <= 0: all) with uid >= fromUID,
// ascending: one cursor walk over msgs.
func (a *Account) Messages(mb, uidvalidity, fromUID uint32, max int) ([]Message, error) {
	var l []Message
	err := a.db.View(func(tx *bolt.Tx) error {
		if _, err := checkMailbox(tx, mb, uidvalidity); err != nil {
			return err
		}
		sum, _ := parseSummaryRec(tx.Bucket([]byte(bucketSummary)).Get(key32(mb)))
		n := int(sum.Messages)
		if max > 0 {
			n = min(n, max)
		}
		l = make([]Message, 0, n)
		prefix := key32(mb)
		c := tx.Bucket([]byte(bucketMsgs)).Cursor()
		for k, v := c.Seek(msgKey(mb, fromUID)); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if max > 0 && len(l) >= max {
				break
			}
			r, err := parseMsgRec(v)
			if err != nil {
				return fmt.Errorf("message %d: %w", beU32(k[4:]), err)
			}
			l = append(l, toMessage(beU32(k[4:]), &r, a.keywordNames(tx, r.Keywords)))
		}
		return nil
	})
	return l, err
}

// UIDs returns all uids of the mailbox, ascending (msgs keys only).
func (a *Account) UIDs(mb, uidvalidity uint32) ([]uint32, error) {
	var l []uint32
	err := a.db.View(func(tx *bolt.Tx) error {
		if _, err := checkMailbox(tx, mb, uidvalidity); err != nil {
			return err
		}
		n, _ := parseSummaryRec(tx.Bucket([]byte(bucketSummary)).Get(key32(mb)))
		l = make([]uint32, 0, n.Messages)
		prefix := key32(mb)
		c := tx.Bucket([]byte(bucketMsgs)).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			l = append(l, beU32(k[4:]))
		}
		return nil
	})
	return l, err
}

// readMessage reads one message and its file record.
func readMessage(tx *bolt.Tx, mb, uidvalidity, uid uint32) (msgRec, fileRec, error) {
	if _, err := checkMailbox(tx, mb, uidvalidity); err != nil {
		return msgRec{}, fileRec{}, err
	}
	v := tx.Bucket([]byte(bucketMsgs)).Get(msgKey(mb, uid))
	if v == nil {
		return msgRec{}, fileRec{}, fmt.Errorf("message uid %d: %w", uid, errNoMessage)
	}
	m, err := parseMsgRec(v)
	if err != nil {
		return m, fileRec{}, fmt.Errorf("message uid %d: %w", uid, err)
	}
	f, err := parseFileRec(tx.Bucket([]byte(bucketFiles)).Get(key64(m.FileID)))
	if err != nil {
		return m, f, fmt.Errorf("message uid %d file %x: %w", uid, m.FileID, err)
	}
	return m, f, nil
}

// errNoMessage is returned for a uid that does not exist (expunged); it
// matches ErrNotFound.
var errNoMessage error = notFoundError("message does not exist (it was expunged)")

type notFoundError string

func (e notFoundError) Error() string        { return string(e) }
func (e notFoundError) Is(target error) bool { return target == ErrNotFound }

// Detail returns the heavy data of a message.
func (a *Account) Detail(mb, uidvalidity, uid uint32) (Detail, error) {
	var d Detail
	err := a.db.View(func(tx *bolt.Tx) error {
		_, f, err := readMessage(tx, mb, uidvalidity, uid)
		if err != nil {
			return err
		}
		part, err := message.UnmarshalPart(f.Tree)
		if err != nil {
			return fmt.Errorf("message uid %d structure: %w", uid, err)
		}
		d = Detail{Prefix: f.Prefix, Part: part, MessageID: f.MessageID, InReplyTo: f.InReplyTo, References: f.References, BaseSubject: f.BaseSubject}
		return nil
	})
	return d, err
}

// OpenMessage opens a message's file read-only and returns it with the
// message and the delivery prefix served before the file.
func (a *Account) OpenMessage(mb, uidvalidity, uid uint32) (*os.File, Message, []byte, error) {
	var m Message
	var prefix []byte
	err := a.db.View(func(tx *bolt.Tx) error {
		r, f, err := readMessage(tx, mb, uidvalidity, uid)
		if err != nil {
			return err
		}
		m = toMessage(uid, &r, a.keywordNames(tx, r.Keywords))
		prefix = f.Prefix
		return nil
	})
	if err != nil {
		return nil, Message{}, nil, err
	}
	f, err := os.OpenFile(a.filePath(m.FileID), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Message{}, nil, fmt.Errorf("message uid %d: %w", uid, errNoMessage)
	} else if err != nil {
		return nil, Message{}, nil, fmt.Errorf("open message file: %w", err)
	}
	return f, m, prefix, nil
}

// Changes returns what changed in a mailbox after modseq since, from the
// modseq index in ascending order. limit bounds len(Changed)+len(Vanished),
// except that the entries of one modseq are never split: a single modseq
// with more entries than limit is returned whole.
func (a *Account) Changes(mb, uidvalidity uint32, since uint64, limit int) (ChangeSet, error) {
	var cs ChangeSet
	err := a.db.View(func(tx *bolt.Tx) error {
		highest, err := mailboxHighest(tx, mb, uidvalidity)
		if err != nil {
			return err
		}
		cs.HighestModSeq = highest
		cs.Last = max(since, highest)
		var cur uint64
		n := 0
		err = a.walkChanges(tx, mb, modseqKey(mb, since+1, 0), func(ms uint64, uid uint32, m *Message) bool {
			if ms != cur {
				if limit > 0 && n >= limit {
					cs.Last = cur
					return false
				}
				cur = ms
			}
			n++
			if m == nil {
				cs.Vanished = append(cs.Vanished, uid)
			} else {
				cs.Changed = append(cs.Changed, *m)
			}
			return true
		})
		slices.Sort(cs.Vanished)
		slices.SortFunc(cs.Changed, func(x, y Message) int { return int(int64(x.UID) - int64(y.UID)) })
		return err
	})
	return cs, err
}

// ChangePage is one page of ChangesAfter: entries of the modseq index in
// index order (modseq, then uid).
type ChangePage struct {
	Changed       []Message
	Vanished      []uint32
	HighestModSeq uint64
	// More says limit entries were returned and more follow: ask again
	// after (LastModSeq, LastUID).
	More       bool
	LastModSeq uint64
	LastUID    uint32
}

// ChangesAfter is Changes with an exact page size: the entries with a
// modseq above since, starting after the entry (afterModSeq, afterUID) when
// afterModSeq is above since, at most limit of them (limit > 0). A page may end
// inside the entries of one modseq, so any number of changes under one
// modseq can be paged through.
func (a *Account) ChangesAfter(mb, uidvalidity uint32, since, afterModSeq uint64, afterUID uint32, limit int) (ChangePage, error) {
	var p ChangePage
	err := a.db.View(func(tx *bolt.Tx) error {
		highest, err := mailboxHighest(tx, mb, uidvalidity)
		if err != nil {
			return err
		}
		p.HighestModSeq = highest
		start := modseqKey(mb, since+1, 0)
		if afterModSeq > since {
			if afterUID == 0xffffffff {
				start = modseqKey(mb, afterModSeq+1, 0)
			} else {
				start = modseqKey(mb, afterModSeq, afterUID+1)
			}
		}
		n := 0
		err = a.walkChanges(tx, mb, start, func(ms uint64, uid uint32, m *Message) bool {
			if n >= limit {
				p.More = true
				return false
			}
			p.LastModSeq, p.LastUID = ms, uid
			n++
			if m == nil {
				p.Vanished = append(p.Vanished, uid)
			} else {
				p.Changed = append(p.Changed, *m)
			}
			return true
		})
		slices.Sort(p.Vanished)
		return err
	})
	return p, err
}

// mailboxHighest checks the mailbox and returns its highest modseq.
func mailboxHighest(tx *bolt.Tx, mb, uidvalidity uint32) (uint64, error) {
	if _, err := checkMailbox(tx, mb, uidvalidity); err != nil {
		return 0, err
	}
	sum, err := parseSummaryRec(tx.Bucket([]byte(bucketSummary)).Get(key32(mb)))
	if err != nil {
		return 0, err
	}
	return sum.HighestModSeq, nil
}

// walkChanges calls fn for each entry of mailbox mb's modseq index from key
// start on, in index order, with the message (nil for a tombstone), until
// fn returns false.
func (a *Account) walkChanges(tx *bolt.Tx, mb uint32, start []byte, fn func(modseq uint64, uid uint32, m *Message) bool) error {
	msgs := tx.Bucket([]byte(bucketMsgs))
	prefix := key32(mb)
	c := tx.Bucket([]byte(bucketModseq)).Cursor()
	for k, v := c.Seek(start); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		_, ms, uid, _ := parseModseqKey(k)
		if len(v) == 1 && v[0] == modseqExpunged {
			if !fn(ms, uid, nil) {
				return nil
			}
			continue
		}
		mv := msgs.Get(msgKey(mb, uid))
		if mv == nil {
			continue
		}
		r, err := parseMsgRec(mv)
		if err != nil {
			return fmt.Errorf("message uid %d: %w", uid, err)
		}
		m := toMessage(uid, &r, a.keywordNames(tx, r.Keywords))
		if !fn(ms, uid, &m) {
			return nil
		}
	}
	return nil
}

// Writes.

// normRanges sorts and merges uid ranges.
func normRanges(l []UIDRange) []UIDRange {
	r := make([]UIDRange, 0, len(l))
	for _, x := range l {
		if x.First > x.Last {
			x.First, x.Last = x.Last, x.First
		}
		if x.First == 0 {
			x.First = 1
		}
		if x.Last == 0 {
			continue
		}
		r = append(r, x)
	}
	slices.SortFunc(r, func(a, b UIDRange) int {
		if a.First != b.First {
			if a.First < b.First {
				return -1
			}
			return 1
		}
		return 0
	})
	out := r[:0]
	for _, x := range r {
		if n := len(out); n > 0 && (x.First <= out[n-1].Last || out[n-1].Last+1 == x.First) {
			out[n-1].Last = max(out[n-1].Last, x.Last)
			continue
		}
		out = append(out, x)
	}
	return out
}

// collect returns the messages of mailbox mb in ranges (normalized),
// ascending, that pass keep (nil: all), at most max (0: no limit).
func (w *wtx) collect(mb uint32, ranges []UIDRange, max int, keep func(*msgRec) bool) ([]uint32, []msgRec, error) {
	var uids []uint32
	var recs []msgRec
	prefix := key32(mb)
	c := w.bucket(bucketMsgs).Cursor()
	for _, rg := range normRanges(ranges) {
		for k, v := c.Seek(msgKey(mb, rg.First)); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			uid := beU32(k[4:])
			if uid > rg.Last {
				break
			}
			r, err := parseMsgRec(v)
			if err != nil {
				return nil, nil, fmt.Errorf("message uid %d: %w", uid, err)
			}
			if keep != nil && !keep(&r) {
				continue
			}
			uids = append(uids, uid)
			recs = append(recs, r)
			if max > 0 && len(uids) >= max {
				return uids, recs, nil
			}
		}
	}
	return uids, recs, nil
}

// putMessage writes a message record and its modseq entry. It sets the
// record's training state from its keywords (junk.go).
func (w *wtx) putMessage(mb, uid uint32, r *msgRec) error {
	w.setTraining(r)
	if err := w.bucket(bucketMsgs).Put(msgKey(mb, uid), r.marshal()); err != nil {
		return fmt.Errorf("write message: %w", err)
	}
	if err := w.bucket(bucketModseq).Put(modseqKey(mb, r.ModSeq, uid), []byte{modseqPresent}); err != nil {
		return fmt.Errorf("write modseq index: %w", err)
	}
	return nil
}

// nextUID allocates a uid in mailbox s.
func (w *wtx) nextUID(s *mbState) (uint32, error) {
	uid := s.sum.UIDNext
	if uid == 0 || uid == 1<<32-1 {
		return 0, fmt.Errorf("mailbox %s has used all UIDs; rename it and create a new one", s.rec.Name)
	}
	s.sum.UIDNext++
	s.sumDirty = true
	return uid, nil
}

// addMessage inserts a new message into mailbox s, saved now.
func (w *wtx) addMessage(s *mbState, r msgRec) (uint32, error) {
	uid, err := w.nextUID(s)
	if err != nil {
		return 0, err
	}
	r.ModSeq = w.modseq()
	r.CreateSeq = r.ModSeq
	r.SaveDate = w.a.now().Unix() // RFC 8514 §2: the time it was saved into s
	if err := w.putMessage(s.id, uid, &r); err != nil {
		return 0, err
	}
	s.sum.add(&r, 1)
	w.useKeywords(s, r.Keywords)
	w.touch(s)
	w.meta.size += r.Size
	w.meta.count++
	return uid, nil
}

// incref and decref change a file's reference count; the last decref
// removes the record and schedules the file for unlinking.
func (w *wtx) incref(id uint64) error {
	b := w.bucket(bucketFiles)
	v := b.Get(key64(id))
	refs, _, err := fileRefs(v)
	if err != nil {
		return fmt.Errorf("file %x: %w", id, err)
	}
	nv, err := setFileRefs(v, refs+1)
	if err != nil {
		return err
	}
	return b.Put(key64(id), nv)
}

func (w *wtx) decref(id uint64) error {
	b := w.bucket(bucketFiles)
	v := b.Get(key64(id))
	if v == nil {
		return nil
	}
	refs, _, err := fileRefs(v)
	if err != nil {
		return fmt.Errorf("file %x: %w", id, err)
	}
	if refs > 1 {
		nv, err := setFileRefs(v, refs-1)
		if err != nil {
			return err
		}
		return b.Put(key64(id), nv)
	}
	if err := b.Delete(key64(id)); err != nil {
		return err
	}
	if err := w.bucket(bucketUnlink).Put(key64(id), []byte{}); err != nil {
		return err
	}
	w.unlinked = append(w.unlinked, id)
	return nil
}

// copyMessages adds copies of recs to mailbox dst, sharing their files.
// With junkRules, the account's junk flag rules for dst apply to the copies.
func (w *wtx) copyMessages(dst *mbState, recs []msgRec, junkRules bool) ([]uint32, error) {
	uids := make([]uint32, 0, len(recs))
	for _, r := range recs {
		if err := w.incref(r.FileID); err != nil {
			return nil, err
		}
		if junkRules {
			kw, err := w.applyJunkRule(dst.rec.Name, r.Keywords)
			if err != nil {
				return nil, err
			}
			r.Keywords = kw
		}
		uid, err := w.addMessage(dst, r)
		if err != nil {
			return nil, err
		}
		uids = append(uids, uid)
	}
	return uids, nil
}

// expungeMessages removes messages from mailbox s, leaving tombstones.
func (w *wtx) expungeMessages(s *mbState, uids []uint32, recs []msgRec) error {
	if len(uids) == 0 {
		return nil
	}
	modseq := w.modseq()
	msgs, ms := w.bucket(bucketMsgs), w.bucket(bucketModseq)
	for i, uid := range uids {
		r := &recs[i]
		if err := msgs.Delete(msgKey(s.id, uid)); err != nil {
			return err
		}
		if err := ms.Delete(modseqKey(s.id, r.ModSeq, uid)); err != nil {
			return err
		}
		if err := ms.Put(modseqKey(s.id, modseq, uid), []byte{modseqExpunged}); err != nil {
			return err
		}
		s.sum.add(r, -1)
		w.meta.size -= r.Size
		w.meta.count--
		if err := w.decref(r.FileID); err != nil {
			return err
		}
	}
	w.touch(s)
	return nil
}

// checkQuota fails cleanly if adding bytes would exceed the quota.
func (w *wtx) checkQuota(bytes int64) error {
	q := w.a.quota.Load()
	if q > 0 && w.meta.size+bytes > q {
		return clean(fmt.Errorf("%w (%d of %d bytes used, %d more needed)", ErrQuota, w.meta.size, q, bytes))
	}
	return nil
}

// Store changes flags and keywords of the messages in uids. With
// unchangedSince > 0, messages with a higher modseq are not changed but
// reported in Modified (RFC 7162 §3.1.3). A message whose flags would not
// change gets no new modseq (RFC 7162 §3.2). Large ranges are changed in
// transactions of at most 5000 messages.
func (a *Account) Store(ctx context.Context, mb, uidvalidity uint32, uids []UIDRange, mode StoreMode, flags Flags, keywords []string, unchangedSince uint64) (StoreResult, error) {
	var res StoreResult
	if mode < StoreSet || mode > StoreRemove {
		return res, fmt.Errorf("store: unknown mode %d", mode)
	}
	if err := checkKeywords(keywords); err != nil {
		return res, err
	}
	flags &= flagsAll
	ranges := normRanges(uids)
	for len(ranges) > 0 {
		var changed []Message
		var modified []uint32
		var highest uint64
		var rest []UIDRange
		err := a.do(ctx, func(w *wtx) error {
			changed, modified, rest = nil, nil, nil
			s, err := w.selectable(mb, uidvalidity)
			if err != nil {
				return clean(err)
			}
			uids, recs, err := w.collect(mb, ranges, storeChunk, nil)
			if err != nil {
				return err
			}
			if len(uids) == storeChunk {
				rest = rangesAfter(ranges, uids[len(uids)-1])
			}
			kwids, err := w.keywordIDs(keywords, mode != StoreRemove)
			if err != nil {
				return err
			}
			for i, uid := range uids {
				r := &recs[i]
				if unchangedSince > 0 && r.ModSeq > unchangedSince {
					modified = append(modified, uid)
					continue
				}
				nf, nk := applyStore(r.Flags, r.Keywords, mode, flags, kwids)
				if nf == r.Flags && sameIDs(nk, r.Keywords) {
					continue
				}
				old := *r
				if err := w.bucket(bucketModseq).Delete(modseqKey(mb, r.ModSeq, uid)); err != nil {
					return err
				}
				r.Flags, r.Keywords, r.ModSeq = nf, nk, w.modseq()
				if err := w.putMessage(mb, uid, r); err != nil {
					return err
				}
				s.sum.add(&old, -1)
				s.sum.add(r, 1)
				w.useKeywords(s, nk)
				w.touch(s)
				changed = append(changed, toMessage(uid, r, w.names(nk)))
			}
			highest = s.sum.HighestModSeq
			return nil
		})
		if err != nil {
			return res, err
		}
		res.Changed = append(res.Changed, changed...)
		res.Modified = append(res.Modified, modified...)
		res.ModSeq = highest
		ranges = rest
	}
	if res.ModSeq == 0 {
		mbx, err := a.MailboxByID(mb, uidvalidity)
		if err != nil {
			return res, err
		}
		res.ModSeq = mbx.Summary.HighestModSeq
	}
	return res, nil
}

// rangesAfter returns the part of ranges above uid.
func rangesAfter(ranges []UIDRange, uid uint32) []UIDRange {
	var l []UIDRange
	if uid == 1<<32-1 {
		return nil
	}
	for _, r := range ranges {
		if r.Last <= uid {
			continue
		}
		if r.First <= uid {
			r.First = uid + 1
		}
		l = append(l, r)
	}
	return l
}

// applyStore computes the new flags and keywords of a STORE.
func applyStore(f Flags, kw []uint32, mode StoreMode, flags Flags, ids []uint32) (Flags, []uint32) {
	switch mode {
	case StoreSet:
		return flags, slices.Clone(ids)
	case StoreAdd:
		nk := slices.Clone(kw)
		for _, id := range ids {
			if !slices.Contains(nk, id) {
				nk = append(nk, id)
			}
		}
		return f | flags, nk
	default:
		nk := make([]uint32, 0, len(kw))
		for _, id := range kw {
			if !slices.Contains(ids, id) {
				nk = append(nk, id)
			}
		}
		return f &^ flags, nk
	}
}

// sameIDs compares keyword id sets.
func sameIDs(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// Copy copies messages to mailbox dest, sharing their files (RFC 9051
// §6.4.7, COPYUID of RFC 4315). ErrNotFound if dest does not exist.
func (a *Account) Copy(ctx context.Context, mb, uidvalidity uint32, uids []UIDRange, dest string) (CopyResult, error) {
	return a.copyMove(ctx, mb, uidvalidity, uids, dest, false)
}

// Move moves messages to mailbox dest: copy and expunge in one
// transaction (RFC 6851).
func (a *Account) Move(ctx context.Context, mb, uidvalidity uint32, uids []UIDRange, dest string) (CopyResult, error) {
	return a.copyMove(ctx, mb, uidvalidity, uids, dest, true)
}

func (a *Account) copyMove(ctx context.Context, mb, uidvalidity uint32, uids []UIDRange, dest string, move bool) (CopyResult, error) {
	dest, err := CleanName(dest)
	if err != nil {
		return CopyResult{}, err
	}
	var res CopyResult
	err = a.do(ctx, func(w *wtx) error {
		res = CopyResult{}
		s, err := w.selectable(mb, uidvalidity)
		if err != nil {
			return clean(err)
		}
		did := w.lookupName(dest)
		if did == 0 {
			return clean(fmt.Errorf("copy destination %q: %w", dest, ErrNotFound))
		}
		ds, err := w.mailbox(did)
		if err != nil {
			return err
		}
		from, recs, err := w.collect(mb, uids, 0, nil)
		if err != nil {
			return err
		}
		if len(from) == 0 {
			res = CopyResult{UIDValidity: ds.rec.UIDValidity, ModSeq: ds.sum.HighestModSeq}
			return nil
		}
		if !move {
			var total int64
			for _, r := range recs {
				total += r.Size
			}
			if err := w.checkQuota(total); err != nil {
				return err
			}
		}
		// The destination's junk flag rule applies to what is copied or
		// moved there (junk.go).
		to, err := w.copyMessages(ds, recs, true)
		if err != nil {
			return err
		}
		if move {
			if err := w.expungeMessages(s, from, recs); err != nil {
				return err
			}
		}
		res = CopyResult{UIDValidity: ds.rec.UIDValidity, From: from, To: to, ModSeq: w.modseq()}
		return nil
	})
	return res, err
}

// Expunge removes the messages flagged \Deleted within uids (nil: all of
// them), leaving tombstones for Changes. It returns the expunged uids and
// the mailbox's highest modseq afterwards.
func (a *Account) Expunge(ctx context.Context, mb, uidvalidity uint32, uids []UIDRange) (expunged []uint32, modseq uint64, err error) {
	if uids == nil {
		uids = []UIDRange{{1, 1<<32 - 1}}
	}
	err = a.do(ctx, func(w *wtx) error {
		expunged, modseq = nil, 0
		s, err := w.selectable(mb, uidvalidity)
		if err != nil {
			return clean(err)
		}
		l, recs, err := w.collect(mb, uids, 0, func(r *msgRec) bool { return r.Flags&FlagDeleted != 0 })
		if err != nil {
			return err
		}
		if err := w.expungeMessages(s, l, recs); err != nil {
			return err
		}
		expunged, modseq = l, s.sum.HighestModSeq
		return nil
	})
	return expunged, modseq, err
}
