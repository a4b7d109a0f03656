package queue

// Records of outbound delivery in queue.db: the outcome of an attempt,
// retired recipients, suppression lists, hold rules and what recipient
// domains' servers offered. Schema: db.go.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Retired is a recipient that is done: delivered, failed, or dropped by
// an admin. It is kept for [queue] keep.
type Retired struct {
	Msg        uint64
	Seq        uint32
	Account    string
	MailFrom   string
	Address    string
	MessageID  string
	Subject    string
	Size       int64
	Queued     time.Time
	Retired    time.Time
	Delivered  bool
	Attempts   int
	LastError  string // the last reply or error (for a delivery: the accepting reply)
	LastHost   string
	LastStatus string
	Transport  string
	Extra      map[string]string
	History    []Attempt

	// Fields added after History; a record without them ends before.

	// FromID is the unique id of the message's MAIL FROM
	// (account.unique_mail_from), "" when not used; the fromids bucket
	// indexes it.
	FromID string
	// RemoteDSN is what a DSN from the recipient's side said after the
	// delivery ("failed 5.1.1: 550 no such user"), "" when none came
	// (incoming.go).
	RemoteDSN string
}

func retiredKey(t time.Time, msg uint64, seq uint32) []byte {
	k := binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano()))
	k = binary.BigEndian.AppendUint64(k, msg)
	return binary.BigEndian.AppendUint32(k, seq)
}

func (r *Retired) marshal() []byte {
	w := newRecord()
	w.string(r.Account)
	w.string(r.MailFrom)
	w.string(r.Address)
	w.string(r.MessageID)
	w.string(r.Subject)
	w.uint(uint64(r.Size))
	w.time(r.Queued)
	w.bool(r.Delivered)
	w.uint(uint64(r.Attempts))
	w.string(r.LastError)
	w.string(r.LastHost)
	w.string(r.LastStatus)
	w.string(r.Transport)
	w.uint(uint64(len(r.Extra)))
	for _, k := range sortedKeys(r.Extra) {
		w.string(k)
		w.string(r.Extra[k])
	}
	w.history(r.History)
	w.string(r.FromID)
	w.string(r.RemoteDSN)
	return w.b
}

func unmarshalRetired(k, b []byte) (*Retired, error) {
	if len(k) != 20 {
		return nil, fmt.Errorf("%w: retired key of %d bytes", errCorrupt, len(k))
	}
	r := &Retired{
		Retired: time.Unix(0, int64(binary.BigEndian.Uint64(k))),
		Msg:     binary.BigEndian.Uint64(k[8:]),
		Seq:     binary.BigEndian.Uint32(k[16:]),
	}
	d := newReader(b)
	r.Account = d.string()
	r.MailFrom = d.string()
	r.Address = d.string()
	r.MessageID = d.string()
	r.Subject = d.string()
	r.Size = int64(d.uint())
	r.Queued = d.time()
	r.Delivered = d.bool()
	r.Attempts = int(d.uint())
	r.LastError = d.string()
	r.LastHost = d.string()
	r.LastStatus = d.string()
	r.Transport = d.string()
	n := d.uint()
	if n > maxExtraFields {
		d.fail("extra count")
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		if r.Extra == nil {
			r.Extra = map[string]string{}
		}
		key := d.string()
		r.Extra[key] = d.string()
	}
	r.History = d.history()
	if d.err == nil && len(d.b) > 0 {
		r.FromID = d.string()
		r.RemoteDSN = d.string()
	}
	if err := d.done(); err != nil {
		return nil, fmt.Errorf("retired %d.%d: %w", r.Msg, r.Seq, err)
	}
	return r, nil
}

// retire records rc of m as retired at now, with its last result.
func (w *wtx) retire(m *Message, rc *Recipient, now time.Time, delivered bool, transport string) error {
	r := &Retired{
		Msg: m.ID, Seq: rc.Seq, Account: m.Account, MailFrom: m.MailFrom, Address: rc.Address,
		MessageID: m.MessageID, Subject: m.Subject, Size: m.Size, Queued: m.Queued, Retired: now,
		Delivered: delivered, Attempts: rc.Attempts, LastError: rc.LastError, LastHost: rc.LastHost,
		LastStatus: rc.LastStatus, Transport: transport, Extra: m.Extra, History: rc.History, FromID: m.FromID,
	}
	k := retiredKey(now, m.ID, rc.Seq)
	if m.FromID != "" {
		// A DSN sent to the unique MAIL FROM finds the record (incoming.go).
		if err := w.tx.Bucket([]byte(bucketFromIDs)).Put(fromIDKey(m.FromID, k), nil); err != nil {
			return err
		}
	}
	return w.tx.Bucket([]byte(bucketRetired)).Put(k, r.marshal())
}

// dueOf returns the due time of a message: the earliest next attempt of
// its queued recipients that are not held; zero when none is.
func dueOf(rcpts []*Recipient) time.Time {
	var t time.Time
	for _, rc := range rcpts {
		if rc != nil && rc.State == RcptQueued && !rc.Held && (t.IsZero() || rc.NextAttempt.Before(t)) {
			t = rc.NextAttempt
		}
	}
	return t
}

// moveDue replaces the due entry of m at old by one at next (either may
// be zero: no entry).
func (w *wtx) moveDue(m *Message, old, next time.Time) error {
	if old.Equal(next) {
		return nil
	}
	b := w.tx.Bucket([]byte(bucketDue))
	kind := dueKind(m)
	if !old.IsZero() {
		if err := b.Delete(dueKey(kind, old, m.ID)); err != nil {
			return err
		}
	}
	if !next.IsZero() {
		if err := b.Put(dueKey(kind, next, m.ID), nil); err != nil {
			return err
		}
		w.after = append(w.after, w.q.notifyOutbound)
	}
	return nil
}

// removeIfEmpty removes message m and its file when it has no recipient
// records left.
func (w *wtx) removeIfEmpty(m *Message) (bool, error) {
	prefix := key64(m.ID)
	k, _ := w.tx.Bucket([]byte(bucketRcpts)).Cursor().Seek(prefix)
	if k != nil && bytes.HasPrefix(k, prefix) {
		return false, nil
	}
	if err := w.tx.Bucket([]byte(bucketMsgs)).Delete(key64(m.ID)); err != nil {
		return false, err
	}
	if err := w.unlinkFile(m.FileID); err != nil {
		return false, err
	}
	w.after = append(w.after, func() { w.q.messages.Add(-1) })
	return true, nil
}

// recordOutbound applies the planned outcomes of an attempt on message id
// and queues the DSNs and webhook events they caused, in one operation.
func (q *Queue) recordOutbound(id uint64, plans []outcome, now time.Time, ds deliverySettings, dsns []*newMessage, hooks []*Hook) error {
	return q.do(func(w *wtx) error {
		m, rcpts, err := readMessage(w.tx, id)
		if err != nil {
			return err
		}
		old := dueOf(rcpts)
		bySeq := map[uint32]*Recipient{}
		for _, rc := range rcpts {
			bySeq[rc.Seq] = rc
		}
		rb := w.tx.Bucket([]byte(bucketRcpts))
		removed := 0
		for _, o := range plans {
			rc := bySeq[o.Seq]
			if rc == nil || rc.State != RcptQueued {
				continue
			}
			if !o.NotAttempt {
				rc.History = addAttempt(rc.History, Attempt{Time: now, Delivered: o.Delivered, Host: o.Host, Transport: o.Transport, TLS: o.TLS, Status: o.Status, Result: o.Error})
			}
			if o.Delivered || o.final {
				rc.LastError, rc.LastHost, rc.LastStatus = o.Error, o.Host, o.Status
				if !o.Delivered {
					rc.Attempts++
				}
				rc.LastAttempt = now
				if err := w.retire(m, rc, now, o.Delivered, o.Transport); err != nil {
					return err
				}
				if !o.Delivered && o.Permanent && addressGone(o.Status) && m.Account != "" && !m.DSN {
					// In the operation that fails the recipient: a message
					// queued right after must not go out to the address,
					// and a crash must not forget it.
					reason := fmt.Sprintf("delivery of message %d failed: %s", m.ID, o.Error)
					if err := w.addSuppression(m.Account, rc.Address, reason, false, now); err != nil {
						return err
					}
				}
				if err := rb.Delete(rcptKey(id, o.Seq)); err != nil {
					return err
				}
				delete(bySeq, o.Seq)
				removed++
				continue
			}
			rc.LastError, rc.LastHost, rc.LastStatus = o.Error, o.Host, o.Status
			if o.NotAttempt {
				rc.NextAttempt = now.Add(notAttemptDelay)
			} else {
				rc.Attempts++
				rc.LastAttempt = now
				rc.NextAttempt = now.Add(ds.retryDelay(rc.Attempts))
				if o.delayedDSN {
					rc.DelayedSent = true
				}
			}
			if err := rb.Put(rcptKey(id, o.Seq), rc.marshal()); err != nil {
				return err
			}
		}
		var left []*Recipient
		for _, rc := range bySeq {
			left = append(left, rc)
		}
		if err := w.moveDue(m, old, dueOf(left)); err != nil {
			return err
		}
		if removed > 0 {
			w.after = append(w.after, func() { q.recipients.Add(-int64(removed)) })
			if _, err := w.removeIfEmpty(m); err != nil {
				return err
			}
		}
		for _, nm := range dsns {
			if _, err := w.insertMessage(nm, now); err != nil {
				return fmt.Errorf("queue DSN: %w", err)
			}
		}
		for _, h := range hooks {
			if err := w.insertHook(h); err != nil {
				return fmt.Errorf("queue webhook event: %w", err)
			}
		}
		return nil
	})
}

// expireRetired deletes retired records older than keep; it returns how
// many it deleted (at most max per call, to keep transactions short).
func (q *Queue) expireRetired(now time.Time, keep time.Duration, max int) (int, error) {
	n := 0
	err := q.do(func(w *wtx) error {
		n = 0
		limit := binary.BigEndian.AppendUint64(nil, uint64(now.Add(-keep).UnixNano()))
		c := w.tx.Bucket([]byte(bucketRetired)).Cursor()
		fb := w.tx.Bucket([]byte(bucketFromIDs))
		for k, v := c.First(); k != nil && bytes.Compare(k, limit) < 0 && n < max; k, v = c.Next() {
			if r, err := unmarshalRetired(k, v); err == nil && r.FromID != "" {
				if err := fb.Delete(fromIDKey(r.FromID, k)); err != nil {
					return err
				}
			}
			if err := c.Delete(); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// Suppression is an entry of an account's suppression list.
type Suppression struct {
	Account string
	Address string
	Reason  string
	Added   time.Time
	Manual  bool // added by an admin, not after a failed delivery
}

func suppressKey(account, addr string) []byte {
	return append(accountPrefix(account), normAddress(addr)...)
}

func (s *Suppression) marshal() []byte {
	w := newRecord()
	w.string(s.Address)
	w.string(s.Reason)
	w.time(s.Added)
	w.bool(s.Manual)
	return w.b
}

func unmarshalSuppression(k, b []byte) (*Suppression, error) {
	i := bytes.IndexByte(k, 0)
	if i < 0 {
		return nil, fmt.Errorf("%w: suppression key without account", errCorrupt)
	}
	s := &Suppression{Account: string(k[:i])}
	d := newReader(b)
	s.Address = d.string()
	s.Reason = d.string()
	s.Added = d.time()
	s.Manual = d.bool()
	return s, d.done()
}

// suppressed returns the suppression entry of addr for account.
func (q *Queue) suppressed(account, addr string) (*Suppression, bool) {
	var s *Suppression
	q.db.View(func(tx *bolt.Tx) error {
		k := suppressKey(account, addr)
		if v := tx.Bucket([]byte(bucketSuppress)).Get(k); v != nil {
			s, _ = unmarshalSuppression(k, v)
		}
		return nil
	})
	return s, s != nil
}

// addSuppression puts addr on account's suppression list; an existing
// entry is kept (with its first reason).
func (q *Queue) addSuppression(account, addr, reason string, manual bool) error {
	return q.do(func(w *wtx) error { return w.addSuppression(account, addr, reason, manual, q.now()) })
}

// addSuppression is Queue.addSuppression in the write transaction w.
func (w *wtx) addSuppression(account, addr, reason string, manual bool, now time.Time) error {
	b := w.tx.Bucket([]byte(bucketSuppress))
	k := suppressKey(account, addr)
	if b.Get(k) != nil {
		return nil
	}
	s := &Suppression{Address: addr, Reason: reason, Added: now, Manual: manual}
	return b.Put(k, s.marshal())
}

// HoldRule holds new messages that match all its non-empty fields; a
// rule with every field empty holds everything.
type HoldRule struct {
	ID              uint64
	Account         string
	SenderDomain    string
	RecipientDomain string
}

func (h *HoldRule) marshal() []byte {
	w := newRecord()
	w.string(h.Account)
	w.string(h.SenderDomain)
	w.string(h.RecipientDomain)
	return w.b
}

func unmarshalHoldRule(k, b []byte) (*HoldRule, error) {
	if len(k) != 8 {
		return nil, fmt.Errorf("%w: hold rule key of %d bytes", errCorrupt, len(k))
	}
	h := &HoldRule{ID: binary.BigEndian.Uint64(k)}
	d := newReader(b)
	h.Account = d.string()
	h.SenderDomain = d.string()
	h.RecipientDomain = d.string()
	return h, d.done()
}

// matches says whether the rule holds a message of account from
// senderDomain to recipient domain rcptDomain.
func (h *HoldRule) matches(account, senderDomain, rcptDomain string) bool {
	return (h.Account == "" || h.Account == account) &&
		(h.SenderDomain == "" || h.SenderDomain == senderDomain) &&
		(h.RecipientDomain == "" || h.RecipientDomain == rcptDomain)
}

// holdRuleMatches says whether a hold rule holds the recipient rcpt of
// m.
func holdRuleMatches(tx *bolt.Tx, m *Message, rcpt string) bool {
	b := tx.Bucket([]byte(bucketHoldRules))
	if b == nil {
		return false
	}
	_, sdom, _ := parseAddress(m.MailFrom)
	_, rdom, _ := parseAddress(rcpt)
	held := false
	b.ForEach(func(k, v []byte) error {
		h, err := unmarshalHoldRule(k, v)
		if err == nil && h.matches(m.Account, sdom, rdom) {
			held = true
		}
		return nil
	})
	return held
}

// TLSSeen is what a recipient domain's server offered to an account's
// last delivery there.
type TLSSeen struct {
	STARTTLS   bool
	RequireTLS bool
	Updated    time.Time
}

// recordTLSSeen notes what the server of domain offered on a delivery for
// account. Written only when it changed, so it costs nothing per message.
func (q *Queue) recordTLSSeen(account, domain string, seen TLSSeen) {
	k := append(accountPrefix(account), domain...)
	var cur []byte
	q.db.View(func(tx *bolt.Tx) error {
		cur = bytes.Clone(tx.Bucket([]byte(bucketTLSSeen)).Get(k))
		return nil
	})
	if len(cur) >= 3 && (cur[1] == 1) == seen.STARTTLS && (cur[2] == 1) == seen.RequireTLS {
		return
	}
	w := newRecord()
	w.bool(seen.STARTTLS)
	w.bool(seen.RequireTLS)
	w.time(seen.Updated)
	v := w.b
	go q.do(func(w *wtx) error { return w.tx.Bucket([]byte(bucketTLSSeen)).Put(k, v) })
}
