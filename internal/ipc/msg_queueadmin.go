package ipc

import "fmt"

// FamQueueAdmin: administration of the queue. Master relays moxctl's
// requests (the backup, moxctl queue ...); web's admin pages get the same
// family later.
// Requests that need an fd can only come from master: web -> queue
// carries no fds. Queue serves master's channel with a handler of its own,
// so a request from web never reaches what master asks for.

// QueueBackup asks queue to write its part of a backup into the directory
// Path, created by master (owned by queue, mode 0700, empty). The one fd is
// that directory opened by master: queue checks that Path still is the
// same directory, and writes through the fd, not through the path (the
// backup's top directory is root's). Answered with QueueBackupResult.
type QueueBackup struct {
	Path string
}

func (*QueueBackup) Type() MsgType       { return TypeQueueBackup }
func (*QueueBackup) FDs() int            { return 1 }
func (m *QueueBackup) Encode(e *Encoder) { e.StringMax(m.Path, MaxTextLen) }
func (m *QueueBackup) Decode(d *Decoder) { m.Path = d.StringMax(MaxTextLen) }

// QueueBackupResult answers QueueBackup: the queued messages and recipient
// records the snapshot holds, and the message files written.
type QueueBackupResult struct {
	Messages   uint64
	Recipients uint64
	Files      uint64
}

func (*QueueBackupResult) Type() MsgType { return TypeQueueBackupResult }
func (*QueueBackupResult) FDs() int      { return 0 }
func (m *QueueBackupResult) Encode(e *Encoder) {
	e.Uint64(m.Messages)
	e.Uint64(m.Recipients)
	e.Uint64(m.Files)
}
func (m *QueueBackupResult) Decode(d *Decoder) {
	m.Messages = d.Uint64()
	m.Recipients = d.Uint64()
	m.Files = d.Uint64()
}

// The queue administration of moxctl queue (and later web's queue pages):
// listing, dumping and changing queued messages, hold rules, retired
// recipients, suppression lists and webhook events. Every list reply carries as many
// entries as fit one frame (queue fills it up to QueueReplyBudget with
// the WireSize of each entry), the total that matched, and More when the
// receiver should ask again from Start plus what it got. Long free text
// (the last error of a recipient, a subject) is clipped by queue with
// ClipText to the field's limit, so a reply always encodes.
//
// Master relays the replies to moxctl as JSON with the field names of
// these types; it decodes nothing of the message content they describe.

// Limits of queue administration fields.
const (
	MaxQueueIDs          = 100       // message ids in one QueueFilter
	MaxQueueEntries      = 200       // entries in one QueueListing
	MaxQueueError        = 300       // QueueEntry.LastError, clipped
	MaxQueueText         = 12 * 1024 // QueueText.Text
	MaxQueueRules        = 100       // rules in one QueueHoldRuleList
	MaxQueueRetired      = 100       // entries in one QueueRetiredList
	MaxQueueSuppressions = 200       // entries in one QueueSuppressionList
	MaxQueueWebhooks     = 100       // entries in one QueueWebhookList
	MaxQueueHookPayload  = 1024      // QueueWebhook.Payload, clipped
	MaxQueueStatus       = 32        // enhanced status codes ("5.7.1")
	MaxQueueSort         = 16        // QueueList.Sort
)

// QueueReplyBudget is how many payload bytes the entries of one list reply
// may take, leaving room for its fixed fields.
const QueueReplyBudget = MaxPayload - 64

// strSize is the wire size of a string field.
func strSize(s string) int { return 2 + len(s) }

// Held criterion of a QueueFilter.
const (
	QueueHeldAny uint8 = 0
	QueueHeldYes uint8 = 1 // only held recipients
	QueueHeldNo  uint8 = 2 // only recipients not held
)

// QueueFilter selects queued recipients. IDs, Account, From and Transport
// select messages; To and Held select recipients within them. Empty
// fields select everything. From and To are case-insensitive substrings
// of the MAIL FROM and recipient addresses; Transport is the name of the
// transport set on the message with "moxctl queue transport".
type QueueFilter struct {
	IDs       []uint64
	Account   string
	From      string
	To        string
	Transport string
	Held      uint8
}

// Empty reports whether f selects every queued recipient.
func (f *QueueFilter) Empty() bool {
	return len(f.IDs) == 0 && f.Account == "" && f.From == "" && f.To == "" && f.Transport == "" && f.Held == QueueHeldAny
}

func (f *QueueFilter) encode(e *Encoder) {
	e.CountMax(len(f.IDs), MaxQueueIDs)
	for _, id := range f.IDs {
		e.Uint64(id)
	}
	e.StringMax(f.Account, MaxAccountLen)
	e.StringMax(f.From, MaxAddressLen)
	e.StringMax(f.To, MaxAddressLen)
	e.StringMax(f.Transport, MaxNameLen)
	if f.Held > QueueHeldNo {
		e.Fail("queue filter held criterion %d", f.Held)
	}
	e.Uint8(f.Held)
}

func (f *QueueFilter) decode(d *Decoder) {
	n := d.Count(MaxQueueIDs)
	for i := 0; i < n && d.Err() == nil; i++ {
		f.IDs = append(f.IDs, d.Uint64())
	}
	f.Account = d.StringMax(MaxAccountLen)
	f.From = d.StringMax(MaxAddressLen)
	f.To = d.StringMax(MaxAddressLen)
	f.Transport = d.StringMax(MaxNameLen)
	f.Held = d.Uint8()
	if f.Held > QueueHeldNo {
		d.Fail("queue filter held criterion %d", f.Held)
	}
}

// QueueSorts are the orders QueueList takes: by queue time or next
// attempt, ascending, or descending with "-". "" is "queued".
var QueueSorts = []string{"", "queued", "-queued", "next", "-next"}

// ValidQueueSort reports whether s is one of QueueSorts.
func ValidQueueSort(s string) bool {
	for _, v := range QueueSorts {
		if s == v {
			return true
		}
	}
	return false
}

// QueueList asks for the recipients matching Filter, in order Sort, from
// index Start on, at most Max (at most MaxQueueEntries). Answered with
// QueueListing.
type QueueList struct {
	Filter QueueFilter
	Sort   string
	Start  uint32
	Max    uint16
}

func (*QueueList) Type() MsgType { return TypeQueueList }
func (*QueueList) FDs() int      { return 0 }
func (m *QueueList) Encode(e *Encoder) {
	m.Filter.encode(e)
	if !ValidQueueSort(m.Sort) {
		e.Fail("queue list sort %q", m.Sort)
	}
	e.StringMax(m.Sort, MaxQueueSort)
	e.Uint32(m.Start)
	if m.Max > MaxQueueEntries {
		e.Fail("queue list of %d entries, at most %d", m.Max, MaxQueueEntries)
	}
	e.Uint16(m.Max)
}
func (m *QueueList) Decode(d *Decoder) {
	m.Filter.decode(d)
	m.Sort = d.StringMax(MaxQueueSort)
	if d.Err() == nil && !ValidQueueSort(m.Sort) {
		d.Fail("queue list sort %q", m.Sort)
	}
	m.Start = d.Uint32()
	m.Max = d.Uint16()
	if m.Max > MaxQueueEntries {
		d.Fail("queue list of %d entries, at most %d", m.Max, MaxQueueEntries)
	}
}

// QueueEntry is one queued recipient with its message. Times are Unix
// nanoseconds, 0 for none. RequireTLS is 0 (unset), 1 (REQUIRETLS) or 2
// ("TLS-Required: No").
type QueueEntry struct {
	Msg         uint64
	Seq         uint32
	Account     string
	MailFrom    string
	Recipient   string
	Queued      int64
	NextAttempt int64
	LastAttempt int64
	Attempts    uint32
	Held        bool
	Failed      bool // failed for good, waiting for its DSN
	LastError   string
	LastHost    string
	LastStatus  string
	Transport   string
	Size        int64
	RequireTLS  uint8
	LocalOnly   bool
	DSN         bool
}

// WireSize is the number of bytes e takes in a QueueListing.
func (e *QueueEntry) WireSize() int {
	return 8 + 4 + strSize(e.Account) + strSize(e.MailFrom) + strSize(e.Recipient) + 3*8 + 4 + 2 +
		strSize(e.LastError) + strSize(e.LastHost) + strSize(e.LastStatus) + strSize(e.Transport) + 8 + 3
}

func (q *QueueEntry) encode(e *Encoder) {
	e.Uint64(q.Msg)
	e.Uint32(q.Seq)
	e.StringMax(q.Account, MaxAccountLen)
	e.StringMax(q.MailFrom, MaxAddressLen)
	e.StringMax(q.Recipient, MaxAddressLen)
	e.Int64(q.Queued)
	e.Int64(q.NextAttempt)
	e.Int64(q.LastAttempt)
	e.Uint32(q.Attempts)
	e.Bool(q.Held)
	e.Bool(q.Failed)
	e.StringMax(q.LastError, MaxQueueError)
	e.StringMax(q.LastHost, MaxNameLen)
	e.StringMax(q.LastStatus, MaxQueueStatus)
	e.StringMax(q.Transport, MaxNameLen)
	e.Int64(q.Size)
	if q.RequireTLS > 2 {
		e.Fail("requiretls %d", q.RequireTLS)
	}
	e.Uint8(q.RequireTLS)
	e.Bool(q.LocalOnly)
	e.Bool(q.DSN)
}

func (q *QueueEntry) decode(d *Decoder) {
	q.Msg = d.Uint64()
	q.Seq = d.Uint32()
	q.Account = d.StringMax(MaxAccountLen)
	q.MailFrom = d.StringMax(MaxAddressLen)
	q.Recipient = d.StringMax(MaxAddressLen)
	q.Queued = d.Int64()
	q.NextAttempt = d.Int64()
	q.LastAttempt = d.Int64()
	q.Attempts = d.Uint32()
	q.Held = d.Bool()
	q.Failed = d.Bool()
	q.LastError = d.StringMax(MaxQueueError)
	q.LastHost = d.StringMax(MaxNameLen)
	q.LastStatus = d.StringMax(MaxQueueStatus)
	q.Transport = d.StringMax(MaxNameLen)
	q.Size = d.Int64()
	q.RequireTLS = d.Uint8()
	if q.RequireTLS > 2 {
		d.Fail("requiretls %d", q.RequireTLS)
	}
	q.LocalOnly = d.Bool()
	q.DSN = d.Bool()
}

// QueueListing answers QueueList: Total recipients matched; Entries are
// those from Start on that fit the frame; More says entries follow them.
type QueueListing struct {
	Total   uint32
	More    bool
	Entries []QueueEntry
}

func (*QueueListing) Type() MsgType { return TypeQueueListing }
func (*QueueListing) FDs() int      { return 0 }
func (m *QueueListing) Encode(e *Encoder) {
	e.Uint32(m.Total)
	e.Bool(m.More)
	e.CountMax(len(m.Entries), MaxQueueEntries)
	for i := range m.Entries {
		m.Entries[i].encode(e)
	}
}
func (m *QueueListing) Decode(d *Decoder) {
	m.Total = d.Uint32()
	m.More = d.Bool()
	n := d.Count(MaxQueueEntries)
	for i := 0; i < n && d.Err() == nil; i++ {
		var q QueueEntry
		q.decode(d)
		m.Entries = append(m.Entries, q)
	}
}

// QueueDump asks for a readable description of message ID: its envelope,
// every recipient with its last error, and the header of its file.
// Answered with QueueText.
type QueueDump struct {
	ID uint64
}

func (*QueueDump) Type() MsgType       { return TypeQueueDump }
func (*QueueDump) FDs() int            { return 0 }
func (m *QueueDump) Encode(e *Encoder) { e.Uint64(m.ID) }
func (m *QueueDump) Decode(d *Decoder) { m.ID = d.Uint64() }

// QueueText answers QueueDump: lines of text, without control characters
// other than newline and tab, cut to MaxQueueText.
type QueueText struct {
	Text string
}

func (*QueueText) Type() MsgType       { return TypeQueueText }
func (*QueueText) FDs() int            { return 0 }
func (m *QueueText) Encode(e *Encoder) { e.StringMax(m.Text, MaxQueueText) }
func (m *QueueText) Decode(d *Decoder) { m.Text = d.StringMax(MaxQueueText) }

// Actions of QueueAction.
const (
	QueueHold       uint8 = 1 // hold the recipients
	QueueUnhold     uint8 = 2 // release them; a next attempt in the past is due at once
	QueueSchedule   uint8 = 3 // next attempt at At, or Delay after now when At is 0
	QueueTransport  uint8 = 4 // Arg is the transport of the messages, "" for the routes
	QueueRequireTLS uint8 = 5 // Arg is "yes", "no" or "default"
	QueueFail       uint8 = 6 // fail the recipients now, with a DSN to the sender
	QueueDrop       uint8 = 7 // remove the recipients without a DSN
)

var queueActionNames = map[uint8]string{
	QueueHold: "hold", QueueUnhold: "unhold", QueueSchedule: "schedule", QueueTransport: "transport",
	QueueRequireTLS: "requiretls", QueueFail: "fail", QueueDrop: "drop",
}

// QueueActionName returns the name of a QueueAction action, "" if there
// is none.
func QueueActionName(a uint8) string { return queueActionNames[a] }

// QueueAction changes the recipients (or, for transport and requiretls,
// the messages) Filter selects. An empty filter is refused unless All is
// set. Answered with QueueCount.
type QueueAction struct {
	Action uint8
	Filter QueueFilter
	All    bool
	Arg    string
	At     int64 // Unix nanoseconds
	Delay  int64 // nanoseconds, may be negative
}

// check returns what is wrong with the combination of fields, "" if
// nothing: Arg only for transport and requiretls, times only for
// schedule.
func (m *QueueAction) check() string {
	if queueActionNames[m.Action] == "" {
		return fmt.Sprintf("unknown queue action %d", m.Action)
	}
	switch m.Action {
	case QueueTransport:
	case QueueRequireTLS:
		if m.Arg != "yes" && m.Arg != "no" && m.Arg != "default" {
			return "requiretls value must be yes, no or default"
		}
	default:
		if m.Arg != "" {
			return "queue action " + QueueActionName(m.Action) + " takes no argument"
		}
	}
	if m.Action != QueueSchedule && (m.At != 0 || m.Delay != 0) {
		return "queue action " + QueueActionName(m.Action) + " takes no time"
	}
	if m.At != 0 && m.Delay != 0 {
		return "queue schedule with both a time and a delay"
	}
	return ""
}

func (*QueueAction) Type() MsgType { return TypeQueueAction }
func (*QueueAction) FDs() int      { return 0 }
func (m *QueueAction) Encode(e *Encoder) {
	if s := m.check(); s != "" {
		e.Fail("%s", s)
	}
	e.Uint8(m.Action)
	m.Filter.encode(e)
	e.Bool(m.All)
	e.StringMax(m.Arg, MaxNameLen)
	e.Int64(m.At)
	e.Int64(m.Delay)
}
func (m *QueueAction) Decode(d *Decoder) {
	m.Action = d.Uint8()
	m.Filter.decode(d)
	m.All = d.Bool()
	m.Arg = d.StringMax(MaxNameLen)
	m.At = d.Int64()
	m.Delay = d.Int64()
	if d.Err() == nil {
		if s := m.check(); s != "" {
			d.Fail("%s", s)
		}
	}
}

// QueueCount answers QueueAction: N recipients (messages for transport
// and requiretls) were changed; DSNs were queued (fail).
type QueueCount struct {
	N    uint32
	DSNs uint32
}

func (*QueueCount) Type() MsgType { return TypeQueueCount }
func (*QueueCount) FDs() int      { return 0 }
func (m *QueueCount) Encode(e *Encoder) {
	e.Uint32(m.N)
	e.Uint32(m.DSNs)
}
func (m *QueueCount) Decode(d *Decoder) {
	m.N = d.Uint32()
	m.DSNs = d.Uint32()
}

// Operations of QueueHoldRules.
const (
	QueueRulesOpList uint8 = 1 // the rules from Start on
	QueueRulesOpAdd  uint8 = 2 // add Rule (its ID 0) and hold what it matches now
	QueueRulesOpRm   uint8 = 3 // remove the rule Rule.ID; held recipients stay held
)

// QueueHoldRule holds new messages that match all its non-empty fields.
type QueueHoldRule struct {
	ID              uint64
	Account         string
	SenderDomain    string
	RecipientDomain string
}

// WireSize is the number of bytes r takes in a QueueHoldRuleList.
func (r *QueueHoldRule) WireSize() int {
	return 8 + strSize(r.Account) + strSize(r.SenderDomain) + strSize(r.RecipientDomain)
}

func (r *QueueHoldRule) encode(e *Encoder) {
	e.Uint64(r.ID)
	e.StringMax(r.Account, MaxAccountLen)
	e.StringMax(r.SenderDomain, MaxNameLen)
	e.StringMax(r.RecipientDomain, MaxNameLen)
}

func (r *QueueHoldRule) decode(d *Decoder) {
	r.ID = d.Uint64()
	r.Account = d.StringMax(MaxAccountLen)
	r.SenderDomain = d.StringMax(MaxNameLen)
	r.RecipientDomain = d.StringMax(MaxNameLen)
}

// QueueHoldRules lists, adds or removes hold rules. Answered with
// QueueHoldRuleList: the rules (list), the new rule (add) or the removed
// one (rm).
type QueueHoldRules struct {
	Op    uint8
	Rule  QueueHoldRule
	Start uint32
}

func (m *QueueHoldRules) check() string {
	switch m.Op {
	case QueueRulesOpList:
		if m.Rule != (QueueHoldRule{}) {
			return "hold rule list takes no rule"
		}
	case QueueRulesOpAdd:
		if m.Rule.ID != 0 || m.Start != 0 {
			return "a new hold rule has no id"
		}
	case QueueRulesOpRm:
		if m.Rule.ID == 0 || m.Rule != (QueueHoldRule{ID: m.Rule.ID}) || m.Start != 0 {
			return "hold rule removal takes only the rule's id"
		}
	default:
		return fmt.Sprintf("unknown hold rule operation %d", m.Op)
	}
	return ""
}

func (*QueueHoldRules) Type() MsgType { return TypeQueueHoldRules }
func (*QueueHoldRules) FDs() int      { return 0 }
func (m *QueueHoldRules) Encode(e *Encoder) {
	if s := m.check(); s != "" {
		e.Fail("%s", s)
	}
	e.Uint8(m.Op)
	m.Rule.encode(e)
	e.Uint32(m.Start)
}
func (m *QueueHoldRules) Decode(d *Decoder) {
	m.Op = d.Uint8()
	m.Rule.decode(d)
	m.Start = d.Uint32()
	if d.Err() == nil {
		if s := m.check(); s != "" {
			d.Fail("%s", s)
		}
	}
}

// QueueHoldRuleList answers QueueHoldRules. Held is the number of queued
// recipients a new rule held at once.
type QueueHoldRuleList struct {
	Total uint32
	More  bool
	Held  uint32
	Rules []QueueHoldRule
}

func (*QueueHoldRuleList) Type() MsgType { return TypeQueueHoldRuleList }
func (*QueueHoldRuleList) FDs() int      { return 0 }
func (m *QueueHoldRuleList) Encode(e *Encoder) {
	e.Uint32(m.Total)
	e.Bool(m.More)
	e.Uint32(m.Held)
	e.CountMax(len(m.Rules), MaxQueueRules)
	for i := range m.Rules {
		m.Rules[i].encode(e)
	}
}
func (m *QueueHoldRuleList) Decode(d *Decoder) {
	m.Total = d.Uint32()
	m.More = d.Bool()
	m.Held = d.Uint32()
	n := d.Count(MaxQueueRules)
	for i := 0; i < n && d.Err() == nil; i++ {
		var r QueueHoldRule
		r.decode(d)
		m.Rules = append(m.Rules, r)
	}
}

// Operations of QueueRetired.
const (
	QueueRetiredOpList uint8 = 1 // retired recipients of Account ("" all), from Start on
	QueueRetiredOpGet  uint8 = 2 // the retired recipient Msg/Seq, or every one of Msg with AnySeq
)

// QueueRetired asks for retired recipients: delivered, failed or dropped,
// kept for [queue] keep. Answered with QueueRetiredList.
type QueueRetired struct {
	Op          uint8
	Account     string
	Start       uint32
	Max         uint16
	NewestFirst bool
	Msg         uint64
	Seq         uint32
	AnySeq      bool
}

func (m *QueueRetired) check() string {
	switch m.Op {
	case QueueRetiredOpList:
		if m.Msg != 0 || m.Seq != 0 || m.AnySeq {
			return "retired list takes no message id"
		}
	case QueueRetiredOpGet:
		if m.Msg == 0 {
			return "retired get needs a message id"
		}
		if m.AnySeq && m.Seq != 0 {
			return "retired get with a recipient and any recipient"
		}
	default:
		return fmt.Sprintf("unknown retired operation %d", m.Op)
	}
	if m.Max > MaxQueueRetired {
		return fmt.Sprintf("retired list of %d entries, at most %d", m.Max, MaxQueueRetired)
	}
	return ""
}

func (*QueueRetired) Type() MsgType { return TypeQueueRetired }
func (*QueueRetired) FDs() int      { return 0 }
func (m *QueueRetired) Encode(e *Encoder) {
	if s := m.check(); s != "" {
		e.Fail("%s", s)
	}
	e.Uint8(m.Op)
	e.StringMax(m.Account, MaxAccountLen)
	e.Uint32(m.Start)
	e.Uint16(m.Max)
	e.Bool(m.NewestFirst)
	e.Uint64(m.Msg)
	e.Uint32(m.Seq)
	e.Bool(m.AnySeq)
}
func (m *QueueRetired) Decode(d *Decoder) {
	m.Op = d.Uint8()
	m.Account = d.StringMax(MaxAccountLen)
	m.Start = d.Uint32()
	m.Max = d.Uint16()
	m.NewestFirst = d.Bool()
	m.Msg = d.Uint64()
	m.Seq = d.Uint32()
	m.AnySeq = d.Bool()
	if d.Err() == nil {
		if s := m.check(); s != "" {
			d.Fail("%s", s)
		}
	}
}

// QueueRetiredEntry is a retired recipient. Times are Unix nanoseconds.
type QueueRetiredEntry struct {
	Msg        uint64
	Seq        uint32
	Account    string
	MailFrom   string
	Address    string
	MessageID  string
	Subject    string
	Size       int64
	Queued     int64
	Retired    int64
	Delivered  bool
	Attempts   uint32
	LastError  string
	LastHost   string
	LastStatus string
	Transport  string
	// History is the recipient's delivery attempts, a line each.
	History string
}

// MaxRetiredHistory bounds QueueRetiredEntry.History.
const MaxRetiredHistory = 4096

// WireSize is the number of bytes r takes in a QueueRetiredList.
func (r *QueueRetiredEntry) WireSize() int {
	return 8 + 4 + strSize(r.Account) + strSize(r.MailFrom) + strSize(r.Address) + strSize(r.MessageID) +
		strSize(r.Subject) + 3*8 + 1 + 4 + strSize(r.LastError) + strSize(r.LastHost) + strSize(r.LastStatus) + strSize(r.Transport) +
		strSize(r.History)
}

func (r *QueueRetiredEntry) encode(e *Encoder) {
	e.Uint64(r.Msg)
	e.Uint32(r.Seq)
	e.StringMax(r.Account, MaxAccountLen)
	e.StringMax(r.MailFrom, MaxAddressLen)
	e.StringMax(r.Address, MaxAddressLen)
	e.StringMax(r.MessageID, MaxNameLen)
	e.StringMax(r.Subject, MaxNameLen)
	e.Int64(r.Size)
	e.Int64(r.Queued)
	e.Int64(r.Retired)
	e.Bool(r.Delivered)
	e.Uint32(r.Attempts)
	e.StringMax(r.LastError, MaxTextLen)
	e.StringMax(r.LastHost, MaxNameLen)
	e.StringMax(r.LastStatus, MaxQueueStatus)
	e.StringMax(r.Transport, MaxNameLen)
	e.StringMax(r.History, MaxRetiredHistory)
}

func (r *QueueRetiredEntry) decode(d *Decoder) {
	r.Msg = d.Uint64()
	r.Seq = d.Uint32()
	r.Account = d.StringMax(MaxAccountLen)
	r.MailFrom = d.StringMax(MaxAddressLen)
	r.Address = d.StringMax(MaxAddressLen)
	r.MessageID = d.StringMax(MaxNameLen)
	r.Subject = d.StringMax(MaxNameLen)
	r.Size = d.Int64()
	r.Queued = d.Int64()
	r.Retired = d.Int64()
	r.Delivered = d.Bool()
	r.Attempts = d.Uint32()
	r.LastError = d.StringMax(MaxTextLen)
	r.LastHost = d.StringMax(MaxNameLen)
	r.LastStatus = d.StringMax(MaxQueueStatus)
	r.Transport = d.StringMax(MaxNameLen)
	r.History = d.StringMax(MaxRetiredHistory)
}

// QueueRetiredList answers QueueRetired.
type QueueRetiredList struct {
	Total   uint32
	More    bool
	Entries []QueueRetiredEntry
}

func (*QueueRetiredList) Type() MsgType { return TypeQueueRetiredList }
func (*QueueRetiredList) FDs() int      { return 0 }
func (m *QueueRetiredList) Encode(e *Encoder) {
	e.Uint32(m.Total)
	e.Bool(m.More)
	e.CountMax(len(m.Entries), MaxQueueRetired)
	for i := range m.Entries {
		m.Entries[i].encode(e)
	}
}
func (m *QueueRetiredList) Decode(d *Decoder) {
	m.Total = d.Uint32()
	m.More = d.Bool()
	n := d.Count(MaxQueueRetired)
	for i := 0; i < n && d.Err() == nil; i++ {
		var r QueueRetiredEntry
		r.decode(d)
		m.Entries = append(m.Entries, r)
	}
}

// Operations of QueueSuppress.
const (
	QueueSuppressOpList   uint8 = 1 // the list of Account ("" every account), from Start on
	QueueSuppressOpAdd    uint8 = 2 // put Address on Account's list with Reason
	QueueSuppressOpRm     uint8 = 3 // take Address off Account's list
	QueueSuppressOpLookup uint8 = 4 // the entry of Address on Account's list, if any
)

// QueueSuppress reads or changes an account's suppression list: addresses
// the account's messages are not sent to. Answered with
// QueueSuppressionList: the list (list), the entry (add, and lookup when
// there is one) or the removed entry (rm).
type QueueSuppress struct {
	Op      uint8
	Account string
	Address string
	Reason  string
	Start   uint32
}

func (m *QueueSuppress) check() string {
	switch m.Op {
	case QueueSuppressOpList:
		if m.Address != "" || m.Reason != "" {
			return "suppression list takes no address"
		}
	case QueueSuppressOpAdd, QueueSuppressOpRm, QueueSuppressOpLookup:
		if m.Account == "" || m.Address == "" || m.Start != 0 {
			return "suppression change or lookup needs an account and an address"
		}
		if m.Op != QueueSuppressOpAdd && m.Reason != "" {
			return "only a suppression add takes a reason"
		}
	default:
		return fmt.Sprintf("unknown suppression operation %d", m.Op)
	}
	return ""
}

func (*QueueSuppress) Type() MsgType { return TypeQueueSuppress }
func (*QueueSuppress) FDs() int      { return 0 }
func (m *QueueSuppress) Encode(e *Encoder) {
	if s := m.check(); s != "" {
		e.Fail("%s", s)
	}
	e.Uint8(m.Op)
	e.StringMax(m.Account, MaxAccountLen)
	e.StringMax(m.Address, MaxAddressLen)
	e.StringMax(m.Reason, MaxTextLen)
	e.Uint32(m.Start)
}
func (m *QueueSuppress) Decode(d *Decoder) {
	m.Op = d.Uint8()
	m.Account = d.StringMax(MaxAccountLen)
	m.Address = d.StringMax(MaxAddressLen)
	m.Reason = d.StringMax(MaxTextLen)
	m.Start = d.Uint32()
	if d.Err() == nil {
		if s := m.check(); s != "" {
			d.Fail("%s", s)
		}
	}
}

// QueueSuppression is an entry of a suppression list. Added is Unix
// nanoseconds; Manual says an admin added it (not a failed delivery).
type QueueSuppression struct {
	Account string
	Address string
	Reason  string
	Added   int64
	Manual  bool
}

// WireSize is the number of bytes s takes in a QueueSuppressionList.
func (s *QueueSuppression) WireSize() int {
	return strSize(s.Account) + strSize(s.Address) + strSize(s.Reason) + 8 + 1
}

func (s *QueueSuppression) encode(e *Encoder) {
	e.StringMax(s.Account, MaxAccountLen)
	e.StringMax(s.Address, MaxAddressLen)
	e.StringMax(s.Reason, MaxTextLen)
	e.Int64(s.Added)
	e.Bool(s.Manual)
}

func (s *QueueSuppression) decode(d *Decoder) {
	s.Account = d.StringMax(MaxAccountLen)
	s.Address = d.StringMax(MaxAddressLen)
	s.Reason = d.StringMax(MaxTextLen)
	s.Added = d.Int64()
	s.Manual = d.Bool()
}

// QueueSuppressionList answers QueueSuppress.
type QueueSuppressionList struct {
	Total   uint32
	More    bool
	Entries []QueueSuppression
}

func (*QueueSuppressionList) Type() MsgType { return TypeQueueSuppressionList }
func (*QueueSuppressionList) FDs() int      { return 0 }
func (m *QueueSuppressionList) Encode(e *Encoder) {
	e.Uint32(m.Total)
	e.Bool(m.More)
	e.CountMax(len(m.Entries), MaxQueueSuppressions)
	for i := range m.Entries {
		m.Entries[i].encode(e)
	}
}
func (m *QueueSuppressionList) Decode(d *Decoder) {
	m.Total = d.Uint32()
	m.More = d.Bool()
	n := d.Count(MaxQueueSuppressions)
	for i := 0; i < n && d.Err() == nil; i++ {
		var s QueueSuppression
		s.decode(d)
		m.Entries = append(m.Entries, s)
	}
}

// QueueWebhooks asks for the webhook events of Account ("" every
// account): those waiting to be posted, oldest first, or with Retired
// those posted or given up, newest first; from index Start on, at most Max
// (0: as many as fit, at most MaxQueueWebhooks). Answered with
// QueueWebhookList.
type QueueWebhooks struct {
	Retired bool
	Account string
	Start   uint32
	Max     uint16
}

func (m *QueueWebhooks) check() string {
	if m.Max > MaxQueueWebhooks {
		return fmt.Sprintf("webhook list of %d entries, at most %d", m.Max, MaxQueueWebhooks)
	}
	return ""
}

func (*QueueWebhooks) Type() MsgType { return TypeQueueWebhooks }
func (*QueueWebhooks) FDs() int      { return 0 }
func (m *QueueWebhooks) Encode(e *Encoder) {
	if s := m.check(); s != "" {
		e.Fail("%s", s)
	}
	e.Bool(m.Retired)
	e.StringMax(m.Account, MaxAccountLen)
	e.Uint32(m.Start)
	e.Uint16(m.Max)
}
func (m *QueueWebhooks) Decode(d *Decoder) {
	m.Retired = d.Bool()
	m.Account = d.StringMax(MaxAccountLen)
	m.Start = d.Uint32()
	m.Max = d.Uint16()
	if d.Err() == nil {
		if s := m.check(); s != "" {
			d.Fail("%s", s)
		}
	}
}

// QueueWebhook is a webhook event. Times are Unix nanoseconds, 0 for
// none. LastError is the last failure, or for a posted event the response
// status; Payload is the JSON body, clipped by queue to
// MaxQueueHookPayload (so it may not be complete JSON). The event's
// Authorization header value is never part of it.
type QueueWebhook struct {
	ID          uint64
	Account     string
	URL         string
	Event       string
	Queued      int64
	Attempts    uint32
	NextAttempt int64
	LastError   string
	Posted      bool
	Payload     string
}

// WireSize is the number of bytes h takes in a QueueWebhookList.
func (h *QueueWebhook) WireSize() int {
	return 8 + strSize(h.Account) + strSize(h.URL) + strSize(h.Event) + 8 + 4 + 8 + strSize(h.LastError) + 1 + strSize(h.Payload)
}

func (h *QueueWebhook) encode(e *Encoder) {
	e.Uint64(h.ID)
	e.StringMax(h.Account, MaxAccountLen)
	e.StringMax(h.URL, MaxTextLen)
	e.StringMax(h.Event, MaxNameLen)
	e.Int64(h.Queued)
	e.Uint32(h.Attempts)
	e.Int64(h.NextAttempt)
	e.StringMax(h.LastError, MaxQueueError)
	e.Bool(h.Posted)
	e.StringMax(h.Payload, MaxQueueHookPayload)
}

func (h *QueueWebhook) decode(d *Decoder) {
	h.ID = d.Uint64()
	h.Account = d.StringMax(MaxAccountLen)
	h.URL = d.StringMax(MaxTextLen)
	h.Event = d.StringMax(MaxNameLen)
	h.Queued = d.Int64()
	h.Attempts = d.Uint32()
	h.NextAttempt = d.Int64()
	h.LastError = d.StringMax(MaxQueueError)
	h.Posted = d.Bool()
	h.Payload = d.StringMax(MaxQueueHookPayload)
}

// QueueWebhookList answers QueueWebhooks.
type QueueWebhookList struct {
	Total   uint32
	More    bool
	Entries []QueueWebhook
}

func (*QueueWebhookList) Type() MsgType { return TypeQueueWebhookList }
func (*QueueWebhookList) FDs() int      { return 0 }
func (m *QueueWebhookList) Encode(e *Encoder) {
	e.Uint32(m.Total)
	e.Bool(m.More)
	e.CountMax(len(m.Entries), MaxQueueWebhooks)
	for i := range m.Entries {
		m.Entries[i].encode(e)
	}
}
func (m *QueueWebhookList) Decode(d *Decoder) {
	m.Total = d.Uint32()
	m.More = d.Bool()
	n := d.Count(MaxQueueWebhooks)
	for i := 0; i < n && d.Err() == nil; i++ {
		var h QueueWebhook
		h.decode(d)
		m.Entries = append(m.Entries, h)
	}
}
