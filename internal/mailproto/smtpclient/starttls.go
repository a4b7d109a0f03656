package smtpclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
)

// tlsError is a failed TLS handshake: the server took STARTTLS (or the
// implicit TLS connection was opened) but the handshake, including the
// certificate verification the caller configured, did not succeed.
type tlsError struct{ err error }

func (e *tlsError) Error() string { return "tls handshake: " + e.err.Error() }
func (e *tlsError) Unwrap() error { return e.err }

// IsTLSError reports whether err comes from a failed TLS handshake, as
// opposed to a server that refused STARTTLS (an *Error with a Reply) or a
// network failure before the handshake. Callers use it to tell "the server
// offers no usable TLS" from "TLS verification failed" (for MTA-STS and
// DANE reporting, RFC 8460).
func IsTLSError(err error) bool {
	var te *tlsError
	return errors.As(err, &te)
}

// StartTLS upgrades the session to TLS (RFC 3207). It sends STARTTLS, runs
// the TLS client handshake with tlsConfig (the caller sets ServerName,
// RootCAs, VerifyConnection and the like) and sends EHLO again: RFC 3207
// §4.2, the client must forget what it learned before TLS. A refusal
// gives an *Error with StageStartTLS and the reply, and the session stays
// usable in plain text. A handshake failure gives an error for which
// IsTLSError is true, and the client is broken.
func (c *Client) StartTLS(ctx context.Context, tlsConfig *tls.Config) error {
	if err := c.usable(StageStartTLS); err != nil {
		return err
	}
	if c.tlsState != nil {
		// RFC 3207 §4.2: no second TLS negotiation.
		return &Error{Stage: StageStartTLS, Err: errors.New("TLS is already active")}
	}
	if tlsConfig == nil {
		return &Error{Stage: StageStartTLS, Err: errors.New("no TLS configuration given")}
	}
	end := c.arm(ctx)
	defer end()

	r, err := c.command(ctx, StageStartTLS, c.cfg.CommandTimeout, "STARTTLS")
	if err != nil {
		return err
	}
	if r.Code != 220 {
		return &Error{Stage: StageStartTLS, Reply: &r}
	}
	if n := c.br.Buffered(); n > 0 {
		// Bytes after the 220 that arrived in plain text would be taken
		// as replies inside TLS (reply injection, the client side of
		// CVE-2011-0411); RFC 3207 §4.2 does not allow them.
		c.fail()
		return &Error{Stage: StageStartTLS, Err: fmt.Errorf("%w: server sent %d bytes after its 220 reply to STARTTLS", errProtocol, n)}
	}
	tc := tls.Client(c.conn, tlsConfig)
	if err := c.handshake(ctx, tc, StageStartTLS); err != nil {
		return err
	}
	c.authed = false
	// RFC 3207 §4.2: discard the extensions learned before TLS and ask
	// again.
	c.ext = Extensions{}
	if err := c.hello(ctx); err != nil {
		c.fail()
		return err
	}
	return nil
}

// handshake runs the client side of a TLS handshake on tc under the command
// timeout and switches the session's reader and writer to it.
func (c *Client) handshake(ctx context.Context, tc *tls.Conn, stage Stage) error {
	if err := c.readDeadline(ctx, c.cfg.CommandTimeout); err != nil {
		return c.ioError(ctx, stage, err)
	}
	if err := c.writeDeadline(ctx, c.cfg.CommandTimeout); err != nil {
		return c.ioError(ctx, stage, err)
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
			// A timeout or cancellation says nothing about TLS.
			return c.ioError(ctx, stage, fmt.Errorf("tls handshake: %w", err))
		}
		c.fail()
		return &Error{Stage: stage, Err: &tlsError{err}}
	}
	st := tc.ConnectionState()
	c.tlsState = &st
	c.conn = tc
	c.br = bufio.NewReaderSize(tc, 4096)
	c.bw = bufio.NewWriterSize(tc, 4096)
	c.log.Debug("smtp tls established",
		"version", tls.VersionName(st.Version),
		"cipher", tls.CipherSuiteName(st.CipherSuite),
		"servername", st.ServerName)
	return nil
}
