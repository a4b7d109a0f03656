package ipc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ProtocolError is a violation of the channel protocol by the peer (or, when
// returned by an encoder, by a message that could never be sent). A Conn that
// receives one closes the channel.
type ProtocolError struct {
	Reason string
}

func (e *ProtocolError) Error() string {
	return "ipc protocol error: " + e.Reason
}

func protoErrorf(format string, args ...any) *ProtocolError {
	return &ProtocolError{Reason: fmt.Sprintf(format, args...)}
}

// ErrClosed is returned for calls on a channel that is down: closed locally,
// closed by the peer, or shut after an error.
var ErrClosed = errors.New("ipc: channel closed")

// Error codes carried in ErrorReply.
const (
	CodeFailed        uint16 = 1  // the request was valid but handling it failed
	CodeBusy          uint16 = 2  // every handler slot was taken; try again later
	CodeDenied        uint16 = 3  // the peer may not ask for this
	CodeNotFound      uint16 = 4  // the named object does not exist
	CodeBadRequest    uint16 = 5  // the request's fields make no sense
	CodeUnavailable   uint16 = 6  // the service is not ready (yet), e.g. during a restart
	CodeBuildMismatch uint16 = 7  // the worker was built from other sources than master
	CodeExists        uint16 = 8  // the object to create exists already
	CodeOverQuota     uint16 = 9  // the account's quota would be exceeded
	CodeStale         uint16 = 10 // the caller's view is outdated (UIDVALIDITY changed): re-read and retry
	CodeDiskFull      uint16 = 11 // the receiver's file system is below its free-space reserve: try again later
	CodeLimit         uint16 = 12 // a configured limit is reached (messages per day): wait or raise it
)

// MaxErrorMessage bounds ErrorReply.Message, in bytes.
const MaxErrorMessage = 2048

// RemoteError is an error the peer's handler returned, carried by ErrorReply.
type RemoteError struct {
	Code    uint16
	Message string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("ipc remote error %s: %s", codeName(e.Code), e.Message)
}

func codeName(c uint16) string {
	switch c {
	case CodeFailed:
		return "failed"
	case CodeBusy:
		return "busy"
	case CodeDenied:
		return "denied"
	case CodeNotFound:
		return "not found"
	case CodeBadRequest:
		return "bad request"
	case CodeUnavailable:
		return "unavailable"
	case CodeBuildMismatch:
		return "build mismatch"
	case CodeExists:
		return "exists"
	case CodeOverQuota:
		return "over quota"
	case CodeStale:
		return "stale"
	case CodeDiskFull:
		return "disk full"
	case CodeLimit:
		return "limit reached"
	}
	return fmt.Sprintf("code %d", c)
}

// Errorf returns a RemoteError for a handler to return. The message is cut to
// MaxErrorMessage bytes and made valid UTF-8 so it can always be sent.
func Errorf(code uint16, format string, args ...any) *RemoteError {
	return &RemoteError{Code: code, Message: ClipText(fmt.Sprintf(format, args...), MaxErrorMessage)}
}

// ClipText makes s valid UTF-8 of at most max bytes, cutting at a rune
// boundary, so it fits a limited string field.
func ClipText(s string, max int) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// Encoder appends a message's fields to a frame, big-endian. Its first error
// sticks; later writes are ignored. Strings and byte slices carry a uint16
// length prefix, lists a uint16 count written with Count.
type Encoder struct {
	buf   []byte
	limit int // maximum len(buf)
	err   error
}

func newEncoder(buf []byte, limit int) *Encoder {
	return &Encoder{buf: buf, limit: limit}
}

// Err returns the first error met while encoding.
func (e *Encoder) Err() error { return e.err }

// Fail records an error (the first one sticks), for messages whose fields
// break a rule the decoder would enforce.
func (e *Encoder) Fail(format string, args ...any) {
	if e.err == nil {
		e.err = protoErrorf(format, args...)
	}
}

func (e *Encoder) grow(n int) []byte {
	if e.err != nil {
		return nil
	}
	if len(e.buf)+n > e.limit {
		e.Fail("message exceeds the frame limit of %d bytes", MaxFrame)
		return nil
	}
	l := len(e.buf)
	e.buf = append(e.buf, make([]byte, n)...)
	return e.buf[l:]
}

// Uint8 writes one byte.
func (e *Encoder) Uint8(v uint8) {
	if b := e.grow(1); b != nil {
		b[0] = v
	}
}

// Uint16 writes v big-endian.
func (e *Encoder) Uint16(v uint16) {
	if b := e.grow(2); b != nil {
		binary.BigEndian.PutUint16(b, v)
	}
}

// Uint32 writes v big-endian.
func (e *Encoder) Uint32(v uint32) {
	if b := e.grow(4); b != nil {
		binary.BigEndian.PutUint32(b, v)
	}
}

// Uint64 writes v big-endian.
func (e *Encoder) Uint64(v uint64) {
	if b := e.grow(8); b != nil {
		binary.BigEndian.PutUint64(b, v)
	}
}

// Int32 writes v as its two's complement uint32.
func (e *Encoder) Int32(v int32) { e.Uint32(uint32(v)) }

// Int64 writes v as its two's complement uint64.
func (e *Encoder) Int64(v int64) { e.Uint64(uint64(v)) }

// Bool writes 1 for true, 0 for false.
func (e *Encoder) Bool(v bool) {
	if v {
		e.Uint8(1)
	} else {
		e.Uint8(0)
	}
}

// Role writes a role; an undefined role is an encode error.
func (e *Encoder) Role(r Role) {
	if !r.Valid() {
		e.Fail("cannot encode undefined %s", r)
		return
	}
	e.Uint8(uint8(r))
}

// String writes s with a uint16 length prefix. s must be valid UTF-8.
func (e *Encoder) String(s string) {
	e.StringMax(s, 0xffff)
}

// StringMax is String with a length limit in bytes, matching the decoder's
// StringMax: a longer s is an encode error rather than a message the peer
// would reject.
func (e *Encoder) StringMax(s string, max int) {
	if len(s) > max {
		e.Fail("string of %d bytes exceeds its limit of %d", len(s), max)
		return
	}
	if !utf8.ValidString(s) {
		e.Fail("string is not valid UTF-8")
		return
	}
	e.Uint16(uint16(len(s)))
	if b := e.grow(len(s)); b != nil {
		copy(b, s)
	}
}

// Bytes writes b with a uint16 length prefix.
func (e *Encoder) Bytes(b []byte) {
	e.BytesMax(b, 0xffff)
}

// BytesMax is Bytes with a length limit, matching the decoder's BytesMax.
func (e *Encoder) BytesMax(b []byte, max int) {
	if len(b) > max {
		e.Fail("byte string of %d bytes exceeds its limit of %d", len(b), max)
		return
	}
	e.Uint16(uint16(len(b)))
	if d := e.grow(len(b)); d != nil {
		copy(d, b)
	}
}

// Count writes a list length; the elements follow.
func (e *Encoder) Count(n int) {
	e.CountMax(n, 0xffff)
}

// CountMax is Count with a limit, matching the decoder's Count(max).
func (e *Encoder) CountMax(n, max int) {
	if n < 0 || n > max || n > 0xffff {
		e.Fail("list of %d entries exceeds its limit of %d", n, max)
		return
	}
	e.Uint16(uint16(n))
}

// Decoder reads a message's fields from a received payload. It is strict:
// reading past the end, a bool other than 0 or 1, a string that is not UTF-8
// or longer than its limit, and a list longer than its limit are errors. The
// first error sticks and later reads return zero values.
type Decoder struct {
	b   []byte
	err error
}

// NewDecoder returns a decoder reading payload b.
func NewDecoder(b []byte) *Decoder {
	return &Decoder{b: b}
}

// Err returns the first decoding error, a *ProtocolError.
func (d *Decoder) Err() error { return d.err }

// Fail records a protocol error (the first one sticks), for messages that
// check their fields' values.
func (d *Decoder) Fail(format string, args ...any) {
	if d.err == nil {
		d.err = protoErrorf(format, args...)
	}
}

// Done returns the first decoding error, or an error if bytes remain unread.
func (d *Decoder) Done() error {
	if d.err != nil {
		return d.err
	}
	if len(d.b) > 0 {
		return protoErrorf("%d trailing bytes after message", len(d.b))
	}
	return nil
}

func (d *Decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.Fail("message truncated: need %d more bytes, have %d", n, len(d.b))
		return nil
	}
	b := d.b[:n]
	d.b = d.b[n:]
	return b
}

// Uint8 reads one byte.
func (d *Decoder) Uint8() uint8 {
	if b := d.take(1); b != nil {
		return b[0]
	}
	return 0
}

// Uint16 reads a big-endian uint16.
func (d *Decoder) Uint16() uint16 {
	if b := d.take(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

// Uint32 reads a big-endian uint32.
func (d *Decoder) Uint32() uint32 {
	if b := d.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

// Uint64 reads a big-endian uint64.
func (d *Decoder) Uint64() uint64 {
	if b := d.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// Int32 reads a two's complement int32.
func (d *Decoder) Int32() int32 { return int32(d.Uint32()) }

// Int64 reads a two's complement int64.
func (d *Decoder) Int64() int64 { return int64(d.Uint64()) }

// Bool reads a byte that must be 0 or 1.
func (d *Decoder) Bool() bool {
	v := d.Uint8()
	if v > 1 {
		d.Fail("bool byte is %d, must be 0 or 1", v)
		return false
	}
	return v == 1
}

// Role reads a role, which must be defined.
func (d *Decoder) Role() Role {
	r := Role(d.Uint8())
	if d.err == nil && !r.Valid() {
		d.Fail("undefined %s", r)
		return 0
	}
	return r
}

// String reads a uint16-length-prefixed UTF-8 string.
func (d *Decoder) String() string {
	return d.StringMax(0xffff)
}

// StringMax is String with a length limit in bytes.
func (d *Decoder) StringMax(max int) string {
	n := int(d.Uint16())
	if d.err != nil {
		return ""
	}
	if n > max {
		d.Fail("string of %d bytes exceeds its limit of %d", n, max)
		return ""
	}
	b := d.take(n)
	if b == nil {
		return ""
	}
	if !utf8.Valid(b) {
		d.Fail("string is not valid UTF-8")
		return ""
	}
	return string(b)
}

// Bytes reads a uint16-length-prefixed byte string and returns a copy.
func (d *Decoder) Bytes() []byte {
	return d.BytesMax(0xffff)
}

// BytesMax is Bytes with a length limit.
func (d *Decoder) BytesMax(max int) []byte {
	n := int(d.Uint16())
	if d.err != nil {
		return nil
	}
	if n > max {
		d.Fail("byte string of %d bytes exceeds its limit of %d", n, max)
		return nil
	}
	b := d.take(n)
	if len(b) == 0 {
		return nil // empty and absent are the same on the wire
	}
	return append([]byte{}, b...)
}

// Count reads a list length. It is an error if the count exceeds max or the
// bytes left (every list element takes at least one byte).
func (d *Decoder) Count(max int) int {
	n := int(d.Uint16())
	if d.err != nil {
		return 0
	}
	if n > max {
		d.Fail("list of %d entries exceeds its limit of %d", n, max)
		return 0
	}
	if n > len(d.b) {
		d.Fail("list of %d entries cannot fit in the %d bytes left", n, len(d.b))
		return 0
	}
	return n
}

// Bytes32 writes a fixed 32-byte value such as a session token.
func (e *Encoder) Bytes32(v [32]byte) {
	if b := e.grow(32); b != nil {
		copy(b, v[:])
	}
}

// Bytes32 reads a fixed 32-byte value.
func (d *Decoder) Bytes32() (v [32]byte) {
	copy(v[:], d.take(32))
	return v
}
