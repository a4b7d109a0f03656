package message

import (
	"reflect"
	"strings"
	"testing"
)

// sampleTree parses a message that uses every field of Part and Envelope.
func sampleTree(t *testing.T) *Part {
	msg := crlf(`From: "A" <a@example.org>
To: g: b@example.org;
Subject: test
Message-ID: <m@x>
Content-Type: multipart/mixed; boundary=b

--b
Content-Type: text/plain; charset=utf-8; name*0=a; name*1=b
Content-ID: <c@x>
Content-Description: d
Content-Disposition: inline; filename=f
Content-Language: en
Content-Location: l
Content-MD5: m

hello
--b
Content-Type: message/rfc822

Subject: inner

x
--b
`)
	return parseString(t, msg, DefaultLimits())
}

// checkRoundTrip fails t unless p survives MarshalBinary and UnmarshalPart
// unchanged.
func checkRoundTrip(t testing.TB, p *Part) {
	t.Helper()
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	q, err := UnmarshalPart(b)
	if err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	if !reflect.DeepEqual(p, q) {
		t.Fatalf("round trip differs\ngot  %+v\nwant %+v", q, p)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	for _, p := range []*Part{sampleTree(t), {}, {MediaType: "text", Truncated: true, Parts: []*Part{{End: 5}}}} {
		checkRoundTrip(t, p)
	}
}

func TestUnmarshalStrict(t *testing.T) {
	good, err := sampleTree(t).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		data    []byte
		wantErr string
	}{
		{"empty", nil, "unexpected end"},
		{"version", append([]byte{2}, good[1:]...), "unknown version 2"},
		{"trailing", append(append([]byte{}, good...), 0), "1 trailing bytes"},
		{"flags", []byte{1, 0x80}, "unknown part flags"},
		{"huge list", []byte{1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0x03}, "exceeds data"},
		{"offset overflow", []byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "out of range"},
	}
	for i := 1; i < len(good); i++ {
		tests = append(tests, struct {
			name    string
			data    []byte
			wantErr string
		}{"truncated", good[:i], "unmarshal part tree"})
	}
	for _, tc := range tests {
		p, err := UnmarshalPart(tc.data)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) || p != nil {
			t.Errorf("%s (%d bytes): got %v, %v; want error containing %q", tc.name, len(tc.data), p, err, tc.wantErr)
		}
	}
}

func TestUnmarshalDepth(t *testing.T) {
	// A chain of parts each holding one child, deeper than allowed.
	var b []byte
	b = append(b, 1)
	emptyPart := strings.Repeat("\x00", 16) // flags, offsets and empty fields
	for range maxMarshalDepth + 2 {
		b = append(b, emptyPart...)
		b = append(b, 1)
	}
	_, err := UnmarshalPart(b)
	if err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Errorf("got %v, want nesting error", err)
	}
}
