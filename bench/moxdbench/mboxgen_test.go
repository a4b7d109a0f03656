package main

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"moxd/internal/mailproto/mbox"
)

// TestMboxGen checks what P6 relies on: the file reads back as n messages
// without problems, sizes are in the stated range with about a 4 KiB
// average, the mix of kinds is as documented, and a seed gives the same
// bytes every time.
func TestMboxGen(t *testing.T) {
	const n = 2000
	var a, b bytes.Buffer
	if _, err := writeMbox(&a, n, 6); err != nil {
		t.Fatal(err)
	}
	if _, err := writeMbox(&b, n, 6); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two runs with seed 6 differ")
	}
	var c bytes.Buffer
	if _, err := writeMbox(&c, 10, 7); err != nil {
		t.Fatal(err)
	}
	if bytes.HasPrefix(a.Bytes(), c.Bytes()[:1000]) {
		t.Error("seeds 6 and 7 give the same messages")
	}

	r := mbox.NewReader(bytes.NewReader(a.Bytes()), 0)
	var total, minSize, maxSize, seen, alternative, attachment, plain, keywords int
	minSize = 1 << 30
	for {
		m, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		size := len(m.Data)
		total += size
		minSize, maxSize = min(minSize, size), max(maxSize, size)
		if m.Flags.Seen {
			seen++
		}
		if len(m.Keywords) > 0 {
			keywords++
		}
		switch s := string(m.Data); {
		case strings.Contains(s, "multipart/alternative"):
			alternative++
		case strings.Contains(s, "Content-Disposition: attachment"):
			attachment++
		case strings.Contains(s, "text/plain"):
			plain++
		}
	}
	if p := r.Problems(); len(p) != 0 {
		t.Fatalf("problems reading the generated mbox: %v", p[:min(len(p), 5)])
	}
	count := plain + alternative + attachment
	if count != n {
		t.Fatalf("read %d messages of known kinds, want %d", count, n)
	}
	avg := total / n
	t.Logf("sizes %d..%d, average %d; plain %d, alternative %d, attachment %d, seen %d, keywords %d", minSize, maxSize, avg, plain, alternative, attachment, seen, keywords)
	if minSize < 2048 || maxSize > 20*1024 {
		t.Errorf("message sizes %d..%d, want 2 KiB..20 KiB", minSize, maxSize)
	}
	if avg < 3500 || avg > 4700 {
		t.Errorf("average size %d, want about 4 KiB", avg)
	}
	within := func(name string, got int, lo, hi float64) {
		if f := float64(got) / n; f < lo || f > hi {
			t.Errorf("%s: %.2f of messages, want %.2f..%.2f", name, f, lo, hi)
		}
	}
	within("plain", plain, 0.50, 0.60)
	within("alternative", alternative, 0.30, 0.40)
	within("attachment", attachment, 0.07, 0.13)
	within("seen", seen, 0.45, 0.55)
	within("keywords", keywords, 0.02, 0.06)
}
