package smtpclient

import (
	"bufio"
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// FuzzReply checks that the reply parser never panics, keeps to its limits,
// and that what it accepts survives a round trip through the wire form.
func FuzzReply(f *testing.F) {
	for _, s := range []string{
		"220 mx.example.org ESMTP\r\n",
		"250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 CHUNKING\r\n",
		"550 5.1.1 <a@example.org>: no such user\r\n",
		"452-4.5.3 too many\r\n452 4.5.3 recipients\r\n",
		"250\r\n",
		"250-\r\n250 \r\n",
		"334 \r\n",
		"250-a\r\n251 b\r\n",
		"250 2.0.0\n",
		"421 4.3.2 shutting down\r\nextra",
		"250 a\rb\r\n",
		"\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, raw, err := readReply(bufio.NewReader(bytes.NewReader(data)))
		if len(raw) > maxReplyLines+1 {
			t.Fatalf("%d raw lines kept, limit %d", len(raw), maxReplyLines)
		}
		if err != nil {
			return
		}
		if r.Code < 200 || r.Code > 559 || len(r.Text) == 0 || len(r.Text) > maxReplyLines {
			t.Fatalf("accepted reply %+v out of range", r)
		}
		if r.Enhanced != "" && r.Enhanced[0] != byte('0'+r.Code/100) {
			t.Fatalf("enhanced code %q does not match reply code %d", r.Enhanced, r.Code)
		}
		for _, l := range raw {
			if len(l) > maxReplyLine {
				t.Fatalf("accepted line of %d octets", len(l))
			}
		}
		for _, l := range r.Text {
			if strings.ContainsAny(l, "\r\n\x00") {
				t.Fatalf("text line %q contains CR, LF or NUL", l)
			}
		}
		_ = r.String()
		wire := r.appendWire(nil)
		if len(wire) > 2*len(data)+16*len(r.Text) {
			t.Fatalf("wire form grew from %d to %d", len(data), len(wire))
		}
		// A text that starts with spaces loses nothing either: the
		// wire form has exactly one separator after the code.
		r2, _, err := readReply(bufio.NewReader(bytes.NewReader(wire)))
		if err != nil {
			// Only the length limit may be crossed by adding the
			// enhanced code to lines that lacked it.
			if r.Enhanced == "" {
				t.Fatalf("re-parse of %q: %v", wire, err)
			}
			return
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("round trip changed %+v into %+v (wire %q)", r, r2, wire)
		}
	})
}
