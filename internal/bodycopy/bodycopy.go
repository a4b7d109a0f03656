// Package bodycopy copies a message body that a peer hands to the process
// owning it into that owner's own file, following the rules of DESIGN.md
// §4:
//
//   - A body that comes through a pipe (FromPipe) is copied up to its
//     declared size or, with no declared size, up to end of file within the
//     limit. One byte more than allowed is asked for, so excess data is
//     noticed without reading it all. Reads run under the context's
//     deadline, and the context's end interrupts a blocked read: a stalled
//     sender cannot hold the owner.
//   - A file descriptor received from a peer (FromFile) is accepted only if
//     fstat shows a regular file within the limit, so a FIFO, socket,
//     device or directory is refused without a read. It is read with pread
//     for exactly the size fstat gave, never mmapped (a peer truncating a
//     mapped file would crash the owner), and fstat is asked again at the
//     end: a file whose size or modification time changed meanwhile is
//     refused, since what was copied may be a mix of two versions.
//
// The owners are moxd-store (account bodies: deliveries, imap APPEND,
// moxctl import) and moxd-queue (spooled submissions and local retries);
// the network roles never run this code, they only write into the pipes or
// pass the fds. Each owner opens, fsyncs and finishes its file itself,
// since their file handling differs; this package only moves the bytes.
//
// Every error is either an *Error, meaning the peer's data was refused (its
// kind is one of the Err sentinels, tested with errors.Is, and its text
// says what happened with the numbers involved), or an error from the
// destination writer, returned as it is. Refused tells the two apart: the
// first is the peer's fault and goes back to it, the second is the
// owner's.
package bodycopy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// chunk is the buffer size for copying.
const chunk = 256 << 10

// buffers holds copy buffers of chunk+1 bytes: a delivery should not cost a
// fresh 256 KiB allocation (and its zeroing) per message.
var buffers = sync.Pool{New: func() any {
	b := make([]byte, chunk+1)
	return &b
}}

// The kinds of refusal; an *Error wraps exactly one of them.
var (
	// ErrTooLarge: the declared size, the file's size, or the data that
	// arrived is above the limit.
	ErrTooLarge = errors.New("body larger than the limit")
	// ErrSize: more or fewer bytes arrived than were declared.
	ErrSize = errors.New("body size differs from the declared size")
	// ErrDeadline: the context ended (deadline or cancelation) before the
	// body was complete, or the pipe cannot be read under a deadline. The
	// context's error is wrapped too.
	ErrDeadline = errors.New("body not complete before the deadline")
	// ErrNotRegular: the file received is not a regular file.
	ErrNotRegular = errors.New("body file is not a regular file")
	// ErrChanged: the file received changed size or modification time
	// while it was read.
	ErrChanged = errors.New("body file changed while it was read")
	// ErrRead: reading or stat-ing the peer's pipe or file failed. The
	// system's error is wrapped too.
	ErrRead = errors.New("body could not be read")
)

// Error is a refused body: what the peer sent or passed breaks a rule.
type Error struct {
	kind  error  // one of the Err sentinels
	text  string // what happened, with the numbers
	cause error  // the underlying error, or nil
}

func (e *Error) Error() string {
	if e.cause != nil {
		return e.text + ": " + e.cause.Error()
	}
	return e.text
}

// Unwrap returns the kind and, if there is one, the underlying error.
func (e *Error) Unwrap() []error {
	if e.cause != nil {
		return []error{e.kind, e.cause}
	}
	return []error{e.kind}
}

// Refused reports whether err says the peer's body was refused, as
// opposed to a failure to write the owner's file.
func Refused(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

func refuse(kind, cause error, format string, args ...any) *Error {
	return &Error{kind: kind, text: fmt.Sprintf(format, args...), cause: cause}
}

// FromPipe copies a body from r, the read end of a pipe the owner created,
// to w and returns the number of bytes copied. With size >= 0 exactly size
// bytes must arrive, followed by end of file; with size < 0 everything up
// to end of file is taken, at most max bytes. A declared size above max is
// refused before anything is read. A negative max counts as 0.
//
// ctx's deadline becomes r's read deadline, and ctx's end moves it into the
// past, so a blocked read returns at once. When FromPipe returns, r's read
// deadline is cleared again unless ctx had ended; callers normally close r
// anyway. r must support deadlines (as os.Pipe's ends do); one that does
// not is refused, since it could block forever.
func FromPipe(ctx context.Context, r *os.File, w io.Writer, size, max int64) (int64, error) {
	if max < 0 {
		max = 0
	}
	if size > max {
		return 0, refuse(ErrTooLarge, nil, "%d bytes declared, limit %d", size, max)
	}
	limit := max
	if size >= 0 {
		limit = size
	}
	dl, _ := ctx.Deadline() // zero: none
	if err := r.SetReadDeadline(dl); err != nil {
		return 0, refuse(ErrDeadline, err, "pipe cannot be read under a deadline")
	}
	stop := context.AfterFunc(ctx, func() { r.SetReadDeadline(time.Unix(1, 0)) })
	defer func() {
		// Once the AfterFunc has started, it may still set its past
		// deadline after this; ctx has ended then and r is done with.
		if stop() {
			r.SetReadDeadline(time.Time{})
		}
	}()

	bp := buffers.Get().(*[]byte)
	defer buffers.Put(bp)
	buf := (*bp)[:min(chunk, limit)+1]
	var n int64
	for {
		if ctx.Err() != nil {
			return n, stopped(ctx, n)
		}
		// One byte more than may still come detects excess data.
		m, err := r.Read(buf[:min(int64(len(buf))-1, limit-n)+1])
		if int64(m) > limit-n {
			if size >= 0 {
				return n, refuse(ErrSize, nil, "more than the declared %d bytes", size)
			}
			return n, refuse(ErrTooLarge, nil, "larger than the limit of %d bytes", max)
		}
		if m > 0 {
			if _, err := w.Write(buf[:m]); err != nil {
				return n, err
			}
			n += int64(m)
		}
		switch {
		case err == io.EOF && ctx.Err() != nil:
			// The end came after the caller gave up: refused, as a body
			// completed after its deadline must be.
			return n, stopped(ctx, n)
		case err == io.EOF:
			if size >= 0 && n != size {
				return n, refuse(ErrSize, nil, "%d bytes received, %d declared", n, size)
			}
			return n, nil
		case errors.Is(err, os.ErrDeadlineExceeded):
			return n, stopped(ctx, n)
		case err != nil:
			return n, refuse(ErrRead, err, "read")
		}
	}
}

// stopped is the refusal of a pipe whose context ended after n bytes.
func stopped(ctx context.Context, n int64) *Error {
	cause := ctx.Err()
	if cause == nil {
		// The read deadline fired a moment before ctx's own timer.
		cause = context.DeadlineExceeded
	}
	return refuse(ErrDeadline, cause, "%d bytes received before the deadline", n)
}

// FromFile copies f, a file received from a peer, to w and returns its
// size. f must be a regular file of at most max bytes; anything else is
// refused without a read. It is read with pread (f's offset is neither
// used nor moved) for exactly the size fstat gave, and refused if a second
// fstat afterwards shows another size or modification time, or if it
// shrank during the read. A negative max counts as 0. Between chunks ctx is checked: pread of a
// regular file does not wait for a peer, so that bounds the copy.
func FromFile(ctx context.Context, f *os.File, w io.Writer, max int64) (int64, error) {
	if max < 0 {
		max = 0
	}
	before, err := f.Stat()
	if err != nil {
		return 0, refuse(ErrRead, err, "stat")
	}
	if !before.Mode().IsRegular() {
		return 0, refuse(ErrNotRegular, nil, "not a regular file (%v)", before.Mode().Type())
	}
	size := before.Size()
	if size > max {
		return 0, refuse(ErrTooLarge, nil, "%d bytes, limit %d", size, max)
	}

	bp := buffers.Get().(*[]byte)
	defer buffers.Put(bp)
	buf := (*bp)[:min(chunk, size)]
	var off int64
	for off < size {
		if err := ctx.Err(); err != nil {
			return off, refuse(ErrDeadline, err, "%d of %d bytes read before the deadline", off, size)
		}
		// ReadAt returns fewer bytes than asked only with an error.
		m, err := f.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		if m > 0 {
			if _, err := w.Write(buf[:m]); err != nil {
				return off, err
			}
			off += int64(m)
		}
		if err == io.EOF && off < size {
			return off, refuse(ErrChanged, nil, "file shrank while it was read (end of file after %d of %d bytes); send it again once it is complete", off, size)
		} else if err != nil && err != io.EOF {
			return off, refuse(ErrRead, err, "read")
		}
	}

	after, err := f.Stat()
	if err != nil {
		return off, refuse(ErrRead, err, "stat")
	}
	if after.Size() != size || !after.ModTime().Equal(before.ModTime()) {
		return off, refuse(ErrChanged, nil, "file changed while it was read; send it again once it is complete")
	}
	return size, nil
}
