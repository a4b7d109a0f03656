package imap

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// The lexer: reading command lines and literals under limits, and the token
// rules of RFC 9051 §9 (atom, astring, quoted, literal, number).
//
// A command is one line, except that a string may be sent as a literal: the
// line ends with "{n}" (synchronizing: the client waits for a "+"
// continuation), "{n+}" (non-synchronizing, RFC 7888) or, where binary data
// is allowed, "~{n}" (literal8, RFC 3516), then come n octets and the
// command continues on the next line.

// Default limits for NewReader.
const (
	DefaultMaxLine    = 64 * 1024 // octets in a command's lines and in-memory literals
	DefaultMaxNonSync = 4096      // LITERAL- (RFC 7888 §5), part of IMAP4rev2
)

// Reader reads commands from a client connection. Set the fields after
// NewReader and before ReadCommand; the session may change UTF8 and
// MaxNonSync when ENABLE or CAPABILITY changes them.
type Reader struct {
	br *bufio.Reader

	// MaxLine bounds the octets of one command: its lines without CRLF plus
	// the literals read into memory (all literals except APPEND messages
	// handed to Literal). A longer command is a *ByeError.
	MaxLine int

	// MaxNonSync is the largest non-synchronizing literal accepted: 4096
	// with LITERAL-, math.MaxInt64 with LITERAL+, 0 to accept none. A
	// larger one is a *ByeError: the client sends the data regardless.
	MaxNonSync int64

	// MaxAppend is the largest APPEND message literal; 0 means no limit
	// beyond what Continue allows. A larger synchronizing literal is a
	// *RefusedError (the session answers NO [TOOBIG], RFC 7889 §4), a
	// larger non-synchronizing one a *ByeError.
	MaxAppend int64

	// UTF8 is set once the client enabled UTF8=ACCEPT (RFC 6855 §3):
	// mailbox names are then UTF-8 rather than modified UTF-7.
	UTF8 bool

	// Continue is called before a synchronizing literal of n octets is
	// read. It writes "+ ..." and flushes, or returns an error to refuse
	// the literal; ReadCommand then returns a *RefusedError with the rest
	// of the command discarded. Nil means always continue (tests only: a
	// real client would wait forever).
	Continue func(n int64) error

	// Literal receives the message data of APPEND, one call per message
	// (MULTIAPPEND, RFC 3502), in order: r yields exactly n octets; what
	// Literal leaves unread is discarded. The message's flags and date are
	// in the returned Command's AppendArgs.Messages at the same index. An
	// error ends the command as a *RefusedError. With Literal nil, the data
	// is read into AppendMessage.Data under the MaxLine budget.
	Literal func(n int64, r io.Reader) error
}

// NewReader returns a Reader on r with the default limits, LITERAL- and no
// hooks.
func NewReader(r io.Reader) *Reader {
	return &Reader{
		br:         bufio.NewReaderSize(r, 4096),
		MaxLine:    DefaultMaxLine,
		MaxNonSync: DefaultMaxNonSync,
	}
}

// Buffered returns the number of octets read from the connection but not
// yet consumed. After STARTTLS it must be 0: octets sent before the TLS
// handshake must not be taken as commands under TLS (RFC 9051 §6.2.1, the
// command injection of CVE-2011-0411).
func (r *Reader) Buffered() int { return r.br.Buffered() }

// ReadLine reads one line outside a command, without its CRLF: the "DONE"
// that ends IDLE (RFC 2177) or a SASL response during AUTHENTICATE. A line
// over MaxLine is a *ByeError.
func (r *Reader) ReadLine() (string, error) {
	line, err := r.readLine(r.MaxLine)
	return string(line), err
}

// readLine reads a line of at most max octets (without CRLF). A bare LF is
// accepted as the end of line too.
func (r *Reader) readLine(max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.br.ReadSlice('\n')
		if len(line)+len(chunk) > max+2 {
			// Do not read the rest: the session closes the connection.
			return nil, &ByeError{Msg: fmt.Sprintf("command line too long (max %d octets)", r.MaxLine)}
		}
		line = append(line, chunk...)
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) > max {
		return nil, &ByeError{Msg: fmt.Sprintf("command line too long (max %d octets)", r.MaxLine)}
	}
	return line, nil
}

// SyntaxError is a command the server could not parse. The session answers
// "Tag BAD Msg" ("* BAD Msg" without a tag) and reads the next command: the
// rest of the command has been discarded.
type SyntaxError struct {
	Tag string
	Msg string
}

func (e *SyntaxError) Error() string { return e.Msg }

// RefusedError is a command whose literal was refused, by the Continue or
// Literal hook (Err is what it returned) or because it is over MaxAppend
// (Err is ErrLiteralTooBig). The rest of the command has been discarded;
// the session answers "Tag NO ..." and goes on.
type RefusedError struct {
	Tag string
	Err error
}

func (e *RefusedError) Error() string { return "literal refused: " + e.Err.Error() }
func (e *RefusedError) Unwrap() error { return e.Err }

// ErrLiteralTooBig is the Err of a RefusedError for a literal over MaxAppend.
var ErrLiteralTooBig = errors.New("literal too big")

// ByeError means the input cannot be resynchronized: a line over MaxLine or a
// non-synchronizing literal over a limit. The session answers "* BYE Msg"
// and closes the connection. Tag is set when known.
type ByeError struct {
	Tag string
	Msg string
}

func (e *ByeError) Error() string { return e.Msg }

// parser holds one command being parsed.
type parser struct {
	r      *Reader
	line   []byte // current line, without CRLF
	pos    int
	budget int // octets left of MaxLine for further lines and literals
	tag    string
}

// errf returns a SyntaxError for the current command.
func (p *parser) errf(format string, args ...any) error {
	return &SyntaxError{Tag: p.tag, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) atEnd() bool { return p.pos >= len(p.line) }

func (p *parser) peek() byte {
	if p.pos < len(p.line) {
		return p.line[p.pos]
	}
	return 0
}

// take consumes c if it is next.
func (p *parser) take(c byte) bool {
	if p.peek() == c && !p.atEnd() {
		p.pos++
		return true
	}
	return false
}

// takeFold consumes the ASCII string s, compared case-insensitively, if next.
func (p *parser) takeFold(s string) bool {
	if len(p.line)-p.pos < len(s) || !bytes.EqualFold(p.line[p.pos:p.pos+len(s)], []byte(s)) {
		return false
	}
	p.pos += len(s)
	return true
}

func (p *parser) expect(c byte, what string) error {
	if !p.take(c) {
		return p.errf("expected %s %s", what, p.found())
	}
	return nil
}

func (p *parser) sp() error { return p.expect(' ', "space") }

// found describes what is at the current position, for error messages.
func (p *parser) found() string {
	if p.atEnd() {
		return "at end of line"
	}
	rest := p.line[p.pos:]
	if len(rest) > 20 {
		rest = rest[:20]
	}
	return fmt.Sprintf("at %q", rest)
}

func isAtomChar(c byte) bool {
	// RFC 9051 §9: ATOM-CHAR is any CHAR except atom-specials.
	if c <= 0x1f || c >= 0x7f {
		return false
	}
	switch c {
	case '(', ')', '{', ' ', '%', '*', '"', '\\', ']':
		return false
	}
	return true
}

func isAStringChar(c byte) bool { return isAtomChar(c) || c == ']' }

func isListChar(c byte) bool { return isAStringChar(c) || c == '%' || c == '*' }

// span consumes the longest run of bytes accepted by ok.
func (p *parser) span(ok func(byte) bool) string {
	start := p.pos
	for p.pos < len(p.line) && ok(p.line[p.pos]) {
		p.pos++
	}
	return string(p.line[start:p.pos])
}

// atom reads an atom; what names it in errors.
func (p *parser) atom(what string) (string, error) {
	s := p.span(isAtomChar)
	if s == "" {
		return "", p.errf("expected %s %s", what, p.found())
	}
	return s, nil
}

// upperAtom reads an atom and returns it in upper case.
func (p *parser) upperAtom(what string) (string, error) {
	s, err := p.atom(what)
	return asciiUpper(s), err
}

func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// astring reads astring = 1*ASTRING-CHAR / string.
func (p *parser) astring(what string) (string, error) {
	switch p.peek() {
	case '"', '{', '~':
		return p.str(what)
	}
	s := p.span(isAStringChar)
	if s == "" {
		return "", p.errf("expected %s %s", what, p.found())
	}
	return s, nil
}

// nstring reads nstring = string / "NIL"; nil means NIL.
func (p *parser) nstring(what string) (*string, error) {
	if p.takeFold("NIL") {
		return nil, nil
	}
	s, err := p.str(what)
	return &s, err
}

// str reads string = quoted / literal.
func (p *parser) str(what string) (string, error) {
	switch p.peek() {
	case '"':
		return p.quoted(what)
	case '{', '~':
		b, err := p.literal(false)
		return string(b), err
	}
	return "", p.errf("expected %s as a quoted string or literal %s", what, p.found())
}

// quoted reads a quoted string. RFC 9051 §9 allows UTF-8 in quoted strings.
func (p *parser) quoted(what string) (string, error) {
	if !p.take('"') {
		return "", p.errf("expected %s as a quoted string %s", what, p.found())
	}
	var b []byte
	for {
		if p.atEnd() {
			return "", p.errf("%s: quoted string not terminated", what)
		}
		c := p.line[p.pos]
		p.pos++
		switch {
		case c == '"':
			if !utf8.Valid(b) {
				return "", p.errf("%s: quoted string is not valid UTF-8", what)
			}
			return string(b), nil
		case c == '\\':
			if p.atEnd() || (p.peek() != '"' && p.peek() != '\\') {
				return "", p.errf("%s: backslash in quoted string must escape \" or \\", what)
			}
			b = append(b, p.line[p.pos])
			p.pos++
		case c == 0:
			return "", p.errf("%s: NUL in quoted string", what)
		default:
			b = append(b, c)
		}
	}
}

// literal reads a literal announced at the end of the current line and the
// line that follows it. binary allows literal8 ("~{n}").
func (p *parser) literal(binary bool) ([]byte, error) {
	n, sync, lit8, err := p.literalHeader()
	if err != nil {
		return nil, err
	}
	if lit8 && !binary {
		return nil, p.errf("literal8 (~{n}) is only allowed in APPEND")
	}
	if n > int64(p.budget) {
		if !sync {
			return nil, &ByeError{Tag: p.tag, Msg: fmt.Sprintf("literal of %d octets over the command limit of %d", n, p.r.MaxLine)}
		}
		return nil, p.errf("literal of %d octets over the command limit of %d", n, p.r.MaxLine)
	}
	if err := p.announce(n, sync); err != nil {
		return nil, err
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(p.r.br, buf); err != nil {
		return nil, unexpectedEOF(err)
	}
	p.budget -= int(n)
	if !lit8 && bytes.IndexByte(buf, 0) >= 0 {
		// Read the rest so that the stream stays in sync, then complain.
		if err := p.nextLine(); err != nil {
			return nil, err
		}
		return nil, p.errf("NUL in literal (RFC 9051 §4.3: only literal8 may hold NUL)")
	}
	return buf, p.nextLine()
}

// literalHeader parses "{n}", "{n+}" or "~{n}" and checks that it ends the
// line and that a non-synchronizing literal is within MaxNonSync.
func (p *parser) literalHeader() (n int64, sync, lit8 bool, err error) {
	lit8 = p.take('~')
	if !p.take('{') {
		return 0, false, false, p.errf("expected literal {n} %s", p.found())
	}
	digits := p.span(func(c byte) bool { return c >= '0' && c <= '9' })
	if digits == "" {
		return 0, false, false, p.errf("literal size must be a number %s", p.found())
	}
	v, perr := strconv.ParseInt(digits, 10, 64)
	if perr != nil {
		return 0, false, false, p.errf("literal size %s too large", digits)
	}
	sync = !p.take('+')
	if !p.take('}') {
		return 0, false, false, p.errf("expected } after literal size %s", p.found())
	}
	if !p.atEnd() {
		return 0, false, false, p.errf("literal {%d} must end the line", v)
	}
	if !sync && v > p.r.MaxNonSync {
		// RFC 7888 §4/§5: the data follows regardless, we cannot resync.
		return 0, false, false, &ByeError{Tag: p.tag, Msg: fmt.Sprintf("non-synchronizing literal of %d octets over the limit of %d", v, p.r.MaxNonSync)}
	}
	return v, sync, lit8, nil
}

// announce asks the session to send the continuation for a synchronizing
// literal.
func (p *parser) announce(n int64, sync bool) error {
	if !sync || p.r.Continue == nil {
		return nil
	}
	if err := p.r.Continue(n); err != nil {
		return &RefusedError{Tag: p.tag, Err: err}
	}
	return nil
}

// nextLine reads the line that continues the command after a literal.
func (p *parser) nextLine() error {
	line, err := p.r.readLine(p.budget)
	if err != nil {
		var bye *ByeError
		if errors.As(err, &bye) {
			bye.Tag = p.tag
		}
		return err
	}
	p.budget -= len(line)
	p.line, p.pos = line, 0
	return nil
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// discard skips the rest of a command after an error: the rest of the
// current line, and if that ends in a non-synchronizing literal, its data
// and the lines after it. A synchronizing literal is not sent without a
// continuation, so discarding stops there.
func (p *parser) discard() error {
	for {
		i := bytes.LastIndexByte(p.line, '{')
		if i < 0 || !bytes.HasSuffix(p.line, []byte("+}")) {
			return nil
		}
		digits := p.line[i+1 : len(p.line)-2]
		v, err := strconv.ParseInt(string(digits), 10, 64)
		// RFC 9051 §9: the size is digits only ("{+5+}" is no literal,
		// though ParseInt takes its sign).
		if err != nil || v < 0 || digits[0] < '0' || digits[0] > '9' {
			return nil
		}
		if v > p.r.MaxNonSync {
			return &ByeError{Tag: p.tag, Msg: fmt.Sprintf("non-synchronizing literal of %d octets over the limit of %d", v, p.r.MaxNonSync)}
		}
		if _, err := io.CopyN(io.Discard, p.r.br, v); err != nil {
			return unexpectedEOF(err)
		}
		if err := p.nextLine(); err != nil {
			return err
		}
	}
}

// number reads number = 1*DIGIT (32 bits).
func (p *parser) number(what string) (uint32, error) {
	v, err := p.number64(what)
	if err != nil {
		return 0, err
	}
	if v > 1<<32-1 {
		return 0, p.errf("%s %d larger than 4294967295", what, v)
	}
	return uint32(v), nil
}

// nzNumber reads a number that must not be 0.
func (p *parser) nzNumber(what string) (uint32, error) {
	v, err := p.number(what)
	if err == nil && v == 0 {
		err = p.errf("%s must not be 0", what)
	}
	return v, err
}

// number64 reads number64 (RFC 9051 §9: up to 2^63-1).
func (p *parser) number64(what string) (uint64, error) {
	digits := p.span(func(c byte) bool { return c >= '0' && c <= '9' })
	if digits == "" {
		return 0, p.errf("expected %s (a number) %s", what, p.found())
	}
	v, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, p.errf("%s %s larger than 9223372036854775807", what, digits)
	}
	return uint64(v), nil
}

// numSet reads a sequence-set (or "$").
func (p *parser) numSet(what string) (NumSet, error) {
	s := p.span(func(c byte) bool {
		return c >= '0' && c <= '9' || c == ':' || c == ',' || c == '*' || c == '$'
	})
	if s == "" {
		return NumSet{}, p.errf("expected %s (a sequence set) %s", what, p.found())
	}
	set, err := ParseNumSet(s)
	if err != nil {
		return NumSet{}, p.errf("%s: %v", what, err)
	}
	return set, nil
}

// list reads "(" elem *(SP elem) ")"; empty lists are allowed when
// allowEmpty.
func (p *parser) list(what string, allowEmpty bool, elem func() error) error {
	if !p.take('(') {
		return p.errf("expected ( to start %s %s", what, p.found())
	}
	if p.take(')') {
		if !allowEmpty {
			return p.errf("%s must not be empty", what)
		}
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		if p.take(')') {
			return nil
		}
		if !p.take(' ') {
			return p.errf("expected space or ) in %s %s", what, p.found())
		}
	}
}
