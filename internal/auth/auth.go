// Package auth keeps account credentials without plaintext and runs the SASL
// server side of authentication for moxd.
//
// It is a pure library: moxd-store runs it when a role (smtp, submission,
// imap, web) asks store to authenticate a user, and no code here touches the
// network, the disk or configuration. Callers pass in the account lookup, the
// hashing semaphore and, for the SCRAM -PLUS mechanisms, the channel binding
// data of the TLS connection.
//
// Mechanisms: PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login), CRAM-MD5
// (RFC 2195), SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677) and their
// -PLUS variants with the tls-exporter (RFC 9266) and tls-server-end-point
// (RFC 5929) channel bindings. The SCRAM and CRAM-MD5 server code is
// moxd's own because it must work from stored keys only, hide whether an
// account exists and bound every message size.
//
// Also here, for store: login-failure limits per IP prefix and per (prefix,
// account) without account-wide lockout (limits.go), and session tokens bound
// to a role and channel generation (tokens.go).
//
// Passwords are used as the UTF-8 bytes the user typed, without SASLprep or
// PRECIS normalization (those need tables moxd does not carry). ASCII
// passwords behave as every client expects; a password with characters that a
// client normalizes differently may fail SCRAM while PLAIN succeeds.
package auth

import (
	"context"
	"errors"
	"fmt"
)

// Errors returned by mechanisms. Compare with errors.Is.
var (
	// ErrAuthFailed: wrong password, unknown user, authorization identity
	// not allowed, channel binding mismatch or downgrade. The protocol
	// layer answers with its generic "authentication failed" reply.
	ErrAuthFailed = errors.New("authentication failed")
	// ErrUnknownUser is returned by a Lookup when no account has the name.
	// Mechanisms never return it to their caller: they turn it into
	// ErrAuthFailed after spending the same work as for a real account.
	ErrUnknownUser = errors.New("unknown user")
	// ErrMalformed: the client sent a message that does not follow the
	// mechanism's syntax, or is larger than MaxMessageSize.
	ErrMalformed = errors.New("malformed sasl message")
	// ErrAborted: the client sent "*" to cancel the exchange.
	ErrAborted = errors.New("authentication aborted by client")
)

// MaxMessageSize bounds every client response a mechanism accepts, in bytes
// after base64 decoding.
const MaxMessageSize = 4096

// Lookup returns the stored credentials for an authentication identity, or
// an error wrapping ErrUnknownUser when there is no such account. Other
// errors are passed on to the caller of Next, wrapped.
type Lookup func(ctx context.Context, authcid string) (Credentials, error)

// Channel binding types moxd supports for SCRAM -PLUS.
const (
	CBTLSExporter       = "tls-exporter"         // RFC 9266
	CBTLSServerEndPoint = "tls-server-end-point" // RFC 5929 §4
)

// ChannelBinding is channel binding data computed by the caller from the TLS
// connection the exchange runs on.
type ChannelBinding struct {
	Type string // CBTLSExporter or CBTLSServerEndPoint
	Data []byte
}

// Mechanism is the server side of one SASL exchange. It is used by one
// goroutine at a time and for one exchange only.
type Mechanism interface {
	// Next processes one client response and returns the next server
	// challenge. On the first call, response is nil when the client sent
	// no initial response; a client's "*" cancel line is passed as the
	// single byte "*" and gives ErrAborted. When done is true the exchange
	// succeeded, challenge is nil and Identity returns the account name.
	// On error the exchange is over; for SCRAM the challenge may hold a
	// server-final "e=..." message (RFC 5802 §7) the protocol may send.
	Next(ctx context.Context, response []byte) (challenge []byte, done bool, err error)
	// Identity is the authenticated account name after success, else "".
	Identity() string
}

// Mechanism names.
const (
	MechPLAIN           = "PLAIN"
	MechLOGIN           = "LOGIN"
	MechCRAMMD5         = "CRAM-MD5"
	MechSCRAMSHA1       = "SCRAM-SHA-1"
	MechSCRAMSHA256     = "SCRAM-SHA-256"
	MechSCRAMSHA1Plus   = "SCRAM-SHA-1-PLUS"
	MechSCRAMSHA256Plus = "SCRAM-SHA-256-PLUS"
)

// Mechanisms returns the mechanism names to announce, strongest first.
// PLAIN and LOGIN send the password and are only offered under TLS; the
// -PLUS variants only when the caller can compute channel binding data.
func Mechanisms(tlsActive bool, cbAvailable bool) []string {
	var l []string
	if tlsActive && cbAvailable {
		l = append(l, MechSCRAMSHA256Plus, MechSCRAMSHA1Plus)
	}
	l = append(l, MechSCRAMSHA256, MechSCRAMSHA1, MechCRAMMD5)
	if tlsActive {
		l = append(l, MechPLAIN, MechLOGIN)
	}
	return l
}

// NewServer returns the server side of mechanism name. It refuses the
// mechanisms Mechanisms would not announce for tlsActive and cb, so a client
// cannot pick an unannounced one.
func NewServer(name string, lookup Lookup, h *Hasher, tlsActive bool, cb []ChannelBinding) (Mechanism, error) {
	if lookup == nil {
		return nil, fmt.Errorf("sasl %s: no account lookup given", name)
	}
	if h == nil {
		return nil, fmt.Errorf("sasl %s: no hasher given", name)
	}
	var usable []ChannelBinding
	for _, b := range cb {
		if (b.Type == CBTLSExporter || b.Type == CBTLSServerEndPoint) && len(b.Data) > 0 {
			usable = append(usable, b)
		}
	}
	plusOffered := tlsActive && len(usable) > 0
	switch name {
	case MechPLAIN, MechLOGIN:
		if !tlsActive {
			return nil, fmt.Errorf("sasl %s: mechanism needs TLS; use STARTTLS or an implicit-TLS listener first", name)
		}
		return &plainServer{login: name == MechLOGIN, lookup: lookup, hasher: h}, nil
	case MechCRAMMD5:
		return &cramServer{lookup: lookup}, nil
	case MechSCRAMSHA1, MechSCRAMSHA256:
		return newSCRAM(name, lookup, h, false, plusOffered, nil), nil
	case MechSCRAMSHA1Plus, MechSCRAMSHA256Plus:
		if !plusOffered {
			return nil, fmt.Errorf("sasl %s: mechanism needs TLS with channel binding data", name)
		}
		return newSCRAM(name, lookup, h, true, true, usable), nil
	}
	return nil, fmt.Errorf("sasl: unknown mechanism %q; known: %v", name, Mechanisms(true, true))
}

// isAbort reports whether a response is the client's cancel line.
func isAbort(response []byte) bool {
	return len(response) == 1 && response[0] == '*'
}

// checkSize enforces MaxMessageSize.
func checkSize(response []byte) error {
	if len(response) > MaxMessageSize {
		return fmt.Errorf("%w: message of %d bytes, limit %d", ErrMalformed, len(response), MaxMessageSize)
	}
	return nil
}
