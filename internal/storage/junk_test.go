package storage

import (
	"fmt"
	"slices"
	"testing"

	"moxd/internal/config"
	"moxd/internal/ipc"
	"moxd/internal/storage/account"
)

// TestJunkFlagsConfig checks that the junk flag settings of the store
// slice reach the accounts, at open and at a reconfiguration.
func TestJunkFlagsConfig(t *testing.T) {
	accounts := []config.StoreAccount{
		{Name: "mjl", Addresses: []string{"mjl@example.org", "postmaster@example.org"}},
		{Name: "off", Addresses: []string{"off@example.org"}, NoJunkFlags: true},
		{Name: "custom", Addresses: []string{"custom@example.org"}, JunkFlags: []config.JunkFlag{
			{Mailbox: "lists/.*", Flag: config.JunkFlagJunk},
			{Mailbox: "archive", Flag: config.JunkFlagNone},
		}},
	}
	ts := newTestStore(t, accounts...)
	ctx := testContext(t)
	keywordsAfter := func(acct, mailbox string) []string {
		t.Helper()
		a := mustAccount(t, ts.sv.store, acct)
		body, err := account.BodyFromBytes(ts.sv.store.tmpDir, message(1), true)
		if err != nil {
			t.Fatal(err)
		}
		defer body.Remove()
		res := a.Deliver(ctx, []account.Delivery{{Body: body, Mailbox: mailbox}})
		if res[0].Err != nil {
			t.Fatal(res[0].Err)
		}
		mb, err := a.Mailbox(mailbox)
		if err != nil {
			t.Fatal(err)
		}
		l, err := a.Messages(mb.ID, mb.UIDValidity, res[0].UID, 1)
		if err != nil || len(l) != 1 {
			t.Fatalf("messages: %v %v", l, err)
		}
		return l[0].Keywords
	}
	for _, tc := range []struct {
		acct, mailbox string
		want          []string
	}{
		{"mjl", "Junk", []string{"$Junk"}},
		{"mjl", "Archive", []string{"$NotJunk"}},
		{"off", "Junk", nil},
		{"off", "Archive", nil},
		{"custom", "Lists/offers", []string{"$Junk"}},
		{"custom", "Junk", nil}, // no rule matches: the defaults do not apply
	} {
		if got := keywordsAfter(tc.acct, tc.mailbox); !slices.Equal(got, tc.want) {
			t.Errorf("account %s, delivery to %s: keywords %v, want %v", tc.acct, tc.mailbox, got, tc.want)
		}
	}

	// A new configuration changes the rules of open accounts.
	accounts[0].NoJunkFlags = true
	accounts[1].NoJunkFlags = false
	if err := ts.sv.store.configure(config.StoreSlice{Domains: []config.AddrDomain{{Name: "example.org"}}, Accounts: accounts}); err != nil {
		t.Fatal(err)
	}
	if got := keywordsAfter("mjl", "Junk"); got != nil {
		t.Errorf("after turning junk flags off: keywords %v", got)
	}
	if got := keywordsAfter("off", "Junk"); !slices.Equal(got, []string{"$Junk"}) {
		t.Errorf("after turning junk flags on: keywords %v, want $Junk", got)
	}

	// A rule that does not convert (config would refuse it) is an error and
	// turns the account's flags off.
	bad := config.StoreAccount{Name: "bad", JunkFlags: []config.JunkFlag{{Mailbox: "(", Flag: config.JunkFlagJunk}}}
	if r, err := junkRules(bad); err == nil || !r.Off {
		t.Errorf("bad pattern: rules %+v, error %v; want off and an error", r, err)
	}
}

// TestListingFitsFrames lists and pages through changes of a mailbox
// whose messages carry many keywords: full pages would not fit a frame, so
// the store sends smaller ones, and every message arrives once, with its
// save date.
func TestListingFitsFrames(t *testing.T) {
	ts := newTestStore(t)
	ts.setPassword("mjl", "pw")
	ctx := testContext(t)
	a := mustAccount(t, ts.sv.store, "mjl")
	body, err := account.BodyFromBytes(ts.sv.store.tmpDir, message(1), true)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Remove()
	var kw []string
	for i := range 20 {
		kw = append(kw, fmt.Sprintf("label%02d", i))
	}
	const n = 1000
	ds := make([]account.Delivery, n)
	for i := range ds {
		ds[i] = account.Delivery{Body: body, Keywords: kw}
	}
	for _, d := range a.Deliver(ctx, ds) {
		if d.Err != nil {
			t.Fatal(d.Err)
		}
	}
	s, err := ts.login(ts.conn(ipc.RoleIMAP), "mjl", "pw")
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := s.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	ref := s.Ref(inbox)
	check := func(what string, m ipc.MessageMeta, nkw int) {
		if nkw != len(kw) || m.SaveDate == 0 || m.SaveDate != m.Received {
			t.Errorf("%s uid %d: %d keywords, saved %d, received %d; want %d keywords, saved when received", what, m.UID, nkw, m.SaveDate, m.Received, len(kw))
		}
	}
	seen := map[uint32]bool{}
	batches := 0
	err = s.Messages(ctx, ref, 1, func(_ []string, l []ipc.MessageMeta) bool {
		batches++
		for _, m := range l {
			if seen[m.UID] {
				t.Errorf("uid %d listed twice", m.UID)
			}
			seen[m.UID] = true
			check("listed", m, len(m.Keywords))
		}
		return true
	})
	if err != nil || len(seen) != n {
		t.Fatalf("listed %d messages in %d batches (%v), want %d", len(seen), batches, err, n)
	}
	if batches <= n/ipc.MaxMetaBatch+1 {
		t.Errorf("%d batches: pages were not made smaller than %d messages", batches, ipc.MaxMetaBatch)
	}

	if _, err := s.Store(ctx, ref, []ipc.UIDRange{{First: 1, Last: 0xffffffff}}, ipc.StoreAdd, ipc.FlagSeen, nil, 0); err != nil {
		t.Fatal(err)
	}
	clear(seen)
	_, err = s.Changes(ctx, ref, inbox.HighestModSeq, func(r *ipc.ChangesReply) bool {
		for _, m := range r.Changed {
			seen[m.UID] = true
			check("changed", m, len(m.Keywords))
		}
		return true
	})
	if err != nil || len(seen) != n {
		t.Fatalf("changes reported %d messages (%v), want %d", len(seen), err, n)
	}
}
