package imapd

// The selected state (RFC 9051 §6.4): SELECT and EXAMINE load a view of
// the mailbox (ordered UIDs, sequence number = index+1), and FETCH, STORE,
// EXPUNGE, CLOSE, UNSELECT and NOOP work on it through store.
//
// Implementation notes:
//   - The view is this session's idea of the mailbox; it changes only
//     where the client may learn of it: STORE and FETCH update flags of
//     messages in the view, EXPUNGE and NOOP remove messages (with
//     EXPUNGE responses), NOOP adds new ones (EXISTS). Applying a change
//     that the view already has is a no-op, so pulling Changes from an
//     older modseq again is harmless.
//   - Code outside this file reads the view only through count, at,
//     resolve (c.resolveSet for sets that may be "$") and uidRanges.
//   - FETCH of message data is in fetch.go.
//   - CONDSTORE is in condstore.go. Not built: QRESYNC, ENVELOPE, BODYSTRUCTURE, BINARY, body
//     part sections, SEARCH, COPY, MOVE, IDLE. They answer NO [CANNOT] or
//     BAD, and are not in the capability list.

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"moxd/internal/ipc"
	"moxd/internal/mailproto/imap"
)

// selMsg is one message of the view.
type selMsg struct {
	uid      uint32
	modseq   uint64
	flags    uint8
	keywords []string
	size     int64
	received int64 // Unix seconds
}

// selected is the view of the selected mailbox.
type selected struct {
	mb       ipc.MailboxInfo
	ref      ipc.MailboxRef
	readOnly bool
	msgs     []selMsg
	modseq   uint64 // changes up to here are in the view
	uidNext  uint32
}

// System flags by bit (ipc.Flag*), in response order.
var systemFlags = []struct {
	bit  uint8
	name string
}{
	{ipc.FlagSeen, `\Seen`},
	{ipc.FlagAnswered, `\Answered`},
	{ipc.FlagFlagged, `\Flagged`},
	{ipc.FlagDeleted, `\Deleted`},
	{ipc.FlagDraft, `\Draft`},
}

func appendFlags(b []byte, flags uint8, keywords []string) []byte {
	b = append(b, '(')
	n := 0
	for _, f := range systemFlags {
		if flags&f.bit != 0 {
			if n > 0 {
				b = append(b, ' ')
			}
			b = append(b, f.name...)
			n++
		}
	}
	for _, k := range keywords {
		if n > 0 {
			b = append(b, ' ')
		}
		b = append(b, k...)
		n++
	}
	return append(b, ')')
}

// parseFlags splits STORE flags into system flag bits and keywords.
func parseFlags(l []string) (uint8, []string, error) {
	var flags uint8
	var kw []string
	for _, f := range l {
		if !strings.HasPrefix(f, `\`) {
			if !slices.ContainsFunc(kw, func(k string) bool { return strings.EqualFold(k, f) }) {
				kw = append(kw, f)
			}
			continue
		}
		i := slices.IndexFunc(systemFlags, func(s struct {
			bit  uint8
			name string
		}) bool {
			return strings.EqualFold(s.name, f)
		})
		if i < 0 {
			return 0, nil, respBAD("flag %s cannot be stored", f)
		}
		flags |= systemFlags[i].bit
	}
	return flags, kw, nil
}

func metaMsg(keywords []string, m ipc.MessageMeta) selMsg {
	sm := selMsg{uid: m.UID, modseq: m.ModSeq, flags: m.Flags, size: m.Size, received: m.Received}
	for _, k := range m.Keywords {
		if int(k) < len(keywords) {
			sm.keywords = append(sm.keywords, keywords[k])
		}
	}
	return sm
}

// count returns the number of messages in the view (the highest sequence
// number).
func (s *selected) count() int { return len(s.msgs) }

// at returns the message with view index i (sequence number i+1).
func (s *selected) at(i int) selMsg { return s.msgs[i] }

// index returns the view index of uid.
func (s *selected) index(uid uint32) (int, bool) {
	return slices.BinarySearchFunc(s.msgs, uid, func(m selMsg, u uint32) int {
		switch {
		case m.uid < u:
			return -1
		case m.uid > u:
			return 1
		}
		return 0
	})
}

// resolve returns the sorted, distinct view indexes set names, as
// sequence numbers or (uid) UIDs.
func (s *selected) resolve(set imap.NumSet, uid bool) ([]int, error) {
	var l []int
	if !uid {
		n := uint32(len(s.msgs))
		for r := range set.Expand(n) {
			if r.End > n {
				return nil, respBAD("message sequence number %d out of range (%d messages)", r.End, n)
			}
			for i := r.Start; i <= r.End; i++ {
				l = append(l, int(i-1))
			}
		}
	} else {
		var max uint32
		if len(s.msgs) > 0 {
			max = s.msgs[len(s.msgs)-1].uid
		}
		for r := range set.Expand(max) {
			i, _ := s.index(r.Start)
			for ; i < len(s.msgs) && s.msgs[i].uid <= r.End; i++ {
				l = append(l, i)
			}
		}
	}
	slices.Sort(l)
	return slices.Compact(l), nil
}

// uidRanges returns the UIDs of the view indexes l as ranges, in chunks
// of at most ipc.MaxRanges.
func (s *selected) uidRanges(l []int) [][]ipc.UIDRange {
	var chunks [][]ipc.UIDRange
	var cur []ipc.UIDRange
	for j, i := range l {
		uid := s.msgs[i].uid
		if j > 0 && l[j-1] == i-1 && len(cur) > 0 {
			cur[len(cur)-1].Last = uid
			continue
		}
		if len(cur) == ipc.MaxRanges {
			chunks = append(chunks, cur)
			cur = nil
		}
		cur = append(cur, ipc.UIDRange{First: uid, Last: uid})
	}
	if len(cur) > 0 {
		chunks = append(chunks, cur)
	}
	return chunks
}

func inRanges(l []ipc.UIDRange, uid uint32) bool {
	for _, r := range l {
		if uid >= r.First && uid <= r.Last {
			return true
		}
	}
	return false
}

// deselect leaves the selected state; closed sends [CLOSED] (RFC 7162
// §3.2.11, RFC 9051 §7.1) if a mailbox was selected.
func (c *conn) deselect(closed bool) {
	if c.sel != nil && closed {
		c.writeStatus("", imap.OK, imap.CodeClosed, "previous mailbox closed")
	}
	c.sel = nil
	if c.state == stateSelected {
		c.state = stateAuth
	}
}

func (c *conn) cmdSelect(cmd *imap.Command) error {
	a := cmd.Args.(*imap.SelectArgs)
	// RFC 9051 §6.3.2: a SELECT, even a failed one, first deselects.
	c.deselect(true)
	if a.QResync != nil {
		return respBAD("QRESYNC is not supported")
	}
	if a.CondStore {
		c.enableCondStore() // RFC 7162 §3.1
	}
	ctx, cancel := c.callCtx()
	defer cancel()
	mb, err := c.sess.Mailbox(ctx, canonName(a.Mailbox))
	if err != nil {
		return storeError(err)
	}
	s := &selected{mb: mb, ref: c.sess.Ref(mb), readOnly: cmd.Name == "EXAMINE", modseq: mb.HighestModSeq, uidNext: mb.UIDNext}
	err = c.sess.Messages(ctx, s.ref, 1, func(keywords []string, msgs []ipc.MessageMeta) bool {
		for _, m := range msgs {
			s.msgs = append(s.msgs, metaMsg(keywords, m))
		}
		return true
	})
	if err != nil {
		return storeError(err)
	}
	if n := len(s.msgs); n > 0 && s.msgs[n-1].uid >= s.uidNext {
		s.uidNext = s.msgs[n-1].uid + 1
	}

	fmt.Fprintf(c.w, "* %d EXISTS\r\n", len(s.msgs))
	c.w.WriteString("* 0 RECENT\r\n") // IMAP4rev1; moxd has no \Recent
	flags := string(appendFlags(nil, 0xff, mb.Keywords))
	c.w.WriteString("* FLAGS " + flags + "\r\n")
	if s.readOnly {
		c.writeStatus("", imap.OK, "PERMANENTFLAGS ()", "read-only mailbox")
	} else {
		perm := strings.TrimSuffix(flags, ")")
		if perm != "(" {
			perm += " "
		}
		c.writeStatus("", imap.OK, "PERMANENTFLAGS "+perm+`\*)`, "flags and new keywords are kept")
	}
	for i, m := range s.msgs {
		if m.flags&ipc.FlagSeen == 0 {
			// IMAP4rev1 (RFC 3501 §6.3.1): the first unseen message.
			c.writeStatus("", imap.OK, "UNSEEN "+strconv.Itoa(i+1), "first unseen message")
			break
		}
	}
	c.writeStatus("", imap.OK, imap.CodeUIDValidity(mb.UIDValidity), "UIDs valid")
	c.writeStatus("", imap.OK, imap.CodeUIDNext(s.uidNext), "predicted next UID")
	// RFC 7162 §3.1.2.1: with every SELECT/EXAMINE.
	c.writeStatus("", imap.OK, imap.CodeHighestModSeq(s.modseq), "highest modseq")
	c.sel, c.state = s, stateSelected
	if s.readOnly {
		return &okText{code: "READ-ONLY", text: "EXAMINE completed"}
	}
	return &okText{code: "READ-WRITE", text: "SELECT completed"}
}

func (c *conn) cmdUnselect(cmd *imap.Command) error {
	c.deselect(false)
	return nil
}

func (c *conn) cmdClose(cmd *imap.Command) error {
	if !c.sel.readOnly {
		// RFC 9051 §6.4.1: expunge \Deleted messages, without EXPUNGE
		// responses.
		ctx, cancel := c.callCtx()
		defer cancel()
		if _, err := c.sess.Expunge(ctx, c.sel.ref, nil); err != nil {
			return storeError(err)
		}
	}
	c.deselect(false)
	return nil
}

func errReadOnly() error {
	return respNO(imap.CodeCannot, "mailbox is read-only (EXAMINE)")
}

func (c *conn) cmdExpunge(cmd *imap.Command) error {
	s := c.sel
	if s.readOnly {
		return errReadOnly()
	}
	ctx, cancel := c.callCtx()
	defer cancel()
	var chunks [][]ipc.UIDRange
	if cmd.UID {
		l, err := c.resolveSet(cmd.Args.(*imap.ExpungeArgs).UIDs, true)
		if err != nil {
			return err
		}
		if len(l) == 0 {
			return nil
		}
		chunks = s.uidRanges(l)
	} else {
		chunks = [][]ipc.UIDRange{nil} // all \Deleted messages
	}
	for _, ch := range chunks {
		res, err := c.sess.Expunge(ctx, s.ref, ch)
		if err != nil {
			return storeError(err)
		}
		c.expunged(res.UIDs)
	}
	return nil
}

// expunged removes the UIDs from the view with EXPUNGE responses, highest
// first, so each sequence number is also the one before the removal.
func (c *conn) expunged(uids []ipc.UIDRange) {
	s := c.sel
	for i := len(s.msgs) - 1; i >= 0; i-- {
		if inRanges(uids, s.msgs[i].uid) {
			fmt.Fprintf(c.w, "* %d EXPUNGE\r\n", i+1)
			s.msgs = slices.Delete(s.msgs, i, i+1)
		}
	}
}

// pullFlags applies the flag changes after modseq since to messages in
// the view (new and expunged messages wait for NOOP).
func (c *conn) pullFlags(ctx context.Context, since uint64) error {
	s := c.sel
	_, err := c.sess.Changes(ctx, s.ref, since, func(r *ipc.ChangesReply) bool {
		for _, m := range r.Changed {
			if i, ok := s.index(m.UID); ok {
				nm := metaMsg(r.Keywords, m)
				s.msgs[i].flags, s.msgs[i].keywords, s.msgs[i].modseq = nm.flags, nm.keywords, nm.modseq
			}
		}
		return true
	})
	if err != nil {
		return storeError(err)
	}
	return nil
}

func (c *conn) writeFetchFlags(i int, uid bool) {
	m := &c.sel.msgs[i]
	b := []byte("* " + strconv.Itoa(i+1) + " FETCH (")
	if uid || c.condstore { // RFC 7162 §3.2: UID and MODSEQ
		b = append(b, "UID "+strconv.FormatUint(uint64(m.uid), 10)+" "...)
	}
	b = append(b, "FLAGS "...)
	b = appendFlags(b, m.flags, m.keywords)
	if c.condstore {
		b = appendModSeq(append(b, ' '), m.modseq) // RFC 7162 §3.2
	}
	c.w.Write(append(b, ")\r\n"...))
}

func (c *conn) cmdSelNoop(cmd *imap.Command) error {
	s := c.sel
	ctx, cancel := c.callCtx()
	defer cancel()
	type change struct {
		keywords []string
		m        ipc.MessageMeta
	}
	var changed []change
	var vanished []ipc.UIDRange
	highest, err := c.sess.Changes(ctx, s.ref, s.modseq, func(r *ipc.ChangesReply) bool {
		for _, m := range r.Changed {
			changed = append(changed, change{r.Keywords, m})
		}
		vanished = append(vanished, r.Vanished...)
		return true
	})
	if err != nil {
		return storeError(err)
	}
	c.expunged(vanished)
	var added []selMsg
	for _, ch := range changed {
		nm := metaMsg(ch.keywords, ch.m)
		if i, ok := s.index(nm.uid); ok {
			om := &s.msgs[i]
			if om.flags != nm.flags || !slices.Equal(om.keywords, nm.keywords) {
				om.flags, om.keywords, om.modseq = nm.flags, nm.keywords, nm.modseq
				c.writeFetchFlags(i, false)
			}
		} else if (len(s.msgs) == 0 || nm.uid > s.msgs[len(s.msgs)-1].uid) && !inRanges(vanished, nm.uid) {
			added = append(added, nm)
		}
	}
	if len(added) > 0 {
		slices.SortFunc(added, func(a, b selMsg) int { return int(int64(a.uid) - int64(b.uid)) })
		added = slices.CompactFunc(added, func(a, b selMsg) bool { return a.uid == b.uid })
		s.msgs = append(s.msgs, added...)
		if u := added[len(added)-1].uid; u >= s.uidNext {
			s.uidNext = u + 1
		}
		fmt.Fprintf(c.w, "* %d EXISTS\r\n", len(s.msgs))
	}
	if highest > s.modseq {
		s.modseq = highest
	}
	return nil
}

func (c *conn) cmdFetch(cmd *imap.Command) error {
	s := c.sel
	a := cmd.Args.(*imap.FetchArgs)
	if a.Vanished {
		return respBAD("VANISHED needs QRESYNC, which is not supported")
	}
	items := a.Items
	hasModSeq := slices.ContainsFunc(items, func(it imap.FetchItem) bool { return it.Name == "MODSEQ" })
	if hasModSeq || a.ChangedSince != 0 {
		c.enableCondStore() // RFC 7162 §3.1
	}
	if a.ChangedSince != 0 && !hasModSeq {
		// RFC 7162 §3.1.4.1: CHANGEDSINCE implies MODSEQ.
		items = append(slices.Clip(items), imap.FetchItem{Name: "MODSEQ"})
	}
	if cmd.UID && !slices.ContainsFunc(items, func(it imap.FetchItem) bool { return it.Name == "UID" }) {
		// RFC 9051 §6.4.9: UID FETCH always returns the UID.
		items = append([]imap.FetchItem{{Name: "UID"}}, items...)
	}
	var needBody, seen bool
	for _, it := range items {
		b, err := fetchBody(it)
		if err != nil {
			return err
		}
		needBody = needBody || b
		seen = seen || setsSeen(it)
	}
	seen = seen && !s.readOnly
	l, err := c.resolveSet(a.Set, cmd.UID)
	if err != nil {
		return err
	}
	if a.ChangedSince != 0 {
		// RFC 7162 §3.1.4.1: only messages changed after the modseq.
		l = slices.DeleteFunc(l, func(i int) bool { return s.msgs[i].modseq <= a.ChangedSince })
	}
	ctx, cancel := c.callCtx()
	defer cancel()
	// Messages whose \Seen this FETCH sets report FLAGS (RFC 9051 §6.4.5).
	var newlySeen map[uint32]bool
	if seen {
		var unseen []int
		for _, i := range l {
			if s.msgs[i].flags&ipc.FlagSeen == 0 {
				unseen = append(unseen, i)
			}
		}
		if len(unseen) > 0 {
			newlySeen = map[uint32]bool{}
			for _, i := range unseen {
				newlySeen[s.msgs[i].uid] = true
			}
			for _, ch := range s.uidRanges(unseen) {
				res, err := c.sess.Store(ctx, s.ref, ch, ipc.StoreAdd, ipc.FlagSeen, nil, 0)
				if err != nil {
					return storeError(err)
				}
				if res.Changed > 0 {
					if err := c.pullFlags(ctx, res.FromModSeq); err != nil {
						return err
					}
				}
			}
		}
	}
	for _, i := range l {
		if err := c.fetchMessage(ctx, i, items, needBody, newlySeen[s.msgs[i].uid]); err != nil {
			return err
		}
	}
	return nil
}
