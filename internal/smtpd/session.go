package smtpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"time"

	"moxd/internal/auth"
	"moxd/internal/mailproto/smtp"
	"moxd/internal/storage/storeclient"
)

// session is one SMTP connection's policy: it implements smtp.Session for
// both instances. The MX side (mx.go) checks recipients with store and
// delivers into it; the submission side (submit.go) authenticates through
// store and hands messages to queue.
type session struct {
	srv *server
	set *settings // as they were when the connection came in
	log *slog.Logger
	ip  netip.Addr

	// Submission: the authenticated session's token (revoked at the end).
	token        auth.Token
	hasToken     bool
	authFailures int

	// MX: checks done once per connection or transaction (checks.go).
	conn connChecks
	tx   txChecks
	// rcpts are the accepted recipients of the transaction, as store
	// knows them, parallel to State.Rcpts.
	rcpts []acceptedRcpt
}

// acceptedRcpt is a recipient store accepted at RCPT.
type acceptedRcpt struct {
	addr    string // "localpart@domain" as asked at RCPT
	account string
}

func newSession(srv *server, set *settings, ip netip.Addr, log *slog.Logger) *session {
	return &session{srv: srv, set: set, ip: ip, log: log}
}

// end runs after the connection closed.
func (s *session) end() {
	if s.hasToken {
		if err := s.srv.auth.RevokeToken(s.token); err != nil {
			s.log.Debug("revoke session token", "err", err)
		}
		s.hasToken = false
	}
}

func (s *session) Hello(ctx context.Context, st *smtp.State) error { return nil }

func (s *session) Reset(st *smtp.State) {
	s.tx = txChecks{}
	s.rcpts = nil
}

// storeAddress is the form of a path store and queue resolve: the mailbox
// as RFC 5321 writes it (a local part that is no dot-string quoted, which
// both unquote), with the domain in A-labels.
func storeAddress(p smtp.Path) (string, error) {
	d, err := p.ASCIIDomain()
	if err != nil {
		return "", err
	}
	return smtp.Path{Localpart: p.Localpart, Domain: d}.Address(), nil
}

func (s *session) Mail(ctx context.Context, st *smtp.State, m *smtp.MailFrom) error {
	if s.srv.submission {
		return s.submitMail(ctx, st, m)
	}
	return s.mxMail(ctx, st, m)
}

func (s *session) Rcpt(ctx context.Context, st *smtp.State, r *smtp.RcptTo) error {
	if s.srv.submission {
		return s.submitRcpt(ctx, st, r)
	}
	return s.mxRcpt(ctx, st, r)
}

func (s *session) Data(ctx context.Context, st *smtp.State, body io.Reader) error {
	defer s.Reset(st)
	if s.srv.submission {
		return s.submitData(ctx, st, body)
	}
	return s.mxData(ctx, st, body)
}

// sleep waits d unless ctx ends first.
func (s *session) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reply is a one-line SMTP reply.
func reply(code int, enhanced, format string, args ...any) *smtp.Reply {
	return &smtp.Reply{Code: code, Enhanced: enhanced, Lines: []string{fmt.Sprintf(format, args...)}}
}

// storeError turns a store call's failure into a reply.
func storeError(log *slog.Logger, op string, err error) *smtp.Reply {
	switch {
	case errors.Is(err, storeclient.ErrDiskFull):
		// RFC 3463: 4.3.1 mail system full.
		return reply(452, "4.3.1", "insufficient system storage, try again later")
	case errors.Is(err, storeclient.ErrOverQuota):
		return reply(452, "4.2.2", "mailbox full")
	}
	log.Error("store "+op+" failed", "err", err)
	return reply(451, "4.3.0", "local error, try again later")
}

// rcptStateReply is the reply to a recipient store did not accept.
func rcptStateReply(state storeclient.RcptState, text string) *smtp.Reply {
	switch state {
	case storeclient.RcptUnknown:
		return reply(550, "5.1.1", "no such user here")
	case storeclient.RcptOverQuota:
		return reply(452, "4.2.2", "mailbox full")
	case storeclient.RcptRefused:
		if text == "" {
			text = "message refused"
		}
		return reply(554, "5.2.3", "%s", text)
	}
	return reply(451, "4.3.0", "local error, try again later")
}
