package account

import (
	"bytes"
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"moxd/internal/auth"
)

// Delivery is one message for one mailbox of the account.
type Delivery struct {
	Body     *Body
	Mailbox  string // "" = INBOX; a missing mailbox is created
	Flags    Flags
	Keywords []string
	Prefix   []byte    // header lines added at delivery, CRLF-terminated, served before the file
	Received time.Time // zero: now
}

// Delivered is the result of one Delivery.
type Delivered struct {
	MailboxID, UIDValidity, UID uint32
	ModSeq                      uint64
	Err                         error
}

// Deliver commits deliveries through the group commit and returns one
// result per delivery once the commit is durable. A failing delivery (over
// quota, bad mailbox name, ...) gets its own error; the others commit.
func (a *Account) Deliver(ctx context.Context, ds []Delivery) []Delivered {
	res := make([]Delivered, len(ds))
	ops := make([]*op, len(ds))
	for i := range ds {
		d, r := &ds[i], &res[i]
		var size int64
		if d.Body != nil {
			size = d.Body.size
		}
		ops[i] = newOp(size, func(w *wtx) error {
			return w.deliver(d, r, false)
		})
	}
	if err := a.enqueue(ops...); err != nil {
		for i := range res {
			res[i].Err = err
		}
		return res
	}
	for i, o := range ops {
		if err := a.wait(ctx, o); err != nil {
			res[i] = Delivered{Err: err}
		}
	}
	return res
}

// Append adds a message to an existing mailbox through the group commit
// (RFC 9051 §6.3.12). ErrNotFound if the mailbox does not exist, for the
// TRYCREATE response code.
func (a *Account) Append(ctx context.Context, mailbox string, body *Body, flags Flags, keywords []string, received time.Time) (Delivered, error) {
	res, err := a.AppendAll(ctx, mailbox, []Delivery{{Body: body, Flags: flags, Keywords: keywords, Received: received}})
	if err != nil {
		return Delivered{}, err
	}
	return res[0], nil
}

// deliver runs one delivery in a write transaction. Every check that can
// fail comes before the first write, so those failures are clean.
func (w *wtx) deliver(d *Delivery, r *Delivered, mustExist bool) error {
	*r = Delivered{}
	if d.Body == nil {
		return clean(fmt.Errorf("%w: no body", ErrBadBody))
	}
	if max := w.a.maxMessage.Load(); d.Body.size > max {
		return clean(fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, d.Body.size, max))
	}
	if len(d.Prefix) > 0 && !bytes.HasSuffix(d.Prefix, []byte("\r\n")) {
		return clean(fmt.Errorf("%w: delivery header lines must end in CRLF", ErrBadBody))
	}
	if err := checkKeywords(d.Keywords); err != nil {
		return clean(err)
	}
	name := d.Mailbox
	if name == "" {
		name = inboxName
	}
	name, err := CleanName(name)
	if err != nil {
		return clean(err)
	}
	size := int64(len(d.Prefix)) + d.Body.size
	if err := w.checkQuota(size); err != nil {
		return err
	}
	id := w.lookupName(name)
	if id == 0 {
		if mustExist {
			return clean(fmt.Errorf("%q: %w", name, ErrNotFound))
		}
		if id, err = w.ensureMailbox(name, SpecialNone); err != nil {
			return err
		}
	}
	s, err := w.mailbox(id)
	if err != nil {
		return err
	}
	fileID, err := w.addFile(d.Body, d.Prefix)
	if err != nil {
		return err
	}
	kwids, err := w.keywordIDs(d.Keywords, true)
	if err != nil {
		return err
	}
	// Junk flag rules apply unless the caller said junk or not (junk.go;
	// RFC 9051 §6.3.12: the flags given with APPEND are set).
	if !hasJunkKeyword(d.Keywords) {
		if kwids, err = w.applyJunkRule(s.rec.Name, kwids); err != nil {
			return err
		}
	}
	received := d.Received
	if received.IsZero() {
		received = w.a.now()
	}
	uid, err := w.addMessage(s, msgRec{FileID: fileID, Size: size, Received: received.Unix(), Flags: d.Flags & flagsAll, Keywords: kwids})
	if err != nil {
		return err
	}
	*r = Delivered{MailboxID: id, UIDValidity: s.rec.UIDValidity, UID: uid, ModSeq: w.modseq()}
	return nil
}

// addFile allocates a file id, links the body there and writes its files
// record with one reference.
func (w *wtx) addFile(b *Body, prefix []byte) (uint64, error) {
	id := w.meta.nextfile
	w.meta.nextfile++
	if err := w.linkFile(b.path, id); err != nil {
		return 0, err
	}
	fr := fileRec{
		Refs: 1, Size: b.size, Prefix: prefix, Tree: b.tree,
		MessageID: b.messageID, InReplyTo: b.inReplyTo, References: b.references, BaseSubject: b.baseSubject,
	}
	if err := w.bucket(bucketFiles).Put(key64(id), fr.marshal()); err != nil {
		return 0, fmt.Errorf("write file record: %w", err)
	}
	return id, nil
}

// credentialsKey is the key of the account's password-derived credentials.
const credentialsKey = "password"

// SetCredentials stores the account's credentials, hashed by the caller.
func (a *Account) SetCredentials(ctx context.Context, c auth.Credentials) error {
	buf, err := c.MarshalBinary()
	if err != nil {
		return fmt.Errorf("store credentials: %w", err)
	}
	return a.do(ctx, func(w *wtx) error {
		return w.bucket(bucketCredentials).Put([]byte(credentialsKey), buf)
	})
}

// Credentials returns the stored credentials; ok is false if none are set.
func (a *Account) Credentials() (auth.Credentials, bool, error) {
	var c auth.Credentials
	var ok bool
	err := a.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket([]byte(bucketCredentials)).Get([]byte(credentialsKey))
		if v == nil {
			return nil
		}
		ok = true
		return c.UnmarshalBinary(v)
	})
	if err != nil {
		return auth.Credentials{}, false, fmt.Errorf("read credentials: %w", err)
	}
	return c, ok, nil
}
