package imapd

// SEARCHRES (RFC 5182): the result SEARCH RETURN (SAVE) keeps, and "$",
// which names it in any later command that takes a sequence set.
//
// Implementation notes:
//   - The saved result is a list of UIDs tied to the selection it was
//     made in (the *selected of SELECT/EXAMINE). A new SELECT or EXAMINE,
//     UNSELECT and CLOSE all replace or drop c.sel, so a result of another
//     selection reads as empty without those commands knowing about it
//     (RFC 5182 §2.1: reset on SELECT, EXAMINE, and leaving the selected
//     state).
//   - "$" resolves through the view: a saved UID whose message was
//     expunged has left the view and so drops out of the result (§2.1),
//     and UIDs are never reused, so nothing can take its place.

import (
	"slices"

	"moxd/internal/mailproto/imap"
)

// savedResult is the search result variable of RFC 5182.
type savedResult struct {
	sel  *selected // the selection the result belongs to
	uids []uint32  // ascending
}

// saveResult sets the search result variable to the messages with the
// view indexes l (in any order); nil empties it.
func (c *conn) saveResult(l []int) {
	uids := make([]uint32, 0, len(l))
	for _, i := range l {
		uids = append(uids, c.sel.at(i).uid)
	}
	slices.Sort(uids)
	c.saved = savedResult{sel: c.sel, uids: slices.Compact(uids)}
}

// savedSet returns the search result variable as a UID set; empty when
// nothing was saved in the current selection.
func (c *conn) savedSet() imap.NumSet {
	var set imap.NumSet
	if c.saved.sel != c.sel || c.sel == nil {
		return set
	}
	u := c.saved.uids
	for i := 0; i < len(u); {
		j := i
		for j+1 < len(u) && u[j+1] == u[j]+1 {
			j++
		}
		set.Ranges = append(set.Ranges, imap.NumRange{Start: u[i], End: u[j]})
		i = j + 1
	}
	return set
}

// resolveSet returns the sorted, distinct view indexes a command's set
// names, as sequence numbers or (uid) UIDs. "$" is the saved search
// result, the same messages for UID and non-UID commands (RFC 5182 §2.1);
// without a saved result it is the empty set (§2.1: the variable starts
// empty).
func (c *conn) resolveSet(set imap.NumSet, uid bool) ([]int, error) {
	if set.Dollar {
		saved := c.savedSet()
		if len(saved.Ranges) == 0 {
			return nil, nil
		}
		return c.sel.resolve(saved, true)
	}
	return c.sel.resolve(set, uid)
}
