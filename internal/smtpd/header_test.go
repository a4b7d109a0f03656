package smtpd

import (
	"strings"
	"testing"
)

func TestHeaderCapture(t *testing.T) {
	tests := []struct {
		name   string
		pieces []string
		header string
		nrcv   int
	}{
		{"one write", []string{"Received: a\r\nReceived: b\r\n\tfolded\r\nFrom: x\r\n\r\nbody\r\n"}, "Received: a\r\nReceived: b\r\n\tfolded\r\nFrom: x\r\n", 2},
		{"split empty line", []string{"From: x\r\n\r", "\nbody"}, "From: x\r\n", 0},
		{"no header", []string{"\r\nbody"}, "", 0},
		{"all header", []string{"From: x\r\n"}, "From: x\r\n", 0},
		{"case", []string{"RECEIVED: a\r\nreceived : b\r\n\r\n"}, "RECEIVED: a\r\nreceived : b\r\n", 2},
	}
	for _, tt := range tests {
		h := &headerCapture{}
		for _, p := range tt.pieces {
			if n, err := h.Write([]byte(p)); n != len(p) || err != nil {
				t.Fatalf("%s: write %d, %v", tt.name, n, err)
			}
		}
		if got := string(h.header()); got != tt.header {
			t.Errorf("%s: header %q, want %q", tt.name, got, tt.header)
		}
		if got := h.count("Received"); got != tt.nrcv {
			t.Errorf("%s: %d Received, want %d", tt.name, got, tt.nrcv)
		}
	}
	// Too large: nothing kept, and nothing counted.
	h := &headerCapture{}
	h.Write([]byte(strings.Repeat("Received: x\r\n", maxCapturedHeader/13+1)))
	if h.header() != nil || h.count("Received") != 0 || !h.overflow {
		t.Errorf("oversized header kept")
	}
}
