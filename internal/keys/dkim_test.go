package keys

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEnsureDKIM(t *testing.T) {
	d := newTestDir(t)
	tests := []struct {
		domain, selector, algorithm string
	}{
		{"example.org", "ed1", DKIMEd25519},
		{"example.org", "rsa1", DKIMRSA2048},
		{"mail.example.net", "2024.a", DKIMEd25519},
	}
	for _, tc := range tests {
		t.Run(tc.domain+"/"+tc.selector, func(t *testing.T) {
			k, created, err := d.EnsureDKIM(tc.domain, tc.selector, tc.algorithm)
			if err != nil || !created {
				t.Fatalf("first EnsureDKIM: created %v, err %v; want created", created, err)
			}
			wantName := "dkim:" + tc.domain + ":" + tc.selector
			if k.Name != wantName || k.Purpose != PurposeDKIM || k.Domain != tc.domain || k.Selector != tc.selector ||
				k.Algorithm != tc.algorithm || len(k.Names) != 1 || k.Names[0] != tc.domain || !k.NotAfter.IsZero() {
				t.Errorf("key = %+v", k)
			}
			switch pub := k.Public.(type) {
			case ed25519.PublicKey:
				if tc.algorithm != DKIMEd25519 {
					t.Errorf("ed25519 key for algorithm %s", tc.algorithm)
				}
			case *rsa.PublicKey:
				if tc.algorithm != DKIMRSA2048 || pub.N.BitLen() != 2048 {
					t.Errorf("RSA key of %d bits for algorithm %s", pub.N.BitLen(), tc.algorithm)
				}
			default:
				t.Errorf("key type %T", pub)
			}
			path := filepath.Join(d.Path(), "dkim", tc.domain, tc.selector+".key")
			fi, err := os.Lstat(path)
			if err != nil || fi.Mode() != 0o600 {
				t.Errorf("key file %s: mode %v, err %v; want -rw-------", path, fi.Mode(), err)
			}
			if fi, err := os.Lstat(filepath.Dir(path)); err != nil || fi.Mode() != fs.ModeDir|0o700 {
				t.Errorf("domain directory mode %v, err %v; want drwx------", fi.Mode(), err)
			}

			k2, created, err := d.EnsureDKIM(tc.domain, tc.selector, tc.algorithm)
			if err != nil || created {
				t.Fatalf("second EnsureDKIM: created %v, err %v; want existing key", created, err)
			}
			if !k2.Public.(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public) {
				t.Errorf("second EnsureDKIM returned a different key")
			}

			other := DKIMEd25519
			if tc.algorithm == DKIMEd25519 {
				other = DKIMRSA2048
			}
			if _, _, err := d.EnsureDKIM(tc.domain, tc.selector, other); err == nil || !strings.Contains(err.Error(), "new selector") {
				t.Errorf("EnsureDKIM with algorithm %s for a %s key: err = %v, want a mismatch error", other, tc.algorithm, err)
			}
		})
	}
}

func TestEnsureDKIMRefusesBadNames(t *testing.T) {
	d := newTestDir(t)
	parent := filepath.Dir(d.Path())
	tests := []struct {
		domain, selector, algorithm string
	}{
		{"../x", "s", DKIMEd25519},
		{"..", "s", DKIMEd25519},
		{".", "s", DKIMEd25519},
		{"", "s", DKIMEd25519},
		{"example.org/../..", "s", DKIMEd25519},
		{"a/b", "s", DKIMEd25519},
		{"/etc", "s", DKIMEd25519},
		{"example..org", "s", DKIMEd25519},
		{"example.org.", "s", DKIMEd25519},
		{"Example.org", "s", DKIMEd25519},
		{"-x.example.org", "s", DKIMEd25519},
		{"ex_ample.org", "s", DKIMEd25519},
		{"ex\x00ample.org", "s", DKIMEd25519},
		{strings.Repeat("a", 64) + ".org", "s", DKIMEd25519},
		{strings.Repeat("abcdefghi.", 26) + "org", "s", DKIMEd25519},
		{"example.org", "../../localca/ca", DKIMEd25519},
		{"example.org", "..", DKIMEd25519},
		{"example.org", "s/1", DKIMEd25519},
		{"example.org", "", DKIMEd25519},
		{"example.org", "s\\1", DKIMEd25519},
		{"example.org", "s1", "rsa1024"},
		{"example.org", "s1", "ED25519"},
	}
	for _, tc := range tests {
		k, _, err := d.EnsureDKIM(tc.domain, tc.selector, tc.algorithm)
		if err == nil {
			t.Errorf("EnsureDKIM(%q, %q, %q) accepted, key %s", tc.domain, tc.selector, tc.algorithm, k.Name)
			continue
		}
		// Refused by validation, before any file system access.
		if msg := err.Error(); !strings.HasPrefix(msg, "DKIM domain ") && !strings.HasPrefix(msg, "DKIM selector ") && !strings.HasPrefix(msg, "DKIM algorithm ") {
			t.Errorf("EnsureDKIM(%q, %q, %q) err = %v, want a validation error", tc.domain, tc.selector, tc.algorithm, err)
		}
	}
	// Nothing was created, inside or next to the keys directory.
	if entries, _ := os.ReadDir(d.Path()); len(entries) != 0 {
		t.Errorf("keys directory has %d entries after refused calls", len(entries))
	}
	if entries, _ := os.ReadDir(filepath.Join(d.Path(), "dkim")); len(entries) != 0 {
		t.Errorf("dkim directory has %d entries after refused calls", len(entries))
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 1 {
		t.Errorf("parent of the keys directory has %d entries, want 1", len(entries))
	}
}

// parseTagList splits a DKIM record into its tags (RFC 6376 §3.2).
func parseTagList(t *testing.T, rec string) map[string]string {
	t.Helper()
	tags := map[string]string{}
	for _, part := range strings.Split(rec, ";") {
		name, value, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			t.Fatalf("tag %q without =", part)
		}
		tags[strings.TrimSpace(name)] = strings.TrimSpace(value)
	}
	return tags
}

func TestDKIMRecord(t *testing.T) {
	d := newTestDir(t)
	r := NewRing()
	for _, alg := range []string{DKIMEd25519, DKIMRSA2048} {
		t.Run(alg, func(t *testing.T) {
			k, _, err := d.EnsureDKIM("example.org", "s-"+alg, alg)
			if err != nil {
				t.Fatal(err)
			}
			id := r.Add(k)
			rec := DKIMRecord(k)
			wantK := map[string]string{DKIMEd25519: "ed25519", DKIMRSA2048: "rsa"}[alg]
			if !strings.HasPrefix(rec, "v=DKIM1; k="+wantK+"; p=") {
				t.Fatalf("record %q, want prefix %q", rec, "v=DKIM1; k="+wantK+"; p=")
			}
			tags := parseTagList(t, rec)
			if len(tags) != 3 {
				t.Errorf("record has tags %v, want v, k, p", tags)
			}
			raw, err := base64.StdEncoding.DecodeString(tags["p"])
			if err != nil {
				t.Fatalf("p= is not base64: %v", err)
			}

			// What a DKIM signer hands the keys process: the SHA-256 of the
			// canonicalised header (ed25519 signs that hash, RFC 8463 §3).
			sum := sha256.Sum256([]byte("from:a@example.org\r\nsubject:hi\r\n"))
			switch alg {
			case DKIMEd25519:
				if len(raw) != ed25519.PublicKeySize {
					t.Fatalf("ed25519 p= is %d bytes, want 32", len(raw))
				}
				sig, err := r.Sign(id, PurposeDKIM, sum[:], crypto.Hash(0))
				if err != nil {
					t.Fatal(err)
				}
				if !ed25519.Verify(ed25519.PublicKey(raw), sum[:], sig) {
					t.Errorf("signature does not verify with the key from the record")
				}
			case DKIMRSA2048:
				pub, err := x509.ParsePKIXPublicKey(raw)
				if err != nil {
					t.Fatalf("rsa p= is not PKIX DER: %v", err)
				}
				rp, ok := pub.(*rsa.PublicKey)
				if !ok {
					t.Fatalf("rsa p= holds a %T", pub)
				}
				sig, err := r.Sign(id, PurposeDKIM, sum[:], crypto.SHA256)
				if err != nil {
					t.Fatal(err)
				}
				if err := rsa.VerifyPKCS1v15(rp, crypto.SHA256, sum[:], sig); err != nil {
					t.Errorf("signature does not verify with the key from the record: %v", err)
				}
			}
		})
	}
	if rec := DKIMRecord(&Key{Name: "none"}); rec != "" {
		t.Errorf("DKIMRecord of a key without public key = %q, want empty", rec)
	}
}

func FuzzCheckDNSName(f *testing.F) {
	for _, s := range []string{"example.org", "../x", "a..b", "xn--bcher-kva.example", "-a", "a-", "a/b", `a\b`, "a\x00b", strings.Repeat("a", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if checkDNSName(s) != nil {
			return
		}
		// Accepted names are safe single path components per label.
		if strings.ContainsAny(s, "/\\\x00") || strings.Contains(s, "..") || s == "." || strings.ToLower(s) != s || len(s) > 253 {
			t.Fatalf("checkDNSName accepted %q", s)
		}
		if filepath.Clean(filepath.Join("/k/dkim", s)) != "/k/dkim/"+s {
			t.Fatalf("name %q changes the path", s)
		}
	})
}
