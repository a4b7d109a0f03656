package smtpd

import (
	"context"
	"errors"
	"fmt"
	"io"

	"moxd/internal/mailproto/dmarc"
	"moxd/internal/mailproto/smtp"
	"moxd/internal/storage/storeclient"
)

// The MX instance (port 25): recipients are checked with store at RCPT,
// the message is streamed into store's pipe while DKIM is verified on the
// same bytes, and the answer after DATA is 250 only once store has
// committed (DESIGN.md §4).

// maxHops is the Received count from which a message is taken to be in a
// loop. RFC 5321 §6.3: a large threshold, "normally at least 100".
const maxHops = 100

func (s *session) mxMail(ctx context.Context, st *smtp.State, m *smtp.MailFrom) error {
	if s.srv.localserve {
		if r := localserveFailure(m.Path, "mailfrom"); r != nil {
			return s.localserveReply(ctx, r)
		}
	}
	s.tx = txChecks{}
	s.rcpts = nil
	s.runConnChecks(ctx)
	s.tx.spf = s.checkSPF(ctx, st, m.Path)
	return nil
}

func (s *session) mxRcpt(ctx context.Context, st *smtp.State, r *smtp.RcptTo) error {
	if s.srv.localserve {
		if rep := localserveFailure(r.Path, "rcptto"); rep != nil {
			return s.localserveReply(ctx, rep)
		}
	}
	addr := "postmaster"
	if !r.Postmaster {
		a, err := storeAddress(r.Path)
		if err != nil {
			return reply(501, "5.1.3", "invalid recipient domain: %v", err)
		}
		addr = a
	}
	state, account, err := s.srv.store.CheckRcpt(ctx, addr)
	if err != nil {
		return storeError(s.log, "recipient check", err)
	}
	if state != storeclient.RcptOK {
		if state == storeclient.RcptUnknown {
			// An unknown recipient costs the client time, so guessing
			// addresses is slow.
			s.log.Info("unknown recipient", "rcpt", r.Path.LogString())
			if err := s.sleep(ctx, s.set.cfg.Limits.UnknownRecipientDelay); err != nil {
				return err
			}
		}
		return rcptStateReply(state, "")
	}
	s.rcpts = append(s.rcpts, acceptedRcpt{addr: addr, account: account})
	return nil
}

func (s *session) mxData(ctx context.Context, st *smtp.State, body io.Reader) error {
	if s.srv.localserve {
		for _, r := range st.Rcpts {
			if rep := localserveFailure(r.Path, ""); rep != nil {
				return s.localserveReply(ctx, rep)
			}
		}
	}
	b, err := s.srv.store.NewBody(ctx)
	if err != nil {
		return storeError(s.log, "new body", err)
	}
	defer b.Release()

	hc := &headerCapture{}
	dk := s.startDKIM(ctx, hc)
	_, err = io.Copy(io.MultiWriter(storeWriter{b}, hc, dk), body)
	dkimResults := dk.finish(err)
	if err != nil {
		var we *storeWriteError
		if errors.As(err, &we) {
			return storeError(s.log, "write body", we.err)
		}
		return err
	}
	if err := b.CloseWrite(); err != nil {
		return storeError(s.log, "write body", err)
	}

	// RFC 5321 §6.3: loop detection by Received count.
	if n := hc.count("Received"); n >= maxHops {
		s.log.Info("mail loop refused", "received", n)
		return reply(554, "5.4.6", "mail loop detected: the message has %d Received headers", n)
	}

	dm, ev := s.checkDMARC(ctx, st, hc.header(), dkimResults)
	if ev != nil {
		s.srv.queue.DMARCEvaluation(*ev)
	}
	if dm.Reject && s.set.cfg.RejectDMARC {
		s.log.Info("dmarc reject", "from", dm.FromDomain, "reason", dm.Reason)
		return reply(550, "5.7.1", "%s", dm.Reason)
	}

	prefix := s.tracePrefix(st, dkimResults, dm)
	env := storeclient.Envelope{MailFrom: mailFromAddress(st.Mail.Path), Received: s.srv.now(), Prefix: prefix}
	var rcpts []storeclient.Recipient
	for _, r := range s.rcpts {
		rcpts = append(rcpts, storeclient.Recipient{Address: r.addr})
	}
	results, err := b.Deliver(ctx, env, rcpts)
	if err != nil {
		return storeError(s.log, "deliver", err)
	}
	return s.settle(ctx, b, env, results)
}

// settle decides the reply from store's per-recipient results. All
// delivered: 250. None delivered: a temporary or permanent failure for the
// client to act on. Some delivered: the others go to queue for a local
// retry and the answer is still 250 (DESIGN.md §4), because answering a
// failure would make the client send the delivered copies again.
func (s *session) settle(ctx context.Context, b storeBody, env storeclient.Envelope, results []storeclient.Result) error {
	if len(results) != len(s.rcpts) {
		s.log.Error("store answered for a different number of recipients", "got", len(results), "want", len(s.rcpts))
		return reply(451, "4.3.0", "local error, try again later")
	}
	var full, partly int // recipients delivered to all, to some of their targets
	var retry []string
	var firstTemp, firstPerm *storeclient.Result
	for i := range results {
		r, addr := &results[i], s.rcpts[i].addr
		switch {
		case len(r.Retry) > 0:
			// An alias whose members were partly delivered: only the
			// failed members are tried again.
			partly++
			retry = append(retry, r.Retry...)
			s.log.Info("delivery partly failed", "rcpt", addr, "retry", r.Retry, "text", r.Text)
		case r.State == storeclient.RcptOK:
			full++
			s.log.Info("delivered", "rcpt", addr, "account", r.Account, "mailbox", r.Mailbox, "uid", r.UID)
		default:
			if r.State.Temporary() && firstTemp == nil {
				firstTemp = r
			} else if !r.State.Temporary() && firstPerm == nil {
				firstPerm = r
			}
			retry = append(retry, addr)
			s.log.Info("delivery failed", "rcpt", addr, "state", r.State, "text", r.Text)
		}
	}
	if full+partly > 0 {
		s.srv.delivered.Add(1)
	}
	switch {
	case full+partly == 0 && firstTemp != nil:
		return rcptStateReply(firstTemp.State, firstTemp.Text)
	case full+partly == 0 && firstPerm != nil:
		return rcptStateReply(firstPerm.State, firstPerm.Text)
	case len(retry) > 0:
		f, err := b.File(ctx)
		if err == nil {
			err = s.srv.queue.LocalRetry(ctx, f, env.MailFrom, retry, env.Prefix, env.Received)
			f.Close()
		}
		if err != nil {
			// Better a second copy for the delivered recipients than
			// no copy for the others: the client sends again.
			s.log.Error("local retry not queued, answering a temporary failure", "err", err, "rcpts", retry)
			return reply(451, "4.3.0", "local error, try again later")
		}
		s.log.Info("local retry queued", "rcpts", retry)
		return reply(250, "2.0.0", "message accepted, %d of %d recipients delivered, the rest queued", full, len(results))
	}
	return reply(250, "2.0.0", "message delivered")
}

// storeWriter marks errors of writes into store's (or queue's) pipe, so
// they are told apart from errors reading the client's message.
type storeWriter struct{ w io.Writer }

type storeWriteError struct{ err error }

func (e *storeWriteError) Error() string { return "write to pipe: " + e.err.Error() }

func (w storeWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil {
		err = &storeWriteError{err}
	}
	return n, err
}

// mailFromAddress is the reverse path as store and queue record it.
func mailFromAddress(p smtp.Path) string {
	if p.IsNull() {
		return ""
	}
	a, err := storeAddress(p)
	if err != nil {
		return p.Address()
	}
	return a
}

// dmarcResult is the DMARC outcome with what the trace headers need.
type dmarcResult struct {
	dmarc.Result
	evaluated bool
}

func (s *session) localserveReply(ctx context.Context, r *smtp.Reply) error {
	if r.Code == 0 {
		// "timeout": no answer for longer than clients wait (RFC 5321
		// §4.5.3.2 has them wait at most 10 minutes).
		if err := s.sleep(ctx, localserveTimeout); err != nil {
			return fmt.Errorf("localserve timeout simulation: %w", err)
		}
		return reply(421, "4.4.2", "simulated timeout (localserve), closing connection")
	}
	return r
}
