package dns_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"moxd/internal/dns"
	"moxd/internal/dns/dnstest"
)

// zone is the test data most tests use.
var zone = []string{
	"example.test. 3600 IN SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 30",
	`example.test. 300 IN TXT "v=spf1 " "ip4:192.0.2.0/24 " "-all"`,
	`example.test. 300 IN TXT "second"`,
	"example.test. 300 IN MX 20 mx3.example.test.",
	"example.test. 300 IN MX 10 mx1.example.test.",
	"example.test. 300 IN MX 20 mx2.example.test.",
	"nullmx.example.test. 300 IN MX 0 .",
	"mail.example.test. 300 IN A 192.0.2.1",
	"mail.example.test. 300 IN AAAA 2001:db8::1",
	"v4only.example.test. 300 IN A 192.0.2.2",
	"v6only.example.test. 300 IN AAAA 2001:db8::2",
	"alias.example.test. 300 IN CNAME alias2.example.test.",
	"alias2.example.test. 300 IN CNAME mail.example.test.",
	"dangling.example.test. 300 IN CNAME nowhere.example.test.",
	"tov4.example.test. 300 IN CNAME v4only.example.test.",
	"loop1.example.test. 300 IN CNAME loop2.example.test.",
	"loop2.example.test. 300 IN CNAME loop1.example.test.",
	"1.2.0.192.in-addr.arpa. 300 IN PTR mail.example.test.",
	"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. 300 IN PTR mail.example.test.",
	"_25._tcp.mail.example.test. 300 IN TLSA 3 1 1 0123456789abcdef",
	`escape.example.test. 300 IN TXT "a\"b\\c" "\195\169;"`,
}

func init() {
	// A chain of 10 CNAMEs: the server follows it, the client refuses
	// more than 8 hops.
	for i := range 10 {
		zone = append(zone, fmt.Sprintf("chain%d.example.test. 300 IN CNAME chain%d.example.test.", i, i+1))
	}
	zone = append(zone, "chain10.example.test. 300 IN A 192.0.2.10")
}

// newClient returns a client for the servers, with cfg's other settings.
func newClient(t *testing.T, cfg dns.Config, servers ...*dnstest.Server) *dns.Client {
	t.Helper()
	for _, s := range servers {
		cfg.Servers = append(cfg.Servers, s.Addr())
	}
	c, err := dns.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLookups(t *testing.T) {
	srv := dnstest.Start(t, zone...)
	c := newClient(t, dns.Config{}, srv)
	ctx := context.Background()

	t.Run("TXT", func(t *testing.T) {
		txt, _, err := c.LookupTXT(ctx, "example.test")
		want := []string{"v=spf1 ip4:192.0.2.0/24 -all", "second"}
		if err != nil || !reflect.DeepEqual(txt, want) {
			t.Errorf("LookupTXT = %q, %v; want %q", txt, err, want)
		}
		// Quotes, backslashes and non-ASCII bytes come back as bytes.
		txt, _, err = c.LookupTXT(ctx, "escape.example.test.")
		want = []string{"a\"b\\cé;"}
		if err != nil || !reflect.DeepEqual(txt, want) {
			t.Errorf("LookupTXT = %q, %v; want %q", txt, err, want)
		}
	})

	t.Run("MX", func(t *testing.T) {
		mx, _, err := c.LookupMX(ctx, "Example.Test.")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range mx {
			got = append(got, fmt.Sprintf("%d %s", m.Pref, m.Host))
		}
		// Sorted by preference; equal preferences keep the server's order.
		want := []string{"10 mx1.example.test", "20 mx3.example.test", "20 mx2.example.test"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("LookupMX = %q, want %q", got, want)
		}
		mx, _, err = c.LookupMX(ctx, "nullmx.example.test")
		if err != nil || len(mx) != 1 || mx[0].Host != "." || mx[0].Pref != 0 {
			t.Errorf("null MX: %v, %v; want one with host %q", mx, err, dns.NullMX)
		}
	})

	t.Run("IP", func(t *testing.T) {
		tests := []struct {
			network, host string
			want          []string
		}{
			{"ip", "mail.example.test", []string{"192.0.2.1", "2001:db8::1"}},
			{"ip4", "mail.example.test", []string{"192.0.2.1"}},
			{"ip6", "mail.example.test", []string{"2001:db8::1"}},
			{"ip", "v4only.example.test", []string{"192.0.2.2"}},
			{"ip", "v6only.example.test", []string{"2001:db8::2"}},
			{"ip", "alias.example.test", []string{"192.0.2.1", "2001:db8::1"}},
			{"ip4", "chain2.example.test", []string{"192.0.2.10"}}, // 8 hops
		}
		for _, tc := range tests {
			ips, _, err := c.LookupIP(ctx, tc.network, tc.host)
			var got []string
			for _, ip := range ips {
				got = append(got, ip.String())
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("LookupIP(%s, %s) = %v, %v; want %v", tc.network, tc.host, got, err, tc.want)
			}
		}
		if _, _, err := c.LookupIP(ctx, "tcp", "mail.example.test"); err == nil {
			t.Errorf("LookupIP with network tcp: no error")
		}
	})

	t.Run("Addr", func(t *testing.T) {
		for _, addr := range []string{"192.0.2.1", "::ffff:192.0.2.1", "2001:db8::1", "2001:DB8:0::1"} {
			names, _, err := c.LookupAddr(ctx, addr)
			if err != nil || !reflect.DeepEqual(names, []string{"mail.example.test"}) {
				t.Errorf("LookupAddr(%s) = %q, %v", addr, names, err)
			}
		}
		if _, _, err := c.LookupAddr(ctx, "192.0.2.300"); err == nil {
			t.Errorf("LookupAddr of a bad address: no error")
		}
	})

	t.Run("CNAME", func(t *testing.T) {
		tests := []struct{ host, want string }{
			{"alias.example.test", "mail.example.test"},
			{"alias.example.test.", "mail.example.test"},
			{"mail.example.test.", "mail.example.test"}, // no CNAME
			{"v6only.example.test", "v6only.example.test"},
			{"tov4.example.test", "v4only.example.test"},
		}
		for _, tc := range tests {
			got, _, err := c.LookupCNAME(ctx, tc.host)
			if err != nil || got != tc.want {
				t.Errorf("LookupCNAME(%s) = %q, %v; want %q", tc.host, got, err, tc.want)
			}
		}
		if got, _, err := c.LookupCNAME(ctx, "dangling.example.test"); !isNotFound(err) {
			t.Errorf("LookupCNAME of a dangling CNAME = %q, %v; want not found", got, err)
		}
	})

	t.Run("TLSA", func(t *testing.T) {
		l, _, err := c.LookupTLSA(ctx, 25, "tcp", "mail.example.test")
		want := []dns.TLSA{{Usage: 3, Selector: 1, MatchingType: 1, CertData: []byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}}}
		if err != nil || !reflect.DeepEqual(l, want) {
			t.Errorf("LookupTLSA = %v, %v; want %v", l, err, want)
		}
		if _, _, err := c.LookupTLSA(ctx, 465, "tcp", "mail.example.test"); !isNotFound(err) {
			t.Errorf("LookupTLSA of a missing record: %v, want not found", err)
		}
		if _, _, err := c.LookupTLSA(ctx, 70000, "tcp", "mail.example.test"); err == nil {
			t.Errorf("LookupTLSA with port 70000: no error")
		}
	})
}

func isNotFound(err error) bool {
	de, ok := err.(*net.DNSError)
	return ok && de.IsNotFound && !de.IsTemporary && !de.IsTimeout
}

func TestErrors(t *testing.T) {
	srv := dnstest.Start(t, zone...)
	srv.SetServFail("servfail.example.test")
	srv.SetDrop("drop.example.test")
	c := newClient(t, dns.Config{Timeout: 300 * time.Millisecond, Attempts: 1}, srv)

	txt := func(name string) error { _, _, err := c.LookupTXT(context.Background(), name); return err }
	ip := func(network string) func(string) error {
		return func(name string) error { _, _, err := c.LookupIP(context.Background(), network, name); return err }
	}
	const (
		notFound = iota
		temporary
		timeout
		invalid
	)
	tests := []struct {
		name   string
		lookup func(string) error
		want   int
		text   string // in Err
	}{
		{"nope.example.test", txt, notFound, "NXDOMAIN"},
		{"mail.example.test", txt, notFound, "NODATA"},
		{"tov4.example.test", ip("ip6"), notFound, "NODATA"}, // CNAME, target without AAAA
		{"dangling.example.test", txt, notFound, "NXDOMAIN"},
		{"nope.example.test", ip("ip"), notFound, "NXDOMAIN"},
		{"servfail.example.test", txt, temporary, "SERVFAIL"},
		{"loop1.example.test", txt, temporary, "SERVFAIL"},           // server gives up
		{"chain0.example.test", ip("ip4"), temporary, "CNAME chain"}, // client gives up
		{"drop.example.test", txt, timeout, "timed out"},
		{"drop.example.test", ip("ip"), timeout, "timed out"},
		{"a..example.test", txt, invalid, "empty label"},
		{".example.test", txt, invalid, "empty label"},
		{"", txt, invalid, "empty"},
		{strings.Repeat("a.", 127) + "test", txt, invalid, "253"},
		{strings.Repeat("a", 64) + ".test", txt, invalid, "63"},
		{"bücher.test", txt, invalid, "ASCII"},
		{`back\slash.test`, txt, invalid, "ASCII"},
	}
	for _, tc := range tests {
		err := tc.lookup(tc.name)
		// A type assertion, as blitiri.com.ar/go/spf does: no wrapping.
		de, ok := err.(*net.DNSError)
		if !ok {
			t.Errorf("%q: error %T %v, want *net.DNSError", tc.name, err, err)
			continue
		}
		var want [3]bool // IsNotFound, IsTemporary, IsTimeout
		switch tc.want {
		case notFound:
			want[0] = true
		case temporary:
			want[1] = true
		case timeout:
			want[1], want[2] = true, true
		}
		if got := [3]bool{de.IsNotFound, de.IsTemporary, de.IsTimeout}; got != want {
			t.Errorf("%q: IsNotFound, IsTemporary, IsTimeout = %v, want %v (%v)", tc.name, got, want, err)
		}
		if !strings.Contains(de.Err, tc.text) {
			t.Errorf("%q: Err %q does not mention %q", tc.name, de.Err, tc.text)
		}
		if tc.want != invalid && (de.Name != tc.name || de.Server != srv.Addr()) {
			t.Errorf("%q: Name %q, Server %q; want %q, %q", tc.name, de.Name, de.Server, tc.name, srv.Addr())
		}
	}
}

func TestContext(t *testing.T) {
	srv := dnstest.Start(t, zone...)
	srv.SetDrop("drop.example.test")
	c := newClient(t, dns.Config{Timeout: 10 * time.Second}, srv)

	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, _, err := c.LookupTXT(ctx, "drop.example.test")
		de, ok := err.(*net.DNSError)
		if !ok || !de.IsTimeout || !de.IsTemporary || de.IsNotFound || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %#v, want a temporary timeout *net.DNSError", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("lookup took %v, deadline was 200ms", d)
		}
	})

	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		_, _, err := c.LookupMX(ctx, "drop.example.test")
		de, ok := err.(*net.DNSError)
		if !ok || de.IsTimeout || !de.IsTemporary || !errors.Is(err, context.Canceled) {
			t.Fatalf("error %#v, want a temporary non-timeout *net.DNSError", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("lookup took %v, canceled after 100ms", d)
		}
	})

	t.Run("canceled before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, _, err := c.LookupTXT(ctx, "example.test")
		if de, ok := err.(*net.DNSError); !ok || !de.IsTemporary {
			t.Errorf("error %v, want temporary", err)
		}
		if n := srv.Queries("example.test", "TXT"); n != 0 {
			t.Errorf("%d queries sent with a canceled context", n)
		}
	})
}

func TestAuthentic(t *testing.T) {
	srv := dnstest.Start(t, append(slices.Clone(zone),
		"secure.test. 300 IN SOA ns.secure.test. hostmaster.secure.test. 1 3600 600 86400 30",
		"secure.test. 300 IN A 192.0.2.20",
		"secure.test. 300 IN AAAA 2001:db8::20",
		"v4.secure.test. 300 IN A 192.0.2.21",
		"out.secure.test. 300 IN CNAME mail.example.test.",
		"in.example.test. 300 IN CNAME secure.test.",
	)...)
	srv.SetAuthentic("secure.test")
	// Loopback servers are trusted without TrustAD.
	c := newClient(t, dns.Config{CacheSize: -1}, srv)
	ctx := context.Background()

	tests := []struct {
		name    string
		network string
		want    bool
		found   bool
	}{
		{"secure.test", "ip", true, true},
		{"secure.test", "ip4", true, true},
		{"v4.secure.test", "ip", true, true}, // AAAA NODATA is authentic too
		{"nope.secure.test", "ip", true, false},
		{"out.secure.test", "ip", false, true}, // chain leaves the signed zone
		{"in.example.test", "ip", false, true}, // chain enters it
		{"mail.example.test", "ip", false, true},
		{"nope.example.test", "ip", false, false},
	}
	for _, tc := range tests {
		ips, r, err := c.LookupIP(ctx, tc.network, tc.name)
		if r.Authentic != tc.want || (err == nil) != tc.found || (tc.found && len(ips) == 0) {
			t.Errorf("LookupIP(%s, %s): %v, authentic %v, %v; want authentic %v, found %v", tc.network, tc.name, ips, r.Authentic, err, tc.want, tc.found)
		}
	}

	// One half temporarily failing: the other half's addresses, not
	// authentic; both failing: a temporary error.
	srv.SetServFail("secure.test AAAA")
	ips, r, err := c.LookupIP(ctx, "ip", "secure.test")
	if err != nil || len(ips) != 1 || r.Authentic {
		t.Errorf("LookupIP with AAAA failing: %v, authentic %v, %v; want the A address, not authentic", ips, r.Authentic, err)
	}
	_, r, err = c.LookupIP(ctx, "ip", "v6.secure.test")
	if de, ok := err.(*net.DNSError); !ok || !de.IsTemporary || r.Authentic {
		t.Errorf("LookupIP with AAAA failing and A not found: %v, authentic %v; want temporary", err, r.Authentic)
	}
}

func TestTrustedServer(t *testing.T) {
	tests := []struct {
		addr    string
		trustAD bool
		want    bool
	}{
		{"127.0.0.1:53", false, true},
		{"127.0.0.53:53", false, true},
		{"[::1]:53", false, true},
		{"[::ffff:127.0.0.1]:53", false, true},
		{"::1", false, true},
		{"192.0.2.1:53", false, false},
		{"192.0.2.1:53", true, true},
		{"[2001:db8::1]:53", false, false},
		{"[2001:db8::1]:53", true, true},
		{"[fe80::1%eth0]:53", false, false},
		{"localhost:53", true, false},
		{"", true, false},
	}
	for _, tc := range tests {
		if got := dns.TrustedServer(tc.addr, tc.trustAD); got != tc.want {
			t.Errorf("TrustedServer(%q, %v) = %v, want %v", tc.addr, tc.trustAD, got, tc.want)
		}
	}
}

func TestTruncation(t *testing.T) {
	// Six 250-byte strings do not fit the 1232-byte EDNS0 buffer.
	long := strings.Repeat(`"`+strings.Repeat("x", 250)+`" `, 6)
	srv := dnstest.Start(t, append(slices.Clone(zone), "long.example.test. 300 IN TXT "+long)...)
	c := newClient(t, dns.Config{CacheSize: -1}, srv)
	ctx := context.Background()

	txt, _, err := c.LookupTXT(ctx, "long.example.test")
	if err != nil || len(txt) != 1 || txt[0] != strings.Repeat("x", 1500) {
		t.Errorf("long TXT: %d records, %v", len(txt), err)
	}
	if n := srv.Queries("long.example.test", "TXT"); n != 2 {
		t.Errorf("long TXT: %d queries, want 2 (UDP, then TCP)", n)
	}

	// Forced: UDP answers are empty with TC, only TCP has records.
	srv.SetTruncate(true)
	mx, _, err := c.LookupMX(ctx, "example.test")
	if err != nil || len(mx) != 3 {
		t.Errorf("MX with truncated UDP: %v, %v", mx, err)
	}
	if n := srv.Queries("example.test", "MX"); n != 2 {
		t.Errorf("MX: %d queries, want 2 (UDP, then TCP)", n)
	}
}

func TestServers(t *testing.T) {
	good := dnstest.Start(t, zone...)
	failing := dnstest.Start(t)
	failing.SetServFail(".")
	dead := dnstest.Start(t)
	dead.Close() // its port now refuses

	tests := []struct {
		name    string
		servers []*dnstest.Server
		ok      bool
		queries map[*dnstest.Server]int
	}{
		{"servfail then good", []*dnstest.Server{failing, good}, true, map[*dnstest.Server]int{failing: 1, good: 1}},
		{"dead then good", []*dnstest.Server{dead, good}, true, map[*dnstest.Server]int{good: 1}},
		{"good first", []*dnstest.Server{good, failing}, true, map[*dnstest.Server]int{failing: 0, good: 1}},
		{"servfail, 3 attempts", []*dnstest.Server{failing}, false, map[*dnstest.Server]int{failing: 3}},
	}
	for i, tc := range tests {
		name := fmt.Sprintf("mail%d.example.test", i)
		if err := good.Add(name + ". 300 IN A 192.0.2.1"); err != nil {
			t.Fatal(err)
		}
		c := newClient(t, dns.Config{Attempts: 3, Timeout: 2 * time.Second}, tc.servers...)
		_, _, err := c.LookupIP(context.Background(), "ip4", name)
		if (err == nil) != tc.ok {
			t.Errorf("%s: error %v, want ok %v", tc.name, err, tc.ok)
		}
		for s, want := range tc.queries {
			if n := s.Queries(name, "A"); n != want {
				t.Errorf("%s: server got %d queries, want %d", tc.name, n, want)
			}
		}
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		servers []string
		ok      bool
	}{
		{nil, false},
		{[]string{"127.0.0.1:53"}, true},
		{[]string{"[::1]:53", "192.0.2.1:5353"}, true},
		{[]string{"127.0.0.1"}, false},
		{[]string{"localhost:53"}, false},
		{[]string{"127.0.0.1:0"}, false},
	}
	for _, tc := range tests {
		_, err := dns.New(dns.Config{Servers: tc.servers})
		if (err == nil) != tc.ok {
			t.Errorf("New(%q): %v, want ok %v", tc.servers, err, tc.ok)
		}
	}
}

func TestCoalesce(t *testing.T) {
	srv := dnstest.Start(t, append(slices.Clone(zone), `slow.example.test. 300 IN TXT "slow"`)...)
	c := newClient(t, dns.Config{}, srv)
	release := srv.Block("slow.example.test")
	defer release()

	// A caller that gives up does not fail the others.
	ctx, cancel := context.WithCancel(context.Background())
	impatient := make(chan error, 1)
	go func() {
		_, _, err := c.LookupTXT(ctx, "slow.example.test")
		impatient <- err
	}()

	const n = 10
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			txt, _, err := c.LookupTXT(context.Background(), "slow.example.test")
			if err == nil && !reflect.DeepEqual(txt, []string{"slow"}) {
				err = fmt.Errorf("got %q", txt)
			}
			errs[i] = err
		})
	}
	// Wait until all lookups joined the first one.
	for deadline := time.Now().Add(5 * time.Second); c.Stats().Coalesced < n; {
		if time.Now().After(deadline) {
			t.Fatalf("only %d lookups coalesced, want %d", c.Stats().Coalesced, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-impatient; !errors.Is(err, context.Canceled) {
		t.Errorf("canceled lookup: %v", err)
	}
	release()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("lookup %d: %v", i, err)
		}
	}
	if q := srv.Queries("slow.example.test", "TXT"); q != 1 {
		t.Errorf("%d queries for %d coalesced lookups, want 1", q, n+1)
	}
}

func TestOffline(t *testing.T) {
	r := dns.Offline()
	ctx := context.Background()
	check := func(what string, res dns.Result, err error) {
		t.Helper()
		if !isNotFound(err) || res.Authentic {
			t.Errorf("Offline %s: %v, authentic %v; want not found", what, err, res.Authentic)
		}
	}
	_, res, err := r.LookupTXT(ctx, "example.test")
	check("LookupTXT", res, err)
	_, res, err = r.LookupMX(ctx, "example.test")
	check("LookupMX", res, err)
	_, res, err = r.LookupIP(ctx, "ip", "example.test")
	check("LookupIP", res, err)
	_, res, err = r.LookupAddr(ctx, "192.0.2.1")
	check("LookupAddr", res, err)
	_, res, err = r.LookupCNAME(ctx, "example.test")
	check("LookupCNAME", res, err)
	_, res, err = r.LookupTLSA(ctx, 25, "tcp", "example.test")
	check("LookupTLSA", res, err)
}
