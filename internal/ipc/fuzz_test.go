package ipc

import (
	"bytes"
	"testing"
)

// FuzzFrame decodes arbitrary frames. Whatever decodes must encode back to
// exactly the same bytes: the wire form is canonical.
func FuzzFrame(f *testing.F) {
	for _, m := range sampleMessages() {
		b, err := EncodeFrame(sampleHeader(m), m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(m.FDs()))
	}
	f.Add(frame(TypeGetCerts, FlagReply|FlagEvent, 0, 1, 0, 0), uint8(0))
	f.Add([]byte{0, 1, 0, 1}, uint8(0))
	f.Fuzz(func(t *testing.T, b []byte, nfd uint8) {
		n := int(nfd % (MaxFDs + 1))
		h, m, err := DecodeFrame(b, n)
		if err != nil {
			if !isProtocolError(err) {
				t.Fatalf("error %v (%T) is not a protocol error", err, err)
			}
			return
		}
		if m.FDs() != n || int(h.NFD) != n {
			t.Fatalf("decoded %s with fd count %d/%d, %d arrived", MessageName(h.Type), m.FDs(), h.NFD, n)
		}
		out, err := EncodeFrame(h, m)
		if err != nil {
			t.Fatalf("re-encode %s: %v", MessageName(h.Type), err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("re-encoded %s differs:\n in %x\nout %x", MessageName(h.Type), b, out)
		}
	})
}

// familyFuzz decodes payloads as one of the family's message types (picked
// by sel), and checks what decodes encodes back to the same bytes.
func familyFuzz(f *testing.F, fams ...Family) {
	var types []MsgType
	for _, t := range MessageTypes() {
		fam, _ := TypeFamily(t)
		for _, want := range fams {
			if fam == want {
				types = append(types, t)
			}
		}
	}
	if len(types) == 0 {
		f.Fatalf("no message types in %v", fams)
	}
	for i, t := range types {
		for _, m := range sampleMessages() {
			if m.Type() != t {
				continue
			}
			b, err := encodePayload(m)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(uint8(i), b)
		}
	}
	f.Fuzz(func(t *testing.T, sel uint8, payload []byte) {
		typ := types[int(sel)%len(types)]
		m := messageTable[typ].new()
		d := NewDecoder(payload)
		m.Decode(d)
		if err := d.Done(); err != nil {
			if !isProtocolError(err) {
				t.Fatalf("error %v (%T) is not a protocol error", err, err)
			}
			return
		}
		out, err := encodePayload(m)
		if err != nil {
			t.Fatalf("re-encode %s: %v", MessageName(typ), err)
		}
		if !bytes.Equal(out, payload) {
			t.Fatalf("re-encoded %s differs:\n in %x\nout %x", MessageName(typ), payload, out)
		}
	})
}

func FuzzCtl(f *testing.F)        { familyFuzz(f, FamCtl, FamAny) }
func FuzzSupervise(f *testing.F)  { familyFuzz(f, FamSupervise) }
func FuzzKeysAdmin(f *testing.F)  { familyFuzz(f, FamKeysAdmin, FamAny) }
func FuzzTLS(f *testing.F)        { familyFuzz(f, FamTLS) }
func FuzzDKIM(f *testing.F)       { familyFuzz(f, FamDKIM) }
func FuzzSubmit(f *testing.F)     { familyFuzz(f, FamSubmit, FamAny) }
func FuzzReports(f *testing.F)    { familyFuzz(f, FamReports) }
func FuzzRetry(f *testing.F)      { familyFuzz(f, FamRetry) }
func FuzzIncoming(f *testing.F)   { familyFuzz(f, FamIncoming) }
func FuzzQueueAdmin(f *testing.F) { familyFuzz(f, FamQueueAdmin, FamAny) }
