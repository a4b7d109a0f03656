package imapdiff

import (
	"reflect"
	"strings"
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
		"A S: * 1 FETCH (INTERNALDATE \"<DATE>\" MODSEQ (<MODSEQ-2>) UID 1)",
		"A S: * 2 FETCH (INTERNALDATE \" 5-Feb-2001 09:11:12 +0000\" MODSEQ (<MODSEQ-1>) UID 2)",
		"A S: * STATUS INBOX (UIDVALIDITY <UIDVALIDITY> HIGHESTMODSEQ <MODSEQ-2> SIZE 40)",
		"A S: * ESEARCH (TAG \"x\") ALL 1:2 MODSEQ <MODSEQ-1>",
		"A S: b OK [APPENDUID <UIDVALIDITY> 3]",
		"A S: c OK [COPYUID <UIDVALIDITY> 1:2 5:6]",
		"A S: * ID <ID>",
		"A S: +",
		"A S: d NO [TRYCREATE]",
		"A S: e BAD",
		"A S: * BYE",
		"A S: * 1 FETCH (MODSEQ (<MODSEQ-2>) RFC822.SIZE 30 BODY[] {30}",
		"A S| Date: <DATE>",
		"A S| Date: Mon, 1 Jan 2001 10:00:00 +0000",
		"A S+ )",
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

func TestCanonicalOrder(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	// The same responses in two servers' orders normalise alike.
	a := []string{
		"A C: b SELECT INBOX",
		"A S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)",
		"A S: * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted.",
		"A S: * 2 EXISTS",
		"A S: * 0 RECENT",
		"A S: * OK [UIDVALIDITY 7] UIDs valid",
		"A S: * OK [UIDNEXT 3] Predicted next UID",
		"A S: * OK [HIGHESTMODSEQ 5] Highest",
		"A S: * VANISHED (EARLIER) 1",
		"A S: * 1 FETCH (UID 2 MODSEQ (4) FLAGS (\\Seen))",
		"A S: b OK [READ-WRITE] Select completed.",
		"A C: c STORE 1 +FLAGS (\\Flagged)",
		"A S: * 1 FETCH (MODSEQ (6) FLAGS (\\Flagged \\Seen))",
		"A S: c OK",
		"A C: d FETCH 1 BODY[]",
		"A S: * 1 FETCH (FLAGS (\\Flagged \\Seen) BODY[] {5}",
		"A S| hello",
		"A S+  BODY[HEADER.FIELDS (A B)]<0> {2}",
		"A S| ",
		"A S+ )",
		"A C: e LIST \"\" \"*\" RETURN (STATUS (MESSAGES))",
		"A S: * LIST (\\HasNoChildren \\Sent) \"/\" Sent",
		"A S: * STATUS Sent (MESSAGES 0)",
		"A S: * LIST (\\HasNoChildren) \"/\" INBOX",
		"A S: * STATUS INBOX (MESSAGES 2)",
		"A S: e OK",
	}
	b := []string{
		"A C: b SELECT INBOX",
		"A S: * 2 EXISTS",
		"A S: * 0 RECENT",
		"A S: * FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft)",
		"A S: * OK [PERMANENTFLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft \\*)] kept",
		"A S: * OK [UIDVALIDITY 9] UIDs valid",
		"A S: * OK [UIDNEXT 3] predicted",
		"A S: * OK [HIGHESTMODSEQ 50] highest",
		"A S: * VANISHED (EARLIER) 1",
		"A S: * 1 FETCH (UID 2 FLAGS (\\Seen) MODSEQ (40))",
		"A S: b OK [READ-WRITE] SELECT completed",
		"A C: c STORE 1 +FLAGS (\\Flagged)",
		"A S: * 1 FETCH (FLAGS (\\Seen \\Flagged) MODSEQ (60))",
		"A S: c OK",
		"A C: d FETCH 1 BODY[]",
		"A S: * 1 FETCH (BODY[] {5}",
		"A S| hello",
		"A S+  BODY[HEADER.FIELDS (A B)]<0> {2}",
		"A S| ",
		"A S+  FLAGS (\\Seen \\Flagged))",
		"A C: e LIST \"\" \"*\" RETURN (STATUS (MESSAGES))",
		"A S: * LIST (\\HasNoChildren) \"/\" INBOX",
		"A S: * STATUS INBOX (MESSAGES 2)",
		"A S: * LIST (\\Sent \\HasNoChildren) \"/\" Sent",
		"A S: * STATUS Sent (MESSAGES 0)",
		"A S: e OK",
	}
	want := []string{
		"A C: b SELECT INBOX",
		"A S: * FLAGS (\\Answered \\Deleted \\Draft \\Flagged \\Seen)",
		"A S: * OK [PERMANENTFLAGS (\\* \\Answered \\Deleted \\Draft \\Flagged \\Seen)]",
		"A S: * 2 EXISTS",
		"A S: * 0 RECENT",
		"A S: * OK [UIDVALIDITY <UIDVALIDITY>]",
		"A S: * OK [UIDNEXT 3]",
		"A S: * OK [HIGHESTMODSEQ <MODSEQ-1>]",
		"A S: * VANISHED (EARLIER) 1",
		"A S: * 1 FETCH (FLAGS (\\Seen) MODSEQ (<MODSEQ-2>) UID 2)",
		"A S: b OK [READ-WRITE]",
		"A C: c STORE 1 +FLAGS (\\Flagged)",
		"A S: * 1 FETCH (FLAGS (\\Flagged \\Seen) MODSEQ (<MODSEQ-3>))",
		"A S: c OK",
		"A C: d FETCH 1 BODY[]",
		"A S: * 1 FETCH (FLAGS (\\Flagged \\Seen) BODY[HEADER.FIELDS (A B)]<0> {2}",
		"A S|",
		"A S+  BODY[] {5}",
		"A S| hello",
		"A S+ )",
		"A C: e LIST \"\" \"*\" RETURN (STATUS (MESSAGES))",
		"A S: * LIST (\\HasNoChildren) \"/\" INBOX",
		"A S: * STATUS INBOX (MESSAGES 2)",
		"A S: * LIST (\\HasNoChildren \\Sent) \"/\" Sent",
		"A S: * STATUS Sent (MESSAGES 0)",
		"A S: e OK",
	}
	for name, raw := range map[string][]string{"a": a, "b": b} {
		if got := Normalize(raw, NormalizeOptions{Now: now}); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got\n%s\nwant\n%s", name, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}

	// Not reordered: a response split by a literal where none is
	// expected, and responses of different commands.
	keep := []string{
		"A C: f LIST \"\" \"*\"",
		"A S: * LIST () \"/\" {3}",
		"A S| Zed",
		"A S: * LIST () \"/\" Abc",
		"A S: f OK",
		"A S: * 3 EXISTS",
		"A S: * FLAGS (\\Seen)",
	}
	if got := Normalize(keep, NormalizeOptions{Now: now}); !reflect.DeepEqual(got, keep) {
		t.Errorf("reordered what it should not:\n%s", strings.Join(got, "\n"))
	}
}
