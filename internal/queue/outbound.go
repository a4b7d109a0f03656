package queue

// The deliverer: delivery of submitted messages and DSNs (due entries of
// kind 'o'). One goroutine scans the due index and starts an attempt per
// due message, bounded by [queue] concurrency; an attempt groups the
// message's due recipients by domain and runs one job per domain, all at
// once, each holding a slot of its destination ([queue]
// destination_concurrency). A job for a local domain (or any domain under
// localserve) hands the recipients to store; any other goes out through
// the transport its route chose (transport.go), sending one copy of the
// data for all recipients of the domain.
//
// When every job of the attempt is done, finishAttempt records the
// outcomes in one operation together with the DSNs they cause, the
// retired records of recipients that are done and the suppression list
// entries of addresses that do not exist, so a crash can repeat an
// attempt (a message may go twice) but never lose a recipient.
//
// Failures caused by a moxd role that is restarting (store, keys) are not
// attempts: the recipient is tried again shortly without counting.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"moxd/internal/config"
	"moxd/internal/dns"
	"moxd/internal/ipc"
)

const (
	// notAttemptDelay is when a recipient whose attempt could not be
	// made (a role restarting) is tried again.
	notAttemptDelay = 30 * time.Second
	// outboundBatch bounds the due messages read at once.
	outboundBatch = 500
)

// Default delivery settings ([queue] in moxd.conf).
const (
	DefaultMaxAttempts            = 8
	DefaultFirstRetry             = 7*time.Minute + 30*time.Second
	DefaultDelayedDSNAfter        = 5
	DefaultKeep                   = 7 * 24 * time.Hour
	DefaultConcurrency            = 64
	DefaultDestinationConcurrency = 10
)

// deliverySettings are the [queue] settings with defaults applied.
type deliverySettings struct {
	config.QueueDelivery
}

func newDeliverySettings(d config.QueueDelivery) deliverySettings {
	if d.MaxAttempts <= 0 {
		d.MaxAttempts = DefaultMaxAttempts
	}
	if d.FirstRetry <= 0 {
		d.FirstRetry = DefaultFirstRetry
	}
	if d.DelayedDSNAfter < 0 || d.DelayedDSNAfter >= d.MaxAttempts {
		d.DelayedDSNAfter = 0
	}
	if d.Keep <= 0 {
		d.Keep = DefaultKeep
	}
	if d.Concurrency <= 0 {
		d.Concurrency = DefaultConcurrency
	}
	if d.DestinationConcurrency <= 0 {
		d.DestinationConcurrency = DefaultDestinationConcurrency
	}
	return deliverySettings{d}
}

// retryDelay is the delay after the attempts-th failed attempt (1-based):
// first_retry, doubling.
func (s deliverySettings) retryDelay(attempts int) time.Duration {
	d := s.FirstRetry
	for i := 1; i < attempts && d < 30*24*time.Hour; i++ {
		d *= 2
	}
	return d
}

// deliverer runs outbound attempts.
type deliverer struct {
	sv  *service
	log *slog.Logger
	q   *Queue
	now func() time.Time

	// resolver is the DNS of direct delivery.
	resolver dns.Resolver
	pool     *connPool
	mtasts   *mtastsCache

	mu       sync.Mutex
	inflight map[uint64]bool
	// stuck holds messages whose outcome could not be recorded, until
	// the time they may be tried again: without it, a database that
	// refuses writes would have the same message sent over and over.
	stuck map[uint64]time.Time
	dests map[string]*destination
	// slotFreed is signalled when an attempt ends, so the scan loop can
	// start the next one when it was at the concurrency limit.
	slotFreed chan struct{}

	delivered atomic.Uint64
	failed    atomic.Uint64
	deferred  atomic.Uint64
	dsns      atomic.Uint64
}

func newDeliverer(sv *service, resolver dns.Resolver) *deliverer {
	d := &deliverer{
		sv:        sv,
		log:       sv.log,
		q:         sv.q,
		now:       sv.now,
		resolver:  resolver,
		inflight:  map[uint64]bool{},
		stuck:     map[uint64]time.Time{},
		dests:     map[string]*destination{},
		slotFreed: make(chan struct{}, 1),
	}
	d.pool = newConnPool(sv.now)
	d.mtasts = newMTASTSCache(sv.q, sv.now)
	return d
}

// run starts attempts for due messages until ctx ends, then waits for
// the running ones.
func (d *deliverer) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		d.pool.closeAll()
	}()
	janitor := time.NewTicker(time.Second)
	defer janitor.Stop()
	for {
		st := d.sv.settings.Load()
		ids, next, err := d.q.dueMessages(dueOutbound, d.now(), outboundBatch)
		if err != nil {
			d.log.Error("read due deliveries", "err", err)
			next = d.now().Add(time.Minute)
		}
		full := false
		for _, id := range ids {
			if ctx.Err() != nil {
				return
			}
			d.mu.Lock()
			if until, ok := d.stuck[id]; ok && d.now().Before(until) {
				d.mu.Unlock()
				continue
			} else if ok {
				delete(d.stuck, id)
			}
			if d.inflight[id] {
				d.mu.Unlock()
				continue
			}
			if len(d.inflight) >= st.delivery.Concurrency {
				d.mu.Unlock()
				full = true
				break
			}
			d.inflight[id] = true
			d.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				d.attempt(ctx, id)
				d.mu.Lock()
				delete(d.inflight, id)
				d.mu.Unlock()
				select {
				case d.slotFreed <- struct{}{}:
				default:
				}
			}()
		}
		var wait <-chan time.Time
		if !full && len(ids) < outboundBatch && !next.IsZero() {
			wait = time.After(max(next.Sub(d.now()), 0))
		} else if !full && len(ids) == outboundBatch {
			// More are due than were read; those in flight are
			// skipped on the next read.
			wait = time.After(100 * time.Millisecond)
		}
		select {
		case <-ctx.Done():
			return
		case <-wait:
		case <-d.slotFreed:
		case <-d.q.outChanged:
		case <-janitor.C:
			d.pool.expire()
		}
	}
}

// job is the part of an attempt for one recipient domain.
type job struct {
	msg    *Message
	rcpts  []*Recipient
	domain string // recipient domain, lower-case
	outs   []outcome
}

// attempt delivers message id to its due recipients and records the
// outcomes.
func (d *deliverer) attempt(ctx context.Context, id uint64) {
	m, rcpts, err := d.q.loadMessage(id)
	if errors.Is(err, errNoMessage) {
		return
	} else if err != nil {
		d.log.Error("read queued message", "msg", id, "err", err)
		return
	}
	now := d.now()
	var jobs []*job
	byDomain := map[string]*job{}
	for _, rc := range rcpts {
		if rc.State != RcptQueued || rc.Held || rc.NextAttempt.After(now) {
			continue
		}
		_, dom, err := parseAddress(rc.Address)
		if err != nil {
			dom = ""
		}
		j := byDomain[dom]
		if j == nil {
			j = &job{msg: m, domain: dom}
			byDomain[dom] = j
			jobs = append(jobs, j)
		}
		j.rcpts = append(j.rcpts, rc)
	}
	if len(jobs) == 0 {
		// The due entry is stale (recipients held or rescheduled):
		// let recording nothing move it.
		if err := d.finishAttempt(m, rcpts, nil, now); err != nil {
			d.log.Error("update queued message", "msg", id, "err", err)
		}
		return
	}
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j.outs = d.runJob(ctx, j)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		// Stopping: outcomes of canceled jobs are not attempts. Record
		// the deliveries that did happen, so they are not repeated.
		for _, j := range jobs {
			for i := range j.outs {
				if !j.outs[i].Delivered {
					j.outs[i] = outcome{Seq: j.outs[i].Seq, NotAttempt: true, Error: "moxd-queue stopped during the attempt"}
				}
			}
		}
	}
	var outs []outcome
	for _, j := range jobs {
		outs = append(outs, j.outs...)
	}
	if err := d.finishAttempt(m, rcpts, outs, now); err != nil {
		d.log.Error("record delivery attempt; the message is left alone for a minute", "msg", id, "err", err)
		d.mu.Lock()
		d.stuck[id] = d.now().Add(time.Minute)
		d.mu.Unlock()
	}
}

// runJob delivers one domain's recipients and returns an outcome per
// recipient.
func (d *deliverer) runJob(ctx context.Context, j *job) []outcome {
	st := d.sv.settings.Load()
	// A suppressed recipient fails at once, without a connection.
	var rcpts []*Recipient
	var outs []outcome
	for _, rc := range j.rcpts {
		if j.msg.Account != "" && !j.msg.DSN {
			if s, ok := d.q.suppressed(j.msg.Account, rc.Address); ok {
				outs = append(outs, outcome{Seq: rc.Seq, Permanent: true, Status: "5.1.1", Suppressed: true,
					Error: fmt.Sprintf("address is on the suppression list of account %s (since %s: %s); remove it with moxctl queue suppress rm", j.msg.Account, s.Added.UTC().Format(time.RFC3339), s.Reason)})
				continue
			}
		}
		rcpts = append(rcpts, rc)
	}
	if len(rcpts) == 0 {
		return outs
	}
	if j.domain == "" {
		for _, rc := range rcpts {
			outs = append(outs, outcome{Seq: rc.Seq, Permanent: true, Status: "5.1.3", Error: "recipient address has no domain"})
		}
		return outs
	}
	if st.localserve || st.localDomains[j.domain] {
		return append(outs, d.deliverLocal(ctx, j.msg, rcpts)...)
	}
	return append(outs, d.deliverRemote(ctx, j.msg, rcpts, j.domain)...)
}

// destination limits the concurrent deliveries to one destination.
type destination struct {
	slots chan struct{}
	// starts are the times of recent transactions, for
	// destination_rate.
	starts []time.Time
}

// acquire waits for a slot of destination key; it returns the release
// function, or an error when ctx ends first.
func (d *deliverer) acquire(ctx context.Context, key string) (func(), error) {
	st := d.sv.settings.Load()
	d.mu.Lock()
	dst := d.dests[key]
	if dst == nil || cap(dst.slots) != st.delivery.DestinationConcurrency {
		dst = &destination{slots: make(chan struct{}, st.delivery.DestinationConcurrency)}
		d.dests[key] = dst
	}
	d.mu.Unlock()
	select {
	case dst.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if rate := st.delivery.DestinationRate; rate > 0 {
		for {
			d.mu.Lock()
			now := d.now()
			keep := dst.starts[:0]
			for _, t := range dst.starts {
				if now.Sub(t) < time.Minute {
					keep = append(keep, t)
				}
			}
			dst.starts = keep
			var wait time.Duration
			if len(dst.starts) >= rate {
				wait = time.Minute - now.Sub(dst.starts[0])
			} else {
				dst.starts = append(dst.starts, now)
			}
			d.mu.Unlock()
			if wait <= 0 {
				break
			}
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				<-dst.slots
				return nil, ctx.Err()
			}
		}
	}
	return func() { <-dst.slots }, nil
}

// finishAttempt records outs for message m, whose records rcpts were read
// for the attempt, in one operation: delivered recipients are retired, failed ones rescheduled or, when permanent or
// out of attempts, retired as failed; the DSNs this causes are queued,
// and addresses that do not exist suppressed (recordOutbound), in the
// same operation.
func (d *deliverer) finishAttempt(m *Message, rcpts []*Recipient, outs []outcome, now time.Time) error {
	st := d.sv.settings.Load()
	ds := st.delivery
	// Which recipients will need a DSN is known from the records read
	// before the attempt (only the deliverer changes attempts, and one
	// attempt per message runs at a time); the operation re-reads them
	// and skips those that changed meanwhile (dropped by an admin, for
	// example).
	bySeq := map[uint32]*Recipient{}
	for _, rc := range rcpts {
		bySeq[rc.Seq] = rc
	}
	var failedRcpts, delayedRcpts, successRcpts []dsnRecipient
	plans := make([]outcome, 0, len(outs))
	for _, o := range outs {
		rc := bySeq[o.Seq]
		if rc == nil || rc.State != RcptQueued {
			continue
		}
		switch {
		case o.Delivered:
			o.final = true
			if rc.Notify&ipc.NotifySuccess != 0 && o.Relayed {
				successRcpts = append(successRcpts, dsnRecipient{rc: rc, out: o})
			}
		case o.NotAttempt:
		default:
			attempts := rc.Attempts + 1
			if o.Permanent || attempts >= ds.MaxAttempts {
				o.final = true
				failedRcpts = append(failedRcpts, dsnRecipient{rc: rc, out: o})
			} else if ds.DelayedDSNAfter > 0 && attempts >= ds.DelayedDSNAfter && !rc.DelayedSent {
				o.delayedDSN = true
				delayedRcpts = append(delayedRcpts, dsnRecipient{rc: rc, out: o, retryUntil: d.retryUntil(rc, now, ds)})
			}
		}
		plans = append(plans, o)
	}
	var dsnMsgs []*newMessage
	if !m.DSN && m.MailFrom != "" {
		for _, g := range []struct {
			action string
			rcpts  []dsnRecipient
			want   uint8
		}{
			{"failed", failedRcpts, ipc.NotifyFailure},
			{"delayed", delayedRcpts, ipc.NotifyDelay},
			{"relayed", successRcpts, ipc.NotifySuccess},
		} {
			var l []dsnRecipient
			for _, r := range g.rcpts {
				if r.rc.Notify == 0 && g.want != ipc.NotifySuccess || r.rc.Notify&g.want != 0 {
					l = append(l, r)
				}
			}
			if len(l) == 0 {
				continue
			}
			nm, err := d.sv.composeDSN(m, g.action, l, now)
			if err != nil {
				d.log.Error("compose DSN; the sender is not told", "msg", m.ID, "action", g.action, "err", err)
				continue
			}
			dsnMsgs = append(dsnMsgs, nm)
		}
	}
	var hooks []*Hook
	if m.Account != "" {
		for _, o := range plans {
			rc := bySeq[o.Seq]
			event := ""
			switch {
			case o.Delivered && o.Relayed:
				event = "relayed"
			case o.Delivered:
				event = "delivered"
			case o.NotAttempt:
			case o.Suppressed:
				event = "suppressed"
			case o.final:
				event = "failed"
			default:
				event = "delayed"
			}
			if event == "" {
				continue
			}
			suppressing := o.final && !o.Delivered && o.Permanent && addressGone(o.Status) && !o.Suppressed && !m.DSN
			if h := newOutgoingHook(st, m, rc, o, event, suppressing, now); h != nil {
				hooks = append(hooks, h)
			}
		}
	}
	err := d.q.recordOutbound(m.ID, plans, now, ds, dsnMsgs, hooks)
	if err != nil {
		for _, nm := range dsnMsgs {
			removeTemp(nm.tmp)
		}
		return err
	}
	for _, o := range plans {
		switch {
		case o.Delivered:
			d.delivered.Add(1)
		case o.final:
			d.failed.Add(1)
		case !o.NotAttempt:
			d.deferred.Add(1)
		}
		d.logOutcome(m, bySeq[o.Seq], o)
	}
	d.dsns.Add(uint64(len(dsnMsgs)))
	return nil
}

// retryUntil is the time of the recipient's last attempt if all fail.
func (d *deliverer) retryUntil(rc *Recipient, now time.Time, ds deliverySettings) time.Time {
	t := now
	for a := rc.Attempts + 1; a < ds.MaxAttempts; a++ {
		t = t.Add(ds.retryDelay(a))
	}
	return t
}

func (d *deliverer) logOutcome(m *Message, rc *Recipient, o outcome) {
	if rc == nil {
		return
	}
	attrs := []any{"msg", m.ID, "rcpt", rc.Address, "host", o.Host}
	if o.TLS != "" {
		attrs = append(attrs, "tls", o.TLS)
	}
	switch {
	case o.Delivered:
		d.log.Info("delivered", append(attrs, "reply", o.Error)...)
	case o.NotAttempt:
		d.log.Info("delivery not attempted; trying again soon", append(attrs, "err", o.Error)...)
	case o.final:
		d.log.Info("delivery failed", append(attrs, "attempts", rc.Attempts+1, "err", o.Error)...)
	default:
		d.log.Info("delivery deferred", append(attrs, "attempts", rc.Attempts+1, "err", o.Error)...)
	}
}

// addressGone says whether an enhanced status code means that the
// address does not exist (RFC 3463 §3.2): bad mailbox (5.1.1), bad domain
// (5.1.2), mailbox moved (5.1.6), or a domain without mail (5.1.10, RFC
// 7505).
func addressGone(status string) bool {
	switch status {
	case "5.1.1", "5.1.2", "5.1.6", "5.1.10":
		return true
	}
	return false
}

// statusOf returns the enhanced status code at the start of an SMTP
// reply text like "550 5.1.1 no such user", or "".
func statusOf(s string) string {
	f := strings.Fields(s)
	if len(f) >= 2 && len(f[1]) >= 5 && f[1][1] == '.' && (f[1][0] == '2' || f[1][0] == '4' || f[1][0] == '5') {
		return f[1]
	}
	return ""
}
