package account

import (
	"slices"
	"testing"
	"time"

	"moxd/internal/mailproto/message"
)

func TestSortKeys(t *testing.T) {
	a, tmp := newAccount(t, Options{})
	received := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	texts := []string{
		// uid 1: everything set; the display name and subject encoded.
		"From: =?utf-8?q?Ren=C3=A9?= <rene@example.org>\r\nTo: undisclosed:;, Bob <bob@example.com>\r\n" +
			"Cc: carol@example.net\r\nSubject: Re: [list] =?utf-8?q?Caf=C3=A9?=\r\n" +
			"Date: Tue, 5 Mar 2024 23:30:00 -0800\r\nMessage-ID: <m1@example.org>\r\n" +
			"In-Reply-To: <p1@example.org> <p2@example.org>\r\nReferences: <r0@x>\r\n <r1@x>\r\n\r\nbody\r\n",
		// uid 2: no Date, no addresses, a list tag only.
		"Subject: [list] Plain\r\n\r\nbody\r\n",
		// uid 3: a Date that does not parse.
		"Subject: x\r\nDate: yesterday\r\n\r\nbody\r\n",
	}
	for _, text := range texts {
		res := a.Deliver(testCtx(t), []Delivery{{Body: newBody(t, tmp, text), Received: received}})
		if res[0].Err != nil {
			t.Fatal(res[0].Err)
		}
	}
	mb := mustMailbox(t, a, "INBOX")
	collect := func(uids []UIDRange, from uint32, fields SortFields) []SortKey {
		t.Helper()
		var l []SortKey
		err := a.SortKeys(mb.ID, mb.UIDValidity, uids, from, fields, func(k *SortKey) bool {
			l = append(l, *k)
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	all := SortDate | SortSubject | SortFrom | SortTo | SortCc | SortThread
	l := collect([]UIDRange{{1, 0xffffffff}}, 1, all)
	if len(l) != 3 {
		t.Fatalf("got %d keys, want 3", len(l))
	}
	k := l[0]
	if want := time.Date(2024, 3, 6, 7, 30, 0, 0, time.UTC); !k.Sent.Equal(want) {
		t.Errorf("sent %v, want %v", k.Sent, want)
	}
	if k.Subject != "Café" || !k.Reply {
		t.Errorf("subject %q reply %v", k.Subject, k.Reply)
	}
	if k.From != (message.Address{Name: "René", Mailbox: "rene", Host: "example.org"}) {
		t.Errorf("from %+v", k.From)
	}
	if k.To != (message.Address{Name: "Bob", Mailbox: "bob", Host: "example.com"}) {
		t.Errorf("to %+v: the group marker must be skipped", k.To)
	}
	if k.Cc.Mailbox != "carol" {
		t.Errorf("cc %+v", k.Cc)
	}
	if k.MessageID != "<m1@example.org>" || k.InReplyTo != "<p1@example.org>" || !slices.Equal(k.References, []string{"<r0@x>", "<r1@x>"}) {
		t.Errorf("ids %q %q %q", k.MessageID, k.InReplyTo, k.References)
	}
	if l[1].Subject != "Plain" || l[1].Reply {
		t.Errorf("uid 2 subject %q reply %v", l[1].Subject, l[1].Reply)
	}
	for _, k := range l[1:] {
		// RFC 5256 §2.2: no or a broken Date: the internal date.
		if !k.Sent.Equal(received) {
			t.Errorf("uid %d sent %v, want the received time", k.UID, k.Sent)
		}
		if k.From != (message.Address{}) {
			t.Errorf("uid %d from %+v", k.UID, k.From)
		}
	}

	// Only the groups asked for.
	if k := collect([]UIDRange{{1, 1}}, 1, SortSubject)[0]; k.Subject != "Café" || k.Reply || k.From.Mailbox != "" || k.MessageID != "" || !k.Sent.Equal(received) {
		t.Errorf("subject only: %+v", k)
	}
	// Ranges in any order, from a UID on, expunged messages skipped.
	if _, err := a.Store(testCtx(t), mb.ID, mb.UIDValidity, []UIDRange{{2, 2}}, StoreAdd, FlagDeleted, nil, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Expunge(testCtx(t), mb.ID, mb.UIDValidity, nil); err != nil {
		t.Fatal(err)
	}
	uidsOf := func(l []SortKey) []uint32 {
		var u []uint32
		for _, k := range l {
			u = append(u, k.UID)
		}
		return u
	}
	if got := uidsOf(collect([]UIDRange{{3, 3}, {1, 2}}, 1, SortDate)); !slices.Equal(got, []uint32{1, 3}) {
		t.Errorf("after expunge: %v", got)
	}
	if got := uidsOf(collect([]UIDRange{{1, 0xffffffff}}, 2, SortDate)); !slices.Equal(got, []uint32{3}) {
		t.Errorf("from uid 2: %v", got)
	}
	// fn returning false stops.
	n := 0
	a.SortKeys(mb.ID, mb.UIDValidity, []UIDRange{{1, 10}}, 1, SortDate, func(*SortKey) bool { n++; return false })
	if n != 1 {
		t.Errorf("fn called %d times after returning false", n)
	}
	if err := a.SortKeys(mb.ID, mb.UIDValidity+1, []UIDRange{{1, 10}}, 1, SortDate, func(*SortKey) bool { return true }); err == nil {
		t.Errorf("stale uidvalidity accepted")
	}
}

func TestSubjectIsReply(t *testing.T) {
	tests := []struct {
		subject string
		reply   bool
	}{
		{"Hello", false},
		{"Re: Hello", true},
		{"RE:Hello", true},
		{"Fwd: Hello", true},
		{"fw: Hello", true},
		{"Hello (fwd)", true},
		{"[fwd: Hello]", true},
		{"[list] Hello", false},
		{"[list]  [other] Hello  ", false},
		{"[list] Re: Hello", true},
		{"[only a blob]", false},
		{"Re[2]: Hello", true},
		{"Regarding this", false},
	}
	for _, tc := range tests {
		if got := subjectIsReply(tc.subject, message.BaseSubject(tc.subject)); got != tc.reply {
			t.Errorf("subjectIsReply(%q): %v", tc.subject, got)
		}
	}
}
