package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// testKeys holds one key of each type, generated once per test binary run by
// the tests that need them (RSA generation is slow).
type testKeys struct {
	ecdsa   *ecdsa.PrivateKey
	ed25519 ed25519.PrivateKey
	rsa     *rsa.PrivateKey
}

func newTestKeys(t testing.TB) testKeys {
	t.Helper()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return testKeys{ec, ed, rk}
}

func TestPurposeString(t *testing.T) {
	tests := []struct {
		p    Purpose
		want string
	}{
		{PurposeTLS, "tls"},
		{PurposeDKIM, "dkim"},
		{PurposeACME, "acme"},
		{Purpose(0), "purpose(0)"},
		{Purpose(9), "purpose(9)"},
	}
	for _, tc := range tests {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("Purpose(%d).String() = %q, want %q", uint8(tc.p), got, tc.want)
		}
	}
}

// verify checks sig over digest with pub the way a peer would.
func verify(pub crypto.PublicKey, digest, sig []byte, opts crypto.SignerOpts) bool {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(p, digest, sig)
	case ed25519.PublicKey:
		return ed25519.Verify(p, digest, sig)
	case *rsa.PublicKey:
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			return rsa.VerifyPSS(p, opts.HashFunc(), digest, sig, pss) == nil
		}
		return rsa.VerifyPKCS1v15(p, opts.HashFunc(), digest, sig) == nil
	}
	return false
}

func counterOf(r *Ring, name string) (uint64, bool) {
	for _, c := range r.Counters() {
		if c.Name == name {
			return c.Signs, true
		}
	}
	return 0, false
}

func TestRingSignPurpose(t *testing.T) {
	tk := newTestKeys(t)
	r := NewRing()
	ids := map[string]uint32{
		"tls:a":              r.Add(&Key{Name: "tls:a", Purpose: PurposeTLS, Signer: tk.ecdsa}),
		"dkim:example.org:e": r.Add(&Key{Name: "dkim:example.org:e", Purpose: PurposeDKIM, Signer: tk.ed25519, Domain: "example.org", Selector: "e", Algorithm: DKIMEd25519}),
		"dkim:example.org:r": r.Add(&Key{Name: "dkim:example.org:r", Purpose: PurposeDKIM, Signer: tk.rsa, Domain: "example.org", Selector: "r", Algorithm: DKIMRSA2048}),
		"acme:account":       r.Add(&Key{Name: "acme:account", Purpose: PurposeACME, Signer: tk.ecdsa}),
	}
	purposes := map[string]Purpose{"tls:a": PurposeTLS, "dkim:example.org:e": PurposeDKIM, "dkim:example.org:r": PurposeDKIM, "acme:account": PurposeACME}
	sum := sha256.Sum256([]byte("message"))

	for name, id := range ids {
		for _, want := range []Purpose{PurposeTLS, PurposeDKIM, PurposeACME} {
			t.Run(fmt.Sprintf("%s/%s", name, want), func(t *testing.T) {
				before, _ := counterOf(r, name)
				k, _ := r.Get(id)
				var opts crypto.SignerOpts = crypto.SHA256
				if _, ok := k.Public.(ed25519.PublicKey); ok {
					opts = crypto.Hash(0)
				}
				sig, err := r.Sign(id, want, sum[:], opts)
				after, _ := counterOf(r, name)
				if want != purposes[name] {
					if err == nil || !strings.Contains(err.Error(), "not usable for "+want.String()) {
						t.Fatalf("Sign for %s with a %s key: err = %v, want refusal", want, purposes[name], err)
					}
					if after != before {
						t.Errorf("counter went from %d to %d on a refused sign", before, after)
					}
					return
				}
				if err != nil {
					t.Fatalf("Sign: %v", err)
				}
				if !verify(k.Public, sum[:], sig, opts) {
					t.Errorf("signature does not verify")
				}
				if after != before+1 {
					t.Errorf("counter went from %d to %d, want +1", before, after)
				}
			})
		}
	}
}

func TestRingSignOpts(t *testing.T) {
	tk := newTestKeys(t)
	r := NewRing()
	ec := r.Add(&Key{Name: "tls:ec", Purpose: PurposeTLS, Signer: tk.ecdsa})
	ed := r.Add(&Key{Name: "tls:ed", Purpose: PurposeTLS, Signer: tk.ed25519})
	rk := r.Add(&Key{Name: "tls:rsa", Purpose: PurposeTLS, Signer: tk.rsa})
	s256 := sha256.Sum256([]byte("x"))
	s384 := sha512.Sum384([]byte("x"))
	pss := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}

	tests := []struct {
		name    string
		id      uint32
		digest  []byte
		opts    crypto.SignerOpts
		wantErr string // "" for success
	}{
		{"ecdsa sha256", ec, s256[:], crypto.SHA256, ""},
		{"ecdsa sha384", ec, s384[:], crypto.SHA384, ""},
		{"ecdsa hash 0", ec, s256[:], crypto.Hash(0), "only for ed25519"},
		{"ecdsa short digest", ec, s256[:20], crypto.SHA256, "digest is 20 bytes"},
		{"ecdsa digest for other hash", ec, s256[:], crypto.SHA384, "digest is 32 bytes"},
		{"ecdsa sha1", ec, s256[:20], crypto.SHA1, "not allowed"},
		{"ecdsa nil opts", ec, s256[:], nil, "missing signer options"},
		{"ed25519 hash 0", ed, []byte("whole message"), crypto.Hash(0), ""},
		{"ed25519 options", ed, []byte("whole message"), &ed25519.Options{}, ""},
		{"ed25519 sha256", ed, s256[:], crypto.SHA256, "hash 0"},
		{"ed25519 ph", ed, make([]byte, 64), &ed25519.Options{Hash: crypto.SHA512}, "hash 0"},
		{"ed25519 empty", ed, nil, crypto.Hash(0), "want 1 to"},
		{"ed25519 too long", ed, make([]byte, maxEd25519Message+1), crypto.Hash(0), "want 1 to"},
		{"rsa pkcs1v15", rk, s256[:], crypto.SHA256, ""},
		{"rsa pss", rk, s256[:], pss, ""},
		{"rsa pss wrong digest", rk, s384[:], pss, "digest is 48 bytes"},
		{"rsa hash 0", rk, s256[:], crypto.Hash(0), "only for ed25519"},
		{"unknown id", 9999, s256[:], crypto.SHA256, "no key with id 9999"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, _ := r.Get(tc.id)
			var before uint64
			if k != nil {
				before, _ = counterOf(r, k.Name)
			}
			sig, err := r.Sign(tc.id, PurposeTLS, tc.digest, tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				if k != nil {
					if after, _ := counterOf(r, k.Name); after != before {
						t.Errorf("counter changed from %d to %d on a failed sign", before, after)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			if !verify(k.Public, tc.digest, sig, tc.opts) {
				t.Errorf("signature does not verify")
			}
			if after, _ := counterOf(r, k.Name); after != before+1 {
				t.Errorf("counter went from %d to %d, want +1", before, after)
			}
		})
	}
}

func TestRingReplaceRemove(t *testing.T) {
	tk := newTestKeys(t)
	r := NewRing()
	sum := sha256.Sum256([]byte("m"))

	id1 := r.Add(&Key{Name: "tls:b", Purpose: PurposeTLS, Signer: tk.ecdsa})
	idA := r.Add(&Key{Name: "tls:a", Purpose: PurposeTLS, Signer: tk.ecdsa})
	idD := r.Add(&Key{Name: "dkim:example.org:s1", Purpose: PurposeDKIM, Signer: tk.ed25519, Domain: "example.org", Selector: "s1"})
	if id1 == 0 || id1 == idA || idA == idD {
		t.Fatalf("IDs not distinct and non-zero: %d %d %d", id1, idA, idD)
	}
	if _, err := r.Sign(id1, PurposeTLS, sum[:], crypto.SHA256); err != nil {
		t.Fatal(err)
	}

	id2 := r.Replace("tls:b", &Key{Name: "ignored", Purpose: PurposeTLS, Signer: tk.rsa})
	if id2 == id1 {
		t.Fatalf("Replace kept ID %d", id1)
	}
	if _, ok := r.Get(id1); ok {
		t.Errorf("old ID %d still resolves after Replace", id1)
	}
	if _, err := r.Sign(id1, PurposeTLS, sum[:], crypto.SHA256); err == nil {
		t.Errorf("Sign with replaced ID succeeded")
	}
	k2, ok := r.Get(id2)
	if !ok || k2.Name != "tls:b" || k2.ID != id2 || !k2.Public.(*rsa.PublicKey).Equal(&tk.rsa.PublicKey) {
		t.Fatalf("Get(new ID) = %+v, %v", k2, ok)
	}
	if _, err := r.Sign(id2, PurposeTLS, sum[:], crypto.SHA256); err != nil {
		t.Fatal(err)
	}
	if n, _ := counterOf(r, "tls:b"); n != 2 {
		t.Errorf("counter of tls:b after replace = %d, want 2 (carried over)", n)
	}

	got := r.ByPurpose(PurposeTLS)
	if len(got) != 2 || got[0].Name != "tls:a" || got[1].Name != "tls:b" {
		t.Errorf("ByPurpose(tls) names = %v, want [tls:a tls:b]", keyNames(got))
	}
	if got := r.ByPurpose(PurposeACME); len(got) != 0 {
		t.Errorf("ByPurpose(acme) = %v, want none", keyNames(got))
	}
	if k, ok := r.DKIM("Example.ORG", "S1"); !ok || k.ID != idD {
		t.Errorf("DKIM(Example.ORG, S1) = %v, %v; want key %d", k, ok, idD)
	}
	if _, ok := r.DKIM("example.org", "s2"); ok {
		t.Errorf("DKIM found a key for an unknown selector")
	}

	r.Remove("tls:b")
	r.Remove("no-such-key")
	if _, ok := r.Get(id2); ok {
		t.Errorf("removed key still resolves")
	}
	if _, ok := counterOf(r, "tls:b"); ok {
		t.Errorf("removed key still has a counter")
	}
	var names []string
	for _, c := range r.Counters() {
		names = append(names, c.Name)
	}
	if strings.Join(names, ",") != "dkim:example.org:s1,tls:a" {
		t.Errorf("Counters names = %v, want sorted [dkim:example.org:s1 tls:a]", names)
	}
	id3 := r.Add(&Key{Name: "tls:b", Purpose: PurposeTLS, Signer: tk.ecdsa})
	for _, old := range []uint32{id1, idA, idD, id2} {
		if id3 == old {
			t.Errorf("ID %d reused", old)
		}
	}
	if n, _ := counterOf(r, "tls:b"); n != 0 {
		t.Errorf("counter of re-added key = %d, want 0", n)
	}
}

func keyNames(l []*Key) []string {
	var s []string
	for _, k := range l {
		s = append(s, k.Name)
	}
	return s
}

// TestRingConcurrentSign signs from many goroutines while another key is
// replaced over and over; run with -race.
func TestRingConcurrentSign(t *testing.T) {
	tk := newTestKeys(t)
	r := NewRing()
	id := r.Add(&Key{Name: "dkim:example.org:s", Purpose: PurposeDKIM, Signer: tk.ed25519, Domain: "example.org", Selector: "s"})
	const workers, each = 8, 50
	sum := sha256.Sum256([]byte("m"))

	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				sig, err := r.Sign(id, PurposeDKIM, sum[:], crypto.Hash(0))
				if err != nil {
					errs <- err
					continue
				}
				if !ed25519.Verify(tk.ed25519.Public().(ed25519.PublicKey), sum[:], sig) {
					errs <- fmt.Errorf("bad signature")
				}
				// Refused signs interleave and must not count.
				if _, err := r.Sign(id, PurposeTLS, sum[:], crypto.Hash(0)); err == nil {
					errs <- fmt.Errorf("purpose mismatch accepted")
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range each {
			r.Replace("tls:other", &Key{Purpose: PurposeTLS, Signer: tk.ecdsa})
			r.ByPurpose(PurposeTLS)
			r.Counters()
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n, _ := counterOf(r, "dkim:example.org:s"); n != workers*each {
		t.Errorf("counter = %d, want %d", n, workers*each)
	}
}

func BenchmarkRingSignECDSA(b *testing.B) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	r := NewRing()
	id := r.Add(&Key{Name: "tls:bench", Purpose: PurposeTLS, Signer: key})
	sum := sha256.Sum256([]byte("m"))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := r.Sign(id, PurposeTLS, sum[:], crypto.SHA256); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
