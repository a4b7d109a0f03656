// Package spf checks whether a client may send mail for a domain with the
// Sender Policy Framework (RFC 7208) and renders the result as a
// Received-SPF header (RFC 7208 §9.1). moxd-smtp runs it for every inbound
// transaction on port 25; its result feeds DMARC (package dmarc) and the
// Authentication-Results header (package authres).
//
// The evaluation itself (record parsing, mechanisms, macros, the lookup
// limits of RFC 7208 §4.6.4) is blitiri.com.ar/go/spf. This package decides
// which identity is checked, connects blitiri to moxd's DNSSEC-aware
// resolver and records whether every answer used was authentic.
//
// Pure protocol code: no IPC, no configuration; DNS only through the
// dns.Resolver it is given.
package spf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	blitiri "blitiri.com.ar/go/spf"

	"moxd/internal/dns"
)

// Status is an SPF result (RFC 7208 §2.6).
type Status string

// The SPF results (RFC 7208 §2.6, §8).
const (
	StatusNone      Status = "none"
	StatusNeutral   Status = "neutral"
	StatusPass      Status = "pass"
	StatusFail      Status = "fail"
	StatusSoftfail  Status = "softfail"
	StatusTemperror Status = "temperror"
	StatusPermerror Status = "permerror"
)

// Identity names the identity that was checked (RFC 7208 §2.3, §2.4).
type Identity string

// The identities moxd checks.
const (
	IdentityMailFrom Identity = "mailfrom"
	IdentityHELO     Identity = "helo"
)

// Args is what Verify needs from the SMTP transaction.
type Args struct {
	RemoteIP netip.Addr
	// MailFromLocalpart and MailFromDomain are the reverse path of MAIL
	// FROM; the domain is ASCII (A-labels). Both are empty for the null
	// reverse path "<>".
	MailFromLocalpart string
	MailFromDomain    string
	// HelloDomain is the argument of EHLO/HELO as the client sent it; an
	// address literal ("[192.0.2.1]") is allowed.
	HelloDomain string
	// LocalHostname is this server's name, used as "receiver" in the
	// Received-SPF header.
	LocalHostname string
}

// Received is the outcome of one SPF evaluation, with what is needed to
// write the Received-SPF header.
type Received struct {
	Result Status
	// Identity is "mailfrom", or "helo" when the reverse path was null
	// (RFC 7208 §2.4: then the "MAIL FROM" identity is postmaster@HELO, so
	// DMARC still counts it as the MAIL FROM identity).
	Identity Identity
	// Domain is the domain that was checked, lower case, no trailing dot.
	Domain string
	// Explanation is a human-readable sentence describing the result, for
	// the Received-SPF comment and logs. It is moxd's own text: exp=
	// modifiers of the published record are not evaluated.
	Explanation string
	// Authentic is true when at least one DNS lookup was made and every
	// lookup made for this evaluation was DNSSEC-authentic.
	Authentic bool
	// Err is the cause of a temperror or permerror, for logs; nil otherwise.
	Err error

	// What the header reports.
	RemoteIP    netip.Addr
	MailFrom    string // localpart@domain, empty for the null reverse path
	HelloDomain string
	Receiver    string
}

// Verify evaluates SPF for the transaction: the MAIL FROM domain, or with
// the null reverse path the HELO identity (RFC 7208 §2.3, §2.4). A separate
// HELO check for a non-null reverse path (RFC 7208 §2.3 RECOMMENDED) is
// left to the caller: it can call Verify with the null reverse path.
func Verify(ctx context.Context, r dns.Resolver, a Args) Received {
	ip := a.RemoteIP.WithZone("").Unmap()
	rcv := Received{
		RemoteIP:    ip,
		HelloDomain: a.HelloDomain,
		Receiver:    a.LocalHostname,
	}

	var sender string
	if a.MailFromDomain == "" && a.MailFromLocalpart == "" {
		// RFC 7208 §2.4: with a null reverse path the "MAIL FROM" identity
		// is postmaster@ the HELO identity.
		rcv.Identity = IdentityHELO
		rcv.Domain = normalizeDomain(a.HelloDomain)
		if strings.HasPrefix(a.HelloDomain, "[") {
			// RFC 7208 §2.3: an address literal HELO has no SPF.
			rcv.Result = StatusNone
			rcv.Domain = ""
			rcv.Explanation = "HELO is an address literal, no SPF check possible"
			return rcv
		}
		sender = "postmaster@" + rcv.Domain
	} else {
		rcv.Identity = IdentityMailFrom
		rcv.Domain = normalizeDomain(a.MailFromDomain)
		rcv.MailFrom = a.MailFromLocalpart + "@" + a.MailFromDomain
		local := a.MailFromLocalpart
		if local == "" || strings.Contains(local, "@") {
			// RFC 7208 §4.3: no local-part ⇒ "postmaster". blitiri splits
			// the sender at its first "@", so a quoted local-part holding
			// one would move the domain; it only feeds the %{l} and %{s}
			// macros, which then see "postmaster".
			local = "postmaster"
		}
		sender = local + "@" + rcv.Domain
	}

	// RFC 7208 §4.3: a malformed domain or one that is not multi-label
	// yields "none" without any lookup.
	if !validDomain(rcv.Domain) {
		rcv.Result = StatusNone
		rcv.Explanation = fmt.Sprintf("%s is not a valid domain name, no SPF check possible", quoteForText(rcv.Domain))
		return rcv
	}
	if !ip.IsValid() {
		rcv.Result = StatusPermerror
		rcv.Err = errors.New("no valid client IP address")
		rcv.Explanation = "no valid client IP address"
		return rcv
	}

	ad := &adapter{r: r}
	res, err := blitiri.CheckHostWithSender(net.IP(ip.AsSlice()), a.HelloDomain, sender,
		blitiri.WithContext(ctx), blitiri.WithResolver(ad))
	rcv.Result = Status(res)
	rcv.Authentic = ad.lookups > 0 && ad.authentic
	switch rcv.Result {
	case StatusTemperror, StatusPermerror:
		rcv.Err = err
	case StatusNone, StatusNeutral, StatusPass, StatusFail, StatusSoftfail:
	default:
		// Never expected; do not let an unknown value reach a header.
		rcv.Result = StatusPermerror
		rcv.Err = fmt.Errorf("unexpected SPF result %q: %v", res, err)
	}
	rcv.Explanation = explain(rcv)
	return rcv
}

// explain returns the sentence for the Received-SPF comment (wording in the
// style of the examples in RFC 7208 §9.1).
func explain(rcv Received) string {
	who := rcv.Domain
	if rcv.MailFrom != "" {
		who = rcv.MailFrom
	}
	who = quoteForText(who)
	ip := rcv.RemoteIP.String()
	switch rcv.Result {
	case StatusPass:
		return fmt.Sprintf("domain of %s designates %s as permitted sender", who, ip)
	case StatusFail:
		return fmt.Sprintf("domain of %s does not designate %s as permitted sender", who, ip)
	case StatusSoftfail:
		return fmt.Sprintf("domain of transitioning %s does not designate %s as permitted sender", who, ip)
	case StatusNeutral:
		return fmt.Sprintf("%s is neither permitted nor denied by domain of %s", ip, who)
	case StatusNone:
		return fmt.Sprintf("domain of %s does not publish an SPF record", who)
	case StatusTemperror:
		return fmt.Sprintf("temporary error evaluating SPF of %s", who)
	default:
		return fmt.Sprintf("permanent error in SPF record of %s", who)
	}
}

// normalizeDomain lower-cases an ASCII domain and removes a trailing dot.
func normalizeDomain(d string) string {
	return strings.TrimSuffix(strings.ToLower(d), ".")
}

// validDomain reports whether d is a syntactically valid multi-label domain
// name as RFC 7208 §4.3 requires before any lookup: at most 253 octets,
// labels of 1 to 63 octets of letters, digits, "-" and "_".
func validDomain(d string) bool {
	if len(d) == 0 || len(d) > 253 {
		return false
	}
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if len(l) == 0 || len(l) > 63 {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// quoteForText makes s safe for log and comment text: control characters
// and invalid UTF-8 become "?".
func quoteForText(s string) string {
	s = strings.ToValidUTF8(s, "?")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// adapter presents a dns.Resolver as blitiri's DNSResolver and records
// whether every answer was authentic. blitiri evaluates sequentially, so no
// locking is needed.
type adapter struct {
	r         dns.Resolver
	lookups   int
	authentic bool
}

var _ blitiri.DNSResolver = (*adapter)(nil)

func (a *adapter) note(res dns.Result) {
	if a.lookups == 0 {
		a.authentic = true
	}
	a.lookups++
	a.authentic = a.authentic && res.Authentic
}

func (a *adapter) LookupTXT(ctx context.Context, name string) ([]string, error) {
	txts, res, err := a.r.LookupTXT(ctx, name)
	a.note(res)
	return txts, dnsError(name, err)
}

func (a *adapter) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	mxs, res, err := a.r.LookupMX(ctx, name)
	a.note(res)
	return mxs, dnsError(name, err)
}

// LookupIPAddr asks for both A and AAAA like net.Resolver does, which is
// what blitiri expects: "exists" needs A records even for an IPv6 client
// (RFC 7208 §5.7), and "a"/"mx" compare only addresses of the client's
// family (RFC 7208 §5.3, §5.4).
func (a *adapter) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	ips, res, err := a.r.LookupIP(ctx, "ip", host)
	a.note(res)
	addrs := make([]net.IPAddr, 0, len(ips))
	for _, ip := range ips {
		addrs = append(addrs, net.IPAddr{IP: ip})
	}
	return addrs, dnsError(host, err)
}

func (a *adapter) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	names, res, err := a.r.LookupAddr(ctx, addr)
	a.note(res)
	return names, dnsError(addr, err)
}

// dnsError returns err as a bare *net.DNSError: blitiri classifies errors
// with a type assertion, not errors.As. An error of another type (a
// canceled context, say) is reported as temporary, so it never turns into
// a permanent result.
func dnsError(name string, err error) error {
	if err == nil {
		return nil
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		return de
	}
	return &net.DNSError{Err: err.Error(), Name: name, IsTemporary: true}
}
