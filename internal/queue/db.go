package queue

// The queue database (queue.db, bbolt) and the message files.
//
// Layout of the queue's data directory:
//
//	queue/
//	  tmp/              spooled messages and files being written; emptied at start
//	  queue.db          the queue database (this file's schema)
//	  reports.db        DMARC evaluations for aggregate reports (reports.go)
//	  msg/<fan>/<id>    one immutable file per queued message
//
// <id> is the file id in lower-case hex, <fan> is id >> 12 as 4 hex
// digits. A file holds the complete message as it will be sent: the
// header lines the receiving role added (Received) followed by the
// message.
//
// Buckets. Integers in keys are big-endian, so cursor order is numeric
// order; values begin with a one-byte record version and use varints.
//
//	meta    "schema", "nextmsg", "nextfile"      counters, 8 bytes
//	msgs    msg id (8)                           Message
//	rcpts   msg id (8) · rcpt seq (4)            Recipient, one per recipient
//	due     kind (1) · next attempt (8) · msg id (8)
//	                                             empty; messages with a queued
//	                                             recipient not held; kind 'l'
//	                                             for local-only messages, 'o'
//	                                             for outbound ones
//	sent    account · 0 · time (8) · msg id (8)  per-account sending history of
//	                                             the last 24 hours: recipients
//	                                             and first-time recipients
//	known   account · 0 · normalized address     first time the account sent to
//	                                             it (8, Unix ns)
//	unlink  file id (8)                          empty: files to delete after
//	                                             their last reference went
//	retired retired time (8) · msg id (8) · seq (4)
//	                                             Retired: a recipient that was
//	                                             delivered, failed or dropped,
//	                                             kept for [queue] keep
//	suppress account · 0 · normalized address    Suppression
//	holdrules rule id (8)                        HoldRule
//	mtasts  domain                               cached MTA-STS policy
//	tlsseen account · 0 · recipient domain       what the domain's server
//	                                             offered (STARTTLS, REQUIRETLS)
//	hooks   hook id (8)                          Hook: webhook event to post
//	hookretired retired time (8) · hook id (8)   Hook: posted or given up
//	fromids from id · 0 · retired key (20)       empty: the retired records of
//	                                             messages sent with a unique
//	                                             MAIL FROM id, for DSNs
//
// All recipients of a message share its file and its next attempt: a
// delivery attempt takes every queued recipient of the message at once.
// Delivered recipients are removed; a message without recipients is
// removed with its file.
//
// Crash safety: a file is written in tmp/, fsynced, and hard-linked into
// msg/ inside the write transaction that records it, after which the
// directory is fsynced and the transaction commits; only then is the
// submitter answered. On open, tmp/ is emptied and files at or above the
// committed nextfile are deleted (they were linked by a transaction that
// never committed), and the unlink bucket is processed.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

const (
	bucketMeta   = "meta"
	bucketMsgs   = "msgs"
	bucketRcpts  = "rcpts"
	bucketDue    = "due"
	bucketSent   = "sent"
	bucketKnown  = "known"
	bucketUnlink = "unlink"

	bucketRetired   = "retired"
	bucketSuppress  = "suppress"
	bucketHoldRules = "holdrules"
	bucketMTASTS    = "mtasts"
	bucketTLSSeen   = "tlsseen"
	bucketFromIDs   = "fromids"
)

var allBuckets = [...]string{bucketMeta, bucketMsgs, bucketRcpts, bucketDue, bucketSent, bucketKnown, bucketUnlink,
	bucketRetired, bucketSuppress, bucketHoldRules, bucketMTASTS, bucketTLSSeen, bucketHooks, bucketHookRetired,
	bucketFromIDs}

// v1Buckets is how many of allBuckets schema version 1 had.
const v1Buckets = 7

const (
	metaSchema   = "schema"
	metaNextmsg  = "nextmsg"
	metaNextfile = "nextfile"
	metaNextrule = "nextrule"
)

// schemaVersion is the database layout this code reads and writes; a
// newer one is refused. Version 1 (accept and record only) is upgraded in
// place: version 2 only added buckets and record fields.
const schemaVersion = 2

// recordVersion is the first byte of every record value written; records
// of version 1 lack the fields added in version 2 and are still read.
const recordVersion = 2

// Kinds of due index entries.
const (
	dueLocal    = 'l' // local-only messages: delivered to store by the local retrier
	dueOutbound = 'o' // submitted messages and DSNs: delivery by the deliverer (outbound.go)
)

const (
	dbName         = "queue.db"
	dbLockTimeout  = 5 * time.Second
	dbMmapSize     = 256 << 20
	dirMode        = 0o700
	fileMode       = 0o600
	fanShift       = 12
	historyWindow  = 24 * time.Hour
	maxExtraFields = 32
)

// errCorrupt marks a record that does not decode.
var errCorrupt = errors.New("corrupt queue record")

// RequireTLS is the tri-state of a message's TLS requirement.
type RequireTLS uint8

const (
	RequireTLSUnset RequireTLS = 0 // neither REQUIRETLS nor "TLS-Required: No"
	RequireTLSYes   RequireTLS = 1 // MAIL FROM REQUIRETLS (RFC 8689 §4.1)
	RequireTLSNo    RequireTLS = 2 // "TLS-Required: No" header (RFC 8689 §5)
)

// Message is a queued message: one file, shared by its recipients.
type Message struct {
	ID         uint64
	FileID     uint64
	Size       int64  // of the file
	Account    string // sender account; "" for local retries
	MailFrom   string // "" for the null sender
	RequireTLS RequireTLS
	SMTPUTF8   bool
	EightBit   bool   // BODY=8BITMIME
	LocalOnly  bool   // delivered to store only (local retries), never outbound
	Ret        uint8  // ipc.RetFull, ipc.RetHdrs or 0
	EnvID      string // DSN ENVID, xtext-decoded form as given
	// Extra holds the X-Moxd-Extra-<key> headers of the submission, keys
	// lower-cased; the API and webhooks (later issues) report them.
	Extra     map[string]string
	MessageID string
	Subject   string
	Queued    time.Time // when queue accepted it
	Received  time.Time // when the message entered moxd (local retries: smtp's time)

	// Version 2 fields.

	// Transport overrides the routes for this message (moxctl queue
	// transport); "" means routes decide.
	Transport string
	// Prepend holds header lines sent before the file's content: the
	// DKIM-Signature fields made at submission.
	Prepend string
	// FromID is the unique id in the MAIL FROM of the sent message
	// (account.unique_mail_from), "" when not used.
	FromID string
	// DSN marks a delivery status notification made by queue (never
	// answered with another DSN).
	DSN bool
}

// RcptState is the state of a recipient record.
type RcptState uint8

const (
	RcptQueued RcptState = 1 // waiting for its next attempt
	RcptFailed RcptState = 2 // failed permanently or out of attempts; a DSN is due (next issue)
)

func (s RcptState) String() string {
	switch s {
	case RcptQueued:
		return "queued"
	case RcptFailed:
		return "failed"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Recipient is one recipient of a queued message.
type Recipient struct {
	Msg     uint64
	Seq     uint32
	Address string
	Notify  uint8  // ipc.Notify* bits, 0 when not given
	ORcpt   string // DSN ORCPT as given
	// NextAttempt is the same for all recipients of a message.
	NextAttempt time.Time
	Attempts    int
	LastAttempt time.Time
	LastError   string
	Held        bool
	State       RcptState

	// Version 2 fields.

	LastHost   string // server that gave LastError, "" when none answered
	LastStatus string // enhanced status code of LastError ("4.4.1"), may be ""
	// DelayedSent: the "delayed" DSN for this recipient was queued.
	DelayedSent bool
	// History holds the recipient's last attempts, oldest first, at most
	// maxHistory.
	History []Attempt
}

// Attempt is one delivery attempt of a recipient, kept with it and in its
// retired record.
type Attempt struct {
	Time      time.Time
	Delivered bool
	Host      string // server that answered, "store" for local delivery
	Transport string // transport name, "" for direct delivery
	TLS       string // the connection's TLS and policy
	Status    string // enhanced status code
	Result    string // the reply or error, clipped
}

const (
	maxHistory       = 16
	maxAttemptResult = 300
)

// addAttempt appends a to h, dropping the oldest beyond maxHistory.
func addAttempt(h []Attempt, a Attempt) []Attempt {
	if len(a.Result) > maxAttemptResult {
		a.Result = a.Result[:maxAttemptResult]
	}
	h = append(h, a)
	if len(h) > maxHistory {
		h = h[len(h)-maxHistory:]
	}
	return h
}

func (r *record) history(h []Attempt) {
	r.uint(uint64(len(h)))
	for _, a := range h {
		r.time(a.Time)
		r.bool(a.Delivered)
		r.string(a.Host)
		r.string(a.Transport)
		r.string(a.TLS)
		r.string(a.Status)
		r.string(a.Result)
	}
}

func (r *reader) history() []Attempt {
	n := r.uint()
	if n > maxHistory {
		r.fail("history length")
		return nil
	}
	var h []Attempt
	for i := uint64(0); i < n && r.err == nil; i++ {
		h = append(h, Attempt{Time: r.time(), Delivered: r.bool(), Host: r.string(), Transport: r.string(), TLS: r.string(), Status: r.string(), Result: r.string()})
	}
	return h
}

func key64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func rcptKey(msg uint64, seq uint32) []byte {
	return binary.BigEndian.AppendUint32(key64(msg), seq)
}

func dueKey(kind byte, next time.Time, msg uint64) []byte {
	k := []byte{kind}
	k = binary.BigEndian.AppendUint64(k, uint64(next.UnixNano()))
	return binary.BigEndian.AppendUint64(k, msg)
}

// parseDueKey returns the next attempt and message id of a due key.
func parseDueKey(k []byte) (time.Time, uint64, bool) {
	if len(k) != 17 {
		return time.Time{}, 0, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(k[1:9]))), binary.BigEndian.Uint64(k[9:]), true
}

// accountPrefix starts the keys of an account in sent and known; account
// names contain no NUL (config validation).
func accountPrefix(account string) []byte {
	return append([]byte(account), 0)
}

func sentKey(account string, t time.Time, msg uint64) []byte {
	k := binary.BigEndian.AppendUint64(accountPrefix(account), uint64(t.UnixNano()))
	return binary.BigEndian.AppendUint64(k, msg)
}

func knownKey(account, addr string) []byte {
	return append(accountPrefix(account), addr...)
}

// record encodes a record value: version byte, then varints and
// length-prefixed strings.
type record struct {
	b []byte
}

func newRecord() *record { return &record{b: []byte{recordVersion}} }

func (r *record) uint(v uint64)    { r.b = binary.AppendUvarint(r.b, v) }
func (r *record) int(v int64)      { r.b = binary.AppendVarint(r.b, v) }
func (r *record) byte(v uint8)     { r.b = append(r.b, v) }
func (r *record) string(s string)  { r.uint(uint64(len(s))); r.b = append(r.b, s...) }
func (r *record) time(t time.Time) { r.int(timeNS(t)) }
func (r *record) bool(v bool) {
	if v {
		r.byte(1)
	} else {
		r.byte(0)
	}
}

// timeNS is t in Unix nanoseconds, 0 for the zero time.
func timeNS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// reader decodes a record; its first error sticks.
type reader struct {
	b       []byte
	err     error
	version uint8
}

func newReader(b []byte) *reader {
	r := &reader{b: b}
	if len(b) == 0 || b[0] < 1 || b[0] > recordVersion {
		r.err = fmt.Errorf("%w: record version %v", errCorrupt, b[:min(1, len(b))])
		return r
	}
	r.version = b[0]
	r.b = b[1:]
	return r
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: bad %s", errCorrupt, what)
	}
}

func (r *reader) uint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) int() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() uint8 {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.fail("byte")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) bool() bool {
	v := r.byte()
	if v > 1 {
		r.fail("bool")
	}
	return v == 1
}

func (r *reader) string() string {
	n := r.uint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.fail("string length")
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *reader) time() time.Time {
	v := r.int()
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, v)
}

// done returns the first error, or one for trailing bytes.
func (r *reader) done() error {
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", errCorrupt, len(r.b))
	}
	return r.err
}

const (
	msgFlagSMTPUTF8  = 1 << 0
	msgFlagEightBit  = 1 << 1
	msgFlagLocalOnly = 1 << 2
	msgFlagDSN       = 1 << 3
)

func (m *Message) marshal() []byte {
	r := newRecord()
	r.uint(m.FileID)
	r.uint(uint64(m.Size))
	r.string(m.Account)
	r.string(m.MailFrom)
	r.byte(uint8(m.RequireTLS))
	var flags uint64
	if m.SMTPUTF8 {
		flags |= msgFlagSMTPUTF8
	}
	if m.EightBit {
		flags |= msgFlagEightBit
	}
	if m.LocalOnly {
		flags |= msgFlagLocalOnly
	}
	if m.DSN {
		flags |= msgFlagDSN
	}
	r.uint(flags)
	r.byte(m.Ret)
	r.string(m.EnvID)
	keys := slices.Sorted(maps.Keys(m.Extra))
	r.uint(uint64(len(keys)))
	for _, k := range keys {
		r.string(k)
		r.string(m.Extra[k])
	}
	r.string(m.MessageID)
	r.string(m.Subject)
	r.time(m.Queued)
	r.time(m.Received)
	r.string(m.Transport)
	r.string(m.Prepend)
	r.string(m.FromID)
	return r.b
}

func unmarshalMessage(id uint64, b []byte) (*Message, error) {
	r := newReader(b)
	m := &Message{ID: id}
	m.FileID = r.uint()
	m.Size = int64(r.uint())
	m.Account = r.string()
	m.MailFrom = r.string()
	m.RequireTLS = RequireTLS(r.byte())
	flags := r.uint()
	m.SMTPUTF8 = flags&msgFlagSMTPUTF8 != 0
	m.EightBit = flags&msgFlagEightBit != 0
	m.LocalOnly = flags&msgFlagLocalOnly != 0
	m.DSN = flags&msgFlagDSN != 0
	m.Ret = r.byte()
	m.EnvID = r.string()
	n := r.uint()
	if n > maxExtraFields {
		r.fail("extra count")
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		if m.Extra == nil {
			m.Extra = map[string]string{}
		}
		k := r.string()
		m.Extra[k] = r.string()
	}
	m.MessageID = r.string()
	m.Subject = r.string()
	m.Queued = r.time()
	m.Received = r.time()
	if r.version >= 2 {
		m.Transport = r.string()
		m.Prepend = r.string()
		m.FromID = r.string()
	}
	if m.RequireTLS > RequireTLSNo {
		r.fail("requiretls")
	}
	if err := r.done(); err != nil {
		return nil, fmt.Errorf("message %d: %w", id, err)
	}
	return m, nil
}

func (rc *Recipient) marshal() []byte {
	r := newRecord()
	r.string(rc.Address)
	r.byte(rc.Notify)
	r.string(rc.ORcpt)
	r.time(rc.NextAttempt)
	r.uint(uint64(rc.Attempts))
	r.time(rc.LastAttempt)
	r.string(rc.LastError)
	r.bool(rc.Held)
	r.byte(uint8(rc.State))
	r.string(rc.LastHost)
	r.string(rc.LastStatus)
	r.bool(rc.DelayedSent)
	r.history(rc.History)
	return r.b
}

func unmarshalRecipient(k, b []byte) (*Recipient, error) {
	if len(k) != 12 {
		return nil, fmt.Errorf("%w: recipient key of %d bytes", errCorrupt, len(k))
	}
	rc := &Recipient{Msg: binary.BigEndian.Uint64(k), Seq: binary.BigEndian.Uint32(k[8:])}
	r := newReader(b)
	rc.Address = r.string()
	rc.Notify = r.byte()
	rc.ORcpt = r.string()
	rc.NextAttempt = r.time()
	rc.Attempts = int(r.uint())
	rc.LastAttempt = r.time()
	rc.LastError = r.string()
	rc.Held = r.bool()
	rc.State = RcptState(r.byte())
	if r.version >= 2 {
		rc.LastHost = r.string()
		rc.LastStatus = r.string()
		rc.DelayedSent = r.bool()
		rc.History = r.history()
	}
	if rc.State != RcptQueued && rc.State != RcptFailed {
		r.fail("recipient state")
	}
	if err := r.done(); err != nil {
		return nil, fmt.Errorf("recipient %d.%d: %w", rc.Msg, rc.Seq, err)
	}
	return rc, nil
}

// sentEntry is one message in an account's sending history.
type sentEntry struct {
	Recipients int // recipients of the message
	FirstTime  int // of them, addresses the account had never sent to
}

func (s sentEntry) marshal() []byte {
	r := newRecord()
	r.uint(uint64(s.Recipients))
	r.uint(uint64(s.FirstTime))
	return r.b
}

func unmarshalSent(b []byte) (sentEntry, error) {
	r := newReader(b)
	s := sentEntry{Recipients: int(r.uint()), FirstTime: int(r.uint())}
	return s, r.done()
}

// openDB opens queue.db with the options of DESIGN.md §5: the hashmap
// freelist, a large initial mmap (read transactions never wait for a
// remap) and a finite lock timeout.
func openDB(path string, timeout time.Duration) (*bolt.DB, error) {
	db, err := bolt.Open(path, fileMode, &bolt.Options{
		Timeout:         timeout,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: dbMmapSize,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("queue database %s is in use by another process (lock not obtained within %v); stop the other moxd-queue or moxctl using it", path, timeout)
	} else if err != nil {
		return nil, fmt.Errorf("open queue database %s: %w", path, err)
	}
	return db, nil
}

// initDB creates missing buckets and checks the schema version.
func initDB(db *bolt.DB) error {
	return db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket([]byte(bucketMeta))
		// Counters added in schema version 2 start at 1 in new and
		// upgraded databases alike.
		for _, k := range []string{metaNextrule, metaNexthook} {
			if meta.Get([]byte(k)) == nil {
				if err := meta.Put([]byte(k), key64(1)); err != nil {
					return err
				}
			}
		}
		v := meta.Get([]byte(metaSchema))
		if v == nil {
			for k, n := range map[string]uint64{metaSchema: schemaVersion, metaNextmsg: 1, metaNextfile: 1} {
				if err := meta.Put([]byte(k), key64(n)); err != nil {
					return err
				}
			}
			return nil
		}
		if len(v) != 8 {
			return fmt.Errorf("queue database: %w: schema version of %d bytes", errCorrupt, len(v))
		}
		s := binary.BigEndian.Uint64(v)
		if s == 1 {
			// Version 2 added buckets (created above) and record
			// fields (version 1 records are still read).
			return meta.Put([]byte(metaSchema), key64(schemaVersion))
		}
		if s != schemaVersion {
			return fmt.Errorf("queue database has schema version %d, this moxd-queue reads version %d; run the moxd release that wrote it, or restore a backup", s, schemaVersion)
		}
		return nil
	})
}

// counter reads a meta counter.
func counter(tx *bolt.Tx, name string) uint64 {
	v := tx.Bucket([]byte(bucketMeta)).Get([]byte(name))
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// nextID allocates the next value of a meta counter.
func nextID(tx *bolt.Tx, name string) (uint64, error) {
	id := counter(tx, name)
	if id == 0 {
		return 0, fmt.Errorf("queue database: %w: meta counter %s missing", errCorrupt, name)
	}
	if err := tx.Bucket([]byte(bucketMeta)).Put([]byte(name), key64(id+1)); err != nil {
		return 0, err
	}
	return id, nil
}

// filePath is where the file with id lives.
func (q *Queue) filePath(id uint64) string {
	return filepath.Join(q.fanDir(id), strconv.FormatUint(id, 16))
}

func (q *Queue) fanDir(id uint64) string {
	return filepath.Join(q.msgDir, fmt.Sprintf("%04x", id>>fanShift))
}

// recover makes the files match the committed database after a crash:
// files at or above nextfile are deleted, and so are files listed in
// unlink. tmp/ was emptied before.
func (q *Queue) recover() error {
	var next uint64
	var unlink []uint64
	err := q.db.View(func(tx *bolt.Tx) error {
		next = counter(tx, metaNextfile)
		return tx.Bucket([]byte(bucketUnlink)).ForEach(func(k, v []byte) error {
			if len(k) == 8 {
				unlink = append(unlink, binary.BigEndian.Uint64(k))
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	fans, err := os.ReadDir(q.msgDir)
	if err != nil {
		return fmt.Errorf("read %s: %w", q.msgDir, err)
	}
	for _, fan := range fans {
		n, err := strconv.ParseUint(fan.Name(), 16, 64)
		if err != nil || !fan.IsDir() || n < next>>fanShift {
			continue
		}
		dir := filepath.Join(q.msgDir, fan.Name())
		files, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("read %s: %w", dir, err)
		}
		for _, f := range files {
			if id, err := strconv.ParseUint(f.Name(), 16, 64); err == nil && id >= next {
				q.log.Info("removing message file of a transaction that never committed", "file", id)
				if err := os.Remove(filepath.Join(dir, f.Name())); err != nil {
					return fmt.Errorf("remove uncommitted message file: %w", err)
				}
			}
		}
	}
	for _, id := range unlink {
		if err := os.Remove(q.filePath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove message file: %w", err)
		}
	}
	if len(unlink) > 0 {
		return q.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte(bucketUnlink))
			for _, id := range unlink {
				if err := b.Delete(key64(id)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return nil
}
