package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"moxd/internal/addrbook"
	"moxd/internal/ipc"
	"moxd/internal/storage/account"
)

// Deliveries (DESIGN.md §4): smtp and queue get a pipe per body, write the
// message into it and then ask for delivery to their recipients. A body
// belongs to the channel that asked for it; it is deleted after its last
// Deliver (Release), when that channel closes, or after bodyLifetime.
// Until then, smtp may ask for a read-only fd of it (BodyFile) to hand to
// queue, which retries the recipients that failed temporarily.
//
// Each recipient address resolves to one or more targets (account and
// mailbox; several for an alias). Deliveries are grouped per account, so
// one account's targets share one group commit, and the recipient's
// result is the worst of its targets' (see combine).

const (
	// bodyLifetime bounds how long an unreleased body is kept.
	bodyLifetime = 10 * time.Minute
	// bodyReadTimeout bounds the transfer of one body through its pipe.
	bodyReadTimeout = 10 * time.Minute
	// deliverTimeout bounds one Deliver when the caller set no deadline.
	deliverTimeout = 2 * time.Minute
)

// pendingBody is a body being received or received.
type pendingBody struct {
	id      uint64
	owner   channelKey
	created time.Time
	done    chan struct{} // closed when body or err is set
	body    *account.Body
	err     error
}

// channelKey identifies one channel from a peer: role and generation.
type channelKey struct {
	role ipc.Role
	gen  uint64
}

// bodies is the registry of pending bodies.
type bodies struct {
	log    *slog.Logger
	tmpDir string
	max    func() int64 // the size limit, which a reload can change
	now    func() time.Time

	nextID atomic.Uint64
	mu     sync.Mutex
	m      map[uint64]*pendingBody
}

func newBodies(log *slog.Logger, tmpDir string, max func() int64, now func() time.Time) *bodies {
	return &bodies{log: log, tmpDir: tmpDir, max: max, now: now, m: map[uint64]*pendingBody{}}
}

// start creates a pipe for a body of size bytes (-1: to end of file) and
// returns the body's id and the pipe's write end for the peer.
func (b *bodies) start(owner channelKey, size int64) (uint64, *os.File, error) {
	max := b.max()
	if size > max {
		return 0, nil, ipc.Errorf(ipc.CodeBadRequest, "message of %d bytes exceeds the limit of %d bytes", size, max)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return 0, nil, fmt.Errorf("create body pipe: %w", err)
	}
	pb := &pendingBody{id: b.nextID.Add(1), owner: owner, created: b.now(), done: make(chan struct{})}
	b.mu.Lock()
	b.m[pb.id] = pb
	b.mu.Unlock()
	go func() {
		defer r.Close()
		ctx, cancel := context.WithTimeout(context.Background(), bodyReadTimeout)
		defer cancel()
		body, err := account.BodyFromReader(ctx, b.tmpDir, r, size, max)
		b.mu.Lock()
		_, live := b.m[pb.id]
		b.mu.Unlock()
		if !live && body != nil {
			// Released while still being received.
			body.Remove()
			body = nil
			err = errors.New("body released")
		}
		pb.body, pb.err = body, err
		close(pb.done)
		if err != nil {
			b.log.Debug("body not received", "body", pb.id, "err", err)
		}
	}()
	return pb.id, w, nil
}

// wait returns the complete body id of owner.
func (b *bodies) wait(ctx context.Context, owner channelKey, id uint64) (*account.Body, error) {
	b.mu.Lock()
	pb := b.m[id]
	b.mu.Unlock()
	if pb == nil || pb.owner != owner {
		return nil, ipc.Errorf(ipc.CodeNotFound, "no body %d for this channel", id)
	}
	select {
	case <-pb.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if pb.err != nil {
		return nil, fmt.Errorf("%w: %v", account.ErrBadBody, pb.err)
	}
	return pb.body, nil
}

// release deletes body id of owner once it is complete.
func (b *bodies) release(owner channelKey, id uint64) {
	b.mu.Lock()
	pb := b.m[id]
	if pb == nil || pb.owner != owner {
		b.mu.Unlock()
		return
	}
	delete(b.m, id)
	b.mu.Unlock()
	go pb.discard()
}

// discard deletes the body's file once it is complete.
func (pb *pendingBody) discard() {
	<-pb.done
	if pb.body != nil {
		pb.body.Remove()
	}
}

// releaseWhere deletes every body match selects: those of a closed
// channel, or those older than bodyLifetime.
func (b *bodies) releaseWhere(match func(pb *pendingBody) bool) {
	b.mu.Lock()
	var l []*pendingBody
	for id, pb := range b.m {
		if match(pb) {
			l = append(l, pb)
			delete(b.m, id)
		}
	}
	b.mu.Unlock()
	for _, pb := range l {
		go pb.discard()
	}
}

func (b *bodies) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.m)
}

// rcptCheck answers an SMTP RCPT question: OK when the address resolves
// and at least one of its accounts can take mail, over quota when all that
// could are over their quota.
func (sv *service) rcptCheck(m *ipc.RcptCheck) *ipc.RcptResult {
	targets, ok := sv.store.Recipient(m.Address)
	if !ok {
		return &ipc.RcptResult{State: ipc.RcptUnknown}
	}
	state := ipc.RcptFailed
	for _, t := range targets {
		a, err := sv.store.Account(t.Account)
		switch {
		case err != nil:
		case sv.store.overQuota(t.Account, a):
			state = ipc.RcptOverQuota
		default:
			return &ipc.RcptResult{State: ipc.RcptOK, Account: t.Account}
		}
	}
	return &ipc.RcptResult{State: state, Account: targets[0].Account}
}

// outcome is the result of one target of a recipient.
type outcome struct {
	state   uint8
	mailbox string
	uid     uint32
	text    string
}

// deliver stores body for every recipient of m, into every target of each:
// one group commit per account, all accounts concurrently. The result has
// one entry per recipient.
func (sv *service) deliver(ctx context.Context, m *ipc.Deliver, body *account.Body) *ipc.DeliverResult {
	res := &ipc.DeliverResult{Results: make([]ipc.RcptDelivered, len(m.Recipients))}
	received := time.Time{}
	if m.Received != 0 {
		received = time.Unix(0, m.Received)
	}
	type ref struct{ rcpt, target int }
	type job struct {
		refs []ref
		ds   []account.Delivery
	}
	jobs := map[string]*job{}
	var order []string
	targets := make([][]addrbook.Target, len(m.Recipients))
	outcomes := make([][]outcome, len(m.Recipients))
	for i, r := range m.Recipients {
		ts, ok := sv.store.Recipient(r.Address)
		if !ok {
			res.Results[i] = ipc.RcptDelivered{State: ipc.RcptUnknown, Text: "no such address"}
			continue
		}
		targets[i] = ts
		outcomes[i] = make([]outcome, len(ts))
		for k, t := range ts {
			j := jobs[t.Account]
			if j == nil {
				j = &job{}
				jobs[t.Account] = j
				order = append(order, t.Account)
			}
			mailbox := t.Mailbox
			if r.Mailbox != "" {
				mailbox = r.Mailbox // The caller's choice beats the destination.
			}
			j.refs = append(j.refs, ref{i, k})
			j.ds = append(j.ds, account.Delivery{
				Body:     body,
				Mailbox:  mailbox,
				Flags:    account.Flags(r.Flags),
				Keywords: r.Keywords,
				Prefix:   m.Prefix,
				Received: received,
			})
		}
	}
	var wg sync.WaitGroup
	for _, name := range order {
		j := jobs[name]
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := sv.store.Account(name)
			if err != nil {
				for _, rf := range j.refs {
					outcomes[rf.rcpt][rf.target] = outcome{state: ipc.RcptFailed, text: err.Error()}
				}
				return
			}
			out := a.Deliver(ctx, j.ds)
			for k, rf := range j.refs {
				d := out[k]
				o := outcome{state: ipc.RcptOK, mailbox: j.ds[k].Mailbox, uid: d.UID}
				if o.mailbox == "" {
					o.mailbox = "INBOX"
				}
				if d.Err != nil {
					o = outcome{state: deliveryState(d.Err), mailbox: o.mailbox, text: d.Err.Error()}
					sv.log.Info("delivery failed", "account", name, "mailbox", o.mailbox, "err", d.Err)
				} else {
					sv.delivered.Add(1)
				}
				outcomes[rf.rcpt][rf.target] = o
			}
		}()
	}
	wg.Wait()
	for i := range m.Recipients {
		if targets[i] != nil {
			res.Results[i] = combine(targets[i], outcomes[i])
		}
	}
	fitResult(res)
	// After the commits, never before: queue acts only on mail that is
	// delivered (incoming.go).
	sv.noteDelivered(m, body, received, targets, outcomes)
	return res
}

// severity orders recipient states from best to worst: a recipient's
// state is the worst of its targets'.
func severity(state uint8) int {
	switch state {
	case ipc.RcptOK:
		return 0
	case ipc.RcptOverQuota:
		return 1
	case ipc.RcptFailed:
		return 2
	case ipc.RcptRefused:
		return 3
	}
	return 4
}

func temporary(state uint8) bool {
	return state == ipc.RcptOverQuota || state == ipc.RcptFailed
}

// combine makes one recipient's result from its targets' outcomes: the
// worst state and its text; account, mailbox and UID of the first target.
// When some targets were delivered and others failed temporarily, Retry
// names the member addresses of those that failed, so the caller retries
// only them. With more than ipc.MaxRetry of them Retry stays empty and the
// caller retries the whole address: a duplicate for some members rather
// than a lost message for others.
func combine(targets []addrbook.Target, outs []outcome) ipc.RcptDelivered {
	first := outs[0]
	r := ipc.RcptDelivered{State: first.state, Account: targets[0].Account, Mailbox: first.mailbox, UID: first.uid, Text: first.text}
	delivered := 0
	var retry []string
	for k, o := range outs {
		if severity(o.state) > severity(r.State) {
			r.State, r.Text = o.state, o.text
		}
		switch {
		case o.state == ipc.RcptOK:
			delivered++
		case temporary(o.state):
			retry = append(retry, targets[k].Address)
		}
	}
	if delivered > 0 && len(retry) <= ipc.MaxRetry {
		r.Retry = retry
	}
	r.Text = ipc.ClipText(r.Text, ipc.MaxReplyText)
	return r
}

// fitResult makes res fit one frame: texts are cut, then Retry lists
// dropped (whole addresses are retried instead), then the mailbox names of
// failures (a caller may name long, invalid ones) cleared, last recipients
// first. Without those, 32 results always fit.
func fitResult(res *ipc.DeliverResult) {
	fits := func() bool {
		_, err := ipc.PayloadSize(res)
		return err == nil
	}
	for i := len(res.Results) - 1; i >= 0 && !fits(); i-- {
		res.Results[i].Text = ipc.ClipText(res.Results[i].Text, 64)
	}
	for i := len(res.Results) - 1; i >= 0 && !fits(); i-- {
		res.Results[i].Retry = nil
	}
	for i := len(res.Results) - 1; i >= 0 && !fits(); i-- {
		if res.Results[i].State != ipc.RcptOK {
			res.Results[i].Mailbox = ""
		}
	}
}

// deliveryState maps a delivery error to the recipient state smtp and
// queue act on.
func deliveryState(err error) uint8 {
	switch {
	case errors.Is(err, account.ErrQuota):
		return ipc.RcptOverQuota
	case errors.Is(err, account.ErrTooLarge), errors.Is(err, account.ErrBadName):
		return ipc.RcptRefused
	}
	return ipc.RcptFailed
}

// serveDeliver handles FamDeliver requests from smtp and queue.
func (sv *service) serveDeliver(ctx context.Context, ch channelKey, req *ipc.Request) (ipc.Message, []*os.File, error) {
	switch m := req.Msg.(type) {
	case *ipc.RcptCheck:
		return sv.rcptCheck(m), nil, nil
	case *ipc.NewBody:
		if err := sv.diskFull(); err != nil {
			return nil, nil, err
		}
		id, w, err := sv.bodies.start(ch, m.Size)
		if err != nil {
			return nil, nil, err
		}
		return &ipc.BodyPipe{Body: id, MaxSize: sv.bodies.max()}, []*os.File{w}, nil
	case *ipc.ReleaseBody:
		sv.bodies.release(ch, m.Body)
		return nil, nil, nil
	case *ipc.BodyFile:
		return sv.bodyFile(ctx, ch, m)
	case *ipc.Deliver:
		ctx, cancel := withTimeout(ctx, deliverTimeout)
		defer cancel()
		// Refused before anything is written; a body from a pipe stays
		// for another Deliver.
		if err := sv.diskFull(); err != nil {
			closeFiles(req.Files)
			return nil, nil, err
		}
		var body *account.Body
		if m.File {
			f := req.Files[0]
			defer f.Close()
			b, err := account.BodyFromFile(ctx, sv.store.tmpDir, f, sv.bodies.max())
			if err != nil {
				return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "message file: %v", err)
			}
			defer b.Remove()
			body = b
		} else {
			b, err := sv.bodies.wait(ctx, ch, m.Body)
			if err != nil {
				var re *ipc.RemoteError
				if errors.As(err, &re) {
					return nil, nil, err
				}
				sv.bodies.release(ch, m.Body)
				return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "message body: %v", err)
			}
			if m.Release {
				defer sv.bodies.release(ch, m.Body)
			}
			body = b
		}
		return sv.deliver(ctx, m, body), nil, nil
	}
	return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "unexpected %T", req.Msg)
}

// bodyFile answers BodyFile: a read-only fd of a complete body of the
// channel, still held because no Deliver released it.
func (sv *service) bodyFile(ctx context.Context, ch channelKey, m *ipc.BodyFile) (ipc.Message, []*os.File, error) {
	ctx, cancel := withTimeout(ctx, deliverTimeout)
	defer cancel()
	b, err := sv.bodies.wait(ctx, ch, m.Body)
	if err != nil {
		var re *ipc.RemoteError
		if errors.As(err, &re) {
			return nil, nil, err
		}
		return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "message body: %v", err)
	}
	f, err := b.Open()
	if err != nil {
		// Released meanwhile (the file is gone), or store's tmp is broken.
		return nil, nil, ipc.Errorf(ipc.CodeNotFound, "body %d: %v", m.Body, err)
	}
	return &ipc.BodyFileReply{Size: b.Size()}, []*os.File{f}, nil
}

// diskFull returns a CodeDiskFull error while the store's file system is
// below the configured reserve (diskspace.go).
func (sv *service) diskFull() error {
	_, reserve := sv.store.limits()
	return sv.disk.check(reserve)
}
