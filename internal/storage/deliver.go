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

	"moxd/internal/ipc"
	"moxd/internal/storage/account"
)

// Deliveries (DESIGN.md §4): smtp and queue get a pipe per body, write the
// message into it and then ask for delivery to their recipients. A body
// belongs to the channel that asked for it; it is deleted after its last
// Deliver (Release), when that channel closes, or after bodyLifetime.

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
	max    int64
	now    func() time.Time

	nextID atomic.Uint64
	mu     sync.Mutex
	m      map[uint64]*pendingBody
}

func newBodies(log *slog.Logger, tmpDir string, max int64, now func() time.Time) *bodies {
	return &bodies{log: log, tmpDir: tmpDir, max: max, now: now, m: map[uint64]*pendingBody{}}
}

// start creates a pipe for a body of size bytes (-1: to end of file) and
// returns the body's id and the pipe's write end for the peer.
func (b *bodies) start(owner channelKey, size int64) (uint64, *os.File, error) {
	if size > b.max {
		return 0, nil, ipc.Errorf(ipc.CodeBadRequest, "message of %d bytes exceeds the limit of %d bytes", size, b.max)
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
		body, err := account.BodyFromReader(ctx, b.tmpDir, r, size, b.max)
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

// rcptCheck answers an SMTP RCPT question.
func (sv *service) rcptCheck(m *ipc.RcptCheck) *ipc.RcptResult {
	name, ok := sv.store.Resolve(m.Address)
	if !ok || m.Address == "" {
		return &ipc.RcptResult{State: ipc.RcptUnknown}
	}
	a, err := sv.store.Account(name)
	if err != nil {
		return &ipc.RcptResult{State: ipc.RcptFailed, Account: name}
	}
	if sv.store.overQuota(name, a) {
		return &ipc.RcptResult{State: ipc.RcptOverQuota, Account: name}
	}
	return &ipc.RcptResult{State: ipc.RcptOK, Account: name}
}

// deliver stores body for every recipient of m: one account at a time per
// account, all accounts concurrently, each account's deliveries in one
// group commit. The result has one entry per recipient.
func (sv *service) deliver(ctx context.Context, m *ipc.Deliver, body *account.Body) *ipc.DeliverResult {
	res := &ipc.DeliverResult{Results: make([]ipc.RcptDelivered, len(m.Recipients))}
	received := time.Time{}
	if m.Received != 0 {
		received = time.Unix(0, m.Received)
	}
	type job struct {
		idx []int
		ds  []account.Delivery
	}
	jobs := map[string]*job{}
	var order []string
	for i, r := range m.Recipients {
		name, ok := sv.store.Resolve(r.Address)
		if !ok || r.Address == "" {
			res.Results[i] = ipc.RcptDelivered{State: ipc.RcptUnknown, Text: "no such address"}
			continue
		}
		j := jobs[name]
		if j == nil {
			j = &job{}
			jobs[name] = j
			order = append(order, name)
		}
		j.idx = append(j.idx, i)
		j.ds = append(j.ds, account.Delivery{
			Body:     body,
			Mailbox:  r.Mailbox,
			Flags:    account.Flags(r.Flags),
			Keywords: r.Keywords,
			Prefix:   m.Prefix,
			Received: received,
		})
	}
	var wg sync.WaitGroup
	for _, name := range order {
		j := jobs[name]
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := sv.store.Account(name)
			if err != nil {
				for _, i := range j.idx {
					res.Results[i] = ipc.RcptDelivered{State: ipc.RcptFailed, Account: name, Text: err.Error()}
				}
				return
			}
			out := a.Deliver(ctx, j.ds)
			for k, i := range j.idx {
				d := out[k]
				r := ipc.RcptDelivered{State: ipc.RcptOK, Account: name, Mailbox: j.ds[k].Mailbox, UID: d.UID}
				if r.Mailbox == "" {
					r.Mailbox = "INBOX"
				}
				if d.Err != nil {
					r.State, r.Text = deliveryState(d.Err), d.Err.Error()
					r.UID = 0
					sv.log.Info("delivery failed", "account", name, "err", d.Err)
				} else {
					sv.delivered.Add(1)
				}
				res.Results[i] = r
			}
		}()
	}
	wg.Wait()
	return res
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
		id, w, err := sv.bodies.start(ch, m.Size)
		if err != nil {
			return nil, nil, err
		}
		return &ipc.BodyPipe{Body: id, MaxSize: sv.bodies.max}, []*os.File{w}, nil
	case *ipc.ReleaseBody:
		sv.bodies.release(ch, m.Body)
		return nil, nil, nil
	case *ipc.Deliver:
		ctx, cancel := withTimeout(ctx, deliverTimeout)
		defer cancel()
		var body *account.Body
		if m.File {
			f := req.Files[0]
			defer f.Close()
			b, err := account.BodyFromFile(ctx, sv.store.tmpDir, f, sv.bodies.max)
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
