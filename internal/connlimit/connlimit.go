// Package connlimit counts connections per IP prefix for the network
// roles (smtp, submission, imap) and refuses those over the [limits] of
// moxd.conf.
package connlimit

import (
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Connection limits per IP prefix. Each connection is
// counted in three prefixes of its address: IPv4 /32, /26 and /21, IPv6
// /64, /48 and /32. Per prefix there is a limit on concurrent connections
// and on new connections per minute (a token bucket that refills evenly).
// Trusted networks are exempt. The table forgets prefixes that have no
// connection and a full bucket, so its size follows the active clients.

// prefixBits are the prefix lengths of the three levels.
var prefixBits = [3][2]int{{32, 64}, {26, 48}, {21, 32}}

// Limiter enforces the per-prefix limits. It is safe for concurrent use.
type Limiter struct {
	trusted    []netip.Prefix
	perMinute  [3]int
	concurrent [3]int
	now        func() time.Time

	mu      sync.Mutex
	entries map[netip.Prefix]*limitEntry
}

type limitEntry struct {
	level  int       // index into the limits: 0, 1, 2
	open   int       // connections now
	tokens float64   // new connections allowed now
	at     time.Time // when tokens was computed
}

// New returns a Limiter; now nil means time.Now.
func New(trusted []netip.Prefix, perMinute, concurrent [3]int, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{trusted: trusted, perMinute: perMinute, concurrent: concurrent, now: now, entries: map[netip.Prefix]*limitEntry{}}
}

// prefixes returns the three prefixes ip is counted in.
func prefixes(ip netip.Addr) [3]netip.Prefix {
	ip = ip.Unmap()
	v := 0
	if ip.Is6() {
		v = 1
	}
	var l [3]netip.Prefix
	for i := range l {
		l[i], _ = ip.Prefix(prefixBits[i][v])
	}
	return l
}

// trustedIP reports whether ip is in a trusted network. Called with mu
// held.
func (l *Limiter) trustedIP(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range l.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// SetLimits changes the limits; connections already counted stay counted.
func (l *Limiter) SetLimits(trusted []netip.Prefix, perMinute, concurrent [3]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.trusted, l.perMinute, l.concurrent = trusted, perMinute, concurrent
}

// Acquire counts a new connection from ip. It returns a release function to
// call when the connection ends, or an error saying which limit was hit.
func (l *Limiter) Acquire(ip netip.Addr) (release func(), err error) {
	if !ip.IsValid() {
		return func() {}, nil
	}
	pfx := prefixes(ip)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.trustedIP(ip) {
		return func() {}, nil
	}
	var es [3]*limitEntry
	for i, p := range pfx {
		e := l.entries[p]
		if e == nil {
			e = &limitEntry{level: i, tokens: float64(l.perMinute[i]), at: now}
			l.entries[p] = e
		}
		if n := l.perMinute[i]; n > 0 {
			e.tokens = min(float64(n), e.tokens+now.Sub(e.at).Minutes()*float64(n))
		}
		e.at = now
		es[i] = e
	}
	for i, e := range es {
		if n := l.concurrent[i]; n > 0 && e.open >= n {
			return nil, fmt.Errorf("too many concurrent connections from %s (limit %d, option concurrent_connections in [limits])", pfx[i], n)
		}
		if n := l.perMinute[i]; n > 0 && e.tokens < 1 {
			return nil, fmt.Errorf("too many new connections from %s (limit %d per minute, option connections_per_minute in [limits])", pfx[i], n)
		}
	}
	for i, e := range es {
		e.open++
		if l.perMinute[i] > 0 {
			e.tokens--
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			for _, e := range es {
				e.open--
			}
		})
	}, nil
}

// Sweep forgets prefixes without connections whose bucket is full again.
func (l *Limiter) Sweep() {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for p, e := range l.entries {
		if e.open > 0 {
			continue
		}
		n := l.perMinute[e.level]
		if n == 0 || e.tokens+now.Sub(e.at).Minutes()*float64(n) >= float64(n) {
			delete(l.entries, p)
		}
	}
}

// Size is the number of prefixes tracked, for status and tests.
func (l *Limiter) Size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

// ParseTrusted parses trusted networks, CIDR prefixes as the config slice
// carries them.
func ParseTrusted(l []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range l {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("trusted network %q: %v", s, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
