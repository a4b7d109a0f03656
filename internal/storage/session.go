package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"moxd/internal/auth"
	"moxd/internal/ipc"
	"moxd/internal/storage/account"
)

// Sessions (FamSession): imap and web open a session with the token store
// issued at login, and name it in every request. A session belongs to the
// channel it was opened on; it ends with SessionClose, with that channel,
// or with store.

// session is one open session.
type session struct {
	id      uint64
	account string
	token   auth.Token
	ch      channelKey
}

// sessions is the registry of open sessions.
type sessions struct {
	mu     sync.Mutex
	next   uint64
	m      map[uint64]*session
	counts map[watchKey]int // open sessions per account and role, for events
}

// watchKey is an account as seen by one role.
type watchKey struct {
	account string
	role    ipc.Role
}

func newSessions() *sessions {
	return &sessions{m: map[uint64]*session{}, counts: map[watchKey]int{}}
}

func (ss *sessions) add(s *session) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.next++
	s.id = ss.next
	ss.m[s.id] = s
	ss.counts[watchKey{s.account, s.ch.role}]++
}

// get returns session id if it belongs to channel ch.
func (ss *sessions) get(ch channelKey, id uint64) (*session, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[id]
	if s == nil || s.ch != ch {
		return nil, ipc.Errorf(ipc.CodeNotFound, "no session %d on this channel", id)
	}
	return s, nil
}

func (ss *sessions) remove(ch channelKey, id uint64) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[id]
	if s == nil || s.ch != ch {
		return nil
	}
	ss.drop(s)
	return s
}

func (ss *sessions) drop(s *session) {
	delete(ss.m, s.id)
	k := watchKey{s.account, s.ch.role}
	if ss.counts[k]--; ss.counts[k] <= 0 {
		delete(ss.counts, k)
	}
}

// removeWhere ends the sessions match selects and returns them.
func (ss *sessions) removeWhere(match func(*session) bool) []*session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var l []*session
	for _, s := range ss.m {
		if match(s) {
			l = append(l, s)
			ss.drop(s)
		}
	}
	return l
}

// watched reports whether role has a session on account.
func (ss *sessions) watched(acct string, role ipc.Role) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.counts[watchKey{acct, role}] > 0
}

func (ss *sessions) count() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.m)
}

// sessionTimeout bounds one session request without a deadline of its own.
const sessionTimeout = 5 * time.Minute

// serveSession handles the FamSession requests of imap and web other than
// authentication.
func (sv *service) serveSession(ctx context.Context, ch channelKey, req *ipc.Request) (ipc.Message, []*os.File, error) {
	ctx, cancel := withTimeout(ctx, sessionTimeout)
	defer cancel()
	switch m := req.Msg.(type) {
	case *ipc.SessionOpen:
		info, err := sv.tokens.Check(auth.Token(m.Token), ch.role.String(), ch.gen)
		if err != nil {
			return nil, nil, ipc.Errorf(ipc.CodeDenied, "%v", err)
		}
		if _, err := sv.store.Account(info.Account); err != nil {
			return nil, nil, accountError(err)
		}
		s := &session{account: info.Account, token: auth.Token(m.Token), ch: ch}
		sv.sessions.add(s)
		return &ipc.SessionInfo{Session: s.id, Account: s.account}, nil, nil
	case *ipc.SessionClose:
		if s := sv.sessions.remove(ch, m.Session); s != nil {
			sv.tokens.Revoke(s.token)
		}
		return nil, nil, nil
	}

	var sessID uint64
	switch m := req.Msg.(type) {
	case *ipc.MailboxGet:
		sessID = m.Session
	case *ipc.MailboxPageReq:
		sessID = m.Session
	case *ipc.MailboxChange:
		sessID = m.Session
	case *ipc.AppendMessages:
		sessID = m.Session
	case *ipc.QuotaGet:
		sessID = m.Session
	case *ipc.MessagesReq:
		sessID = m.Ref.Session
	case *ipc.MessageOpen:
		sessID = m.Ref.Session
	case *ipc.FlagsStore:
		sessID = m.Ref.Session
	case *ipc.CopyMessages:
		sessID = m.Ref.Session
	case *ipc.Expunge:
		sessID = m.Ref.Session
	case *ipc.ChangesReq:
		sessID = m.Ref.Session
	case *ipc.Search:
		sessID = m.Ref.Session
	case *ipc.SortKeysReq:
		sessID = m.Ref.Session
	default:
		closeFiles(req.Files)
		return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "unexpected %T", req.Msg)
	}
	s, err := sv.sessions.get(ch, sessID)
	if err != nil {
		closeFiles(req.Files)
		return nil, nil, err
	}
	a, err := sv.store.Account(s.account)
	if err != nil {
		closeFiles(req.Files)
		return nil, nil, accountError(err)
	}
	reply, files, err := sv.sessionOp(ctx, a, req)
	if err != nil {
		return nil, nil, accountError(err)
	}
	return reply, files, nil
}

// sessionOp runs one session request on account a.
func (sv *service) sessionOp(ctx context.Context, a *account.Account, req *ipc.Request) (ipc.Message, []*os.File, error) {
	switch m := req.Msg.(type) {
	case *ipc.MailboxGet:
		mb, err := a.Mailbox(m.Name)
		if err != nil {
			return nil, nil, err
		}
		return &ipc.MailboxReply{Mailbox: mailboxInfo(mb)}, nil, nil

	case *ipc.MailboxPageReq:
		return mailboxPage(a, m)

	case *ipc.MailboxChange:
		return mailboxChange(ctx, a, m)

	case *ipc.MessagesReq:
		limit := pageSize(m.Max)
		msgs, err := a.Messages(m.Ref.Mailbox, m.Ref.UIDValidity, max(m.FromUID, 1), limit+1)
		if err != nil {
			return nil, nil, err
		}
		batch := &ipc.MessageBatch{}
		if len(msgs) > limit {
			batch.Next = msgs[limit].UID
			msgs = msgs[:limit]
		}
		batch.Keywords, batch.Messages = metas(msgs)
		// Many keywords make a full page larger than a frame: send fewer.
		for len(msgs) > 1 && !fitsFrame(batch) {
			n := len(msgs) * 3 / 4
			batch.Next = msgs[n].UID
			msgs = msgs[:n]
			batch.Keywords, batch.Messages = metas(msgs)
		}
		return batch, nil, nil

	case *ipc.MessageOpen:
		return messageOpen(a, m)

	case *ipc.FlagsStore:
		uids := accountRanges(m.UIDs)
		r, err := a.Store(ctx, m.Ref.Mailbox, m.Ref.UIDValidity, uids, account.StoreMode(m.Mode), account.Flags(m.Flags), m.Keywords, m.UnchangedSince)
		if err != nil {
			return nil, nil, err
		}
		reply := &ipc.FlagsStored{Changed: uint32(len(r.Changed)), ToModSeq: r.ModSeq}
		if len(r.Changed) > 0 {
			reply.FromModSeq = r.Changed[0].ModSeq - 1
			for _, c := range r.Changed {
				reply.FromModSeq = min(reply.FromModSeq, c.ModSeq-1)
			}
		}
		reply.Modified, reply.ModifiedMore = toRanges(r.Modified)
		return reply, nil, nil

	case *ipc.CopyMessages:
		uids := accountRanges(m.UIDs)
		var r account.CopyResult
		var err error
		if m.Move {
			r, err = a.Move(ctx, m.Ref.Mailbox, m.Ref.UIDValidity, uids, m.Dest)
		} else {
			r, err = a.Copy(ctx, m.Ref.Mailbox, m.Ref.UIDValidity, uids, m.Dest)
		}
		if err != nil {
			return nil, nil, err
		}
		reply := &ipc.CopyResult{UIDValidity: r.UIDValidity, ModSeq: r.ModSeq}
		var more1, more2 bool
		reply.From, more1 = toRanges(r.From)
		reply.To, more2 = toRanges(r.To)
		if more1 || more2 {
			// The copy happened; only its report is too large to send.
			reply.From, reply.To = nil, nil
		}
		return reply, nil, nil

	case *ipc.Expunge:
		var uids []account.UIDRange
		if len(m.UIDs) > 0 {
			uids = accountRanges(m.UIDs)
		}
		l, modseq, err := a.Expunge(ctx, m.Ref.Mailbox, m.Ref.UIDValidity, uids)
		if err != nil {
			return nil, nil, err
		}
		reply := &ipc.Expunged{ModSeq: modseq}
		reply.UIDs, _ = toRanges(l)
		return reply, nil, nil

	case *ipc.AppendMessages:
		return sv.appendMessages(ctx, a, m, req.Files[0])

	case *ipc.QuotaGet:
		used, n := a.Usage()
		return &ipc.QuotaInfo{Used: used, Messages: n, Limit: a.Quota()}, nil, nil

	case *ipc.ChangesReq:
		// Vanished UIDs travel as ranges: a page of scattered UIDs must
		// fit MaxRanges too.
		limit := min(pageSize(m.Max), ipc.MaxRanges)
		for {
			p, err := a.ChangesAfter(m.Ref.Mailbox, m.Ref.UIDValidity, m.Since, m.AfterModSeq, m.AfterUID, limit)
			if err != nil {
				return nil, nil, err
			}
			reply := &ipc.ChangesReply{HighestModSeq: p.HighestModSeq, More: p.More, LastModSeq: p.LastModSeq, LastUID: p.LastUID}
			reply.Keywords, reply.Changed = metas(p.Changed)
			reply.Vanished, _ = toRanges(p.Vanished)
			// A page larger than a frame (many keywords) is asked for
			// again with fewer entries.
			if limit == 1 || fitsFrame(reply) {
				return reply, nil, nil
			}
			limit = max(1, limit*3/4)
		}

	case *ipc.Search:
		uids, err := a.Search(ctx, m.Ref.Mailbox, m.Ref.UIDValidity, searchKey(m.Key, m.FromUID))
		if err != nil {
			return nil, nil, err
		}
		reply := &ipc.SearchResult{}
		r, cut := toRanges(uids)
		reply.UIDs = r
		if cut {
			reply.Next = r[len(r)-1].Last + 1
		}
		return reply, nil, nil

	case *ipc.SortKeysReq:
		return sortKeysPage(a, m)
	}
	return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "unexpected %T", req.Msg)
}

// appendMessages answers AppendMessages (IMAP APPEND and MULTIAPPEND):
// the messages in f are received into bodies of their own and committed
// together.
func (sv *service) appendMessages(ctx context.Context, a *account.Account, m *ipc.AppendMessages, f *os.File) (ipc.Message, []*os.File, error) {
	defer f.Close()
	sizes := make([]int64, len(m.Messages))
	for i, e := range m.Messages {
		sizes[i] = e.Size
	}
	bodies, err := account.BodiesFromFile(ctx, sv.store.tmpDir, f, m.Offset, sizes, sv.bodies.max())
	if err != nil {
		return nil, nil, appendError(err)
	}
	defer func() {
		for _, b := range bodies {
			b.Remove()
		}
	}()
	ds := make([]account.Delivery, len(bodies))
	for i, e := range m.Messages {
		ds[i] = account.Delivery{Body: bodies[i], Flags: account.Flags(e.Flags)}
		for _, k := range e.Keywords {
			ds[i].Keywords = append(ds[i].Keywords, m.Keywords[k])
		}
		if e.Received != 0 {
			ds[i].Received = time.Unix(e.Received, 0)
		}
	}
	res, err := a.AppendAll(ctx, m.Name, ds)
	if err != nil {
		return nil, nil, appendError(err)
	}
	uids := make([]uint32, len(res))
	for i, r := range res {
		uids[i] = r.UID
	}
	reply := &ipc.AppendedMessages{UIDValidity: res[0].UIDValidity, ModSeq: res[len(res)-1].ModSeq}
	reply.UIDs, _ = toRanges(uids) // at most MaxAppendMessages: never cut
	return reply, nil, nil
}

// appendError is accountError, with a message over the size limit as
// CodeLimit: IMAP answers it with [TOOBIG].
func appendError(err error) error {
	if errors.Is(err, account.ErrTooLarge) {
		return ipc.Errorf(ipc.CodeLimit, "%v", err)
	}
	return accountError(err)
}

func mailboxInfo(mb account.Mailbox) ipc.MailboxInfo {
	return ipc.MailboxInfo{
		ID:            mb.ID,
		UIDValidity:   mb.UIDValidity,
		Name:          mb.Name,
		SpecialUse:    uint8(mb.SpecialUse),
		Subscribed:    mb.Subscribed,
		Messages:      mb.Summary.Messages,
		Unseen:        mb.Summary.Unseen,
		Deleted:       mb.Summary.Deleted,
		Size:          mb.Summary.Size,
		DeletedSize:   mb.Summary.DeletedSize,
		UIDNext:       mb.Summary.UIDNext,
		HighestModSeq: mb.Summary.HighestModSeq,
		Keywords:      capKeywords(mb.Keywords),
	}
}

// capKeywords keeps a keyword list within what one message may carry.
func capKeywords(l []string) []string {
	if len(l) > ipc.MaxKeywords {
		return l[:ipc.MaxKeywords]
	}
	return l
}

func mailboxPage(a *account.Account, m *ipc.MailboxPageReq) (ipc.Message, []*os.File, error) {
	page := &ipc.MailboxPage{}
	if m.Subscriptions {
		names, err := a.Subscriptions()
		if err != nil {
			return nil, nil, err
		}
		sort.Strings(names)
		page.Total = uint32(len(names))
		for i := int(m.Start); i < len(names) && len(page.Mailboxes) < ipc.MaxMailboxPage; i++ {
			page.Mailboxes = append(page.Mailboxes, ipc.MailboxInfo{Name: names[i], Subscribed: true})
		}
		return page, nil, nil
	}
	l, err := a.Mailboxes()
	if err != nil {
		return nil, nil, err
	}
	page.Total = uint32(len(l))
	for i := int(m.Start); i < len(l) && len(page.Mailboxes) < ipc.MaxMailboxPage; i++ {
		page.Mailboxes = append(page.Mailboxes, mailboxInfo(l[i]))
	}
	return page, nil, nil
}

func mailboxChange(ctx context.Context, a *account.Account, m *ipc.MailboxChange) (ipc.Message, []*os.File, error) {
	use := account.SpecialUse(m.SpecialUse)
	name := m.Name
	var err error
	switch m.Op {
	case ipc.MailboxCreate:
		_, err = a.CreateMailbox(ctx, name, use)
	case ipc.MailboxDelete:
		err = a.DeleteMailbox(ctx, name)
		if err == nil {
			return &ipc.MailboxReply{Mailbox: ipc.MailboxInfo{Name: name}}, nil, nil
		}
	case ipc.MailboxRename:
		err = a.RenameMailbox(ctx, name, m.NewName)
		name = m.NewName
	case ipc.MailboxSubscribe, ipc.MailboxUnsubscribe:
		err = a.Subscribe(ctx, name, m.Op == ipc.MailboxSubscribe)
	case ipc.MailboxSetUse:
		err = a.SetSpecialUse(ctx, name, use)
	}
	if err != nil {
		return nil, nil, err
	}
	mb, err := a.Mailbox(name)
	if errors.Is(err, account.ErrNotFound) && (m.Op == ipc.MailboxSubscribe || m.Op == ipc.MailboxUnsubscribe) {
		return &ipc.MailboxReply{Mailbox: ipc.MailboxInfo{Name: name, Subscribed: m.Op == ipc.MailboxSubscribe}}, nil, nil
	} else if err != nil {
		return nil, nil, err
	}
	return &ipc.MailboxReply{Mailbox: mailboxInfo(mb)}, nil, nil
}

// messageOpen returns a message's file (read-only) and a chunk of its
// detail.
func messageOpen(a *account.Account, m *ipc.MessageOpen) (ipc.Message, []*os.File, error) {
	d, err := a.Detail(m.Ref.Mailbox, m.Ref.UIDValidity, m.UID)
	if err != nil {
		return nil, nil, err
	}
	tree, err := d.Part.MarshalBinary()
	if err != nil {
		return nil, nil, fmt.Errorf("marshal message structure: %w", err)
	}
	reply := &ipc.MessageFile{Prefix: d.Prefix, DetailSize: uint32(len(tree))}
	if int(m.DetailOffset) < len(tree) {
		end := min(len(tree), int(m.DetailOffset)+ipc.MaxDetailChunk)
		reply.Detail = tree[m.DetailOffset:end]
	}
	if m.NoFile {
		return reply, nil, nil
	}
	f, msg, _, err := a.OpenMessage(m.Ref.Mailbox, m.Ref.UIDValidity, m.UID)
	if err != nil {
		return nil, nil, err
	}
	reply.File = true
	reply.FileSize = msg.Size - int64(len(d.Prefix))
	return reply, []*os.File{f}, nil
}

// fitsFrame reports whether m encodes within one IPC frame.
func fitsFrame(m ipc.Message) bool {
	_, err := ipc.PayloadSize(m)
	return err == nil
}

// metas converts messages to their IPC form with a shared keyword table.
func metas(msgs []account.Message) ([]string, []ipc.MessageMeta) {
	var table []string
	index := map[string]uint16{}
	l := make([]ipc.MessageMeta, 0, len(msgs))
	for _, m := range msgs {
		mm := ipc.MessageMeta{
			UID:       m.UID,
			ModSeq:    m.ModSeq,
			CreateSeq: m.CreateSeq,
			Flags:     uint8(m.Flags),
			Size:      m.Size,
			Received:  m.Received.Unix(),
			SaveDate:  m.SaveDate.Unix(),
		}
		for _, k := range capKeywords(m.Keywords) {
			i, ok := index[k]
			if !ok {
				if len(table) >= ipc.MaxKeywordTable {
					continue
				}
				i = uint16(len(table))
				index[k] = i
				table = append(table, k)
			}
			mm.Keywords = append(mm.Keywords, i)
		}
		l = append(l, mm)
	}
	return table, l
}

func accountRanges(l []ipc.UIDRange) []account.UIDRange {
	r := make([]account.UIDRange, len(l))
	for i, x := range l {
		r[i] = account.UIDRange{First: x.First, Last: x.Last}
	}
	return r
}

// toRanges compresses ascending uids into at most ipc.MaxRanges ranges;
// cut says uids did not fit.
func toRanges(uids []uint32) ([]ipc.UIDRange, bool) {
	var l []ipc.UIDRange
	for _, u := range uids {
		if n := len(l); n > 0 && l[n-1].Last+1 == u {
			l[n-1].Last = u
			continue
		}
		if len(l) == ipc.MaxRanges {
			return l, true
		}
		l = append(l, ipc.UIDRange{First: u, Last: u})
	}
	return l, false
}

// searchKey converts an IPC search tree, limited to UIDs from fromUID on.
func searchKey(n ipc.SearchNode, fromUID uint32) account.SearchKey {
	k := convertSearch(n)
	if fromUID <= 1 {
		return k
	}
	return account.SearchKey{Op: account.SearchAnd, Sub: []account.SearchKey{
		{Op: account.SearchUIDs, UIDs: []account.UIDRange{{First: fromUID, Last: 0xffffffff}}},
		k,
	}}
}

func convertSearch(n ipc.SearchNode) account.SearchKey {
	k := account.SearchKey{
		Flags:   account.Flags(n.Flags),
		Keyword: n.Keyword,
		Name:    n.Name,
		Value:   n.Text,
		UIDs:    accountRanges(n.UIDs),
	}
	for _, s := range n.Sub {
		k.Sub = append(k.Sub, convertSearch(s))
	}
	// The operators have the same values in both (searchops_test.go
	// checks); Number is a size, a time (Unix seconds) or a modseq,
	// depending on the operator.
	k.Op = account.SearchOp(n.Op)
	switch n.Op {
	case ipc.SearchLarger, ipc.SearchSmaller:
		k.Size = n.Number
	case ipc.SearchBefore, ipc.SearchOn, ipc.SearchSince, ipc.SearchSentBefore, ipc.SearchSentOn, ipc.SearchSentSince,
		ipc.SearchOlder, ipc.SearchYounger, ipc.SearchSavedBefore, ipc.SearchSavedOn, ipc.SearchSavedSince:
		k.Date = time.Unix(n.Number, 0).UTC()
	case ipc.SearchModSeq:
		k.ModSeq = uint64(n.Number)
	}
	return k
}

// accountError turns account errors into IPC error codes callers act on.
func accountError(err error) error {
	var re *ipc.RemoteError
	switch {
	case errors.As(err, &re):
		return err
	case errors.Is(err, account.ErrNotFound), errors.Is(err, ErrNoAccount):
		return ipc.Errorf(ipc.CodeNotFound, "%v", err)
	case errors.Is(err, account.ErrUIDValidity):
		return ipc.Errorf(ipc.CodeStale, "%v", err)
	case errors.Is(err, account.ErrExists):
		return ipc.Errorf(ipc.CodeExists, "%v", err)
	case errors.Is(err, account.ErrQuota):
		return ipc.Errorf(ipc.CodeOverQuota, "%v", err)
	case errors.Is(err, account.ErrBadName), errors.Is(err, account.ErrBadBody), errors.Is(err, account.ErrTooLarge):
		return ipc.Errorf(ipc.CodeBadRequest, "%v", err)
	case errors.Is(err, ErrRemoving), errors.Is(err, account.ErrClosed):
		return ipc.Errorf(ipc.CodeUnavailable, "%v", err)
	case errors.Is(err, context.DeadlineExceeded):
		return ipc.Errorf(ipc.CodeBusy, "%v", err)
	}
	return err
}

func closeFiles(l []*os.File) {
	for _, f := range l {
		f.Close()
	}
}

// pageSize is the number of messages a page answer holds: what the caller
// asked for, within ipc.MaxMetaBatch.
func pageSize(asked uint16) int {
	if asked == 0 || int(asked) > ipc.MaxMetaBatch {
		return ipc.MaxMetaBatch
	}
	return int(asked)
}
