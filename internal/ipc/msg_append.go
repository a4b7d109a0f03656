package ipc

// FamSession: APPEND of several messages at once (IMAP MULTIAPPEND, RFC
// 3502), committed together or not at all. The messages travel back to
// back in one regular file, so any number of them needs one fd; the
// frame carries their sizes, flags and dates.

// MaxAppendMessages bounds the messages of one AppendMessages.
const MaxAppendMessages = 100

// AppendMessages stores messages in the existing mailbox Name in one
// transaction: all of them or none. Its one fd is a regular file the
// caller wrote; the messages follow each other in it from byte Offset on,
// in order, each Messages[i].Size bytes, and the file ends after the last.
// The messages' Keywords index the table Keywords. Answered with
// AppendedMessages; a mailbox that does not exist is CodeNotFound, a
// message over the store's size limit CodeLimit.
type AppendMessages struct {
	Session  uint64
	Name     string
	Offset   int64
	Keywords []string
	Messages []AppendEntry
}

// AppendEntry is one message of AppendMessages.
type AppendEntry struct {
	Size     int64
	Flags    uint8 // Flag*
	Keywords []uint16
	Received int64 // Unix seconds; 0 for now
}

func (*AppendMessages) Type() MsgType { return TypeAppendMessages }
func (*AppendMessages) FDs() int      { return 1 }
func (m *AppendMessages) Encode(e *Encoder) {
	e.Uint64(m.Session)
	e.StringMax(m.Name, MaxMailboxLen)
	if m.Offset < 0 {
		e.Fail("negative offset %d", m.Offset)
	}
	e.Int64(m.Offset)
	encodeKeywordTable(e, m.Keywords)
	if len(m.Messages) == 0 {
		e.Fail("no messages")
	}
	e.CountMax(len(m.Messages), MaxAppendMessages)
	for _, a := range m.Messages {
		if a.Size < 0 {
			e.Fail("negative message size %d", a.Size)
		}
		e.Int64(a.Size)
		e.Uint8(a.Flags)
		e.CountMax(len(a.Keywords), MaxKeywords)
		for _, k := range a.Keywords {
			if int(k) >= len(m.Keywords) {
				e.Fail("keyword index %d beyond table of %d", k, len(m.Keywords))
			}
			e.Uint16(k)
		}
		e.Int64(a.Received)
	}
}
func (m *AppendMessages) Decode(d *Decoder) {
	m.Session = d.Uint64()
	m.Name = d.StringMax(MaxMailboxLen)
	if m.Offset = d.Int64(); m.Offset < 0 {
		d.Fail("negative offset %d", m.Offset)
	}
	m.Keywords = decodeKeywordTable(d)
	n := d.Count(MaxAppendMessages)
	if n == 0 && d.Err() == nil {
		d.Fail("no messages")
	}
	for i := 0; i < n && d.Err() == nil; i++ {
		var a AppendEntry
		if a.Size = d.Int64(); a.Size < 0 {
			d.Fail("negative message size %d", a.Size)
		}
		a.Flags = d.Uint8()
		nk := d.Count(MaxKeywords)
		for j := 0; j < nk && d.Err() == nil; j++ {
			k := d.Uint16()
			if int(k) >= len(m.Keywords) {
				d.Fail("keyword index %d beyond table of %d", k, len(m.Keywords))
			}
			a.Keywords = append(a.Keywords, k)
		}
		a.Received = d.Int64()
		m.Messages = append(m.Messages, a)
	}
}

// AppendedMessages answers AppendMessages with the APPENDUID data (RFC
// 4315 §3): the new UIDs, in the order of the messages.
type AppendedMessages struct {
	UIDValidity uint32
	UIDs        []UIDRange
	ModSeq      uint64
}

func (*AppendedMessages) Type() MsgType { return TypeAppendedMessages }
func (*AppendedMessages) FDs() int      { return 0 }
func (m *AppendedMessages) Encode(e *Encoder) {
	e.Uint32(m.UIDValidity)
	encodeRanges(e, m.UIDs)
	e.Uint64(m.ModSeq)
}
func (m *AppendedMessages) Decode(d *Decoder) {
	m.UIDValidity = d.Uint32()
	m.UIDs = decodeRanges(d)
	m.ModSeq = d.Uint64()
}
