package mtasts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	neturl "net/url"
	"strings"
)

// PolicyURL returns the URL of domain's policy file (RFC 8461 §3.3).
func PolicyURL(domain string) string {
	return "https://mta-sts." + strings.ToLower(strings.TrimSuffix(domain, ".")) + "/.well-known/mta-sts.txt"
}

// Fetch gets and parses domain's policy file from PolicyURL (RFC 8461
// §3.3) with client, which must not be nil; its Transport decides the
// trusted roots and how to dial, ctx bounds the time. The server's
// certificate must be valid for mta-sts.<domain> (the client's TLS
// configuration checks that, as net/http does by default). Redirects are
// not followed ("HTTP 3xx redirects MUST NOT be followed"), the status
// must be 200, the media type text/plain (RFC 8461 §3.2), and the body at
// most MaxPolicySize bytes.
func Fetch(ctx context.Context, client *http.Client, domain string) (*Policy, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if !validDomain(domain) {
		return nil, fmt.Errorf("mta-sts: invalid domain %q", domain)
	}
	if client == nil {
		return nil, errors.New("mta-sts: no HTTP client")
	}
	url := PolicyURL(domain)
	fail := func(format string, args ...any) error {
		return fmt.Errorf("mta-sts: fetch %s: %w", url, fmt.Errorf(format, args...))
	}

	c := *client // shallow: the caller's client keeps its own redirect policy
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		return http.ErrUseLastResponse
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fail("%w", err)
	}
	resp, err := c.Do(req)
	if err != nil {
		// The *url.Error repeats the method and URL.
		var uerr *neturl.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		var verr *tls.CertificateVerificationError
		var herr x509.HostnameError
		if errors.As(err, &verr) || errors.As(err, &herr) {
			return nil, fail("TLS certificate not accepted: %w", err)
		}
		return nil, fail("%w", err)
	}
	defer resp.Body.Close()

	if resp.StatusCode != http.StatusOK {
		if loc := resp.Header.Get("Location"); resp.StatusCode >= 300 && resp.StatusCode < 400 {
			return nil, fail("HTTP status %s, a redirect to %q, which must not be followed (RFC 8461 §3.3)", resp.Status, loc)
		}
		return nil, fail("HTTP status %s, want 200 OK", resp.Status)
	}
	ct := resp.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "text/plain" {
		return nil, fail("content type %q, want text/plain (RFC 8461 §3.2)", ct)
	}
	if resp.ContentLength > MaxPolicySize {
		return nil, fail("policy of %d bytes, more than the %d allowed", resp.ContentLength, MaxPolicySize)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPolicySize+1))
	if err != nil {
		return nil, fail("reading the policy: %w", err)
	}
	if len(body) > MaxPolicySize {
		return nil, fail("policy larger than the %d bytes allowed", MaxPolicySize)
	}
	p, err := ParsePolicy(body)
	if err != nil {
		return nil, fail("invalid policy: %w", err)
	}
	return p, nil
}
