package message

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The binary form of a part tree, as moxd-store keeps it in the heavy record
// of a message:
//
//	version byte (marshalVersion)
//	part:
//	  flags byte (flagTruncated, flagEnvelope; other bits must be 0)
//	  uvarint HeaderStart, BodyStart-HeaderStart, End-BodyStart, BodyLines
//	  string MediaType, MediaSubtype; params Params
//	  string ID, Description, Encoding, Disposition; params DispositionParams
//	  uvarint len(Language), string each; string Location, MD5
//	  envelope, if flagEnvelope
//	  uvarint len(Parts), part each
//	string: uvarint length, bytes; params: uvarint count, (string name, string value) each
//	envelope: string Date, Subject; 6 address lists (From Sender ReplyTo To Cc Bcc),
//	  each uvarint count and (string Name, Mailbox, Host) each; string InReplyTo, MessageID
//
// Unmarshal is strict: unknown versions or flags, values running past the
// end, trailing bytes and nesting beyond maxMarshalDepth are errors.
const marshalVersion = 1

const (
	flagTruncated = 1 << iota
	flagEnvelope
	flagsKnown = flagTruncated | flagEnvelope
)

// maxMarshalDepth bounds the recursion of UnmarshalPart on hostile input.
// Parse never produces deeper trees with sane limits (DefaultLimits: 32).
const maxMarshalDepth = 1000

// MarshalBinary encodes the part tree in moxd's compact, versioned form.
func (p *Part) MarshalBinary() ([]byte, error) {
	b := []byte{marshalVersion}
	return appendPart(b, p), nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendParams(b []byte, l []Param) []byte {
	b = binary.AppendUvarint(b, uint64(len(l)))
	for _, p := range l {
		b = appendString(b, p.Name)
		b = appendString(b, p.Value)
	}
	return b
}

func appendAddrs(b []byte, l []Address) []byte {
	b = binary.AppendUvarint(b, uint64(len(l)))
	for _, a := range l {
		b = appendString(b, a.Name)
		b = appendString(b, a.Mailbox)
		b = appendString(b, a.Host)
	}
	return b
}

func appendPart(b []byte, p *Part) []byte {
	var flags byte
	if p.Truncated {
		flags |= flagTruncated
	}
	if p.Envelope != nil {
		flags |= flagEnvelope
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(p.HeaderStart))
	b = binary.AppendUvarint(b, uint64(p.BodyStart-p.HeaderStart))
	b = binary.AppendUvarint(b, uint64(p.End-p.BodyStart))
	b = binary.AppendUvarint(b, uint64(p.BodyLines))
	b = appendString(b, p.MediaType)
	b = appendString(b, p.MediaSubtype)
	b = appendParams(b, p.Params)
	b = appendString(b, p.ID)
	b = appendString(b, p.Description)
	b = appendString(b, p.Encoding)
	b = appendString(b, p.Disposition)
	b = appendParams(b, p.DispositionParams)
	b = binary.AppendUvarint(b, uint64(len(p.Language)))
	for _, l := range p.Language {
		b = appendString(b, l)
	}
	b = appendString(b, p.Location)
	b = appendString(b, p.MD5)
	if e := p.Envelope; e != nil {
		b = appendString(b, e.Date)
		b = appendString(b, e.Subject)
		for _, l := range [][]Address{e.From, e.Sender, e.ReplyTo, e.To, e.Cc, e.Bcc} {
			b = appendAddrs(b, l)
		}
		b = appendString(b, e.InReplyTo)
		b = appendString(b, e.MessageID)
	}
	b = binary.AppendUvarint(b, uint64(len(p.Parts)))
	for _, c := range p.Parts {
		b = appendPart(b, c)
	}
	return b
}

// errShort is returned when the encoded form ends early.
var errShort = errors.New("unexpected end of data")

// decoder reads the binary form; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		if n < 0 {
			d.err = errors.New("varint overflow")
		}
		return 0
	}
	d.b = d.b[n:]
	return v
}

// offset reads an uvarint that must fit a non-negative int64.
func (d *decoder) offset() int64 {
	v := d.uvarint()
	if v > 1<<62 {
		d.fail(fmt.Errorf("offset %d out of range", v))
		return 0
	}
	return int64(v)
}

// count reads a list length; every element takes at least min bytes, so a
// length the remaining data cannot hold is an error, not an allocation.
func (d *decoder) count(min int) int {
	v := d.uvarint()
	if d.err == nil && v > uint64(len(d.b)/min) {
		d.fail(fmt.Errorf("list length %d exceeds data", v))
		return 0
	}
	return int(v)
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = errShort
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = errShort
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) params() []Param {
	n := d.count(2)
	var l []Param
	for i := 0; i < n && d.err == nil; i++ {
		l = append(l, Param{Name: d.string(), Value: d.string()})
	}
	return l
}

func (d *decoder) addrs() []Address {
	n := d.count(3)
	var l []Address
	for i := 0; i < n && d.err == nil; i++ {
		l = append(l, Address{Name: d.string(), Mailbox: d.string(), Host: d.string()})
	}
	return l
}

func (d *decoder) part(depth int) *Part {
	if depth > maxMarshalDepth {
		d.fail(fmt.Errorf("parts nested deeper than %d", maxMarshalDepth))
		return nil
	}
	flags := d.byte()
	if flags&^flagsKnown != 0 {
		d.fail(fmt.Errorf("unknown part flags %#x", flags))
		return nil
	}
	p := &Part{Truncated: flags&flagTruncated != 0}
	p.HeaderStart = d.offset()
	p.BodyStart = p.HeaderStart + d.offset()
	p.End = p.BodyStart + d.offset()
	p.BodyLines = d.offset()
	if d.err == nil && (p.BodyStart < p.HeaderStart || p.End < p.BodyStart) {
		d.fail(errors.New("offsets overflow"))
	}
	p.MediaType = d.string()
	p.MediaSubtype = d.string()
	p.Params = d.params()
	p.ID = d.string()
	p.Description = d.string()
	p.Encoding = d.string()
	p.Disposition = d.string()
	p.DispositionParams = d.params()
	n := d.count(1)
	for i := 0; i < n && d.err == nil; i++ {
		p.Language = append(p.Language, d.string())
	}
	p.Location = d.string()
	p.MD5 = d.string()
	if flags&flagEnvelope != 0 {
		e := &Envelope{Date: d.string(), Subject: d.string()}
		e.From = d.addrs()
		e.Sender = d.addrs()
		e.ReplyTo = d.addrs()
		e.To = d.addrs()
		e.Cc = d.addrs()
		e.Bcc = d.addrs()
		e.InReplyTo = d.string()
		e.MessageID = d.string()
		p.Envelope = e
	}
	n = d.count(1)
	for i := 0; i < n && d.err == nil; i++ {
		p.Parts = append(p.Parts, d.part(depth+1))
	}
	if d.err != nil {
		return nil
	}
	return p
}

// UnmarshalPart decodes a part tree encoded by MarshalBinary.
func UnmarshalPart(b []byte) (*Part, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("unmarshal part tree: %w", errShort)
	}
	if b[0] != marshalVersion {
		return nil, fmt.Errorf("unmarshal part tree: unknown version %d, want %d", b[0], marshalVersion)
	}
	d := &decoder{b: b[1:]}
	p := d.part(0)
	if d.err == nil && len(d.b) > 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return nil, fmt.Errorf("unmarshal part tree: %w", d.err)
	}
	return p, nil
}
