package account

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// Problem is one violated invariant found by Verify.
type Problem struct {
	Where string // e.g. "mailbox Sent uid 12", "file msg/0000/1f"
	What  string
	Fixed bool
}

// Verify checks an account directory that no process has open against
// every invariant of docs/storage.md. The database is opened read-only
// unless fix is set; with fix, what can be repaired is repaired in one
// transaction (messages whose file is gone are expunged, counters and
// summaries recomputed, stray files removed) and reported with Fixed set.
// The error is for failures to check at all.
func Verify(dir string, fix bool, log *slog.Logger) ([]Problem, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	path := filepath.Join(dir, indexName)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return []Problem{{Where: indexName, What: "account database is missing; restore it from a backup"}}, nil
	} else if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	db, err := openDB(path, !fix, defaultLockTimeout)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	v := &verifier{dir: dir, fix: fix, log: log}
	if fix {
		err = db.Update(v.run)
	} else {
		err = db.View(v.run)
	}
	if err != nil {
		return v.problems, fmt.Errorf("verify: %w", err)
	}
	if fix {
		for _, p := range v.removeAfter {
			if err := os.RemoveAll(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return v.problems, fmt.Errorf("verify: remove: %w", err)
			}
		}
	}
	return v.problems, nil
}

// verifier holds the state of one Verify.
type verifier struct {
	dir         string
	fix         bool
	log         *slog.Logger
	problems    []Problem
	fixes       []func(tx *bolt.Tx) error
	removeAfter []string // files to remove after a successful fix commit
}

func (v *verifier) problem(where, what string, fix func(tx *bolt.Tx) error) {
	p := Problem{Where: where, What: what}
	if v.fix && fix != nil {
		p.Fixed = true
		v.fixes = append(v.fixes, fix)
	}
	v.log.Warn("account problem", "where", where, "what", what, "fixed", p.Fixed)
	v.problems = append(v.problems, p)
}

// vmailbox is a mailbox as Verify sees it.
type vmailbox struct {
	rec     mailboxRec
	sum     summaryRec
	hasSum  bool
	recount summaryRec
	maxUID  uint32
	maxMod  uint64
	where   string
}

func (v *verifier) run(tx *bolt.Tx) error {
	for _, name := range allBuckets {
		if tx.Bucket([]byte(name)) == nil {
			v.problem(indexName, fmt.Sprintf("bucket %q is missing; restore the account from a backup", name), nil)
			return nil
		}
	}
	bk := func(name string) *bolt.Bucket { return tx.Bucket([]byte(name)) }
	meta := bk(bucketMeta)
	schema := be64(meta.Get([]byte(metaSchema)))
	if schema != schemaVersion {
		v.problem("meta", fmt.Sprintf("schema is %d, expected %d", schema, schemaVersion), nil)
		return nil
	}
	accModseq := be64(meta.Get([]byte(metaModseq)))
	nextfile := be64(meta.Get([]byte(metaNextfile)))
	newModseq := accModseq // raised by fixes
	tombstoneModseq := func() uint64 {
		// One modseq for all tombstones written by fixes.
		if newModseq == accModseq {
			newModseq++
		}
		return newModseq
	}

	// Mailboxes and names.
	mbs := map[uint32]*vmailbox{}
	err := bk(bucketMailboxes).ForEach(func(k, val []byte) error {
		id := beU32(k)
		rec, err := parseMailboxRec(val)
		if err != nil || len(k) != 4 {
			v.problem(fmt.Sprintf("mailbox id %d", id), "mailbox record does not decode: "+errString(err), nil)
			return nil
		}
		m := &vmailbox{rec: rec, where: "mailbox " + rec.Name}
		if sv := bk(bucketSummary).Get(k); sv != nil {
			m.sum, err = parseSummaryRec(sv)
			m.hasSum = err == nil
		}
		mbs[id] = m
		if rec.Hidden {
			v.problem(m.where+" (import staging)", "unpublished import mailbox left behind (dropped at next open)", func(tx *bolt.Tx) error {
				return dropStaging(tx, id)
			})
		} else if beU32(bk(bucketNames).Get([]byte(rec.Name))) != id {
			name, key := rec.Name, slices.Clone(k)
			v.problem(m.where, "mailbox has no name entry", func(tx *bolt.Tx) error {
				return tx.Bucket([]byte(bucketNames)).Put([]byte(name), key)
			})
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = bk(bucketNames).ForEach(func(k, val []byte) error {
		m := mbs[beU32(val)]
		if m == nil || m.rec.Hidden || m.rec.Name != string(k) {
			key := slices.Clone(k)
			v.problem(fmt.Sprintf("mailbox name %q", k), "name entry points to no such mailbox", func(tx *bolt.Tx) error {
				return tx.Bucket([]byte(bucketNames)).Delete(key)
			})
		}
		return nil
	})
	if err != nil {
		return err
	}

	// Files on disk.
	onDisk := map[uint64]int64{}
	msgDir := filepath.Join(v.dir, "msg")
	fans, err := os.ReadDir(msgDir)
	if err != nil {
		v.problem("msg", "message directory unreadable: "+err.Error(), nil)
	}
	for _, fan := range fans {
		fanPath := filepath.Join(msgDir, fan.Name())
		fanID, perr := strconv.ParseUint(fan.Name(), 16, 64)
		if perr != nil || len(fan.Name()) != 4 || !fan.IsDir() {
			v.problem("msg/"+fan.Name(), "unexpected entry in message directory", nil)
			continue
		}
		files, err := os.ReadDir(fanPath)
		if err != nil {
			v.problem("msg/"+fan.Name(), "unreadable: "+err.Error(), nil)
			continue
		}
		for _, f := range files {
			where := "file msg/" + fan.Name() + "/" + f.Name()
			id, perr := strconv.ParseUint(f.Name(), 16, 64)
			info, ierr := f.Info()
			if perr != nil || id>>12 != fanID || strconv.FormatUint(id, 16) != f.Name() || ierr != nil || !info.Mode().IsRegular() {
				p := filepath.Join(fanPath, f.Name())
				v.problem(where, "unexpected entry in message directory", v.remove(p))
				continue
			}
			onDisk[id] = info.Size()
		}
	}

	// File records.
	type vfile struct {
		refs, counted uint32
		size          int64
	}
	files := map[uint64]*vfile{}
	err = bk(bucketFiles).ForEach(func(k, val []byte) error {
		id := be64(k)
		refs, size, err := fileRefs(val)
		if err != nil {
			v.problem(fileWhere(id), "file record does not decode: "+err.Error(), nil)
			return nil
		}
		files[id] = &vfile{refs: refs, size: size}
		return nil
	})
	if err != nil {
		return err
	}
	unlink := map[uint64]bool{}
	bk(bucketUnlink).ForEach(func(k, val []byte) error {
		unlink[be64(k)] = true
		return nil
	})

	// Messages.
	kwids := bk(bucketKwids)
	var junkID, notJunkID uint32 // 0: the account has no such keyword
	kwids.ForEach(func(k, val []byte) error {
		switch foldKeyword(string(val)) {
		case foldJunk:
			junkID = beU32(k)
		case foldNotJunk:
			notJunkID = beU32(k)
		}
		return nil
	})
	var totalSize, totalCount int64
	type dropped struct {
		mb, uid uint32
		modseq  uint64
	}
	var drops []dropped
	c := bk(bucketMsgs).Cursor()
	for k, val := c.First(); k != nil; k, val = c.Next() {
		mbID, uid, ok := parseMsgKey(k)
		m := mbs[mbID]
		where := fmt.Sprintf("mailbox id %d uid %d", mbID, uid)
		if m != nil {
			where = fmt.Sprintf("%s uid %d", m.where, uid)
		}
		r, err := parseMsgRec(val)
		if !ok || err != nil {
			key := slices.Clone(k)
			v.problem(where, "message record does not decode: "+errString(err), func(tx *bolt.Tx) error {
				return tx.Bucket([]byte(bucketMsgs)).Delete(key)
			})
			continue
		}
		if m == nil {
			v.problem(where, "message of a mailbox that does not exist", func(tx *bolt.Tx) error {
				if err := tx.Bucket([]byte(bucketMsgs)).Delete(msgKey(mbID, uid)); err != nil {
					return err
				}
				return tx.Bucket([]byte(bucketModseq)).Delete(modseqKey(mbID, r.ModSeq, uid))
			})
			continue
		}
		if m.rec.Hidden && v.fix {
			continue // dropped with its staging mailbox
		}
		f := files[r.FileID]
		_, exists := onDisk[r.FileID]
		if f == nil || !exists {
			what := fmt.Sprintf("message file %s is missing", filePathRel(r.FileID))
			if f == nil {
				what = fmt.Sprintf("file record %x is missing", r.FileID)
			}
			v.problem(where, what+"; the message is expunged by verifydata -fix", func(tx *bolt.Tx) error {
				ms := tombstoneModseq()
				if err := tx.Bucket([]byte(bucketMsgs)).Delete(msgKey(mbID, uid)); err != nil {
					return err
				}
				if err := tx.Bucket([]byte(bucketModseq)).Delete(modseqKey(mbID, r.ModSeq, uid)); err != nil {
					return err
				}
				return tx.Bucket([]byte(bucketModseq)).Put(modseqKey(mbID, ms, uid), []byte{modseqExpunged})
			})
			if v.fix {
				drops = append(drops, dropped{mbID, uid, r.ModSeq})
				m.maxUID = max(m.maxUID, uid)
				continue
			}
		} else {
			f.counted++
		}
		totalSize += r.Size
		totalCount++
		m.recount.add(&r, 1)
		m.maxUID = max(m.maxUID, uid)
		m.maxMod = max(m.maxMod, r.ModSeq)
		if r.ModSeq > accModseq || r.CreateSeq > r.ModSeq {
			v.problem(where, fmt.Sprintf("modseq %d (createseq %d) above the account modseq %d", r.ModSeq, r.CreateSeq, accModseq), func(tx *bolt.Tx) error {
				newModseq = max(newModseq, r.ModSeq)
				return nil
			})
		}
		if st := bk(bucketModseq).Get(modseqKey(mbID, r.ModSeq, uid)); len(st) != 1 || st[0] != modseqPresent {
			v.problem(where, fmt.Sprintf("no modseq index entry at modseq %d", r.ModSeq), func(tx *bolt.Tx) error {
				return tx.Bucket([]byte(bucketModseq)).Put(modseqKey(mbID, r.ModSeq, uid), []byte{modseqPresent})
			})
		}
		for _, id := range r.Keywords {
			if kwids.Get(key32(id)) == nil {
				v.problem(where, fmt.Sprintf("unknown keyword id %d", id), nil)
			}
		}
		// The training state follows the junk keywords (junk.go); records
		// from before it existed have none.
		want := trainingFor(junkID != 0 && slices.Contains(r.Keywords, junkID), notJunkID != 0 && slices.Contains(r.Keywords, notJunkID))
		if r.Training != trainUnset && r.Training != want {
			key := slices.Clone(k)
			v.problem(where, fmt.Sprintf("junk training state %s, but its keywords ask for %s", r.Training, want), func(tx *bolt.Tx) error {
				r.Training = want
				return tx.Bucket([]byte(bucketMsgs)).Put(key, r.marshal())
			})
		}
	}

	// Modseq index.
	msgs := bk(bucketMsgs)
	c = bk(bucketModseq).Cursor()
	for k, val := c.First(); k != nil; k, val = c.Next() {
		mbID, ms, uid, ok := parseModseqKey(k)
		m := mbs[mbID]
		key := slices.Clone(k)
		del := func(tx *bolt.Tx) error { return tx.Bucket([]byte(bucketModseq)).Delete(key) }
		if !ok || m == nil || len(val) != 1 || val[0] > modseqExpunged {
			v.problem(fmt.Sprintf("modseq index mailbox id %d modseq %d uid %d", mbID, ms, uid), "entry for no mailbox or with a bad state", del)
			continue
		}
		if m.rec.Hidden && v.fix {
			continue
		}
		where := fmt.Sprintf("%s uid %d modseq %d", m.where, uid, ms)
		m.maxUID = max(m.maxUID, uid)
		m.maxMod = max(m.maxMod, ms)
		if ms > accModseq {
			v.problem(where, fmt.Sprintf("modseq above the account modseq %d", accModseq), func(tx *bolt.Tx) error {
				newModseq = max(newModseq, ms)
				return nil
			})
		}
		if val[0] == modseqExpunged {
			continue
		}
		if slices.Contains(drops, dropped{mbID, uid, ms}) {
			continue
		}
		mv := msgs.Get(msgKey(mbID, uid))
		if mv == nil {
			v.problem(where, "modseq index names a message that does not exist", func(tx *bolt.Tx) error {
				return tx.Bucket([]byte(bucketModseq)).Put(key, []byte{modseqExpunged})
			})
			continue
		}
		if r, err := parseMsgRec(mv); err == nil && r.ModSeq != ms {
			v.problem(where, fmt.Sprintf("stale modseq index entry (message has modseq %d)", r.ModSeq), del)
		}
	}

	// Summaries.
	for id, m := range mbs {
		if m.rec.Hidden && v.fix {
			continue
		}
		want := m.recount
		want.UIDNext = max(m.sum.UIDNext, m.maxUID+1)
		want.HighestModSeq = max(m.sum.HighestModSeq, m.maxMod)
		if m.sum.DeletedSize < 0 {
			// A summary from before deleted sizes: Open adds it.
			want.DeletedSize = -1
		}
		if !m.hasSum || want != m.sum {
			idk := key32(id)
			v.problem(m.where+" summary", fmt.Sprintf("summary %+v differs from a recount %+v", m.sum, want), func(tx *bolt.Tx) error {
				return tx.Bucket([]byte(bucketSummary)).Put(idk, want.marshal())
			})
		}
		if m.maxUID >= m.sum.UIDNext && m.hasSum {
			// The summary fix above raises uidnext.
			v.problem(fmt.Sprintf("%s uid %d", m.where, m.maxUID), fmt.Sprintf("uid not below uidnext %d", m.sum.UIDNext), func(*bolt.Tx) error { return nil })
		}
	}

	// File records against references and disk.
	for id, f := range files {
		where := fileWhere(id)
		idc := id
		if f.counted == 0 {
			v.problem(where, "file record without messages", func(tx *bolt.Tx) error {
				if err := tx.Bucket([]byte(bucketFiles)).Delete(key64(idc)); err != nil {
					return err
				}
				v.removeAfter = append(v.removeAfter, filepath.Join(v.dir, filePathRel(idc)))
				return nil
			})
			continue
		}
		if f.refs != f.counted {
			counted := f.counted
			v.problem(where, fmt.Sprintf("reference count %d, but %d messages use the file", f.refs, f.counted), func(tx *bolt.Tx) error {
				b := tx.Bucket([]byte(bucketFiles))
				nv, err := setFileRefs(b.Get(key64(idc)), counted)
				if err != nil {
					return err
				}
				return b.Put(key64(idc), nv)
			})
		}
		if size, ok := onDisk[id]; ok && size != f.size {
			v.problem(where, fmt.Sprintf("file has %d bytes, the database says %d; restore the file from a backup", size, f.size), nil)
		}
	}
	for id := range onDisk {
		where := fileWhere(id)
		p := filepath.Join(v.dir, filePathRel(id))
		switch {
		case id >= nextfile:
			v.problem(where, fmt.Sprintf("file at or above the next file id %x (left by an uncommitted transaction)", nextfile), v.remove(p))
		case unlink[id]:
			idc := id
			v.problem(where, "file of expunged messages not yet removed", func(tx *bolt.Tx) error {
				v.removeAfter = append(v.removeAfter, p)
				return tx.Bucket([]byte(bucketUnlink)).Delete(key64(idc))
			})
		case files[id] == nil:
			v.problem(where, "file not used by any message", v.remove(p))
		}
	}
	for id := range unlink {
		if files[id] != nil {
			v.problem(fileWhere(id), "file is listed for removal but still has a record", nil)
		}
	}

	// Counters.
	if sz, n := int64(be64(meta.Get([]byte(metaSize)))), int64(be64(meta.Get([]byte(metaCount)))); sz != totalSize || n != totalCount {
		v.problem("meta", fmt.Sprintf("account size %d and count %d differ from a recount (%d, %d)", sz, n, totalSize, totalCount), func(tx *bolt.Tx) error {
			m := tx.Bucket([]byte(bucketMeta))
			if err := m.Put([]byte(metaSize), key64(uint64(totalSize))); err != nil {
				return err
			}
			return m.Put([]byte(metaCount), key64(uint64(totalCount)))
		})
	}
	if maxID := maxKey64(bk(bucketFiles)); maxID >= nextfile {
		v.problem("meta", fmt.Sprintf("file record %x at or above the next file id %x", maxID, nextfile), func(tx *bolt.Tx) error {
			return tx.Bucket([]byte(bucketMeta)).Put([]byte(metaNextfile), key64(maxID+1))
		})
	}
	var maxMB uint32
	for id := range mbs {
		maxMB = max(maxMB, id)
	}
	if next := be64(meta.Get([]byte(metaNextmailbox))); uint64(maxMB) >= next {
		v.problem("meta", fmt.Sprintf("mailbox id %d at or above the next mailbox id %d", maxMB, next), func(tx *bolt.Tx) error {
			return tx.Bucket([]byte(bucketMeta)).Put([]byte(metaNextmailbox), key64(uint64(maxMB)+1))
		})
	}
	bk(bucketKeywords).ForEach(func(k, val []byte) error {
		if !bytes.Equal(kwids.Get(val), k) {
			v.problem(fmt.Sprintf("keyword %q", k), "keyword has no matching id record", nil)
		}
		return nil
	})

	// Staging files.
	if l, err := os.ReadDir(filepath.Join(v.dir, "tmp")); err == nil {
		for _, e := range l {
			v.problem("tmp/"+e.Name(), "temporary file left behind (removed at next open)", v.remove(filepath.Join(v.dir, "tmp", e.Name())))
		}
	}

	if !v.fix {
		return nil
	}
	for _, f := range v.fixes {
		if err := f(tx); err != nil {
			return err
		}
	}
	if newModseq != accModseq {
		if err := meta.Put([]byte(metaModseq), key64(newModseq)); err != nil {
			return err
		}
		// Tombstones and raised modseqs count as changes of their mailboxes.
		for _, d := range drops {
			if m := mbs[d.mb]; m != nil {
				s, err := parseSummaryRec(bk(bucketSummary).Get(key32(d.mb)))
				if err == nil {
					s.HighestModSeq = max(s.HighestModSeq, newModseq)
					if err := bk(bucketSummary).Put(key32(d.mb), s.marshal()); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// remove returns a fix that deletes path after the commit.
func (v *verifier) remove(path string) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		v.removeAfter = append(v.removeAfter, path)
		return nil
	}
}

// dropStaging deletes an unpublished import mailbox and its messages
// during a Verify fix; file references are settled by the recount fixes,
// so only records are removed here.
func dropStaging(tx *bolt.Tx, id uint32) error {
	prefix := key32(id)
	for _, b := range []string{bucketMsgs, bucketModseq} {
		if err := deletePrefix(tx.Bucket([]byte(b)), prefix); err != nil {
			return err
		}
	}
	if err := tx.Bucket([]byte(bucketSummary)).Delete(prefix); err != nil {
		return err
	}
	return tx.Bucket([]byte(bucketMailboxes)).Delete(prefix)
}

func maxKey64(b *bolt.Bucket) uint64 {
	k, _ := b.Cursor().Last()
	return be64(k)
}

func filePathRel(id uint64) string {
	return "msg/" + fanName(id) + "/" + strconv.FormatUint(id, 16)
}

func fileWhere(id uint64) string { return "file " + filePathRel(id) }

func errString(err error) string {
	if err == nil {
		return "bad key"
	}
	return err.Error()
}
