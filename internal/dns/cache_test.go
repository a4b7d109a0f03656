package dns_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"moxd/internal/dns"
	"moxd/internal/dns/dnstest"
)

// clock is a fake clock for cache expiry.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestCache(t *testing.T) {
	srv := dnstest.Start(t, append(slices.Clone(zone),
		"small.test. 20 IN SOA ns.small.test. hostmaster.small.test. 1 3600 600 86400 600",
		"small.test. 300 IN A 192.0.2.30",
		"long.example.test. 86400 IN A 192.0.2.31",
		"zero.example.test. 0 IN A 192.0.2.32",
		"short.example.test. 10 IN CNAME mail.example.test.",
	)...)
	srv.SetAuthentic("mail.example.test")
	srv.SetServFail("servfail.example.test")

	// Each step looks the name up after advancing the clock and says how
	// many queries the server should have seen by then.
	type step struct {
		advance time.Duration
		queries int
	}
	tests := []struct {
		name, qtype string
		steps       []step
	}{
		// Positive: the record's TTL.
		{"example.test", "TXT", []step{{0, 1}, {0, 1}, {299 * time.Second, 1}, {2 * time.Second, 2}, {time.Second, 2}}},
		// Capped at one hour.
		{"long.example.test", "A", []step{{0, 1}, {3599 * time.Second, 1}, {2 * time.Second, 2}}},
		// TTL 0 is cached for a second.
		{"zero.example.test", "A", []step{{0, 1}, {500 * time.Millisecond, 1}, {time.Second, 2}}},
		// The smallest TTL of the chain counts.
		{"short.example.test", "A", []step{{0, 1}, {9 * time.Second, 1}, {2 * time.Second, 2}}},
		// NXDOMAIN and NODATA: SOA MINIMUM (30) below the SOA TTL.
		{"nope.example.test", "A", []step{{0, 1}, {29 * time.Second, 1}, {2 * time.Second, 2}}},
		{"mail.example.test", "TXT", []step{{0, 1}, {29 * time.Second, 1}, {2 * time.Second, 2}}},
		// SOA TTL (20) below its MINIMUM.
		{"nope.small.test", "A", []step{{0, 1}, {19 * time.Second, 1}, {2 * time.Second, 2}}},
		// Temporary failures are not cached.
		{"servfail.example.test", "A", []step{{0, 1}, {0, 2}}},
	}
	for _, tc := range tests {
		clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		c := newClient(t, dns.Config{Now: clk.now, Attempts: 1}, srv)
		before := srv.Queries(tc.name, tc.qtype)
		for i, st := range tc.steps {
			clk.advance(st.advance)
			switch tc.qtype {
			case "TXT":
				c.LookupTXT(context.Background(), tc.name)
			case "A":
				c.LookupIP(context.Background(), "ip4", tc.name)
			}
			if n := srv.Queries(tc.name, tc.qtype) - before; n != st.queries {
				t.Errorf("%s %s step %d: %d queries, want %d", tc.name, tc.qtype, i, n, st.queries)
			}
		}
	}
}

func TestCacheKeyAndFlags(t *testing.T) {
	srv := dnstest.Start(t, zone...)
	srv.SetAuthentic("mail.example.test")
	c := newClient(t, dns.Config{}, srv)
	ctx := context.Background()

	// Case and trailing dot do not matter; the AD flag is kept.
	for i, name := range []string{"mail.example.test", "MAIL.Example.Test.", "mail.example.test."} {
		ips, r, err := c.LookupIP(ctx, "ip4", name)
		if err != nil || len(ips) != 1 || !r.Authentic {
			t.Errorf("lookup %d of %s: %v, authentic %v, %v", i, name, ips, r.Authentic, err)
		}
	}
	if n := srv.Queries("mail.example.test", "A"); n != 1 {
		t.Errorf("%d queries, want 1", n)
	}
	// A negative answer is cached with its flag too.
	for range 2 {
		if _, r, err := c.LookupTXT(ctx, "mail.example.test"); !isNotFound(err) || !r.Authentic {
			t.Errorf("NODATA: %v, authentic %v; want authentic not found", err, r.Authentic)
		}
	}
	st := c.Stats()
	if st.Lookups != 5 || st.CacheHits != 3 || st.Queries != 2 || st.Failures != 0 || st.CacheEntries != 2 {
		t.Errorf("Stats = %+v", st)
	}
	// Cached slices are not shared with callers.
	ips, _, _ := c.LookupIP(ctx, "ip4", "mail.example.test")
	ips[0][0] = 99
	if ips, _, _ = c.LookupIP(ctx, "ip4", "mail.example.test"); ips[0][0] == 99 {
		t.Errorf("changing a returned IP changed the cache")
	}
}

func TestCacheSize(t *testing.T) {
	srv := dnstest.Start(t, zone...)
	ctx := context.Background()
	names := []string{"example.test", "mail.example.test", "escape.example.test"}

	c := newClient(t, dns.Config{CacheSize: 2}, srv)
	for _, name := range names {
		c.LookupTXT(ctx, name)
	}
	if n := c.Stats().CacheEntries; n != 2 {
		t.Errorf("cache of size 2 holds %d entries", n)
	}

	c = newClient(t, dns.Config{CacheSize: -1}, srv)
	before := srv.Queries("example.test", "TXT")
	for range 2 {
		c.LookupTXT(ctx, "example.test")
	}
	if n := srv.Queries("example.test", "TXT") - before; n != 2 || c.Stats().CacheHits != 0 {
		t.Errorf("without cache: %d queries, %d hits; want 2, 0", n, c.Stats().CacheHits)
	}
}
