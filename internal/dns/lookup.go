package dns

import (
	"cmp"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	mdns "github.com/miekg/dns"
)

// The Resolver methods of Client: each checks its arguments, looks up one
// or two questions and converts the records to the types callers use.
// Returned slices are fresh copies; cached answers are never handed out.

// NullMX is the Host of a null MX record (RFC 7505 "MX 0 ."), which says
// the domain accepts no mail. LookupMX returns it as is; every other host
// loses its trailing dot.
const NullMX = "."

// normalize checks name and returns its question form (lower-case fqdn,
// also the cache key) and its display form (without trailing dot, as
// given), used in errors.
func normalize(name string) (fqdn, display string, err error) {
	display = strings.TrimSuffix(name, ".")
	switch {
	case display == "":
		return "", name, errInvalid(name, "invalid domain name: empty")
	case len(display) > 253: // RFC 1035 §2.3.4, in presentation form
		return "", display, errInvalid(display, "invalid domain name: longer than 253 characters")
	}
	for label := range strings.SplitSeq(display, ".") {
		if label == "" {
			return "", display, errInvalid(display, "invalid domain name: empty label")
		}
		if len(label) > 63 {
			return "", display, errInvalid(display, "invalid domain name: label longer than 63 characters")
		}
	}
	for i := 0; i < len(display); i++ {
		// Names are ASCII: callers convert IDNA to A-labels. A backslash
		// would be taken as an escape by miekg.
		if b := display[i]; b <= ' ' || b >= 0x7f || b == '\\' {
			return "", display, errInvalid(display, fmt.Sprintf("invalid domain name: character %q (names must be ASCII, IDNA in A-label form)", b))
		}
	}
	return strings.ToLower(display) + ".", display, nil
}

// resolve looks up name and qtype. A negative answer is returned together
// with its not-found error, so callers can report whether the denial was
// authentic.
func (c *Client) resolve(ctx context.Context, name string, qtype uint16) (*answer, error) {
	fqdn, display, err := normalize(name)
	if err != nil {
		return nil, err
	}
	a, err := c.lookup(ctx, cacheKey{fqdn, qtype}, display)
	if err != nil {
		return nil, err
	}
	if a.kind != positive {
		return a, errNotFound(display, a.server, qtype, a.kind == nxdomain)
	}
	return a, nil
}

func result(a *answer) Result {
	if a == nil {
		return Result{}
	}
	return Result{Authentic: a.authentic}
}

// LookupTXT implements Resolver.
func (c *Client) LookupTXT(ctx context.Context, name string) ([]string, Result, error) {
	a, err := c.resolve(ctx, name, mdns.TypeTXT)
	if err != nil {
		return nil, result(a), err
	}
	var l []string
	for _, rr := range a.rrs {
		var b strings.Builder
		for _, s := range rr.(*mdns.TXT).Txt {
			b.WriteString(unescapeString(s))
		}
		l = append(l, b.String())
	}
	return l, result(a), nil
}

// unescapeString undoes miekg's presentation form of a character-string
// (RFC 1035 §5.1): "\DDD" is the byte with decimal value DDD, "\X" is X.
// miekg escapes '"', '\' and bytes outside printable ASCII when it unpacks
// a TXT record.
func unescapeString(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b = append(b, s[i])
			continue
		}
		if i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 10, 8); err == nil {
				b = append(b, byte(n))
				i += 3
				continue
			}
		}
		b = append(b, s[i+1])
		i++
	}
	return string(b)
}

// LookupMX implements Resolver. Records are sorted by preference, keeping
// the server's order among equal preferences; a null MX has Host NullMX.
func (c *Client) LookupMX(ctx context.Context, name string) ([]*net.MX, Result, error) {
	a, err := c.resolve(ctx, name, mdns.TypeMX)
	if err != nil {
		return nil, result(a), err
	}
	var l []*net.MX
	for _, rr := range a.rrs {
		mx := rr.(*mdns.MX)
		host := mx.Mx
		if host != NullMX {
			host = strings.TrimSuffix(host, ".")
		}
		l = append(l, &net.MX{Host: host, Pref: mx.Preference})
	}
	// RFC 5321 §5.1: lower preference first; equal ones are left in the
	// server's (randomized) order.
	slices.SortStableFunc(l, func(x, y *net.MX) int { return cmp.Compare(x.Pref, y.Pref) })
	return l, result(a), nil
}

// LookupIP implements Resolver. For "ip", A and AAAA are asked at the same
// time; when one of them fails temporarily and the other has addresses,
// those addresses are returned, not authentic.
func (c *Client) LookupIP(ctx context.Context, network, host string) ([]net.IP, Result, error) {
	switch network {
	case "ip4":
		return c.lookupIP(ctx, host, mdns.TypeA)
	case "ip6":
		return c.lookupIP(ctx, host, mdns.TypeAAAA)
	case "ip":
	default:
		return nil, Result{}, errInvalid(host, fmt.Sprintf("unsupported network %q, want ip, ip4 or ip6", network))
	}
	type ipResult struct {
		ips []net.IP
		r   Result
		err error
	}
	ch := make(chan ipResult, 1)
	go func() {
		ips, r, err := c.lookupIP(ctx, host, mdns.TypeAAAA)
		ch <- ipResult{ips, r, err}
	}()
	ips4, r4, err4 := c.lookupIP(ctx, host, mdns.TypeA)
	v6 := <-ch
	ips6, r6, err6 := v6.ips, v6.r, v6.err

	// A temporary error gives a zero Result, so the combined answer is
	// then not authentic.
	both := Result{Authentic: r4.Authentic && r6.Authentic}
	switch {
	case err4 == nil && err6 == nil:
		return append(ips4, ips6...), both, nil
	case err4 == nil:
		return ips4, both, nil
	case err6 == nil:
		return ips6, both, nil
	case isTemporary(err4):
		return nil, Result{}, err4
	case isTemporary(err6):
		return nil, Result{}, err6
	}
	return nil, both, err4 // not found (or invalid) for both
}

func (c *Client) lookupIP(ctx context.Context, host string, qtype uint16) ([]net.IP, Result, error) {
	a, err := c.resolve(ctx, host, qtype)
	if err != nil {
		return nil, result(a), err
	}
	var l []net.IP
	for _, rr := range a.rrs {
		switch rr := rr.(type) {
		case *mdns.A:
			l = append(l, slices.Clone(rr.A))
		case *mdns.AAAA:
			l = append(l, slices.Clone(rr.AAAA))
		}
	}
	return l, result(a), nil
}

// LookupAddr implements Resolver.
func (c *Client) LookupAddr(ctx context.Context, addr string) ([]string, Result, error) {
	name, err := reverseName(addr)
	if err != nil {
		return nil, Result{}, errInvalid(addr, "unrecognized IP address")
	}
	a, err := c.resolve(ctx, name, mdns.TypePTR)
	if err != nil {
		return nil, result(a), err
	}
	var l []string
	for _, rr := range a.rrs {
		l = append(l, strings.TrimSuffix(rr.(*mdns.PTR).Ptr, "."))
	}
	return l, result(a), nil
}

// reverseName returns the in-addr.arpa (RFC 1035 §3.5) or ip6.arpa (RFC
// 3596 §2.5) name of an IP address. An IPv4-mapped IPv6 address is
// treated as IPv4; a zone is ignored.
func reverseName(addr string) (string, error) {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return "", err
	}
	ip = ip.WithZone("").Unmap()
	if ip.Is4() {
		b := ip.As4()
		return fmt.Sprintf("%d.%d.%d.%d.in-addr.arpa.", b[3], b[2], b[1], b[0]), nil
	}
	const digits = "0123456789abcdef"
	b := ip.As16()
	var sb strings.Builder
	for i := len(b) - 1; i >= 0; i-- {
		sb.WriteByte(digits[b[i]&0xf])
		sb.WriteByte('.')
		sb.WriteByte(digits[b[i]>>4])
		sb.WriteByte('.')
	}
	sb.WriteString("ip6.arpa.")
	return sb.String(), nil
}

// LookupCNAME implements Resolver. It asks for the A records of host and
// returns the last name of the CNAME chain in the answer, also when that
// name has no A records; a chain ending in a name that does not exist is
// a not-found error.
func (c *Client) LookupCNAME(ctx context.Context, host string) (string, Result, error) {
	a, err := c.resolve(ctx, host, mdns.TypeA)
	if err != nil && (a == nil || a.kind != nodata) {
		return "", result(a), err
	}
	if a.chain == 0 {
		return strings.TrimSuffix(host, "."), result(a), nil
	}
	return strings.TrimSuffix(a.final, "."), result(a), nil
}

// LookupTLSA implements Resolver.
func (c *Client) LookupTLSA(ctx context.Context, port int, protocol, host string) ([]TLSA, Result, error) {
	name := fmt.Sprintf("_%d._%s.%s", port, protocol, host)
	if port < 0 || port > 65535 {
		return nil, Result{}, errInvalid(name, fmt.Sprintf("invalid port %d", port))
	}
	if protocol == "" || strings.Contains(protocol, ".") {
		return nil, Result{}, errInvalid(name, fmt.Sprintf("invalid protocol %q", protocol))
	}
	a, err := c.resolve(ctx, name, mdns.TypeTLSA)
	if err != nil {
		return nil, result(a), err
	}
	var l []TLSA
	for _, rr := range a.rrs {
		t := rr.(*mdns.TLSA)
		data, err := hex.DecodeString(t.Certificate)
		if err != nil {
			continue // miekg always produces hex; be safe anyway
		}
		l = append(l, TLSA{Usage: t.Usage, Selector: t.Selector, MatchingType: t.MatchingType, CertData: data})
	}
	return l, result(a), nil
}
