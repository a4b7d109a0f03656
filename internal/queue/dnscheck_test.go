package queue

import (
	"strings"
	"testing"

	"moxd/internal/config"
	"moxd/internal/dns/dnstest"
	"moxd/internal/ipc"
)

// The DKIM keys of the tests' records (ed25519 public keys, base64).
const (
	dkimKeyA = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
	dkimKeyB = "Ay5X3P1kQyJcS5m+9fSbwU6b1y/8KVqQ3q1YbNwXy9o="
)

// dnsCheckEnv is a queue whose resolver asks a test DNS server, with this
// host mail.example.org and DKIM selectors s1 and s2 for example.org.
func dnsCheckEnv(t *testing.T, adjust func(*config.QueueSlice), records ...string) (*testQueue, *dnstest.Server) {
	t.Helper()
	zone := dnstest.Start(t, records...)
	slice := testSlice()
	slice.DNS = config.DNSSlice{Servers: []string{zone.Addr()}}
	slice.DKIM = map[string][]config.QueueDKIM{"example.org": {{Selector: "s1", Algorithm: "ed25519"}, {Selector: "s2", Algorithm: "ed25519"}}}
	slice.Transports = []config.QueueTransport{{Name: "proxy", Kind: config.TransportSocks, SocksAddress: "127.0.0.1:1080",
		RemoteIPs: []string{"198.51.100.7", "2001:db8::7"}, RemoteHostname: "proxy.example.org"}}
	if adjust != nil {
		adjust(&slice)
	}
	tq := openTestQueue(t, mkdir(t), slice, newFakeStore(), nil)
	tq.sv.hostname = "mail.example.org"
	return tq, zone
}

// dnsCheck runs a check as master asks for it.
func (tq *testQueue) dnsCheck(t *testing.T, m *ipc.QueueDNSCheck) string {
	t.Helper()
	rep, files, err := tq.sv.serveMaster(testContext(t), &ipc.Request{Msg: m})
	if err != nil || len(files) != 0 {
		t.Fatalf("dns check: %v, %d files", err, len(files))
	}
	text := rep.(*ipc.QueueText).Text
	if testing.Verbose() {
		t.Logf("report:\n%s", text)
	}
	if len(text) > ipc.MaxQueueText {
		t.Errorf("report of %d bytes", len(text))
	}
	return text
}

// reportLine returns the line of text at level that has every one of
// subs, "" if there is none.
func reportLine(text, level string, subs ...string) string {
next:
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(l, level+" ") {
			continue
		}
		for _, s := range subs {
			if !strings.Contains(l, s) {
				continue next
			}
		}
		return l
	}
	return ""
}

// Records of a domain set up as moxd wants it.
var goodRecords = []string{
	"example.org. 300 IN MX 10 mail.example.org.",
	"mail.example.org. 300 IN A 192.0.2.10",
	`example.org. 300 IN TXT "v=spf1 mx ip4:198.51.100.7 ip6:2001:db8::7 -all"`,
	`example.org. 300 IN TXT "google-site-verification=abc"`,
	`s1._domainkey.example.org. 300 IN TXT "v=DKIM1; k=ed25519; p=` + dkimKeyA + `"`,
	`s2._domainkey.example.org. 300 IN TXT "v=DKIM1; k=ed25519; " "p=` + dkimKeyB[:20] + `" "` + dkimKeyB[20:] + `"`,
	`_dmarc.example.org. 300 IN TXT "v=DMARC1;p=reject;rua=mailto:postmaster@example.org"`,
	`_smtp._tls.example.org. 300 IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@example.org"`,
}

var goodDKIM = []ipc.QueueDNSCheckDKIM{
	{Selector: "s1", Record: "v=DKIM1; k=ed25519; p=" + dkimKeyA},
	{Selector: "s2", Record: "v=DKIM1; k=ed25519; p=" + dkimKeyB},
}

// TestDNSCheckOK: a domain whose records are right gets no WARN or
// ERROR, and a line for each check.
func TestDNSCheckOK(t *testing.T) {
	tq, zone := dnsCheckEnv(t, nil, goodRecords...)
	zone.SetAuthentic("example.org")
	text := tq.dnsCheck(t, &ipc.QueueDNSCheck{Domain: "example.org", DKIM: goodDKIM})
	if l := reportLine(text, levelWarn); l != "" {
		t.Errorf("warning %q", l)
	}
	if l := reportLine(text, levelError); l != "" {
		t.Errorf("error %q", l)
	}
	for _, want := range [][]string{
		{levelOK, "MX:", "10 mail.example.org"},
		{levelOK, "SPF:", "v=spf1 mx"},
		{levelOK, "SPF:", `remote_ips of transport "proxy"`, "198.51.100.7, 2001:db8::7"},
		{levelOK, "SPF:", "this host's addresses", "192.0.2.10"},
		{levelOK, "DKIM:", "s1._domainkey.example.org has the signing key"},
		{levelOK, "DKIM:", "s2._domainkey.example.org has the signing key"},
		{levelOK, "DMARC:", "p=reject", "receivers reject"},
		{levelInfo, "MTA-STS:", "no record at _mta-sts.example.org"},
		{levelOK, "TLSRPT:", "v=TLSRPTv1"},
		{levelInfo, "DNSSEC:", "is DNSSEC-authentic", "DANE"},
	} {
		if reportLine(text, want[0], want[1:]...) == "" {
			t.Errorf("no %s line with %q in:\n%s", want[0], want[1:], text)
		}
	}
	if !strings.HasPrefix(text, "DNS check of example.org for this host mail.example.org") {
		t.Errorf("header: %q", strings.SplitN(text, "\n", 2)[0])
	}
}

// TestDNSCheckProblems: each problem gets its WARN or ERROR line, saying
// what to fix.
func TestDNSCheckProblems(t *testing.T) {
	base := []string{
		"mail.example.org. 300 IN A 192.0.2.10",
		`s1._domainkey.example.org. 300 IN TXT "v=DKIM1; k=ed25519; p=` + dkimKeyA + `"`,
		`s2._domainkey.example.org. 300 IN TXT "v=DKIM1; k=ed25519; p=` + dkimKeyB + `"`,
	}
	tests := []struct {
		name    string
		records []string
		adjust  func(*config.QueueSlice)
		dkim    []ipc.QueueDNSCheckDKIM
		want    [][]string // level, substrings
	}{
		{name: "socks remote_ips not in SPF",
			records: []string{"example.org. 300 IN MX 10 mail.example.org.", `example.org. 300 IN TXT "v=spf1 mx ~all"`},
			dkim:    goodDKIM,
			want: [][]string{
				{levelOK, "SPF:", "v=spf1 mx ~all"},
				{levelWarn, "SPF:", "198.51.100.7 (softfail), 2001:db8::7 (softfail)", `remote_ips of transport "proxy" (socks)`, "add ip4:198.51.100.7 ip6:2001:db8::7"},
				{levelOK, "SPF:", "this host's addresses"},
			}},
		{name: "queue source_ips not in SPF",
			records: []string{"example.org. 300 IN MX 10 mail.example.org.", `example.org. 300 IN TXT "v=spf1 ip4:198.51.100.7 ip6:2001:db8::7 -all"`},
			adjust:  func(s *config.QueueSlice) { s.Delivery.SourceIPs = []string{"192.0.2.25"} },
			dkim:    goodDKIM,
			want: [][]string{
				{levelOK, "SPF:", `remote_ips of transport "proxy"`},
				{levelWarn, "SPF:", "192.0.2.25 (fail)", "[queue] source_ips", "add ip4:192.0.2.25"},
			}},
		{name: "no SPF, MX elsewhere, no DMARC",
			records: []string{"example.org. 300 IN MX 10 mx.elsewhere.example.", "mx.elsewhere.example. 300 IN A 203.0.113.1"},
			dkim:    goodDKIM,
			want: [][]string{
				{levelWarn, "MX:", "10 mx.elsewhere.example", "do not name this host mail.example.org", `"example.org. IN MX 10 mail.example.org."`},
				{levelWarn, "SPF:", "no SPF record", `v=spf1 mx -all`},
				{levelWarn, "SPF:", `remote_ips of transport "proxy"`, "(none)"},
				{levelWarn, "DMARC:", "no DMARC record at _dmarc.example.org", "v=DMARC1;p=reject"},
				{levelInfo, "DNSSEC:", "not DNSSEC-authentic"},
			}},
		{name: "no MX, two SPF records",
			records: []string{`example.org. 300 IN TXT "v=spf1 mx -all"`, `example.org. 300 IN TXT "v=spf1 a -all"`},
			dkim:    goodDKIM,
			want: [][]string{
				{levelWarn, "MX:", "no MX records"},
				{levelError, "SPF:", "2 SPF records", "merge them"},
			}},
		{name: "null MX", records: []string{"example.org. 300 IN MX 0 ."}, dkim: goodDKIM,
			want: [][]string{{levelWarn, "MX:", "null MX"}}},
		{name: "DKIM key mismatch and missing",
			records: []string{"example.org. 300 IN MX 10 mail.example.org."},
			adjust: func(s *config.QueueSlice) {
				s.DKIM["example.org"] = append(s.DKIM["example.org"], config.QueueDKIM{Selector: "s3", Algorithm: "ed25519"})
			},
			dkim: []ipc.QueueDNSCheckDKIM{
				{Selector: "s1", Record: "v=DKIM1; k=ed25519; p=" + dkimKeyB}, // keys has another key than DNS
				{Selector: "s2", Record: "v=DKIM1; k=rsa; p=" + dkimKeyB},     // same p=, other type
				{Selector: "s3", Record: "v=DKIM1; k=ed25519; p=" + dkimKeyA},
			},
			want: [][]string{
				{levelError, "DKIM:", "the key at s1._domainkey.example.org is not the one moxd signs with", "moxctl dns records example.org"},
				{levelError, "DKIM:", "the key at s2._domainkey.example.org is not the one"},
				{levelError, "DKIM:", "no key record at s3._domainkey.example.org"},
			}},
		{name: "DKIM revoked, bad version, keys down",
			records: []string{"example.org. 300 IN MX 10 mail.example.org.",
				`s3._domainkey.example.org. 300 IN TXT "v=DKIM1; p="`, `s4._domainkey.example.org. 300 IN TXT "v=DKIM2; p=abc"`},
			adjust: func(s *config.QueueSlice) {
				s.DKIM["example.org"] = append(s.DKIM["example.org"], config.QueueDKIM{Selector: "s3"}, config.QueueDKIM{Selector: "s4"})
			},
			dkim: []ipc.QueueDNSCheckDKIM{{Selector: "s1"}, {Selector: "s2"}}, // keys did not answer
			want: [][]string{
				{levelOK, "DKIM:", "s1._domainkey.example.org has a key record (k=ed25519); not compared"},
				{levelError, "DKIM:", "s3._domainkey.example.org has an empty p=: the key is revoked"},
				{levelError, "DKIM:", "s4._domainkey.example.org has v=DKIM2"},
			}},
		{name: "no DKIM selectors",
			records: []string{"example.org. 300 IN MX 10 mail.example.org."},
			adjust:  func(s *config.QueueSlice) { s.DKIM = nil },
			want:    [][]string{{levelWarn, "DKIM:", "no DKIM selectors configured for example.org"}}},
		{name: "DMARC p=none, MTA-STS unreachable, TLSRPT twice",
			records: []string{"example.org. 300 IN MX 10 mail.example.org.",
				`_dmarc.example.org. 300 IN TXT "v=DMARC1; p=none"`,
				`_mta-sts.example.org. 300 IN TXT "v=STSv1; id=20260101"`,
				`_smtp._tls.example.org. 300 IN TXT "v=TLSRPTv1; rua=mailto:a@example.org"`,
				`_smtp._tls.example.org. 300 IN TXT "v=TLSRPTv1; rua=mailto:b@example.org"`},
			dkim: goodDKIM,
			want: [][]string{
				{levelOK, "DMARC:", "p=none", "take no action", "no rua="},
				{levelWarn, "MTA-STS:", "id=20260101", "cannot be fetched"},
				{levelWarn, "TLSRPT:", "2 records"},
			}},
		{name: "invalid MTA-STS record",
			records: []string{"example.org. 300 IN MX 10 mail.example.org.", `_mta-sts.example.org. 300 IN TXT "v=STSv1; id=bad-id!"`},
			dkim:    goodDKIM,
			want:    [][]string{{levelWarn, "MTA-STS:", "no MTA-STS record", "invalid record"}}},
		{name: "DNS failure",
			records: []string{"example.org. 300 IN MX 10 mail.example.org."},
			adjust:  nil,
			dkim:    goodDKIM,
			want: [][]string{
				{levelError, "MX:", "lookup failed"},
				{levelError, "SPF:", "TXT lookup failed"},
				{levelError, "DMARC:", "lookup failed"},
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tq, zone := dnsCheckEnv(t, tc.adjust, append(append([]string(nil), base...), tc.records...)...)
			if tc.name == "DNS failure" {
				zone.SetServFail("example.org")
			}
			text := tq.dnsCheck(t, &ipc.QueueDNSCheck{Domain: "example.org", DKIM: tc.dkim})
			for _, want := range tc.want {
				if reportLine(text, want[0], want[1:]...) == "" {
					t.Errorf("no %s line with %q in:\n%s", want[0], want[1:], text)
				}
			}
		})
	}
}

// TestDNSCheckText: DNS data with control characters is shown safely,
// an IDN domain is looked up in ASCII, and a bad name is refused.
func TestDNSCheckText(t *testing.T) {
	tq, _ := dnsCheckEnv(t, func(s *config.QueueSlice) { s.Transports = nil },
		"xn--bcher-kva.example. 300 IN MX 10 mail.example.org.",
		`xn--bcher-kva.example. 300 IN TXT "v=spf1 mx\008\027[2J -all"`)
	text := tq.dnsCheck(t, &ipc.QueueDNSCheck{Domain: "bücher.example"})
	if !strings.HasPrefix(text, "DNS check of bücher.example (xn--bcher-kva.example)") {
		t.Errorf("header: %q", strings.SplitN(text, "\n", 2)[0])
	}
	if reportLine(text, levelOK, "MX:", "mail.example.org") == "" || reportLine(text, levelOK, "SPF:", "v=spf1 mx??[2J -all") == "" {
		t.Errorf("report:\n%s", text)
	}
	if strings.ContainsAny(text, "\x08\x1b") {
		t.Errorf("control characters in the report: %q", text)
	}
	if _, _, err := tq.sv.serveMaster(testContext(t), &ipc.Request{Msg: &ipc.QueueDNSCheck{Domain: "localhost"}}); err == nil {
		t.Errorf("check of a single-label name answered")
	}
	// Only master may ask: web's channel is served without queueadmin.
	if _, err := tq.conn(ipc.RoleWeb).Call(testContext(t), &ipc.QueueDNSCheck{Domain: "example.org"}); err == nil {
		t.Errorf("dns check from web answered")
	}
}
