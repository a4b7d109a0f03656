package ipc

// FamSession: the keys IMAP SORT and THREAD (RFC 5256) order messages by,
// from what store recorded when each message arrived. One request answers
// a page; the caller asks again from the UID the page ended before, so a
// mailbox of any size costs one call per page, not one per message.

// Key groups of SortKeysReq.Fields. A page carries only the groups asked
// for, so a SORT by subject fits many more messages per frame than a
// THREAD REFERENCES.
const (
	SortKeyDate    uint8 = 1 << iota // Sent
	SortKeySubject                   // Subject
	SortKeyFrom                      // From
	SortKeyTo                        // To
	SortKeyCc                        // Cc
	SortKeyThread                    // MessageID, InReplyTo, References, Reply
	sortKeyAll     = SortKeyDate | SortKeySubject | SortKeyFrom | SortKeyTo | SortKeyCc | SortKeyThread
)

// Limits of SortKeys entries. Together they keep one entry with every
// group well inside a frame: a page always holds at least one message.
const (
	MaxSortKeyBatch = 1000     // entries in one SortKeys
	MaxSortSubject  = 1024     // bytes of SortKey.Subject; store cuts longer subjects
	MaxMessageIDLen = 998      // bytes of one message id (RFC 5322 §2.1.1 line limit); store drops longer ones
	MaxSortRefBytes = 8 * 1024 // encoded bytes of SortKey.References; store keeps the first id and the last ones that fit
)

// SortKeysReq asks for the sort and thread keys of the messages of a
// mailbox in UIDs with UID >= FromUID, at most Max (≤ MaxSortKeyBatch, 0
// for as many as fit), with the key groups in Fields (SortKey*).
// Answered with SortKeys.
type SortKeysReq struct {
	Ref     MailboxRef
	UIDs    []UIDRange
	FromUID uint32
	Fields  uint8
	Max     uint16
}

func (*SortKeysReq) Type() MsgType { return TypeSortKeysReq }
func (*SortKeysReq) FDs() int      { return 0 }
func (m *SortKeysReq) Encode(e *Encoder) {
	m.Ref.encode(e)
	encodeRanges(e, m.UIDs)
	e.Uint32(m.FromUID)
	if m.Fields&^sortKeyAll != 0 {
		e.Fail("sort key fields %#x", m.Fields)
	}
	e.Uint8(m.Fields)
	e.Uint16(m.Max)
}
func (m *SortKeysReq) Decode(d *Decoder) {
	m.Ref.decode(d)
	m.UIDs = decodeRanges(d)
	m.FromUID = d.Uint32()
	m.Fields = d.Uint8()
	if m.Fields&^sortKeyAll != 0 {
		d.Fail("sort key fields %#x", m.Fields)
	}
	m.Max = d.Uint16()
}

// SortAddress is the first mailbox of an address header (group markers
// skipped), for RFC 5256 FROM, TO, CC and RFC 5957 DISPLAYFROM,
// DISPLAYTO.
type SortAddress struct {
	Name    string // display name, RFC 2047-decoded
	Mailbox string // local part
	Host    string
}

func (a *SortAddress) encode(e *Encoder) {
	e.StringMax(a.Name, MaxNameLen)
	e.StringMax(a.Mailbox, MaxNameLen)
	e.StringMax(a.Host, MaxNameLen)
}

func (a *SortAddress) decode(d *Decoder) {
	a.Name = d.StringMax(MaxNameLen)
	a.Mailbox = d.StringMax(MaxNameLen)
	a.Host = d.StringMax(MaxNameLen)
}

func (a *SortAddress) size() int { return 6 + len(a.Name) + len(a.Mailbox) + len(a.Host) }

// SortKey is one message's keys; only the groups of the page's Fields are
// set and sent.
type SortKey struct {
	UID uint32
	// Sent is the Date header's time in Unix seconds, or the internal
	// date when the header is missing or does not parse (RFC 5256 §2.2).
	Sent int64
	// Subject is the base subject (RFC 5256 §2.1) after RFC 2047
	// decoding, not case-folded.
	Subject string
	From    SortAddress
	To      SortAddress
	Cc      SortAddress
	// The message ids, brackets included: the first of Message-ID, the
	// first of In-Reply-To, and References in order.
	MessageID  string
	InReplyTo  string
	References []string
	// Reply says the subject was a reply or forward: extracting the base
	// subject removed more than list tags and white space (RFC 5256 §3
	// REFERENCES step 5).
	Reply bool
}

func (k *SortKey) encode(e *Encoder, fields uint8) {
	e.Uint32(k.UID)
	if fields&SortKeyDate != 0 {
		e.Int64(k.Sent)
	}
	if fields&SortKeySubject != 0 {
		e.StringMax(k.Subject, MaxSortSubject)
	}
	if fields&SortKeyFrom != 0 {
		k.From.encode(e)
	}
	if fields&SortKeyTo != 0 {
		k.To.encode(e)
	}
	if fields&SortKeyCc != 0 {
		k.Cc.encode(e)
	}
	if fields&SortKeyThread != 0 {
		e.StringMax(k.MessageID, MaxMessageIDLen)
		e.StringMax(k.InReplyTo, MaxMessageIDLen)
		n := 0
		for _, id := range k.References {
			n += 2 + len(id)
		}
		if n > MaxSortRefBytes {
			e.Fail("references of %d bytes exceed %d", n, MaxSortRefBytes)
		}
		e.CountMax(len(k.References), MaxSortRefBytes/3)
		for _, id := range k.References {
			e.StringMax(id, MaxMessageIDLen)
		}
		e.Bool(k.Reply)
	}
}

func (k *SortKey) decode(d *Decoder, fields uint8) {
	k.UID = d.Uint32()
	if fields&SortKeyDate != 0 {
		k.Sent = d.Int64()
	}
	if fields&SortKeySubject != 0 {
		k.Subject = d.StringMax(MaxSortSubject)
	}
	if fields&SortKeyFrom != 0 {
		k.From.decode(d)
	}
	if fields&SortKeyTo != 0 {
		k.To.decode(d)
	}
	if fields&SortKeyCc != 0 {
		k.Cc.decode(d)
	}
	if fields&SortKeyThread != 0 {
		k.MessageID = d.StringMax(MaxMessageIDLen)
		k.InReplyTo = d.StringMax(MaxMessageIDLen)
		n := d.Count(MaxSortRefBytes / 3)
		size := 0
		for i := 0; i < n && d.Err() == nil; i++ {
			id := d.StringMax(MaxMessageIDLen)
			size += 2 + len(id)
			k.References = append(k.References, id)
		}
		if size > MaxSortRefBytes {
			d.Fail("references of %d bytes exceed %d", size, MaxSortRefBytes)
		}
		k.Reply = d.Bool()
	}
}

// Size returns the bytes k adds to a SortKeys page carrying fields, so
// that store can fill a page up to a frame without encoding it again.
func (k *SortKey) Size(fields uint8) int {
	n := 4
	if fields&SortKeyDate != 0 {
		n += 8
	}
	if fields&SortKeySubject != 0 {
		n += 2 + len(k.Subject)
	}
	if fields&SortKeyFrom != 0 {
		n += k.From.size()
	}
	if fields&SortKeyTo != 0 {
		n += k.To.size()
	}
	if fields&SortKeyCc != 0 {
		n += k.Cc.size()
	}
	if fields&SortKeyThread != 0 {
		n += 2 + len(k.MessageID) + 2 + len(k.InReplyTo) + 2 + 1
		for _, id := range k.References {
			n += 2 + len(id)
		}
	}
	return n
}

// SortKeysPageOverhead is the size of a SortKeys page without entries.
const SortKeysPageOverhead = 1 + 2 + 4

// SortKeys answers SortKeysReq in UID order; messages expunged meanwhile
// are left out. Next is the UID to ask from for the next page, 0 when
// the ranges are done.
type SortKeys struct {
	Fields uint8
	Keys   []SortKey
	Next   uint32
}

func (*SortKeys) Type() MsgType { return TypeSortKeys }
func (*SortKeys) FDs() int      { return 0 }
func (m *SortKeys) Encode(e *Encoder) {
	if m.Fields&^sortKeyAll != 0 {
		e.Fail("sort key fields %#x", m.Fields)
	}
	e.Uint8(m.Fields)
	e.CountMax(len(m.Keys), MaxSortKeyBatch)
	for i := range m.Keys {
		m.Keys[i].encode(e, m.Fields)
	}
	e.Uint32(m.Next)
}
func (m *SortKeys) Decode(d *Decoder) {
	m.Fields = d.Uint8()
	if m.Fields&^sortKeyAll != 0 {
		d.Fail("sort key fields %#x", m.Fields)
		return
	}
	n := d.Count(MaxSortKeyBatch)
	for i := 0; i < n && d.Err() == nil; i++ {
		var k SortKey
		k.decode(d, m.Fields)
		m.Keys = append(m.Keys, k)
	}
	m.Next = d.Uint32()
}
