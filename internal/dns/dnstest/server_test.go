package dnstest

import (
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

func ask(t *testing.T, s *Server, network, name string, qtype uint16, ad bool) *mdns.Msg {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	m.AuthenticatedData = ad
	c := &mdns.Client{Net: network, Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, s.Addr())
	if err != nil {
		t.Fatalf("%s %s %s: %v", network, name, mdns.TypeToString[qtype], err)
	}
	return r
}

func TestServer(t *testing.T) {
	s := Start(t,
		"example.test. 3600 IN SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 30",
		"a.example.test. 300 IN A 192.0.2.1",
		"www.example.test. 300 IN CNAME a.example.test.",
		"_25._tcp.mx.example.test. 300 IN TLSA 3 1 1 abcd",
	)
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") {
		t.Fatalf("Addr %q, want 127.0.0.1:port", s.Addr())
	}

	tests := []struct {
		name    string
		qtype   uint16
		rcode   int
		answers int
		soa     string // owner of the SOA in authority, "" for none
	}{
		{"a.example.test.", mdns.TypeA, mdns.RcodeSuccess, 1, ""},
		{"A.Example.Test.", mdns.TypeA, mdns.RcodeSuccess, 1, ""},
		{"www.example.test.", mdns.TypeA, mdns.RcodeSuccess, 2, ""},
		{"www.example.test.", mdns.TypeCNAME, mdns.RcodeSuccess, 1, ""},
		{"www.example.test.", mdns.TypeAAAA, mdns.RcodeSuccess, 1, "example.test."}, // CNAME, then NODATA
		{"a.example.test.", mdns.TypeMX, mdns.RcodeSuccess, 0, "example.test."},
		{"_tcp.mx.example.test.", mdns.TypeTXT, mdns.RcodeSuccess, 0, "example.test."}, // empty non-terminal
		{"nope.example.test.", mdns.TypeA, mdns.RcodeNameError, 0, "example.test."},
		{"other.test.", mdns.TypeA, mdns.RcodeNameError, 0, "."}, // DefaultSOA
	}
	for _, tc := range tests {
		r := ask(t, s, "udp", tc.name, tc.qtype, false)
		if r.Rcode != tc.rcode || len(r.Answer) != tc.answers {
			t.Errorf("%s %s: rcode %s, %d answers; want %s, %d", tc.name, mdns.TypeToString[tc.qtype],
				mdns.RcodeToString[r.Rcode], len(r.Answer), mdns.RcodeToString[tc.rcode], tc.answers)
		}
		var soa string
		if len(r.Ns) == 1 {
			soa = r.Ns[0].Header().Name
		}
		if soa != tc.soa {
			t.Errorf("%s %s: SOA owner %q, want %q", tc.name, mdns.TypeToString[tc.qtype], soa, tc.soa)
		}
	}
	if n := s.Queries("a.example.test", "A"); n != 2 {
		t.Errorf("Queries(a.example.test, A) = %d, want 2", n)
	}
}

func TestServerRules(t *testing.T) {
	s := Start(t,
		"a.example.test. 300 IN A 192.0.2.1",
		"a.example.test. 300 IN AAAA 2001:db8::1",
	)

	s.SetAuthentic("example.test AAAA")
	if r := ask(t, s, "udp", "a.example.test.", mdns.TypeAAAA, true); !r.AuthenticatedData {
		t.Errorf("AAAA with AD in query: no AD in answer")
	}
	if r := ask(t, s, "udp", "a.example.test.", mdns.TypeAAAA, false); r.AuthenticatedData {
		t.Errorf("AAAA without AD or DO in query: AD in answer")
	}
	if r := ask(t, s, "udp", "a.example.test.", mdns.TypeA, true); r.AuthenticatedData {
		t.Errorf("A: AD in answer, rule was for AAAA only")
	}

	s.SetServFail("a.example.test")
	if r := ask(t, s, "tcp", "a.example.test.", mdns.TypeA, false); r.Rcode != mdns.RcodeServerFailure {
		t.Errorf("servfail rule: rcode %s", mdns.RcodeToString[r.Rcode])
	}
	s.SetServFail()

	s.SetTruncate(true)
	if r := ask(t, s, "udp", "a.example.test.", mdns.TypeA, false); !r.Truncated || len(r.Answer) != 0 {
		t.Errorf("truncate over UDP: TC %v, %d answers", r.Truncated, len(r.Answer))
	}
	if r := ask(t, s, "tcp", "a.example.test.", mdns.TypeA, false); r.Truncated || len(r.Answer) != 1 {
		t.Errorf("truncate, over TCP: TC %v, %d answers", r.Truncated, len(r.Answer))
	}
	s.SetTruncate(false)

	s.Remove("a.example.test.", "A")
	if r := ask(t, s, "udp", "a.example.test.", mdns.TypeA, false); len(r.Answer) != 0 || r.Rcode != mdns.RcodeSuccess {
		t.Errorf("after Remove: rcode %s, %d answers, want NODATA", mdns.RcodeToString[r.Rcode], len(r.Answer))
	}
	if err := s.Add("a.example.test. 300 IN A 192.0.2.9"); err != nil {
		t.Fatal(err)
	}
	if r := ask(t, s, "udp", "a.example.test.", mdns.TypeA, false); len(r.Answer) != 1 || r.Answer[0].(*mdns.A).A.String() != "192.0.2.9" {
		t.Errorf("after Add: answer %v", r.Answer)
	}
	if err := s.Add("a.example.test. 300 IN BOGUS x"); err == nil {
		t.Errorf("Add of a bad record: no error")
	}

	s.SetDrop("example.test")
	c := &mdns.Client{Timeout: 200 * time.Millisecond}
	m := new(mdns.Msg).SetQuestion("a.example.test.", mdns.TypeA)
	if _, _, err := c.Exchange(m, s.Addr()); err == nil {
		t.Errorf("dropped query answered")
	}
}
