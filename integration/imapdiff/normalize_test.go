package imapdiff

import (
	"reflect"
	"testing"
	"time"
)

func TestNormalize(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	raw := []string{
		"A S: * OK [CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN] Dovecot ready.",
		"A C: a LOGIN ${USER} ${PASS}",
		"A S: a OK Logged in (0.001 + 0.000 secs).",
		"A S: * CAPABILITY MOVE IMAP4rev1 condstore",
		"A S: * OK [UIDVALIDITY 1700000000] UIDs valid",
		"A S: * OK [HIGHESTMODSEQ 17] Highest",
		"A S: * 1 FETCH (UID 1 MODSEQ (12) INTERNALDATE \"10-Mar-2026 11:59:00 +0000\")",
		"A S: * 2 FETCH (UID 2 MODSEQ (17) INTERNALDATE \" 5-Feb-2001 09:11:12 +0000\")",
		"A S: * STATUS INBOX (UIDVALIDITY 99 HIGHESTMODSEQ 12 SIZE 40)",
		"A S: * ESEARCH (TAG \"x\") ALL 1:2 MODSEQ 17",
		"A S: b OK [APPENDUID 1700000000 3] Append completed.",
		"A S: c OK [COPYUID 1700000001 1:2 5:6] Done",
		"A S: * ID (\"name\" \"Dovecot\")",
		"A S: + OK",
		"A S: d NO [TRYCREATE] Mailbox doesn't exist: x",
		"A S: e BAD Error in IMAP command",
		"A S: * BYE Logging out",
		"A S: * 1 FETCH (BODY[] {30}",
		"A S| Date: Tue, 10 Mar 2026 11:00:00 +0000",
		"A S| Date: Mon, 1 Jan 2001 10:00:00 +0000",
		"A S+  RFC822.SIZE 30 MODSEQ (12))",
	}
	want := []string{
		"A S: * OK [CAPABILITY AUTH=PLAIN IMAP4rev1 LITERAL+]",
		"A C: a LOGIN ${USER} ${PASS}",
		"A S: a OK",
		"A S: * CAPABILITY condstore IMAP4rev1 MOVE",
		"A S: * OK [UIDVALIDITY <UIDVALIDITY>]",
		"A S: * OK [HIGHESTMODSEQ <MODSEQ-1>]",
		"A S: * 1 FETCH (UID 1 MODSEQ (<MODSEQ-2>) INTERNALDATE \"<DATE>\")",
		"A S: * 2 FETCH (UID 2 MODSEQ (<MODSEQ-1>) INTERNALDATE \" 5-Feb-2001 09:11:12 +0000\")",
		"A S: * STATUS INBOX (UIDVALIDITY <UIDVALIDITY> HIGHESTMODSEQ <MODSEQ-2> SIZE 40)",
		"A S: * ESEARCH (TAG \"x\") ALL 1:2 MODSEQ <MODSEQ-1>",
		"A S: b OK [APPENDUID <UIDVALIDITY> 3]",
		"A S: c OK [COPYUID <UIDVALIDITY> 1:2 5:6]",
		"A S: * ID <ID>",
		"A S: +",
		"A S: d NO [TRYCREATE]",
		"A S: e BAD",
		"A S: * BYE",
		"A S: * 1 FETCH (BODY[] {30}",
		"A S| Date: <DATE>",
		"A S| Date: Mon, 1 Jan 2001 10:00:00 +0000",
		"A S+  RFC822.SIZE 30 MODSEQ (<MODSEQ-2>))",
	}
	got := Normalize(raw, NormalizeOptions{Now: now})
	for i := range want {
		if i >= len(got) || got[i] != want[i] {
			t.Errorf("line %d:\n got %q\nwant %q", i, got[i], want[i])
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d lines, want %d", len(got), len(want))
	}

	sized := Normalize([]string{"A S: * 1 FETCH (RFC822.SIZE 30 BODY[] {30}", "A S: * STATUS x (SIZE 9)"}, NormalizeOptions{Sizes: true, Now: now})
	if w := []string{"A S: * 1 FETCH (RFC822.SIZE <SIZE> BODY[] {<SIZE>}", "A S: * STATUS x (SIZE <SIZE>)"}; !reflect.DeepEqual(sized, w) {
		t.Errorf("Sizes: got %q, want %q", sized, w)
	}
}
