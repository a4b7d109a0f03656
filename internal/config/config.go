// Package config reads and validates moxd's configuration files: moxd.conf
// (static: host name, directories, role users, listeners, TLS, DNS, SMTP
// limits) and domains.conf (dynamic: domains, DKIM selectors, aliases,
// accounts).
//
// Only moxd-master imports this package to read files; every other role gets
// the typed slice of the configuration it needs over IPC. The struct types
// below are the single source of truth for the file format: each field carries
// a toml tag (its key) and a doc tag (its documentation), from which Describe,
// DescribeDomains and the examples in etc/ are generated.
//
// Every error names the file and, when the key appears in the file, its line.
// The TOML library (BurntSushi/toml) does not expose key positions, so
// keylines.go holds a small scanner that maps key paths to line numbers.
package config

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
)

// Static is moxd.conf: the settings that only change with a restart of
// moxd-master.
type Static struct {
	Hostname      string            `toml:"hostname" required:"true" example:"'mail.example.com'" doc:"Fully qualified domain name of this host, used in SMTP greetings, EHLO and TLS certificates. Required. Non-ASCII (internationalized) names are accepted and converted with IDNA; the name is lower-cased."`
	DataDir       string            `toml:"data_dir" doc:"Directory with all state: account databases, messages, queue, keys. Absolute path."`
	RunDir        string            `toml:"run_dir" doc:"Directory for the control socket and the pid file. Absolute path."`
	LibexecDir    string            `toml:"libexec_dir" example:"'/usr/local/libexec/moxd'" doc:"Directory holding the role binaries (moxd-keys, moxd-store, ...). Absolute path; empty means the directory of the moxd-master binary."`
	AdminGroup    string            `toml:"admin_group" example:"'_moxdadm'" doc:"Group (name or number) whose members may use moxctl, besides root. Empty means root only."`
	LogLevel      string            `toml:"log_level" doc:"Default log level for all roles: trace (protocol transcripts), debug, info, warn or error."`
	Localserve    bool              `toml:"localserve" doc:"Set only in configurations written by \"moxd-master localserve\": lets all roles run as one non-root user, for development and tests. Do not set it on a real server."`
	DomainsFile   string            `toml:"domains_file" doc:"Path of domains.conf (domains, accounts). A relative path is relative to the directory of this file."`
	RoleLogLevels map[string]string `toml:"role_log_levels" example:"smtp = 'debug'" doc:"Log level per role, overriding log_level. Keys are role names: master, keys, store, queue, smtp, submission, imap, web."`
	Users         Users             `toml:"users" doc:"Unix user for each role: a user name (its primary group is used), or numeric \"uid:gid\", or \"uid\" (gid = uid). Every role needs its own user, and none may be root."`
	Listen        Listen            `toml:"listen" doc:"Listening addresses, each \"ip:port\" (IPv6 in brackets, e.g. \"[::1]:25\"). The host must be an IP address, not a name: no DNS is used at start. Port 0 picks any free port. An address may appear only once across all lists."`
	TLS           TLS               `toml:"tls" doc:"TLS certificates for SMTP STARTTLS, submissions, IMAPS and HTTPS."`
	DNS           DNS               `toml:"dns" doc:"How moxd reaches DNS (SPF, DKIM, DMARC, MX, DANE, MTA-STS). moxd-master reads the resolver configuration at start and on \"moxctl reload\" and passes it to the roles that use DNS; they never read files. Changes apply on reload."`
	SMTP          SMTP              `toml:"smtp" doc:"SMTP limits and policies of incoming mail (port 25) and submission (ports 587 and 465). Changes apply on reload."`
	Limits        Limits            `toml:"limits" doc:"Abuse limits of the network roles, per IP address and prefix. The three numbers of a per-prefix limit apply to IPv4 /32, /26 and /21 and to IPv6 /64, /48 and /32, in that order. Changes apply on reload."`
	Store         StoreSettings     `toml:"store" doc:"Settings of moxd-store, which keeps accounts and messages. Changes apply on reload."`
}

// DNS is the [dns] section.
type DNS struct {
	ResolvConf  string   `toml:"resolv_conf" doc:"Resolver configuration file in resolv.conf(5) syntax; moxd uses its nameserver lines (none means 127.0.0.1, as in the C library) and \"options trust-ad\". Absolute path. Not read when nameservers is set or offline is true; otherwise a file that cannot be read stops the start (or the reload) of moxd."`
	Nameservers []string `toml:"nameservers" example:"['127.0.0.1', '[::1]:53']" doc:"Recursive resolvers to use instead of those in resolv_conf, tried in order: each \"ip\" or \"ip:port\" (an IPv6 address with a port in brackets); the port defaults to 53. Use a validating resolver (unbound, for example) for DNSSEC and DANE."`
	TrustAD     bool     `toml:"trust_ad" doc:"Trust the AD (authentic data) bit in answers of resolvers that are not on a loopback address, as \"options trust-ad\" in resolv_conf also does. Enable it only when the path to the resolver cannot be tampered with; answers from loopback resolvers are always trusted."`
	Offline     bool     `toml:"offline" doc:"No DNS at all: every lookup is answered \"not found\" without network traffic. Set by \"moxd-master localserve\"; on a real server, SPF, DKIM, DMARC and delivery to other hosts need DNS."`
}

// SMTP is the [smtp] section.
type SMTP struct {
	MaxMessageSize string `toml:"max_message_size" doc:"Largest message accepted, announced with SMTP SIZE (RFC 1870): a number of bytes, optionally followed by K, M, G or T (powers of 1024), at least 1K and at most 16G. moxd-store applies the same limit to every message it stores."`
	MaxRecipients  int    `toml:"max_recipients" doc:"Most recipients accepted in one SMTP transaction (announced as LIMITS RCPTMAX, RFC 9422). At least 100, as RFC 5321 section 4.5.3.1.8 requires, at most 100000."`
	RequireTLS     bool   `toml:"requiretls" doc:"Announce and honour REQUIRETLS (RFC 8689): a sender may demand that its message travels only over verified TLS."`
	RejectDMARC    bool   `toml:"reject_dmarc" doc:"Refuse incoming messages (SMTP 550) whose DMARC evaluation fails when the sender's domain publishes policy p=reject (RFC 7489). When false, they are accepted, with the failed evaluation in their Authentication-Results header."`
}

// Limits is the [limits] section.
type Limits struct {
	TrustedNetworks       []string `toml:"trusted_networks" example:"['192.0.2.0/24', '2001:db8::/48']" doc:"Networks (CIDR, e.g. \"192.0.2.0/24\"; a bare IP address is one host) exempt from every limit in this section, for monitoring or known relays."`
	ConnectionsPerMinute  []int    `toml:"connections_per_minute" doc:"New connections per minute from one IPv4 /32, /26 and /21 (IPv6 /64, /48 and /32): three numbers, 0 for no limit. Connections over the limit are refused."`
	ConcurrentConnections []int    `toml:"concurrent_connections" doc:"Open connections at one time from one IPv4 /32, /26 and /21 (IPv6 /64, /48 and /32): three numbers, 0 for no limit."`
	AuthFailureDelay      string   `toml:"auth_failure_delay" doc:"Delay before answering a failed authentication, doubling with each further failure in the same session: a Go duration such as \"1s\" or \"500ms\", at most \"1m\"."`
	UnknownRecipientDelay string   `toml:"unknown_recipient_delay" doc:"Delay before refusing an unknown recipient, which slows down address harvesting: a Go duration such as \"2s\", at most \"1m\"."`
	MaxAuthFailures       int      `toml:"max_auth_failures" doc:"Failed authentications after which a session is closed, from 1 to 100."`
}

// StoreSettings is the [store] section.
type StoreSettings struct {
	DiskReserve string `toml:"disk_reserve" doc:"Free space to keep on the file system of the store's data directory: when less is free, deliveries are refused with a temporary error (SMTP 452 4.3.1) so that senders try again later, instead of filling the disk. A size as for max_message_size; \"0\" disables the check."`
}

// HostnameASCII returns Hostname in ASCII form, with A-labels for an
// internationalized name (RFC 5890), as needed in EHLO, greetings and
// certificates. For a Static that did not pass validation it returns
// Hostname as is.
func (s *Static) HostnameASCII() string {
	_, ascii, err := normalizeDomain(s.Hostname)
	if err != nil {
		return s.Hostname
	}
	return ascii
}

// Users names the unix user of each role. See ResolveUser for the syntax.
type Users struct {
	Keys       string `toml:"keys" doc:"User of moxd-keys, which holds the private keys."`
	Store      string `toml:"store" doc:"User of moxd-store, which owns accounts and messages."`
	Queue      string `toml:"queue" doc:"User of moxd-queue, which delivers outgoing mail."`
	SMTP       string `toml:"smtp" doc:"User of moxd-smtp serving port 25 (incoming mail)."`
	Submission string `toml:"submission" doc:"User of moxd-smtp serving submission (ports 587 and 465)."`
	IMAP       string `toml:"imap" doc:"User of moxd-imap."`
	Web        string `toml:"web" doc:"User of moxd-web (admin, account pages, webmail, API)."`
}

// Listen holds the listening addresses per service. Each entry is "ip:port".
type Listen struct {
	SMTP        []string `toml:"smtp" example:"['0.0.0.0:25', '[::]:25']" doc:"SMTP for incoming mail (port 25), with STARTTLS when a certificate is available."`
	Submission  []string `toml:"submission" example:"['0.0.0.0:587', '[::]:587']" doc:"Message submission with STARTTLS (port 587, RFC 6409)."`
	Submissions []string `toml:"submissions" example:"['0.0.0.0:465', '[::]:465']" doc:"Message submission over implicit TLS (port 465, RFC 8314)."`
	IMAP        []string `toml:"imap" example:"['0.0.0.0:143', '[::]:143']" doc:"IMAP with STARTTLS (port 143)."`
	IMAPS       []string `toml:"imaps" example:"['0.0.0.0:993', '[::]:993']" doc:"IMAP over implicit TLS (port 993, RFC 8314)."`
	HTTP        []string `toml:"http" example:"['0.0.0.0:80', '[::]:80']" doc:"HTTP: redirects to HTTPS and ACME http-01 challenges (port 80)."`
	HTTPS       []string `toml:"https" example:"['0.0.0.0:443', '[::]:443']" doc:"HTTPS: admin and account pages, webmail, API (port 443)."`
}

// TLS configures certificates.
type TLS struct {
	Certificates []CertFiles `toml:"certificate" doc:"A certificate and its private key, in PEM files (e.g. from certbot or acme.sh). Repeat the [[tls.certificate]] section for more certificates. Master opens the files and hands them to moxd-keys; \"moxctl reload\" picks up renewed files."`
	LocalCA      bool        `toml:"local_ca" doc:"Let moxd-keys create a private certificate authority and a certificate for hostname, for testing and localserve. Mail clients must be told to trust the CA certificate that moxd-keys exports in the data directory."`
}

// CertFiles is one [[tls.certificate]] section.
type CertFiles struct {
	CertFile string `toml:"cert_file" example:"'/etc/ssl/mail.example.com/fullchain.pem'" doc:"PEM file with the certificate chain, leaf first. Absolute path. The file name without extension names the certificate and must be unique."`
	KeyFile  string `toml:"key_file" example:"'/etc/ssl/mail.example.com/privkey.pem'" doc:"PEM file with the private key (PKCS#8, PKCS#1 or SEC 1). Absolute path."`
}

// Name is the certificate's name: the base name of CertFile without its
// extension. Names are unique within a configuration.
func (c CertFiles) Name() string {
	base := filepath.Base(c.CertFile)
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// Dynamic is domains.conf: domains and accounts. It is machine-written by
// moxd-master (on behalf of moxctl and the admin web pages) and reloadable.
type Dynamic struct {
	PostmasterAccount string    `toml:"postmaster_account" omitempty:"true" example:"'mjl'" doc:"Account that receives system mail (delivery status notifications of mail moxd itself sends, reports) and sends moxd's own messages. Empty means the account holding postmaster@ of the configured domain that is the host name or its closest parent, else postmaster@ of the first domain."`
	Domains           []Domain  `toml:"domain" doc:"A domain this server accepts and sends mail for. Repeat the [[domain]] section for each domain."`
	Accounts          []Account `toml:"account" doc:"An account: a mailbox store with one or more email addresses. Repeat the [[account]] section for each account."`
}

// Domain is one [[domain]] section.
type Domain struct {
	Name                   string         `toml:"name" example:"'example.com'" doc:"Domain name; non-ASCII names are accepted (IDNA). Lower-cased."`
	LocalpartSeparators    []string       `toml:"localpart_separators" omitempty:"true" example:"['+']" doc:"Characters that start a tag in a local part: with [\"+\"], mail to \"mjl+lists@example.com\" that matches no address or alias by itself goes where \"mjl@example.com\" goes, and that account may send as it. Each entry is one character; the local part is cut at the first of them."`
	LocalpartCaseSensitive bool           `toml:"localpart_case_sensitive" omitempty:"true" doc:"Treat local parts that differ only in case as different addresses (\"Mjl\" and \"mjl\"). By default case is ignored, as nearly every mail server does. \"postmaster\" is matched without case regardless (RFC 5321 section 4.5.1)."`
	DKIM                   []DKIMSelector `toml:"dkim" doc:"A DKIM selector used to sign outgoing mail for this domain (RFC 6376). Repeat [[domain.dkim]] for more selectors; moxd-keys creates the keys."`
	Aliases                []Alias        `toml:"alias" doc:"An alias: mail to its address is delivered to every member. Repeat [[domain.alias]] for more aliases. An alias address may not also be an account's address."`
}

// Alias is one [[domain.alias]] section.
type Alias struct {
	Address        string   `toml:"address" example:"'team@example.com'" doc:"Address of the alias, in this domain, \"localpart@domain\"."`
	Members        []string `toml:"members" example:"['mjl@example.com']" doc:"Addresses the mail is delivered to. For now members must be local: each must be an address of an account (or reach one through a catchall or a localpart separator), not another alias. A message reaches each account and mailbox once, also when several members lead there."`
	MembersMaySend bool     `toml:"members_may_send" omitempty:"true" doc:"Let the members' accounts send mail with the alias address as sender (From)."`
}

// DKIMSelector is one [[domain.dkim]] section.
type DKIMSelector struct {
	Selector  string `toml:"selector" example:"'moxd-ed'" doc:"Selector name: the DNS label(s) before ._domainkey (RFC 6376 section 3.1)."`
	Algorithm string `toml:"algorithm" example:"'ed25519'" doc:"Key algorithm: ed25519 (RFC 8463) or rsa2048."`
}

// Account is one [[account]] section.
type Account struct {
	Name      string   `toml:"name" example:"'mjl'" doc:"Account name, used for login and as a directory name: letters, digits, '.', '-', '_', at most 64 characters, not starting with '.' or '-'."`
	Addresses []string `toml:"addresses" example:"['mjl@example.com', 'postmaster@example.com']" doc:"Email addresses delivered to this account, \"localpart@domain\"; the domain must be configured in a [[domain]] section. An address may belong to one account only. Every domain needs its postmaster@domain address in some account (RFC 5321 section 4.5.1). \"@domain\" is a catchall: it receives mail for every address of the domain that matches no address or alias, and its account may send as any address of the domain; one catchall per domain."`
	Quota     string   `toml:"quota" omitempty:"true" example:"'10G'" doc:"Size limit of the account's messages: a number of bytes, optionally followed by K, M, G or T (powers of 1024), e.g. \"500M\" or \"10G\". Empty or \"0\" means unlimited. A delivery that would exceed it is refused; nothing is deleted when the limit is lowered."`
	// Pointers: an absent key (nil) means the default, 0 means no limit.
	MaxMessagesPerDay            *int          `toml:"max_messages_per_day" omitempty:"true" example:"1000" doc:"Most messages the account may submit in 24 hours; 0 means no limit. Absent means 1000. Further submissions are refused with a temporary error until older ones leave the 24-hour window."`
	MaxFirstTimeRecipientsPerDay *int          `toml:"max_first_time_recipients_per_day" omitempty:"true" example:"200" doc:"Most recipients in 24 hours that the account has never sent to before (a compromised account typically sends to many new addresses); 0 means no limit. Absent means 200."`
	Destinations                 []Destination `toml:"destination" doc:"A destination: mail to its address is delivered into a mailbox of this account other than the Inbox. Repeat [[account.destination]] for more destinations."`
}

// Destination is one [[account.destination]] section.
type Destination struct {
	Address string `toml:"address" example:"'moxd-list@example.com'" doc:"An address of this account, or a new one that then belongs to this account as if listed in addresses (also a catchall, \"@domain\"). Its domain must be configured, and no other account may have the address."`
	Mailbox string `toml:"mailbox" example:"'Lists/moxd'" doc:"Mailbox the mail is delivered into, created on first delivery; levels are separated by \"/\", e.g. \"Lists/moxd\". Required; not empty, no empty level, no \"/\" at either end, no control characters, \"*\" or \"%\", at most 255 bytes."`
}

// Defaults of the daily sending limits of an account.
const (
	DefaultMaxMessagesPerDay            = 1000
	DefaultMaxFirstTimeRecipientsPerDay = 200
)

// MessagesPerDay returns the account's submission limit per 24 hours, 0 for
// no limit.
func (a *Account) MessagesPerDay() int {
	if a.MaxMessagesPerDay == nil {
		return DefaultMaxMessagesPerDay
	}
	return *a.MaxMessagesPerDay
}

// FirstTimeRecipientsPerDay returns the account's limit of first-time
// recipients per 24 hours, 0 for no limit.
func (a *Account) FirstTimeRecipientsPerDay() int {
	if a.MaxFirstTimeRecipientsPerDay == nil {
		return DefaultMaxFirstTimeRecipientsPerDay
	}
	return *a.MaxFirstTimeRecipientsPerDay
}

// QuotaBytes returns the account's quota in bytes, 0 for unlimited. A quota
// that does not parse (only possible for an Account that did not pass
// validation) counts as unlimited.
func (a *Account) QuotaBytes() int64 {
	n, err := ParseQuota(a.Quota)
	if err != nil {
		return 0
	}
	return n
}

// ListenerSpec is one listening address, with the service it is for.
type ListenerSpec struct {
	Kind string // toml key of the list in [listen]: smtp, submission, submissions, imap, imaps, http, https.
	Addr string // "ip:port", normalized.
}

// ListenerList returns all listeners in a stable order: smtp, submission,
// submissions, imap, imaps, http, https, each in file order.
func (s *Static) ListenerList() []ListenerSpec {
	var l []ListenerSpec
	for _, k := range s.Listen.kinds() {
		for _, a := range *k.addrs {
			l = append(l, ListenerSpec{Kind: k.name, Addr: a})
		}
	}
	return l
}

type listenKind struct {
	name  string
	addrs *[]string
}

func (l *Listen) kinds() []listenKind {
	return []listenKind{
		{"smtp", &l.SMTP},
		{"submission", &l.Submission},
		{"submissions", &l.Submissions},
		{"imap", &l.IMAP},
		{"imaps", &l.IMAPS},
		{"http", &l.HTTP},
		{"https", &l.HTTPS},
	}
}

// Config is the complete loaded configuration, as moxd-master uses it.
type Config struct {
	Path        string // Absolute path of moxd.conf.
	DomainsPath string // Absolute path of domains.conf.
	Static      Static
	Dynamic     Dynamic
	DynamicHash [32]byte // SHA-256 of the domains.conf bytes as loaded (of no bytes when the file is missing).

	// Users per role name (see RoleNames), resolved to numeric ids. With
	// Static.Localserve and master not running as root, every role is the
	// invoking user.
	Users map[string]User
}

// Error is a configuration problem, located in a file.
type Error struct {
	File string // Path of the configuration file.
	Line int    // 1-based line of the key; 0 when the key is not in the file (a default).
	Key  string // Key path, e.g. "users.smtp" or "domain[1].dkim[0].algorithm"; may be empty.
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Default values of moxd.conf.
const (
	DefaultDataDir     = "/var/db/moxd"
	DefaultRunDir      = "/var/run/moxd"
	DefaultLogLevel    = "info"
	DefaultDomainsFile = "domains.conf"
	DefaultResolvConf  = "/etc/resolv.conf"
)

// defaultStatic returns a Static with every default filled in.
func defaultStatic() Static {
	return Static{
		DataDir:     DefaultDataDir,
		RunDir:      DefaultRunDir,
		LogLevel:    DefaultLogLevel,
		DomainsFile: DefaultDomainsFile,
		Users: Users{
			Keys:       "_moxd-keys",
			Store:      "_moxd-store",
			Queue:      "_moxd-queue",
			SMTP:       "_moxd-smtp",
			Submission: "_moxd-submit",
			IMAP:       "_moxd-imap",
			Web:        "_moxd-web",
		},
		DNS: DNS{ResolvConf: DefaultResolvConf},
		SMTP: SMTP{
			MaxMessageSize: "100M",
			MaxRecipients:  1000,
			RequireTLS:     true,
			RejectDMARC:    true,
		},
		// Fresh slices on every call: the TOML decoder reuses a slice it
		// decodes into.
		Limits: Limits{
			ConnectionsPerMinute:  []int{300, 1200, 4800},
			ConcurrentConnections: []int{100, 300, 1000},
			AuthFailureDelay:      "1s",
			UnknownRecipientDelay: "2s",
			MaxAuthFailures:       3,
		},
		Store: StoreSettings{DiskReserve: "256M"},
	}
}

// env is what Load needs from the system; tests substitute it.
type env struct {
	getuid      func() int
	getgid      func() int
	lookupUser  func(spec string) (User, error)
	lookupGroup func(spec string) (uint32, error)
}

func systemEnv() env {
	return env{os.Getuid, os.Getgid, ResolveUser, ResolveGroup}
}

// Load reads and validates moxd.conf at path and the domains.conf it names,
// and resolves the role users.
func Load(path string) (*Config, error) {
	return load(path, systemEnv())
}

// LoadStatic reads and validates only moxd.conf; it does not resolve users or
// groups and does not read domains.conf.
func LoadStatic(path string) (*Static, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	s, _, err := loadStatic(abs)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func load(path string, e env) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	s, kl, err := loadStatic(abs)
	if err != nil {
		return nil, err
	}
	c := &Config{Path: abs, Static: *s}
	c.DomainsPath = s.DomainsFile
	if !filepath.IsAbs(c.DomainsPath) {
		c.DomainsPath = filepath.Join(filepath.Dir(abs), c.DomainsPath)
	}

	var errs []error
	c.Users, errs = resolveUsers(abs, s, kl, e)
	if s.AdminGroup != "" {
		if _, err := e.lookupGroup(s.AdminGroup); err != nil {
			errs = append(errs, kl.errorf(abs, keyPath{"admin_group"}, "%v (create the group, use a numeric gid, or leave admin_group empty for root only)", err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	data, err := os.ReadFile(c.DomainsPath)
	if errors.Is(err, fs.ErrNotExist) {
		data = nil
	} else if err != nil {
		return nil, fmt.Errorf("reading domains file (option domains_file in %s): %w", abs, err)
	}
	c.DynamicHash = sha256.Sum256(data)
	d, err := ParseDynamic(c.DomainsPath, data)
	if err != nil {
		return nil, err
	}
	c.Dynamic = *d
	return c, nil
}

// loadStatic reads, decodes and validates moxd.conf at the absolute path.
func loadStatic(path string) (*Static, *keyLines, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("config file %s does not exist (pass another file with -f, or run \"moxd-master localserve\" for a local test setup)", path)
		}
		return nil, nil, fmt.Errorf("reading config file: %w", err)
	}
	// Decoding sets only the keys present in the file, so every other field
	// keeps its default, also inside [users].
	s := defaultStatic()
	kl, err := decode(path, data, &s)
	if err != nil {
		return nil, nil, err
	}
	if err := validateStatic(path, &s, kl); err != nil {
		return nil, nil, err
	}
	return &s, kl, nil
}

// ParseDynamic decodes and validates the contents of domains.conf; path is
// used in error messages. Empty data is an empty configuration.
func ParseDynamic(path string, data []byte) (*Dynamic, error) {
	var d Dynamic
	kl, err := decode(path, data, &d)
	if err != nil {
		return nil, err
	}
	if err := validateDynamic(path, &d, kl); err != nil {
		return nil, err
	}
	return &d, nil
}

// decode parses TOML data into v, turning syntax, type and unknown-key
// problems into *Error values with lines.
func decode(path string, data []byte, v any) (*keyLines, error) {
	if bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		data = data[3:] // A UTF-8 byte order mark, as some editors write.
	}
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(v)
	if err != nil {
		return nil, decodeError(path, err)
	}
	kl := scanKeyLines(data)
	var errs []error
	undecoded := md.Undecoded()
	reported := map[string]bool{}
	for _, k := range undecoded {
		// Report an unknown table once, not each key inside it, and a key
		// repeated in several array elements once.
		if reported[k.String()] || len(k) > 1 && reported[toml.Key(k[:len(k)-1]).String()] {
			reported[k.String()] = true
			continue
		}
		reported[k.String()] = true
		line := kl.plainLine(k)
		errs = append(errs, &Error{File: path, Line: line, Key: keyPath(k).String(), Msg: "unknown key (check the spelling; \"moxctl config describe\" lists all options)"})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return kl, nil
}
