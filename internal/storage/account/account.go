// Package account keeps one mail account of moxd-store: its bbolt database
// (index.db) and its immutable message files (msg/<fan>/<id>), with the
// group commit, crash recovery, imports, backup and offline verification of
// docs/storage.md, which is the design this package implements.
//
// Only moxd-store runs this code (and moxctl's offline verifydata through
// Verify). An Account is opened by one process at a time: bbolt's file lock
// makes a second opener fail after Options.LockTimeout.
//
// Implementation notes:
//
//   - Every write transaction runs on the account's commit goroutine
//     (commit.go). Callers queue operations and wait; the goroutine batches
//     whatever is queued into one transaction, links message files, fsyncs
//     each touched directory once, commits, and only then answers. Reads use
//     their own read transactions and never wait for the writer.
//   - Operations are closures over a *wtx. They must be idempotent: if the
//     batch transaction fails, each operation is run again alone so that it
//     gets its own error. An operation that fails before writing anything
//     returns its error wrapped by clean, which keeps the batch going.
//   - Message files are written once and never changed. Expunging the last
//     reference to a file records it in the unlink bucket; the file is
//     removed after the commit (never while a backup runs) and the record is
//     cleared by a later transaction.
package account

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"moxd/internal/durable"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Options configure an opened account.
type Options struct {
	Log         *slog.Logger
	Now         func() time.Time // nil: time.Now
	MaxMessage  int64            // body size limit; 0: 100 MiB
	Quota       int64            // bytes; 0: unlimited. Deliveries and appends beyond it fail with ErrQuota.
	LockTimeout time.Duration    // how long Open waits for the database lock; 0: 5s
	Junk        JunkRules        // automatic junk flags (junk.go); the zero value: DefaultJunkRules
	// OnChange is called after each commit, outside any transaction, on the
	// commit goroutine: it must not block.
	OnChange func(Change)
}

// Change reports that a mailbox changed up to ModSeq. One is sent per touched
// mailbox per commit; MailboxID 0 means the mailbox list changed.
type Change struct {
	MailboxID uint32
	ModSeq    uint64
}

// Errors callers test with errors.Is. Returned errors wrap them with details.
var (
	ErrQuota       = errors.New("account is over its quota; delete messages or raise the account's quota")
	ErrNotFound    = errors.New("mailbox does not exist")
	ErrExists      = errors.New("already exists")
	ErrUIDValidity = errors.New("mailbox uidvalidity changed; select the mailbox again")
	ErrBadName     = errors.New("name not acceptable")
	ErrClosed      = errors.New("account is closed; open it again")
	ErrTooLarge    = errors.New("message is larger than the size limit")
	ErrBadBody     = errors.New("message body refused; send the message again")
)

const (
	defaultMaxMessage  = 100 << 20
	defaultLockTimeout = 5 * time.Second
	indexName          = "index.db"
	dirMode            = 0o700
	fileMode           = 0o600
)

// Account is one opened account. All methods are safe for concurrent use.
type Account struct {
	dir      string
	log      *slog.Logger
	now      func() time.Time
	onChange func(Change)
	db       *bolt.DB

	maxMessage atomic.Int64
	junk       atomic.Pointer[JunkRules]

	quota      atomic.Int64
	usageSize  atomic.Int64
	usageCount atomic.Int64
	commits    atomic.Int64 // write transactions committed; tests count batching

	// Commit queue (commit.go).
	qmu      sync.Mutex
	queue    []*op
	closed   bool
	wake     chan struct{}
	loopDone chan struct{}

	// Keyword id cache, filled from committed data only.
	kwmu     sync.RWMutex
	kwByID   map[uint32]string
	kwByFold map[string]uint32

	// Backups in progress hold back file unlinking.
	backupMu sync.Mutex
	backups  int

	// Owned by the commit goroutine.
	pendingUnlink []uint64 // committed in unlink, files not yet removed
	clearUnlink   []uint64 // files removed, records to clear
}

// Create makes a new account in dir (created with mode 0700 if needed) with
// a database and the default mailboxes INBOX, Sent, Drafts, Trash, Archive
// and Junk (with their RFC 6154 special-use), all subscribed. It fails with
// ErrExists if dir already has a database.
func Create(dir string, opts Options) (*Account, error) {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("create account directory: %w", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, indexName)); err == nil {
		return nil, fmt.Errorf("create account in %s: database %w", dir, ErrExists)
	}
	for _, d := range []string{"msg", "tmp"} {
		if err := os.Mkdir(filepath.Join(dir, d), dirMode); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("create account directory: %w", err)
		}
	}
	return open(dir, opts, true)
}

// Open opens the account in dir: it recovers from a crash as
// docs/storage.md "Commit protocol" step 5 describes and upgrades the
// database schema when needed.
func Open(dir string, opts Options) (*Account, error) {
	if _, err := os.Stat(filepath.Join(dir, indexName)); err != nil {
		return nil, fmt.Errorf("open account %s: %w (create the account first, or restore it from a backup)", dir, err)
	}
	return open(dir, opts, false)
}

func open(dir string, opts Options, create bool) (*Account, error) {
	a := &Account{
		dir:      dir,
		log:      opts.Log,
		now:      opts.Now,
		onChange: opts.OnChange,
		wake:     make(chan struct{}, 1),
		loopDone: make(chan struct{}),
		kwByID:   map[uint32]string{},
		kwByFold: map[string]uint32{},
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	a.SetMaxMessage(opts.MaxMessage)
	a.SetJunkRules(opts.Junk)
	a.quota.Store(opts.Quota)
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = defaultLockTimeout
	}
	db, err := openDB(filepath.Join(dir, indexName), false, timeout)
	if err != nil {
		return nil, err
	}
	a.db = db
	if create {
		err = a.initDB()
		if err == nil {
			err = durable.SyncDir(dir)
		}
	} else {
		err = a.checkSchema()
		if err == nil {
			err = a.recover()
		}
		if err == nil {
			err = a.fillDeletedSizes()
		}
	}
	if err == nil {
		err = a.loadState()
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	go a.loop()
	return a, nil
}

// openDB opens an account database with the options of docs/storage.md.
func openDB(path string, readOnly bool, timeout time.Duration) (*bolt.DB, error) {
	db, err := bolt.Open(path, fileMode, &bolt.Options{
		Timeout:         timeout,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: 256 << 20,
		ReadOnly:        readOnly,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("account database %s is in use by another process (lock not obtained within %v); stop the other moxd-store or moxctl using this account", path, timeout)
	} else if err != nil {
		return nil, fmt.Errorf("open account database %s: %w", path, err)
	}
	return db, nil
}

// initDB fills a new database: buckets, counters, default mailboxes.
func (a *Account) initDB() error {
	return a.db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket([]byte(bucketMeta))
		for k, v := range map[string]uint64{metaSchema: schemaVersion, metaNextfile: 1, metaUIDValidity: 1, metaNextmailbox: 1} {
			if err := meta.Put([]byte(k), key64(v)); err != nil {
				return err
			}
		}
		w := a.newWtx(tx)
		defaults := []struct {
			name string
			use  SpecialUse
		}{
			{"INBOX", SpecialNone}, {"Sent", SpecialSent}, {"Drafts", SpecialDrafts},
			{"Trash", SpecialTrash}, {"Archive", SpecialArchive}, {"Junk", SpecialJunk},
		}
		for _, d := range defaults {
			if _, err := w.createMailbox(d.name, d.use, false); err != nil {
				return err
			}
			if err := w.bucket(bucketSubscriptions).Put([]byte(d.name), []byte{}); err != nil {
				return err
			}
		}
		return w.flush()
	})
}

// checkSchema refuses databases from a newer moxd and upgrades older ones.
func (a *Account) checkSchema() error {
	var schema uint64
	err := a.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket([]byte(bucketMeta))
		if meta == nil {
			return fmt.Errorf("account database %s has no meta bucket: it is not a moxd account database or is damaged; restore it from a backup", a.dir)
		}
		schema = be64(meta.Get([]byte(metaSchema)))
		return nil
	})
	if err != nil {
		return err
	}
	switch {
	case schema == 0:
		return fmt.Errorf("account database in %s has no schema version; restore it from a backup", a.dir)
	case schema > schemaVersion:
		return fmt.Errorf("account database in %s has schema %d, newer than the %d this moxd understands; run the moxd version that wrote it or a newer one", a.dir, schema, schemaVersion)
	}
	// Schema 1 is the first layout; later versions add their upgrade steps
	// here, each in its own transaction that ends by writing the new schema.
	return a.db.View(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if tx.Bucket([]byte(name)) == nil {
				return fmt.Errorf("account database in %s lacks bucket %q; run verifydata or restore it from a backup", a.dir, name)
			}
		}
		return nil
	})
}

// recover brings the directory in line with the committed database
// (docs/storage.md "Commit protocol" step 5).
func (a *Account) recover() error {
	tmp := filepath.Join(a.dir, "tmp")
	if err := emptyDir(tmp); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(a.dir, "msg"), dirMode); err != nil {
		return fmt.Errorf("recover account: %w", err)
	}
	var nextfile uint64
	var hidden []uint32
	err := a.db.View(func(tx *bolt.Tx) error {
		nextfile = be64(tx.Bucket([]byte(bucketMeta)).Get([]byte(metaNextfile)))
		return tx.Bucket([]byte(bucketMailboxes)).ForEach(func(k, v []byte) error {
			r, err := parseMailboxRec(v)
			if err == nil && r.Hidden && len(k) == 4 {
				hidden = append(hidden, beU32(k))
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("recover account: %w", err)
	}
	// Files at or above nextfile were linked by a batch that never
	// committed; only fan-out directories from nextfile>>12 up can hold them.
	removed, err := removeFilesFrom(filepath.Join(a.dir, "msg"), nextfile)
	if err != nil {
		return err
	}
	if removed > 0 {
		a.log.Info("removed message files of an uncommitted transaction", "files", removed)
	}
	if len(hidden) > 0 {
		err := a.db.Update(func(tx *bolt.Tx) error {
			w := a.newWtx(tx)
			for _, id := range hidden {
				if err := w.dropMailbox(id); err != nil {
					return err
				}
			}
			return w.flush()
		})
		if err != nil {
			return fmt.Errorf("drop unpublished import mailboxes: %w", err)
		}
		a.log.Info("dropped unpublished import mailboxes", "count", len(hidden))
	}
	var unlink []uint64
	err = a.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketUnlink)).ForEach(func(k, v []byte) error {
			unlink = append(unlink, be64(k))
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("recover account: %w", err)
	}
	if len(unlink) == 0 {
		return nil
	}
	if err := a.removeFiles(unlink); err != nil {
		return err
	}
	return a.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketUnlink))
		for _, id := range unlink {
			if err := b.Delete(key64(id)); err != nil {
				return err
			}
		}
		return nil
	})
}

// loadState reads usage counters and keywords into memory.
func (a *Account) loadState() error {
	return a.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket([]byte(bucketMeta))
		a.usageSize.Store(int64(be64(meta.Get([]byte(metaSize)))))
		a.usageCount.Store(int64(be64(meta.Get([]byte(metaCount)))))
		a.kwmu.Lock()
		defer a.kwmu.Unlock()
		return tx.Bucket([]byte(bucketKwids)).ForEach(func(k, v []byte) error {
			if len(k) == 4 {
				a.kwByID[beU32(k)] = string(v)
				a.kwByFold[foldKeyword(string(v))] = beU32(k)
			}
			return nil
		})
	})
}

// Close stops accepting operations, waits for queued ones to commit and
// closes the database.
func (a *Account) Close() error {
	a.qmu.Lock()
	if a.closed {
		a.qmu.Unlock()
		return ErrClosed
	}
	a.closed = true
	a.qmu.Unlock()
	a.signal()
	<-a.loopDone
	if err := a.db.Close(); err != nil {
		return fmt.Errorf("close account database: %w", err)
	}
	return nil
}

// Dir returns the account's directory.
func (a *Account) Dir() string { return a.dir }

// Usage returns the committed total size and number of messages, staged
// imports included.
func (a *Account) Usage() (size int64, messages int64) {
	return a.usageSize.Load(), a.usageCount.Load()
}

// SetQuota changes the quota in bytes (0: unlimited) for later operations.
func (a *Account) SetQuota(bytes int64) { a.quota.Store(bytes) }

// SetMaxMessage changes the body size limit of later deliveries and
// imports; 0 means the default, 100 MiB.
func (a *Account) SetMaxMessage(bytes int64) {
	if bytes <= 0 {
		bytes = defaultMaxMessage
	}
	a.maxMessage.Store(bytes)
}

// fanName, fileDir and filePath name message files (docs/storage.md
// "Directory layout"): msg/<id>>12 as 4 hex digits>/<id in hex>.
func fanName(id uint64) string { return fmt.Sprintf("%04x", id>>12) }

func (a *Account) fileDir(id uint64) string {
	return filepath.Join(a.dir, "msg", fanName(id))
}

func (a *Account) filePath(id uint64) string {
	return filepath.Join(a.dir, "msg", fanName(id), strconv.FormatUint(id, 16))
}

// removeFiles deletes message files; missing ones are fine.
func (a *Account) removeFiles(ids []uint64) error {
	for _, id := range ids {
		if err := os.Remove(a.filePath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove expunged message file: %w", err)
		}
	}
	return nil
}

// removeFilesFrom deletes message files with id >= from below msgDir.
func removeFilesFrom(msgDir string, from uint64) (int, error) {
	fans, err := os.ReadDir(msgDir)
	if err != nil {
		return 0, fmt.Errorf("read message directory: %w", err)
	}
	n := 0
	for _, fan := range fans {
		fanID, err := strconv.ParseUint(fan.Name(), 16, 64)
		if err != nil || len(fan.Name()) < 4 || fanID < from>>12 {
			continue
		}
		dir := filepath.Join(msgDir, fan.Name())
		files, err := os.ReadDir(dir)
		if err != nil {
			return n, fmt.Errorf("read message directory: %w", err)
		}
		for _, f := range files {
			id, err := strconv.ParseUint(f.Name(), 16, 64)
			if err != nil || id < from {
				continue
			}
			if err := os.Remove(filepath.Join(dir, f.Name())); err != nil {
				return n, fmt.Errorf("remove uncommitted message file: %w", err)
			}
			n++
		}
	}
	return n, nil
}

// emptyDir removes everything inside dir, creating dir if it is missing.
func emptyDir(dir string) error {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	l, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read %s: %w", dir, err)
	}
	for _, e := range l {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("empty %s: %w", dir, err)
		}
	}
	return nil
}

func beU32(b []byte) uint32 {
	if len(b) < 4 {
		return 0
	}
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// ctxErr is ctx.Err wrapped with what was waited for.
func ctxErr(ctx context.Context, what string) error {
	return fmt.Errorf("%s: %w", what, ctx.Err())
}
