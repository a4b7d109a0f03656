package inflate

import (
	"bufio"
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// mailText returns n octets of message-like text: CRLF lines of words,
// with the repetition mail has.
func mailText(n int, seed uint64) []byte {
	words := strings.Fields("the of to and a in is it you that he was for on are with as I his they " +
		"be at one have this from or had by hot word but what some we can out other were all there " +
		"Subject: Received: from by with ESMTPS id for <mjl@example.org>; Message-ID: Content-Type: text/plain")
	r := rand.New(rand.NewPCG(seed, 1))
	var b bytes.Buffer
	col := 0
	for b.Len() < n {
		w := words[r.IntN(len(words))]
		if col+len(w) > 72 {
			b.WriteString("\r\n")
			col = 0
		}
		b.WriteString(w)
		b.WriteByte(' ')
		col += len(w) + 1
	}
	return b.Bytes()[:n]
}

func randomData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// flushPoint is where the sender flushed: the compressed and the plain
// octets up to there.
type flushPoint struct{ in, out int }

// flateStream compresses segments of the given kind with compress/flate,
// flushing after each.
func flateStream(t *testing.T, level int, kind string, seed uint64) (plain, comp []byte, points []flushPoint) {
	t.Helper()
	var b bytes.Buffer
	zw, err := flate.NewWriter(&b, level)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(seed, 3))
	for i := range 40 {
		// Mostly command-sized, now and then past the window.
		n := 1 + r.IntN(200)
		if i%9 == 4 {
			n = 1 + r.IntN(50000)
		}
		var seg []byte
		switch {
		case kind == "text", kind == "mixed" && i%2 == 0:
			seg = mailText(n, seed+uint64(i))
		default:
			seg = randomData(n, seed+uint64(i))
		}
		zw.Write(seg)
		plain = append(plain, seg...)
		if err := zw.Flush(); err != nil {
			t.Fatal(err)
		}
		points = append(points, flushPoint{b.Len(), len(plain)})
	}
	zw.Write(mailText(300, seed))
	plain = append(plain, mailText(300, seed)...)
	zw.Close()
	return plain, b.Bytes(), points
}

// checkFlushes feeds comp through a pipe up to each flush point and
// checks the reader delivers all plain data up to there without more
// input, then the rest and io.EOF.
func checkFlushes(t *testing.T, comp, plain []byte, points []flushPoint) {
	t.Helper()
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.CloseWithError(errors.New("test over")) })
	writes := make(chan []byte, len(points)+1)
	go func() {
		for b := range writes {
			if _, err := pw.Write(b); err != nil {
				return
			}
		}
		pw.Close()
	}()
	type chunk struct {
		b   []byte
		err error
	}
	chunks := make(chan chunk, 16)
	go func() {
		zr := NewReader(pr)
		buf := make([]byte, 3000)
		for {
			n, err := zr.Read(buf)
			chunks <- chunk{bytes.Clone(buf[:n]), err}
			if err != nil {
				return
			}
		}
	}()
	var got []byte
	var final error
	receive := func(what string, want int) {
		timeout := time.After(10 * time.Second)
		for len(got) < want && final == nil {
			select {
			case c := <-chunks:
				got = append(got, c.b...)
				final = c.err
			case <-timeout:
				t.Fatalf("%s: reader delivered %d of %d octets and waits for input it does not need", what, len(got), want)
			}
		}
	}
	prev := 0
	for i, p := range points {
		writes <- comp[prev:p.in]
		prev = p.in
		receive(fmt.Sprintf("flush %d of %d", i+1, len(points)), p.out)
		if final != nil {
			t.Fatalf("flush %d: %v", i+1, final)
		}
		if len(got) > p.out || !bytes.Equal(got, plain[:p.out]) {
			t.Fatalf("flush %d: output differs from what was sent", i+1)
		}
	}
	writes <- comp[prev:]
	close(writes)
	receive("end", len(plain)+1)
	if final != io.EOF {
		t.Fatalf("end of stream: %v, want io.EOF", final)
	}
	if !bytes.Equal(got, plain) {
		t.Fatalf("output differs: %d octets, want %d", len(got), len(plain))
	}
}

func TestFlateFlushes(t *testing.T) {
	levels := []int{flate.HuffmanOnly, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	for _, level := range levels {
		for _, kind := range []string{"text", "random", "mixed"} {
			t.Run(fmt.Sprintf("level%d-%s", level, kind), func(t *testing.T) {
				plain, comp, points := flateStream(t, level, kind, uint64(level+10))
				checkFlushes(t, comp, plain, points)
			})
		}
	}
}

// zlibScript compresses argv[1] with Python's zlib as raw deflate at level
// argv[3], flushing at each offset listed in argv[2] with the modes of
// argv[4] in turn ("p" Z_PARTIAL_FLUSH, "s" Z_SYNC_FLUSH); it writes the
// stream to argv[5] and "compressed plain" offsets per flush to argv[6].
const zlibScript = `
import sys, zlib
data = open(sys.argv[1], "rb").read()
cuts = [int(x) for x in open(sys.argv[2]).read().split()]
modes = {"p": zlib.Z_PARTIAL_FLUSH, "s": zlib.Z_SYNC_FLUSH}
c = zlib.compressobj(int(sys.argv[3]), zlib.DEFLATED, -15)
out, points, prev = bytearray(), [], 0
for i, cut in enumerate(cuts):
    out += c.compress(data[prev:cut])
    out += c.flush(modes[sys.argv[4][i % len(sys.argv[4])]])
    points.append("%d %d" % (len(out), cut))
    prev = cut
out += c.compress(data[prev:]) + c.flush()
open(sys.argv[5], "wb").write(out)
open(sys.argv[6], "w").write("\n".join(points))
`

// imapTranscript is what a client like mbsync sends: commands, each
// flushed, and an APPEND literal sent in pieces.
func imapTranscript() (plain []byte, cuts []int) {
	var b bytes.Buffer
	line := func(s string) {
		b.WriteString(s + "\r\n")
		cuts = append(cuts, b.Len())
	}
	line("1 CAPABILITY")
	line("2 LOGIN mox@localhost secret")
	line("3 SELECT INBOX")
	for i := range 30 {
		line(fmt.Sprintf("%d UID FETCH %d:* (UID FLAGS)", 4+i, 1000+i*7))
		line(fmt.Sprintf("%d UID STORE %d +FLAGS.SILENT (\\Seen)", 100+i, i+1))
	}
	msg := append(mailText(40000, 7), randomData(3000, 8)...)
	b.WriteString(fmt.Sprintf("200 APPEND INBOX (\\Seen) {%d+}\r\n", len(msg)))
	for off := 0; off < len(msg); off += 1500 {
		b.Write(msg[off:min(off+1500, len(msg))])
		cuts = append(cuts, b.Len())
	}
	line("")
	line("201 NOOP")
	line("202 IDLE")
	line("DONE")
	b.WriteString("203 LOGOUT\r\n")
	return b.Bytes(), cuts
}

func python(t *testing.T) string {
	const p = "/usr/bin/python3"
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3 missing")
		}
		t.Skip("python3 missing")
	}
	return p
}

// zlibStream compresses plain with Python's zlib, flushing at cuts.
func zlibStream(t *testing.T, plain []byte, cuts []int, level int, modes string) (comp []byte, points []flushPoint) {
	t.Helper()
	py := python(t)
	dir := t.TempDir()
	f := func(name string) string { return filepath.Join(dir, name) }
	var cs []string
	for _, c := range cuts {
		cs = append(cs, strconv.Itoa(c))
	}
	if err := os.WriteFile(f("plain"), plain, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f("cuts"), []byte(strings.Join(cs, " ")), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-c", zlibScript, f("plain"), f("cuts"), strconv.Itoa(level), modes, f("comp"), f("points"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("python zlib: %v\n%s", err, out)
	}
	comp, err := os.ReadFile(f("comp"))
	if err != nil {
		t.Fatal(err)
	}
	ps, err := os.ReadFile(f("points"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(ps), "\n") {
		var p flushPoint
		if _, err := fmt.Sscanf(l, "%d %d", &p.in, &p.out); err != nil {
			t.Fatalf("points line %q: %v", l, err)
		}
		points = append(points, p)
	}
	return comp, points
}

// TestZlibFlushes: what mbsync sends, zlib flushed with Z_PARTIAL_FLUSH
// (blocks ending mid-octet, no stored block after them) and Z_SYNC_FLUSH,
// is delivered at each flush.
func TestZlibFlushes(t *testing.T) {
	plain, cuts := imapTranscript()
	for _, level := range []int{1, 6, 9} {
		for _, modes := range []string{"p", "s", "ppsp"} {
			t.Run(fmt.Sprintf("level%d-%s", level, modes), func(t *testing.T) {
				comp, points := zlibStream(t, plain, cuts, level, modes)
				checkFlushes(t, comp, plain, points)
			})
		}
	}
}

// TestTruncated: every prefix of a stream gives io.ErrUnexpectedEOF after
// the output its flushes promise, and nothing that was not sent.
func TestTruncated(t *testing.T) {
	type stream struct {
		name        string
		plain, comp []byte
		points      []flushPoint
	}
	var streams []stream
	for _, level := range []int{0, 1, 6} {
		var b bytes.Buffer
		zw, _ := flate.NewWriter(&b, level)
		var plain []byte
		var points []flushPoint
		for i := range 8 {
			seg := mailText(10+i*40, uint64(i))
			zw.Write(seg)
			plain = append(plain, seg...)
			zw.Flush()
			points = append(points, flushPoint{b.Len(), len(plain)})
		}
		zw.Close()
		streams = append(streams, stream{fmt.Sprintf("flate level %d", level), plain, b.Bytes(), points})
	}
	if _, err := os.Stat("/usr/bin/python3"); err == nil || os.Getenv("CI") != "" {
		plain, cuts := imapTranscript()
		plain, cuts = plain[:600], cuts[:10]
		comp, points := zlibStream(t, plain, cuts, 6, "p")
		streams = append(streams, stream{"zlib partial", plain, comp, points})
	}
	for _, s := range streams {
		for l := range len(s.comp) {
			out, err := readAll(NewReader(bytes.NewReader(s.comp[:l])), 4096, maxOut)
			if err != io.ErrUnexpectedEOF {
				t.Fatalf("%s: %d of %d octets: %v, want io.ErrUnexpectedEOF", s.name, l, len(s.comp), err)
			}
			if !bytes.HasPrefix(s.plain, out) {
				t.Fatalf("%s: %d octets: output is not what was sent", s.name, l)
			}
			for _, p := range s.points {
				if p.in <= l && len(out) < p.out {
					t.Fatalf("%s: %d octets: %d decoded, the flush at %d promised %d", s.name, l, len(out), p.in, p.out)
				}
			}
		}
	}
}

// TestNoReadAhead: the reader takes no octet after the end of the stream.
func TestNoReadAhead(t *testing.T) {
	for _, level := range []int{flate.HuffmanOnly, 0, 1, 9} {
		var b bytes.Buffer
		zw, _ := flate.NewWriter(&b, level)
		plain := mailText(5000, 3)
		zw.Write(plain)
		zw.Close()
		br := bufio.NewReader(io.MultiReader(&b, strings.NewReader("a2 NOOP\r\n")))
		out, err := readAll(NewReader(br), 1000, maxOut)
		if err != nil || !bytes.Equal(out, plain) {
			t.Fatalf("level %d: %d octets, %v", level, len(out), err)
		}
		if rest, _ := io.ReadAll(br); string(rest) != "a2 NOOP\r\n" {
			t.Fatalf("level %d: after the stream %q is left, want the next command", level, rest)
		}
	}
}

var errTimeout = errors.New("i/o timeout (test)")

// flakySource delivers data chunk octets at a time, and fails each wait for
// the next chunk once, as a read deadline does.
type flakySource struct {
	data       []byte
	pos, avail int
	chunk      int
	failed     bool
}

func (s *flakySource) Buffered() int { return s.avail - s.pos }

func (s *flakySource) receive() error {
	if s.pos == len(s.data) {
		return io.EOF
	}
	if !s.failed {
		s.failed = true
		return errTimeout
	}
	s.failed = false
	s.avail = min(s.pos+s.chunk, len(s.data))
	return nil
}

func (s *flakySource) ReadByte() (byte, error) {
	if s.pos == s.avail {
		if err := s.receive(); err != nil {
			return 0, err
		}
	}
	s.pos++
	return s.data[s.pos-1], nil
}

func (s *flakySource) Read(p []byte) (int, error) {
	if s.pos == s.avail {
		if err := s.receive(); err != nil {
			return 0, err
		}
	}
	n := copy(p, s.data[s.pos:s.avail])
	s.pos += n
	return n, nil
}

// TestSourceErrors: a read error (a deadline while the session waits) is
// returned, and the next Read carries on where decoding was.
func TestSourceErrors(t *testing.T) {
	for _, level := range []int{0, 1, 6} {
		plain, comp, _ := flateStream(t, level, "mixed", 5)
		for _, chunk := range []int{1, 3, 100, 5000} {
			zr := NewReader(&flakySource{data: comp, chunk: chunk})
			var got []byte
			timeouts := 0
			buf := make([]byte, 777)
			for {
				n, err := zr.Read(buf)
				got = append(got, buf[:n]...)
				if errors.Is(err, errTimeout) {
					timeouts++
					continue
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("level %d, chunks of %d: %v", level, chunk, err)
				}
			}
			if !bytes.Equal(got, plain) {
				t.Fatalf("level %d, chunks of %d: output differs", level, chunk)
			}
			if timeouts < len(comp)/chunk {
				t.Fatalf("level %d, chunks of %d: %d timeouts seen, want at least %d", level, chunk, timeouts, len(comp)/chunk)
			}
		}
	}
}

// bitWriter builds deflate streams bit by bit for the crafted cases.
type bitWriter struct {
	out []byte
	acc uint64
	n   uint
}

// bits writes the n low bits of v, least significant first (RFC 1951
// §3.1.1, data elements other than Huffman codes).
func (w *bitWriter) bits(v uint64, n uint) {
	w.acc |= v << w.n
	w.n += n
	for w.n >= 8 {
		w.out = append(w.out, byte(w.acc))
		w.acc >>= 8
		w.n -= 8
	}
}

// code writes a Huffman code of n bits, most significant first.
func (w *bitWriter) code(c uint16, n uint8) {
	for i := n; i > 0; i-- {
		w.bits(uint64(c>>(i-1)&1), 1)
	}
}

func (w *bitWriter) align() {
	if w.n > 0 {
		w.bits(0, 8-w.n)
	}
}

func (w *bitWriter) bytes() []byte {
	w.align()
	return w.out
}

// code is a Huffman code for writing: the canonical codes for lens.
type code struct {
	lens  []uint8
	codes []uint16
}

func newCode(lens ...uint8) code {
	var count, next [16]uint16
	for _, l := range lens {
		count[l]++
	}
	count[0] = 0
	for l, c := 1, uint16(0); l < 16; l++ {
		c = (c + count[l-1]) << 1
		next[l] = c
	}
	codes := make([]uint16, len(lens))
	for s, l := range lens {
		if l > 0 {
			codes[s] = next[l]
			next[l]++
		}
	}
	return code{lens, codes}
}

func (c code) put(w *bitWriter, sym int) { w.code(c.codes[sym], c.lens[sym]) }

// lengths returns n code lengths with the given ones set.
func lengths(n int, set map[int]uint8) []uint8 {
	l := make([]uint8, n)
	for s, v := range set {
		l[s] = v
	}
	return l
}

func fixedCodes() (lit, dist code) {
	l := make([]uint8, 288)
	for i := range l {
		l[i] = map[bool]uint8{true: 8, false: 9}[i < 144 || i >= 280]
		if i >= 256 && i < 280 {
			l[i] = 7
		}
	}
	d := make([]uint8, 32)
	for i := range d {
		d[i] = 5
	}
	return newCode(l...), newCode(d...)
}

// clSym is a code length code symbol with its extra bits.
type clSym struct{ sym, extra int }

// plainLens sends each length as itself.
func plainLens(lens ...[]uint8) []clSym {
	var s []clSym
	for _, l := range lens {
		for _, v := range l {
			s = append(s, clSym{int(v), 0})
		}
	}
	return s
}

// goodCL is a complete code length code for all 19 symbols.
var goodCL = func() [19]uint8 {
	var l [19]uint8
	for i := range l {
		l[i] = map[bool]uint8{true: 4, false: 5}[i < 13]
	}
	return l
}()

// dynHeader writes a dynamic block header (RFC 1951 §3.2.7): all 19 code
// length code lengths, then seq.
func dynHeader(w *bitWriter, final bool, nlit, ndist int, cl [19]uint8, seq []clSym) {
	w.bits(map[bool]uint64{true: 1, false: 0}[final], 1)
	w.bits(2, 2)
	w.bits(uint64(nlit-257), 5)
	w.bits(uint64(ndist-1), 5)
	w.bits(15, 4)
	for _, s := range codeLenOrder {
		w.bits(uint64(cl[s]), 3)
	}
	c := newCode(cl[:]...)
	for _, s := range seq {
		c.put(w, s.sym)
		w.bits(uint64(s.extra), map[int]uint{16: 2, 17: 3, 18: 7}[s.sym])
	}
}

type crafted struct {
	name string
	data []byte
	want string // output, if err is ""
	err  string // in the CorruptError's reason
}

func craftedCases() []crafted {
	fl, fd := fixedCodes()
	var cases []crafted
	add := func(name, want, err string, build func(w *bitWriter)) {
		var w bitWriter
		build(&w)
		cases = append(cases, crafted{name, w.bytes(), want, err})
	}
	fixed := func(w *bitWriter) { w.bits(1, 1); w.bits(1, 2) }

	add("fixed literals and a copy", "ababab", "", func(w *bitWriter) {
		fixed(w)
		fl.put(w, 'a')
		fl.put(w, 'b')
		fl.put(w, 258) // length 4
		fd.put(w, 1)   // distance 2
		fl.put(w, 256)
	})
	add("stored block", "xyz", "", func(w *bitWriter) {
		w.bits(1, 1)
		w.bits(0, 2)
		w.align()
		w.bits(3, 16)
		w.bits(0xfffc, 16)
		w.bits('x', 8)
		w.bits('y', 8)
		w.bits('z', 8)
	})
	add("stored then fixed, copy reaching into the stored data", "abcabc!", "", func(w *bitWriter) {
		w.bits(0, 1)
		w.bits(0, 2)
		w.align()
		w.bits(3, 16)
		w.bits(0xfffc, 16)
		w.bits('a', 8)
		w.bits('b', 8)
		w.bits('c', 8)
		fixed(w)
		fl.put(w, 257) // length 3
		fd.put(w, 2)   // distance 3
		fl.put(w, '!')
		fl.put(w, 256)
	})
	add("longest length and distance", strings.Repeat("z", 32768+258+257+258), "", func(w *bitWriter) {
		fixed(w)
		fl.put(w, 'z')
		for range 127 {
			fl.put(w, 285) // 258
			fd.put(w, 0)
		}
		fl.put(w, 'z') // 32768 octets so far
		fl.put(w, 285)
		fd.put(w, 29) // 24577 + 13 extra bits: 32768
		w.bits(8191, 13)
		fl.put(w, 284) // 227 + 5 extra bits: 257
		w.bits(30, 5)
		fd.put(w, 0)
		fl.put(w, 284) // 258, which zlib's inflate accepts too
		w.bits(31, 5)
		fd.put(w, 0)
		fl.put(w, 256)
	})
	lit := lengths(258, map[int]uint8{'a': 1, 256: 2, 257: 2})
	add("single distance code of one bit", "aaaa", "", func(w *bitWriter) {
		dynHeader(w, true, 258, 1, goodCL, plainLens(lit, []uint8{1}))
		c := newCode(lit...)
		c.put(w, 'a')
		c.put(w, 257)
		w.code(0, 1) // distance 1
		c.put(w, 256)
	})
	add("invalid code of a single distance code", "", "invalid distance code", func(w *bitWriter) {
		dynHeader(w, true, 258, 1, goodCL, plainLens(lit, []uint8{1}))
		c := newCode(lit...)
		c.put(w, 'a')
		c.put(w, 257)
		w.code(1, 1)
	})
	add("length in a block without distance codes", "", "invalid distance code", func(w *bitWriter) {
		dynHeader(w, true, 258, 1, goodCL, plainLens(lit, []uint8{0}))
		c := newCode(lit...)
		c.put(w, 'a')
		c.put(w, 257)
	})
	lit2 := lengths(257, map[int]uint8{'a': 1, 256: 1})
	add("no distance codes", "aa", "", func(w *bitWriter) {
		dynHeader(w, true, 257, 1, goodCL, plainLens(lit2, []uint8{0}))
		c := newCode(lit2...)
		c.put(w, 'a')
		c.put(w, 'a')
		c.put(w, 256)
	})
	add("only an end-of-block code", "", "", func(w *bitWriter) {
		l := lengths(257, map[int]uint8{256: 1})
		dynHeader(w, true, 257, 1, goodCL, plainLens(l, []uint8{0}))
		w.code(0, 1)
	})
	// Literals 0-127 of 8 bits, 128-255 of 9, end-of-block 2, lengths
	// 257-285 unused, distances 2 and 3 of one bit: sent with repeats,
	// the run of zeros crossing into the distance lengths.
	rep := []clSym{{8, 0}}
	for range 21 {
		rep = append(rep, clSym{16, 3}) // 6 more
	}
	rep = append(rep, clSym{8, 0}, clSym{9, 0})
	for range 21 {
		rep = append(rep, clSym{16, 3})
	}
	rep = append(rep, clSym{9, 0}, clSym{2, 0}, clSym{18, 20}, clSym{1, 0}, clSym{1, 0})
	replit := make([]uint8, 286)
	for i := range 256 {
		replit[i] = map[bool]uint8{true: 8, false: 9}[i < 128]
	}
	replit[256] = 2
	add("code length repeats", "hi\xc8", "", func(w *bitWriter) {
		dynHeader(w, true, 286, 4, goodCL, rep)
		c := newCode(replit...)
		c.put(w, 'h')
		c.put(w, 'i')
		c.put(w, 200)
		c.put(w, 256)
	})

	add("reserved block type", "", "block type 3", func(w *bitWriter) {
		w.bits(1, 1)
		w.bits(3, 2)
	})
	add("stored length and complement", "", "does not match", func(w *bitWriter) {
		w.bits(1, 1)
		w.bits(0, 2)
		w.align()
		w.bits(5, 16)
		w.bits(0, 16)
	})
	add("distance before any output", "", "distance 1 beyond the 0 octets", func(w *bitWriter) {
		fixed(w)
		fl.put(w, 257)
		fd.put(w, 0)
	})
	add("distance beyond the output", "", "distance 2 beyond the 1 octets", func(w *bitWriter) {
		fixed(w)
		fl.put(w, 'a')
		fl.put(w, 257)
		fd.put(w, 1)
	})
	add("literal/length code 286", "", "literal/length code 286", func(w *bitWriter) {
		fixed(w)
		fl.put(w, 286)
	})
	add("distance code 30", "", "distance code 30", func(w *bitWriter) {
		fixed(w)
		fl.put(w, 'a')
		fl.put(w, 257)
		fd.put(w, 30)
	})
	var allOne, oneCode [19]uint8
	for i := range allOne {
		allOne[i] = 1
	}
	oneCode[0] = 1
	add("over-subscribed code length code", "", "code length code: over-subscribed", func(w *bitWriter) {
		dynHeader(w, true, 257, 1, allOne, nil)
	})
	add("single code length code", "", "code length code: incomplete", func(w *bitWriter) {
		dynHeader(w, true, 257, 1, oneCode, nil)
	})
	add("over-subscribed literal/length code", "", "literal/length code: over-subscribed", func(w *bitWriter) {
		l := lengths(257, map[int]uint8{'a': 1, 'b': 1, 256: 1})
		dynHeader(w, true, 257, 1, goodCL, plainLens(l, []uint8{0}))
	})
	add("incomplete literal/length code", "", "literal/length code: incomplete", func(w *bitWriter) {
		l := lengths(257, map[int]uint8{'a': 2, 256: 2})
		dynHeader(w, true, 257, 1, goodCL, plainLens(l, []uint8{0}))
	})
	add("incomplete distance code", "", "distance code: incomplete", func(w *bitWriter) {
		dynHeader(w, true, 257, 2, goodCL, plainLens(lit2, []uint8{2, 2}))
	})
	add("repeat without a previous length", "", "without a previous length", func(w *bitWriter) {
		dynHeader(w, true, 257, 1, goodCL, []clSym{{16, 0}})
	})
	add("repeat past the end", "", "repeat of 138 past the 258 lengths", func(w *bitWriter) {
		dynHeader(w, true, 257, 1, goodCL, []clSym{{18, 127}, {18, 127}})
	})
	add("287 literal/length codes", "", "287 literal/length codes", func(w *bitWriter) {
		dynHeader(w, true, 287, 1, goodCL, nil)
	})
	add("no end-of-block code", "", "without an end-of-block code", func(w *bitWriter) {
		l := lengths(257, map[int]uint8{'a': 1, 'b': 1})
		dynHeader(w, true, 257, 1, goodCL, plainLens(l, []uint8{0}))
	})
	return cases
}

func TestCrafted(t *testing.T) {
	for _, c := range craftedCases() {
		t.Run(c.name, func(t *testing.T) {
			out, err := readAll(NewReader(bytes.NewReader(c.data)), 4096, maxOut)
			if c.err == "" {
				if err != nil || string(out) != c.want {
					t.Fatalf("got %d octets %.40q, %v; want %d octets %.40q", len(out), out, err, len(c.want), c.want)
				}
			} else {
				var ce *CorruptError
				if !errors.As(err, &ce) || !strings.Contains(ce.Reason, c.err) {
					t.Fatalf("got %v, want a CorruptError with %q", err, c.err)
				}
			}
			checkStream(t, c.data)
		})
	}
}

// TestMutated: damaged streams give errors or output, never a panic, and
// agree with compress/flate whenever it decodes them.
func TestMutated(t *testing.T) {
	var valid [][]byte
	for _, level := range []int{flate.HuffmanOnly, 0, 1, 6, 9} {
		_, comp, _ := flateStream(t, level, "text", uint64(level+20))
		valid = append(valid, comp[:min(len(comp), 3000)])
	}
	for _, c := range craftedCases() {
		valid = append(valid, c.data)
	}
	r := rand.New(rand.NewPCG(9, 9))
	for i := range 1500 {
		data := bytes.Clone(valid[i%len(valid)])
		for range 1 + r.IntN(3) {
			data[r.IntN(len(data))] ^= byte(1 << r.IntN(8))
		}
		checkStream(t, data)
	}
}

// TestMemoryBound: decoding allocates nothing beyond the reader, however
// much comes out.
func TestMemoryBound(t *testing.T) {
	var b bytes.Buffer
	zw, _ := flate.NewWriter(&b, 9)
	zeros := make([]byte, 1<<20)
	for range 32 {
		zw.Write(zeros)
	}
	zw.Close()
	comp := b.Bytes()
	buf := make([]byte, 32<<10)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	zr := NewReader(bytes.NewReader(comp))
	total := 0
	for {
		n, err := zr.Read(buf)
		total += n
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if total != 32<<20 {
		t.Fatalf("%d octets, want %d", total, 32<<20)
	}
	if a := after.TotalAlloc - before.TotalAlloc; a > 128<<10 {
		t.Fatalf("%d octets allocated for %d of input, %d of output", a, len(comp), total)
	}
}

// appendStream is a 10 MiB APPEND: message text and a binary part,
// compressed as zlib's default level would.
func appendStream() (plain, comp []byte) {
	plain = append(mailText(8<<20, 11), randomData(2<<20, 12)...)
	var b bytes.Buffer
	zw, _ := flate.NewWriter(&b, 6)
	zw.Write(plain)
	zw.Close()
	return plain, b.Bytes()
}

func BenchmarkInflate(b *testing.B) {
	plain, comp := appendStream()
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		zr := NewReader(bytes.NewReader(comp))
		if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{zr}, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFlate is compress/flate on the same stream, for comparison.
func BenchmarkFlate(b *testing.B) {
	plain, comp := appendStream()
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		zr := flate.NewReader(bytes.NewReader(comp))
		if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{zr}, buf); err != nil {
			b.Fatal(err)
		}
	}
}
