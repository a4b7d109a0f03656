package dane

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"moxd/internal/dns"
)

// answer is a fake DNS answer: records (or a CNAME target), its
// authenticity, and an error; a zero answer is an insecure NXDOMAIN.
type answer struct {
	tlsa      []dns.TLSA
	ips       []string
	cname     string
	authentic bool
	nx        bool // not found, with authentic telling whether the denial was
	err       error
}

// fakeResolver answers from maps keyed by lower-case name without trailing
// dot ("_25._tcp.mx.example.org" for TLSA) and records the questions.
type fakeResolver struct {
	mu      sync.Mutex
	ip      map[string]answer
	cname   map[string]answer
	tlsa    map[string]answer
	queries []string
}

func notFound(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func servfail(name string) error {
	return &net.DNSError{Err: "server failure (SERVFAIL)", Name: name, IsTemporary: true}
}

func (f *fakeResolver) get(ctx context.Context, m map[string]answer, q, name string) (answer, dns.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	f.queries = append(f.queries, q+" "+name)
	if err := ctx.Err(); err != nil {
		return answer{}, dns.Result{}, &net.DNSError{Err: err.Error(), Name: name, IsTemporary: true}
	}
	a, ok := m[name]
	switch {
	case a.err != nil:
		return a, dns.Result{}, a.err
	case !ok || a.nx:
		return a, dns.Result{Authentic: a.authentic}, notFound(name)
	}
	return a, dns.Result{Authentic: a.authentic}, nil
}

func (f *fakeResolver) LookupIP(ctx context.Context, network, host string) ([]net.IP, dns.Result, error) {
	a, res, err := f.get(ctx, f.ip, "ip", host)
	if err != nil {
		return nil, res, err
	}
	var l []net.IP
	for _, s := range a.ips {
		l = append(l, net.ParseIP(s))
	}
	return l, res, nil
}

func (f *fakeResolver) LookupCNAME(ctx context.Context, host string) (string, dns.Result, error) {
	a, res, err := f.get(ctx, f.cname, "cname", host)
	if err != nil {
		return "", res, err
	}
	return a.cname, res, nil
}

func (f *fakeResolver) LookupTLSA(ctx context.Context, port int, protocol, host string) ([]dns.TLSA, dns.Result, error) {
	a, res, err := f.get(ctx, f.tlsa, "tlsa", "_"+strconv.Itoa(port)+"._"+protocol+"."+host)
	if err != nil {
		return nil, res, err
	}
	return slices.Clone(a.tlsa), res, nil
}

func (f *fakeResolver) LookupTXT(ctx context.Context, name string) ([]string, dns.Result, error) {
	return nil, dns.Result{}, notFound(name)
}

func (f *fakeResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, dns.Result, error) {
	return nil, dns.Result{}, notFound(name)
}

func (f *fakeResolver) LookupAddr(ctx context.Context, addr string) ([]string, dns.Result, error) {
	return nil, dns.Result{}, notFound(addr)
}

func TestLookup(t *testing.T) {
	ee := dns.TLSA{Usage: 3, Selector: 1, MatchingType: 1, CertData: make([]byte, 32)}
	ta := dns.TLSA{Usage: 2, Selector: 0, MatchingType: 2, CertData: make([]byte, 64)}
	full := dns.TLSA{Usage: 2, Selector: 1, MatchingType: 0, CertData: []byte{1, 2, 3}}
	unusable := []dns.TLSA{
		{Usage: 0, Selector: 0, MatchingType: 1, CertData: make([]byte, 32)}, // PKIX-TA
		{Usage: 1, Selector: 1, MatchingType: 1, CertData: make([]byte, 32)}, // PKIX-EE
		{Usage: 4, Selector: 1, MatchingType: 1, CertData: make([]byte, 32)}, // unknown usage
		{Usage: 3, Selector: 2, MatchingType: 1, CertData: make([]byte, 32)}, // unknown selector
		{Usage: 3, Selector: 1, MatchingType: 3, CertData: make([]byte, 32)}, // unknown matching type
		{Usage: 3, Selector: 1, MatchingType: 1, CertData: make([]byte, 31)}, // short digest
		{Usage: 3, Selector: 1, MatchingType: 2, CertData: make([]byte, 32)}, // SHA-512 of SHA-256 length
		{Usage: 2, Selector: 0, MatchingType: 0},                             // empty
	}
	secureIP := answer{ips: []string{"192.0.2.1"}, authentic: true}
	noCNAME := func(host string) answer { return answer{cname: host, authentic: true} }

	tests := []struct {
		name     string
		host     string
		mxSecure bool
		ip       map[string]answer
		cname    map[string]answer
		tlsa     map[string]answer
		want     Result
		err      string   // error must contain this
		queries  []string // questions asked, in order
	}{
		{
			name: "DANE", host: "MX.Example.Org.", mxSecure: true,
			ip:      map[string]answer{"mx.example.org": secureIP},
			cname:   map[string]answer{"mx.example.org": noCNAME("mx.example.org")},
			tlsa:    map[string]answer{"_25._tcp.mx.example.org": {tlsa: []dns.TLSA{ee, ta, full}, authentic: true}},
			want:    Result{Records: []dns.TLSA{ee, ta, full}, Base: "mx.example.org", Secure: true},
			queries: []string{"ip mx.example.org", "cname mx.example.org", "tlsa _25._tcp.mx.example.org"},
		},
		{
			name: "insecure MX", host: "mx.example.org", mxSecure: false,
			ip:   map[string]answer{"mx.example.org": secureIP},
			tlsa: map[string]answer{"_25._tcp.mx.example.org": {tlsa: []dns.TLSA{ee}, authentic: true}},
			want: Result{Base: "mx.example.org"},
		},
		{
			name: "insecure MX host addresses", host: "mx.example.org", mxSecure: true,
			ip:      map[string]answer{"mx.example.org": {ips: []string{"192.0.2.1"}}},
			tlsa:    map[string]answer{"_25._tcp.mx.example.org": {tlsa: []dns.TLSA{ee}, authentic: true}},
			want:    Result{Base: "mx.example.org"},
			queries: []string{"ip mx.example.org"},
		},
		{
			name: "address lookup fails", host: "mx.example.org", mxSecure: true,
			ip:      map[string]answer{"mx.example.org": {err: servfail("mx.example.org")}},
			err:     "address lookup for mx.example.org: lookup mx.example.org: server failure",
			queries: []string{"ip mx.example.org"},
		},
		{
			name: "host without addresses", host: "mx.example.org", mxSecure: true,
			ip:  map[string]answer{"mx.example.org": {nx: true, authentic: true}},
			err: "address lookup for mx.example.org",
		},
		{
			name: "authentic NXDOMAIN", host: "mx.example.org", mxSecure: true,
			ip:    map[string]answer{"mx.example.org": secureIP},
			cname: map[string]answer{"mx.example.org": noCNAME("mx.example.org")},
			tlsa:  map[string]answer{"_25._tcp.mx.example.org": {nx: true, authentic: true}},
			want:  Result{Base: "mx.example.org", Secure: true},
		},
		{
			name: "insecure NXDOMAIN", host: "mx.example.org", mxSecure: true,
			ip:    map[string]answer{"mx.example.org": secureIP},
			cname: map[string]answer{"mx.example.org": noCNAME("mx.example.org")},
			want:  Result{Base: "mx.example.org"},
		},
		{
			name: "insecure records", host: "mx.example.org", mxSecure: true,
			ip:    map[string]answer{"mx.example.org": secureIP},
			cname: map[string]answer{"mx.example.org": noCNAME("mx.example.org")},
			tlsa:  map[string]answer{"_25._tcp.mx.example.org": {tlsa: []dns.TLSA{ee}}},
			want:  Result{Base: "mx.example.org"},
		},
		{
			name: "SERVFAIL", host: "mx.example.org", mxSecure: true,
			ip:    map[string]answer{"mx.example.org": secureIP},
			cname: map[string]answer{"mx.example.org": noCNAME("mx.example.org")},
			tlsa:  map[string]answer{"_25._tcp.mx.example.org": {err: servfail("_25._tcp.mx.example.org")}},
			err:   "dane: TLSA lookup for _25._tcp.mx.example.org: lookup _25._tcp.mx.example.org: server failure (SERVFAIL)",
		},
		{
			name: "CNAME lookup fails", host: "mx.example.org", mxSecure: true,
			ip:    map[string]answer{"mx.example.org": secureIP},
			cname: map[string]answer{"mx.example.org": {err: servfail("mx.example.org")}},
			err:   "CNAME lookup for mx.example.org",
		},
		{
			name: "all unusable", host: "mx.example.org", mxSecure: true,
			ip:    map[string]answer{"mx.example.org": secureIP},
			cname: map[string]answer{"mx.example.org": noCNAME("mx.example.org")},
			tlsa:  map[string]answer{"_25._tcp.mx.example.org": {tlsa: unusable, authentic: true}},
			want:  Result{Base: "mx.example.org", Secure: true, AllUnusable: true},
		},
		{
			name: "unusable filtered", host: "mx.example.org", mxSecure: true,
			ip:    map[string]answer{"mx.example.org": secureIP},
			cname: map[string]answer{"mx.example.org": noCNAME("mx.example.org")},
			tlsa:  map[string]answer{"_25._tcp.mx.example.org": {tlsa: append(slices.Clone(unusable), ta), authentic: true}},
			want:  Result{Records: []dns.TLSA{ta}, Base: "mx.example.org", Secure: true},
		},
		{
			name: "CNAME expansion", host: "mx.example.org", mxSecure: true,
			ip:    map[string]answer{"mx.example.org": secureIP},
			cname: map[string]answer{"mx.example.org": {cname: "MX.Hoster.Net.", authentic: true}},
			tlsa: map[string]answer{
				"_25._tcp.mx.hoster.net":  {tlsa: []dns.TLSA{ee}, authentic: true},
				"_25._tcp.mx.example.org": {tlsa: []dns.TLSA{ta}, authentic: true},
			},
			want:    Result{Records: []dns.TLSA{ee}, Base: "mx.hoster.net", Secure: true},
			queries: []string{"ip mx.example.org", "cname mx.example.org", "tlsa _25._tcp.mx.hoster.net"},
		},
		{
			name: "CNAME expansion denied, original name", host: "mx.example.org", mxSecure: true,
			ip:    map[string]answer{"mx.example.org": secureIP},
			cname: map[string]answer{"mx.example.org": {cname: "mx.hoster.net", authentic: true}},
			tlsa: map[string]answer{
				"_25._tcp.mx.hoster.net":  {nx: true, authentic: true},
				"_25._tcp.mx.example.org": {tlsa: []dns.TLSA{ta}, authentic: true},
			},
			want:    Result{Records: []dns.TLSA{ta}, Base: "mx.example.org", Secure: true},
			queries: []string{"ip mx.example.org", "cname mx.example.org", "tlsa _25._tcp.mx.hoster.net", "tlsa _25._tcp.mx.example.org"},
		},
		{
			name: "CNAME expansion insecure, original name", host: "mx.example.org", mxSecure: true,
			ip:    map[string]answer{"mx.example.org": secureIP},
			cname: map[string]answer{"mx.example.org": {cname: "mx.hoster.net", authentic: true}},
			tlsa: map[string]answer{
				"_25._tcp.mx.hoster.net":  {tlsa: []dns.TLSA{ee}},
				"_25._tcp.mx.example.org": {tlsa: []dns.TLSA{ta}, authentic: true},
			},
			want: Result{Records: []dns.TLSA{ta}, Base: "mx.example.org", Secure: true},
		},
		{
			name: "CNAME expansion and original denied", host: "mx.example.org", mxSecure: true,
			ip:    map[string]answer{"mx.example.org": secureIP},
			cname: map[string]answer{"mx.example.org": {cname: "mx.hoster.net", authentic: true}},
			tlsa: map[string]answer{
				"_25._tcp.mx.hoster.net":  {nx: true, authentic: true},
				"_25._tcp.mx.example.org": {nx: true, authentic: true},
			},
			want: Result{Base: "mx.example.org", Secure: true},
		},
		{
			name: "CNAME expansion SERVFAIL", host: "mx.example.org", mxSecure: true,
			ip:    map[string]answer{"mx.example.org": secureIP},
			cname: map[string]answer{"mx.example.org": {cname: "mx.hoster.net", authentic: true}},
			tlsa: map[string]answer{
				"_25._tcp.mx.hoster.net":  {err: servfail("_25._tcp.mx.hoster.net")},
				"_25._tcp.mx.example.org": {tlsa: []dns.TLSA{ta}, authentic: true},
			},
			err:     "TLSA lookup for _25._tcp.mx.hoster.net",
			queries: []string{"ip mx.example.org", "cname mx.example.org", "tlsa _25._tcp.mx.hoster.net"},
		},
		{
			name: "insecure CNAME not followed", host: "mx.example.org", mxSecure: true,
			ip:    map[string]answer{"mx.example.org": secureIP},
			cname: map[string]answer{"mx.example.org": {cname: "mx.hoster.net"}},
			tlsa: map[string]answer{
				"_25._tcp.mx.hoster.net":  {tlsa: []dns.TLSA{ee}, authentic: true},
				"_25._tcp.mx.example.org": {tlsa: []dns.TLSA{ta}, authentic: true},
			},
			want:    Result{Records: []dns.TLSA{ta}, Base: "mx.example.org", Secure: true},
			queries: []string{"ip mx.example.org", "cname mx.example.org", "tlsa _25._tcp.mx.example.org"},
		},
		{
			name: "empty host", host: ".", mxSecure: true, err: "empty host name",
		},
	}
	for _, tt := range tests {
		r := &fakeResolver{ip: tt.ip, cname: tt.cname, tlsa: tt.tlsa}
		got, err := Lookup(context.Background(), r, tt.host, 25, tt.mxSecure)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.err)
			}
		} else if err != nil {
			t.Errorf("%s: %v", tt.name, err)
		} else if !equalResult(got, tt.want) {
			t.Errorf("%s: got %+v, want %+v", tt.name, got, tt.want)
		}
		if tt.queries != nil && !slices.Equal(r.queries, tt.queries) {
			t.Errorf("%s: queries %q, want %q", tt.name, r.queries, tt.queries)
		}
		if !tt.mxSecure && len(r.queries) > 0 {
			t.Errorf("%s: queries %q with an insecure MX", tt.name, r.queries)
		}
	}
}

func equalResult(a, b Result) bool {
	return a.Base == b.Base && a.Secure == b.Secure && a.AllUnusable == b.AllUnusable &&
		slices.EqualFunc(a.Records, b.Records, func(x, y dns.TLSA) bool { return FormatRecord(x) == FormatRecord(y) })
}

func TestLookupTemporaryErrorIsDNSError(t *testing.T) {
	r := &fakeResolver{
		ip:    map[string]answer{"mx.example.org": {ips: []string{"192.0.2.1"}, authentic: true}},
		cname: map[string]answer{"mx.example.org": {cname: "mx.example.org", authentic: true}},
		tlsa:  map[string]answer{"_25._tcp.mx.example.org": {err: servfail("_25._tcp.mx.example.org")}},
	}
	_, err := Lookup(context.Background(), r, "mx.example.org", 25, true)
	var de *net.DNSError
	if !errors.As(err, &de) || !de.IsTemporary {
		t.Errorf("error %v does not unwrap to a temporary *net.DNSError", err)
	}
}

func TestLookupCanceled(t *testing.T) {
	r := &fakeResolver{
		ip: map[string]answer{"mx.example.org": {ips: []string{"192.0.2.1"}, authentic: true}},
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Lookup(ctx, r, "mx.example.org", 25, true); err == nil {
		t.Errorf("Lookup with a canceled context succeeded")
	}
}

func TestLookupPort(t *testing.T) {
	r := &fakeResolver{
		ip:    map[string]answer{"mx.example.org": {ips: []string{"192.0.2.1"}, authentic: true}},
		cname: map[string]answer{"mx.example.org": {cname: "mx.example.org", authentic: true}},
		tlsa:  map[string]answer{"_465._tcp.mx.example.org": {nx: true, authentic: true}},
	}
	if _, err := Lookup(context.Background(), r, "mx.example.org", 465, true); err != nil {
		t.Errorf("port 465: %v", err)
	}
	if want := "tlsa _465._tcp.mx.example.org"; r.queries[len(r.queries)-1] != want {
		t.Errorf("queries %q, want last %q", r.queries, want)
	}
	for _, port := range []int{0, -1, 65536} {
		if _, err := Lookup(context.Background(), r, "mx.example.org", port, true); err == nil {
			t.Errorf("port %d accepted", port)
		}
	}
}
