package account

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Bucket names of the account database (docs/storage.md "The account
// database").
const (
	bucketMeta          = "meta"
	bucketMailboxes     = "mailboxes"
	bucketNames         = "names"
	bucketSummary       = "summary"
	bucketMsgs          = "msgs"
	bucketModseq        = "modseq"
	bucketFiles         = "files"
	bucketKeywords      = "keywords"
	bucketKwids         = "kwids"
	bucketSubscriptions = "subscriptions"
	bucketUnlink        = "unlink"
	bucketCredentials   = "credentials"
)

// allBuckets lists every bucket Create makes and Open requires.
var allBuckets = [...]string{
	bucketMeta, bucketMailboxes, bucketNames, bucketSummary, bucketMsgs, bucketModseq,
	bucketFiles, bucketKeywords, bucketKwids, bucketSubscriptions, bucketUnlink, bucketCredentials,
}

// Keys of the meta bucket; every value is 8 bytes big-endian.
const (
	metaSchema      = "schema"
	metaModseq      = "modseq"
	metaNextfile    = "nextfile"
	metaUIDValidity = "uidvalidity"
	metaNextmailbox = "nextmailbox"
	metaSize        = "size"
	metaCount       = "count"
)

// schemaVersion is the database layout this code reads and writes. Open
// upgrades older layouts and refuses newer ones.
const schemaVersion = 1

// recordVersion is the first byte of every record value.
const recordVersion = 1

// Modseq index states.
const (
	modseqPresent  = 0
	modseqExpunged = 1 // tombstone
)

// errCorrupt marks a record that does not decode.
var errCorrupt = errors.New("corrupt record")

// Keys. All integers are big-endian so that cursor order is numeric order.

func key32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func key64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func msgKey(mb, uid uint32) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint32(k, mb)
	binary.BigEndian.PutUint32(k[4:], uid)
	return k
}

func modseqKey(mb uint32, modseq uint64, uid uint32) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint32(k, mb)
	binary.BigEndian.PutUint64(k[4:], modseq)
	binary.BigEndian.PutUint32(k[12:], uid)
	return k
}

// parseMsgKey splits a msgs key; ok is false for a key of the wrong length.
func parseMsgKey(k []byte) (mb, uid uint32, ok bool) {
	if len(k) != 8 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(k), binary.BigEndian.Uint32(k[4:]), true
}

func parseModseqKey(k []byte) (mb uint32, modseq uint64, uid uint32, ok bool) {
	if len(k) != 16 {
		return 0, 0, 0, false
	}
	return binary.BigEndian.Uint32(k), binary.BigEndian.Uint64(k[4:]), binary.BigEndian.Uint32(k[12:]), true
}

// enc builds a record value.
type enc struct{ b []byte }

func newEnc() *enc              { return &enc{b: []byte{recordVersion}} }
func (e *enc) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) byte(v byte)      { e.b = append(e.b, v) }
func (e *enc) bytes(v []byte)   { e.uvarint(uint64(len(v))); e.b = append(e.b, v...) }
func (e *enc) string(v string)  { e.uvarint(uint64(len(v))); e.b = append(e.b, v...) }
func (e *enc) strings(l []string) {
	e.uvarint(uint64(len(l)))
	for _, s := range l {
		e.string(s)
	}
}
func (e *enc) ids(l []uint32) {
	e.uvarint(uint64(len(l)))
	for _, v := range l {
		e.uvarint(uint64(v))
	}
}

// dec reads a record value; the first error sticks.
type dec struct {
	b   []byte
	err error
}

func newDec(b []byte) dec {
	if len(b) == 0 || b[0] != recordVersion {
		return dec{err: errBadVersion}
	}
	return dec{b: b[1:]}
}

var errBadVersion = fmt.Errorf("%w: unknown record version", errCorrupt)

var errShort = fmt.Errorf("%w: value runs past its end", errCorrupt)

func (d *dec) fail() {
	if d.err == nil {
		d.err = errShort
	}
	d.b = nil
}

func (d *dec) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

// count reads a length that must fit the remaining bytes at min bytes each.
func (d *dec) count(min int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/max(min, 1)) && n > 0 {
		d.fail()
		return 0
	}
	return int(n)
}

func (d *dec) bytes() []byte {
	n := d.count(1)
	if d.err != nil {
		return nil
	}
	v := append([]byte(nil), d.b[:n]...)
	d.b = d.b[n:]
	return v
}

func (d *dec) string() string {
	n := d.count(1)
	if d.err != nil {
		return ""
	}
	v := string(d.b[:n])
	d.b = d.b[n:]
	return v
}

func (d *dec) strings() []string {
	n := d.count(1)
	var l []string
	for i := 0; i < n && d.err == nil; i++ {
		l = append(l, d.string())
	}
	return l
}

func (d *dec) ids() []uint32 {
	n := d.count(1)
	var l []uint32
	for i := 0; i < n && d.err == nil; i++ {
		v := d.uvarint()
		if v > 1<<32-1 {
			d.fail()
		}
		l = append(l, uint32(v))
	}
	return l
}

func (d *dec) u32() uint32 {
	v := d.uvarint()
	if v > 1<<32-1 {
		d.fail()
		return 0
	}
	return uint32(v)
}

// done reports the first error, or an error for trailing bytes.
func (d *dec) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: trailing bytes", errCorrupt)
	}
	return d.err
}

// mailboxRec is the value of the mailboxes bucket.
type mailboxRec struct {
	Hidden      bool // import staging mailbox: not listed, not selectable
	Name        string
	SpecialUse  SpecialUse
	UIDValidity uint32
	Keywords    []uint32 // keyword ids in use, in order of first use
}

func (r *mailboxRec) marshal() []byte {
	e := newEnc()
	var fl uint64
	if r.Hidden {
		fl |= 1
	}
	e.uvarint(fl)
	e.string(r.Name)
	e.byte(byte(r.SpecialUse))
	e.uvarint(uint64(r.UIDValidity))
	e.ids(r.Keywords)
	return e.b
}

func parseMailboxRec(b []byte) (mailboxRec, error) {
	d := newDec(b)
	var r mailboxRec
	fl := d.uvarint()
	r.Hidden = fl&1 != 0
	r.Name = d.string()
	r.SpecialUse = SpecialUse(d.byte())
	r.UIDValidity = d.u32()
	r.Keywords = d.ids()
	if fl&^1 != 0 && d.err == nil {
		d.err = fmt.Errorf("%w: unknown mailbox flags", errCorrupt)
	}
	return r, d.done()
}

// summaryRec is the value of the summary bucket: what SELECT and STATUS
// need, kept equal to a recount of msgs.
//
// DeletedSize, the bytes of the \Deleted messages, came after the other
// fields: a record without it reads as DeletedSize -1, is written back
// without it, and Open fills it in (fillDeletedSizes).
type summaryRec struct {
	Messages, Unseen, Deleted uint32
	Size                      int64
	UIDNext                   uint32
	HighestModSeq             uint64
	DeletedSize               int64
}

func (r *summaryRec) marshal() []byte {
	e := newEnc()
	e.uvarint(uint64(r.Messages))
	e.uvarint(uint64(r.Unseen))
	e.uvarint(uint64(r.Deleted))
	e.varint(r.Size)
	e.uvarint(uint64(r.UIDNext))
	e.uvarint(r.HighestModSeq)
	if r.DeletedSize >= 0 {
		e.varint(r.DeletedSize)
	}
	return e.b
}

func parseSummaryRec(b []byte) (summaryRec, error) {
	d := newDec(b)
	var r summaryRec
	r.Messages = d.u32()
	r.Unseen = d.u32()
	r.Deleted = d.u32()
	r.Size = d.varint()
	r.UIDNext = d.u32()
	r.HighestModSeq = d.uvarint()
	if d.err == nil && len(d.b) == 0 {
		r.DeletedSize = -1 // a record from before deleted sizes
		return r, nil
	}
	r.DeletedSize = d.varint()
	return r, d.done()
}

func (r summaryRec) summary() Summary {
	return Summary{Messages: r.Messages, Unseen: r.Unseen, Deleted: r.Deleted, Size: r.Size, UIDNext: r.UIDNext, HighestModSeq: r.HighestModSeq, DeletedSize: max(r.DeletedSize, 0)}
}

// add counts message m in (n=1) or out of (n=-1) the summary.
func (r *summaryRec) add(m *msgRec, n int) {
	d := uint32(n) // wraps for -1
	r.Messages += d
	if m.Flags&FlagSeen == 0 {
		r.Unseen += d
	}
	if m.Flags&FlagDeleted != 0 {
		r.Deleted += d
		if r.DeletedSize >= 0 {
			r.DeletedSize += int64(n) * m.Size
		}
	}
	r.Size += int64(n) * m.Size
}

// msgRec is the value of the msgs bucket: the light per-message data that
// FETCH FLAGS, SELECT-time caches and searches on flags read.
//
// Layout: the fields up to Keywords, as the first moxd wrote them, then
// SaveDate and Training. Records written before those two existed end after
// Keywords and still read: SaveDate reads as Received and Training as
// trainUnset (see junk.go), and the next write of the record adds both. New
// fields are added the same way, at the end, so that no record needs
// rewriting and the record version stays 1.
type msgRec struct {
	FileID    uint64
	Size      int64 // prefix + file
	Received  int64 // Unix seconds
	ModSeq    uint64
	CreateSeq uint64
	Flags     Flags
	Keywords  []uint32
	SaveDate  int64    // Unix seconds: when the message was saved into its mailbox (RFC 8514 §2)
	Training  Training // junk-filter training state; trainUnset only when read from an old record
}

func (r *msgRec) marshal() []byte {
	e := &enc{b: make([]byte, 1, 40+len(r.Keywords)*2)}
	e.b[0] = recordVersion
	e.uvarint(r.FileID)
	e.varint(r.Size)
	e.varint(r.Received)
	e.uvarint(r.ModSeq)
	e.uvarint(r.CreateSeq)
	e.byte(byte(r.Flags))
	e.ids(r.Keywords)
	e.varint(r.SaveDate)
	e.byte(byte(r.Training))
	return e.b
}

func parseMsgRec(b []byte) (msgRec, error) {
	d := newDec(b)
	var r msgRec
	r.FileID = d.uvarint()
	r.Size = d.varint()
	r.Received = d.varint()
	r.ModSeq = d.uvarint()
	r.CreateSeq = d.uvarint()
	r.Flags = Flags(d.byte())
	r.Keywords = d.ids()
	if d.err == nil && len(d.b) == 0 {
		// A record from before save dates and training states.
		r.SaveDate = r.Received
		r.Training = trainUnset
		return r, nil
	}
	r.SaveDate = d.varint()
	r.Training = Training(d.byte())
	if r.Training > TrainSpam && d.err == nil {
		d.err = fmt.Errorf("%w: unknown training state %d", errCorrupt, r.Training)
	}
	return r, d.done()
}

// fileRec is the value of the files bucket: the heavy record of a message
// file, shared by every copy of the message.
type fileRec struct {
	Refs        uint32
	Size        int64  // file size, without prefix
	Prefix      []byte // header lines added at delivery, served before the file
	Tree        []byte // message.Part.MarshalBinary of the file
	MessageID   string
	InReplyTo   []string
	References  []string
	BaseSubject string
}

func (r *fileRec) marshal() []byte {
	e := &enc{b: make([]byte, 1, 64+len(r.Prefix)+len(r.Tree))}
	e.b[0] = recordVersion
	e.uvarint(uint64(r.Refs))
	e.varint(r.Size)
	e.bytes(r.Prefix)
	e.bytes(r.Tree)
	e.string(r.MessageID)
	e.strings(r.InReplyTo)
	e.strings(r.References)
	e.string(r.BaseSubject)
	return e.b
}

func parseFileRec(b []byte) (fileRec, error) {
	d := newDec(b)
	var r fileRec
	r.Refs = d.u32()
	r.Size = d.varint()
	r.Prefix = d.bytes()
	r.Tree = d.bytes()
	r.MessageID = d.string()
	r.InReplyTo = d.strings()
	r.References = d.strings()
	r.BaseSubject = d.string()
	return r, d.done()
}

// fileRefs reads only the reference count and size of a files value.
func fileRefs(b []byte) (refs uint32, size int64, err error) {
	d := newDec(b)
	refs = d.u32()
	size = d.varint()
	return refs, size, d.err
}

// setFileRefs returns the files value b with its reference count replaced.
func setFileRefs(b []byte, refs uint32) ([]byte, error) {
	d := newDec(b)
	d.u32()
	if d.err != nil {
		return nil, d.err
	}
	e := &enc{b: make([]byte, 1, len(b)+5)}
	e.b[0] = recordVersion
	e.uvarint(uint64(refs))
	e.b = append(e.b, d.b...)
	return e.b, nil
}

func be64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}
