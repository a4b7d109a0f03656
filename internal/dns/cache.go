package dns

import (
	"sync"
	"time"
)

// Cache lifetimes. Answers are kept for the smallest TTL of the records
// used (the CNAME chain included), negative answers as RFC 2308 §5 says;
// temporary failures are not cached.
const (
	maxTTL             = time.Hour        // cap for every answer
	minTTL             = time.Second      // floor, also for TTL 0
	defaultNegativeTTL = 60 * time.Second // negative answer without SOA
)

func clampTTL(d time.Duration) time.Duration {
	return min(max(d, minTTL), maxTTL)
}

// cacheKey is one question: a lower-case fqdn and a type.
type cacheKey struct {
	name  string
	qtype uint16
}

type cacheEntry struct {
	a       *answer
	expires time.Time
}

// cache holds answers by question, at most max of them. When it is full an
// arbitrary entry is evicted (Go's map iteration starts at a random place),
// which is O(1) and good enough for a resolver cache: popular names come
// back on the next lookup.
type cache struct {
	max int

	mu      sync.Mutex
	entries map[cacheKey]cacheEntry
}

func newCache(max int) *cache {
	return &cache{max: max, entries: map[cacheKey]cacheEntry{}}
}

// get returns the unexpired answer for k.
func (c *cache) get(k cacheKey, now time.Time) (*answer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok {
		return nil, false
	}
	if !now.Before(e.expires) {
		delete(c.entries, k)
		return nil, false
	}
	return e.a, true
}

// put stores a for its TTL from now.
func (c *cache) put(k cacheKey, a *answer, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; !ok && len(c.entries) >= c.max {
		for victim := range c.entries {
			delete(c.entries, victim)
			break
		}
	}
	c.entries[k] = cacheEntry{a: a, expires: now.Add(a.ttl)}
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
