// Package inflate decompresses a raw DEFLATE stream (RFC 1951) for a
// protocol that interleaves compressed data with waiting for the peer:
// IMAP COMPRESS=DEFLATE (RFC 4978), where the client flushes its
// compressor after each command and then waits for the answer.
//
// Go's compress/flate reader is not used for this side because it may wait
// for input bits beyond those that complete the flushed data: after a
// zlib Z_PARTIAL_FLUSH (as mbsync sends) the last block ends in the middle
// of an octet and no empty stored block follows, and a reader that wants
// more bits before handing out what it has decoded hangs the session.
// RFC 4978 §4 requires the server to decompress whatever a flush gives it.
//
// Implementation notes:
//   - The decoder keeps fewer than 56 unconsumed input bits (a step needs
//     at most 48) and takes another input octet only when the bits it has
//     cannot complete the next step (a block header field, one code
//     length, one literal, one length/distance pair). So it never takes
//     an octet before it needs at least one of its bits.
//   - Read decodes until p is full or the next step needs an octet the
//     source has not yet received; it returns the output it has rather
//     than wait. It waits only when it has nothing at all to return.
//   - Every step is decoded from the buffered bits before any of them are
//     consumed, so a step that needs more input leaves the state as it
//     was. A read error of the source other than end of input (a deadline,
//     say) is returned as it is and the next Read carries on; corrupt data
//     and the end of the stream are final.
//   - Huffman codes (RFC 1951 §3.2.2) are looked up in a table indexed by
//     the next tableBits bits, the missing ones taken as zero when fewer
//     are buffered; a code longer than the table, or bits that no code in
//     the table starts, are decoded bit by bit from the canonical code's
//     counts per length, which also tells an invalid code from one that
//     needs more bits.
//   - Memory is the 32 KiB window, three code tables and the source's
//     buffer, all allocated by NewReader; Read allocates nothing.
package inflate

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// windowSize is the most a distance can reach back (RFC 1951 §2).
const windowSize = 1 << 15

// Source is what the decoder reads from: octets one at a time, runs of
// stored data, and how much can be had without waiting. *bufio.Reader is
// one.
type Source interface {
	io.Reader
	io.ByteReader
	Buffered() int
}

// CorruptError reports invalid deflate data.
type CorruptError struct {
	Offset int64  // input octets consumed when the error was found
	Reason string // what was wrong
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("inflate: corrupt input near octet %d: %s", e.Offset, e.Reason)
}

// errMoreBits is internal: the next step needs more input than is buffered.
var errMoreBits = errors.New("inflate: more input needed")

// Decoder states, one per kind of step.
type state uint8

const (
	stHeader       state = iota // BFINAL and BTYPE (RFC 1951 §3.2.3)
	stStoredHeader              // LEN and NLEN (§3.2.4)
	stStored                    // copying stored octets
	stDynHeader                 // HLIT, HDIST, HCLEN (§3.2.7)
	stCodeLenLens               // the code length code's lengths
	stCodeLens                  // the literal/length and distance code lengths
	stData                      // compressed data (§3.2.5)
	stCopy                      // rest of a copy that did not fit in p
)

// Reader decompresses a raw deflate stream. It is not safe for concurrent
// use.
type Reader struct {
	src Source
	in  int64 // input octets consumed

	bits  uint64 // unconsumed input bits, the next one lowest
	nbits uint   // number of valid bits in bits

	state state
	final bool  // the current block is the last one
	err   error // final: corrupt data, or io.EOF after the last block

	win  [windowSize]byte // the last windowSize output octets, a ring
	wpos uint32           // output octets written, modulo 2^32
	full bool             // the window has been filled once

	copyLen, copyDist int // pending copy (stCopy)
	storedLeft        int // octets left in a stored block (stStored)

	// Dynamic block header in progress.
	nlit, ndist, nclen int
	nlens              int // lengths read so far (stCodeLenLens, stCodeLens)
	clens              [19]uint8
	lens               [maxLit + maxDist]uint8

	lit, dist, clen huffman
	fixed           bool // lit and dist hold the fixed codes
}

// NewReader returns a decompressor reading from r. If r is not a Source it
// is wrapped in a bufio.Reader, which may take octets from r beyond the
// end of the deflate stream.
func NewReader(r io.Reader) *Reader {
	src, ok := r.(Source)
	if !ok {
		src = bufio.NewReader(r)
	}
	return &Reader{src: src}
}

// Read decompresses into p. It returns as soon as it has decompressed
// something and the source has no more input without waiting; it returns
// io.EOF after the last block.
func (z *Reader) Read(p []byte) (int, error) {
	n := 0
	for {
		if z.err != nil {
			if n > 0 {
				return n, nil
			}
			return 0, z.err
		}
		if n == len(p) {
			return n, nil
		}
		m, err := z.step(p[n:])
		n += m
		switch {
		case err == errMoreBits:
			if n > 0 && z.src.Buffered() == 0 {
				return n, nil // output now rather than wait for the peer
			}
			if err := z.fetch(); err != nil {
				// Only with n == 0: with octets buffered, ReadByte cannot fail.
				return n, err
			}
		case err != nil:
			z.err = err
		}
	}
}

// fetch adds one input octet to the bit buffer. The end of input is final
// (the stream is incomplete); other errors are passed on and the decoder
// may be called again.
func (z *Reader) fetch() error {
	b, err := z.src.ReadByte()
	if err == io.EOF {
		z.err = io.ErrUnexpectedEOF
		return z.err
	}
	if err != nil {
		return err
	}
	z.in++
	z.bits |= uint64(b) << z.nbits
	z.nbits += 8
	return nil
}

// consume drops the next n bits, which the caller has checked are there.
func (z *Reader) consume(n uint) {
	z.bits >>= n
	z.nbits -= n
}

func (z *Reader) corrupt(format string, args ...any) error {
	return &CorruptError{Offset: z.in, Reason: fmt.Sprintf(format, args...)}
}

// put appends an output octet to p[n] and the window.
func (z *Reader) put(p []byte, n int, b byte) {
	p[n] = b
	z.win[z.wpos&(windowSize-1)] = b
	z.wpos++
	if z.wpos == windowSize {
		z.full = true
	}
}

// endBlock moves on after a block: to the next header, or the end.
func (z *Reader) endBlock() error {
	z.state = stHeader
	if z.final {
		return io.EOF
	}
	return nil
}

// step performs one or more decoding steps, writing output to p. It
// returns errMoreBits when the next step needs input that is not in the bit
// buffer yet.
func (z *Reader) step(p []byte) (int, error) {
	switch z.state {
	case stHeader:
		// RFC 1951 §3.2.3: BFINAL, then BTYPE, in 3 bits.
		if z.nbits < 3 {
			return 0, errMoreBits
		}
		z.final = z.bits&1 == 1
		btype := z.bits >> 1 & 3
		z.consume(3)
		switch btype {
		case 0:
			z.state = stStoredHeader
		case 1:
			z.loadFixed()
			z.state = stData
		case 2:
			z.state = stDynHeader
		default:
			return 0, z.corrupt("block type 3 is reserved")
		}
		return 0, nil

	case stStoredHeader:
		// RFC 1951 §3.2.4: skip to the octet boundary, then LEN and NLEN,
		// the one's complement of LEN. Only the rest of the last octet is
		// skipped: a whole octet is taken only when a bit of it is needed.
		z.consume(z.nbits & 7)
		if z.nbits < 32 {
			return 0, errMoreBits
		}
		ln, nln := uint16(z.bits), uint16(z.bits>>16)
		if ln != ^nln {
			return 0, z.corrupt("stored block length %#04x does not match its complement %#04x", ln, nln)
		}
		z.consume(32)
		z.storedLeft = int(ln)
		z.state = stStored
		if ln == 0 {
			return 0, z.endBlock()
		}
		return 0, nil

	case stStored:
		return z.stored(p)

	case stDynHeader:
		// RFC 1951 §3.2.7: HLIT (5 bits), HDIST (5), HCLEN (4).
		if z.nbits < 14 {
			return 0, errMoreBits
		}
		z.nlit = int(z.bits&31) + 257
		z.ndist = int(z.bits>>5&31) + 1
		z.nclen = int(z.bits>>10&15) + 4
		if z.nlit > maxLit {
			// RFC 1951 §3.2.7: HLIT is 257 - 286.
			return 0, z.corrupt("%d literal/length codes, at most %d exist", z.nlit, maxLit)
		}
		z.consume(14)
		z.clens = [19]uint8{}
		z.nlens = 0
		z.state = stCodeLenLens
		return 0, nil

	case stCodeLenLens:
		// RFC 1951 §3.2.7: HCLEN+4 code lengths of 3 bits, in a fixed order.
		for z.nlens < z.nclen {
			if z.nbits < 3 {
				return 0, errMoreBits
			}
			z.clens[codeLenOrder[z.nlens]] = uint8(z.bits & 7)
			z.consume(3)
			z.nlens++
		}
		if err := z.clen.init(z.clens[:], false); err != "" {
			return 0, z.corrupt("code length code: %s", err)
		}
		z.fixed = false
		z.nlens = 0
		z.state = stCodeLens
		return 0, nil

	case stCodeLens:
		return 0, z.codeLens()

	case stData:
		return z.data(p)

	case stCopy:
		n := z.copyOut(p)
		if z.copyLen == 0 {
			z.state = stData
		}
		return n, nil
	}
	return 0, fmt.Errorf("inflate: internal error: state %d", z.state)
}

// stored copies octets of a stored block to p, straight from the source
// once the bit buffer holds no whole octet. (After the header it holds
// none, as octets are fetched only when needed; the first loop keeps that
// from being a hidden assumption.)
func (z *Reader) stored(p []byte) (int, error) {
	n := 0
	for n < len(p) && z.storedLeft > 0 && z.nbits >= 8 {
		z.put(p, n, byte(z.bits))
		z.consume(8)
		n++
		z.storedLeft--
	}
	for n < len(p) && z.storedLeft > 0 {
		avail := z.src.Buffered()
		if avail == 0 {
			if n > 0 {
				return n, nil
			}
			return 0, errMoreBits // fetch waits for one octet
		}
		m := min(avail, len(p)-n, z.storedLeft)
		m, err := z.src.Read(p[n : n+m])
		for _, b := range p[n : n+m] {
			z.win[z.wpos&(windowSize-1)] = b
			z.wpos++
			if z.wpos == windowSize {
				z.full = true
			}
		}
		z.in += int64(m)
		n += m
		z.storedLeft -= m
		if err != nil {
			// Buffered octets do not fail; this is a broken Source.
			return n, err
		}
	}
	if z.storedLeft == 0 {
		return n, z.endBlock()
	}
	return n, nil
}

// codeLens reads the literal/length and distance code lengths (RFC 1951
// §3.2.7), one code (with its extra bits) at a time, and builds the codes.
func (z *Reader) codeLens() error {
	total := z.nlit + z.ndist
	for z.nlens < total {
		sym, l, err := z.clen.decode(z.bits, z.nbits)
		if err != nil {
			return z.symErr(err, "code length")
		}
		var extra uint
		var rep int
		var val uint8
		switch {
		case sym < 16:
			z.consume(l)
			z.lens[z.nlens] = uint8(sym)
			z.nlens++
			continue
		case sym == 16:
			// Copy the previous length 3 - 6 times (2 extra bits).
			if z.nlens == 0 {
				return z.corrupt("code length repeat without a previous length")
			}
			extra, rep, val = 2, 3, z.lens[z.nlens-1]
		case sym == 17:
			extra, rep = 3, 3 // 3 - 10 zeros
		default:
			extra, rep = 7, 11 // 3 - 138 zeros
		}
		if z.nbits < l+extra {
			return errMoreBits
		}
		rep += int(z.bits >> l & (1<<extra - 1))
		// RFC 1951 §3.2.7: the lengths are one sequence of HLIT + HDIST +
		// 258 values; a repeat may cross from one code into the other, not
		// past the end.
		if z.nlens+rep > total {
			return z.corrupt("code length repeat of %d past the %d lengths", rep, total)
		}
		z.consume(l + extra)
		for range rep {
			z.lens[z.nlens] = val
			z.nlens++
		}
	}
	lit, dist := z.lens[:z.nlit], z.lens[z.nlit:total]
	// RFC 1951 §3.2.5: every block ends with code 256.
	if lit[endOfBlock] == 0 {
		return z.corrupt("literal/length code without an end-of-block code")
	}
	if err := z.lit.init(lit, true); err != "" {
		return z.corrupt("literal/length code: %s", err)
	}
	if err := z.dist.init(dist, true); err != "" {
		return z.corrupt("distance code: %s", err)
	}
	z.state = stData
	return nil
}

// loadFixed sets up the fixed codes of RFC 1951 §3.2.6 unless the tables
// hold them already.
func (z *Reader) loadFixed() {
	if z.fixed {
		return
	}
	var l [maxFixedLit]uint8
	for i := range l {
		switch {
		case i < 144:
			l[i] = 8
		case i < 256:
			l[i] = 9
		case i < 280:
			l[i] = 7
		default:
			l[i] = 8
		}
	}
	z.lit.init(l[:], false) // complete by construction
	var d [maxFixedDist]uint8
	for i := range d {
		d[i] = 5
	}
	z.dist.init(d[:], false)
	z.fixed = true
}

// symErr turns a decode failure into the step's error.
func (z *Reader) symErr(err error, what string) error {
	if err == errMoreBits {
		return err
	}
	return z.corrupt("invalid %s code", what)
}

// data decodes compressed data (RFC 1951 §3.2.5) into p until p is full,
// the block ends, or the buffered bits do not complete the next symbol.
// A length/distance pair, with its extra bits, is decoded as one step.
func (z *Reader) data(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		sym, l, err := z.lit.decode(z.bits, z.nbits)
		if err != nil {
			return n, z.symErr(err, "literal/length")
		}
		if sym < endOfBlock {
			z.consume(l)
			z.put(p, n, byte(sym))
			n++
			continue
		}
		if sym == endOfBlock {
			z.consume(l)
			return n, z.endBlock()
		}
		if sym >= maxLit {
			// RFC 1951 §3.2.6: 286 and 287 are part of the fixed code but
			// never occur in the data.
			return n, z.corrupt("literal/length code %d", sym)
		}
		lc := lengthCodes[sym-firstLength]
		need := l + uint(lc.extra)
		if z.nbits < need {
			return n, errMoreBits
		}
		// Length 258 from code 284 with all extra bits set is outside
		// the RFC's 227 - 257 for that code; zlib accepts it, so do we.
		length := int(lc.base) + int(z.bits>>l&(1<<lc.extra-1))
		dsym, dl, err := z.dist.decode(z.bits>>need, z.nbits-need)
		if err != nil {
			return n, z.symErr(err, "distance")
		}
		if dsym >= maxDist {
			return n, z.corrupt("distance code %d", dsym)
		}
		dc := distCodes[dsym]
		dstart := need + dl
		need = dstart + uint(dc.extra)
		if z.nbits < need {
			return n, errMoreBits
		}
		dist := int(dc.base) + int(z.bits>>dstart&(1<<dc.extra-1))
		if !z.full && uint32(dist) > z.wpos {
			return n, z.corrupt("distance %d beyond the %d octets so far", dist, z.wpos)
		}
		z.consume(need)
		z.copyLen, z.copyDist = length, dist
		n += z.copyOut(p[n:])
		if z.copyLen > 0 {
			z.state = stCopy
			return n, nil
		}
	}
	return n, nil
}

// copyOut copies as much of the pending copy as fits into p.
func (z *Reader) copyOut(p []byte) int {
	m := min(z.copyLen, len(p))
	from := z.wpos - uint32(z.copyDist)
	for i := range m {
		b := z.win[from&(windowSize-1)]
		from++
		p[i] = b
		z.win[z.wpos&(windowSize-1)] = b
		z.wpos++
	}
	// A copy is at most 258 octets, far from wrapping wpos.
	if z.wpos >= windowSize {
		z.full = true
	}
	z.copyLen -= m
	return m
}

// Alphabet sizes.
const (
	endOfBlock   = 256
	firstLength  = 257
	maxLit       = 286 // literal/length codes that can occur (RFC 1951 §3.2.5)
	maxDist      = 30  // distance codes that can occur
	maxFixedLit  = 288 // the fixed code has 288 literal/length codes (§3.2.6)
	maxFixedDist = 32  // and 32 distance codes
	maxAlphabet  = maxFixedLit
	maxCodeLen   = 15 // §3.2.7: code lengths 0 - 15
)

// RFC 1951 §3.2.7: the order in which the code length code's lengths come.
var codeLenOrder = [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

type baseExtra struct {
	base  uint16
	extra uint8
}

// RFC 1951 §3.2.5: lengths for codes 257 - 285.
var lengthCodes = [maxLit - firstLength]baseExtra{
	{3, 0}, {4, 0}, {5, 0}, {6, 0}, {7, 0}, {8, 0}, {9, 0}, {10, 0},
	{11, 1}, {13, 1}, {15, 1}, {17, 1},
	{19, 2}, {23, 2}, {27, 2}, {31, 2},
	{35, 3}, {43, 3}, {51, 3}, {59, 3},
	{67, 4}, {83, 4}, {99, 4}, {115, 4},
	{131, 5}, {163, 5}, {195, 5}, {227, 5},
	{258, 0},
}

// RFC 1951 §3.2.5: distances for codes 0 - 29.
var distCodes = [maxDist]baseExtra{
	{1, 0}, {2, 0}, {3, 0}, {4, 0},
	{5, 1}, {7, 1}, {9, 2}, {13, 2},
	{17, 3}, {25, 3}, {33, 4}, {49, 4},
	{65, 5}, {97, 5}, {129, 6}, {193, 6},
	{257, 7}, {385, 7}, {513, 8}, {769, 8},
	{1025, 9}, {1537, 9}, {2049, 10}, {3073, 10},
	{4097, 11}, {6145, 11}, {8193, 12}, {12289, 12},
	{16385, 13}, {24577, 13},
}

// tableBits is the width of the direct lookup table of a code.
const tableBits = 9

// huffman is a canonical Huffman code (RFC 1951 §3.2.2) for decoding.
type huffman struct {
	count  [maxCodeLen + 1]uint16 // codes of each length
	sym    [maxAlphabet]uint16    // symbols in code order: by length, then value
	maxLen uint                   // longest code; 0 for an empty code
	// table is indexed by the next tableBits input bits; an entry is
	// symbol<<4 | code length for a code of at most tableBits bits that
	// those bits start with, 0 if there is none.
	table [1 << tableBits]uint16
}

// init builds the code from the code lengths per symbol. It returns why
// the lengths do not form a code, or "". A code must be complete except,
// when single is set, for the empty code and for one code of one bit
// (RFC 1951 §3.2.7, stated for distance codes).
func (h *huffman) init(lens []uint8, single bool) string {
	h.count = [maxCodeLen + 1]uint16{}
	h.maxLen = 0
	for _, l := range lens {
		h.count[l]++
		h.maxLen = max(h.maxLen, uint(l))
	}
	h.count[0] = 0
	// Each length halves the codes still free; using more than are free
	// is over-subscription, leaving some free is an incomplete code.
	left := 1
	used := 0
	for l := 1; l <= maxCodeLen; l++ {
		left = left<<1 - int(h.count[l])
		if left < 0 {
			return "over-subscribed code lengths"
		}
		used += int(h.count[l])
	}
	if left > 0 && !(single && (used == 0 || used == 1 && h.count[1] == 1)) {
		return "incomplete code lengths"
	}

	// RFC 1951 §3.2.2 step 2: the first code of each length.
	var next [maxCodeLen + 1]uint16
	var offs [maxCodeLen + 1]uint16 // where each length's symbols start in sym
	code := uint16(0)
	for l := 1; l <= maxCodeLen; l++ {
		code = (code + h.count[l-1]) << 1
		next[l] = code
		offs[l] = offs[l-1] + h.count[l-1]
	}
	// Step 3: consecutive codes for the symbols of a length, by value.
	h.table = [1 << tableBits]uint16{}
	for s, l := range lens {
		if l == 0 {
			continue
		}
		h.sym[offs[l]] = uint16(s)
		offs[l]++
		c := next[l]
		next[l]++
		if uint(l) > tableBits {
			continue
		}
		// The code is sent from its most significant bit on (§3.1.1), so
		// the bits as they sit in the buffer are the code reversed; each
		// index that starts with them leads to the symbol.
		r := 0
		for i := range l {
			r |= int(c>>i&1) << (l - 1 - i)
		}
		for i := r; i < 1<<tableBits; i += 1 << l {
			h.table[i] = uint16(s)<<4 | uint16(l)
		}
	}
	return ""
}

// decode finds the symbol whose code starts the nbits bits of bits and
// returns it with the code's length. It returns errMoreBits when those bits
// are the start of a code but not all of it, and errInvalidCode when no
// code starts with them.
func (h *huffman) decode(bits uint64, nbits uint) (int, uint, error) {
	// Bits beyond nbits are zero. An entry's code is the only one that
	// starts the index; if it is longer than the bits there are, no code
	// that fits in them matches, so more are needed.
	if e := h.table[bits&(1<<tableBits-1)]; e != 0 {
		if l := uint(e & 15); l <= nbits {
			return int(e >> 4), l, nil
		}
		return 0, 0, errMoreBits
	}
	// Bit by bit: the codes of length l are the count[l] values from
	// first; a shorter prefix was none of them.
	code, first, index := 0, 0, 0
	for l := uint(1); l <= h.maxLen; l++ {
		if l > nbits {
			return 0, 0, errMoreBits
		}
		code = code<<1 | int(bits>>(l-1)&1)
		cnt := int(h.count[l])
		if code-first < cnt {
			return int(h.sym[index+code-first]), l, nil
		}
		index += cnt
		first = (first + cnt) << 1
	}
	return 0, 0, errInvalidCode
}

var errInvalidCode = errors.New("inflate: invalid code")
