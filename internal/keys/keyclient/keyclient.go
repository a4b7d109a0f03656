// Package keyclient gives the TLS roles (smtp, submission, imap, web) their
// TLS configuration without any private key: certificates are fetched from
// moxd-keys, and every handshake signature is one IPC round trip to keys
// through a remote crypto.Signer (DESIGN.md §7).
//
// When keys restarts, key ids change; the certificate set remembers the
// channel it was fetched over and is refetched when a newer channel appears.
// A signature asked while keys is down fails at once, so the handshake fails
// cleanly and the worker keeps running.
package keyclient

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"moxd/internal/ipc"
	"moxd/internal/worker"
)

// fetchTimeout bounds fetching the certificates from keys.
const fetchTimeout = 10 * time.Second

// Client is a worker's view of the certificates held by keys.
type Client struct {
	w   *worker.Worker
	log *slog.Logger

	mu   sync.Mutex
	set  *certSet
	next chan struct{} // closed when a fetch finishes
	busy bool
}

// certSet is the certificates fetched over one keys channel.
type certSet struct {
	conn  *ipc.Conn
	certs []*tls.Certificate
}

// New returns a client for worker w.
func New(w *worker.Worker) *Client {
	return &Client{w: w, log: w.Log}
}

// Invalidate drops the fetched certificates (after a reload), so the next
// handshake fetches the current set.
func (c *Client) Invalidate() {
	c.mu.Lock()
	c.set = nil
	c.mu.Unlock()
}

// TLSConfig returns a server configuration whose certificates come from keys.
func (c *Client) TLSConfig() *tls.Config {
	return ServerConfig(c.getCertificate)
}

// ServerConfig is the TLS server configuration of every moxd role, with
// certificates from getCert. RSA key exchange is not offered: every TLS 1.2
// suite is ECDHE, and the remote signer does not implement crypto.Decrypter.
func ServerConfig(getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		GetCertificate: getCert,
	}
}

func (c *Client) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	ctx := hello.Context()
	set, err := c.current(ctx)
	if err != nil {
		return nil, err
	}
	if len(set.certs) == 0 {
		return nil, errors.New("keys holds no TLS certificate (configure tls.certificate or tls.local_ca)")
	}
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if name != "" {
		for _, cert := range set.certs {
			if cert.Leaf != nil && cert.Leaf.VerifyHostname(name) == nil {
				return cert, nil
			}
		}
	}
	return set.certs[0], nil
}

// current returns certificates fetched over the live keys channel, fetching
// them if needed. Concurrent handshakes share one fetch.
func (c *Client) current(ctx context.Context) (*certSet, error) {
	conn, err := c.w.Peer(ipc.RoleKeys)
	if err != nil {
		return nil, fmt.Errorf("keys is not reachable: %w", err)
	}
	for {
		c.mu.Lock()
		if c.set != nil && c.set.conn == conn {
			s := c.set
			c.mu.Unlock()
			return s, nil
		}
		if c.busy {
			ch := c.next
			c.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		c.busy = true
		c.next = make(chan struct{})
		c.mu.Unlock()

		s, err := c.fetch(ctx, conn)

		c.mu.Lock()
		c.busy = false
		close(c.next)
		if err == nil {
			c.set = s
		}
		c.mu.Unlock()
		if err != nil {
			return nil, err
		}
		return s, nil
	}
}

func (c *Client) fetch(ctx context.Context, conn *ipc.Conn) (*certSet, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	set := &certSet{conn: conn}
	var infos []ipc.CertInfo
	for {
		rep, err := conn.Call(ctx, &ipc.GetCerts{Start: uint16(len(infos))})
		if err != nil {
			return nil, fmt.Errorf("fetch certificates from keys: %w", err)
		}
		b := rep.Msg.(*ipc.CertBatch)
		infos = append(infos, b.Certs...)
		if len(infos) >= int(b.Total) || len(b.Certs) == 0 {
			break
		}
	}
	for _, info := range infos {
		var chain []byte
		for {
			rep, err := conn.Call(ctx, &ipc.GetChain{KeyID: info.KeyID, Offset: uint32(len(chain))})
			if err != nil {
				return nil, fmt.Errorf("fetch certificate chain %d from keys: %w", info.KeyID, err)
			}
			cc := rep.Msg.(*ipc.ChainChunk)
			chain = append(chain, cc.Data...)
			if len(chain) >= int(cc.Total) || len(cc.Data) == 0 {
				break
			}
		}
		certs, err := x509.ParseCertificates(chain)
		if err != nil || len(certs) == 0 {
			return nil, fmt.Errorf("certificate chain %d from keys: %v", info.KeyID, err)
		}
		pub, err := x509.ParsePKIXPublicKey(info.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("public key %d from keys: %w", info.KeyID, err)
		}
		tc := &tls.Certificate{
			Leaf:       certs[0],
			PrivateKey: &remoteSigner{c: c, conn: conn, keyID: info.KeyID, pub: pub},
		}
		for _, x := range certs {
			tc.Certificate = append(tc.Certificate, x.Raw)
		}
		set.certs = append(set.certs, tc)
	}
	c.log.Debug("certificates fetched from keys", "count", len(set.certs))
	return set, nil
}

// remoteSigner is a crypto.Signer whose private key stays in moxd-keys.
type remoteSigner struct {
	c     *Client
	conn  *ipc.Conn // the keys channel the key id belongs to
	keyID uint32
	pub   crypto.PublicKey
}

func (s *remoteSigner) Public() crypto.PublicKey { return s.pub }

// Sign asks keys for the signature: one round trip. It fails at once when
// the keys channel the key id came from is down.
func (s *remoteSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	select {
	case <-s.conn.Done():
		s.c.Invalidate()
		return nil, fmt.Errorf("keys restarted or is down: %w", ipc.ErrClosed)
	default:
	}
	m := &ipc.Sign{KeyID: s.keyID, Hash: uint8(opts.HashFunc()), Digest: digest}
	if pss, ok := opts.(*rsa.PSSOptions); ok {
		m.PSS = true
		m.SaltLength = int32(pss.SaltLength)
	}
	// No context deadline: ipc.DefaultCallTimeout bounds the call without a
	// timer per signature (a timer per handshake is measurable in P5).
	rep, err := s.conn.Call(context.Background(), m)
	if err != nil {
		return nil, fmt.Errorf("signature from keys: %w", err)
	}
	return rep.Msg.(*ipc.Signature).Sig, nil
}
