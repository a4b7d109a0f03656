package queue

// The Queue: database, files and the group commit.
//
// Every write transaction runs on the commit goroutine. Callers queue an
// operation and wait; the goroutine runs whatever is queued in one
// transaction, fsyncs each directory a file was linked into, commits, and
// only then answers. An operation first checks (limits, records it reads)
// and returns its refusal, wrapped by refuse, before writing anything: the
// batch then goes on without it. Any other error fails the transaction;
// the batch is then run again one operation per transaction, so a failing
// operation gets its own error and the others still commit. Operations are
// idempotent for this reason: they allocate ids inside the transaction and
// link files by hard link, leaving the tmp file until after the commit.

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"moxd/internal/durable"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Queue is the opened queue database with its files. Safe for concurrent
// use.
type Queue struct {
	dir    string
	tmpDir string
	msgDir string
	log    *slog.Logger
	now    func() time.Time
	db     *bolt.DB

	qmu      sync.Mutex
	ops      []*op
	closed   bool
	wake     chan struct{}
	loopDone chan struct{}

	// Owned by the commit goroutine: unlink records whose files are gone.
	clearUnlink []uint64

	// Guarded by backupMu: backups running, and the files whose deletion
	// waits for them (backup.go).
	backupMu   sync.Mutex
	backups    int
	heldUnlink []uint64

	messages   atomic.Int64 // queued messages
	recipients atomic.Int64 // recipient records (queued or failed)
	commits    atomic.Int64 // write transactions committed

	// changed is signalled after a commit added due local-only work,
	// outChanged after one added or changed outbound work.
	changed     chan struct{}
	outChanged  chan struct{}
	hookChanged chan struct{}

	// adminHook makes the webhook event for a recipient an admin failed
	// or dropped (nil: none); set by the service.
	adminHook func(m *Message, rc *Recipient, event string, now time.Time) *Hook

	// beforeCommit, for tests, runs in the transaction after the files
	// were linked and their directories synced, just before the commit.
	beforeCommit func()
}

// op is one queued write operation.
type op struct {
	run  func(w *wtx) error
	err  error
	done chan struct{}
}

// wtx is the write transaction of a batch.
type wtx struct {
	tx       *bolt.Tx
	q        *Queue
	syncDirs map[string]bool
	linked   []string // files linked in this transaction, removed if it fails
	after    []func() // run after the commit
	// late runs after the batch's operations were answered: file
	// deletions, which can wait on the disk and are crash-safe (unlink
	// records, emptied tmp/ at start).
	late []func()
}

// refusal is an operation's answer that leaves the batch going.
type refusal struct{ err error }

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// refuse marks err as the refusal of an operation that wrote nothing.
func refuse(err error) error { return &refusal{err} }

// errClosed is returned for operations after Close.
var errClosed = errors.New("queue is closed")

// openQueue opens the queue in dir (which the role checked): it empties
// tmp/, opens queue.db and recovers from a crash.
func openQueue(dir string, log *slog.Logger, now func() time.Time) (*Queue, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	q := &Queue{
		dir:         dir,
		tmpDir:      filepath.Join(dir, "tmp"),
		msgDir:      filepath.Join(dir, "msg"),
		log:         log,
		now:         now,
		wake:        make(chan struct{}, 1),
		loopDone:    make(chan struct{}),
		changed:     make(chan struct{}, 1),
		outChanged:  make(chan struct{}, 1),
		hookChanged: make(chan struct{}, 1),
	}
	for _, d := range []string{q.tmpDir, q.msgDir} {
		if err := os.Mkdir(d, dirMode); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	// Nothing in tmp/ was acknowledged: a submission is answered only
	// after its file was linked into msg/ and committed.
	entries, err := os.ReadDir(q.tmpDir)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", q.tmpDir, err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(q.tmpDir, e.Name())); err != nil {
			return nil, fmt.Errorf("clean %s: %w", q.tmpDir, err)
		}
	}
	db, err := openDB(filepath.Join(dir, dbName), dbLockTimeout)
	if err != nil {
		return nil, err
	}
	q.db = db
	err = initDB(db)
	if err == nil {
		err = q.recover()
	}
	if err == nil {
		err = q.count()
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	go q.loop()
	return q, nil
}

// count sets the message and recipient counters from the database.
func (q *Queue) count() error {
	return q.db.View(func(tx *bolt.Tx) error {
		q.messages.Store(int64(tx.Bucket([]byte(bucketMsgs)).Stats().KeyN))
		q.recipients.Store(int64(tx.Bucket([]byte(bucketRcpts)).Stats().KeyN))
		return nil
	})
}

// Close stops the commit goroutine after the queued operations and closes
// the database.
func (q *Queue) Close() error {
	q.qmu.Lock()
	if q.closed {
		q.qmu.Unlock()
		return nil
	}
	q.closed = true
	q.qmu.Unlock()
	q.signal()
	<-q.loopDone
	return q.db.Close()
}

func (q *Queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// notifyOutbound wakes the deliverer.
func (q *Queue) notifyOutbound() {
	select {
	case q.outChanged <- struct{}{}:
	default:
	}
}

// notifyChanged wakes the local retrier.
func (q *Queue) notifyChanged() {
	select {
	case q.changed <- struct{}{}:
	default:
	}
}

// do runs fn in a write transaction, batched with other operations, and
// returns its error once the commit is durable. A refusal comes back
// unwrapped. There is no context: the commit goroutine answers every
// operation it took, and a caller that went away while its operation
// committed would leave a file behind that the database references.
func (q *Queue) do(fn func(w *wtx) error) error {
	o := &op{run: fn, done: make(chan struct{})}
	q.qmu.Lock()
	if q.closed {
		q.qmu.Unlock()
		return errClosed
	}
	q.ops = append(q.ops, o)
	q.qmu.Unlock()
	q.signal()
	<-o.done
	return o.err
}

func (q *Queue) loop() {
	defer close(q.loopDone)
	for {
		<-q.wake
		q.qmu.Lock()
		ops := q.ops
		q.ops = nil
		closed := q.closed
		q.qmu.Unlock()
		if len(ops) > 0 {
			q.runBatch(ops)
		}
		if closed {
			q.qmu.Lock()
			rest := q.ops
			q.ops = nil
			q.qmu.Unlock()
			if len(rest) > 0 {
				q.runBatch(rest)
			}
			return
		}
	}
}

// runBatch commits ops in one transaction, or one by one if that fails.
func (q *Queue) runBatch(ops []*op) {
	errs, late, err := q.commit(ops)
	if err != nil && len(ops) > 1 {
		q.log.Debug("batch transaction failed, committing its operations one by one", "ops", len(ops), "err", err)
		for _, o := range ops {
			e, l, err := q.commit([]*op{o})
			if err != nil {
				o.err = err
			} else {
				o.err = e[0]
			}
			close(o.done)
			runAll(l)
		}
		return
	}
	for i, o := range ops {
		if err != nil {
			o.err = err
		} else {
			o.err = errs[i]
		}
		close(o.done)
	}
	runAll(late)
}

func runAll(l []func()) {
	for _, f := range l {
		f()
	}
}

// commit runs ops in one write transaction. It returns each operation's
// refusal and the work to do once they are answered (w.late), or the
// error that failed the transaction.
func (q *Queue) commit(ops []*op) ([]error, []func(), error) {
	errs := make([]error, len(ops))
	w := &wtx{q: q, syncDirs: map[string]bool{}}
	err := q.db.Update(func(tx *bolt.Tx) error {
		w.tx = tx
		if len(q.clearUnlink) > 0 {
			b := tx.Bucket([]byte(bucketUnlink))
			for _, id := range q.clearUnlink {
				if err := b.Delete(key64(id)); err != nil {
					return err
				}
			}
		}
		for i, o := range ops {
			nafter := len(w.after)
			nlate := len(w.late)
			if err := o.run(w); err != nil {
				var r *refusal
				if !errors.As(err, &r) {
					return err
				}
				errs[i] = r.err
				w.after = w.after[:nafter]
				w.late = w.late[:nlate]
			}
		}
		for d := range w.syncDirs {
			if err := durable.SyncDir(d); err != nil {
				return err
			}
		}
		if q.beforeCommit != nil {
			q.beforeCommit()
		}
		return nil
	})
	if err != nil {
		for _, p := range w.linked {
			os.Remove(p)
		}
		return nil, nil, err
	}
	q.clearUnlink = nil
	q.commits.Add(1)
	for _, f := range w.after {
		f()
	}
	return errs, w.late, nil
}

// link hard-links the fsynced file at tmp as message file id, creating its
// fan-out directory if needed. The directories to sync are noted.
func (w *wtx) link(tmp string, id uint64) error {
	dir := w.q.fanDir(id)
	if err := os.Mkdir(dir, dirMode); err == nil {
		w.syncDirs[w.q.msgDir] = true
	} else if !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create message directory: %w", err)
	}
	p := w.q.filePath(id)
	// A file at this id can only be left by a failed transaction of this
	// process (recover removed older ones): it is not referenced.
	os.Remove(p)
	if err := os.Link(tmp, p); err != nil {
		return fmt.Errorf("link message file: %w", err)
	}
	w.linked = append(w.linked, p)
	w.syncDirs[dir] = true
	return nil
}

// unlinkFile records file id for deletion after the commit.
func (w *wtx) unlinkFile(id uint64) error {
	if err := w.tx.Bucket([]byte(bucketUnlink)).Put(key64(id), nil); err != nil {
		return err
	}
	q := w.q
	w.late = append(w.late, func() { q.removeFile(id) })
	return nil
}

// removeFile deletes file id, whose unlink record is committed, and notes
// the record for deletion in the next commit. While a backup runs, the
// file is held back instead, so every file its snapshot names still
// exists. It runs on the commit goroutine.
func (q *Queue) removeFile(id uint64) {
	q.backupMu.Lock()
	if q.backups > 0 {
		q.heldUnlink = append(q.heldUnlink, id)
		q.backupMu.Unlock()
		return
	}
	q.backupMu.Unlock()
	if err := os.Remove(q.filePath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		q.log.Error("remove delivered message file; it is retried at the next start", "file", id, "err", err)
		return
	}
	q.clearUnlink = append(q.clearUnlink, id)
}
