package ipc

import (
	"encoding/binary"
	"fmt"
)

// Frame limits. A frame is one sendmsg: the header, then the payload.
const (
	MaxFrame   = 16 * 1024 // fits the default SOCK_SEQPACKET limits of every target OS
	HeaderSize = 16
	MaxPayload = MaxFrame - HeaderSize
	MaxFDs     = 4 // file descriptors per frame
)

// MsgType identifies a message: the high byte is its family, the low byte its
// number within the family (replies have bit 0x80 set). The generic replies
// ErrorReply and Ack belong to FamAny whatever their high byte.
type MsgType uint16

// Flags are the header flag bits. A frame with neither flag is a request that
// expects a reply.
type Flags uint16

const (
	FlagReply Flags = 1 << 0 // a reply to the request with the same ID
	FlagEvent Flags = 1 << 1 // a one-way event; its ID is 0
)

const knownFlags = FlagReply | FlagEvent

// Header is a frame's fixed header. On the wire, big-endian:
//
//	[0:2] Type  [2:4] Flags  [4] NFD  [5:8] zero  [8:16] ID
//
// Events have ID 0, requests a nonzero ID unique among the sender's
// outstanding calls, replies the ID of their request.
type Header struct {
	Type  MsgType
	Flags Flags
	NFD   uint8  // number of fds sent with the frame
	ID    uint64 // request id
}

// checkHeader applies the rules shared by encoding and decoding: the flags,
// fd count and id must agree with the message type's kind.
func checkHeader(h Header, info msgInfo) error {
	if h.Flags&^knownFlags != 0 {
		return protoErrorf("unknown flag bits %#04x in %s", uint16(h.Flags&^knownFlags), info.name)
	}
	if h.Flags == FlagReply|FlagEvent {
		return protoErrorf("%s is flagged both reply and event", info.name)
	}
	if h.NFD > MaxFDs {
		return protoErrorf("%s announces %d fds, at most %d allowed", info.name, h.NFD, MaxFDs)
	}
	var k kind
	switch h.Flags {
	case FlagReply:
		k = kindReply
	case FlagEvent:
		k = kindEvent
	default:
		k = kindRequest
	}
	if k != info.kind {
		return protoErrorf("%s sent as %s, but it is a %s", info.name, k, info.kind)
	}
	if k == kindEvent && h.ID != 0 {
		return protoErrorf("event %s has id %d, must be 0", info.name, h.ID)
	}
	if k != kindEvent && h.ID == 0 {
		return protoErrorf("%s %s has id 0", k, info.name)
	}
	return nil
}

// EncodeFrame returns the frame for message m under header h. h.Type must be
// m.Type() and h.NFD must be m.FDs(); the flags and id must suit the
// message's kind. A message that does not fit MaxFrame is an error.
func EncodeFrame(h Header, m Message) ([]byte, error) {
	b := make([]byte, HeaderSize, 256)
	return appendFrame(b, h, m)
}

func appendFrame(b []byte, h Header, m Message) ([]byte, error) {
	if m == nil {
		return nil, fmt.Errorf("ipc: encode frame: nil message")
	}
	if h.Type != m.Type() {
		return nil, fmt.Errorf("ipc: encode frame: header type %s differs from message %s", MessageName(h.Type), MessageName(m.Type()))
	}
	info, ok := lookupType(h.Type)
	if !ok {
		return nil, fmt.Errorf("ipc: encode frame: %w", protoErrorf("unknown message type %s", MessageName(h.Type)))
	}
	if err := checkHeader(h, info); err != nil {
		return nil, fmt.Errorf("ipc: encode frame: %w", err)
	}
	if n := m.FDs(); int(h.NFD) != n {
		return nil, fmt.Errorf("ipc: encode frame: %s needs %d fds, header says %d", info.name, n, h.NFD)
	}
	b = b[:HeaderSize]
	binary.BigEndian.PutUint16(b[0:2], uint16(h.Type))
	binary.BigEndian.PutUint16(b[2:4], uint16(h.Flags))
	b[4] = h.NFD
	b[5], b[6], b[7] = 0, 0, 0
	binary.BigEndian.PutUint64(b[8:16], h.ID)
	e := newEncoder(b, MaxFrame)
	m.Encode(e)
	if err := e.Err(); err != nil {
		return nil, fmt.Errorf("ipc: encode %s: %w", info.name, err)
	}
	return e.buf, nil
}

// DecodeFrame parses a received frame strictly; nfd is the number of fds that
// arrived with it. Every violation is a *ProtocolError.
func DecodeFrame(b []byte, nfd int) (Header, Message, error) {
	var h Header
	if len(b) < HeaderSize {
		return h, nil, protoErrorf("frame of %d bytes is shorter than the %d-byte header", len(b), HeaderSize)
	}
	if len(b) > MaxFrame {
		return h, nil, protoErrorf("frame of %d bytes exceeds the limit of %d", len(b), MaxFrame)
	}
	h.Type = MsgType(binary.BigEndian.Uint16(b[0:2]))
	h.Flags = Flags(binary.BigEndian.Uint16(b[2:4]))
	h.NFD = b[4]
	h.ID = binary.BigEndian.Uint64(b[8:16])
	if b[5]|b[6]|b[7] != 0 {
		return h, nil, protoErrorf("reserved header bytes are not zero")
	}
	info, ok := lookupType(h.Type)
	if !ok {
		return h, nil, protoErrorf("unknown message type %s", MessageName(h.Type))
	}
	if err := checkHeader(h, info); err != nil {
		return h, nil, err
	}
	if int(h.NFD) != nfd {
		return h, nil, protoErrorf("%s header announces %d fds, %d arrived", info.name, h.NFD, nfd)
	}
	m := info.new()
	d := NewDecoder(b[HeaderSize:])
	m.Decode(d)
	if err := d.Done(); err != nil {
		return h, nil, protoErrorf("decode %s: %s", info.name, err.(*ProtocolError).Reason)
	}
	if n := m.FDs(); n != nfd {
		return h, nil, protoErrorf("%s needs %d fds, %d arrived", info.name, n, nfd)
	}
	return h, m, nil
}

// PayloadSize returns the number of payload bytes m encodes to, or the
// encoding error (for example when it exceeds MaxPayload). Senders of batch
// replies use it to find how many entries fit one frame.
func PayloadSize(m Message) (int, error) {
	e := newEncoder(make([]byte, 0, 256), MaxPayload)
	m.Encode(e)
	if err := e.Err(); err != nil {
		return 0, err
	}
	return len(e.buf), nil
}
