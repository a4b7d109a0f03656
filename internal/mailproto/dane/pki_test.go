package dane

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"sync"
	"testing"
	"time"

	"moxd/internal/dns"
)

// testNow is the time the tests verify at; the test certificates are
// valid for the whole of 2026 unless they are made to be expired.
var testNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// testPKI is a small certificate hierarchy: an Ed25519 root, an RSA
// intermediate and ECDSA leaves, so every key type the key-only trust
// anchor code handles is exercised.
type testPKI struct {
	root, inter         *x509.Certificate
	rootKey, interKey   crypto.Signer
	expiredInter        *x509.Certificate // same key and name as inter, expired
	leaf                *x509.Certificate // mx.example.org, issued by inter
	leafKey             crypto.Signer
	expiredLeaf         *x509.Certificate // mx.example.org, expired
	hosterLeaf          *x509.Certificate // mx.hoster.net only
	wildcardLeaf        *x509.Certificate // *.example.org
	cnLeaf              *x509.Certificate // CN mx.example.org, no DNS names
	otherLeaf           *x509.Certificate // mx.example.org, from another root
	otherRoot, otherInt *x509.Certificate
}

var (
	pkiOnce sync.Once
	pkiVal  *testPKI
	pkiErr  error
)

// getPKI builds the hierarchy once per test binary (RSA key generation is
// slow under the race detector).
func getPKI(t testing.TB) *testPKI {
	t.Helper()
	pkiOnce.Do(func() { pkiVal, pkiErr = buildPKI() })
	if pkiErr != nil {
		t.Fatalf("building test certificates: %v", pkiErr)
	}
	return pkiVal
}

func makeCert(serial int64, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) (*x509.Certificate, error) {
	tmpl.SerialNumber = big.NewInt(serial)
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		tmpl.NotAfter = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func caTemplate(cn string) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"moxd test"}},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
}

func leafTemplate(cn string, names ...string) *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		DNSNames:    names,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
}

func buildPKI() (*testPKI, error) {
	p := &testPKI{}
	_, rootKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	interKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	p.rootKey, p.interKey, p.leafKey = rootKey, interKey, leafKey

	var serial int64
	mk := func(dst **x509.Certificate, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) {
		if err != nil {
			return
		}
		serial++
		*dst, err = makeCert(serial, tmpl, parent, pub, signer)
	}
	mk(&p.root, caTemplate("Test Root"), nil, rootKey.Public(), rootKey)
	mk(&p.inter, caTemplate("Test Intermediate"), p.root, interKey.Public(), rootKey)
	expInter := caTemplate("Test Intermediate")
	expInter.NotBefore = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	expInter.NotAfter = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	mk(&p.expiredInter, expInter, p.root, interKey.Public(), rootKey)
	mk(&p.leaf, leafTemplate("mx.example.org", "mx.example.org"), p.inter, leafKey.Public(), interKey)
	exp := leafTemplate("mx.example.org", "mx.example.org")
	exp.NotBefore = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	exp.NotAfter = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	mk(&p.expiredLeaf, exp, p.inter, leafKey.Public(), interKey)
	mk(&p.hosterLeaf, leafTemplate("mx.hoster.net", "mx.hoster.net"), p.inter, leafKey.Public(), interKey)
	mk(&p.wildcardLeaf, leafTemplate("*.example.org", "*.example.org"), p.inter, leafKey.Public(), interKey)
	mk(&p.cnLeaf, leafTemplate("mx.example.org"), p.inter, leafKey.Public(), interKey)
	mk(&p.otherRoot, caTemplate("Other Root"), nil, otherKey.Public(), otherKey)
	mk(&p.otherInt, caTemplate("Test Intermediate"), p.otherRoot, otherKey.Public(), otherKey)
	mk(&p.otherLeaf, leafTemplate("mx.example.org", "mx.example.org"), p.otherInt, otherKey.Public(), otherKey)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// tlsa builds a record for c, computing the association data here rather
// than with the code under test.
func tlsa(usage, selector, matching uint8, c *x509.Certificate) dns.TLSA {
	data := c.Raw
	if selector == 1 {
		data = c.RawSubjectPublicKeyInfo
	}
	switch matching {
	case 1:
		h := sha256.Sum256(data)
		data = h[:]
	case 2:
		h := sha512.Sum512(data)
		data = h[:]
	}
	return dns.TLSA{Usage: usage, Selector: selector, MatchingType: matching, CertData: append([]byte(nil), data...)}
}
