// Package queueclient is what the submitting roles (submission, web)
// import to hand messages to moxd-queue over their IPC channel to it. It
// runs in the caller's process and holds no state of queue's.
//
// A submission is: NewSpool, write the message into the returned pipe,
// then Submit with the envelope and the session token store issued at
// login. Submit answers once the message is durable in the queue.
//
// Errors are *Error values whose text is queue's explanation, meant for
// the SMTP client as is; their Kind (ErrDenied, ErrLimit, ErrBadRequest,
// ErrUnavailable) chooses the reply code and matches with errors.Is.
package queueclient

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"moxd/internal/auth"
	"moxd/internal/ipc"
)

// Kinds of errors.
var (
	// ErrDenied: the session is not valid, or the account may not use the
	// sender (SMTP 550 5.7.1, or 535 for the session).
	ErrDenied = errors.New("denied")
	// ErrLimit: the account reached a daily sending limit; temporary
	// (SMTP 451 4.7.0): older messages leave the 24-hour window.
	ErrLimit = errors.New("limit reached")
	// ErrBadRequest: the message or envelope is malformed (SMTP 554
	// 5.6.0).
	ErrBadRequest = errors.New("message refused")
	// ErrUnavailable: queue cannot take the message now (SMTP 451 4.3.0).
	ErrUnavailable = errors.New("queue unavailable, try again later")
)

// Error is a refused or failed call.
type Error struct {
	Kind error
	Text string // queue's explanation, for the client
}

func (e *Error) Error() string { return e.Text }
func (e *Error) Unwrap() error { return e.Kind }

func mapError(op string, err error) error {
	var re *ipc.RemoteError
	if !errors.As(err, &re) {
		return &Error{ErrUnavailable, fmt.Sprintf("queue %s: %v", op, err)}
	}
	kind := ErrUnavailable
	switch re.Code {
	case ipc.CodeDenied:
		kind = ErrDenied
	case ipc.CodeLimit:
		kind = ErrLimit
	case ipc.CodeBadRequest, ipc.CodeNotFound:
		kind = ErrBadRequest
	}
	return &Error{kind, re.Message}
}

// Submitter submits messages. It is safe for concurrent use.
type Submitter struct {
	peer func() (*ipc.Conn, error)
}

// NewSubmitter returns a Submitter reaching queue through peer, which
// returns the current channel to queue (worker.Peer(ipc.RoleQueue)).
func NewSubmitter(peer func() (*ipc.Conn, error)) *Submitter {
	return &Submitter{peer: peer}
}

func (s *Submitter) call(ctx context.Context, op string, m ipc.Message) (*ipc.Reply, error) {
	c, err := s.peer()
	if err != nil {
		return nil, &Error{ErrUnavailable, fmt.Sprintf("queue %s: %v", op, err)}
	}
	rep, err := c.Call(ctx, m)
	if err != nil {
		return nil, mapError(op, err)
	}
	return rep, nil
}

// Spool is a message being written into queue's pipe: write the message,
// then Submit (which closes the file).
type Spool struct {
	*os.File
	ID      uint64
	MaxSize int64 // queue's limit; a larger message is refused
}

// NewSpool asks queue for a pipe for a message of size bytes (-1 when not
// known in advance).
func (s *Submitter) NewSpool(ctx context.Context, size int64) (*Spool, error) {
	rep, err := s.call(ctx, "new spool", &ipc.NewSpool{Size: size})
	if err != nil {
		return nil, err
	}
	m := rep.Msg.(*ipc.SpoolPipe)
	return &Spool{File: rep.Files[0], ID: m.Spool, MaxSize: m.MaxSize}, nil
}

// Recipient is one recipient with its DSN parameters.
type Recipient = ipc.SubmitRcpt

// Envelope is what a submission carries besides message and recipients.
type Envelope struct {
	Token      auth.Token // the session's, from login
	MailFrom   string
	RequireTLS bool
	SMTPUTF8   bool
	EightBit   bool  // BODY=8BITMIME
	Ret        uint8 // ipc.RetFull, ipc.RetHdrs, 0
	EnvID      string
	// Prefix holds the header lines to put before the message
	// (Received), CRLF-terminated.
	Prefix        []byte
	FutureRelease time.Time // zero: now
}

// Submit closes sp and queues its message for rcpts. It returns the queue
// message id once the message is durable. Recipients that do not fit the
// Submit frame go ahead in AddRecipients.
func (s *Submitter) Submit(ctx context.Context, sp *Spool, env Envelope, rcpts []Recipient) (uint64, error) {
	sp.File.Close()
	m := &ipc.Submit{
		Token:      env.Token,
		Spool:      sp.ID,
		MailFrom:   env.MailFrom,
		RequireTLS: env.RequireTLS,
		SMTPUTF8:   env.SMTPUTF8,
		EightBit:   env.EightBit,
		Ret:        env.Ret,
		EnvID:      env.EnvID,
		Prefix:     env.Prefix,
	}
	if !env.FutureRelease.IsZero() {
		m.FutureRelease = env.FutureRelease.UnixNano()
	}
	// The last recipients that fit go into Submit, the others before it.
	room := ipc.MaxPayload - m.WireSize()
	cut := len(rcpts)
	for cut > 0 && len(rcpts)-cut < ipc.MaxSubmitRcpts && rcpts[cut-1].WireSize() <= room {
		room -= rcpts[cut-1].WireSize()
		cut--
	}
	m.Recipients = rcpts[cut:]
	for start := 0; start < cut; {
		add := &ipc.AddRecipients{Spool: sp.ID}
		room := ipc.MaxPayload - 8 - 2
		for start < cut && len(add.Recipients) < ipc.MaxSubmitRcpts && rcpts[start].WireSize() <= room {
			room -= rcpts[start].WireSize()
			add.Recipients = append(add.Recipients, rcpts[start])
			start++
		}
		if len(add.Recipients) == 0 {
			return 0, &Error{ErrBadRequest, fmt.Sprintf("recipient %q does not fit a frame", rcpts[start].Address)}
		}
		if _, err := s.call(ctx, "add recipients", add); err != nil {
			return 0, err
		}
	}
	rep, err := s.call(ctx, "submit", m)
	if err != nil {
		return 0, err
	}
	return rep.Msg.(*ipc.Submitted).Message, nil
}
