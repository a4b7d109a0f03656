package ipc

// FamDeliver (smtp -> store, queue -> store): deliveries into accounts
// (DESIGN.md §4). The body travels through a pipe store creates, or, from
// queue, as a regular-file fd store copies; never through frames. For a
// local retry, smtp gets a read-only fd of store's own copy of a body
// (BodyFile) to hand to queue.

// Limits of delivery fields.
const (
	MaxRecipients  = 32        // recipients in one Deliver; callers split larger lists
	MaxRetry       = 32        // RcptDelivered.Retry: member addresses to retry
	MaxPrefix      = 8 * 1024  // Deliver.Prefix: header lines added at delivery
	MaxReplyText   = 512       // DeliverResult texts
	MaxBodyDeclare = 1<<40 - 1 // NewBody.Size sanity bound
)

// RcptCheck asks whether Address is delivered to an account here (SMTP RCPT).
type RcptCheck struct {
	Address string
}

func (*RcptCheck) Type() MsgType       { return TypeRcptCheck }
func (*RcptCheck) FDs() int            { return 0 }
func (m *RcptCheck) Encode(e *Encoder) { e.StringMax(m.Address, MaxAddressLen) }
func (m *RcptCheck) Decode(d *Decoder) { m.Address = d.StringMax(MaxAddressLen) }

// Recipient states in RcptResult and DeliverResult.
const (
	RcptOK        uint8 = 1 // accepted / delivered
	RcptUnknown   uint8 = 2 // no such address: permanent
	RcptOverQuota uint8 = 3 // account over its quota: temporary (RFC 3463 4.2.2)
	RcptFailed    uint8 = 4 // local failure: temporary, try again later
	RcptRefused   uint8 = 5 // the message cannot be stored (e.g. too large): permanent
)

// RcptResult answers RcptCheck. Account is set when State is RcptOK.
type RcptResult struct {
	State   uint8
	Account string
}

func (*RcptResult) Type() MsgType { return TypeRcptResult }
func (*RcptResult) FDs() int      { return 0 }
func (m *RcptResult) Encode(e *Encoder) {
	e.Uint8(m.State)
	e.StringMax(m.Account, MaxAccountLen)
}
func (m *RcptResult) Decode(d *Decoder) {
	m.State = d.Uint8()
	m.Account = d.StringMax(MaxAccountLen)
}

// NewBody asks store for a pipe to write one message body into. Size is
// the exact number of bytes that will be written, or -1 when not known in
// advance (store then reads to end of file, up to its limit). The reply,
// BodyPipe, carries the pipe's write end.
type NewBody struct {
	Size int64
}

func (*NewBody) Type() MsgType { return TypeNewBody }
func (*NewBody) FDs() int      { return 0 }
func (m *NewBody) Encode(e *Encoder) {
	if m.Size < -1 || m.Size > MaxBodyDeclare {
		e.Fail("body size %d", m.Size)
	}
	e.Int64(m.Size)
}
func (m *NewBody) Decode(d *Decoder) {
	m.Size = d.Int64()
	if m.Size < -1 || m.Size > MaxBodyDeclare {
		d.Fail("body size %d", m.Size)
	}
}

// BodyPipe answers NewBody: Body names the body in Deliver, the one fd is
// the write end of the pipe. The writer closes it after the last byte.
type BodyPipe struct {
	Body    uint64
	MaxSize int64 // store's limit; more bytes spoil the body
}

func (*BodyPipe) Type() MsgType { return TypeBodyPipe }
func (*BodyPipe) FDs() int      { return 1 }
func (m *BodyPipe) Encode(e *Encoder) {
	e.Uint64(m.Body)
	e.Int64(m.MaxSize)
}
func (m *BodyPipe) Decode(d *Decoder) {
	m.Body = d.Uint64()
	m.MaxSize = d.Int64()
}

// DeliverRcpt is one recipient of a Deliver: its address, and optionally
// the mailbox ("" for the account's rules, INBOX for now), flags and
// keywords to store the message with.
type DeliverRcpt struct {
	Address  string
	Mailbox  string
	Flags    uint8
	Keywords []string
}

// Deliver stores a body for Recipients. With File set, the body is the
// request's one fd (a regular file, from queue) and Body is 0; otherwise
// Body names a body from NewBody, and Deliver waits until its pipe is
// complete. Prefix holds header lines (Received, Authentication-Results)
// served before the body. Received is the delivery time (Unix
// nanoseconds, 0 for now). Deliver answers only after the commit is
// durable (DESIGN.md §5). Release says this is the last Deliver for Body:
// store deletes the body afterwards (a body not released is deleted when
// the channel closes or after 10 minutes).
type Deliver struct {
	Body       uint64
	File       bool
	Release    bool
	MailFrom   string
	Received   int64
	Prefix     []byte
	Recipients []DeliverRcpt
}

func (*Deliver) Type() MsgType { return TypeDeliver }
func (m *Deliver) FDs() int {
	if m.File {
		return 1
	}
	return 0
}
func (m *Deliver) Encode(e *Encoder) {
	e.Uint64(m.Body)
	e.Bool(m.File)
	e.Bool(m.Release)
	e.StringMax(m.MailFrom, MaxAddressLen)
	e.Int64(m.Received)
	e.BytesMax(m.Prefix, MaxPrefix)
	e.CountMax(len(m.Recipients), MaxRecipients)
	for _, r := range m.Recipients {
		e.StringMax(r.Address, MaxAddressLen)
		e.StringMax(r.Mailbox, MaxMailboxLen)
		e.Uint8(r.Flags)
		encodeKeywords(e, r.Keywords)
	}
}
func (m *Deliver) Decode(d *Decoder) {
	m.Body = d.Uint64()
	m.File = d.Bool()
	m.Release = d.Bool()
	m.MailFrom = d.StringMax(MaxAddressLen)
	m.Received = d.Int64()
	m.Prefix = d.BytesMax(MaxPrefix)
	n := d.Count(MaxRecipients)
	for i := 0; i < n && d.Err() == nil; i++ {
		var r DeliverRcpt
		r.Address = d.StringMax(MaxAddressLen)
		r.Mailbox = d.StringMax(MaxMailboxLen)
		r.Flags = d.Uint8()
		r.Keywords = decodeKeywords(d)
		m.Recipients = append(m.Recipients, r)
	}
	if m.File == (m.Body != 0) {
		d.Fail("deliver needs exactly one of body id and file")
	}
}

// RcptDelivered is the result for one recipient of a Deliver, in order.
// An address can deliver to several accounts and mailboxes (an alias);
// State is then the worst state of them, Account, Mailbox and UID are
// those of the first.
type RcptDelivered struct {
	State   uint8 // RcptOK or a failure state
	Account string
	Mailbox string
	UID     uint32
	Text    string // what went wrong, for the SMTP reply or the DSN
	// Retry: when the address is an alias whose delivery succeeded for
	// some members and failed temporarily for others, the member
	// addresses that failed, at most MaxRetry: the caller retries only
	// those (retrying the alias would deliver twice to the others).
	// Empty otherwise; then a temporary State means retry the address.
	Retry []string
}

// DeliverResult answers Deliver, one result per recipient.
type DeliverResult struct {
	Results []RcptDelivered
}

func (*DeliverResult) Type() MsgType { return TypeDeliverResult }
func (*DeliverResult) FDs() int      { return 0 }
func (m *DeliverResult) Encode(e *Encoder) {
	e.CountMax(len(m.Results), MaxRecipients)
	for _, r := range m.Results {
		e.Uint8(r.State)
		e.StringMax(r.Account, MaxAccountLen)
		e.StringMax(r.Mailbox, MaxMailboxLen)
		e.Uint32(r.UID)
		e.StringMax(r.Text, MaxReplyText)
		e.CountMax(len(r.Retry), MaxRetry)
		for _, a := range r.Retry {
			e.StringMax(a, MaxAddressLen)
		}
	}
}
func (m *DeliverResult) Decode(d *Decoder) {
	n := d.Count(MaxRecipients)
	for i := 0; i < n && d.Err() == nil; i++ {
		var r RcptDelivered
		r.State = d.Uint8()
		r.Account = d.StringMax(MaxAccountLen)
		r.Mailbox = d.StringMax(MaxMailboxLen)
		r.UID = d.Uint32()
		r.Text = d.StringMax(MaxReplyText)
		k := d.Count(MaxRetry)
		for j := 0; j < k && d.Err() == nil; j++ {
			r.Retry = append(r.Retry, d.StringMax(MaxAddressLen))
		}
		m.Results = append(m.Results, r)
	}
}

// ReleaseBody drops a body from NewBody that will not be delivered (the
// SMTP transaction failed after DATA). An event.
type ReleaseBody struct {
	Body uint64
}

func (*ReleaseBody) Type() MsgType       { return TypeReleaseBody }
func (*ReleaseBody) FDs() int            { return 0 }
func (m *ReleaseBody) Encode(e *Encoder) { e.Uint64(m.Body) }
func (m *ReleaseBody) Decode(d *Decoder) { m.Body = d.Uint64() }

// BodyFile asks for a read-only fd of store's copy of a complete body of
// this channel, one that a Deliver without Release kept: smtp hands it to
// queue for a local retry of the recipients that failed (DESIGN.md §4),
// and then sends ReleaseBody. The reply, BodyFileReply, carries the fd.
type BodyFile struct {
	Body uint64
}

func (*BodyFile) Type() MsgType       { return TypeBodyFile }
func (*BodyFile) FDs() int            { return 0 }
func (m *BodyFile) Encode(e *Encoder) { e.Uint64(m.Body) }
func (m *BodyFile) Decode(d *Decoder) { m.Body = d.Uint64() }

// BodyFileReply answers BodyFile: the one fd is the body file, opened
// read-only, of Size bytes (the message without the delivery prefix).
type BodyFileReply struct {
	Size int64
}

func (*BodyFileReply) Type() MsgType { return TypeBodyFileReply }
func (*BodyFileReply) FDs() int      { return 1 }
func (m *BodyFileReply) Encode(e *Encoder) {
	if m.Size < 0 || m.Size > MaxBodyDeclare {
		e.Fail("body size %d", m.Size)
	}
	e.Int64(m.Size)
}
func (m *BodyFileReply) Decode(d *Decoder) {
	m.Size = d.Int64()
	if m.Size < 0 || m.Size > MaxBodyDeclare {
		d.Fail("body size %d", m.Size)
	}
}
