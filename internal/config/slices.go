package config

import "time"

// Slices: the typed part of the configuration each role receives from master
// over IPC (as strict JSON). Roles never read config files; a role's slice
// holds only what that role uses, and secrets only where used.

// Slice is the config slice of one role.
type Slice struct {
	Role     string `json:"role"`
	Hostname string `json:"hostname"`
	// Dir is the role's own data directory (keys, store, queue); empty for
	// network roles, which own no files.
	Dir   string      `json:"dir,omitempty"`
	Keys  *KeysSlice  `json:"keys,omitempty"`
	SMTP  *SMTPSlice  `json:"smtp,omitempty"`
	Store *StoreSlice `json:"store,omitempty"`
	Queue *QueueSlice `json:"queue,omitempty"`
	IMAP  *IMAPSlice  `json:"imap,omitempty"`
	Web   *NetSlice   `json:"web,omitempty"`
}

// KeysSlice is what moxd-keys needs.
type KeysSlice struct {
	// LocalCANames: when set, keys maintains a private CA and a certificate for
	// these names (tls.local_ca).
	LocalCANames []string `json:"local_ca_names,omitempty"`
	// CertNames are the names of configured certificate pairs (tls.certificate);
	// master passes their files as fds.
	CertNames []string `json:"cert_names,omitempty"`
}

// SMTPSlice is what an smtp or submission instance needs.
type SMTPSlice struct {
	// Submission is true for the submission instance (587/465).
	Submission bool `json:"submission"`
	// Localserve enables the localserve behaviour: every address is
	// accepted (unknown ones go to the localserve account) and special
	// localparts simulate failures (README "localserve").
	Localserve bool     `json:"localserve,omitempty"`
	DNS        DNSSlice `json:"dns"`
	// MaxMessageSize is the SIZE limit announced and enforced, in bytes.
	MaxMessageSize int64 `json:"max_message_size"`
	// MaxRecipients is the most RCPT TO accepted per transaction (LIMITS
	// RCPTMAX); at least 100 (RFC 5321 §4.5.3.1.8).
	MaxRecipients int `json:"max_recipients"`
	// RequireTLS announces REQUIRETLS (RFC 8689) after TLS is up.
	RequireTLS bool `json:"requiretls"`
	// RejectDMARC answers 550 to a message whose DMARC evaluation fails
	// under a reject policy (smtp instance only).
	RejectDMARC bool        `json:"reject_dmarc"`
	Limits      LimitsSlice `json:"limits"`
}

// DNSSlice says how roles that use DNS (smtp, queue) reach a resolver.
// Master reads resolv.conf (or the [dns] options) so no role reads files.
type DNSSlice struct {
	// Offline: no DNS traffic at all; every lookup is "not found"
	// (localserve).
	Offline bool `json:"offline,omitempty"`
	// Servers are "ip:port" of recursive resolvers, tried in order.
	Servers []string `json:"servers,omitempty"`
	// TrustAD trusts the AD bit from non-loopback servers (resolv.conf
	// "options trust-ad").
	TrustAD bool `json:"trust_ad,omitempty"`
}

// LimitsSlice holds the abuse limits of a network role. Index 0, 1, 2 of
// the per-prefix arrays are IPv4 /32, /26, /21 and IPv6 /64, /48, /32.
type LimitsSlice struct {
	// TrustedNetworks (CIDR) are exempt from every limit here.
	TrustedNetworks []string `json:"trusted_networks,omitempty"`
	// ConnectionsPerMinute per prefix size; 0 means no limit.
	ConnectionsPerMinute [3]int `json:"connections_per_minute"`
	// ConcurrentConnections per prefix size; 0 means no limit.
	ConcurrentConnections [3]int `json:"concurrent_connections"`
	// AuthFailureDelay is added to every failed AUTH, doubling per
	// failure in a session (nanoseconds, as time.Duration).
	AuthFailureDelay time.Duration `json:"auth_failure_delay"`
	// UnknownRecipientDelay is waited before a 550 for an unknown
	// recipient.
	UnknownRecipientDelay time.Duration `json:"unknown_recipient_delay"`
	// MaxAuthFailures ends a session after this many failed AUTH.
	MaxAuthFailures int `json:"max_auth_failures"`
}

// QueueSlice is what moxd-queue needs: which accounts exist, which
// addresses each may send as, and their sending limits.
type QueueSlice struct {
	// Localserve: deliveries go to the sender's own account (issue 5);
	// special localparts simulate failures.
	Localserve     bool     `json:"localserve,omitempty"`
	DNS            DNSSlice `json:"dns"`
	MaxMessageSize int64    `json:"max_message_size"`
	// Postmaster is the account that receives system mail and is the
	// sender account of DSNs.
	Postmaster string         `json:"postmaster"`
	Domains    []AddrDomain   `json:"domains"`
	Accounts   []QueueAccount `json:"accounts"`

	// Outbound delivery ([queue] in moxd.conf).
	Delivery QueueDelivery `json:"delivery"`
	// Transports by name ([[transport]] in moxd.conf), secrets included:
	// queue is the only role that uses them.
	Transports []QueueTransport `json:"transports,omitempty"`
	// Routes are the global routes ([[route]] in domains.conf), evaluated
	// after the sender account's and the sender domain's.
	Routes []QueueRoute `json:"routes,omitempty"`
	// DomainRoutes are the routes of each local domain ([[domain.route]]),
	// by domain name (Unicode form, lower-case).
	DomainRoutes map[string][]QueueRoute `json:"domain_routes,omitempty"`
	// DKIM lists the selectors to sign with per local domain
	// ([[domain.dkim]]), by domain name (Unicode form, lower-case).
	DKIM map[string][]QueueDKIM `json:"dkim,omitempty"`
}

// QueueDKIM is one DKIM selector of a domain; keys holds its key.
type QueueDKIM struct {
	Selector  string `json:"selector"`
	Algorithm string `json:"algorithm"` // "ed25519" or "rsa2048"
}

// QueueDelivery holds the settings of outbound delivery. Durations are
// nanoseconds (time.Duration).
type QueueDelivery struct {
	// MaxAttempts is the number of delivery attempts of a recipient
	// before it fails (default 8).
	MaxAttempts int `json:"max_attempts"`
	// FirstRetry is the delay after the first failed attempt; every
	// further delay doubles (default 7.5 minutes).
	FirstRetry time.Duration `json:"first_retry"`
	// DelayedDSNAfter is the failed attempt after which a "delayed" DSN
	// is sent (default 5; 0: never).
	DelayedDSNAfter int `json:"delayed_dsn_after"`
	// Keep is how long retired messages and their delivery attempts are
	// kept for each account (default 7 days).
	Keep time.Duration `json:"keep"`
	// Concurrency is the most deliveries in flight (default 64);
	// DestinationConcurrency the most to one destination (default 10).
	Concurrency            int `json:"concurrency"`
	DestinationConcurrency int `json:"destination_concurrency"`
	// DestinationRate is the most new transactions per minute to one
	// destination; 0: no limit.
	DestinationRate int `json:"destination_rate"`
	// SourceIPs are the local addresses direct delivery connects from;
	// empty: the system chooses.
	SourceIPs []string `json:"source_ips,omitempty"`
	// MTASTS enables MTA-STS policy fetching for direct delivery
	// (default true).
	MTASTS bool `json:"mta_sts"`
	// TestCA is PEM of extra CA certificates trusted for PKIX
	// verification (MTA-STS policies and MX certificates, smarthosts),
	// next to the system roots; for tests and private CAs
	// (queue.ca_file).
	TestCA string `json:"test_ca,omitempty"`
	// WebhookAllowPrivate allows webhook targets on loopback, link-local
	// and private networks.
	WebhookAllowPrivate bool `json:"webhook_allow_private,omitempty"`
	// Ports overrides the SMTP port of direct delivery (tests: MX on a
	// high port); 0 means 25.
	Port int `json:"port,omitempty"`
}

// Transport kinds.
const (
	TransportDirect      = "direct"      // MX lookup, DANE / MTA-STS, port 25
	TransportSMTP        = "smtp"        // a smarthost on port 25, no auth
	TransportSubmission  = "submission"  // port 587, STARTTLS required, SASL
	TransportSubmissions = "submissions" // port 465, implicit TLS, SASL
	TransportSocks       = "socks"       // direct delivery through a SOCKS5 proxy
)

// QueueTransport is one [[transport]].
type QueueTransport struct {
	Name string `json:"name"`
	Kind string `json:"kind"` // one of the Transport* constants
	// Host and Port of the smarthost (smtp, submission, submissions).
	Host string `json:"host,omitempty"`
	Port int    `json:"port,omitempty"`
	// Username and Password for SASL (submission, submissions; smtp when
	// set). Password is read by master from password_file.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// Mechanisms restricts and orders the SASL mechanisms; empty: the
	// most secure one the server offers.
	Mechanisms []string `json:"mechanisms,omitempty"`
	// NoTLSVerify skips certificate verification of a smarthost (smtp,
	// submission, submissions); by default it is verified with PKIX.
	NoTLSVerify bool `json:"no_tls_verify,omitempty"`
	// SourceIPs are the local addresses to connect from (direct, smtp,
	// submission, submissions).
	SourceIPs []string `json:"source_ips,omitempty"`
	// SocksAddress is "host:port" of the SOCKS5 proxy (socks);
	// RemoteIPs are the proxy's public addresses (for SPF checks) and
	// RemoteHostname the name used in EHLO through it.
	SocksAddress   string   `json:"socks_address,omitempty"`
	RemoteIPs      []string `json:"remote_ips,omitempty"`
	RemoteHostname string   `json:"remote_hostname,omitempty"`
}

// QueueRoute is one [[route]], [[domain.route]] or [[account.route]]:
// first match wins, in the order account, sender domain, global.
type QueueRoute struct {
	// FromDomains: the MAIL FROM domain is one of these ("" or empty:
	// any); a leading "." matches subdomains.
	FromDomains []string `json:"from_domains,omitempty"`
	// ToDomains: the recipient's domain is one of these (same rules).
	ToDomains []string `json:"to_domains,omitempty"`
	// MinimumAttempts: the route applies from this many earlier attempts
	// on (0: always), e.g. a fallback relay from the fourth attempt.
	MinimumAttempts int `json:"minimum_attempts,omitempty"`
	// Transport is a transport name; "" means direct delivery.
	Transport string `json:"transport"`
}

// QueueAccount is one account as queue sees it.
type QueueAccount struct {
	Name string `json:"name"`
	// Addresses the account receives at and may send as; "@domain" is a
	// catchall (the account may send as any address of that domain).
	Addresses []string `json:"addresses"`
	// MaxMessagesPerDay and MaxFirstTimeRecipientsPerDay limit
	// submissions over the last 24 hours; 0 means no limit.
	MaxMessagesPerDay            int `json:"max_messages_per_day"`
	MaxFirstTimeRecipientsPerDay int `json:"max_first_time_recipients_per_day"`
	// Routes of the account ([[account.route]]), evaluated first.
	Routes []QueueRoute `json:"routes,omitempty"`
	// UniqueMailFrom sends every message with a MAIL FROM carrying a
	// unique id after the domain's first localpart separator, so that
	// DSNs can be matched to the message (account.unique_mail_from).
	UniqueMailFrom bool `json:"unique_mail_from,omitempty"`
	// Webhooks of the account ([[account.webhook]]).
	Webhooks []QueueWebhook `json:"webhooks,omitempty"`
}

// AddrDomain is a local domain with its addressing rules, shared by store
// (delivery) and queue (sender checks).
type AddrDomain struct {
	Name string `json:"name"` // lower-case, Unicode form
	// LocalpartSeparators: a localpart "a+tag" also matches "a" when "+"
	// is one of them (catchall separator).
	LocalpartSeparators []string `json:"localpart_separators,omitempty"`
	// LocalpartCaseSensitive: "Mjl" and "mjl" are different addresses.
	LocalpartCaseSensitive bool `json:"localpart_case_sensitive,omitempty"`
	// Aliases expand one address to several addresses.
	Aliases []AddrAlias `json:"aliases,omitempty"`
}

// AddrAlias is a local alias: mail to Address goes to every member.
type AddrAlias struct {
	Address string   `json:"address"`
	Members []string `json:"members"`
	// MembersMaySend lets members use the alias address as From.
	MembersMaySend bool `json:"members_may_send,omitempty"`
}

// NetSlice is what web needs for now.
type NetSlice struct{}

// IMAPSlice is what moxd-imap needs.
type IMAPSlice struct {
	// Localserve: LOGIN and AUTHENTICATE PLAIN are also allowed without
	// TLS on loopback connections (README "localserve").
	Localserve bool `json:"localserve,omitempty"`
	// MaxMessageSize is the largest message APPEND accepts, in bytes
	// (max_message_size).
	MaxMessageSize int64       `json:"max_message_size"`
	Limits         LimitsSlice `json:"limits"`
}

// StoreSlice is what moxd-store needs: the accounts it keeps and the
// addresses that deliver to them.
type StoreSlice struct {
	Domains  []AddrDomain   `json:"domains"`
	Accounts []StoreAccount `json:"accounts"`
	// MaxMessageSize is the largest message body store accepts, in bytes
	// (smtp.max_message_size); 0 means store's built-in limit.
	MaxMessageSize int64 `json:"max_message_size,omitempty"`
	// DiskReserve: deliveries are refused while the store's file system
	// has less free space, in bytes (store.disk_reserve); 0: no check.
	DiskReserve int64 `json:"disk_reserve,omitempty"`
	// FallbackAccount receives mail for every address that resolves to
	// nothing, at any domain (localserve).
	FallbackAccount string `json:"fallback_account,omitempty"`
	// Postmaster is the account the bare recipient "<postmaster>" (no
	// domain, RFC 5321 §4.1.1.3) is delivered to.
	Postmaster string `json:"postmaster,omitempty"`
}

// StoreAccount is one configured account.
type StoreAccount struct {
	Name      string   `json:"name"`
	Addresses []string `json:"addresses"`
	// Quota is the account's size limit in bytes; 0 means unlimited.
	Quota int64 `json:"quota,omitempty"`
	// Destinations maps an address to the mailbox it delivers into; an
	// address only listed here is an address of the account too.
	Destinations map[string]string `json:"destinations,omitempty"`
	// IncomingWebhook: the account has an incoming [[account.webhook]];
	// store tells queue about every delivery to it (queue has the URL).
	IncomingWebhook bool `json:"incoming_webhook,omitempty"`
	// NoJunkFlags turns automatic junk flags off (automatic_junk_flags =
	// false). Otherwise JunkFlags are the rules ([[account.junk_flag]]),
	// in order, validated: patterns compile with JunkFlagPattern, flags
	// are JunkFlagJunk, JunkFlagNotJunk or JunkFlagNone. Empty: store's
	// default rules.
	NoJunkFlags bool       `json:"no_junk_flags,omitempty"`
	JunkFlags   []JunkFlag `json:"junk_flags,omitempty"`
}

// QueueWebhook is one [[account.webhook]].
type QueueWebhook struct {
	Kind          string   `json:"kind"` // "outgoing" or "incoming"
	URL           string   `json:"url"`
	Authorization string   `json:"authorization,omitempty"`
	Events        []string `json:"events,omitempty"` // empty: all
}
