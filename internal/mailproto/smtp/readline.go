package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// maxLineLength is the longest command line accepted, in octets including
// CRLF. RFC 5321 §4.5.3.1.4 sets 512 as the minimum a server must accept and
// says extensions may raise it; ESMTP parameters on MAIL (SIZE, BODY, RET,
// ENVID, AUTH=, REQUIRETLS, RFC 1870/6152/3461/4954/8689) and UTF-8 addresses
// (RFC 6531) push real clients past 512, so moxd accepts up to 4096, as many
// servers do. The reader's buffer has exactly this size, so a line never
// costs more memory than this.
const maxLineLength = 4096

// newLineReader returns the buffered reader command lines are read from.
func newLineReader(r io.Reader) *bufio.Reader {
	return bufio.NewReaderSize(r, maxLineLength)
}

// readLine reads one command line including its line ending and checks its
// framing. The returned slice is only valid until the next read.
//
// Errors: a *Reply for a line the client must be told about (too long, bare
// CR or LF), with the line (or, if too long, its start) returned too; the
// reader's error otherwise, with whatever partial line was read.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		// RFC 5321 §4.5.3.1.4 / §4.5.3.1.10: too long; answer 500 and
		// skip to the end of the line. The skip reads in buffer-sized
		// pieces under the same read deadline as the line, so it costs
		// no memory and at most one CommandTimeout.
		start := bytes.Clone(line)
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = br.ReadSlice('\n')
		}
		if err != nil {
			return start, err
		}
		return start, errorReply(500, "5.5.6", "line too long, at most 4096 octets including CRLF")
	}
	if err != nil {
		return line, err
	}
	// RFC 5321 §2.3.8: lines end in CRLF, and a CR or LF alone must not be
	// treated as a line ending. A lone CR or LF anywhere in a command line
	// is refused rather than guessed at (message-smuggling class of
	// problems).
	n := len(line)
	if n < 2 || line[n-2] != '\r' || bytes.IndexByte(line[:n-2], '\r') >= 0 {
		return line, errorReply(500, "5.5.2", "syntax error: command lines must end in CRLF and contain no bare CR or LF")
	}
	return line, nil
}

// httpMethods start an HTTP/1 request line (RFC 9110 §9). None is an SMTP
// verb.
var httpMethods = [...]string{"GET ", "POST ", "HEAD ", "PUT ", "CONNECT ", "OPTIONS ", "DELETE ", "PATCH ", "TRACE "}

// looksLikeHTTP reports whether a first command line is an HTTP request
// line.
func looksLikeHTTP(line []byte) bool {
	for _, m := range httpMethods {
		if bytes.HasPrefix(line, []byte(m)) {
			return true
		}
	}
	return false
}
