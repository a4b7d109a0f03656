//go:build linux

package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA issues certificates for the certificate-file tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "moxd integration test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert, key, pool}
}

// issue writes a leaf for name with serial into certPath and keyPath,
// replacing them atomically (as certbot renewals do).
func (ca *testCA) issue(t *testing.T, name string, serial int64, certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})...)
	for path, data := range map[string][]byte{certPath: chain, keyPath: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})} {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
}

// servedSerial does a TLS handshake with SNI name and returns the leaf serial.
func servedSerial(addr, name string, pool *x509.CertPool) (int64, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{ServerName: name, RootCAs: pool})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
}

// TestCertificateFiles: certificate files named in the config are opened by
// master and handed to keys; the TLS roles serve them by SNI, next to the
// local CA's certificate, and "moxctl reload" picks up a renewal.
func TestCertificateFiles(t *testing.T) {
	needRoot(t)
	const base = 64260
	ca := newTestCA(t)
	certDir, err := os.MkdirTemp("", "moxd-it-certs-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(certDir)
	certPath, keyPath := filepath.Join(certDir, "mail.pem"), filepath.Join(certDir, "mail.key")
	ca.issue(t, "mail.example.test", 100, certPath, keyPath)

	tlsExtra := fmt.Sprintf("\n[[tls.certificate]]\ncert_file = %q\nkey_file = %q\n", certPath, keyPath)
	dir, conf := writeConfig(t, confOptions{baseUID: base, tlsExtra: tlsExtra})
	in := start(t, dir, conf, base)
	defer func() {
		in.stop()
		waitNoProcs(t, base, base+7)
	}()
	st := in.waitReady()
	addr := listenerAddr(st, "submissions")

	if serial, err := servedSerial(addr, "mail.example.test", ca.pool); err != nil || serial != 100 {
		t.Fatalf("handshake for mail.example.test: serial %d, %v; want the configured certificate (100)", serial, err)
	}
	if _, err := servedSerial(addr, "localhost", caPool(t, in)); err != nil {
		t.Errorf("handshake for localhost with the local CA: %v", err)
	}

	// A renewal replaces the files; reload hands them to keys again.
	ca.issue(t, "mail.example.test", 101, certPath, keyPath)
	out, err := exec.Command(filepath.Join(binDir, "moxctl"), "-f", conf, "reload").CombinedOutput()
	if err != nil {
		t.Fatalf("moxctl reload: %v\n%s", err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		serial, err := servedSerial(addr, "mail.example.test", ca.pool)
		if err == nil && serial == 101 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after reload the renewed certificate is not served: serial %d, %v", serial, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A key file that does not match the certificate is refused by reload,
	// and the running certificate stays.
	other := filepath.Join(certDir, "other.key")
	ca.issue(t, "mail.example.test", 102, filepath.Join(certDir, "other.pem"), other)
	data, _ := os.ReadFile(other)
	os.WriteFile(keyPath, data, 0o600)
	out, err = exec.Command(filepath.Join(binDir, "moxctl"), "-f", conf, "reload").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "mail") {
		t.Errorf("reload with a mismatched key: %v\n%s; want an error naming the certificate", err, out)
	}
	if serial, err := servedSerial(addr, "mail.example.test", ca.pool); err != nil || serial != 101 {
		t.Errorf("after a failed reload: serial %d, %v; want the previous certificate (101)", serial, err)
	}
}

// TestCertificateSymlinkRefused: master does not follow a symlink for a
// certificate file, and says so before starting anything.
func TestCertificateSymlinkRefused(t *testing.T) {
	needRoot(t)
	const base = 64270
	ca := newTestCA(t)
	certDir, err := os.MkdirTemp("", "moxd-it-certs-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(certDir)
	real, key := filepath.Join(certDir, "real.pem"), filepath.Join(certDir, "mail.key")
	ca.issue(t, "mail.example.test", 200, real, key)
	link := filepath.Join(certDir, "mail.pem")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	_, conf := writeConfig(t, confOptions{baseUID: base, tlsExtra: fmt.Sprintf("\n[[tls.certificate]]\ncert_file = %q\nkey_file = %q\n", link, key)})
	code, out := runMaster(t, conf)
	if code == 0 || !strings.Contains(out, "tls.certificate[0].cert_file") || !strings.Contains(out, "symlink") {
		t.Errorf("exit %d, output:\n%s\nwant a failure naming tls.certificate[0].cert_file and the symlink", code, out)
	}
	if pids := pidsOfUIDs(base, base+7); len(pids) > 0 {
		t.Errorf("workers started: %v", pids)
	}
}
