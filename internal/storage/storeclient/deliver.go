package storeclient

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"moxd/internal/ipc"
)

// Errors of delivery and session calls, compared with errors.Is. Each
// wraps store's explanation.
var (
	// ErrNotFound: the address, mailbox, message or session does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: the mailbox to create exists (IMAP [ALREADYEXISTS]).
	ErrExists = errors.New("exists already")
	// ErrOverQuota: the account is over its quota (SMTP 452 4.2.2, IMAP
	// [OVERQUOTA]).
	ErrOverQuota = errors.New("account over quota")
	// ErrStale: the mailbox was recreated (UIDVALIDITY changed): re-select.
	ErrStale = errors.New("mailbox changed identity")
	// ErrRefused: store refused the request's content: a bad mailbox name,
	// a body that is not a regular file or is too large.
	ErrRefused = errors.New("refused by store")
	// ErrDiskFull: store's file system is below its free-space reserve
	// (store.disk_reserve) and nothing was written; answer SMTP 452 4.3.1
	// (RFC 3463: mail system full) so the sender tries again later.
	ErrDiskFull = errors.New("store's disk is full")
)

// mapStoreError turns a call's error into one of the package's errors.
func mapStoreError(op string, err error) error {
	var re *ipc.RemoteError
	if !errors.As(err, &re) {
		return fmt.Errorf("store %s: %w: %v", op, ErrUnavailable, err)
	}
	var kind error
	switch re.Code {
	case ipc.CodeNotFound:
		kind = ErrNotFound
	case ipc.CodeExists:
		kind = ErrExists
	case ipc.CodeOverQuota:
		kind = ErrOverQuota
	case ipc.CodeStale:
		kind = ErrStale
	case ipc.CodeBadRequest:
		kind = ErrRefused
	case ipc.CodeDenied:
		kind = ErrAuthFailed
	case ipc.CodeDiskFull:
		kind = ErrDiskFull
	default:
		kind = ErrUnavailable
	}
	return fmt.Errorf("store %s: %w (%s)", op, kind, re.Message)
}

// call sends m on the current channel to store.
func call(ctx context.Context, peer func() (*ipc.Conn, error), op string, m ipc.Message, files ...*os.File) (*ipc.Reply, error) {
	c, err := peer()
	if err != nil {
		return nil, fmt.Errorf("store %s: %w: %v", op, ErrUnavailable, err)
	}
	rep, err := c.Call(ctx, m, files...)
	if err != nil {
		return nil, mapStoreError(op, err)
	}
	return rep, nil
}

// Deliverer delivers messages into accounts (smtp and queue). It is safe
// for concurrent use.
type Deliverer struct {
	peer func() (*ipc.Conn, error)
}

// NewDeliverer returns a Deliverer reaching store through peer.
func NewDeliverer(peer func() (*ipc.Conn, error)) *Deliverer {
	return &Deliverer{peer: peer}
}

// RcptState is store's answer for one recipient.
type RcptState uint8

// Recipient states; see the ipc.Rcpt* constants.
const (
	RcptOK        = RcptState(ipc.RcptOK)
	RcptUnknown   = RcptState(ipc.RcptUnknown)
	RcptOverQuota = RcptState(ipc.RcptOverQuota)
	RcptFailed    = RcptState(ipc.RcptFailed)
	RcptRefused   = RcptState(ipc.RcptRefused)
)

// Temporary reports whether a later attempt may succeed.
func (s RcptState) Temporary() bool { return s == RcptOverQuota || s == RcptFailed }

// CheckRcpt asks whether addr is delivered here, and to which account.
func (d *Deliverer) CheckRcpt(ctx context.Context, addr string) (RcptState, string, error) {
	rep, err := call(ctx, d.peer, "recipient check", &ipc.RcptCheck{Address: addr})
	if err != nil {
		return 0, "", err
	}
	r := rep.Msg.(*ipc.RcptResult)
	return RcptState(r.State), r.Account, nil
}

// Body is a message body being written into store's pipe. Write the
// message, Close, then Deliver; or Release when the transaction fails.
type Body struct {
	*os.File
	ID      uint64
	MaxSize int64
	d       *Deliverer
}

// NewBody asks store for a pipe for a body of size bytes (-1 when not
// known in advance).
func (d *Deliverer) NewBody(ctx context.Context, size int64) (*Body, error) {
	rep, err := call(ctx, d.peer, "new body", &ipc.NewBody{Size: size})
	if err != nil {
		return nil, err
	}
	m := rep.Msg.(*ipc.BodyPipe)
	return &Body{File: rep.Files[0], ID: m.Body, MaxSize: m.MaxSize, d: d}, nil
}

// Release tells store the body will not be delivered (again).
func (b *Body) Release() error {
	b.File.Close()
	return b.d.release(b.ID)
}

// release drops body id in store.
func (d *Deliverer) release(id uint64) error {
	c, err := d.peer()
	if err != nil {
		return nil // store restarted: the body is gone with its channel
	}
	return c.Notify(&ipc.ReleaseBody{Body: id})
}

// Recipient is one recipient of a delivery.
type Recipient struct {
	Address  string
	Mailbox  string // "" for the account's default
	Flags    uint8  // ipc.Flag* bits
	Keywords []string
}

// Result is the outcome for one recipient. An address that is an alias
// delivers to several accounts: State is then the worst of them, and
// Account, Mailbox and UID are those of the first.
type Result struct {
	State   RcptState
	Account string
	Mailbox string
	UID     uint32
	Text    string
	// Retry: for an alias delivered to some members and failed
	// temporarily for others, the member addresses to retry (instead of
	// the alias, which would deliver twice to the others). Empty
	// otherwise: then a temporary State means retry Address itself.
	Retry []string
}

// Envelope is what a delivery carries besides body and recipients.
type Envelope struct {
	MailFrom string
	Received time.Time
	// Prefix holds the header lines added at delivery (Received,
	// Authentication-Results), CRLF-terminated.
	Prefix []byte
}

// Deliver stores body (written; Deliver closes the pipe) for rcpts and
// releases it. It returns one result per recipient, after store's commit is
// durable. Recipients are sent in groups of ipc.MaxRecipients. On an error
// the body is released too; ErrDiskFull means nothing was delivered.
func (d *Deliverer) Deliver(ctx context.Context, body *Body, env Envelope, rcpts []Recipient) ([]Result, error) {
	body.File.Close()
	res, err := d.deliver(ctx, body.ID, nil, env, rcpts, true)
	if err != nil {
		d.release(body.ID)
	}
	return res, err
}

// DeliverKeep is Deliver that keeps store's copy of the body: when some
// recipients failed temporarily, BodyFile returns a read-only fd of it to
// hand to queue for a local retry. The caller must Release the body
// afterwards, also when DeliverKeep fails; store drops it anyway when the
// channel closes or after 10 minutes.
func (d *Deliverer) DeliverKeep(ctx context.Context, body *Body, env Envelope, rcpts []Recipient) ([]Result, error) {
	body.File.Close()
	return d.deliver(ctx, body.ID, nil, env, rcpts, false)
}

// BodyFile returns a read-only fd of store's copy of body, which a
// DeliverKeep delivered (or which is complete), and its size: the message
// as written into the pipe, without Envelope.Prefix. The caller closes the
// file; it is store's immutable copy, valid after Release too.
func (d *Deliverer) BodyFile(ctx context.Context, body *Body) (*os.File, int64, error) {
	rep, err := call(ctx, d.peer, "body file", &ipc.BodyFile{Body: body.ID})
	if err != nil {
		return nil, 0, err
	}
	return rep.Files[0], rep.Msg.(*ipc.BodyFileReply).Size, nil
}

// DeliverFile stores the message in f, a regular file, for rcpts (queue's
// local deliveries).
func (d *Deliverer) DeliverFile(ctx context.Context, f *os.File, env Envelope, rcpts []Recipient) ([]Result, error) {
	return d.deliver(ctx, 0, f, env, rcpts, false)
}

// deliver sends rcpts in groups; with release, the last group releases the
// body.
func (d *Deliverer) deliver(ctx context.Context, id uint64, f *os.File, env Envelope, rcpts []Recipient, release bool) ([]Result, error) {
	var received int64
	if !env.Received.IsZero() {
		received = env.Received.UnixNano()
	}
	results := make([]Result, 0, len(rcpts))
	for start := 0; start < len(rcpts) || start == 0; start += ipc.MaxRecipients {
		end := min(len(rcpts), start+ipc.MaxRecipients)
		m := &ipc.Deliver{
			Body:     id,
			File:     f != nil,
			Release:  release && end == len(rcpts),
			MailFrom: env.MailFrom,
			Received: received,
			Prefix:   env.Prefix,
		}
		for _, r := range rcpts[start:end] {
			m.Recipients = append(m.Recipients, ipc.DeliverRcpt(r))
		}
		var files []*os.File
		if f != nil {
			files = []*os.File{f}
		}
		rep, err := call(ctx, d.peer, "deliver", m, files...)
		if err != nil {
			return results, err
		}
		for _, r := range rep.Msg.(*ipc.DeliverResult).Results {
			results = append(results, Result{State: RcptState(r.State), Account: r.Account, Mailbox: r.Mailbox, UID: r.UID, Text: r.Text, Retry: r.Retry})
		}
		if len(rcpts) == 0 {
			break
		}
	}
	return results, nil
}
