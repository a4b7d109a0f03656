package dns

import (
	"context"
	"errors"
	"fmt"
	"net"

	mdns "github.com/miekg/dns"
)

// Every error this package returns is a *net.DNSError, never wrapped:
// blitiri.com.ar/go/spf and other net.Resolver users classify errors with a
// type assertion. The constructors below are the only places that build
// them, so the classification rules live in one file:
//
//   - NXDOMAIN and NODATA: IsNotFound.
//   - SERVFAIL, REFUSED, FORMERR and any other response code, timeouts,
//     network errors, canceled contexts: IsTemporary (a later retry may
//     succeed, so SMTP answers 4xx and the queue retries).
//   - Invalid names and arguments: neither (a permanent error).

// errNotFound is a negative answer: NXDOMAIN, or NODATA when nx is false.
func errNotFound(name, server string, qtype uint16, nx bool) error {
	msg := "no such host (NXDOMAIN)"
	if !nx {
		msg = fmt.Sprintf("no %s records (NODATA)", mdns.TypeToString[qtype])
	}
	return &net.DNSError{Err: msg, Name: name, Server: server, IsNotFound: true}
}

// errRcode is a response with a code other than NOERROR or NXDOMAIN.
func errRcode(name, server string, rcode int) error {
	var msg string
	switch rcode {
	case mdns.RcodeServerFailure:
		msg = "server failure (SERVFAIL)"
	case mdns.RcodeRefused:
		msg = "query refused (REFUSED)"
	case mdns.RcodeFormatError:
		msg = "server could not parse the query (FORMERR)"
	default:
		s, ok := mdns.RcodeToString[rcode]
		if !ok {
			s = fmt.Sprintf("%d", rcode)
		}
		msg = "unexpected response code " + s
	}
	return &net.DNSError{Err: msg, Name: name, Server: server, IsTemporary: true}
}

// errBadAnswer is a response that cannot be used (wrong question, CNAME
// loop).
func errBadAnswer(name, server, why string) error {
	return &net.DNSError{Err: why, Name: name, Server: server, IsTemporary: true}
}

// errTimeout is a query attempt that got no answer in time.
func errTimeout(name, server string) error {
	return &net.DNSError{Err: "query timed out", Name: name, Server: server, IsTimeout: true, IsTemporary: true}
}

// errNetwork is a failure to send or receive a query.
func errNetwork(name, server string, err error) error {
	return &net.DNSError{Err: err.Error(), UnwrapErr: err, Name: name, Server: server, IsTemporary: true}
}

// errContext is the caller's context ending before an answer arrived. It is
// temporary, and a timeout when the context's deadline passed.
func errContext(name, server string, err error) error {
	return &net.DNSError{
		Err:         err.Error(),
		UnwrapErr:   err,
		Name:        name,
		Server:      server,
		IsTimeout:   errors.Is(err, context.DeadlineExceeded),
		IsTemporary: true,
	}
}

// errInvalid is a permanent error for a name or argument that can never be
// looked up.
func errInvalid(name, why string) error {
	return &net.DNSError{Err: why, Name: name}
}

// isTemporary reports whether err is a temporary *net.DNSError.
func isTemporary(err error) bool {
	de, ok := err.(*net.DNSError)
	return ok && (de.IsTemporary || de.IsTimeout)
}
