package queue

// TLS results of outbound connections, kept for TLS reports (RFC 8460,
// sent by a later part of moxd). Every connection attempt to a recipient
// domain's MX host adds one result: the policy that applied (DANE's TLSA
// records, an MTA-STS policy, or none) and whether TLS succeeded or which
// failure type of RFC 8460 §4.3 occurred. Results are counted in memory
// per (policy domain, UTC day, policy, MX host, result) and written to
// reports.db every few seconds with the DMARC evaluations; losing the
// last seconds of counts in a crash is accepted (DESIGN.md §5).

import (
	"encoding/binary"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bucketTLSRPT holds the counts in reports.db: key policy domain · 0 ·
// day (Unix days, 4) · 0 · policy type · 0 · mx host · 0 · result type →
// successes (8) · failures (8) · a failure detail (rest).
const bucketTLSRPT = "tlsrpt"

// Policy types of RFC 8460 §4.4.
const (
	tlsPolicySTS      = "sts"
	tlsPolicyTLSA     = "tlsa"
	tlsPolicyNoPolicy = "no-policy-found"
)

// Result types of RFC 8460 §4.3 (the ones moxd distinguishes), and
// "success".
const (
	tlsResultSuccess              = "success"
	tlsResultStartTLSNotSupported = "starttls-not-supported"
	tlsResultCertificateMismatch  = "certificate-host-mismatch"
	tlsResultValidationFailure    = "validation-failure"
	tlsResultTLSAInvalid          = "tlsa-invalid"
	tlsResultDNSSECInvalid        = "dnssec-invalid"
	tlsResultSTSPolicyFetch       = "sts-policy-fetch-error"
	tlsResultSTSInvalid           = "sts-policy-invalid"
	tlsResultSTSWebPKIInvalid     = "sts-webpki-invalid"
)

// tlsResultKey identifies one counter.
type tlsResultKey struct {
	domain, policy, host, result string
	day                          uint32
}

type tlsCount struct {
	success, failure uint64
	detail           string
}

// maxTLSKeys bounds the counters kept in memory between flushes.
const maxTLSKeys = 10000

// addTLS counts one connection's TLS result for the recipient domain.
func (r *reports) addTLS(now time.Time, domain, policy, host, result, detail string) {
	k := tlsResultKey{strings.ToLower(domain), policy, strings.ToLower(host), result, uint32(now.Unix() / 86400)}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tls == nil {
		r.tls = map[tlsResultKey]*tlsCount{}
	}
	c := r.tls[k]
	if c == nil {
		if len(r.tls) >= maxTLSKeys {
			r.dropped.Add(1)
			return
		}
		c = &tlsCount{}
		r.tls[k] = c
	}
	if result == tlsResultSuccess {
		c.success++
	} else {
		c.failure++
		if detail != "" {
			c.detail = detail
		}
	}
}

// flushTLS adds the counted results to reports.db in tx.
func flushTLS(tx *bolt.Tx, counts map[tlsResultKey]*tlsCount) error {
	b, err := tx.CreateBucketIfNotExists([]byte(bucketTLSRPT))
	if err != nil {
		return err
	}
	for k, c := range counts {
		key := append([]byte(k.domain), 0)
		key = binary.BigEndian.AppendUint32(key, k.day)
		key = append(append(key, 0), k.policy...)
		key = append(append(key, 0), k.host...)
		key = append(append(key, 0), k.result...)
		var succ, fail uint64
		detail := c.detail
		if v := b.Get(key); len(v) >= 16 {
			succ, fail = binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])
			if detail == "" {
				detail = string(v[16:])
			}
		}
		v := binary.BigEndian.AppendUint64(nil, succ+c.success)
		v = binary.BigEndian.AppendUint64(v, fail+c.failure)
		if len(detail) > 500 {
			detail = detail[:500]
		}
		v = append(v, detail...)
		if err := b.Put(key, v); err != nil {
			return err
		}
	}
	return nil
}

// TLSResult is one stored counter, for reports and tests.
type TLSResult struct {
	Domain, Policy, Host, Result string
	Day                          time.Time
	Success, Failure             uint64
	Detail                       string
}

// tlsResults returns the stored counters of domain.
func (r *reports) tlsResults(domain string) ([]TLSResult, error) {
	var l []TLSResult
	prefix := append([]byte(strings.ToLower(domain)), 0)
	err := r.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketTLSRPT))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && strings.HasPrefix(string(k), string(prefix)); k, v = c.Next() {
			rest := k[len(prefix):]
			if len(rest) < 5 || len(v) < 16 {
				continue
			}
			day := binary.BigEndian.Uint32(rest)
			parts := strings.SplitN(string(rest[5:]), "\x00", 3)
			if len(parts) != 3 {
				continue
			}
			l = append(l, TLSResult{
				Domain: domain, Policy: parts[0], Host: parts[1], Result: parts[2],
				Day:     time.Unix(int64(day)*86400, 0).UTC(),
				Success: binary.BigEndian.Uint64(v), Failure: binary.BigEndian.Uint64(v[8:]), Detail: string(v[16:]),
			})
		}
		return nil
	})
	return l, err
}

// tlsPolicyType is the RFC 8460 policy type of a host policy.
func tlsPolicyType(pol hostPolicy) string {
	switch {
	case pol.mode == tlsDANE || strings.HasPrefix(pol.why, "dane"):
		return tlsPolicyTLSA
	case strings.HasPrefix(pol.why, "mta-sts"):
		return tlsPolicySTS
	}
	return tlsPolicyNoPolicy
}

// tlsResult counts a connection's TLS result for domain.
func (d *deliverer) tlsResult(domain string, pol hostPolicy, host, result, detail string) {
	d.sv.reports.addTLS(d.now(), domain, tlsPolicyType(pol), host, result, detail)
}
