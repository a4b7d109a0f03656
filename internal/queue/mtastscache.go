package queue

// The MTA-STS policy cache (RFC 8461 §5.1). A policy is looked up when a
// domain is delivered to: the _mta-sts TXT record is read each time
// (cached by the resolver), and the policy is fetched again when the
// record's id changed or the cached policy is past max_age. Policies are
// kept in queue.db, so a restart does not forget them: a cached policy
// stays in force until it expires even when the record disappears or the
// fetch fails, which is what protects against an attacker who blocks the
// fetch.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"moxd/internal/dns"
	"moxd/internal/mailproto/mtasts"
)

type cachedPolicy struct {
	id      string
	fetched time.Time
	policy  *mtasts.Policy
}

type mtastsCache struct {
	q   *Queue
	now func() time.Time

	mu  sync.Mutex
	mem map[string]*cachedPolicy
}

func newMTASTSCache(q *Queue, now func() time.Time) *mtastsCache {
	return &mtastsCache{q: q, now: now, mem: map[string]*cachedPolicy{}}
}

// get returns the policy of domain (nil for none). strict is true when
// the domain announces a policy that could not be fetched and none is
// cached: the caller then demands verified TLS, the strictest a policy
// could ask for.
func (c *mtastsCache) get(ctx context.Context, domain string, r dns.Resolver, client *http.Client) (*mtasts.Policy, bool, error) {
	now := c.now()
	cp := c.load(domain)
	valid := cp != nil && now.Sub(cp.fetched) < cp.policy.MaxAge
	rec, err := mtasts.LookupRecord(ctx, r, domain)
	switch {
	case errors.Is(err, mtasts.ErrNoRecord):
		if valid {
			return cp.policy, false, nil
		}
		return nil, false, nil
	case err != nil:
		if valid {
			return cp.policy, false, nil
		}
		return nil, false, nil
	}
	if valid && cp.id == rec.ID {
		return cp.policy, false, nil
	}
	p, err := mtasts.Fetch(ctx, client, domain)
	if err != nil {
		if valid {
			return cp.policy, false, nil
		}
		return nil, true, fmt.Errorf("fetch MTA-STS policy of %s: %w", domain, err)
	}
	c.store(domain, &cachedPolicy{id: rec.ID, fetched: now, policy: p})
	return p, false, nil
}

func (c *mtastsCache) load(domain string) *cachedPolicy {
	c.mu.Lock()
	cp := c.mem[domain]
	c.mu.Unlock()
	if cp != nil {
		return cp
	}
	c.q.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket([]byte(bucketMTASTS)).Get([]byte(domain))
		if v == nil {
			return nil
		}
		d := newReader(v)
		id := d.string()
		fetched := d.time()
		text := d.string()
		if d.done() != nil {
			return nil
		}
		p, err := mtasts.ParsePolicy([]byte(text))
		if err != nil {
			return nil
		}
		cp = &cachedPolicy{id: id, fetched: fetched, policy: p}
		return nil
	})
	if cp != nil {
		c.mu.Lock()
		c.mem[domain] = cp
		c.mu.Unlock()
	}
	return cp
}

func (c *mtastsCache) store(domain string, cp *cachedPolicy) {
	c.mu.Lock()
	c.mem[domain] = cp
	c.mu.Unlock()
	w := newRecord()
	w.string(cp.id)
	w.time(cp.fetched)
	w.string(cp.policy.String())
	v := w.b
	// Losing a cache write in a crash only means fetching again.
	go c.q.do(func(w *wtx) error { return w.tx.Bucket([]byte(bucketMTASTS)).Put([]byte(domain), v) })
}

// policyClient is the HTTP client for MTA-STS fetches: it resolves names
// with moxd's resolver (never the system's) and trusts the system roots
// plus queue.ca_file.
func policyClient(st *settings, r dns.Resolver) *http.Client {
	dialer := &net.Dialer{Timeout: 30 * time.Second}
	tr := &http.Transport{
		DialContext:           resolvingDialer(r, dialer, nil),
		TLSHandshakeTimeout:   30 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		MaxIdleConns:          4,
		IdleConnTimeout:       30 * time.Second,
	}
	if st.roots != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: st.roots, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: time.Minute}
}

// resolvingDialer returns a DialContext for HTTP clients of queue: host
// names are resolved with moxd's resolver (never the system's), and each
// address is passed to allow (nil: all allowed) before it is dialed, so a
// check sees the address really used.
func resolvingDialer(r dns.Resolver, dialer *net.Dialer, allow func(host string, ip netip.Addr) error) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		var ips []netip.Addr
		if ip, err := netip.ParseAddr(host); err == nil {
			ips = []netip.Addr{ip}
		} else {
			l, _, err := r.LookupIP(ctx, "ip", host)
			if err != nil {
				return nil, err
			}
			for _, ip := range l {
				if a, ok := netip.AddrFromSlice(ip); ok {
					ips = append(ips, a.Unmap())
				}
			}
		}
		var last error = fmt.Errorf("no address for %s", host)
		for _, ip := range ips {
			if allow != nil {
				if err := allow(host, ip); err != nil {
					last = err
					continue
				}
			}
			conn, err := dialer.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
			if err == nil {
				return conn, nil
			}
			last = err
		}
		return nil, last
	}
}
