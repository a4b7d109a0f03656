package account

import (
	"context"
	"errors"
	"fmt"
	"moxd/internal/durable"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Import chunk limits (docs/storage.md "Imports").
const (
	importChunkMessages = 1000
	importChunkBytes    = 64 << 20
)

// Import fills a hidden staging mailbox in chunks; Publish makes all its
// messages visible in the target mailbox in one transaction, Abort (or a
// crash before Publish) drops them. An Import is used by one goroutine at a
// time.
type Import struct {
	a      *Account
	target string
	hidden uint32

	mu           sync.Mutex
	pending      []*staged
	pendingBytes int64
	staged       int // messages committed to the staging mailbox
	finished     bool
}

// staged is a message waiting for its chunk's commit.
type staged struct {
	body     *Body // path is a file of the import in the account's tmp/
	flags    Flags
	keywords []string
	received time.Time
}

// BeginImport starts an import into mailbox (created at Publish if
// missing).
func (a *Account) BeginImport(ctx context.Context, mailbox string) (*Import, error) {
	name, err := CleanName(mailbox)
	if err != nil {
		return nil, err
	}
	im := &Import{a: a, target: name}
	err = a.do(ctx, func(w *wtx) error {
		id, err := w.createMailbox(name, SpecialNone, true)
		im.hidden = id
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("begin import: %w", err)
	}
	return im, nil
}

// TmpDir is where bodies for AddBody are best created: the account's tmp/.
func (im *Import) TmpDir() string { return filepath.Join(im.a.dir, "tmp") }

// Add stages a message given as bytes. The file is written without an
// fsync; the chunk is made durable at once before it is committed.
func (im *Import) Add(ctx context.Context, data []byte, flags Flags, keywords []string, received time.Time) error {
	im.mu.Lock()
	defer im.mu.Unlock()
	if err := im.check(int64(len(data)), keywords); err != nil {
		return err
	}
	b, err := BodyFromBytes(im.TmpDir(), data, false)
	if err != nil {
		return err
	}
	return im.stage(ctx, &staged{body: b, flags: flags, keywords: keywords, received: received})
}

// AddBody stages a message from a Body; the caller may Remove body after
// AddBody returns (the import keeps its own link to the file).
func (im *Import) AddBody(ctx context.Context, body *Body, flags Flags, keywords []string, received time.Time) error {
	im.mu.Lock()
	defer im.mu.Unlock()
	if err := im.check(body.size, keywords); err != nil {
		return err
	}
	f, err := createTemp(im.TmpDir())
	if err != nil {
		return err
	}
	p := f.Name()
	f.Close()
	os.Remove(p)
	if err := durable.LinkOrCopy(body.path, p, fileMode); err != nil {
		return fmt.Errorf("stage imported message: %w", err)
	}
	b := *body
	b.path = p
	return im.stage(ctx, &staged{body: &b, flags: flags, keywords: keywords, received: received})
}

// check refuses a message before any work is done for it.
func (im *Import) check(size int64, keywords []string) error {
	if im.finished {
		return errors.New("import already published or aborted")
	}
	if max := im.a.maxMessage.Load(); size > max {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, size, max)
	}
	if err := checkKeywords(keywords); err != nil {
		return err
	}
	used, _ := im.a.Usage()
	if q := im.a.quota.Load(); q > 0 && used+im.pendingBytes+size > q {
		return fmt.Errorf("%w (%d of %d bytes used, %d more needed)", ErrQuota, used+im.pendingBytes, q, size)
	}
	return nil
}

func (im *Import) stage(ctx context.Context, s *staged) error {
	im.pending = append(im.pending, s)
	im.pendingBytes += s.body.size
	if len(im.pending) >= importChunkMessages || im.pendingBytes >= importChunkBytes {
		return im.flush(ctx)
	}
	return nil
}

// flush makes the pending messages durable with one sync and commits them
// to the staging mailbox in one transaction.
func (im *Import) flush(ctx context.Context) error {
	if len(im.pending) == 0 {
		return nil
	}
	pending := im.pending
	im.pending, im.pendingBytes = nil, 0
	defer func() {
		for _, s := range pending {
			s.body.Remove()
		}
	}()
	paths := make([]string, len(pending))
	var total int64
	for i, s := range pending {
		paths[i] = s.body.path
		total += s.body.size
	}
	if err := syncFiles(im.TmpDir(), paths); err != nil {
		return err
	}
	err := im.a.do(ctx, func(w *wtx) error {
		if err := w.checkQuota(total); err != nil {
			return err
		}
		s, err := w.mailbox(im.hidden)
		if err != nil {
			return err
		}
		for _, p := range pending {
			fileID, err := w.addFile(p.body, nil)
			if err != nil {
				return err
			}
			kwids, err := w.keywordIDs(p.keywords, true)
			if err != nil {
				return err
			}
			received := p.received
			if received.IsZero() {
				received = w.a.now()
			}
			r := msgRec{FileID: fileID, Size: p.body.size, Received: received.Unix(), Flags: p.flags & flagsAll, Keywords: kwids}
			if _, err := w.addMessage(s, r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("import chunk of %d messages: %w", len(pending), err)
	}
	im.staged += len(pending)
	return nil
}

// Publish commits what is pending and moves all staged messages into the
// target mailbox (created if missing) in one transaction, assigning UIDs in
// the order the messages were added. It returns the target mailbox and the
// number of messages published.
func (im *Import) Publish(ctx context.Context) (Mailbox, int, error) {
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.finished {
		return Mailbox{}, 0, errors.New("import already published or aborted")
	}
	if err := im.flush(ctx); err != nil {
		return Mailbox{}, 0, err
	}
	var n int
	err := im.a.do(ctx, func(w *wtx) error {
		n = 0
		tid, err := w.ensureMailbox(im.target, SpecialNone)
		if err != nil {
			return err
		}
		ts, err := w.mailbox(tid)
		if err != nil {
			return err
		}
		hs, err := w.mailbox(im.hidden)
		if err != nil {
			return err
		}
		var from uint32 = 1
		for {
			uids, recs, err := w.collect(im.hidden, []UIDRange{{from, 1<<32 - 1}}, storeChunk, nil)
			if err != nil {
				return err
			}
			if len(uids) == 0 {
				break
			}
			// Move: the files keep their single reference.
			for i, uid := range uids {
				r := recs[i]
				if err := w.bucket(bucketMsgs).Delete(msgKey(im.hidden, uid)); err != nil {
					return err
				}
				if err := w.bucket(bucketModseq).Delete(modseqKey(im.hidden, r.ModSeq, uid)); err != nil {
					return err
				}
				hs.sum.add(&r, -1)
				w.meta.size -= r.Size
				w.meta.count--
				if _, err := w.addMessage(ts, r); err != nil {
					return err
				}
				n++
			}
			from = uids[len(uids)-1] + 1
		}
		return w.dropMailbox(im.hidden)
	})
	if err != nil {
		return Mailbox{}, 0, fmt.Errorf("publish import: %w", err)
	}
	im.finished = true
	mb, err := im.a.Mailbox(im.target)
	return mb, n, err
}

// Abort drops the staged messages and the staging mailbox.
func (im *Import) Abort() error {
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.finished {
		return nil
	}
	for _, s := range im.pending {
		s.body.Remove()
	}
	im.pending, im.pendingBytes = nil, 0
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := im.a.do(ctx, func(w *wtx) error {
		if _, err := w.mailbox(im.hidden); errors.Is(err, ErrNotFound) {
			return nil
		}
		return w.dropMailbox(im.hidden)
	})
	if errors.Is(err, ErrClosed) {
		// Open drops the staging mailbox.
		err = nil
	}
	if err != nil {
		return fmt.Errorf("abort import: %w", err)
	}
	im.finished = true
	return nil
}
