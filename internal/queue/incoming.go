package queue

// Incoming deliveries (ipc.IncomingDelivery, from store after its commit):
//
//   - Incoming webhooks: an account with [[account.webhook]] kind
//     "incoming" gets a webhook event "incoming" for every message
//     delivered to it, posted like the outgoing events (webhook.go).
//   - DSN matching: a DSN sent to the unique MAIL FROM of a message this
//     queue sent (account.unique_mail_from: mjl+<fromid>@example.org)
//     is matched through the fromids index to the message's retired
//     recipients. Many servers accept a message and only later find out
//     they cannot deliver it; their DSN is the only news of it. A
//     recipient the DSN says "failed" gets the result in its retired
//     record, its address on the account's suppression list when the
//     status says the address does not exist (addressGone, as for a
//     failure queue saw itself), and an outgoing webhook event "failed";
//     other actions (delayed, delivered, relayed, expanded) are only
//     recorded. A DSN whose id matches nothing, or a message of another
//     account, is counted and ignored.
//
// Store parsed the DSN (DESIGN.md §1: queue never parses message
// content); the event carries the results, bounded. Everything one event
// causes is written in one operation.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"moxd/internal/ipc"
)

const (
	// maxFromIDRecords bounds the retired records one DSN is matched
	// against: the recipients of one message.
	maxFromIDRecords = 1000
	// maxRemoteDSN bounds Retired.RemoteDSN.
	maxRemoteDSN = 400
)

// incomingStats counts the incoming events.
type incomingStats struct {
	events    atomic.Uint64 // events received
	hooks     atomic.Uint64 // incoming webhook events queued
	matched   atomic.Uint64 // DSNs that matched a message
	unmatched atomic.Uint64 // DSNs with a from id that matched nothing
}

// fromIDKey is the key of the fromids index entry of retired record k.
func fromIDKey(fromID string, retiredKey []byte) []byte {
	k := append([]byte(fromID), 0)
	return append(k, retiredKey...)
}

// incomingHook returns the incoming webhook of account, or nil.
func (st *settings) incomingHook(account string) (url, auth string, ok bool) {
	a, found := st.accounts[account]
	if !found {
		return "", "", false
	}
	for _, h := range a.Webhooks {
		if h.Kind == "incoming" {
			return h.URL, h.Authorization, true
		}
	}
	return "", "", false
}

// incomingPayload is the JSON body of an incoming webhook event.
type incomingPayload struct {
	Version   int          `json:"version"`
	Event     string       `json:"event"` // "incoming"
	From      string       `json:"from"`  // the From header's address
	To        string       `json:"to"`    // the address delivered to
	MailFrom  string       `json:"mailFrom"`
	Subject   string       `json:"subject"`
	MessageID string       `json:"messageID"`
	Mailbox   string       `json:"mailbox"`
	Size      int64        `json:"size"`
	Received  time.Time    `json:"received"`
	DSN       *incomingDSN `json:"dsn,omitempty"`
}

// incomingDSN is the DSN part of an incoming webhook event. QueueMsgID
// is the message the DSN was matched to, 0 when none.
type incomingDSN struct {
	FromID     string              `json:"fromID,omitempty"`
	QueueMsgID uint64              `json:"queueMsgID,omitempty"`
	Results    []incomingDSNResult `json:"results"`
}

type incomingDSNResult struct {
	Recipient  string `json:"recipient"`
	Action     string `json:"action"`
	Status     string `json:"status,omitempty"`
	Diagnostic string `json:"diagnostic,omitempty"`
}

// incoming handles one incoming delivery event.
func (sv *service) incoming(m *ipc.IncomingDelivery) {
	sv.incomingStats.events.Add(1)
	st := sv.settings.Load()
	if _, ok := st.accounts[m.Account]; !ok {
		sv.log.Debug("incoming delivery for an account queue does not know", "account", m.Account)
		return
	}
	url, auth, hook := st.incomingHook(m.Account)
	fromIDs := fromIDCandidates(st, m)
	if !hook && len(fromIDs) == 0 {
		return
	}
	now := sv.now()
	var matched uint64
	err := sv.q.do(func(w *wtx) error {
		matched = 0
		if len(fromIDs) > 0 {
			var err error
			if matched, err = w.matchDSN(st, m, fromIDs, now); err != nil {
				return err
			}
		}
		if !hook {
			return nil
		}
		h, err := newIncomingHook(m, matched, url, auth, now)
		if err != nil {
			return err
		}
		return w.insertHook(h)
	})
	if err != nil {
		sv.log.Error("record incoming delivery", "account", m.Account, "err", err)
		return
	}
	if hook {
		sv.incomingStats.hooks.Add(1)
	}
	if len(fromIDs) > 0 {
		if matched != 0 {
			sv.incomingStats.matched.Add(1)
			sv.log.Info("dsn matched to a sent message", "account", m.Account, "msg", matched, "fromid", m.DSN.FromID)
		} else {
			sv.incomingStats.unmatched.Add(1)
			sv.log.Debug("dsn matches no sent message", "account", m.Account, "fromid", m.DSN.FromID)
		}
	}
}

// fromIDCandidates are the ids a DSN event may carry: the tag store
// found (everything after the first separator) and, when the sender's own
// address was tagged (mjl+tag+<id>), the part after its last separator.
func fromIDCandidates(st *settings, m *ipc.IncomingDelivery) []string {
	if m.DSN == nil || m.DSN.FromID == "" {
		return nil
	}
	l := []string{m.DSN.FromID}
	if at := strings.LastIndexByte(m.Rcpt, '@'); at >= 0 {
		for _, sep := range st.separators[strings.ToLower(m.Rcpt[at+1:])] {
			if i := strings.LastIndex(m.DSN.FromID, sep); i >= 0 && i+len(sep) < len(m.DSN.FromID) {
				l = append(l, m.DSN.FromID[i+len(sep):])
			}
		}
	}
	return l
}

// retiredRef is a retired record with its key.
type retiredRef struct {
	key []byte
	r   *Retired
}

// matchDSN applies the results of the DSN m to the retired records of
// the message sent with the first of fromIDs that has any, of m's
// account. It returns that message's id, 0 when none matched.
func (w *wtx) matchDSN(st *settings, m *ipc.IncomingDelivery, fromIDs []string, now time.Time) (uint64, error) {
	var recs []retiredRef
	rb := w.tx.Bucket([]byte(bucketRetired))
	for _, id := range fromIDs {
		prefix := fromIDKey(id, nil)
		c := w.tx.Bucket([]byte(bucketFromIDs)).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(recs) < maxFromIDRecords; k, _ = c.Next() {
			rk := k[len(prefix):]
			if len(rk) != 20 {
				continue
			}
			v := rb.Get(rk)
			if v == nil {
				continue
			}
			r, err := unmarshalRetired(rk, v)
			if err != nil || r.FromID != id || r.Account != m.Account {
				// Another account's message: the id is not this
				// account's to report on.
				continue
			}
			recs = append(recs, retiredRef{bytes.Clone(rk), r})
		}
		if len(recs) > 0 {
			break
		}
	}
	if len(recs) == 0 {
		return 0, nil
	}
	msg := recs[0].r.Msg
	for _, res := range m.DSN.Results {
		var targets []retiredRef
		for _, rr := range recs {
			if normAddress(rr.r.Address) == normAddress(res.FinalRecipient) {
				targets = append(targets, rr)
			}
		}
		if len(targets) == 0 && len(recs) == 1 && len(m.DSN.Results) == 1 {
			// A single recipient whose DSN names another final
			// recipient: it was forwarded there.
			targets = recs
		}
		for _, rr := range targets {
			if err := w.applyDSNResult(st, rr, res, now); err != nil {
				return 0, err
			}
		}
	}
	return msg, nil
}

// applyDSNResult records one DSN result for a retired recipient.
func (w *wtx) applyDSNResult(st *settings, rr retiredRef, res ipc.DSNResult, now time.Time) error {
	r := rr.r
	failed := res.Action == "failed"
	if strings.HasPrefix(r.RemoteDSN, "failed") && !failed {
		// A later "delayed" or "relayed" does not undo a failure.
		return nil
	}
	again := failed && strings.HasPrefix(r.RemoteDSN, "failed")
	text := strings.TrimSpace(res.Action + " " + res.Status)
	if res.Diagnostic != "" {
		text += ": " + res.Diagnostic
	}
	r.RemoteDSN = ipc.ClipText(printable(text, false), maxRemoteDSN)
	if err := w.tx.Bucket([]byte(bucketRetired)).Put(rr.key, r.marshal()); err != nil {
		return err
	}
	if !failed || again || !r.Delivered {
		// A duplicate DSN changes the record only, and so does one for a
		// recipient queue saw fail itself (that failure had its
		// suppression and webhook event).
		return nil
	}
	gone := addressGone(res.Status)
	if gone {
		reason := fmt.Sprintf("DSN for message %d: %s", r.Msg, r.RemoteDSN)
		if err := w.addSuppression(r.Account, r.Address, reason, false, now); err != nil {
			return err
		}
	}
	m := &Message{ID: r.Msg, Account: r.Account, MailFrom: r.MailFrom, MessageID: r.MessageID, Subject: r.Subject,
		Queued: r.Queued, Extra: r.Extra, FromID: r.FromID}
	rc := &Recipient{Msg: r.Msg, Seq: r.Seq, Address: r.Address, Attempts: r.Attempts}
	o := outcome{Seq: r.Seq, Permanent: true, Error: res.Diagnostic, Status: res.Status}
	if o.Error == "" {
		o.Error = text
	}
	if h := newOutgoingHook(st, m, rc, o, "failed", gone, now); h != nil {
		if err := w.insertHook(h); err != nil {
			return err
		}
	}
	return nil
}

// newIncomingHook makes the webhook event of m for url; matched is the
// message a DSN was matched to.
func newIncomingHook(m *ipc.IncomingDelivery, matched uint64, url, auth string, now time.Time) (*Hook, error) {
	p := incomingPayload{
		Event: "incoming", From: m.From, To: m.Rcpt, MailFrom: m.MailFrom, Subject: m.Subject,
		MessageID: m.MessageID, Mailbox: m.Mailbox, Size: m.Size, Received: time.Unix(0, m.Received).UTC(),
	}
	if m.DSN != nil {
		d := &incomingDSN{FromID: m.DSN.FromID, QueueMsgID: matched, Results: []incomingDSNResult{}}
		for _, r := range m.DSN.Results {
			d.Results = append(d.Results, incomingDSNResult{Recipient: r.FinalRecipient, Action: r.Action, Status: r.Status, Diagnostic: r.Diagnostic})
		}
		p.DSN = d
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("incoming webhook payload: %w", err)
	}
	return &Hook{Account: m.Account, URL: url, Auth: auth, Event: "incoming", Payload: b, Queued: now, NextAttempt: now}, nil
}
