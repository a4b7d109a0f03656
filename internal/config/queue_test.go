package config

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testCAPEM is a self-signed CA certificate in PEM, as queue.ca_file holds.
var testCAPEM = func() string {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "moxd test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}()

func TestQueueDefaults(t *testing.T) {
	c, err := load(writeFiles(t, "hostname = \"mail.example.org\"\n", ""), testEnv(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	want := QueueDelivery{
		MaxAttempts:            8,
		FirstRetry:             7*time.Minute + 30*time.Second,
		DelayedDSNAfter:        5,
		Keep:                   7 * 24 * time.Hour,
		Concurrency:            64,
		DestinationConcurrency: 10,
		MTASTS:                 true,
	}
	if got := c.Static.QueueDelivery(); !reflect.DeepEqual(got, want) {
		t.Errorf("QueueDelivery\n got %+v\nwant %+v", got, want)
	}
	if l := c.Static.QueueTransports(); l != nil {
		t.Errorf("transports %+v, want none", l)
	}

	// A bool default of true can be turned off; other keys keep their
	// defaults.
	c, err = load(writeFiles(t, "hostname = \"mail.example.org\"\n[queue]\nmta_sts = false\nmax_attempts = 6\n", ""), testEnv(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	got := c.Static.QueueDelivery()
	if got.MTASTS || got.MaxAttempts != 6 || got.Concurrency != 64 || got.DelayedDSNAfter != 5 {
		t.Errorf("QueueDelivery %+v, want mta_sts false, max_attempts 6, concurrency 64, delayed_dsn_after 5", got)
	}
}

// writeQueueFiles writes moxd.conf and domains.conf with a password file
// and a CA file next to them; {dir} in conf is their directory.
func writeQueueFiles(t *testing.T, conf, domains string) string {
	t.Helper()
	p := writeFiles(t, "", domains)
	dir := filepath.Dir(p)
	conf = strings.ReplaceAll(conf, "{dir}", dir)
	for name, data := range map[string]string{
		"moxd.conf":      conf,
		"relay.password": "s3cret\r\nignored\n",
		"ca.pem":         "# A CA for tests.\n" + testCAPEM,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

const queueConf = `hostname = "mail.example.org"

[queue]
max_attempts = 10
first_retry = "1m"
delayed_dsn_after = 0
keep = "24h"
concurrency = 5
destination_concurrency = 2
destination_rate = 30
source_ips = ["192.0.2.25", "2001:DB8::25", "::ffff:192.0.2.26"]
ca_file = "{dir}/ca.pem"
port = 2525

[[transport]]
name = "relay"
kind = "submission"
host = "Smtp.Bücher.example"
username = "mjl@example.org"
password_file = "{dir}/relay.password"
mechanisms = ["scram-sha-256", "Plain"]

[[transport]]
name = "plain"
kind = "smtp"
host = "2001:db8::1"
port = 2525
no_tls_verify = true

[[transport]]
name = "pinned"
kind = "direct"
source_ips = ["198.51.100.25"]

[[transport]]
name = "tor_1"
kind = "socks"
socks_address = "localhost:9050"
remote_ips = ["203.0.113.7"]
remote_hostname = "Exit.Example.net"

[[transport]]
name = "tls"
kind = "submissions"
host = "192.0.2.80"
`

const queueDomains = `[[domain]]
name = "Example.org"
localpart_separators = ["+"]

[[domain.dkim]]
selector = "s1"
algorithm = "ed25519"

[[domain.dkim]]
selector = "s2"
algorithm = "rsa2048"

[[domain.route]]
to_domains = [".Bücher.example"]
transport = "plain"

[[domain]]
name = "example.net"

[[account]]
name = "mjl"
addresses = ["mjl@example.org", "postmaster@example.org", "postmaster@example.net"]
unique_mail_from = true
unix_users = ["alice", "0"]

[[account.route]]
from_domains = ["example.org"]
minimum_attempts = 3
transport = "relay"

[[account]]
name = "other"
addresses = ["other@example.net"]
unix_users = ["bob"]

[[route]]
transport = "pinned"

[[route]]
from_domains = [".example.net", "EXAMPLE.net"]
to_domains = ["xn--bcher-kva.example"]
`

func TestQueueLoad(t *testing.T) {
	c, err := load(writeQueueFiles(t, queueConf, queueDomains), testEnv(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	wantDelivery := QueueDelivery{
		MaxAttempts:            10,
		FirstRetry:             time.Minute,
		DelayedDSNAfter:        0,
		Keep:                   24 * time.Hour,
		Concurrency:            5,
		DestinationConcurrency: 2,
		DestinationRate:        30,
		SourceIPs:              []string{"192.0.2.25", "2001:db8::25", "192.0.2.26"},
		MTASTS:                 true,
		TestCA:                 testCAPEM, // Only the CERTIFICATE blocks.
		Port:                   2525,
	}
	if got := c.Static.QueueDelivery(); !reflect.DeepEqual(got, wantDelivery) {
		t.Errorf("QueueDelivery\n got %+v\nwant %+v", got, wantDelivery)
	}
	wantTransports := []QueueTransport{
		{Name: "relay", Kind: "submission", Host: "smtp.xn--bcher-kva.example", Port: 587, Username: "mjl@example.org", Password: "s3cret", Mechanisms: []string{"SCRAM-SHA-256", "PLAIN"}},
		{Name: "plain", Kind: "smtp", Host: "2001:db8::1", Port: 2525, NoTLSVerify: true},
		{Name: "pinned", Kind: "direct", SourceIPs: []string{"198.51.100.25"}},
		{Name: "tor_1", Kind: "socks", SocksAddress: "localhost:9050", RemoteIPs: []string{"203.0.113.7"}, RemoteHostname: "exit.example.net"},
		{Name: "tls", Kind: "submissions", Host: "192.0.2.80", Port: 465},
	}
	if got := c.Static.QueueTransports(); !reflect.DeepEqual(got, wantTransports) {
		t.Errorf("QueueTransports\n got %+v\nwant %+v", got, wantTransports)
	}
	// The password is in the slice only: not in what %v prints.
	if s := fmt.Sprintf("%+v %v", c.Static, c); strings.Contains(s, "s3cret") {
		t.Errorf("password printed with the configuration: %s", s)
	}

	d := &c.Dynamic
	wantGlobal := []QueueRoute{
		{Transport: "pinned"},
		{FromDomains: []string{".example.net", "example.net"}, ToDomains: []string{"xn--bcher-kva.example"}},
	}
	if got := d.QueueRoutes(); !reflect.DeepEqual(got, wantGlobal) {
		t.Errorf("global routes\n got %+v\nwant %+v", got, wantGlobal)
	}
	wantDomain := map[string][]QueueRoute{"example.org": {{ToDomains: []string{".bücher.example"}, Transport: "plain"}}}
	if got := d.DomainRoutes(); !reflect.DeepEqual(got, wantDomain) {
		t.Errorf("domain routes\n got %+v\nwant %+v", got, wantDomain)
	}
	wantAccount := []QueueRoute{{FromDomains: []string{"example.org"}, MinimumAttempts: 3, Transport: "relay"}}
	if got := d.Accounts[0].QueueRoutes(); !reflect.DeepEqual(got, wantAccount) {
		t.Errorf("account routes\n got %+v\nwant %+v", got, wantAccount)
	}
	if !d.Accounts[0].UniqueMailFrom || d.Accounts[1].UniqueMailFrom {
		t.Errorf("unique_mail_from %v %v", d.Accounts[0].UniqueMailFrom, d.Accounts[1].UniqueMailFrom)
	}
	wantDKIM := map[string][]QueueDKIM{"example.org": {{"s1", "ed25519"}, {"s2", "rsa2048"}}}
	if got := d.QueueDKIM(); !reflect.DeepEqual(got, wantDKIM) {
		t.Errorf("dkim %+v, want %+v", got, wantDKIM)
	}

	for _, tc := range []struct {
		uid     int
		account string
	}{{2001, "mjl"}, {0, "mjl"}, {2002, "other"}, {2003, ""}, {-1, ""}} {
		name, ok := d.AccountForUID(tc.uid)
		if name != tc.account || ok != (tc.account != "") {
			t.Errorf("AccountForUID(%d) = %q, %v; want %q", tc.uid, name, ok, tc.account)
		}
	}
}

func TestUnixUsersEdit(t *testing.T) {
	// A copy, as master edits domains.conf, keeps the users; validation of
	// an edit resolves them again (with the passwd database, so numeric
	// uids here).
	doms := "[[domain]]\nname = \"example.org\"\n[[account]]\nname = \"pm\"\naddresses = [\"postmaster@example.org\"]\nunix_users = [\"2001\"]\n[[account]]\nname = \"other\"\naddresses = [\"other@example.org\"]\nunix_users = [\"2002\", \"2003\"]\n"
	d, err := ParseDynamic("domains.conf", []byte(doms))
	if err != nil {
		t.Fatal(err)
	}
	nd := d.Clone()
	if name, _ := nd.AccountForUID(2002); name != "other" {
		t.Errorf("clone: AccountForUID(2002) = %q", name)
	}
	if err := nd.RemoveAccount("other"); err != nil {
		t.Fatal(err)
	}
	if _, ok := nd.AccountForUID(2002); ok {
		t.Errorf("uid of a removed account still resolves")
	}
	if name, _ := nd.AccountForUID(2001); name != "pm" {
		t.Errorf("after edit: AccountForUID(2001) = %q", name)
	}
	if name, _ := d.AccountForUID(2003); name != "other" {
		t.Errorf("editing the clone changed the original")
	}
}

func TestQueueLoadStaticReadsNoFiles(t *testing.T) {
	// LoadStatic, as moxctl uses it, reads neither the password nor the CA
	// file: they may be readable by root only.
	conf := "hostname = \"mail.example.org\"\nqueue.ca_file = \"/nonexistent/ca.pem\"\n[[transport]]\nname = \"r\"\nkind = \"submission\"\nhost = \"smtp.example.net\"\nusername = \"u\"\npassword_file = \"/nonexistent/pw\"\n"
	p := writeFiles(t, conf, "")
	s, err := LoadStatic(p)
	if err != nil {
		t.Fatal(err)
	}
	if l := s.QueueTransports(); len(l) != 1 || l[0].Password != "" {
		t.Errorf("transports %+v", l)
	}
	if _, err := load(p, testEnv(0, 0)); err == nil {
		t.Errorf("load: no error for missing files")
	}
}

func TestRouteDomains(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{"example.com", "example.com", ""},
		{".Example.COM", ".example.com", ""},
		{".Bücher.example", ".bücher.example", ""},
		{"", "", "empty domain; leave the list empty to match any domain"},
		{".", "", `domain ".": want a domain name, with one leading "." to match its subdomains`},
		{"..example.com", "", `domain "..example.com": want a domain name, with one leading "." to match its subdomains`},
		{"example.com.", "", `domain name "example.com." ends with a dot; remove it`},
	} {
		got, err := normalizeRouteDomain(tc.in)
		if got != tc.want || (err == nil) != (tc.err == "") || err != nil && err.Error() != tc.err {
			t.Errorf("normalizeRouteDomain(%q) = %q, %v; want %q, %q", tc.in, got, err, tc.want, tc.err)
		}
	}
}
