package config

import (
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// testEnv resolves the default role user names to fixed ids, so tests do not
// depend on the machine's passwd file; anything else goes to ResolveUser.
func testEnv(uid, gid int) env {
	names := map[string]User{}
	for i, n := range []string{"_moxd-keys", "_moxd-store", "_moxd-queue", "_moxd-smtp", "_moxd-submit", "_moxd-imap", "_moxd-web"} {
		id := uint32(5001 + i)
		names[n] = User{Spec: n, Name: n, UID: id, GID: id}
	}
	return env{
		getuid: func() int { return uid },
		getgid: func() int { return gid },
		lookupUser: func(spec string) (User, error) {
			if u, ok := names[spec]; ok {
				return u, nil
			}
			return ResolveUser(spec)
		},
		lookupGroup: func(spec string) (uint32, error) {
			if spec == "_moxdadm" {
				return 5100, nil
			}
			return ResolveGroup(spec)
		},
		lookupUID: func(name string) (uint32, error) {
			if uid, ok := testUnixUsers[name]; ok {
				return uid, nil
			}
			return lookupUID(name)
		},
		readFile: func(path string) ([]byte, error) {
			if data, ok := testFiles()[path]; ok {
				return []byte(data), nil
			}
			return readConfigFile(path)
		},
	}
}

// testUnixUsers are unix users that testEnv resolves without the passwd
// database.
var testUnixUsers = map[string]uint32{"alice": 2001, "bob": 2002}

// testFiles are the files testEnv reads without the file system: those the
// examples of the struct tags name.
func testFiles() map[string]string {
	return map[string]string{
		"/etc/moxd/relay.password": "example secret\nsecond line\n",
		"/etc/moxd/private-ca.pem": testCAPEM,
		// For the errors of TestLoadErrors.
		"/test/key.pem":        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
		"/test/bad-ca.pem":     "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
		"/test/empty-password": "\nsecret on the second line\n",
	}
}

// writeFiles writes moxd.conf and (if not empty) domains.conf in a new
// directory and returns the path of moxd.conf.
func writeFiles(t *testing.T, conf, domains string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "moxd.conf")
	if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if domains != "" {
		if err := os.WriteFile(filepath.Join(dir, "domains.conf"), []byte(domains), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

const fullConf = `# A complete configuration.
hostname = "Mail.Example.ORG"
data_dir = "/srv/moxd/data/"
run_dir = "/run/moxd"
libexec_dir = "/usr/local/libexec/moxd"
admin_group = "_moxdadm"
log_level = "warn"

[role_log_levels]
smtp = "debug"
"master" = "error" # quoted key

[users]
smtp = "6000:6001"
web = "6002"

[listen]
smtp = ["192.0.2.1:25", "[2001:db8::1]:25"]
submission = [
	"0.0.0.0:587",
	"[::]:587",
]
imaps = ["127.0.0.1:0", "127.0.0.1:0"]

[tls]
local_ca = false

[[tls.certificate]]
cert_file = "/etc/ssl/mail.crt"
key_file = "/etc/ssl/private/mail.key"

[[tls.certificate]]
cert_file = "/etc/ssl/other.pem"
key_file = "/etc/ssl/private/other.key"
`

const fullDomains = `[[domain]]
name = "Example.ORG"

[[domain.dkim]]
selector = "2024a"
algorithm = "ed25519"

[[domain.dkim]]
selector = "2024b"
algorithm = "rsa2048"

[[domain]]
name = "bücher.example"

[[account]]
name = "mjl"
addresses = ["mjl@example.org", "Info@EXAMPLE.org", "kurt@bücher.example"]

[[account]]
name = "other"
addresses = ["other@example.org", "postmaster@example.org", "Postmaster@Bücher.example"]
quota = "500M"
`

func TestLoadValid(t *testing.T) {
	p := writeFiles(t, fullConf, fullDomains)
	c, err := load(p, testEnv(0, 0))
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	s := c.Static
	if s.Hostname != "mail.example.org" {
		t.Errorf("hostname %q, want lower-cased mail.example.org", s.Hostname)
	}
	if s.HostnameASCII() != "mail.example.org" {
		t.Errorf("HostnameASCII %q", s.HostnameASCII())
	}
	if s.DataDir != "/srv/moxd/data" || s.RunDir != "/run/moxd" || s.LibexecDir != "/usr/local/libexec/moxd" {
		t.Errorf("dirs %q %q %q", s.DataDir, s.RunDir, s.LibexecDir)
	}
	if want := map[string]string{"smtp": "debug", "master": "error"}; !reflect.DeepEqual(s.RoleLogLevels, want) {
		t.Errorf("role_log_levels %v, want %v", s.RoleLogLevels, want)
	}
	if c.Path != p || c.DomainsPath != filepath.Join(filepath.Dir(p), "domains.conf") {
		t.Errorf("paths %q %q", c.Path, c.DomainsPath)
	}
	if c.DynamicHash != sha256.Sum256([]byte(fullDomains)) {
		t.Errorf("DynamicHash is not the hash of domains.conf")
	}

	wantListeners := []ListenerSpec{
		{"smtp", "192.0.2.1:25"},
		{"smtp", "[2001:db8::1]:25"},
		{"submission", "0.0.0.0:587"},
		{"submission", "[::]:587"},
		{"imaps", "127.0.0.1:0"},
		{"imaps", "127.0.0.1:0"},
	}
	if got := s.ListenerList(); !reflect.DeepEqual(got, wantListeners) {
		t.Errorf("ListenerList\n got %v\nwant %v", got, wantListeners)
	}

	wantUsers := map[string]User{
		"keys":       {Spec: "_moxd-keys", Name: "_moxd-keys", UID: 5001, GID: 5001},
		"store":      {Spec: "_moxd-store", Name: "_moxd-store", UID: 5002, GID: 5002},
		"queue":      {Spec: "_moxd-queue", Name: "_moxd-queue", UID: 5003, GID: 5003},
		"smtp":       {Spec: "6000:6001", UID: 6000, GID: 6001},
		"submission": {Spec: "_moxd-submit", Name: "_moxd-submit", UID: 5005, GID: 5005},
		"imap":       {Spec: "_moxd-imap", Name: "_moxd-imap", UID: 5006, GID: 5006},
		"web":        {Spec: "6002", UID: 6002, GID: 6002},
	}
	for role, u := range c.Users {
		u.Name = wantUsers[role].Name // Numeric ids may have passwd names on this machine.
		c.Users[role] = u
	}
	if !reflect.DeepEqual(c.Users, wantUsers) {
		t.Errorf("users\n got %v\nwant %v", c.Users, wantUsers)
	}

	if n := s.TLS.Certificates[0].Name(); n != "mail" {
		t.Errorf("certificate name %q, want mail", n)
	}

	d := c.Dynamic
	if len(d.Domains) != 2 || d.Domains[0].Name != "example.org" || d.Domains[1].Name != "bücher.example" {
		t.Fatalf("domains %+v", d.Domains)
	}
	if len(d.Domains[0].DKIM) != 2 || d.Domains[0].DKIM[1] != (DKIMSelector{"2024b", "rsa2048"}) {
		t.Errorf("dkim %+v", d.Domains[0].DKIM)
	}
	wantAddrs := []string{"mjl@example.org", "Info@example.org", "kurt@bücher.example"}
	if !reflect.DeepEqual(d.Accounts[0].Addresses, wantAddrs) {
		t.Errorf("addresses %q, want %q", d.Accounts[0].Addresses, wantAddrs)
	}
	// Postmaster compared without case, the domain lower-cased.
	if got, want := d.Accounts[1].Addresses[2], "Postmaster@bücher.example"; got != want {
		t.Errorf("address %q, want %q", got, want)
	}
	if got := d.Accounts[1].QuotaBytes(); got != 500<<20 {
		t.Errorf("quota %d, want %d", got, 500<<20)
	}
}

func TestLoadDefaultsAndMissingDomains(t *testing.T) {
	p := writeFiles(t, "hostname = \"mail.example.org\"\n", "")
	c, err := load(p, testEnv(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	want := defaultStatic()
	want.Hostname = "mail.example.org"
	if !reflect.DeepEqual(c.Static, want) {
		t.Errorf("static\n got %+v\nwant %+v", c.Static, want)
	}
	if len(c.Dynamic.Domains) != 0 || len(c.Dynamic.Accounts) != 0 {
		t.Errorf("missing domains.conf gave %+v, want empty", c.Dynamic)
	}
	if c.DynamicHash != sha256.Sum256(nil) {
		t.Errorf("hash of missing domains.conf is not the hash of no bytes")
	}
	if c.Users["web"].UID != 5007 || len(c.Users) != 7 {
		t.Errorf("users %v", c.Users)
	}
}

func TestLoadDomainsFileOption(t *testing.T) {
	dir := t.TempDir()
	abs := filepath.Join(dir, "elsewhere.conf")
	if err := os.WriteFile(abs, []byte("[[domain]]\nname = \"example.net\"\n[[account]]\nname = \"pm\"\naddresses = [\"postmaster@example.net\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, df := range []string{abs, "elsewhere.conf"} {
		p := filepath.Join(dir, "moxd.conf")
		conf := "hostname = \"mail.example.net\"\ndomains_file = " + tomlString(df) + "\n"
		if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := load(p, testEnv(0, 0))
		if err != nil {
			t.Fatalf("domains_file %q: %v", df, err)
		}
		if c.DomainsPath != abs || len(c.Dynamic.Domains) != 1 {
			t.Errorf("domains_file %q: path %q, domains %v", df, c.DomainsPath, c.Dynamic.Domains)
		}
	}
}

// TestLoadErrors checks that every class of error names the file, the line
// and the key. {conf} and {domains} stand for the file paths.
func TestLoadErrors(t *testing.T) {
	const host = "hostname = \"mail.example.org\"\n"
	const dom = "[[domain]]\nname = \"example.org\"\n"
	const pm = "[[account]]\nname = \"pm\"\naddresses = [\"postmaster@example.org\"]\n"
	tests := []struct {
		name    string
		conf    string
		domains string
		want    string
	}{
		{"syntax", host + "data_dir = \n", "",
			`{conf}:2: invalid TOML: expected value but found '\n' instead (last key data_dir)`},
		{"type bool", host + "\nlocalserve = \"yes\"\n", "",
			`{conf}:3: localserve: wrong type: string given, boolean expected`},
		{"type array", host + "[listen]\nsmtp = \"192.0.2.1:25\"\n", "",
			`{conf}:3: listen.smtp: wrong type: string given, array expected`},
		{"type table", host + "users = \"x\"\n", "",
			`{conf}:2: users: wrong type: string given, table expected`},
		{"unknown top key", host + "# comment\ndatadir = \"/x\" # typo\n", "",
			`{conf}:3: datadir: unknown key (check the spelling; "moxctl config describe" lists all options)`},
		{"unknown key in table", host + "[users]\nsmtp = \"6000\"\n  'stor' = \"6001\"\n", "",
			`{conf}:4: users.stor: unknown key (check the spelling; "moxctl config describe" lists all options)`},
		{"unknown table reported once", host + "\n[acme]\nemail = \"x\"\nurl = \"y\"\n", "",
			`{conf}:3: acme: unknown key (check the spelling; "moxctl config describe" lists all options)`},
		{"unknown dotted key", host + "tls.local_ca = true\ntls.bogus = 1\n", "",
			`{conf}:3: tls.bogus: unknown key (check the spelling; "moxctl config describe" lists all options)`},
		{"unknown key in inline table", host + "tls = { local_ca = true,\n  certs = [] }\n", "",
			`{conf}:3: tls.certs: unknown key (check the spelling; "moxctl config describe" lists all options)`},
		{"unknown key in tls.certificate", host + `
[tls]
local_ca = true

[[tls.certificate]]
cert_file = "/a.pem"
key_file = "/a.key"

[[tls.certificate]]
cert_file = "/b.pem"
keyfile = "/b.key" # typo
`, "",
			`{conf}:12: tls.certificate.keyfile: unknown key (check the spelling; "moxctl config describe" lists all options)`},
		{"missing hostname", "log_level = \"info\"\n", "",
			`{conf}: hostname: required: set it to this host's fully qualified domain name, e.g. hostname = "mail.example.com"`},
		{"bad hostname", "\nhostname = \"mail_1.example.org\"\n", "",
			`{conf}:2: hostname: domain name "mail_1.example.org": label "mail_1" contains '_', only letters, digits and '-' are allowed`},
		{"ip hostname", "hostname = \"192.0.2.1\"\n", "",
			`{conf}:1: hostname: "192.0.2.1" is an IP address, a domain name is needed`},
		{"relative data_dir", host + "data_dir = \"var/moxd\"\n", "",
			`{conf}:2: data_dir: "var/moxd" is not an absolute path`},
		{"relative libexec_dir", host + "libexec_dir = \"bin\"\n", "",
			`{conf}:2: libexec_dir: "bin" is not an absolute path`},
		{"bad log level", host + "log_level = \"verbose\"\n", "",
			`{conf}:2: log_level: unknown log level "verbose" (use trace, debug, info, warn or error)`},
		{"bad role in role_log_levels", host + "[role_log_levels]\nsmtp = \"debug\"\nsmtpd = \"debug\"\n", "",
			`{conf}:4: role_log_levels.smtpd: unknown role "smtpd" (use one of master, keys, store, queue, smtp, submission, imap, web)`},
		{"bad level in role_log_levels", host + "role_log_levels = { imap = \"loud\" }\n", "",
			`{conf}:2: role_log_levels.imap: unknown log level "loud" (use trace, debug, info, warn or error)`},
		{"listener host name", host + "[listen]\nimap = [\n  \"127.0.0.1:143\",\n  \"localhost:143\",\n]\n", "",
			`{conf}:5: listen.imap[1]: address "localhost:143": "localhost" is not an IP address (host names are not allowed: no DNS is used at start)`},
		{"listener without port", host + "listen.smtp = [\"192.0.2.1\"]\n", "",
			`{conf}:2: listen.smtp[0]: bad address "192.0.2.1": want "ip:port", with an IPv6 address in brackets, e.g. "[::1]:25"`},
		{"listener port range", host + "listen.smtp = [\"192.0.2.1:65536\"]\n", "",
			`{conf}:2: listen.smtp[0]: address "192.0.2.1:65536": port "65536" is not a number from 0 to 65535`},
		{"listener empty host", host + "listen.smtp = [\":25\"]\n", "",
			`{conf}:2: listen.smtp[0]: address ":25" has no IP address; use "0.0.0.0:25" and/or "[::]:25" for all addresses`},
		{"duplicate listener across lists", host + "[listen]\nsmtp = [\"127.0.0.1:2525\"]\nimap = [\"127.0.0.1:143\", \"127.0.0.1:2525\"]\n", "",
			`{conf}:4: listen.imap[1]: address "127.0.0.1:2525" is also listed in listen.smtp[0] (line 3); use each address once`},
		{"overlapping wildcard listener", host + "[listen]\nhttp = [\"[::1]:80\"]\nimap = [\"[::]:143\"]\nsubmission = [\"[::]:80\"]\n", "",
			`{conf}:3: listen.http[0]: address "[::1]:80" overlaps with "[::]:80" in listen.submission[0] (line 5); use each address once`},
		{"tls listener without certificate", host + "[listen]\nsmtp = [\"192.0.2.1:25\"]\nimaps = [\"192.0.2.1:993\"]\n", "",
			`{conf}:4: listen.imaps: implicit TLS needs a certificate: add a [[tls.certificate]] section (or set tls.local_ca = true for testing)`},
		{"unknown key twice", host + "[[tls.certificate]]\ncert_file = \"/a.pem\"\nkey_file = \"/a.key\"\nx = 1\n[[tls.certificate]]\ncert_file = \"/b.pem\"\nkey_file = \"/b.key\"\nx = 2\n", "",
			`{conf}:5: tls.certificate.x: unknown key (check the spelling; "moxctl config describe" lists all options)`},
		{"unknown user", host + "[users]\nkeys = \"_moxd-keys\"\nsmtp = \"_moxd-no-such-user\"\n", "",
			`{conf}:4: users.smtp: unknown user "_moxd-no-such-user" (create it, see README "Install", or use a numeric "uid:gid")`},
		{"root user", host + "[users]\nweb = \"0:0\"\n", "",
			`{conf}:3: users.web: user "0:0" has uid 0, gid 0: a role must not run as root or with group 0; use a dedicated user`},
		// users.web is not in the file: the error points at [users].
		{"same user spec twice", host + "[users]\nimap = \"_moxd-web\"\n", "",
			`{conf}:2: users.web: user "_moxd-web" is also used for users.imap; every role needs its own user`},
		{"same uid twice", host + "[users]\nsmtp = \"7000:7000\"\nsubmission = \"7000:7001\"\n", "",
			`{conf}:4: users.submission: uid 7000 is also the uid of users.smtp; every role needs its own user`},
		{"bad numeric user", host + "users.queue = \"12x\"\n", "",
			`{conf}:2: users.queue: user "12x": uid: "12x" is not a decimal number`},
		{"unknown admin group", host + "admin_group = \"_moxd-no-such-group\"\n", "",
			`{conf}:2: admin_group: unknown group "_moxd-no-such-group" (create the group, use a numeric gid, or leave admin_group empty for root only)`},
		{"relative cert", host + "[[tls.certificate]]\ncert_file = \"a.pem\"\nkey_file = \"/a.key\"\n", "",
			`{conf}:3: tls.certificate[0].cert_file: "a.pem" is not an absolute path`},
		{"missing key file", host + "[[tls.certificate]]\ncert_file = \"/a.pem\"\n", "",
			`{conf}:2: tls.certificate[0].key_file: required in each [[tls.certificate]]`},
		{"duplicate cert name", host + "[[tls.certificate]]\ncert_file = \"/a/mail.pem\"\nkey_file = \"/a/mail.key\"\n[[tls.certificate]]\ncert_file = \"/b/mail.crt\"\nkey_file = \"/b/mail.key\"\n", "",
			`{conf}:6: tls.certificate[1].cert_file: certificate name "mail" (the file name without extension) is also used by tls.certificate[0]; rename one of the files`},

		{"relative resolv_conf", host + "[dns]\nresolv_conf = \"resolv.conf\"\n", "",
			`{conf}:3: dns.resolv_conf: "resolv.conf" is not an absolute path`},
		{"no resolver", host + "[dns]\nresolv_conf = \"\"\n", "",
			`{conf}:3: dns.resolv_conf: empty; give the path of a resolv.conf file (default "/etc/resolv.conf"), or set dns.nameservers`},
		{"nameserver host name", host + "dns.nameservers = [\"127.0.0.1\", \"ns.example.org\"]\n", "",
			`{conf}:2: dns.nameservers[1]: bad nameserver "ns.example.org": want an IP address, optionally with a port: "192.0.2.53", "192.0.2.53:5353", "2001:db8::53" or "[2001:db8::53]:5353"`},
		{"nameserver port 0", host + "dns.nameservers = [\"[::1]:0\"]\n", "",
			`{conf}:2: dns.nameservers[0]: nameserver "[::1]:0": port 0; leave the port out for 53`},
		{"message size syntax", host + "[smtp]\nmax_message_size = \"100MB\"\n", "",
			`{conf}:3: smtp.max_message_size: size "100MB": want a number of bytes, optionally followed by K, M, G or T, e.g. "500M" or "10G"`},
		{"message size range", host + "[smtp]\nmax_message_size = \"100\"\n", "",
			`{conf}:3: smtp.max_message_size: "100" is outside the allowed range from 1K to 16G`},
		{"too few recipients", host + "[smtp]\nmax_recipients = 99\n", "",
			`{conf}:3: smtp.max_recipients: 99 is outside the allowed range from 100 (the minimum of RFC 5321 section 4.5.3.1.8) to 100000`},
		{"trusted network bits", host + "[limits]\ntrusted_networks = [\"192.0.2.1/24\"]\n", "",
			`{conf}:3: limits.trusted_networks[0]: network "192.0.2.1/24" has bits set after the prefix length; did you mean "192.0.2.0/24"?`},
		{"trusted network syntax", host + "[limits]\ntrusted_networks = [\"192.0.2.0/33\"]\n", "",
			`{conf}:3: limits.trusted_networks[0]: bad network "192.0.2.0/33": want CIDR notation such as "192.0.2.0/24" or "2001:db8::/48", or an IP address`},
		{"two limits", host + "[limits]\nconnections_per_minute = [10, 20]\n", "",
			`{conf}:3: limits.connections_per_minute: 2 numbers given; give three, for IPv4 /32, /26, /21 and IPv6 /64, /48, /32, e.g. connections_per_minute = [300, 1200, 4800]`},
		{"negative limit", host + "[limits]\nconcurrent_connections = [10, -1, 0]\n", "",
			`{conf}:3: limits.concurrent_connections[1]: -1 is negative; use 0 for no limit`},
		{"bad delay", host + "[limits]\nauth_failure_delay = \"1 second\"\n", "",
			`{conf}:3: limits.auth_failure_delay: bad duration "1 second": want a number with a unit, such as "1s", "500ms" or "0s"`},
		{"long delay", host + "[limits]\nunknown_recipient_delay = \"2m\"\n", "",
			`{conf}:3: limits.unknown_recipient_delay: duration "2m" is outside the allowed range from "0s" to "1m"`},
		{"no auth failures", host + "[limits]\nmax_auth_failures = 0\n", "",
			`{conf}:3: limits.max_auth_failures: 0 is outside the allowed range from 1 to 100`},
		{"disk reserve", host + "[store]\ndisk_reserve = \"lots\"\n", "",
			`{conf}:3: store.disk_reserve: size "lots": want a number of bytes, optionally followed by K, M, G or T, e.g. "500M" or "10G"`},

		// [queue]
		{"no attempts", host + "[queue]\nmax_attempts = 0\ndelayed_dsn_after = 0\n", "",
			`{conf}:3: queue.max_attempts: 0 is outside the allowed range from 1 to 100`},
		{"bad first retry", host + "[queue]\nfirst_retry = \"7.5 minutes\"\n", "",
			`{conf}:3: queue.first_retry: bad duration "7.5 minutes": want a number with a unit, such as "30s", "7.5m" or "1h"`},
		{"short first retry", host + "[queue]\nfirst_retry = \"500ms\"\n", "",
			`{conf}:3: queue.first_retry: duration "500ms" is outside the allowed range from "1s" to "24h"`},
		{"long keep", host + "queue.keep = \"9000h\"\n", "",
			`{conf}:2: queue.keep: duration "9000h" is outside the allowed range from "1h" to "8760h"`},
		{"delayed dsn after last attempt", host + "[queue]\nmax_attempts = 5\n", "",
			`{conf}:2: queue.delayed_dsn_after: the default 5 is not less than max_attempts (5), after which the sender gets a failure DSN instead; set it lower, or to 0 for no delayed DSN`},
		{"delayed dsn after too late", host + "[queue]\nmax_attempts = 5\ndelayed_dsn_after = 6\n", "",
			`{conf}:4: queue.delayed_dsn_after: 6 is not less than max_attempts (5), after which the sender gets a failure DSN instead; set it lower, or to 0 for no delayed DSN`},
		{"negative delayed dsn", host + "[queue]\ndelayed_dsn_after = -1\n", "",
			`{conf}:3: queue.delayed_dsn_after: -1 is negative; use 0 for no delayed DSN`},
		{"no concurrency", host + "[queue]\nconcurrency = 0\n", "",
			`{conf}:3: queue.concurrency: 0 is outside the allowed range from 1 to 10000`},
		{"destination concurrency", host + "[queue]\ndestination_concurrency = 1001\n", "",
			`{conf}:3: queue.destination_concurrency: 1001 is outside the allowed range from 1 to 1000`},
		{"negative rate", host + "[queue]\ndestination_rate = -1\n", "",
			`{conf}:3: queue.destination_rate: -1 is negative; use 0 for no limit`},
		{"queue port", host + "[queue]\nport = 65536\n", "",
			`{conf}:3: queue.port: 65536 is outside the allowed range from 0 to 65535`},
		{"bad source ip", host + "[queue]\nsource_ips = [\"192.0.2.1\",\n  \"mail.example.org\"]\n", "",
			`{conf}:4: queue.source_ips[1]: bad IP address "mail.example.org": want an address of this host such as "192.0.2.25" or "2001:db8::25"`},
		{"unspecified source ip", host + "[queue]\nsource_ips = [\"::\"]\n", "",
			`{conf}:3: queue.source_ips[0]: address "::" is unspecified; leave the list empty to let the system choose`},
		{"source ip twice", host + "[queue]\nsource_ips = [\"192.0.2.1\", \"::ffff:192.0.2.1\"]\n", "",
			`{conf}:3: queue.source_ips[1]: address "::ffff:192.0.2.1" is listed twice`},
		{"relative ca file", host + "[queue]\nca_file = \"ca.pem\"\n", "",
			`{conf}:3: queue.ca_file: "ca.pem" is not an absolute path`},
		{"missing ca file", host + "[queue]\nca_file = \"/nonexistent/ca.pem\"\n", "",
			`{conf}:3: queue.ca_file: open /nonexistent/ca.pem: no such file or directory`},
		{"ca file without certificate", host + "[queue]\nca_file = \"/test/key.pem\"\n", "",
			`{conf}:3: queue.ca_file: /test/key.pem: no PEM CERTIFICATE block; give a file with one or more CA certificates in PEM`},
		{"ca file with bad certificate", host + "[queue]\nca_file = \"/test/bad-ca.pem\"\n", "",
			`{conf}:3: queue.ca_file: /test/bad-ca.pem: certificate 1: x509: malformed certificate`},

		// [[transport]]
		{"transport without name", host + "[[transport]]\nkind = \"direct\"\n", "",
			`{conf}:2: transport[0].name: required: a name for routes to refer to, e.g. "relay"`},
		{"bad transport name", host + "[[transport]]\nname = \"my relay\"\nkind = \"direct\"\n", "",
			`{conf}:3: transport[0].name: transport name "my relay" may contain only letters, digits, '-' and '_'`},
		{"transport twice", host + "[[transport]]\nname = \"a\"\nkind = \"direct\"\n[[transport]]\nname = \"a\"\nkind = \"direct\"\n", "",
			`{conf}:6: transport[1].name: transport "a" is also configured in transport[0] (line 3)`},
		{"transport without kind", host + "[[transport]]\nname = \"a\"\n", "",
			`{conf}:2: transport[0].kind: required: one of direct, smtp, submission, submissions or socks`},
		{"unknown transport kind", host + "[[transport]]\nname = \"a\"\nkind = \"lmtp\"\n", "",
			`{conf}:4: transport[0].kind: unknown kind "lmtp" (use one of direct, smtp, submission, submissions or socks)`},
		{"socks key with smtp", host + "[[transport]]\nname = \"a\"\nkind = \"smtp\"\nhost = \"relay.example.org\"\nsocks_address = \"127.0.0.1:1080\"\n", "",
			`{conf}:6: transport[0].socks_address: not used by kind "smtp", only by kind socks; remove the line or change kind`},
		{"smarthost key with direct", host + "[[transport]]\nname = \"a\"\nkind = \"direct\"\nno_tls_verify = true\n", "",
			`{conf}:5: transport[0].no_tls_verify: not used by kind "direct", only by kinds smtp, submission and submissions; remove the line or change kind`},
		{"source ips with socks", host + "[[transport]]\nname = \"a\"\nkind = \"socks\"\nsocks_address = \"127.0.0.1:1080\"\nremote_ips = [\"192.0.2.1\"]\nremote_hostname = \"mail.example.org\"\nsource_ips = [\"192.0.2.2\"]\n", "",
			`{conf}:8: transport[0].source_ips: not used by kind "socks", only by kinds direct, smtp, submission and submissions; remove the line or change kind`},
		{"submission without host", host + "[[transport]]\nname = \"a\"\nkind = \"submission\"\n", "",
			`{conf}:2: transport[0].host: required for kind "submission": the host name or IP address of the smarthost`},
		{"host with port", host + "[[transport]]\nname = \"a\"\nkind = \"smtp\"\nhost = \"relay.example.org:2525\"\n", "",
			`{conf}:5: transport[0].host: host "relay.example.org:2525" is not a host name or IP address; give a port in the port option`},
		{"bad host", host + "[[transport]]\nname = \"a\"\nkind = \"smtp\"\nhost = \"relay_1.example.org\"\n", "",
			`{conf}:5: transport[0].host: host "relay_1.example.org": domain name "relay_1.example.org": label "relay_1" contains '_', only letters, digits and '-' are allowed`},
		{"transport port", host + "[[transport]]\nname = \"a\"\nkind = \"submissions\"\nhost = \"relay.example.org\"\nport = 65536\n", "",
			`{conf}:6: transport[0].port: 65536 is outside the allowed range from 1 to 65535; 0 or no line means 465`},
		{"username without password file", host + "[[transport]]\nname = \"a\"\nkind = \"submission\"\nhost = \"relay.example.org\"\nusername = \"mjl\"\n", "",
			`{conf}:2: transport[0].password_file: required with username: the file with the password on its first line`},
		{"password file without username", host + "[[transport]]\nname = \"a\"\nkind = \"smtp\"\nhost = \"relay.example.org\"\npassword_file = \"/etc/moxd/relay.password\"\n", "",
			`{conf}:6: transport[0].password_file: no username to go with it; set username too, or remove the line`},
		{"relative password file", host + "[[transport]]\nname = \"a\"\nkind = \"submission\"\nhost = \"relay.example.org\"\nusername = \"mjl\"\npassword_file = \"relay.password\"\n", "",
			`{conf}:7: transport[0].password_file: "relay.password" is not an absolute path`},
		{"missing password file", host + "[[transport]]\nname = \"a\"\nkind = \"submission\"\nhost = \"relay.example.org\"\nusername = \"mjl\"\npassword_file = \"/nonexistent/pw\"\n", "",
			`{conf}:7: transport[0].password_file: open /nonexistent/pw: no such file or directory (the file holds the password for username on its first line)`},
		{"empty password", host + "[[transport]]\nname = \"a\"\nkind = \"submission\"\nhost = \"relay.example.org\"\nusername = \"mjl\"\npassword_file = \"/test/empty-password\"\n", "",
			`{conf}:7: transport[0].password_file: /test/empty-password: the first line is empty; put the password for username on it`},
		{"unknown mechanism", host + "[[transport]]\nname = \"a\"\nkind = \"submission\"\nhost = \"relay.example.org\"\nusername = \"mjl\"\npassword_file = \"/etc/moxd/relay.password\"\nmechanisms = [\"plain\", \"LOGIN\"]\n", "",
			`{conf}:8: transport[0].mechanisms[1]: unknown mechanism "LOGIN" (use SCRAM-SHA-256-PLUS, SCRAM-SHA-256, SCRAM-SHA-1, CRAM-MD5 and PLAIN)`},
		{"mechanism twice", host + "[[transport]]\nname = \"a\"\nkind = \"submission\"\nhost = \"relay.example.org\"\nusername = \"mjl\"\npassword_file = \"/etc/moxd/relay.password\"\nmechanisms = [\"PLAIN\", \"plain\"]\n", "",
			`{conf}:8: transport[0].mechanisms[1]: mechanism "plain" is listed twice`},
		{"mechanisms without username", host + "[[transport]]\nname = \"a\"\nkind = \"smtp\"\nhost = \"relay.example.org\"\nmechanisms = [\"PLAIN\"]\n", "",
			`{conf}:6: transport[0].mechanisms: no username to authenticate with; set username too, or remove the line`},
		{"socks without its keys", host + "[[transport]]\nname = \"a\"\nkind = \"socks\"\n", "",
			`{conf}:2: transport[0].socks_address: required for kind socks: "host:port" of the SOCKS5 proxy` + "\n" +
				`{conf}:2: transport[0].remote_ips: required for kind socks: the IP addresses the proxy connects from, e.g. ["192.0.2.25"]` + "\n" +
				`{conf}:2: transport[0].remote_hostname: required for kind socks: the host name of the proxy's remote_ips, used in EHLO`},
		{"bad socks address", host + "[[transport]]\nname = \"a\"\nkind = \"socks\"\nsocks_address = \"127.0.0.1\"\nremote_ips = [\"192.0.2.1\"]\nremote_hostname = \"mail.example.org\"\n", "",
			`{conf}:5: transport[0].socks_address: bad address "127.0.0.1": want "host:port", with an IPv6 address in brackets, e.g. "127.0.0.1:1080"`},
		{"bad remote ip", host + "[[transport]]\nname = \"a\"\nkind = \"socks\"\nsocks_address = \"[::1]:1080\"\nremote_ips = [\"192.0.2.1\", \"192.0.2.300\"]\nremote_hostname = \"mail.example.org\"\n", "",
			`{conf}:6: transport[0].remote_ips[1]: bad IP address "192.0.2.300": want a public address of the proxy such as "192.0.2.25" or "2001:db8::25"`},

		// domains.conf
		{"domains syntax", host, "[[domain]]\nname = = \"x\"\n", `{domains}:2: invalid TOML: expected value but found '=' instead (last key domain.name)`},
		{"bad dkim algorithm", host, dom + "[[domain.dkim]]\nselector = \"s1\"\nalgorithm = \"rsa1024\"\n",
			`{domains}:5: domain[0].dkim[0].algorithm: unknown DKIM algorithm "rsa1024" (use ed25519 or rsa2048)`},
		{"missing dkim algorithm", host, dom + "[[domain.dkim]]\nselector = \"s1\"\n",
			`{domains}:3: domain[0].dkim[0].algorithm: required: ed25519 or rsa2048`},
		{"bad selector", host, dom + "[[domain.dkim]]\nselector = \"s_1\"\nalgorithm = \"ed25519\"\n",
			`{domains}:4: domain[0].dkim[0].selector: selector "s_1" may contain only letters, digits, '-' and '.'`},
		{"duplicate selector", host, dom + "[[domain.dkim]]\nselector = \"s1\"\nalgorithm = \"ed25519\"\n[[domain.dkim]]\nselector = \"S1\"\nalgorithm = \"rsa2048\"\n",
			`{domains}:7: domain[0].dkim[1].selector: selector "S1" is also used by dkim[0] of this domain`},
		{"unknown key in domain.dkim", host, dom + `[[domain.dkim]]
selector = "s1"
algorithm = "ed25519"

[[domain]]
name = "example.net"

[[domain.dkim]]
selector = "s2"
algorithm = "ed25519"
hash = "sha256"
`, `{domains}:13: domain.dkim.hash: unknown key (check the spelling; "moxctl config describe" lists all options)`},
		{"bad domain", host, "[[domain]]\nname = \"-example.org\"\n",
			`{domains}:2: domain[0].name: domain name "-example.org": label "-example" starts or ends with '-'`},
		{"duplicate domain", host, dom + "\n[[domain]]\nname = \"EXAMPLE.org\"\n",
			`{domains}:5: domain[1].name: domain "example.org" is also configured in domain[0] (line 2)`},
		{"duplicate IDNA domain", host, "[[domain]]\nname = \"bücher.example\"\n[[domain]]\nname = \"xn--bcher-kva.example\"\n",
			`{domains}:4: domain[1].name: domain "xn--bcher-kva.example" is also configured in domain[0] (line 2)`},
		{"bad account name", host, dom + "[[account]]\nname = \"../x\"\n",
			`{domains}:4: account[0].name: account name "../x" starts with '.'`},
		{"duplicate account", host, dom + "[[account]]\nname = \"mjl\"\n[[account]]\nname = \"MJL\"\n",
			`{domains}:6: account[1].name: account "MJL" is also configured in account[0] (line 4)`},
		{"address domain not configured", host, dom + "[[account]]\nname = \"mjl\"\naddresses = [\"mjl@example.org\", \"mjl@example.net\"]\n",
			`{domains}:5: account[0].addresses[1]: address "mjl@example.net": domain "example.net" is not configured; add a [[domain]] section for it`},
		{"empty localpart", host, dom + "[[account]]\nname = \"mjl\"\naddresses = [\n\"@\"]\n",
			`{domains}:6: account[0].addresses[0]: address "@": empty local part`},
		{"duplicate address", host, dom + "[[account]]\nname = \"a\"\naddresses = [\"mjl@example.org\"]\n[[account]]\nname = \"b\"\naddresses = [\"MJL@Example.org\"]\n",
			`{domains}:8: account[1].addresses[0]: address "MJL@Example.org" is also configured at account[0].addresses[0] (line 5)`},
		{"unknown account key", host, dom + "[[account]]\nname = \"a\"\npassword = \"secret\"\n",
			`{domains}:5: account.password: unknown key (check the spelling; "moxctl config describe" lists all options)`},
		{"two catchalls", host, dom + pm + "[[account]]\nname = \"a\"\naddresses = [\"@example.org\"]\n[[account]]\nname = \"b\"\naddresses = [\"@Example.ORG\"]\n",
			`{domains}:11: account[2].addresses[0]: catchall "@Example.ORG" is also configured at account[1].addresses[0] (line 8); a domain has one catchall`},
		{"catchall of unknown domain", host, dom + pm + "[[account]]\nname = \"a\"\naddresses = [\"@example.net\"]\n",
			`{domains}:8: account[1].addresses[0]: address "@example.net": domain "example.net" is not configured; add a [[domain]] section for it`},
		{"separator too long", host, dom + "localpart_separators = [\"+\", \"--\"]\n" + pm,
			`{domains}:3: domain[0].localpart_separators[1]: separator "--" is more than one character; list each character on its own, e.g. ["+", "-"]`},
		{"separator letter", host, dom + "localpart_separators = [\"x\"]\n" + pm,
			`{domains}:3: domain[0].localpart_separators[0]: separator "x" would cut ordinary local parts; use a punctuation character such as "+" or "-"`},
		{"separator twice", host, dom + "localpart_separators = [\"+\", \"+\"]\n" + pm,
			`{domains}:3: domain[0].localpart_separators[1]: separator "+" is listed twice`},
		{"destination without mailbox", host, dom + pm + "[[account.destination]]\naddress = \"lists@example.org\"\n",
			`{domains}:6: account[0].destination[0].mailbox: required: the mailbox to deliver into, e.g. "Lists/moxd"; for the Inbox, list the address in addresses instead`},
		{"destination bad mailbox", host, dom + pm + "[[account.destination]]\naddress = \"lists@example.org\"\nmailbox = \"Lists//moxd\"\n",
			`{domains}:8: account[0].destination[0].mailbox: mailbox "Lists//moxd" has an empty level ("//")`},
		{"destination leading slash", host, dom + pm + "[[account.destination]]\naddress = \"lists@example.org\"\nmailbox = \"/Lists\"\n",
			`{domains}:8: account[0].destination[0].mailbox: mailbox "/Lists" starts or ends with "/"; write levels as "Lists/moxd"`},
		{"destination control", host, dom + pm + "[[account.destination]]\naddress = \"lists@example.org\"\nmailbox = \"Lists\\u0007\"\n",
			`{domains}:8: account[0].destination[0].mailbox: mailbox "Lists\a" contains a control character`},
		{"destination of another account", host, dom + pm + "[[account]]\nname = \"b\"\naddresses = [\"b@example.org\"]\n[[account.destination]]\naddress = \"Postmaster@example.org\"\nmailbox = \"PM\"\n",
			`{domains}:10: account[1].destination[0].address: address "Postmaster@example.org" is also configured at account[0].addresses[0] (line 5)`},
		{"destination twice", host, dom + pm + "[[account.destination]]\naddress = \"l@example.org\"\nmailbox = \"A\"\n[[account.destination]]\naddress = \"L@example.org\"\nmailbox = \"B\"\n",
			`{domains}:10: account[0].destination[1].address: address "L@example.org" has a destination already in destination[0]; give each address one mailbox`},
		{"negative daily limit", host, dom + pm + "max_messages_per_day = -1\n",
			`{domains}:6: account[0].max_messages_per_day: -1 is negative; use 0 for no limit, or remove the line for the default`},
		{"daily limit type", host, dom + pm + "max_first_time_recipients_per_day = \"many\"\n",
			`{domains}:6: account.max_first_time_recipients_per_day: wrong type: string given, integer expected`},
		{"alias is account address", host, dom + "[[domain.alias]]\naddress = \"postmaster@example.org\"\nmembers = [\"postmaster@example.org\"]\n" + pm,
			`{domains}:4: domain[0].alias[0].address: alias "postmaster@example.org" is also an address of account "pm" (account[0].addresses[0], line 8); remove one of them`},
		{"alias in other domain", host, dom + "[[domain.alias]]\naddress = \"team@example.net\"\nmembers = [\"postmaster@example.org\"]\n[[domain]]\nname = \"example.net\"\n" + pm + "[[account]]\nname = \"n\"\naddresses = [\"postmaster@example.net\"]\n",
			`{domains}:4: domain[0].alias[0].address: alias "team@example.net" is not in domain "example.org"; move the [[domain.alias]] section to the [[domain]] of its address`},
		{"alias without members", host, dom + "[[domain.alias]]\naddress = \"team@example.org\"\n" + pm,
			`{domains}:3: domain[0].alias[0].members: an alias needs at least one member address`},
		{"alias member remote", host, dom + "[[domain.alias]]\naddress = \"team@example.org\"\nmembers = [\"someone@example.net\"]\n" + pm,
			`{domains}:5: domain[0].alias[0].members[0]: member "someone@example.net" is not local; for now alias members must be addresses of local accounts`},
		{"alias member unknown", host, dom + "[[domain.alias]]\naddress = \"team@example.org\"\nmembers = [\"nobody@example.org\"]\n" + pm,
			`{domains}:5: domain[0].alias[0].members[0]: member "nobody@example.org" is not an address of any account; for now alias members must be addresses of local accounts`},
		{"alias member alias", host, dom + "[[domain.alias]]\naddress = \"team@example.org\"\nmembers = [\"all@example.org\"]\n[[domain.alias]]\naddress = \"all@example.org\"\nmembers = [\"postmaster@example.org\"]\n" + pm,
			`{domains}:5: domain[0].alias[0].members[0]: member "all@example.org" is an alias; aliases cannot contain aliases, list its members instead`},
		{"alias member catchall", host, dom + "[[domain.alias]]\naddress = \"team@example.org\"\nmembers = [\"@example.org\"]\n" + pm,
			`{domains}:5: domain[0].alias[0].members[0]: address "@example.org": a catchall ("@domain") can only be an account's address`},
		{"alias twice", host, dom + "[[domain.alias]]\naddress = \"team@example.org\"\nmembers = [\"postmaster@example.org\"]\n[[domain.alias]]\naddress = \"Team@example.org\"\nmembers = [\"postmaster@example.org\"]\n" + pm,
			`{domains}:7: domain[0].alias[1].address: alias "Team@example.org" is also configured at domain[0].alias[0].address (line 4)`},
		{"alias behind separator", host, dom + "localpart_separators = [\"-\"]\n[[domain.alias]]\naddress = \"postmaster-team@example.org\"\nmembers = [\"postmaster@example.org\"]\n" + pm,
			`{domains}:5: domain[0].alias[0].address: alias "postmaster-team@example.org" would never receive mail: with localpart_separators, it goes to postmaster@example.org (account[0].addresses[0]) first; choose another alias address`},
		{"unknown postmaster account", host, "postmaster_account = \"nobody\"\n" + dom + pm,
			`{domains}:1: postmaster_account: no account "nobody"; name one of the [[account]] sections, or remove the line for the default`},

		// Routes, with the transports of moxd.conf.
		{"route without transports", host, dom + pm + "[[route]]\nto_domains = [\"example.net\"]\ntransport = \"relay\"\n",
			`{domains}:8: route[0].transport: no [[transport]] named "relay" in moxd.conf (moxd.conf has no [[transport]] sections); add it there, or leave transport empty for direct delivery`},
		{"route to unknown transport", host + "[[transport]]\nname = \"a\"\nkind = \"direct\"\n[[transport]]\nname = \"b\"\nkind = \"direct\"\n", dom + "[[domain.route]]\ntransport = \"Relay\"\n" + pm,
			`{domains}:4: domain[0].route[0].transport: no [[transport]] named "Relay" in moxd.conf (moxd.conf has "a" and "b"); add it there, or leave transport empty for direct delivery`},
		{"route domain", host, dom + pm + "[[account.route]]\nfrom_domains = [\"example.org\", \"..example.org\"]\n",
			`{domains}:7: account[0].route[0].from_domains[1]: domain "..example.org": want a domain name, with one leading "." to match its subdomains`},
		{"route empty domain", host, dom + pm + "[[route]]\nto_domains = [\"\"]\n",
			`{domains}:7: route[0].to_domains[0]: empty domain; leave the list empty to match any domain`},
		{"route negative attempts", host, dom + pm + "[[route]]\nminimum_attempts = -1\n",
			`{domains}:7: route[0].minimum_attempts: -1 is negative; use 0 for a route that applies from the first attempt on`},
		{"route never applies", host, dom + pm + "[[route]]\nminimum_attempts = 8\n",
			`{domains}:7: route[0].minimum_attempts: 8: the route never applies, as queue.max_attempts in moxd.conf is 8; lower it`},
		{"unique mail from without separators", host, dom + pm + "unique_mail_from = true\n",
			`{domains}:6: account[0].unique_mail_from: none of the account's domains has localpart_separators, which the unique id needs; add localpart_separators = ["+"] to the [[domain]] of an address of the account, or remove the line`},
		{"incoming webhook with events", host, dom + pm + "[[account.webhook]]\nkind = \"incoming\"\nurl = \"https://hooks.example/in\"\nevents = [\"delivered\"]\n",
			`{domains}:9: account[0].webhook[0].events: an incoming webhook posts every delivery; events apply to outgoing webhooks only, remove them`},
		{"unknown webhook kind", host, dom + pm + "[[account.webhook]]\nkind = \"inbound\"\nurl = \"https://hooks.example/in\"\n",
			`{domains}:7: account[0].webhook[0].kind: "inbound" is not a webhook kind; use "outgoing" or "incoming"`},
		{"unix user in two accounts", host, dom + pm + "unix_users = [\"alice\"]\n[[account]]\nname = \"b\"\naddresses = [\"b@example.org\"]\nunix_users = [\"1000\", \"2001\"]\n",
			`{domains}:10: account[1].unix_users[1]: user "2001" (uid 2001) is also listed at account[0].unix_users[0] (line 6) of account "pm"; a user's local mail goes to one account`},
		{"unix user twice", host, dom + pm + "unix_users = [\"bob\", \"2002\"]\n",
			`{domains}:6: account[0].unix_users[1]: user "2002" (uid 2002) is listed twice`},
		{"unknown unix user", host, dom + pm + "unix_users = [\n  \"_moxd-no-such-user\",\n]\n",
			`{domains}:7: account[0].unix_users[0]: unknown user "_moxd-no-such-user" (remove it, or give a numeric uid)`},
		{"bad unix uid", host, dom + pm + "unix_users = [\"12x\"]\n",
			`{domains}:6: account[0].unix_users[0]: user "12x": uid: "12x" is not a decimal number`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFiles(t, tc.conf, tc.domains)
			want := strings.NewReplacer("{conf}", p, "{domains}", filepath.Join(filepath.Dir(p), "domains.conf")).Replace(tc.want)
			_, err := load(p, testEnv(0, 0))
			if err == nil {
				t.Fatalf("no error, want %s", want)
			}
			if err.Error() != want {
				t.Errorf("error\n got %s\nwant %s", err, want)
			}
		})
	}
}

func TestLoadMultipleErrors(t *testing.T) {
	p := writeFiles(t, "hostname = \"-x\"\nlog_level = \"loud\"\nbogus = 1\n", "")
	_, err := load(p, testEnv(0, 0))
	if err == nil {
		t.Fatal("no error")
	}
	// Unknown keys are reported before validation; fix those first.
	if want := p + ":3: bogus: unknown key"; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got %v, want %s...", err, want)
	}
	p = writeFiles(t, "hostname = \"-x\"\nlog_level = \"loud\"\n", "")
	_, err = load(p, testEnv(0, 0))
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], p+":1: hostname:") || !strings.HasPrefix(lines[1], p+":2: log_level:") {
		t.Errorf("want one error per problem, got %q", lines)
	}
	var cerr *Error
	if !errors.As(err, &cerr) || cerr.Line != 1 || cerr.Key != "hostname" {
		t.Errorf("errors.As *Error: %+v", cerr)
	}
}

func TestLoadMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "moxd.conf")
	_, err := Load(p)
	want := "config file " + p + " does not exist"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got %v, want %s...", err, want)
	}
	if _, err := LoadStatic(p); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("LoadStatic: got %v, want %s...", err, want)
	}
}

func TestLoadStaticNoUserLookup(t *testing.T) {
	// LoadStatic does not resolve users: unknown names pass.
	p := writeFiles(t, "hostname = \"mail.example.org\"\nusers.smtp = \"_moxd-no-such-user\"\n", "[[broken")
	s, err := LoadStatic(p)
	if err != nil {
		t.Fatal(err)
	}
	if s.Users.SMTP != "_moxd-no-such-user" || s.Users.Keys != "_moxd-keys" {
		t.Errorf("users %+v", s.Users)
	}
}

func TestLocalserveUsersNonRoot(t *testing.T) {
	// With localserve and master not root, every role is the invoking user,
	// whatever the file says.
	p := writeFiles(t, "hostname = \"localhost\"\nlocalserve = true\n[users]\nsmtp = \"_moxd-no-such-user\"\n", "")
	c, err := load(p, testEnv(1000, 1001))
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range RoleNames() {
		if u := c.Users[role]; u.UID != 1000 || u.GID != 1001 {
			t.Errorf("role %s: %+v, want 1000:1001", role, u)
		}
	}
	// The same file without localserve, as non-root, resolves users.
	p = writeFiles(t, "hostname = \"localhost\"\n[users]\nsmtp = \"_moxd-no-such-user\"\n", "")
	if _, err := load(p, testEnv(1000, 1001)); err == nil {
		t.Error("no error for unknown user without localserve")
	}
}

func TestRoleNames(t *testing.T) {
	want := []string{"keys", "store", "queue", "smtp", "submission", "imap", "web"}
	if got := RoleNames(); !reflect.DeepEqual(got, want) {
		t.Errorf("RoleNames %v", got)
	}
	// Every role has a field in Users, and Users has no other field.
	specs := (&Users{}).specs()
	if len(specs) != len(want) || reflect.TypeOf(Users{}).NumField() != len(want) {
		t.Errorf("Users fields and roles differ")
	}
	for i, f := range reflect.VisibleFields(reflect.TypeOf(Users{})) {
		if f.Tag.Get("toml") != want[i] {
			t.Errorf("Users field %s has toml key %q, want %q", f.Name, f.Tag.Get("toml"), want[i])
		}
	}
}
