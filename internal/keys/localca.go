package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The local CA gives hosts without a public certificate (localserve, test
// setups, a server before ACME is configured) a TLS certificate clients can be
// told to trust: the admin installs the CA certificate once, the leaf can be
// re-issued freely.
const (
	localCADir       = "localca"
	localCAValidity  = 10 * 365 * 24 * time.Hour
	localLeafValid   = 365 * 24 * time.Hour
	localLeafRenew   = 30 * 24 * time.Hour // re-issue when the leaf expires sooner than this
	localBackdate    = time.Hour           // NotBefore slack for clients with a slow clock
	localCAKeyName   = "tls:localca"
	localCACommonPfx = "moxd local CA "
)

// EnsureLocalCA returns the TLS key of the local CA's leaf certificate and the
// CA certificate (DER). The CA (ECDSA P-256, valid 10 years) is created once in
// localca/ca.{key,crt}. The leaf (ECDSA P-256, valid 1 year, DNS SANs = names
// with the first as common name, IP SANs 127.0.0.1 and ::1) lives in
// localca/leaf.{key,crt} and is issued again, with a new key, when names
// change, when it expires within 30 days, or when it was not issued by the
// CA. The returned Key is named "tls:localca"; its Chain is leaf, CA.
func (d *Dir) EnsureLocalCA(names []string) (*Key, []byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()

	names, err := checkHostNames(names)
	if err != nil {
		return nil, nil, fmt.Errorf("local CA: %w", err)
	}
	dir, err := d.subdir(localCADir)
	if err != nil {
		return nil, nil, fmt.Errorf("local CA: %w", err)
	}
	now := d.now()
	ca, caKey, err := d.ensureCA(dir, now)
	if err != nil {
		return nil, nil, fmt.Errorf("local CA: %w", err)
	}
	leaf, leafKey, err := d.ensureLeaf(dir, names, ca, caKey, now)
	if err != nil {
		return nil, nil, fmt.Errorf("local CA leaf certificate: %w", err)
	}
	k := &Key{
		Name:     localCAKeyName,
		Purpose:  PurposeTLS,
		Signer:   leafKey,
		Public:   leafKey.Public(),
		Chain:    [][]byte{leaf.Raw, ca.Raw},
		Names:    append([]string(nil), leaf.DNSNames...),
		NotAfter: leaf.NotAfter,
	}
	return k, ca.Raw, nil
}

// ensureCA loads the CA from dir or creates it if neither file exists.
func (d *Dir) ensureCA(dir string, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	keyPath := filepath.Join(dir, "ca.key")
	crtPath := filepath.Join(dir, "ca.crt")
	keyPEM, kerr := d.readFile(keyPath)
	crtPEM, cerr := d.readFile(crtPath)
	kmissing, cmissing := errors.Is(kerr, fs.ErrNotExist), errors.Is(cerr, fs.ErrNotExist)
	switch {
	case kmissing && cmissing:
		return createCA(keyPath, crtPath, now)
	case kerr != nil && !kmissing:
		return nil, nil, kerr
	case cerr != nil && !cmissing:
		return nil, nil, cerr
	case kmissing || cmissing:
		return nil, nil, fmt.Errorf("one of %s and %s is missing; restore it from a backup, or remove both to create a new local CA (clients then need to trust the new CA certificate)", keyPath, crtPath)
	}

	key, err := parseOwnKeyPEM(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	chain, err := parseChainPEM(crtPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", crtPath, err)
	}
	ca := chain[0]
	if !ca.IsCA || !publicKeysEqual(ca.PublicKey, key.Public()) {
		return nil, nil, fmt.Errorf("%s is not the CA certificate of key %s; restore the pair from a backup, or remove both to create a new local CA", crtPath, keyPath)
	}
	if now.Add(localLeafRenew).After(ca.NotAfter) {
		return nil, nil, fmt.Errorf("the local CA certificate %s expires %s; remove %s and %s to create a new local CA (clients then need to trust the new CA certificate)", crtPath, ca.NotAfter.UTC().Format(time.DateOnly), keyPath, crtPath)
	}
	return ca, key, nil
}

func createCA(keyPath, crtPath string, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA key: %w", err)
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: localCACommonPfx + host, Organization: []string{"moxd"}},
		NotBefore:             now.Add(-localBackdate),
		NotAfter:              now.Add(localCAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // RFC 5280 §4.2.1.9: issues leaves only
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("create CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse new CA certificate: %w", err)
	}
	keyPEM, err := marshalKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	// Key first: a crash between the writes leaves only the key, which the
	// next start reports instead of silently making a second CA.
	if err := writeFile(keyPath, keyPEM); err != nil {
		return nil, nil, err
	}
	if err := writeFile(crtPath, marshalCertPEM(der)); err != nil {
		return nil, nil, err
	}
	return ca, key, nil
}

// ensureLeaf loads the leaf from dir, issuing a new one when it is missing,
// unusable, for other names, not from ca, or about to expire.
func (d *Dir) ensureLeaf(dir string, names []string, ca *x509.Certificate, caKey crypto.Signer, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	keyPath := filepath.Join(dir, "leaf.key")
	crtPath := filepath.Join(dir, "leaf.crt")
	keyPEM, kerr := d.readFile(keyPath)
	crtPEM, cerr := d.readFile(crtPath)
	if kerr != nil && !errors.Is(kerr, fs.ErrNotExist) {
		return nil, nil, kerr
	}
	if cerr != nil && !errors.Is(cerr, fs.ErrNotExist) {
		return nil, nil, cerr
	}
	if kerr == nil && cerr == nil {
		if leaf, key, ok := usableLeaf(keyPEM, crtPEM, names, ca, now); ok {
			return leaf, key, nil
		}
	}
	return issueLeaf(keyPath, crtPath, names, ca, caKey, now)
}

// usableLeaf reports whether the stored leaf can be kept. The leaf is derived
// data, so anything wrong with it means issuing a new one.
func usableLeaf(keyPEM, crtPEM []byte, names []string, ca *x509.Certificate, now time.Time) (*x509.Certificate, crypto.Signer, bool) {
	key, err := parseOwnKeyPEM(keyPEM)
	if err != nil {
		return nil, nil, false
	}
	chain, err := parseChainPEM(crtPEM)
	if err != nil {
		return nil, nil, false
	}
	leaf := chain[0]
	ok := publicKeysEqual(leaf.PublicKey, key.Public()) &&
		leaf.CheckSignatureFrom(ca) == nil &&
		slices.Equal(leaf.DNSNames, names) &&
		leaf.Subject.CommonName == names[0] &&
		hasLoopbackIPs(leaf.IPAddresses) &&
		!now.Before(leaf.NotBefore) &&
		now.Add(localLeafRenew).Before(leaf.NotAfter)
	return leaf, key, ok
}

func hasLoopbackIPs(ips []net.IP) bool {
	var v4, v6 bool
	for _, ip := range ips {
		v4 = v4 || ip.Equal(net.IPv4(127, 0, 0, 1))
		v6 = v6 || ip.Equal(net.IPv6loopback)
	}
	return v4 && v6
}

func issueLeaf(keyPath, crtPath string, names []string, ca *x509.Certificate, caKey crypto.Signer, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate leaf key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	notAfter := now.Add(localLeafValid)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: names[0]},
		DNSNames:              names,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback},
		NotBefore:             now.Add(-localBackdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse new certificate: %w", err)
	}
	keyPEM, err := marshalKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	// Key first: after a crash between the writes the certificate does not
	// match the key, and the next call issues a new pair.
	if err := writeFile(keyPath, keyPEM); err != nil {
		return nil, nil, err
	}
	if err := writeFile(crtPath, marshalCertPEM(der)); err != nil {
		return nil, nil, err
	}
	return leaf, key, nil
}

// randomSerial returns a positive 128-bit serial number (RFC 5280 §4.1.2.2:
// at most 20 octets, positive).
func randomSerial() (*big.Int, error) {
	max := new(big.Int).Lsh(big.NewInt(1), 127)
	n, err := rand.Int(rand.Reader, max)
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// checkHostNames validates the leaf's DNS names: at least one, each a
// lower-case host name (trailing dot and upper case are normalised), no
// wildcards, no duplicates. The order is kept: the first is the common name.
func checkHostNames(names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("no host names; configure at least the host name")
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		n = strings.ToLower(strings.TrimSuffix(n, "."))
		if err := checkDNSName(n); err != nil {
			return nil, fmt.Errorf("host name %q: %w", n, err)
		}
		if slices.Contains(out, n) {
			return nil, fmt.Errorf("host name %q listed twice", n)
		}
		out = append(out, n)
	}
	return out, nil
}
