// Package imap is the syntax layer of the moxd IMAP server (IMAP4rev2, RFC
// 9051, and IMAP4rev1, RFC 3501, with the extensions moxd announces): it
// parses client commands into typed values and formats the parts of
// responses that are easy to get wrong (strings, mailbox names, response
// codes, sequence sets, dates). It has no sessions, storage or network;
// internal/imapd wires it to a connection.
//
// We write our own because the Go IMAP libraries either buffer APPEND data
// in memory, lack a hook for refusing synchronizing literals before the
// data is sent, or bring a whole client/server framework with them.
//
// NOTIFY (RFC 5465) is recognized but not parsed: ReadCommand returns a
// SyntaxError saying it is not supported, so it must not be announced.
package imap

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"
)

// Command is one parsed client command.
type Command struct {
	Tag  string
	Name string // upper case, without the "UID " prefix
	UID  bool   // "UID FETCH" etc.

	// Args holds the typed arguments: nil for commands without any
	// (CAPABILITY, NOOP, LOGOUT, STARTTLS, NAMESPACE, IDLE, CHECK, CLOSE,
	// UNSELECT, EXPUNGE), else one of the *...Args types, as documented
	// on each.
	Args any
}

// AuthenticateArgs is for AUTHENTICATE (RFC 9051 §6.2.2, SASL-IR RFC 4959).
type AuthenticateArgs struct {
	Mechanism  string // upper case
	Initial    []byte // decoded initial response
	HasInitial bool   // an initial response was given; "=" is an empty one
}

// LoginArgs is for LOGIN.
type LoginArgs struct{ Username, Password string }

// EnableArgs is for ENABLE (RFC 5161).
type EnableArgs struct{ Caps []string } // upper case

// SelectArgs is for SELECT and EXAMINE (CONDSTORE and QRESYNC, RFC 7162 §3).
type SelectArgs struct {
	Mailbox   string
	CondStore bool
	QResync   *QResyncParams
}

// QResyncParams are the QRESYNC select parameters (RFC 7162 §3.2.5).
type QResyncParams struct {
	UIDValidity uint32
	ModSeq      uint64
	KnownUIDs   *NumSet // optional
	// Optional seq-match-data: message sequence numbers and the
	// corresponding UIDs.
	KnownSeqs, KnownSeqUIDs *NumSet
}

// CreateArgs is for CREATE, with CREATE-SPECIAL-USE (RFC 6154 §3).
type CreateArgs struct {
	Mailbox    string
	SpecialUse []string // "\Sent" etc., as given
}

// MailboxArgs is for DELETE, SUBSCRIBE, UNSUBSCRIBE and GETQUOTAROOT.
type MailboxArgs struct{ Mailbox string }

// RenameArgs is for RENAME.
type RenameArgs struct{ From, To string }

// ListArgs is for LIST (with LIST-EXTENDED, RFC 5258; LIST-STATUS, RFC 5819;
// SPECIAL-USE, RFC 6154) and LSUB. Reference and patterns are decoded like
// mailbox names.
type ListArgs struct {
	Selection    []string // upper case: SUBSCRIBED REMOTE RECURSIVEMATCH SPECIAL-USE ...
	Reference    string
	Patterns     []string
	Return       []string // upper case: SUBSCRIBED CHILDREN SPECIAL-USE STATUS ...
	ReturnStatus []string // the STATUS items of RETURN (STATUS (...))
}

// StatusArgs is for STATUS.
type StatusArgs struct {
	Mailbox string
	Items   []string // upper case
}

// AppendArgs is for APPEND, with MULTIAPPEND (RFC 3502).
type AppendArgs struct {
	Mailbox  string
	Messages []AppendMessage
}

// AppendMessage is one message of an APPEND.
type AppendMessage struct {
	Flags  []string
	Date   time.Time // zero if not given
	Size   int64
	Binary bool   // sent as literal8 (RFC 3516 §4.4)
	Data   []byte // only when Reader.Literal is nil
}

// ExpungeArgs is for UID EXPUNGE (RFC 4315 §2.1).
type ExpungeArgs struct{ UIDs NumSet }

// CopyArgs is for COPY, MOVE and their UID forms.
type CopyArgs struct {
	Set     NumSet
	Mailbox string
}

// StoreArgs is for STORE and UID STORE.
type StoreArgs struct {
	Set               NumSet
	UnchangedSince    uint64 // RFC 7162 §3.1.3
	HasUnchangedSince bool
	Op                StoreOp
	Silent            bool
	Flags             []string
}

// StoreOp is how STORE changes flags.
type StoreOp int

const (
	StoreReplace StoreOp = iota // FLAGS
	StoreAdd                    // +FLAGS
	StoreRemove                 // -FLAGS
)

// SetQuotaArgs is for SETQUOTA (RFC 9208 §4.1.3): resource names in upper
// case with their limits.
type SetQuotaArgs struct {
	Root   string
	Limits []QuotaLimit
}

// QuotaLimit is one "resource limit" pair of SETQUOTA.
type QuotaLimit struct {
	Resource string
	Limit    uint64
}

// setQuota parses " root (resource limit ...)" (RFC 9208 §4.1.3, an empty
// list removes the limits).
func (p *parser) setQuota() (any, error) {
	a := &SetQuotaArgs{}
	var err error
	if err = p.sp(); err != nil {
		return nil, err
	}
	if a.Root, err = p.astring("quota root"); err != nil {
		return nil, err
	}
	if err = p.sp(); err != nil {
		return nil, err
	}
	err = p.list("SETQUOTA limits", true, func() error {
		var l QuotaLimit
		var err error
		if l.Resource, err = p.upperAtom("quota resource"); err != nil {
			return err
		}
		if err = p.sp(); err != nil {
			return err
		}
		if l.Limit, err = p.number64("quota limit"); err != nil {
			return err
		}
		a.Limits = append(a.Limits, l)
		return nil
	})
	return a, err
}

// GetQuotaArgs is for GETQUOTA (RFC 9208 §4.2).
type GetQuotaArgs struct{ Root string }

// IDArgs is for ID (RFC 2971); Nil for "ID NIL".
type IDArgs struct {
	Nil    bool
	Fields []IDField
}

// IDField is one ID parameter; Value nil for NIL.
type IDField struct {
	Key   string
	Value *string
}

// CompressArgs is for COMPRESS (RFC 4978).
type CompressArgs struct{ Mechanism string } // upper case

// ReadCommand reads and parses one command. Errors:
//   - *SyntaxError and *RefusedError: answer with Tag and read on;
//   - *ByeError: answer "* BYE" and close;
//   - anything else is an I/O error from the connection.
func ReadCommand(r *Reader) (*Command, error) {
	p := &parser{r: r}
	line, err := r.readLine(r.MaxLine)
	if err != nil {
		return nil, err
	}
	p.line, p.budget = line, r.MaxLine-len(line)
	cmd, err := p.command()
	if err == nil && !p.atEnd() {
		err = p.errf("unexpected %s after %s command", p.found(), cmd.Name)
	}
	if err != nil {
		var se *SyntaxError
		var re *RefusedError
		if errors.As(err, &se) || errors.As(err, &re) {
			if derr := p.discard(); derr != nil {
				return nil, derr
			}
		}
		return nil, err
	}
	return cmd, nil
}

// command parses tag SP command.
func (p *parser) command() (*Command, error) {
	// RFC 9051 §9: tag = 1*<any ASTRING-CHAR except "+">.
	p.tag = p.span(func(c byte) bool { return isAStringChar(c) && c != '+' })
	if p.tag == "" {
		return nil, p.errf("expected a tag %s", p.found())
	}
	if err := p.sp(); err != nil {
		return nil, err
	}
	cmd := &Command{Tag: p.tag}
	name, err := p.upperAtom("command name")
	if err != nil {
		return nil, err
	}
	if name == "UID" {
		if err := p.sp(); err != nil {
			return nil, err
		}
		cmd.UID = true
		if name, err = p.upperAtom("command name after UID"); err != nil {
			return nil, err
		}
		switch name {
		case "FETCH", "STORE", "COPY", "MOVE", "SEARCH", "SORT", "THREAD", "EXPUNGE":
		default:
			return nil, p.errf("UID %s is not a command", name)
		}
	}
	cmd.Name = name
	cmd.Args, err = p.args(cmd)
	return cmd, err
}

// args parses the arguments of cmd, the table from command to syntax.
func (p *parser) args(cmd *Command) (any, error) {
	switch cmd.Name {
	case "CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "NAMESPACE", "IDLE", "CHECK", "CLOSE", "UNSELECT":
		return nil, nil
	case "EXPUNGE":
		if !cmd.UID {
			return nil, nil
		}
		if err := p.sp(); err != nil {
			return nil, err
		}
		set, err := p.numSet("UIDs")
		return &ExpungeArgs{UIDs: set}, err
	case "AUTHENTICATE":
		return p.authenticate()
	case "LOGIN":
		a := &LoginArgs{}
		var err error
		if err = p.sp(); err == nil {
			if a.Username, err = p.astring("user name"); err == nil {
				if err = p.sp(); err == nil {
					a.Password, err = p.astring("password")
				}
			}
		}
		return a, err
	case "ENABLE":
		a := &EnableArgs{}
		for len(a.Caps) == 0 || p.peek() == ' ' {
			if err := p.sp(); err != nil {
				return nil, err
			}
			c, err := p.upperAtom("capability")
			if err != nil {
				return nil, err
			}
			a.Caps = append(a.Caps, c)
		}
		return a, nil
	case "SELECT", "EXAMINE":
		return p.selectArgs()
	case "CREATE":
		return p.create()
	case "DELETE", "SUBSCRIBE", "UNSUBSCRIBE", "GETQUOTAROOT":
		if err := p.sp(); err != nil {
			return nil, err
		}
		name, err := p.mailbox()
		return &MailboxArgs{Mailbox: name}, err
	case "RENAME":
		a := &RenameArgs{}
		var err error
		if err = p.sp(); err == nil {
			if a.From, err = p.mailbox(); err == nil {
				if err = p.sp(); err == nil {
					a.To, err = p.mailbox()
				}
			}
		}
		return a, err
	case "LIST", "LSUB":
		return p.listArgs(cmd.Name == "LIST")
	case "STATUS":
		return p.status()
	case "APPEND":
		return p.appendArgs()
	case "SEARCH":
		return p.search()
	case "FETCH":
		return p.fetch()
	case "STORE":
		return p.store()
	case "COPY", "MOVE":
		a := &CopyArgs{}
		var err error
		if err = p.sp(); err == nil {
			if a.Set, err = p.numSet("message set"); err == nil {
				if err = p.sp(); err == nil {
					a.Mailbox, err = p.mailbox()
				}
			}
		}
		return a, err
	case "SORT":
		return p.sort()
	case "THREAD":
		return p.thread()
	case "GETQUOTA":
		if err := p.sp(); err != nil {
			return nil, err
		}
		root, err := p.astring("quota root")
		return &GetQuotaArgs{Root: root}, err
	case "SETQUOTA":
		return p.setQuota()
	case "ID":
		return p.id()
	case "COMPRESS":
		if err := p.sp(); err != nil {
			return nil, err
		}
		mech, err := p.upperAtom("compression mechanism")
		return &CompressArgs{Mechanism: mech}, err
	case "NOTIFY":
		return nil, p.errf("NOTIFY is not supported")
	}
	return nil, p.errf("unknown command %s", cmd.Name)
}

// mailbox reads a mailbox name (astring), decoded from modified UTF-7 unless
// UTF8=ACCEPT is enabled.
// spMailbox reads a space and a mailbox name.
func (p *parser) spMailbox() (string, error) {
	if err := p.sp(); err != nil {
		return "", err
	}
	return p.mailbox()
}

func (p *parser) mailbox() (string, error) {
	s, err := p.astring("mailbox name")
	if err != nil {
		return "", err
	}
	return p.mailboxName(s)
}

func (p *parser) mailboxName(s string) (string, error) {
	if p.r.UTF8 {
		if !utf8.ValidString(s) {
			return "", p.errf("mailbox name is not valid UTF-8")
		}
		return s, nil
	}
	name, err := DecodeMailboxUTF7(s)
	if err != nil {
		return "", p.errf("mailbox name %q: %v", s, err)
	}
	return name, nil
}

// IsInbox reports whether name is INBOX, which is case-insensitive (RFC 9051
// §5.1).
func IsInbox(name string) bool { return len(name) == 5 && asciiUpper(name) == "INBOX" }

func (p *parser) authenticate() (any, error) {
	a := &AuthenticateArgs{}
	if err := p.sp(); err != nil {
		return nil, err
	}
	var err error
	if a.Mechanism, err = p.upperAtom("SASL mechanism"); err != nil {
		return nil, err
	}
	if !p.take(' ') {
		return a, nil
	}
	// RFC 4959 §7: initial-response = base64 / "=".
	a.HasInitial = true
	if p.take('=') {
		a.Initial = []byte{}
		return a, nil
	}
	s := p.span(func(c byte) bool {
		return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '='
	})
	if a.Initial, err = base64.StdEncoding.DecodeString(s); err != nil || s == "" {
		return nil, p.errf("SASL initial response is not base64 (use \"=\" for an empty one)")
	}
	return a, nil
}

func (p *parser) selectArgs() (any, error) {
	a := &SelectArgs{}
	var err error
	if a.Mailbox, err = p.spMailbox(); err != nil {
		return nil, err
	}
	if !p.take(' ') {
		return a, nil
	}
	err = p.list("select parameters", false, func() error {
		name, err := p.upperAtom("select parameter")
		if err != nil {
			return err
		}
		switch name {
		case "CONDSTORE":
			a.CondStore = true
			return nil
		case "QRESYNC":
			if a.QResync != nil {
				return p.errf("QRESYNC given twice")
			}
			if err := p.sp(); err != nil {
				return err
			}
			a.QResync, err = p.qresync()
			return err
		}
		return p.errf("unknown select parameter %s", name)
	})
	return a, err
}

// qresync parses the QRESYNC parameter list (RFC 7162 §7).
func (p *parser) qresync() (*QResyncParams, error) {
	q := &QResyncParams{}
	if !p.take('(') {
		return nil, p.errf("expected ( after QRESYNC %s", p.found())
	}
	var err error
	if q.UIDValidity, err = p.nzNumber("QRESYNC uidvalidity"); err != nil {
		return nil, err
	}
	if err := p.sp(); err != nil {
		return nil, err
	}
	if q.ModSeq, err = p.number64("QRESYNC mod-sequence"); err != nil {
		return nil, err
	}
	if q.ModSeq == 0 {
		return nil, p.errf("QRESYNC mod-sequence must not be 0")
	}
	if p.take(' ') && p.peek() != '(' {
		set, err := p.numSet("QRESYNC known UIDs")
		if err != nil {
			return nil, err
		}
		q.KnownUIDs = &set
		if !p.take(' ') {
			return q, p.expect(')', ") after QRESYNC parameters")
		}
	}
	if p.take('(') {
		seqs, err := p.numSet("QRESYNC known sequence numbers")
		if err != nil {
			return nil, err
		}
		if err := p.sp(); err != nil {
			return nil, err
		}
		uids, err := p.numSet("QRESYNC known UIDs for sequence numbers")
		if err != nil {
			return nil, err
		}
		q.KnownSeqs, q.KnownSeqUIDs = &seqs, &uids
		if err := p.expect(')', ") after QRESYNC seq-match-data"); err != nil {
			return nil, err
		}
	}
	return q, p.expect(')', ") after QRESYNC parameters")
}

func (p *parser) create() (any, error) {
	a := &CreateArgs{}
	var err error
	if a.Mailbox, err = p.spMailbox(); err != nil {
		return nil, err
	}
	if !p.take(' ') {
		return a, nil
	}
	err = p.list("create parameters", false, func() error {
		name, err := p.upperAtom("create parameter")
		if err != nil {
			return err
		}
		if name != "USE" {
			return p.errf("unknown create parameter %s", name)
		}
		if err := p.sp(); err != nil {
			return err
		}
		return p.list("USE special-use list", false, func() error {
			if !p.take('\\') {
				return p.errf("special-use attribute must start with \\ %s", p.found())
			}
			s, err := p.atom("special-use attribute")
			a.SpecialUse = append(a.SpecialUse, `\`+s)
			return err
		})
	})
	return a, err
}

// listMailbox reads list-mailbox = 1*list-char / string.
func (p *parser) listMailbox() (string, error) {
	var s string
	switch p.peek() {
	case '"', '{', '~':
		var err error
		if s, err = p.str("mailbox pattern"); err != nil {
			return "", err
		}
	default:
		if s = p.span(isListChar); s == "" {
			return "", p.errf("expected mailbox pattern %s", p.found())
		}
	}
	return p.mailboxName(s)
}

func (p *parser) listArgs(extended bool) (any, error) {
	a := &ListArgs{}
	if err := p.sp(); err != nil {
		return nil, err
	}
	// RFC 5258 §6: list-select-opts before the reference.
	if extended && p.peek() == '(' {
		if err := p.list("LIST selection options", true, func() error {
			s, err := p.upperAtom("LIST selection option")
			a.Selection = append(a.Selection, s)
			return err
		}); err != nil {
			return nil, err
		}
		if err := p.sp(); err != nil {
			return nil, err
		}
	}
	var err error
	if a.Reference, err = p.mailbox(); err != nil {
		return nil, err
	}
	if err := p.sp(); err != nil {
		return nil, err
	}
	if extended && p.peek() == '(' {
		err = p.list("mailbox pattern list", false, func() error {
			s, err := p.listMailbox()
			a.Patterns = append(a.Patterns, s)
			return err
		})
	} else {
		var s string
		s, err = p.listMailbox()
		a.Patterns = append(a.Patterns, s)
	}
	if err != nil {
		return nil, err
	}
	if extended && p.take(' ') {
		if !p.takeFold("RETURN ") {
			return nil, p.errf("expected RETURN %s", p.found())
		}
		err = p.list("LIST return options", true, func() error {
			s, err := p.upperAtom("LIST return option")
			if err != nil {
				return err
			}
			a.Return = append(a.Return, s)
			if s == "STATUS" {
				if err := p.sp(); err != nil {
					return err
				}
				a.ReturnStatus, err = p.statusItems()
			}
			return err
		})
	}
	return a, err
}

var statusItemNames = map[string]bool{
	"MESSAGES": true, "UIDNEXT": true, "UIDVALIDITY": true, "UNSEEN": true, "DELETED": true,
	"SIZE": true, "HIGHESTMODSEQ": true, "RECENT": true, "APPENDLIMIT": true,
	"DELETED-STORAGE": true, // RFC 9208 §4.1.4
}

func (p *parser) statusItems() ([]string, error) {
	var items []string
	err := p.list("STATUS items", false, func() error {
		s, err := p.upperAtom("STATUS item")
		if err == nil && !statusItemNames[s] {
			err = p.errf("unknown STATUS item %s", s)
		}
		items = append(items, s)
		return err
	})
	return items, err
}

func (p *parser) status() (any, error) {
	a := &StatusArgs{}
	var err error
	if a.Mailbox, err = p.spMailbox(); err != nil {
		return nil, err
	}
	if err := p.sp(); err != nil {
		return nil, err
	}
	a.Items, err = p.statusItems()
	return a, err
}

// flag reads a flag: "\" atom or a keyword atom (RFC 9051 §9 flag).
func (p *parser) flag(allowRecent bool) (string, error) {
	if p.take('\\') {
		if p.take('*') {
			return "", p.errf(`\* is not a flag that can be set`)
		}
		s, err := p.atom("system flag")
		if err == nil && !allowRecent && asciiUpper(s) == "RECENT" {
			err = p.errf(`\Recent cannot be set by clients`)
		}
		return `\` + s, err
	}
	return p.atom("flag")
}

func (p *parser) flagList() ([]string, error) {
	flags := []string{}
	err := p.list("flag list", true, func() error {
		f, err := p.flag(false)
		flags = append(flags, f)
		return err
	})
	return flags, err
}

func (p *parser) appendArgs() (any, error) {
	a := &AppendArgs{}
	var err error
	if a.Mailbox, err = p.spMailbox(); err != nil {
		return nil, err
	}
	for len(a.Messages) == 0 || p.peek() == ' ' {
		if err := p.sp(); err != nil {
			return nil, err
		}
		var m AppendMessage
		if p.peek() == '(' {
			if m.Flags, err = p.flagList(); err != nil {
				return nil, err
			}
			if err := p.sp(); err != nil {
				return nil, err
			}
		}
		if p.peek() == '"' {
			s, err := p.quoted("date-time")
			if err != nil {
				return nil, err
			}
			if m.Date, err = ParseDateTime(s); err != nil {
				return nil, p.errf("APPEND: %v", err)
			}
			if err := p.sp(); err != nil {
				return nil, err
			}
		}
		if err := p.appendData(&m); err != nil {
			return nil, err
		}
		a.Messages = append(a.Messages, m)
	}
	return a, nil
}

// appendData reads a message literal, streaming it to Reader.Literal.
func (p *parser) appendData(m *AppendMessage) error {
	if p.r.Literal == nil {
		if p.peek() == '~' {
			m.Binary = true
		}
		data, err := p.literal(true)
		m.Data, m.Size = data, int64(len(data))
		return err
	}
	n, sync, lit8, err := p.literalHeader()
	if err != nil {
		return err
	}
	m.Size, m.Binary = n, lit8
	if p.r.MaxAppend > 0 && n > p.r.MaxAppend {
		if !sync {
			return &ByeError{Tag: p.tag, Msg: fmt.Sprintf("message of %d octets over the limit of %d", n, p.r.MaxAppend)}
		}
		return &RefusedError{Tag: p.tag, Err: ErrLiteralTooBig}
	}
	if err := p.announce(n, sync); err != nil {
		return err
	}
	lr := &countingLimitReader{r: p.r.br, n: n}
	herr := p.r.Literal(n, lr)
	if lr.err != nil {
		return unexpectedEOF(lr.err) // the connection failed under the hook
	}
	if lr.n > 0 {
		if _, err := copyN(lr); err != nil {
			return err
		}
	}
	if err := p.nextLine(); err != nil {
		return err
	}
	if herr != nil {
		return &RefusedError{Tag: p.tag, Err: herr}
	}
	return nil
}

// countingLimitReader yields n octets of r and remembers a read error.
type countingLimitReader struct {
	r   io.Reader
	n   int64
	err error
}

func (l *countingLimitReader) Read(b []byte) (int, error) {
	if l.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > l.n {
		b = b[:l.n]
	}
	k, err := l.r.Read(b)
	l.n -= int64(k)
	if err != nil {
		l.err = err
		if l.n > 0 {
			return k, unexpectedEOF(err)
		}
	}
	return k, nil
}

// copyN discards what is left of l.
func copyN(l *countingLimitReader) (int64, error) {
	buf := make([]byte, 4096)
	var total int64
	for l.n > 0 {
		k, err := l.Read(buf)
		total += int64(k)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func (p *parser) store() (any, error) {
	a := &StoreArgs{}
	if err := p.sp(); err != nil {
		return nil, err
	}
	var err error
	if a.Set, err = p.numSet("message set"); err != nil {
		return nil, err
	}
	if err := p.sp(); err != nil {
		return nil, err
	}
	if p.peek() == '(' {
		if err := p.list("store modifiers", false, func() error {
			name, err := p.upperAtom("store modifier")
			if err != nil {
				return err
			}
			if name != "UNCHANGEDSINCE" {
				return p.errf("unknown store modifier %s", name)
			}
			if err := p.sp(); err != nil {
				return err
			}
			a.HasUnchangedSince = true
			a.UnchangedSince, err = p.number64("UNCHANGEDSINCE mod-sequence")
			return err
		}); err != nil {
			return nil, err
		}
		if err := p.sp(); err != nil {
			return nil, err
		}
	}
	switch {
	case p.take('+'):
		a.Op = StoreAdd
	case p.take('-'):
		a.Op = StoreRemove
	}
	item, err := p.upperAtom("FLAGS or FLAGS.SILENT")
	if err != nil {
		return nil, err
	}
	switch item {
	case "FLAGS":
	case "FLAGS.SILENT":
		a.Silent = true
	default:
		return nil, p.errf("expected FLAGS or FLAGS.SILENT, not %s", item)
	}
	if err := p.sp(); err != nil {
		return nil, err
	}
	if p.peek() == '(' {
		a.Flags, err = p.flagList()
		return a, err
	}
	// RFC 9051 §9 store-att-flags: flags without parentheses.
	for {
		f, err := p.flag(false)
		if err != nil {
			return nil, err
		}
		a.Flags = append(a.Flags, f)
		if !p.take(' ') {
			return a, nil
		}
	}
}

func (p *parser) id() (any, error) {
	a := &IDArgs{}
	if err := p.sp(); err != nil {
		return nil, err
	}
	if p.takeFold("NIL") {
		a.Nil = true
		return a, nil
	}
	err := p.list("ID parameters", false, func() error {
		k, err := p.str("ID field name")
		if err != nil {
			return err
		}
		if err := p.sp(); err != nil {
			return err
		}
		v, err := p.nstring("ID field value")
		a.Fields = append(a.Fields, IDField{Key: k, Value: v})
		return err
	})
	if len(a.Fields) > 30 {
		// RFC 2971 §3.3: at most 30 field-value pairs.
		return nil, p.errf("ID has %d fields, at most 30 allowed", len(a.Fields))
	}
	return a, err
}
