package dane

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"moxd/internal/dns"
)

func TestVerify(t *testing.T) {
	p := getPKI(t)
	chain := []*x509.Certificate{p.leaf, p.inter}
	full := []*x509.Certificate{p.leaf, p.inter, p.root}
	names := []string{"mx.example.org"}
	baseAndHost := []string{"mx.hoster.net", "mx.example.org"}
	bad := func(usage, selector, matching uint8) dns.TLSA {
		r := tlsa(usage, selector, matching, p.otherLeaf)
		if selector == 1 && matching == 0 {
			// A key that parses but signed nothing here.
			r = tlsa(usage, selector, matching, p.otherRoot)
		}
		return r
	}

	type tc struct {
		name    string
		chain   []*x509.Certificate
		records []dns.TLSA
		names   []string
		now     time.Time
		match   int      // index of the record that must match, -1 for none
		errs    []string // substrings the error must contain
	}
	var tests []tc
	// Every selector and matching type, for both usages.
	for sel := range uint8(2) {
		for mt := range uint8(3) {
			tests = append(tests,
				tc{name: fmt.Sprintf("3 %d %d leaf", sel, mt), chain: chain, records: []dns.TLSA{tlsa(3, sel, mt, p.leaf)}, names: names, match: 0},
				tc{name: fmt.Sprintf("3 %d %d mismatch", sel, mt), chain: chain, records: []dns.TLSA{bad(3, sel, mt)}, names: names, match: -1,
					errs: []string{fmt.Sprintf("3 %d %d ", sel, mt), "the leaf's "}},
				tc{name: fmt.Sprintf("2 %d %d intermediate", sel, mt), chain: chain, records: []dns.TLSA{tlsa(2, sel, mt, p.inter)}, names: names, match: 0},
				tc{name: fmt.Sprintf("2 %d %d root in chain", sel, mt), chain: full, records: []dns.TLSA{tlsa(2, sel, mt, p.root)}, names: names, match: 0},
				tc{name: fmt.Sprintf("2 %d %d mismatch", sel, mt), chain: full, records: []dns.TLSA{bad(2, sel, mt)}, names: names, match: -1,
					errs: []string{fmt.Sprintf("2 %d %d ", sel, mt)}},
			)
		}
	}
	tests = append(tests, []tc{
		{name: "3 1 1 shows computed digest", chain: chain, records: []dns.TLSA{bad(3, 1, 1)}, names: names, match: -1,
			errs: []string{"SHA-256 of the leaf's public key (SPKI) is " + shortHex(tlsa(3, 1, 1, p.leaf).CertData), shortHex(bad(3, 1, 1).CertData)}},
		{name: "3 expired leaf accepted", chain: []*x509.Certificate{p.expiredLeaf, p.inter}, records: []dns.TLSA{tlsa(3, 1, 1, p.expiredLeaf)}, names: names, match: 0},
		{name: "3 wrong name accepted", chain: chain, records: []dns.TLSA{tlsa(3, 1, 1, p.leaf)}, names: []string{"elsewhere.example"}, match: 0},
		{name: "3 without names", chain: chain, records: []dns.TLSA{tlsa(3, 0, 1, p.leaf)}, match: 0},
		{name: "2 expired leaf refused", chain: []*x509.Certificate{p.expiredLeaf, p.inter}, records: []dns.TLSA{tlsa(2, 1, 1, p.inter)}, names: names, match: -1,
			errs: []string{"2 1 1 ", "does not verify", "expired"}},
		{name: "2 expired intermediate refused", chain: []*x509.Certificate{p.leaf, p.expiredInter, p.root}, records: []dns.TLSA{tlsa(2, 1, 1, p.root)}, names: names, match: -1,
			errs: []string{"expired"}},
		{name: "2 wrong name refused", chain: chain, records: []dns.TLSA{tlsa(2, 1, 1, p.inter)}, names: []string{"mx.elsewhere.example", "elsewhere.example"}, match: -1,
			errs: []string{"valid for mx.example.org, not for mx.elsewhere.example or elsewhere.example"}},
		{name: "2 without names refused", chain: chain, records: []dns.TLSA{tlsa(2, 1, 1, p.inter)}, match: -1, errs: []string{"no names"}},
		{name: "2 name is the base domain", chain: []*x509.Certificate{p.hosterLeaf, p.inter}, records: []dns.TLSA{tlsa(2, 0, 1, p.inter)}, names: baseAndHost, match: 0},
		{name: "2 name is the MX host", chain: chain, records: []dns.TLSA{tlsa(2, 0, 1, p.inter)}, names: baseAndHost, match: 0},
		{name: "2 wildcard", chain: []*x509.Certificate{p.wildcardLeaf, p.inter}, records: []dns.TLSA{tlsa(2, 1, 2, p.inter)}, names: []string{"MX.Example.Org."}, match: 0},
		{name: "2 wildcard covers one label only", chain: []*x509.Certificate{p.wildcardLeaf, p.inter}, records: []dns.TLSA{tlsa(2, 1, 2, p.inter)}, names: []string{"a.mx.example.org", "example.org"}, match: -1,
			errs: []string{"valid for *.example.org"}},
		{name: "2 subject CN without DNS names", chain: []*x509.Certificate{p.cnLeaf, p.inter}, records: []dns.TLSA{tlsa(2, 1, 1, p.inter)}, names: names, match: 0},
		{name: "2 subject CN mismatch", chain: []*x509.Certificate{p.cnLeaf, p.inter}, records: []dns.TLSA{tlsa(2, 1, 1, p.inter)}, names: []string{"other.example.org"}, match: -1},
		{name: "2 digest of absent root", chain: chain, records: []dns.TLSA{tlsa(2, 1, 1, p.root)}, names: names, match: -1,
			errs: []string{"no issuer certificate of the chain matches"}},
		{name: "2 1 0 key of absent root", chain: chain, records: []dns.TLSA{tlsa(2, 1, 0, p.root)}, names: names, match: 0},
		{name: "2 0 0 absent root certificate", chain: chain, records: []dns.TLSA{tlsa(2, 0, 0, p.root)}, names: names, match: 0},
		{name: "2 1 0 key of absent intermediate (RSA)", chain: []*x509.Certificate{p.leaf}, records: []dns.TLSA{tlsa(2, 1, 0, p.inter)}, names: names, match: 0},
		{name: "2 1 0 key of absent root, leaf only", chain: []*x509.Certificate{p.leaf}, records: []dns.TLSA{tlsa(2, 1, 0, p.root)}, names: names, match: -1,
			errs: []string{"signed by the record's public key"}},
		{name: "2 1 0 key of absent root, expired intermediate", chain: []*x509.Certificate{p.leaf, p.expiredInter}, records: []dns.TLSA{tlsa(2, 1, 0, p.root)}, names: names, match: -1,
			errs: []string{"expired"}},
		{name: "2 1 0 key does not parse", chain: chain, records: []dns.TLSA{{Usage: 2, Selector: 1, MatchingType: 0, CertData: []byte("junk")}}, names: names, match: -1,
			errs: []string{"public key is unusable"}},
		{name: "2 0 0 certificate does not parse", chain: chain, records: []dns.TLSA{{Usage: 2, Selector: 0, MatchingType: 0, CertData: []byte("junk")}}, names: names, match: -1,
			errs: []string{"does not parse"}},
		{name: "2 on the leaf is no trust anchor", chain: chain, records: []dns.TLSA{tlsa(2, 1, 1, p.leaf)}, names: names, match: -1},
		{name: "2 chain from another root", chain: []*x509.Certificate{p.otherLeaf, p.inter}, records: []dns.TLSA{tlsa(2, 1, 1, p.inter)}, names: names, match: -1,
			errs: []string{"does not verify"}},
		{name: "2 trust anchor appears twice, first expired", chain: []*x509.Certificate{p.leaf, p.expiredInter, p.inter}, records: []dns.TLSA{tlsa(2, 1, 1, p.inter)}, names: names, match: 0},
		{name: "unusable records ignored", chain: chain, records: []dns.TLSA{tlsa(1, 1, 1, p.leaf), tlsa(0, 1, 1, p.inter), tlsa(3, 1, 1, p.leaf)}, names: names, match: 2},
		{name: "only unusable records", chain: chain, records: []dns.TLSA{tlsa(1, 1, 1, p.leaf), {Usage: 3, Selector: 1, MatchingType: 1, CertData: []byte{1, 2}}}, names: names, match: -1,
			errs: []string{"1 1 1 ", "unusable", "3 1 1 0102: unusable in SMTP"}},
		{name: "first match wins", chain: chain, records: []dns.TLSA{bad(3, 1, 1), tlsa(2, 1, 1, p.inter), tlsa(3, 1, 1, p.leaf)}, names: names, match: 1},
		{name: "SHA-512 overrides SHA-256", chain: chain, records: []dns.TLSA{tlsa(3, 1, 1, p.leaf), bad(3, 1, 2)}, names: names, match: -1,
			errs: []string{"stronger digest", "3 1 2 "}},
		{name: "SHA-512 match with SHA-256 present", chain: chain, records: []dns.TLSA{bad(3, 1, 1), tlsa(3, 1, 2, p.leaf)}, names: names, match: 1},
		{name: "digests compared per selector", chain: chain, records: []dns.TLSA{tlsa(3, 1, 1, p.leaf), bad(3, 0, 2)}, names: names, match: 0},
		{name: "digests compared per usage", chain: chain, records: []dns.TLSA{tlsa(3, 1, 1, p.leaf), bad(2, 1, 2)}, names: names, match: 0},
		{name: "full data not overridden", chain: chain, records: []dns.TLSA{tlsa(3, 1, 0, p.leaf), bad(3, 1, 2)}, names: names, match: 0},
		{name: "no records", chain: chain, names: names, match: -1, errs: []string{"no records"}},
		{name: "no certificate", records: []dns.TLSA{tlsa(3, 1, 1, p.leaf)}, names: names, match: -1, errs: []string{"no certificate"}},
		{name: "error lists every record", chain: chain, records: []dns.TLSA{bad(3, 1, 1), bad(2, 0, 1)}, names: names, match: -1,
			errs: []string{"no TLSA record matched the certificate chain (leaf \"CN=mx.example.org\" for mx.example.org): 3 1 1 ", "; 2 0 1 "}},
	}...)

	for _, tt := range tests {
		now := tt.now
		if now.IsZero() {
			now = testNow
		}
		got, err := Verify(tt.chain, tt.records, tt.names, now)
		if tt.match >= 0 {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			} else if want := tt.records[tt.match]; FormatRecord(got) != FormatRecord(want) {
				t.Errorf("%s: matched %s, want %s", tt.name, FormatRecord(got), FormatRecord(want))
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: matched %s, want an error", tt.name, shortRecord(got))
			continue
		}
		t.Logf("%s: %v", tt.name, err)
		if !errors.Is(err, ErrNoMatch) {
			t.Errorf("%s: error %v is not ErrNoMatch", tt.name, err)
		}
		for _, s := range tt.errs {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: error %q does not contain %q", tt.name, err, s)
			}
		}
	}
}

func TestFormatRecord(t *testing.T) {
	r := dns.TLSA{Usage: 3, Selector: 1, MatchingType: 1, CertData: []byte{0xab, 0x12, 0xff}}
	if s := FormatRecord(r); s != "3 1 1 ab12ff" {
		t.Errorf("FormatRecord = %q", s)
	}
	r.CertData = bytes.Repeat([]byte{0xcd}, 32)
	if s := shortRecord(r); s != "3 1 1 cdcdcdcdcdcdcdcd…" {
		t.Errorf("shortRecord = %q", s)
	}
}

// TestOpenSSLDigests checks our association data against what openssl
// computes for the same certificate, the way operators produce TLSA
// records.
func TestOpenSSLDigests(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("openssl not installed: %v", err)
		}
		t.Skipf("openssl not installed: %v", err)
	}
	p := getPKI(t)
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		cert *x509.Certificate
	}{{"leaf", p.leaf}, {"inter", p.inter}, {"root", p.root}} {
		file := filepath.Join(dir, c.name+".pem")
		if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Raw}), 0o600); err != nil {
			t.Fatal(err)
		}
		pipelines := []struct {
			rec   dns.TLSA
			steps [][]string
		}{
			{dns.TLSA{Usage: 3, Selector: 1, MatchingType: 1}, [][]string{
				{"x509", "-noout", "-pubkey", "-in", file}, {"pkey", "-pubin", "-outform", "DER"}, {"dgst", "-sha256", "-r"}}},
			{dns.TLSA{Usage: 3, Selector: 1, MatchingType: 2}, [][]string{
				{"x509", "-noout", "-pubkey", "-in", file}, {"pkey", "-pubin", "-outform", "DER"}, {"dgst", "-sha512", "-r"}}},
			{dns.TLSA{Usage: 3, Selector: 0, MatchingType: 1}, [][]string{
				{"x509", "-outform", "DER", "-in", file}, {"dgst", "-sha256", "-r"}}},
		}
		for _, pl := range pipelines {
			var in []byte
			for _, args := range pl.steps {
				cmd := exec.Command("openssl", args...)
				cmd.Stdin = bytes.NewReader(in)
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("openssl %s: %v: %s", strings.Join(args, " "), err, stderr.String())
				}
				in = out
			}
			// "dgst -r" prints "<hex> *stdin".
			fields := strings.Fields(string(in))
			if len(fields) == 0 {
				t.Fatalf("%s: empty openssl output", c.name)
			}
			want, err := hex.DecodeString(fields[0])
			if err != nil {
				t.Fatalf("%s: openssl output %q: %v", c.name, in, err)
			}
			got := association(c.cert, pl.rec.Selector, pl.rec.MatchingType)
			if !bytes.Equal(got, want) {
				t.Errorf("%s %d %d: we compute %x, openssl %x", c.name, pl.rec.Selector, pl.rec.MatchingType, got, want)
			}
			// And the record made from openssl's output matches the chain.
			rec := pl.rec
			rec.CertData = want
			if c.cert == p.leaf {
				if _, err := Verify([]*x509.Certificate{p.leaf, p.inter}, []dns.TLSA{rec}, nil, testNow); err != nil {
					t.Errorf("record from openssl: %v", err)
				}
			}
		}
	}
}

// serveTLS accepts TLS connections on loopback with the leaf and
// intermediate, and reports the SNI name of each handshake.
func serveTLS(t *testing.T, leaf []*x509.Certificate) (addr string, sni <-chan string) {
	t.Helper()
	p := getPKI(t)
	var chain [][]byte
	for _, c := range leaf {
		chain = append(chain, c.Raw)
	}
	names := make(chan string, 10)
	cfg := &tls.Config{
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			names <- hello.ServerName
			return &tls.Certificate{Certificate: chain, PrivateKey: p.leafKey}, nil
		},
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			// The handshake fails when the client refuses the
			// certificate; either way the connection is done.
			conn.(*tls.Conn).Handshake()
			conn.Close()
		}
	}()
	return ln.Addr().String(), names
}

func TestConfigHandshake(t *testing.T) {
	p := getPKI(t)
	addr, sni := serveTLS(t, []*x509.Certificate{p.leaf, p.inter})
	clock := func() time.Time { return testNow }
	names := []string{"mx.example.org"}

	var chained int
	base := &tls.Config{
		MinVersion: tls.VersionTLS12,
		VerifyConnection: func(tls.ConnectionState) error {
			chained++
			return nil
		},
	}
	tests := []struct {
		name    string
		records []dns.TLSA
		names   []string
		err     []string // empty: the handshake must succeed
	}{
		{"3 1 1", []dns.TLSA{tlsa(3, 1, 1, p.leaf)}, names, nil},
		{"2 0 2 intermediate", []dns.TLSA{tlsa(2, 0, 2, p.inter)}, names, nil},
		{"2 1 0 absent root", []dns.TLSA{tlsa(2, 1, 0, p.root)}, names, nil},
		{"wrong 3 1 1", []dns.TLSA{tlsa(3, 1, 1, p.otherLeaf)}, names,
			[]string{"dane: mx.example.org: no TLSA record matched", "3 1 1 ", "SHA-256 of the leaf's public key"}},
		{"2 1 1 wrong name", []dns.TLSA{tlsa(2, 1, 1, p.inter)}, []string{"mx.other.example"},
			[]string{"valid for mx.example.org, not for mx.other.example"}},
	}
	for _, tt := range tests {
		before := chained
		cfg := Config(base, "mx.example.org", tt.records, tt.names, clock)
		err := handshake(t, addr, cfg)
		if got := <-sni; got != "mx.example.org" {
			t.Errorf("%s: SNI %q, want mx.example.org", tt.name, got)
		}
		if len(tt.err) == 0 {
			if err != nil {
				t.Errorf("%s: handshake: %v", tt.name, err)
			}
			if chained != before+1 {
				t.Errorf("%s: base VerifyConnection not called", tt.name)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: handshake succeeded, want an error", tt.name)
			continue
		}
		if !errors.Is(err, ErrNoMatch) {
			t.Errorf("%s: error %v is not ErrNoMatch", tt.name, err)
		}
		for _, s := range tt.err {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: error %q does not contain %q", tt.name, err, s)
			}
		}
		if chained != before {
			t.Errorf("%s: base VerifyConnection called after a DANE failure", tt.name)
		}
	}
	if base.InsecureSkipVerify || base.ServerName != "" {
		t.Errorf("Config changed its base: %+v", base)
	}
}

func TestConfigNilBase(t *testing.T) {
	p := getPKI(t)
	addr, sni := serveTLS(t, []*x509.Certificate{p.leaf, p.inter})
	// The real clock: the certificates are valid in 2026 only, which
	// DANE-EE does not care about.
	cfg := Config(nil, "mx.example.org.", []dns.TLSA{tlsa(3, 0, 1, p.leaf)}, nil, nil)
	if err := handshake(t, addr, cfg); err != nil {
		t.Errorf("handshake: %v", err)
	}
	<-sni
}

func handshake(t *testing.T, addr string, cfg *tls.Config) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return tls.Client(conn, cfg).HandshakeContext(ctx)
}
