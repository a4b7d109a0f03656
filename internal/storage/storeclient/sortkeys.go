package storeclient

import (
	"context"
	"fmt"

	"moxd/internal/ipc"
)

// SortKeys calls fn with each page of the sort and thread keys (RFC 5256)
// of the messages in uids, with the key groups in fields (ipc.SortKey*),
// in UID order, until done or fn returns false. Messages expunged
// meanwhile are left out. The ranges must be ascending; more than
// ipc.MaxRanges of them go in several requests.
func (s *Session) SortKeys(ctx context.Context, ref ipc.MailboxRef, uids []ipc.UIDRange, fields uint8, fn func([]ipc.SortKey) bool) error {
	for len(uids) > 0 {
		chunk := uids[:min(len(uids), ipc.MaxRanges)]
		uids = uids[len(chunk):]
		from := uint32(1)
		for {
			rep, err := s.call(ctx, "sort keys", &ipc.SortKeysReq{Ref: ref, UIDs: chunk, FromUID: from, Fields: fields})
			if err != nil {
				return err
			}
			p := rep.Msg.(*ipc.SortKeys)
			if len(p.Keys) > 0 && !fn(p.Keys) {
				return nil
			}
			if p.Next == 0 {
				break
			}
			if p.Next <= from {
				return fmt.Errorf("store sort keys: %w: page did not advance", ErrUnavailable)
			}
			from = p.Next
		}
	}
	return nil
}
