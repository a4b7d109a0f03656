package account

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// AppendAll adds messages to the existing mailbox in one transaction of
// the group commit: all of them or none (RFC 3502 MULTIAPPEND). The
// Mailbox and Prefix of ds are ignored. ErrNotFound if the mailbox does
// not exist (for TRYCREATE), ErrQuota if the messages do not fit the quota
// together, ErrTooLarge if one is over the size limit. The results are in
// the order of ds.
func (a *Account) AppendAll(ctx context.Context, mailbox string, ds []Delivery) ([]Delivered, error) {
	if len(ds) == 0 {
		return nil, fmt.Errorf("%w: append without messages", ErrBadBody)
	}
	l := make([]Delivery, len(ds))
	var size int64
	for i, d := range ds {
		l[i] = Delivery{Body: d.Body, Mailbox: mailbox, Flags: d.Flags, Keywords: d.Keywords, Received: d.Received}
		if d.Body != nil {
			size += d.Body.size
		}
	}
	res := make([]Delivered, len(l))
	o := newOp(size, func(w *wtx) error {
		for i := range l {
			if err := w.deliver(&l[i], &res[i], true); err != nil {
				if i > 0 {
					// The messages before were written: only a failure
					// that rolls the transaction back keeps the append
					// all or nothing.
					return unclean(err)
				}
				return err
			}
		}
		return nil
	})
	if err := a.enqueue(o); err != nil {
		return nil, err
	}
	if err := a.wait(ctx, o); err != nil {
		return nil, err
	}
	return res, nil
}

// Quota returns the quota in bytes, 0 for none.
func (a *Account) Quota() int64 { return a.quota.Load() }

// BodiesFromFile receives the messages a peer wrote back to back into the
// regular file f, from byte offset on, with the given sizes, each into a
// Body of its own in tmpDir. The file is copied under the rules of
// BodyFromFile (a regular file, not changed while it is read) and must end
// after the last message. A message over max is ErrTooLarge. On success
// the caller removes the bodies.
func BodiesFromFile(ctx context.Context, tmpDir string, f *os.File, offset int64, sizes []int64, max int64) ([]*Body, error) {
	if max <= 0 {
		max = defaultMaxMessage
	}
	total := offset
	for _, n := range sizes {
		if n > max {
			return nil, fmt.Errorf("%w: message of %d bytes, limit %d", ErrTooLarge, n, max)
		}
		total += n
	}
	if offset == 0 && len(sizes) == 1 {
		b, err := BodyFromFile(ctx, tmpDir, f, max)
		if err != nil {
			return nil, err
		}
		if b.size != sizes[0] {
			b.Remove()
			return nil, fmt.Errorf("%w: file of %d bytes for a message of %d", ErrBadBody, b.size, sizes[0])
		}
		return []*Body{b}, nil
	}
	// The peer's file is copied once under the rules; the messages are
	// then cut from the copy, which is ours.
	whole, err := BodyFromFile(ctx, tmpDir, f, total)
	if err != nil {
		return nil, err
	}
	defer whole.Remove()
	if whole.size != total {
		return nil, fmt.Errorf("%w: file of %d bytes for messages ending at %d", ErrBadBody, whole.size, total)
	}
	src, err := whole.Open()
	if err != nil {
		return nil, err
	}
	defer src.Close()
	var l []*Body
	pos := offset
	for _, n := range sizes {
		sr := io.NewSectionReader(src, pos, n)
		b, err := receiveBody(tmpDir, func(w io.Writer) (int64, error) {
			m, err := io.Copy(w, sr)
			if err == nil && m != n {
				err = errors.New("short copy")
			}
			return m, err
		})
		if err != nil {
			for _, b := range l {
				b.Remove()
			}
			return nil, err
		}
		l = append(l, b)
		pos += n
	}
	return l, nil
}
