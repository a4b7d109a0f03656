package message

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// countLines counts lines the way BodyLines does: line breaks, plus one for
// a last line without one.
func countLines(b string) int64 {
	n := int64(strings.Count(b, "\n"))
	if b != "" && !strings.HasSuffix(b, "\n") {
		n++
	}
	return n
}

// checkTree verifies the invariants every parsed tree holds.
func checkTree(msg string, p *Part, lo, hi int64, depth int) error {
	if p.HeaderStart < lo || p.HeaderStart > p.BodyStart || p.BodyStart > p.End || p.End > hi {
		return fmt.Errorf("offsets %d %d %d outside %d..%d", p.HeaderStart, p.BodyStart, p.End, lo, hi)
	}
	if n := countLines(msg[p.BodyStart:p.End]); n != p.BodyLines {
		return fmt.Errorf("part at %d: %d lines, body has %d", p.HeaderStart, p.BodyLines, n)
	}
	if depth > DefaultLimits().MaxDepth+1 {
		return fmt.Errorf("depth %d", depth)
	}
	if p.MediaType == "message" && len(p.Parts) > 0 && (len(p.Parts) != 1 || p.Parts[0].HeaderStart != p.BodyStart) {
		return fmt.Errorf("message part at %d: %d children", p.HeaderStart, len(p.Parts))
	}
	start := p.BodyStart
	for _, c := range p.Parts {
		if err := checkTree(msg, c, start, p.End, depth+1); err != nil {
			return err
		}
		start = c.End
	}
	return nil
}

func FuzzParse(f *testing.F) {
	seeds := []string{
		"",
		"\n",
		"\r\n\r\n",
		"Subject: x\r\n\r\nbody",
		"Content-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n--b--\n",
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nContent-Type: multipart/digest; boundary=c\r\n\r\n--c\r\n\r\nSubject: d\r\n\r\n--c--\r\n--b",
		"Content-Type: multipart/mixed; boundary=b\n\n--b\n--b\n\n--b--\n",
		"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\n--b--\n--b--",
		"Content-Type: message/rfc822\n\nContent-Type: message/rfc822\n\n\n",
		"From: a:b,c;<d>\nTo: \"x\n\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		msg := string(data)
		for _, lim := range []Limits{DefaultLimits(), {MaxDepth: 2, MaxParts: 4, MaxHeaderBytes: 16}} {
			p, err := Parse(bytes.NewReader(data), int64(len(data)), lim)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if p.HeaderStart != 0 || p.End != int64(len(data)) {
				t.Fatalf("root covers %d..%d, want 0..%d", p.HeaderStart, p.End, len(data))
			}
			if err := checkTree(msg, p, 0, int64(len(data)), 0); err != nil {
				t.Fatal(err)
			}
			checkRoundTrip(t, p)
		}
	})
}

// failingReader returns an error after n bytes.
type failingReader struct {
	data []byte
	n    int64
}

var errDisk = errors.New("disk error")

func (r failingReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= r.n {
		return 0, errDisk
	}
	n := copy(p, r.data[off:min(int64(len(r.data)), r.n)])
	if off+int64(n) >= r.n {
		return n, errDisk
	}
	return n, nil
}

func TestParseReadError(t *testing.T) {
	msg := []byte("Subject: x\n\n" + strings.Repeat("line\n", 100000))
	for _, n := range []int64{0, 5, 300000} {
		_, err := Parse(failingReader{msg, n}, int64(len(msg)), DefaultLimits())
		if !errors.Is(err, errDisk) {
			t.Errorf("failing at %d: got %v, want disk error", n, err)
		}
	}
	// A size larger than the data is an early end of message, not an error
	// the caller must handle specially: io.SectionReader reports io.EOF.
	p, err := Parse(bytes.NewReader(msg[:20]), 1000, DefaultLimits())
	if err != nil || p.End != 20 {
		t.Errorf("short data: got %v, end %v", err, p)
	}
}

// BenchmarkParse parses a 1 MiB multipart message with text, base64 and an
// attached message.
func BenchmarkParse(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("From: a@example.org\r\nSubject: bench\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n")
	for i := 0; sb.Len() < 1<<20; i++ {
		sb.WriteString("--outer\r\n")
		switch i % 3 {
		case 0:
			sb.WriteString("Content-Type: text/plain; charset=utf-8\r\n\r\n")
			sb.WriteString(strings.Repeat("The quick brown fox jumps over the lazy dog.\r\n", 200))
		case 1:
			sb.WriteString("Content-Type: application/octet-stream; name=x.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n")
			sb.WriteString(strings.Repeat(strings.Repeat("QUJD", 19)+"\r\n", 200))
		case 2:
			sb.WriteString("Content-Type: message/rfc822\r\n\r\nFrom: b@example.org\r\nSubject: inner\r\n\r\n")
			sb.WriteString(strings.Repeat("inner line\r\n", 200))
		}
	}
	sb.WriteString("--outer--\r\n")
	msg := sb.String()
	r := strings.NewReader(msg)
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := Parse(r, int64(len(msg)), DefaultLimits()); err != nil {
			b.Fatal(err)
		}
	}
}

var _ io.ReaderAt = failingReader{}
