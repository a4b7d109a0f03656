package keys

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
)

// DKIM key algorithms, as configured and as reported in Key.Algorithm.
const (
	DKIMEd25519 = "ed25519" // RFC 8463
	DKIMRSA2048 = "rsa2048" // RFC 6376 with RFC 8301 §3.2 key size
)

const dkimDir = "dkim"

// EnsureDKIM returns the DKIM key for domain and selector, stored in
// dkim/<domain>/<selector>.key as PKCS #8 PEM, creating it with algorithm
// ("ed25519" or "rsa2048") if the file does not exist; created reports that.
// An existing key of another algorithm is an error: DKIM keys are rotated by
// configuring a new selector, never by replacing the key behind a published
// one. Domain and selector must be lower-case LDH names, so every path stays
// inside the keys directory.
func (d *Dir) EnsureDKIM(domain, selector, algorithm string) (k *Key, created bool, err error) {
	if err := checkDNSName(domain); err != nil {
		return nil, false, fmt.Errorf("DKIM domain %q: %w", domain, err)
	}
	// RFC 6376 §3.1: a selector is a sub-domain, so it may contain dots.
	if err := checkDNSName(selector); err != nil {
		return nil, false, fmt.Errorf("DKIM selector %q: %w", selector, err)
	}
	if algorithm != DKIMEd25519 && algorithm != DKIMRSA2048 {
		return nil, false, fmt.Errorf("DKIM algorithm %q: use %q or %q", algorithm, DKIMEd25519, DKIMRSA2048)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	dir, err := d.subdir(dkimDir, domain)
	if err != nil {
		return nil, false, fmt.Errorf("DKIM key %s for %s: %w", selector, domain, err)
	}
	path := filepath.Join(dir, selector+".key")

	var signer crypto.Signer
	data, err := d.readFile(path)
	switch {
	case err == nil:
		signer, err = parseOwnKeyPEM(data)
		if err != nil {
			return nil, false, fmt.Errorf("DKIM key %s: %w; restore it from a backup, or configure a new selector", path, err)
		}
		have := dkimAlgorithm(signer.Public())
		if have != algorithm {
			return nil, false, fmt.Errorf("DKIM key %s is %s, but %s is configured for selector %s of %s; configure %s again, or configure a new selector for the new algorithm", path, have, algorithm, selector, domain, have)
		}
	case errors.Is(err, fs.ErrNotExist):
		signer, err = generateDKIMKey(algorithm)
		if err != nil {
			return nil, false, err
		}
		pemData, err := marshalKeyPEM(signer)
		if err != nil {
			return nil, false, err
		}
		if err := writeFile(path, pemData); err != nil {
			return nil, false, fmt.Errorf("DKIM key: %w", err)
		}
		created = true
	default:
		return nil, false, fmt.Errorf("DKIM key: %w", err)
	}

	k = &Key{
		Name:      "dkim:" + domain + ":" + selector,
		Purpose:   PurposeDKIM,
		Signer:    signer,
		Public:    signer.Public(),
		Names:     []string{domain},
		Domain:    domain,
		Selector:  selector,
		Algorithm: algorithm,
	}
	return k, created, nil
}

func generateDKIMKey(algorithm string) (crypto.Signer, error) {
	switch algorithm {
	case DKIMEd25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate ed25519 DKIM key: %w", err)
		}
		return priv, nil
	case DKIMRSA2048:
		priv, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, fmt.Errorf("generate RSA DKIM key: %w", err)
		}
		return priv, nil
	}
	return nil, fmt.Errorf("DKIM algorithm %q: use %q or %q", algorithm, DKIMEd25519, DKIMRSA2048)
}

// dkimAlgorithm names the algorithm of a stored key the way the config does.
func dkimAlgorithm(pub crypto.PublicKey) string {
	switch p := pub.(type) {
	case ed25519.PublicKey:
		return DKIMEd25519
	case *rsa.PublicKey:
		return fmt.Sprintf("rsa%d", p.N.BitLen())
	}
	return fmt.Sprintf("%T", pub)
}

// DKIMRecord returns the TXT record value to publish at
// <selector>._domainkey.<domain> for k, or "" if k has no DKIM public key.
func DKIMRecord(k *Key) string {
	pub := k.Public
	if pub == nil && k.Signer != nil {
		pub = k.Signer.Public()
	}
	switch p := pub.(type) {
	case ed25519.PublicKey:
		// RFC 8463 §4.2: p= is the base64 of the raw 32-byte public key.
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(p)
	case *rsa.PublicKey:
		// RFC 6376 §3.6.1: k=rsa, p= is the base64 of the DER public key
		// (SubjectPublicKeyInfo, as verifiers expect).
		der, err := x509.MarshalPKIXPublicKey(p)
		if err != nil {
			return ""
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	}
	return ""
}

// checkDNSName accepts a lower-case host name of LDH labels (RFC 1123 §2.1):
// 1 to 63 characters each, letters, digits and hyphens, no hyphen at either
// end, at most 253 characters in all, no trailing dot. This also keeps the
// name safe as a path component: no "/", no "..", no empty label.
func checkDNSName(s string) error {
	if s == "" {
		return errors.New("empty name")
	}
	if len(s) > 253 {
		return fmt.Errorf("name is %d characters, at most 253 allowed", len(s))
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" {
			return errors.New("empty label (leading, trailing or double dot)")
		}
		if len(label) > 63 {
			return fmt.Errorf("label %q is longer than 63 characters", label)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("label %q starts or ends with a hyphen", label)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-':
			case 'A' <= c && c <= 'Z':
				return fmt.Errorf("upper-case letter in %q; write the name in lower case", s)
			default:
				return fmt.Errorf("character %q not allowed; use letters, digits, hyphens and dots (IDNs in A-label form)", c)
			}
		}
	}
	return nil
}
