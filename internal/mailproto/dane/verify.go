package dane

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"moxd/internal/dns"
)

// ErrNoMatch is wrapped by the errors of Verify (and so of the handshake
// with a Config) when the certificate chain matched no TLSA record. The
// error text lists each record and why it did not match, for logs and
// delivery status notifications.
var ErrNoMatch = errors.New("no TLSA record matched")

// Verify checks the certificate chain a server presented, leaf first,
// against its TLSA records (RFC 7672 §3) and returns the record that
// matched. Unusable records (see Usable) are skipped.
//
//   - DANE-EE(3) records match the leaf certificate or its public key; its
//     names and validity dates are not checked (RFC 7672 §3.1.1).
//   - DANE-TA(2) records name a trust anchor: a certificate of the chain
//     other than the leaf, or, when the record holds a full certificate or
//     public key, that certificate or key itself (RFC 7671 §5.2.2). The
//     chain must verify up to it at time now (x509 rules, which check the
//     validity dates of every certificate used, the anchor's included),
//     and the leaf must be valid for one of names (RFC 7672 §3.2.2: the
//     TLSA base domain and the MX host name; wildcards as x509 allows
//     them, the subject CN only when the certificate has no DNS names).
//
// RFC 7671 §9: of the digest records with the same usage and selector only
// those with the strongest matching type (SHA2-512 over SHA2-256) are
// used.
func Verify(certs []*x509.Certificate, records []dns.TLSA, names []string, now time.Time) (dns.TLSA, error) {
	if len(certs) == 0 || certs[0] == nil {
		return dns.TLSA{}, fmt.Errorf("%w: the server presented no certificate", ErrNoMatch)
	}
	for _, c := range certs {
		if c == nil {
			return dns.TLSA{}, fmt.Errorf("%w: nil certificate in the chain", ErrNoMatch)
		}
	}
	leaf := certs[0]

	type pair struct{ usage, selector uint8 }
	strongest := map[pair]uint8{}
	for _, rec := range records {
		if Usable(rec) {
			k := pair{rec.Usage, rec.Selector}
			strongest[k] = max(strongest[k], rec.MatchingType)
		}
	}

	var reasons []string
	for _, rec := range records {
		var err error
		switch {
		case !Usable(rec):
			err = errors.New("unusable in SMTP (RFC 7672 §3.1), ignored")
		case rec.MatchingType != MatchFull && rec.MatchingType < strongest[pair{rec.Usage, rec.Selector}]:
			err = errors.New("ignored, a stronger digest is published with the same usage and selector (RFC 7671 §9)")
		case rec.Usage == UsageDANEEE:
			err = matchEE(leaf, rec)
		default:
			err = matchTA(certs, rec, names, now)
		}
		if err == nil {
			return rec, nil
		}
		reasons = append(reasons, shortRecord(rec)+": "+err.Error())
	}
	if len(reasons) == 0 {
		reasons = []string{"there are no records"}
	}
	return dns.TLSA{}, fmt.Errorf("%w the certificate chain (leaf %s): %s", ErrNoMatch, describe(leaf), strings.Join(reasons, "; "))
}

// Config returns a copy of base (nil for an empty one) for a STARTTLS
// client that authenticates the server with DANE: InsecureSkipVerify
// turns off the usual PKIX checks, and VerifyConnection calls Verify with
// records, names and the time from now (time.Now when nil), then base's
// own VerifyConnection if it has one. The handshake fails with Verify's
// error, prefixed with serverName.
//
// serverName is sent in SNI. RFC 7672 §8.1 asks for the TLSA base domain
// there (Result.Base), which is the MX host name unless a CNAME was
// followed.
func Config(base *tls.Config, serverName string, records []dns.TLSA, names []string, now func() time.Time) *tls.Config {
	c := &tls.Config{}
	if base != nil {
		c = base.Clone()
	}
	if now == nil {
		now = time.Now
	}
	records = slices.Clone(records)
	names = slices.Clone(names)
	next := c.VerifyConnection
	c.ServerName = serverName
	c.InsecureSkipVerify = true
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if _, err := Verify(cs.PeerCertificates, records, names, now()); err != nil {
			return fmt.Errorf("dane: %s: %w", serverName, err)
		}
		if next != nil {
			return next(cs)
		}
		return nil
	}
	return c
}

// FormatRecord returns rec in the presentation form of RFC 6698 §2.2,
// "3 1 1 <hex>", for logs and queue dumps.
func FormatRecord(rec dns.TLSA) string {
	return fmt.Sprintf("%d %d %d %x", rec.Usage, rec.Selector, rec.MatchingType, rec.CertData)
}

// shortRecord is FormatRecord with the data cut to 8 bytes, for error
// messages that list several records.
func shortRecord(rec dns.TLSA) string {
	return fmt.Sprintf("%d %d %d %s", rec.Usage, rec.Selector, rec.MatchingType, shortHex(rec.CertData))
}

func shortHex(b []byte) string {
	if len(b) > 8 {
		return hex.EncodeToString(b[:8]) + "…"
	}
	return hex.EncodeToString(b)
}

// association returns the data of c that a record with selector and
// matching type is compared with (RFC 6698 §2.1.2, §2.1.3).
func association(c *x509.Certificate, selector, matching uint8) []byte {
	data := c.Raw
	if selector == SelectorSPKI {
		data = c.RawSubjectPublicKeyInfo
	}
	switch matching {
	case MatchSHA256:
		h := sha256.Sum256(data)
		return h[:]
	case MatchSHA512:
		h := sha512.Sum512(data)
		return h[:]
	}
	return data
}

func matches(c *x509.Certificate, rec dns.TLSA) bool {
	return bytes.Equal(association(c, rec.Selector, rec.MatchingType), rec.CertData)
}

// leafData names the data of the leaf a record is compared with, for
// error messages.
func leafData(rec dns.TLSA) string {
	s := "the leaf's certificate"
	if rec.Selector == SelectorSPKI {
		s = "the leaf's public key (SPKI)"
	}
	switch rec.MatchingType {
	case MatchSHA256:
		return "SHA-256 of " + s
	case MatchSHA512:
		return "SHA-512 of " + s
	}
	return s
}

// matchEE checks a DANE-EE(3) record against the leaf (RFC 7672 §3.1.1).
func matchEE(leaf *x509.Certificate, rec dns.TLSA) error {
	if matches(leaf, rec) {
		return nil
	}
	if rec.MatchingType == MatchFull {
		return fmt.Errorf("%s differs", leafData(rec))
	}
	return fmt.Errorf("%s is %s", leafData(rec), shortHex(association(leaf, rec.Selector, rec.MatchingType)))
}

// matchTA checks a DANE-TA(2) record (RFC 7672 §3.1.2, RFC 7671 §5.2.2).
func matchTA(certs []*x509.Certificate, rec dns.TLSA, names []string, now time.Time) error {
	if len(names) == 0 {
		return errors.New("no names to check the certificate against")
	}
	// The anchor is normally one of the issuer certificates the server
	// sends. A key may appear in more than one (a root and its
	// cross-signed form), so each is tried.
	var lastErr error
	for _, c := range certs[1:] {
		if matches(c, rec) {
			if lastErr = verifyChain(certs, c, names, now); lastErr == nil {
				return nil
			}
		}
	}
	if lastErr != nil {
		return lastErr
	}

	// RFC 7671 §5.2.2: a record with the full anchor certificate or key
	// works without the server sending it.
	switch {
	case rec.Selector == SelectorCert && rec.MatchingType == MatchFull:
		ta, err := x509.ParseCertificate(rec.CertData)
		if err != nil {
			return fmt.Errorf("no certificate of the chain matches, and the record's certificate does not parse: %v", err)
		}
		return verifyChain(certs, ta, names, now)
	case rec.Selector == SelectorSPKI && rec.MatchingType == MatchFull:
		anchor, err := keyAnchor(rec.CertData)
		if err != nil {
			return fmt.Errorf("no certificate of the chain matches, and the record's public key is unusable (%s)", err)
		}
		// The certificate the key signed becomes the root of the chain.
		for _, c := range certs {
			if c.CheckSignatureFrom(anchor) == nil {
				return verifyChain(certs, c, names, now)
			}
		}
		return errors.New("no certificate of the chain matches or is signed by the record's public key")
	}
	return errors.New("no issuer certificate of the chain matches")
}

// keyAnchor returns a stand-in CA certificate holding the public key in
// spki, for CheckSignatureFrom.
func keyAnchor(spki []byte) (*x509.Certificate, error) {
	key, err := x509.ParsePKIXPublicKey(spki)
	if err != nil {
		// The asn1 details say nothing useful to a postmaster.
		return nil, errors.New("it does not parse as a SubjectPublicKeyInfo")
	}
	c := &x509.Certificate{
		Version:               3,
		BasicConstraintsValid: true,
		IsCA:                  true,
		PublicKey:             key,
	}
	switch key.(type) {
	case *rsa.PublicKey:
		c.PublicKeyAlgorithm = x509.RSA
	case *ecdsa.PublicKey:
		c.PublicKeyAlgorithm = x509.ECDSA
	case ed25519.PublicKey:
		c.PublicKeyAlgorithm = x509.Ed25519
	default:
		return nil, fmt.Errorf("unsupported key type %T", key)
	}
	return c, nil
}

// verifyChain verifies the leaf up to root, with the other certificates
// of the chain as intermediates, and checks the leaf's names.
func verifyChain(certs []*x509.Certificate, root *x509.Certificate, names []string, now time.Time) error {
	roots := x509.NewCertPool()
	roots.AddCert(root)
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		if c != root {
			inter.AddCert(c)
		}
	}
	leaf := certs[0]
	opts := x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		// RFC 7672 asks for no extended key usage.
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}
	if _, err := leaf.Verify(opts); err != nil {
		return fmt.Errorf("the chain up to %s does not verify: %v", describeAnchor(root), err)
	}
	for _, n := range names {
		if validFor(leaf, n) {
			return nil
		}
	}
	valid := leaf.DNSNames
	if len(valid) == 0 && leaf.Subject.CommonName != "" {
		valid = []string{leaf.Subject.CommonName}
	}
	return fmt.Errorf("the chain verifies up to %s, but the leaf is valid for %s, not for %s",
		describeAnchor(root), orNone(valid), strings.Join(names, " or "))
}

// validFor reports whether leaf is valid for the host name (RFC 7672
// §3.2.3): a DNS subjectAltName, wildcards in the leftmost label only, or
// the subject CN when there are no DNS names (RFC 6125 §6.4.4).
func validFor(leaf *x509.Certificate, name string) bool {
	name = strings.TrimSuffix(name, ".")
	if name == "" {
		return false
	}
	if leaf.VerifyHostname(name) == nil {
		return true
	}
	if len(leaf.DNSNames) > 0 || leaf.Subject.CommonName == "" {
		return false
	}
	byCN := *leaf
	byCN.DNSNames = []string{leaf.Subject.CommonName}
	byCN.IPAddresses = nil
	return byCN.VerifyHostname(name) == nil
}

func orNone(l []string) string {
	if len(l) == 0 {
		return "no names"
	}
	return strings.Join(l, ", ")
}

// describe is a certificate's subject and names, for error messages.
func describe(c *x509.Certificate) string {
	s := fmt.Sprintf("%q", c.Subject.String())
	if len(c.DNSNames) > 0 {
		s += " for " + strings.Join(c.DNSNames, ", ")
	}
	return s
}

// describeAnchor is the subject of the certificate a chain was verified
// up to, for error messages.
func describeAnchor(c *x509.Certificate) string {
	return fmt.Sprintf("%q", c.Subject.String())
}
