package imapd

// CONDSTORE (RFC 7162 §3.1): mod-sequences in SELECT, FETCH and STORE.
//
// Implementation notes:
//   - ENABLE CONDSTORE, SELECT/EXAMINE (CONDSTORE), FETCH MODSEQ or
//     CHANGEDSINCE and STORE UNCHANGEDSINCE enable CONDSTORE for the rest
//     of the session (§3.1); from then on every untagged FETCH with flags
//     includes UID and MODSEQ (§3.2), and STORE .SILENT still reports the updated
//     messages' MODSEQ (§3.1.3).
//   - HIGHESTMODSEQ is sent with every SELECT/EXAMINE: store keeps
//     modseqs for all mailboxes (§3.1.2.1).
//   - UNCHANGEDSINCE is checked by store against its current modseqs, so
//     a change by another session the view has not seen yet also fails the
//     test. UNCHANGEDSINCE 0 fails for every message (modseqs are >= 1)
//     and store is not asked.
//   - The session's own changes go into the shared cache by a pull right
//     after store answers; they are marked as its own (selected.own), so
//     the report after the command does not send them a second time.
//   - QRESYNC is in qresync.go.

import (
	"context"
	"slices"
	"strconv"

	"moxd/internal/ipc"
	"moxd/internal/mailproto/imap"
)

func (c *conn) enableCondStore() {
	c.condstore = true
}

func appendModSeq(b []byte, modseq uint64) []byte {
	b = append(b, "MODSEQ ("...)
	b = strconv.AppendUint(b, modseq, 10)
	return append(b, ')')
}

// storeMode maps the STORE operation to store's mode.
func storeMode(op imap.StoreOp) uint8 {
	return map[imap.StoreOp]uint8{imap.StoreReplace: ipc.StoreSet, imap.StoreAdd: ipc.StoreAdd, imap.StoreRemove: ipc.StoreRemove}[op]
}

// modifiedFallback finds the messages of ch that an UNCHANGEDSINCE store
// kept when store's Modified list was cut: modseq above unchangedSince and
// not one this store assigned.
func (c *conn) modifiedFallback(ctx context.Context, ch []ipc.UIDRange, unchangedSince uint64, res *ipc.FlagsStored) ([]ipc.UIDRange, error) {
	var l []ipc.UIDRange
	_, err := c.sess.Changes(ctx, c.sel.ref, unchangedSince, func(r *ipc.ChangesReply) bool {
		for _, m := range r.Changed {
			ours := res.Changed > 0 && m.ModSeq > res.FromModSeq && m.ModSeq <= res.ToModSeq
			if m.ModSeq > unchangedSince && !ours && inRanges(ch, m.UID) {
				l = append(l, ipc.UIDRange{First: m.UID, Last: m.UID})
			}
		}
		return true
	})
	if err != nil {
		return nil, storeError(err)
	}
	return l, nil
}

func (c *conn) cmdStore(cmd *imap.Command) error {
	s := c.sel
	a := cmd.Args.(*imap.StoreArgs)
	if s.readOnly {
		return errReadOnly()
	}
	flags, kw, err := parseFlags(a.Flags)
	if err != nil {
		return err
	}
	l, err := c.resolveSet(a.Set, cmd.UID)
	if err != nil {
		return err
	}
	if a.HasUnchangedSince {
		c.enableCondStore()
	}
	before := make([]uint64, len(l))
	for j, i := range l {
		before[j] = s.at(i).modseq
	}
	ctx, cancel := c.callCtx()
	defer cancel()
	var modified []ipc.UIDRange // not stored: UNCHANGEDSINCE failed
	stored := false
	for _, ch := range s.uidRanges(l) {
		if a.HasUnchangedSince && a.UnchangedSince == 0 {
			modified = append(modified, ch...)
			continue
		}
		res, err := c.sess.Store(ctx, s.ref, ch, storeMode(a.Op), flags, kw, a.UnchangedSince)
		if err != nil {
			return storeError(err)
		}
		// Reported below; the report after the command skips it.
		s.addOwn(res, ch)
		stored = stored || res.Changed > 0
		mod := res.Modified
		if res.ModifiedMore {
			if mod, err = c.modifiedFallback(ctx, ch, a.UnchangedSince, res); err != nil {
				return err
			}
		}
		modified = append(modified, mod...)
	}
	if stored {
		// The new flags and modseqs, into the shared cache.
		if err := s.cache.pull(ctx, s.conn.sess, s.ref); err != nil {
			return storeError(err)
		}
	}
	var failed []uint32
	for j, i := range l {
		m := s.at(i)
		switch {
		case inRanges(modified, m.uid):
			if cmd.UID {
				failed = append(failed, m.uid)
			} else {
				failed = append(failed, uint32(i+1))
			}
		case !a.Silent:
			c.writeFetchFlags(i, cmd.UID)
		case c.condstore && m.modseq > before[j]:
			// §3.1.3: .SILENT still reports the new MODSEQ.
			b := []byte("* " + strconv.Itoa(i+1) + " FETCH (UID ")
			b = strconv.AppendUint(b, uint64(m.uid), 10)
			b = appendModSeq(append(b, ' '), m.modseq)
			c.w.Write(append(b, ")\r\n"...))
		}
	}
	if len(failed) > 0 {
		slices.Sort(failed)
		return &okText{code: imap.CodeModified(failed), text: "conditional STORE failed for some messages"}
	}
	return nil
}
