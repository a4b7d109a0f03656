package inflate

import (
	"bufio"
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// maxOut bounds the output the checks read: a short input can expand a
// thousandfold.
const maxOut = 4 << 20

// readAll reads r to its end or to limit octets, using reads of size
// chunk. At the end of the stream err is nil.
func readAll(r io.Reader, chunk, limit int) (out []byte, err error) {
	buf := make([]byte, chunk)
	for len(out) < limit {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if n == 0 {
			return out, errors.New("Read returned 0 octets and no error")
		}
	}
	return out, errLimit
}

var errLimit = errors.New("output limit reached")

// errKind classes a decoding error for comparing two decodings.
func errKind(err error) string {
	var ce *CorruptError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &ce):
		return "corrupt"
	case err == io.ErrUnexpectedEOF:
		return "truncated"
	case err == errLimit:
		return "limit"
	}
	return "other: " + err.Error()
}

// checkStream decodes data in large reads, and again octet by octet with
// small reads (every step resumed after running out of input), and with
// compress/flate. Both of ours must agree; when compress/flate decodes
// the stream, ours must give the same.
func checkStream(t *testing.T, data []byte) {
	t.Helper()
	out1, err1 := readAll(NewReader(bytes.NewReader(data)), 64<<10, maxOut)
	trickle := bufio.NewReaderSize(iotest.OneByteReader(bytes.NewReader(data)), 16)
	out2, err2 := readAll(NewReader(trickle), 7, maxOut)
	k1, k2 := errKind(err1), errKind(err2)
	if k1 != "ok" && k1 != "corrupt" && k1 != "truncated" && k1 != "limit" {
		t.Fatalf("unexpected error %v", err1)
	}
	if k1 != "limit" && k2 != "limit" && (k1 != k2 || !bytes.Equal(out1, out2)) {
		t.Fatalf("large reads: %d octets, %v; octet by octet: %d octets, %v", len(out1), err1, len(out2), err2)
	}
	ref, errRef := readAll(flate.NewReader(bytes.NewReader(data)), 64<<10, maxOut)
	if errRef == nil {
		if err1 != nil || !bytes.Equal(out1, ref) {
			t.Fatalf("compress/flate decodes %d octets, we %d with %v (equal %v)", len(ref), len(out1), err1, bytes.Equal(out1, ref))
		}
	}
	if errRef == errLimit && k1 == "limit" && !bytes.Equal(out1, ref) {
		t.Fatalf("first %d octets differ from compress/flate's", maxOut)
	}
}

func FuzzInflate(f *testing.F) {
	for _, level := range []int{flate.HuffmanOnly, 0, 1, 6, 9} {
		var b bytes.Buffer
		zw, _ := flate.NewWriter(&b, level)
		zw.Write([]byte("a1 LOGIN mjl secret\r\n"))
		zw.Flush()
		zw.Write(mailText(2000, 1))
		zw.Close()
		f.Add(b.Bytes())
	}
	// Hand-built blocks: a single distance code, no distance codes, and
	// some of the corrupt ones of TestCorrupt.
	for _, c := range craftedCases() {
		f.Add(c.data)
	}
	// zlib with Z_PARTIAL_FLUSH after "a1 NOOP\r\n" and after "a2 IDLE\r\n",
	// then Z_FINISH (level 6, wbits -15).
	f.Add([]byte{0x4a, 0x34, 0x54, 0xf0, 0xf3, 0xf7, 0x0f, 0xe0, 0xe5, 0x02, 0x08, 0xa0, 0x44,
		0x23, 0x05, 0x4f, 0x17, 0x1f, 0x57, 0x5e, 0x2e, 0x80, 0x00, 0x03, 0x00})
	f.Add([]byte{})
	f.Add([]byte{0x03, 0x00})
	f.Add([]byte{0x01, 0x00, 0x00, 0xff, 0xff})

	f.Fuzz(func(t *testing.T, data []byte) {
		checkStream(t, data)
	})
}
