package storage

// SortKeysReq (IMAP SORT and THREAD keys): pages filled up to a frame
// from account.SortKeys, each key cut to the limits of ipc.SortKey.

import (
	"os"
	"strings"

	"moxd/internal/ipc"
	"moxd/internal/storage/account"
)

// sortKeysPage answers SortKeysReq with the keys of as many messages as
// fit one frame.
func sortKeysPage(a *account.Account, m *ipc.SortKeysReq) (ipc.Message, []*os.File, error) {
	limit := ipc.MaxSortKeyBatch
	if m.Max > 0 {
		limit = min(limit, int(m.Max))
	}
	page := &ipc.SortKeys{Fields: m.Fields}
	size := ipc.SortKeysPageOverhead
	err := a.SortKeys(m.Ref.Mailbox, m.Ref.UIDValidity, accountRanges(m.UIDs), max(m.FromUID, 1), account.SortFields(m.Fields), func(k *account.SortKey) bool {
		ik := ipcSortKey(k)
		n := ik.Size(m.Fields)
		if len(page.Keys) == limit || size+n > ipc.MaxPayload {
			page.Next = k.UID
			return false
		}
		size += n
		page.Keys = append(page.Keys, ik)
		return true
	})
	if err != nil {
		return nil, nil, err
	}
	return page, nil, nil
}

// ipcSortKey converts sort keys within the limits of ipc.SortKey: text is
// made valid UTF-8 and cut, an overlong message id is dropped.
func ipcSortKey(k *account.SortKey) ipc.SortKey {
	addr := func(name, mailbox, host string) ipc.SortAddress {
		return ipc.SortAddress{Name: ipc.ClipText(name, ipc.MaxNameLen), Mailbox: ipc.ClipText(mailbox, ipc.MaxNameLen), Host: ipc.ClipText(host, ipc.MaxNameLen)}
	}
	return ipc.SortKey{
		UID: k.UID, Sent: k.Sent.Unix(), Subject: ipc.ClipText(k.Subject, ipc.MaxSortSubject),
		From:      addr(k.From.Name, k.From.Mailbox, k.From.Host),
		To:        addr(k.To.Name, k.To.Mailbox, k.To.Host),
		Cc:        addr(k.Cc.Name, k.Cc.Mailbox, k.Cc.Host),
		MessageID: sortID(k.MessageID), InReplyTo: sortID(k.InReplyTo), References: sortRefs(k.References),
		Reply: k.Reply,
	}
}

func sortID(id string) string {
	id = strings.ToValidUTF8(id, "?")
	if len(id) > ipc.MaxMessageIDLen {
		return ""
	}
	return id
}

// sortRefs keeps References within ipc.MaxSortRefBytes: when the ids do
// not fit, the first (the thread's root) and as many of the last (the
// nearest ancestors) as fit remain, which is what RFC 5256 §3 REFERENCES
// mostly links by.
func sortRefs(l []string) []string {
	var ids []string
	size := 0
	for _, id := range l {
		if id = sortID(id); id != "" {
			ids = append(ids, id)
			size += 2 + len(id)
		}
	}
	if size <= ipc.MaxSortRefBytes {
		return ids
	}
	budget := ipc.MaxSortRefBytes - (2 + len(ids[0]))
	i := len(ids)
	for i > 1 && budget >= 2+len(ids[i-1]) {
		budget -= 2 + len(ids[i-1])
		i--
	}
	return append([]string{ids[0]}, ids[i:]...)
}
