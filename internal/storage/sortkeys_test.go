package storage

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"moxd/internal/ipc"
	"moxd/internal/storage/account"
)

// TestSortKeyLimits checks that keys of any size become an entry that
// fits a SortKeys page: long text is cut to valid UTF-8, long ids are
// dropped, and an overlong References keeps its first and last ids.
func TestSortKeyLimits(t *testing.T) {
	var refs []string
	for i := range 500 {
		refs = append(refs, fmt.Sprintf("<%030d@example.org>", i))
	}
	long := strings.Repeat("é", 2000) // 4000 bytes
	k := &account.SortKey{
		UID: 5, Sent: time.Unix(1700000000, 0), Subject: long + "\xff", Reply: true,
		MessageID: "<" + strings.Repeat("x", ipc.MaxMessageIDLen) + ">", InReplyTo: refs[0],
		References: refs,
	}
	k.From.Name, k.From.Mailbox, k.From.Host = long, "a\xffb", "example.org"
	ik := ipcSortKey(k)
	if n, err := ipc.PayloadSize(&ipc.SortKeys{Fields: 0x3f, Keys: []ipc.SortKey{ik}}); err != nil || n > ipc.MaxPayload {
		t.Fatalf("entry does not fit a frame: %d bytes, %v", n, err)
	}
	if len(ik.Subject) > ipc.MaxSortSubject || !strings.HasPrefix(long, ik.Subject) || ik.From.Mailbox != "a?b" {
		t.Errorf("text not clipped: subject %d bytes, mailbox %q", len(ik.Subject), ik.From.Mailbox)
	}
	if ik.MessageID != "" || ik.InReplyTo != refs[0] || !ik.Reply || ik.Sent != 1700000000 {
		t.Errorf("ids and flags: %q %q %v %d", ik.MessageID, ik.InReplyTo, ik.Reply, ik.Sent)
	}
	got := ik.References
	if got[0] != refs[0] || got[len(got)-1] != refs[len(refs)-1] || len(got) >= len(refs) {
		t.Fatalf("references: %d ids from %q to %q", len(got), got[0], got[len(got)-1])
	}
	// The ids after the first are the last ones, in order.
	if tail := refs[len(refs)-(len(got)-1):]; !slices.Equal(got[1:], tail) {
		t.Errorf("references after the first are not the last %d in order", len(tail))
	}
	// Short lists stay as they are.
	if l := sortRefs(refs[:3]); !slices.Equal(l, refs[:3]) {
		t.Errorf("short references changed: %q", l)
	}
}
