// Package dns is moxd's DNS resolver: a DNSSEC-aware stub resolver on
// github.com/miekg/dns with an in-process cache, used by moxd-smtp (SPF,
// DKIM, DMARC, iprev) and moxd-queue (MX, TLSA, MTA-STS).
//
// Every answer says whether it was authentic: the upstream resolver set the
// AD bit (RFC 4035 §3.2.3) and moxd trusts that resolver to validate, which
// it does only for a resolver on a loopback address or when resolv.conf
// says "options trust-ad" (the same rule as glibc, RFC 6840 §5.7).
//
// Errors are *net.DNSError, so code written for net.Resolver (and libraries
// such as blitiri.com.ar/go/spf and go-msgauth) classifies them unchanged:
// IsNotFound for NXDOMAIN and for a name without records of the type
// (NODATA), IsTemporary for SERVFAIL, timeouts and network errors.
//
// The machine's own resolver is never used implicitly: a Resolver is built
// from an explicit server list (master passes what it read from
// resolv.conf), and Offline answers "not found" for everything without any
// network traffic (localserve).
package dns

import (
	"context"
	"net"
)

// Result describes how an answer was obtained.
type Result struct {
	// Authentic is true when the answer was DNSSEC-validated by a resolver
	// moxd trusts (see the package comment). Negative answers can be
	// authentic too (authenticated denial of existence).
	Authentic bool
}

// TLSA is one TLSA record (RFC 6698 §2.1).
type TLSA struct {
	Usage        uint8
	Selector     uint8
	MatchingType uint8
	CertData     []byte
}

// Resolver is what moxd's protocol code needs from DNS. Names may be given
// with or without a trailing dot. Implementations are safe for concurrent
// use and honour ctx.
type Resolver interface {
	// LookupTXT returns the TXT records of name, each record's strings
	// concatenated (RFC 7208 §3.3, RFC 6376 §3.6.2.2).
	LookupTXT(ctx context.Context, name string) ([]string, Result, error)
	// LookupMX returns the MX records of name sorted by preference, hosts
	// without trailing dot; a null MX (RFC 7505 "0 .") has Host "."
	// (NullMX).
	LookupMX(ctx context.Context, name string) ([]*net.MX, Result, error)
	// LookupIP returns the addresses of host; network is "ip", "ip4" or
	// "ip6". For "ip" both A and AAAA are asked; the answer is authentic
	// only when both were, and not found only when both were.
	LookupIP(ctx context.Context, network, host string) ([]net.IP, Result, error)
	// LookupAddr returns the PTR names of an IP address (reverse lookup),
	// each with a trailing dot removed.
	LookupAddr(ctx context.Context, addr string) ([]string, Result, error)
	// LookupCNAME returns the last target of the CNAME chain at host, or
	// host itself (without trailing dot) when it has none. The chain is
	// the one in the answer to an A query; a missing A record at the end
	// is no error, a name that does not exist is.
	LookupCNAME(ctx context.Context, host string) (string, Result, error)
	// LookupTLSA returns the TLSA records at _port._protocol.host (RFC 6698
	// §3).
	LookupTLSA(ctx context.Context, port int, protocol, host string) ([]TLSA, Result, error)
}
