package addrbook

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"moxd/internal/config"
)

// testBook has every kind of address: plain, tagged (separators), a
// case-sensitive domain, an internationalized domain, aliases, catchalls
// and destinations.
func testBook(t testing.TB) *Book {
	t.Helper()
	domains := []config.AddrDomain{
		{Name: "example.org", LocalpartSeparators: []string{"+", "-"}, Aliases: []config.AddrAlias{
			{Address: "team@example.org", Members: []string{"mjl@example.org", "MJL+x@example.org", "jo@example.org", "kurt@bücher.example", "lists@example.org"}, MembersMaySend: true},
			{Address: "quiet@example.org", Members: []string{"jo@example.org"}},
			{Address: "anyone@example.org", Members: []string{"someone@catch.example"}, MembersMaySend: true},
			{Address: "gone@example.org", Members: []string{"nobody@example.org"}},
		}},
		{Name: "bücher.example", LocalpartCaseSensitive: true},
		{Name: "catch.example"},
	}
	accounts := []Account{
		{Name: "mjl", Addresses: []string{"mjl@example.org", "Postmaster@example.org"}, Destinations: map[string]string{"lists@example.org": "Lists"}},
		{Name: "jo", Addresses: []string{"jo@example.org", "jo+special@example.org", "\"Quoted\"@bücher.example"}},
		{Name: "kurt", Addresses: []string{"kurt@bücher.example", "Kurt@bücher.example", "postmaster@bücher.example"}},
		{Name: "catcher", Addresses: []string{"@catch.example", "postmaster@catch.example"}, Destinations: map[string]string{"@catch.example": "Catchall"}},
	}
	b, err := New(domains, accounts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestResolve(t *testing.T) {
	b := testBook(t)
	tests := []struct {
		name      string
		localpart string
		domain    string
		want      []Target // nil: not found
	}{
		{"exact", "mjl", "example.org", []Target{{"mjl", "", "mjl@example.org"}}},
		{"case of local part", "MJL", "example.org", []Target{{"mjl", "", "mjl@example.org"}}},
		{"case of domain", "mjl", "Example.ORG", []Target{{"mjl", "", "mjl@example.org"}}},
		{"postmaster any case", "POSTMASTER", "example.org", []Target{{"mjl", "", "Postmaster@example.org"}}},
		{"unknown", "nobody", "example.org", nil},
		{"unknown domain", "mjl", "example.net", nil},
		{"subdomain is not local", "mjl", "sub.example.org", nil},
		{"empty local part", "", "example.org", nil},
		{"bad domain", "mjl", "exa mple.org", nil},

		// Separators.
		{"tag", "mjl+lists", "example.org", []Target{{"mjl", "", "mjl@example.org"}}},
		{"other separator", "mjl-lists", "example.org", []Target{{"mjl", "", "mjl@example.org"}}},
		{"first separator cuts", "mjl-a+b", "example.org", []Target{{"mjl", "", "mjl@example.org"}}},
		{"tag with case", "Mjl+Lists", "example.org", []Target{{"mjl", "", "mjl@example.org"}}},
		{"exact beats tag", "jo+special", "example.org", []Target{{"jo", "", "jo+special@example.org"}}},
		{"tagged unknown", "nobody+x", "example.org", nil},
		{"nothing before separator", "+mjl", "example.org", nil},
		{"no separators in domain", "kurt+x", "bücher.example", nil},

		// Case-sensitive domain.
		{"case-sensitive exact", "kurt", "bücher.example", []Target{{"kurt", "", "kurt@bücher.example"}}},
		{"case-sensitive other case", "KURT", "bücher.example", nil},
		{"case-sensitive postmaster", "PostMaster", "bücher.example", []Target{{"kurt", "", "postmaster@bücher.example"}}},
		{"quoted local part", "Quoted", "bücher.example", []Target{{"jo", "", "\"Quoted\"@bücher.example"}}},
		{"quoted form asked", "\"Quoted\"", "bücher.example", []Target{{"jo", "", "\"Quoted\"@bücher.example"}}},

		// IDNA: A-label and Unicode forms are the same domain.
		{"a-label", "kurt", "xn--bcher-kva.example", []Target{{"kurt", "", "kurt@bücher.example"}}},
		{"upper-case unicode", "kurt", "BÜCHER.example", []Target{{"kurt", "", "kurt@bücher.example"}}},

		// Destinations.
		{"destination", "lists", "example.org", []Target{{"mjl", "Lists", "lists@example.org"}}},
		{"destination tagged", "lists+go", "example.org", []Target{{"mjl", "Lists", "lists@example.org"}}},

		// Aliases: each member resolved, deduplicated by account and
		// mailbox (mjl@ and MJL+x@ both reach mjl's Inbox).
		{"alias", "team", "example.org", []Target{
			{"mjl", "", "mjl@example.org"},
			{"jo", "", "jo@example.org"},
			{"kurt", "", "kurt@bücher.example"},
			{"mjl", "Lists", "lists@example.org"},
		}},
		{"alias tagged", "team+x", "example.org", []Target{
			{"mjl", "", "mjl@example.org"},
			{"jo", "", "jo@example.org"},
			{"kurt", "", "kurt@bücher.example"},
			{"mjl", "Lists", "lists@example.org"},
		}},
		{"alias member through catchall", "anyone", "example.org", []Target{{"catcher", "Catchall", "someone@catch.example"}}},
		{"alias without resolvable member", "gone", "example.org", nil},

		// Catchall: only when nothing else matched.
		{"catchall", "whoever", "catch.example", []Target{{"catcher", "Catchall", "@catch.example"}}},
		{"catchall domain's own address", "postmaster", "catch.example", []Target{{"catcher", "", "postmaster@catch.example"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := b.Resolve(tc.localpart, tc.domain)
			if ok != (tc.want != nil) || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Resolve(%q, %q) = %v, %v; want %v", tc.localpart, tc.domain, got, ok, tc.want)
			}
		})
	}
}

func TestMaySendAs(t *testing.T) {
	b := testBook(t)
	tests := []struct {
		account, localpart, domain string
		want                       bool
	}{
		{"mjl", "mjl", "example.org", true},
		{"MJL", "mjl", "EXAMPLE.org", true}, // Account names without case.
		{"mjl", "mjl+anything", "example.org", true},
		{"mjl", "lists", "example.org", true}, // A destination's address.
		{"jo", "mjl", "example.org", false},
		{"mjl", "jo+special", "example.org", false}, // jo has it.
		{"jo", "jo+special", "example.org", true},
		{"jo", "jo+other", "example.org", true},
		{"mjl", "nobody", "example.org", false},
		{"mjl", "mjl", "example.net", false},
		{"", "mjl", "example.org", false},
		{"mjl", "", "example.org", false},

		// Alias with members_may_send: every member's account.
		{"mjl", "team", "example.org", true},
		{"jo", "team", "example.org", true},
		{"kurt", "team+x", "example.org", true},
		{"catcher", "team", "example.org", false},
		{"catcher", "anyone", "example.org", true}, // Member through the catchall.
		// Alias without members_may_send.
		{"jo", "quiet", "example.org", false},

		// Catchall: any address of its domain.
		{"catcher", "whatever", "catch.example", true},
		{"catcher", "postmaster", "catch.example", true},
		{"mjl", "whatever", "catch.example", false},

		// Case-sensitive domain.
		{"kurt", "kurt", "xn--bcher-kva.example", true},
		{"kurt", "KURT", "bücher.example", false},
		{"jo", "Quoted", "bücher.example", true},
	}
	for _, tc := range tests {
		if got := b.MaySendAs(tc.account, tc.localpart, tc.domain); got != tc.want {
			t.Errorf("MaySendAs(%q, %q, %q) = %v, want %v", tc.account, tc.localpart, tc.domain, got, tc.want)
		}
	}
}

func TestLocalDomain(t *testing.T) {
	b := testBook(t)
	for _, tc := range []struct {
		domain string
		want   bool
	}{
		{"example.org", true},
		{"EXAMPLE.ORG", true},
		{"bücher.example", true},
		{"xn--bcher-kva.example", true},
		{"XN--BCHER-KVA.EXAMPLE", true},
		{"example.net", false},
		{"", false},
		{"exa mple.org", false},
	} {
		if got := b.LocalDomain(tc.domain); got != tc.want {
			t.Errorf("LocalDomain(%q) = %v, want %v", tc.domain, got, tc.want)
		}
	}
}

// TestQueueAccounts checks that a book without destinations, as queue
// builds it from QueueSlice, answers sender checks.
func TestQueueAccounts(t *testing.T) {
	qs := config.QueueSlice{
		Domains: []config.AddrDomain{{Name: "example.org", LocalpartSeparators: []string{"+"}}},
		Accounts: []config.QueueAccount{
			{Name: "mjl", Addresses: []string{"mjl@example.org", "postmaster@example.org"}},
			{Name: "all", Addresses: []string{"@example.org"}},
		},
	}
	var accounts []Account
	for _, a := range qs.Accounts {
		accounts = append(accounts, Account{Name: a.Name, Addresses: a.Addresses})
	}
	b, err := New(qs.Domains, accounts)
	if err != nil {
		t.Fatal(err)
	}
	if !b.MaySendAs("mjl", "mjl+x", "example.org") || b.MaySendAs("mjl", "other", "example.org") || !b.MaySendAs("all", "mjl", "example.org") {
		t.Errorf("sender checks wrong")
	}
}

func TestNewErrors(t *testing.T) {
	dom := []config.AddrDomain{{Name: "example.org"}}
	tests := []struct {
		name     string
		domains  []config.AddrDomain
		accounts []Account
		want     string
	}{
		{"domain twice", []config.AddrDomain{{Name: "example.org"}, {Name: "EXAMPLE.org"}}, nil, "listed twice"},
		{"empty domain", []config.AddrDomain{{Name: ""}}, nil, "empty domain"},
		{"bad unicode domain", []config.AddrDomain{{Name: "bü cher.example"}}, nil, "domain"},
		{"empty separator", []config.AddrDomain{{Name: "example.org", LocalpartSeparators: []string{""}}}, nil, "empty localpart separator"},
		{"address of other domain", dom, []Account{{Name: "a", Addresses: []string{"a@example.net"}}}, "not local"},
		{"not an address", dom, []Account{{Name: "a", Addresses: []string{"example.org"}}}, "not an address"},
		{"address twice", dom, []Account{{Name: "a", Addresses: []string{"x@example.org"}}, {Name: "b", Addresses: []string{"X@example.org"}}}, "belongs to accounts a and b"},
		{"two catchalls", dom, []Account{{Name: "a", Addresses: []string{"@example.org"}}, {Name: "b", Addresses: []string{"@example.org"}}}, "catchall"},
		{"destination elsewhere", dom, []Account{{Name: "a", Destinations: map[string]string{"x@example.net": "X"}}}, "destination"},
		{"no name", dom, []Account{{Addresses: []string{"x@example.org"}}}, "without name"},
		{"alias in other domain", []config.AddrDomain{{Name: "example.org", Aliases: []config.AddrAlias{{Address: "a@other.example"}}}, {Name: "other.example"}}, nil, "not in domain"},
		{"alias catchall", []config.AddrDomain{{Name: "example.org", Aliases: []config.AddrAlias{{Address: "@example.org"}}}}, nil, "catchall is not allowed"},
		{"alias twice", []config.AddrDomain{{Name: "example.org", Aliases: []config.AddrAlias{{Address: "a@example.org"}, {Address: "A@example.org"}}}}, nil, "listed twice"},
		{"bad member", []config.AddrDomain{{Name: "example.org", Aliases: []config.AddrAlias{{Address: "a@example.org", Members: []string{"@example.org"}}}}}, nil, "not an address"},
	}
	for _, tc := range tests {
		_, err := New(tc.domains, tc.accounts)
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	// The same address twice in one account is no conflict.
	if _, err := New(dom, []Account{{Name: "a", Addresses: []string{"x@example.org", "X@example.org"}, Destinations: map[string]string{"x@example.org": "X"}}}); err != nil {
		t.Errorf("address twice in one account: %v", err)
	}
}

// FuzzResolve checks that Resolve never panics and that what it returns
// is consistent: targets only for local domains, each with an account,
// never two with the same account and mailbox, and MaySendAs agreeing for
// an address that is not an alias.
func FuzzResolve(f *testing.F) {
	for _, s := range [][2]string{
		{"mjl", "example.org"}, {"team+x", "EXAMPLE.org"}, {"\"Quoted\"", "xn--bcher-kva.example"},
		{"whoever", "catch.example"}, {"mjl-a+b", "example.org"}, {"", ""}, {"+", "example.org"},
		{"\"", "bücher.example"}, {"x", "xn--"}, {"a", "."},
	} {
		f.Add(s[0], s[1])
	}
	b := testBook(f)
	f.Fuzz(func(t *testing.T, localpart, domain string) {
		targets, ok := b.Resolve(localpart, domain)
		if ok != (len(targets) > 0) {
			t.Fatalf("ok %v with %d targets", ok, len(targets))
		}
		if ok && !b.LocalDomain(domain) {
			t.Fatalf("targets for non-local domain %q", domain)
		}
		seen := map[[2]string]bool{}
		for _, tg := range targets {
			if tg.Account == "" || tg.Address == "" {
				t.Fatalf("incomplete target %+v", tg)
			}
			k := [2]string{tg.Account, tg.Mailbox}
			if seen[k] {
				t.Fatalf("duplicate target %+v in %v", tg, targets)
			}
			seen[k] = true
		}
		// Whatever reaches an account not through an alias is an address
		// that account may send as.
		if ok {
			d := b.domain(domain)
			if _, direct := d.address(localpart); direct || d.alias(localpart) == nil {
				if !b.MaySendAs(targets[0].Account, localpart, domain) {
					t.Fatalf("%q@%q resolves to %s, which may not send as it", localpart, domain, targets[0].Account)
				}
			}
		}
	})
}

// TestDomainForms: every name config accepts is in the book, also those
// IDNA's lookup rules reject.
func TestDomainForms(t *testing.T) {
	b, err := New([]config.AddrDomain{{Name: "ex--ample.org"}, {Name: "straße.example"}}, []Account{
		{Name: "a", Addresses: []string{"a@ex--ample.org", "a@straße.example"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, dom := range []string{"ex--ample.org", "EX--AMPLE.ORG", "straße.example", "STRAßE.example", "xn--strae-oqa.example"} {
		if _, ok := b.Resolve("a", dom); !ok {
			t.Errorf("a@%s not found", dom)
		}
	}
	// IDNA2008 (nontransitional): "ß" is not "ss".
	if _, ok := b.Resolve("a", "strasse.example"); ok {
		t.Errorf("strasse.example matches straße.example")
	}
}

func TestTag(t *testing.T) {
	b := testBook(t)
	for _, tc := range []struct {
		localpart, domain, tag string
		ok                     bool
	}{
		{"mjl+abc", "example.org", "abc", true},
		{"mjl-abc", "Example.ORG", "abc", true},
		{"mjl+a-b+c", "example.org", "a-b+c", true}, // after the first separator
		{"mjl-a+b", "example.org", "a+b", true},
		{"\"mjl+abc\"", "example.org", "abc", true},
		{"mjl+", "example.org", "", true},
		{"mjl", "example.org", "", false},
		{"+abc", "example.org", "", false}, // nothing before the separator
		{"kurt+abc", "bücher.example", "", false},
		{"mjl+abc", "example.net", "", false},
	} {
		tag, ok := b.Tag(tc.localpart, tc.domain)
		if tag != tc.tag || ok != tc.ok {
			t.Errorf("Tag(%q, %q) = %q, %v, want %q, %v", tc.localpart, tc.domain, tag, ok, tc.tag, tc.ok)
		}
	}
}
