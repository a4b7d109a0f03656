package smtpd

import (
	"context"
	"errors"
	"io"
	"strings"

	"moxd/internal/auth"
	"moxd/internal/ipc"
	"moxd/internal/mailproto/smtp"
	"moxd/internal/queue/queueclient"
	"moxd/internal/storage/storeclient"
)

// The submission instance (587, 465): AUTH through store, then each
// message goes to queue with the session token store issued. Queue checks
// the token, the sender and the account's limits itself (DESIGN.md §4);
// what this side checks only gives the client an earlier answer.

// Mechanisms in the order EHLO lists them. PLAIN and LOGIN send the
// password itself and are offered only under TLS; -PLUS only with channel
// binding data.
var (
	mechsTLS   = []string{auth.MechSCRAMSHA256Plus, auth.MechSCRAMSHA256, auth.MechSCRAMSHA1Plus, auth.MechSCRAMSHA1, auth.MechCRAMMD5, auth.MechPLAIN, auth.MechLOGIN}
	mechsPlain = []string{auth.MechSCRAMSHA256, auth.MechSCRAMSHA1, auth.MechCRAMMD5}
)

func (s *session) AuthMechanisms(st *smtp.State) []string {
	if !s.srv.submission {
		return nil
	}
	if st.TLS == nil {
		return mechsPlain
	}
	if len(auth.ServerChannelBindings(st.TLS)) == 0 {
		var l []string
		for _, m := range mechsTLS {
			if !strings.HasSuffix(m, "-PLUS") {
				l = append(l, m)
			}
		}
		return l
	}
	return mechsTLS
}

func (s *session) Auth(ctx context.Context, st *smtp.State, mech string, initial []byte, hasInitial bool, exchange func([]byte) ([]byte, error)) (string, error) {
	step, err := s.srv.auth.Start(ctx, mech, s.ip, st.TLS != nil, auth.ServerChannelBindings(st.TLS), initial, hasInitial)
	for err == nil && !step.Done {
		resp, xerr := exchange(step.Challenge)
		if xerr != nil {
			s.srv.auth.Abort(context.WithoutCancel(ctx), step.Exchange)
			return "", xerr
		}
		step, err = s.srv.auth.Continue(ctx, step.Exchange, resp)
	}
	if err != nil {
		return "", s.authFailed(ctx, err)
	}
	if len(step.Challenge) > 0 {
		// RFC 4954 §4: the mechanism's final server data (SCRAM's
		// server-final message) goes in a last challenge; the client
		// answers with an empty line.
		resp, xerr := exchange(step.Challenge)
		if xerr != nil || len(resp) != 0 {
			s.srv.auth.RevokeToken(step.Token)
			if xerr != nil {
				return "", xerr
			}
			return "", reply(501, "5.5.2", "expected an empty response to the final authentication data")
		}
	}
	s.token, s.hasToken = step.Token, true
	s.authFailures = 0
	return step.Account, nil
}

// authFailed turns a failed exchange into the reply, after the delay that
// makes guessing slow (it doubles with each failure in the session); too
// many failures end the session.
func (s *session) authFailed(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, storeclient.ErrAborted):
		return smtp.ErrAuthAborted
	case errors.Is(err, storeclient.ErrMalformed):
		return reply(501, "5.5.2", "malformed authentication exchange")
	case errors.Is(err, storeclient.ErrRateLimited):
		return reply(454, "4.7.0", "too many failed logins from your network, try again later")
	case errors.Is(err, storeclient.ErrUnavailable):
		s.log.Error("authentication unavailable", "err", err)
		return reply(454, "4.7.0", "temporary authentication failure, try again later")
	}
	s.authFailures++
	s.log.Info("authentication failed", "failures", s.authFailures)
	lim := s.set.cfg.Limits
	delay := lim.AuthFailureDelay << min(s.authFailures-1, 6)
	if err := s.sleep(ctx, delay); err != nil {
		return err
	}
	if lim.MaxAuthFailures > 0 && s.authFailures >= lim.MaxAuthFailures {
		return reply(421, "4.7.0", "too many failed authentication attempts, closing connection")
	}
	// RFC 4954 §6: 535 5.7.8.
	return reply(535, "5.7.8", "authentication failed")
}

func (s *session) submitMail(ctx context.Context, st *smtp.State, m *smtp.MailFrom) error {
	if m.Path.IsNull() {
		return reply(550, "5.7.1", "a submitted message needs a sender address, not <>")
	}
	if _, err := m.Path.ASCIIDomain(); err != nil || strings.HasPrefix(m.Path.Domain, "[") {
		return reply(553, "5.1.7", "sender address needs a domain name")
	}
	return nil
}

func (s *session) submitRcpt(ctx context.Context, st *smtp.State, r *smtp.RcptTo) error {
	if r.Postmaster {
		return reply(550, "5.1.3", "give the postmaster address with its domain")
	}
	addr, err := storeAddress(r.Path)
	if err != nil {
		return reply(501, "5.1.3", "invalid recipient domain: %v", err)
	}
	s.rcpts = append(s.rcpts, acceptedRcpt{addr: addr})
	return nil
}

func (s *session) submitData(ctx context.Context, st *smtp.State, body io.Reader) error {
	sp, err := s.srv.queue.NewSpool(ctx)
	if err != nil {
		return queueError(s.log, err)
	}
	defer sp.Release()
	hc := &headerCapture{}
	if _, err := io.Copy(io.MultiWriter(storeWriter{sp}, hc), body); err != nil {
		var we *storeWriteError
		if errors.As(err, &we) {
			return queueError(s.log, we.err)
		}
		return err
	}
	if err := sp.CloseWrite(); err != nil {
		return queueError(s.log, err)
	}
	env := queueclient.Envelope{
		Token:      s.token,
		MailFrom:   mailFromAddress(st.Mail.Path),
		RequireTLS: st.Mail.RequireTLS,
		SMTPUTF8:   st.Mail.SMTPUTF8,
		EightBit:   st.Mail.Body == smtp.Body8BitMIME,
		EnvID:      st.Mail.EnvID,
		Prefix:     s.submitPrefix(st, hc),
	}
	switch st.Mail.Ret {
	case smtp.RetFull:
		env.Ret = ipc.RetFull
	case smtp.RetHdrs:
		env.Ret = ipc.RetHdrs
	}
	rcpts := make([]queueclient.Recipient, len(st.Rcpts))
	for i, r := range st.Rcpts {
		// smtp.Notify* and ipc.Notify* are the same RFC 3461 bits.
		rcpts[i] = queueclient.Recipient{Address: s.rcpts[i].addr, Notify: r.Notify, ORcpt: r.ORcpt}
	}
	id, err := sp.Submit(ctx, env, rcpts)
	if err != nil {
		return queueError(s.log, err)
	}
	s.srv.delivered.Add(1)
	s.log.Info("message queued", "id", id, "account", st.Account, "rcpts", len(rcpts))
	return reply(250, "2.0.0", "message queued as %d", id)
}

// submitPrefix is the Received header of a submission, plus the
// Message-ID and Date the message lacks (RFC 6409 §8.3, §8.4).
func (s *session) submitPrefix(st *smtp.State, hc *headerCapture) []byte {
	now := s.srv.now()
	ri := receivedInfo{
		HelloName:  st.HelloName,
		RemoteIP:   s.ip,
		Hostname:   s.srv.hostname,
		With:       protocol(st.Mail.SMTPUTF8, st.TLS != nil, true),
		TLS:        st.TLS,
		RequireTLS: st.Mail.RequireTLS,
		ID:         newID(),
		Time:       now,
	}
	if len(s.rcpts) == 1 {
		ri.For = s.rcpts[0].addr
	}
	var b strings.Builder
	b.WriteString(ri.header())
	if hc.header() != nil {
		if hc.count("Message-ID") == 0 {
			b.WriteString("Message-ID: <" + newID() + "@" + s.srv.hostname + ">\r\n")
		}
		if hc.count("Date") == 0 {
			b.WriteString("Date: " + now.Format("Mon, 02 Jan 2006 15:04:05 -0700") + "\r\n")
		}
	}
	return []byte(b.String())
}

// queueError turns a queue call's failure into a reply. Queue's refusals
// carry a text for the client (what is wrong, which option to change).
func queueError(log interface {
	Error(string, ...any)
}, err error) error {
	var qe *queueclient.Error
	if errors.As(err, &qe) {
		switch {
		case errors.Is(err, queueclient.ErrDenied):
			return reply(550, "5.7.1", "%s", qe.Text)
		case errors.Is(err, queueclient.ErrLimit):
			return reply(451, "4.7.0", "%s", qe.Text)
		case errors.Is(err, queueclient.ErrBadRequest):
			return reply(554, "5.6.0", "%s", qe.Text)
		}
	}
	log.Error("queue submission failed", "err", err)
	return reply(451, "4.3.0", "local error, try again later")
}
