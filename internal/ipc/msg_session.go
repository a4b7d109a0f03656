package ipc

// FamSession (imap, web -> store): an authenticated user's view of one
// account. Every request names the session (from SessionOpen, which takes
// the token store issued at login); store checks that the session belongs
// to the asking channel. Mailboxes are named by id plus the UIDVALIDITY the
// caller knows, so a recreated mailbox is never mistaken for the old one.
// Large answers come in pulled pages: the caller asks again from where the
// last page ended.

// Limits of session fields.
const (
	MaxRanges      = 1024 // UID ranges in one message
	MaxMetaBatch   = 400  // messages in one MessageBatch or ChangesReply
	MaxMailboxPage = 100  // mailboxes in one MailboxPage
	MaxDetailChunk = 14 * 1024
	MaxSearchDepth = 16  // nesting of a SearchKey
	MaxSearchNodes = 256 // nodes in one SearchKey
	MaxSearchText  = 1024
)

// UIDRange is an inclusive range of UIDs; Last 0xffffffff stands for "*".
type UIDRange struct {
	First, Last uint32
}

func encodeRanges(e *Encoder, l []UIDRange) {
	e.CountMax(len(l), MaxRanges)
	for _, r := range l {
		if r.First == 0 || r.Last < r.First {
			e.Fail("uid range %d:%d", r.First, r.Last)
			return
		}
		e.Uint32(r.First)
		e.Uint32(r.Last)
	}
}

func decodeRanges(d *Decoder) []UIDRange {
	n := d.Count(MaxRanges)
	var l []UIDRange
	for i := 0; i < n && d.Err() == nil; i++ {
		r := UIDRange{d.Uint32(), d.Uint32()}
		if r.First == 0 || r.Last < r.First {
			d.Fail("uid range %d:%d", r.First, r.Last)
			return nil
		}
		l = append(l, r)
	}
	return l
}

// MailboxRef names a mailbox in a session.
type MailboxRef struct {
	Session     uint64
	Mailbox     uint32
	UIDValidity uint32
}

func (r *MailboxRef) encode(e *Encoder) {
	e.Uint64(r.Session)
	e.Uint32(r.Mailbox)
	e.Uint32(r.UIDValidity)
}

func (r *MailboxRef) decode(d *Decoder) {
	r.Session = d.Uint64()
	r.Mailbox = d.Uint32()
	r.UIDValidity = d.Uint32()
}

// SessionOpen starts a session for the account a login token belongs to.
type SessionOpen struct {
	Token [32]byte
}

func (*SessionOpen) Type() MsgType       { return TypeSessionOpen }
func (*SessionOpen) FDs() int            { return 0 }
func (m *SessionOpen) Encode(e *Encoder) { e.Bytes32(m.Token) }
func (m *SessionOpen) Decode(d *Decoder) { m.Token = d.Bytes32() }

// SessionInfo answers SessionOpen.
type SessionInfo struct {
	Session uint64
	Account string
}

func (*SessionInfo) Type() MsgType { return TypeSessionInfo }
func (*SessionInfo) FDs() int      { return 0 }
func (m *SessionInfo) Encode(e *Encoder) {
	e.Uint64(m.Session)
	e.StringMax(m.Account, MaxAccountLen)
}
func (m *SessionInfo) Decode(d *Decoder) {
	m.Session = d.Uint64()
	m.Account = d.StringMax(MaxAccountLen)
}

// SessionClose ends a session and revokes its token. An event.
type SessionClose struct {
	Session uint64
}

func (*SessionClose) Type() MsgType       { return TypeSessionClose }
func (*SessionClose) FDs() int            { return 0 }
func (m *SessionClose) Encode(e *Encoder) { e.Uint64(m.Session) }
func (m *SessionClose) Decode(d *Decoder) { m.Session = d.Uint64() }

// MailboxInfo describes one mailbox with its summary (RFC 9051 SELECT and
// STATUS data; RFC 7162 HIGHESTMODSEQ).
type MailboxInfo struct {
	ID            uint32
	UIDValidity   uint32
	Name          string
	SpecialUse    uint8 // account.SpecialUse
	Subscribed    bool
	Messages      uint32
	Unseen        uint32
	Deleted       uint32
	Size          int64
	DeletedSize   int64 // bytes of the \Deleted messages (RFC 9208 DELETED-STORAGE)
	UIDNext       uint32
	HighestModSeq uint64
	Keywords      []string
}

func (m *MailboxInfo) encode(e *Encoder) {
	e.Uint32(m.ID)
	e.Uint32(m.UIDValidity)
	e.StringMax(m.Name, MaxMailboxLen)
	e.Uint8(m.SpecialUse)
	e.Bool(m.Subscribed)
	e.Uint32(m.Messages)
	e.Uint32(m.Unseen)
	e.Uint32(m.Deleted)
	e.Int64(m.Size)
	e.Int64(m.DeletedSize)
	e.Uint32(m.UIDNext)
	e.Uint64(m.HighestModSeq)
	encodeKeywords(e, m.Keywords)
}

func (m *MailboxInfo) decode(d *Decoder) {
	m.ID = d.Uint32()
	m.UIDValidity = d.Uint32()
	m.Name = d.StringMax(MaxMailboxLen)
	m.SpecialUse = d.Uint8()
	m.Subscribed = d.Bool()
	m.Messages = d.Uint32()
	m.Unseen = d.Uint32()
	m.Deleted = d.Uint32()
	m.Size = d.Int64()
	m.DeletedSize = d.Int64()
	m.UIDNext = d.Uint32()
	m.HighestModSeq = d.Uint64()
	m.Keywords = decodeKeywords(d)
}

// MailboxGet returns one mailbox by name, with its summary: SELECT,
// EXAMINE and STATUS. It reads one summary record, however many messages
// the mailbox holds.
type MailboxGet struct {
	Session uint64
	Name    string
}

func (*MailboxGet) Type() MsgType { return TypeMailboxGet }
func (*MailboxGet) FDs() int      { return 0 }
func (m *MailboxGet) Encode(e *Encoder) {
	e.Uint64(m.Session)
	e.StringMax(m.Name, MaxMailboxLen)
}
func (m *MailboxGet) Decode(d *Decoder) {
	m.Session = d.Uint64()
	m.Name = d.StringMax(MaxMailboxLen)
}

// MailboxReply answers MailboxGet and MailboxCreate.
type MailboxReply struct {
	Mailbox MailboxInfo
}

func (*MailboxReply) Type() MsgType       { return TypeMailboxReply }
func (*MailboxReply) FDs() int            { return 0 }
func (m *MailboxReply) Encode(e *Encoder) { m.Mailbox.encode(e) }
func (m *MailboxReply) Decode(d *Decoder) { m.Mailbox.decode(d) }

// MailboxPageReq asks for the account's mailboxes from index Start on,
// sorted by name; with Subscriptions set, for the subscribed names instead
// (which need not exist; only Name and Subscribed are set then).
type MailboxPageReq struct {
	Session       uint64
	Start         uint32
	Subscriptions bool
}

func (*MailboxPageReq) Type() MsgType { return TypeMailboxPageReq }
func (*MailboxPageReq) FDs() int      { return 0 }
func (m *MailboxPageReq) Encode(e *Encoder) {
	e.Uint64(m.Session)
	e.Uint32(m.Start)
	e.Bool(m.Subscriptions)
}
func (m *MailboxPageReq) Decode(d *Decoder) {
	m.Session = d.Uint64()
	m.Start = d.Uint32()
	m.Subscriptions = d.Bool()
}

// MailboxPage answers MailboxPageReq; Total is the number in all.
type MailboxPage struct {
	Total     uint32
	Mailboxes []MailboxInfo
}

func (*MailboxPage) Type() MsgType { return TypeMailboxPage }
func (*MailboxPage) FDs() int      { return 0 }
func (m *MailboxPage) Encode(e *Encoder) {
	e.Uint32(m.Total)
	e.CountMax(len(m.Mailboxes), MaxMailboxPage)
	for i := range m.Mailboxes {
		m.Mailboxes[i].encode(e)
	}
}
func (m *MailboxPage) Decode(d *Decoder) {
	m.Total = d.Uint32()
	n := d.Count(MaxMailboxPage)
	for i := 0; i < n && d.Err() == nil; i++ {
		var mb MailboxInfo
		mb.decode(d)
		m.Mailboxes = append(m.Mailboxes, mb)
	}
}

// Mailbox operations of MailboxChange.
const (
	MailboxCreate      uint8 = 1 // Name, SpecialUse
	MailboxDelete      uint8 = 2 // Name
	MailboxRename      uint8 = 3 // Name to NewName, children included
	MailboxSubscribe   uint8 = 4 // Name
	MailboxUnsubscribe uint8 = 5 // Name
	MailboxSetUse      uint8 = 6 // Name, SpecialUse
)

// MailboxChange creates, deletes, renames or (un)subscribes a mailbox.
// Answered with MailboxReply: the mailbox as it is afterwards (after a
// delete, or for a subscription to a name that does not exist, only its
// Name is set).
type MailboxChange struct {
	Session    uint64
	Op         uint8
	Name       string
	NewName    string
	SpecialUse uint8
}

func (*MailboxChange) Type() MsgType { return TypeMailboxChange }
func (*MailboxChange) FDs() int      { return 0 }
func (m *MailboxChange) Encode(e *Encoder) {
	e.Uint64(m.Session)
	e.Uint8(m.Op)
	e.StringMax(m.Name, MaxMailboxLen)
	e.StringMax(m.NewName, MaxMailboxLen)
	e.Uint8(m.SpecialUse)
}
func (m *MailboxChange) Decode(d *Decoder) {
	m.Session = d.Uint64()
	m.Op = d.Uint8()
	if m.Op < MailboxCreate || m.Op > MailboxSetUse {
		d.Fail("mailbox operation %d", m.Op)
	}
	m.Name = d.StringMax(MaxMailboxLen)
	m.NewName = d.StringMax(MaxMailboxLen)
	m.SpecialUse = d.Uint8()
}

// MessageMeta is the per-message data of a mailbox listing. Keywords are
// indexes into the batch's keyword table.
type MessageMeta struct {
	UID       uint32
	ModSeq    uint64
	CreateSeq uint64
	Flags     uint8
	Keywords  []uint16
	Size      int64
	Received  int64 // Unix seconds
	// SaveDate is when the message was saved into this mailbox, in Unix
	// seconds (RFC 8514 §2); for messages saved before moxd kept save dates,
	// the Received time.
	SaveDate int64
}

func encodeMetas(e *Encoder, keywords []string, l []MessageMeta) {
	encodeKeywordTable(e, keywords)
	e.CountMax(len(l), MaxMetaBatch)
	for _, m := range l {
		e.Uint32(m.UID)
		e.Uint64(m.ModSeq)
		e.Uint64(m.CreateSeq)
		e.Uint8(m.Flags)
		e.CountMax(len(m.Keywords), MaxKeywords)
		for _, k := range m.Keywords {
			if int(k) >= len(keywords) {
				e.Fail("keyword index %d beyond table of %d", k, len(keywords))
			}
			e.Uint16(k)
		}
		e.Int64(m.Size)
		e.Int64(m.Received)
		e.Int64(m.SaveDate)
	}
}

func decodeMetas(d *Decoder) ([]string, []MessageMeta) {
	keywords := decodeKeywordTable(d)
	n := d.Count(MaxMetaBatch)
	l := make([]MessageMeta, 0, n)
	for i := 0; i < n && d.Err() == nil; i++ {
		var m MessageMeta
		m.UID = d.Uint32()
		m.ModSeq = d.Uint64()
		m.CreateSeq = d.Uint64()
		m.Flags = d.Uint8()
		nk := d.Count(MaxKeywords)
		for j := 0; j < nk && d.Err() == nil; j++ {
			k := d.Uint16()
			if int(k) >= len(keywords) {
				d.Fail("keyword index %d beyond table of %d", k, len(keywords))
			}
			m.Keywords = append(m.Keywords, k)
		}
		m.Size = d.Int64()
		m.Received = d.Int64()
		m.SaveDate = d.Int64()
		l = append(l, m)
	}
	return keywords, l
}

// MaxKeywordTable bounds the keyword table of one batch.
const MaxKeywordTable = 1024

func encodeKeywordTable(e *Encoder, kw []string) {
	e.CountMax(len(kw), MaxKeywordTable)
	for _, k := range kw {
		e.StringMax(k, MaxNameLen)
	}
}

func decodeKeywordTable(d *Decoder) []string {
	n := d.Count(MaxKeywordTable)
	var l []string
	for i := 0; i < n && d.Err() == nil; i++ {
		l = append(l, d.StringMax(MaxNameLen))
	}
	return l
}

// MessagesReq asks for the messages of a mailbox with UID >= FromUID, at
// most Max (≤ MaxMetaBatch).
type MessagesReq struct {
	Ref     MailboxRef
	FromUID uint32
	Max     uint16
}

func (*MessagesReq) Type() MsgType { return TypeMessagesReq }
func (*MessagesReq) FDs() int      { return 0 }
func (m *MessagesReq) Encode(e *Encoder) {
	m.Ref.encode(e)
	e.Uint32(m.FromUID)
	e.Uint16(m.Max)
}
func (m *MessagesReq) Decode(d *Decoder) {
	m.Ref.decode(d)
	m.FromUID = d.Uint32()
	m.Max = d.Uint16()
}

// MessageBatch answers MessagesReq in UID order. Next is the UID to ask
// from for the next page, 0 when there are no more messages.
type MessageBatch struct {
	Keywords []string
	Messages []MessageMeta
	Next     uint32
}

func (*MessageBatch) Type() MsgType { return TypeMessageBatch }
func (*MessageBatch) FDs() int      { return 0 }
func (m *MessageBatch) Encode(e *Encoder) {
	encodeMetas(e, m.Keywords, m.Messages)
	e.Uint32(m.Next)
}
func (m *MessageBatch) Decode(d *Decoder) {
	m.Keywords, m.Messages = decodeMetas(d)
	m.Next = d.Uint32()
}

// MessageOpen asks for a read-only fd of one message's file, and its
// detail: the header prefix served before the file, and from byte
// DetailOffset on, a chunk of the marshaled MIME tree (message.Part).
type MessageOpen struct {
	Ref          MailboxRef
	UID          uint32
	NoFile       bool // only the detail chunk
	DetailOffset uint32
}

func (*MessageOpen) Type() MsgType { return TypeMessageOpen }
func (*MessageOpen) FDs() int      { return 0 }
func (m *MessageOpen) Encode(e *Encoder) {
	m.Ref.encode(e)
	e.Uint32(m.UID)
	e.Bool(m.NoFile)
	e.Uint32(m.DetailOffset)
}
func (m *MessageOpen) Decode(d *Decoder) {
	m.Ref.decode(d)
	m.UID = d.Uint32()
	m.NoFile = d.Bool()
	m.DetailOffset = d.Uint32()
}

// MessageFile answers MessageOpen. With File set its one fd is the
// message file opened read-only; FileSize is its size, so the reader can
// detect a short read. Prefix is served before the file. Detail is the
// chunk of the marshaled MIME tree from the requested offset; DetailSize
// its total size.
type MessageFile struct {
	File       bool
	FileSize   int64
	Prefix     []byte
	DetailSize uint32
	Detail     []byte
}

func (*MessageFile) Type() MsgType { return TypeMessageFile }
func (m *MessageFile) FDs() int {
	if m.File {
		return 1
	}
	return 0
}
func (m *MessageFile) Encode(e *Encoder) {
	e.Bool(m.File)
	e.Int64(m.FileSize)
	e.BytesMax(m.Prefix, MaxPrefix)
	e.Uint32(m.DetailSize)
	e.BytesMax(m.Detail, MaxDetailChunk)
}
func (m *MessageFile) Decode(d *Decoder) {
	m.File = d.Bool()
	m.FileSize = d.Int64()
	m.Prefix = d.BytesMax(MaxPrefix)
	m.DetailSize = d.Uint32()
	m.Detail = d.BytesMax(MaxDetailChunk)
}

// Store modes of FlagsStore (RFC 9051 §6.4.6 FLAGS, +FLAGS, -FLAGS).
const (
	StoreSet    uint8 = 1
	StoreAdd    uint8 = 2
	StoreRemove uint8 = 3
)

// FlagsStore changes flags and keywords of the messages in UIDs. With
// UnchangedSince > 0, messages with a higher modseq are left alone and
// reported (RFC 7162 §3.1.3).
type FlagsStore struct {
	Ref            MailboxRef
	UIDs           []UIDRange
	Mode           uint8
	Flags          uint8
	Keywords       []string
	UnchangedSince uint64
}

func (*FlagsStore) Type() MsgType { return TypeFlagsStore }
func (*FlagsStore) FDs() int      { return 0 }
func (m *FlagsStore) Encode(e *Encoder) {
	m.Ref.encode(e)
	encodeRanges(e, m.UIDs)
	e.Uint8(m.Mode)
	e.Uint8(m.Flags)
	encodeKeywords(e, m.Keywords)
	e.Uint64(m.UnchangedSince)
}
func (m *FlagsStore) Decode(d *Decoder) {
	m.Ref.decode(d)
	m.UIDs = decodeRanges(d)
	m.Mode = d.Uint8()
	if m.Mode < StoreSet || m.Mode > StoreRemove {
		d.Fail("store mode %d", m.Mode)
	}
	m.Flags = d.Uint8()
	m.Keywords = decodeKeywords(d)
	m.UnchangedSince = d.Uint64()
}

// FlagsStored answers FlagsStore: the changed messages got modseqs in
// (FromModSeq, ToModSeq] (ask Changes for their new flags), Modified lists
// the messages UnchangedSince kept (ranges, up to MaxRanges; ModifiedMore
// says the list was cut).
type FlagsStored struct {
	Changed      uint32
	FromModSeq   uint64
	ToModSeq     uint64
	Modified     []UIDRange
	ModifiedMore bool
}

func (*FlagsStored) Type() MsgType { return TypeFlagsStored }
func (*FlagsStored) FDs() int      { return 0 }
func (m *FlagsStored) Encode(e *Encoder) {
	e.Uint32(m.Changed)
	e.Uint64(m.FromModSeq)
	e.Uint64(m.ToModSeq)
	encodeRanges(e, m.Modified)
	e.Bool(m.ModifiedMore)
}
func (m *FlagsStored) Decode(d *Decoder) {
	m.Changed = d.Uint32()
	m.FromModSeq = d.Uint64()
	m.ToModSeq = d.Uint64()
	m.Modified = decodeRanges(d)
	m.ModifiedMore = d.Bool()
}

// CopyMessages copies (or with Move set, moves) the messages in UIDs to
// the mailbox named Dest. Answered with CopyResult.
type CopyMessages struct {
	Ref  MailboxRef
	UIDs []UIDRange
	Dest string
	Move bool
}

func (*CopyMessages) Type() MsgType { return TypeCopyMessages }
func (*CopyMessages) FDs() int      { return 0 }
func (m *CopyMessages) Encode(e *Encoder) {
	m.Ref.encode(e)
	encodeRanges(e, m.UIDs)
	e.StringMax(m.Dest, MaxMailboxLen)
	e.Bool(m.Move)
}
func (m *CopyMessages) Decode(d *Decoder) {
	m.Ref.decode(d)
	m.UIDs = decodeRanges(d)
	m.Dest = d.StringMax(MaxMailboxLen)
	m.Move = d.Bool()
}

// CopyResult answers CopyMessages with the COPYUID data (RFC 4315 §3):
// source and destination UIDs in matching order, as ranges.
type CopyResult struct {
	UIDValidity uint32
	From, To    []UIDRange
	ModSeq      uint64
}

func (*CopyResult) Type() MsgType { return TypeCopyResult }
func (*CopyResult) FDs() int      { return 0 }
func (m *CopyResult) Encode(e *Encoder) {
	e.Uint32(m.UIDValidity)
	encodeRanges(e, m.From)
	encodeRanges(e, m.To)
	e.Uint64(m.ModSeq)
}
func (m *CopyResult) Decode(d *Decoder) {
	m.UIDValidity = d.Uint32()
	m.From = decodeRanges(d)
	m.To = decodeRanges(d)
	m.ModSeq = d.Uint64()
}

// Expunge removes the \Deleted messages among UIDs (all \Deleted messages
// when UIDs is empty). Answered with Expunged.
type Expunge struct {
	Ref  MailboxRef
	UIDs []UIDRange
}

func (*Expunge) Type() MsgType { return TypeExpunge }
func (*Expunge) FDs() int      { return 0 }
func (m *Expunge) Encode(e *Encoder) {
	m.Ref.encode(e)
	encodeRanges(e, m.UIDs)
}
func (m *Expunge) Decode(d *Decoder) {
	m.Ref.decode(d)
	m.UIDs = decodeRanges(d)
}

// Expunged answers Expunge.
type Expunged struct {
	UIDs   []UIDRange
	ModSeq uint64
}

func (*Expunged) Type() MsgType { return TypeExpunged }
func (*Expunged) FDs() int      { return 0 }
func (m *Expunged) Encode(e *Encoder) {
	encodeRanges(e, m.UIDs)
	e.Uint64(m.ModSeq)
}
func (m *Expunged) Decode(d *Decoder) {
	m.UIDs = decodeRanges(d)
	m.ModSeq = d.Uint64()
}

// ChangesReq asks what changed in a mailbox after modseq Since: messages
// with a higher modseq, and expunged UIDs (RFC 7162 §3.1.4, §3.2.5), in
// modseq order. A follow-up page starts after the entry (AfterModSeq,
// AfterUID) the previous page ended with.
type ChangesReq struct {
	Ref         MailboxRef
	Since       uint64
	AfterModSeq uint64
	AfterUID    uint32
	Max         uint16
}

func (*ChangesReq) Type() MsgType { return TypeChangesReq }
func (*ChangesReq) FDs() int      { return 0 }
func (m *ChangesReq) Encode(e *Encoder) {
	m.Ref.encode(e)
	e.Uint64(m.Since)
	e.Uint64(m.AfterModSeq)
	e.Uint32(m.AfterUID)
	e.Uint16(m.Max)
}
func (m *ChangesReq) Decode(d *Decoder) {
	m.Ref.decode(d)
	m.Since = d.Uint64()
	m.AfterModSeq = d.Uint64()
	m.AfterUID = d.Uint32()
	m.Max = d.Uint16()
}

// ChangesReply answers ChangesReq. With More set, ask again with
// AfterModSeq, AfterUID = LastModSeq, LastUID; HighestModSeq is the
// mailbox's.
type ChangesReply struct {
	Keywords      []string
	Changed       []MessageMeta
	Vanished      []UIDRange
	LastModSeq    uint64
	LastUID       uint32
	More          bool
	HighestModSeq uint64
}

func (*ChangesReply) Type() MsgType { return TypeChangesReply }
func (*ChangesReply) FDs() int      { return 0 }
func (m *ChangesReply) Encode(e *Encoder) {
	encodeMetas(e, m.Keywords, m.Changed)
	encodeRanges(e, m.Vanished)
	e.Uint64(m.LastModSeq)
	e.Uint32(m.LastUID)
	e.Bool(m.More)
	e.Uint64(m.HighestModSeq)
}
func (m *ChangesReply) Decode(d *Decoder) {
	m.Keywords, m.Changed = decodeMetas(d)
	m.Vanished = decodeRanges(d)
	m.LastModSeq = d.Uint64()
	m.LastUID = d.Uint32()
	m.More = d.Bool()
	m.HighestModSeq = d.Uint64()
}

// Search operators of SearchNode (RFC 9051 §6.4.4).
const (
	SearchAll        uint8 = 1
	SearchAnd        uint8 = 2 // Sub
	SearchOr         uint8 = 3 // Sub (any)
	SearchNot        uint8 = 4 // Sub[0]
	SearchUIDs       uint8 = 5 // UIDs
	SearchFlag       uint8 = 6 // Flags set (or Keyword set, when not empty)
	SearchLarger     uint8 = 7 // Number
	SearchSmaller    uint8 = 8 // Number
	SearchBefore     uint8 = 9 // Number: Unix seconds of the day's start; received
	SearchOn         uint8 = 10
	SearchSince      uint8 = 11
	SearchSentBefore uint8 = 12 // Date header
	SearchSentOn     uint8 = 13
	SearchSentSince  uint8 = 14
	SearchHeader     uint8 = 15 // Name, Text ("" = present)
	SearchBody       uint8 = 16 // Text
	SearchText       uint8 = 17 // Text
	SearchModSeq     uint8 = 18 // Number
	SearchOlder      uint8 = 19 // Number: Unix seconds; received before it (RFC 5032 OLDER)
	SearchYounger    uint8 = 20 // Number: Unix seconds; received at or after it (RFC 5032 YOUNGER)
	// RFC 8514 §4.3: the save date, as SearchBefore/On/Since the received
	// date (Number: Unix seconds of the day's start).
	SearchSavedBefore uint8 = 21
	SearchSavedOn     uint8 = 22
	SearchSavedSince  uint8 = 23
	searchMaxOp             = SearchSavedSince
)

// SearchNode is one node of a search key tree.
type SearchNode struct {
	Op      uint8
	Sub     []SearchNode
	UIDs    []UIDRange
	Flags   uint8
	Keyword string
	Number  int64
	Name    string
	Text    string
}

func (n *SearchNode) encode(e *Encoder, depth int, count *int) {
	*count++
	if depth > MaxSearchDepth || *count > MaxSearchNodes {
		e.Fail("search key too large")
		return
	}
	e.Uint8(n.Op)
	e.CountMax(len(n.Sub), MaxSearchNodes)
	for i := range n.Sub {
		n.Sub[i].encode(e, depth+1, count)
	}
	encodeRanges(e, n.UIDs)
	e.Uint8(n.Flags)
	e.StringMax(n.Keyword, MaxNameLen)
	e.Int64(n.Number)
	e.StringMax(n.Name, MaxNameLen)
	e.StringMax(n.Text, MaxSearchText)
}

func (n *SearchNode) decode(d *Decoder, depth int, count *int) {
	*count++
	if depth > MaxSearchDepth || *count > MaxSearchNodes {
		d.Fail("search key too large")
		return
	}
	n.Op = d.Uint8()
	if n.Op < SearchAll || n.Op > searchMaxOp {
		d.Fail("search operator %d", n.Op)
		return
	}
	k := d.Count(MaxSearchNodes)
	for i := 0; i < k && d.Err() == nil; i++ {
		var s SearchNode
		s.decode(d, depth+1, count)
		n.Sub = append(n.Sub, s)
	}
	n.UIDs = decodeRanges(d)
	n.Flags = d.Uint8()
	n.Keyword = d.StringMax(MaxNameLen)
	n.Number = d.Int64()
	n.Name = d.StringMax(MaxNameLen)
	n.Text = d.StringMax(MaxSearchText)
	if n.Op == SearchNot && len(n.Sub) != 1 {
		d.Fail("search NOT needs one operand")
	}
}

// Search finds messages of a mailbox matching Key, from UID FromUID on.
type Search struct {
	Ref     MailboxRef
	FromUID uint32
	Key     SearchNode
}

func (*Search) Type() MsgType { return TypeSearch }
func (*Search) FDs() int      { return 0 }
func (m *Search) Encode(e *Encoder) {
	m.Ref.encode(e)
	e.Uint32(m.FromUID)
	n := 0
	m.Key.encode(e, 0, &n)
}
func (m *Search) Decode(d *Decoder) {
	m.Ref.decode(d)
	m.FromUID = d.Uint32()
	n := 0
	m.Key.decode(d, 0, &n)
}

// SearchResult answers Search with matching UIDs as ranges. Next is the
// UID to continue from when the ranges did not fit, 0 when complete.
type SearchResult struct {
	UIDs []UIDRange
	Next uint32
}

func (*SearchResult) Type() MsgType { return TypeSearchResult }
func (*SearchResult) FDs() int      { return 0 }
func (m *SearchResult) Encode(e *Encoder) {
	encodeRanges(e, m.UIDs)
	e.Uint32(m.Next)
}
func (m *SearchResult) Decode(d *Decoder) {
	m.UIDs = decodeRanges(d)
	m.Next = d.Uint32()
}

// FamEvents (store -> imap, web): change notifications, coalesced per
// account and mailbox and sent off every commit's critical path.

// MailboxChanged says a mailbox of Account changed up to ModSeq; Mailbox 0
// means the mailbox list changed.
type MailboxChanged struct {
	Account string
	Mailbox uint32
	ModSeq  uint64
}

func (*MailboxChanged) Type() MsgType { return TypeMailboxChanged }
func (*MailboxChanged) FDs() int      { return 0 }
func (m *MailboxChanged) Encode(e *Encoder) {
	e.StringMax(m.Account, MaxAccountLen)
	e.Uint32(m.Mailbox)
	e.Uint64(m.ModSeq)
}
func (m *MailboxChanged) Decode(d *Decoder) {
	m.Account = d.StringMax(MaxAccountLen)
	m.Mailbox = d.Uint32()
	m.ModSeq = d.Uint64()
}

// Resync says events were dropped: every session of Account (all
// accounts when empty) must re-read its mailbox state.
type Resync struct {
	Account string
}

func (*Resync) Type() MsgType       { return TypeResync }
func (*Resync) FDs() int            { return 0 }
func (m *Resync) Encode(e *Encoder) { e.StringMax(m.Account, MaxAccountLen) }
func (m *Resync) Decode(d *Decoder) { m.Account = d.StringMax(MaxAccountLen) }
