package dns

import (
	"context"
	"sync"
)

// Identical lookups running at the same time share one query: a flight.
// (golang.org/x/sync/singleflight is not a dependency, and a flight here
// also needs its own context, see below.)
//
// The query runs on a context detached from the callers' contexts, so a
// caller that gives up does not fail the others; when the last waiting
// caller has given up the flight's context is canceled and the flight is
// forgotten, so a later lookup starts afresh.

// flight is one query in progress.
type flight struct {
	done   chan struct{} // closed when a and err are set
	a      *answer
	err    error
	cancel context.CancelFunc

	waiters int // callers waiting; guarded by flights.mu
}

// flights are the queries in progress of one Client.
type flights struct {
	mu sync.Mutex
	m  map[cacheKey]*flight
}

// lookup answers question k, from the cache, by joining a flight or by
// querying. display is the name as the caller gave it, for errors.
func (c *Client) lookup(ctx context.Context, k cacheKey, display string) (*answer, error) {
	c.stats.lookups.Add(1)
	if err := ctx.Err(); err != nil {
		return nil, errContext(display, c.servers[0].addr, err)
	}
	if c.cache != nil {
		if a, ok := c.cache.get(k, c.now()); ok {
			c.stats.cacheHits.Add(1)
			return a, nil
		}
	}

	fs := &c.flights
	fs.mu.Lock()
	f := fs.m[k]
	if f != nil {
		c.stats.coalesced.Add(1)
	} else {
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight{done: make(chan struct{}), cancel: cancel}
		if fs.m == nil {
			fs.m = map[cacheKey]*flight{}
		}
		fs.m[k] = f
		go c.fly(fctx, f, k, display)
	}
	f.waiters++
	fs.mu.Unlock()

	select {
	case <-f.done:
		return f.a, f.err
	case <-ctx.Done():
		fs.mu.Lock()
		f.waiters--
		if f.waiters == 0 {
			f.cancel()
			if fs.m[k] == f {
				delete(fs.m, k)
			}
		}
		fs.mu.Unlock()
		return nil, errContext(display, c.servers[0].addr, ctx.Err())
	}
}

// fly runs the query of flight f and publishes its result.
func (c *Client) fly(ctx context.Context, f *flight, k cacheKey, display string) {
	defer f.cancel()
	a, err := c.query(ctx, k.name, display, k.qtype)
	if err != nil {
		c.stats.failures.Add(1)
	} else if c.cache != nil {
		c.cache.put(k, a, c.now())
	}
	f.a, f.err = a, err
	c.flights.mu.Lock()
	if c.flights.m[k] == f {
		delete(c.flights.m, k)
	}
	c.flights.mu.Unlock()
	close(f.done)
}
