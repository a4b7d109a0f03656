package smtpclient

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// AUTH (RFC 4954): the command framing around the mechanisms of sasl.go.

// autoMechanisms is the preference order when the caller names none: the
// most secure first. SCRAM-SHA-1-PLUS works when named but is not picked by
// itself: a server with SHA-1-PLUS has SHA-256 too.
var autoMechanisms = []string{mechSCRAMSHA256Plus, mechSCRAMSHA256, mechSCRAMSHA1, mechCRAMMD5, mechPLAIN}

// maxAuthRounds bounds the challenges of one exchange; the mechanisms here
// need at most two.
const maxAuthRounds = 8

// maxAuthLine is the longest AUTH command or response line the client
// writes, CRLF included: RFC 4954 §4 raises the limit to 12288 octets.
const maxAuthLine = 12288

// ErrNoMechanism is returned by Auth when the client and the server have
// no mechanism in common that may be used on this connection.
var ErrNoMechanism = errors.New("no usable authentication mechanism")

// Auth authenticates with username and password (RFC 4954). mechs is the
// caller's list of mechanisms in order of preference; when empty the client
// picks the most secure one both sides support, from SCRAM-SHA-256-PLUS,
// SCRAM-SHA-256, SCRAM-SHA-1, CRAM-MD5 and PLAIN. PLAIN is never used
// without TLS; the -PLUS mechanisms need TLS 1.3 (tls-exporter, RFC 9266).
// A failed authentication gives an *Error with the server's reply (535 for
// a wrong password); no common mechanism gives an error wrapping
// ErrNoMechanism. For SCRAM the server must prove it knows the password:
// otherwise Auth fails even if the server accepts.
func (c *Client) Auth(ctx context.Context, mechs []string, username, password string) error {
	if err := c.usable(StageAuth); err != nil {
		return err
	}
	if c.authed {
		// RFC 4954 §4: one successful AUTH per session.
		return &Error{Stage: StageAuth, Err: errors.New("already authenticated")}
	}
	name, err := c.pickMechanism(mechs)
	if err != nil {
		return &Error{Stage: StageAuth, Err: err}
	}
	var m saslClient
	switch name {
	case mechPLAIN:
		m = &plainClient{user: username, pass: password}
	case mechCRAMMD5:
		m = &cramClient{user: username, pass: password}
	default:
		m = newSCRAM(name, username, password, c.channelBinding(), c.serverHasPlus())
	}
	end := c.arm(ctx)
	defer end()
	c.redact = true
	defer func() { c.redact = false }()
	return c.authExchange(ctx, name, m)
}

func (c *Client) authExchange(ctx context.Context, name string, m saslClient) error {
	ir, err := m.start()
	if err != nil {
		return &Error{Stage: StageAuth, Err: err}
	}
	line := "AUTH " + name
	if ir != nil {
		// RFC 4954 §4: the initial response is base64, "=" when empty.
		enc := base64.StdEncoding.EncodeToString(ir)
		if enc == "" {
			enc = "="
		}
		line += " " + enc
		if len(line)+2 > maxAuthLine {
			return &Error{Stage: StageAuth, Err: errors.New("initial response too long for the AUTH command; use a shorter user name")}
		}
	}
	timeout := c.cfg.CommandTimeout
	r, err := c.command(ctx, StageAuth, timeout, line)
	for round := 0; err == nil; round++ {
		switch {
		case r.Code == 235:
			if !m.done() {
				// The server accepted before the mechanism finished
				// (SCRAM without the server's proof): the server was
				// not authenticated to us. The session is logged in
				// with a server we cannot trust: end it.
				c.fail()
				return &Error{Stage: StageAuth, Reply: &r, Err: fmt.Errorf("%w: server accepted %s before proving it knows the password", errSASL, name)}
			}
			c.authed = true
			c.log.Debug("smtp authenticated", "mechanism", name)
			return nil
		case r.Code != 334:
			return &Error{Stage: StageAuth, Reply: &r}
		case round >= maxAuthRounds:
			return c.cancelAuth(ctx, fmt.Errorf("%w: more than %d challenges", errSASL, maxAuthRounds))
		}
		// RFC 4954 §4: "334" SP base64 challenge.
		challenge, derr := base64.StdEncoding.DecodeString(strings.Join(r.Text, ""))
		if derr != nil {
			return c.cancelAuth(ctx, fmt.Errorf("%w: challenge is not base64", errSASL))
		}
		resp, merr := m.next(challenge)
		if merr != nil && !errors.Is(merr, errServerSaid) {
			return c.cancelAuth(ctx, merr)
		}
		enc := base64.StdEncoding.EncodeToString(resp)
		if len(enc)+2 > maxAuthLine {
			return c.cancelAuth(ctx, errors.New("sasl response too long"))
		}
		r, err = c.command(ctx, StageAuth, timeout, enc)
		if err == nil && merr != nil {
			// The server failed the exchange inside the mechanism; its
			// reply to the empty response is the one to report.
			return &Error{Stage: StageAuth, Reply: &r, Err: merr}
		}
	}
	return err
}

// cancelAuth ends an exchange from the client side: RFC 4954 §4, "*"
// cancels, the server answers 501.
func (c *Client) cancelAuth(ctx context.Context, cause error) error {
	r, err := c.command(ctx, StageAuth, c.cfg.CommandTimeout, "*")
	if err != nil {
		return err
	}
	return &Error{Stage: StageAuth, Reply: &r, Err: cause}
}

// pickMechanism chooses the mechanism to use.
func (c *Client) pickMechanism(mechs []string) (string, error) {
	if len(c.ext.Auth) == 0 {
		return "", fmt.Errorf("%w: the server announces no AUTH mechanisms", ErrNoMechanism)
	}
	candidates := autoMechanisms
	if len(mechs) > 0 {
		candidates = nil
		for _, m := range mechs {
			candidates = append(candidates, strings.ToUpper(m))
		}
	}
	var reasons []string
	for _, m := range candidates {
		if !contains(c.ext.Auth, m) {
			continue
		}
		if why := c.mechanismUnusable(m); why != "" {
			reasons = append(reasons, m+": "+why)
			continue
		}
		return m, nil
	}
	msg := fmt.Sprintf("server offers %s", strings.Join(c.ext.Auth, " "))
	if len(reasons) > 0 {
		msg += "; " + strings.Join(reasons, "; ")
	}
	return "", fmt.Errorf("%w: %s", ErrNoMechanism, msg)
}

// mechanismUnusable says why mechanism m cannot be used now, or "".
func (c *Client) mechanismUnusable(m string) string {
	switch m {
	case mechPLAIN:
		if c.tlsState == nil {
			return "sends the password in clear and is never used without TLS"
		}
	case mechCRAMMD5, mechSCRAMSHA1, mechSCRAMSHA256:
	case mechSCRAMSHA1Plus, mechSCRAMSHA256Plus:
		if c.channelBinding() == nil {
			return "needs TLS 1.3 for the tls-exporter channel binding"
		}
	default:
		return "not supported by this client"
	}
	return ""
}

// channelBinding returns the tls-exporter channel binding data (RFC 9266
// §2: label "EXPORTER-Channel-Binding", no context, 32 bytes), or nil
// without TLS 1.3. RFC 9266 §3 allows TLS 1.2 only with the extended
// master secret; moxd binds with TLS 1.3 only.
func (c *Client) channelBinding() []byte {
	if c.tlsState == nil || c.tlsState.Version != tls.VersionTLS13 {
		return nil
	}
	b, err := c.tlsState.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
	if err != nil {
		return nil
	}
	return b
}

// serverHasPlus reports whether the server announced a SCRAM -PLUS
// mechanism.
func (c *Client) serverHasPlus() bool {
	for _, m := range c.ext.Auth {
		if strings.HasPrefix(m, "SCRAM-") && strings.HasSuffix(m, "-PLUS") {
			return true
		}
	}
	return false
}
