package queue

// Offline verification of a queue directory: the invariants of db.go,
// checked without changing anything. Tests run it after their operations;
// it is meant for moxctl verifydata as well.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Problem is one inconsistency Verify found.
type Problem struct {
	Where string // "message 12", "file 0000/1f", ...
	What  string
	Fixed bool // repaired by VerifyFix
}

// Verify checks the queue in dir (not in use by a running moxd-queue):
//
//   - every message record decodes, has at least one recipient, and its
//     file exists with the recorded size, below nextfile;
//   - every recipient record belongs to a message;
//   - a message with queued recipients that are not held has exactly one
//     due entry, of its kind, at the earliest of their next attempts; no
//     other due entries exist;
//   - every file in msg/ belongs to one message or is listed in unlink,
//     and no file at or above nextfile exists.
func Verify(dir string) ([]Problem, error) {
	return VerifyFix(dir, false)
}

// VerifyFix is Verify that, with fix, also repairs what is trivially safe
// to repair, which is what moxd-queue itself does when it starts: it
// deletes message files at or above nextfile (linked by a transaction that
// never committed, so never acknowledged) and whatever is left in tmp/
// (spooled messages that were never queued). Those are reported with
// Fixed set. Nothing else is changed: any other problem needs a look by
// hand. The database is held open (read-only, which keeps a moxd-queue
// from starting) while files are deleted.
func VerifyFix(dir string, fix bool) ([]Problem, error) {
	path := filepath.Join(dir, dbName)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("queue database: %w", err)
	}
	db, err := bolt.Open(path, fileMode, &bolt.Options{ReadOnly: true, Timeout: time.Second, FreelistType: bolt.FreelistMapType})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("queue database %s is in use; stop moxd-queue before verifying", path)
	} else if err != nil {
		return nil, fmt.Errorf("open queue database %s: %w", path, err)
	}
	defer db.Close()

	var problems []Problem
	add := func(where, format string, args ...any) {
		problems = append(problems, Problem{Where: where, What: fmt.Sprintf(format, args...)})
	}
	files := map[uint64]uint64{} // file id -> message id, 0 for unlink
	var nextfile uint64
	err = db.View(func(tx *bolt.Tx) error {
		for i, name := range allBuckets {
			// Buckets added after version 1 are created when moxd-queue
			// opens the database; an older one lacks them until then.
			if tx.Bucket([]byte(name)) == nil && i < v1Buckets {
				return fmt.Errorf("bucket %s missing", name)
			}
		}
		nextmsg := counter(tx, metaNextmsg)
		nextfile = counter(tx, metaNextfile)
		rcpts := map[uint64][]*Recipient{}
		err := tx.Bucket([]byte(bucketRcpts)).ForEach(func(k, v []byte) error {
			rc, err := unmarshalRecipient(k, v)
			if err != nil {
				add("recipient record", "%v", err)
				return nil
			}
			rcpts[rc.Msg] = append(rcpts[rc.Msg], rc)
			return nil
		})
		if err != nil {
			return err
		}
		type dueEntry struct {
			kind byte
			next time.Time
		}
		due := map[uint64][]dueEntry{}
		tx.Bucket([]byte(bucketDue)).ForEach(func(k, v []byte) error {
			t, id, ok := parseDueKey(k)
			if !ok {
				add("due index", "key %x", k)
				return nil
			}
			due[id] = append(due[id], dueEntry{k[0], t})
			return nil
		})
		err = tx.Bucket([]byte(bucketMsgs)).ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				add("message records", "key %x", k)
				return nil
			}
			id := binary.BigEndian.Uint64(k)
			where := fmt.Sprintf("message %d", id)
			m, err := unmarshalMessage(id, v)
			if err != nil {
				add(where, "%v", err)
				return nil
			}
			if id >= nextmsg {
				add(where, "id at or above nextmsg %d", nextmsg)
			}
			if m.FileID >= nextfile {
				add(where, "file %d at or above nextfile %d", m.FileID, nextfile)
			}
			if other, ok := files[m.FileID]; ok {
				add(where, "file %d also belongs to message %d", m.FileID, other)
			}
			files[m.FileID] = id
			p := filepath.Join(dir, "msg", fmt.Sprintf("%04x", m.FileID>>fanShift), strconv.FormatUint(m.FileID, 16))
			if fi, err := os.Stat(p); err != nil {
				add(where, "message file: %v", err)
			} else if fi.Size() != m.Size {
				add(where, "message file has %d bytes, record says %d", fi.Size(), m.Size)
			}
			rs := rcpts[id]
			delete(rcpts, id)
			if len(rs) == 0 {
				add(where, "no recipients")
			}
			next := dueOf(rs)
			d := due[id]
			delete(due, id)
			switch {
			case next.IsZero() && len(d) > 0:
				add(where, "due entry without queued recipients")
			case !next.IsZero() && len(d) != 1:
				add(where, "%d due entries, want 1", len(d))
			case !next.IsZero() && (d[0].kind != dueKind(m) || !d[0].next.Equal(next)):
				add(where, "due entry %c at %v, want %c at %v", d[0].kind, d[0].next, dueKind(m), next)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for id := range rcpts {
			add(fmt.Sprintf("message %d", id), "recipients without message record")
		}
		for id := range due {
			add(fmt.Sprintf("message %d", id), "due entry without message record")
		}
		verifyRetired(tx, add)
		return tx.Bucket([]byte(bucketUnlink)).ForEach(func(k, v []byte) error {
			if len(k) == 8 {
				files[binary.BigEndian.Uint64(k)] = 0
			}
			return nil
		})
	})
	if err != nil {
		return problems, err
	}

	msgDir := filepath.Join(dir, "msg")
	fans, err := os.ReadDir(msgDir)
	if err != nil {
		return problems, err
	}
	for _, fan := range fans {
		entries, err := os.ReadDir(filepath.Join(msgDir, fan.Name()))
		if err != nil {
			return problems, err
		}
		for _, e := range entries {
			where := "file " + fan.Name() + "/" + e.Name()
			id, err := strconv.ParseUint(e.Name(), 16, 64)
			if err != nil || fmt.Sprintf("%04x", id>>fanShift) != fan.Name() {
				add(where, "not a message file name")
				continue
			}
			if id >= nextfile {
				add(where, "at or above nextfile %d (left by a transaction that did not commit)", nextfile)
				if fix {
					if err := os.Remove(filepath.Join(msgDir, fan.Name(), e.Name())); err != nil {
						return problems, err
					}
					problems[len(problems)-1].Fixed = true
				}
			} else if _, ok := files[id]; !ok {
				add(where, "no message refers to it")
			}
		}
	}
	if fix {
		tmpDir := filepath.Join(dir, "tmp")
		entries, err := os.ReadDir(tmpDir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return problems, err
		}
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(tmpDir, e.Name())); err != nil {
				return problems, err
			}
			problems = append(problems, Problem{Where: "tmp/" + e.Name(), What: "left by a moxd-queue that stopped (never queued)", Fixed: true})
		}
	}
	return problems, nil
}

// verifyRetired checks that retired records decode and that the fromids
// index and the retired records of messages with a FromID agree.
func verifyRetired(tx *bolt.Tx, add func(where, format string, args ...any)) {
	rb := tx.Bucket([]byte(bucketRetired))
	fb := tx.Bucket([]byte(bucketFromIDs))
	if rb == nil {
		return
	}
	rb.ForEach(func(k, v []byte) error {
		r, err := unmarshalRetired(k, v)
		if err != nil {
			add("retired record", "%v", err)
			return nil
		}
		if r.FromID != "" && (fb == nil || fb.Get(fromIDKey(r.FromID, k)) == nil) {
			add(fmt.Sprintf("retired %d.%d", r.Msg, r.Seq), "from id %s missing in the fromids index", r.FromID)
		}
		return nil
	})
	if fb == nil {
		return
	}
	fb.ForEach(func(k, v []byte) error {
		i := bytes.IndexByte(k, 0)
		if i < 0 || len(k)-i-1 != 20 {
			add("fromids index", "key %x", k)
			return nil
		}
		if rb.Get(k[i+1:]) == nil {
			add("fromids index", "entry for from id %s points to no retired record", k[:i])
		}
		return nil
	})
}
