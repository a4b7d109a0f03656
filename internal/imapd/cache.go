package imapd

// The mailbox cache: one per selected mailbox per worker process, shared
// by every session that has the mailbox selected (docs/design.md §12,
// item 3), kept current from store's change events.
//
// Implementation notes:
//   - Registry: Server.caches maps (account, mailbox id, UIDVALIDITY) to a
//     cache and counts the sessions holding it; the last one to leave
//     drops it. A recreated mailbox has a new UIDVALIDITY, so it gets a
//     new cache; the old one is marked gone and its sessions end.
//   - Contents: the messages in UID order with flags, keywords (indexes
//     into the cache's keyword table, which only grows), modseq, size,
//     received time and save date; the modseq the cache is current up
//     to; and a log of recent flag changes (modseq, uid), so a session
//     finds what it has to report without scanning every message.
//   - Updates: a pull of store's Changes from the cache's modseq, or after
//     a Resync a full reload compared with what the cache holds. Pulls run
//     one at a time (pullMu, held across the store calls). An event starts
//     a pull in a short-lived goroutine of the cache (never more than one);
//     a session pulls itself where it needs its own change in the view
//     (SELECT, STORE, FETCH setting \Seen, NOOP, APPEND, COPY, MOVE).
//     c.expunged removes what store reported expunged at once. Applying a
//     change the cache already has is a no-op, so a pull that overlaps an
//     earlier one or an expunge applied directly does no harm.
//   - Locking: mu guards the contents and the view state of every member
//     session (selected.lastUID, pending, flagModseq, own). A pull reads
//     from store without mu and applies all its pages under one mu.Lock,
//     so nobody sees half a pull. Sessions read under RLock (count, at,
//     resolve) and take the write lock to report, since reporting moves
//     their view state. Nothing under mu does I/O: reports are built into
//     a buffer and written after unlocking. The one call under mu into
//     other state is waking idling members (conn.wakeIdle, which takes
//     conn.idleMu): idleMu nests inside mu, never the other way round.
//   - Expunges: a message leaving the cache leaves a copy in the pending
//     list of each member that has been told about it (uid <= lastUID). A
//     member's view is the cache's messages up to lastUID merged with its
//     pending list, so its sequence numbers change only when it reports
//     the expunge (RFC 9051 §7.5.1), and messages it was never told about
//     (uid > lastUID) do not count until it reports EXISTS.

import (
	"context"
	"errors"
	"os"
	"slices"
	"sync"
	"time"

	"moxd/internal/ipc"
	"moxd/internal/storage/storeclient"
)

// maxFlagLog bounds the flag-change log of a cache; a session that is
// further behind scans the messages instead.
const maxFlagLog = 4096

// A cache no session has selected is kept for cacheRetention, at most
// maxRetained of them, so a client that selects mailboxes in turn (or
// reconnects) does not load the whole mailbox again; the next SELECT
// pulls the changes made meanwhile (store keeps every change, expunges
// included, by modseq).
const (
	cacheRetention = 5 * time.Minute
	maxRetained    = 32
)

type cacheKey struct {
	account     string
	mailbox     uint32
	uidValidity uint32
}

// cacheRegistry holds the caches of a Server. The zero value is ready.
type cacheRegistry struct {
	mu sync.Mutex
	m  map[cacheKey]*mbCache
}

// cacheMsg is one message in a cache.
type cacheMsg struct {
	uid      uint32
	flags    uint8
	kw       []uint16 // indexes into mbCache.kwNames, in store's order
	modseq   uint64
	size     int64
	received int64 // Unix seconds
	saved    int64 // Unix seconds: the save date (RFC 8514)
}

// flagChange is an entry of the flag-change log.
type flagChange struct {
	modseq uint64
	uid    uint32
}

// pendingMsg is a message expunged from the cache that a session has not
// yet reported; since is the cache's modseq before the expunge (lower
// than the expunge's own modseq).
type pendingMsg struct {
	cacheMsg
	since uint64
}

// mbCache is the shared state of one selected mailbox.
type mbCache struct {
	key       cacheKey
	reg       *cacheRegistry
	refs      int       // guarded by the registry's mu
	idleSince time.Time // when refs dropped to 0; guarded by the registry's mu

	pullMu sync.Mutex
	loaded bool // guarded by pullMu

	mu       sync.RWMutex
	msgs     []cacheMsg // by UID
	kwNames  []string
	kwIndex  map[string]uint16
	modseq   uint64 // changes up to here are in the cache
	uidNext  uint32
	flagLog  []flagChange // changes with modseq > logFloor, in no particular order
	logFloor uint64
	members  []*selected
	gone     bool // mailbox deleted or recreated

	// Updates asked for by events.
	want       uint64
	wantReload bool
	updating   bool
}

// acquire returns the cache for k, made if needed, counting the caller.
func (r *cacheRegistry) acquire(k cacheKey) *mbCache {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[cacheKey]*mbCache{}
	}
	mc := r.m[k]
	if mc == nil {
		mc = &mbCache{key: k, reg: r, kwIndex: map[string]uint16{}}
		r.m[k] = mc
	}
	mc.refs++
	r.pruneLocked(time.Now())
	return mc
}

// release gives up a reference from acquire.
func (r *cacheRegistry) release(mc *mbCache) {
	r.mu.Lock()
	defer r.mu.Unlock()
	mc.refs--
	if mc.refs <= 0 {
		mc.idleSince = time.Now()
	}
	r.pruneLocked(time.Now())
}

// pruneLocked drops the unselected caches kept longer than
// cacheRetention, and the oldest beyond maxRetained. r.mu is held.
func (r *cacheRegistry) pruneLocked(now time.Time) {
	var idle []*mbCache
	for k, mc := range r.m {
		if mc.refs > 0 {
			continue
		}
		if now.Sub(mc.idleSince) > cacheRetention {
			delete(r.m, k)
			continue
		}
		idle = append(idle, mc)
	}
	if len(idle) <= maxRetained {
		return
	}
	slices.SortFunc(idle, func(a, b *mbCache) int { return a.idleSince.Compare(b.idleSince) })
	for _, mc := range idle[:len(idle)-maxRetained] {
		delete(r.m, mc.key)
	}
}

// forget removes a gone cache, so the next SELECT makes a new one.
func (r *cacheRegistry) forget(mc *mbCache) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m[mc.key] == mc {
		delete(r.m, mc.key)
	}
}

// matching returns the caches of account (all when empty) and, when
// mailbox is not 0, of that mailbox.
func (r *cacheRegistry) matching(account string, mailbox uint32) []*mbCache {
	r.mu.Lock()
	defer r.mu.Unlock()
	var l []*mbCache
	for k, mc := range r.m {
		if (account == "" || k.account == account) && (mailbox == 0 || k.mailbox == mailbox) {
			l = append(l, mc)
		}
	}
	return l
}

// count returns the number of caches some session has selected (for
// tests and status).
func (r *cacheRegistry) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.countLocked()
}

func (r *cacheRegistry) countLocked() int {
	n := 0
	for _, mc := range r.m {
		if mc.refs > 0 {
			n++
		}
	}
	return n
}

// retained returns the number of caches kept without a session.
func (r *cacheRegistry) retained() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.m) - r.countLocked()
}

// ServeIPC takes store's change events (FamEvents) for the caches. It
// never waits for store: updates run in the caches' own goroutines.
func (s *Server) ServeIPC(ctx context.Context, req *ipc.Request) (ipc.Message, []*os.File, error) {
	for _, f := range req.Files {
		f.Close()
	}
	switch m := req.Msg.(type) {
	case *ipc.MailboxChanged:
		if m.Mailbox == 0 {
			// The mailbox list changed; a deleted mailbox also reports
			// its own change, which finds it gone.
			return nil, nil, nil
		}
		for _, mc := range s.caches.matching(m.Account, m.Mailbox) {
			mc.kick(m.ModSeq, false)
		}
	case *ipc.Resync:
		// Events were lost: reload everything of the account.
		for _, mc := range s.caches.matching(m.Account, 0) {
			mc.kick(0, true)
		}
	default:
		return nil, nil, ipc.Errorf(ipc.CodeFailed, "imap does not serve %s", ipc.MessageName(req.Msg.Type()))
	}
	return nil, nil, nil
}

// kick asks for a pull up to modseq, or a reload, from the cache's
// update goroutine, starting it if it is not running.
func (mc *mbCache) kick(modseq uint64, reload bool) {
	mc.mu.Lock()
	switch {
	case reload:
		mc.wantReload = true
	case modseq <= mc.modseq:
		mc.mu.Unlock()
		return
	case modseq > mc.want:
		mc.want = modseq
	}
	start := !mc.updating
	mc.updating = true
	mc.mu.Unlock()
	if start {
		go mc.runUpdates()
	}
}

// runUpdates does the pulls and reloads events asked for, with the store
// session of a member, until none is left.
func (mc *mbCache) runUpdates() {
	for {
		mc.mu.Lock()
		reload, want := mc.wantReload, mc.want
		if mc.gone || len(mc.members) == 0 || !reload && want <= mc.modseq {
			mc.updating, mc.wantReload, mc.want = false, false, 0
			mc.mu.Unlock()
			return
		}
		mc.wantReload = false
		// A few members' store sessions, in case one is ending.
		try := slices.Clone(mc.members[:min(3, len(mc.members))])
		mc.mu.Unlock()

		var err error
		for _, m := range try {
			ctx, cancel := context.WithTimeout(m.conn.ctx, storeCallTimeout)
			if reload {
				err = mc.reload(ctx, m.conn.sess, m.ref)
			} else {
				err = mc.pull(ctx, m.conn.sess, m.ref)
			}
			cancel()
			if err == nil || errors.Is(err, storeclient.ErrNotFound) || errors.Is(err, storeclient.ErrStale) {
				break
			}
			m.conn.log.Debug("mailbox cache update", "err", err)
		}
		mc.mu.Lock()
		if err == nil && mc.modseq < mc.want {
			// Store's answer ends below what the event announced: do
			// not ask again for it.
			mc.want = mc.modseq
		}
		if err != nil {
			// The next event or a session's own pull tries again.
			mc.updating, mc.want = false, 0
			mc.mu.Unlock()
			return
		}
		mc.mu.Unlock()
	}
}

// sync brings the cache up to date for a session selecting the mailbox:
// a full load the first time (highest is the mailbox's HIGHESTMODSEQ read
// before), else a pull.
func (mc *mbCache) sync(ctx context.Context, sess *storeclient.Session, ref ipc.MailboxRef, highest uint64) error {
	mc.pullMu.Lock()
	defer mc.pullMu.Unlock()
	if mc.loaded {
		mc.mu.RLock()
		current := highest != 0 && highest <= mc.modseq
		mc.mu.RUnlock()
		if current {
			// Store's summary, just read, has nothing after the
			// cache: no Changes round trip (repeated SELECT).
			return nil
		}
		return mc.pullLocked(ctx, sess, ref)
	}
	return mc.loadLocked(ctx, sess, ref, highest)
}

// pull fetches and applies the changes after the cache's modseq.
func (mc *mbCache) pull(ctx context.Context, sess *storeclient.Session, ref ipc.MailboxRef) error {
	mc.pullMu.Lock()
	defer mc.pullMu.Unlock()
	return mc.pullLocked(ctx, sess, ref)
}

// reload reads all messages again and applies the difference.
func (mc *mbCache) reload(ctx context.Context, sess *storeclient.Session, ref ipc.MailboxRef) error {
	mc.pullMu.Lock()
	defer mc.pullMu.Unlock()
	mc.mu.RLock()
	since := mc.modseq
	mc.mu.RUnlock()
	return mc.loadLocked(ctx, sess, ref, since)
}

// failed marks the cache gone when the mailbox no longer exists under its
// UIDVALIDITY, and returns err.
func (mc *mbCache) failed(err error) error {
	if errors.Is(err, storeclient.ErrNotFound) || errors.Is(err, storeclient.ErrStale) {
		mc.mu.Lock()
		mc.gone = true
		mc.wakeMembers()
		mc.mu.Unlock()
		mc.reg.forget(mc)
	}
	return err
}

// loadLocked lists all messages and makes the cache hold exactly them
// (reporting the differences to members like a pull would), then pulls
// the changes after since, which the list already reflects. pullMu is
// held.
func (mc *mbCache) loadLocked(ctx context.Context, sess *storeclient.Session, ref ipc.MailboxRef, since uint64) error {
	type page struct {
		keywords []string
		msgs     []ipc.MessageMeta
	}
	var pages []page
	err := sess.Messages(ctx, ref, 1, func(keywords []string, msgs []ipc.MessageMeta) bool {
		pages = append(pages, page{keywords, msgs})
		return true
	})
	if err != nil {
		return mc.failed(err)
	}
	mc.mu.Lock()
	var l []cacheMsg
	for _, p := range pages {
		kw := mc.internAll(p.keywords)
		for _, m := range p.msgs {
			l = append(l, mc.fromMeta(kw, m))
		}
	}
	slices.SortFunc(l, func(a, b cacheMsg) int { return cmpUID(a.uid, b.uid) })
	l = slices.CompactFunc(l, func(a, b cacheMsg) bool { return a.uid == b.uid })
	if !mc.loaded {
		mc.msgs = l
		mc.modseq = since
	} else {
		mc.replace(l)
	}
	if n := len(mc.msgs); n > 0 && mc.msgs[n-1].uid >= mc.uidNext {
		mc.uidNext = mc.msgs[n-1].uid + 1
	}
	mc.loaded = true
	mc.wakeMembers()
	mc.mu.Unlock()
	return mc.pullLocked(ctx, sess, ref)
}

// replace makes l (sorted by UID) the cache's messages: messages missing
// from l are expunged, changed ones logged. mu is held.
func (mc *mbCache) replace(l []cacheMsg) {
	old := mc.msgs
	var gone []cacheMsg
	j := 0
	for _, om := range old {
		for j < len(l) && l[j].uid < om.uid {
			j++
		}
		if j < len(l) && l[j].uid == om.uid {
			nm := l[j]
			if nm.modseq != om.modseq || nm.flags != om.flags || !slices.Equal(nm.kw, om.kw) {
				mc.logChange(nm.modseq, nm.uid)
			}
			continue
		}
		gone = append(gone, om)
	}
	mc.msgs = l
	mc.toPending(gone)
}

// pullLocked fetches the changes after the cache's modseq and applies them
// in store's order. pullMu is held.
func (mc *mbCache) pullLocked(ctx context.Context, sess *storeclient.Session, ref ipc.MailboxRef) error {
	mc.mu.RLock()
	since := mc.modseq
	mc.mu.RUnlock()
	var pages []*ipc.ChangesReply
	highest, err := sess.Changes(ctx, ref, since, func(r *ipc.ChangesReply) bool {
		pages = append(pages, r)
		return true
	})
	if err != nil {
		return mc.failed(err)
	}
	mc.mu.Lock()
	defer mc.mu.Unlock()
	changed := false
	for _, p := range pages {
		kw := mc.internAll(p.Keywords)
		for _, m := range p.Changed {
			changed = mc.applyMeta(mc.fromMeta(kw, m)) || changed
		}
		for _, r := range p.Vanished {
			changed = mc.removeRange(r) || changed
		}
	}
	if highest > mc.modseq {
		mc.modseq = highest
		changed = true
	}
	if changed {
		mc.trimLog()
		mc.wakeMembers()
	}
	return nil
}

func cmpUID(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// find returns the index of uid in msgs, or where it would go.
func (mc *mbCache) find(uid uint32) (int, bool) {
	return slices.BinarySearchFunc(mc.msgs, uid, func(m cacheMsg, u uint32) int { return cmpUID(m.uid, u) })
}

// internAll returns the cache's indexes for a page's keyword table.
func (mc *mbCache) internAll(names []string) []uint16 {
	l := make([]uint16, len(names))
	for i, k := range names {
		x, ok := mc.kwIndex[k]
		if !ok {
			x = uint16(len(mc.kwNames))
			mc.kwNames = append(mc.kwNames, k)
			mc.kwIndex[k] = x
		}
		l[i] = x
	}
	return l
}

func (mc *mbCache) fromMeta(kw []uint16, m ipc.MessageMeta) cacheMsg {
	cm := cacheMsg{uid: m.UID, flags: m.Flags, modseq: m.ModSeq, size: m.Size, received: m.Received, saved: m.SaveDate}
	for _, k := range m.Keywords {
		if int(k) < len(kw) {
			cm.kw = append(cm.kw, kw[k])
		}
	}
	return cm
}

// applyMeta applies a changed or new message; it reports whether the
// cache changed. mu is held.
func (mc *mbCache) applyMeta(nm cacheMsg) bool {
	i, ok := mc.find(nm.uid)
	if ok {
		om := &mc.msgs[i]
		if om.modseq == nm.modseq && om.flags == nm.flags && slices.Equal(om.kw, nm.kw) {
			return false
		}
		om.flags, om.kw, om.modseq = nm.flags, nm.kw, nm.modseq
		mc.logChange(nm.modseq, nm.uid)
		return true
	}
	// New (UIDs grow, so it goes at the end: sessions' views, which are
	// prefixes by UID, do not move).
	mc.msgs = slices.Insert(mc.msgs, i, nm)
	if nm.uid >= mc.uidNext {
		mc.uidNext = nm.uid + 1
	}
	return true
}

func (mc *mbCache) logChange(modseq uint64, uid uint32) {
	mc.flagLog = append(mc.flagLog, flagChange{modseq, uid})
}

// trimLog drops log entries every member has reported, and the oldest
// half when the log is too long. mu is held.
func (mc *mbCache) trimLog() {
	low := mc.modseq
	for _, s := range mc.members {
		low = min(low, s.flagModseq)
	}
	floor := max(mc.logFloor, low)
	if len(mc.flagLog) > maxFlagLog {
		l := slices.Clone(mc.flagLog)
		slices.SortFunc(l, func(a, b flagChange) int { return cmpModSeq(a.modseq, b.modseq) })
		floor = max(floor, l[len(l)/2].modseq)
	}
	if floor == mc.logFloor {
		return
	}
	mc.flagLog = slices.DeleteFunc(mc.flagLog, func(f flagChange) bool { return f.modseq <= floor })
	mc.logFloor = floor
}

func cmpModSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// removeRange expunges the messages in r from the cache. mu is held.
func (mc *mbCache) removeRange(r ipc.UIDRange) bool {
	i, _ := mc.find(r.First)
	j := i
	for j < len(mc.msgs) && mc.msgs[j].uid <= r.Last {
		j++
	}
	if i == j {
		return false
	}
	gone := slices.Clone(mc.msgs[i:j])
	mc.msgs = slices.Delete(mc.msgs, i, j)
	mc.toPending(gone)
	return true
}

// toPending hands expunged messages to the members that know them. mu is
// held.
func (mc *mbCache) toPending(gone []cacheMsg) {
	if len(gone) == 0 {
		return
	}
	for _, s := range mc.members {
		n := len(s.pending)
		for _, m := range gone {
			if m.uid <= s.lastUID {
				s.pending = append(s.pending, pendingMsg{m, mc.modseq})
			}
		}
		if len(s.pending) > n && n > 0 {
			slices.SortFunc(s.pending, func(a, b pendingMsg) int { return cmpUID(a.uid, b.uid) })
		}
	}
}

// wakeMembers wakes the members waiting in IDLE. mu is held.
func (mc *mbCache) wakeMembers() {
	for _, s := range mc.members {
		s.conn.wakeIdle()
	}
}

// join adds a session, which is told about every message now in the
// cache. mu must not be held.
func (mc *mbCache) join(s *selected) {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	if n := len(mc.msgs); n > 0 {
		s.lastUID = mc.msgs[n-1].uid
	}
	s.flagModseq = mc.modseq
	mc.members = append(mc.members, s)
}

// leave removes a session.
func (mc *mbCache) leave(s *selected) {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	if i := slices.Index(mc.members, s); i >= 0 {
		mc.members = slices.Delete(mc.members, i, i+1)
	}
	s.pending, s.own = nil, nil
	mc.trimLog()
}

// expungeNow removes uids that store reported expunged from the cache,
// ahead of the pull that will bring them too. mu is held.
func (mc *mbCache) expungeNow(uids []ipc.UIDRange) {
	for _, r := range uids {
		mc.removeRange(r)
	}
}
