package spf

import (
	"context"
	"errors"
	"fmt"
	"moxd/internal/mailproto/headerfield"
	"net"
	"net/netip"
	"strings"
	"testing"

	"moxd/internal/dns"
)

// fakeResolver answers from maps keyed by lower-case name without trailing
// dot. A name in fail returns that error for every type; a name absent
// from a map is "not found". Answers are authentic only for names in
// authentic.
type fakeResolver struct {
	txt       map[string][]string
	ip        map[string][]string
	mx        map[string][]*net.MX
	ptr       map[string][]string
	authentic map[string]bool
	fail      map[string]*net.DNSError
	queries   []string
}

func (f *fakeResolver) lookup(ctx context.Context, kind, name string) (dns.Result, error) {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	f.queries = append(f.queries, kind+" "+name)
	if err := ctx.Err(); err != nil {
		return dns.Result{}, err
	}
	if err := f.fail[name]; err != nil {
		return dns.Result{}, err
	}
	return dns.Result{Authentic: f.authentic[name]}, nil
}

func notFound(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (f *fakeResolver) LookupTXT(ctx context.Context, name string) ([]string, dns.Result, error) {
	res, err := f.lookup(ctx, "txt", name)
	if err != nil {
		return nil, res, err
	}
	v, ok := f.txt[strings.TrimSuffix(strings.ToLower(name), ".")]
	if !ok {
		return nil, res, notFound(name)
	}
	return v, res, nil
}

func (f *fakeResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, dns.Result, error) {
	res, err := f.lookup(ctx, "mx", name)
	if err != nil {
		return nil, res, err
	}
	v, ok := f.mx[strings.TrimSuffix(strings.ToLower(name), ".")]
	if !ok {
		return nil, res, notFound(name)
	}
	return v, res, nil
}

func (f *fakeResolver) LookupIP(ctx context.Context, network, host string) ([]net.IP, dns.Result, error) {
	res, err := f.lookup(ctx, network, host)
	if err != nil {
		return nil, res, err
	}
	var ips []net.IP
	for _, s := range f.ip[strings.TrimSuffix(strings.ToLower(host), ".")] {
		ip := net.ParseIP(s)
		v4 := ip.To4() != nil
		if network == "ip" || network == "ip4" && v4 || network == "ip6" && !v4 {
			ips = append(ips, ip)
		}
	}
	if len(ips) == 0 {
		return nil, res, notFound(host)
	}
	return ips, res, nil
}

func (f *fakeResolver) LookupAddr(ctx context.Context, addr string) ([]string, dns.Result, error) {
	res, err := f.lookup(ctx, "ptr", addr)
	if err != nil {
		return nil, res, err
	}
	v, ok := f.ptr[addr]
	if !ok {
		return nil, res, notFound(addr)
	}
	return v, res, nil
}

func (f *fakeResolver) LookupCNAME(ctx context.Context, host string) (string, dns.Result, error) {
	return strings.TrimSuffix(host, "."), dns.Result{}, nil
}

func (f *fakeResolver) LookupTLSA(ctx context.Context, port int, protocol, host string) ([]dns.TLSA, dns.Result, error) {
	return nil, dns.Result{}, notFound(host)
}

// nibbles is the %{i} macro expansion of an IPv6 address (RFC 7208 §7.3).
func nibbles(ip string) string {
	var parts []string
	for _, b := range netip.MustParseAddr(ip).As16() {
		parts = append(parts, fmt.Sprintf("%x", b>>4), fmt.Sprintf("%x", b&0xf))
	}
	return strings.Join(parts, ".")
}

var servfail = &net.DNSError{Err: "server misbehaving", Name: "x", IsTemporary: true}

func newResolver() *fakeResolver {
	return &fakeResolver{
		txt: map[string][]string{
			"example.com":         {"v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 include:_spf.example.net -all"},
			"_spf.example.net":    {"v=spf1 a:out.example.net ~all"},
			"soft.example":        {"some other record", "v=spf1 ~all"},
			"neutral.example":     {"v=spf1 ?all"},
			"double.example":      {"v=spf1 -all", "v=spf1 +all"},
			"broken.example":      {"v=spf1 ip4:300.1.1.1 -all"},
			"mx.example":          {"v=spf1 mx -all"},
			"exists.example":      {"v=spf1 exists:%{i}._spf.exists.example -all"},
			"helo.example.org":    {"v=spf1 a -all"},
			"tempinc.example":     {"v=spf1 include:down.example -all"},
			"loop.example":        {"v=spf1 include:loop.example -all"},
			"many.example":        {"v=spf1 a:a1.example a:a2.example a:a3.example a:a4.example a:a5.example a:a6.example a:a7.example a:a8.example a:a9.example a:a10.example a:a11.example -all"},
			"macro.example":       {"v=spf1 exists:%{l}.users.macro.example -all"},
			"upper.example":       {"V=SPF1 IP4:192.0.2.7 -ALL"},
			"redirect.example":    {"v=spf1 redirect=example.com"},
			"insecureinc.example": {"v=spf1 include:_spf.example.net -all"},
		},
		ip: map[string][]string{
			"out.example.net":  {"198.51.100.9", "2001:db8:1::9"},
			"mx1.mx.example":   {"203.0.113.5"},
			"helo.example.org": {"203.0.113.25"},
			nibbles("2001:db8::1") + "._spf.exists.example": {"127.0.0.2"},
			"alice.users.macro.example":                     {"127.0.0.2"},
		},
		mx: map[string][]*net.MX{
			"mx.example": {{Host: "mx1.mx.example.", Pref: 10}},
		},
		fail: map[string]*net.DNSError{
			"temp.example": servfail,
			"down.example": servfail,
		},
		authentic: map[string]bool{
			"example.com":      true,
			"_spf.example.net": true,
			"out.example.net":  true,
			"soft.example":     true,
		},
	}
}

func TestVerify(t *testing.T) {
	tests := []struct {
		name      string
		args      Args
		want      Status
		identity  Identity
		domain    string
		authentic bool
		noLookups bool
		errSub    string
	}{
		{"ip4 pass", Args{RemoteIP: netip.MustParseAddr("192.0.2.10"), MailFromLocalpart: "a", MailFromDomain: "example.com", HelloDomain: "h.example.com"}, StatusPass, IdentityMailFrom, "example.com", true, false, ""},
		{"v4-mapped v6 client", Args{RemoteIP: netip.MustParseAddr("::ffff:192.0.2.10"), MailFromLocalpart: "a", MailFromDomain: "EXAMPLE.com.", HelloDomain: "h"}, StatusPass, IdentityMailFrom, "example.com", true, false, ""},
		{"ip6 pass", Args{RemoteIP: netip.MustParseAddr("2001:db8::1"), MailFromLocalpart: "a", MailFromDomain: "example.com"}, StatusPass, IdentityMailFrom, "example.com", true, false, ""},
		{"include a pass v4", Args{RemoteIP: netip.MustParseAddr("198.51.100.9"), MailFromLocalpart: "a", MailFromDomain: "example.com"}, StatusPass, IdentityMailFrom, "example.com", true, false, ""},
		{"include a pass v6", Args{RemoteIP: netip.MustParseAddr("2001:db8:1::9"), MailFromLocalpart: "a", MailFromDomain: "example.com"}, StatusPass, IdentityMailFrom, "example.com", true, false, ""},
		{"fail", Args{RemoteIP: netip.MustParseAddr("203.0.113.1"), MailFromLocalpart: "a", MailFromDomain: "example.com"}, StatusFail, IdentityMailFrom, "example.com", true, false, ""},
		{"softfail", Args{RemoteIP: netip.MustParseAddr("203.0.113.1"), MailFromLocalpart: "a", MailFromDomain: "soft.example"}, StatusSoftfail, IdentityMailFrom, "soft.example", true, false, ""},
		{"neutral, not authentic", Args{RemoteIP: netip.MustParseAddr("203.0.113.1"), MailFromLocalpart: "a", MailFromDomain: "neutral.example"}, StatusNeutral, IdentityMailFrom, "neutral.example", false, false, ""},
		{"no record", Args{RemoteIP: netip.MustParseAddr("203.0.113.1"), MailFromLocalpart: "a", MailFromDomain: "nothing.example"}, StatusNone, IdentityMailFrom, "nothing.example", false, false, ""},
		{"servfail", Args{RemoteIP: netip.MustParseAddr("203.0.113.1"), MailFromLocalpart: "a", MailFromDomain: "temp.example"}, StatusTemperror, IdentityMailFrom, "temp.example", false, false, "server misbehaving"},
		{"servfail in include", Args{RemoteIP: netip.MustParseAddr("203.0.113.1"), MailFromLocalpart: "a", MailFromDomain: "tempinc.example"}, StatusTemperror, IdentityMailFrom, "tempinc.example", false, false, ""},
		{"two records", Args{RemoteIP: netip.MustParseAddr("203.0.113.1"), MailFromLocalpart: "a", MailFromDomain: "double.example"}, StatusPermerror, IdentityMailFrom, "double.example", false, false, "multiple"},
		{"syntax error", Args{RemoteIP: netip.MustParseAddr("203.0.113.1"), MailFromLocalpart: "a", MailFromDomain: "broken.example"}, StatusPermerror, IdentityMailFrom, "broken.example", false, false, ""},
		{"include loop hits lookup limit", Args{RemoteIP: netip.MustParseAddr("203.0.113.1"), MailFromLocalpart: "a", MailFromDomain: "loop.example"}, StatusPermerror, IdentityMailFrom, "loop.example", false, false, "limit"},
		{"eleven a mechanisms", Args{RemoteIP: netip.MustParseAddr("203.0.113.1"), MailFromLocalpart: "a", MailFromDomain: "many.example"}, StatusPermerror, IdentityMailFrom, "many.example", false, false, "limit"},
		{"mx pass", Args{RemoteIP: netip.MustParseAddr("203.0.113.5"), MailFromLocalpart: "a", MailFromDomain: "mx.example"}, StatusPass, IdentityMailFrom, "mx.example", false, false, ""},
		{"exists uses A for v6 client", Args{RemoteIP: netip.MustParseAddr("2001:db8::1"), MailFromLocalpart: "a", MailFromDomain: "exists.example"}, StatusPass, IdentityMailFrom, "exists.example", false, false, ""},
		{"local-part macro", Args{RemoteIP: netip.MustParseAddr("203.0.113.1"), MailFromLocalpart: "alice", MailFromDomain: "macro.example"}, StatusPass, IdentityMailFrom, "macro.example", false, false, ""},
		{"local-part macro other user", Args{RemoteIP: netip.MustParseAddr("203.0.113.1"), MailFromLocalpart: "bob", MailFromDomain: "macro.example"}, StatusFail, IdentityMailFrom, "macro.example", false, false, ""},
		{"upper case record", Args{RemoteIP: netip.MustParseAddr("192.0.2.7"), MailFromLocalpart: "a", MailFromDomain: "upper.example"}, StatusPass, IdentityMailFrom, "upper.example", false, false, ""},
		{"redirect", Args{RemoteIP: netip.MustParseAddr("192.0.2.1"), MailFromLocalpart: "a", MailFromDomain: "redirect.example"}, StatusPass, IdentityMailFrom, "redirect.example", false, false, ""},
		{"insecure link taints", Args{RemoteIP: netip.MustParseAddr("198.51.100.9"), MailFromLocalpart: "a", MailFromDomain: "insecureinc.example"}, StatusPass, IdentityMailFrom, "insecureinc.example", false, false, ""},
		{"null sender checks helo", Args{RemoteIP: netip.MustParseAddr("203.0.113.25"), HelloDomain: "helo.example.org"}, StatusPass, IdentityHELO, "helo.example.org", false, false, ""},
		{"null sender helo fail", Args{RemoteIP: netip.MustParseAddr("203.0.113.26"), HelloDomain: "Helo.Example.Org"}, StatusFail, IdentityHELO, "helo.example.org", false, false, ""},
		{"null sender address literal helo", Args{RemoteIP: netip.MustParseAddr("203.0.113.25"), HelloDomain: "[203.0.113.25]"}, StatusNone, IdentityHELO, "", false, true, ""},
		{"null sender single-label helo", Args{RemoteIP: netip.MustParseAddr("203.0.113.25"), HelloDomain: "localhost"}, StatusNone, IdentityHELO, "localhost", false, true, ""},
		{"mail from address literal", Args{RemoteIP: netip.MustParseAddr("203.0.113.25"), MailFromLocalpart: "a", MailFromDomain: "[203.0.113.25]"}, StatusNone, IdentityMailFrom, "[203.0.113.25]", false, true, ""},
		{"label too long", Args{RemoteIP: netip.MustParseAddr("203.0.113.25"), MailFromLocalpart: "a", MailFromDomain: strings.Repeat("a", 64) + ".example"}, StatusNone, IdentityMailFrom, strings.Repeat("a", 64) + ".example", false, true, ""},
		{"invalid ip", Args{MailFromLocalpart: "a", MailFromDomain: "example.com"}, StatusPermerror, IdentityMailFrom, "example.com", false, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newResolver()
			got := Verify(context.Background(), r, tt.args)
			if got.Result != tt.want || got.Identity != tt.identity || got.Domain != tt.domain || got.Authentic != tt.authentic {
				t.Fatalf("got result %q identity %q domain %q authentic %v (err %v), want %q %q %q %v",
					got.Result, got.Identity, got.Domain, got.Authentic, got.Err, tt.want, tt.identity, tt.domain, tt.authentic)
			}
			if tt.noLookups != (len(r.queries) == 0) {
				t.Errorf("queries %q, want lookups: %v", r.queries, !tt.noLookups)
			}
			if (got.Result == StatusTemperror || got.Result == StatusPermerror) != (got.Err != nil) {
				t.Errorf("result %q with err %v", got.Result, got.Err)
			}
			if tt.errSub != "" && (got.Err == nil || !strings.Contains(got.Err.Error(), tt.errSub)) {
				t.Errorf("err %v, want it to mention %q", got.Err, tt.errSub)
			}
			if got.Explanation == "" {
				t.Errorf("no explanation")
			}
		})
	}
}

func TestVerifyCanceledContext(t *testing.T) {
	// A resolver error that is not a *net.DNSError (here the context's)
	// must become a temperror, never a permanent result.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got := Verify(ctx, newResolver(), Args{RemoteIP: netip.MustParseAddr("192.0.2.10"), MailFromLocalpart: "a", MailFromDomain: "example.com"})
	if got.Result != StatusTemperror || got.Err == nil {
		t.Fatalf("got %q, %v; want temperror", got.Result, got.Err)
	}
}

func TestHeader(t *testing.T) {
	tests := []struct {
		name string
		rcv  Received
		want string
	}{
		{
			"pass",
			Received{Result: StatusPass, Identity: IdentityMailFrom, Domain: "example.com",
				Explanation: "domain of a@example.com designates 192.0.2.1 as permitted sender",
				RemoteIP:    netip.MustParseAddr("192.0.2.1"), MailFrom: "a@example.com",
				HelloDomain: "mail.example.com", Receiver: "mx.example.org"},
			"Received-SPF: pass (mx.example.org: domain of a@example.com designates\r\n" +
				"\t192.0.2.1 as permitted sender) receiver=mx.example.org; client-ip=192.0.2.1;\r\n" +
				"\tenvelope-from=\"a@example.com\"; helo=mail.example.com; identity=mailfrom\r\n",
		},
		{
			"null sender, ipv6, address literal helo, problem",
			Received{Result: StatusTemperror, Identity: IdentityHELO, Domain: "",
				Explanation: "temporary error",
				RemoteIP:    netip.MustParseAddr("2001:db8::1"), HelloDomain: "[IPv6:2001:db8::1]",
				Receiver: "mx.example.org", Err: errors.New(`lookup "x" (y)`)},
			"Received-SPF: temperror (mx.example.org: temporary error)\r\n" +
				"\treceiver=mx.example.org; client-ip=\"2001:db8::1\"; envelope-from=\"\";\r\n" +
				"\thelo=\"[IPv6:2001:db8::1]\"; identity=helo; problem=\"lookup \\\"x\\\" (y)\"\r\n",
		},
		{
			"comment escaping",
			Received{Result: StatusNone, Explanation: "odd (text) \\ here\x01"},
			"Received-SPF: none (odd \\(text\\) \\\\ here?) envelope-from=\"\"\r\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.rcv.Header()
			if got != tt.want {
				t.Fatalf("got\n%q\nwant\n%q", got, tt.want)
			}
			checkFolding(t, got)
		})
	}
}

// checkFolding checks CRLF line ends, continuation lines starting with
// white space, and lines of at most 78 characters.
func checkFolding(t *testing.T, h string) {
	t.Helper()
	if !strings.HasSuffix(h, "\r\n") {
		t.Errorf("header %q does not end in CRLF", h)
	}
	lines := strings.Split(strings.TrimSuffix(h, "\r\n"), "\r\n")
	for i, l := range lines {
		if strings.ContainsAny(l, "\r\n") {
			t.Errorf("bare CR or LF in line %q", l)
		}
		if len(l) > headerfield.MaxLine {
			t.Errorf("line %q is %d long", l, len(l))
		}
		if i > 0 && (l == "" || (l[0] != '\t' && l[0] != ' ')) {
			t.Errorf("continuation line %q does not start with white space", l)
		}
	}
}

func TestHeaderFromVerify(t *testing.T) {
	// A header built from a real evaluation folds cleanly and names the
	// explanation.
	got := Verify(context.Background(), newResolver(), Args{
		RemoteIP: netip.MustParseAddr("203.0.113.1"), MailFromLocalpart: "someone.with.a.long.name",
		MailFromDomain: "example.com", HelloDomain: "client.example.net", LocalHostname: "mx.example.org"})
	h := got.Header()
	checkFolding(t, h)
	unfolded := strings.ReplaceAll(h, "\r\n\t", " ")
	want := "Received-SPF: fail (mx.example.org: domain of someone.with.a.long.name@example.com does not designate 203.0.113.1 as permitted sender) receiver=mx.example.org; client-ip=203.0.113.1; envelope-from=\"someone.with.a.long.name@example.com\"; helo=client.example.net; identity=mailfrom\r\n"
	if unfolded != want {
		t.Fatalf("got\n%q\nwant\n%q", unfolded, want)
	}
}

func TestHeaderLongProblem(t *testing.T) {
	// A long error folds inside the quoted problem string and is cut.
	rcv := Received{Result: StatusPermerror, Identity: IdentityMailFrom, Domain: "example.com",
		Explanation: "permanent error in SPF record of a@example.com", RemoteIP: netip.MustParseAddr("192.0.2.1"),
		MailFrom: "a@example.com", HelloDomain: "h.example.com", Receiver: "mx.example.org",
		Err: errors.New(strings.Repeat("lookup  failed ", 30))}
	h := rcv.Header()
	checkFolding(t, h)
	unfolded := strings.ReplaceAll(h, "\r\n\t", " ")
	if !strings.Contains(unfolded, `problem="`+strings.Repeat("lookup failed ", 14)+`look..."`) {
		t.Errorf("problem not folded and cut: %q", unfolded)
	}
}
