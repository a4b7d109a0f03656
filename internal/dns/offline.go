package dns

import (
	"context"
	"fmt"
	"net"
)

// Offline returns a Resolver that answers every lookup with a not-found
// *net.DNSError (Server empty) and Authentic false, without any network
// traffic. localserve uses it: mail to other domains bounces, and checks
// such as SPF and DMARC find no records.
func Offline() Resolver {
	return offline{}
}

type offline struct{}

func offlineError(name string) error {
	return &net.DNSError{Err: "no such host (offline resolver)", Name: name, IsNotFound: true}
}

func (offline) LookupTXT(ctx context.Context, name string) ([]string, Result, error) {
	return nil, Result{}, offlineError(name)
}

func (offline) LookupMX(ctx context.Context, name string) ([]*net.MX, Result, error) {
	return nil, Result{}, offlineError(name)
}

func (offline) LookupIP(ctx context.Context, network, host string) ([]net.IP, Result, error) {
	return nil, Result{}, offlineError(host)
}

func (offline) LookupAddr(ctx context.Context, addr string) ([]string, Result, error) {
	return nil, Result{}, offlineError(addr)
}

func (offline) LookupCNAME(ctx context.Context, host string) (string, Result, error) {
	return "", Result{}, offlineError(host)
}

func (offline) LookupTLSA(ctx context.Context, port int, protocol, host string) ([]TLSA, Result, error) {
	return nil, Result{}, offlineError(fmt.Sprintf("_%d._%s.%s", port, protocol, host))
}
