package connlimit

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestLimiterConcurrency(t *testing.T) {
	l := New(nil, [3]int{}, [3]int{2, 3, 0}, nil)
	a := netip.MustParseAddr("192.0.2.1")
	b := netip.MustParseAddr("192.0.2.2")
	c := netip.MustParseAddr("192.0.2.3")
	r1, err1 := l.Acquire(a)
	_, err2 := l.Acquire(a)
	if err1 != nil || err2 != nil {
		t.Fatalf("first two: %v %v", err1, err2)
	}
	if _, err := l.Acquire(a); err == nil || !strings.Contains(err.Error(), "192.0.2.1/32") || !strings.Contains(err.Error(), "concurrent_connections") {
		t.Fatalf("third from /32: %v, want the /32 limit named", err)
	}
	// The /26 allows 3: b gets in, c does not.
	if _, err := l.Acquire(b); err != nil {
		t.Fatalf("b: %v", err)
	}
	if _, err := l.Acquire(c); err == nil || !strings.Contains(err.Error(), "192.0.2.0/26") {
		t.Fatalf("c: %v, want the /26 limit", err)
	}
	r1()
	r1() // a second release changes nothing
	if _, err := l.Acquire(c); err != nil {
		t.Fatalf("c after a release: %v", err)
	}
	if _, err := l.Acquire(c); err == nil {
		t.Fatalf("double release let one more in")
	}
}

func TestLimiterRate(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	l := New(nil, [3]int{3, 0, 0}, [3]int{}, func() time.Time { return now })
	ip := netip.MustParseAddr("2001:db8::1")
	for i := range 3 {
		if _, err := l.Acquire(ip); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	if _, err := l.Acquire(ip); err == nil || !strings.Contains(err.Error(), "2001:db8::/64") || !strings.Contains(err.Error(), "connections_per_minute") {
		t.Fatalf("fourth: %v, want the /64 rate limit", err)
	}
	// Another /64 is not affected.
	if _, err := l.Acquire(netip.MustParseAddr("2001:db8:0:1::1")); err != nil {
		t.Fatalf("other /64: %v", err)
	}
	// 20 s later one token is back.
	now = now.Add(20 * time.Second)
	if _, err := l.Acquire(ip); err != nil {
		t.Fatalf("after 20s: %v", err)
	}
	if _, err := l.Acquire(ip); err == nil {
		t.Fatalf("second after 20s allowed")
	}
}

func TestLimiterTrustedAndSweep(t *testing.T) {
	now := time.Now()
	trusted, err := ParseTrusted([]string{"127.0.0.0/8", "::1/128"})
	if err != nil {
		t.Fatal(err)
	}
	l := New(trusted, [3]int{1, 1, 1}, [3]int{1, 1, 1}, func() time.Time { return now })
	for range 10 {
		if _, err := l.Acquire(netip.MustParseAddr("127.0.0.1")); err != nil {
			t.Fatalf("trusted network limited: %v", err)
		}
		if _, err := l.Acquire(netip.MustParseAddr("::ffff:127.0.0.2")); err != nil {
			t.Fatalf("mapped trusted address limited: %v", err)
		}
	}
	rel, err := l.Acquire(netip.MustParseAddr("198.51.100.7"))
	if err != nil {
		t.Fatal(err)
	}
	if l.Size() != 3 {
		t.Fatalf("%d entries, want 3", l.Size())
	}
	rel()
	l.Sweep()
	if l.Size() != 3 {
		t.Fatalf("swept entries whose bucket is not full yet")
	}
	now = now.Add(2 * time.Minute)
	l.Sweep()
	if l.Size() != 0 {
		t.Fatalf("%d entries after sweep, want 0", l.Size())
	}
}
