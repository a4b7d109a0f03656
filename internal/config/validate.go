package config

// Validation of decoded configuration files. All problems of a file are
// collected and returned together (errors.Join), each with its line, so one
// run of "moxd-master -n" shows everything to fix.

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
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

	return errors.Join(errs...)
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

// validateDynamic checks d and normalizes it in place (lower-cased domains).
func validateDynamic(file string, d *Dynamic, kl *keyLines) error {
	var errs []error
	add := func(p keyPath, format string, args ...any) {
		errs = append(errs, kl.errorf(file, p, format, args...))
	}

	domains := map[string]int{} // ASCII name -> index
	for i := range d.Domains {
		dom := &d.Domains[i]
		p := keyPath{"domain", index(i)}
		name, ascii, err := normalizeDomain(dom.Name)
		if err != nil {
			add(p.with("name"), "%v", err)
		} else {
			dom.Name = name
			if j, ok := domains[ascii]; ok {
				add(p.with("name"), "domain %q is also configured in domain[%d] (line %d)", name, j, kl.line(keyPath{"domain", index(j), "name"}))
			} else {
				domains[ascii] = i
			}
		}
		selectors := map[string]int{}
		for j, sel := range dom.DKIM {
			sp := p.with("dkim", index(j))
			if err := checkSelector(sel.Selector); err != nil {
				add(sp.with("selector"), "%v", err)
			} else if k, ok := selectors[strings.ToLower(sel.Selector)]; ok {
				add(sp.with("selector"), "selector %q is also used by dkim[%d] of this domain", sel.Selector, k)
			} else {
				selectors[strings.ToLower(sel.Selector)] = j
			}
			switch sel.Algorithm {
			case "ed25519", "rsa2048":
			case "":
				add(sp.with("algorithm"), "required: ed25519 or rsa2048")
			default:
				add(sp.with("algorithm"), "unknown DKIM algorithm %q (use ed25519 or rsa2048)", sel.Algorithm)
			}
		}
	}

	accounts := map[string]int{} // Lower-case name -> index.
	addresses := map[string]keyPath{}
	for i := range d.Accounts {
		acc := &d.Accounts[i]
		p := keyPath{"account", index(i)}
		if err := checkAccountName(acc.Name); err != nil {
			add(p.with("name"), "%v", err)
		} else if j, ok := accounts[strings.ToLower(acc.Name)]; ok {
			// Compared without case: names become directory names, and
			// some file systems ignore case.
			add(p.with("name"), "account %q is also configured in account[%d] (line %d)", acc.Name, j, kl.line(keyPath{"account", index(j), "name"}))
		} else {
			accounts[strings.ToLower(acc.Name)] = i
		}
		for j, addr := range acc.Addresses {
			ap := p.with("addresses", index(j))
			lp, dom, err := splitAddress(addr)
			if err != nil {
				add(ap, "%v", err)
				continue
			}
			name, ascii, err := normalizeDomain(dom)
			if err != nil {
				add(ap, "address %q: %v", addr, err)
				continue
			}
			if _, ok := domains[ascii]; !ok {
				add(ap, "address %q: domain %q is not configured; add a [[domain]] section for it", addr, name)
				continue
			}
			norm := lp + "@" + name
			acc.Addresses[j] = norm
			// Local parts are compared without case: delivery treats them
			// that way, so two accounts cannot share one in different case.
			key := strings.ToLower(lp) + "@" + ascii
			if other, ok := addresses[key]; ok {
				add(ap, "address %q is also configured at %s (line %d)", addr, other, kl.line(other))
				continue
			}
			addresses[key] = ap
		}
		if _, err := ParseQuota(acc.Quota); err != nil {
			add(p.with("quota"), "%v", err)
		}
	}

	// RFC 5321 §4.5.1: every domain must accept mail for postmaster. Checked
	// once the rest is valid, so the suggested line is one that loads.
	clean := len(errs) == 0
	for i := 0; clean && i < len(d.Domains); i++ {
		_, ascii, err := normalizeDomain(d.Domains[i].Name)
		if err != nil || domains[ascii] != i {
			continue // Reported above.
		}
		if _, ok := addresses["postmaster@"+ascii]; ok {
			continue
		}
		add(keyPath{"domain", index(i), "name"}, "%s", missingPostmaster(d, kl, d.Domains[i].Name))
	}
	return errors.Join(errs...)
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
	bad := fmt.Errorf("quota %q: want a number of bytes, optionally followed by K, M, G or T, e.g. \"500M\" or \"10G\"; empty or \"0\" for unlimited", s)
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
		return 0, fmt.Errorf("quota %q is too large", s)
	}
	return n * mult, nil
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}
