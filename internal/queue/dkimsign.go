package queue

// DKIM signing of submitted messages (RFC 6376, RFC 8463). Queue signs
// when it accepts a submission, with every selector configured for the
// domain of the From header (so the signature is aligned for DMARC even
// when MAIL FROM is another domain). The private keys stay in moxd-keys:
// the signer here sends the digest and gets the signature back (FamDKIM).
// The DKIM-Signature fields are kept in the message record and sent in
// front of the queued file.

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"fmt"
	"io"
	"math/big"
	"os"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
	"golang.org/x/net/idna"

	"moxd/internal/config"
	"moxd/internal/ipc"
)

// signedHeaders are the fields a signature covers. From is listed twice
// so that a From field added later breaks the signature (RFC 6376 §8.15).
var signedHeaders = []string{
	"From", "From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID",
	"In-Reply-To", "References", "MIME-Version", "Content-Type",
	"Content-Transfer-Encoding", "List-Unsubscribe", "List-Unsubscribe-Post",
}

// keysSigner is a crypto.Signer whose key is in moxd-keys.
type keysSigner struct {
	ctx      context.Context
	sv       *service
	domain   string // as configured (keys knows the key by it)
	selector string
	pub      crypto.PublicKey
}

func (s *keysSigner) Public() crypto.PublicKey { return s.pub }

func (s *keysSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	conn, err := s.sv.keysPeer()
	if err != nil {
		return nil, fmt.Errorf("no channel to moxd-keys: %w", err)
	}
	rep, err := conn.Call(s.ctx, &ipc.DKIMSign{Domain: s.domain, Selector: s.selector, Hash: uint8(opts.HashFunc()), Digest: digest})
	if err != nil {
		return nil, fmt.Errorf("DKIM signature from moxd-keys: %w", err)
	}
	switch m := rep.Msg.(type) {
	case *ipc.Signature:
		return m.Sig, nil
	case *ipc.DKIMSignature:
		return m.Sig, nil
	}
	return nil, fmt.Errorf("moxd-keys answered %T to a DKIM signature request", rep.Msg)
}

// algorithmKey is a public key of the selector's algorithm: the signing
// library chooses the a= tag by the key type only.
func algorithmKey(alg string) crypto.PublicKey {
	if alg == "ed25519" {
		return ed25519.PublicKey(make([]byte, ed25519.PublicKeySize))
	}
	return &rsa.PublicKey{N: big.NewInt(1), E: 65537}
}

// dkimSign returns the DKIM-Signature fields for the message in path,
// one per selector of fromDomain; "" when the domain has none.
func (sv *service) dkimSign(ctx context.Context, fromDomain, path string) (string, error) {
	st := sv.settings.Load()
	sels, name := st.dkimFor(fromDomain)
	if len(sels) == 0 {
		return "", nil
	}
	ascii, err := idna.Lookup.ToASCII(name)
	if err != nil {
		return "", fmt.Errorf("DKIM domain %q: %w", name, err)
	}
	var b strings.Builder
	for _, sel := range sels {
		f, err := os.Open(path)
		if err != nil {
			return "", err
		}
		sig, err := signOne(ctx, sv, f, name, ascii, sel)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("DKIM selector %s of %s: %w", sel.Selector, name, err)
		}
		b.WriteString(sig)
	}
	return b.String(), nil
}

func signOne(ctx context.Context, sv *service, r io.Reader, name, ascii string, sel config.QueueDKIM) (string, error) {
	s, err := dkim.NewSigner(&dkim.SignOptions{
		Domain:                 ascii,
		Selector:               sel.Selector,
		Signer:                 &keysSigner{ctx: ctx, sv: sv, domain: name, selector: sel.Selector, pub: algorithmKey(sel.Algorithm)},
		Hash:                   crypto.SHA256,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             signedHeaders,
	})
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(s, r); err != nil {
		s.Close()
		return "", err
	}
	if err := s.Close(); err != nil {
		return "", err
	}
	return s.Signature(), nil
}

// dkimFor returns the selectors for a From domain and the domain's name
// as configured; the domain may be given in Unicode or ASCII form.
func (st *settings) dkimFor(domain string) ([]config.QueueDKIM, string) {
	domain = strings.ToLower(domain)
	if l, ok := st.dkim[domain]; ok {
		return l, domain
	}
	if u, err := idna.Lookup.ToUnicode(domain); err == nil {
		if l, ok := st.dkim[u]; ok {
			return l, u
		}
	}
	return nil, ""
}
