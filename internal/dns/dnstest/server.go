// Package dnstest is an in-process DNS server for tests. It listens on
// 127.0.0.1, UDP and TCP on the same port, and answers from records given
// in zone-file syntax the way a recursive resolver would: CNAME chains are
// followed and included in the answer, a name without data gets NXDOMAIN
// and one without records of the asked type NODATA, both with an SOA in
// the authority section.
//
// Tests point a moxd resolver (or a moxd binary's resolver setting) at
// Addr and steer the server while it runs: which names get the AD bit,
// SERVFAIL, or no answer at all, whether UDP answers are truncated,
// records added and removed, and how often each question was asked. Every
// method is safe for concurrent use.
//
// Names in rules ("example.test", "example.test AAAA") match the name and
// all names below it, optionally only for one query type. The root "."
// matches every name.
package dnstest

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"

	mdns "github.com/miekg/dns"
)

// DefaultSOA is put in the authority section of negative answers for names
// that have no SOA record at or above them in the zone data. Its TTL and
// MINIMUM make negative answers cacheable for 60 seconds.
const DefaultSOA = ". 300 IN SOA ns.dnstest.invalid. hostmaster.dnstest.invalid. 1 3600 600 86400 60"

// maxChain bounds the CNAME chain the server follows; a longer chain (or a
// loop) gets SERVFAIL, like a real resolver.
const maxChain = 16

// Server is a running test DNS server.
type Server struct {
	addr       string
	udp, tcp   *mdns.Server
	closed     chan struct{}
	closeOnce  sync.Once
	defaultSOA mdns.RR

	mu        sync.Mutex
	records   []mdns.RR
	authentic []rule
	servfail  []rule
	drop      []rule
	blocks    []block
	truncate  bool
	counts    map[question]int
}

// rule matches a name and the names below it, and one type unless qtype
// is 0.
type rule struct {
	name  string // lower-case fqdn
	qtype uint16
}

type block struct {
	rule
	release chan struct{}
}

type question struct {
	name  string // lower-case fqdn
	qtype uint16
}

// New starts a server answering from records, each one resource record in
// zone-file syntax with an absolute owner name, e.g.
// "example.test. 300 IN MX 10 mail.example.test.". Close it when done.
func New(records ...string) (*Server, error) {
	soa, err := mdns.NewRR(DefaultSOA)
	if err != nil {
		return nil, fmt.Errorf("dnstest: default SOA: %v", err)
	}
	s := &Server{
		closed:     make(chan struct{}),
		defaultSOA: soa,
		counts:     map[question]int{},
	}
	if err := s.Add(records...); err != nil {
		return nil, err
	}
	pc, ln, err := listen()
	if err != nil {
		return nil, err
	}
	s.addr = pc.LocalAddr().String()
	h := mdns.HandlerFunc(s.serveDNS)
	udpUp, tcpUp := make(chan struct{}), make(chan struct{})
	s.udp = &mdns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: func() { close(udpUp) }}
	s.tcp = &mdns.Server{Listener: ln, Handler: h, NotifyStartedFunc: func() { close(tcpUp) }}
	go s.udp.ActivateAndServe()
	go s.tcp.ActivateAndServe()
	<-udpUp
	<-tcpUp
	return s, nil
}

// listen opens UDP and TCP sockets on one free port of 127.0.0.1.
func listen() (net.PacketConn, net.Listener, error) {
	var lastErr error
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, fmt.Errorf("dnstest: listen udp: %v", err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		lastErr = err
	}
	return nil, nil, fmt.Errorf("dnstest: no port free for both udp and tcp: %v", lastErr)
}

// Start is New for tests: it fails tb on error and closes the server when
// the test ends.
func Start(tb testing.TB, records ...string) *Server {
	tb.Helper()
	s, err := New(records...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}

// Addr returns the server's address, "127.0.0.1:port", for UDP and TCP.
func (s *Server) Addr() string {
	return s.addr
}

// Close stops the server and releases blocked queries. It may be called
// more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.udp.Shutdown()
		s.tcp.Shutdown()
	})
}

// Add adds records in zone-file syntax (see New).
func (s *Server) Add(records ...string) error {
	var rrs []mdns.RR
	for _, r := range records {
		rr, err := mdns.NewRR(r)
		if err != nil {
			return fmt.Errorf("dnstest: record %q: %v", r, err)
		}
		if rr == nil {
			return fmt.Errorf("dnstest: record %q: empty", r)
		}
		rrs = append(rrs, rr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = append(s.records, rrs...)
	return nil
}

// Remove removes the records of name with type qtype ("MX"), or all
// records of name when qtype is empty.
func (s *Server) Remove(name, qtype string) {
	r := parseRule(name + " " + qtype)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = slices.DeleteFunc(s.records, func(rr mdns.RR) bool {
		h := rr.Header()
		return strings.EqualFold(h.Name, r.name) && (r.qtype == 0 || h.Rrtype == r.qtype)
	})
}

// SetAuthentic sets the names whose answers have the AD bit, as a
// validating resolver sets it for signed zones. Like a real resolver, the
// server sets it only when the query had AD or DO set, and for a CNAME
// chain only when every name in it matches. Rules as in the package
// comment; no arguments clears the list.
func (s *Server) SetAuthentic(names ...string) {
	rules := parseRules(names)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.authentic = rules
}

// SetServFail sets the names answered with SERVFAIL.
func (s *Server) SetServFail(names ...string) {
	rules := parseRules(names)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.servfail = rules
}

// SetDrop sets the names whose queries get no answer, so clients time
// out.
func (s *Server) SetDrop(names ...string) {
	rules := parseRules(names)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop = rules
}

// SetTruncate makes every UDP answer empty with the TC bit set, so
// clients must ask again over TCP. UDP answers larger than the client's
// EDNS0 buffer (512 bytes without EDNS0) are truncated regardless.
func (s *Server) SetTruncate(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.truncate = on
}

// Block holds back answers to queries matching name (a rule as in the
// package comment) until release is called (or the server is closed).
// Tests use it to have several lookups in flight at once.
func (s *Server) Block(name string) (release func()) {
	b := block{rule: parseRule(name), release: make(chan struct{})}
	s.mu.Lock()
	s.blocks = append(s.blocks, b)
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			s.blocks = slices.DeleteFunc(s.blocks, func(x block) bool { return x.release == b.release })
			s.mu.Unlock()
			close(b.release)
		})
	}
}

// Queries returns how many queries for name and qtype ("TXT") the server
// received so far, over UDP and TCP, including dropped and failed ones.
func (s *Server) Queries(name, qtype string) int {
	r := parseRule(name + " " + qtype)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[question{r.name, r.qtype}]
}

// parseRule parses "name" or "name TYPE". A bad type is a mistake in the
// test and panics.
func parseRule(s string) rule {
	f := strings.Fields(s)
	if len(f) == 0 || len(f) > 2 {
		panic(fmt.Sprintf("dnstest: rule %q: want a name and an optional type", s))
	}
	r := rule{name: mdns.Fqdn(strings.ToLower(f[0]))}
	if len(f) == 2 {
		t, ok := mdns.StringToType[strings.ToUpper(f[1])]
		if !ok {
			panic(fmt.Sprintf("dnstest: rule %q: unknown type %q", s, f[1]))
		}
		r.qtype = t
	}
	return r
}

func parseRules(l []string) []rule {
	var rules []rule
	for _, s := range l {
		rules = append(rules, parseRule(s))
	}
	return rules
}

func (r rule) matches(name string, qtype uint16) bool {
	return mdns.IsSubDomain(r.name, name) && (r.qtype == 0 || r.qtype == qtype)
}

func matchesAny(rules []rule, name string, qtype uint16) bool {
	for _, r := range rules {
		if r.matches(name, qtype) {
			return true
		}
	}
	return false
}

func slicesDeleteFunc[T any](l []T, del func(T) bool) []T {
	var keep []T
	for _, x := range l {
		if !del(x) {
			keep = append(keep, x)
		}
	}
	return keep
}

// serveDNS answers one query, over UDP or TCP.
func (s *Server) serveDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	m := new(mdns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	if len(req.Question) != 1 || req.Opcode != mdns.OpcodeQuery {
		m.Rcode = mdns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	udp := w.LocalAddr().Network() == "udp"
	size := mdns.MinMsgSize
	opt := req.IsEdns0()
	if opt != nil {
		m.SetEdns0(1232, false) // RFC 6891 §6.1.1: answer with OPT
		size = max(size, int(opt.UDPSize()))
	}

	s.mu.Lock()
	s.counts[question{name, q.Qtype}]++
	drop := matchesAny(s.drop, name, q.Qtype)
	var wait []chan struct{}
	for _, b := range s.blocks {
		if b.matches(name, q.Qtype) {
			wait = append(wait, b.release)
		}
	}
	if matchesAny(s.servfail, name, q.Qtype) {
		m.Rcode = mdns.RcodeServerFailure
	} else {
		visited := s.resolve(m, name, q.Qtype)
		adWanted := req.AuthenticatedData || (opt != nil && opt.Do())
		m.AuthenticatedData = adWanted && m.Rcode != mdns.RcodeServerFailure
		for _, n := range visited {
			m.AuthenticatedData = m.AuthenticatedData && matchesAny(s.authentic, n, q.Qtype)
		}
	}
	truncate := s.truncate
	s.mu.Unlock()

	for _, ch := range wait {
		select {
		case <-ch:
		case <-s.closed:
			return
		}
	}
	if drop {
		return
	}
	if udp && truncate {
		m.Answer, m.Ns = nil, nil
		m.Truncated = true
	} else if udp {
		m.Truncate(size) // sets TC when records had to go
	}
	w.WriteMsg(m)
}

// resolve fills in m's answer for name and qtype from the records and
// returns the names of the CNAME chain, name first. s.mu is held.
func (s *Server) resolve(m *mdns.Msg, name string, qtype uint16) (visited []string) {
	for range maxChain {
		visited = append(visited, name)
		if rrs := s.find(name, qtype); len(rrs) > 0 {
			m.Answer = append(m.Answer, rrs...)
			return visited
		}
		if qtype != mdns.TypeCNAME {
			if cn := s.find(name, mdns.TypeCNAME); len(cn) > 0 {
				m.Answer = append(m.Answer, cn[0])
				name = strings.ToLower(cn[0].(*mdns.CNAME).Target)
				continue
			}
		}
		if !s.exists(name) {
			m.Rcode = mdns.RcodeNameError
		}
		m.Ns = []mdns.RR{s.soaFor(name)}
		return visited
	}
	m.Answer = nil
	m.Rcode = mdns.RcodeServerFailure
	return visited
}

// find returns copies of the records of name and qtype (copies: packing a
// message writes to the records' headers).
func (s *Server) find(name string, qtype uint16) []mdns.RR {
	var l []mdns.RR
	for _, rr := range s.records {
		h := rr.Header()
		if h.Rrtype == qtype && strings.EqualFold(h.Name, name) {
			l = append(l, mdns.Copy(rr))
		}
	}
	return l
}

// exists reports whether name has records or names below it (an empty
// non-terminal exists, RFC 8020).
func (s *Server) exists(name string) bool {
	for _, rr := range s.records {
		if mdns.IsSubDomain(name, strings.ToLower(rr.Header().Name)) {
			return true
		}
	}
	return false
}

// soaFor returns the SOA of the closest zone data holding name: the SOA
// record with the longest owner at or above name, or DefaultSOA.
func (s *Server) soaFor(name string) mdns.RR {
	best := s.defaultSOA
	labels := -1
	for _, rr := range s.records {
		h := rr.Header()
		if h.Rrtype != mdns.TypeSOA || !mdns.IsSubDomain(strings.ToLower(h.Name), name) {
			continue
		}
		if n := mdns.CountLabel(h.Name); n > labels {
			best, labels = rr, n
		}
	}
	return mdns.Copy(best)
}
