package storage

// Incoming events (store -> queue, ipc.FamIncoming): after a delivery
// committed, store tells queue about the deliveries queue acts on:
//
//   - to an account with an incoming webhook ([[account.webhook]] kind
//     "incoming"): every delivery, queue posts it;
//   - a DSN (null MAIL FROM, multipart/report with report-type
//     delivery-status) to an address whose local part has a separator of
//     its domain: the part after the first separator may be the unique
//     MAIL FROM id of a message queue sent (account.unique_mail_from), and
//     queue matches the report's results to it.
//
// Store is the only role that parses message content (DESIGN.md §1), so
// it reads the report, from its own copy of the body and at most
// maxDSNRead bytes of it, and hands queue bounded results. All of it
// happens on one goroutine fed by a bounded buffer: a delivery only adds
// a job after its commit, never waits, and pays nothing unless one of
// the two cases applies (a map lookup per target; the report check only
// for the null sender). A full buffer or a queue that is down drops
// events, counted: the mail itself is delivered either way.

import (
	"context"
	"io"
	"log/slog"
	"mime"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"moxd/internal/addrbook"
	"moxd/internal/ipc"
	"moxd/internal/mailproto/dsn"
	mailmsg "moxd/internal/mailproto/message"
	"moxd/internal/storage/account"
)

const (
	// maxPendingIncoming bounds the jobs waiting to be sent; each may
	// hold an open body file.
	maxPendingIncoming = 256
	// maxDSNRead is how much of a DSN is parsed: the delivery-status part
	// comes before the returned message, and a longer message is parsed
	// from its start.
	maxDSNRead = 1 << 20
)

// incomingTarget is one committed delivery an event is due for.
type incomingTarget struct {
	account, mailbox, rcpt string
	hook                   bool   // the account has an incoming webhook
	fromID                 string // the rcpt's tag, when tagged
	tagged                 bool
}

// incomingJob is the events of one delivered message.
type incomingJob struct {
	common  ipc.IncomingDelivery // without Account, Mailbox, Rcpt and DSN
	targets []incomingTarget
	body    *os.File // the body when it may be a DSN, else nil
}

// incoming sends incoming events to queue.
type incoming struct {
	log  *slog.Logger
	send func(m ipc.Message) error
	jobs chan *incomingJob

	sent    atomic.Uint64
	dropped atomic.Uint64
}

func newIncoming(log *slog.Logger) *incoming {
	return &incoming{
		log:  log,
		send: func(ipc.Message) error { return ipc.ErrClosed },
		jobs: make(chan *incomingJob, maxPendingIncoming),
	}
}

// isReport reports whether p is the top of a delivery status
// notification (RFC 6522 §3, RFC 3464 §2; RFC 6533 for the global form).
func isReport(p *mailmsg.Part) bool {
	if p == nil || p.MediaType != "multipart" || p.MediaSubtype != "report" {
		return false
	}
	for _, pa := range p.Params {
		if pa.Name == "report-type" {
			v := strings.ToLower(pa.Value)
			return v == "delivery-status" || v == "global-delivery-status"
		}
	}
	return false
}

// noteDelivered adds the events due for the committed deliveries of m:
// outcomes[i][k] is the outcome of target k of recipient i. Called after
// the commit, before the reply; it never blocks.
func (sv *service) noteDelivered(m *ipc.Deliver, body *account.Body, received time.Time, targets [][]addrbook.Target, outcomes [][]outcome) {
	book, hooks := sv.store.incoming()
	report := m.MailFrom == "" && isReport(body.Part())
	if len(hooks) == 0 && !report {
		return
	}
	var l []incomingTarget
	for i, r := range m.Recipients {
		for k, t := range targets[i] {
			o := outcomes[i][k]
			if o.state != ipc.RcptOK {
				continue
			}
			it := incomingTarget{account: t.Account, mailbox: o.mailbox, rcpt: r.Address, hook: hooks[t.Account]}
			if report {
				if at := strings.LastIndexByte(r.Address, '@'); at > 0 {
					it.fromID, it.tagged = book.Tag(r.Address[:at], r.Address[at+1:])
					it.tagged = it.tagged && it.fromID != "" && len(it.fromID) <= ipc.MaxFromID
				}
			}
			if it.hook || it.tagged {
				l = append(l, it)
			}
		}
	}
	if len(l) == 0 {
		return
	}
	if received.IsZero() {
		received = sv.store.now()
	}
	j := &incomingJob{targets: l, common: ipc.IncomingDelivery{
		MailFrom: ipc.ClipText(m.MailFrom, ipc.MaxAddressLen),
		Size:     int64(len(m.Prefix)) + body.Size(),
		Received: received.UnixNano(),
	}}
	if p := body.Part(); p != nil && p.Envelope != nil {
		env := p.Envelope
		if ids := mailmsg.MessageIDs(env.MessageID); len(ids) > 0 {
			j.common.MessageID = ipc.ClipText(ids[0], ipc.MaxIncomingHeader)
		}
		subject := env.Subject
		if s, err := new(mime.WordDecoder).DecodeHeader(subject); err == nil {
			subject = s
		}
		j.common.Subject = ipc.ClipText(subject, ipc.MaxIncomingHeader)
		for _, a := range env.From {
			if a.Host != "" {
				j.common.From = ipc.ClipText(a.Mailbox+"@"+a.Host, ipc.MaxAddressLen)
				break
			}
		}
	}
	if report {
		// Opened now: the body's temporary file may be removed once the
		// delivery is answered.
		f, err := body.Open()
		if err != nil {
			sv.log.Debug("open delivery status notification", "err", err)
		} else {
			j.body = f
		}
	}
	sv.incoming.add(j)
}

// add queues j, or drops it when the buffer is full.
func (in *incoming) add(j *incomingJob) {
	select {
	case in.jobs <- j:
	default:
		if j.body != nil {
			j.body.Close()
		}
		in.dropped.Add(uint64(len(j.targets)))
		in.log.Debug("incoming events dropped: too many pending", "count", len(j.targets))
	}
}

// run sends the events of queued jobs until ctx ends.
func (in *incoming) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			for {
				select {
				case j := <-in.jobs:
					if j.body != nil {
						j.body.Close()
					}
				default:
					return
				}
			}
		case j := <-in.jobs:
			in.process(j)
		}
	}
}

// process reads the report of j, if any, and sends its events.
func (in *incoming) process(j *incomingJob) {
	var results *[]ipc.DSNResult
	if j.body != nil {
		rep, err := dsn.Parse(io.LimitReader(j.body, maxDSNRead))
		j.body.Close()
		if err != nil {
			in.log.Debug("null sender report is no delivery status notification", "err", err)
		} else {
			l := dsnResults(rep)
			results = &l
		}
	}
	for _, t := range j.targets {
		if !t.hook && !(t.tagged && results != nil) {
			continue
		}
		ev := j.common
		ev.Account = t.account
		ev.Mailbox = ipc.ClipText(t.mailbox, ipc.MaxMailboxLen)
		ev.Rcpt = ipc.ClipText(t.rcpt, ipc.MaxAddressLen)
		if results != nil {
			ev.DSN = &ipc.IncomingDSN{Results: *results}
			if t.tagged {
				ev.DSN.FromID = t.fromID
			}
		}
		if err := in.send(&ev); err != nil {
			in.dropped.Add(1)
			in.log.Debug("incoming event not sent", "account", t.account, "err", err)
			continue
		}
		in.sent.Add(1)
	}
}

// dsnResults are the first ipc.MaxDSNResults recipient groups of rep,
// clipped to the event's limits.
func dsnResults(rep *dsn.Report) []ipc.DSNResult {
	l := []ipc.DSNResult{}
	for _, r := range rep.Recipients {
		if len(l) == ipc.MaxDSNResults {
			break
		}
		l = append(l, ipc.DSNResult{
			FinalRecipient: ipc.ClipText(r.FinalRecipient, ipc.MaxAddressLen),
			Action:         ipc.ClipText(string(r.Action), ipc.MaxResultWord),
			Status:         ipc.ClipText(r.Status, ipc.MaxDSNStatus),
			Diagnostic:     ipc.ClipText(r.Diagnostic, ipc.MaxDSNDiagnostic),
		})
	}
	return l
}
