package ipc

// FamRetry (smtp -> queue): local retries. When a message smtp received
// was committed by store for some recipients but failed temporarily for
// others, smtp still answers 250 (DESIGN.md §4) and hands queue the failed
// recipients with store's copy of the body; queue keeps the message and
// delivers it to those recipients through store later, never outbound.

// LocalRetry queues the message that is the request's one fd, a read-only
// regular file, for local delivery to Recipients. Prefix holds the header
// lines smtp computed (Received, Authentication-Results), which are not
// part of store's copy; Received is when smtp received the message (Unix
// nanoseconds). Queue copies the file before it answers Ack, and answers
// only once its copy and record are durable.
type LocalRetry struct {
	MailFrom   string
	Recipients []string
	Prefix     []byte
	Received   int64
}

func (*LocalRetry) Type() MsgType { return TypeLocalRetry }
func (*LocalRetry) FDs() int      { return 1 }
func (m *LocalRetry) Encode(e *Encoder) {
	e.StringMax(m.MailFrom, MaxAddressLen)
	e.CountMax(len(m.Recipients), MaxRecipients)
	for _, r := range m.Recipients {
		e.StringMax(r, MaxAddressLen)
	}
	e.BytesMax(m.Prefix, MaxPrefix)
	e.Int64(m.Received)
}
func (m *LocalRetry) Decode(d *Decoder) {
	m.MailFrom = d.StringMax(MaxAddressLen)
	n := d.Count(MaxRecipients)
	for i := 0; i < n && d.Err() == nil; i++ {
		m.Recipients = append(m.Recipients, d.StringMax(MaxAddressLen))
	}
	m.Prefix = d.BytesMax(MaxPrefix)
	m.Received = d.Int64()
}
