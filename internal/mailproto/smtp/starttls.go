package smtp

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"time"
)

// offersStartTLS reports whether EHLO announces STARTTLS: only with a TLS
// configuration, on a plain-text listener, before TLS is up (RFC 3207 §4.2:
// not announced again after the handshake).
func (c *conn) offersStartTLS() bool {
	return c.cfg.TLSConfig != nil && !c.cfg.ImplicitTLS && c.tlsState == nil
}

// cmdSTARTTLS upgrades the connection to TLS (RFC 3207).
func (c *conn) cmdSTARTTLS(arg string) error {
	if c.tlsState != nil {
		// RFC 3207 §4.2: no second TLS negotiation.
		return errorReply(503, "5.5.1", "TLS is already active")
	}
	if c.cfg.TLSConfig == nil {
		return errorReply(502, "5.5.1", "STARTTLS is not available on this listener")
	}
	if arg != "" {
		// RFC 3207 §4: "STARTTLS" CRLF, no parameters; 501 otherwise.
		return errorReply(501, "5.5.4", "STARTTLS takes no parameters")
	}
	if n := c.br.Buffered(); n > 0 {
		// Bytes that came after the STARTTLS line in plain text would be
		// taken as commands sent inside TLS (command injection,
		// CVE-2011-0411 class). RFC 3207 §4.2 forbids the client to send
		// them; refuse and end the session rather than guess.
		return &closeError{
			reply: errorReply(554, "5.5.0", "commands must not be pipelined after STARTTLS; closing connection"),
			cause: fmt.Errorf("client sent %d bytes after STARTTLS before the TLS handshake", n),
		}
	}
	// RFC 3207 §4: 220 means "go ahead with the handshake".
	if err := c.writeReply(errorReply(220, "2.0.0", "ready to start TLS")); err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		return err
	}
	if err := c.handshake(); err != nil {
		return err
	}
	// RFC 3207 §4.2: forget everything learned before TLS (the EHLO
	// argument, an authentication); the client must send EHLO again.
	c.state = stateInit
	c.helloName = ""
	c.st.HelloName = ""
	c.st.EHLO = false
	c.st.Account = ""
	c.st.AuthMech = ""
	return nil
}

// handshake runs the server side of a TLS handshake on the raw connection,
// bounded by TLSTimeout, and switches the session's reader and writer to
// TLS. A failure ends the session without a reply: there is no channel left
// to send one on.
func (c *conn) handshake() error {
	tc := tls.Server(c.raw, c.cfg.TLSConfig)
	// The deadline bounds the raw reads and writes, the context also
	// cancels with the session.
	if err := c.raw.SetDeadline(time.Now().Add(c.cfg.TLSTimeout)); err != nil {
		return fmt.Errorf("set handshake deadline: %w", err)
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.TLSTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		if c.ctx.Err() != nil {
			return &closeError{cause: fmt.Errorf("tls handshake: session canceled: %w", c.ctx.Err())}
		}
		c.log.Info("smtp tls handshake failed", "err", err, "implicit", c.cfg.ImplicitTLS)
		return &closeError{cause: fmt.Errorf("tls handshake: %w", err)}
	}
	st := tc.ConnectionState()
	c.tlsState = &st
	c.st.TLS = &st
	c.nc = tc
	c.br = newLineReader(flushReader{c})
	c.bw = bufio.NewWriterSize(tc, 4096)
	c.log.Info("smtp tls established",
		"version", tls.VersionName(st.Version),
		"cipher", tls.CipherSuiteName(st.CipherSuite),
		"sni", logLine([]byte(st.ServerName)),
		"implicit", c.cfg.ImplicitTLS)
	return nil
}
