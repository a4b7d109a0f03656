package master

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"moxd/internal/config"
	"moxd/internal/ipc"
	"moxd/internal/worker"
)

const sliceConf = `hostname = "mail.example.com"
localserve = true

[smtp]
max_message_size = "10M"
max_recipients = 200
reject_dmarc = false

[limits]
trusted_networks = ["192.0.2.0/24"]
unknown_recipient_delay = "3s"

[store]
disk_reserve = "1G"

[dns]
nameservers = ["192.0.2.53"]
trust_ad = true
`

const sliceDomains = `[[domain]]
name = "example.com"
localpart_separators = ["+"]

[[domain.alias]]
address = "team@example.com"
members = ["mjl@example.com", "jo@example.com"]
members_may_send = true

[[account]]
name = "mjl"
addresses = ["mjl@example.com", "postmaster@example.com"]
max_messages_per_day = 10

[[account.destination]]
address = "moxd@example.com"
mailbox = "Lists/moxd"

[[account]]
name = "jo"
addresses = ["jo@example.com"]
quota = "1G"
`

// loadSliceConfig writes and loads a configuration for slice tests.
func loadSliceConfig(t *testing.T, conf, domains string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "moxd.conf")
	// Numeric users, distinct, so the test runs as root and as not.
	conf = "data_dir = \"" + filepath.Join(dir, "data") + "\"\n" +
		"users = {keys = \"7001\", store = \"7002\", queue = \"7003\", smtp = \"7004\", submission = \"7005\", imap = \"7006\", web = \"7007\"}\n" + conf
	if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "domains.conf"), []byte(domains), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// slicesOf computes every role's slice as a worker decodes it.
func slicesOf(t *testing.T, cfg *config.Config, dns config.DNSSlice) map[ipc.Role]config.Slice {
	t.Helper()
	m := &Master{dns: dns}
	l := map[ipc.Role]config.Slice{}
	for _, r := range ipc.WorkerRoles() {
		p := &proc{role: r}
		m.updateSlice(p, cfg)
		var s config.Slice
		if err := worker.DecodeSlice(*p.slice.Load(), &s); err != nil {
			t.Fatalf("slice of %s: %v", r, err)
		}
		l[r] = s
	}
	return l
}

func TestRoleSlices(t *testing.T) {
	cfg := loadSliceConfig(t, sliceConf, sliceDomains)
	dns, err := resolverSlice(cfg, os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	l := slicesOf(t, cfg, dns)

	wantDNS := config.DNSSlice{Servers: []string{"192.0.2.53:53"}, TrustAD: true}
	wantLimits := config.LimitsSlice{
		TrustedNetworks:       []string{"192.0.2.0/24"},
		ConnectionsPerMinute:  [3]int{300, 1200, 4800},
		ConcurrentConnections: [3]int{100, 300, 1000},
		AuthFailureDelay:      time.Second,
		UnknownRecipientDelay: 3 * time.Second,
		MaxAuthFailures:       3,
	}
	for _, r := range []ipc.Role{ipc.RoleSMTP, ipc.RoleSubmission} {
		want := &config.SMTPSlice{
			Submission:     r == ipc.RoleSubmission,
			Localserve:     true,
			DNS:            wantDNS,
			MaxMessageSize: 10 << 20,
			MaxRecipients:  200,
			RequireTLS:     true,
			RejectDMARC:    false,
			Limits:         wantLimits,
		}
		if got := l[r].SMTP; !reflect.DeepEqual(got, want) {
			t.Errorf("%s slice\n got %+v\nwant %+v", r, got, want)
		}
	}

	domains := []config.AddrDomain{{Name: "example.com", LocalpartSeparators: []string{"+"}, Aliases: []config.AddrAlias{
		{Address: "team@example.com", Members: []string{"mjl@example.com", "jo@example.com"}, MembersMaySend: true},
	}}}
	wantQueue := &config.QueueSlice{
		Localserve:     true,
		DNS:            wantDNS,
		MaxMessageSize: 10 << 20,
		Postmaster:     "mjl",
		Domains:        domains,
		Accounts: []config.QueueAccount{
			{Name: "mjl", Addresses: []string{"mjl@example.com", "postmaster@example.com", "moxd@example.com"}, MaxMessagesPerDay: 10, MaxFirstTimeRecipientsPerDay: 200},
			{Name: "jo", Addresses: []string{"jo@example.com"}, MaxMessagesPerDay: 1000, MaxFirstTimeRecipientsPerDay: 200},
		},
		Delivery: config.QueueDelivery{
			MaxAttempts:            8,
			FirstRetry:             7*time.Minute + 30*time.Second,
			DelayedDSNAfter:        5,
			Keep:                   7 * 24 * time.Hour,
			Concurrency:            64,
			DestinationConcurrency: 10,
			MTASTS:                 true,
		},
	}
	if got := l[ipc.RoleQueue].Queue; !reflect.DeepEqual(got, wantQueue) {
		t.Errorf("queue slice\n got %+v\nwant %+v", got, wantQueue)
	}

	wantStore := &config.StoreSlice{
		Domains: domains,
		Accounts: []config.StoreAccount{
			{Name: "mjl", Addresses: []string{"mjl@example.com", "postmaster@example.com"}, Destinations: map[string]string{"moxd@example.com": "Lists/moxd"}},
			{Name: "jo", Addresses: []string{"jo@example.com"}, Quota: 1 << 30},
		},
		MaxMessageSize:  10 << 20,
		DiskReserve:     1 << 30,
		FallbackAccount: "mjl", // localserve: every address is accepted.
		Postmaster:      "mjl",
	}
	if got := l[ipc.RoleStore].Store; !reflect.DeepEqual(got, wantStore) {
		t.Errorf("store slice\n got %+v\nwant %+v", got, wantStore)
	}
	wantIMAP := &config.IMAPSlice{Localserve: true, MaxMessageSize: 10 << 20, Limits: wantLimits}
	if got := l[ipc.RoleIMAP].IMAP; !reflect.DeepEqual(got, wantIMAP) {
		t.Errorf("imap slice\n got %+v\nwant %+v", got, wantIMAP)
	}

	// Without localserve, store has no fallback.
	cfg = loadSliceConfig(t, strings.Replace(sliceConf, "localserve = true\n", "", 1), sliceDomains)
	l = slicesOf(t, cfg, dns)
	if s := l[ipc.RoleStore].Store; s.FallbackAccount != "" {
		t.Errorf("fallback account %q without localserve", s.FallbackAccount)
	}
	if q := l[ipc.RoleQueue].Queue; q.Localserve || l[ipc.RoleSMTP].SMTP.Localserve {
		t.Errorf("localserve set without localserve")
	}
}

// TestQueueSliceDelivery checks the outbound delivery part of the queue
// slice: [queue], the transports with the password master read, the
// routes at their three levels and the DKIM selectors.
func TestQueueSliceDelivery(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "relay.password")
	if err := os.WriteFile(pwFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := sliceConf + `
[queue]
max_attempts = 4
delayed_dsn_after = 2
first_retry = "1m"
source_ips = ["192.0.2.25"]

[[transport]]
name = "relay"
kind = "submission"
host = "smtp.example.net"
username = "mjl@example.net"
password_file = "` + pwFile + `"
`
	domains := sliceDomains + `
[[account.route]]
minimum_attempts = 2
transport = "relay"

[[domain]]
name = "example.org"

[[domain.dkim]]
selector = "s1"
algorithm = "ed25519"

[[domain.route]]
to_domains = [".example.net"]
transport = "relay"

[[route]]
from_domains = ["example.com"]
`
	domains = strings.Replace(domains, "addresses = [\"jo@example.com\"]\n", "addresses = [\"jo@example.com\", \"postmaster@example.org\"]\nunique_mail_from = true\n", 1)
	cfg := loadSliceConfig(t, conf, domains)
	q := slicesOf(t, cfg, config.DNSSlice{Offline: true})[ipc.RoleQueue].Queue

	wantDelivery := config.QueueDelivery{
		MaxAttempts:            4,
		FirstRetry:             time.Minute,
		DelayedDSNAfter:        2,
		Keep:                   7 * 24 * time.Hour,
		Concurrency:            64,
		DestinationConcurrency: 10,
		SourceIPs:              []string{"192.0.2.25"},
		MTASTS:                 true,
	}
	if !reflect.DeepEqual(q.Delivery, wantDelivery) {
		t.Errorf("delivery\n got %+v\nwant %+v", q.Delivery, wantDelivery)
	}
	wantTransports := []config.QueueTransport{{Name: "relay", Kind: "submission", Host: "smtp.example.net", Port: 587, Username: "mjl@example.net", Password: "s3cret"}}
	if !reflect.DeepEqual(q.Transports, wantTransports) {
		t.Errorf("transports\n got %+v\nwant %+v", q.Transports, wantTransports)
	}
	if want := []config.QueueRoute{{FromDomains: []string{"example.com"}}}; !reflect.DeepEqual(q.Routes, want) {
		t.Errorf("routes %+v, want %+v", q.Routes, want)
	}
	if want := map[string][]config.QueueRoute{"example.org": {{ToDomains: []string{".example.net"}, Transport: "relay"}}}; !reflect.DeepEqual(q.DomainRoutes, want) {
		t.Errorf("domain routes %+v, want %+v", q.DomainRoutes, want)
	}
	jo := q.Accounts[1]
	if want := []config.QueueRoute{{MinimumAttempts: 2, Transport: "relay"}}; jo.Name != "jo" || !reflect.DeepEqual(jo.Routes, want) || !jo.UniqueMailFrom {
		t.Errorf("account %+v, want routes %+v and unique_mail_from", jo, want)
	}
	if q.Accounts[0].Routes != nil || q.Accounts[0].UniqueMailFrom {
		t.Errorf("account %+v, want no routes, no unique_mail_from", q.Accounts[0])
	}
	if want := map[string][]config.QueueDKIM{"example.org": {{Selector: "s1", Algorithm: "ed25519"}}}; !reflect.DeepEqual(q.DKIM, want) {
		t.Errorf("dkim %+v, want %+v", q.DKIM, want)
	}
}

func TestResolverSlice(t *testing.T) {
	files := map[string]string{
		"/etc/resolv.conf":  "# comment\nnameserver 10.0.0.53\nnameserver 2001:db8::53\noptions edns0 trust-ad\n",
		"/etc/plain.conf":   "search example.com\nnameserver 127.0.0.53\n",
		"/etc/empty.conf":   "search example.com\n",
		"/etc/garbage.conf": "nameserver localhost\n",
	}
	read := func(path string) ([]byte, error) {
		s, ok := files[path]
		if !ok {
			return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
		}
		return []byte(s), nil
	}
	tests := []struct {
		name    string
		dns     string
		want    config.DNSSlice
		wantErr string
	}{
		{"resolv.conf", "", config.DNSSlice{Servers: []string{"10.0.0.53:53", "[2001:db8::53]:53"}, TrustAD: true}, ""},
		{"trust_ad option", "resolv_conf = \"/etc/plain.conf\"\ntrust_ad = true\n", config.DNSSlice{Servers: []string{"127.0.0.53:53"}, TrustAD: true}, ""},
		{"no trust-ad", "resolv_conf = \"/etc/plain.conf\"\n", config.DNSSlice{Servers: []string{"127.0.0.53:53"}}, ""},
		{"no nameserver lines", "resolv_conf = \"/etc/empty.conf\"\n", config.DNSSlice{Servers: []string{"127.0.0.1:53"}}, ""},
		{"nameservers override", "nameservers = [\"192.0.2.1\", \"[2001:db8::1]:5353\"]\nresolv_conf = \"/nonexistent\"\n", config.DNSSlice{Servers: []string{"192.0.2.1:53", "[2001:db8::1]:5353"}}, ""},
		{"offline", "offline = true\nnameservers = [\"192.0.2.1\"]\nresolv_conf = \"/nonexistent\"\n", config.DNSSlice{Offline: true}, ""},
		{"missing file", "resolv_conf = \"/nonexistent\"\n", config.DNSSlice{}, "dns.resolv_conf: open /nonexistent: file does not exist (fix the file, set dns.nameservers, or set dns.offline = true to run without DNS)"},
		{"bad file", "resolv_conf = \"/etc/garbage.conf\"\n", config.DNSSlice{}, "dns.resolv_conf /etc/garbage.conf: resolv.conf line 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := loadSliceConfig(t, "hostname = \"mail.example.com\"\nlocalserve = true\n[dns]\n"+tc.dns, "")
			got, err := resolverSlice(cfg, read)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), cfg.Path+": ") {
					t.Fatalf("got %v, want an error naming %s and containing %q", err, cfg.Path, tc.wantErr)
				}
				if !errors.Is(err, fs.ErrNotExist) && tc.name == "missing file" {
					t.Errorf("error does not wrap the cause: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestSliceIncomingWebhook: an account with an incoming webhook is marked
// in store's slice (store only needs to know, queue gets the URL); an
// outgoing one is not.
func TestSliceIncomingWebhook(t *testing.T) {
	domains := sliceDomains + `
[[account.webhook]]
kind = "incoming"
url = "https://hooks.example.com/in"

[[account.webhook]]
kind = "outgoing"
url = "https://hooks.example.com/out"
`
	cfg := loadSliceConfig(t, sliceConf, domains)
	l := slicesOf(t, cfg, config.DNSSlice{})
	for _, a := range l[ipc.RoleStore].Store.Accounts {
		if a.IncomingWebhook != (a.Name == "jo") {
			t.Errorf("store account %s: incoming webhook %v", a.Name, a.IncomingWebhook)
		}
	}
	for _, a := range l[ipc.RoleQueue].Queue.Accounts {
		if a.Name == "jo" && (len(a.Webhooks) != 2 || a.Webhooks[0].Kind != "incoming" || a.Webhooks[0].URL != "https://hooks.example.com/in") {
			t.Errorf("queue account jo: webhooks %+v", a.Webhooks)
		}
	}
}

// TestSliceJunkFlags: the account's junk flag rules and their off switch
// reach store, which applies them.
func TestSliceJunkFlags(t *testing.T) {
	domains := strings.Replace(sliceDomains, "quota = \"1G\"\n", "quota = \"1G\"\nautomatic_junk_flags = false\n", 1) + `
[[account.junk_flag]]
mailbox = "spam"
flag = "$Junk"
`
	cfg := loadSliceConfig(t, sliceConf, domains)
	l := slicesOf(t, cfg, config.DNSSlice{})
	for _, a := range l[ipc.RoleStore].Store.Accounts {
		switch a.Name {
		case "jo":
			if !a.NoJunkFlags || len(a.JunkFlags) != 1 || a.JunkFlags[0].Mailbox != "spam" {
				t.Errorf("store account jo: no junk flags %v, rules %+v; want off with the one rule", a.NoJunkFlags, a.JunkFlags)
			}
		default:
			if a.NoJunkFlags || len(a.JunkFlags) != 0 {
				t.Errorf("store account %s: no junk flags %v, rules %+v; want the defaults", a.Name, a.NoJunkFlags, a.JunkFlags)
			}
		}
	}
}
