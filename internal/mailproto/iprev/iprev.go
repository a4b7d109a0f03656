// Package iprev checks that a client's IP address and its reverse DNS
// names agree: the "iprev" authentication method of RFC 8601 §3, with the
// results of RFC 8601 §2.7.3. moxd-smtp runs it for each connection on
// port 25; the result goes into Authentication-Results (package authres)
// and the Received header.
//
// Pure protocol code: no IPC, no configuration; DNS only through the
// dns.Resolver it is given.
package iprev

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"

	"moxd/internal/dns"
)

// Status is an iprev result (RFC 8601 §2.7.3).
type Status string

// The iprev results.
const (
	StatusPass      Status = "pass"
	StatusFail      Status = "fail"
	StatusTemperror Status = "temperror"
	StatusPermerror Status = "permerror"
)

// MaxNames is how many PTR names are checked with forward lookups. RFC
// 8601 §3: "the number of names evaluated by generation of corresponding
// A or AAAA queries is limited so as not to be unduly taxing to the DNS
// infrastructure"; it cites SPF's limit of 10 (RFC 7208 §4.6.4) as an
// example, which is what moxd uses.
const MaxNames = 10

// Result is the outcome of an iprev check.
type Result struct {
	Status Status
	// Name is the first PTR name that resolves back to the address, or,
	// without one, the first PTR name.
	Name string
	// Names are the PTR names of the address (at most MaxNames), without
	// trailing dot.
	Names []string
	// Authentic is true when the PTR lookup and the forward lookups that
	// decided the result were DNSSEC-authentic: for pass, the one that
	// matched; otherwise all of them.
	Authentic bool
	// Err is the cause of a temperror or permerror, for logs.
	Err error
}

// Check runs the iprev test for ip (RFC 8601 §3): the PTR names of ip are
// looked up, then the addresses of each name (A for IPv4, AAAA for IPv6);
// the test passes when one of them is ip.
func Check(ctx context.Context, r dns.Resolver, ip netip.Addr) Result {
	ip = ip.WithZone("").Unmap()
	if !ip.IsValid() {
		return Result{Status: StatusPermerror, Err: errors.New("no valid IP address")}
	}
	names, res, err := r.LookupAddr(ctx, ip.String())
	if err != nil {
		if isNotFound(err) {
			// RFC 8601 §2.7.3 permerror: "The DNS evaluation could not be
			// completed because no PTR data are available for this IP
			// address" (NXDOMAIN, or NOERROR without answers).
			return Result{Status: StatusPermerror, Authentic: res.Authentic, Err: fmt.Errorf("no PTR records for %s: %w", ip, err)}
		}
		// RFC 8601 §2.7.3 temperror: a transient error such as SERVFAIL.
		return Result{Status: StatusTemperror, Err: fmt.Errorf("PTR lookup for %s: %w", ip, err)}
	}
	ptrAuthentic := res.Authentic

	var clean []string
	seen := map[string]bool{}
	for _, n := range names {
		n = strings.TrimSuffix(strings.ToLower(n), ".")
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		clean = append(clean, n)
		if len(clean) == MaxNames {
			break
		}
	}
	if len(clean) == 0 {
		return Result{Status: StatusPermerror, Authentic: ptrAuthentic, Err: fmt.Errorf("no PTR names for %s", ip)}
	}

	network := "ip4"
	if ip.Is6() {
		network = "ip6"
	}
	// The forward lookups run concurrently, so a slow name does not delay
	// the others; results are evaluated in PTR order.
	type forward struct {
		ips       []net.IP
		authentic bool
		err       error
	}
	fwd := make([]forward, len(clean))
	var wg sync.WaitGroup
	for i, n := range clean {
		wg.Go(func() {
			ips, res, err := r.LookupIP(ctx, network, n)
			fwd[i] = forward{ips, res.Authentic, err}
		})
	}
	wg.Wait()

	result := Result{Name: clean[0], Names: clean}
	authentic := ptrAuthentic
	var temp error
	for i, f := range fwd {
		authentic = authentic && f.authentic
		if f.err != nil {
			if !isNotFound(f.err) && temp == nil {
				temp = fmt.Errorf("address lookup for %s: %w", clean[i], f.err)
			}
			continue
		}
		for _, fip := range f.ips {
			if a, ok := netip.AddrFromSlice(fip); ok && a.Unmap() == ip {
				result.Status = StatusPass
				result.Name = clean[i]
				result.Authentic = ptrAuthentic && f.authentic
				return result
			}
		}
	}
	result.Authentic = authentic
	if temp != nil {
		// No match, but a lookup that failed transiently might have
		// matched: a later attempt may produce a final result.
		result.Status, result.Err = StatusTemperror, temp
		return result
	}
	// RFC 8601 §2.7.3 fail: the lookups produced results that do not
	// agree, or the forward lookups produced none.
	result.Status = StatusFail
	return result
}

func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}
