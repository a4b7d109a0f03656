package ipc

// FamIncoming (store -> queue): committed incoming deliveries that queue
// acts on: the account has an incoming webhook, or the message is a DSN
// (RFC 3464) sent to an address carrying a unique MAIL FROM id
// (account.unique_mail_from) that may match a message queue sent. Store
// is the only role that parses message content (DESIGN.md §1), so it
// recognizes DSNs and hands queue only the results, bounded. Events only:
// sent after the commit, never on a delivery's path, dropped while queue
// is down.

// Limits of incoming delivery fields.
const (
	MaxIncomingHeader = 300 // IncomingDelivery.Subject and MessageID, clipped by store
	MaxFromID         = 64  // IncomingDSN.FromID
	MaxDSNResults     = 16  // results in one IncomingDSN; store keeps the first
	MaxDSNStatus      = 32  // DSNResult.Status ("5.1.1")
	MaxDSNDiagnostic  = 256 // DSNResult.Diagnostic, clipped by store
)

// IncomingDelivery says a message was delivered to Rcpt and committed in
// Mailbox of Account. MailFrom is the envelope sender ("" for the null
// sender), From the first address of the From header, MessageID the
// Message-ID with its brackets, Subject decoded. Size is the message's
// size in bytes, Received the delivery time (Unix nanoseconds). DSN is set
// when the message is a delivery status notification.
type IncomingDelivery struct {
	Account   string
	Mailbox   string
	MailFrom  string
	Rcpt      string
	MessageID string
	Subject   string
	From      string
	Size      int64
	Received  int64
	DSN       *IncomingDSN
}

// IncomingDSN is what store found in a DSN. FromID is the part of the
// recipient's local part after the first separator of its domain ("" when
// it has none); Results are the per-recipient groups of the report.
type IncomingDSN struct {
	FromID  string
	Results []DSNResult
}

// DSNResult is one per-recipient group of a DSN (RFC 3464 §2.3): the
// final recipient's address, the action (failed, delayed, delivered,
// relayed, expanded, lower case), the enhanced status code and the
// diagnostic code without its type.
type DSNResult struct {
	FinalRecipient string
	Action         string
	Status         string
	Diagnostic     string
}

func (*IncomingDelivery) Type() MsgType { return TypeIncomingDelivery }
func (*IncomingDelivery) FDs() int      { return 0 }
func (m *IncomingDelivery) Encode(e *Encoder) {
	if m.Size < 0 {
		e.Fail("incoming delivery of size %d", m.Size)
	}
	e.StringMax(m.Account, MaxAccountLen)
	e.StringMax(m.Mailbox, MaxMailboxLen)
	e.StringMax(m.MailFrom, MaxAddressLen)
	e.StringMax(m.Rcpt, MaxAddressLen)
	e.StringMax(m.MessageID, MaxIncomingHeader)
	e.StringMax(m.Subject, MaxIncomingHeader)
	e.StringMax(m.From, MaxAddressLen)
	e.Int64(m.Size)
	e.Int64(m.Received)
	e.Bool(m.DSN != nil)
	if m.DSN == nil {
		return
	}
	e.StringMax(m.DSN.FromID, MaxFromID)
	e.CountMax(len(m.DSN.Results), MaxDSNResults)
	for _, r := range m.DSN.Results {
		e.StringMax(r.FinalRecipient, MaxAddressLen)
		e.StringMax(r.Action, MaxResultWord)
		e.StringMax(r.Status, MaxDSNStatus)
		e.StringMax(r.Diagnostic, MaxDSNDiagnostic)
	}
}
func (m *IncomingDelivery) Decode(d *Decoder) {
	m.Account = d.StringMax(MaxAccountLen)
	m.Mailbox = d.StringMax(MaxMailboxLen)
	m.MailFrom = d.StringMax(MaxAddressLen)
	m.Rcpt = d.StringMax(MaxAddressLen)
	m.MessageID = d.StringMax(MaxIncomingHeader)
	m.Subject = d.StringMax(MaxIncomingHeader)
	m.From = d.StringMax(MaxAddressLen)
	m.Size = d.Int64()
	m.Received = d.Int64()
	if m.Size < 0 {
		d.Fail("incoming delivery of size %d", m.Size)
	}
	if !d.Bool() {
		return
	}
	m.DSN = &IncomingDSN{FromID: d.StringMax(MaxFromID)}
	n := d.Count(MaxDSNResults)
	for i := 0; i < n && d.Err() == nil; i++ {
		var r DSNResult
		r.FinalRecipient = d.StringMax(MaxAddressLen)
		r.Action = d.StringMax(MaxResultWord)
		r.Status = d.StringMax(MaxDSNStatus)
		r.Diagnostic = d.StringMax(MaxDSNDiagnostic)
		m.DSN.Results = append(m.DSN.Results, r)
	}
}
