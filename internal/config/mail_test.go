package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// The [dns], [smtp], [limits] and [store] sections and the addressing
// options of domains.conf (issue 4).

func TestLoadMailSections(t *testing.T) {
	conf := `hostname = "mail.example.org"

[dns]
nameservers = ["127.0.0.1", "::1", "[2001:db8::53]:5353", "192.0.2.53:53"]
trust_ad = true

[smtp]
max_message_size = "20M"
max_recipients = 100
requiretls = false

[limits]
trusted_networks = ["192.0.2.7", "2001:db8::/48"]
connections_per_minute = [0, 10, 20]
auth_failure_delay = "500ms"
unknown_recipient_delay = "0s"
max_auth_failures = 5

[store]
disk_reserve = "1G"
`
	c, err := load(writeFiles(t, conf, ""), testEnv(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Static
	if want := []string{"127.0.0.1:53", "[::1]:53", "[2001:db8::53]:5353", "192.0.2.53:53"}; !reflect.DeepEqual(s.DNS.Nameservers, want) {
		t.Errorf("nameservers %q, want %q", s.DNS.Nameservers, want)
	}
	if !s.DNS.TrustAD || s.DNS.Offline || s.DNS.ResolvConf != DefaultResolvConf {
		t.Errorf("dns %+v", s.DNS)
	}
	if s.MaxMessageBytes() != 20<<20 || s.SMTP.MaxRecipients != 100 || s.SMTP.RequireTLS || !s.SMTP.RejectDMARC {
		t.Errorf("smtp %+v, %d bytes", s.SMTP, s.MaxMessageBytes())
	}
	if s.DiskReserveBytes() != 1<<30 {
		t.Errorf("disk reserve %d", s.DiskReserveBytes())
	}
	want := LimitsSlice{
		TrustedNetworks:       []string{"192.0.2.7/32", "2001:db8::/48"},
		ConnectionsPerMinute:  [3]int{0, 10, 20},
		ConcurrentConnections: [3]int{100, 300, 1000}, // Default.
		AuthFailureDelay:      500 * time.Millisecond,
		UnknownRecipientDelay: 0,
		MaxAuthFailures:       5,
	}
	if got := s.LimitsSlice(); !reflect.DeepEqual(got, want) {
		t.Errorf("limits slice\n got %+v\nwant %+v", got, want)
	}

	// The defaults, as documented.
	c, err = load(writeFiles(t, "hostname = \"mail.example.org\"\n", ""), testEnv(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	s = c.Static
	if s.MaxMessageBytes() != 100<<20 || s.SMTP.MaxRecipients != 1000 || !s.SMTP.RequireTLS || !s.SMTP.RejectDMARC || s.DiskReserveBytes() != 256<<20 {
		t.Errorf("defaults: smtp %+v, store %+v", s.SMTP, s.Store)
	}
	want = LimitsSlice{
		ConnectionsPerMinute:  [3]int{300, 1200, 4800},
		ConcurrentConnections: [3]int{100, 300, 1000},
		AuthFailureDelay:      time.Second,
		UnknownRecipientDelay: 2 * time.Second,
		MaxAuthFailures:       3,
	}
	if got := s.LimitsSlice(); !reflect.DeepEqual(got, want) {
		t.Errorf("default limits slice\n got %+v\nwant %+v", got, want)
	}
	// Offline needs no resolver file.
	if _, err := load(writeFiles(t, "hostname = \"localhost\"\n[dns]\nresolv_conf = \"\"\noffline = true\n", ""), testEnv(0, 0)); err != nil {
		t.Errorf("offline without resolv_conf: %v", err)
	}
}

const addrDomains = `postmaster_account = "Other"

[[domain]]
name = "example.org"
localpart_separators = ["+", "-"]

[[domain.alias]]
address = "team@example.org"
members = ["mjl@example.org", "mjl+team@example.org", "Kurt@bücher.example", "someone@bücher.example"]
members_may_send = true

[[domain]]
name = "bücher.example"
localpart_case_sensitive = true

[[account]]
name = "mjl"
addresses = ["mjl@example.org", "\"Mjl\"@bücher.example"]
max_messages_per_day = 0

[[account.destination]]
address = "moxd@example.org"
mailbox = "Lists/moxd"

[[account]]
name = "other"
addresses = ["postmaster@example.org", "POSTMASTER@bücher.example", "mjl@bücher.example", "Kurt@bücher.example", "@bücher.example"]
max_first_time_recipients_per_day = 50
`

func TestLoadAddressing(t *testing.T) {
	c, err := load(writeFiles(t, "hostname = \"mail.example.org\"\n", addrDomains), testEnv(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	d := c.Dynamic
	mjl, other := d.Accounts[0], d.Accounts[1]
	if mjl.MessagesPerDay() != 0 || mjl.FirstTimeRecipientsPerDay() != DefaultMaxFirstTimeRecipientsPerDay {
		t.Errorf("mjl limits %d %d, want 0 and the default", mjl.MessagesPerDay(), mjl.FirstTimeRecipientsPerDay())
	}
	if other.MessagesPerDay() != DefaultMaxMessagesPerDay || other.FirstTimeRecipientsPerDay() != 50 {
		t.Errorf("other limits %d %d", other.MessagesPerDay(), other.FirstTimeRecipientsPerDay())
	}
	if got, want := mjl.AllAddresses(), []string{"mjl@example.org", `"Mjl"@bücher.example`, "moxd@example.org"}; !reflect.DeepEqual(got, want) {
		t.Errorf("AllAddresses %q, want %q", got, want)
	}
	if got, want := mjl.DestinationMap(), map[string]string{"moxd@example.org": "Lists/moxd"}; !reflect.DeepEqual(got, want) {
		t.Errorf("DestinationMap %v", got)
	}
	wantDomains := []AddrDomain{
		{Name: "example.org", LocalpartSeparators: []string{"+", "-"}, Aliases: []AddrAlias{{
			Address: "team@example.org", MembersMaySend: true,
			Members: []string{"mjl@example.org", "mjl+team@example.org", "Kurt@bücher.example", "someone@bücher.example"},
		}}},
		{Name: "bücher.example", LocalpartCaseSensitive: true},
	}
	if got := d.AddrDomains(); !reflect.DeepEqual(got, wantDomains) {
		t.Errorf("AddrDomains\n got %+v\nwant %+v", got, wantDomains)
	}
	if got := d.Postmaster("mail.example.org"); got != "other" {
		t.Errorf("Postmaster %q, want the configured spelling of postmaster_account", got)
	}

	// Case rules: in a case-sensitive domain "Mjl" and "mjl" are two
	// addresses, except postmaster; elsewhere they collide, and so do the
	// quoted and unquoted forms of a local part.
	for _, tc := range []struct {
		name, a, b string
		ok         bool
	}{
		{"case-sensitive domain", "Mjl@bücher.example", "mjl@bücher.example", true},
		{"postmaster in case-sensitive domain", "Postmaster@bücher.example", "postmaster@bücher.example", false},
		{"case-insensitive domain", "Mjl@example.org", "mjl@example.org", false},
		{"quoted local part", `"mjl"@example.org`, "mjl@example.org", false},
		{"catchall", "@bücher.example", "@xn--bcher-kva.example", false},
	} {
		d := &Dynamic{
			Domains:  []Domain{{Name: "example.org"}, {Name: "bücher.example", LocalpartCaseSensitive: true}},
			Accounts: []Account{{Name: "a", Addresses: []string{tc.a, "postmaster@example.org"}}, {Name: "b", Addresses: []string{tc.b}}},
		}
		if !strings.HasPrefix(tc.a, "Postmaster") {
			d.Accounts[0].Addresses = append(d.Accounts[0].Addresses, "postmaster@bücher.example")
		}
		err := d.Validate()
		if tc.ok && err != nil {
			t.Errorf("%s: %v", tc.name, err)
		} else if !tc.ok && (err == nil || !strings.Contains(err.Error(), "is also configured at account[0]")) {
			t.Errorf("%s: got %v, want a conflict with account[0]", tc.name, err)
		}
	}
}

func TestPostmaster(t *testing.T) {
	d := &Dynamic{
		Domains: []Domain{{Name: "first.example"}, {Name: "example.org"}, {Name: "mail.example.org"}},
		Accounts: []Account{
			{Name: "a", Addresses: []string{"postmaster@first.example"}},
			{Name: "b", Addresses: []string{"postmaster@example.org"}},
			{Name: "c", Addresses: []string{"postmaster@mail.example.org"}},
		},
	}
	for _, tc := range []struct{ host, want string }{
		{"mail.example.org", "c"},     // The host name is a domain itself.
		{"mx1.mail.example.org", "c"}, // Closest parent.
		{"mx.example.org", "b"},
		{"other.example", "a"}, // First domain.
		{"localhost", "a"},
		{"", "a"},
	} {
		if got := d.Postmaster(tc.host); got != tc.want {
			t.Errorf("Postmaster(%q) = %q, want %q", tc.host, got, tc.want)
		}
	}
	d.PostmasterAccount = "B"
	if got := d.Postmaster("mail.example.org"); got != "b" {
		t.Errorf("with postmaster_account: %q", got)
	}
	if got := (&Dynamic{}).Postmaster("mail.example.org"); got != "" {
		t.Errorf("no domains: %q", got)
	}
}

// TestEditsKeepAddressing checks that changes through moxctl, written by
// WriteDynamic, keep destinations, aliases, separators and limits.
func TestEditsKeepAddressing(t *testing.T) {
	p, c := setup(t, addrDomains)
	d := c.Dynamic.Clone()
	if err := d.AddAddress("new@example.org", "mjl"); err != nil {
		t.Fatal(err)
	}
	if err := d.AddAccount(Account{Name: "fresh", Addresses: []string{"@example.org"}}); err != nil {
		t.Fatal(err)
	}
	if err := d.AddDomain(Domain{Name: "new.example", LocalpartSeparators: []string{"+"}, Aliases: []Alias{{Address: "all@new.example", Members: []string{"mjl@example.org"}}}}, "fresh"); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteDynamic(c.DomainsPath, d, c.DynamicHash, 0); err != nil {
		t.Fatal(err)
	}
	c2, err := load(p, testEnv(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if !sameValue(reflect.ValueOf(c2.Dynamic), reflect.ValueOf(*d)) {
		t.Fatalf("written and loaded\n%+v\nwant %+v", c2.Dynamic, *d)
	}
	got := c2.Dynamic
	if got.PostmasterAccount != "Other" || len(got.Domains[0].Aliases) != 1 || !got.Domains[1].LocalpartCaseSensitive ||
		len(got.Accounts[0].Destinations) != 1 || got.Accounts[0].MaxMessagesPerDay == nil || got.Accounts[1].MaxMessagesPerDay != nil ||
		got.Accounts[2].MessagesPerDay() != DefaultMaxMessagesPerDay || len(got.Domains[2].Aliases) != 1 {
		t.Errorf("addressing options lost: %+v", got)
	}
	// The defaults stay absent in the file, so a later change of the
	// default applies to them.
	if data := readString(t, c.DomainsPath); strings.Count(data, "max_messages_per_day = ") != 1 {
		t.Errorf("file has a default written out:\n%s", data)
	}

	// A catchall counts as an address of its domain.
	if err := d.RemoveDomain("example.org"); err == nil || !strings.Contains(err.Error(), "@example.org (account fresh)") || !strings.Contains(err.Error(), "moxd@example.org (account mjl, [[account.destination]])") {
		t.Errorf("removing a used domain: %v", err)
	}
	if err := d.AddAddress("@example.org", "mjl"); err == nil || !strings.Contains(err.Error(), `already belongs to account "fresh"`) {
		t.Errorf("second catchall: %v", err)
	}
}
