package authres

import (
	"errors"
	"moxd/internal/mailproto/headerfield"
	"net/netip"
	"strings"
	"testing"

	msgauthres "github.com/emersion/go-msgauth/authres"

	"moxd/internal/mailproto/dkim"
	"moxd/internal/mailproto/dmarc"
	"moxd/internal/mailproto/iprev"
	"moxd/internal/mailproto/spf"
)

// checkFolding checks CRLF line ends, continuation lines starting with a
// tab, and lines of at most 78 characters.
func checkFolding(t *testing.T, h string) {
	t.Helper()
	if !strings.HasSuffix(h, "\r\n") {
		t.Errorf("header %q does not end in CRLF", h)
	}
	for i, l := range strings.Split(strings.TrimSuffix(h, "\r\n"), "\r\n") {
		if strings.ContainsAny(l, "\r\n") {
			t.Errorf("bare CR or LF in %q", l)
		}
		if len(l) > headerfield.MaxLine {
			t.Errorf("line %q is %d long", l, len(l))
		}
		if i > 0 && !strings.HasPrefix(l, "\t") {
			t.Errorf("continuation %q does not start with a tab", l)
		}
	}
}

// parse unfolds h and parses it with go-msgauth.
func parse(t *testing.T, h string) (string, []msgauthres.Result) {
	t.Helper()
	v, ok := strings.CutPrefix(h, "Authentication-Results:")
	if !ok {
		t.Fatalf("header %q has the wrong name", h)
	}
	v = strings.ReplaceAll(strings.TrimSuffix(v, "\r\n"), "\r\n", "")
	id, results, err := msgauthres.Parse(v)
	if err != nil {
		t.Fatalf("go-msgauth cannot parse %q: %v", v, err)
	}
	return id, results
}

func TestHeader(t *testing.T) {
	ip := netip.MustParseAddr("192.0.2.1")
	tests := []struct {
		name    string
		id      string
		methods []Method
		want    string
	}{
		{"none", "mx.example.org", nil, "Authentication-Results: mx.example.org; none\r\n"},
		{
			"all methods",
			"mx.example.org",
			append([]Method{
				IPRev(iprev.Result{Status: iprev.StatusPass, Name: "mail.example.com"}, ip),
				SPF(spf.Received{Result: spf.StatusPass, Identity: spf.IdentityMailFrom, Domain: "example.com", MailFrom: "bounce+x=y@example.com"}),
			}, append(DKIM([]dkim.Result{
				{Status: dkim.StatusPass, Domain: "example.com", Selector: "2025a", Algorithm: "ed25519-sha256", HeaderB: "abc/+DEF"},
				{Status: dkim.StatusFail, Domain: "example.com", Selector: "rsa", Algorithm: "rsa-sha256", Identity: "@mail.example.com", HeaderB: "Zm9vYmFy", Err: errors.New("dkim: body hash did not verify")},
			}), DMARC(dmarc.Result{Status: dmarc.StatusPass, FromDomain: "example.com", Policy: "reject", Record: &dmarc.Record{Policy: "reject"}}))...),
			"Authentication-Results: mx.example.org;\r\n" +
				"\tiprev=pass policy.iprev=192.0.2.1 (mail.example.com);\r\n" +
				"\tspf=pass smtp.mailfrom=bounce+x=y@example.com;\r\n" +
				"\tdkim=pass header.d=example.com header.s=2025a header.a=ed25519-sha256\r\n" +
				"\theader.b=\"abc/+DEF\";\r\n" +
				"\tdkim=fail reason=\"body hash did not verify\" header.d=example.com\r\n" +
				"\theader.i=@mail.example.com header.s=rsa header.a=rsa-sha256\r\n" +
				"\theader.b=Zm9vYmFy;\r\n" +
				"\tdmarc=pass (p=reject dis=none) header.from=example.com\r\n",
		},
		{
			"null sender, ipv6, errors, unsigned",
			"mx.example.org",
			append([]Method{
				IPRev(iprev.Result{Status: iprev.StatusPermerror, Err: errors.New("no PTR records")}, netip.MustParseAddr("2001:db8::1")),
				SPF(spf.Received{Result: spf.StatusNone, Identity: spf.IdentityHELO, HelloDomain: "[IPv6:2001:db8::1]"}),
			}, append(DKIM(nil), DMARC(dmarc.Result{Status: dmarc.StatusTemperror, FromDomain: "example.com", Err: errors.New("temporary DNS error")}))...),
			"Authentication-Results: mx.example.org;\r\n" +
				"\tiprev=permerror reason=\"no PTR records\" policy.iprev=\"2001:db8::1\";\r\n" +
				"\tspf=none smtp.helo=\"[IPv6:2001:db8::1]\";\r\n" +
				"\tdkim=none;\r\n" +
				"\tdmarc=temperror reason=\"temporary DNS error\" header.from=example.com\r\n",
		},
		{
			"quoting and sanitizing",
			"host with space",
			[]Method{
				SPF(spf.Received{Result: spf.StatusFail, Identity: spf.IdentityMailFrom, MailFrom: "\"odd local\"@example.com"}),
				{Method: "x-test", Result: "pass", Comment: "a (nested) \\ comment\x00 ü",
					Props: []Prop{{Type: "header", Property: "x", Value: "ü@example.com", Comment: "c"}}},
			},
			"Authentication-Results: \"host with space\";\r\n" +
				"\tspf=fail smtp.mailfrom=\"\\\"odd local\\\"@example.com\";\r\n" +
				"\tx-test=pass (a \\(nested\\) \\\\ comment? ?) header.x=\"ü@example.com\" (c)\r\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Header(tt.id, tt.methods)
			if got != tt.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tt.want)
			}
			checkFolding(t, got)
		})
	}
}

func TestParseBack(t *testing.T) {
	ip := netip.MustParseAddr("198.51.100.7")
	h := Header("mx.example.org", append([]Method{
		IPRev(iprev.Result{Status: iprev.StatusPass, Name: "mail.example.net"}, ip),
		SPF(spf.Received{Result: spf.StatusSoftfail, Identity: spf.IdentityMailFrom, MailFrom: "a@example.net"}),
	}, append(DKIM([]dkim.Result{
		{Status: dkim.StatusPass, Domain: "example.net", Selector: "s1", Algorithm: "rsa-sha256", Identity: "a@example.net", HeaderB: "AbCdEfGh"},
		{Status: dkim.StatusPermerror, Domain: "other.example", Selector: "s2", Algorithm: "ed25519-sha256", HeaderB: "12345678", Err: errors.New("dkim: key revoked")},
	}), DMARC(dmarc.Result{Status: dmarc.StatusFail, FromDomain: "example.net", Policy: "quarantine", Quarantine: true, Record: &dmarc.Record{}}))...))
	checkFolding(t, h)

	id, results := parse(t, h)
	if id != "mx.example.org" {
		t.Errorf("authserv-id %q", id)
	}
	if len(results) != 5 {
		t.Fatalf("got %d results: %#v", len(results), results)
	}
	if r, ok := results[0].(*msgauthres.IPRevResult); !ok || r.Value != msgauthres.ResultPass || r.IP != "198.51.100.7" {
		t.Errorf("iprev: %#v", results[0])
	}
	if r, ok := results[1].(*msgauthres.SPFResult); !ok || r.Value != msgauthres.ResultSoftFail || r.From != "a@example.net" {
		t.Errorf("spf: %#v", results[1])
	}
	if r, ok := results[2].(*msgauthres.DKIMResult); !ok || r.Value != msgauthres.ResultPass || r.Domain != "example.net" || r.Identifier != "a@example.net" {
		t.Errorf("dkim 1: %#v", results[2])
	}
	if r, ok := results[3].(*msgauthres.DKIMResult); !ok || r.Value != msgauthres.ResultPermError || r.Domain != "other.example" {
		t.Errorf("dkim 2: %#v", results[3])
	}
	if r, ok := results[4].(*msgauthres.DMARCResult); !ok || r.Value != msgauthres.ResultFail || r.From != "example.net" {
		t.Errorf("dmarc: %#v", results[4])
	}
	if !strings.Contains(h, "dmarc=fail (p=quarantine dis=quarantine)") {
		t.Errorf("dmarc comment missing in %q", h)
	}
}

func TestLongValuesFold(t *testing.T) {
	// Many properties and a long comment fold on token boundaries; a
	// reason longer than maxText is cut.
	long := strings.Repeat("word ", 60)
	m := Method{Method: "dkim", Result: "neutral", Comment: long, Reason: long}
	for range 8 {
		m.Props = append(m.Props, Prop{Type: "header", Property: "d", Value: "sub.domain.example.com"})
	}
	h := Header("mx.example.org", []Method{m})
	checkFolding(t, h)
	unfolded := strings.ReplaceAll(h, "\r\n\t", " ")
	if !strings.Contains(unfolded, "("+strings.Repeat("word ", 40)+"...)") {
		t.Errorf("comment not cut in %q", unfolded)
	}
	if !strings.Contains(unfolded, `reason="`+strings.Repeat("word ", 40)+`..."`) {
		t.Errorf("reason not cut in %q", unfolded)
	}
	if _, results := parse(t, h); len(results) != 1 {
		t.Errorf("parsed %d results", len(results))
	}
}

func TestFormatPvalue(t *testing.T) {
	for in, want := range map[string]string{
		"example.com":          "example.com",
		"192.0.2.1":            "192.0.2.1",
		"a.b+c@example.com":    "a.b+c@example.com",
		"@example.com":         "@example.com",
		"2001:db8::1":          `"2001:db8::1"`,
		"abc/def=":             `"abc/def="`,
		"a@b@example.com":      `"a@b@example.com"`,
		"a..b@example.com":     `"a..b@example.com"`,
		"":                     `""`,
		"x@[192.0.2.1]":        `"x@[192.0.2.1]"`,
		`"q"@example.com`:      `"\"q\"@example.com"`,
		"rsa-sha256":           "rsa-sha256",
		"a@exa_mple.com":       "a@exa_mple.com",
		"with space@example.c": `"with space@example.c"`,
	} {
		if got := formatPvalue(in); got != want {
			t.Errorf("formatPvalue(%q) = %s, want %s", in, got, want)
		}
	}
}
