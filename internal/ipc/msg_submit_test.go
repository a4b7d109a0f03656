package ipc

import (
	"strings"
	"testing"
)

// TestSubmitWireSize checks the sizes callers use to split recipients
// between AddRecipients and Submit.
func TestSubmitWireSize(t *testing.T) {
	m := &Submit{MailFrom: "mjl@example.org", EnvID: "x1", Prefix: []byte("Received: x\r\n"),
		Recipients: []SubmitRcpt{{Address: "a@example.net", ORcpt: "rfc822;a@example.net"}, {Address: "b@example.net"}}}
	b, err := encodePayload(m)
	if err != nil {
		t.Fatal(err)
	}
	if m.WireSize() != len(b) {
		t.Errorf("WireSize %d, encoded %d bytes", m.WireSize(), len(b))
	}
	// Recipients that fit the count limit but not the frame are an encode
	// error, not a frame the peer would refuse.
	for range MaxSubmitRcpts {
		m.Recipients = append(m.Recipients, SubmitRcpt{Address: strings.Repeat("a", 300) + "@example.net"})
	}
	m.Recipients = m.Recipients[:MaxSubmitRcpts]
	if _, err := EncodeFrame(Header{Type: TypeSubmit, ID: 1}, m); err == nil || !strings.Contains(err.Error(), "frame limit") {
		t.Errorf("oversized submit: %v, want frame limit error", err)
	}
}

func TestSubmitRcptNotify(t *testing.T) {
	tests := []struct {
		notify uint8
		ok     bool
	}{
		{0, true},
		{NotifyNever, true},
		{NotifySuccess | NotifyFailure | NotifyDelay, true},
		{NotifyNever | NotifyFailure, false}, // RFC 3461 §4.1: NEVER stands alone
		{1 << 4, false},
	}
	for _, tc := range tests {
		m := &AddRecipients{Spool: 1, Recipients: []SubmitRcpt{{Address: "a@example.net", Notify: tc.notify}}}
		_, err := encodePayload(m)
		if (err == nil) != tc.ok {
			t.Errorf("encode notify %#x: %v, want ok %v", tc.notify, err, tc.ok)
		}
		// The decoder refuses the same bytes.
		b := []byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 13}
		b = append(b, "a@example.net"...)
		b = append(b, tc.notify, 0, 0)
		d := NewDecoder(b)
		new(AddRecipients).Decode(d)
		if err := d.Done(); (err == nil) != tc.ok {
			t.Errorf("decode notify %#x: %v, want ok %v", tc.notify, err, tc.ok)
		}
	}
}

func TestDMARCEvalSourceIP(t *testing.T) {
	m := &DMARCEval{PolicyDomain: "example.net", SourceIP: "not an ip"}
	if _, err := encodePayload(m); err == nil {
		t.Errorf("dmarc evaluation with a bad source ip encoded")
	}
}
