// Package keys is the key store of moxd-keys, the only moxd process that holds
// private keys: TLS host keys, DKIM keys and ACME account keys.
//
// The package has two halves. The on-disk store (Dir) creates and loads the keys
// moxd makes itself: a private "local CA" with a leaf certificate for hosts
// without a public certificate, and DKIM keys per domain and selector. LoadPair
// parses certificate and key files an administrator configured, which the master
// process opens and passes in as file descriptors, so this process never follows
// a path it was not given. The in-memory Ring holds the keys in use and signs
// with them on behalf of other processes, enforcing that each key is used only
// for its one purpose and counting signatures per key.
//
// Private keys never leave this package: callers get key IDs, public keys and
// certificates, and ask Ring.Sign for signatures. The IPC service that exposes
// Ring.Sign to the other roles lives in separate files of this package.
//
// Implementation notes for the Ring: a single RWMutex guards the maps from ID and
// name to entries; signing takes the read lock only to look the key up and signs
// without it, so slow RSA signatures do not block other signers. Sign counters
// are atomic and belong to the key name, so a key replaced on renewal keeps
// counting where its predecessor stopped and a signature in flight during a
// replacement is still counted.
package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Purpose is the one use a key may be put to. A TLS key never signs a DKIM
// digest, a DKIM key never completes a TLS handshake.
type Purpose uint8

const (
	PurposeTLS  Purpose = 1 // TLS handshakes for smtp, submission, imap and web
	PurposeDKIM Purpose = 2 // DKIM message signatures for queue
	PurposeACME Purpose = 3 // ACME account requests
)

// String returns the name used in logs, metrics and errors: "tls", "dkim" or "acme".
func (p Purpose) String() string {
	switch p {
	case PurposeTLS:
		return "tls"
	case PurposeDKIM:
		return "dkim"
	case PurposeACME:
		return "acme"
	}
	return fmt.Sprintf("purpose(%d)", uint8(p))
}

// Key is a private key with what callers may know about it. Everything but
// Signer may be sent to other processes.
type Key struct {
	ID       uint32           // assigned by Ring.Add, stable for the life of the process, never reused
	Name     string           // unique in a Ring, e.g. "tls:localca", "tls:file:mail", "dkim:example.org:sel1"
	Purpose  Purpose          // the only use Ring.Sign allows
	Signer   crypto.Signer    // never leaves this process
	Public   crypto.PublicKey // Signer.Public()
	Chain    [][]byte         // TLS only: DER certificates, leaf first
	Names    []string         // TLS: DNS names (SANs) of the leaf; DKIM: [Domain]
	NotAfter time.Time        // TLS: leaf expiry; zero for DKIM

	// DKIM only.
	Domain    string
	Selector  string
	Algorithm string // "ed25519" or "rsa2048"
}

// maxEd25519Message bounds what an ed25519 key signs. Ed25519 signs the message
// itself rather than a digest: a TLS 1.3 CertificateVerify input is about 130
// bytes, a DKIM ed25519 input is a 32-byte SHA-256 hash (RFC 8463 §3).
const maxEd25519Message = 1024

// Ring holds the keys in use. It is safe for concurrent use.
type Ring struct {
	mu     sync.RWMutex
	nextID uint32
	byID   map[uint32]*ringEntry
	byName map[string]*ringEntry
}

type ringEntry struct {
	key   *Key
	signs *atomic.Uint64 // shared by every key that carried this name
}

// NewRing returns an empty ring. IDs start at 1, so 0 never names a key.
func NewRing() *Ring {
	return &Ring{
		byID:   map[uint32]*ringEntry{},
		byName: map[string]*ringEntry{},
	}
}

// Add stores a copy of k under a new ID and returns that ID. Names are unique
// in a ring: adding a key whose Name is already present replaces that key, as
// Replace does. If k.Public is nil it is taken from k.Signer.
func (r *Ring) Add(k *Key) uint32 {
	return r.Replace(k.Name, k)
}

// Replace puts k in place of the key named name, under a new ID, or adds it if
// no key has that name. The old ID stops working at once; its sign counter
// carries over to the new key. k.Name is set to name.
func (r *Ring) Replace(name string, k *Key) uint32 {
	c := *k
	c.Name = name
	if c.Public == nil && c.Signer != nil {
		c.Public = c.Signer.Public()
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	r.nextID++
	c.ID = r.nextID
	e := &ringEntry{key: &c}
	if old, ok := r.byName[name]; ok {
		delete(r.byID, old.key.ID)
		e.signs = old.signs
	} else {
		e.signs = new(atomic.Uint64)
	}
	r.byID[c.ID] = e
	r.byName[name] = e
	return c.ID
}

// Remove drops the key named name, if any, and its counter.
func (r *Ring) Remove(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.byName[name]; ok {
		delete(r.byID, e.key.ID)
		delete(r.byName, name)
	}
}

// Get returns the key with the given ID. The returned Key is shared and must
// not be modified.
func (r *Ring) Get(id uint32) (*Key, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.byID[id]
	if !ok {
		return nil, false
	}
	return e.key, true
}

// ByPurpose returns the keys with purpose p, sorted by Name.
func (r *Ring) ByPurpose(p Purpose) []*Key {
	r.mu.RLock()
	var l []*Key
	for _, e := range r.byID {
		if e.key.Purpose == p {
			l = append(l, e.key)
		}
	}
	r.mu.RUnlock()
	sort.Slice(l, func(i, j int) bool { return l[i].Name < l[j].Name })
	return l
}

// DKIM returns the DKIM key for domain and selector. Both are compared
// case-insensitively, as DNS names are.
func (r *Ring) DKIM(domain, selector string) (*Key, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, e := range r.byID {
		k := e.key
		if k.Purpose == PurposeDKIM && equalFoldASCII(k.Domain, domain) && equalFoldASCII(k.Selector, selector) {
			return k, true
		}
	}
	return nil, false
}

// Sign signs digest with key id for a caller that needs purpose want. It
// refuses a key of another purpose, checks opts against the key type (hash 0
// only for ed25519, which signs the message itself; SHA-256, SHA-384 or SHA-512
// with a digest of that hash's length for ECDSA and RSA), and counts the
// signature only when it succeeds. RSA keys sign with PSS when opts is a
// *rsa.PSSOptions and with PKCS #1 v1.5 otherwise.
func (r *Ring) Sign(id uint32, want Purpose, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	r.mu.RLock()
	e, ok := r.byID[id]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("sign: no key with id %d (it may have been replaced; fetch the key list again)", id)
	}
	k := e.key
	if k.Purpose != want {
		return nil, fmt.Errorf("sign: key %s is a %s key, not usable for %s signatures", k.Name, k.Purpose, want)
	}
	if k.Signer == nil {
		return nil, fmt.Errorf("sign: key %s has no private key", k.Name)
	}
	if err := checkSignerOpts(k.Public, digest, opts); err != nil {
		return nil, fmt.Errorf("sign with key %s: %w", k.Name, err)
	}
	sig, err := k.Signer.Sign(rand.Reader, digest, opts)
	if err != nil {
		return nil, fmt.Errorf("sign with key %s: %w", k.Name, err)
	}
	e.signs.Add(1)
	return sig, nil
}

// checkSignerOpts validates a signing request against the public key's type.
func checkSignerOpts(pub crypto.PublicKey, digest []byte, opts crypto.SignerOpts) error {
	if opts == nil {
		return fmt.Errorf("missing signer options (hash)")
	}
	h := opts.HashFunc()
	switch pub.(type) {
	case ed25519.PublicKey:
		// Ed25519ph (prehashed ed25519) is used by neither TLS nor DKIM.
		if h != 0 {
			return fmt.Errorf("ed25519 key signs with hash 0 (the message itself), not %v", h)
		}
		if len(digest) == 0 || len(digest) > maxEd25519Message {
			return fmt.Errorf("ed25519 message is %d bytes, want 1 to %d", len(digest), maxEd25519Message)
		}
		return nil
	case *ecdsa.PublicKey, *rsa.PublicKey:
		switch h {
		case crypto.SHA256, crypto.SHA384, crypto.SHA512:
		case 0:
			return fmt.Errorf("hash 0 is only for ed25519 keys; use SHA-256, SHA-384 or SHA-512")
		default:
			return fmt.Errorf("hash %v not allowed; use SHA-256, SHA-384 or SHA-512", h)
		}
		if len(digest) != h.Size() {
			return fmt.Errorf("digest is %d bytes, %v digests are %d", len(digest), h, h.Size())
		}
		return nil
	}
	return fmt.Errorf("unsupported public key type %T", pub)
}

// Counter is the number of successful signatures made with the key Name.
type Counter struct {
	Name    string
	Purpose Purpose
	Signs   uint64
}

// Counters returns the sign counters of the keys in the ring, sorted by Name.
func (r *Ring) Counters() []Counter {
	r.mu.RLock()
	l := make([]Counter, 0, len(r.byName))
	for name, e := range r.byName {
		l = append(l, Counter{Name: name, Purpose: e.key.Purpose, Signs: e.signs.Load()})
	}
	r.mu.RUnlock()
	sort.Slice(l, func(i, j int) bool { return l[i].Name < l[j].Name })
	return l
}

// equalFoldASCII compares two ASCII strings ignoring case; DNS names compare
// this way (RFC 4343 §2).
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
