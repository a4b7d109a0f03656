package config

// Validation of decoded configuration files. All problems of a file are
// collected and returned together (errors.Join), each with its line, so one
// run of "moxd-master -n" shows everything to fix.

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

var logLevels = [...]string{"trace", "debug", "info", "warn", "error"}

func checkLogLevel(s string) error {
	for _, l := range logLevels {
		if s == l {
			return nil
		}
	}
	return fmt.Errorf("unknown log level %q (use trace, debug, info, warn or error)", s)
}

// validateStatic checks s and normalizes it in place (lower-cased hostname,
// cleaned paths, canonical listener addresses).
func validateStatic(file string, s *Static, kl *keyLines) error {
	var errs []error
	add := func(p keyPath, format string, args ...any) {
		errs = append(errs, kl.errorf(file, p, format, args...))
	}

	if s.Hostname == "" {
		add(keyPath{"hostname"}, "required: set it to this host's fully qualified domain name, e.g. hostname = \"mail.example.com\"")
	} else if name, _, err := normalizeDomain(s.Hostname); err != nil {
		add(keyPath{"hostname"}, "%v", err)
	} else {
		s.Hostname = name
	}

	for _, d := range []struct {
		key      string
		dir      *string
		optional bool
	}{
		{"data_dir", &s.DataDir, false},
		{"run_dir", &s.RunDir, false},
		{"libexec_dir", &s.LibexecDir, true},
	} {
		switch {
		case *d.dir == "" && d.optional:
		case *d.dir == "":
			add(keyPath{d.key}, "empty; give an absolute path or remove the line for the default")
		case !filepath.IsAbs(*d.dir):
			add(keyPath{d.key}, "%q is not an absolute path", *d.dir)
		default:
			*d.dir = filepath.Clean(*d.dir)
		}
	}
	if s.DomainsFile == "" {
		add(keyPath{"domains_file"}, "empty; give a path or remove the line for the default %q", DefaultDomainsFile)
	}

	if err := checkLogLevel(s.LogLevel); err != nil {
		add(keyPath{"log_level"}, "%v", err)
	}
	for _, role := range sortedKeys(s.RoleLogLevels) {
		p := keyPath{"role_log_levels", role}
		if !isLogRole(role) {
			add(p, "unknown role %q (use one of master, %s)", role, strings.Join(workerRoles[:], ", "))
		} else if err := checkLogLevel(s.RoleLogLevels[role]); err != nil {
			add(p, "%v", err)
		}
	}

	specs := s.Users.specs()
	seen := map[string]string{}
	for _, role := range workerRoles {
		spec := *specs[role]
		p := keyPath{"users", role}
		if spec == "" {
			add(p, "empty; give a user name or a numeric \"uid:gid\"")
			continue
		}
		// Localserve as non-root runs every role as one user, so its
		// generated file repeats one spec.
		if other, ok := seen[spec]; ok && !s.Localserve {
			add(p, "user %q is also used for users.%s; every role needs its own user", spec, other)
		}
		seen[spec] = role
	}

	errs = append(errs, validateListeners(file, &s.Listen, kl)...)
	if len(s.TLS.Certificates) == 0 && !s.TLS.LocalCA {
		for _, k := range s.Listen.kinds() {
			if len(*k.addrs) > 0 && (k.name == "submissions" || k.name == "imaps" || k.name == "https") {
				add(keyPath{"listen", k.name}, "implicit TLS needs a certificate: add a [[tls.certificate]] section (or set tls.local_ca = true for testing)")
			}
		}
	}

	names := map[string]int{}
	for i := range s.TLS.Certificates {
		c := &s.TLS.Certificates[i]
		p := keyPath{"tls", "certificate", index(i)}
		for _, f := range []struct {
			key  string
			path *string
		}{{"cert_file", &c.CertFile}, {"key_file", &c.KeyFile}} {
			if *f.path == "" {
				add(p.with(f.key), "required in each [[tls.certificate]]")
			} else if !filepath.IsAbs(*f.path) {
				add(p.with(f.key), "%q is not an absolute path", *f.path)
			} else {
				*f.path = filepath.Clean(*f.path)
			}
		}
		if c.CertFile == "" {
			continue
		}
		if j, ok := names[c.Name()]; ok {
			add(p.with("cert_file"), "certificate name %q (the file name without extension) is also used by tls.certificate[%d]; rename one of the files", c.Name(), j)
		}
		names[c.Name()] = i
	}

	errs = append(errs, validateSections(file, s, kl)...)
	errs = append(errs, validateQueue(file, s, kl)...)
	errs = append(errs, validateTransports(file, s, kl)...)
	return errors.Join(errs...)
}

// Bounds of the [smtp] and [limits] values.
const (
	minMessageSize = 1 << 10
	maxMessageSize = 16 << 30
	maxDelay       = time.Minute
)

// validateSections checks and normalizes the [dns], [smtp], [limits] and
// [store] sections.
func validateSections(file string, s *Static, kl *keyLines) []error {
	var errs []error
	add := func(p keyPath, format string, args ...any) {
		errs = append(errs, kl.errorf(file, p, format, args...))
	}

	switch {
	case s.DNS.ResolvConf == "" && len(s.DNS.Nameservers) == 0 && !s.DNS.Offline:
		add(keyPath{"dns", "resolv_conf"}, "empty; give the path of a resolv.conf file (default %q), or set dns.nameservers", DefaultResolvConf)
	case s.DNS.ResolvConf != "" && !filepath.IsAbs(s.DNS.ResolvConf):
		add(keyPath{"dns", "resolv_conf"}, "%q is not an absolute path", s.DNS.ResolvConf)
	case s.DNS.ResolvConf != "":
		s.DNS.ResolvConf = filepath.Clean(s.DNS.ResolvConf)
	}
	for i, ns := range s.DNS.Nameservers {
		ap, err := ParseNameserver(ns)
		if err != nil {
			add(keyPath{"dns", "nameservers", index(i)}, "%v", err)
			continue
		}
		s.DNS.Nameservers[i] = ap.String()
	}

	if n, err := ParseSize(s.SMTP.MaxMessageSize); err != nil {
		add(keyPath{"smtp", "max_message_size"}, "%v", err)
	} else if n < minMessageSize || n > maxMessageSize {
		add(keyPath{"smtp", "max_message_size"}, "%q is outside the allowed range from 1K to 16G", s.SMTP.MaxMessageSize)
	}
	// RFC 5321 §4.5.3.1.8: a server must accept at least 100 recipients.
	if n := s.SMTP.MaxRecipients; n < 100 || n > 100000 {
		add(keyPath{"smtp", "max_recipients"}, "%d is outside the allowed range from 100 (the minimum of RFC 5321 section 4.5.3.1.8) to 100000", n)
	}

	l := &s.Limits
	for i, cidr := range l.TrustedNetworks {
		pfx, err := parseNetwork(cidr)
		if err != nil {
			add(keyPath{"limits", "trusted_networks", index(i)}, "%v", err)
			continue
		}
		l.TrustedNetworks[i] = pfx.String()
	}
	for _, f := range []struct {
		key string
		l   []int
	}{
		{"connections_per_minute", l.ConnectionsPerMinute},
		{"concurrent_connections", l.ConcurrentConnections},
	} {
		p := keyPath{"limits", f.key}
		if len(f.l) != 3 {
			add(p, "%d numbers given; give three, for IPv4 /32, /26, /21 and IPv6 /64, /48, /32, e.g. %s = %s", len(f.l), f.key, tomlValue(reflect.ValueOf(defaultLimit(f.key))))
			continue
		}
		for i, n := range f.l {
			if n < 0 {
				add(p.with(index(i)), "%d is negative; use 0 for no limit", n)
			}
		}
	}
	for _, f := range []struct {
		key string
		s   string
	}{
		{"auth_failure_delay", l.AuthFailureDelay},
		{"unknown_recipient_delay", l.UnknownRecipientDelay},
	} {
		if _, err := parseDelay(f.s); err != nil {
			add(keyPath{"limits", f.key}, "%v", err)
		}
	}
	if n := l.MaxAuthFailures; n < 1 || n > 100 {
		add(keyPath{"limits", "max_auth_failures"}, "%d is outside the allowed range from 1 to 100", n)
	}

	if _, err := ParseSize(s.Store.DiskReserve); err != nil {
		add(keyPath{"store", "disk_reserve"}, "%v", err)
	}
	return errs
}

// defaultLimit returns the default of a per-prefix limit, for messages.
func defaultLimit(key string) []int {
	l := defaultStatic().Limits
	if key == "connections_per_minute" {
		return l.ConnectionsPerMinute
	}
	return l.ConcurrentConnections
}

// ParseNameserver parses a resolver address: "ip" or "ip:port", an IPv6
// address with a port in brackets; the port defaults to 53.
func ParseNameserver(s string) (netip.AddrPort, error) {
	if ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil && ip.Zone() == "" {
		return netip.AddrPortFrom(ip, 53), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Addr().Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("bad nameserver %q: want an IP address, optionally with a port: \"192.0.2.53\", \"192.0.2.53:5353\", \"2001:db8::53\" or \"[2001:db8::53]:5353\"", s)
	}
	if ap.Port() == 0 {
		return netip.AddrPort{}, fmt.Errorf("nameserver %q: port 0; leave the port out for 53", s)
	}
	return ap, nil
}

// parseNetwork parses a CIDR network; a bare IP address is a host.
func parseNetwork(s string) (netip.Prefix, error) {
	if ip, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(ip, ip.BitLen()), nil
	}
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bad network %q: want CIDR notation such as \"192.0.2.0/24\" or \"2001:db8::/48\", or an IP address", s)
	}
	if pfx.Masked() != pfx {
		return netip.Prefix{}, fmt.Errorf("network %q has bits set after the prefix length; did you mean %q?", s, pfx.Masked().String())
	}
	return pfx, nil
}

// parseDelay parses a delay of [limits]: a Go duration from 0 to maxDelay.
func parseDelay(s string) (time.Duration, error) {
	return parseDuration(s, 0, maxDelay, `"1s", "500ms" or "0s"`)
}

// parseDuration parses a Go duration from lo to hi; examples are shown
// when s does not parse.
func parseDuration(s string, lo, hi time.Duration, examples string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q: want a number with a unit, such as %s", s, examples)
	}
	if d < lo || d > hi {
		return 0, fmt.Errorf("duration %q is outside the allowed range from %q to %q", s, shortDuration(lo), shortDuration(hi))
	}
	return d, nil
}

// shortDuration formats d as a Go duration without zero minutes and
// seconds: "1m", not "1m0s".
func shortDuration(d time.Duration) string {
	t := d.String()
	if strings.HasSuffix(t, "m0s") {
		t = strings.TrimSuffix(t, "0s")
	}
	if strings.HasSuffix(t, "h0m") {
		t = strings.TrimSuffix(t, "0m")
	}
	return t
}

// Bounds of the [queue] values.
const (
	minFirstRetry = time.Second
	maxFirstRetry = 24 * time.Hour
	minKeep       = time.Hour
	maxKeep       = 8760 * time.Hour
)

// validateQueue checks and normalizes the [queue] section.
func validateQueue(file string, s *Static, kl *keyLines) []error {
	var errs []error
	add := func(key string, format string, args ...any) {
		errs = append(errs, kl.errorf(file, keyPath{"queue", key}, format, args...))
	}
	q := &s.Queue
	for _, r := range []struct {
		key    string
		n      int
		lo, hi int
	}{
		{"max_attempts", q.MaxAttempts, 1, 100},
		{"concurrency", q.Concurrency, 1, 10000},
		{"destination_concurrency", q.DestinationConcurrency, 1, 1000},
		{"port", q.Port, 0, 65535},
	} {
		if r.n < r.lo || r.n > r.hi {
			add(r.key, "%d is outside the allowed range from %d to %d", r.n, r.lo, r.hi)
		}
	}
	switch n := q.DelayedDSNAfter; {
	case n < 0:
		add("delayed_dsn_after", "%d is negative; use 0 for no delayed DSN", n)
	case n > 0 && n >= q.MaxAttempts:
		what := strconv.Itoa(n)
		if !kl.has(keyPath{"queue", "delayed_dsn_after"}) {
			what = "the default " + what
		}
		add("delayed_dsn_after", "%s is not less than max_attempts (%d), after which the sender gets a failure DSN instead; set it lower, or to 0 for no delayed DSN", what, q.MaxAttempts)
	}
	if q.DestinationRate < 0 {
		add("destination_rate", "%d is negative; use 0 for no limit", q.DestinationRate)
	}
	if _, err := parseDuration(q.FirstRetry, minFirstRetry, maxFirstRetry, `"30s", "7.5m" or "1h"`); err != nil {
		add("first_retry", "%v", err)
	}
	if _, err := parseDuration(q.Keep, minKeep, maxKeep, `"48h" or "720h" (30 days)`); err != nil {
		add("keep", "%v", err)
	}
	errs = append(errs, checkSourceIPs(file, kl, keyPath{"queue", "source_ips"}, q.SourceIPs)...)
	switch {
	case q.CAFile == "":
	case !filepath.IsAbs(q.CAFile):
		add("ca_file", "%q is not an absolute path", q.CAFile)
	default:
		q.CAFile = filepath.Clean(q.CAFile)
	}
	return errs
}

// checkSourceIPs checks and normalizes a list of local addresses to connect
// from.
func checkSourceIPs(file string, kl *keyLines, p keyPath, l []string) []error {
	var errs []error
	for i, s := range l {
		ip, err := netip.ParseAddr(s)
		switch {
		case err != nil:
			err = fmt.Errorf("bad IP address %q: want an address of this host such as \"192.0.2.25\" or \"2001:db8::25\"", s)
		case ip.Zone() != "":
			err = fmt.Errorf("address %q has a zone; give a global address", s)
		case ip.IsUnspecified():
			err = fmt.Errorf("address %q is unspecified; leave the list empty to let the system choose", s)
		case slices.Contains(l[:i], ip.Unmap().String()):
			err = fmt.Errorf("address %q is listed twice", s)
		}
		if err != nil {
			errs = append(errs, kl.errorf(file, p.with(index(i)), "%v", err))
			continue
		}
		l[i] = ip.Unmap().String()
	}
	return errs
}

// saslMechanisms are the mechanisms transport.mechanisms may list, most
// secure first.
var saslMechanisms = []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5", "PLAIN"}

// Kinds of transports by what they use.
var (
	transportKinds = []string{TransportDirect, TransportSMTP, TransportSubmission, TransportSubmissions, TransportSocks}
	smarthostKinds = []string{TransportSMTP, TransportSubmission, TransportSubmissions}
	sourceIPKinds  = []string{TransportDirect, TransportSMTP, TransportSubmission, TransportSubmissions}
	socksKinds     = []string{TransportSocks}
)

// validateTransports checks and normalizes the [[transport]] sections.
func validateTransports(file string, s *Static, kl *keyLines) []error {
	var errs []error
	add := func(p keyPath, format string, args ...any) {
		errs = append(errs, kl.errorf(file, p, format, args...))
	}
	names := map[string]int{}
	for i := range s.Transports {
		t := &s.Transports[i]
		p := keyPath{"transport", index(i)}
		if err := checkTransportName(t.Name); err != nil {
			add(p.with("name"), "%v", err)
		} else if j, ok := names[t.Name]; ok {
			add(p.with("name"), "transport %q is also configured in transport[%d] (line %d)", t.Name, j, kl.line(keyPath{"transport", index(j), "name"}))
		} else {
			names[t.Name] = i
		}
		if t.Kind == "" {
			add(p.with("kind"), "required: one of %s", orList(transportKinds))
			continue
		} else if !slices.Contains(transportKinds, t.Kind) {
			add(p.with("kind"), "unknown kind %q (use one of %s)", t.Kind, orList(transportKinds))
			continue
		}

		// Keys that only some kinds use.
		for _, k := range []struct {
			key   string
			set   bool
			kinds []string
		}{
			{"host", t.Host != "", smarthostKinds},
			{"port", t.Port != 0, smarthostKinds},
			{"username", t.Username != "", smarthostKinds},
			{"password_file", t.PasswordFile != "", smarthostKinds},
			{"mechanisms", len(t.Mechanisms) > 0, smarthostKinds},
			{"no_tls_verify", t.NoTLSVerify, smarthostKinds},
			{"source_ips", len(t.SourceIPs) > 0, sourceIPKinds},
			{"socks_address", t.SocksAddress != "", socksKinds},
			{"remote_ips", len(t.RemoteIPs) > 0, socksKinds},
			{"remote_hostname", t.RemoteHostname != "", socksKinds},
		} {
			if k.set && !slices.Contains(k.kinds, t.Kind) {
				what := "kind"
				if len(k.kinds) > 1 {
					what = "kinds"
				}
				add(p.with(k.key), "not used by kind %q, only by %s %s; remove the line or change kind", t.Kind, what, andList(k.kinds))
			}
		}

		if slices.Contains(smarthostKinds, t.Kind) {
			if t.Host == "" {
				add(p.with("host"), "required for kind %q: the host name or IP address of the smarthost", t.Kind)
			} else if host, err := normalizeHost(t.Host); err != nil {
				add(p.with("host"), "%v", err)
			} else {
				t.Host = host
			}
			if t.Port < 0 || t.Port > 65535 {
				add(p.with("port"), "%d is outside the allowed range from 1 to 65535; 0 or no line means %d", t.Port, defaultTransportPort(t.Kind))
			}
			switch {
			case t.Username != "" && t.PasswordFile == "":
				add(p.with("password_file"), "required with username: the file with the password on its first line")
			case t.Username == "" && t.PasswordFile != "":
				add(p.with("password_file"), "no username to go with it; set username too, or remove the line")
			case t.PasswordFile != "" && !filepath.IsAbs(t.PasswordFile):
				add(p.with("password_file"), "%q is not an absolute path", t.PasswordFile)
			case t.PasswordFile != "":
				t.PasswordFile = filepath.Clean(t.PasswordFile)
			}
			if len(t.Mechanisms) > 0 && t.Username == "" {
				add(p.with("mechanisms"), "no username to authenticate with; set username too, or remove the line")
			}
			for j, m := range t.Mechanisms {
				um := strings.ToUpper(m)
				switch {
				case !slices.Contains(saslMechanisms, um):
					add(p.with("mechanisms", index(j)), "unknown mechanism %q (use %s)", m, andList(saslMechanisms))
				case slices.Contains(t.Mechanisms[:j], um):
					add(p.with("mechanisms", index(j)), "mechanism %q is listed twice", m)
				default:
					t.Mechanisms[j] = um
				}
			}
		}
		errs = append(errs, checkSourceIPs(file, kl, p.with("source_ips"), t.SourceIPs)...)

		if t.Kind == TransportSocks {
			if t.SocksAddress == "" {
				add(p.with("socks_address"), "required for kind socks: \"host:port\" of the SOCKS5 proxy")
			} else if addr, err := parseSocksAddress(t.SocksAddress); err != nil {
				add(p.with("socks_address"), "%v", err)
			} else {
				t.SocksAddress = addr
			}
			if len(t.RemoteIPs) == 0 {
				add(p.with("remote_ips"), "required for kind socks: the IP addresses the proxy connects from, e.g. [\"192.0.2.25\"]")
			}
			for j, ipStr := range t.RemoteIPs {
				ip, err := netip.ParseAddr(ipStr)
				if err != nil || ip.Zone() != "" || ip.IsUnspecified() {
					add(p.with("remote_ips", index(j)), "bad IP address %q: want a public address of the proxy such as \"192.0.2.25\" or \"2001:db8::25\"", ipStr)
					continue
				}
				t.RemoteIPs[j] = ip.Unmap().String()
			}
			if t.RemoteHostname == "" {
				add(p.with("remote_hostname"), "required for kind socks: the host name of the proxy's remote_ips, used in EHLO")
			} else if _, ascii, err := normalizeDomain(t.RemoteHostname); err != nil {
				add(p.with("remote_hostname"), "%v", err)
			} else {
				t.RemoteHostname = ascii
			}
		}
	}
	return errs
}

// checkTransportName checks the name of a [[transport]]: letters, digits,
// '-' and '_'.
func checkTransportName(name string) error {
	if name == "" {
		return errors.New("required: a name for routes to refer to, e.g. \"relay\"")
	}
	for _, c := range name {
		if !isBareKeyChar(c) {
			return fmt.Errorf("transport name %q may contain only letters, digits, '-' and '_'", name)
		}
	}
	return nil
}

// defaultTransportPort is the port of a smarthost of a kind when the
// transport gives none.
func defaultTransportPort(kind string) int {
	switch kind {
	case TransportSubmission:
		return 587
	case TransportSubmissions:
		return 465
	}
	return 25
}

// normalizeHost checks a host to connect to, a domain name or an IP
// address, and returns its ASCII form.
func normalizeHost(host string) (string, error) {
	if ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")); err == nil {
		if ip.Zone() != "" || ip.IsUnspecified() {
			return "", fmt.Errorf("host %q: want a global IP address or a host name", host)
		}
		return ip.Unmap().String(), nil
	}
	if strings.Contains(host, ":") {
		return "", fmt.Errorf("host %q is not a host name or IP address; give a port in the port option", host)
	}
	_, ascii, err := normalizeDomain(host)
	if err != nil {
		return "", fmt.Errorf("host %q: %w", host, err)
	}
	return ascii, nil
}

// parseSocksAddress checks "host:port" of a SOCKS5 proxy and returns it
// normalized.
func parseSocksAddress(s string) (string, error) {
	host, portStr, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return "", fmt.Errorf("bad address %q: want \"host:port\", with an IPv6 address in brackets, e.g. \"127.0.0.1:1080\"", s)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 || portStr[0] == '+' {
		return "", fmt.Errorf("address %q: port %q is not a number from 1 to 65535", s, portStr)
	}
	h, err := normalizeHost(host)
	if err != nil {
		return "", fmt.Errorf("address %q: %w", s, err)
	}
	return net.JoinHostPort(h, strconv.FormatUint(port, 10)), nil
}

// orList and andList join words for messages: "a, b or c", "a, b and c".
func orList(l []string) string  { return joinList(l, "or") }
func andList(l []string) string { return joinList(l, "and") }

func joinList(l []string, conj string) string {
	if len(l) <= 1 {
		return strings.Join(l, "")
	}
	return strings.Join(l[:len(l)-1], ", ") + " " + conj + " " + l[len(l)-1]
}

// readQueueFiles reads the files that [queue] and [[transport]] name: the
// CA certificates of queue.ca_file and the password of each
// password_file, into unexported fields for the queue slice. Load calls
// it, LoadStatic does not: the files may be readable by root only.
func readQueueFiles(file string, s *Static, kl *keyLines, readFile func(string) ([]byte, error)) []error {
	var errs []error
	if path := s.Queue.CAFile; path != "" {
		p := keyPath{"queue", "ca_file"}
		data, err := readFile(path)
		if err == nil {
			s.Queue.caPEM, err = caCertificates(data)
			if err != nil {
				err = fmt.Errorf("%s: %w", path, err)
			}
		}
		if err != nil {
			errs = append(errs, kl.errorf(file, p, "%v", err))
		}
	}
	for i := range s.Transports {
		t := &s.Transports[i]
		if t.PasswordFile == "" {
			continue
		}
		p := keyPath{"transport", index(i), "password_file"}
		data, err := readFile(t.PasswordFile)
		if err != nil {
			errs = append(errs, kl.errorf(file, p, "%v (the file holds the password for username on its first line)", err))
			continue
		}
		pw, _, _ := strings.Cut(string(data), "\n")
		pw = strings.TrimSuffix(pw, "\r")
		if pw == "" {
			errs = append(errs, kl.errorf(file, p, "%s: the first line is empty; put the password for username on it", t.PasswordFile))
			continue
		}
		t.password = &pw
	}
	return errs
}

// caCertificates returns the CERTIFICATE blocks of PEM data, each of which
// must parse; other blocks are left out.
func caCertificates(data []byte) (string, error) {
	var b strings.Builder
	n := 0
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		n++
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return "", fmt.Errorf("certificate %d: %v", n, err)
		}
		b.Write(pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: block.Bytes}))
	}
	if n == 0 {
		return "", errors.New("no PEM CERTIFICATE block; give a file with one or more CA certificates in PEM")
	}
	return b.String(), nil
}

// validateListeners checks and normalizes every listening address: an IP
// literal and a port, and no address used twice.
func validateListeners(file string, l *Listen, kl *keyLines) []error {
	var errs []error
	type use struct {
		ap   netip.AddrPort
		path keyPath
	}
	var uses []use
	for _, k := range l.kinds() {
		for i, addr := range *k.addrs {
			p := keyPath{"listen", k.name, index(i)}
			ap, err := parseListenAddr(addr)
			if err != nil {
				errs = append(errs, kl.errorf(file, p, "%v", err))
				continue
			}
			(*k.addrs)[i] = ap.String()
			if ap.Port() == 0 {
				continue // Any free port: never a conflict.
			}
			for _, u := range uses {
				if listenConflict(u.ap, ap) {
					what := "is also listed"
					if u.ap != ap {
						what = fmt.Sprintf("overlaps with %q", u.ap.String())
					}
					errs = append(errs, kl.errorf(file, p, "address %q %s in %s (line %d); use each address once", addr, what, u.path, kl.line(u.path)))
					break
				}
			}
			uses = append(uses, use{ap, p})
		}
	}
	return errs
}

// listenConflict reports whether binding both addresses would fail: the same
// address and port, or the same port with a wildcard address of the same
// address family.
func listenConflict(a, b netip.AddrPort) bool {
	if a.Port() != b.Port() {
		return false
	}
	x, y := a.Addr().Unmap(), b.Addr().Unmap()
	if x == y {
		return true
	}
	return x.Is4() == y.Is4() && (x.IsUnspecified() || y.IsUnspecified())
}

// parseListenAddr parses "ip:port".
func parseListenAddr(s string) (netip.AddrPort, error) {
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad address %q: want \"ip:port\", with an IPv6 address in brackets, e.g. \"[::1]:25\"", s)
	}
	if host == "" {
		return netip.AddrPort{}, fmt.Errorf("address %q has no IP address; use \"0.0.0.0%s\" and/or \"[::]%s\" for all addresses", s, s, s)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("address %q: %q is not an IP address (host names are not allowed: no DNS is used at start)", s, host)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || portStr[0] == '+' {
		return netip.AddrPort{}, fmt.Errorf("address %q: port %q is not a number from 0 to 65535", s, portStr)
	}
	return netip.AddrPortFrom(ip, uint16(port)), nil
}

// dynOptions is what validation of domains.conf needs besides the file.
type dynOptions struct {
	// static is the moxd.conf that domains.conf is loaded with, when
	// known (Load): the transports of routes must be configured in it.
	static *Static
	// lookupUID resolves the user names of unix_users; nil means the
	// passwd database.
	lookupUID func(name string) (uint32, error)
}

// validateDynamic checks d and normalizes it in place (lower-cased domains),
// and resolves the unix users of accounts.
func validateDynamic(file string, d *Dynamic, kl *keyLines, opts dynOptions) error {
	v := &dynValidator{file: file, d: d, kl: kl, opts: opts, domains: map[string]int{}, owners: map[string]addrOwner{}, aliases: map[string]keyPath{}, uids: map[uint32]addrOwner{}}
	v.checkDomains()
	v.checkAccounts()
	v.checkAliases()
	v.checkRoutes(nil, d.Routes)
	d.accountUIDs = nil
	for uid, o := range v.uids {
		if d.accountUIDs == nil {
			d.accountUIDs = map[uint32]string{}
		}
		d.accountUIDs[uid] = d.Accounts[o.account].Name
	}

	// RFC 5321 §4.5.1: every domain must accept mail for postmaster. Checked
	// once the rest is valid, so the suggested line is one that loads.
	clean := len(v.errs) == 0
	for i := 0; clean && i < len(d.Domains); i++ {
		_, ascii, err := normalizeDomain(d.Domains[i].Name)
		if err != nil || v.domains[ascii] != i {
			continue // Reported above.
		}
		if _, ok := v.owners["postmaster@"+ascii]; ok {
			continue
		}
		v.add(keyPath{"domain", index(i), "name"}, "%s", missingPostmaster(d, kl, d.Domains[i].Name))
	}
	if pa := d.PostmasterAccount; pa != "" {
		if d.FindAccount(pa) < 0 {
			v.add(keyPath{"postmaster_account"}, "no account %q; name one of the [[account]] sections, or remove the line for the default", pa)
		}
	} else if len(v.errs) == 0 && len(d.Domains) > 0 && d.Postmaster("") == "" {
		v.add(keyPath{"postmaster_account"}, "no account receives system mail; set postmaster_account to an account name")
	}
	return errors.Join(v.errs...)
}

// dynValidator holds the state of one validation of domains.conf.
type dynValidator struct {
	file string
	d    *Dynamic
	kl   *keyLines
	opts dynOptions
	errs []error

	domains map[string]int       // ASCII name -> index
	owners  map[string]addrOwner // address key (see addrKey) -> owner
	aliases map[string]keyPath   // alias address key -> where
	uids    map[uint32]addrOwner // uid of unix_users -> account
}

// addrOwner is the account that has an address (or a unix user), and where
// it says so.
type addrOwner struct {
	account int
	path    keyPath
}

func (v *dynValidator) add(p keyPath, format string, args ...any) {
	v.errs = append(v.errs, v.kl.errorf(v.file, p, format, args...))
}

// domainOf returns the settings of the configured domain with the given
// ASCII name, or nil.
func (v *dynValidator) domainOf(ascii string) *Domain {
	i, ok := v.domains[ascii]
	if !ok {
		return nil
	}
	return &v.d.Domains[i]
}

// addrKey is the form in which addresses are compared: LocalpartKey with
// the domain's case rule, "@", the ASCII domain. A catchall's key is
// "@domain".
func addrKey(lp, ascii string, dom *Domain) string {
	if lp == "" {
		return "@" + ascii
	}
	return LocalpartKey(lp, dom.LocalpartCaseSensitive) + "@" + ascii
}

// baseLocalpart returns lp up to the first of the domain's separators, and
// whether lp has one (with something before it).
func baseLocalpart(lp string, dom *Domain) (string, bool) {
	cut := -1
	for _, sep := range dom.LocalpartSeparators {
		if i := strings.Index(lp, sep); sep != "" && i > 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	if cut < 0 {
		return "", false
	}
	return lp[:cut], true
}

// address parses an address of a configured domain at p; catchall allows
// "@domain". It returns the normalized address, its key and its domain.
func (v *dynValidator) address(p keyPath, addr string, catchall bool) (norm, key string, dom *Domain, ok bool) {
	split := splitAddress
	if catchall {
		split = splitAccountAddress
	}
	lp, domain, err := split(addr)
	if err != nil {
		if !catchall && strings.HasPrefix(addr, "@") {
			err = fmt.Errorf("address %q: a catchall (\"@domain\") can only be an account's address", addr)
		}
		v.add(p, "%v", err)
		return "", "", nil, false
	}
	name, ascii, err := normalizeDomain(domain)
	if err != nil {
		v.add(p, "address %q: %v", addr, err)
		return "", "", nil, false
	}
	dom = v.domainOf(ascii)
	if dom == nil {
		v.add(p, "address %q: domain %q is not configured; add a [[domain]] section for it", addr, name)
		return "", "", nil, false
	}
	return lp + "@" + name, addrKey(lp, ascii, dom), dom, true
}

func (v *dynValidator) checkDomains() {
	for i := range v.d.Domains {
		dom := &v.d.Domains[i]
		p := keyPath{"domain", index(i)}
		name, ascii, err := normalizeDomain(dom.Name)
		if err != nil {
			v.add(p.with("name"), "%v", err)
		} else {
			dom.Name = name
			if j, ok := v.domains[ascii]; ok {
				v.add(p.with("name"), "domain %q is also configured in domain[%d] (line %d)", name, j, v.kl.line(keyPath{"domain", index(j), "name"}))
			} else {
				v.domains[ascii] = i
			}
		}
		for j, sep := range dom.LocalpartSeparators {
			if err := checkSeparator(sep); err != nil {
				v.add(p.with("localpart_separators", index(j)), "%v", err)
			} else if slices.Contains(dom.LocalpartSeparators[:j], sep) {
				v.add(p.with("localpart_separators", index(j)), "separator %q is listed twice", sep)
			}
		}
		selectors := map[string]int{}
		for j, sel := range dom.DKIM {
			sp := p.with("dkim", index(j))
			if err := checkSelector(sel.Selector); err != nil {
				v.add(sp.with("selector"), "%v", err)
			} else if k, ok := selectors[strings.ToLower(sel.Selector)]; ok {
				v.add(sp.with("selector"), "selector %q is also used by dkim[%d] of this domain", sel.Selector, k)
			} else {
				selectors[strings.ToLower(sel.Selector)] = j
			}
			switch sel.Algorithm {
			case "ed25519", "rsa2048":
			case "":
				v.add(sp.with("algorithm"), "required: ed25519 or rsa2048")
			default:
				v.add(sp.with("algorithm"), "unknown DKIM algorithm %q (use ed25519 or rsa2048)", sel.Algorithm)
			}
		}
		v.checkRoutes(p, dom.Routes)
	}
}

// checkSeparator checks one localpart separator: a single character that
// can appear in an unquoted local part and is not a letter or digit.
func checkSeparator(sep string) error {
	r, n := utf8.DecodeRuneInString(sep)
	switch {
	case sep == "":
		return errors.New("empty separator; give one character, e.g. \"+\"")
	case n != len(sep):
		return fmt.Errorf("separator %q is more than one character; list each character on its own, e.g. [\"+\", \"-\"]", sep)
	case r == '.' || r >= utf8.RuneSelf || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9':
		return fmt.Errorf("separator %q would cut ordinary local parts; use a punctuation character such as \"+\" or \"-\"", sep)
	case !isAtext(r):
		return fmt.Errorf("separator %q cannot appear in an unquoted local part; use a character such as \"+\" or \"-\"", sep)
	}
	return nil
}

func (v *dynValidator) checkAccounts() {
	names := map[string]int{} // Lower-case name -> index.
	for i := range v.d.Accounts {
		acc := &v.d.Accounts[i]
		p := keyPath{"account", index(i)}
		if err := checkAccountName(acc.Name); err != nil {
			v.add(p.with("name"), "%v", err)
		} else if j, ok := names[strings.ToLower(acc.Name)]; ok {
			// Compared without case: names become directory names, and
			// some file systems ignore case.
			v.add(p.with("name"), "account %q is also configured in account[%d] (line %d)", acc.Name, j, v.kl.line(keyPath{"account", index(j), "name"}))
		} else {
			names[strings.ToLower(acc.Name)] = i
		}
		for j, addr := range acc.Addresses {
			ap := p.with("addresses", index(j))
			norm, key, _, ok := v.address(ap, addr, true)
			if !ok {
				continue
			}
			acc.Addresses[j] = norm
			if v.claimed(ap, addr, key, -1) {
				continue
			}
			v.owners[key] = addrOwner{i, ap}
		}
		seen := map[string]int{}
		for j := range acc.Destinations {
			dest := &acc.Destinations[j]
			dp := p.with("destination", index(j))
			if dest.Address == "" {
				v.add(dp.with("address"), "required in each [[account.destination]]")
			} else if norm, key, _, ok := v.address(dp.with("address"), dest.Address, true); ok {
				dest.Address = norm
				if k, dup := seen[key]; dup {
					v.add(dp.with("address"), "address %q has a destination already in destination[%d]; give each address one mailbox", dest.Address, k)
				} else if !v.claimed(dp.with("address"), dest.Address, key, i) {
					seen[key] = j
					if _, own := v.owners[key]; !own {
						v.owners[key] = addrOwner{i, dp.with("address")}
					}
				}
			}
			if err := checkMailboxName(dest.Mailbox); err != nil {
				v.add(dp.with("mailbox"), "%v", err)
			}
		}
		for _, lim := range []struct {
			key string
			n   *int
		}{
			{"max_messages_per_day", acc.MaxMessagesPerDay},
			{"max_first_time_recipients_per_day", acc.MaxFirstTimeRecipientsPerDay},
		} {
			if lim.n != nil && *lim.n < 0 {
				v.add(p.with(lim.key), "%d is negative; use 0 for no limit, or remove the line for the default", *lim.n)
			}
		}
		if _, err := ParseQuota(acc.Quota); err != nil {
			v.add(p.with("quota"), "%v", err)
		}
		if acc.UniqueMailFrom && !v.hasSeparators(acc) {
			v.add(p.with("unique_mail_from"), "none of the account's domains has localpart_separators, which the unique id needs; add localpart_separators = [\"+\"] to the [[domain]] of an address of the account, or remove the line")
		}
		v.checkUnixUsers(i, p)
		v.checkRoutes(p, acc.Routes)
		v.checkWebhooks(p, acc.Webhooks)
		v.checkJunkFlags(p, acc.JunkFlags)
	}
}

// checkJunkFlags checks the [[account.junk_flag]] rules at p and
// normalizes their flags.
func (v *dynValidator) checkJunkFlags(p keyPath, l []JunkFlag) {
	for i := range l {
		r := &l[i]
		rp := p.with("junk_flag", index(i))
		if r.Mailbox == "" {
			v.add(rp.with("mailbox"), "required: a regular expression for the mailbox names the rule is for, e.g. \"(junk|spam)(/.*)?\", or \".*\" for every mailbox")
		} else if _, err := JunkFlagPattern(r.Mailbox); err != nil {
			v.add(rp.with("mailbox"), "%v", err)
		}
		switch strings.ToLower(r.Flag) {
		case "$junk":
			r.Flag = JunkFlagJunk
		case "$notjunk":
			r.Flag = JunkFlagNotJunk
		case "none":
			r.Flag = JunkFlagNone
		case "":
			v.add(rp.with("flag"), "required: \"$Junk\", \"$NotJunk\" or \"none\"")
		default:
			v.add(rp.with("flag"), "%q is not a junk flag; use \"$Junk\", \"$NotJunk\" or \"none\" (to remove both)", r.Flag)
		}
	}
}

// JunkFlagPattern compiles the mailbox pattern of an [[account.junk_flag]]
// rule: a Go regular expression that must match the whole mailbox name,
// compared without case.
func JunkFlagPattern(s string) (*regexp.Regexp, error) {
	// Parsed alone first, so that an error names the pattern as written
	// and the pattern cannot reach outside the group around it.
	if _, err := syntax.Parse(s, syntax.Perl); err != nil {
		var se *syntax.Error
		if errors.As(err, &se) {
			return nil, fmt.Errorf("%q is not a regular expression: %s: %q (syntax: https://pkg.go.dev/regexp/syntax)", s, se.Code, se.Expr)
		}
		return nil, fmt.Errorf("%q is not a regular expression: %v", s, err)
	}
	return regexp.Compile(`(?i)^(?:` + s + `)$`)
}

// checkWebhooks checks the [[account.webhook]] sections at p.
func (v *dynValidator) checkWebhooks(p keyPath, l []Webhook) {
	seen := map[string]bool{}
	for i, h := range l {
		hp := p.with("webhook", index(i))
		switch h.Kind {
		case "outgoing":
		case "incoming":
			if len(h.Events) > 0 {
				v.add(hp.with("events"), "an incoming webhook posts every delivery; events apply to outgoing webhooks only, remove them")
			}
		default:
			v.add(hp.with("kind"), "%q is not a webhook kind; use \"outgoing\" or \"incoming\"", h.Kind)
		}
		if seen[h.Kind] {
			v.add(hp.with("kind"), "a second %s webhook; an account has at most one per kind", h.Kind)
		}
		seen[h.Kind] = true
		u, err := url.Parse(h.URL)
		switch {
		case h.URL == "":
			v.add(hp.with("url"), "empty; give the http or https URL to post the events to")
		case err != nil:
			v.add(hp.with("url"), "%q is not a URL: %v", h.URL, err)
		case u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.User != nil:
			v.add(hp.with("url"), "%q: give an absolute http or https URL without user name or password (use authorization for credentials)", h.URL)
		}
		if strings.ContainsAny(h.Authorization, "\r\n") {
			v.add(hp.with("authorization"), "contains a line break")
		}
		for j, e := range h.Events {
			if h.Kind == "outgoing" && !slices.Contains(WebhookEvents, e) {
				v.add(hp.with("events", index(j)), "%q is not an event; use some of %s", e, strings.Join(WebhookEvents, ", "))
			}
		}
	}
}

// hasSeparators reports whether a domain of an address of acc has
// localpart_separators.
func (v *dynValidator) hasSeparators(acc *Account) bool {
	for _, addr := range acc.AllAddresses() {
		_, domain, err := splitAccountAddress(addr)
		if err != nil {
			continue
		}
		if _, ascii, err := normalizeDomain(domain); err == nil {
			if dom := v.domainOf(ascii); dom != nil && len(dom.LocalpartSeparators) > 0 {
				return true
			}
		}
	}
	return false
}

// checkUnixUsers resolves the unix_users of account i at p. A uid may
// belong to one account only.
func (v *dynValidator) checkUnixUsers(i int, p keyPath) {
	for j, spec := range v.d.Accounts[i].UnixUsers {
		up := p.with("unix_users", index(j))
		uid, err := v.unixUID(spec)
		if err != nil {
			v.add(up, "%v", err)
			continue
		}
		if o, ok := v.uids[uid]; ok {
			if o.account == i {
				v.add(up, "user %q (uid %d) is listed twice", spec, uid)
			} else {
				v.add(up, "user %q (uid %d) is also listed at %s (line %d) of account %q; a user's local mail goes to one account", spec, uid, o.path, v.kl.line(o.path), v.d.Accounts[o.account].Name)
			}
			continue
		}
		v.uids[uid] = addrOwner{i, up}
	}
}

// unixUID resolves a unix user of an account: a numeric uid, or a name in
// the passwd database.
func (v *dynValidator) unixUID(spec string) (uint32, error) {
	if spec == "" {
		return 0, errors.New("empty user; give a user name or a numeric uid")
	}
	if isDigit(spec[0]) {
		uid, err := parseID(spec)
		if err != nil {
			return 0, fmt.Errorf("user %q: uid: %w", spec, err)
		}
		return uid, nil
	}
	lookup := v.opts.lookupUID
	if lookup == nil {
		lookup = lookupUID
	}
	return lookup(spec)
}

// checkRoutes checks and normalizes the [[route]] sections under p (nil
// for the global ones).
func (v *dynValidator) checkRoutes(p keyPath, routes []Route) {
	for i := range routes {
		r := &routes[i]
		rp := p.with("route", index(i))
		for _, f := range []struct {
			key string
			l   []string
		}{{"from_domains", r.FromDomains}, {"to_domains", r.ToDomains}} {
			for j, dom := range f.l {
				norm, err := normalizeRouteDomain(dom)
				if err != nil {
					v.add(rp.with(f.key, index(j)), "%v", err)
					continue
				}
				f.l[j] = norm
			}
		}
		if r.MinimumAttempts < 0 {
			v.add(rp.with("minimum_attempts"), "%d is negative; use 0 for a route that applies from the first attempt on", r.MinimumAttempts)
		}

		// Cross-file checks, when domains.conf is loaded with its
		// moxd.conf.
		s := v.opts.static
		if s == nil {
			continue
		}
		if r.Transport != "" && s.FindTransport(r.Transport) < 0 {
			var names []string
			for _, t := range s.Transports {
				names = append(names, strconv.Quote(t.Name))
			}
			known := "moxd.conf has no [[transport]] sections"
			if len(names) > 0 {
				known = "moxd.conf has " + andList(names)
			}
			v.add(rp.with("transport"), "no [[transport]] named %q in moxd.conf (%s); add it there, or leave transport empty for direct delivery", r.Transport, known)
		}
		if r.MinimumAttempts > 0 && r.MinimumAttempts >= s.Queue.MaxAttempts {
			v.add(rp.with("minimum_attempts"), "%d: the route never applies, as queue.max_attempts in moxd.conf is %d; lower it", r.MinimumAttempts, s.Queue.MaxAttempts)
		}
	}
}

// normalizeRouteDomain checks a domain of a route, which a leading "."
// makes match subdomains, and returns it lower-cased.
func normalizeRouteDomain(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty domain; leave the list empty to match any domain")
	}
	rest, sub := strings.CutPrefix(s, ".")
	if rest == "" || strings.HasPrefix(rest, ".") {
		return "", fmt.Errorf("domain %q: want a domain name, with one leading \".\" to match its subdomains", s)
	}
	name, _, err := normalizeDomain(rest)
	if err != nil {
		return "", err
	}
	if sub {
		return "." + name, nil
	}
	return name, nil
}

// claimed reports (and for a conflict, adds an error) whether the address
// key is taken already: by another account, or, unless the owner is self,
// by any.
func (v *dynValidator) claimed(p keyPath, addr, key string, self int) bool {
	other, ok := v.owners[key]
	if !ok || other.account == self {
		return false
	}
	if strings.HasPrefix(key, "@") {
		v.add(p, "catchall %q is also configured at %s (line %d); a domain has one catchall", addr, other.path, v.kl.line(other.path))
	} else {
		v.add(p, "address %q is also configured at %s (line %d)", addr, other.path, v.kl.line(other.path))
	}
	return true
}

func (v *dynValidator) checkAliases() {
	type member struct {
		p    keyPath
		addr string
	}
	var members []member
	for i := range v.d.Domains {
		dom := &v.d.Domains[i]
		_, ascii, err := normalizeDomain(dom.Name)
		if err != nil || v.domains[ascii] != i {
			continue // Reported with the domain.
		}
		for j := range dom.Aliases {
			al := &dom.Aliases[j]
			p := keyPath{"domain", index(i), "alias", index(j)}
			if al.Address == "" {
				v.add(p.with("address"), "required in each [[domain.alias]]")
			} else if norm, key, adom, ok := v.address(p.with("address"), al.Address, false); ok {
				al.Address = norm
				lp, _, _ := splitAddress(norm)
				switch {
				case adom != dom:
					v.add(p.with("address"), "alias %q is not in domain %q; move the [[domain.alias]] section to the [[domain]] of its address", norm, dom.Name)
				case v.aliases[key] != nil:
					v.add(p.with("address"), "alias %q is also configured at %s (line %d)", norm, v.aliases[key], v.kl.line(v.aliases[key]))
				default:
					o, taken := v.owners[key]
					if taken {
						v.add(p.with("address"), "alias %q is also an address of account %q (%s, line %d); remove one of them", norm, v.d.Accounts[o.account].Name, o.path, v.kl.line(o.path))
						break
					}
					v.aliases[key] = p.with("address")
					if base, cut := baseLocalpart(lp, dom); cut {
						// Resolution tries addresses through separators
						// before aliases, so such an alias never gets mail.
						if o, taken := v.owners[addrKey(base, ascii, dom)]; taken {
							v.add(p.with("address"), "alias %q would never receive mail: with localpart_separators, it goes to %s (%s) first; choose another alias address", norm, base+"@"+dom.Name, o.path)
						}
					}
				}
			}
			if len(al.Members) == 0 {
				v.add(p.with("members"), "an alias needs at least one member address")
			}
			for k, m := range al.Members {
				mp := p.with("members", index(k))
				if _, domain, err := splitAddress(m); err == nil {
					if _, ascii, err := normalizeDomain(domain); err == nil && v.domainOf(ascii) == nil {
						v.add(mp, "member %q is not local; for now alias members must be addresses of local accounts", m)
						continue
					}
				}
				if norm, _, _, ok := v.address(mp, m, false); ok {
					al.Members[k] = norm
					members = append(members, member{mp, norm})
				}
			}
		}
	}
	// Members are checked once every alias is known.
	for _, m := range members {
		lp, domain, _ := splitAddress(m.addr)
		_, ascii, _ := normalizeDomain(domain)
		dom := v.domainOf(ascii)
		key := addrKey(lp, ascii, dom)
		if _, ok := v.aliases[key]; ok {
			v.add(m.p, "member %q is an alias; aliases cannot contain aliases, list its members instead", m.addr)
			continue
		}
		if _, ok := v.owners[key]; ok {
			continue
		}
		if base, cut := baseLocalpart(lp, dom); cut {
			if _, ok := v.owners[addrKey(base, ascii, dom)]; ok {
				continue
			}
		}
		if _, ok := v.owners["@"+ascii]; ok {
			continue
		}
		v.add(m.p, "member %q is not an address of any account; for now alias members must be addresses of local accounts", m.addr)
	}
}

// checkMailboxName checks the mailbox of a destination: "/" separates
// levels, as in moxd-store.
func checkMailboxName(name string) error {
	switch {
	case name == "":
		return errors.New("required: the mailbox to deliver into, e.g. \"Lists/moxd\"; for the Inbox, list the address in addresses instead")
	case !utf8.ValidString(name):
		return fmt.Errorf("mailbox %q is not valid UTF-8", name)
	case len(name) > 255:
		return fmt.Errorf("mailbox %q is longer than 255 bytes", name)
	case strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/"):
		return fmt.Errorf("mailbox %q starts or ends with \"/\"; write levels as \"Lists/moxd\"", name)
	case strings.Contains(name, "//"):
		return fmt.Errorf("mailbox %q has an empty level (\"//\")", name)
	case strings.ContainsAny(name, "*%"):
		return fmt.Errorf("mailbox %q contains \"*\" or \"%%\", which IMAP uses as wildcards", name)
	case strings.Count(name, "/") >= 32:
		return fmt.Errorf("mailbox %q has more than 32 levels", name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return fmt.Errorf("mailbox %q contains a control character", name)
		}
	}
	return nil
}

// missingPostmaster says which line to add for a domain without a
// postmaster address.
func missingPostmaster(d *Dynamic, kl *keyLines, domain string) string {
	pm := "postmaster@" + domain
	msg := fmt.Sprintf("domain %q has no postmaster address, which every mail domain must have (RFC 5321 section 4.5.1): ", domain)
	if len(d.Accounts) == 0 {
		return msg + fmt.Sprintf("add an account for it:\n[[account]]\nname = \"postmaster\"\naddresses = [%s]", tomlString(pm))
	}
	acc := d.Accounts[0]
	l := append(slices.Clone(acc.Addresses), pm)
	where := "in account[0]"
	if line := kl.line(keyPath{"account", index(0), "addresses"}); line > 0 {
		where += fmt.Sprintf(" (line %d)", line)
	}
	return msg + fmt.Sprintf("add %q to the addresses of an account, e.g. %s: addresses = %s", pm, where, tomlValue(reflect.ValueOf(l)))
}

// ParseQuota parses an account quota: a number of bytes, optionally followed
// by K, M, G or T (powers of 1024). Empty means 0, unlimited.
func ParseQuota(s string) (int64, error) {
	return parseSize(s, "quota", `; empty or "0" for unlimited`)
}

// ParseSize parses a size as in [smtp] and [store]: a number of bytes,
// optionally followed by K, M, G or T (powers of 1024). Empty means 0.
func ParseSize(s string) (int64, error) {
	return parseSize(s, "size", "")
}

// parseSize is ParseQuota and ParseSize; what names the value in errors
// and hint follows the example.
func parseSize(s, what, hint string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	num, mult := s, int64(1)
	switch s[len(s)-1] {
	case 'K', 'k':
		mult = 1 << 10
	case 'M', 'm':
		mult = 1 << 20
	case 'G', 'g':
		mult = 1 << 30
	case 'T', 't':
		mult = 1 << 40
	}
	if mult > 1 {
		num = s[:len(s)-1]
	}
	bad := fmt.Errorf("%s %q: want a number of bytes, optionally followed by K, M, G or T, e.g. \"500M\" or \"10G\"%s", what, s, hint)
	if num == "" {
		return 0, bad
	}
	for i := 0; i < len(num); i++ {
		if !isDigit(num[i]) {
			return 0, bad
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > (1<<62)/mult {
		return 0, fmt.Errorf("%s %q is too large", what, s)
	}
	return n * mult, nil
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}
