package ipc

// FamStoreAdmin (master -> store): the account administration moxctl asks
// for through master's control socket. Master has checked the caller's
// credentials; store checks the arguments.

// Limits of store administration fields.
const (
	MaxAccountLen  = 64   // account names (config.Account.Name)
	MaxMailboxLen  = 1024 // mailbox names
	MaxPasswordLen = 1024 // AccountPassword.Password
	MaxAddressLen  = 320  // email addresses (RFC 5321 §4.5.3.1: 64 + 1 + 255)
	MaxProblems    = 64   // problems listed in one ImportResult
	MaxImportFiles = 4    // files in one ImportFiles (one fd each)
	MaxKeywords    = 64   // keywords of one message
	MaxMailboxList = 200  // names in one MailboxNames
)

// AccountPassword sets the password of Account; store hashes it and keeps
// no plaintext. Answered with Ack.
type AccountPassword struct {
	Account  string
	Password string
}

func (*AccountPassword) Type() MsgType { return TypeAccountPassword }
func (*AccountPassword) FDs() int      { return 0 }
func (m *AccountPassword) Encode(e *Encoder) {
	e.StringMax(m.Account, MaxAccountLen)
	e.StringMax(m.Password, MaxPasswordLen)
}
func (m *AccountPassword) Decode(d *Decoder) {
	m.Account = d.StringMax(MaxAccountLen)
	m.Password = d.StringMax(MaxPasswordLen)
}

// Phases of an account removal (docs/storage.md "Account removal").
const (
	RemovePrepare uint8 = 1 // write the marker and close the account
	RemoveFinish  uint8 = 2 // domains.conf no longer has the account: delete it
	RemoveCancel  uint8 = 3 // domains.conf could not be written: clear the marker
)

// AccountRemove is one phase of removing Account. Answered with Ack.
type AccountRemove struct {
	Account string
	Phase   uint8
}

func (*AccountRemove) Type() MsgType { return TypeAccountRemove }
func (*AccountRemove) FDs() int      { return 0 }
func (m *AccountRemove) Encode(e *Encoder) {
	e.StringMax(m.Account, MaxAccountLen)
	e.Uint8(m.Phase)
}
func (m *AccountRemove) Decode(d *Decoder) {
	m.Account = d.StringMax(MaxAccountLen)
	m.Phase = d.Uint8()
	if m.Phase < RemovePrepare || m.Phase > RemoveCancel {
		d.Fail("account remove phase %d", m.Phase)
	}
}

// AccountUsage asks for the size and message count of Account.
type AccountUsage struct {
	Account string
}

func (*AccountUsage) Type() MsgType       { return TypeAccountUsage }
func (*AccountUsage) FDs() int            { return 0 }
func (m *AccountUsage) Encode(e *Encoder) { e.StringMax(m.Account, MaxAccountLen) }
func (m *AccountUsage) Decode(d *Decoder) { m.Account = d.StringMax(MaxAccountLen) }

// AccountUsageReply answers AccountUsage. Quota 0 means unlimited;
// HasPassword says whether a password is set.
type AccountUsageReply struct {
	Size        int64
	Messages    int64
	Quota       int64
	Mailboxes   uint32
	HasPassword bool
}

func (*AccountUsageReply) Type() MsgType { return TypeAccountUsageReply }
func (*AccountUsageReply) FDs() int      { return 0 }
func (m *AccountUsageReply) Encode(e *Encoder) {
	e.Int64(m.Size)
	e.Int64(m.Messages)
	e.Int64(m.Quota)
	e.Uint32(m.Mailboxes)
	e.Bool(m.HasPassword)
}
func (m *AccountUsageReply) Decode(d *Decoder) {
	m.Size = d.Int64()
	m.Messages = d.Int64()
	m.Quota = d.Int64()
	m.Mailboxes = d.Uint32()
	m.HasPassword = d.Bool()
}

// MailboxList asks for the names of Account's mailboxes from index Start on.
type MailboxList struct {
	Account string
	Start   uint32
}

func (*MailboxList) Type() MsgType { return TypeMailboxList }
func (*MailboxList) FDs() int      { return 0 }
func (m *MailboxList) Encode(e *Encoder) {
	e.StringMax(m.Account, MaxAccountLen)
	e.Uint32(m.Start)
}
func (m *MailboxList) Decode(d *Decoder) {
	m.Account = d.StringMax(MaxAccountLen)
	m.Start = d.Uint32()
}

// MailboxNames answers MailboxList with as many names as fit one frame;
// Total is the number of mailboxes in all.
type MailboxNames struct {
	Total uint32
	Names []string
}

func (*MailboxNames) Type() MsgType { return TypeMailboxNames }
func (*MailboxNames) FDs() int      { return 0 }
func (m *MailboxNames) Encode(e *Encoder) {
	e.Uint32(m.Total)
	e.CountMax(len(m.Names), MaxMailboxList)
	for _, n := range m.Names {
		e.StringMax(n, MaxMailboxLen)
	}
}
func (m *MailboxNames) Decode(d *Decoder) {
	m.Total = d.Uint32()
	n := d.Count(MaxMailboxList)
	for i := 0; i < n && d.Err() == nil; i++ {
		m.Names = append(m.Names, d.StringMax(MaxMailboxLen))
	}
}

// ImportBegin starts import Job into Mailbox of Account: messages go to a
// hidden staging mailbox until ImportEnd. Answered with Ack.
type ImportBegin struct {
	Job     uint64
	Account string
	Mailbox string
}

func (*ImportBegin) Type() MsgType { return TypeImportBegin }
func (*ImportBegin) FDs() int      { return 0 }
func (m *ImportBegin) Encode(e *Encoder) {
	e.Uint64(m.Job)
	e.StringMax(m.Account, MaxAccountLen)
	e.StringMax(m.Mailbox, MaxMailboxLen)
}
func (m *ImportBegin) Decode(d *Decoder) {
	m.Job = d.Uint64()
	m.Account = d.StringMax(MaxAccountLen)
	m.Mailbox = d.StringMax(MaxMailboxLen)
}

// ImportMbox hands store an mbox file, its one fd, for import Job. Store
// reads it to the end (a regular file only) and answers Ack; skipped
// messages are reported in the ImportResult.
type ImportMbox struct {
	Job uint64
}

func (*ImportMbox) Type() MsgType       { return TypeImportMbox }
func (*ImportMbox) FDs() int            { return 1 }
func (m *ImportMbox) Encode(e *Encoder) { e.Uint64(m.Job) }
func (m *ImportMbox) Decode(d *Decoder) { m.Job = d.Uint64() }

// ImportFile describes one message file of an ImportFiles request: its
// flags (MessageFlag bits), keywords and received time (Unix seconds, 0 for
// now). Name is where it came from, for problem reports.
type ImportFile struct {
	Name     string
	Flags    uint8
	Keywords []string
	Received int64
}

// Message flag bits used in IPC messages (RFC 9051 §2.3.2 system flags).
const (
	FlagSeen     uint8 = 1 << 0
	FlagAnswered uint8 = 1 << 1
	FlagFlagged  uint8 = 1 << 2
	FlagDeleted  uint8 = 1 << 3
	FlagDraft    uint8 = 1 << 4
)

// ImportFiles hands store up to MaxImportFiles message files for import
// Job, one fd each in the order of Files. Answered with Ack.
type ImportFiles struct {
	Job   uint64
	Files []ImportFile
}

func (*ImportFiles) Type() MsgType { return TypeImportFiles }
func (m *ImportFiles) FDs() int    { return len(m.Files) }
func (m *ImportFiles) Encode(e *Encoder) {
	e.Uint64(m.Job)
	e.CountMax(len(m.Files), MaxImportFiles)
	for _, f := range m.Files {
		e.StringMax(f.Name, MaxTextLen)
		e.Uint8(f.Flags)
		encodeKeywords(e, f.Keywords)
		e.Int64(f.Received)
	}
}
func (m *ImportFiles) Decode(d *Decoder) {
	m.Job = d.Uint64()
	n := d.Count(MaxImportFiles)
	for i := 0; i < n && d.Err() == nil; i++ {
		var f ImportFile
		f.Name = d.StringMax(MaxTextLen)
		f.Flags = d.Uint8()
		f.Keywords = decodeKeywords(d)
		f.Received = d.Int64()
		m.Files = append(m.Files, f)
	}
}

func encodeKeywords(e *Encoder, kw []string) {
	e.CountMax(len(kw), MaxKeywords)
	for _, k := range kw {
		e.StringMax(k, MaxNameLen)
	}
}

func decodeKeywords(d *Decoder) []string {
	n := d.Count(MaxKeywords)
	var l []string
	for i := 0; i < n && d.Err() == nil; i++ {
		l = append(l, d.StringMax(MaxNameLen))
	}
	return l
}

// ImportEnd publishes import Job in one step, or drops it when Abort is
// set. Answered with ImportResult.
type ImportEnd struct {
	Job   uint64
	Abort bool
}

func (*ImportEnd) Type() MsgType { return TypeImportEnd }
func (*ImportEnd) FDs() int      { return 0 }
func (m *ImportEnd) Encode(e *Encoder) {
	e.Uint64(m.Job)
	e.Bool(m.Abort)
}
func (m *ImportEnd) Decode(d *Decoder) {
	m.Job = d.Uint64()
	m.Abort = d.Bool()
}

// ImportProblem is a skipped or damaged message: Where is a byte offset
// ("offset 1234") or a file name.
type ImportProblem struct {
	Where  string
	Reason string
}

// ImportResult answers ImportEnd: the count of messages now visible, the
// count skipped, the first MaxProblems problems and how many more there were.
type ImportResult struct {
	Imported     uint64
	Skipped      uint64
	Problems     []ImportProblem
	MoreProblems uint64
}

func (*ImportResult) Type() MsgType { return TypeImportResult }
func (*ImportResult) FDs() int      { return 0 }
func (m *ImportResult) Encode(e *Encoder) {
	e.Uint64(m.Imported)
	e.Uint64(m.Skipped)
	e.CountMax(len(m.Problems), MaxProblems)
	for _, p := range m.Problems {
		e.StringMax(p.Where, MaxTextLen)
		e.StringMax(p.Reason, MaxTextLen)
	}
	e.Uint64(m.MoreProblems)
}
func (m *ImportResult) Decode(d *Decoder) {
	m.Imported = d.Uint64()
	m.Skipped = d.Uint64()
	n := d.Count(MaxProblems)
	for i := 0; i < n && d.Err() == nil; i++ {
		m.Problems = append(m.Problems, ImportProblem{d.StringMax(MaxTextLen), d.StringMax(MaxTextLen)})
	}
	m.MoreProblems = d.Uint64()
}

// Export writes Mailbox of Account as an mbox stream (with Status,
// X-Status and X-Keywords fields carrying flags and keywords, and the
// received time on the From_ line) into its one fd, a pipe's write end.
// Answered with ExportResult once the stream is complete.
type Export struct {
	Account string
	Mailbox string
}

func (*Export) Type() MsgType { return TypeExport }
func (*Export) FDs() int      { return 1 }
func (m *Export) Encode(e *Encoder) {
	e.StringMax(m.Account, MaxAccountLen)
	e.StringMax(m.Mailbox, MaxMailboxLen)
}
func (m *Export) Decode(d *Decoder) {
	m.Account = d.StringMax(MaxAccountLen)
	m.Mailbox = d.StringMax(MaxMailboxLen)
}

// ExportResult answers Export.
type ExportResult struct {
	Messages uint64
	Bytes    uint64
}

func (*ExportResult) Type() MsgType { return TypeExportResult }
func (*ExportResult) FDs() int      { return 0 }
func (m *ExportResult) Encode(e *Encoder) {
	e.Uint64(m.Messages)
	e.Uint64(m.Bytes)
}
func (m *ExportResult) Decode(d *Decoder) {
	m.Messages = d.Uint64()
	m.Bytes = d.Uint64()
}

// Backup asks store to write its part of a backup into the directory Path,
// created by master (owned by store, mode 0700, empty). The one fd is that
// directory opened by master: store checks that Path still is the same
// directory before writing into it.
type Backup struct {
	Path string
}

func (*Backup) Type() MsgType       { return TypeBackup }
func (*Backup) FDs() int            { return 1 }
func (m *Backup) Encode(e *Encoder) { e.StringMax(m.Path, MaxTextLen) }
func (m *Backup) Decode(d *Decoder) { m.Path = d.StringMax(MaxTextLen) }

// BackupResult answers Backup.
type BackupResult struct {
	Accounts uint32
	Messages uint64
	Bytes    uint64
}

func (*BackupResult) Type() MsgType { return TypeBackupResult }
func (*BackupResult) FDs() int      { return 0 }
func (m *BackupResult) Encode(e *Encoder) {
	e.Uint32(m.Accounts)
	e.Uint64(m.Messages)
	e.Uint64(m.Bytes)
}
func (m *BackupResult) Decode(d *Decoder) {
	m.Accounts = d.Uint32()
	m.Messages = d.Uint64()
	m.Bytes = d.Uint64()
}

// LocalDeliver delivers the message file that is its one fd to the account
// of Address (moxctl deliver). Answered with LocalDelivered.
type LocalDeliver struct {
	Address string
}

func (*LocalDeliver) Type() MsgType       { return TypeLocalDeliver }
func (*LocalDeliver) FDs() int            { return 1 }
func (m *LocalDeliver) Encode(e *Encoder) { e.StringMax(m.Address, MaxAddressLen) }
func (m *LocalDeliver) Decode(d *Decoder) { m.Address = d.StringMax(MaxAddressLen) }

// LocalDelivered answers LocalDeliver with where the message went.
type LocalDelivered struct {
	Account string
	Mailbox string
	UID     uint32
}

func (*LocalDelivered) Type() MsgType { return TypeLocalDelivered }
func (*LocalDelivered) FDs() int      { return 0 }
func (m *LocalDelivered) Encode(e *Encoder) {
	e.StringMax(m.Account, MaxAccountLen)
	e.StringMax(m.Mailbox, MaxMailboxLen)
	e.Uint32(m.UID)
}
func (m *LocalDelivered) Decode(d *Decoder) {
	m.Account = d.StringMax(MaxAccountLen)
	m.Mailbox = d.StringMax(MaxMailboxLen)
	m.UID = d.Uint32()
}
