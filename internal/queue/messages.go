package queue

// Operations on queued messages: adding one (with the sending limits of
// its account), finding due work, and recording the outcome of an
// attempt.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// dailyLimits are an account's sending limits over the last 24 hours; 0
// means no limit.
type dailyLimits struct {
	Messages            int // max_messages_per_day
	FirstTimeRecipients int // max_first_time_recipients_per_day
}

// LimitError is a submission refused because the account reached one of
// its daily limits. Its text is what the SMTP client sees.
type LimitError struct {
	msg string
}

func (e *LimitError) Error() string { return e.msg }

// newMessage is a message to add: the record (ID, FileID, Size and Queued
// are set by addMessage), its recipients (address and DSN parameters), the
// fsynced file in tmp/ and when the first attempt is due.
type newMessage struct {
	msg    Message
	rcpts  []Recipient
	tmp    string
	size   int64
	first  time.Time
	limits dailyLimits
}

// addMessage records nm in one (batched) commit and returns the message
// id. The tmp file is removed once the commit succeeded; on error it stays
// the caller's. A daily limit gives a *LimitError.
func (q *Queue) addMessage(nm *newMessage) (uint64, error) {
	var id uint64
	err := q.do(func(w *wtx) error {
		var err error
		id, err = w.insertMessage(nm, q.now())
		return err
	})
	return id, err
}

// insertMessage records nm in the write transaction w (see addMessage).
func (w *wtx) insertMessage(nm *newMessage, now time.Time) (uint64, error) {
	tx, q := w.tx, w.q
	var firstTime []string
	if nm.msg.Account != "" && !nm.msg.DSN {
		var err error
		firstTime, err = checkLimits(tx, nm, now)
		if err != nil {
			return 0, err
		}
	}
	msgID, err := nextID(tx, metaNextmsg)
	if err != nil {
		return 0, err
	}
	fileID, err := nextID(tx, metaNextfile)
	if err != nil {
		return 0, err
	}
	if err := w.link(nm.tmp, fileID); err != nil {
		return 0, err
	}
	m := nm.msg
	m.ID, m.FileID, m.Size, m.Queued = msgID, fileID, nm.size, now
	if m.Received.IsZero() {
		m.Received = now
	}
	if err := tx.Bucket([]byte(bucketMsgs)).Put(key64(msgID), m.marshal()); err != nil {
		return 0, err
	}
	rb := tx.Bucket([]byte(bucketRcpts))
	// Due unless a hold rule holds every recipient.
	due := false
	for i, rc := range nm.rcpts {
		rc.Msg, rc.Seq = msgID, uint32(i)
		rc.NextAttempt, rc.State = nm.first, RcptQueued
		rc.Attempts, rc.LastError, rc.LastAttempt = 0, "", time.Time{}
		if !m.LocalOnly && !m.DSN && holdRuleMatches(tx, &m, rc.Address) {
			rc.Held = true
		}
		if err := rb.Put(rcptKey(msgID, rc.Seq), rc.marshal()); err != nil {
			return 0, err
		}
		due = due || !rc.Held
	}
	if due {
		if err := tx.Bucket([]byte(bucketDue)).Put(dueKey(dueKind(&m), nm.first, msgID), nil); err != nil {
			return 0, err
		}
	}
	if m.Account != "" && !m.DSN {
		e := sentEntry{Recipients: len(nm.rcpts), FirstTime: len(firstTime)}
		if err := tx.Bucket([]byte(bucketSent)).Put(sentKey(m.Account, now, msgID), e.marshal()); err != nil {
			return 0, err
		}
		kb := tx.Bucket([]byte(bucketKnown))
		for _, a := range firstTime {
			if err := kb.Put(knownKey(m.Account, a), key64(uint64(now.UnixNano()))); err != nil {
				return 0, err
			}
		}
	}
	local := m.LocalOnly
	nrcpts := len(nm.rcpts)
	w.late = append(w.late, func() { os.Remove(nm.tmp) })
	w.after = append(w.after, func() {
		q.messages.Add(1)
		q.recipients.Add(int64(nrcpts))
		if local {
			q.notifyChanged()
		} else {
			q.notifyOutbound()
		}
	})
	return msgID, nil
}

func dueKind(m *Message) byte {
	if m.LocalOnly {
		return dueLocal
	}
	return dueOutbound
}

// checkLimits applies the account's daily limits to nm and returns the
// normalized recipient addresses the account never sent to before. It
// deletes history entries older than 24 hours on the way, which is
// harmless whether the message is accepted or not; it writes nothing
// else.
func checkLimits(tx *bolt.Tx, nm *newMessage, now time.Time) ([]string, error) {
	account := nm.msg.Account
	prefix := accountPrefix(account)
	since := now.Add(-historyWindow)
	sb := tx.Bucket([]byte(bucketSent))
	var messages, firstTime int
	var expired [][]byte
	c := sb.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if len(k) != len(prefix)+16 {
			continue
		}
		t := time.Unix(0, int64(binary.BigEndian.Uint64(k[len(prefix):])))
		if t.Before(since) {
			expired = append(expired, append([]byte(nil), k...))
			continue
		}
		e, err := unmarshalSent(v)
		if err != nil {
			return nil, fmt.Errorf("sending history of account %s: %w", account, err)
		}
		messages++
		firstTime += e.FirstTime
	}
	for _, k := range expired {
		if err := sb.Delete(k); err != nil {
			return nil, err
		}
	}
	if max := nm.limits.Messages; max > 0 && messages >= max {
		return nil, refuse(&LimitError{fmt.Sprintf("account %q reached its limit of %d messages in 24 hours; try again later, or raise max_messages_per_day of the account in domains.conf", account, max)})
	}
	kb := tx.Bucket([]byte(bucketKnown))
	seen := map[string]bool{}
	var fresh []string
	for _, rc := range nm.rcpts {
		a := normAddress(rc.Address)
		if seen[a] {
			continue
		}
		seen[a] = true
		if kb.Get(knownKey(account, a)) == nil {
			fresh = append(fresh, a)
		}
	}
	if max := nm.limits.FirstTimeRecipients; max > 0 && len(fresh) > 0 && firstTime+len(fresh) > max {
		return nil, refuse(&LimitError{fmt.Sprintf("account %q reached its limit of %d first-time recipients in 24 hours (this message has %d recipients the account never sent to, %d were used already); try again later, or raise max_first_time_recipients_per_day of the account in domains.conf", account, max, len(fresh), firstTime)})
	}
	return fresh, nil
}

// normAddress is the form recipient addresses are compared in for the
// first-time limit: every common server treats addresses
// case-insensitively.
func normAddress(addr string) string {
	return strings.ToLower(strings.TrimSpace(addr))
}

// dueMessages returns up to max messages of kind whose next attempt is at
// or before now, and the next attempt after those (zero if none).
func (q *Queue) dueMessages(kind byte, now time.Time, max int) ([]uint64, time.Time, error) {
	var ids []uint64
	var next time.Time
	err := q.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket([]byte(bucketDue)).Cursor()
		for k, _ := c.Seek([]byte{kind}); k != nil && k[0] == kind; k, _ = c.Next() {
			t, id, ok := parseDueKey(k)
			if !ok {
				continue
			}
			if t.After(now) || len(ids) >= max {
				next = t
				break
			}
			ids = append(ids, id)
		}
		return nil
	})
	return ids, next, err
}

// loadMessage reads a message and its recipients.
func (q *Queue) loadMessage(id uint64) (*Message, []*Recipient, error) {
	var m *Message
	var rcpts []*Recipient
	err := q.db.View(func(tx *bolt.Tx) error {
		var err error
		m, rcpts, err = readMessage(tx, id)
		return err
	})
	return m, rcpts, err
}

// errNoMessage is returned for a message id without record.
var errNoMessage = errors.New("no such message in the queue")

func readMessage(tx *bolt.Tx, id uint64) (*Message, []*Recipient, error) {
	v := tx.Bucket([]byte(bucketMsgs)).Get(key64(id))
	if v == nil {
		return nil, nil, fmt.Errorf("message %d: %w", id, errNoMessage)
	}
	m, err := unmarshalMessage(id, v)
	if err != nil {
		return nil, nil, err
	}
	var rcpts []*Recipient
	prefix := key64(id)
	c := tx.Bucket([]byte(bucketRcpts)).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		rc, err := unmarshalRecipient(k, v)
		if err != nil {
			return nil, nil, err
		}
		rcpts = append(rcpts, rc)
	}
	return m, rcpts, nil
}

// outcome is the result of an attempt for one recipient.
type outcome struct {
	Seq       uint32
	Delivered bool
	Permanent bool   // failed permanently: no further attempts
	Error     string // what went wrong (or the accepting reply), for the record and the DSN
	// Outbound only.
	Host       string // the server that answered
	Status     string // enhanced status code of the reply, may be ""
	NotAttempt bool   // not an attempt (a role restarting, moxd stopping): try again soon, uncounted
	Relayed    bool   // delivered to a server that does not pass DSN requests on
	Transport  string // transport used, for the retired record
	Suppressed bool   // failed because the address is on the account's suppression list
	TLS        string // the connection's TLS and its policy, for logs ("tls (dane)", "plaintext")

	// Planned by finishAttempt.
	final      bool // the recipient is done: retire it
	delayedDSN bool // a delayed DSN goes out for it now
}

// recordAttempt applies the outcomes of an attempt on message id at now:
// delivered recipients are removed, failed ones get their attempt counted
// and the next one scheduled after delays[attempts] or, when attempts are
// used up or the failure is permanent, state failed. A message left
// without recipients is removed with its file. It returns the recipients
// that failed for good in this attempt.
func (q *Queue) recordAttempt(id uint64, outs []outcome, now time.Time, delays []time.Duration) ([]*Recipient, error) {
	var failed []*Recipient
	err := q.do(func(w *wtx) error {
		failed = nil
		tx := w.tx
		m, rcpts, err := readMessage(tx, id)
		if err != nil {
			return err
		}
		bySeq := map[uint32]*Recipient{}
		var oldNext time.Time
		for _, rc := range rcpts {
			bySeq[rc.Seq] = rc
			if rc.State == RcptQueued && !rc.Held {
				oldNext = rc.NextAttempt
			}
		}
		rb := tx.Bucket([]byte(bucketRcpts))
		removed := 0
		for _, o := range outs {
			rc := bySeq[o.Seq]
			if rc == nil || rc.State != RcptQueued {
				continue
			}
			if o.Delivered {
				if err := rb.Delete(rcptKey(id, o.Seq)); err != nil {
					return err
				}
				delete(bySeq, o.Seq)
				removed++
				continue
			}
			rc.Attempts++
			rc.LastAttempt = now
			rc.LastError = o.Error
			if o.Permanent || rc.Attempts >= len(delays) {
				rc.State = RcptFailed
				failed = append(failed, rc)
			} else {
				rc.NextAttempt = now.Add(delays[rc.Attempts])
			}
			if err := rb.Put(rcptKey(id, o.Seq), rc.marshal()); err != nil {
				return err
			}
		}
		db := tx.Bucket([]byte(bucketDue))
		kind := dueKind(m)
		if !oldNext.IsZero() {
			if err := db.Delete(dueKey(kind, oldNext, id)); err != nil {
				return err
			}
		}
		var newNext time.Time
		for _, rc := range bySeq {
			if rc.State == RcptQueued && !rc.Held && (newNext.IsZero() || rc.NextAttempt.Before(newNext)) {
				newNext = rc.NextAttempt
			}
		}
		if !newNext.IsZero() {
			if err := db.Put(dueKey(kind, newNext, id), nil); err != nil {
				return err
			}
		}
		gone := len(bySeq) == 0
		if gone {
			if err := tx.Bucket([]byte(bucketMsgs)).Delete(key64(id)); err != nil {
				return err
			}
			if err := w.unlinkFile(m.FileID); err != nil {
				return err
			}
		}
		w.after = append(w.after, func() {
			q.recipients.Add(-int64(removed))
			if gone {
				q.messages.Add(-1)
			}
		})
		return nil
	})
	return failed, err
}
