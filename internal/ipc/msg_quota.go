package ipc

// FamSession: the account's storage usage and quota (IMAP QUOTA, RFC
// 9208).

// QuotaGet asks for the usage and quota of the session's account.
// Answered with QuotaInfo.
type QuotaGet struct {
	Session uint64
}

func (*QuotaGet) Type() MsgType       { return TypeQuotaGet }
func (*QuotaGet) FDs() int            { return 0 }
func (m *QuotaGet) Encode(e *Encoder) { e.Uint64(m.Session) }
func (m *QuotaGet) Decode(d *Decoder) { m.Session = d.Uint64() }

// QuotaInfo answers QuotaGet: the bytes and messages the account's
// mailboxes hold and its quota in bytes (0: none; the account config's
// quota).
type QuotaInfo struct {
	Used     int64
	Messages int64
	Limit    int64
}

func (*QuotaInfo) Type() MsgType { return TypeQuotaInfo }
func (*QuotaInfo) FDs() int      { return 0 }
func (m *QuotaInfo) Encode(e *Encoder) {
	e.Int64(m.Used)
	e.Int64(m.Messages)
	e.Int64(m.Limit)
}
func (m *QuotaInfo) Decode(d *Decoder) {
	m.Used = d.Int64()
	m.Messages = d.Int64()
	m.Limit = d.Int64()
}
