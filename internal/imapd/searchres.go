package imapd

import "moxd/internal/mailproto/imap"

// resolveSet returns the sorted, distinct view indexes a command's set
// names, as sequence numbers or (uid) UIDs.
func (c *conn) resolveSet(set imap.NumSet, uid bool) ([]int, error) {
	if set.Dollar {
		return nil, respBAD("$ needs SEARCHRES, which is not supported")
	}
	return c.sel.resolve(set, uid)
}
