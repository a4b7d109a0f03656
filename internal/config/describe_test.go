package config

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite etc/moxd.conf and etc/domains.conf from Describe and DescribeDomains")

// TestDescribeLoads checks that Describe prints TOML that loads and yields
// the defaults, and that DescribeDomains yields an empty domains.conf.
func TestDescribeLoads(t *testing.T) {
	var conf, domains bytes.Buffer
	if err := Describe(&conf); err != nil {
		t.Fatal(err)
	}
	if err := DescribeDomains(&domains); err != nil {
		t.Fatal(err)
	}
	p := writeFiles(t, conf.String(), domains.String())
	c, err := load(p, testEnv(0, 0))
	if err != nil {
		t.Fatalf("loading Describe output: %v", err)
	}
	want := defaultStatic()
	want.Hostname = "mail.example.com"
	want.RoleLogLevels = map[string]string{} // The file has an empty [role_log_levels] table.
	want.Listen = Listen{SMTP: []string{}, Submission: []string{}, Submissions: []string{}, IMAP: []string{}, IMAPS: []string{}, HTTP: []string{}, HTTPS: []string{}}
	want.DNS.Nameservers = []string{}
	want.Limits.TrustedNetworks = []string{}
	want.Queue.SourceIPs = []string{}
	if !reflect.DeepEqual(c.Static, want) {
		t.Errorf("Describe output loads as\n%+v\nwant defaults\n%+v", c.Static, want)
	}
	if !reflect.DeepEqual(c.Dynamic, Dynamic{}) {
		t.Errorf("DescribeDomains output loads as %+v, want empty", c.Dynamic)
	}
}

// TestDescribeExamples checks that the examples in the struct tags are valid
// configuration: with every example made active, the files load.
func TestDescribeExamples(t *testing.T) {
	var conf, domains bytes.Buffer
	if err := describe(&conf, true); err != nil {
		t.Fatal(err)
	}
	if err := describeDomains(&domains, true); err != nil {
		t.Fatal(err)
	}
	p := writeFiles(t, conf.String(), domains.String())
	c, err := load(p, testEnv(0, 0))
	if err != nil {
		t.Fatalf("loading examples: %v\n%s", err, conf.String())
	}
	if len(c.Static.TLS.Certificates) != 1 || c.Static.LibexecDir == "" || c.Static.RoleLogLevels["smtp"] != "debug" {
		t.Errorf("examples not active: %+v", c.Static)
	}
	if got := len(c.Static.ListenerList()); got != 14 {
		t.Errorf("%d example listeners, want 14", got)
	}
	if len(c.Dynamic.Domains) != 1 || len(c.Dynamic.Domains[0].DKIM) != 1 || len(c.Dynamic.Accounts) != 1 {
		t.Errorf("domain examples not active: %+v", c.Dynamic)
	}
	// The example transport is the one the example routes name.
	if l := c.Static.QueueTransports(); len(l) != 1 || l[0].Name != "relay" || l[0].Password != "example secret" || c.Static.QueueDelivery().TestCA != testCAPEM {
		t.Errorf("queue examples not active: %+v", c.Static.Queue)
	}
	if len(c.Dynamic.Routes) != 1 || len(c.Dynamic.Domains[0].Routes) != 1 || len(c.Dynamic.Accounts[0].Routes) != 1 || !c.Dynamic.Accounts[0].UniqueMailFrom {
		t.Errorf("route examples not active: %+v", c.Dynamic)
	}
	if name, ok := c.Dynamic.AccountForUID(1000); !ok || name != c.Dynamic.Accounts[0].Name {
		t.Errorf("unix_users example not active: AccountForUID(1000) = %q, %v", name, ok)
	}
}

// TestDescribeQueue checks that "moxctl config describe" shows the
// outbound delivery options: the [queue] section with its defaults and
// commented-out examples of [[transport]] and the routes.
func TestDescribeQueue(t *testing.T) {
	var conf, domains bytes.Buffer
	if err := Describe(&conf); err != nil {
		t.Fatal(err)
	}
	if err := DescribeDomains(&domains); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\n[queue]\n", "\nmax_attempts = 8\n", "\nfirst_retry = \"7.5m\"\n", "\nmta_sts = true\n", "\nkeep = \"168h\"\n",
		"\n# Example: ca_file = \"/etc/moxd/private-ca.pem\"\n",
		"\n#[[transport]]\n", "\n#name = \"relay\"\n", "\n#kind = \"submission\"\n",
		"#password_file = \"/etc/moxd/relay.password\"\n",
	} {
		if !strings.Contains(conf.String(), want) {
			t.Errorf("Describe output lacks %q", want)
		}
	}
	for _, want := range []string{
		"\n#[[route]]\n", "\n#[[domain.route]]\n", "\n#[[account.route]]\n",
		"#to_domains = [\".example.net\", \"example.net\"]\n", "#minimum_attempts = 3\n",
		"#unique_mail_from = true\n", "#unix_users = [\"root\", \"1000\"]\n",
		`A leading "." matches`,
	} {
		if !strings.Contains(domains.String(), want) {
			t.Errorf("DescribeDomains output lacks %q", want)
		}
	}
}

// TestDescribeDocumentsEverything checks that every field has a toml and a
// doc tag, and that its key and doc appear in the Describe output.
func TestDescribeDocumentsEverything(t *testing.T) {
	var out bytes.Buffer
	if err := Describe(&out); err != nil {
		t.Fatal(err)
	}
	if err := DescribeDomains(&out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	seen := map[reflect.Type]bool{}
	var check func(t0 reflect.Type)
	check = func(typ reflect.Type) {
		if seen[typ] {
			return
		}
		seen[typ] = true
		for i := range typ.NumField() {
			f := typ.Field(i)
			if !f.IsExported() {
				continue // Derived at load, not in the file.
			}
			key, doc := f.Tag.Get("toml"), f.Tag.Get("doc")
			if key == "" || doc == "" {
				t.Errorf("%s.%s: missing toml or doc tag", typ.Name(), f.Name)
				continue
			}
			words := strings.Fields(doc)
			if !strings.Contains(text, "\n"+key+" = ") && !strings.Contains(text, "\n#"+key+" = ") && !strings.Contains(text, "."+key+"]") && !strings.Contains(text, "["+key+"]") {
				t.Errorf("%s.%s: key %q not in output", typ.Name(), f.Name, key)
			}
			if !strings.Contains(text, "# "+words[0]+" "+words[1]) {
				t.Errorf("%s.%s: doc not in output", typ.Name(), f.Name)
			}
			ft := f.Type
			if ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				check(ft)
			}
		}
	}
	check(reflect.TypeOf(Static{}))
	check(reflect.TypeOf(Dynamic{}))
}

// TestEtc fails when the examples in etc/ differ from Describe and
// DescribeDomains.
func TestEtc(t *testing.T) {
	for _, f := range []struct {
		name string
		fn   func(w *bytes.Buffer) error
	}{
		{"moxd.conf", func(w *bytes.Buffer) error { return Describe(w) }},
		{"domains.conf", func(w *bytes.Buffer) error { return DescribeDomains(w) }},
	} {
		var b bytes.Buffer
		if err := f.fn(&b); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join("..", "..", "etc", f.name)
		if *update {
			if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		have, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("%v (generate it: go test ./internal/config -run TestEtc -update)", err)
		}
		if !bytes.Equal(have, b.Bytes()) {
			t.Errorf("etc/%s is out of date; regenerate it: go test ./internal/config -run TestEtc -update", f.name)
		}
	}
}

func TestTOMLString(t *testing.T) {
	for _, s := range []string{"", "plain", `quote " and \ backslash`, "tab\tnewline\nbell\x07", "bücher", "\x7f"} {
		var v struct {
			V string `toml:"v"`
		}
		if _, err := decode("test", []byte("v = "+tomlString(s)+"\n"), &v); err != nil {
			t.Errorf("%q: %v", s, err)
		} else if v.V != s {
			t.Errorf("round trip of %q gave %q", s, v.V)
		}
	}
}

// FuzzParseDynamic checks that ParseDynamic never panics, and that an
// accepted domains.conf written out again (as moxd does when it changes the
// file) parses to the same configuration.
func FuzzParseDynamic(f *testing.F) {
	f.Add(fullDomains)
	var b bytes.Buffer
	if err := describeDomains(&b, true); err != nil {
		f.Fatal(err)
	}
	f.Add(b.String())
	f.Add("[[account]]\nname = \"a\"\naddresses = []\n")
	f.Fuzz(func(t *testing.T, doc string) {
		d, err := ParseDynamic("domains.conf", []byte(doc))
		if err != nil {
			var cerr *Error
			if !errors.As(err, &cerr) && !strings.HasPrefix(err.Error(), "domains.conf: ") {
				t.Fatalf("error without file name: %v", err)
			}
			return
		}
		var out strings.Builder
		if err := writeConfig(&out, "", d, false); err != nil {
			t.Fatal(err)
		}
		d2, err := ParseDynamic("domains.conf", []byte(out.String()))
		if err != nil {
			t.Fatalf("written configuration does not parse: %v\n%s", err, out.String())
		}
		// An empty slice may come back as nil, which sameValue allows.
		if !sameValue(reflect.ValueOf(d).Elem(), reflect.ValueOf(d2).Elem()) {
			t.Fatalf("round trip differs:\n%+v\n%+v", d, d2)
		}
	})
}
