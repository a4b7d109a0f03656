package queue

// Backups (DESIGN.md §5, docs/storage.md "Backup"). Master creates
// DIR/queue, owned by queue's user, mode 0700, and passes it opened in a
// queueadmin.Backup before it asks store for its part, so a restore may
// deliver a message twice but never loses one. Queue writes:
//
//	queue.db        a bbolt Tx.WriteTo copy from one read transaction
//	msg/<fan>/<id>  every message file that snapshot names, hard-linked
//	                (copied when the backup is on another file system)
//	reports.db      a Tx.WriteTo copy, after the buffered DMARC
//	                evaluations were written
//
// Message files are immutable, so a hard link is a copy. While a backup
// runs, files of messages that left the queue are not deleted (their
// unlink records stay until the backup ends), so every file the snapshot
// names still exists. Everything written is fsynced, directories too.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"moxd/internal/durable"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"

	bolt "go.etcd.io/bbolt"

	"moxd/internal/ipc"
)

// serveMaster handles master's requests: queue administration
// (FamQueueAdmin), the backup here and the rest in admin.go. It serves
// master's channel only, so a queueadmin request from web never gets
// here.
func (sv *service) serveMaster(ctx context.Context, req *ipc.Request) (ipc.Message, []*os.File, error) {
	switch m := req.Msg.(type) {
	case *ipc.QueueBackup:
		f := req.Files[0]
		defer f.Close()
		return sv.backup(ctx, m, f)
	case *ipc.QueueSendmail:
		f := req.Files[0]
		defer f.Close()
		rep, err := sv.sendmail(ctx, m, f)
		return rep, nil, err
	case *ipc.QueueDNSCheck:
		closeFiles(req.Files) // none: it carries no fds
		rep, err := sv.dnsCheck(ctx, m)
		return rep, nil, err
	case *ipc.QueueList, *ipc.QueueDump, *ipc.QueueAction, *ipc.QueueHoldRules, *ipc.QueueRetired, *ipc.QueueSuppress, *ipc.QueueWebhooks:
		closeFiles(req.Files) // none: these messages carry no fds
		rep, err := sv.serveAdmin(m)
		return rep, nil, err
	}
	closeFiles(req.Files)
	return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "queue does not serve %s from master", req.Msg.Type())
}

// backup writes queue's part into dir, the directory master opened for
// m.Path.
func (sv *service) backup(ctx context.Context, m *ipc.QueueBackup, dir *os.File) (ipc.Message, []*os.File, error) {
	fi, err := dir.Stat()
	if err != nil || !fi.IsDir() {
		return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "backup target is not a directory")
	}
	// The backup's top directory is root's and closed to queue: reach the
	// part through the fd master opened, not through its path.
	base := fdPath(dir)
	if pfi, err := os.Stat(base); err != nil || !os.SameFile(fi, pfi) {
		return nil, nil, ipc.Errorf(ipc.CodeFailed, "cannot reach the backup directory through its descriptor (%s); on BSD mount fdescfs on /dev/fd", base)
	}
	if entries, err := os.ReadDir(base); err != nil {
		return nil, nil, fmt.Errorf("backup: %w", err)
	} else if len(entries) > 0 {
		return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "backup directory %s is not empty", m.Path)
	}
	c, err := sv.q.backup(ctx, base)
	if err != nil {
		return nil, nil, fmt.Errorf("backup of the queue: %w", err)
	}
	if err := sv.reports.backup(filepath.Join(base, reportsDBName)); err != nil {
		return nil, nil, fmt.Errorf("backup of the report database: %w", err)
	}
	if err := durable.SyncDir(base); err != nil {
		return nil, nil, err
	}
	sv.log.Info("backup written", "path", m.Path, "messages", c.Messages, "recipients", c.Recipients, "files", c.Files)
	return &c, nil, nil
}

// backup writes queue.db and the message files it names into dst, an
// empty directory, and returns the counts of the snapshot.
func (q *Queue) backup(ctx context.Context, dst string) (ipc.QueueBackupResult, error) {
	var c ipc.QueueBackupResult
	q.backupMu.Lock()
	q.backups++
	q.backupMu.Unlock()
	defer q.releaseHeld()

	msgDir := filepath.Join(dst, "msg")
	if err := os.Mkdir(msgDir, dirMode); err != nil {
		return c, err
	}
	f, err := os.OpenFile(filepath.Join(dst, dbName), os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, fileMode)
	if err != nil {
		return c, fmt.Errorf("create database copy: %w", err)
	}
	var files []uint64
	err = q.db.View(func(tx *bolt.Tx) error {
		if _, err := tx.WriteTo(f); err != nil {
			return fmt.Errorf("write database copy: %w", err)
		}
		c.Recipients = uint64(tx.Bucket([]byte(bucketRcpts)).Stats().KeyN)
		return tx.Bucket([]byte(bucketMsgs)).ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return fmt.Errorf("%w: message key %x; run moxctl verifydata", errCorrupt, k)
			}
			m, err := unmarshalMessage(binary.BigEndian.Uint64(k), v)
			if err != nil {
				// Its file cannot be named: a backup without it
				// would lose the message silently.
				return fmt.Errorf("%w; run moxctl verifydata", err)
			}
			files = append(files, m.FileID)
			return nil
		})
	})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return c, err
	}
	c.Messages = uint64(len(files))

	dirs := map[string]bool{}
	for i, id := range files {
		if i%256 == 0 && ctx.Err() != nil {
			return c, fmt.Errorf("backup stopped: %w", ctx.Err())
		}
		fan := filepath.Join(msgDir, fmt.Sprintf("%04x", id>>fanShift))
		if !dirs[fan] {
			if err := os.Mkdir(fan, dirMode); err != nil && !errors.Is(err, fs.ErrExist) {
				return c, err
			}
			dirs[fan] = true
		}
		p := filepath.Join(fan, strconv.FormatUint(id, 16))
		if err := durable.LinkOrCopy(q.filePath(id), p, fileMode); err != nil {
			return c, fmt.Errorf("message file %d: %w", id, err)
		}
		c.Files++
	}
	for d := range dirs {
		if err := durable.SyncDir(d); err != nil {
			return c, err
		}
	}
	return c, durable.SyncDir(msgDir)
}

// releaseHeld ends a backup: when it was the last one, the files held
// back meanwhile are deleted after a commit, on the commit goroutine
// (which owns clearUnlink). If that fails, their unlink records stay and
// the next start deletes them.
func (q *Queue) releaseHeld() {
	q.backupMu.Lock()
	q.backups--
	var l []uint64
	if q.backups == 0 {
		l, q.heldUnlink = q.heldUnlink, nil
	}
	q.backupMu.Unlock()
	if len(l) == 0 {
		return
	}
	err := q.do(func(w *wtx) error {
		w.after = append(w.after, func() {
			for _, id := range l {
				q.removeFile(id)
			}
		})
		return nil
	})
	if err != nil {
		q.log.Info("files of messages that left the queue during a backup are deleted at the next start", "files", len(l), "err", err)
	}
}

// backup writes the buffered evaluations, then a copy of reports.db to
// path.
func (r *reports) backup(path string) error {
	r.flush()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, fileMode)
	if err != nil {
		return err
	}
	err = r.db.View(func(tx *bolt.Tx) error {
		_, err := tx.WriteTo(f)
		return err
	})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// fdPath is a path that names the open directory f itself.
func fdPath(f *os.File) string {
	if runtime.GOOS == "linux" {
		return fmt.Sprintf("/proc/self/fd/%d", f.Fd())
	}
	return fmt.Sprintf("/dev/fd/%d", f.Fd())
}
