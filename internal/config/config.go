// Package config reads and validates moxd's configuration files: moxd.conf
// (static: host name, directories, role users, listeners, TLS) and
// domains.conf (dynamic: domains, DKIM selectors, accounts).
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
	Domains  []Domain  `toml:"domain" doc:"A domain this server accepts and sends mail for. Repeat the [[domain]] section for each domain."`
	Accounts []Account `toml:"account" doc:"An account: a mailbox store with one or more email addresses. Repeat the [[account]] section for each account."`
}

// Domain is one [[domain]] section.
type Domain struct {
	Name string         `toml:"name" example:"'example.com'" doc:"Domain name; non-ASCII names are accepted (IDNA). Lower-cased."`
	DKIM []DKIMSelector `toml:"dkim" doc:"A DKIM selector used to sign outgoing mail for this domain (RFC 6376). Repeat [[domain.dkim]] for more selectors; moxd-keys creates the keys."`
}

// DKIMSelector is one [[domain.dkim]] section.
type DKIMSelector struct {
	Selector  string `toml:"selector" example:"'moxd-ed'" doc:"Selector name: the DNS label(s) before ._domainkey (RFC 6376 section 3.1)."`
	Algorithm string `toml:"algorithm" example:"'ed25519'" doc:"Key algorithm: ed25519 (RFC 8463) or rsa2048."`
}

// Account is one [[account]] section.
type Account struct {
	Name      string   `toml:"name" example:"'mjl'" doc:"Account name, used for login and as a directory name: letters, digits, '.', '-', '_', at most 64 characters, not starting with '.' or '-'."`
	Addresses []string `toml:"addresses" example:"['mjl@example.com', 'postmaster@example.com']" doc:"Email addresses delivered to this account, \"localpart@domain\"; the domain must be configured in a [[domain]] section. An address may belong to one account only. Every domain needs its postmaster@domain address in some account (RFC 5321 section 4.5.1)."`
	Quota     string   `toml:"quota" omitempty:"true" example:"'10G'" doc:"Size limit of the account's messages: a number of bytes, optionally followed by K, M, G or T (powers of 1024), e.g. \"500M\" or \"10G\". Empty or \"0\" means unlimited. A delivery that would exceed it is refused; nothing is deleted when the limit is lowered."`
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
