package config

import (
	"reflect"
	"strings"
	"testing"
)

// editBase is the configuration the edit tests start from.
func editBase() *Dynamic {
	d := &Dynamic{
		Domains: []Domain{
			{Name: "example.com", DKIM: []DKIMSelector{{"s1", "ed25519"}}},
			{Name: "example.org"},
		},
		Accounts: []Account{
			{Name: "mjl", Addresses: []string{"mjl@example.com", "postmaster@example.com"}},
			{Name: "jo", Addresses: []string{"jo@example.org", "Postmaster@example.org"}},
			{Name: "empty", Addresses: []string{}},
		},
	}
	if err := d.Validate(); err != nil {
		panic(err)
	}
	return d
}

func TestDynamicEdits(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(d *Dynamic) error
		wantErr string // substring; empty: success
		check   func(t *testing.T, d *Dynamic)
	}{
		{"add account", func(d *Dynamic) error {
			return d.AddAccount(Account{Name: "new", Addresses: []string{"New@EXAMPLE.com"}, Quota: "1G"})
		}, "", func(t *testing.T, d *Dynamic) {
			i := d.FindAccount("new")
			if i < 0 || !reflect.DeepEqual(d.Accounts[i].Addresses, []string{"New@example.com"}) || d.Accounts[i].QuotaBytes() != 1<<30 {
				t.Errorf("accounts %+v", d.Accounts)
			}
		}},
		{"add account without addresses", func(d *Dynamic) error { return d.AddAccount(Account{Name: "bare"}) }, "", nil},
		{"duplicate account", func(d *Dynamic) error { return d.AddAccount(Account{Name: "MJL"}) }, `account "mjl" already exists`, nil},
		{"bad account name", func(d *Dynamic) error { return d.AddAccount(Account{Name: "../x"}) }, `account name "../x" starts with '.'`, nil},
		{"account with owned address", func(d *Dynamic) error {
			return d.AddAccount(Account{Name: "new", Addresses: []string{"JO@example.org"}})
		}, `address "JO@example.org" already belongs to account "jo"`, nil},
		{"account with unknown domain", func(d *Dynamic) error {
			return d.AddAccount(Account{Name: "new", Addresses: []string{"a@example.net"}})
		}, `domain "example.net" of address "a@example.net" is not configured; add it first (moxctl domain add example.net ACCOUNT)`, nil},
		{"account with bad quota", func(d *Dynamic) error {
			return d.AddAccount(Account{Name: "new", Quota: "lots"})
		}, `quota "lots": want a number of bytes`, nil},
		{"account with address twice", func(d *Dynamic) error {
			return d.AddAccount(Account{Name: "new", Addresses: []string{"a@example.com", "a@example.com"}})
		}, `address "a@example.com" is given twice`, nil},

		{"remove account", func(d *Dynamic) error { return d.RemoveAccount("Empty") }, "", func(t *testing.T, d *Dynamic) {
			if d.FindAccount("empty") >= 0 || len(d.Accounts) != 2 {
				t.Errorf("accounts %+v", d.Accounts)
			}
		}},
		{"remove unknown account", func(d *Dynamic) error { return d.RemoveAccount("nobody") }, `no account "nobody"`, nil},
		{"remove last postmaster's account", func(d *Dynamic) error { return d.RemoveAccount("jo") },
			`account "jo" has Postmaster@example.org, the postmaster address every domain needs (RFC 5321 section 4.5.1); give it to another account first (moxctl address move Postmaster@example.org ACCOUNT)`, nil},

		{"add address", func(d *Dynamic) error { return d.AddAddress("x@Example.ORG", "empty") }, "", func(t *testing.T, d *Dynamic) {
			if got := d.Accounts[2].Addresses; !reflect.DeepEqual(got, []string{"x@example.org"}) {
				t.Errorf("addresses %q", got)
			}
		}},
		{"add owned address", func(d *Dynamic) error { return d.AddAddress("mjl@example.com", "jo") }, `address "mjl@example.com" already belongs to account "mjl"`, nil},
		{"add address to unknown account", func(d *Dynamic) error { return d.AddAddress("x@example.com", "nobody") }, `no account "nobody"`, nil},
		{"add address in unknown domain", func(d *Dynamic) error { return d.AddAddress("x@example.net", "mjl") }, `domain "example.net" of address "x@example.net" is not configured`, nil},
		{"add bad address", func(d *Dynamic) error { return d.AddAddress("no-at-sign", "mjl") }, `address "no-at-sign" has no '@'`, nil},

		{"remove address", func(d *Dynamic) error { return d.RemoveAddress("JO@example.org") }, "", func(t *testing.T, d *Dynamic) {
			if got := d.Accounts[1].Addresses; !reflect.DeepEqual(got, []string{"Postmaster@example.org"}) {
				t.Errorf("addresses %q", got)
			}
		}},
		{"remove unknown address", func(d *Dynamic) error { return d.RemoveAddress("x@example.org") }, `no account has address "x@example.org"`, nil},
		{"remove postmaster", func(d *Dynamic) error { return d.RemoveAddress("postmaster@example.com") },
			`"postmaster@example.com" is the postmaster address of its domain, which every domain needs (RFC 5321 section 4.5.1)`, nil},

		{"move postmaster", func(d *Dynamic) error { return d.MoveAddress("postmaster@example.org", "empty") }, "", func(t *testing.T, d *Dynamic) {
			if got := d.Accounts[2].Addresses; !reflect.DeepEqual(got, []string{"Postmaster@example.org"}) {
				t.Errorf("addresses %q", got)
			}
			if err := d.RemoveAccount("jo"); err != nil {
				t.Errorf("jo no longer has a postmaster address, but: %v", err)
			}
		}},
		{"move to owner", func(d *Dynamic) error { return d.MoveAddress("jo@example.org", "jo") }, `address "jo@example.org" already belongs to account "jo"`, nil},
		{"move unknown address", func(d *Dynamic) error { return d.MoveAddress("x@example.org", "jo") }, `no account has address "x@example.org"; add it instead (moxctl address add x@example.org jo)`, nil},

		{"add domain", func(d *Dynamic) error {
			return d.AddDomain(Domain{Name: "New.Example", DKIM: []DKIMSelector{{"2026a-ed", "ed25519"}, {"2026a-rsa", "rsa2048"}}}, "empty")
		}, "", func(t *testing.T, d *Dynamic) {
			if i := d.FindDomain("new.example"); i < 0 || d.Domains[i].Name != "new.example" || len(d.Domains[i].DKIM) != 2 {
				t.Errorf("domains %+v", d.Domains)
			}
			if got := d.Accounts[2].Addresses; !reflect.DeepEqual(got, []string{"postmaster@new.example"}) {
				t.Errorf("postmaster not added: %q", got)
			}
		}},
		{"add existing domain", func(d *Dynamic) error { return d.AddDomain(Domain{Name: "EXAMPLE.com"}, "mjl") }, `domain "example.com" already exists`, nil},
		{"add domain for unknown account", func(d *Dynamic) error { return d.AddDomain(Domain{Name: "new.example"}, "nobody") },
			`no account "nobody": give an existing account to receive postmaster@new.example`, nil},
		{"add bad domain", func(d *Dynamic) error { return d.AddDomain(Domain{Name: "a..b"}, "mjl") }, `empty label`, nil},
		{"add domain with bad selector", func(d *Dynamic) error {
			return d.AddDomain(Domain{Name: "new.example", DKIM: []DKIMSelector{{"s_1", "ed25519"}}}, "mjl")
		}, `the change would make domains.conf invalid: domains.conf: domain[2].dkim[0].selector: selector "s_1"`, nil},

		{"remove domain", func(d *Dynamic) error {
			if err := d.RemoveAddress("jo@example.org"); err != nil {
				return err
			}
			return d.RemoveDomain("EXAMPLE.org")
		}, "", func(t *testing.T, d *Dynamic) {
			if d.FindDomain("example.org") >= 0 || len(d.Domains) != 1 {
				t.Errorf("domains %+v", d.Domains)
			}
			// The postmaster address went with the domain.
			if got := d.Accounts[1].Addresses; got == nil || len(got) != 0 {
				t.Errorf("addresses of jo %#v, want none", got)
			}
		}},
		{"remove used domain", func(d *Dynamic) error { return d.RemoveDomain("example.org") },
			`domain "example.org" is still used by jo@example.org (account jo); remove those addresses first (moxctl address rm ADDRESS)`, nil},
		{"remove unknown domain", func(d *Dynamic) error { return d.RemoveDomain("example.net") }, `no domain "example.net"`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := editBase()
			err := tc.edit(d)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
				}
				// A refused edit leaves the configuration as it was.
				if !reflect.DeepEqual(d, editBase()) {
					t.Errorf("configuration changed by a refused edit: %+v", d)
				}
				return
			}
			if err != nil {
				t.Fatalf("edit: %v", err)
			}
			// Every result is a loadable domains.conf.
			data, err := MarshalDynamic(d)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ParseDynamic("domains.conf", data); err != nil {
				t.Fatalf("edited configuration does not load: %v", err)
			}
			if tc.check != nil {
				tc.check(t, d)
			}
		})
	}
}

func TestPostmasterRequired(t *testing.T) {
	tests := []struct {
		name    string
		domains string
		wantErr string // empty: loads
	}{
		{"present", "[[domain]]\nname = \"example.com\"\n[[account]]\nname = \"a\"\naddresses = [\"postmaster@example.com\"]\n", ""},
		{"any case, IDNA", "[[domain]]\nname = \"Bücher.Example\"\n[[account]]\nname = \"a\"\naddresses = [\"POSTMASTER@xn--bcher-kva.example\"]\n", ""},
		{"no accounts", "[[domain]]\nname = \"example.com\"\n",
			"domains.conf:2: domain[0].name: domain \"example.com\" has no postmaster address, which every mail domain must have (RFC 5321 section 4.5.1): add an account for it:\n[[account]]\nname = \"postmaster\"\naddresses = [\"postmaster@example.com\"]"},
		{"in another domain only", "[[domain]]\nname = \"example.com\"\n[[domain]]\nname = \"example.org\"\n\n[[account]]\nname = \"a\"\naddresses = [\"a@example.com\", \"postmaster@example.com\"]\n",
			`domains.conf:4: domain[1].name: domain "example.org" has no postmaster address, which every mail domain must have (RFC 5321 section 4.5.1): add "postmaster@example.org" to the addresses of an account, e.g. in account[0] (line 8): addresses = ["a@example.com", "postmaster@example.com", "postmaster@example.org"]`},
		{"postmaster-like local part", "[[domain]]\nname = \"example.com\"\n[[account]]\nname = \"a\"\naddresses = [\"postmasters@example.com\"]\n",
			`add "postmaster@example.com" to the addresses of an account`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseDynamic("domains.conf", []byte(tc.domains))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseDynamic: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got error\n%v\nwant it to contain\n%s", err, tc.wantErr)
			}
		})
	}
}

// TestPostmasterSuggestionLoads: adding the line the error suggests gives
// a file that loads.
func TestPostmasterSuggestionLoads(t *testing.T) {
	doc := "[[domain]]\nname = \"example.com\"\n"
	_, err := ParseDynamic("domains.conf", []byte(doc))
	if err == nil {
		t.Fatal("accepted a domain without postmaster")
	}
	_, suggestion, ok := strings.Cut(err.Error(), "add an account for it:\n")
	if !ok {
		t.Fatalf("no suggestion in %v", err)
	}
	if _, err := ParseDynamic("domains.conf", []byte(doc+suggestion+"\n")); err != nil {
		t.Errorf("the suggested lines do not load: %v", err)
	}
}

func TestParseQuota(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  string
	}{
		{"", 0, ""},
		{"0", 0, ""},
		{"1024", 1024, ""},
		{"10K", 10 << 10, ""},
		{"500M", 500 << 20, ""},
		{"500m", 500 << 20, ""},
		{"10G", 10 << 30, ""},
		{"2T", 2 << 40, ""},
		{"G", 0, "want a number of bytes"},
		{"1.5G", 0, "want a number of bytes"},
		{"-1", 0, "want a number of bytes"},
		{"+1", 0, "want a number of bytes"},
		{" 1G", 0, "want a number of bytes"},
		{"10GB", 0, "want a number of bytes"},
		{"9999999T", 0, "too large"},
		{"99999999999999999999", 0, "too large"},
	}
	for _, tc := range tests {
		got, err := ParseQuota(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseQuota(%q) = %d, %v; want error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseQuota(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	// In a file, a bad quota is reported with its line.
	_, err := ParseDynamic("domains.conf", []byte("[[account]]\nname = \"a\"\nquota = \"5 GB\"\n"))
	if err == nil || !strings.Contains(err.Error(), `domains.conf:3: account[0].quota: quota "5 GB"`) {
		t.Errorf("bad quota in file: %v", err)
	}
}
