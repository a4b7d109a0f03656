package queue

// Connection reuse: after a job, an SMTP session that is still usable is
// kept idle for a short time under its destination key, so the next job
// to the same destination skips connecting, EHLO, STARTTLS and AUTH.

import (
	"context"
	"sync"
	"time"

	"moxd/internal/mailproto/smtpclient"
)

const (
	// poolIdle is how long an idle session is kept.
	poolIdle = 5 * time.Second
	// poolMaxIdle bounds idle sessions per destination.
	poolMaxIdle = 16
)

type pooledConn struct {
	c      *smtpclient.Client
	host   string
	policy hostPolicy
	since  time.Time
}

type connPool struct {
	mu   sync.Mutex
	now  func() time.Time
	idle map[string][]*pooledConn
	// reused counts transactions on reused sessions.
	reused int64
}

func newConnPool(now func() time.Time) *connPool {
	return &connPool{now: now, idle: map[string][]*pooledConn{}}
}

// get takes an idle session of key; with verified, only one whose TLS was
// verified.
func (p *connPool) get(key string, verified bool) *pooledConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.idle[key]
	for i := len(l) - 1; i >= 0; i-- {
		pc := l[i]
		if verified && (!pc.policy.mode.verified() || pc.policy.noCheck) {
			continue
		}
		p.idle[key] = append(l[:i], l[i+1:]...)
		if pc.c.Broken() || p.now().Sub(pc.since) > poolIdle {
			go pc.c.Close()
			continue
		}
		p.reused++
		return pc
	}
	return nil
}

// put returns a session for reuse.
func (p *connPool) put(key string, pc *pooledConn) {
	pc.since = p.now()
	p.mu.Lock()
	if len(p.idle[key]) >= poolMaxIdle || pc.c.Broken() {
		p.mu.Unlock()
		go pc.c.Quit(context.Background())
		return
	}
	p.idle[key] = append(p.idle[key], pc)
	p.mu.Unlock()
}

// expire ends sessions idle for longer than poolIdle.
func (p *connPool) expire() {
	p.mu.Lock()
	var old []*pooledConn
	for key, l := range p.idle {
		keep := l[:0]
		for _, pc := range l {
			if p.now().Sub(pc.since) > poolIdle {
				old = append(old, pc)
			} else {
				keep = append(keep, pc)
			}
		}
		if len(keep) == 0 {
			delete(p.idle, key)
		} else {
			p.idle[key] = keep
		}
	}
	p.mu.Unlock()
	for _, pc := range old {
		go pc.c.Quit(context.Background())
	}
}

// closeAll ends every idle session.
func (p *connPool) closeAll() {
	p.mu.Lock()
	idle := p.idle
	p.idle = map[string][]*pooledConn{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, l := range idle {
		for _, pc := range l {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				pc.c.Quit(ctx)
			}()
		}
	}
	wg.Wait()
}

// reusedCount is how many jobs ran on a reused session.
func (p *connPool) reusedCount() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reused
}
