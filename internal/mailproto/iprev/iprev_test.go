package iprev

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"moxd/internal/dns"
)

// fakeResolver answers PTR and address queries from maps keyed by address
// or lower-case name without trailing dot; names in fail return that
// error, names in authentic are answered authentically, others are not
// found. Safe for the concurrent forward lookups.
type fakeResolver struct {
	mu        sync.Mutex
	ptr       map[string][]string
	ip        map[string][]string
	authentic map[string]bool
	fail      map[string]*net.DNSError
	queries   []string
}

func notFound(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (f *fakeResolver) start(ctx context.Context, q, name string) (dns.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, q+" "+name)
	if err := ctx.Err(); err != nil {
		return dns.Result{}, err
	}
	if err := f.fail[name]; err != nil {
		return dns.Result{}, err
	}
	return dns.Result{Authentic: f.authentic[name]}, nil
}

func (f *fakeResolver) LookupAddr(ctx context.Context, addr string) ([]string, dns.Result, error) {
	res, err := f.start(ctx, "ptr", addr)
	if err != nil {
		return nil, res, err
	}
	v, ok := f.ptr[addr]
	if !ok {
		return nil, res, notFound(addr)
	}
	return v, res, nil
}

func (f *fakeResolver) LookupIP(ctx context.Context, network, host string) ([]net.IP, dns.Result, error) {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	res, err := f.start(ctx, network, host)
	if err != nil {
		return nil, res, err
	}
	var ips []net.IP
	for _, s := range f.ip[host] {
		ip := net.ParseIP(s)
		if v4 := ip.To4() != nil; network == "ip" || network == "ip4" && v4 || network == "ip6" && !v4 {
			ips = append(ips, ip)
		}
	}
	if len(ips) == 0 {
		return nil, res, notFound(host)
	}
	return ips, res, nil
}

func (f *fakeResolver) LookupTXT(ctx context.Context, name string) ([]string, dns.Result, error) {
	return nil, dns.Result{}, notFound(name)
}

func (f *fakeResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, dns.Result, error) {
	return nil, dns.Result{}, notFound(name)
}

func (f *fakeResolver) LookupCNAME(ctx context.Context, host string) (string, dns.Result, error) {
	return host, dns.Result{}, nil
}

func (f *fakeResolver) LookupTLSA(ctx context.Context, port int, protocol, host string) ([]dns.TLSA, dns.Result, error) {
	return nil, dns.Result{}, notFound(host)
}

var servfail = &net.DNSError{Err: "server misbehaving", Name: "x", IsTemporary: true}

func newResolver() *fakeResolver {
	many := []string{}
	for i := range 15 {
		many = append(many, fmt.Sprintf("n%d.many.example.", i))
	}
	return &fakeResolver{
		ptr: map[string][]string{
			"192.0.2.1":   {"mail.example.com."},
			"192.0.2.2":   {"other.example.com.", "Mail2.Example.com."},
			"192.0.2.3":   {"liar.example."},
			"192.0.2.4":   {"gone.example."},
			"192.0.2.5":   {"flaky.example.", "liar.example."},
			"192.0.2.6":   {"flaky.example.", "mail6.example."},
			"192.0.2.7":   {},
			"192.0.2.8":   many,
			"192.0.2.9":   {"secure.example.", "insecure.example."},
			"2001:db8::1": {"v6.example."},
			"2001:db8::2": {"aaaa.example."},
		},
		ip: map[string][]string{
			"mail.example.com":  {"192.0.2.1"},
			"other.example.com": {"198.51.100.1"},
			"mail2.example.com": {"198.51.100.2", "192.0.2.2"},
			"liar.example":      {"203.0.113.9"},
			"mail6.example":     {"192.0.2.6"},
			"n14.many.example":  {"192.0.2.8"},
			"secure.example":    {"192.0.2.9"},
			"insecure.example":  {"192.0.2.9"},
			"v6.example":        {"2001:db8::1", "192.0.2.200"},
			"aaaa.example":      {"2001:db8::2"},
		},
		authentic: map[string]bool{
			"192.0.2.1":        true,
			"mail.example.com": true,
			"192.0.2.9":        true,
			"secure.example":   true,
			"192.0.2.4":        true,
		},
		fail: map[string]*net.DNSError{
			"198.51.100.1":  servfail,
			"flaky.example": servfail,
		},
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		ip        string
		status    Status
		name      string
		names     []string
		authentic bool
	}{
		{"192.0.2.1", StatusPass, "mail.example.com", []string{"mail.example.com"}, true},
		{"::ffff:192.0.2.1", StatusPass, "mail.example.com", []string{"mail.example.com"}, true},
		{"192.0.2.2", StatusPass, "mail2.example.com", []string{"other.example.com", "mail2.example.com"}, false},
		{"192.0.2.3", StatusFail, "liar.example", []string{"liar.example"}, false},
		{"192.0.2.4", StatusFail, "gone.example", []string{"gone.example"}, false},
		{"192.0.2.5", StatusTemperror, "flaky.example", []string{"flaky.example", "liar.example"}, false},
		{"192.0.2.6", StatusPass, "mail6.example", []string{"flaky.example", "mail6.example"}, false},
		{"192.0.2.7", StatusPermerror, "", nil, false},
		{"192.0.2.10", StatusPermerror, "", nil, false},
		{"198.51.100.1", StatusTemperror, "", nil, false},
		{"192.0.2.9", StatusPass, "secure.example", []string{"secure.example", "insecure.example"}, true},
		{"2001:db8::1", StatusPass, "v6.example", []string{"v6.example"}, false},
		{"2001:db8::2", StatusPass, "aaaa.example", []string{"aaaa.example"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.ip, func(t *testing.T) {
			got := Check(context.Background(), newResolver(), netip.MustParseAddr(tt.ip))
			if got.Status != tt.status || got.Name != tt.name || !reflect.DeepEqual(got.Names, tt.names) || got.Authentic != tt.authentic {
				t.Fatalf("got %+v, want %s %q %q authentic=%v", got, tt.status, tt.name, tt.names, tt.authentic)
			}
			if (got.Status == StatusTemperror || got.Status == StatusPermerror) != (got.Err != nil) {
				t.Errorf("status %s with err %v", got.Status, got.Err)
			}
		})
	}
}

func TestCheckLimitsNames(t *testing.T) {
	// RFC 8601 §3: at most MaxNames forward lookups; the matching name is
	// the 15th, so it is not found.
	r := newResolver()
	got := Check(context.Background(), r, netip.MustParseAddr("192.0.2.8"))
	if got.Status != StatusFail || len(got.Names) != MaxNames {
		t.Fatalf("got %+v", got)
	}
	var forward int
	for _, q := range r.queries {
		if strings.HasPrefix(q, "ip4 ") {
			forward++
		}
	}
	if forward != MaxNames {
		t.Errorf("%d forward lookups: %q", forward, r.queries)
	}
}

func TestCheckNetwork(t *testing.T) {
	// IPv4 clients get A lookups, IPv6 clients AAAA lookups.
	r := newResolver()
	Check(context.Background(), r, netip.MustParseAddr("2001:db8::1"))
	if !slices.Contains(r.queries, "ip6 v6.example") {
		t.Errorf("queries %q", r.queries)
	}
}

func TestCheckCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got := Check(ctx, newResolver(), netip.MustParseAddr("192.0.2.1"))
	if got.Status != StatusTemperror {
		t.Fatalf("got %+v, want temperror", got)
	}
	if got := Check(context.Background(), newResolver(), netip.Addr{}); got.Status != StatusPermerror {
		t.Fatalf("zero address: got %+v", got)
	}
}
