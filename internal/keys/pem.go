package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// LoadPair builds a TLS key from a certificate chain file and a private key file
// that the master opened (O_NOFOLLOW) and passed in, such as certbot's
// fullchain.pem and privkey.pem. Each file is read up to 1 MiB. The chain is
// the CERTIFICATE blocks of certFile, leaf first; the key is a PKCS #8, PKCS #1
// (RSA) or SEC 1 (EC) PEM block and must match the leaf's public key. The files
// are not closed.
func LoadPair(name string, certFile, keyFile *os.File) (*Key, error) {
	if name == "" {
		return nil, fmt.Errorf("load certificate pair: empty key name")
	}
	if certFile == nil || keyFile == nil {
		return nil, fmt.Errorf("load certificate pair %s: missing certificate or key file", name)
	}
	certPEM, err := readLimited(certFile, certFile.Name())
	if err != nil {
		return nil, fmt.Errorf("load certificate pair %s: %w", name, err)
	}
	keyPEM, err := readLimited(keyFile, keyFile.Name())
	if err != nil {
		return nil, fmt.Errorf("load certificate pair %s: %w", name, err)
	}
	k, err := parsePair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load certificate pair %s (certificate %s, key %s): %w", name, certFile.Name(), keyFile.Name(), err)
	}
	k.Name = name
	return k, nil
}

// parsePair is LoadPair on bytes.
func parsePair(certPEM, keyPEM []byte) (*Key, error) {
	chain, err := parseChainPEM(certPEM)
	if err != nil {
		return nil, err
	}
	signer, err := parsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, err
	}
	if err := checkTLSKey(signer); err != nil {
		return nil, err
	}
	leaf := chain[0]
	if !publicKeysEqual(leaf.PublicKey, signer.Public()) {
		for i, c := range chain[1:] {
			if publicKeysEqual(c.PublicKey, signer.Public()) {
				return nil, fmt.Errorf("the private key belongs to certificate %d of the chain, not the first; put the leaf (host) certificate first", i+2)
			}
		}
		return nil, fmt.Errorf("the private key does not match the certificate %q; configure the key file issued with this certificate", leaf.Subject.CommonName)
	}
	k := &Key{
		Purpose:  PurposeTLS,
		Signer:   signer,
		Public:   signer.Public(),
		Names:    append([]string(nil), leaf.DNSNames...),
		NotAfter: leaf.NotAfter,
	}
	for _, c := range chain {
		k.Chain = append(k.Chain, c.Raw)
	}
	return k, nil
}

// parseChainPEM returns the certificates of the CERTIFICATE blocks in data, in
// order. Other block types are skipped; at least one certificate is required.
func parseChainPEM(data []byte) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d of the chain: %w", len(chain)+1, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("no PEM CERTIFICATE block found; configure a PEM certificate chain file (leaf first)")
	}
	return chain, nil
}

// parsePrivateKeyPEM returns the private key of the first key block in data:
// "PRIVATE KEY" (PKCS #8), "RSA PRIVATE KEY" (PKCS #1) or "EC PRIVATE KEY"
// (SEC 1). Encrypted keys are refused: the keys process has no passphrase.
func parsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, fmt.Errorf("no PEM private key block found; configure an unencrypted PEM key file (PKCS #8, PKCS #1 or EC)")
		}
		if b.Headers["Proc-Type"] != "" || b.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, fmt.Errorf("the private key is encrypted; store it without a passphrase (e.g. openssl pkey -in old.pem -out new.pem) with mode 0600")
		}
		var key any
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(b.Bytes)
		default:
			// E.g. "EC PARAMETERS", which openssl ecparam writes before the key.
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s block: %w", strings.ToLower(b.Type), err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("private key of type %T cannot sign; use an ECDSA, RSA or ed25519 key", key)
		}
		return signer, nil
	}
}

// checkTLSKey refuses keys too weak or unusual for a TLS host key.
func checkTLSKey(s crypto.Signer) error {
	switch pub := s.Public().(type) {
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() && pub.Curve != elliptic.P384() {
			return fmt.Errorf("ECDSA key on curve %s; use P-256 or P-384", pub.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if pub.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key of %d bits; use at least 2048 bits", pub.N.BitLen())
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("unsupported key type %T; use ECDSA P-256, RSA or ed25519", pub)
	}
	return nil
}

// publicKeysEqual compares two public keys of any of the standard types.
func publicKeysEqual(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}

// marshalKeyPEM encodes a private key as a PKCS #8 "PRIVATE KEY" PEM block,
// the one format this package writes.
func marshalKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// parseOwnKeyPEM decodes a key file this package wrote: exactly one PKCS #8 block.
func parseOwnKeyPEM(data []byte) (crypto.Signer, error) {
	b, rest := pem.Decode(data)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM PRIVATE KEY (PKCS #8) file")
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		return nil, errors.New("unexpected data after the PRIVATE KEY block")
	}
	key, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse PKCS #8 key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", key)
	}
	return signer, nil
}

// marshalCertPEM encodes DER certificates as consecutive CERTIFICATE blocks.
func marshalCertPEM(ders ...[]byte) []byte {
	var out []byte
	for _, der := range ders {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	return out
}
