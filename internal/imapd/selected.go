package imapd

// The selected state (RFC 9051 §6.4): SELECT and EXAMINE join the
// mailbox's shared cache (cache.go), and FETCH, STORE, EXPUNGE, CLOSE,
// UNSELECT and NOOP work on the session's view of it.
//
// Implementation notes:
//   - The view is the cache's messages up to the highest UID the session
//     has announced (lastUID), merged with the messages expunged from the
//     cache that the session has not reported yet (pending); sequence
//     number = view index + 1. The view changes only where the client may
//     learn of it: report (after each command and during IDLE) sends
//     EXPUNGE or VANISHED for the pending messages where RFC 9051 §7.5.1
//     allows it, FETCH for flag changes after flagModseq, and EXISTS for
//     messages above lastUID.
//   - Flags in the view are always the cache's current ones, so FETCH
//     FLAGS may show a change before the unsolicited FETCH reports it;
//     the session's own STORE and FETCH-sets-\Seen changes are kept in
//     own, so the report after them does not repeat them.
//   - New keywords: when the cache's keyword table (which only grows) has
//     a keyword the session has not announced, FLAGS and PERMANENTFLAGS
//     go out before the FETCH that shows it (RFC 9051 §7.3.5): report,
//     STORE's FETCH responses and FETCH check first
//     (appendNewKeywordsLocked, writeNewKeywords).
//   - Code outside this file reads the view only through count, at,
//     resolve (c.resolveSet for sets that may be "$") and uidRanges, and
//     removes messages with c.expunged.
//   - FETCH of message data is in fetch.go, CONDSTORE in condstore.go,
//     QRESYNC in qresync.go, IDLE in idle.go.

import (
	"slices"
	"sort"
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
	saved    int64 // Unix seconds: the save date (RFC 8514)
}

// selected is a session's view of the selected mailbox. The view state
// fields are guarded by cache.mu.
type selected struct {
	cache    *mbCache
	conn     *conn // its store session is conn.sess
	ref      ipc.MailboxRef
	readOnly bool

	lastUID    uint32       // the highest UID announced (EXISTS)
	flagModseq uint64       // flag changes up to here are reported
	pending    []pendingMsg // expunged in the cache, not yet reported; by UID
	own        []ownChange  // the session's own reported changes after flagModseq

	// The keywords announced in FLAGS, and how many entries of the
	// cache's keyword table (which only grows) were compared with them.
	// Only the session's goroutine uses these; reading the table needs
	// cache.mu.
	kwKnown []string
	kwSeen  int
}

// ownChange is a flag change the session made and reported itself: the
// messages of uids that got a modseq in (from, to].
type ownChange struct {
	from, to uint64
	uids     []ipc.UIDRange
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

// The view, with cache.mu held (read or write).

// prefixLocked returns the number of cache messages in the view.
func (s *selected) prefixLocked() int {
	i, ok := s.cache.find(s.lastUID)
	if ok {
		i++
	}
	return i
}

func (s *selected) countLocked() int { return s.prefixLocked() + len(s.pending) }

// pendingBelow returns the number of pending messages with a UID below uid.
func (s *selected) pendingBelow(uid uint32) int {
	k, _ := slices.BinarySearchFunc(s.pending, uid, func(p pendingMsg, u uint32) int { return cmpUID(p.uid, u) })
	return k
}

// pendingPos returns the view index of pending message k.
func (s *selected) pendingPos(k int) int {
	i, _ := s.cache.find(s.pending[k].uid)
	return k + i
}

// atLocked returns the message with view index i.
func (s *selected) atLocked(i int) *cacheMsg {
	if len(s.pending) == 0 {
		return &s.cache.msgs[i]
	}
	k := sort.Search(len(s.pending), func(k int) bool { return s.pendingPos(k) >= i })
	if k < len(s.pending) && s.pendingPos(k) == i {
		return &s.pending[k].cacheMsg
	}
	return &s.cache.msgs[i-k]
}

// lowerLocked returns the view index of the first message with a UID of
// at least uid.
func (s *selected) lowerLocked(uid uint32) int {
	i, _ := s.cache.find(uid)
	return min(i, s.prefixLocked()) + s.pendingBelow(uid)
}

// indexLocked returns the view index of uid.
func (s *selected) indexLocked(uid uint32) (int, bool) {
	k, ok := slices.BinarySearchFunc(s.pending, uid, func(p pendingMsg, u uint32) int { return cmpUID(p.uid, u) })
	if ok {
		return s.pendingPos(k), true
	}
	i, ok := s.cache.find(uid)
	if !ok || uid > s.lastUID {
		return 0, false
	}
	return i + k, true
}

func (s *selected) selMsg(m *cacheMsg) selMsg {
	sm := selMsg{uid: m.uid, modseq: m.modseq, flags: m.flags, size: m.size, received: m.received, saved: m.saved}
	for _, k := range m.kw {
		sm.keywords = append(sm.keywords, s.cache.kwNames[k])
	}
	return sm
}

// count returns the number of messages in the view (the highest sequence
// number).
func (s *selected) count() int {
	s.cache.mu.RLock()
	defer s.cache.mu.RUnlock()
	return s.countLocked()
}

// at returns the message with view index i (sequence number i+1).
func (s *selected) at(i int) selMsg {
	s.cache.mu.RLock()
	defer s.cache.mu.RUnlock()
	return s.selMsg(s.atLocked(i))
}

// resolve returns the sorted, distinct view indexes set names, as
// sequence numbers or (uid) UIDs.
func (s *selected) resolve(set imap.NumSet, uid bool) ([]int, error) {
	s.cache.mu.RLock()
	defer s.cache.mu.RUnlock()
	var l []int
	n := s.countLocked()
	if !uid {
		for r := range set.Expand(uint32(n)) {
			if r.End > uint32(n) {
				return nil, respBAD("message sequence number %d out of range (%d messages)", r.End, n)
			}
			for i := r.Start; i <= r.End; i++ {
				l = append(l, int(i-1))
			}
		}
	} else {
		var max uint32
		if n > 0 {
			max = s.atLocked(n - 1).uid
		}
		for r := range set.Expand(max) {
			for i := s.lowerLocked(r.Start); i < n && s.atLocked(i).uid <= r.End; i++ {
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
	s.cache.mu.RLock()
	defer s.cache.mu.RUnlock()
	var chunks [][]ipc.UIDRange
	var cur []ipc.UIDRange
	for j, i := range l {
		uid := s.atLocked(i).uid
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

// addOwn records a change the session is about to report itself.
func (s *selected) addOwn(res *ipc.FlagsStored, uids []ipc.UIDRange) {
	if res.Changed == 0 {
		return
	}
	s.cache.mu.Lock()
	defer s.cache.mu.Unlock()
	s.own = append(s.own, ownChange{res.FromModSeq, res.ToModSeq, uids})
}

func (s *selected) ownLocked(m *cacheMsg) bool {
	for _, o := range s.own {
		if m.modseq > o.from && m.modseq <= o.to && inRanges(o.uids, m.uid) {
			return true
		}
	}
	return false
}

// newKeywordsLocked adds the keywords of the cache's table that the
// session has not announced to kwKnown, and reports whether there were
// any. cache.mu is held (read or write).
func (s *selected) newKeywordsLocked() bool {
	names := s.cache.kwNames
	if s.kwSeen >= len(names) {
		return false
	}
	added := false
	for _, k := range names[s.kwSeen:] {
		// Keywords compare without regard to case, as store compares them.
		if !slices.ContainsFunc(s.kwKnown, func(x string) bool { return strings.EqualFold(x, k) }) {
			s.kwKnown = append(s.kwKnown, k)
			added = true
		}
	}
	s.kwSeen = len(names)
	return added
}

// appendFlagsResponses appends FLAGS with the announced keywords and the
// PERMANENTFLAGS that go with it (RFC 9051 §7.3.5, §7.1).
func (s *selected) appendFlagsResponses(b []byte) []byte {
	flags := appendFlags(nil, 0xff, s.kwKnown)
	b = append(append(append(b, "* FLAGS "...), flags...), "\r\n"...)
	if s.readOnly {
		return imap.AppendStatus(b, "", imap.OK, "PERMANENTFLAGS ()", "read-only mailbox")
	}
	perm := strings.TrimSuffix(string(flags), ")")
	if perm != "(" {
		perm += " "
	}
	return imap.AppendStatus(b, "", imap.OK, "PERMANENTFLAGS "+perm+`\*)`, "flags and new keywords are kept")
}

// appendNewKeywordsLocked appends FLAGS and PERMANENTFLAGS when the cache
// has keywords the session has not announced: RFC 9051 §7.3.5, the client
// learns of a keyword from FLAGS before a FETCH shows it on a message.
// Every writer of FETCH flags calls it first. cache.mu is held (read or
// write).
func (c *conn) appendNewKeywordsLocked(b []byte) []byte {
	if s := c.sel; s.newKeywordsLocked() {
		b = s.appendFlagsResponses(b)
	}
	return b
}

// writeNewKeywords writes what appendNewKeywordsLocked appends.
func (c *conn) writeNewKeywords() {
	mc := c.sel.cache
	mc.mu.RLock()
	b := c.appendNewKeywordsLocked(nil)
	mc.mu.RUnlock()
	c.w.Write(b)
}

// deselect leaves the selected state; closed sends [CLOSED] (RFC 7162
// §3.2.11, RFC 9051 §7.1) if a mailbox was selected.
func (c *conn) deselect(closed bool) {
	if s := c.sel; s != nil {
		if closed {
			c.writeStatus("", imap.OK, imap.CodeClosed, "previous mailbox closed")
		}
		s.cache.leave(s)
		c.srv.caches.release(s.cache)
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
	if a.QResync != nil && !c.qresync {
		// RFC 7162 §3.2.5: BAD without ENABLE QRESYNC first.
		return respBAD("QRESYNC needs ENABLE QRESYNC first")
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
	mc := c.srv.caches.acquire(cacheKey{c.sess.Account, mb.ID, mb.UIDValidity})
	s := &selected{cache: mc, conn: c, ref: c.sess.Ref(mb), readOnly: cmd.Name == "EXAMINE"}
	if err := mc.sync(ctx, s.conn.sess, s.ref, mb.HighestModSeq); err != nil {
		c.srv.caches.release(mc)
		return storeError(err)
	}
	mc.join(s)

	mc.mu.RLock()
	n := s.countLocked()
	unseen := 0
	for i := range n {
		if s.atLocked(i).flags&ipc.FlagSeen == 0 {
			unseen = i + 1
			break
		}
	}
	uidNext := max(mc.uidNext, mb.UIDNext)
	modseq := s.flagModseq
	// FLAGS names the mailbox's keywords and those the cache already
	// has, which the client may see next (QRESYNC, FETCH).
	s.kwKnown = slices.Clone(mb.Keywords)
	s.newKeywordsLocked()
	mc.mu.RUnlock()

	c.w.WriteString("* " + strconv.Itoa(n) + " EXISTS\r\n")
	if c.rev2 {
		c.selectList(mb)
	} else {
		c.w.WriteString("* 0 RECENT\r\n") // IMAP4rev1; moxd has no \Recent
	}
	c.w.Write(s.appendFlagsResponses(nil))
	if unseen > 0 && !c.rev2 {
		// IMAP4rev1 (RFC 3501 §6.3.1): the first unseen message.
		c.writeStatus("", imap.OK, "UNSEEN "+strconv.Itoa(unseen), "first unseen message")
	}
	c.writeStatus("", imap.OK, imap.CodeUIDValidity(mb.UIDValidity), "UIDs valid")
	c.writeStatus("", imap.OK, imap.CodeUIDNext(uidNext), "predicted next UID")
	// RFC 7162 §3.1.2.1: with every SELECT/EXAMINE.
	c.writeStatus("", imap.OK, imap.CodeHighestModSeq(modseq), "highest modseq")
	c.sel, c.state = s, stateSelected
	if a.QResync != nil && a.QResync.UIDValidity == mb.UIDValidity {
		// RFC 7162 §3.2.5: with another UIDVALIDITY, a plain SELECT.
		if err := c.qresyncSelect(ctx, a.QResync); err != nil {
			return err
		}
	}
	if s.readOnly {
		return &okText{code: "READ-ONLY", text: "EXAMINE completed"}
	}
	return &okText{code: "READ-WRITE", text: "SELECT completed"}
}

// dropSelection leaves the mailbox's cache when the connection ends.
func (c *conn) dropSelection() {
	c.deselect(false)
}

func (c *conn) cmdUnselect(cmd *imap.Command) error {
	c.deselect(false)
	return nil
}

func (c *conn) cmdClose(cmd *imap.Command) error {
	if s := c.sel; !s.readOnly {
		// RFC 9051 §6.4.1: expunge \Deleted messages, without EXPUNGE
		// responses.
		ctx, cancel := c.callCtx()
		defer cancel()
		res, err := c.sess.Expunge(ctx, s.ref, nil)
		if err != nil {
			return storeError(err)
		}
		mc := s.cache
		mc.mu.Lock()
		mc.expungeNow(res.UIDs)
		mc.wakeMembers()
		mc.mu.Unlock()
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
	var modseq uint64
	for _, ch := range chunks {
		res, err := c.sess.Expunge(ctx, s.ref, ch)
		if err != nil {
			return storeError(err)
		}
		c.expunged(res.UIDs)
		modseq = max(modseq, res.ModSeq)
	}
	if c.qresync && modseq > 0 {
		// RFC 7162 §3.2: with QRESYNC enabled, the tagged OK of EXPUNGE
		// carries the mailbox's new HIGHESTMODSEQ.
		return &okText{code: imap.CodeHighestModSeq(modseq), text: "EXPUNGE completed"}
	}
	return nil
}

// expunged removes the UIDs, which store reported expunged, from the
// cache (for every session) and reports them for this one: EXPUNGE
// responses highest first, so each sequence number is also the one
// before the removal, or VANISHED under QRESYNC (RFC 7162 §3.2.10).
func (c *conn) expunged(uids []ipc.UIDRange) {
	s := c.sel
	mc := s.cache
	mc.mu.Lock()
	mc.expungeNow(uids)
	mc.wakeMembers()
	b := c.reportExpungesLocked(nil, func(uid uint32) bool { return inRanges(uids, uid) })
	mc.mu.Unlock()
	c.w.Write(b)
}

// reportExpungesLocked reports and drops the pending messages match
// selects. cache.mu is held.
func (c *conn) reportExpungesLocked(b []byte, match func(uint32) bool) []byte {
	s := c.sel
	var vanished []uint32
	for k := len(s.pending) - 1; k >= 0; k-- {
		uid := s.pending[k].uid
		if !match(uid) {
			continue
		}
		if c.qresync {
			vanished = append(vanished, uid)
		} else {
			b = append(b, "* "...)
			b = strconv.AppendInt(b, int64(s.pendingPos(k)+1), 10)
			b = append(b, " EXPUNGE\r\n"...)
		}
		s.pending = slices.Delete(s.pending, k, k+1)
	}
	if len(vanished) > 0 {
		b = append(b, "* VANISHED "+imap.FormatUIDSet(vanished)+"\r\n"...)
	}
	if len(s.pending) == 0 {
		s.pending = nil
	}
	return b
}

// appendFetchFlags appends an unsolicited or STORE FETCH with the flags
// of m, sequence number seq.
func (c *conn) appendFetchFlags(b []byte, seq int, m *cacheMsg, uid bool) []byte {
	b = append(b, "* "...)
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, " FETCH ("...)
	if uid || c.condstore { // RFC 7162 §3.2: UID and MODSEQ
		b = append(b, "UID "...)
		b = strconv.AppendUint(b, uint64(m.uid), 10)
		b = append(b, ' ')
	}
	b = append(b, "FLAGS "...)
	b = appendFlags(b, m.flags, c.sel.selMsg(m).keywords)
	if c.condstore {
		b = appendModSeq(append(b, ' '), m.modseq) // RFC 7162 §3.2
	}
	return append(b, ")\r\n"...)
}

func (c *conn) writeFetchFlags(i int, uid bool) {
	mc := c.sel.cache
	mc.mu.RLock()
	b := c.appendNewKeywordsLocked(nil)
	b = c.appendFetchFlags(b, i+1, c.sel.atLocked(i), uid)
	mc.mu.RUnlock()
	c.w.Write(b)
}

// noExpunge are the commands during which EXPUNGE must not be sent
// (RFC 9051 §7.5.1; their UID forms may have it). SORT and THREAD answer
// with sequence numbers too (RFC 5256), so they wait as well.
var noExpunge = map[string]bool{"FETCH": true, "STORE": true, "SEARCH": true, "SORT": true, "THREAD": true}

// pullAfter are the commands after which the session brings the cache up
// to date itself, so the client sees its own change (RFC 9051 §6.3.12:
// EXISTS after APPEND to the selected mailbox) or asked for the news
// (NOOP, CHECK: cmdSelNoop pulls).
var pullAfter = map[string]bool{"APPEND": true, "COPY": true, "MOVE": true}

// afterCommand reports the mailbox's changes at the end of a command in
// the selected state, before its tagged response.
func (c *conn) afterCommand(cmd *imap.Command) {
	if c.sel == nil || c.state != stateSelected {
		return
	}
	if pullAfter[cmd.Name] {
		ctx, cancel := c.callCtx()
		if err := c.sel.cache.pull(ctx, c.sess, c.sel.ref); err != nil {
			c.log.Debug("mailbox cache pull", "err", err)
		}
		cancel()
	}
	c.report(cmd.UID || !noExpunge[cmd.Name])
}

// report writes what changed in the mailbox since the session last
// reported: expunges (when allowed), flag changes, new messages. A
// mailbox that was deleted or recreated ends the session.
func (c *conn) report(allowExpunge bool) {
	s := c.sel
	mc := s.cache
	var b []byte
	mc.mu.Lock()
	if mc.gone {
		mc.mu.Unlock()
		// The UIDs the client holds mean nothing any more.
		c.writeStatus("", imap.BYE, "", "selected mailbox was deleted or recreated, log in again")
		c.state = stateLogout
		return
	}
	if allowExpunge {
		b = c.reportExpungesLocked(b, func(uint32) bool { return true })
	}
	b = c.appendNewKeywordsLocked(b)
	b = c.reportFlagsLocked(b)
	if n := len(mc.msgs); n > 0 && mc.msgs[n-1].uid > s.lastUID {
		s.lastUID = mc.msgs[n-1].uid
		b = append(b, "* "...)
		b = strconv.AppendInt(b, int64(s.countLocked()), 10)
		b = append(b, " EXISTS\r\n"...)
	}
	if !allowExpunge && c.condstore && len(s.pending) > 0 {
		// RFC 7162 §3.2: with expunges held back, HIGHESTMODSEQ below
		// theirs, so a client that resynchronizes later misses none.
		low := s.pending[0].since
		for _, p := range s.pending {
			low = min(low, p.since)
		}
		b = imap.AppendStatus(b, "", imap.OK, imap.CodeHighestModSeq(low), "expunges not yet reported")
	}
	mc.mu.Unlock()
	c.w.Write(b)
}

// reportFlagsLocked appends FETCH responses for the messages of the view
// whose flags changed after flagModseq, except the session's own changes.
// cache.mu is held for writing.
func (c *conn) reportFlagsLocked(b []byte) []byte {
	s := c.sel
	mc := s.cache
	if mc.modseq <= s.flagModseq {
		s.own = nil
		return b
	}
	var uids []uint32
	if s.flagModseq >= mc.logFloor {
		for _, f := range mc.flagLog {
			if f.modseq > s.flagModseq && f.uid <= s.lastUID {
				uids = append(uids, f.uid)
			}
		}
		slices.Sort(uids)
		uids = slices.Compact(uids)
	} else {
		// Further behind than the log reaches.
		for i := range s.prefixLocked() {
			if mc.msgs[i].modseq > s.flagModseq {
				uids = append(uids, mc.msgs[i].uid)
			}
		}
	}
	for _, uid := range uids {
		i, ok := mc.find(uid)
		if !ok {
			continue // expunged; reported as such
		}
		m := &mc.msgs[i]
		if m.modseq <= s.flagModseq || s.ownLocked(m) {
			continue
		}
		b = c.appendFetchFlags(b, i+s.pendingBelow(uid)+1, m, false)
	}
	s.flagModseq, s.own = mc.modseq, nil
	return b
}

// cmdSelNoop brings the cache up to date; the report after the command
// sends the changes (RFC 9051 §6.1.2, §6.4.1 for CHECK).
func (c *conn) cmdSelNoop(cmd *imap.Command) error {
	ctx, cancel := c.callCtx()
	defer cancel()
	if err := c.sel.cache.pull(ctx, c.sess, c.sel.ref); err != nil {
		return storeError(err)
	}
	return nil
}

func (c *conn) cmdFetch(cmd *imap.Command) error {
	s := c.sel
	a := cmd.Args.(*imap.FetchArgs)
	if a.Vanished {
		// RFC 7162 §3.2.6: UID FETCH only, after ENABLE QRESYNC.
		if !cmd.UID {
			return respBAD("VANISHED is for UID FETCH only")
		}
		if !c.qresync {
			return respBAD("VANISHED needs ENABLE QRESYNC first")
		}
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
	ctx, cancel := c.callCtx()
	defer cancel()
	if a.Vanished {
		if err := c.vanishedSince(ctx, a.Set, a.ChangedSince); err != nil {
			return err
		}
	}
	if a.ChangedSince != 0 {
		// RFC 7162 §3.1.4.1: only messages changed after the modseq.
		l = slices.DeleteFunc(l, func(i int) bool { return s.at(i).modseq <= a.ChangedSince })
	}
	// Messages whose \Seen this FETCH sets report FLAGS (RFC 9051 §6.4.5).
	var newlySeen map[uint32]bool
	if checks := structureChecks(items); seen && len(checks) > 0 {
		// What can refuse the command comes before \Seen is stored
		// (fetch.go).
		if err := c.checkStructure(ctx, l, checks); err != nil {
			return err
		}
	}
	if seen {
		var unseen []int
		for _, i := range l {
			if m := s.at(i); m.flags&ipc.FlagSeen == 0 {
				unseen = append(unseen, i)
				if newlySeen == nil {
					newlySeen = map[uint32]bool{}
				}
				newlySeen[m.uid] = true
			}
		}
		stored := false
		for _, ch := range s.uidRanges(unseen) {
			res, err := c.sess.Store(ctx, s.ref, ch, ipc.StoreAdd, ipc.FlagSeen, nil, 0)
			if err != nil {
				return storeError(err)
			}
			s.addOwn(res, ch)
			stored = stored || res.Changed > 0
		}
		if stored {
			if err := s.cache.pull(ctx, s.conn.sess, s.ref); err != nil {
				return storeError(err)
			}
		}
	}
	for _, i := range l {
		if err := c.fetchMessage(ctx, i, items, needBody, newlySeen[s.at(i).uid]); err != nil {
			return err
		}
	}
	return nil
}
