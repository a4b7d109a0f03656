package smtpd

import (
	"context"
	"io"
	"net/netip"
	"os"
	"time"

	"moxd/internal/auth"
	"moxd/internal/mailproto/dmarc"
	"moxd/internal/queue/queueclient"
	"moxd/internal/storage/storeclient"
)

// What smtpd needs from the other roles, as interfaces: the role wires
// them to storeclient and queueclient (wire.go), tests to fakes.

// mailStore is moxd-store's delivery service (smtp instance).
type mailStore interface {
	// CheckRcpt asks whether addr ("localpart@domain") is delivered here.
	CheckRcpt(ctx context.Context, addr string) (storeclient.RcptState, string, error)
	// NewBody returns a body to write a message into.
	NewBody(ctx context.Context) (storeBody, error)
}

// storeBody is one message on its way into store.
type storeBody interface {
	io.Writer
	// CloseWrite ends the body: everything was written.
	CloseWrite() error
	// Deliver stores the body for rcpts, answering after store's commit
	// is durable; the body stays available for File.
	Deliver(ctx context.Context, env storeclient.Envelope, rcpts []storeclient.Recipient) ([]storeclient.Result, error)
	// File returns a read-only file with store's copy of the body, for a
	// local retry through queue.
	File(ctx context.Context) (*os.File, error)
	// Release drops the body at store. Safe to call more than once.
	Release()
}

// authenticator is moxd-store's SASL service (submission instance).
type authenticator interface {
	Start(ctx context.Context, mech string, ip netip.Addr, tls bool, cbs []auth.ChannelBinding, initial []byte, hasInitial bool) (storeclient.Step, error)
	Continue(ctx context.Context, ex uint64, resp []byte) (storeclient.Step, error)
	Abort(ctx context.Context, ex uint64) error
	RevokeToken(tok auth.Token) error
}

// queueService is what smtpd asks of moxd-queue.
type queueService interface {
	// LocalRetry hands queue recipients whose local delivery failed
	// temporarily, with store's copy of the body (smtp instance).
	LocalRetry(ctx context.Context, body *os.File, mailFrom string, rcpts []string, prefix []byte, received time.Time) error
	// DMARCEvaluation records an evaluation for aggregate reports, best
	// effort (smtp instance).
	DMARCEvaluation(ev dmarc.Evaluation)
	// NewSpool returns a spool to write a submitted message into
	// (submission instance).
	NewSpool(ctx context.Context) (spool, error)
}

// spool is one submitted message on its way into queue.
type spool interface {
	io.Writer
	CloseWrite() error
	// Submit queues the spooled message; queue checks the token and the
	// sender and applies the account's limits.
	Submit(ctx context.Context, env queueclient.Envelope, rcpts []queueclient.Recipient) (uint64, error)
	Release()
}
