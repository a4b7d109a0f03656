// Package mtasts implements the sending side of SMTP MTA Strict Transport
// Security (RFC 8461): the _mta-sts TXT record that announces a policy,
// fetching the policy over HTTPS, parsing it, and matching MX hosts
// against it. moxd-queue uses it before delivering to a domain: with an
// "enforce" policy, only MX hosts the policy lists are used, and only
// with STARTTLS and a certificate valid for the MX host name.
//
// Pure protocol code: no IPC, no configuration, no cache (the caller
// keeps policies for max_age, RFC 8461 §5.1). DNS goes through the
// dns.Resolver and HTTPS through the http.Client it is given.
package mtasts

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"moxd/internal/dns"
)

// ErrNoRecord is wrapped by LookupRecord's error when the domain has no
// usable MTA-STS record: none, more than one, or an invalid one. RFC 8461
// §3.1: the sender then assumes the domain has no MTA-STS policy.
var ErrNoRecord = errors.New("no MTA-STS record")

// Record is a TXT record at _mta-sts.<domain> (RFC 8461 §3.1).
type Record struct {
	// ID identifies the current policy: a new id means the policy file
	// changed and must be fetched again.
	ID string
	// Extensions are the other fields, "name=value", in record order.
	// RFC 8461 defines none; they are kept for logs and ignored.
	Extensions []string
}

// String returns the record in its TXT form.
func (r *Record) String() string {
	var b strings.Builder
	b.WriteString("v=STSv1; id=" + r.ID + ";")
	for _, e := range r.Extensions {
		b.WriteString(" " + e + ";")
	}
	return b.String()
}

// isSTSv1 reports whether a TXT record is an MTA-STS record, whatever its
// syntax otherwise: it starts with "v=STSv1" followed by the end, a space
// or a ";" (RFC 8461 §3.1, sts-version and sts-field-delim; the version is
// case-sensitive).
func isSTSv1(txt string) bool {
	rest, ok := strings.CutPrefix(txt, "v=STSv1")
	return ok && (rest == "" || rest[0] == ';' || rest[0] == ' ' || rest[0] == '\t')
}

// ParseRecord parses an MTA-STS TXT record (RFC 8461 §3.1):
//
//	sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim]
//	sts-field-delim = *WSP ";" *WSP
//	sts-id          = %s"id=" 1*32(ALPHA / DIGIT)
//	sts-extension   = sts-ext-name "=" sts-ext-value
//
// The version must come first and an id must be present, once.
func ParseRecord(txt string) (*Record, error) {
	if !isSTSv1(txt) {
		return nil, errors.New(`record does not start with "v=STSv1"`)
	}
	fields := strings.Split(strings.TrimPrefix(txt, "v=STSv1"), ";")
	// fields[0] is the whitespace between the version and the first
	// delimiter; then the fields, each surrounded by optional whitespace.
	if strings.Trim(fields[0], " \t") != "" {
		return nil, fmt.Errorf("junk %q after the version", fields[0])
	}
	fields = fields[1:]
	// A single trailing delimiter is allowed; "" from it is dropped.
	if n := len(fields); n > 0 && strings.Trim(fields[n-1], " \t") == "" {
		fields = fields[:n-1]
	}
	r := &Record{}
	haveID := false
	for _, f := range fields {
		f = strings.Trim(f, " \t")
		name, value, ok := strings.Cut(f, "=")
		switch {
		case f == "":
			return nil, errors.New("empty field")
		case !ok:
			return nil, fmt.Errorf("field %q without =", f)
		case name == "id":
			if haveID {
				return nil, errors.New("more than one id field")
			}
			if !validID(value) {
				return nil, fmt.Errorf("invalid id %q: want 1 to 32 letters and digits", value)
			}
			r.ID, haveID = value, true
		case name == "v":
			return nil, errors.New("more than one version field")
		default:
			if !validExtName(name) {
				return nil, fmt.Errorf("invalid field name %q", name)
			}
			if !validExtValue(value) {
				return nil, fmt.Errorf("invalid value %q for field %s", value, name)
			}
			r.Extensions = append(r.Extensions, name+"="+value)
		}
	}
	if !haveID {
		return nil, errors.New("no id field")
	}
	return r, nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// validID checks sts-id's value: 1*32(ALPHA / DIGIT).
func validID(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) {
			return false
		}
	}
	return true
}

// validExtName checks sts-ext-name (and sts-policy-ext-name, RFC 8461
// §3.2): (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".").
func validExtName(s string) bool {
	if len(s) == 0 || len(s) > 32 || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '_' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// validExtValue checks sts-ext-value: 1*(%x21-3A / %x3C / %x3E-7E),
// printable ASCII without "=", ";" and space.
func validExtValue(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '=' || c == ';' {
			return false
		}
	}
	return true
}

// LookupRecord looks up the MTA-STS record of domain at _mta-sts.<domain>
// (RFC 8461 §3.1). TXT records that are not MTA-STS records are ignored.
// When there is none, more than one, or it does not parse, the error
// wraps ErrNoRecord and says why; a temporary DNS failure is returned as
// such (wrapping the *net.DNSError), and the caller may then use a cached
// policy (RFC 8461 §5.1).
func LookupRecord(ctx context.Context, r dns.Resolver, domain string) (*Record, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if !validDomain(domain) {
		return nil, fmt.Errorf("mta-sts: invalid domain %q", domain)
	}
	name := "_mta-sts." + domain
	txts, _, err := r.LookupTXT(ctx, name)
	var de *net.DNSError
	if errors.As(err, &de) && de.IsNotFound {
		return nil, fmt.Errorf("mta-sts: %w at %s", ErrNoRecord, name)
	} else if err != nil {
		return nil, fmt.Errorf("mta-sts: TXT lookup for %s: %w", name, err)
	}
	var sts []string
	for _, t := range txts {
		if isSTSv1(t) {
			sts = append(sts, t)
		}
	}
	switch len(sts) {
	case 0:
		return nil, fmt.Errorf("mta-sts: %w at %s (%d other TXT records)", ErrNoRecord, name, len(txts))
	case 1:
	default:
		// RFC 8461 §3.1: "If the number of resulting records is not one
		// ... senders MUST assume the recipient domain does not have an
		// available MTA-STS Policy".
		return nil, fmt.Errorf("mta-sts: %w at %s: %d STSv1 records, want one", ErrNoRecord, name, len(sts))
	}
	rec, err := ParseRecord(sts[0])
	if err != nil {
		return nil, fmt.Errorf("mta-sts: %w at %s: invalid record %q: %v", ErrNoRecord, name, sts[0], err)
	}
	return rec, nil
}
