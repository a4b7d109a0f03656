package keys

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"testing"
	"time"
)

// ringSigner is what a TLS role holds: the public key, and a Sign that asks
// the ring (in production, over IPC) for a TLS-purpose signature.
type ringSigner struct {
	r   *Ring
	id  uint32
	pub crypto.PublicKey
}

func (s ringSigner) Public() crypto.PublicKey { return s.pub }

func (s ringSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return s.r.Sign(s.id, PurposeTLS, digest, opts)
}

// handshake runs a TLS handshake over an in-memory pipe and sends one message
// from client to server. It returns the client's view of the connection.
func handshake(t *testing.T, server, client *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sc, cc := net.Pipe()
	defer sc.Close()
	defer cc.Close()
	deadline, _ := ctx.Deadline()
	sc.SetDeadline(deadline)
	cc.SetDeadline(deadline)

	srvErr := make(chan error, 1)
	go func() {
		s := tls.Server(sc, server)
		if err := s.HandshakeContext(ctx); err != nil {
			sc.Close()
			srvErr <- err
			return
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(s, buf); err != nil {
			srvErr <- err
			return
		}
		if string(buf) != "ping" {
			srvErr <- io.ErrUnexpectedEOF
			return
		}
		srvErr <- nil
	}()
	c := tls.Client(cc, client)
	if err := c.HandshakeContext(ctx); err != nil {
		cc.Close()
		<-srvErr
		return tls.ConnectionState{}, err
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		return tls.ConnectionState{}, err
	}
	if err := <-srvErr; err != nil {
		return tls.ConnectionState{}, err
	}
	return c.ConnectionState(), nil
}

func TestTLSHandshakeWithRingSigner(t *testing.T) {
	d := newTestDir(t)
	k, caDER, err := d.EnsureLocalCA([]string{"localhost", "mail.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)

	r := NewRing()
	id := r.Add(k)
	// The same private key listed as a DKIM key: a TLS role must not get
	// signatures from it.
	misuse := *k
	misuse.Name, misuse.Purpose = "dkim:misuse", PurposeDKIM
	misuseID := r.Add(&misuse)

	serverConfig := func(keyID uint32, version uint16) *tls.Config {
		return &tls.Config{
			Certificates: []tls.Certificate{{
				Certificate: k.Chain,
				PrivateKey:  ringSigner{r: r, id: keyID, pub: k.Public},
			}},
			MinVersion: version,
			MaxVersion: version,
			// TLS 1.2: ECDHE only, no RSA key exchange (TLS 1.3 is always ECDHE).
			CipherSuites: []uint16{
				tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
				tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
				tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			},
		}
	}

	tests := []struct {
		name       string
		version    uint16
		serverName string
	}{
		{"TLS 1.3 localhost", tls.VersionTLS13, "localhost"},
		{"TLS 1.3 other SAN", tls.VersionTLS13, "mail.example.org"},
		{"TLS 1.3 127.0.0.1", tls.VersionTLS13, "127.0.0.1"},
		{"TLS 1.2 localhost", tls.VersionTLS12, "localhost"},
		{"TLS 1.2 ::1", tls.VersionTLS12, "::1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := counterOf(r, k.Name)
			cs, err := handshake(t, serverConfig(id, tc.version), &tls.Config{
				RootCAs:    roots,
				ServerName: tc.serverName,
				MinVersion: tls.VersionTLS12,
			})
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if cs.Version != tc.version {
				t.Errorf("negotiated version %x, want %x", cs.Version, tc.version)
			}
			if len(cs.PeerCertificates) == 0 || !cs.PeerCertificates[0].Equal(mustParse(t, k.Chain[0])) {
				t.Errorf("client did not see the local CA leaf")
			}
			if len(cs.VerifiedChains) == 0 || !cs.VerifiedChains[0][len(cs.VerifiedChains[0])-1].Equal(ca) {
				t.Errorf("chain not verified up to the local CA")
			}
			if after, _ := counterOf(r, k.Name); after != before+1 {
				t.Errorf("sign counter went from %d to %d, want +1 per handshake", before, after)
			}
		})
	}

	t.Run("client not trusting the CA", func(t *testing.T) {
		if _, err := handshake(t, serverConfig(id, tls.VersionTLS13), &tls.Config{ServerName: "localhost", RootCAs: x509.NewCertPool()}); err == nil {
			t.Errorf("handshake succeeded without trusting the local CA")
		}
	})
	t.Run("DKIM key refuses TLS", func(t *testing.T) {
		_, err := handshake(t, serverConfig(misuseID, tls.VersionTLS13), &tls.Config{ServerName: "localhost", RootCAs: roots})
		if err == nil {
			t.Fatalf("handshake succeeded with a DKIM-purpose key")
		}
		if n, _ := counterOf(r, "dkim:misuse"); n != 0 {
			t.Errorf("DKIM-purpose key counted %d signatures", n)
		}
	})
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
