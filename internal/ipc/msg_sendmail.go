package ipc

// QueueSendmail (FamQueueAdmin, master -> queue only: it carries an fd)
// submits a local user's message, from "moxctl sendmail" through master's
// sendmail socket. Master mapped the caller's uid (peer credentials) to
// Account; queue checks MailFrom, the recipients and the message like any
// submission. The one fd is the message, a regular file the user's moxctl
// wrote; queue copies it into its own file. Answered with Submitted.
type QueueSendmail struct {
	Account    string
	UID        uint32 // of the local user, for the Received header
	MailFrom   string
	Recipients []string
}

// MaxSendmailRecipients bounds QueueSendmail's recipients (the frame
// holds at most this many maximal addresses).
const MaxSendmailRecipients = 40

func (*QueueSendmail) Type() MsgType { return TypeQueueSendmail }
func (*QueueSendmail) FDs() int      { return 1 }
func (m *QueueSendmail) Encode(e *Encoder) {
	e.StringMax(m.Account, MaxNameLen)
	e.Uint32(m.UID)
	e.StringMax(m.MailFrom, MaxAddressLen)
	e.CountMax(len(m.Recipients), MaxSendmailRecipients)
	for _, r := range m.Recipients {
		e.StringMax(r, MaxAddressLen)
	}
}
func (m *QueueSendmail) Decode(d *Decoder) {
	m.Account = d.StringMax(MaxNameLen)
	m.UID = d.Uint32()
	m.MailFrom = d.StringMax(MaxAddressLen)
	n := d.Count(MaxSendmailRecipients)
	m.Recipients = nil
	for i := 0; i < n; i++ {
		m.Recipients = append(m.Recipients, d.StringMax(MaxAddressLen))
	}
}

// QueueSendmailResult answers QueueSendmail: the queued message's id and
// its recipient count.
type QueueSendmailResult struct {
	Message    uint64
	Recipients uint32
}

func (*QueueSendmailResult) Type() MsgType { return TypeQueueSendmailResult }
func (*QueueSendmailResult) FDs() int      { return 0 }
func (m *QueueSendmailResult) Encode(e *Encoder) {
	e.Uint64(m.Message)
	e.Uint32(m.Recipients)
}
func (m *QueueSendmailResult) Decode(d *Decoder) {
	m.Message = d.Uint64()
	m.Recipients = d.Uint32()
}
