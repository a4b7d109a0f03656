package smtpd

import (
	"context"
	"io"
	"strings"
	"sync"
	"time"

	"moxd/internal/mailproto/authres"
	"moxd/internal/mailproto/dkim"
	"moxd/internal/mailproto/dmarc"
	"moxd/internal/mailproto/iprev"
	"moxd/internal/mailproto/smtp"
	"moxd/internal/mailproto/spf"
)

// The inbound checks of the MX instance: iprev once per connection, SPF
// per transaction (at MAIL), DKIM on the message bytes while they stream
// to store, DMARC after the message. Their results go into the
// Authentication-Results and Received headers; DMARC's policy can refuse
// the message, and every DMARC evaluation of a domain with a record is
// handed to queue for aggregate reports.

// checkTimeout bounds the DNS work of one check.
const checkTimeout = 30 * time.Second

// connChecks are done once per connection.
type connChecks struct {
	done  bool
	iprev iprev.Result
}

// txChecks are done per transaction.
type txChecks struct {
	spf spf.Received
}

// runConnChecks runs the per-connection checks the first time a
// transaction starts.
func (s *session) runConnChecks(ctx context.Context) {
	if s.conn.done || !s.ip.IsValid() {
		return
	}
	s.conn.done = true
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	s.conn.iprev = iprev.Check(ctx, s.set.resolver, s.ip)
	s.log.Debug("iprev", "status", s.conn.iprev.Status, "name", s.conn.iprev.Name, "authentic", s.conn.iprev.Authentic)
}

// checkSPF evaluates SPF for the reverse path (RFC 7208 §2.4: the HELO
// identity for the null path).
func (s *session) checkSPF(ctx context.Context, st *smtp.State, from smtp.Path) spf.Received {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	a := spf.Args{RemoteIP: s.ip, HelloDomain: st.HelloName, LocalHostname: s.srv.hostname}
	if !from.IsNull() {
		d, err := from.ASCIIDomain()
		if err == nil {
			a.MailFromLocalpart = from.Localpart
			a.MailFromDomain = strings.TrimSuffix(strings.TrimPrefix(d, "["), "]")
		}
	}
	r := spf.Verify(ctx, s.set.resolver, a)
	s.log.Debug("spf", "result", r.Result, "domain", r.Domain, "identity", r.Identity, "authentic", r.Authentic, "err", r.Err)
	return r
}

// dkimCheck verifies DKIM on the message as it is written to it. The
// verifier starts only once the header section is known to hold a
// DKIM-Signature field: an unsigned message costs no verification. Until
// then the written bytes are kept (at most the header section, which
// headerCapture bounds).
type dkimCheck struct {
	s       *session
	ctx     context.Context
	hc      *headerCapture // written before this writer in the same MultiWriter
	decided bool
	pending []byte
	pw      *io.PipeWriter // nil: no verifier
	failed  bool           // the verifier stopped reading
	wg      sync.WaitGroup
	res     []dkim.Result
}

func (s *session) startDKIM(ctx context.Context, hc *headerCapture) *dkimCheck {
	return &dkimCheck{s: s, ctx: ctx, hc: hc}
}

// Write never fails, so it can sit in the delivery's MultiWriter.
func (d *dkimCheck) Write(p []byte) (int, error) {
	if !d.decided {
		d.pending = append(d.pending, p...)
		if d.hc.done || d.hc.overflow {
			d.decide()
		}
		return len(p), nil
	}
	d.forward(p)
	return len(p), nil
}

// decide starts the verifier when the header has a signature (or is too
// large to tell) and hands it what was kept.
func (d *dkimCheck) decide() {
	d.decided = true
	pending := d.pending
	d.pending = nil
	if !d.hc.overflow && d.hc.count("DKIM-Signature") == 0 {
		return
	}
	pr, pw := io.Pipe()
	d.pw = pw
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		ctx, cancel := context.WithTimeout(d.ctx, checkTimeout)
		defer cancel()
		res, err := dkim.Verify(ctx, d.s.set.resolver, pr, dkim.VerifyOptions{})
		// Whatever the verifier left unread is dropped by forward.
		pr.CloseWithError(io.ErrClosedPipe)
		if err != nil {
			d.s.log.Debug("dkim verification", "err", err)
		}
		d.res = res
	}()
	d.forward(pending)
}

func (d *dkimCheck) forward(p []byte) {
	if d.pw == nil || d.failed || len(p) == 0 {
		return
	}
	if _, err := d.pw.Write(p); err != nil {
		d.failed = true
	}
}

// finish ends the message (err is the copy's error, nil at the end) and
// returns the signatures' results.
func (d *dkimCheck) finish(err error) []dkim.Result {
	if !d.decided && err == nil {
		d.decide()
	}
	if d.pw == nil {
		return nil
	}
	d.pw.CloseWithError(err)
	d.wg.Wait()
	return d.res
}

// checkDMARC evaluates DMARC for the message's From domain. The evaluation
// for aggregate reports is returned when the domain's record asks for them
// (rua=).
func (s *session) checkDMARC(ctx context.Context, st *smtp.State, header []byte, dk []dkim.Result) (dmarcResult, *dmarc.Evaluation) {
	fromDomain, err := dmarc.FromDomain(header)
	if err != nil {
		s.log.Debug("dmarc: no single From domain", "err", err)
		return dmarcResult{}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	args := dmarc.Args{FromDomain: fromDomain, SPF: s.tx.spf, DKIM: dk}
	res := dmarc.Verify(ctx, s.set.resolver, args)
	s.log.Debug("dmarc", "status", res.Status, "domain", res.Domain, "policy", res.Policy, "reject", res.Reject, "authentic", res.Authentic)
	if res.Record == nil || len(res.Record.RUA) == 0 {
		// RFC 7489 §7.2: aggregate reports go to the rua= addresses; a
		// domain without them gets none, so nothing is kept for it.
		return dmarcResult{Result: res, evaluated: true}, nil
	}
	envTo := ""
	if len(s.rcpts) > 0 {
		if i := strings.LastIndexByte(s.rcpts[0].addr, '@'); i >= 0 {
			envTo = s.rcpts[0].addr[i+1:]
		}
	}
	ev := dmarc.NewEvaluation(args, res, envTo, s.srv.now())
	if res.Reject && !s.set.cfg.RejectDMARC {
		ev.Disposition = "none"
		ev.Override = "local_policy"
	}
	return dmarcResult{Result: res, evaluated: true}, &ev
}

// tracePrefix returns the header fields put before the message:
// Authentication-Results (RFC 8601) and Received (RFC 5321 §4.4), newest
// first.
func (s *session) tracePrefix(st *smtp.State, dk []dkim.Result, dm dmarcResult) []byte {
	var dnssec []string
	if s.conn.iprev.Authentic {
		dnssec = append(dnssec, "iprev")
	}
	if s.tx.spf.Authentic {
		dnssec = append(dnssec, "spf")
	}
	for _, r := range dk {
		if r.Authentic {
			dnssec = append(dnssec, "dkim")
			break
		}
	}
	if dm.evaluated && dm.Authentic {
		dnssec = append(dnssec, "dmarc")
	}
	ri := receivedInfo{
		HelloName:  st.HelloName,
		RemoteIP:   s.ip,
		Hostname:   s.srv.hostname,
		With:       protocol(st.Mail.SMTPUTF8, st.TLS != nil, false),
		TLS:        st.TLS,
		DNSSEC:     dnssec,
		RequireTLS: st.Mail.RequireTLS,
		ID:         newID(),
		Time:       s.srv.now(),
	}
	if s.conn.iprev.Status == iprev.StatusPass {
		ri.IPRevName = s.conn.iprev.Name
	}
	if len(s.rcpts) == 1 {
		ri.For = s.rcpts[0].addr
	}
	ar := s.authResults(st, dk, dm)
	return []byte(ar + ri.header())
}

// authResults is the Authentication-Results header of the checks.
func (s *session) authResults(st *smtp.State, dk []dkim.Result, dm dmarcResult) string {
	var methods []authres.Method
	if s.conn.done {
		methods = append(methods, authres.IPRev(s.conn.iprev, s.ip))
	}
	methods = append(methods, authres.SPF(s.tx.spf))
	methods = append(methods, authres.DKIM(dk)...)
	if dm.evaluated {
		methods = append(methods, authres.DMARC(dm.Result))
	}
	return authres.Header(s.srv.hostname, methods)
}
