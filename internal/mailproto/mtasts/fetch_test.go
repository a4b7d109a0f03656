package mtasts

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// testCA returns a CA pool and a server certificate it issued for names.
func testCA(t *testing.T, names ...string) (*x509.CertPool, tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mtasts test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

const goodPolicy = "version: STSv1\r\nmode: enforce\r\nmx: mx.example.test\r\nmx: *.backup.example.test\r\nmax_age: 86400\r\n"

// policyServer serves policies on loopback; the Host header picks the
// behaviour. It counts requests per host.
type policyServer struct {
	srv      *httptest.Server
	pool     *x509.CertPool
	mu       sync.Mutex
	requests map[string]int
}

func startPolicyServer(t *testing.T) *policyServer {
	hosts := []string{"example.test", "notfound.test", "redirect.test", "found.test", "html.test", "notype.test",
		"big.test", "bigchunked.test", "bad.test", "slow.test"}
	var names []string
	for _, h := range hosts {
		names = append(names, "mta-sts."+h)
	}
	pool, cert := testCA(t, names...)
	ps := &policyServer{pool: pool, requests: map[string]int{}}
	ps.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ps.mu.Lock()
		ps.requests[r.Host]++
		ps.mu.Unlock()
		if r.Method != http.MethodGet || r.URL.Path != "/.well-known/mta-sts.txt" {
			http.Error(w, "wrong request "+r.Method+" "+r.URL.Path, http.StatusBadRequest)
			return
		}
		switch r.Host {
		case "mta-sts.example.test":
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write([]byte(goodPolicy))
		case "mta-sts.redirect.test":
			http.Redirect(w, r, "https://mta-sts.example.test/.well-known/mta-sts.txt", http.StatusMovedPermanently)
		case "mta-sts.found.test":
			w.Header().Set("Location", "/elsewhere")
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusFound)
			w.Write([]byte(goodPolicy))
		case "mta-sts.html.test":
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte(goodPolicy))
		case "mta-sts.notype.test":
			w.Header()["Content-Type"] = nil // no sniffing
			w.Write([]byte(goodPolicy))
		case "mta-sts.big.test":
			body := goodPolicy + "x: " + strings.Repeat("a", MaxPolicySize) + "\r\n"
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.Write([]byte(body))
		case "mta-sts.bigchunked.test":
			w.Header().Set("Content-Type", "text/plain")
			w.Write([]byte(goodPolicy))
			w.(http.Flusher).Flush() // no Content-Length
			for range 100 {
				w.Write([]byte("x: " + strings.Repeat("a", 1000) + "\r\n"))
			}
		case "mta-sts.bad.test":
			w.Header().Set("Content-Type", "text/plain")
			w.Write([]byte("version: STSv1\nmode: enforce\nmax_age: 86400\n"))
		case "mta-sts.slow.test":
			<-r.Context().Done()
		default:
			http.NotFound(w, r)
		}
	}))
	ps.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	// Refused certificates are expected; keep them out of the test output.
	ps.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	ps.srv.StartTLS()
	t.Cleanup(ps.srv.Close)
	return ps
}

// client returns an HTTP client that dials the test server whatever the
// host name, and trusts roots.
func (ps *policyServer) client(roots *x509.CertPool) *http.Client {
	addr := ps.srv.Listener.Addr().String()
	var d net.Dialer
	return &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return d.DialContext(ctx, network, addr)
			},
			TLSClientConfig: &tls.Config{RootCAs: roots},
		},
		Timeout: 10 * time.Second,
	}
}

func (ps *policyServer) count(host string) int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.requests[host]
}

func TestFetch(t *testing.T) {
	ps := startPolicyServer(t)
	client := ps.client(ps.pool)
	redirects := 0
	client.CheckRedirect = func(*http.Request, []*http.Request) error {
		redirects++
		return nil
	}
	defer client.CloseIdleConnections()

	tests := []struct {
		domain string
		err    []string // empty: success
	}{
		{"example.test", nil},
		{"Example.Test.", nil},
		{"notfound.test", []string{"mta-sts: fetch https://mta-sts.notfound.test/.well-known/mta-sts.txt: HTTP status 404 Not Found"}},
		{"redirect.test", []string{"HTTP status 301", `redirect to "https://mta-sts.example.test/.well-known/mta-sts.txt"`, "must not be followed"}},
		{"found.test", []string{"HTTP status 302", "/elsewhere"}},
		{"html.test", []string{`content type "text/html", want text/plain`}},
		{"notype.test", []string{`content type ""`}},
		{"big.test", []string{"more than the 65536 allowed"}},
		{"bigchunked.test", []string{"larger than the 65536 bytes allowed"}},
		{"bad.test", []string{"invalid policy: no mx"}},
		{"wrongname.test", []string{"TLS certificate not accepted", "not mta-sts.wrongname.test"}},
		{"bad/domain", []string{"invalid domain"}},
		{"", []string{"invalid domain"}},
	}
	for _, tt := range tests {
		p, err := Fetch(context.Background(), client, tt.domain)
		if len(tt.err) == 0 {
			if err != nil {
				t.Errorf("Fetch(%q): %v", tt.domain, err)
			} else if p.Mode != ModeEnforce || !p.Matches("mx.example.test") || !p.Matches("b1.backup.example.test") || p.MaxAge != 24*time.Hour {
				t.Errorf("Fetch(%q) = %+v", tt.domain, p)
			}
			continue
		}
		if err == nil {
			t.Errorf("Fetch(%q) = %+v, want an error", tt.domain, p)
			continue
		}
		for _, s := range tt.err {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("Fetch(%q): error %q does not contain %q", tt.domain, err, s)
			}
		}
	}
	if n := ps.count("mta-sts.example.test"); n != 2 {
		t.Errorf("%d requests for mta-sts.example.test, want 2 (a redirect was followed?)", n)
	}
	if redirects != 0 {
		t.Errorf("the client's CheckRedirect was called %d times", redirects)
	}
	// The caller's client is unchanged.
	if client.CheckRedirect(nil, nil) != nil || redirects != 1 {
		t.Errorf("the client's CheckRedirect was replaced")
	}
}

func TestFetchUntrusted(t *testing.T) {
	ps := startPolicyServer(t)
	otherPool, _ := testCA(t, "mta-sts.example.test")
	client := ps.client(otherPool)
	defer client.CloseIdleConnections()
	_, err := Fetch(context.Background(), client, "example.test")
	var verr *tls.CertificateVerificationError
	if err == nil || !errors.As(err, &verr) || !strings.Contains(err.Error(), "TLS certificate not accepted") {
		t.Errorf("Fetch with an untrusted certificate: %v", err)
	}
}

func TestFetchContext(t *testing.T) {
	ps := startPolicyServer(t)
	client := ps.client(ps.pool)
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Fetch(ctx, client, "slow.test")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Fetch past its deadline: %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Fetch took %v after its deadline", d)
	}
}

func TestFetchNilClient(t *testing.T) {
	if _, err := Fetch(context.Background(), nil, "example.test"); err == nil {
		t.Errorf("Fetch with a nil client succeeded")
	}
}

func TestPolicyURL(t *testing.T) {
	if u := PolicyURL("Example.COM."); u != "https://mta-sts.example.com/.well-known/mta-sts.txt" {
		t.Errorf("PolicyURL = %q", u)
	}
}
