package account

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"moxd/internal/durable"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// Batch limits of the commit goroutine (docs/storage.md "Commit protocol").
const (
	maxBatchOps   = 256
	maxBatchBytes = 64 << 20
)

// op is one queued write operation.
type op struct {
	run   func(w *wtx) error // idempotent; resets its own outputs
	bytes int64              // body bytes it links, for the batch limit
	state atomic.Int32       // opQueued, opTaken, opCanceled
	done  chan struct{}      // closed once err is final
	err   error
}

const (
	opQueued int32 = iota
	opTaken
	opCanceled
)

// cleanError marks an error returned before the operation wrote anything:
// the batch transaction can still commit the other operations.
type cleanError struct{ err error }

func (e cleanError) Error() string { return e.err.Error() }
func (e cleanError) Unwrap() error { return e.err }

func clean(err error) error { return cleanError{err} }

func unclean(err error) error {
	var ce cleanError
	if errors.As(err, &ce) {
		return ce.err
	}
	return err
}

func newOp(bytes int64, run func(w *wtx) error) *op {
	return &op{run: run, bytes: bytes, done: make(chan struct{})}
}

// do runs one operation through the commit goroutine and waits for it.
func (a *Account) do(ctx context.Context, run func(w *wtx) error) error {
	o := newOp(0, run)
	if err := a.enqueue(o); err != nil {
		return err
	}
	return a.wait(ctx, o)
}

// enqueue adds operations to the commit queue.
func (a *Account) enqueue(ops ...*op) error {
	a.qmu.Lock()
	if a.closed {
		a.qmu.Unlock()
		return ErrClosed
	}
	a.queue = append(a.queue, ops...)
	a.qmu.Unlock()
	a.signal()
	return nil
}

func (a *Account) signal() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// wait waits until o committed or failed. If ctx ends while o is still
// queued, o is canceled and never runs; once taken, it is waited for, so
// the caller always learns whether it committed.
func (a *Account) wait(ctx context.Context, o *op) error {
	select {
	case <-o.done:
		return o.err
	case <-ctx.Done():
		if o.state.CompareAndSwap(opQueued, opCanceled) {
			return ctxErr(ctx, "waiting for commit")
		}
		<-o.done
		return o.err
	}
}

// loop is the commit goroutine.
func (a *Account) loop() {
	defer close(a.loopDone)
	for {
		<-a.wake
		for {
			batch, closed := a.take()
			if len(batch) > 0 {
				a.runBatch(batch)
				continue
			}
			a.unlinkFiles()
			if closed {
				a.finish()
				return
			}
			break
		}
	}
}

// take removes up to one batch of operations from the queue.
func (a *Account) take() (batch []*op, closed bool) {
	a.qmu.Lock()
	defer a.qmu.Unlock()
	var bytes int64
	n := 0
	for n < len(a.queue) && n < maxBatchOps {
		o := a.queue[n]
		if n > 0 && bytes+o.bytes > maxBatchBytes {
			break
		}
		bytes += o.bytes
		n++
	}
	batch = slices.Clone(a.queue[:n])
	a.queue = a.queue[n:]
	if len(a.queue) == 0 {
		a.queue = nil
	}
	return batch, a.closed
}

// finish runs at close: the last unlink records are cleared.
func (a *Account) finish() {
	a.unlinkFiles()
	if len(a.clearUnlink) == 0 {
		return
	}
	err := a.db.Update(func(tx *bolt.Tx) error {
		w := a.newWtx(tx)
		return w.clearUnlinked(a.clearUnlink)
	})
	if err != nil {
		a.log.Error("clear unlink records", "err", err)
		return
	}
	a.clearUnlink = nil
}

// runBatch commits a batch in one transaction, or each operation alone if
// the batch transaction fails.
func (a *Account) runBatch(batch []*op) {
	ops := batch[:0:0]
	for _, o := range batch {
		if o.state.CompareAndSwap(opQueued, opTaken) {
			ops = append(ops, o)
		}
	}
	if len(ops) == 0 {
		return
	}
	if len(ops) > 1 {
		w, err := a.runTx(ops)
		if err == nil {
			a.committed(w, ops)
			return
		}
		a.log.Debug("batch transaction failed, running its operations one by one", "ops", len(ops), "err", err)
	}
	for _, o := range ops {
		w, err := a.runTx([]*op{o})
		if err != nil {
			o.err = unclean(err)
			close(o.done)
			continue
		}
		a.committed(w, []*op{o})
	}
}

// runTx runs ops in one write transaction and commits it. Operations that
// fail cleanly get their error and the others commit. Any other failure
// rolls everything back, removes the files linked on the way and returns
// the error.
func (a *Account) runTx(ops []*op) (_ *wtx, err error) {
	tx, err := a.db.Begin(true)
	if err != nil {
		return nil, fmt.Errorf("begin write transaction: %w", err)
	}
	w := a.newWtx(tx)
	defer func() {
		if err != nil {
			tx.Rollback()
			for _, p := range w.linked {
				os.Remove(p)
			}
		}
	}()
	if len(a.clearUnlink) > 0 {
		if err := w.clearUnlinked(a.clearUnlink); err != nil {
			return nil, err
		}
		w.cleared = true
	}
	for _, o := range ops {
		o.err = nil
		if err := o.run(w); err != nil {
			var ce cleanError
			if !errors.As(err, &ce) || len(ops) == 1 {
				return nil, err
			}
			o.err = ce.err
		}
	}
	if err := w.flush(); err != nil {
		return nil, err
	}
	if err := w.syncDirs(); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	a.commits.Add(1)
	return w, nil
}

// committed does the work after a commit: counters, caches, waiters,
// change events and file removal.
func (a *Account) committed(w *wtx, ops []*op) {
	a.usageSize.Store(w.meta.size)
	a.usageCount.Store(w.meta.count)
	if len(w.newKw) > 0 {
		a.kwmu.Lock()
		for id, name := range w.newKw {
			a.kwByID[id] = name
			a.kwByFold[foldKeyword(name)] = id
		}
		a.kwmu.Unlock()
	}
	if w.cleared {
		a.clearUnlink = nil
	}
	a.pendingUnlink = append(a.pendingUnlink, w.unlinked...)
	for _, o := range ops {
		close(o.done)
	}
	if a.onChange != nil && w.modseqV != 0 {
		if w.listChanged {
			a.onChange(Change{MailboxID: 0, ModSeq: w.modseqV})
		}
		ids := make([]uint32, 0, len(w.touched))
		for id := range w.touched {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			a.onChange(Change{MailboxID: id, ModSeq: w.modseqV})
		}
	}
	a.unlinkFiles()
}

// unlinkFiles removes files whose last reference went, unless a backup
// runs; their unlink records are cleared by the next transaction.
func (a *Account) unlinkFiles() {
	if len(a.pendingUnlink) == 0 {
		return
	}
	a.backupMu.Lock()
	busy := a.backups > 0
	a.backupMu.Unlock()
	if busy {
		return
	}
	if err := a.removeFiles(a.pendingUnlink); err != nil {
		a.log.Error("remove expunged message files; they are removed at next open", "err", err)
		return
	}
	a.clearUnlink = append(a.clearUnlink, a.pendingUnlink...)
	a.pendingUnlink = nil
}

// wtx is the state of one write transaction.
type wtx struct {
	a       *Account
	tx      *bolt.Tx
	buckets map[string]*bolt.Bucket
	meta    metaCounters
	modseqV uint64 // the transaction's modseq, 0 until allocated

	mailboxes   map[uint32]*mbState
	touched     map[uint32]bool // mailboxes with changed messages (Change events)
	listChanged bool

	dirs     map[string]bool // fan-out directories that got entries
	newFan   bool            // a fan-out directory was created
	linked   []string        // files linked in this transaction
	unlinked []uint64        // file ids put into unlink
	cleared  bool            // a.clearUnlink was cleared in this transaction
	newKw    map[uint32]string
}

// metaCounters are the meta bucket's counters, loaded at the start of a
// transaction and written back by flush.
type metaCounters struct {
	modseq, nextfile, uidvalidity, nextmailbox uint64
	size, count                                int64
}

// mbState is a mailbox touched in a transaction; flush writes it back.
type mbState struct {
	id                          uint32
	rec                         mailboxRec
	sum                         summaryRec
	recDirty, sumDirty, deleted bool
}

func (a *Account) newWtx(tx *bolt.Tx) *wtx {
	w := &wtx{a: a, tx: tx, buckets: map[string]*bolt.Bucket{}, mailboxes: map[uint32]*mbState{}, touched: map[uint32]bool{}, dirs: map[string]bool{}}
	m := w.bucket(bucketMeta)
	w.meta = metaCounters{
		modseq:      be64(m.Get([]byte(metaModseq))),
		nextfile:    be64(m.Get([]byte(metaNextfile))),
		uidvalidity: be64(m.Get([]byte(metaUIDValidity))),
		nextmailbox: be64(m.Get([]byte(metaNextmailbox))),
		size:        int64(be64(m.Get([]byte(metaSize)))),
		count:       int64(be64(m.Get([]byte(metaCount)))),
	}
	w.meta.nextfile = max(w.meta.nextfile, 1)
	w.meta.uidvalidity = max(w.meta.uidvalidity, 1)
	w.meta.nextmailbox = max(w.meta.nextmailbox, 1)
	return w
}

func (w *wtx) bucket(name string) *bolt.Bucket {
	b, ok := w.buckets[name]
	if !ok {
		b = w.tx.Bucket([]byte(name))
		w.buckets[name] = b
	}
	return b
}

// modseq returns the transaction's modseq, allocating it on first use:
// every write transaction that changes anything takes one new modseq.
func (w *wtx) modseq() uint64 {
	if w.modseqV == 0 {
		w.meta.modseq++
		w.modseqV = w.meta.modseq
	}
	return w.modseqV
}

// mailbox returns the transaction's view of mailbox id, or ErrNotFound.
func (w *wtx) mailbox(id uint32) (*mbState, error) {
	if s, ok := w.mailboxes[id]; ok {
		if s.deleted {
			return nil, fmt.Errorf("mailbox id %d: %w", id, ErrNotFound)
		}
		return s, nil
	}
	v := w.bucket(bucketMailboxes).Get(key32(id))
	if v == nil {
		return nil, fmt.Errorf("mailbox id %d: %w", id, ErrNotFound)
	}
	rec, err := parseMailboxRec(v)
	if err != nil {
		return nil, fmt.Errorf("mailbox id %d: %w", id, err)
	}
	sum, err := parseSummaryRec(w.bucket(bucketSummary).Get(key32(id)))
	if err != nil {
		return nil, fmt.Errorf("summary of mailbox id %d: %w", id, err)
	}
	s := &mbState{id: id, rec: rec, sum: sum}
	w.mailboxes[id] = s
	return s, nil
}

// selectable returns a visible mailbox after checking the uidvalidity the
// caller knows.
func (w *wtx) selectable(id, uidvalidity uint32) (*mbState, error) {
	s, err := w.mailbox(id)
	if err != nil {
		return nil, err
	}
	if s.rec.Hidden {
		return nil, fmt.Errorf("mailbox id %d: %w", id, ErrNotFound)
	}
	if s.rec.UIDValidity != uidvalidity {
		return nil, fmt.Errorf("mailbox %s: %w", s.rec.Name, ErrUIDValidity)
	}
	return s, nil
}

// touch records a change of mailbox s at the transaction's modseq.
func (w *wtx) touch(s *mbState) {
	s.sum.HighestModSeq = w.modseq()
	s.sumDirty = true
	if !s.rec.Hidden {
		w.touched[s.id] = true
	}
}

// flush writes the counters and touched mailboxes back.
func (w *wtx) flush() error {
	m := w.bucket(bucketMeta)
	for k, v := range map[string]uint64{
		metaModseq: w.meta.modseq, metaNextfile: w.meta.nextfile, metaUIDValidity: w.meta.uidvalidity,
		metaNextmailbox: w.meta.nextmailbox, metaSize: uint64(w.meta.size), metaCount: uint64(w.meta.count),
	} {
		if be64(m.Get([]byte(k))) == v && m.Get([]byte(k)) != nil {
			continue
		}
		if err := m.Put([]byte(k), key64(v)); err != nil {
			return fmt.Errorf("write counters: %w", err)
		}
	}
	for id, s := range w.mailboxes {
		if s.deleted {
			continue
		}
		if s.recDirty {
			if err := w.bucket(bucketMailboxes).Put(key32(id), s.rec.marshal()); err != nil {
				return fmt.Errorf("write mailbox: %w", err)
			}
		}
		if s.sumDirty {
			if err := w.bucket(bucketSummary).Put(key32(id), s.sum.marshal()); err != nil {
				return fmt.Errorf("write summary: %w", err)
			}
		}
	}
	return nil
}

// clearUnlinked deletes unlink records of files already removed.
func (w *wtx) clearUnlinked(ids []uint64) error {
	b := w.bucket(bucketUnlink)
	for _, id := range ids {
		if err := b.Delete(key64(id)); err != nil {
			return fmt.Errorf("clear unlink record: %w", err)
		}
	}
	return nil
}

// linkFile makes src the message file id: a hard link, or a copy when the
// link is impossible. A file left at id by a failed transaction is
// replaced. The directory is synced by syncDirs before the commit.
func (w *wtx) linkFile(src string, id uint64) error {
	dir := w.a.fileDir(id)
	if !w.dirs[dir] {
		if err := os.Mkdir(dir, dirMode); err == nil {
			w.newFan = true
		} else if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create message directory: %w", err)
		}
		w.dirs[dir] = true
	}
	dst := w.a.filePath(id)
	err := durable.LinkOrCopy(src, dst, fileMode)
	if errors.Is(err, fs.ErrExist) {
		os.Remove(dst)
		err = durable.LinkOrCopy(src, dst, fileMode)
	}
	if err != nil {
		return fmt.Errorf("link message file: %w", err)
	}
	w.linked = append(w.linked, dst)
	return nil
}

// syncDirs fsyncs each touched fan-out directory once, and msg/ when a
// fan-out directory was created.
func (w *wtx) syncDirs() error {
	if len(w.linked) == 0 {
		return nil
	}
	for dir := range w.dirs {
		if err := durable.SyncDir(dir); err != nil {
			return err
		}
	}
	if w.newFan {
		if err := durable.SyncDir(filepath.Join(w.a.dir, "msg")); err != nil {
			return err
		}
	}
	return nil
}
