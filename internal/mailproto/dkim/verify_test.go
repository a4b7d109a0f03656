package dkim

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"moxd/internal/dns"
)

// fakeResolver answers TXT queries from a map keyed by lower-case name
// without trailing dot; names in fail return that error, names in
// authentic are answered authentically, other names are not found.
type fakeResolver struct {
	mu        sync.Mutex
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
	f.mu.Lock()
	defer f.mu.Unlock()
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

// Keys are generated once per test binary: RSA-2048 generation is slow.
var testKeys = sync.OnceValue(func() (k struct {
	rsa, rsa2 *rsa.PrivateKey
	ed        ed25519.PrivateKey
}) {
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
	return k
})

func keyRecord(t *testing.T, pub crypto.PublicKey, extra string) string {
	t.Helper()
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return "v=DKIM1; k=rsa; " + extra + "p=" + base64.StdEncoding.EncodeToString(der)
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; " + extra + "p=" + base64.StdEncoding.EncodeToString(pub)
	}
	t.Fatalf("unknown key type %T", pub)
	return ""
}

const testMessage = "From: Alice <alice@example.com>\r\n" +
	"To: bob@example.org\r\n" +
	"Subject: hello there\r\n" +
	"Date: Mon, 2 Jun 2025 10:00:00 +0000\r\n" +
	"Message-ID: <1@example.com>\r\n" +
	"\r\n" +
	"Hi Bob,\r\n" +
	"\r\n" +
	"a  line with   spaces \r\n" +
	"bye\r\n" +
	"\r\n\r\n"

type signer struct {
	domain, selector string
	key              crypto.Signer
	headerCanon      msgdkim.Canonicalization
	bodyCanon        msgdkim.Canonicalization
	identifier       string
}

// sign adds one DKIM-Signature per signer, the last signer's on top.
func sign(t *testing.T, msg string, signers ...signer) string {
	t.Helper()
	for _, s := range signers {
		var out bytes.Buffer
		err := msgdkim.Sign(&out, strings.NewReader(msg), &msgdkim.SignOptions{
			Domain:                 s.domain,
			Selector:               s.selector,
			Identifier:             s.identifier,
			Signer:                 s.key,
			HeaderCanonicalization: s.headerCanon,
			BodyCanonicalization:   s.bodyCanon,
			HeaderKeys:             []string{"From", "To", "Subject", "Date", "Message-ID"},
		})
		if err != nil {
			t.Fatalf("sign: %v", err)
		}
		msg = out.String()
	}
	return msg
}

func newResolver(t *testing.T) *fakeResolver {
	k := testKeys()
	return &fakeResolver{
		txt: map[string][]string{
			"ed._domainkey.example.com":      {keyRecord(t, k.ed.Public(), "")},
			"rsa._domainkey.example.com":     {keyRecord(t, k.rsa.Public(), "")},
			"other._domainkey.example.com":   {keyRecord(t, k.rsa2.Public(), "")},
			"revoked._domainkey.example.com": {"v=DKIM1; k=rsa; p="},
			"strict._domainkey.example.com":  {keyRecord(t, k.ed.Public(), "t=s; ")},
			"testing._domainkey.example.com": {keyRecord(t, k.ed.Public(), "t=y; ")},
			"two._domainkey.example.com":     {keyRecord(t, k.ed.Public(), ""), "v=DKIM1; p=abc"},
			"rsa._domainkey.example.net":     {keyRecord(t, k.rsa.Public(), "")},
		},
		authentic: map[string]bool{
			"ed._domainkey.example.com": true,
		},
		fail: map[string]*net.DNSError{
			"temp._domainkey.example.com": {Err: "server misbehaving", Name: "temp._domainkey.example.com", IsTemporary: true},
		},
	}
}

func TestVerify(t *testing.T) {
	k := testKeys()
	ed := signer{domain: "example.com", selector: "ed", key: k.ed, headerCanon: msgdkim.CanonicalizationRelaxed, bodyCanon: msgdkim.CanonicalizationRelaxed}
	rsaSimple := signer{domain: "example.com", selector: "rsa", key: k.rsa, headerCanon: msgdkim.CanonicalizationSimple, bodyCanon: msgdkim.CanonicalizationSimple}
	rsaRelaxed := signer{domain: "example.com", selector: "rsa", key: k.rsa, headerCanon: msgdkim.CanonicalizationRelaxed, bodyCanon: msgdkim.CanonicalizationSimple}
	with := func(s signer, f func(*signer)) signer { f(&s); return s }

	type want struct {
		status    Status
		selector  string
		algorithm string
		authentic bool
		errSub    string
	}
	tests := []struct {
		name   string
		msg    func() string
		opts   VerifyOptions
		want   []want
		errSub string
	}{
		{"ed25519 relaxed", func() string { return sign(t, testMessage, ed) },
			VerifyOptions{}, []want{{StatusPass, "ed", "ed25519-sha256", true, ""}}, ""},
		{"rsa simple", func() string { return sign(t, testMessage, rsaSimple) },
			VerifyOptions{}, []want{{StatusPass, "rsa", "rsa-sha256", false, ""}}, ""},
		{"rsa relaxed header simple body", func() string { return sign(t, testMessage, rsaRelaxed) },
			VerifyOptions{}, []want{{StatusPass, "rsa", "rsa-sha256", false, ""}}, ""},
		{"ed25519 and rsa on one message", func() string { return sign(t, testMessage, ed, rsaSimple) },
			VerifyOptions{}, []want{{StatusPass, "rsa", "rsa-sha256", false, ""}, {StatusPass, "ed", "ed25519-sha256", true, ""}}, ""},
		{"tampered body simple", func() string {
			return strings.Replace(sign(t, testMessage, rsaSimple), "bye", "BYE", 1)
		}, VerifyOptions{}, []want{{StatusFail, "rsa", "rsa-sha256", false, "body hash"}}, ""},
		{"tampered body relaxed", func() string {
			return strings.Replace(sign(t, testMessage, ed), "Hi Bob", "Hi Eve", 1)
		}, VerifyOptions{}, []want{{StatusFail, "ed", "ed25519-sha256", true, "body hash"}}, ""},
		{"white space change passes relaxed", func() string {
			return strings.Replace(sign(t, testMessage, ed), "a  line with", "a line  with", 1)
		}, VerifyOptions{}, []want{{StatusPass, "ed", "ed25519-sha256", true, ""}}, ""},
		{"tampered header", func() string {
			return strings.Replace(sign(t, testMessage, rsaRelaxed), "Subject: hello there", "Subject: hello  There", 1)
		}, VerifyOptions{}, []want{{StatusFail, "rsa", "rsa-sha256", false, "signature did not verify"}}, ""},
		{"header white space passes relaxed", func() string {
			return strings.Replace(sign(t, testMessage, rsaRelaxed), "Subject: hello there", "Subject:   hello\r\n there", 1)
		}, VerifyOptions{}, []want{{StatusPass, "rsa", "rsa-sha256", false, ""}}, ""},
		{"missing key", func() string { return sign(t, testMessage, with(ed, func(s *signer) { s.selector = "nokey" })) },
			VerifyOptions{}, []want{{StatusPermerror, "nokey", "ed25519-sha256", false, "no key"}}, ""},
		{"temporary DNS error", func() string { return sign(t, testMessage, with(ed, func(s *signer) { s.selector = "temp" })) },
			VerifyOptions{}, []want{{StatusTemperror, "temp", "ed25519-sha256", false, "server misbehaving"}}, ""},
		{"revoked key", func() string {
			return sign(t, testMessage, with(rsaSimple, func(s *signer) { s.selector = "revoked" }))
		},
			VerifyOptions{}, []want{{StatusPermerror, "revoked", "rsa-sha256", false, "revoked"}}, ""},
		{"two key records", func() string { return sign(t, testMessage, with(ed, func(s *signer) { s.selector = "two" })) },
			VerifyOptions{}, []want{{StatusPermerror, "two", "ed25519-sha256", false, "multiple"}}, ""},
		{"key type mismatch", func() string {
			// An ed25519 signature claiming the selector of an RSA key.
			return sign(t, testMessage, with(ed, func(s *signer) { s.selector = "rsa" }))
		}, VerifyOptions{}, []want{{StatusPermerror, "rsa", "ed25519-sha256", false, "key algorithm"}}, ""},
		{"strict key, subdomain identity", func() string {
			return sign(t, testMessage, with(ed, func(s *signer) { s.selector = "strict"; s.identifier = "alice@sub.example.com" }))
		}, VerifyOptions{}, []want{{StatusPermerror, "strict", "ed25519-sha256", false, "t=s"}}, ""},
		{"strict key, same domain identity", func() string {
			return sign(t, testMessage, with(ed, func(s *signer) { s.selector = "strict"; s.identifier = "alice@example.com" }))
		}, VerifyOptions{}, []want{{StatusPass, "strict", "ed25519-sha256", false, ""}}, ""},
		{"limit signatures", func() string { return sign(t, testMessage, ed, rsaSimple, rsaRelaxed) },
			VerifyOptions{MaxSignatures: 2}, []want{{StatusPass, "rsa", "rsa-sha256", false, ""}, {StatusPass, "rsa", "rsa-sha256", false, ""}}, ""},
		{"body length tag", func() string {
			return "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=rsa; h=from; l=10; bh=AAAA; b=BBBBBBBBBBBB\r\n" + sign(t, testMessage, ed)
		}, VerifyOptions{}, []want{{StatusPolicy, "rsa", "rsa-sha256", false, "l="}, {StatusPass, "ed", "ed25519-sha256", true, ""}}, ""},
		{"duplicate tag", func() string {
			return "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=rsa; s=ed; h=from; bh=AAAA; b=BBBB\r\n" + sign(t, testMessage, ed)
		}, VerifyOptions{}, []want{{StatusPermerror, "", "", false, "duplicate"}, {StatusPass, "ed", "ed25519-sha256", true, ""}}, ""},
		{"bad selector is not looked up", func() string {
			return "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=a..b; h=from; bh=AAAA; b=BBBB\r\n" + testMessage
		}, VerifyOptions{}, []want{{StatusPermerror, "a..b", "rsa-sha256", false, "selector"}}, ""},
		{"missing required tag", func() string {
			return "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=rsa; h=from; b=BBBB\r\n" + testMessage
		}, VerifyOptions{}, []want{{StatusPermerror, "rsa", "rsa-sha256", false, "required"}}, ""},
		{"too many signed fields", func() string {
			return "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=rsa; h=" + strings.Repeat("from:", 600) + "from; bh=AAAA; b=BBBB\r\n" + testMessage
		}, VerifyOptions{}, []want{{StatusPolicy, "rsa", "rsa-sha256", false, "header fields"}}, ""},
		{"no signature", func() string { return testMessage }, VerifyOptions{}, nil, ""},
		{"lf line ends", func() string {
			return strings.ReplaceAll(sign(t, testMessage, rsaSimple, ed), "\r\n", "\n")
		}, VerifyOptions{}, []want{{StatusPass, "ed", "ed25519-sha256", true, ""}, {StatusPass, "rsa", "rsa-sha256", false, ""}}, ""},
		{"no body, no empty line", func() string {
			return strings.TrimSuffix(sign(t, "From: a@example.com\r\nSubject: x\r\n\r\n", ed), "\r\n")
		}, VerifyOptions{}, []want{{StatusPass, "ed", "ed25519-sha256", true, ""}}, ""},
		{"header too large", func() string { return sign(t, testMessage, ed) },
			VerifyOptions{MaxHeaderBytes: 200}, nil, "too large"},
		{"too many header fields", func() string { return strings.Repeat("X-A: 1\r\n", 20) + sign(t, testMessage, ed) },
			VerifyOptions{MaxHeaderFields: 10}, nil, "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newResolver(t)
			got, err := Verify(context.Background(), r, strings.NewReader(tt.msg()), tt.opts)
			if tt.errSub != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errSub) {
					t.Fatalf("err %v, want %q", err, tt.errSub)
				}
				return
			}
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d results %+v, want %d", len(got), got, len(tt.want))
			}
			for i, w := range tt.want {
				g := got[i]
				if g.Status != w.status || g.Selector != w.selector || g.Algorithm != w.algorithm || g.Authentic != w.authentic {
					t.Errorf("result %d: got %s s=%q a=%q authentic=%v (%v), want %s s=%q a=%q authentic=%v",
						i, g.Status, g.Selector, g.Algorithm, g.Authentic, g.Err, w.status, w.selector, w.algorithm, w.authentic)
				}
				if (g.Status == StatusPass) != (g.Err == nil) {
					t.Errorf("result %d: status %s with err %v", i, g.Status, g.Err)
				}
				if w.errSub != "" && (g.Err == nil || !strings.Contains(g.Err.Error(), w.errSub)) {
					t.Errorf("result %d: err %v, want %q", i, g.Err, w.errSub)
				}
				if w.selector != "" && g.Domain != "example.com" {
					t.Errorf("result %d: domain %q", i, g.Domain)
				}
				if g.Status == StatusPass && len(g.HeaderB) < 8 {
					t.Errorf("result %d: header.b %q", i, g.HeaderB)
				}
			}
			for _, q := range r.queries {
				if strings.Contains(q, "a..b") {
					t.Errorf("queried %q", q)
				}
			}
		})
	}
}

// TestMatchBySelector proves that results are matched to the right
// signature: two signatures of one domain with different selectors, one
// made with the published key and one with another key, in both orders.
func TestMatchBySelector(t *testing.T) {
	k := testKeys()
	good := signer{domain: "example.com", selector: "rsa", key: k.rsa, headerCanon: msgdkim.CanonicalizationRelaxed, bodyCanon: msgdkim.CanonicalizationRelaxed}
	// "other" publishes rsa2's key, but this signer uses rsa's.
	bad := signer{domain: "example.com", selector: "other", key: k.rsa, headerCanon: msgdkim.CanonicalizationRelaxed, bodyCanon: msgdkim.CanonicalizationRelaxed}
	for _, order := range [][]signer{{good, bad}, {bad, good}} {
		msg := sign(t, testMessage, order...)
		got, err := Verify(context.Background(), newResolver(t), strings.NewReader(msg), VerifyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Fatalf("got %d results", len(got))
		}
		// The last signer's field is on top, so results are in reverse
		// signing order.
		for i, s := range []signer{order[1], order[0]} {
			want := StatusPass
			if s.selector == "other" {
				want = StatusFail
			}
			if got[i].Selector != s.selector || got[i].Status != want {
				t.Errorf("order %s,%s: result %d is s=%s %s (%v), want s=%s %s",
					order[0].selector, order[1].selector, i, got[i].Selector, got[i].Status, got[i].Err, s.selector, want)
			}
		}
		// header.b names each signature uniquely.
		if got[0].HeaderB == got[1].HeaderB || !strings.Contains(msg, "b="+got[0].HeaderB) && !strings.Contains(msg, got[0].HeaderB) {
			t.Errorf("header.b %q %q", got[0].HeaderB, got[1].HeaderB)
		}
	}
}

func TestKeyFlagsTesting(t *testing.T) {
	k := testKeys()
	msg := sign(t, testMessage, signer{domain: "example.com", selector: "testing", key: k.ed})
	got, err := Verify(context.Background(), newResolver(t), strings.NewReader(msg), VerifyOptions{})
	if err != nil || len(got) != 1 || got[0].Status != StatusPass || !got[0].Testing {
		t.Fatalf("got %+v, %v; want pass in testing mode", got, err)
	}
}

func TestSetHeaderB(t *testing.T) {
	sigs := []*signature{{b: "abcdefghij1"}, {b: "abcdefghij2"}, {b: "zzzzzzzzzzzz"}, {b: "abc"}, {b: "abcdefghij1"}}
	setHeaderB(sigs)
	want := []string{"abcdefghij1", "abcdefghij2", "zzzzzzzz", "abc", "abcdefghij1"}
	for i, s := range sigs {
		if s.res.HeaderB != want[i] {
			t.Errorf("sig %d: header.b %q, want %q", i, s.res.HeaderB, want[i])
		}
	}
}

func TestBreakRun(t *testing.T) {
	// A body of more than maxBreakRun line breaks is not hashed in full:
	// the signatures get "policy", whether or not they would verify.
	k := testKeys()
	for _, n := range []int{1, 2} {
		signers := []signer{
			{domain: "example.com", selector: "rsa", key: k.rsa},
			{domain: "example.com", selector: "ed", key: k.ed, headerCanon: msgdkim.CanonicalizationRelaxed, bodyCanon: msgdkim.CanonicalizationRelaxed},
		}[:n]
		body := "x\r\n" + strings.Repeat("\r\n", maxBreakRun) + "y\r\n"
		msg := sign(t, "From: a@example.com\r\n\r\n"+body, signers...)
		start := time.Now()
		got, err := Verify(context.Background(), newResolver(t), strings.NewReader(msg), VerifyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range got {
			if r.Status != StatusPolicy || !errors.Is(r.Err, errBreakRun) {
				t.Errorf("%d signatures: result %d: %s %v, want policy", n, i, r.Status, r.Err)
			}
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v", d)
		}
	}
	// Just under the limit verifies.
	msg := sign(t, "From: a@example.com\r\n\r\nx"+strings.Repeat("\r\n", maxBreakRun/2-1)+"y\r\n",
		signer{domain: "example.com", selector: "rsa", key: k.rsa})
	got, err := Verify(context.Background(), newResolver(t), strings.NewReader(msg), VerifyOptions{})
	if err != nil || len(got) != 1 || got[0].Status != StatusPass {
		t.Fatalf("got %+v, %v; want pass", got, err)
	}
}

// failingReader returns the data, then an error instead of io.EOF.
type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

func TestReadError(t *testing.T) {
	k := testKeys()
	readErr := errors.New("connection reset")
	before := runtime.NumGoroutine()
	for _, n := range []int{1, 3} {
		signers := []signer{
			{domain: "example.com", selector: "rsa", key: k.rsa},
			{domain: "example.com", selector: "ed", key: k.ed},
			{domain: "example.net", selector: "rsa", key: k.rsa},
		}[:n]
		msg := sign(t, testMessage, signers...)
		got, err := Verify(context.Background(), newResolver(t), &failingReader{strings.NewReader(msg), readErr}, VerifyOptions{})
		if !errors.Is(err, readErr) || got != nil {
			t.Errorf("%d signatures: got %+v, %v; want read error", n, got, err)
		}
	}
	// go-msgauth's parallel verification must not be left blocked.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > before {
		t.Errorf("%d goroutines left, %d before", g, before)
	}
}

func TestCanceledContext(t *testing.T) {
	k := testKeys()
	msg := sign(t, testMessage, signer{domain: "example.com", selector: "ed", key: k.ed})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got, err := Verify(ctx, newResolver(t), strings.NewReader(msg), VerifyOptions{})
	if err != nil || len(got) != 1 || got[0].Status != StatusTemperror {
		t.Fatalf("got %+v, %v; want temperror", got, err)
	}
}
