package dns

// Implementation notes for Client:
//
//   - A lookup is one (name, type) question. It is answered from the cache
//     when possible; otherwise it joins an identical lookup in flight or
//     starts one (flight.go). The query in flight runs on a context of its
//     own that is canceled only when every caller waiting for it has gone,
//     so one impatient caller does not fail the others.
//   - A query tries each server in order, Attempts rounds. NOERROR and
//     NXDOMAIN end it; anything else (SERVFAIL, timeout, network error,
//     answer not matching the question) moves on to the next server.
//   - Each attempt asks over UDP with EDNS0 (1232 bytes, the DNS flag day
//     2020 size) and the AD bit; a truncated answer is asked again over TCP.
//     DO is not set: RFC 6840 §5.7 lets a validating resolver report AD to a
//     query with AD set, which unbound does, and without DO the answers
//     carry no RRSIGs.
//   - The answer is reduced to the records of the asked type at the end of
//     the CNAME chain (interpret), which is what the cache stores.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
)

// Defaults for Config fields left zero.
const (
	DefaultTimeout   = 5 * time.Second
	DefaultAttempts  = 2
	DefaultCacheSize = 10000
)

const (
	// ednsSize is the UDP payload size advertised in EDNS0 (RFC 6891).
	ednsSize = 1232
	// maxCNAMEHops bounds the CNAME chain followed in an answer.
	maxCNAMEHops = 8
)

// Config configures a Client.
type Config struct {
	// Servers are the recursive resolvers to ask, "ip:port" with a literal
	// IP address ("127.0.0.1:53", "[::1]:53"), tried in order.
	Servers []string
	// TrustAD trusts every server's AD bit, not only a loopback server's
	// (resolv.conf "options trust-ad").
	TrustAD bool
	// Timeout is the time one query attempt to one server may take;
	// DefaultTimeout when zero.
	Timeout time.Duration
	// Attempts is the number of rounds over Servers; DefaultAttempts when
	// zero.
	Attempts int
	// CacheSize is the maximum number of cached answers (one per name and
	// type); DefaultCacheSize when zero, no cache when negative.
	CacheSize int
	// Now is the clock used for cache expiry; time.Now when nil.
	Now func() time.Time
	// Log receives debug messages about failed queries; nil discards them.
	Log *slog.Logger
}

// server is one configured resolver.
type server struct {
	addr    string // "ip:port"
	trusted bool   // its AD bit is believed, see TrustedServer
}

// Client is a Resolver that asks recursive resolvers and caches their
// answers. It is safe for concurrent use.
type Client struct {
	servers  []server
	timeout  time.Duration
	attempts int
	now      func() time.Time
	log      *slog.Logger
	cache    *cache // nil when caching is off
	flights  flights
	stats    counters
}

var _ Resolver = (*Client)(nil)

// New returns a Client for cfg. It fails when there are no servers or a
// server is not a literal "ip:port".
func New(cfg Config) (*Client, error) {
	if len(cfg.Servers) == 0 {
		return nil, fmt.Errorf("dns: no servers configured")
	}
	c := &Client{
		timeout:  cfg.Timeout,
		attempts: cfg.Attempts,
		now:      cfg.Now,
		log:      cfg.Log,
	}
	for _, s := range cfg.Servers {
		ap, err := netip.ParseAddrPort(s)
		if err != nil || ap.Port() == 0 {
			return nil, fmt.Errorf("dns: server %q: want a literal IP address and port, like 127.0.0.1:53 or [::1]:53", s)
		}
		addr := ap.String()
		c.servers = append(c.servers, server{addr: addr, trusted: TrustedServer(addr, cfg.TrustAD)})
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.attempts <= 0 {
		c.attempts = DefaultAttempts
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	switch {
	case cfg.CacheSize == 0:
		c.cache = newCache(DefaultCacheSize)
	case cfg.CacheSize > 0:
		c.cache = newCache(cfg.CacheSize)
	}
	return c, nil
}

// TrustedServer reports whether the AD bit in answers from the resolver at
// addr ("ip:port" or a bare IP) is believed: the resolver is on a loopback
// address, or trustAD says to trust every configured resolver (glibc's
// rule, RFC 6840 §5.7 leaves the choice to local policy). An address that
// does not parse is never trusted.
func TrustedServer(addr string, trustAD bool) bool {
	var ip netip.Addr
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		ip = ap.Addr()
	} else if a, err := netip.ParseAddr(addr); err == nil {
		ip = a
	} else {
		return false
	}
	return trustAD || ip.Unmap().IsLoopback()
}

// Stats are a Client's counters since New, for status reports.
type Stats struct {
	Lookups      uint64 // lookups of one name and type, including cache hits
	CacheHits    uint64 // lookups answered from the cache
	Coalesced    uint64 // lookups that joined an identical one in flight
	Queries      uint64 // DNS messages sent to servers (UDP and TCP)
	Failures     uint64 // queries that failed on every server (temporary errors)
	CacheEntries int    // answers in the cache now
}

type counters struct {
	lookups, cacheHits, coalesced, queries, failures atomic.Uint64
}

// Stats returns the Client's counters.
func (c *Client) Stats() Stats {
	st := Stats{
		Lookups:   c.stats.lookups.Load(),
		CacheHits: c.stats.cacheHits.Load(),
		Coalesced: c.stats.coalesced.Load(),
		Queries:   c.stats.queries.Load(),
		Failures:  c.stats.failures.Load(),
	}
	if c.cache != nil {
		st.CacheEntries = c.cache.len()
	}
	return st
}

// answerKind says whether an answer has records.
type answerKind uint8

const (
	positive answerKind = iota // records of the asked type
	nxdomain                   // the name (or the CNAME target) does not exist
	nodata                     // the name exists without records of the type
)

// answer is the usable part of a response, as the cache stores it. It is
// never modified once built.
type answer struct {
	kind      answerKind
	rrs       []mdns.RR // records of the asked type at final (positive)
	final     string    // name at the end of the CNAME chain, fqdn
	chain     int       // number of CNAME records followed
	authentic bool      // AD bit from a trusted server
	server    string    // server that answered
	ttl       time.Duration
}

// query asks the servers for name (fqdn, lower case) and qtype. A negative
// answer is an answer; err is a temporary *net.DNSError only. display is
// the name for error messages.
func (c *Client) query(ctx context.Context, name, display string, qtype uint16) (*answer, error) {
	var last error
	for round := 0; round < c.attempts; round++ {
		for _, srv := range c.servers {
			if err := ctx.Err(); err != nil {
				return nil, errContext(display, srv.addr, err)
			}
			r, err := c.exchange(ctx, srv, name, display, qtype)
			if err == nil {
				var a *answer
				a, err = interpret(r, srv, name, display, qtype)
				if err == nil {
					return a, nil
				}
			}
			if cerr := ctx.Err(); cerr != nil {
				return nil, errContext(display, srv.addr, cerr)
			}
			c.log.Debug("dns query failed", "server", srv.addr, "name", display, "type", mdns.TypeToString[qtype], "round", round+1, "err", err)
			last = err
		}
	}
	return nil, last
}

// exchange sends one query to srv: over UDP, and again over TCP when the
// UDP answer is truncated. The response matches the query's id and
// question.
func (c *Client) exchange(ctx context.Context, srv server, name, display string, qtype uint16) (*mdns.Msg, error) {
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype) // random id, RD set
	m.AuthenticatedData = true // RFC 6840 §5.7: ask for the AD bit
	m.SetEdns0(ednsSize, false)
	r, err := c.exchangeNet(ctx, "udp", srv.addr, m, display)
	if err == nil && r.Truncated {
		// RFC 7766 §5: retry a truncated answer over TCP.
		r, err = c.exchangeNet(ctx, "tcp", srv.addr, m, display)
	}
	return r, err
}

// exchangeNet sends m to addr over network and reads the response, within
// the per-attempt timeout and ctx.
func (c *Client) exchangeNet(ctx context.Context, network, addr string, m *mdns.Msg, display string) (*mdns.Msg, error) {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	mc := &mdns.Client{Net: network, Timeout: c.timeout, UDPSize: ednsSize}
	c.stats.queries.Add(1)
	conn, err := mc.DialContext(actx, addr)
	if err != nil {
		return nil, c.attemptError(ctx, actx, display, addr, err)
	}
	defer conn.Close()
	// miekg only honours a context's deadline; closing the connection
	// also ends the exchange when ctx is canceled.
	stop := context.AfterFunc(actx, func() { conn.Close() })
	defer stop()
	r, _, err := mc.ExchangeWithConnContext(actx, m, conn)
	if err != nil {
		return nil, c.attemptError(ctx, actx, display, addr, err)
	}
	// miekg checked the id; check the question too (RFC 5452 §3).
	if len(r.Question) != 1 || !strings.EqualFold(r.Question[0].Name, m.Question[0].Name) ||
		r.Question[0].Qtype != m.Question[0].Qtype || r.Question[0].Qclass != m.Question[0].Qclass {
		return nil, errBadAnswer(display, addr, "answer does not match the question")
	}
	return r, nil
}

// attemptError classifies a failed exchange: the caller's context ended,
// the attempt timed out, or the network failed.
func (c *Client) attemptError(ctx, actx context.Context, display, addr string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return errContext(display, addr, cerr)
	}
	// The attempt's timer and miekg's read deadline race; both mean the
	// attempt timed out.
	var ne net.Error
	if actx.Err() != nil || (errors.As(err, &ne) && ne.Timeout()) {
		return errTimeout(display, addr)
	}
	return errNetwork(display, addr, err)
}

// interpret reduces response r to an answer for name and qtype: it follows
// the CNAME chain from name in the answer section and keeps the records of
// qtype owned by the last name.
func interpret(r *mdns.Msg, srv server, name, display string, qtype uint16) (*answer, error) {
	if r.Rcode != mdns.RcodeSuccess && r.Rcode != mdns.RcodeNameError {
		return nil, errRcode(display, srv.addr, r.Rcode)
	}
	a := &answer{
		final:     name,
		authentic: r.AuthenticatedData && srv.trusted, // RFC 4035 §3.2.3
		server:    srv.addr,
	}
	ttl := uint32(maxTTL / time.Second)
	for {
		var cname *mdns.CNAME
		for _, rr := range r.Answer {
			h := rr.Header()
			if h.Class != mdns.ClassINET || !strings.EqualFold(h.Name, a.final) {
				continue
			}
			if h.Rrtype == qtype {
				a.rrs = append(a.rrs, rr)
				ttl = min(ttl, h.Ttl)
			} else if h.Rrtype == mdns.TypeCNAME && cname == nil {
				cname = rr.(*mdns.CNAME)
			}
		}
		if len(a.rrs) > 0 || cname == nil {
			break
		}
		if a.chain == maxCNAMEHops {
			return nil, errBadAnswer(display, srv.addr, fmt.Sprintf("CNAME chain longer than %d", maxCNAMEHops))
		}
		a.chain++
		a.final = cname.Target
		ttl = min(ttl, cname.Hdr.Ttl)
	}
	switch {
	case r.Rcode == mdns.RcodeNameError:
		// RFC 6604: NXDOMAIN is about the last name in the chain.
		a.kind = nxdomain
		a.rrs = nil
	case len(a.rrs) == 0:
		a.kind = nodata
	}
	if a.kind != positive {
		// RFC 2308 §5: a negative answer is cached for the SOA's TTL,
		// capped by its MINIMUM field.
		neg := uint32(defaultNegativeTTL / time.Second)
		for _, rr := range r.Ns {
			if soa, ok := rr.(*mdns.SOA); ok {
				neg = min(soa.Hdr.Ttl, soa.Minttl)
				break
			}
		}
		ttl = min(ttl, neg)
	}
	a.ttl = clampTTL(time.Duration(ttl) * time.Second)
	return a, nil
}
