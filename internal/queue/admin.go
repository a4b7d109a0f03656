package queue

// Queue administration: what moxctl queue asks for through master
// (FamQueueAdmin on master's channel, served by serveMaster). Listing and
// dumping queued messages; holding, releasing, rescheduling, failing and
// dropping recipients; the transport and REQUIRETLS of messages; hold
// rules; retired recipients; suppression lists.
//
// Selection is a scan of the msgs and rcpts buckets: in a read
// transaction for lists, inside the write operation for changes (so a
// change acts on what is queued when it commits, not on an older view).
// That is fine for administration and not meant for a hot path. Paged
// lists scan again for each page; a queue that changes between pages may
// show a recipient twice or not at all.
//
// Every change keeps the invariants of db.go: the due index has one entry
// per message at dueOf(its recipients), or none; a recipient record that
// goes away is retired first; a message left without recipient records is
// removed with its file (removeIfEmpty). Write operations are idempotent
// (commit.go may run one twice): they compute everything from what they
// read in their transaction.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"moxd/internal/ipc"
)

// Filter selects queued recipients. IDs, Account, From and Transport
// select messages; To and Held select recipients within them. Empty
// fields (nil Held) select everything. From and To are case-insensitive
// substrings of the MAIL FROM and the recipient address. Transport is the
// name set on the message with "moxctl queue transport" (Message.Transport);
// messages whose routes decide have none, so a Transport filter never
// selects them.
type Filter struct {
	IDs       []uint64
	Account   string
	From      string
	To        string
	Transport string
	Held      *bool
}

// empty reports whether f selects everything.
func (f *Filter) empty() bool {
	return len(f.IDs) == 0 && f.Account == "" && f.From == "" && f.To == "" && f.Transport == "" && f.Held == nil
}

func (f *Filter) matchMessage(m *Message) bool {
	return (f.Account == "" || m.Account == f.Account) &&
		(f.From == "" || containsFold(m.MailFrom, f.From)) &&
		(f.Transport == "" || m.Transport == f.Transport)
}

func (f *Filter) matchRecipient(rc *Recipient) bool {
	return (f.To == "" || containsFold(rc.Address, f.To)) &&
		(f.Held == nil || rc.Held == *f.Held)
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

// selection is a message a filter selected: all its recipient records and
// those of them the filter selected (the same pointers).
type selection struct {
	m     *Message
	rcpts []*Recipient
	sel   []*Recipient
}

// selectTx returns the messages f selects, in message id order, each with
// at least one selected recipient. Records that do not decode are logged
// and left alone ("moxctl verifydata" reports them). Nothing is changed
// while the buckets are iterated.
func (q *Queue) selectTx(tx *bolt.Tx, f *Filter) []selection {
	var ids []uint64
	if len(f.IDs) > 0 {
		ids = slices.Clone(f.IDs)
		slices.Sort(ids)
		ids = slices.Compact(ids)
	} else {
		c := tx.Bucket([]byte(bucketMsgs)).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) == 8 {
				ids = append(ids, binary.BigEndian.Uint64(k))
			}
		}
	}
	var l []selection
	for _, id := range ids {
		m, rcpts, err := readMessage(tx, id)
		if errors.Is(err, errNoMessage) {
			continue
		} else if err != nil {
			q.log.Error("queue administration skips a message whose records do not decode; check with moxctl verifydata", "msg", id, "err", err)
			continue
		}
		if !f.matchMessage(m) {
			continue
		}
		s := selection{m: m, rcpts: rcpts}
		for _, rc := range rcpts {
			if f.matchRecipient(rc) {
				s.sel = append(s.sel, rc)
			}
		}
		if len(s.sel) > 0 {
			l = append(l, s)
		}
	}
	return l
}

// Entry is one queued recipient with its message, a row of List.
type Entry struct {
	Msg         uint64
	Seq         uint32
	Account     string
	MailFrom    string
	Recipient   string
	Queued      time.Time
	NextAttempt time.Time
	LastAttempt time.Time
	Attempts    int
	Held        bool
	State       RcptState
	LastError   string
	LastHost    string
	LastStatus  string
	Transport   string // set on the message; "" when routes decide
	Size        int64
	RequireTLS  RequireTLS
	LocalOnly   bool
	DSN         bool
}

// List returns the recipients f selects, sorted by sortBy ("queued" or
// "next", ascending; "-queued" or "-next" descending; "" is "queued"),
// from index start on, at most limit (0: all), and how many matched in
// all.
func (q *Queue) List(f Filter, sortBy string, start, limit int) ([]Entry, int, error) {
	var key func(e *Entry) time.Time
	switch strings.TrimPrefix(sortBy, "-") {
	case "", "queued":
		key = func(e *Entry) time.Time { return e.Queued }
	case "next":
		key = func(e *Entry) time.Time { return e.NextAttempt }
	default:
		return nil, 0, fmt.Errorf("unknown sort order %q: use queued, -queued, next or -next", sortBy)
	}
	var all []Entry
	err := q.db.View(func(tx *bolt.Tx) error {
		for _, s := range q.selectTx(tx, &f) {
			m := s.m
			for _, rc := range s.sel {
				all = append(all, Entry{
					Msg: m.ID, Seq: rc.Seq, Account: m.Account, MailFrom: m.MailFrom, Recipient: rc.Address,
					Queued: m.Queued, NextAttempt: rc.NextAttempt, LastAttempt: rc.LastAttempt, Attempts: rc.Attempts,
					Held: rc.Held, State: rc.State, LastError: rc.LastError, LastHost: rc.LastHost, LastStatus: rc.LastStatus,
					Transport: m.Transport, Size: m.Size, RequireTLS: m.RequireTLS, LocalOnly: m.LocalOnly, DSN: m.DSN,
				})
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	desc := strings.HasPrefix(sortBy, "-")
	sort.SliceStable(all, func(i, j int) bool {
		a, b := &all[i], &all[j]
		if desc {
			a, b = b, a
		}
		if ka, kb := key(a), key(b); !ka.Equal(kb) {
			return ka.Before(kb)
		}
		if a.Msg != b.Msg {
			return a.Msg < b.Msg
		}
		return a.Seq < b.Seq
	})
	total := len(all)
	start = min(max(start, 0), total)
	end := total
	if limit > 0 {
		end = min(start+limit, total)
	}
	return all[start:end], total, nil
}

// Limits of Dump.
const (
	dumpHeaderRead = 16 << 10         // bytes of the file read for its header
	dumpMaxText    = ipc.MaxQueueText // the whole description
)

// Dump describes message id for an admin: the envelope, every recipient
// with its state and last error (DANE and MTA-STS failures show there),
// and the header of the message as it will be sent. The text is at most
// dumpMaxText bytes; control characters other than tab and newline are
// shown as "?".
func (q *Queue) Dump(id uint64) (string, error) {
	return q.dump(id, nil)
}

// dump is Dump with a description of the route of each recipient, when
// route is not nil.
func (q *Queue) dump(id uint64, route func(m *Message, rc *Recipient) string) (string, error) {
	m, rcpts, err := q.loadMessage(id)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	line := func(name, format string, args ...any) {
		fmt.Fprintf(&b, "  %-14s %s\n", name+":", printable(fmt.Sprintf(format, args...), false))
	}
	when := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(&b, "message %d\n", m.ID)
	line("account", "%s", orDash(m.Account))
	line("mail from", "<%s>", m.MailFrom)
	line("queued", "%s", when(m.Queued))
	line("received", "%s", when(m.Received))
	line("size", "%d bytes (file %x)", m.Size, m.FileID)
	line("message-id", "%s", orDash(m.MessageID))
	line("subject", "%s", orDash(m.Subject))
	line("requiretls", "%s", requireTLSName(m.RequireTLS))
	line("transport", "%s", orText(m.Transport, "(routes decide)"))
	var flags []string
	for _, fl := range []struct {
		on   bool
		name string
	}{{m.SMTPUTF8, "smtputf8"}, {m.EightBit, "8bitmime"}, {m.LocalOnly, "local-only (local retry)"}, {m.DSN, "dsn (made by queue)"}} {
		if fl.on {
			flags = append(flags, fl.name)
		}
	}
	line("flags", "%s", orDash(strings.Join(flags, ", ")))
	if m.EnvID != "" || m.Ret != 0 {
		ret := map[uint8]string{ipc.RetFull: "full", ipc.RetHdrs: "hdrs"}[m.Ret]
		line("dsn request", "envid %s, ret %s", orDash(m.EnvID), orDash(ret))
	}
	if m.FromID != "" {
		line("from id", "%s", m.FromID)
	}
	for _, k := range sortedKeys(m.Extra) {
		line("extra", "%s=%s", k, m.Extra[k])
	}
	for _, rc := range rcpts {
		fmt.Fprintf(&b, "recipient %d <%s>\n", rc.Seq, printable(rc.Address, false))
		state := rc.State.String()
		if rc.Held {
			state += ", held"
		}
		line("state", "%s", state)
		line("next attempt", "%s", when(rc.NextAttempt))
		line("attempts", "%d, last %s", rc.Attempts, when(rc.LastAttempt))
		if rc.LastError != "" || rc.LastHost != "" {
			line("last host", "%s", orDash(rc.LastHost))
			line("last status", "%s", orDash(rc.LastStatus))
			line("last error", "%s", orDash(rc.LastError))
		}
		if rc.Notify != 0 || rc.ORcpt != "" {
			line("dsn request", "notify %s, orcpt %s", notifyNames(rc.Notify), orDash(rc.ORcpt))
		}
		if rc.DelayedSent {
			line("delayed dsn", "sent")
		}
		for _, a := range rc.History {
			line("attempt", "%s", formatAttempt(a))
		}
		if route != nil {
			line("route", "%s", route(m, rc))
		}
	}
	hdr, note := q.fileHeader(m)
	b.WriteString("header")
	if note != "" {
		b.WriteString(" (" + note + ")")
	}
	b.WriteString(":\n")
	b.WriteString(printable(m.Prepend+hdr, true))
	return clipDump(b.String()), nil
}

// formatAttempt is one line about a delivery attempt.
func formatAttempt(a Attempt) string {
	what := "failed"
	if a.Delivered {
		what = "delivered"
	}
	s := fmt.Sprintf("%s %s via %s", a.Time.UTC().Format(time.RFC3339), what, orDash(a.Host))
	if a.Transport != "" {
		s += " (transport " + a.Transport + ")"
	}
	if a.TLS != "" {
		s += ", " + a.TLS
	}
	return s + ": " + orDash(a.Result)
}

// historyText is the attempts of a retired recipient, one per line.
func historyText(h []Attempt) string {
	var b strings.Builder
	for _, a := range h {
		b.WriteString(formatAttempt(a))
		b.WriteString("\n")
	}
	return b.String()
}

// fileHeader returns the header section of m's file (up to the blank
// line), read from its first dumpHeaderRead bytes, and a note when it is
// incomplete.
func (q *Queue) fileHeader(m *Message) (string, string) {
	f, err := os.Open(q.filePath(m.FileID))
	if err != nil {
		return "", fmt.Sprintf("message file: %v", err)
	}
	defer f.Close()
	buf := make([]byte, dumpHeaderRead)
	n, err := io.ReadFull(f, buf)
	buf = buf[:n]
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return "", fmt.Sprintf("reading message file: %v", err)
	}
	if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
		return string(buf[:i+2]), ""
	}
	if i := bytes.Index(buf, []byte("\n\n")); i >= 0 {
		return string(buf[:i+1]), ""
	}
	if n == dumpHeaderRead {
		return string(buf), fmt.Sprintf("longer than %d KiB, cut", dumpHeaderRead>>10)
	}
	return string(buf), "no body"
}

// clipDump cuts a dump that is too long and says so.
func clipDump(s string) string {
	if len(s) <= dumpMaxText {
		return s
	}
	const note = "\n[cut: the description is longer than 12 KiB; moxctl queue list -id shows every recipient]\n"
	return ipc.ClipText(s, dumpMaxText-len(note)) + note
}

// printable returns s as valid UTF-8 with control characters (C0, DEL
// and C1) shown as "?", so that text from messages and remote servers
// cannot steer an admin's terminal. With multiline, CRLF becomes a newline
// and tabs and newlines stay.
func printable(s string, multiline bool) string {
	s = strings.ToValidUTF8(s, "?")
	if multiline {
		s = strings.ReplaceAll(s, "\r\n", "\n")
	}
	return strings.Map(func(r rune) rune {
		if multiline && (r == '\n' || r == '\t') {
			return r
		}
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError {
			return '?'
		}
		return r
	}, s)
}

func orDash(s string) string { return orText(s, "-") }

func orText(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

func requireTLSName(v RequireTLS) string {
	switch v {
	case RequireTLSYes:
		return "yes (REQUIRETLS)"
	case RequireTLSNo:
		return "no (TLS-Required: No)"
	}
	return "default"
}

func notifyNames(n uint8) string {
	if n == 0 {
		return "default"
	}
	var l []string
	for _, b := range []struct {
		bit  uint8
		name string
	}{{ipc.NotifyNever, "never"}, {ipc.NotifySuccess, "success"}, {ipc.NotifyFailure, "failure"}, {ipc.NotifyDelay, "delay"}} {
		if n&b.bit != 0 {
			l = append(l, b.name)
		}
	}
	return strings.Join(l, ",")
}

// redue moves the due entry of m from old to where its recipients put
// it now, and wakes the local retrier for a local-only message (moveDue
// wakes the deliverer).
func (w *wtx) redue(m *Message, old time.Time, rcpts []*Recipient) error {
	next := dueOf(rcpts)
	if err := w.moveDue(m, old, next); err != nil {
		return err
	}
	if m.LocalOnly && !next.IsZero() && !next.Equal(old) {
		w.after = append(w.after, w.q.notifyChanged)
	}
	return nil
}

// changeRecipients runs fn on every message f selects; fn changes
// recipient records and returns those it changed (each once) and the
// count to report. The changed records are written and the message's due
// entry moved.
func (q *Queue) changeRecipients(f Filter, fn func(s selection) ([]*Recipient, int)) (int, error) {
	n := 0
	err := q.do(func(w *wtx) error {
		n = 0
		rb := w.tx.Bucket([]byte(bucketRcpts))
		for _, s := range q.selectTx(w.tx, &f) {
			old := dueOf(s.rcpts)
			changed, c := fn(s)
			for _, rc := range changed {
				if err := rb.Put(rcptKey(rc.Msg, rc.Seq), rc.marshal()); err != nil {
					return err
				}
			}
			n += c
			if err := w.redue(s.m, old, s.rcpts); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}

// queuedSelected returns the selected recipients of s that are queued.
func (s selection) queuedSelected() []*Recipient {
	var l []*Recipient
	for _, rc := range s.sel {
		if rc.State == RcptQueued {
			l = append(l, rc)
		}
	}
	return l
}

// Hold holds the queued recipients f selects: they get no attempts until
// released. It returns how many were not held before.
func (q *Queue) Hold(f Filter) (int, error) {
	return q.changeRecipients(f, func(s selection) ([]*Recipient, int) {
		var changed []*Recipient
		for _, rc := range s.queuedSelected() {
			if !rc.Held {
				rc.Held = true
				changed = append(changed, rc)
			}
		}
		return changed, len(changed)
	})
}

// Unhold releases the held recipients f selects and returns how many.
// The queued recipients of a message share their next attempt (db.go): a
// released recipient and those of its message not held all get the
// earliest of their next attempts, so nobody waits longer than before and
// a next attempt in the past is due at once.
func (q *Queue) Unhold(f Filter) (int, error) {
	return q.changeRecipients(f, func(s selection) ([]*Recipient, int) {
		var changed []*Recipient
		for _, rc := range s.queuedSelected() {
			if rc.Held {
				rc.Held = false
				changed = append(changed, rc)
			}
		}
		n := len(changed)
		if n == 0 {
			return nil, 0
		}
		next := dueOf(s.rcpts)
		for _, rc := range s.rcpts {
			if rc.State == RcptQueued && !rc.Held && !rc.NextAttempt.Equal(next) {
				rc.NextAttempt = next
				if !slices.Contains(changed, rc) {
					changed = append(changed, rc)
				}
			}
		}
		return changed, n
	})
}

// Schedule sets the next attempt of the messages with a queued recipient
// f selects to at, for all their queued recipients: recipients of a
// message share their next attempt (db.go). Held recipients get the time
// too and stay held. It returns how many recipients were rescheduled.
func (q *Queue) Schedule(f Filter, at time.Time) (int, error) {
	return q.changeRecipients(f, func(s selection) ([]*Recipient, int) {
		if len(s.queuedSelected()) == 0 {
			return nil, 0
		}
		var changed []*Recipient
		for _, rc := range s.rcpts {
			if rc.State == RcptQueued {
				rc.NextAttempt = at
				changed = append(changed, rc)
			}
		}
		return changed, len(changed)
	})
}

// changeMessages applies fn to every message f selects that has a queued
// recipient and is not local-only, and writes those for which it returns
// true; it returns how many.
func (q *Queue) changeMessages(f Filter, fn func(m *Message) bool) (int, error) {
	n := 0
	err := q.do(func(w *wtx) error {
		n = 0
		mb := w.tx.Bucket([]byte(bucketMsgs))
		for _, s := range q.selectTx(w.tx, &f) {
			if s.m.LocalOnly || !slices.ContainsFunc(s.sel, func(rc *Recipient) bool { return rc.State == RcptQueued }) {
				continue
			}
			if !fn(s.m) {
				continue
			}
			if err := mb.Put(key64(s.m.ID), s.m.marshal()); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// SetTransport sets the transport of the messages f selects: their
// routes are skipped from the next attempt on. "" lets the routes decide
// again. The caller checks that the transport is configured. Local-only
// messages are never sent outbound and are left alone. It returns how
// many messages changed.
func (q *Queue) SetTransport(f Filter, name string) (int, error) {
	return q.changeMessages(f, func(m *Message) bool {
		if m.Transport == name {
			return false
		}
		m.Transport = name
		return true
	})
}

// SetRequireTLS sets the TLS requirement of the messages f selects:
// RequireTLSYes as with REQUIRETLS, RequireTLSNo as with "TLS-Required:
// No", RequireTLSUnset for the default policies. It returns how many
// messages changed.
func (q *Queue) SetRequireTLS(f Filter, v RequireTLS) (int, error) {
	if v > RequireTLSNo {
		return 0, fmt.Errorf("requiretls value %d", v)
	}
	return q.changeMessages(f, func(m *Message) bool {
		if m.RequireTLS == v {
			return false
		}
		m.RequireTLS = v
		return true
	})
}

// Notes of retired recipients removed by an admin.
const (
	noteDropped = "dropped by admin (moxctl queue drop)"
	noteFailed  = "failed by admin (moxctl queue fail)"
)

// adminNote is the last error of a recipient an admin removed: the note,
// with the error of its last attempt when there was one.
func adminNote(note, last string) string {
	if last == "" {
		return note
	}
	return note + "; last error: " + last
}

// removeRecipients retires the recipients gone of message s.m with the
// note as last error, deletes their records, moves the message's due
// entry and removes the message when nothing is left. status is the
// enhanced status code recorded, "" to keep the recipient's.
func (w *wtx) removeRecipients(s selection, gone []*Recipient, note, status string, now time.Time) error {
	if len(gone) == 0 {
		return nil
	}
	old := dueOf(s.rcpts)
	rb := w.tx.Bucket([]byte(bucketRcpts))
	left := slices.Clone(s.rcpts)
	for _, rc := range gone {
		rc.LastError = adminNote(note, rc.LastError)
		if status != "" {
			rc.LastStatus = status
		}
		if err := w.retire(s.m, rc, now, false, s.m.Transport); err != nil {
			return err
		}
		if fn := w.q.adminHook; fn != nil {
			event := "canceled"
			if note == noteFailed {
				event = "failed"
			}
			if h := fn(s.m, rc, event, now); h != nil {
				if err := w.insertHook(h); err != nil {
					return err
				}
			}
		}
		if err := rb.Delete(rcptKey(rc.Msg, rc.Seq)); err != nil {
			return err
		}
		left = slices.DeleteFunc(left, func(r *Recipient) bool { return r == rc })
	}
	if err := w.moveDue(s.m, old, dueOf(left)); err != nil {
		return err
	}
	n := int64(len(gone))
	q := w.q
	w.after = append(w.after, func() { q.recipients.Add(-n) })
	_, err := w.removeIfEmpty(s.m)
	return err
}

// Drop removes the recipients f selects, queued or failed, without a DSN;
// they are retired as not delivered, "dropped by admin". It returns how
// many.
func (q *Queue) Drop(f Filter) (int, error) {
	n := 0
	err := q.do(func(w *wtx) error {
		n = 0
		now := q.now()
		for _, s := range q.selectTx(w.tx, &f) {
			if err := w.removeRecipients(s, s.sel, noteDropped, "", now); err != nil {
				return err
			}
			n += len(s.sel)
		}
		return nil
	})
	return n, err
}

// Fail fails the queued recipients f selects now, as a permanent failure
// would: they are retired as not delivered, "failed by admin", and the
// sender gets a "failed" DSN per message for the recipients that asked
// for one (RFC 3461 NOTIFY; none for the null sender or a DSN). The DSNs
// are written before the operation from the records as read then; the
// operation fails only the recipients that are still queued, and queues
// a message's DSN only when one of its recipients was failed. It returns
// the recipients failed and the DSNs queued.
func (sv *service) Fail(f Filter) (int, int, error) {
	q := sv.q
	now := q.now()
	type planned struct {
		seqs []uint32
		dsn  *newMessage
	}
	plans := map[uint64]*planned{}
	var order []uint64 // message ids, ascending
	var sels []selection
	if err := q.db.View(func(tx *bolt.Tx) error {
		sels = q.selectTx(tx, &f)
		return nil
	}); err != nil {
		return 0, 0, err
	}
	defer func() {
		for _, p := range plans {
			if p.dsn != nil {
				removeTemp(p.dsn.tmp) // gone already when it was queued
			}
		}
	}()
	for _, s := range sels {
		p := &planned{}
		var notify []dsnRecipient
		for _, rc := range s.sel {
			if rc.State != RcptQueued {
				continue
			}
			p.seqs = append(p.seqs, rc.Seq)
			if rc.Notify == 0 || rc.Notify&ipc.NotifyFailure != 0 {
				notify = append(notify, dsnRecipient{rc: rc, out: outcome{Seq: rc.Seq, Permanent: true, Status: "5.0.0", Error: adminNote(noteFailed, rc.LastError)}})
			}
		}
		if len(p.seqs) == 0 {
			continue
		}
		plans[s.m.ID] = p
		order = append(order, s.m.ID)
		if s.m.MailFrom == "" || s.m.DSN || len(notify) == 0 {
			continue
		}
		nm, err := sv.composeDSN(s.m, "failed", notify, now)
		if err != nil {
			sv.log.Error("compose DSN for recipients failed by admin; the sender is not told", "msg", s.m.ID, "err", err)
			continue
		}
		p.dsn = nm
	}
	if len(plans) == 0 {
		return 0, 0, nil
	}
	var n, dsns int
	err := q.do(func(w *wtx) error {
		n, dsns = 0, 0
		for _, id := range order {
			p := plans[id]
			m, rcpts, err := readMessage(w.tx, id)
			if errors.Is(err, errNoMessage) {
				continue
			} else if err != nil {
				return err
			}
			s := selection{m: m, rcpts: rcpts}
			var gone []*Recipient
			for _, rc := range rcpts {
				if rc.State == RcptQueued && slices.Contains(p.seqs, rc.Seq) {
					gone = append(gone, rc)
				}
			}
			if err := w.removeRecipients(s, gone, noteFailed, "5.0.0", now); err != nil {
				return err
			}
			n += len(gone)
			if len(gone) > 0 && p.dsn != nil {
				if _, err := w.insertMessage(p.dsn, now); err != nil {
					return fmt.Errorf("queue DSN: %w", err)
				}
				dsns++
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return n, dsns, nil
}

// HoldRules returns the hold rules in the order they were added.
func (q *Queue) HoldRules() ([]HoldRule, error) {
	var l []HoldRule
	err := q.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketHoldRules)).ForEach(func(k, v []byte) error {
			h, err := unmarshalHoldRule(k, v)
			if err != nil {
				return fmt.Errorf("hold rule: %w", err)
			}
			l = append(l, *h)
			return nil
		})
	})
	return l, err
}

// AddHoldRule adds a hold rule (its ID is assigned; domains are compared
// lower-case) and holds the queued recipients it matches at once, except
// (as for new messages) those of local retries and DSNs. It returns the
// rule's id and how many recipients it held.
func (q *Queue) AddHoldRule(h HoldRule) (uint64, int, error) {
	h.SenderDomain = strings.ToLower(strings.TrimSuffix(h.SenderDomain, "."))
	h.RecipientDomain = strings.ToLower(strings.TrimSuffix(h.RecipientDomain, "."))
	var id uint64
	n := 0
	err := q.do(func(w *wtx) error {
		n = 0
		tx := w.tx
		// The rule counter was added after schema version 2 was
		// written: start it on first use.
		if counter(tx, metaNextrule) == 0 {
			if err := tx.Bucket([]byte(bucketMeta)).Put([]byte(metaNextrule), key64(1)); err != nil {
				return err
			}
		}
		var err error
		id, err = nextID(tx, metaNextrule)
		if err != nil {
			return err
		}
		rule := h
		rule.ID = id
		if err := tx.Bucket([]byte(bucketHoldRules)).Put(key64(id), rule.marshal()); err != nil {
			return err
		}
		rb := tx.Bucket([]byte(bucketRcpts))
		for _, s := range q.selectTx(tx, &Filter{}) {
			m := s.m
			if m.LocalOnly || m.DSN {
				continue
			}
			_, sdom, _ := parseAddress(m.MailFrom)
			old := dueOf(s.rcpts)
			for _, rc := range s.rcpts {
				_, rdom, _ := parseAddress(rc.Address)
				if rc.State != RcptQueued || rc.Held || !rule.matches(m.Account, sdom, rdom) {
					continue
				}
				rc.Held = true
				if err := rb.Put(rcptKey(rc.Msg, rc.Seq), rc.marshal()); err != nil {
					return err
				}
				n++
			}
			if err := w.redue(m, old, s.rcpts); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return id, n, nil
}

// RemoveHoldRule removes hold rule id and returns it; found is false if
// there is none. Recipients the rule held stay held: release them with
// Unhold.
func (q *Queue) RemoveHoldRule(id uint64) (HoldRule, bool, error) {
	var h HoldRule
	found := false
	err := q.do(func(w *wtx) error {
		found = false
		b := w.tx.Bucket([]byte(bucketHoldRules))
		v := b.Get(key64(id))
		if v == nil {
			return nil
		}
		r, err := unmarshalHoldRule(key64(id), v)
		if err != nil {
			return err
		}
		h, found = *r, true
		return b.Delete(key64(id))
	})
	return h, found, err
}

// RetiredList returns the retired recipients of account ("" for all),
// oldest first or newest first, from index start on, at most limit (0:
// all), and how many there are in all.
func (q *Queue) RetiredList(account string, start, limit int, newestFirst bool) ([]Retired, int, error) {
	var l []Retired
	total := 0
	err := q.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket([]byte(bucketRetired)).Cursor()
		first, next := c.First, c.Next
		if newestFirst {
			first, next = c.Last, c.Prev
		}
		for k, v := first(); k != nil; k, v = next() {
			r, err := unmarshalRetired(k, v)
			if err != nil {
				q.log.Error("retired record does not decode", "err", err)
				continue
			}
			if account != "" && r.Account != account {
				continue
			}
			if total >= start && (limit <= 0 || len(l) < limit) {
				l = append(l, *r)
			}
			total++
		}
		return nil
	})
	return l, total, err
}

// RetiredGet returns the retired records of recipient seq of message msg,
// or of every recipient of msg when seq is negative. A recipient retired
// more than once (a local retry's) has a record for each time.
func (q *Queue) RetiredGet(msg uint64, seq int64) ([]Retired, error) {
	var l []Retired
	err := q.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket([]byte(bucketRetired)).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(k) != 20 || binary.BigEndian.Uint64(k[8:]) != msg || seq >= 0 && int64(binary.BigEndian.Uint32(k[16:])) != seq {
				continue
			}
			r, err := unmarshalRetired(k, v)
			if err != nil {
				return err
			}
			l = append(l, *r)
		}
		return nil
	})
	return l, err
}

// SuppressionList returns the suppression list of account, every
// account's for "", in account and address order.
func (q *Queue) SuppressionList(account string) ([]Suppression, error) {
	var l []Suppression
	var prefix []byte
	if account != "" {
		prefix = accountPrefix(account)
	}
	err := q.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket([]byte(bucketSuppress)).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			s, err := unmarshalSuppression(k, v)
			if err != nil {
				return fmt.Errorf("suppression list: %w", err)
			}
			l = append(l, *s)
		}
		return nil
	})
	return l, err
}

// AddSuppression puts addr on account's suppression list as added by an
// admin, and returns the entry: an existing one is kept, with its reason.
func (q *Queue) AddSuppression(account, addr, reason string) (*Suppression, error) {
	if err := q.addSuppression(account, addr, reason, true); err != nil {
		return nil, err
	}
	s, ok := q.suppressed(account, addr)
	if !ok {
		return nil, fmt.Errorf("suppression of %s for account %s was not recorded", addr, account)
	}
	return s, nil
}

// RemoveSuppression takes addr off account's suppression list and returns
// the entry removed; found is false if it was not listed.
func (q *Queue) RemoveSuppression(account, addr string) (*Suppression, bool, error) {
	var s *Suppression
	err := q.do(func(w *wtx) error {
		s = nil
		b := w.tx.Bucket([]byte(bucketSuppress))
		k := suppressKey(account, addr)
		v := b.Get(k)
		if v == nil {
			return nil
		}
		var err error
		if s, err = unmarshalSuppression(k, v); err != nil {
			return err
		}
		return b.Delete(k)
	})
	return s, s != nil, err
}

// LookupSuppression returns the entry of addr on account's suppression
// list.
func (q *Queue) LookupSuppression(account, addr string) (*Suppression, bool) {
	return q.suppressed(account, addr)
}

// serveAdmin answers master's queue administration requests (all but the
// backup). Arguments that name configuration (accounts, transports) are
// checked against the current settings here.
func (sv *service) serveAdmin(msg ipc.Message) (ipc.Message, error) {
	switch m := msg.(type) {
	case *ipc.QueueList:
		max := int(m.Max)
		if max == 0 {
			max = ipc.MaxQueueEntries
		}
		entries, total, err := sv.q.List(filterOf(m.Filter), m.Sort, int(m.Start), max)
		if err != nil {
			return nil, remoteError("list the queue", err)
		}
		rep := &ipc.QueueListing{Total: count32(total)}
		used := 0
		for i := range entries {
			e := entryIPC(&entries[i])
			if used += e.WireSize(); used > ipc.QueueReplyBudget {
				break
			}
			rep.Entries = append(rep.Entries, e)
		}
		rep.More = int(m.Start)+len(rep.Entries) < total
		return rep, nil

	case *ipc.QueueDump:
		text, err := sv.q.dump(m.ID, sv.routeOf)
		if errors.Is(err, errNoMessage) {
			return nil, ipc.Errorf(ipc.CodeNotFound, "no message %d in the queue (moxctl queue retired print %d shows what became of it)", m.ID, m.ID)
		} else if err != nil {
			return nil, remoteError("dump the message", err)
		}
		return &ipc.QueueText{Text: text}, nil

	case *ipc.QueueAction:
		return sv.action(m)

	case *ipc.QueueHoldRules:
		return sv.holdRules(m)

	case *ipc.QueueRetired:
		return sv.retired(m)

	case *ipc.QueueSuppress:
		return sv.suppress(m)

	case *ipc.QueueWebhooks:
		return sv.webhooks(m)
	}
	return nil, ipc.Errorf(ipc.CodeBadRequest, "queue does not serve %s from master", msg.Type())
}

func filterOf(f ipc.QueueFilter) Filter {
	var held *bool
	switch f.Held {
	case ipc.QueueHeldYes:
		held = new(bool)
		*held = true
	case ipc.QueueHeldNo:
		held = new(bool)
	}
	return Filter{IDs: f.IDs, Account: f.Account, From: f.From, To: f.To, Transport: f.Transport, Held: held}
}

// count32 clamps a count to a uint32 field.
func count32(n int) uint32 {
	return uint32(min(max(n, 0), 1<<32-1))
}

func unixNano(t time.Time) int64 { return timeNS(t) }

func entryIPC(e *Entry) ipc.QueueEntry {
	return ipc.QueueEntry{
		Msg: e.Msg, Seq: e.Seq,
		Account:     ipc.ClipText(e.Account, ipc.MaxAccountLen),
		MailFrom:    ipc.ClipText(e.MailFrom, ipc.MaxAddressLen),
		Recipient:   ipc.ClipText(e.Recipient, ipc.MaxAddressLen),
		Queued:      unixNano(e.Queued),
		NextAttempt: unixNano(e.NextAttempt),
		LastAttempt: unixNano(e.LastAttempt),
		Attempts:    count32(e.Attempts),
		Held:        e.Held,
		Failed:      e.State == RcptFailed,
		LastError:   ipc.ClipText(e.LastError, ipc.MaxQueueError),
		LastHost:    ipc.ClipText(e.LastHost, ipc.MaxNameLen),
		LastStatus:  ipc.ClipText(e.LastStatus, ipc.MaxQueueStatus),
		Transport:   ipc.ClipText(e.Transport, ipc.MaxNameLen),
		Size:        e.Size,
		RequireTLS:  uint8(e.RequireTLS),
		LocalOnly:   e.LocalOnly,
		DSN:         e.DSN,
	}
}

// routeOf says how the next attempt for rc would go, for Dump.
func (sv *service) routeOf(m *Message, rc *Recipient) string {
	if m.LocalOnly {
		return "local delivery to store (local retry)"
	}
	st := sv.settings.Load()
	_, dom, err := parseAddress(rc.Address)
	if err != nil {
		return "none: " + err.Error()
	}
	if st.localserve || st.localDomains[dom] {
		return "local delivery to store"
	}
	_, fromDom, _ := parseAddress(m.MailFrom)
	t, why, err := st.routes.choose(routeInput{Account: m.Account, FromDomain: fromDom, ToDomain: dom, Attempts: rc.Attempts, Override: m.Transport})
	if err != nil {
		return err.Error()
	}
	name := t.Name
	if name == "" {
		name = "direct"
	}
	return fmt.Sprintf("transport %s (kind %s): %s", name, t.Kind, why)
}

// action runs a QueueAction.
func (sv *service) action(m *ipc.QueueAction) (ipc.Message, error) {
	name := ipc.QueueActionName(m.Action)
	f := filterOf(m.Filter)
	if f.empty() && !m.All {
		return nil, ipc.Errorf(ipc.CodeBadRequest, "queue %s without a filter would act on every queued message: give a filter, or ask for all of them explicitly (moxctl queue %s -all)", name, name)
	}
	var n, dsns int
	var err error
	switch m.Action {
	case ipc.QueueHold:
		n, err = sv.q.Hold(f)
	case ipc.QueueUnhold:
		n, err = sv.q.Unhold(f)
	case ipc.QueueSchedule:
		at := sv.q.now().Add(time.Duration(m.Delay))
		if m.At != 0 {
			at = time.Unix(0, m.At)
		}
		n, err = sv.q.Schedule(f, at)
	case ipc.QueueTransport:
		if m.Arg != "" {
			st := sv.settings.Load()
			if st.routes.transports[m.Arg] == nil {
				return nil, ipc.Errorf(ipc.CodeNotFound, "transport %q is not configured; %s", m.Arg, transportNames(st.routes))
			}
		}
		n, err = sv.q.SetTransport(f, m.Arg)
	case ipc.QueueRequireTLS:
		v := map[string]RequireTLS{"yes": RequireTLSYes, "no": RequireTLSNo, "default": RequireTLSUnset}[m.Arg]
		n, err = sv.q.SetRequireTLS(f, v)
	case ipc.QueueFail:
		n, dsns, err = sv.Fail(f)
	case ipc.QueueDrop:
		n, err = sv.q.Drop(f)
	default:
		return nil, ipc.Errorf(ipc.CodeBadRequest, "unknown queue action %d", m.Action)
	}
	if err != nil {
		return nil, remoteError("queue "+name, err)
	}
	sv.log.Info("queue changed by admin", "action", name, "count", n, "dsns", dsns)
	return &ipc.QueueCount{N: count32(n), DSNs: count32(dsns)}, nil
}

// transportNames says which transports are configured.
func transportNames(rt *routeTable) string {
	var l []string
	for name := range rt.transports {
		l = append(l, name)
	}
	if len(l) == 0 {
		return "no transports are configured ([[transport]] in moxd.conf); give - to let the routes decide"
	}
	slices.Sort(l)
	return "configured transports: " + strings.Join(l, ", ") + " (or - to let the routes decide)"
}

func holdRuleIPC(h HoldRule) ipc.QueueHoldRule {
	return ipc.QueueHoldRule{ID: h.ID, Account: ipc.ClipText(h.Account, ipc.MaxAccountLen),
		SenderDomain: ipc.ClipText(h.SenderDomain, ipc.MaxNameLen), RecipientDomain: ipc.ClipText(h.RecipientDomain, ipc.MaxNameLen)}
}

// holdRules runs a QueueHoldRules.
func (sv *service) holdRules(m *ipc.QueueHoldRules) (ipc.Message, error) {
	switch m.Op {
	case ipc.QueueRulesOpList:
		rules, err := sv.q.HoldRules()
		if err != nil {
			return nil, remoteError("read the hold rules", err)
		}
		rep := &ipc.QueueHoldRuleList{Total: count32(len(rules))}
		start := min(int(m.Start), len(rules))
		used := 0
		for _, h := range rules[start:] {
			r := holdRuleIPC(h)
			if used += r.WireSize(); used > ipc.QueueReplyBudget || len(rep.Rules) == ipc.MaxQueueRules {
				break
			}
			rep.Rules = append(rep.Rules, r)
		}
		rep.More = start+len(rep.Rules) < len(rules)
		return rep, nil
	case ipc.QueueRulesOpAdd:
		r := m.Rule
		if r.Account != "" {
			if _, ok := sv.settings.Load().accounts[r.Account]; !ok {
				return nil, ipc.Errorf(ipc.CodeNotFound, "no account %q is configured", r.Account)
			}
		}
		for _, d := range []string{r.SenderDomain, r.RecipientDomain} {
			if strings.ContainsAny(d, "@ \t<>") {
				return nil, ipc.Errorf(ipc.CodeBadRequest, "%q is not a domain name", d)
			}
		}
		id, n, err := sv.q.AddHoldRule(HoldRule{Account: r.Account, SenderDomain: r.SenderDomain, RecipientDomain: r.RecipientDomain})
		if err != nil {
			return nil, remoteError("add the hold rule", err)
		}
		h := HoldRule{ID: id, Account: r.Account, SenderDomain: strings.ToLower(strings.TrimSuffix(r.SenderDomain, ".")), RecipientDomain: strings.ToLower(strings.TrimSuffix(r.RecipientDomain, "."))}
		sv.log.Info("hold rule added by admin", "rule", id, "account", h.Account, "sender_domain", h.SenderDomain, "recipient_domain", h.RecipientDomain, "held", n)
		return &ipc.QueueHoldRuleList{Total: 1, Held: count32(n), Rules: []ipc.QueueHoldRule{holdRuleIPC(h)}}, nil
	case ipc.QueueRulesOpRm:
		h, found, err := sv.q.RemoveHoldRule(m.Rule.ID)
		if err != nil {
			return nil, remoteError("remove the hold rule", err)
		}
		if !found {
			return nil, ipc.Errorf(ipc.CodeNotFound, "no hold rule %d (moxctl queue holdrules list shows them)", m.Rule.ID)
		}
		sv.log.Info("hold rule removed by admin", "rule", h.ID)
		return &ipc.QueueHoldRuleList{Total: 1, Rules: []ipc.QueueHoldRule{holdRuleIPC(h)}}, nil
	}
	return nil, ipc.Errorf(ipc.CodeBadRequest, "unknown hold rule operation %d", m.Op)
}

func retiredIPC(r *Retired) ipc.QueueRetiredEntry {
	return ipc.QueueRetiredEntry{
		Msg: r.Msg, Seq: r.Seq,
		Account:    ipc.ClipText(r.Account, ipc.MaxAccountLen),
		MailFrom:   ipc.ClipText(r.MailFrom, ipc.MaxAddressLen),
		Address:    ipc.ClipText(r.Address, ipc.MaxAddressLen),
		MessageID:  ipc.ClipText(r.MessageID, ipc.MaxNameLen),
		Subject:    ipc.ClipText(r.Subject, ipc.MaxNameLen),
		Size:       r.Size,
		Queued:     unixNano(r.Queued),
		Retired:    unixNano(r.Retired),
		Delivered:  r.Delivered,
		Attempts:   count32(r.Attempts),
		LastError:  ipc.ClipText(r.LastError, ipc.MaxTextLen),
		LastHost:   ipc.ClipText(r.LastHost, ipc.MaxNameLen),
		LastStatus: ipc.ClipText(r.LastStatus, ipc.MaxQueueStatus),
		Transport:  ipc.ClipText(r.Transport, ipc.MaxNameLen),
		History:    retiredHistory(r),
	}
}

// retiredHistory is the attempts of r, one per line, and last what a DSN
// from the recipient's side said (incoming.go), which clipping keeps.
func retiredHistory(r *Retired) string {
	dsn := ""
	if r.RemoteDSN != "" {
		dsn = printable("remote DSN: "+r.RemoteDSN, false) + "\n"
	}
	return ipc.ClipText(printable(historyText(r.History), true), ipc.MaxRetiredHistory-len(dsn)) + dsn
}

// retired runs a QueueRetired.
func (sv *service) retired(m *ipc.QueueRetired) (ipc.Message, error) {
	var l []Retired
	var total int
	var err error
	start := int(m.Start)
	switch m.Op {
	case ipc.QueueRetiredOpList:
		max := int(m.Max)
		if max == 0 {
			max = ipc.MaxQueueRetired
		}
		l, total, err = sv.q.RetiredList(m.Account, start, max, m.NewestFirst)
	case ipc.QueueRetiredOpGet:
		seq := int64(m.Seq)
		if m.AnySeq {
			seq = -1
		}
		l, err = sv.q.RetiredGet(m.Msg, seq)
		total = len(l)
		if err == nil && total == 0 {
			return nil, ipc.Errorf(ipc.CodeNotFound, "no retired recipient of message %d; records are kept for [queue] keep after delivery or failure, and a message still queued is shown by moxctl queue dump %d", m.Msg, m.Msg)
		}
		l = l[min(start, len(l)):]
	default:
		return nil, ipc.Errorf(ipc.CodeBadRequest, "unknown retired operation %d", m.Op)
	}
	if err != nil {
		return nil, remoteError("read retired recipients", err)
	}
	rep := &ipc.QueueRetiredList{Total: count32(total)}
	used := 0
	for i := range l {
		e := retiredIPC(&l[i])
		if used += e.WireSize(); used > ipc.QueueReplyBudget || len(rep.Entries) == ipc.MaxQueueRetired {
			break
		}
		rep.Entries = append(rep.Entries, e)
	}
	rep.More = start+len(rep.Entries) < total
	return rep, nil
}

func suppressionIPC(s *Suppression) ipc.QueueSuppression {
	return ipc.QueueSuppression{
		Account: ipc.ClipText(s.Account, ipc.MaxAccountLen),
		Address: ipc.ClipText(s.Address, ipc.MaxAddressLen),
		Reason:  ipc.ClipText(s.Reason, ipc.MaxTextLen),
		Added:   unixNano(s.Added),
		Manual:  s.Manual,
	}
}

// suppress runs a QueueSuppress.
func (sv *service) suppress(m *ipc.QueueSuppress) (ipc.Message, error) {
	// Entries of an account that is no longer configured can still be
	// removed.
	if m.Account != "" && m.Op != ipc.QueueSuppressOpRm {
		if _, ok := sv.settings.Load().accounts[m.Account]; !ok {
			return nil, ipc.Errorf(ipc.CodeNotFound, "no account %q is configured", m.Account)
		}
	}
	if m.Op != ipc.QueueSuppressOpList {
		if _, _, err := parseAddress(m.Address); err != nil {
			return nil, ipc.Errorf(ipc.CodeBadRequest, "address %q: %v", m.Address, err)
		}
	}
	one := func(s *Suppression) ipc.Message {
		return &ipc.QueueSuppressionList{Total: 1, Entries: []ipc.QueueSuppression{suppressionIPC(s)}}
	}
	switch m.Op {
	case ipc.QueueSuppressOpList:
		l, err := sv.q.SuppressionList(m.Account)
		if err != nil {
			return nil, remoteError("read the suppression list", err)
		}
		rep := &ipc.QueueSuppressionList{Total: count32(len(l))}
		start := min(int(m.Start), len(l))
		used := 0
		for i := range l[start:] {
			e := suppressionIPC(&l[start+i])
			if used += e.WireSize(); used > ipc.QueueReplyBudget || len(rep.Entries) == ipc.MaxQueueSuppressions {
				break
			}
			rep.Entries = append(rep.Entries, e)
		}
		rep.More = start+len(rep.Entries) < len(l)
		return rep, nil
	case ipc.QueueSuppressOpAdd:
		s, err := sv.q.AddSuppression(m.Account, m.Address, m.Reason)
		if err != nil {
			return nil, remoteError("add to the suppression list", err)
		}
		sv.log.Info("address suppressed by admin", "account", m.Account, "address", m.Address)
		return one(s), nil
	case ipc.QueueSuppressOpRm:
		s, found, err := sv.q.RemoveSuppression(m.Account, m.Address)
		if err != nil {
			return nil, remoteError("remove from the suppression list", err)
		}
		if !found {
			return nil, ipc.Errorf(ipc.CodeNotFound, "%s is not on the suppression list of account %s", m.Address, m.Account)
		}
		sv.log.Info("suppression removed by admin", "account", m.Account, "address", m.Address)
		return one(s), nil
	case ipc.QueueSuppressOpLookup:
		if s, ok := sv.q.LookupSuppression(m.Account, m.Address); ok {
			return one(s), nil
		}
		return &ipc.QueueSuppressionList{}, nil
	}
	return nil, ipc.Errorf(ipc.CodeBadRequest, "unknown suppression operation %d", m.Op)
}
