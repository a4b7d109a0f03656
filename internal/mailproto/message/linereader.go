package message

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// lineReader reads a message line by line through a bounded bufio buffer and
// keeps the byte offset of every line exactly, for CRLF and bare LF line
// endings alike. Lines longer than the buffer are consumed in pieces; callers
// only keep a bounded prefix of each line.
type lineReader struct {
	br  *bufio.Reader
	off int64 // offset of the next unread byte
	nl  int64 // line terminators consumed so far

	// Terminator length and content length of the most recently read line.
	prevTerm int
	prevLen  int64

	// The same values as they were before the most recently read line was
	// read, so a boundary line can be "put aside" when computing where the
	// entity before it ends.
	beforeTerm int
	beforeLen  int64
	beforeNl   int64
}

// lineInfo describes one line read by next.
type lineInfo struct {
	start      int64 // offset of the first byte of the line
	contentLen int64 // bytes before the terminator
	term       int   // terminator length: 2 for CRLF, 1 for LF, 0 at EOF
	complete   bool  // the returned bytes hold the whole line
}

// errEOF is returned by next when no bytes remain.
var errEOF = errors.New("end of message")

// next reads one line and appends at most limit-len(dst) of its bytes
// (terminator included) to dst.
func (lr *lineReader) next(dst []byte, limit int) ([]byte, lineInfo, error) {
	info := lineInfo{start: lr.off}
	var total int64
	var last, beforeLast byte
	kept := true
	for {
		chunk, err := lr.br.ReadSlice('\n')
		n := len(chunk)
		lr.off += int64(n)
		total += int64(n)
		if room := limit - len(dst); room >= n {
			dst = append(dst, chunk...)
		} else {
			if room > 0 {
				dst = append(dst, chunk[:room]...)
			}
			kept = false
		}
		switch {
		case n >= 2:
			beforeLast, last = chunk[n-2], chunk[n-1]
		case n == 1:
			beforeLast, last = last, chunk[0]
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			if total == 0 {
				return dst, info, errEOF
			}
			break
		}
		if err != nil {
			return dst, info, fmt.Errorf("read message at offset %d: %w", lr.off, err)
		}
		break
	}
	if last == '\n' {
		info.term = 1
		if beforeLast == '\r' && total >= 2 {
			info.term = 2
		}
		lr.nl++
	}
	info.contentLen = total - int64(info.term)
	info.complete = kept
	lr.beforeTerm, lr.beforeLen, lr.beforeNl = lr.prevTerm, lr.prevLen, lr.nl
	if info.term > 0 {
		lr.beforeNl--
	}
	lr.prevTerm, lr.prevLen = info.term, info.contentLen
	return dst, info, nil
}

// stopState records where the entities ending at a boundary line or at the
// end of the message stop, so every entity closed by that event computes its
// End and BodyLines from the same facts.
type stopState struct {
	at       int64 // offset of the boundary line, or the message size at EOF
	nl       int64 // line terminators before at
	prevTerm int   // terminator of the line before at (0 at EOF without final newline)
	prevLen  int64 // content length of the line before at
	eof      bool
}

// atBoundary returns the stop state for the boundary line just read.
func (lr *lineReader) atBoundary(info lineInfo) stopState {
	return stopState{at: info.start, nl: lr.beforeNl, prevTerm: lr.beforeTerm, prevLen: lr.beforeLen}
}

// atEOF returns the stop state at the end of the message.
func (lr *lineReader) atEOF() stopState {
	return stopState{at: lr.off, nl: lr.nl, prevTerm: lr.prevTerm, prevLen: lr.prevLen, eof: true}
}

// end returns the End offset and the line count of a body that starts at
// bodyStart (with bodyNl terminators before it) and is closed by s.
func (s stopState) end(bodyStart, bodyNl int64) (end, lines int64) {
	if s.eof {
		if s.at <= bodyStart {
			return bodyStart, 0
		}
		lines = s.nl - bodyNl
		if s.prevTerm == 0 && s.prevLen > 0 {
			lines++ // RFC 3501 §7.4.2: a last line without terminator still counts
		}
		return s.at, lines
	}
	// RFC 2046 §5.1.1: the line break before a boundary belongs to the boundary.
	end = s.at - int64(s.prevTerm)
	if end <= bodyStart {
		return bodyStart, 0
	}
	lines = s.nl - bodyNl
	if s.prevTerm > 0 {
		lines--
		if s.prevLen > 0 {
			lines++
		}
	}
	return end, lines
}
