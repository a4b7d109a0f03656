package dmarc

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"moxd/internal/dns"
	"moxd/internal/mailproto/dkim"
	"moxd/internal/mailproto/spf"
)

// fakeResolver answers TXT queries from a map keyed by lower-case name
// without trailing dot; names in fail return that error, names in
// authentic are answered authentically (also when not found), other names
// are not found.
type fakeResolver struct {
	txt       map[string][]string
	authentic map[string]bool
	fail      map[string]*net.DNSError
	queries   []string
}

func notFound(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (f *fakeResolver) LookupTXT(ctx context.Context, name string) ([]string, dns.Result, error) {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	f.queries = append(f.queries, name)
	if err := ctx.Err(); err != nil {
		return nil, dns.Result{}, err
	}
	if err := f.fail[name]; err != nil {
		return nil, dns.Result{}, err
	}
	res := dns.Result{Authentic: f.authentic[name]}
	v, ok := f.txt[name]
	if !ok {
		return nil, res, notFound(name)
	}
	return v, res, nil
}

func (f *fakeResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, dns.Result, error) {
	return nil, dns.Result{}, notFound(name)
}

func (f *fakeResolver) LookupIP(ctx context.Context, network, host string) ([]net.IP, dns.Result, error) {
	return nil, dns.Result{}, notFound(host)
}

func (f *fakeResolver) LookupAddr(ctx context.Context, addr string) ([]string, dns.Result, error) {
	return nil, dns.Result{}, notFound(addr)
}

func (f *fakeResolver) LookupCNAME(ctx context.Context, host string) (string, dns.Result, error) {
	return host, dns.Result{}, nil
}

func (f *fakeResolver) LookupTLSA(ctx context.Context, port int, protocol, host string) ([]dns.TLSA, dns.Result, error) {
	return nil, dns.Result{}, notFound(host)
}

func newResolver() *fakeResolver {
	return &fakeResolver{
		txt: map[string][]string{
			"_dmarc.example.com":        {"v=DMARC1; p=reject; sp=quarantine; rua=mailto:dmarc@example.com"},
			"_dmarc.strict.example":     {"v=DMARC1; p=reject; adkim=s; aspf=s"},
			"_dmarc.sub.strict.example": {"v=DMARC1; p=quarantine; adkim=s; aspf=s"},
			"_dmarc.none.example":       {"v=DMARC1; p=none"},
			"_dmarc.pct.example":        {"v=DMARC1; p=reject; pct=50"},
			"_dmarc.pctq.example":       {"v=DMARC1; p=quarantine; pct=10"},
			"_dmarc.multi.example":      {"v=DMARC1; p=none", "v=DMARC1; p=reject"},
			"_dmarc.mixed.example":      {"v=spf1 -all", "v=DMARC1; p=reject", "other"},
			"_dmarc.nop.example":        {"v=DMARC1; rua=mailto:r@nop.example"},
			"_dmarc.nopnorua.example":   {"v=DMARC1; sp=reject"},
			"_dmarc.direct.example.com": {"v=DMARC1; p=none; sp=reject"},
			"_dmarc.secure.example":     {"v=DMARC1; p=reject"},
		},
		fail: map[string]*net.DNSError{
			"_dmarc.temp.example":      {Err: "server misbehaving", Name: "_dmarc.temp.example", IsTemporary: true},
			"_dmarc.orgtemp.example":   {Err: "i/o timeout", Name: "_dmarc.orgtemp.example", IsTimeout: true},
			"_dmarc.timeout.example":   {Err: "i/o timeout", Name: "_dmarc.timeout.example", IsTimeout: true, IsTemporary: true},
			"_dmarc.x.refused.example": {Err: "refused", Name: "_dmarc.x.refused.example"},
		},
		authentic: map[string]bool{
			"_dmarc.secure.example":     true,
			"_dmarc.sub.secure.example": true,
			"_dmarc.sub.example.com":    true,
		},
	}
}

func spfPass(domain string) spf.Received {
	return spf.Received{Result: spf.StatusPass, Identity: spf.IdentityMailFrom, Domain: domain, MailFrom: "bounce@" + domain}
}

func dkimResult(domain string, st dkim.Status) dkim.Result {
	return dkim.Result{Status: st, Domain: domain, Selector: "sel"}
}

func TestVerify(t *testing.T) {
	never := func() int { panic("Random called without pct") }
	fixed := func(n int) func() int { return func() int { return n } }
	tests := []struct {
		name                   string
		args                   Args
		status                 Status
		reject, quarantine     bool
		sampledOut             bool
		policy, domain         string
		alignedSPF, alignedDKI bool
		authentic              bool
		queries                []string
		reason                 string
	}{
		{name: "aligned SPF only, relaxed",
			args:   Args{FromDomain: "example.com", SPF: spfPass("mail.example.com"), DKIM: []dkim.Result{dkimResult("other.org", dkim.StatusPass)}, Random: never},
			status: StatusPass, policy: "reject", domain: "example.com", alignedSPF: true,
			queries: []string{"_dmarc.example.com"}, reason: "SPF passed aligned"},
		{name: "aligned DKIM only",
			args:   Args{FromDomain: "Example.COM.", SPF: spfPass("other.org"), DKIM: []dkim.Result{dkimResult("other.org", dkim.StatusPass), dkimResult("example.com", dkim.StatusPass)}, Random: never},
			status: StatusPass, policy: "reject", domain: "example.com", alignedDKI: true, reason: "DKIM passed aligned"},
		{name: "both aligned",
			args:   Args{FromDomain: "example.com", SPF: spfPass("example.com"), DKIM: []dkim.Result{dkimResult("example.com", dkim.StatusPass)}, Random: never},
			status: StatusPass, policy: "reject", domain: "example.com", alignedSPF: true, alignedDKI: true, reason: "SPF and DKIM"},
		{name: "fail, reject",
			args:   Args{FromDomain: "example.com", SPF: spfPass("other.org"), DKIM: []dkim.Result{dkimResult("example.com", dkim.StatusFail), dkimResult("other.org", dkim.StatusPass)}, Random: never},
			status: StatusFail, reject: true, policy: "reject", domain: "example.com",
			reason: "DMARC policy of example.com is reject and neither SPF nor DKIM passed aligned with From domain example.com"},
		{name: "aligned SPF softfail is a failure",
			args:   Args{FromDomain: "example.com", SPF: spf.Received{Result: spf.StatusSoftfail, Identity: spf.IdentityMailFrom, Domain: "example.com", MailFrom: "a@example.com"}, Random: never},
			status: StatusFail, reject: true, policy: "reject", domain: "example.com"},
		{name: "null sender: helo identity counts",
			args:   Args{FromDomain: "example.com", SPF: spf.Received{Result: spf.StatusPass, Identity: spf.IdentityHELO, Domain: "mx.example.com"}, Random: never},
			status: StatusPass, policy: "reject", domain: "example.com", alignedSPF: true},
		{name: "separate helo check does not count",
			args:   Args{FromDomain: "example.com", SPF: spf.Received{Result: spf.StatusPass, Identity: spf.IdentityHELO, Domain: "mx.example.com", MailFrom: "a@other.org"}, Random: never},
			status: StatusFail, reject: true, policy: "reject", domain: "example.com"},
		{name: "strict SPF needs the exact domain",
			args:   Args{FromDomain: "strict.example", SPF: spfPass("mail.strict.example"), Random: never},
			status: StatusFail, reject: true, policy: "reject", domain: "strict.example"},
		{name: "strict DKIM needs the exact domain",
			args:   Args{FromDomain: "strict.example", DKIM: []dkim.Result{dkimResult("sub.strict.example", dkim.StatusPass)}, Random: never},
			status: StatusFail, reject: true, policy: "reject", domain: "strict.example"},
		{name: "strict exact match passes",
			args:   Args{FromDomain: "strict.example", SPF: spfPass("STRICT.example"), DKIM: []dkim.Result{dkimResult("strict.example", dkim.StatusPass)}, Random: never},
			status: StatusPass, policy: "reject", domain: "strict.example", alignedSPF: true, alignedDKI: true},
		{name: "strict, subdomain record",
			args:   Args{FromDomain: "sub.strict.example", DKIM: []dkim.Result{dkimResult("strict.example", dkim.StatusPass)}, Random: never},
			status: StatusFail, quarantine: true, policy: "quarantine", domain: "sub.strict.example"},
		{name: "org domain fallback uses sp",
			args:   Args{FromDomain: "sub.example.com", SPF: spfPass("other.org"), Random: never},
			status: StatusFail, quarantine: true, policy: "quarantine", domain: "example.com",
			queries: []string{"_dmarc.sub.example.com", "_dmarc.example.com"}},
		{name: "org domain fallback, relaxed alignment across subdomains",
			args:   Args{FromDomain: "a.sub.example.com", DKIM: []dkim.Result{dkimResult("b.example.com", dkim.StatusPass)}, Random: never},
			status: StatusPass, policy: "quarantine", domain: "example.com", alignedDKI: true,
			queries: []string{"_dmarc.a.sub.example.com", "_dmarc.example.com"}},
		{name: "record at the subdomain itself: p, not sp",
			args:   Args{FromDomain: "direct.example.com", Random: never},
			status: StatusFail, policy: "none", domain: "direct.example.com",
			queries: []string{"_dmarc.direct.example.com"}},
		{name: "p=none fails without action",
			args:   Args{FromDomain: "none.example", SPF: spfPass("other.org"), Random: never},
			status: StatusFail, policy: "none", domain: "none.example"},
		{name: "pct selects",
			args:   Args{FromDomain: "pct.example", Random: fixed(49)},
			status: StatusFail, reject: true, policy: "reject", domain: "pct.example"},
		{name: "pct skips reject: quarantine",
			args:   Args{FromDomain: "pct.example", Random: fixed(50)},
			status: StatusFail, quarantine: true, sampledOut: true, policy: "reject", domain: "pct.example", reason: "pct=50"},
		{name: "pct skips quarantine: none",
			args:   Args{FromDomain: "pctq.example", Random: fixed(10)},
			status: StatusFail, sampledOut: true, policy: "quarantine", domain: "pctq.example"},
		{name: "pct quarantine selected",
			args:   Args{FromDomain: "pctq.example", Random: fixed(9)},
			status: StatusFail, quarantine: true, policy: "quarantine", domain: "pctq.example"},
		{name: "pct with pass does not sample",
			args:   Args{FromDomain: "pct.example", SPF: spfPass("pct.example"), Random: never},
			status: StatusPass, policy: "reject", domain: "pct.example", alignedSPF: true},
		{name: "no record",
			args:   Args{FromDomain: "sub.nothing.example", Random: never},
			status: StatusNone, queries: []string{"_dmarc.sub.nothing.example", "_dmarc.nothing.example"}, reason: "no DMARC record"},
		{name: "no record, org domain itself",
			args:   Args{FromDomain: "nothing.example", Random: never},
			status: StatusNone, queries: []string{"_dmarc.nothing.example"}},
		{name: "servfail",
			args:   Args{FromDomain: "temp.example", SPF: spfPass("temp.example"), Random: never},
			status: StatusTemperror, domain: "temp.example", queries: []string{"_dmarc.temp.example"}},
		{name: "timeout at org domain",
			args:   Args{FromDomain: "a.orgtemp.example", Random: never},
			status: StatusTemperror, domain: "orgtemp.example", queries: []string{"_dmarc.a.orgtemp.example", "_dmarc.orgtemp.example"}},
		{name: "other DNS error is temporary too",
			args:   Args{FromDomain: "x.refused.example", Random: never},
			status: StatusTemperror, domain: "x.refused.example"},
		{name: "multiple records",
			args:   Args{FromDomain: "multi.example", Random: never},
			status: StatusPermerror, domain: "multi.example", reason: "2 DMARC records"},
		{name: "non-DMARC TXT records are ignored",
			args:   Args{FromDomain: "mixed.example", Random: never},
			status: StatusFail, reject: true, policy: "reject", domain: "mixed.example"},
		{name: "no p= but rua: p=none",
			args:   Args{FromDomain: "nop.example", Random: never},
			status: StatusFail, policy: "none", domain: "nop.example"},
		{name: "no p= and no rua: no DMARC",
			args:   Args{FromDomain: "nopnorua.example", Random: never},
			status: StatusPermerror, domain: "nopnorua.example"},
		{name: "aligned temperror, nothing passed",
			args:   Args{FromDomain: "example.com", SPF: spf.Received{Result: spf.StatusTemperror, Identity: spf.IdentityMailFrom, Domain: "example.com", MailFrom: "a@example.com"}, DKIM: []dkim.Result{dkimResult("other.org", dkim.StatusPass)}, Random: never},
			status: StatusTemperror, policy: "reject", domain: "example.com"},
		{name: "aligned DKIM temperror, nothing passed",
			args:   Args{FromDomain: "example.com", DKIM: []dkim.Result{dkimResult("example.com", dkim.StatusTemperror)}, Random: never},
			status: StatusTemperror, policy: "reject", domain: "example.com"},
		{name: "unaligned temperror is a failure",
			args:   Args{FromDomain: "example.com", DKIM: []dkim.Result{dkimResult("other.org", dkim.StatusTemperror)}, Random: never},
			status: StatusFail, reject: true, policy: "reject", domain: "example.com"},
		{name: "aligned pass beats temperror",
			args:   Args{FromDomain: "example.com", SPF: spfPass("example.com"), DKIM: []dkim.Result{dkimResult("example.com", dkim.StatusTemperror)}, Random: never},
			status: StatusPass, policy: "reject", domain: "example.com", alignedSPF: true},
		{name: "authentic",
			args:   Args{FromDomain: "secure.example", Random: never},
			status: StatusFail, reject: true, policy: "reject", domain: "secure.example", authentic: true},
		{name: "authentic after authentic denial",
			args:   Args{FromDomain: "sub.secure.example", Random: never},
			status: StatusFail, reject: true, policy: "reject", domain: "secure.example", authentic: true},
		{name: "insecure org lookup taints",
			args:   Args{FromDomain: "sub.example.com", Random: never},
			status: StatusFail, quarantine: true, policy: "quarantine", domain: "example.com"},
		{name: "no From domain",
			args:   Args{Random: never},
			status: StatusNone, queries: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newResolver()
			got := Verify(context.Background(), r, tt.args)
			if got.Status != tt.status || got.Reject != tt.reject || got.Quarantine != tt.quarantine || got.SampledOut != tt.sampledOut ||
				got.Policy != tt.policy || got.Domain != tt.domain || got.AlignedSPF != tt.alignedSPF || got.AlignedDKIM != tt.alignedDKI ||
				got.Authentic != tt.authentic {
				t.Fatalf("got %+v", got)
			}
			if tt.queries != nil && !reflect.DeepEqual(r.queries, tt.queries) && !(len(tt.queries) == 0 && len(r.queries) == 0) {
				t.Errorf("queries %q, want %q", r.queries, tt.queries)
			}
			if !strings.Contains(got.Reason, tt.reason) || got.Reason == "" {
				t.Errorf("reason %q, want %q", got.Reason, tt.reason)
			}
			if (got.Status == StatusTemperror || got.Status == StatusPermerror) != (got.Err != nil) {
				t.Errorf("status %s with err %v", got.Status, got.Err)
			}
			if (got.Record != nil) != (got.Policy != "") {
				t.Errorf("record %+v with policy %q", got.Record, got.Policy)
			}
		})
	}
}

func TestParseRecord(t *testing.T) {
	def := func(f func(*Record)) *Record {
		r := &Record{Policy: "none", ADKIM: "r", ASPF: "r", Percent: 100, FailureOptions: "0", ReportInterval: 86400}
		f(r)
		return r
	}
	tests := []struct {
		txt  string
		want *Record
	}{
		{"v=DMARC1; p=none", def(func(r *Record) {})},
		{"v=DMARC1;p=reject;sp=none;adkim=s;aspf=s;pct=20;fo=1:d;rua=mailto:a@example.com,mailto:b@example.com!10m;ruf=mailto:f@example.com;ri=3600",
			def(func(r *Record) {
				r.Policy, r.SubdomainPolicy, r.ADKIM, r.ASPF, r.Percent, r.FailureOptions = "reject", "none", "s", "s", 20, "1:d"
				r.RUA = []string{"mailto:a@example.com", "mailto:b@example.com!10m"}
				r.RUF = []string{"mailto:f@example.com"}
				r.ReportInterval = 3600
			})},
		// Case-insensitive names and keywords, white space around "=".
		{"v = DMARC1 ; P = Reject ; ADKIM=S", def(func(r *Record) { r.Policy, r.ADKIM = "reject", "s" })},
		// Invalid optional tags fall back to the defaults; unknown tags
		// are ignored; the first of duplicates counts.
		{"v=DMARC1; p=quarantine; pct=150; adkim=x; fo=z; ri=-1; rf=iodef; np=reject; future=1; p=none",
			def(func(r *Record) { r.Policy = "quarantine" })},
		// Invalid p= with a valid rua=: as if p=none (RFC 7489 §6.6.3).
		{"v=DMARC1; p=bogus; rua=mailto:a@example.com", def(func(r *Record) { r.RUA = []string{"mailto:a@example.com"} })},
		{"v=DMARC1; p=reject; sp=bogus; rua=mailto:a@example.com", def(func(r *Record) { r.RUA = []string{"mailto:a@example.com"} })},
		{"v=DMARC1; p=bogus; rua=notauri", nil},
		{"v=DMARC1; p=reject; sp=bogus", nil},
		{"v=DMARC1", nil},
		{"v=dmarc1; p=none", nil},
		{"p=none; v=DMARC1", nil},
		{"v=DMARC10; p=none", nil},
		{"", nil},
	}
	for _, tt := range tests {
		got, err := parseRecord(tt.txt)
		if tt.want == nil {
			if err == nil {
				t.Errorf("parseRecord(%q) = %+v, want error", tt.txt, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseRecord(%q) = %+v, %v; want %+v", tt.txt, got, err, tt.want)
		}
	}
}

func FuzzParseRecord(f *testing.F) {
	for _, s := range []string{
		"v=DMARC1; p=none", "v=DMARC1; p=reject; sp=quarantine; pct=5; fo=0:1:d:s; rua=mailto:a@b!1g",
		"v=DMARC1;;;p=;", "v=DMARC1; p=bogus; rua=mailto:x", "v=DMARC1; ri=99999999999999999999",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rec, err := parseRecord(s)
		if err != nil {
			return
		}
		if rec.Policy != "none" && rec.Policy != "quarantine" && rec.Policy != "reject" ||
			rec.Percent < 0 || rec.Percent > 100 || rec.ADKIM != "r" && rec.ADKIM != "s" ||
			rec.ASPF != "r" && rec.ASPF != "s" || rec.ReportInterval <= 0 {
			t.Fatalf("parseRecord(%q) = %+v", s, rec)
		}
	})
}

func TestOrganizationalDomain(t *testing.T) {
	for in, want := range map[string]string{
		"example.com": "example.com", "a.b.Example.COM.": "example.com", "x.y.example.co.uk": "example.co.uk",
		"co.uk": "co.uk", "com": "com", "user.github.io": "user.github.io",
	} {
		if got := OrganizationalDomain(in); got != want {
			t.Errorf("OrganizationalDomain(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewEvaluation(t *testing.T) {
	args := Args{
		FromDomain: "sub.example.com",
		SPF: spf.Received{Result: spf.StatusPass, Identity: spf.IdentityMailFrom, Domain: "bounce.other.org",
			MailFrom: "b@Bounce.Other.org", RemoteIP: netip.MustParseAddr("192.0.2.1")},
		DKIM:   []dkim.Result{{Status: dkim.StatusPass, Domain: "other.org", Selector: "s1"}, {Status: dkim.StatusFail, Domain: "example.com", Selector: "s2"}},
		Random: func() int { return 0 },
	}
	res := Verify(context.Background(), newResolver(), args)
	at := time.Unix(1700000000, 0)
	ev := NewEvaluation(args, res, "Example.NET", at)
	want := Evaluation{
		PolicyDomain: "example.com",
		Published: Record{Policy: "reject", SubdomainPolicy: "quarantine", ADKIM: "r", ASPF: "r", Percent: 100,
			FailureOptions: "0", RUA: []string{"mailto:dmarc@example.com"}, ReportInterval: 86400},
		HasRUA:       true,
		Disposition:  "quarantine",
		DKIMAligned:  "fail",
		SPFAligned:   "fail",
		HeaderFrom:   "sub.example.com",
		EnvelopeFrom: "bounce.other.org",
		EnvelopeTo:   "example.net",
		DKIM:         []DKIMAuth{{"other.org", "s1", "pass"}, {"example.com", "s2", "fail"}},
		SPF:          SPFAuth{"bounce.other.org", "mfrom", "pass"},
		SourceIP:     "192.0.2.1",
		Time:         1700000000,
	}
	if !reflect.DeepEqual(ev, want) {
		t.Fatalf("got %+v\nwant %+v", ev, want)
	}
	data, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	const wantJSON = `{"domain":"example.com","published":{"p":"reject","sp":"quarantine","adkim":"r","aspf":"r","pct":100,"fo":"0","rua":["mailto:dmarc@example.com"],"ri":86400},"hasRua":true,"disposition":"quarantine","dkimAligned":"fail","spfAligned":"fail","headerFrom":"sub.example.com","envelopeFrom":"bounce.other.org","envelopeTo":"example.net","dkim":[{"d":"other.org","s":"s1","result":"pass"},{"d":"example.com","s":"s2","result":"fail"}],"spf":{"d":"bounce.other.org","scope":"mfrom","result":"pass"},"ip":"192.0.2.1","time":1700000000}`
	if string(data) != wantJSON {
		t.Errorf("json\n%s\nwant\n%s", data, wantJSON)
	}
	var back Evaluation
	if err := json.Unmarshal(data, &back); err != nil || !reflect.DeepEqual(back, ev) {
		t.Errorf("round trip: %+v, %v", back, err)
	}

	// Sampled out, null sender.
	args = Args{FromDomain: "pct.example", SPF: spf.Received{Result: spf.StatusNone, Identity: spf.IdentityHELO, Domain: "helo.example"}, Random: func() int { return 99 }}
	res = Verify(context.Background(), newResolver(), args)
	ev = NewEvaluation(args, res, "example.net", at)
	if ev.Disposition != "quarantine" || ev.Override != "sampled_out" || ev.SPF.Scope != "helo" || ev.EnvelopeFrom != "" || ev.SourceIP != "" {
		t.Errorf("got %+v", ev)
	}
}
