package ipc

import (
	"reflect"
	"strings"
	"testing"
)

// TestIncomingDeliveryLimits: an event with every field at its limit fits
// one frame and round-trips; sizes and counts beyond the limits are
// refused by the sender.
func TestIncomingDeliveryLimits(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	m := &IncomingDelivery{
		Account: long(MaxAccountLen), Mailbox: long(MaxMailboxLen), MailFrom: long(MaxAddressLen),
		Rcpt: long(MaxAddressLen), MessageID: long(MaxIncomingHeader), Subject: long(MaxIncomingHeader),
		From: long(MaxAddressLen), Size: 1 << 40, Received: 1700000000123456789,
		DSN: &IncomingDSN{FromID: long(MaxFromID)},
	}
	for range MaxDSNResults {
		m.DSN.Results = append(m.DSN.Results, DSNResult{FinalRecipient: long(MaxAddressLen), Action: long(MaxResultWord),
			Status: long(MaxDSNStatus), Diagnostic: long(MaxDSNDiagnostic)})
	}
	b, err := EncodeFrame(sampleHeader(m), m)
	if err != nil {
		t.Fatalf("largest event: %v", err)
	}
	_, got, err := DecodeFrame(b, 0)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip: %v\n got %+v\nwant %+v", err, got, m)
	}

	bad := []*IncomingDelivery{
		{Account: "mjl", Size: -1},
		{Account: "mjl", Subject: long(MaxIncomingHeader + 1)},
		{Account: "mjl", DSN: &IncomingDSN{FromID: long(MaxFromID + 1)}},
		{Account: "mjl", DSN: &IncomingDSN{Results: make([]DSNResult, MaxDSNResults+1)}},
		{Account: "mjl", DSN: &IncomingDSN{Results: []DSNResult{{Diagnostic: long(MaxDSNDiagnostic + 1)}}}},
	}
	for _, m := range bad {
		if _, err := encodePayload(m); err == nil {
			t.Errorf("encoded %+v", m)
		}
	}
	// A negative size is refused by the receiver too.
	e := newEncoder(nil, MaxPayload)
	for range 7 {
		e.String("")
	}
	e.Int64(-5)
	e.Int64(0)
	e.Bool(false)
	d := NewDecoder(e.buf)
	new(IncomingDelivery).Decode(d)
	if err := d.Done(); err == nil || !isProtocolError(err) {
		t.Errorf("negative size decoded: %v", err)
	}
}
