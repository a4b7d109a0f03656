package smtpd

import (
	"context"
	"fmt"
	"os"
	"time"

	"moxd/internal/ipc"
	"moxd/internal/mailproto/dmarc"
	"moxd/internal/queue/queueclient"
	"moxd/internal/storage/storeclient"
)

// The peers as the interfaces of peers.go: store through storeclient,
// queue through queueclient (submission) and the reports and local-retry
// messages (smtp).

type storeAdapter struct{ d *storeclient.Deliverer }

func (a storeAdapter) CheckRcpt(ctx context.Context, addr string) (storeclient.RcptState, string, error) {
	return a.d.CheckRcpt(ctx, addr)
}

func (a storeAdapter) NewBody(ctx context.Context) (storeBody, error) {
	b, err := a.d.NewBody(ctx, -1)
	if err != nil {
		return nil, err
	}
	return &storeBodyAdapter{d: a.d, b: b}, nil
}

type storeBodyAdapter struct {
	d        *storeclient.Deliverer
	b        *storeclient.Body
	released bool
}

func (a *storeBodyAdapter) Write(p []byte) (int, error) { return a.b.File.Write(p) }
func (a *storeBodyAdapter) CloseWrite() error           { return a.b.File.Close() }

func (a *storeBodyAdapter) Deliver(ctx context.Context, env storeclient.Envelope, rcpts []storeclient.Recipient) ([]storeclient.Result, error) {
	return a.d.DeliverKeep(ctx, a.b, env, rcpts)
}

func (a *storeBodyAdapter) File(ctx context.Context) (*os.File, error) {
	f, _, err := a.d.BodyFile(ctx, a.b)
	return f, err
}

func (a *storeBodyAdapter) Release() {
	if !a.released {
		a.released = true
		a.b.Release()
	}
}

// queueAdapter reaches queue: submissions (submission instance), local
// retries and DMARC evaluations (smtp instance).
type queueAdapter struct {
	peer func() (*ipc.Conn, error)
	sub  *queueclient.Submitter
}

func newQueueAdapter(peer func() (*ipc.Conn, error), submission bool) *queueAdapter {
	a := &queueAdapter{peer: peer}
	if submission {
		a.sub = queueclient.NewSubmitter(peer)
	}
	return a
}

func (a *queueAdapter) LocalRetry(ctx context.Context, body *os.File, mailFrom string, rcpts []string, prefix []byte, received time.Time) error {
	c, err := a.peer()
	if err != nil {
		return fmt.Errorf("queue local retry: %w", err)
	}
	for len(rcpts) > 0 {
		n := min(len(rcpts), ipc.MaxRecipients)
		m := &ipc.LocalRetry{MailFrom: mailFrom, Recipients: rcpts[:n], Prefix: prefix, Received: received.UnixNano()}
		if _, err := c.Call(ctx, m, body); err != nil {
			return fmt.Errorf("queue local retry: %w", err)
		}
		rcpts = rcpts[n:]
	}
	return nil
}

func (a *queueAdapter) DMARCEvaluation(ev dmarc.Evaluation) {
	c, err := a.peer()
	if err != nil {
		return // lost: one row fewer in a report (DESIGN.md §5)
	}
	c.Notify(dmarcEvalMessage(ev))
}

func (a *queueAdapter) NewSpool(ctx context.Context) (spool, error) {
	if a.sub == nil {
		return nil, fmt.Errorf("the smtp instance has no submit channel to queue")
	}
	sp, err := a.sub.NewSpool(ctx, -1)
	if err != nil {
		return nil, err
	}
	return &spoolAdapter{sub: a.sub, sp: sp}, nil
}

type spoolAdapter struct {
	sub *queueclient.Submitter
	sp  *queueclient.Spool
}

func (a *spoolAdapter) Write(p []byte) (int, error) { return a.sp.File.Write(p) }
func (a *spoolAdapter) CloseWrite() error           { return nil }
func (a *spoolAdapter) Release()                    { a.sp.File.Close() }

func (a *spoolAdapter) Submit(ctx context.Context, env queueclient.Envelope, rcpts []queueclient.Recipient) (uint64, error) {
	return a.sub.Submit(ctx, a.sp, env, rcpts)
}

// dmarcEvalMessage converts an evaluation to its IPC event, within the
// event's limits.
func dmarcEvalMessage(ev dmarc.Evaluation) *ipc.DMARCEval {
	m := &ipc.DMARCEval{
		PolicyDomain: ev.PolicyDomain,
		HeaderFrom:   ev.HeaderFrom,
		EnvelopeFrom: ev.EnvelopeFrom,
		EnvelopeTo:   ev.EnvelopeTo,
		SourceIP:     ev.SourceIP,
		Time:         ev.Time,
		Disposition:  ev.Disposition,
		P:            ev.Published.Policy,
		SP:           ev.Published.SubdomainPolicy,
		ADKIM:        ev.Published.ADKIM,
		ASPF:         ev.Published.ASPF,
		Pct:          uint8(min(max(ev.Published.Percent, 0), 100)),
		FO:           ev.Published.FailureOptions,
		HasRUA:       ev.HasRUA,
		DKIMAligned:  ev.DKIMAligned == "pass",
		SPFAligned:   ev.SPFAligned == "pass",
		SPFResult:    ev.SPF.Result,
		SPFDomain:    ev.SPF.Domain,
		SPFScope:     ev.SPF.Scope,
	}
	m.Result = "fail"
	if m.DKIMAligned || m.SPFAligned {
		m.Result = "pass"
	}
	for _, d := range ev.DKIM {
		if len(m.DKIM) == ipc.MaxDMARCDKIM {
			break
		}
		m.DKIM = append(m.DKIM, ipc.DMARCDKIM{Domain: d.Domain, Selector: d.Selector, Result: d.Result})
	}
	if ev.Override != "" {
		m.Reasons = append(m.Reasons, ipc.DMARCReason{Type: ev.Override})
	}
	return m
}
