package account

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// SpecialUse is a mailbox's RFC 6154 special-use attribute.
type SpecialUse uint8

// Special-use values (RFC 6154 §2).
const (
	SpecialNone SpecialUse = iota
	SpecialSent
	SpecialDrafts
	SpecialTrash
	SpecialArchive
	SpecialJunk
	SpecialAll
	SpecialFlagged
	specialMax = SpecialFlagged
)

// String returns the RFC 6154 attribute, "\Sent" etc., or "" for none.
func (u SpecialUse) String() string {
	switch u {
	case SpecialSent:
		return `\Sent`
	case SpecialDrafts:
		return `\Drafts`
	case SpecialTrash:
		return `\Trash`
	case SpecialArchive:
		return `\Archive`
	case SpecialJunk:
		return `\Junk`
	case SpecialAll:
		return `\All`
	case SpecialFlagged:
		return `\Flagged`
	}
	return ""
}

// Mailbox describes a visible mailbox.
type Mailbox struct {
	ID, UIDValidity uint32
	Name            string
	SpecialUse      SpecialUse
	Subscribed      bool
	Summary         Summary
	Keywords        []string // keywords in use, for FLAGS and PERMANENTFLAGS
}

// Summary holds what SELECT and STATUS report.
type Summary struct {
	Messages, Unseen, Deleted uint32
	Size                      int64
	UIDNext                   uint32
	HighestModSeq             uint64
	DeletedSize               int64 // bytes of the \Deleted messages (RFC 9208 DELETED-STORAGE)
}

// Mailbox name limits.
const (
	maxNameBytes  = 255
	maxNameLevels = 32
	inboxName     = "INBOX"
)

// CleanName checks a mailbox name and returns its stored form: "INBOX" as
// first component matches case-insensitively and is stored upper-case.
// Names use "/" as hierarchy separator.
func CleanName(name string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("%w: mailbox name %q %s", ErrBadName, name, why)
	}
	switch {
	case name == "":
		return bad("is empty")
	case !utf8.ValidString(name):
		return bad("is not valid UTF-8")
	case len(name) > maxNameBytes:
		return bad(fmt.Sprintf("is longer than %d bytes", maxNameBytes))
	case strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/"):
		return bad(`starts or ends with the hierarchy separator "/"`)
	case strings.Contains(name, "//"):
		return bad("has an empty level")
	case strings.ContainsAny(name, "*%"):
		return bad(`contains "*" or "%" (IMAP LIST wildcards)`)
	case strings.Count(name, "/") >= maxNameLevels:
		return bad(fmt.Sprintf("has more than %d levels", maxNameLevels))
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return bad("contains a control character")
		}
	}
	first, rest, _ := strings.Cut(name, "/")
	if strings.EqualFold(first, inboxName) {
		if rest == "" {
			return inboxName, nil
		}
		return inboxName + "/" + rest, nil
	}
	return name, nil
}

// parentNames returns the names above name, top first.
func parentNames(name string) []string {
	var l []string
	for i := 0; i < len(name); i++ {
		if name[i] == '/' {
			l = append(l, name[:i])
		}
	}
	return l
}

// Mailboxes returns the visible mailboxes sorted by name.
func (a *Account) Mailboxes() ([]Mailbox, error) {
	var l []Mailbox
	err := a.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketNames)).ForEach(func(k, v []byte) error {
			mb, err := a.readMailbox(tx, beU32(v))
			if err != nil {
				return err
			}
			l = append(l, mb)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list mailboxes: %w", err)
	}
	return l, nil
}

// Mailbox returns one visible mailbox by name in O(1): the names, mailboxes
// and summary records.
func (a *Account) Mailbox(name string) (Mailbox, error) {
	name, err := CleanName(name)
	if err != nil {
		return Mailbox{}, err
	}
	var mb Mailbox
	err = a.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket([]byte(bucketNames)).Get([]byte(name))
		if v == nil {
			return fmt.Errorf("%q: %w", name, ErrNotFound)
		}
		mb, err = a.readMailbox(tx, beU32(v))
		return err
	})
	return mb, err
}

// MailboxByID returns a visible mailbox by id, checking uidvalidity.
func (a *Account) MailboxByID(id, uidvalidity uint32) (Mailbox, error) {
	var mb Mailbox
	err := a.db.View(func(tx *bolt.Tx) error {
		var err error
		mb, err = a.readMailbox(tx, id)
		if err == nil && mb.UIDValidity != uidvalidity {
			err = fmt.Errorf("mailbox %s: %w", mb.Name, ErrUIDValidity)
		}
		return err
	})
	return mb, err
}

// readMailbox reads a visible mailbox in a read transaction.
func (a *Account) readMailbox(tx *bolt.Tx, id uint32) (Mailbox, error) {
	v := tx.Bucket([]byte(bucketMailboxes)).Get(key32(id))
	if v == nil {
		return Mailbox{}, fmt.Errorf("mailbox id %d: %w", id, ErrNotFound)
	}
	rec, err := parseMailboxRec(v)
	if err != nil {
		return Mailbox{}, fmt.Errorf("mailbox id %d: %w", id, err)
	}
	if rec.Hidden {
		return Mailbox{}, fmt.Errorf("mailbox id %d: %w", id, ErrNotFound)
	}
	sum, err := parseSummaryRec(tx.Bucket([]byte(bucketSummary)).Get(key32(id)))
	if err != nil {
		return Mailbox{}, fmt.Errorf("summary of mailbox %s: %w", rec.Name, err)
	}
	return Mailbox{
		ID:          id,
		UIDValidity: rec.UIDValidity,
		Name:        rec.Name,
		SpecialUse:  rec.SpecialUse,
		Subscribed:  has(tx.Bucket([]byte(bucketSubscriptions)), []byte(rec.Name)),
		Summary:     sum.summary(),
		Keywords:    a.keywordNames(tx, rec.Keywords),
	}, nil
}

// checkMailbox checks in a read transaction that mailbox id is visible and
// has the uidvalidity the caller knows.
func checkMailbox(tx *bolt.Tx, id, uidvalidity uint32) (mailboxRec, error) {
	v := tx.Bucket([]byte(bucketMailboxes)).Get(key32(id))
	if v == nil {
		return mailboxRec{}, fmt.Errorf("mailbox id %d: %w", id, ErrNotFound)
	}
	rec, err := parseMailboxRec(v)
	if err != nil {
		return rec, fmt.Errorf("mailbox id %d: %w", id, err)
	}
	if rec.Hidden {
		return rec, fmt.Errorf("mailbox id %d: %w", id, ErrNotFound)
	}
	if rec.UIDValidity != uidvalidity {
		return rec, fmt.Errorf("mailbox %s: %w", rec.Name, ErrUIDValidity)
	}
	return rec, nil
}

// CreateMailbox creates a mailbox and any missing parents. The new mailbox
// is not subscribed. ErrExists if it exists.
func (a *Account) CreateMailbox(ctx context.Context, name string, use SpecialUse) (Mailbox, error) {
	name, err := CleanName(name)
	if err != nil {
		return Mailbox{}, err
	}
	if use > specialMax {
		return Mailbox{}, fmt.Errorf("%w: unknown special-use %d", ErrBadName, use)
	}
	err = a.do(ctx, func(w *wtx) error {
		if w.lookupName(name) != 0 {
			return clean(fmt.Errorf("mailbox %q: %w", name, ErrExists))
		}
		_, err := w.ensureMailbox(name, use)
		return err
	})
	if err != nil {
		return Mailbox{}, err
	}
	return a.Mailbox(name)
}

// lookupName returns the id of the visible mailbox name, 0 if none.
func (w *wtx) lookupName(name string) uint32 {
	return beU32(w.bucket(bucketNames).Get([]byte(name)))
}

// ensureMailbox returns the id of mailbox name (clean), creating it and
// its missing parents.
func (w *wtx) ensureMailbox(name string, use SpecialUse) (uint32, error) {
	if id := w.lookupName(name); id != 0 {
		return id, nil
	}
	for _, p := range parentNames(name) {
		if w.lookupName(p) == 0 {
			if _, err := w.createMailbox(p, SpecialNone, false); err != nil {
				return 0, err
			}
		}
	}
	return w.createMailbox(name, use, false)
}

// createMailbox adds a mailbox record; hidden ones get no name entry.
func (w *wtx) createMailbox(name string, use SpecialUse, hidden bool) (uint32, error) {
	if w.meta.nextmailbox >= 1<<32-1 || w.meta.uidvalidity >= 1<<32-1 {
		return 0, fmt.Errorf("create mailbox %q: mailbox ids exhausted", name)
	}
	id := uint32(w.meta.nextmailbox)
	w.meta.nextmailbox++
	s := &mbState{
		id:       id,
		rec:      mailboxRec{Hidden: hidden, Name: name, SpecialUse: use, UIDValidity: uint32(w.meta.uidvalidity)},
		sum:      summaryRec{UIDNext: 1},
		recDirty: true,
	}
	w.meta.uidvalidity++
	w.mailboxes[id] = s
	w.touch(s)
	if !hidden {
		if err := w.bucket(bucketNames).Put([]byte(name), key32(id)); err != nil {
			return 0, fmt.Errorf("create mailbox %q: %w", name, err)
		}
		w.listChanged = true
	}
	return id, nil
}

// dropMailbox removes a mailbox with its messages and modseq entries.
func (w *wtx) dropMailbox(id uint32) error {
	s, err := w.mailbox(id)
	if err != nil {
		return err
	}
	prefix := key32(id)
	msgs := w.bucket(bucketMsgs)
	for {
		k, v := msgs.Cursor().Seek(prefix)
		if k == nil || !bytes.HasPrefix(k, prefix) {
			break
		}
		m, err := parseMsgRec(v)
		if err != nil {
			return fmt.Errorf("mailbox %s: message: %w", s.rec.Name, err)
		}
		if err := msgs.Delete(k); err != nil {
			return err
		}
		w.meta.size -= m.Size
		w.meta.count--
		if err := w.decref(m.FileID); err != nil {
			return err
		}
	}
	if err := deletePrefix(w.bucket(bucketModseq), prefix); err != nil {
		return err
	}
	if err := w.bucket(bucketSummary).Delete(prefix); err != nil {
		return err
	}
	if err := w.bucket(bucketMailboxes).Delete(prefix); err != nil {
		return err
	}
	if !s.rec.Hidden && w.lookupName(s.rec.Name) == id {
		if err := w.bucket(bucketNames).Delete([]byte(s.rec.Name)); err != nil {
			return err
		}
		w.listChanged = true
		w.touched[id] = true
		w.modseq()
	}
	s.deleted = true
	return nil
}

// has reports whether b has key k, also when its value is empty.
func has(b *bolt.Bucket, k []byte) bool {
	ck, _ := b.Cursor().Seek(k)
	return ck != nil && bytes.Equal(ck, k)
}

// deletePrefix deletes every key starting with prefix.
func deletePrefix(b *bolt.Bucket, prefix []byte) error {
	for {
		var keys [][]byte
		c := b.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(keys) < 1024; k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
		}
		if len(keys) == 0 {
			return nil
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
	}
}

// DeleteMailbox deletes a mailbox and its messages. INBOX and mailboxes
// with children cannot be deleted.
func (a *Account) DeleteMailbox(ctx context.Context, name string) error {
	name, err := CleanName(name)
	if err != nil {
		return err
	}
	if name == inboxName {
		return fmt.Errorf("%w: INBOX cannot be deleted (RFC 9051 §6.3.4); expunge its messages instead", ErrBadName)
	}
	return a.do(ctx, func(w *wtx) error {
		id := w.lookupName(name)
		if id == 0 {
			return clean(fmt.Errorf("%q: %w", name, ErrNotFound))
		}
		c := w.bucket(bucketNames).Cursor()
		if k, _ := c.Seek([]byte(name + "/")); k != nil && bytes.HasPrefix(k, []byte(name+"/")) {
			return clean(fmt.Errorf("%w: mailbox %q has child mailboxes such as %q; delete or rename them first", ErrBadName, name, k))
		}
		return w.dropMailbox(id)
	})
}

// RenameMailbox renames a mailbox and its children, keeping their
// uidvalidity, and moves their subscriptions. Renaming INBOX moves its
// messages into a new mailbox `to` and leaves INBOX empty (RFC 9051
// §6.3.6).
func (a *Account) RenameMailbox(ctx context.Context, from, to string) error {
	from, err := CleanName(from)
	if err != nil {
		return err
	}
	to, err = CleanName(to)
	if err != nil {
		return err
	}
	if to == from || to == inboxName {
		return fmt.Errorf("mailbox %q: %w", to, ErrExists)
	}
	if strings.HasPrefix(to, from+"/") {
		return fmt.Errorf("%w: cannot rename %q into its own child %q", ErrBadName, from, to)
	}
	return a.do(ctx, func(w *wtx) error {
		id := w.lookupName(from)
		if id == 0 {
			return clean(fmt.Errorf("%q: %w", from, ErrNotFound))
		}
		if w.lookupName(to) != 0 {
			return clean(fmt.Errorf("mailbox %q: %w", to, ErrExists))
		}
		if from == inboxName {
			return w.renameInbox(id, to)
		}
		// Collect the mailbox and its children before changing names.
		type move struct {
			old, new string
			id       uint32
		}
		moves := []move{{from, to, id}}
		c := w.bucket(bucketNames).Cursor()
		pfx := []byte(from + "/")
		for k, v := c.Seek(pfx); k != nil && bytes.HasPrefix(k, pfx); k, v = c.Next() {
			nn := to + string(k[len(from):])
			if _, err := CleanName(nn); err != nil {
				return clean(err)
			}
			moves = append(moves, move{string(k), nn, beU32(v)})
		}
		for _, m := range moves[1:] {
			if w.lookupName(m.new) != 0 {
				return clean(fmt.Errorf("mailbox %q: %w", m.new, ErrExists))
			}
		}
		names := w.bucket(bucketNames)
		subs := w.bucket(bucketSubscriptions)
		for _, m := range moves {
			s, err := w.mailbox(m.id)
			if err != nil {
				return err
			}
			if err := names.Delete([]byte(m.old)); err != nil {
				return err
			}
			if err := names.Put([]byte(m.new), key32(m.id)); err != nil {
				return err
			}
			s.rec.Name = m.new
			s.recDirty = true
			w.touch(s)
			if has(subs, []byte(m.old)) {
				if err := subs.Delete([]byte(m.old)); err != nil {
					return err
				}
				if err := subs.Put([]byte(m.new), []byte{}); err != nil {
					return err
				}
			}
		}
		for _, p := range parentNames(to) {
			if w.lookupName(p) == 0 {
				if _, err := w.createMailbox(p, SpecialNone, false); err != nil {
					return err
				}
			}
		}
		w.listChanged = true
		return nil
	})
}

// renameInbox moves all INBOX messages into a new mailbox to.
func (w *wtx) renameInbox(inbox uint32, to string) error {
	src, err := w.mailbox(inbox)
	if err != nil {
		return err
	}
	dst, err := w.ensureMailbox(to, SpecialNone)
	if err != nil {
		return err
	}
	ds, err := w.mailbox(dst)
	if err != nil {
		return err
	}
	var from uint32 = 1
	for {
		uids, recs, err := w.collect(inbox, []UIDRange{{from, 1<<32 - 1}}, 5000, nil)
		if err != nil {
			return err
		}
		if len(uids) == 0 {
			return nil
		}
		// A rename, not a move: no junk flag rule applies.
		if _, err := w.copyMessages(ds, recs, false); err != nil {
			return err
		}
		if err := w.expungeMessages(src, uids, recs); err != nil {
			return err
		}
		from = uids[len(uids)-1] + 1
		if from == 0 {
			return nil
		}
	}
}

// SetSpecialUse changes a mailbox's special-use attribute.
func (a *Account) SetSpecialUse(ctx context.Context, name string, use SpecialUse) error {
	name, err := CleanName(name)
	if err != nil {
		return err
	}
	if use > specialMax {
		return fmt.Errorf("%w: unknown special-use %d", ErrBadName, use)
	}
	return a.do(ctx, func(w *wtx) error {
		id := w.lookupName(name)
		if id == 0 {
			return clean(fmt.Errorf("%q: %w", name, ErrNotFound))
		}
		s, err := w.mailbox(id)
		if err != nil {
			return err
		}
		if s.rec.SpecialUse == use {
			return nil
		}
		s.rec.SpecialUse = use
		s.recDirty = true
		w.modseq()
		w.listChanged = true
		return nil
	})
}

// Subscribe adds or removes name from the subscriptions; the mailbox need
// not exist (RFC 9051 §6.3.7).
func (a *Account) Subscribe(ctx context.Context, name string, on bool) error {
	name, err := CleanName(name)
	if err != nil {
		return err
	}
	return a.do(ctx, func(w *wtx) error {
		b := w.bucket(bucketSubscriptions)
		if has(b, []byte(name)) == on {
			return nil
		}
		if on {
			err = b.Put([]byte(name), []byte{})
		} else {
			err = b.Delete([]byte(name))
		}
		w.modseq()
		w.listChanged = true
		return err
	})
}

// Subscriptions returns the subscribed names, sorted.
func (a *Account) Subscriptions() ([]string, error) {
	var l []string
	err := a.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketSubscriptions)).ForEach(func(k, v []byte) error {
			l = append(l, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	sort.Strings(l)
	return l, nil
}

// fillDeletedSizes gives the summaries written before moxd kept deleted
// sizes theirs, counted from the messages, in one transaction at Open.
func (a *Account) fillDeletedSizes() error {
	var old []uint32
	err := a.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketSummary)).ForEach(func(k, v []byte) error {
			if r, err := parseSummaryRec(v); err == nil && r.DeletedSize < 0 && len(k) == 4 {
				old = append(old, beU32(k))
			}
			return nil
		})
	})
	if err != nil || len(old) == 0 {
		return err
	}
	err = a.db.Update(func(tx *bolt.Tx) error {
		sums := tx.Bucket([]byte(bucketSummary))
		msgs := tx.Bucket([]byte(bucketMsgs)).Cursor()
		for _, id := range old {
			r, err := parseSummaryRec(sums.Get(key32(id)))
			if err != nil {
				return fmt.Errorf("summary of mailbox id %d: %w", id, err)
			}
			r.DeletedSize = 0
			prefix := key32(id)
			for k, v := msgs.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = msgs.Next() {
				m, err := parseMsgRec(v)
				if err != nil {
					return fmt.Errorf("mailbox id %d message %d: %w", id, beU32(k[4:]), err)
				}
				if m.Flags&FlagDeleted != 0 {
					r.DeletedSize += m.Size
				}
			}
			if err := sums.Put(prefix, r.marshal()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("count deleted message sizes of %d mailboxes: %w", len(old), err)
	}
	return nil
}
