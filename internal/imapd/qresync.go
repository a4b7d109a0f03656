package imapd

// QRESYNC (RFC 7162 §3.2): quick resynchronization at SELECT, UID FETCH
// (CHANGEDSINCE n VANISHED), and VANISHED instead of EXPUNGE.
//
// Implementation notes:
//   - ENABLE QRESYNC also enables CONDSTORE (§3.2.3). From then on every
//     expunge is reported as VANISHED (c.expunged, report in selected.go).
//   - Store keeps a tombstone with its modseq for every expunged UID and
//     never drops them, so VANISHED (EARLIER) is exact: the UIDs expunged
//     after the client's modseq, no more. That is also why seq-match-data
//     is accepted but not needed (§3.2.5.2 is for servers that forget
//     expunges).
//   - A UID store reports expunged that is still in the session's view
//     (expunged after the view was made) is left out of VANISHED
//     (EARLIER): it is reported as VANISHED at the next report, when the
//     view drops it, so the client's message count stays right.
//   - "*" in known UIDs and in the UID set of UID FETCH stands for the
//     highest UID the mailbox has given out (UIDNEXT-1), so it covers
//     expunged UIDs above the highest one left.

import (
	"context"

	"moxd/internal/ipc"
	"moxd/internal/mailproto/imap"
)

func init() {
	enablers["QRESYNC"] = func(c *conn) bool {
		if c.qresync {
			return false
		}
		c.qresync = true
		c.enableCondStore() // RFC 7162 §3.2.3: QRESYNC implies CONDSTORE
		return true
	}
	addCaps(capEntry{name: "QRESYNC"})
}

// expungedSince returns the UIDs store reports expunged after modseq since
// that match and are not in the view, sorted.
func (c *conn) expungedSince(ctx context.Context, since uint64, match func(uid, max uint32) bool) ([]uint32, error) {
	s := c.sel
	var vanished []ipc.UIDRange
	_, err := s.conn.sess.Changes(ctx, s.ref, since, func(r *ipc.ChangesReply) bool {
		vanished = append(vanished, r.Vanished...)
		return true
	})
	if err != nil {
		return nil, storeError(err)
	}
	mc := s.cache
	mc.mu.RLock()
	defer mc.mu.RUnlock()
	max := mc.uidNext - 1
	var l []uint32
	for _, r := range vanished {
		for uid := r.First; uid >= r.First && uid <= r.Last; uid++ {
			if _, inView := s.indexLocked(uid); !inView && match(uid, max) {
				l = append(l, uid)
			}
		}
	}
	return l, nil
}

func appendVanishedEarlier(b []byte, uids []uint32) []byte {
	if len(uids) == 0 {
		return b
	}
	return append(b, "* VANISHED (EARLIER) "+imap.FormatUIDSet(uids)+"\r\n"...)
}

// qresyncSelect sends what changed since the client's modseq, after the
// SELECT responses (RFC 7162 §3.2.5): VANISHED (EARLIER) for the expunged
// known UIDs, then FETCH with UID, FLAGS and MODSEQ for changed messages
// (with no known UIDs given, all of them, new ones included).
func (c *conn) qresyncSelect(ctx context.Context, q *imap.QResyncParams) error {
	known := func(uid, max uint32) bool { return q.KnownUIDs == nil || q.KnownUIDs.Contains(uid, max) }
	gone, err := c.expungedSince(ctx, q.ModSeq, known)
	if err != nil {
		return err
	}
	b := appendVanishedEarlier(nil, gone)
	s := c.sel
	mc := s.cache
	mc.mu.RLock()
	max := mc.uidNext - 1
	for i := range s.countLocked() {
		if m := s.atLocked(i); m.modseq > q.ModSeq && known(m.uid, max) {
			b = c.appendFetchFlags(b, i+1, m, true)
		}
	}
	mc.mu.RUnlock()
	c.w.Write(b)
	return nil
}

// vanishedSince sends VANISHED (EARLIER) for the UIDs of set expunged
// after modseq since: UID FETCH (CHANGEDSINCE since VANISHED), RFC 7162
// §3.2.6, before the FETCH responses.
func (c *conn) vanishedSince(ctx context.Context, set imap.NumSet, since uint64) error {
	if set.Dollar {
		set = c.savedSet()
	}
	gone, err := c.expungedSince(ctx, since, func(uid, max uint32) bool { return set.Contains(uid, max) })
	if err != nil {
		return err
	}
	c.w.Write(appendVanishedEarlier(nil, gone))
	return nil
}
