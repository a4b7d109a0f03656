package keys

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testChain issues a leaf for leafKey from a throw-away CA with caKey and
// returns the DER of leaf and CA.
func testChain(t *testing.T, leafKey, caKey crypto.Signer, names ...string) (leafDER, caDER []byte) {
	t.Helper()
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err = x509.CreateCertificate(rand.Reader, leafTmpl, ca, leafKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	return leafDER, caDER
}

func tempFile(t *testing.T, name string, data []byte) *os.File {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestLoadPair(t *testing.T) {
	tk := newTestKeys(t)
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	weakEC, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	ecLeaf, ecCA := testChain(t, tk.ecdsa, caKey, "mail.example.org", "example.org")
	rsaLeaf, rsaCA := testChain(t, tk.rsa, caKey, "mail.example.org")
	edLeaf, edCA := testChain(t, tk.ed25519, caKey, "mail.example.org")
	weakLeaf, weakCA := testChain(t, weakEC, caKey, "mail.example.org")
	chain := func(ders ...[]byte) []byte { return marshalCertPEM(ders...) }
	pkcs8 := func(k crypto.Signer) []byte {
		b, err := marshalKeyPEM(k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ecDER, err := x509.MarshalECPrivateKey(tk.ecdsa)
	if err != nil {
		t.Fatal(err)
	}
	// As "openssl ecparam -genkey" writes it: parameters, then the key.
	secp := append(pemBlock("EC PARAMETERS", []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}), pemBlock("EC PRIVATE KEY", ecDER)...)
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00"}, Bytes: []byte{1}})

	tests := []struct {
		name      string
		cert, key []byte
		wantErr   string
		wantPub   crypto.PublicKey
		wantNames []string
		wantChain int
	}{
		{"ecdsa pkcs8 full chain", chain(ecLeaf, ecCA), pkcs8(tk.ecdsa), "", tk.ecdsa.Public(), []string{"mail.example.org", "example.org"}, 2},
		{"ecdsa sec1 with parameters", chain(ecLeaf), secp, "", tk.ecdsa.Public(), []string{"mail.example.org", "example.org"}, 1},
		{"rsa pkcs1", chain(rsaLeaf, rsaCA), pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(tk.rsa)), "", tk.rsa.Public(), []string{"mail.example.org"}, 2},
		{"ed25519 pkcs8", chain(edLeaf, edCA), pkcs8(tk.ed25519), "", tk.ed25519.Public(), []string{"mail.example.org"}, 2},
		{"key and chain in one file", append(pkcs8(tk.ecdsa), chain(ecLeaf, ecCA)...), append(chain(ecLeaf), pkcs8(tk.ecdsa)...), "", tk.ecdsa.Public(), []string{"mail.example.org", "example.org"}, 2},
		{"mismatched key", chain(ecLeaf, ecCA), pkcs8(otherKey), "does not match", nil, nil, 0},
		{"key of the CA", chain(ecLeaf, ecCA), pkcs8(caKey), "not the first", nil, nil, 0},
		{"chain in wrong order", chain(ecCA, ecLeaf), pkcs8(tk.ecdsa), "not the first", nil, nil, 0},
		{"weak curve", chain(weakLeaf, weakCA), pkcs8(weakEC), "P-224", nil, nil, 0},
		{"encrypted key", chain(ecLeaf), encrypted, "encrypted", nil, nil, 0},
		{"encrypted pkcs8", chain(ecLeaf), pemBlock("ENCRYPTED PRIVATE KEY", []byte{1}), "encrypted", nil, nil, 0},
		{"no key", chain(ecLeaf), chain(ecLeaf), "no PEM private key", nil, nil, 0},
		{"no certificate", pkcs8(tk.ecdsa), pkcs8(tk.ecdsa), "no PEM CERTIFICATE", nil, nil, 0},
		{"garbage certificate", pemBlock("CERTIFICATE", []byte("junk")), pkcs8(tk.ecdsa), "certificate 1", nil, nil, 0},
		{"garbage key", chain(ecLeaf), pemBlock("PRIVATE KEY", []byte("junk")), "parse private key block", nil, nil, 0},
		{"oversized certificate file", append(chain(ecLeaf), bytes.Repeat([]byte("#"), maxKeyFile)...), pkcs8(tk.ecdsa), "larger than", nil, nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := LoadPair("tls:file:mail", tempFile(t, "cert.pem", tc.cert), tempFile(t, "key.pem", tc.key))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), "tls:file:mail") {
					t.Errorf("error %q does not name the key", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadPair: %v", err)
			}
			if k.Name != "tls:file:mail" || k.Purpose != PurposeTLS || len(k.Chain) != tc.wantChain {
				t.Errorf("name %q purpose %v chain %d; want tls:file:mail, tls, %d", k.Name, k.Purpose, len(k.Chain), tc.wantChain)
			}
			if strings.Join(k.Names, ",") != strings.Join(tc.wantNames, ",") {
				t.Errorf("Names = %v, want %v", k.Names, tc.wantNames)
			}
			leaf, _ := x509.ParseCertificate(k.Chain[0])
			if !k.NotAfter.Equal(leaf.NotAfter) {
				t.Errorf("NotAfter %v, leaf expires %v", k.NotAfter, leaf.NotAfter)
			}
			if !publicKeysEqual(k.Public, tc.wantPub) {
				t.Errorf("public key is not the configured key's")
			}
			// The key signs for its certificate.
			r := NewRing()
			id := r.Add(k)
			sum := sha256.Sum256([]byte("m"))
			var opts crypto.SignerOpts = crypto.SHA256
			msg := sum[:]
			if leaf.PublicKeyAlgorithm == x509.Ed25519 {
				opts = crypto.Hash(0)
			}
			sig, err := r.Sign(id, PurposeTLS, msg, opts)
			if err != nil {
				t.Fatal(err)
			}
			if !verify(leaf.PublicKey, msg, sig, opts) {
				t.Errorf("signature does not verify with the certificate's key")
			}
		})
	}

	if _, err := LoadPair("", tempFile(t, "c", chain(ecLeaf)), tempFile(t, "k", pkcs8(tk.ecdsa))); err == nil {
		t.Errorf("LoadPair with an empty name accepted")
	}
	if _, err := LoadPair("x", nil, nil); err == nil {
		t.Errorf("LoadPair without files accepted")
	}
}

func FuzzParsePair(f *testing.F) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	keyPEM, _ := marshalKeyPEM(key)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"a.example"}, NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(marshalCertPEM(der), keyPEM)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), []byte("-----BEGIN EC PRIVATE KEY-----\nAA==\n-----END EC PRIVATE KEY-----\n"))
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, certPEM, keyPEM []byte) {
		k, err := parsePair(certPEM, keyPEM)
		if err != nil {
			return
		}
		if len(k.Chain) == 0 || k.Signer == nil {
			t.Fatalf("parsePair accepted a pair without chain or key")
		}
		leaf, err := x509.ParseCertificate(k.Chain[0])
		if err != nil || !publicKeysEqual(leaf.PublicKey, k.Public) {
			t.Fatalf("parsePair returned a key that does not match its leaf")
		}
	})
}
