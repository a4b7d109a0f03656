package storeclient

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"moxd/internal/auth"
	"moxd/internal/ipc"
	"moxd/internal/mailproto/message"
)

// Session is a logged-in user's view of their account (imap, web). It is
// safe for concurrent use; a protocol session usually uses it from one
// goroutine.
type Session struct {
	peer    func() (*ipc.Conn, error)
	ID      uint64
	Account string
}

// OpenSession opens a session with the token store issued at login.
func OpenSession(ctx context.Context, peer func() (*ipc.Conn, error), tok auth.Token) (*Session, error) {
	rep, err := call(ctx, peer, "open session", &ipc.SessionOpen{Token: tok})
	if err != nil {
		return nil, err
	}
	m := rep.Msg.(*ipc.SessionInfo)
	return &Session{peer: peer, ID: m.Session, Account: m.Account}, nil
}

// Close ends the session and revokes its token.
func (s *Session) Close() error {
	c, err := s.peer()
	if err != nil {
		return nil // the session ended with the channel
	}
	return c.Notify(&ipc.SessionClose{Session: s.ID})
}

func (s *Session) call(ctx context.Context, op string, m ipc.Message, files ...*os.File) (*ipc.Reply, error) {
	return call(ctx, s.peer, op, m, files...)
}

// Ref names a mailbox of this session by id and UIDVALIDITY.
func (s *Session) Ref(mb ipc.MailboxInfo) ipc.MailboxRef {
	return ipc.MailboxRef{Session: s.ID, Mailbox: mb.ID, UIDValidity: mb.UIDValidity}
}

// Mailbox returns a mailbox with its summary (SELECT, STATUS).
func (s *Session) Mailbox(ctx context.Context, name string) (ipc.MailboxInfo, error) {
	rep, err := s.call(ctx, "mailbox", &ipc.MailboxGet{Session: s.ID, Name: name})
	if err != nil {
		return ipc.MailboxInfo{}, err
	}
	return rep.Msg.(*ipc.MailboxReply).Mailbox, nil
}

// Mailboxes returns all mailboxes, or with subscriptions set the
// subscribed names.
func (s *Session) Mailboxes(ctx context.Context, subscriptions bool) ([]ipc.MailboxInfo, error) {
	var l []ipc.MailboxInfo
	for {
		rep, err := s.call(ctx, "list mailboxes", &ipc.MailboxPageReq{Session: s.ID, Start: uint32(len(l)), Subscriptions: subscriptions})
		if err != nil {
			return nil, err
		}
		page := rep.Msg.(*ipc.MailboxPage)
		l = append(l, page.Mailboxes...)
		if len(page.Mailboxes) == 0 || uint32(len(l)) >= page.Total {
			return l, nil
		}
	}
}

// ChangeMailbox creates, deletes, renames, (un)subscribes a mailbox or
// sets its special use (op is one of ipc.Mailbox*).
func (s *Session) ChangeMailbox(ctx context.Context, op uint8, name, newName string, specialUse uint8) (ipc.MailboxInfo, error) {
	rep, err := s.call(ctx, "change mailbox", &ipc.MailboxChange{Session: s.ID, Op: op, Name: name, NewName: newName, SpecialUse: specialUse})
	if err != nil {
		return ipc.MailboxInfo{}, err
	}
	return rep.Msg.(*ipc.MailboxReply).Mailbox, nil
}

// Messages calls fn for each page of messages with UID >= from, in UID
// order, until fn returns false or there are no more.
func (s *Session) Messages(ctx context.Context, ref ipc.MailboxRef, from uint32, fn func(keywords []string, msgs []ipc.MessageMeta) bool) error {
	for {
		rep, err := s.call(ctx, "list messages", &ipc.MessagesReq{Ref: ref, FromUID: from, Max: ipc.MaxMetaBatch})
		if err != nil {
			return err
		}
		b := rep.Msg.(*ipc.MessageBatch)
		if len(b.Messages) > 0 && !fn(b.Keywords, b.Messages) {
			return nil
		}
		if b.Next == 0 {
			return nil
		}
		from = b.Next
	}
}

// Message is an opened message: File (read-only, nil when only the
// structure was asked for) holds FileSize bytes, served after Prefix.
type Message struct {
	File     *os.File
	FileSize int64
	Prefix   []byte
	// Part is the MIME structure with offsets into the file (add
	// len(Prefix) for offsets into the served message).
	Part *message.Part
}

// Open returns message uid's file and structure. The caller closes File.
func (s *Session) Open(ctx context.Context, ref ipc.MailboxRef, uid uint32, withFile bool) (*Message, error) {
	var tree []byte
	var msg Message
	for {
		rep, err := s.call(ctx, "open message", &ipc.MessageOpen{Ref: ref, UID: uid, NoFile: !withFile || msg.File != nil, DetailOffset: uint32(len(tree))})
		if err != nil {
			if msg.File != nil {
				msg.File.Close()
			}
			return nil, err
		}
		m := rep.Msg.(*ipc.MessageFile)
		if len(rep.Files) == 1 {
			msg.File = rep.Files[0]
			msg.FileSize = m.FileSize
		}
		msg.Prefix = m.Prefix
		tree = append(tree, m.Detail...)
		if len(tree) >= int(m.DetailSize) || len(m.Detail) == 0 {
			break
		}
	}
	p, err := message.UnmarshalPart(tree)
	if err != nil {
		if msg.File != nil {
			msg.File.Close()
		}
		return nil, fmt.Errorf("message structure from store: %w", err)
	}
	msg.Part = p
	return &msg, nil
}

// Store changes flags and keywords (mode ipc.StoreSet, StoreAdd or
// StoreRemove); see ipc.FlagsStore.
func (s *Session) Store(ctx context.Context, ref ipc.MailboxRef, uids []ipc.UIDRange, mode, flags uint8, keywords []string, unchangedSince uint64) (*ipc.FlagsStored, error) {
	rep, err := s.call(ctx, "store flags", &ipc.FlagsStore{Ref: ref, UIDs: uids, Mode: mode, Flags: flags, Keywords: keywords, UnchangedSince: unchangedSince})
	if err != nil {
		return nil, err
	}
	return rep.Msg.(*ipc.FlagsStored), nil
}

// Copy copies (move set: moves) messages to the mailbox dest.
func (s *Session) Copy(ctx context.Context, ref ipc.MailboxRef, uids []ipc.UIDRange, dest string, move bool) (*ipc.CopyResult, error) {
	rep, err := s.call(ctx, "copy messages", &ipc.CopyMessages{Ref: ref, UIDs: uids, Dest: dest, Move: move})
	if err != nil {
		return nil, err
	}
	return rep.Msg.(*ipc.CopyResult), nil
}

// Expunge removes \Deleted messages among uids (all when uids is empty).
func (s *Session) Expunge(ctx context.Context, ref ipc.MailboxRef, uids []ipc.UIDRange) (*ipc.Expunged, error) {
	rep, err := s.call(ctx, "expunge", &ipc.Expunge{Ref: ref, UIDs: uids})
	if err != nil {
		return nil, err
	}
	return rep.Msg.(*ipc.Expunged), nil
}

// AppendMessage is one message of AppendAll: Size bytes of the file.
type AppendMessage struct {
	Size     int64
	Flags    uint8 // ipc.Flag*
	Keywords []string
	Received time.Time // zero: now
}

// Errors of AppendAll besides those of every call.
var (
	// ErrTooLarge: a message is over store's size limit (IMAP [TOOBIG]).
	ErrTooLarge = errors.New("message larger than the store's limit")
	// ErrTooMany: the messages, with their flags, do not fit one request
	// (IMAP [LIMIT]).
	ErrTooMany = errors.New("too many messages for one append")
)

// AppendAll stores the messages in f (a regular file, holding them back
// to back from offset on) in mailbox name, all or none (IMAP APPEND and
// MULTIAPPEND). The result has the new UIDs in the order of msgs.
func (s *Session) AppendAll(ctx context.Context, name string, f *os.File, offset int64, msgs []AppendMessage) (*ipc.AppendedMessages, error) {
	m := &ipc.AppendMessages{Session: s.ID, Name: name, Offset: offset}
	index := map[string]uint16{}
	for _, a := range msgs {
		e := ipc.AppendEntry{Size: a.Size, Flags: a.Flags}
		if !a.Received.IsZero() {
			e.Received = a.Received.Unix()
		}
		for _, k := range a.Keywords {
			i, ok := index[k]
			if !ok {
				i = uint16(len(m.Keywords))
				index[k] = i
				m.Keywords = append(m.Keywords, k)
			}
			e.Keywords = append(e.Keywords, i)
		}
		m.Messages = append(m.Messages, e)
	}
	if len(msgs) > ipc.MaxAppendMessages || len(m.Keywords) > ipc.MaxKeywordTable {
		return nil, fmt.Errorf("store append: %w: %d messages, %d keywords", ErrTooMany, len(msgs), len(m.Keywords))
	}
	if _, err := ipc.PayloadSize(m); err != nil {
		return nil, fmt.Errorf("store append: %w: %v", ErrTooMany, err)
	}
	c, err := s.peer()
	if err != nil {
		return nil, fmt.Errorf("store append: %w: %v", ErrUnavailable, err)
	}
	rep, err := c.Call(ctx, m, f)
	if err != nil {
		var re *ipc.RemoteError
		if errors.As(err, &re) && re.Code == ipc.CodeLimit {
			return nil, fmt.Errorf("store append: %w (%s)", ErrTooLarge, re.Message)
		}
		return nil, mapStoreError("append", err)
	}
	return rep.Msg.(*ipc.AppendedMessages), nil
}

// Quota returns the account's usage and quota (IMAP QUOTA).
func (s *Session) Quota(ctx context.Context) (*ipc.QuotaInfo, error) {
	rep, err := s.call(ctx, "quota", &ipc.QuotaGet{Session: s.ID})
	if err != nil {
		return nil, err
	}
	return rep.Msg.(*ipc.QuotaInfo), nil
}

// Changes calls fn with each page of what changed after modseq since
// (RFC 7162 CHANGEDSINCE, QRESYNC), until done or fn returns false. It
// returns the mailbox's highest modseq.
func (s *Session) Changes(ctx context.Context, ref ipc.MailboxRef, since uint64, fn func(*ipc.ChangesReply) bool) (uint64, error) {
	req := &ipc.ChangesReq{Ref: ref, Since: since, Max: ipc.MaxMetaBatch}
	for {
		rep, err := s.call(ctx, "changes", req)
		if err != nil {
			return 0, err
		}
		r := rep.Msg.(*ipc.ChangesReply)
		if !fn(r) || !r.More {
			return r.HighestModSeq, nil
		}
		if r.LastModSeq < req.AfterModSeq || (r.LastModSeq == req.AfterModSeq && r.LastUID <= req.AfterUID) {
			return 0, fmt.Errorf("store changes: %w: page did not advance", ErrUnavailable)
		}
		req.AfterModSeq, req.AfterUID = r.LastModSeq, r.LastUID
	}
}

// Search returns the UIDs matching key, as ranges.
func (s *Session) Search(ctx context.Context, ref ipc.MailboxRef, key ipc.SearchNode) ([]ipc.UIDRange, error) {
	var l []ipc.UIDRange
	from := uint32(1)
	for {
		rep, err := s.call(ctx, "search", &ipc.Search{Ref: ref, FromUID: from, Key: key})
		if err != nil {
			return nil, err
		}
		r := rep.Msg.(*ipc.SearchResult)
		l = append(l, r.UIDs...)
		if r.Next == 0 || r.Next <= from {
			return l, nil
		}
		from = r.Next
	}
}
