package queue

// Spooling (DESIGN.md §4): a submitting role gets a pipe per message and
// writes the message into it; queue copies what arrives into a file it
// created itself in tmp/, stopping at the declared size or the limit. A
// spool belongs to the channel that asked for it; it is removed by its
// Submit, when that channel closes, or after spoolLifetime. A sender can
// spoil only its own message.
//
// Local retries bring a regular file instead (store's copy of a body):
// copyRegularFile accepts it only if fstat says regular file within the
// limit, and reads it with pread for exactly that size. Both copies are
// package bodycopy's, shared with moxd-store.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"moxd/internal/durable"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"moxd/internal/bodycopy"
	"moxd/internal/ipc"
)

const (
	// spoolLifetime bounds how long a spool waits for its Submit.
	spoolLifetime = 10 * time.Minute
	// spoolReadTimeout bounds the transfer of one message through its
	// pipe, and the copy of a local retry's file.
	spoolReadTimeout = 10 * time.Minute
	// DefaultMaxMessage is the size limit when the config gives none.
	DefaultMaxMessage = 100 << 20
	// maxMessageRecipients bounds the recipients of one submission.
	maxMessageRecipients = 10000
)

// errBadMessage marks a message whose transfer failed: short, long, or
// not a regular file. The text says which.
var errBadMessage = errors.New("message not received")

// channelKey identifies one channel from a peer: role and generation.
type channelKey struct {
	role ipc.Role
	gen  uint64
}

// spool is one message being received or received.
type spool struct {
	id      uint64
	owner   channelKey
	created time.Time
	done    chan struct{} // closed when path or err is set
	path    string
	size    int64
	err     error
	// Guarded by spools.mu: recipients from AddRecipients, and whether
	// a Submit took the spool out of the registry.
	rcpts []ipc.SubmitRcpt
	taken bool
}

// spools is the registry of spools.
type spools struct {
	log    *slog.Logger
	tmpDir string
	now    func() time.Time

	nextID atomic.Uint64
	mu     sync.Mutex
	m      map[uint64]*spool
}

func newSpools(log *slog.Logger, tmpDir string, now func() time.Time) *spools {
	return &spools{log: log, tmpDir: tmpDir, now: now, m: map[uint64]*spool{}}
}

// start creates a pipe for a message of size bytes (-1: to end of file)
// of at most max bytes and returns the spool id and the write end.
func (s *spools) start(owner channelKey, size, max int64) (uint64, *os.File, error) {
	if size > max {
		return 0, nil, ipc.Errorf(ipc.CodeBadRequest, "message of %d bytes exceeds the limit of %d bytes", size, max)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return 0, nil, fmt.Errorf("create spool pipe: %w", err)
	}
	sp := &spool{id: s.nextID.Add(1), owner: owner, created: s.now(), done: make(chan struct{})}
	s.mu.Lock()
	s.m[sp.id] = sp
	s.mu.Unlock()
	go func() {
		defer r.Close()
		ctx, cancel := context.WithTimeout(context.Background(), spoolReadTimeout)
		defer cancel()
		path, n, err := copyFromReader(ctx, s.tmpDir, r, size, max)
		s.mu.Lock()
		_, live := s.m[sp.id]
		live = live || sp.taken
		s.mu.Unlock()
		if err == nil && !live {
			// Dropped while it was still being received.
			os.Remove(path)
			err = errors.New("spool dropped")
		}
		sp.path, sp.size, sp.err = path, n, err
		close(sp.done)
		if err != nil {
			s.log.Debug("spooled message not received", "spool", sp.id, "err", err)
		}
	}()
	return sp.id, w, nil
}

// addRecipients appends recipients to spool id of owner.
func (s *spools) addRecipients(owner channelKey, id uint64, rcpts []ipc.SubmitRcpt) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := s.m[id]
	if sp == nil || sp.owner != owner {
		return ipc.Errorf(ipc.CodeNotFound, "no spooled message %d on this channel (it expired, was submitted, or belongs to another connection); start the message again", id)
	}
	if len(sp.rcpts)+len(rcpts) > maxMessageRecipients {
		return ipc.Errorf(ipc.CodeBadRequest, "more than %d recipients for one message; send it in several messages", maxMessageRecipients)
	}
	sp.rcpts = append(sp.rcpts, rcpts...)
	return nil
}

// take removes spool id of owner from the registry for its Submit, which
// then owns it: it waits for the message with wait and removes the file
// with discard.
func (s *spools) take(owner channelKey, id uint64) (*spool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := s.m[id]
	if sp == nil || sp.owner != owner {
		return nil, ipc.Errorf(ipc.CodeNotFound, "no spooled message %d on this channel (it expired, was submitted, or belongs to another connection); start the message again", id)
	}
	delete(s.m, id)
	sp.taken = true
	return sp, nil
}

// wait waits until the message is complete.
func (sp *spool) wait(ctx context.Context) error {
	select {
	case <-sp.done:
	case <-ctx.Done():
		return fmt.Errorf("waiting for the message: %w", ctx.Err())
	}
	if sp.err != nil {
		return ipc.Errorf(ipc.CodeBadRequest, "message: %v", sp.err)
	}
	return nil
}

// discard deletes the spool's file once it is complete.
func (sp *spool) discard() {
	<-sp.done
	if sp.err == nil {
		os.Remove(sp.path)
	}
}

// releaseWhere deletes every spool match selects: those of a closed
// channel, or those older than spoolLifetime.
func (s *spools) releaseWhere(match func(sp *spool) bool) {
	s.mu.Lock()
	var l []*spool
	for id, sp := range s.m {
		if match(sp) {
			l = append(l, sp)
			delete(s.m, id)
		}
	}
	s.mu.Unlock()
	for _, sp := range l {
		go sp.discard()
	}
}

func (s *spools) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// copyFromReader copies a message from r (a pipe from a peer) into a new
// file in tmpDir and returns its path and size. With size >= 0 exactly
// size bytes must arrive, followed by end of file; with size < 0
// everything up to end of file is taken, at most max bytes. The file is
// not synced: the submission writes the final file from it.
func copyFromReader(ctx context.Context, tmpDir string, r *os.File, size, max int64) (string, int64, error) {
	f, err := createTemp(tmpDir, "spool")
	if err != nil {
		return "", 0, err
	}
	n, err := bodycopy.FromPipe(ctx, r, f, size, max)
	if err != nil {
		err = copyError(err, "spool file")
	}
	if err == nil {
		err = f.Close()
	} else {
		f.Close()
	}
	if err != nil {
		os.Remove(f.Name())
		return "", 0, err
	}
	return f.Name(), n, nil
}

// copyRegularFile writes prefix and then the content of src, a file
// received from a peer, into a new fsynced file in tmpDir, and returns its
// path and size. src must be a regular file of at most max bytes (FIFOs,
// sockets, devices and directories are refused without a read); it is
// read with pread for exactly its size, never mmapped, and refused if its
// size or modification time changed meanwhile.
func copyRegularFile(ctx context.Context, tmpDir string, prefix []byte, src *os.File, max int64) (string, int64, error) {
	f, err := createTemp(tmpDir, "file")
	if err != nil {
		return "", 0, err
	}
	var size int64
	err = func() error {
		if _, err := f.Write(prefix); err != nil {
			return fmt.Errorf("write queue file: %w", err)
		}
		if size, err = bodycopy.FromFile(ctx, src, f, max); err != nil {
			return copyError(err, "queue file")
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("sync queue file: %w", err)
		}
		return f.Close()
	}()
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", 0, err
	}
	return f.Name(), int64(len(prefix)) + size, nil
}

// copyError gives an error of bodycopy the queue's kind: errBadMessage
// when the peer's data was refused, otherwise a failure to write the
// queue's own file, named by what.
func copyError(err error, what string) error {
	if bodycopy.Refused(err) {
		return fmt.Errorf("%w: %w", errBadMessage, err)
	}
	return fmt.Errorf("write %s: %w", what, err)
}

// createTemp creates a new file in tmpDir for kind (durable.CreateTemp).
func createTemp(tmpDir, kind string) (*os.File, error) {
	f, err := durable.CreateTemp(tmpDir, kind)
	if err != nil {
		return nil, fmt.Errorf("create queue file: %w", err)
	}
	return f, nil
}
