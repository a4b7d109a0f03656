package ipc

// FamSubmit (submission -> queue, web -> queue): message submission
// (DESIGN.md §4). The body travels like a delivery's: queue creates a pipe,
// hands out its write end in SpoolPipe and copies what arrives into a file
// of its own. Submit then carries the envelope and the session token store
// issued at login; queue resolves the account with store and itself
// enforces sender ownership and daily limits, so the submitting role's own
// checks only give its client an early answer.
//
// A Submit or AddRecipients must fit one frame: a caller puts as many
// recipients as fit (see SubmitRcpt.WireSize and Submit.WireSize) into
// Submit and sends the others first in AddRecipients on the same spool.
//
// Errors come as ErrorReply, and their message is what the SMTP client
// sees: CodeDenied for a session token that is not valid or a sender the
// account may not use, CodeLimit for a daily limit reached, CodeBadRequest
// for a malformed message or envelope, CodeNotFound for a spool the channel
// does not have (expired, consumed, or another channel's).

// Limits of submission fields.
const (
	MaxSubmitRcpts = 100 // recipients in one Submit or AddRecipients frame
	MaxORcptLen    = 500 // SubmitRcpt.ORcpt (RFC 3461 §4.2: at most 500 characters)
	MaxEnvIDLen    = 100 // Submit.EnvID (RFC 3461 §4.4: at most 100 characters)
)

// DSN NOTIFY bits of SubmitRcpt.Notify (RFC 3461 §4.1); 0 means the
// parameter was not given. NotifyNever excludes the others.
const (
	NotifyNever   uint8 = 1 << 0
	NotifySuccess uint8 = 1 << 1
	NotifyFailure uint8 = 1 << 2
	NotifyDelay   uint8 = 1 << 3
)

// DSN RET values of Submit.Ret (RFC 3461 §4.3); 0 means not given.
const (
	RetFull uint8 = 1
	RetHdrs uint8 = 2
)

// NewSpool asks queue for a pipe to write one message into. Size is the
// exact number of bytes that will be written, or -1 when not known in
// advance (queue then reads to end of file, up to its limit). Answered
// with SpoolPipe.
type NewSpool struct {
	Size int64
}

func (*NewSpool) Type() MsgType { return TypeNewSpool }
func (*NewSpool) FDs() int      { return 0 }
func (m *NewSpool) Encode(e *Encoder) {
	if m.Size < -1 || m.Size > MaxBodyDeclare {
		e.Fail("spool size %d", m.Size)
	}
	e.Int64(m.Size)
}
func (m *NewSpool) Decode(d *Decoder) {
	m.Size = d.Int64()
	if m.Size < -1 || m.Size > MaxBodyDeclare {
		d.Fail("spool size %d", m.Size)
	}
}

// SpoolPipe answers NewSpool: Spool names the message in AddRecipients and
// Submit, the one fd is the write end of the pipe. The writer closes it
// after the last byte. A spool belongs to the channel that asked for it and
// lives until its Submit, the channel's end, or 10 minutes.
type SpoolPipe struct {
	Spool   uint64
	MaxSize int64 // queue's limit; more bytes spoil the message
}

func (*SpoolPipe) Type() MsgType { return TypeSpoolPipe }
func (*SpoolPipe) FDs() int      { return 1 }
func (m *SpoolPipe) Encode(e *Encoder) {
	e.Uint64(m.Spool)
	e.Int64(m.MaxSize)
}
func (m *SpoolPipe) Decode(d *Decoder) {
	m.Spool = d.Uint64()
	m.MaxSize = d.Int64()
}

// SubmitRcpt is one recipient of a submission with its DSN parameters
// (RFC 3461 §4): Notify bits (0: not given) and ORcpt, the original
// recipient as "addr-type;xtext" ("" when not given).
type SubmitRcpt struct {
	Address string
	Notify  uint8
	ORcpt   string
}

// WireSize is the number of bytes r takes in a frame.
func (r SubmitRcpt) WireSize() int {
	return 2 + len(r.Address) + 1 + 2 + len(r.ORcpt)
}

func encodeSubmitRcpts(e *Encoder, l []SubmitRcpt) {
	e.CountMax(len(l), MaxSubmitRcpts)
	for _, r := range l {
		if !validNotify(r.Notify) {
			e.Fail("notify bits %#x", r.Notify)
		}
		e.StringMax(r.Address, MaxAddressLen)
		e.Uint8(r.Notify)
		e.StringMax(r.ORcpt, MaxORcptLen)
	}
}

func decodeSubmitRcpts(d *Decoder) []SubmitRcpt {
	n := d.Count(MaxSubmitRcpts)
	var l []SubmitRcpt
	for i := 0; i < n && d.Err() == nil; i++ {
		var r SubmitRcpt
		r.Address = d.StringMax(MaxAddressLen)
		r.Notify = d.Uint8()
		r.ORcpt = d.StringMax(MaxORcptLen)
		if !validNotify(r.Notify) {
			d.Fail("notify bits %#x", r.Notify)
		}
		l = append(l, r)
	}
	return l
}

// validNotify checks NOTIFY bits: only defined ones, and NEVER alone
// (RFC 3461 §4.1).
func validNotify(v uint8) bool {
	if v&^(NotifyNever|NotifySuccess|NotifyFailure|NotifyDelay) != 0 {
		return false
	}
	return v&NotifyNever == 0 || v == NotifyNever
}

// AddRecipients adds recipients to a spooled message before its Submit,
// for lists longer than fit the Submit frame. Answered with Ack.
type AddRecipients struct {
	Spool      uint64
	Recipients []SubmitRcpt
}

func (*AddRecipients) Type() MsgType { return TypeAddRecipients }
func (*AddRecipients) FDs() int      { return 0 }
func (m *AddRecipients) Encode(e *Encoder) {
	e.Uint64(m.Spool)
	encodeSubmitRcpts(e, m.Recipients)
}
func (m *AddRecipients) Decode(d *Decoder) {
	m.Spool = d.Uint64()
	m.Recipients = decodeSubmitRcpts(d)
}

// Submit queues spooled message Spool for the recipients given here and in
// earlier AddRecipients. Token is the session token store issued to the
// submitting role at login. The SMTP parameters are REQUIRETLS (RFC 8689),
// SMTPUTF8 (RFC 6531), BODY=8BITMIME (EightBit, RFC 6152), RET and ENVID
// (RFC 3461). Prefix holds the header lines the submitting role computed
// (Received), CRLF-terminated; queue writes them before the message.
// FutureRelease is the earliest delivery time in Unix nanoseconds (RFC
// 4865), 0 for now. Answered with Submitted once the message is durable.
type Submit struct {
	Token         [32]byte
	Spool         uint64
	MailFrom      string
	Recipients    []SubmitRcpt
	RequireTLS    bool
	SMTPUTF8      bool
	EightBit      bool
	Ret           uint8
	EnvID         string
	Prefix        []byte
	FutureRelease int64
}

// WireSize is the number of payload bytes m takes in a frame.
func (m *Submit) WireSize() int {
	n := 32 + 8 + 2 + len(m.MailFrom) + 2 + 3 + 1 + 2 + len(m.EnvID) + 2 + len(m.Prefix) + 8
	for _, r := range m.Recipients {
		n += r.WireSize()
	}
	return n
}

func (*Submit) Type() MsgType { return TypeSubmit }
func (*Submit) FDs() int      { return 0 }
func (m *Submit) Encode(e *Encoder) {
	if m.Ret > RetHdrs || m.FutureRelease < 0 {
		e.Fail("submit with ret %d, future release %d", m.Ret, m.FutureRelease)
	}
	e.Bytes32(m.Token)
	e.Uint64(m.Spool)
	e.StringMax(m.MailFrom, MaxAddressLen)
	encodeSubmitRcpts(e, m.Recipients)
	e.Bool(m.RequireTLS)
	e.Bool(m.SMTPUTF8)
	e.Bool(m.EightBit)
	e.Uint8(m.Ret)
	e.StringMax(m.EnvID, MaxEnvIDLen)
	e.BytesMax(m.Prefix, MaxPrefix)
	e.Int64(m.FutureRelease)
}
func (m *Submit) Decode(d *Decoder) {
	m.Token = d.Bytes32()
	m.Spool = d.Uint64()
	m.MailFrom = d.StringMax(MaxAddressLen)
	m.Recipients = decodeSubmitRcpts(d)
	m.RequireTLS = d.Bool()
	m.SMTPUTF8 = d.Bool()
	m.EightBit = d.Bool()
	m.Ret = d.Uint8()
	m.EnvID = d.StringMax(MaxEnvIDLen)
	m.Prefix = d.BytesMax(MaxPrefix)
	m.FutureRelease = d.Int64()
	if m.Ret > RetHdrs || m.FutureRelease < 0 {
		d.Fail("submit with ret %d, future release %d", m.Ret, m.FutureRelease)
	}
}

// Submitted answers Submit: the message is queued as Message for
// Recipients recipients.
type Submitted struct {
	Message    uint64
	Recipients int
}

func (*Submitted) Type() MsgType { return TypeSubmitted }
func (*Submitted) FDs() int      { return 0 }
func (m *Submitted) Encode(e *Encoder) {
	if m.Recipients < 0 || int64(m.Recipients) > 0xffffffff {
		e.Fail("recipient count %d", m.Recipients)
	}
	e.Uint64(m.Message)
	e.Uint32(uint32(m.Recipients))
}
func (m *Submitted) Decode(d *Decoder) {
	m.Message = d.Uint64()
	m.Recipients = int(d.Uint32())
}
