package keys

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// verifyLeaf checks k's chain the way a TLS client trusting caDER would.
func verifyLeaf(t *testing.T, k *Key, caDER []byte, host string, at time.Time) error {
	t.Helper()
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(k.Chain[0])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	_, err = leaf.Verify(x509.VerifyOptions{
		DNSName:     host,
		Roots:       roots,
		CurrentTime: at,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	return err
}

func TestEnsureLocalCA(t *testing.T) {
	d := newTestDir(t)
	now := time.Now()

	k, caDER, err := d.EnsureLocalCA([]string{"localhost", "Mail.Example.org."})
	if err != nil {
		t.Fatalf("EnsureLocalCA: %v", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if !ca.IsCA || ca.Subject.CommonName != "moxd local CA "+host {
		t.Errorf("CA: IsCA %v, CN %q; want a CA named %q", ca.IsCA, ca.Subject.CommonName, "moxd local CA "+host)
	}
	if pub, ok := ca.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("CA key is %T, want ECDSA P-256", ca.PublicKey)
	}
	if years := ca.NotAfter.Sub(now).Hours() / 24 / 365; years < 9.9 || years > 10.1 {
		t.Errorf("CA valid for %.1f years, want 10", years)
	}

	if k.Name != "tls:localca" || k.Purpose != PurposeTLS || len(k.Chain) != 2 || !bytes.Equal(k.Chain[1], caDER) {
		t.Errorf("key: name %q, purpose %v, chain of %d; want tls:localca, tls, leaf+CA", k.Name, k.Purpose, len(k.Chain))
	}
	if !slices.Equal(k.Names, []string{"localhost", "mail.example.org"}) {
		t.Errorf("Names = %v, want [localhost mail.example.org]", k.Names)
	}
	leaf, err := x509.ParseCertificate(k.Chain[0])
	if err != nil {
		t.Fatal(err)
	}
	if leaf.Subject.CommonName != "localhost" || !leaf.NotAfter.Equal(k.NotAfter) {
		t.Errorf("leaf CN %q NotAfter %v; key NotAfter %v", leaf.Subject.CommonName, leaf.NotAfter, k.NotAfter)
	}
	if days := leaf.NotAfter.Sub(now).Hours() / 24; days < 364 || days > 366 {
		t.Errorf("leaf valid for %.0f days, want 365", days)
	}
	if pub, ok := k.Public.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() || !pub.Equal(leaf.PublicKey) {
		t.Errorf("leaf key is %T, want the ECDSA P-256 key of the certificate", k.Public)
	}
	for _, h := range []string{"localhost", "mail.example.org", "127.0.0.1", "::1"} {
		if err := verifyLeaf(t, k, caDER, h, now); err != nil {
			t.Errorf("verify for %s: %v", h, err)
		}
	}
	if err := verifyLeaf(t, k, caDER, "other.example.org", now); err == nil {
		t.Errorf("leaf verifies for a name it was not issued for")
	}

	for _, f := range []string{"ca.key", "ca.crt", "leaf.key", "leaf.crt"} {
		fi, err := os.Lstat(filepath.Join(d.Path(), "localca", f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != 0o600 {
			t.Errorf("%s mode %v, want -rw-------", f, fi.Mode())
		}
	}
	if fi, err := os.Lstat(filepath.Join(d.Path(), "localca")); err != nil || fi.Mode() != os.ModeDir|0o700 {
		t.Errorf("localca directory mode %v (err %v), want drwx------", fi.Mode(), err)
	}

	// Same names: nothing changes.
	k2, caDER2, err := d.EnsureLocalCA([]string{"localhost", "mail.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(caDER2, caDER) || !bytes.Equal(k2.Chain[0], k.Chain[0]) {
		t.Errorf("second call with the same names changed the certificates")
	}

	// Steps that must re-issue the leaf (new key too) but keep the CA.
	steps := []struct {
		name    string
		names   []string
		advance time.Duration
		reissue bool
		verify  string
	}{
		{"same names later", []string{"localhost", "mail.example.org"}, 300 * 24 * time.Hour, false, "mail.example.org"},
		{"name added", []string{"localhost", "mail.example.org", "imap.example.org"}, 0, true, "imap.example.org"},
		{"first name changed", []string{"imap.example.org", "localhost", "mail.example.org"}, 0, true, "localhost"},
		{"within 30 days of expiry", []string{"imap.example.org", "localhost", "mail.example.org"}, 340 * 24 * time.Hour, true, "localhost"},
	}
	prev := k2
	for _, st := range steps {
		at := now.Add(st.advance)
		d.now = func() time.Time { return at }
		k3, caDER3, err := d.EnsureLocalCA(st.names)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if !bytes.Equal(caDER3, caDER) {
			t.Errorf("%s: CA changed", st.name)
		}
		reissued := !bytes.Equal(k3.Chain[0], prev.Chain[0])
		if reissued != st.reissue {
			t.Errorf("%s: re-issued %v, want %v", st.name, reissued, st.reissue)
		}
		if reissued && k3.Public.(*ecdsa.PublicKey).Equal(prev.Public) {
			t.Errorf("%s: re-issued leaf kept the old key", st.name)
		}
		if !slices.Equal(k3.Names, st.names) {
			t.Errorf("%s: Names %v, want %v", st.name, k3.Names, st.names)
		}
		if err := verifyLeaf(t, k3, caDER, st.verify, at); err != nil {
			t.Errorf("%s: verify %s: %v", st.name, st.verify, err)
		}
		prev = k3
	}
	if err := verifyLeaf(t, prev, caDER, "mail.example.org", now.Add(340*24*time.Hour)); err != nil {
		t.Errorf("last leaf does not verify: %v", err)
	}
}

func TestEnsureLocalCAErrors(t *testing.T) {
	tests := []struct {
		name    string
		names   []string
		prepare func(t *testing.T, d *Dir)
		wantErr string
	}{
		{"no names", nil, nil, "no host names"},
		{"wildcard", []string{"*.example.org"}, nil, "not allowed"},
		{"space", []string{"mail example"}, nil, "not allowed"},
		{"duplicate", []string{"localhost", "LOCALHOST"}, nil, "listed twice"},
		{"CA certificate lost", []string{"localhost"}, func(t *testing.T, d *Dir) {
			if _, _, err := d.EnsureLocalCA([]string{"localhost"}); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(d.Path(), "localca", "ca.crt")); err != nil {
				t.Fatal(err)
			}
		}, "remove both"},
		{"CA key readable by others", []string{"localhost"}, func(t *testing.T, d *Dir) {
			if _, _, err := d.EnsureLocalCA([]string{"localhost"}); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Join(d.Path(), "localca", "ca.key"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "chmod 0600"},
		{"CA about to expire", []string{"localhost"}, func(t *testing.T, d *Dir) {
			if _, _, err := d.EnsureLocalCA([]string{"localhost"}); err != nil {
				t.Fatal(err)
			}
			later := time.Now().Add(localCAValidity - 10*24*time.Hour)
			d.now = func() time.Time { return later }
		}, "create a new local CA"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newTestDir(t)
			if tc.prepare != nil {
				tc.prepare(t, d)
			}
			_, _, err := d.EnsureLocalCA(tc.names)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestEnsureLocalCAReplacesBrokenLeaf(t *testing.T) {
	d := newTestDir(t)
	k, caDER, err := d.EnsureLocalCA([]string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	// A crash between writing leaf.key and leaf.crt leaves a key that does not
	// match the certificate.
	other, err := issueLeafForTest(t)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(d.Path(), "localca", "leaf.key"), other); err != nil {
		t.Fatal(err)
	}
	k2, _, err := d.EnsureLocalCA([]string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(k2.Chain[0], k.Chain[0]) {
		t.Errorf("leaf with a mismatched key was kept")
	}
	if err := verifyLeaf(t, k2, caDER, "localhost", time.Now()); err != nil {
		t.Errorf("new leaf: %v", err)
	}
}

func issueLeafForTest(t *testing.T) ([]byte, error) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return marshalKeyPEM(key)
}
