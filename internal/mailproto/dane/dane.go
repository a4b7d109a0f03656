// Package dane implements DANE for SMTP (RFC 7672): finding the TLSA
// records of an MX host (RFC 6698, with the updates of RFC 7671) and
// checking a server's certificate chain against them. moxd-queue uses it
// when it delivers to a domain whose MX records are DNSSEC-signed: with
// usable TLSA records STARTTLS is mandatory and the server must present a
// certificate the records match; a failed TLSA lookup defers delivery.
//
// Pure protocol code: no IPC, no configuration; DNS only through the
// dns.Resolver it is given, the time only through the clock it is given.
// It is written here because the Go DANE libraries either do their own DNS
// (bypassing moxd's resolver and its authenticity rules) or implement the
// PKIX usages SMTP must ignore (RFC 7672 §3.1.3).
package dane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"moxd/internal/dns"
)

// The TLSA parameters (RFC 6698 §2.1, IANA "DANE" registries).
const (
	UsagePKIXTA uint8 = 0 // unusable in SMTP, RFC 7672 §3.1.3
	UsagePKIXEE uint8 = 1 // unusable in SMTP, RFC 7672 §3.1.3
	UsageDANETA uint8 = 2
	UsageDANEEE uint8 = 3

	SelectorCert uint8 = 0 // the full certificate, DER
	SelectorSPKI uint8 = 1 // the SubjectPublicKeyInfo, DER

	MatchFull   uint8 = 0
	MatchSHA256 uint8 = 1
	MatchSHA512 uint8 = 2
)

// Result is what Lookup found for one MX host.
type Result struct {
	// Records are the usable TLSA records (see Usable); empty when DANE
	// does not apply or every record was unusable.
	Records []dns.TLSA
	// Base is the TLSA base domain (RFC 7672 §2.2.3): the name whose
	// _port._tcp TLSA records were used, lower case without trailing dot.
	// It is the host itself unless a secure CNAME was followed. It is a
	// reference identifier for DANE-TA (RFC 7672 §3.2.2) and the name to
	// send in SNI (RFC 7672 §8.1).
	Base string
	// Secure is true when the TLSA answer that decided the result, records
	// or their denial, was DNSSEC-authentic. Without Secure, DANE does
	// not apply to this host.
	Secure bool
	// AllUnusable is true when authentic TLSA records exist but none is
	// usable. RFC 7672 §2.2: TLS is then mandatory, but the certificate
	// is not authenticated.
	AllUnusable bool
}

// Lookup finds the TLSA records for the MX host host, port usually 25
// (RFC 7672 §2.2). mxSecure says whether the MX records (and any CNAME
// leading to them) that named host were authentic; for a domain without MX
// records, used as its own host (RFC 5321 §5.1), pass true. DANE applies
// only when that lookup and the host's address records were authentic
// (RFC 7672 §2.2.1, §2.2.2); otherwise Lookup returns a Result without
// Secure and no error, without looking up TLSA records.
//
// When the host name is a CNAME and its expansion is authentic, the TLSA
// records at the expanded name are tried first, then those at host
// (RFC 7672 §2.2.3).
//
// An error means the answer cannot be trusted either way: a temporary DNS
// failure (SERVFAIL, which is also how a validating resolver reports a
// bogus answer, or a timeout) or a host without addresses. RFC 7672 §2.2:
// the client must then not deliver to this host; it must not fall back to
// delivery without DANE either.
func Lookup(ctx context.Context, r dns.Resolver, host string, port int, mxSecure bool) (Result, error) {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "" {
		return Result{}, errors.New("dane: empty host name")
	}
	if port <= 0 || port > 65535 {
		return Result{}, fmt.Errorf("dane: invalid port %d", port)
	}
	none := Result{Base: host}
	if !mxSecure {
		return none, nil // RFC 7672 §2.2.1: insecure MX RRset, no DANE.
	}

	// RFC 7672 §2.2.2: TLSA records are looked up only for a host whose
	// address records are secure.
	_, res, err := r.LookupIP(ctx, "ip", host)
	if err != nil {
		return Result{}, fmt.Errorf("dane: address lookup for %s: %w", host, err)
	}
	if !res.Authentic {
		return none, nil
	}

	// RFC 7672 §2.2.3: with a secure CNAME chain, the fully expanded name
	// is the first candidate TLSA base domain, the original name the
	// second.
	candidates := []string{host}
	target, res, err := r.LookupCNAME(ctx, host)
	switch {
	case err != nil && !isNotFound(err):
		return Result{}, fmt.Errorf("dane: CNAME lookup for %s: %w", host, err)
	case err == nil && res.Authentic:
		target = strings.ToLower(strings.TrimSuffix(target, "."))
		if target != "" && target != host {
			candidates = []string{target, host}
		}
	}

	for i, base := range candidates {
		last := i == len(candidates)-1
		records, res, err := r.LookupTLSA(ctx, port, "tcp", base)
		name := fmt.Sprintf("_%d._tcp.%s", port, base)
		switch {
		case err != nil && !isNotFound(err):
			// RFC 7672 §2.2: a TLSA lookup that fails (other than by a
			// denial) means no delivery to this host, not delivery
			// without DANE.
			return Result{}, fmt.Errorf("dane: TLSA lookup for %s: %w", name, err)
		case !res.Authentic:
			// Insecure records or an insecure denial: no DANE at this
			// name. RFC 7672 §2.2.3: an expanded name without secure
			// TLSA records gives way to the original name.
			if last {
				return Result{Base: base}, nil
			}
		case err != nil:
			// Authentic denial of existence.
			if last {
				return Result{Base: base, Secure: true}, nil
			}
		default:
			out := Result{Base: base, Secure: true}
			for _, rec := range records {
				if Usable(rec) {
					out.Records = append(out.Records, rec)
				}
			}
			out.AllUnusable = len(out.Records) == 0
			return out, nil
		}
	}
	return none, nil // not reached: the last candidate always returns
}

// Usable reports whether an SMTP client can use rec (RFC 7672 §3.1): usage
// DANE-TA(2) or DANE-EE(3), a known selector and matching type, and
// certificate data of the length the matching type implies (RFC 7671 §4:
// malformed records are unusable).
func Usable(rec dns.TLSA) bool {
	if rec.Usage != UsageDANETA && rec.Usage != UsageDANEEE {
		return false
	}
	if rec.Selector != SelectorCert && rec.Selector != SelectorSPKI {
		return false
	}
	switch rec.MatchingType {
	case MatchFull:
		return len(rec.CertData) > 0
	case MatchSHA256:
		return len(rec.CertData) == 32
	case MatchSHA512:
		return len(rec.CertData) == 64
	}
	return false
}

func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}
