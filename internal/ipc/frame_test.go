package ipc

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestSamplesCoverEveryType(t *testing.T) {
	seen := map[MsgType]bool{}
	for _, m := range sampleMessages() {
		seen[m.Type()] = true
	}
	for _, typ := range MessageTypes() {
		if !seen[typ] {
			t.Errorf("no sample message of type %s", typ)
		}
	}
}

func TestFrameRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		t.Run(MessageName(m.Type()), func(t *testing.T) {
			h := sampleHeader(m)
			b, err := EncodeFrame(h, m)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if len(b) > MaxFrame {
				t.Fatalf("frame of %d bytes", len(b))
			}
			gh, gm, err := DecodeFrame(b, m.FDs())
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if gh != h {
				t.Errorf("header %+v, want %+v", gh, h)
			}
			if !reflect.DeepEqual(gm, m) {
				t.Errorf("message %#v, want %#v", gm, m)
			}
			// One fd fewer or more than the message needs is refused.
			for _, nfd := range []int{m.FDs() - 1, m.FDs() + 1} {
				if nfd < 0 {
					continue
				}
				if _, _, err := DecodeFrame(b, nfd); !isProtocolError(err) {
					t.Errorf("decode with %d fds: got %v, want protocol error", nfd, err)
				}
			}
		})
	}
}

func isProtocolError(err error) bool {
	var pe *ProtocolError
	return errors.As(err, &pe)
}

func TestHeaderLayout(t *testing.T) {
	b, err := EncodeFrame(Header{Type: TypeGetStatus, ID: 0x1122334455667788}, &GetStatus{Start: 0xabcd})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0x02, 0x03, 0, 0, 0, 0, 0, 0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0xab, 0xcd}
	if !bytes.Equal(b, want) {
		t.Errorf("frame %x, want %x", b, want)
	}
	b, err = EncodeFrame(Header{Type: TypePeerUp, Flags: FlagEvent, NFD: 1}, &PeerUp{Peer: RoleStore, Generation: 1})
	if err != nil {
		t.Fatal(err)
	}
	want = []byte{0x02, 0x01, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1}
	if !bytes.Equal(b, want) {
		t.Errorf("frame %x, want %x", b, want)
	}
}

// frame builds a frame by hand, header fields as given.
func frame(typ MsgType, flags Flags, nfd uint8, id uint64, payload ...byte) []byte {
	b := []byte{byte(typ >> 8), byte(typ), byte(flags >> 8), byte(flags), nfd, 0, 0, 0}
	for i := 7; i >= 0; i-- {
		b = append(b, byte(id>>(8*i)))
	}
	return append(b, payload...)
}

func TestDecodeFrameRejects(t *testing.T) {
	getCerts := []byte{0, 1}
	reserved := frame(TypeGetCerts, 0, 0, 1, getCerts...)
	reserved[6] = 1
	tests := []struct {
		name  string
		frame []byte
		nfd   int
		want  string // in the error
	}{
		{"short", []byte{1, 2, 3}, 0, "shorter than"},
		{"oversize", append(frame(TypeGetCerts, 0, 0, 1, getCerts...), make([]byte, MaxPayload)...), 0, "exceeds"},
		{"reserved bytes", reserved, 0, "reserved"},
		{"unknown type", frame(0x04ff, 0, 0, 1), 0, "unknown message type"},
		{"unknown type 0", frame(0, 0, 0, 1), 0, "unknown message type"},
		{"unknown flag", frame(TypeGetCerts, 4, 0, 1, getCerts...), 0, "unknown flag"},
		{"reply and event", frame(TypeReady, FlagReply|FlagEvent, 0, 0), 0, "both"},
		{"request as event", frame(TypeGetCerts, FlagEvent, 0, 0, getCerts...), 0, "sent as event"},
		{"reply as request", frame(TypeCertBatch, 0, 0, 1, 0, 0, 0, 0), 0, "sent as request"},
		{"event as request", frame(TypeReady, 0, 0, 1), 0, "sent as request"},
		{"event with id", frame(TypeReady, FlagEvent, 0, 9), 0, "id 9"},
		{"request id 0", frame(TypeGetCerts, 0, 0, 0, getCerts...), 0, "id 0"},
		{"reply id 0", frame(TypeSignature, FlagReply, 0, 0, 0, 0), 0, "id 0"},
		{"nfd over max", frame(TypePeerUp, FlagEvent, 5, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1), 5, "at most"},
		{"nfd differs from received", frame(TypeLoadCertPair, 0, 2, 1, 0, 2, 'm', 'x'), 1, "2 fds, 1 arrived"},
		{"fds differ from message", frame(TypeLoadCertPair, 0, 1, 1, 0, 2, 'm', 'x'), 1, "needs 2 fds"},
		{"listener batch count vs fds", frame(TypeListenerBatch, FlagReply, 0, 1, 0, 1, 0, 1, 0, 1, 'a', 0, 1, 'b'), 0, "needs 1 fds"},
		{"trailing bytes", frame(TypeGetCerts, 0, 0, 1, 0, 1, 0), 0, "trailing"},
		{"truncated", frame(TypeSign, 0, 0, 1, 0, 0, 0, 1, 5, 0, 0, 0, 0, 0, 0, 32, 1, 2), 0, "truncated"},
		{"bad bool", frame(TypeSign, 0, 0, 1, 0, 0, 0, 1, 5, 2, 0, 0, 0, 0, 0, 0), 0, "bool"},
		{"bad utf-8", frame(TypeLoadCertPair, 0, 2, 1, 0, 2, 0xff, 0xfe), 2, "UTF-8"},
		{"undefined role", frame(TypeHello, 0, 0, 1, 9, 0, 0, 0, 0, 0, 1), 0, "undefined"},
		{"hello from master", frame(TypeHello, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1), 0, "master"},
		{"string over limit", frame(TypeHello, 0, 0, 1, 5, 0, 200, 0, 0, 0, 1), 0, "limit"},
		{"list over limit", frame(TypeListenerBatch, FlagReply, 0, 1, 0, 5, 0, 5), 0, "limit"},
		{"list longer than payload", frame(TypeCommitCerts, 0, 0, 1, 0, 50, 0, 0), 0, "cannot fit"},
		{"config chunk over limit", append(frame(TypeConfigChunk, FlagReply, 0, 1, 0, 0, 0, 0, 0x3c, 1), make([]byte, 15*1024+1)...), 0, "limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, m, err := DecodeFrame(tc.frame, tc.nfd)
			if err == nil {
				t.Fatalf("decoded %#v, want error", m)
			}
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T) is not a *ProtocolError", err, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestEncodeFrameRejects(t *testing.T) {
	long := strings.Repeat("x", MaxNameLen+1)
	bigCounters := make([]Counter, MaxCounters)
	for i := range bigCounters {
		bigCounters[i].Name = "counter-with-a-longish-name"
	}
	tests := []struct {
		name string
		h    Header
		m    Message
	}{
		{"type mismatch", Header{Type: TypeGetCerts, ID: 1}, &GetChain{}},
		{"event with id", Header{Type: TypeReady, Flags: FlagEvent, ID: 1}, &Ready{}},
		{"request without id", Header{Type: TypeGetCerts}, &GetCerts{}},
		{"request flagged reply", Header{Type: TypeGetCerts, Flags: FlagReply, ID: 1}, &GetCerts{}},
		{"nfd mismatch", Header{Type: TypePeerUp, Flags: FlagEvent}, &PeerUp{Peer: RoleKeys}},
		{"config chunk too big", Header{Type: TypeConfigChunk, Flags: FlagReply, ID: 1}, &ConfigChunk{Data: make([]byte, MaxConfigChunk+1)}},
		{"name too long", Header{Type: TypeLoadCertPair, NFD: 2, ID: 1}, &LoadCertPair{Name: long}},
		{"bad utf-8", Header{Type: TypeViolation, Flags: FlagEvent}, &Violation{Peer: RoleSMTP, Reason: "\xff"}},
		{"undefined role", Header{Type: TypePeerUp, Flags: FlagEvent, NFD: 1}, &PeerUp{Peer: 0}},
		{"hello as master", Header{Type: TypeHello, ID: 1}, &Hello{Role: RoleMaster}},
		{"too many listeners", Header{Type: TypeListenerBatch, Flags: FlagReply, NFD: 5, ID: 1}, &ListenerBatch{Listeners: make([]ListenerInfo, 5)}},
		{"frame too big", Header{Type: TypeStatusReply, Flags: FlagReply, ID: 1}, &StatusReply{Counters: bigCounters}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if b, err := EncodeFrame(tc.h, tc.m); err == nil {
				t.Fatalf("encoded %d bytes, want error", len(b))
			}
		})
	}
}

func TestPayloadSize(t *testing.T) {
	n, err := PayloadSize(&GetChain{KeyID: 1, Offset: 2})
	if err != nil || n != 8 {
		t.Errorf("GetChain payload: %d, %v; want 8", n, err)
	}
	full := &ConfigChunk{Total: 1 << 20, Data: make([]byte, MaxConfigChunk)}
	if n, err := PayloadSize(full); err != nil || n > MaxPayload {
		t.Errorf("full ConfigChunk: %d bytes, %v; want it to fit %d", n, err, MaxPayload)
	}
	if _, err := PayloadSize(&StatusReply{Counters: make([]Counter, MaxCounters)}); err != nil {
		t.Errorf("StatusReply of %d unnamed counters: %v", MaxCounters, err)
	}
}

func TestMessageName(t *testing.T) {
	tests := []struct {
		t    MsgType
		want string
	}{
		{TypeHello, "ctl.Hello"},
		{TypePeerUp, "supervise.PeerUp"},
		{TypeLoadCertPair, "keysadmin.LoadCertPair"},
		{TypeSign, "tls.Sign"},
		{TypeDKIMSignature, "dkim.DKIMSignature"},
		{TypeErrorReply, "ErrorReply"},
		{TypeAck, "Ack"},
		{0x0199, "unknown(0x0199)"},
	}
	for _, tc := range tests {
		if got := MessageName(tc.t); got != tc.want {
			t.Errorf("MessageName(%#04x) = %q, want %q", uint16(tc.t), got, tc.want)
		}
	}
}

// TestMessageTable checks the table's internal consistency: numbering,
// families, and that every request names a reply type that exists.
func TestMessageTable(t *testing.T) {
	for _, typ := range MessageTypes() {
		info := messageTable[typ]
		if m := info.new(); m.Type() != typ {
			t.Errorf("%s: constructor makes %s", info.name, MessageName(m.Type()))
		}
		if info.fam != FamAny && Family(typ>>8) != info.fam {
			t.Errorf("%s: family %s but high byte %d", info.name, info.fam, typ>>8)
		}
		if !strings.HasPrefix(info.name, info.fam.String()+".") && info.fam != FamAny {
			t.Errorf("%s: name does not start with its family %s", info.name, info.fam)
		}
		isReply := info.kind == kindReply
		if isReply != (typ&0x80 != 0) && typ != TypeErrorReply {
			t.Errorf("%s: reply bit 0x80 does not match kind %s", info.name, info.kind)
		}
		if info.kind == kindRequest {
			r, ok := messageTable[info.reply]
			if !ok || r.kind != kindReply {
				t.Errorf("%s: reply type %s is not a reply", info.name, MessageName(info.reply))
			}
		}
	}
}

func TestRemoteErrorf(t *testing.T) {
	e := Errorf(CodeBusy, "%s", strings.Repeat("é", MaxErrorMessage))
	if len(e.Message) > MaxErrorMessage || !strings.HasPrefix(e.Message, "éé") || strings.ContainsRune(e.Message, '\uFFFD') {
		t.Errorf("message not clipped at a rune boundary: %d bytes", len(e.Message))
	}
	if _, err := EncodeFrame(Header{Type: TypeErrorReply, Flags: FlagReply, ID: 1}, &ErrorReply{Code: e.Code, Message: e.Message}); err != nil {
		t.Errorf("clipped error does not encode: %v", err)
	}
	if got := Errorf(CodeDenied, "no %s", "way").Error(); !strings.Contains(got, "denied") || !strings.Contains(got, "no way") {
		t.Errorf("Error() = %q", got)
	}
}
