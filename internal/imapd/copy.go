package imapd

// COPY and MOVE with their UID forms (RFC 9051 §6.4.7, §6.4.8; RFC 6851)
// and COPYUID (RFC 4315 §3), through store's CopyMessages, which copies or
// moves the messages of one request in one transaction.
//
// A request carries at most ipc.MaxRanges UID ranges. COPY must be all
// or nothing (RFC 9051 §6.4.7), so a set that needs more requests is
// refused with [LIMIT]; MOVE may go in several requests, since each moves
// its messages completely or not at all (RFC 6851 §3.3). Copies into the
// selected mailbox itself show up with the next report of its changes.

import (
	"errors"

	"moxd/internal/ipc"
	"moxd/internal/mailproto/imap"
	"moxd/internal/storage/storeclient"
)

func init() {
	addVerbs(map[string]verb{
		"COPY": {states(stateSelected), (*conn).cmdCopy},
		"MOVE": {states(stateSelected), (*conn).cmdCopy}, // RFC 6851
	})
	addCaps(capEntry{name: "MOVE"})
}

// moved collects what the requests of one COPY or MOVE did.
type moved struct {
	uidValidity uint32
	from, to    []uint32
	complete    bool // from and to are known for every request
}

func (m *moved) add(res *ipc.CopyResult) {
	if len(m.from) > 0 && res.UIDValidity != m.uidValidity {
		m.complete = false
	}
	m.uidValidity = res.UIDValidity
	from, to := expandRanges(res.From), expandRanges(res.To)
	if len(from) != len(to) {
		// Store leaves both out when they do not fit its reply.
		m.complete = false
		return
	}
	m.from = append(m.from, from...)
	m.to = append(m.to, to...)
}

// code returns the COPYUID response code, or "" when the UIDs are not
// all known or nothing was copied.
func (m *moved) code() string {
	if !m.complete || len(m.from) == 0 {
		return ""
	}
	return imap.CodeCopyUID(m.uidValidity, m.from, m.to)
}

func (c *conn) cmdCopy(cmd *imap.Command) error {
	s := c.sel
	a := cmd.Args.(*imap.CopyArgs)
	move := cmd.Name == "MOVE"
	if move && s.readOnly {
		// RFC 6851 §3.3: MOVE expunges, which EXAMINE does not allow.
		return errReadOnly()
	}
	l, err := c.resolveSet(a.Set, cmd.UID)
	if err != nil {
		return err
	}
	if len(l) == 0 {
		// RFC 9051 §6.4.9: UIDs that match no message are no error.
		return &okText{text: "no messages to " + cmd.Name}
	}
	chunks := s.uidRanges(l)
	if !move && len(chunks) > 1 {
		return respNO(imap.CodeLimit, "COPY of more than %d UID ranges at once is refused: copy fewer messages per command", ipc.MaxRanges)
	}
	dest := canonName(a.Mailbox)
	ctx, cancel := c.callCtx()
	defer cancel()
	m := &moved{complete: true}
	var gone []ipc.UIDRange // source UIDs moved out
	var failed error
	for _, ch := range chunks {
		res, err := c.sess.Copy(ctx, s.ref, ch, dest, move)
		if err != nil {
			failed = copyError(err)
			break
		}
		m.add(res)
		if move {
			// Store moved every message of ch that still existed: what
			// it does not list in From was expunged already.
			gone = append(gone, ch...)
		}
	}
	if !move {
		if failed != nil {
			return failed
		}
		// RFC 4315 §3: COPYUID in the tagged OK.
		return &okText{code: m.code(), text: "COPY completed"}
	}
	if len(gone) > 0 {
		// RFC 6851 §4.3: COPYUID in an untagged OK before the EXPUNGE
		// responses (c.expunged sends VANISHED instead under QRESYNC).
		if code := m.code(); code != "" {
			c.writeStatus("", imap.OK, code, "moved")
		}
		c.expunged(gone)
	}
	if failed != nil {
		return failed
	}
	return &okText{text: "MOVE completed"}
}

// copyError maps a failed copy or move: a destination that does not
// exist is NO [TRYCREATE] (RFC 9051 §6.4.7), over quota [OVERQUOTA].
func copyError(err error) error {
	if errors.Is(err, storeclient.ErrNotFound) {
		return respNO(imap.CodeTryCreate, "destination mailbox does not exist, CREATE it first")
	}
	return storeError(err)
}

// expandRanges lists the UIDs of ranges in order.
func expandRanges(l []ipc.UIDRange) []uint32 {
	var uids []uint32
	for _, r := range l {
		for u := r.First; ; u++ {
			uids = append(uids, u)
			if u == r.Last {
				break
			}
		}
	}
	return uids
}
