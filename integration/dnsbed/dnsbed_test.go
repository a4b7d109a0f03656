//go:build linux

// Package dnsbed checks moxd's SPF, DKIM and DMARC verdicts against three
// independent verifiers on the same messages: pyspf, dkimpy's dkimverify
// and the npm package mailauth. Every lookup, theirs and ours, is answered
// by a real DNSSEC bed: knotd signs the zones and unbound
// validates them, both inside a network namespace the test makes for
// itself, whose resolv.conf names unbound on 127.0.0.1:53. The host's
// resolv.conf is never touched.
//
// The zones:
//
//   - bed.test, signed; its DS is unbound's trust anchor, so answers are
//     authentic (AD bit). DMARC p=reject.
//   - plain.test, unsigned and domain-insecure: answers are insecure, never
//     authentic. DMARC p=none.
//   - broken.test, signed, but the trust anchor's digests match none of
//     its keys: unbound finds it bogus and answers SERVFAIL, so every check
//     that needs it is a temperror.
//
// moxd's side runs in the namespace too: the test executes its own binary
// there (TestDNSBedInside), which reads the namespace's resolv.conf with
// dns.ParseResolvConf like moxd-master does. Then the same cases go end to
// end through the real moxd (moxd_test.go): swaks delivers each message to
// moxd-master's port 25 in the namespace from the case's client address,
// and the stored Authentication-Results and Received headers must match
// the peers' verdicts.
//
// TestOutbound (outbound_test.go) makes a bed of its own with other
// zones, for moxd's outbound delivery: DANE and MTA-STS towards a real
// Postfix MX in the namespace.
//
// The tests need root (network namespaces and moxd's role uids) and the
// peers .ci/run installs.
// Without them they are skipped, except in CI (CI set), where they fail.
package dnsbed

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"moxd/internal/dns"
	"moxd/internal/mailproto/dkim"
	"moxd/internal/mailproto/dmarc"
	"moxd/internal/mailproto/spf"
)

// Environment of the helper run inside the namespace.
const (
	envCases   = "MOXD_DNSBED_CASES"   // JSON array of peerCase
	envResults = "MOXD_DNSBED_RESULTS" // file the helper writes ourResults to
)

// Client addresses of the cases. They are only arguments of the checks:
// nothing is sent to them.
const (
	passIP = "192.0.2.10" // mail.ZONE in every zone, so SPF passes
	failIP = "192.0.2.99" // in no record: SPF -all fails it
)

// The mailauth version package.json pins: later majors need Node.js 22.
const mailauthVersion = "4.13.3"

// zone is one zone of the bed.
type zone struct {
	Name   string
	Signed bool   // knotd signs it and unbound has its DS as a trust anchor
	Broken bool   // the trust anchor's digests are altered: bogus, SERVFAIL
	Policy string // DMARC policy; "" for no _dmarc record
	PassIP string // address of mail.ZONE, the SPF-allowed sender; "" for no SPF record
	Keys   []zoneKey
	// Records are more zone file lines, relative to the origin:
	// "mx A 127.0.0.25".
	Records []string
}

// authentic is what the AD bit of every answer from the zone should be.
func (z *zone) authentic() bool { return z.Signed && !z.Broken }

type zoneKey struct {
	Selector string
	File     string // private key (PEM) from dknewkey
	TXT      string // the record's character-strings, quoted for the zone file
}

// signer is one DKIM signature put on a case's message.
type signer struct {
	domain, selector string
}

// bedCase is one message with its SMTP transaction and the verdicts every
// verifier should reach.
type bedCase struct {
	name     string
	from     string   // RFC5322.From domain (alice@from)
	signers  []signer // the message's DKIM-Signature fields, top first
	tamper   string   // "", "body" or "subject": changed after signing
	ip       string
	mailFrom string // MAIL FROM domain (alice@mailFrom); HELO is mail.mailFrom

	spf    spf.Status
	dkim   []dkim.Status // per signature, top first
	dmarc  dmarc.Status
	policy string // effective DMARC policy, "" without a usable record
	reject bool   // dmarc.Result.Reject
}

func bedCases() []bedCase {
	bed := func(sel string) signer { return signer{"bed.test", sel} }
	plain := func(sel string) signer { return signer{"plain.test", sel} }
	return []bedCase{
		{name: "bed-pass", from: "bed.test", signers: []signer{bed("ed"), bed("rsa")}, ip: passIP, mailFrom: "bed.test",
			spf: spf.StatusPass, dkim: []dkim.Status{dkim.StatusPass, dkim.StatusPass}, dmarc: dmarc.StatusPass, policy: "reject"},
		{name: "bed-spf-fail", from: "bed.test", signers: []signer{bed("ed")}, ip: failIP, mailFrom: "bed.test",
			spf: spf.StatusFail, dkim: []dkim.Status{dkim.StatusPass}, dmarc: dmarc.StatusPass, policy: "reject"},
		{name: "bed-body-tampered", from: "bed.test", signers: []signer{bed("ed"), bed("rsa")}, tamper: "body", ip: failIP, mailFrom: "bed.test",
			spf: spf.StatusFail, dkim: []dkim.Status{dkim.StatusFail, dkim.StatusFail}, dmarc: dmarc.StatusFail, policy: "reject", reject: true},
		{name: "bed-header-tampered", from: "bed.test", signers: []signer{bed("rsa")}, tamper: "subject", ip: passIP, mailFrom: "bed.test",
			spf: spf.StatusPass, dkim: []dkim.Status{dkim.StatusFail}, dmarc: dmarc.StatusPass, policy: "reject"},
		{name: "broken-temperror", from: "broken.test", signers: []signer{{"broken.test", "rsa"}}, ip: passIP, mailFrom: "broken.test",
			spf: spf.StatusTemperror, dkim: []dkim.Status{dkim.StatusTemperror}, dmarc: dmarc.StatusTemperror},
		{name: "plain-pass", from: "plain.test", signers: []signer{plain("rsa")}, ip: passIP, mailFrom: "plain.test",
			spf: spf.StatusPass, dkim: []dkim.Status{dkim.StatusPass}, dmarc: dmarc.StatusPass, policy: "none"},
		{name: "plain-fail", from: "plain.test", signers: []signer{plain("ed")}, tamper: "body", ip: failIP, mailFrom: "plain.test",
			spf: spf.StatusFail, dkim: []dkim.Status{dkim.StatusFail}, dmarc: dmarc.StatusFail, policy: "none"},
		// Everything passes for plain.test, which is not aligned with the
		// From domain: DMARC of bed.test fails, authentically.
		{name: "cross-unaligned", from: "bed.test", signers: []signer{plain("rsa")}, ip: passIP, mailFrom: "plain.test",
			spf: spf.StatusPass, dkim: []dkim.Status{dkim.StatusPass}, dmarc: dmarc.StatusFail, policy: "reject", reject: true},
	}
}

// peerCase is a case as the verifiers get it (mailauth-verdicts.js, the
// pyspf script and TestDNSBedInside).
type peerCase struct {
	Name   string `json:"name"`
	File   string `json:"file"`
	IP     string `json:"ip"`
	Helo   string `json:"helo"`
	Sender string `json:"sender"`
}

// ourResults is what TestDNSBedInside reports.
type ourResults struct {
	Servers []string  `json:"servers"`
	TrustAD bool      `json:"trustAD"`
	Cases   []ourCase `json:"cases"`
}

type ourCase struct {
	Name   string    `json:"name"`
	SPF    verdict   `json:"spf"`
	DKIM   []verdict `json:"dkim"`
	DMARC  verdict   `json:"dmarc"`
	Policy string    `json:"policy"`
	Reject bool      `json:"reject"`
	Err    string    `json:"err,omitempty"`
}

type verdict struct {
	Domain    string `json:"domain"`
	Selector  string `json:"selector,omitempty"`
	Result    string `json:"result"`
	Authentic bool   `json:"authentic"`
	Err       string `json:"err,omitempty"`
}

// mailauthCase is one line of mailauth-verdicts.js's output.
type mailauthCase struct {
	Name  string        `json:"name"`
	SPF   string        `json:"spf"`
	DKIM  []mailauthSig `json:"dkim"`
	DMARC struct {
		Result string `json:"result"`
		Policy string `json:"policy"`
	} `json:"dmarc"`
}

type mailauthSig struct {
	Domain   string `json:"domain"`
	Selector string `json:"selector"`
	Result   string `json:"result"`
	Comment  string `json:"comment"`
}

// result is mailauth's result in RFC 8601 terms. mailauth reports a body
// hash mismatch as "neutral" ("body hash did not verify"). RFC 6376 §6.1.3
// makes it a failed verification (PERMFAIL), RFC 8601 §2.7.1 "fail", which
// is what moxd (and dkimverify) say; it is compared as fail.
func (s mailauthSig) result() string {
	if s.Result == "neutral" && s.Comment == "body hash did not verify" {
		return string(dkim.StatusFail)
	}
	return s.Result
}

type pyspfCase struct {
	Name        string `json:"name"`
	Result      string `json:"result"`
	Explanation string `json:"explanation"`
}

// pyspfScript runs pyspf's check2 (the same as "python3 -m spf IP SENDER
// HELO") for every case read from stdin. Debian's /usr/bin/python3 is the
// one that has the module; a python3 earlier on PATH may not.
const pyspfScript = `
import json, sys, warnings
warnings.simplefilter("ignore")
import spf
out = []
for c in json.load(sys.stdin):
    res, expl = spf.check2(i=c["ip"], s=c["sender"], h=c["helo"])
    out.append({"name": c["name"], "result": res, "explanation": expl})
json.dump(out, sys.stdout)
`

// TestDNSBed runs the cases through every verifier inside the bed and
// through moxd itself, and compares the verdicts with each other and with
// what the case expects. moxd's binaries are built while the bed comes up.
func TestDNSBed(t *testing.T) {
	needPeers(t)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	build := startBuild(t, ctx)
	dir := t.TempDir()
	zones := []*zone{
		{Name: "bed.test", Signed: true, Policy: "reject", PassIP: passIP},
		{Name: "plain.test", Policy: "none", PassIP: passIP},
		{Name: "broken.test", Signed: true, Broken: true, Policy: "reject", PassIP: passIP},
	}
	byName := map[string]*zone{}
	for _, z := range zones {
		byName[z.Name] = z
		makeKeys(t, ctx, dir, z)
	}

	b := newBed(t, ctx, dir, zones)
	cases := bedCases()
	peerCases := writeMessages(t, ctx, dir, byName, cases)
	t.Logf("bed up and %d messages signed after %s", len(cases), time.Since(start).Round(time.Millisecond))

	ours := b.runOurs(peerCases)
	pyspf := b.runPyspf(peerCases)
	mailauth := b.runMailauth(peerCases)
	dkimpy := b.runDkimverify(peerCases, cases)
	ad := b.digAuthentic(cases)
	m := b.startMoxd(build.wait(t), moxdOptions{})
	t.Logf("moxd ready after %s", time.Since(start).Round(time.Millisecond))
	e2e := b.runMoxd(m, peerCases, cases)

	if len(ours.Servers) != 1 || ours.Servers[0] != "127.0.0.1:53" || !ours.TrustAD {
		t.Errorf("inside the namespace, dns.ParseResolvConf gave servers %v, trust-ad %v; want [127.0.0.1:53], true", ours.Servers, ours.TrustAD)
	}
	if len(ours.Cases) != len(cases) || len(pyspf) != len(cases) || len(mailauth) != len(cases) {
		t.Fatalf("verdicts for %d cases: ours %d, pyspf %d, mailauth %d", len(cases), len(ours.Cases), len(pyspf), len(mailauth))
	}
	for i, c := range cases {
		compareCase(t, c, byName, ours.Cases[i], pyspf[i], mailauth[i], dkimpy[i], ad)
		compareMoxd(t, c, byName, e2e[i], pyspf[i], mailauth[i], dkimpy[i])
	}
	t.Logf("total %s", time.Since(start).Round(time.Millisecond))
}

// compareCase checks one case: our verdicts against what the case
// expects, each peer's against ours, and every Authentic flag against the
// zone and dig's AD bit.
func compareCase(t *testing.T, c bedCase, zones map[string]*zone, o ourCase, py pyspfCase, ma mailauthCase, dkimpy []bool, ad map[string]digAnswer) {
	errorf := func(format string, args ...any) {
		t.Helper()
		t.Errorf("%s: "+format, append([]any{c.name}, args...)...)
	}
	if o.Name != c.name || py.Name != c.name || ma.Name != c.name {
		t.Fatalf("case %s: verdicts out of order: ours %q, pyspf %q, mailauth %q", c.name, o.Name, py.Name, ma.Name)
	}
	if o.Err != "" {
		errorf("ours: %s", o.Err)
		return
	}
	var dk, mdk []string
	for i, d := range o.DKIM {
		dk = append(dk, fmt.Sprintf("%s(auth %v)", d.Result, d.Authentic))
		if i < len(ma.DKIM) {
			mdk = append(mdk, ma.DKIM[i].Result)
		}
	}
	t.Logf("%s: SPF ours %s (auth %v), pyspf %s, mailauth %s; DKIM ours %v, dkimverify ok %v, mailauth %v; DMARC ours %s policy %q reject %v (auth %v), mailauth %s policy %q",
		c.name, o.SPF.Result, o.SPF.Authentic, py.Result, ma.SPF, dk, dkimpy, mdk, o.DMARC.Result, o.Policy, o.Reject, o.DMARC.Authentic, ma.DMARC.Result, ma.DMARC.Policy)

	// SPF: ours, pyspf and mailauth give RFC 7208 result names.
	if o.SPF.Result != string(c.spf) {
		errorf("our SPF = %s (%s), want %s", o.SPF.Result, o.SPF.Err, c.spf)
	}
	if py.Result != o.SPF.Result {
		errorf("SPF: pyspf says %s (%s), we say %s", py.Result, py.Explanation, o.SPF.Result)
	}
	if ma.SPF != o.SPF.Result {
		errorf("SPF: mailauth says %s, we say %s", ma.SPF, o.SPF.Result)
	}
	spfZone := zones[c.mailFrom]
	checkAuthentic(t, c.name, "SPF", o.SPF.Authentic, spfZone, ad, c.mailFrom+"/TXT", "mail."+c.mailFrom+"/A")

	// DKIM, per signature in header order.
	if len(o.DKIM) != len(c.signers) || len(ma.DKIM) != len(c.signers) || len(dkimpy) != len(c.signers) {
		errorf("DKIM results for %d signatures: ours %d, mailauth %d, dkimverify %d", len(c.signers), len(o.DKIM), len(ma.DKIM), len(dkimpy))
	} else {
		for i, sg := range c.signers {
			od, md := o.DKIM[i], ma.DKIM[i]
			what := fmt.Sprintf("DKIM signature %d (d=%s s=%s)", i, sg.domain, sg.selector)
			if od.Domain != sg.domain || od.Selector != sg.selector || md.Domain != sg.domain || md.Selector != sg.selector {
				errorf("%s: ours is d=%s s=%s, mailauth's d=%s s=%s", what, od.Domain, od.Selector, md.Domain, md.Selector)
				continue
			}
			if od.Result != string(c.dkim[i]) {
				errorf("our %s = %s (%s), want %s", what, od.Result, od.Err, c.dkim[i])
			}
			// dkimverify only says whether a signature verified (exit
			// 0) or not: it has no temperror, a SERVFAIL for the key is
			// "signature verification failed" like a bad signature.
			if dkimpy[i] != (od.Result == string(dkim.StatusPass)) {
				errorf("%s: dkimverify says verified=%v, we say %s (%s)", what, dkimpy[i], od.Result, od.Err)
			}
			if md.result() != od.Result {
				errorf("%s: mailauth says %s (%s), we say %s (%s)", what, md.Result, md.Comment, od.Result, od.Err)
			}
			checkAuthentic(t, c.name, what, od.Authentic, zones[sg.domain], ad, sg.selector+"._domainkey."+sg.domain+"/TXT")
		}
	}

	// DMARC.
	if o.DMARC.Result != string(c.dmarc) || o.Policy != c.policy || o.Reject != c.reject {
		errorf("our DMARC = %s policy %q reject %v (%s), want %s policy %q reject %v", o.DMARC.Result, o.Policy, o.Reject, o.DMARC.Err, c.dmarc, c.policy, c.reject)
	}
	if ma.DMARC.Result != o.DMARC.Result {
		errorf("DMARC: mailauth says %s, we say %s", ma.DMARC.Result, o.DMARC.Result)
	}
	if (o.DMARC.Result == "pass" || o.DMARC.Result == "fail") && ma.DMARC.Policy != o.Policy {
		errorf("DMARC policy: mailauth says %q, we say %q", ma.DMARC.Policy, o.Policy)
	}
	checkAuthentic(t, c.name, "DMARC", o.DMARC.Authentic, zones[c.from], ad, "_dmarc."+c.from+"/TXT")
}

// checkAuthentic compares our Authentic flag with the zone's kind and with
// the AD bit (and status) dig got for the names the check looks up.
func checkAuthentic(t *testing.T, name, what string, ours bool, z *zone, ad map[string]digAnswer, lookups ...string) {
	t.Helper()
	want := z.authentic()
	for _, l := range lookups {
		a, ok := ad[l]
		if !ok {
			t.Fatalf("%s: no dig answer for %s", name, l)
		}
		wantStatus := "NOERROR"
		if z.Broken {
			wantStatus = "SERVFAIL"
		}
		if a.Status != wantStatus || a.AD != want {
			t.Errorf("%s: dig %s: status %s, ad %v; want %s, ad %v (zone %s signed %v broken %v)", name, l, a.Status, a.AD, wantStatus, want, z.Name, z.Signed, z.Broken)
		}
	}
	if ours != want {
		t.Errorf("%s: our %s Authentic = %v, want %v (zone %s signed %v broken %v)", name, what, ours, want, z.Name, z.Signed, z.Broken)
	}
}

// TestDNSBedInside is the moxd side of TestDNSBed, run by it inside the
// bed's namespace: moxd's resolver from the namespace's resolv.conf, and
// spf.Verify, dkim.Verify and dmarc.Verify on each case.
func TestDNSBedInside(t *testing.T) {
	spec := os.Getenv(envCases)
	if spec == "" {
		t.Skip("helper of TestDNSBed, which runs it inside its network namespace")
	}
	var cases []peerCase
	if err := json.Unmarshal([]byte(spec), &cases); err != nil {
		t.Fatalf("%s: %v", envCases, err)
	}
	conf, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	servers, trustAD, err := dns.ParseResolvConf(conf)
	if err != nil {
		t.Fatalf("parse /etc/resolv.conf: %v", err)
	}
	r, err := dns.New(dns.Config{Servers: servers, TrustAD: trustAD})
	if err != nil {
		t.Fatalf("dns.New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res := ourResults{Servers: servers, TrustAD: trustAD}
	for _, c := range cases {
		res.Cases = append(res.Cases, verifyOurs(ctx, r, c))
	}
	out, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(os.Getenv(envResults), out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// verifyOurs runs moxd's checks on one case the way moxd-smtp does: SPF for
// the MAIL FROM identity, DKIM on the message, DMARC from both.
func verifyOurs(ctx context.Context, r dns.Resolver, c peerCase) ourCase {
	oc := ourCase{Name: c.Name}
	msg, err := os.ReadFile(c.File)
	if err != nil {
		oc.Err = err.Error()
		return oc
	}
	ip, err := netip.ParseAddr(c.IP)
	if err != nil {
		oc.Err = err.Error()
		return oc
	}
	at := strings.LastIndexByte(c.Sender, '@')
	rcv := spf.Verify(ctx, r, spf.Args{
		RemoteIP:          ip,
		MailFromLocalpart: c.Sender[:at],
		MailFromDomain:    c.Sender[at+1:],
		HelloDomain:       c.Helo,
		LocalHostname:     "mx.moxd.test",
	})
	oc.SPF = verdict{Domain: rcv.Domain, Result: string(rcv.Result), Authentic: rcv.Authentic, Err: errString(rcv.Err)}

	dk, err := dkim.Verify(ctx, r, bytes.NewReader(msg), dkim.VerifyOptions{})
	if err != nil {
		oc.Err = fmt.Sprintf("dkim.Verify: %v", err)
		return oc
	}
	for _, d := range dk {
		oc.DKIM = append(oc.DKIM, verdict{Domain: d.Domain, Selector: d.Selector, Result: string(d.Status), Authentic: d.Authentic, Err: errString(d.Err)})
	}

	end := bytes.Index(msg, []byte("\r\n\r\n"))
	if end < 0 {
		oc.Err = "message has no end of header"
		return oc
	}
	from, err := dmarc.FromDomain(msg[:end+4])
	if err != nil {
		oc.Err = fmt.Sprintf("dmarc.FromDomain: %v", err)
		return oc
	}
	// Random 0: pct= sampling always applies the policy (the bed's
	// records have no pct= anyway).
	dm := dmarc.Verify(ctx, r, dmarc.Args{FromDomain: from, SPF: rcv, DKIM: dk, Random: func() int { return 0 }})
	oc.DMARC = verdict{Domain: dm.Domain, Result: string(dm.Status), Authentic: dm.Authentic, Err: errString(dm.Err)}
	oc.Policy = dm.Policy
	oc.Reject = dm.Reject
	return oc
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// tool is a command a test runs and the Debian package that has it.
type tool struct{ cmd, pkg string }

// needPeers skips the test when it cannot run here (not root, a peer
// missing), or fails it when CI is set: CI runs as root with the peers
// .ci/run installs, so there a skip would hide a broken install. extra
// are the commands the test needs beyond those of TestDNSBed.
func needPeers(t *testing.T, extra ...tool) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (for network namespaces)")
	}
	for _, c := range append([]tool{
		{"ip", "iproute2"}, {"knotd", "knot"}, {"keymgr", "knot"}, {"unbound", "unbound"},
		{"dig", "bind9-dnsutils"}, {"dknewkey", "python3-dkim"}, {"dkimsign", "python3-dkim"},
		{"dkimverify", "python3-dkim"}, {"node", "nodejs"}, {"swaks", "swaks"},
	}, extra...) {
		if _, err := exec.LookPath(c.cmd); err != nil {
			missing = append(missing, fmt.Sprintf("%s (Debian package %s)", c.cmd, c.pkg))
		}
	}
	if out, err := exec.Command("/usr/bin/python3", "-c", "import spf").CombinedOutput(); err != nil {
		missing = append(missing, fmt.Sprintf("pyspf for /usr/bin/python3 (Debian package python3-spf): %v %s", err, bytes.TrimSpace(out)))
	}
	var pkg struct{ Version string }
	b, err := os.ReadFile("node_modules/mailauth/package.json")
	if err == nil {
		err = json.Unmarshal(b, &pkg)
	}
	if err != nil || pkg.Version != mailauthVersion {
		missing = append(missing, fmt.Sprintf("mailauth@%s in integration/dnsbed/node_modules (npm ci there; found %q, %v)", mailauthVersion, pkg.Version, err))
	}
	if len(missing) == 0 {
		return
	}
	msg := "missing: " + strings.Join(missing, "; ") + " (.ci/run installs them)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// makeKeys makes an rsa and an ed25519 DKIM key for z with dknewkey.
func makeKeys(t *testing.T, ctx context.Context, dir string, z *zone) {
	t.Helper()
	for _, kt := range []struct{ sel, ktype string }{{"rsa", "rsa"}, {"ed", "ed25519"}} {
		kdir := filepath.Join(dir, "keys", z.Name)
		if err := os.MkdirAll(kdir, 0o700); err != nil {
			t.Fatal(err)
		}
		cmd := exec.CommandContext(ctx, "dknewkey", "--ktype", kt.ktype, kt.sel)
		cmd.Dir = kdir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("dknewkey %s for %s: %v\n%s", kt.ktype, z.Name, err, out)
		}
		rec, err := os.ReadFile(filepath.Join(kdir, kt.sel+".dns"))
		if err != nil {
			t.Fatal(err)
		}
		z.Keys = append(z.Keys, zoneKey{Selector: kt.sel, File: filepath.Join(kdir, kt.sel+".key"), TXT: zoneTXT(strings.TrimSpace(string(rec)))})
	}
}

// zoneTXT writes s as the quoted character-strings of a TXT record, at
// most 255 bytes each (RFC 1035 §3.3).
func zoneTXT(s string) string {
	var parts []string
	for len(s) > 0 {
		n := min(len(s), 255)
		chunk := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s[:n])
		parts = append(parts, `"`+chunk+`"`)
		s = s[n:]
	}
	return strings.Join(parts, " ")
}

// bed is the running namespace with knotd and unbound.
type bed struct {
	t   *testing.T
	ctx context.Context
	dir string
	ns  string
}

// newBed makes the namespace, writes the zones and configs, starts knotd,
// takes the trust anchors from its keys and starts unbound. Everything is
// undone when the test ends.
func newBed(t *testing.T, ctx context.Context, dir string, zones []*zone) *bed {
	t.Helper()
	// Unique per run: the pid, and a random part in case a namespace of a
	// killed earlier run with the same pid is left.
	b := &bed{t: t, ctx: ctx, dir: dir, ns: fmt.Sprintf("moxd-dnsbed-%d-%04x", os.Getpid(), rand.IntN(0x10000))}
	data := struct {
		Dir   string
		Zones []*zone
	}{dir, zones}
	for _, z := range zones {
		writeTemplate(t, "zone.tmpl", filepath.Join(dir, z.Name+".zone"), z)
	}
	writeTemplate(t, "knot.conf.tmpl", filepath.Join(dir, "knot.conf"), data)
	writeTemplate(t, "unbound.conf.tmpl", filepath.Join(dir, "unbound.conf"), data)
	for _, d := range []string{"run", "db"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}

	// The namespace, with its own resolv.conf that ip netns exec
	// bind-mounts over /etc/resolv.conf for the commands run in it.
	etc := filepath.Join("/etc/netns", b.ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", b.ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v %s", b.ns, err, out)
		}
		os.RemoveAll(etc)
	})
	b.host("ip", "netns", "add", b.ns)
	b.host("ip", "-n", b.ns, "link", "set", "lo", "up")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver 127.0.0.1\noptions trust-ad\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	b.daemon("knotd", "-c", filepath.Join(dir, "knot.conf"))
	b.waitKnot(zones)

	// Trust anchors: the DS records of the signed zones' KSKs, with every
	// digest of the broken zone altered.
	var ta strings.Builder
	for _, z := range zones {
		if !z.Signed {
			continue
		}
		out := b.host("keymgr", "-c", filepath.Join(dir, "knot.conf"), z.Name, "ds")
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(line)
			if len(f) != 6 || f[1] != "DS" {
				t.Fatalf("keymgr %s ds: unexpected line %q", z.Name, line)
			}
			if z.Broken {
				last := f[5][len(f[5])-1]
				alt := "0"
				if last == '0' {
					alt = "1"
				}
				f[5] = f[5][:len(f[5])-1] + alt
			}
			ta.WriteString(strings.Join(f, " ") + "\n")
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "ta.key"), []byte(ta.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	b.host("unbound-checkconf", filepath.Join(dir, "unbound.conf"))
	b.daemon("unbound", "-d", "-c", filepath.Join(dir, "unbound.conf"))
	b.waitUnbound(zones[0].Name)
	return b
}

func writeTemplate(t *testing.T, name, dst string, data any) {
	t.Helper()
	tmpl, err := template.ParseFiles(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, data); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if err := os.WriteFile(dst, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// host runs a command outside the namespace and fails the test when it
// fails.
func (b *bed) host(name string, args ...string) string {
	b.t.Helper()
	out, err := exec.CommandContext(b.ctx, name, args...).CombinedOutput()
	if err != nil {
		b.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// inNS returns a command that runs in the namespace.
func (b *bed) inNS(name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(b.ctx, "ip", append([]string{"netns", "exec", b.ns, name}, args...)...)
	cmd.Dir, _ = os.Getwd()
	return cmd
}

// run runs a command in the namespace with stdin and returns its stdout
// and exit code; an error is only a failure to run it at all.
func (b *bed) run(stdin []byte, name string, args ...string) (stdout, stderr string, code int) {
	b.t.Helper()
	cmd := b.inNS(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		b.t.Fatalf("%s: %v", name, err)
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

// proc is a server started by daemon.
type proc struct {
	log  *syncBuffer
	done chan struct{} // closed when it has exited, with err set
	err  error
}

// daemon starts a server in the namespace in the foreground; ip netns
// exec execs it, so the PID is the server's. It is stopped by that PID when
// the test ends, and killed should the test binary die first.
func (b *bed) daemon(name string, args ...string) *proc {
	b.t.Helper()
	return b.daemonIn("", name, args...)
}

// daemonIn is daemon with the working directory dir ("" for the test's).
func (b *bed) daemonIn(dir, name string, args ...string) *proc {
	b.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", b.ns, name}, args...)...)
	cmd.Dir = dir
	p := &proc{log: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	b.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-p.done
			b.t.Errorf("%s (pid %d) did not stop within 10s of SIGTERM", name, cmd.Process.Pid)
		}
		if b.t.Failed() {
			b.t.Logf("%s log:\n%s", filepath.Base(name), p.log.String())
		}
	})
	return p
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// digAnswer is what dig reported for one query.
type digAnswer struct {
	Status string // NOERROR, NXDOMAIN, SERVFAIL, ...
	AD     bool
	Answer string
}

// dig asks server (in the namespace) for name/rtype with the DO bit.
func (b *bed) dig(server, port, name, rtype string, extra ...string) digAnswer {
	b.t.Helper()
	args := append([]string{"@" + server, "-p", port, "+dnssec", "+tries=1", "+time=2", "+nocookie"}, extra...)
	out, _, _ := b.run(nil, "dig", append(args, name, rtype)...)
	var a digAnswer
	inAnswer := false
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, ";; ->>HEADER<<-"):
			if _, rest, ok := strings.Cut(line, "status: "); ok {
				a.Status, _, _ = strings.Cut(rest, ",")
			}
		case strings.HasPrefix(line, ";; flags:"):
			flags, _, _ := strings.Cut(strings.TrimPrefix(line, ";; flags:"), ";")
			for _, f := range strings.Fields(flags) {
				a.AD = a.AD || f == "ad"
			}
		case strings.HasPrefix(line, ";; ANSWER SECTION:"):
			inAnswer = true
		case line == "":
			inAnswer = false
		case inAnswer:
			a.Answer += line + "\n"
		}
	}
	return a
}

// waitKnot waits until knotd serves every zone, the signed ones signed.
// unbound starts only then: it would cache a failure it saw earlier.
func (b *bed) waitKnot(zones []*zone) {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, z := range zones {
		for {
			a := b.dig("127.0.0.1", "5300", z.Name, "SOA", "+norec")
			if a.Status == "NOERROR" && strings.Contains(a.Answer, "SOA") && (!z.Signed || strings.Contains(a.Answer, "RRSIG")) {
				break
			}
			if time.Now().After(deadline) {
				b.t.Fatalf("knotd does not serve %s (signed %v): last answer %+v", z.Name, z.Signed, a)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// waitUnbound waits until unbound answers for zone.
func (b *bed) waitUnbound(zone string) {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		a := b.dig("127.0.0.1", "53", zone, "SOA")
		if a.Status == "NOERROR" {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("unbound does not answer for %s: last answer %+v", zone, a)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// digAuthentic asks unbound, through dig, for every name a case's checks
// look up, keyed "name/TYPE".
func (b *bed) digAuthentic(cases []bedCase) map[string]digAnswer {
	b.t.Helper()
	m := map[string]digAnswer{}
	ask := func(name, rtype string) {
		if _, ok := m[name+"/"+rtype]; !ok {
			m[name+"/"+rtype] = b.dig("127.0.0.1", "53", name, rtype)
		}
	}
	for _, c := range cases {
		ask(c.mailFrom, "TXT")
		ask("mail."+c.mailFrom, "A")
		ask("_dmarc."+c.from, "TXT")
		for _, s := range c.signers {
			ask(s.selector+"._domainkey."+s.domain, "TXT")
		}
	}
	return m
}

// writeMessages writes and signs each case's message, top signature last.
func writeMessages(t *testing.T, ctx context.Context, dir string, zones map[string]*zone, cases []bedCase) []peerCase {
	t.Helper()
	var l []peerCase
	for _, c := range cases {
		msg := []byte(strings.ReplaceAll(fmt.Sprintf(`From: Alice <alice@%[1]s>
To: bob@example.org
Subject: dnsbed %[2]s
Date: Tue, 01 Dec 2026 12:00:00 +0000
Message-ID: <%[2]s@%[1]s>

Hello from the DNSSEC bed.
Case %[2]s.
`, c.from, c.name), "\n", "\r\n"))
		for i := len(c.signers) - 1; i >= 0; i-- {
			s := c.signers[i]
			var key string
			for _, k := range zones[s.domain].Keys {
				if k.Selector == s.selector {
					key = k.File
				}
			}
			alg := "rsa-sha256"
			if s.selector == "ed" {
				alg = "ed25519-sha256"
			}
			cmd := exec.CommandContext(ctx, "dkimsign", "--signalg", alg, s.selector, s.domain, key)
			cmd.Stdin = bytes.NewReader(msg)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil || !bytes.HasPrefix(out, []byte("DKIM-Signature:")) {
				t.Fatalf("dkimsign %s %s for %s: %v\n%s", s.selector, s.domain, c.name, err, stderr.Bytes())
			}
			msg = out
		}
		switch c.tamper {
		case "body":
			msg = bytes.Replace(msg, []byte("Hello from"), []byte("Jello from"), 1)
		case "subject":
			msg = bytes.Replace(msg, []byte("Subject: dnsbed"), []byte("Subject: DNSbed"), 1)
		}
		file := filepath.Join(dir, c.name+".eml")
		if err := os.WriteFile(file, msg, 0o644); err != nil {
			t.Fatal(err)
		}
		l = append(l, peerCase{Name: c.name, File: file, IP: c.ip, Helo: "mail." + c.mailFrom, Sender: "alice@" + c.mailFrom})
	}
	return l
}

// runOurs runs TestDNSBedInside in the namespace.
func (b *bed) runOurs(cases []peerCase) ourResults {
	b.t.Helper()
	exe, err := os.Executable()
	if err != nil {
		b.t.Fatal(err)
	}
	spec, err := json.Marshal(cases)
	if err != nil {
		b.t.Fatal(err)
	}
	resFile := filepath.Join(b.dir, "ours.json")
	cmd := b.inNS(exe, "-test.run=^TestDNSBedInside$", "-test.count=1", "-test.timeout=90s", "-test.v")
	cmd.Env = append(os.Environ(), envCases+"="+string(spec), envResults+"="+resFile)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.t.Fatalf("TestDNSBedInside in the namespace: %v\n%s", err, out)
	}
	buf, err := os.ReadFile(resFile)
	if err != nil {
		b.t.Fatalf("TestDNSBedInside wrote no results: %v", err)
	}
	var res ourResults
	if err := json.Unmarshal(buf, &res); err != nil {
		b.t.Fatalf("TestDNSBedInside results: %v", err)
	}
	return res
}

func (b *bed) runPyspf(cases []peerCase) []pyspfCase {
	b.t.Helper()
	spec, _ := json.Marshal(cases)
	out, stderr, code := b.run(spec, "/usr/bin/python3", "-W", "ignore", "-c", pyspfScript)
	var res []pyspfCase
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil {
		b.t.Fatalf("pyspf: exit %d, %v\n%s%s", code, err, out, stderr)
	}
	return res
}

func (b *bed) runMailauth(cases []peerCase) []mailauthCase {
	b.t.Helper()
	spec, _ := json.Marshal(cases)
	out, stderr, code := b.run(spec, "node", "mailauth-verdicts.js")
	var res []mailauthCase
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil {
		b.t.Fatalf("mailauth: exit %d, %v\n%s%s", code, err, out, stderr)
	}
	return res
}

// runDkimverify runs dkimverify for every signature of every case and
// reports whether it verified (exit 0). A body hash mismatch makes it exit
// 1 with a ValidationError traceback, a bad signature or a key lookup
// failure with "signature verification failed"; any other exit code, or a
// traceback of another kind, is a broken peer.
func (b *bed) runDkimverify(cases []peerCase, bcs []bedCase) [][]bool {
	b.t.Helper()
	var res [][]bool
	for i, c := range cases {
		msg, err := os.ReadFile(c.File)
		if err != nil {
			b.t.Fatal(err)
		}
		var l []bool
		for idx := range bcs[i].signers {
			out, stderr, code := b.run(msg, "dkimverify", "--index", fmt.Sprint(idx))
			switch {
			case code == 0 && strings.Contains(out, "signature ok"):
				l = append(l, true)
			case code == 1 && (strings.Contains(out, "signature verification failed") || strings.Contains(stderr, "dkim.ValidationError: body hash mismatch")):
				l = append(l, false)
			default:
				b.t.Fatalf("dkimverify --index %d for %s: exit %d\n%s%s", idx, c.Name, code, out, stderr)
			}
		}
		res = append(res, l)
	}
	return res
}
