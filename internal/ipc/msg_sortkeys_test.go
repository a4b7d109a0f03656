package ipc

import (
	"strings"
	"testing"
)

// TestSortKeySize checks SortKey.Size against the encoding, and that an
// entry at every limit fits one frame, as store relies on to always make
// progress.
func TestSortKeySize(t *testing.T) {
	id := "<" + strings.Repeat("i", MaxMessageIDLen-2) + ">"
	var refs []string
	for n := 0; n+2+len(id) <= MaxSortRefBytes; n += 2 + len(id) {
		refs = append(refs, id)
	}
	long := strings.Repeat("n", MaxNameLen)
	addr := SortAddress{Name: long, Mailbox: long, Host: long}
	huge := SortKey{UID: 1, Sent: 1, Subject: strings.Repeat("s", MaxSortSubject), Reply: true,
		From: addr, To: addr, Cc: addr, MessageID: id, InReplyTo: id, References: refs}
	small := SortKey{UID: 2, Subject: "x", From: SortAddress{Mailbox: "a", Host: "b"}}
	for _, fields := range []uint8{0, SortKeyDate, SortKeySubject, SortKeyFrom | SortKeyCc, SortKeyThread, sortKeyAll} {
		for _, k := range []SortKey{huge, small} {
			page := &SortKeys{Fields: fields, Keys: []SortKey{k}}
			n, err := PayloadSize(page)
			if err != nil {
				t.Fatalf("fields %#x: one entry does not fit a frame: %v", fields, err)
			}
			if want := SortKeysPageOverhead + k.Size(fields); n != want {
				t.Errorf("fields %#x uid %d: encoded %d bytes, Size says %d", fields, k.UID, n, want)
			}
		}
	}
	over := huge
	over.References = append(over.References, id)
	if _, err := PayloadSize(&SortKeys{Fields: SortKeyThread, Keys: []SortKey{over}}); err == nil {
		t.Errorf("references beyond MaxSortRefBytes encoded")
	}
	if _, err := PayloadSize(&SortKeysReq{Fields: 0x80}); err == nil {
		t.Errorf("unknown field bit encoded")
	}
}
