package queue

// Local retries (DESIGN.md §4). smtp hands queue the recipients whose
// delivery into store failed temporarily while others were committed,
// with store's read-only copy of the body. Queue copies it into a queue
// file and delivers it through store later, with backoff; such messages
// are local-only and never leave the host.
//
// The retrier goroutine takes due local-only messages from the due index
// ('l' entries only: nothing here looks at submitted messages, whose
// outbound delivery comes with the next issue) and hands each message's
// queued recipients to store in one DeliverFile. A failure because the
// channel to store went down (store restarting) is not an attempt: the
// retrier waits for the new channel and tries again. Recipients store
// refuses permanently, or that used up their attempts, are marked failed,
// then retired with a "failed" DSN to the sender (bounceLocal).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"moxd/internal/ipc"
	"moxd/internal/storage/storeclient"
)

// DefaultRetryDelays is the local retry schedule: the delay before each
// attempt, the first one minute after smtp's failed attempt, doubling; a
// recipient has as many attempts as there are delays.
func DefaultRetryDelays() []time.Duration {
	d := make([]time.Duration, 8)
	for i := range d {
		d[i] = time.Minute << i
	}
	return d
}

const (
	// localDeliverTimeout bounds one delivery call to store.
	localDeliverTimeout = 2 * time.Minute
	// storeDownWait is how long the retrier waits for a new channel to
	// store before it looks again.
	storeDownWait = 5 * time.Second
	// dueBatch bounds the messages taken from the due index at once.
	dueBatch = 100
)

// retrier delivers due local-only messages through store.
type retrier struct {
	sv    *service
	log   *slog.Logger
	q     *Queue
	now   func() time.Time
	store func() (*ipc.Conn, error)
	// storeChanged returns a channel closed when the channel to store is
	// replaced; nil: poll every storeDownWait.
	storeChanged func() <-chan struct{}
	// delays is the retry schedule (DefaultRetryDelays; shorter in
	// tests).
	delays []time.Duration

	delivered atomic.Uint64
	failed    atomic.Uint64
}

func newRetrier(sv *service) *retrier {
	return &retrier{
		sv:     sv,
		log:    sv.log,
		q:      sv.q,
		now:    sv.now,
		store:  func() (*ipc.Conn, error) { return sv.storePeer() },
		delays: DefaultRetryDelays(),
	}
}

// localRetry accepts a LocalRetry from smtp: it copies the file into a
// queue file and records a local-only message whose first attempt is
// after the first retry delay.
func (sv *service) localRetry(ctx context.Context, m *ipc.LocalRetry, f *os.File) (ipc.Message, []*os.File, error) {
	if len(m.Recipients) == 0 {
		return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "local retry without recipients")
	}
	rcpts := make([]Recipient, len(m.Recipients))
	for i, a := range m.Recipients {
		if _, _, err := parseAddress(a); err != nil {
			return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "recipient %q: %v", ipc.ClipText(a, 200), err)
		}
		rcpts[i] = Recipient{Address: a}
	}
	if m.MailFrom != "" {
		if _, _, err := parseAddress(m.MailFrom); err != nil {
			return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "MAIL FROM %q: %v", ipc.ClipText(m.MailFrom, 200), err)
		}
	}
	if err := checkPrefix(m.Prefix, nil); err != nil {
		return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "%v", err)
	}
	ctx, cancel := withTimeout(ctx, spoolReadTimeout)
	defer cancel()
	tmp, size, err := copyRegularFile(ctx, sv.q.tmpDir, m.Prefix, f, sv.settings.Load().maxSize)
	if errors.Is(err, errBadMessage) {
		return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "message file: %v", err)
	} else if err != nil {
		return nil, nil, remoteError("copy message file", err)
	}
	msg := Message{MailFrom: m.MailFrom, LocalOnly: true}
	if m.Received > 0 {
		msg.Received = time.Unix(0, m.Received)
	}
	id, err := sv.q.addMessage(&newMessage{
		msg:   msg,
		rcpts: rcpts,
		tmp:   tmp,
		size:  size,
		first: sv.now().Add(sv.retrier.delays[0]),
	})
	if err != nil {
		os.Remove(tmp)
		sv.log.Error("queue local retry", "err", err)
		return nil, nil, remoteError("queue local retry", err)
	}
	sv.retries.Add(1)
	sv.log.Info("local retry queued", "msg", id, "mailfrom", m.MailFrom, "recipients", len(rcpts), "size", size)
	return &ipc.Ack{}, nil, nil
}

// run delivers due local-only messages until ctx ends.
func (r *retrier) run(ctx context.Context) {
	// Recipients that failed for good before a crash, and before their
	// DSN was queued, get it now.
	if ids, err := r.q.failedLocal(); err != nil {
		r.log.Error("read failed local recipients", "err", err)
	} else {
		for _, id := range ids {
			if err := r.sv.bounceLocal(id); err != nil {
				r.log.Error("retire failed local recipients", "msg", id, "err", err)
			}
		}
	}
	// Messages whose records could not be read or updated are left alone
	// for a minute, so a broken record cannot keep the loop spinning.
	skip := map[uint64]time.Time{}
	for {
		ids, next, err := r.q.dueMessages(dueLocal, r.now(), dueBatch)
		if err != nil {
			r.log.Error("read due local deliveries", "err", err)
			next = r.now().Add(time.Minute)
		}
		storeDown, moved := false, false
	attempts:
		for _, id := range ids {
			if ctx.Err() != nil {
				return
			}
			if until, ok := skip[id]; ok && r.now().Before(until) {
				continue
			}
			switch r.attempt(ctx, id) {
			case attemptStoreDown:
				storeDown = true
				break attempts
			case attemptStuck:
				skip[id] = r.now().Add(time.Minute)
			case attemptMoved:
				moved = true
			}
		}
		for id, until := range skip {
			if !r.now().Before(until) {
				delete(skip, id)
			} else if next.IsZero() || until.Before(next) {
				next = until
			}
		}
		var wait <-chan time.Time
		var changed <-chan struct{}
		switch {
		case storeDown:
			wait = time.After(storeDownWait)
			if r.storeChanged != nil {
				changed = r.storeChanged()
			}
		case moved:
			// Attempts moved their due entries: look again.
			continue
		case !next.IsZero():
			wait = time.After(max(next.Sub(r.now()), 0))
		}
		select {
		case <-ctx.Done():
			return
		case <-wait:
		case <-changed:
		case <-r.q.changed:
		}
	}
}

// attemptResult says what an attempt did to the message's due entry.
type attemptResult int

const (
	attemptMoved     attemptResult = iota // recorded: the due entry moved or went
	attemptStoreDown                      // store not reachable: not an attempt
	attemptStuck                          // records could not be read or updated
)

// attempt delivers message id to its queued recipients and records the
// outcome.
func (r *retrier) attempt(ctx context.Context, id uint64) attemptResult {
	m, rcpts, err := r.q.loadMessage(id)
	if err != nil {
		r.log.Error("read queued message", "msg", id, "err", err)
		return attemptStuck
	}
	var pending []*Recipient
	for _, rc := range rcpts {
		if rc.State == RcptQueued && !rc.Held {
			pending = append(pending, rc)
		}
	}
	now := r.now()
	if len(pending) == 0 {
		// Nothing to do: let recordAttempt drop the due entry.
		if _, err := r.q.recordAttempt(id, nil, now, r.delays); err != nil {
			r.log.Error("update queued message", "msg", id, "err", err)
			return attemptStuck
		}
		return attemptMoved
	}
	conn, err := r.store()
	if err != nil {
		r.log.Debug("store not reachable for local delivery; waiting", "msg", id, "err", err)
		return attemptStoreDown
	}
	outs, err := r.deliver(ctx, conn, m, pending)
	storeDown := false
	if err != nil {
		// Results that came back before the error are real (recipients
		// are sent in groups); the others failed in this attempt, unless
		// store went away or we are stopping.
		select {
		case <-conn.Done():
			r.log.Info("store went away during local delivery; trying again when it is back", "msg", id, "err", err)
			storeDown = true
		default:
		}
		if !storeDown && ctx.Err() == nil {
			permanent := errors.Is(err, storeclient.ErrRefused)
			for _, rc := range pending[len(outs):] {
				outs = append(outs, outcome{Seq: rc.Seq, Permanent: permanent, Error: err.Error()})
			}
		}
		if len(outs) == 0 {
			if storeDown {
				return attemptStoreDown
			}
			return attemptStuck // stopping
		}
	}
	failed, err := r.q.recordAttempt(id, outs, now, r.delays)
	if err != nil {
		r.log.Error("record local delivery", "msg", id, "err", err)
		return attemptStuck
	}
	for _, o := range outs {
		if o.Delivered {
			r.delivered.Add(1)
		}
	}
	for _, rc := range failed {
		r.failed.Add(1)
		r.log.Info("local delivery failed for good; the sender gets a DSN", "msg", id, "rcpt", rc.Address, "attempts", rc.Attempts, "err", rc.LastError)
	}
	if len(failed) > 0 {
		if err := r.sv.bounceLocal(id); err != nil {
			r.log.Error("retire failed local recipients", "msg", id, "err", err)
		}
	}
	if storeDown {
		return attemptStoreDown
	}
	return attemptMoved
}

// deliver hands the message file to store for rcpts and maps the results
// to outcomes.
func (r *retrier) deliver(ctx context.Context, conn *ipc.Conn, m *Message, rcpts []*Recipient) ([]outcome, error) {
	f, err := os.Open(r.q.filePath(m.FileID))
	if err != nil {
		return nil, fmt.Errorf("open queue file: %w", err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(ctx, localDeliverTimeout)
	defer cancel()
	d := storeclient.NewDeliverer(func() (*ipc.Conn, error) { return conn, nil })
	list := make([]storeclient.Recipient, len(rcpts))
	for i, rc := range rcpts {
		list[i] = storeclient.Recipient{Address: rc.Address}
	}
	results, err := d.DeliverFile(ctx, f, storeclient.Envelope{MailFrom: m.MailFrom, Received: m.Received}, list)
	outs := make([]outcome, 0, len(rcpts))
	for i, res := range results {
		if i >= len(rcpts) {
			break
		}
		o := outcome{Seq: rcpts[i].Seq}
		switch {
		case res.State == storeclient.RcptOK:
			o.Delivered = true
		case res.State.Temporary():
			o.Error = res.Text
		default:
			o.Permanent, o.Error = true, res.Text
		}
		if o.Error == "" && !o.Delivered {
			o.Error = fmt.Sprintf("store answered state %d", res.State)
		}
		outs = append(outs, o)
	}
	if err != nil {
		return outs, err
	}
	if len(outs) != len(rcpts) {
		return outs, fmt.Errorf("store answered %d results for %d recipients", len(outs), len(rcpts))
	}
	return outs, nil
}

// failedLocal returns the local-only messages with failed recipients.
func (q *Queue) failedLocal() ([]uint64, error) {
	var ids []uint64
	err := q.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketRcpts)).ForEach(func(k, v []byte) error {
			rc, err := unmarshalRecipient(k, v)
			if err != nil || rc.State != RcptFailed {
				return nil
			}
			if len(ids) == 0 || ids[len(ids)-1] != rc.Msg {
				ids = append(ids, rc.Msg)
			}
			return nil
		})
	})
	return ids, err
}

// bounceLocal retires the failed recipients of local-only message id and
// queues the "failed" DSN for them (none for the null sender or when
// they asked for none), in one operation.
func (sv *service) bounceLocal(id uint64) error {
	m, rcpts, err := sv.q.loadMessage(id)
	if err != nil {
		return err
	}
	now := sv.now()
	var notify []dsnRecipient
	var seqs []uint32
	for _, rc := range rcpts {
		if rc.State != RcptFailed {
			continue
		}
		seqs = append(seqs, rc.Seq)
		if rc.Notify == 0 || rc.Notify&ipc.NotifyFailure != 0 {
			notify = append(notify, dsnRecipient{rc: rc, out: outcome{Seq: rc.Seq, Permanent: true, Host: "store", Status: statusOf(rc.LastError), Error: rc.LastError}})
		}
	}
	if len(seqs) == 0 {
		return nil
	}
	var nm *newMessage
	if m.MailFrom != "" && !m.DSN && len(notify) > 0 {
		if nm, err = sv.composeDSN(m, "failed", notify, now); err != nil {
			sv.log.Error("compose DSN for failed local recipients; the sender is not told", "msg", id, "err", err)
		}
	}
	inserted := false
	err = sv.q.do(func(w *wtx) error {
		inserted = false
		m, rcpts, err := readMessage(w.tx, id)
		if err != nil {
			return err
		}
		rb := w.tx.Bucket([]byte(bucketRcpts))
		n := 0
		for _, rc := range rcpts {
			if rc.State != RcptFailed || !slices.Contains(seqs, rc.Seq) {
				continue
			}
			if err := w.retire(m, rc, now, false, "local"); err != nil {
				return err
			}
			if err := rb.Delete(rcptKey(id, rc.Seq)); err != nil {
				return err
			}
			n++
		}
		w.after = append(w.after, func() { sv.q.recipients.Add(-int64(n)) })
		if _, err := w.removeIfEmpty(m); err != nil {
			return err
		}
		if nm != nil && n > 0 {
			if _, err := w.insertMessage(nm, now); err != nil {
				return fmt.Errorf("queue DSN: %w", err)
			}
			inserted = true
		}
		return nil
	})
	if nm != nil && (err != nil || !inserted) {
		removeTemp(nm.tmp)
	}
	return err
}
