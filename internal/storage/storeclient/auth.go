// Package storeclient is what moxd's other roles import to talk to
// moxd-store over their IPC channel to it: submission, imap and web log
// users in through it, queue checks the session tokens submissions carry.
// It runs in the calling role's process and holds no state of store's; each
// file covers one concept of store's service (auth.go: authentication and
// session tokens).
//
// Errors are typed so a protocol server can map them to its replies without
// reading messages: ErrAuthFailed, ErrRateLimited, ErrMalformed, ErrAborted
// and ErrUnavailable, compared with errors.Is; the wrapped text says more
// for logs.
package storeclient

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"moxd/internal/auth"
	"moxd/internal/ipc"
)

// Errors of authentication calls.
var (
	// ErrAuthFailed: wrong credentials or unknown user (store has already
	// delayed the answer), or an exchange store no longer has (finished,
	// aborted, idle too long, or store restarted). Answer with the
	// protocol's "authentication failed" (SMTP 535 5.7.8, IMAP NO
	// [AUTHENTICATIONFAILED]).
	ErrAuthFailed = errors.New("authentication failed")
	// ErrRateLimited: store refuses logins from the client's network for
	// now, after too many failures, or has too many exchanges in progress
	// from this role. Answer with a temporary failure (SMTP 454 4.7.0,
	// IMAP NO [UNAVAILABLE]).
	ErrRateLimited = errors.New("too many failed logins from your network, try again later")
	// ErrMalformed: the client's SASL message breaks the mechanism's
	// syntax, the mechanism is unknown or not allowed on this connection
	// (PLAIN without TLS), or a message is too long. Answer with the
	// protocol's syntax error (SMTP 501, IMAP BAD).
	ErrMalformed = errors.New("malformed authentication exchange")
	// ErrAborted: the client cancelled with "*" (RFC 4954 §4, RFC 9051
	// §6.2.2); the exchange is aborted at store too.
	ErrAborted = errors.New("authentication cancelled by client")
	// ErrUnavailable: store cannot be asked now (its channel is down or
	// restarting) or failed internally. Answer with a temporary failure.
	ErrUnavailable = errors.New("account store unavailable, try again later")
)

// Step is store's answer to one step of an exchange. Without Done, send
// Challenge to the client and pass its response to Continue with
// Exchange. With Done the user is logged in to Account and Token is the
// session's token, to revoke with RevokeToken when the session ends.
type Step struct {
	Exchange  uint64
	Challenge []byte
	Done      bool
	Account   string
	Token     auth.Token
}

// TokenInfo is what a checked token stands for.
type TokenInfo struct {
	Account string
	Expires time.Time
}

// Auth logs users in through store. It is safe for concurrent use.
type Auth struct {
	peer func() (*ipc.Conn, error)
}

// NewAuth returns an Auth that reaches store through peer, which returns
// the current channel to store (worker.Peer(ipc.RoleStore)) or an error
// when there is none.
func NewAuth(peer func() (*ipc.Conn, error)) *Auth {
	return &Auth{peer: peer}
}

// call sends m to store and maps its errors.
func (a *Auth) call(ctx context.Context, op string, m ipc.Message) (ipc.Message, error) {
	c, err := a.peer()
	if err != nil {
		return nil, fmt.Errorf("store %s: %w: %v", op, ErrUnavailable, err)
	}
	rep, err := c.Call(ctx, m)
	if err != nil {
		return nil, mapError(op, err)
	}
	return rep.Msg, nil
}

// mapError turns a call's error into one of the package's errors.
func mapError(op string, err error) error {
	var re *ipc.RemoteError
	if !errors.As(err, &re) {
		// Channel down, deadline, or a broken reply.
		return fmt.Errorf("store %s: %w: %v", op, ErrUnavailable, err)
	}
	var kind error
	switch re.Code {
	case ipc.CodeDenied, ipc.CodeNotFound:
		kind = ErrAuthFailed
	case ipc.CodeBusy:
		kind = ErrRateLimited
	case ipc.CodeBadRequest:
		kind = ErrMalformed
	default:
		kind = ErrUnavailable
	}
	return fmt.Errorf("store %s: %w (%s)", op, kind, re.Message)
}

// Start begins an exchange with mechanism mech for a client at ip. tls says
// the client connection is under TLS; cbs are the channel bindings of that
// connection, for the -PLUS mechanisms. initial is the client's initial
// response if hasInitial (it may be empty).
func (a *Auth) Start(ctx context.Context, mech string, ip netip.Addr, tls bool, cbs []auth.ChannelBinding, initial []byte, hasInitial bool) (Step, error) {
	if !ip.IsValid() {
		return Step{}, fmt.Errorf("store auth start: no client IP address given")
	}
	if len(mech) > ipc.MaxMechanismLen {
		return Step{}, fmt.Errorf("store auth start: %w: mechanism name of %d bytes", ErrMalformed, len(mech))
	}
	if len(initial) > ipc.MaxSASLMessage {
		return Step{}, fmt.Errorf("store auth start: %w: initial response of %d bytes, limit %d", ErrMalformed, len(initial), ipc.MaxSASLMessage)
	}
	if !hasInitial {
		initial = nil
	}
	m := &ipc.AuthStart{Mechanism: mech, RemoteIP: ip, TLS: tls, InitialResponse: initial, HasInitial: hasInitial}
	for _, cb := range cbs {
		if len(cb.Data) == 0 || len(cb.Data) > ipc.MaxCBData || len(cb.Type) > ipc.MaxCBTypeLen || len(m.ChannelBindings) == ipc.MaxChannelBindings {
			// Not a binding store could use; the -PLUS mechanisms
			// then need the others.
			continue
		}
		m.ChannelBindings = append(m.ChannelBindings, ipc.ChannelBinding{Type: cb.Type, Data: cb.Data})
	}
	return a.step(ctx, "auth start", m)
}

// Continue passes the client's response in exchange ex. A response of
// "*" (the client's cancel line) aborts the exchange and returns
// ErrAborted.
func (a *Auth) Continue(ctx context.Context, ex uint64, resp []byte) (Step, error) {
	if len(resp) == 1 && resp[0] == '*' {
		if err := a.Abort(ctx, ex); err != nil {
			return Step{}, err
		}
		return Step{}, fmt.Errorf("store auth continue: %w", ErrAborted)
	}
	if len(resp) > ipc.MaxSASLMessage {
		// If the abort does not reach store, the exchange idles out there.
		_ = a.Abort(ctx, ex)
		return Step{}, fmt.Errorf("store auth continue: %w: response of %d bytes, limit %d", ErrMalformed, len(resp), ipc.MaxSASLMessage)
	}
	return a.step(ctx, "auth continue", &ipc.AuthContinue{Exchange: ex, Response: resp})
}

func (a *Auth) step(ctx context.Context, op string, m ipc.Message) (Step, error) {
	rep, err := a.call(ctx, op, m)
	if err != nil {
		return Step{}, err
	}
	st := rep.(*ipc.AuthStep)
	return Step{Exchange: st.Exchange, Challenge: st.Challenge, Done: st.Done, Account: st.Account, Token: auth.Token(st.Token)}, nil
}

// Abort ends exchange ex, when the client cancels or disconnects.
func (a *Auth) Abort(ctx context.Context, ex uint64) error {
	_, err := a.call(ctx, "auth abort", &ipc.AuthAbort{Exchange: ex})
	return err
}

// CheckToken returns the account tok stands for. issuer is the role tok was
// issued to: the calling role itself, or for queue the submission or web
// role whose submission carried it. An invalid token (unknown, revoked,
// expired, from an earlier channel) gives an error wrapping both
// ErrAuthFailed and auth.ErrTokenInvalid.
func (a *Auth) CheckToken(ctx context.Context, tok auth.Token, issuer ipc.Role) (TokenInfo, error) {
	rep, err := a.call(ctx, "token check", &ipc.TokenCheck{Token: tok, Issuer: issuer})
	if err != nil {
		if errors.Is(err, ErrAuthFailed) {
			err = fmt.Errorf("%w: %w", auth.ErrTokenInvalid, err)
		}
		return TokenInfo{}, err
	}
	ti := rep.(*ipc.TokenInfo)
	return TokenInfo{Account: ti.Account, Expires: time.Unix(ti.Expires, 0)}, nil
}

// RevokeToken ends tok at store, when its session ends. An error means the
// channel to store is down; store then revokes the channel's tokens itself.
func (a *Auth) RevokeToken(tok auth.Token) error {
	c, err := a.peer()
	if err != nil {
		return fmt.Errorf("store token revoke: %w: %v", ErrUnavailable, err)
	}
	if err := c.Notify(&ipc.TokenRevoke{Token: tok}); err != nil {
		return fmt.Errorf("store token revoke: %w: %v", ErrUnavailable, err)
	}
	return nil
}
