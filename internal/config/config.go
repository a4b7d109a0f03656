// Package config reads and validates moxd's configuration files: moxd.conf
// (static: host name, directories, role users, listeners, TLS, DNS, SMTP
// limits, outbound delivery and transports) and domains.conf (dynamic:
// domains, DKIM selectors, aliases, accounts, routes). Load also reads the
// files moxd.conf names for moxd-queue (a CA file, password files) and
// checks that routes name configured transports.
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
	"io"
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
	Queue         QueueSettings     `toml:"queue" doc:"Outbound delivery by moxd-queue. Changes apply on reload."`
	Transports    []Transport       `toml:"transport" doc:"A transport: another way than direct delivery (MX lookup, port 25) to send a message, named by the routes in domains.conf. Repeat the [[transport]] section for more transports. Changes apply on reload."`
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
	MaxMessageSize string `toml:"max_message_size" doc:"Largest message accepted, announced with SMTP SIZE (RFC 1870) and IMAP APPENDLIMIT (RFC 7889): a number of bytes, optionally followed by K, M, G or T (powers of 1024), at least 1K and at most 16G. moxd-store applies the same limit to every message it stores."`
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

// QueueSettings is the [queue] section.
type QueueSettings struct {
	MaxAttempts            int      `toml:"max_attempts" doc:"Delivery attempts of a recipient before it fails and the sender gets a delivery status notification (DSN), from 1 to 100."`
	FirstRetry             string   `toml:"first_retry" doc:"Delay after the first failed attempt, doubling after each further one: a Go duration such as \"7.5m\" or \"1h\", from \"1s\" to \"24h\". With the defaults, the eighth and last attempt is about 16 hours after the first."`
	DelayedDSNAfter        int      `toml:"delayed_dsn_after" doc:"Failed attempts after which the sender gets a \"delayed\" DSN, once per message, while attempts go on; 0 means never. Less than max_attempts."`
	Keep                   string   `toml:"keep" doc:"How long retired messages (delivered or failed) and their delivery attempts are kept for each account: a Go duration from \"1h\" to \"8760h\" (a year)."`
	Concurrency            int      `toml:"concurrency" doc:"Most deliveries in progress at one time, from 1 to 10000."`
	DestinationConcurrency int      `toml:"destination_concurrency" doc:"Most deliveries in progress at one time to one destination, from 1 to 1000."`
	DestinationRate        int      `toml:"destination_rate" doc:"Most new SMTP transactions per minute to one destination; 0 means no limit."`
	SourceIPs              []string `toml:"source_ips" example:"['192.0.2.25', '2001:db8::25']" doc:"Local IP addresses that direct delivery connects from; empty means the system chooses. Each address must be configured on this host, and its reverse DNS should name hostname. A direct [[transport]] with source_ips sets other addresses for some routes."`
	MTASTS                 bool     `toml:"mta_sts" doc:"Fetch and apply the MTA-STS policies (RFC 8461) of recipient domains in direct delivery: a domain with an enforced policy gets mail only over TLS with a verified certificate of an MX host its policy lists."`
	CAFile                 string   `toml:"ca_file" example:"'/etc/moxd/private-ca.pem'" doc:"PEM file with extra CA certificates to trust, next to the system's, when verifying the certificates of smarthosts and MX hosts and when fetching MTA-STS policies: for a private CA, and for tests. Absolute path. moxd-master reads it at start and on reload; a file that cannot be read or holds no CERTIFICATE block is an error."`
	WebhookAllowPrivate    bool     `toml:"webhook_allow_private" doc:"Allow webhook URLs whose host is on a loopback, link-local or private network (RFC 1918, RFC 4193) or unspecified; by default such requests are refused, so that an account's webhook cannot reach services on this host or its network."`
	Port                   int      `toml:"port" doc:"For tests only: the SMTP port of direct delivery, so that test MX hosts can listen on a high port. 0 means 25; on a real server it stays 0."`

	// caPEM holds the CERTIFICATE blocks of CAFile, read by Load.
	caPEM string
}

// Transport is one [[transport]] section.
type Transport struct {
	Name           string   `toml:"name" example:"'relay'" doc:"Name of the transport, as routes refer to it: letters, digits, '-' and '_'. Required; unique."`
	Kind           string   `toml:"kind" example:"'submission'" doc:"How the transport delivers. \"direct\": like direct delivery (MX lookup, DANE, MTA-STS, port 25), but with this transport's source_ips. \"smtp\": to the smarthost host, by default on port 25, authenticating only when username is set. \"submission\": to host, by default on port 587, with STARTTLS required. \"submissions\": to host, by default on port 465, with implicit TLS. \"socks\": direct delivery through the SOCKS5 proxy socks_address. Required."`
	Host           string   `toml:"host" example:"'smtp.example.net'" doc:"Host name or IP address of the smarthost (smtp, submission, submissions; required there). Non-ASCII names are converted with IDNA."`
	Port           int      `toml:"port" doc:"Port of the smarthost, from 1 to 65535 (smtp, submission, submissions). 0 or absent means 25 for smtp, 587 for submission and 465 for submissions."`
	Username       string   `toml:"username" example:"'mjl@example.net'" doc:"User name to authenticate with at the smarthost (SMTP AUTH, RFC 4954), for smtp, submission and submissions. Empty means no authentication."`
	PasswordFile   string   `toml:"password_file" example:"'/etc/moxd/relay.password'" doc:"File whose first line is the password for username; required with username. Absolute path. moxd-master reads it at start and on reload (so it can be readable by root only) and gives the password only to moxd-queue; a file that cannot be read is an error."`
	Mechanisms     []string `toml:"mechanisms" example:"['SCRAM-SHA-256', 'PLAIN']" doc:"SASL mechanisms to authenticate with, in order of preference, among those the server offers: SCRAM-SHA-256-PLUS, SCRAM-SHA-256, SCRAM-SHA-1, CRAM-MD5, PLAIN (case is ignored). Empty means the most secure one offered."`
	NoTLSVerify    bool     `toml:"no_tls_verify" doc:"Do not verify the TLS certificate of the smarthost (smtp, submission, submissions). By default it must be valid for host (PKIX), with the system's CAs and queue.ca_file. Leaves the connection, and a password, open to interception: use only for a smarthost on a network you trust."`
	SourceIPs      []string `toml:"source_ips" doc:"Local IP addresses to connect from (direct, smtp, submission, submissions), as queue.source_ips does for direct delivery; empty means the system chooses."`
	SocksAddress   string   `toml:"socks_address" doc:"Address of the SOCKS5 proxy, \"host:port\" with an IPv6 address in brackets (socks; required there)."`
	RemoteIPs      []string `toml:"remote_ips" doc:"The IP addresses the SOCKS5 proxy connects from, as receivers see them; they must be in the SPF records of the sending domains (socks; at least one is required there)."`
	RemoteHostname string   `toml:"remote_hostname" doc:"Host name used in EHLO through the SOCKS5 proxy, the name of its remote_ips in reverse DNS (socks; required there)."`

	// password is the first line of PasswordFile, read by Load. A pointer,
	// so that printing a Static with %v shows an address, not the password.
	password *string
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
	Routes            []Route   `toml:"route" doc:"A global route: which transport of moxd.conf delivers which outgoing messages. Routes are evaluated in order: the sending account's [[account.route]] sections first, then those of the sender's domain ([[domain.route]]), then these; the first route that matches decides. A message that no route matches is delivered directly (MX lookup, port 25). Repeat the [[route]] section for more routes."`

	// accountUIDs maps the uids of unix_users to their account's name,
	// resolved by validation.
	accountUIDs map[uint32]string
}

// Route is one [[route]], [[domain.route]] or [[account.route]] section. A
// route matches a recipient of a message when each of its conditions
// holds; a condition that is not set always holds.
type Route struct {
	FromDomains     []string `toml:"from_domains" omitempty:"true" example:"['example.com']" doc:"The domain of the sender (MAIL FROM) is one of these. A leading \".\" matches subdomains: \".example.com\" matches \"sub.example.com\", not \"example.com\" itself. Non-ASCII names are accepted (IDNA); names are lower-cased. Empty means any domain."`
	ToDomains       []string `toml:"to_domains" omitempty:"true" example:"['.example.net', 'example.net']" doc:"The domain of the recipient is one of these, as for from_domains. Empty means any domain."`
	MinimumAttempts int      `toml:"minimum_attempts" omitempty:"true" example:"3" doc:"The route applies only once this many delivery attempts of the recipient have failed; 0 means from the first attempt on. For example, minimum_attempts = 3 with a relay transport sends through the relay from the fourth attempt on, after three failed direct attempts."`
	Transport       string   `toml:"transport" example:"'relay'" doc:"Name of a [[transport]] in moxd.conf that delivers the matching messages; empty means direct delivery (MX lookup, port 25)."`
}

// Domain is one [[domain]] section.
type Domain struct {
	Name                   string         `toml:"name" example:"'example.com'" doc:"Domain name; non-ASCII names are accepted (IDNA). Lower-cased."`
	LocalpartSeparators    []string       `toml:"localpart_separators" omitempty:"true" example:"['+']" doc:"Characters that start a tag in a local part: with [\"+\"], mail to \"mjl+lists@example.com\" that matches no address or alias by itself goes where \"mjl@example.com\" goes, and that account may send as it. Each entry is one character; the local part is cut at the first of them."`
	LocalpartCaseSensitive bool           `toml:"localpart_case_sensitive" omitempty:"true" doc:"Treat local parts that differ only in case as different addresses (\"Mjl\" and \"mjl\"). By default case is ignored, as nearly every mail server does. \"postmaster\" is matched without case regardless (RFC 5321 section 4.5.1)."`
	DKIM                   []DKIMSelector `toml:"dkim" doc:"A DKIM selector used to sign outgoing mail for this domain (RFC 6376). Repeat [[domain.dkim]] for more selectors; moxd-keys creates the keys."`
	Aliases                []Alias        `toml:"alias" doc:"An alias: mail to its address is delivered to every member. Repeat [[domain.alias]] for more aliases. An alias address may not also be an account's address."`
	Routes                 []Route        `toml:"route" doc:"A route of messages sent from an address of this domain, evaluated after the account's routes and before the global ones (see [[route]]). Repeat [[domain.route]] for more routes."`
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
	UniqueMailFrom               bool          `toml:"unique_mail_from" omitempty:"true" example:"true" doc:"Send each message with a unique MAIL FROM address, carrying an id after the domain's first localpart separator, so that delivery status notifications can be matched to the message. The domain of an address of the account needs localpart_separators."`
	UnixUsers                    []string      `toml:"unix_users" omitempty:"true" example:"['root', '1000']" doc:"Unix users, by name or numeric uid, whose local mail (\"moxctl sendmail\", through the control socket) is submitted as this account. A user may be listed in one account only; a name that does not exist on this host is an error."`
	Destinations                 []Destination `toml:"destination" doc:"A destination: mail to its address is delivered into a mailbox of this account other than the Inbox. Repeat [[account.destination]] for more destinations."`
	Routes                       []Route       `toml:"route" doc:"A route of messages this account sends, evaluated before those of the sender's domain and the global ones (see [[route]]). Repeat [[account.route]] for more routes."`
	Webhooks                     []Webhook     `toml:"webhook" doc:"A webhook: an HTTP POST with a JSON body to a URL of yours for each event of the account's outgoing mail (kind \"outgoing\") or for each message delivered to the account (kind \"incoming\"). At most one per kind. Webhooks have their own queue in moxd-queue, with retries; \"moxctl queue webhooks\" lists them."`
	// Absent (nil) means true.
	AutomaticJunkFlags *bool      `toml:"automatic_junk_flags" omitempty:"true" example:"false" doc:"Set the IMAP keyword $Junk or $NotJunk (RFC 9051 section 2.3.2) on every message saved into a mailbox by delivery, APPEND, COPY or MOVE, from the name of that mailbox, in the same step. Absent means true. Without [[account.junk_flag]] rules these defaults apply: Junk and Spam, and the mailboxes below them, get $Junk; INBOX, mailboxes whose name starts with Neutral, Postmaster, DMARC, TLSRPT and Rejects (and those below them) get neither; every other mailbox gets $NotJunk. Names compare without case. A $Junk or $NotJunk given with APPEND or at delivery is kept. moxd-store also records, per message, the junk state its keywords ask for, for a junk filter to train on; moxd has no such filter yet. false leaves the keywords as the messages come."`
	JunkFlags          []JunkFlag `toml:"junk_flag" doc:"A rule of the automatic junk flags (see automatic_junk_flags). The first rule whose mailbox pattern matches the name of the mailbox a message is saved into decides; a mailbox no rule matches keeps the keywords of the messages saved into it. Any rule replaces all the defaults, so end with mailbox = \".*\" to give every other mailbox a flag. Repeat [[account.junk_flag]] for more rules, in order."`
}

// JunkFlag is one [[account.junk_flag]] section. The json tags are for
// StoreAccount.
type JunkFlag struct {
	Mailbox string `toml:"mailbox" json:"mailbox" example:"'(junk|spam)(/.*)?'" doc:"Go regular expression (https://pkg.go.dev/regexp/syntax) that must match the whole mailbox name, compared without case; levels are separated by \"/\". \"(junk|spam)(/.*)?\" matches Junk, SPAM and Junk/Phishing, not Junkyard; \"lists/.*\" every mailbox below Lists; \".*\" every mailbox."`
	Flag    string `toml:"flag" json:"flag" example:"'$Junk'" doc:"What a message saved into a matching mailbox gets: \"$Junk\" (and $NotJunk removed), \"$NotJunk\" (and $Junk removed), or \"none\" (both removed). Case is ignored."`
}

// The values of JunkFlag.Flag, as validation normalizes them.
const (
	JunkFlagJunk    = "$Junk"
	JunkFlagNotJunk = "$NotJunk"
	JunkFlagNone    = "none"
)

// JunkFlagsOn reports whether the account has automatic junk flags.
func (a *Account) JunkFlagsOn() bool {
	return a.AutomaticJunkFlags == nil || *a.AutomaticJunkFlags
}

// Webhook is one [[account.webhook]] section.
type Webhook struct {
	Kind          string   `toml:"kind" example:"'outgoing'" doc:"Which events: \"outgoing\" for what happens to the messages the account sends (delivered, delayed, failed, suppressed, relayed, canceled); \"incoming\" for every message delivered to the account (event \"incoming\", with the results of a delivery status notification)."`
	URL           string   `toml:"url" example:"'https://app.example.com/moxd/events'" doc:"The http or https URL the events are posted to. Hosts on loopback, link-local or private networks are refused unless [queue] webhook_allow_private is set."`
	Authorization string   `toml:"authorization" omitempty:"true" example:"'Bearer 2f1b...'" doc:"Value of the Authorization header of each request, e.g. \"Basic ...\" or \"Bearer ...\"; empty sends none."`
	Events        []string `toml:"events" omitempty:"true" example:"['delivered', 'failed']" doc:"Events of an outgoing webhook to post; empty means all: delivered, delayed, failed, suppressed, relayed, canceled. Not for incoming webhooks."`
}

// WebhookEvents are the events of an outgoing webhook.
var WebhookEvents = []string{"delivered", "delayed", "failed", "suppressed", "relayed", "canceled"}

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
		// Before decoding, so a default of true works for a bool.
		Queue: QueueSettings{
			MaxAttempts:            8,
			FirstRetry:             "7.5m",
			DelayedDSNAfter:        5,
			Keep:                   "168h",
			Concurrency:            64,
			DestinationConcurrency: 10,
			MTASTS:                 true,
		},
	}
}

// env is what Load needs from the system; tests substitute it.
type env struct {
	getuid      func() int
	getgid      func() int
	lookupUser  func(spec string) (User, error)
	lookupGroup func(spec string) (uint32, error)
	// lookupUID resolves a unix user name (account.unix_users).
	lookupUID func(name string) (uint32, error)
	// readFile reads a file that moxd.conf names (queue.ca_file,
	// transport.password_file).
	readFile func(path string) ([]byte, error)
}

func systemEnv() env {
	return env{
		getuid:      os.Getuid,
		getgid:      os.Getgid,
		lookupUser:  ResolveUser,
		lookupGroup: ResolveGroup,
		lookupUID:   lookupUID,
		readFile:    readConfigFile,
	}
}

// maxConfigFile bounds the files that moxd.conf names and Load reads.
const maxConfigFile = 1 << 20

// readConfigFile reads a file that moxd.conf names, of at most
// maxConfigFile bytes.
func readConfigFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxConfigFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxConfigFile)
	}
	return data, nil
}

// Load reads and validates moxd.conf at path and the domains.conf it names,
// resolves the role users and the unix users of accounts, and reads the
// files named by queue.ca_file and transport.password_file. Routes in
// domains.conf are checked against the transports of moxd.conf.
func Load(path string) (*Config, error) {
	return load(path, systemEnv())
}

// LoadStatic reads and validates only moxd.conf; it does not resolve users or
// groups, does not read the CA and password files it names and does not
// read domains.conf.
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
	errs = append(errs, readQueueFiles(abs, &c.Static, kl, e.readFile)...)
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
	d, err := parseDynamic(c.DomainsPath, data, dynOptions{static: &c.Static, lookupUID: e.lookupUID})
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
// used in error messages. Empty data is an empty configuration. Unix user
// names are resolved with the passwd database; the transports that routes
// name are not checked, as they are in moxd.conf (Load checks them).
func ParseDynamic(path string, data []byte) (*Dynamic, error) {
	return parseDynamic(path, data, dynOptions{})
}

func parseDynamic(path string, data []byte, opts dynOptions) (*Dynamic, error) {
	var d Dynamic
	kl, err := decode(path, data, &d)
	if err != nil {
		return nil, err
	}
	if err := validateDynamic(path, &d, kl, opts); err != nil {
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
