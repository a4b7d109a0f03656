package smtpclient

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Limits on what a server may send as one reply. RFC 5321 §4.5.3.1.5 allows
// reply lines of 512 octets; longer ones are common enough (long EHLO
// keywords, verbose rejection texts) to be tolerated up to maxReplyLine.
const (
	// maxReplyLine is the longest reply line accepted, without CRLF.
	maxReplyLine = 4096
	// maxReplyLines is the most lines one reply may have.
	maxReplyLines = 100
)

// errProtocol marks a reply that breaks RFC 5321 §4.2 framing. Errors
// wrapping it leave the connection Broken.
var errProtocol = errors.New("smtp protocol error")

// Reply is a server reply (RFC 5321 §4.2).
type Reply struct {
	Code int
	// Enhanced is the enhanced status code (RFC 2034, RFC 3463) from the
	// start of the reply's first line, e.g. "5.1.1"; "" when there is none.
	Enhanced string
	// Text are the reply's lines without the code and without the enhanced
	// status code.
	Text []string
}

// String returns the reply on one line: "550 5.1.1 first line; second line".
func (r Reply) String() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(r.Code))
	if r.Enhanced != "" {
		b.WriteByte(' ')
		b.WriteString(r.Enhanced)
	}
	sep := " "
	for _, l := range r.Text {
		if l == "" {
			continue
		}
		b.WriteString(sep)
		b.WriteString(l)
		sep = "; "
	}
	return b.String()
}

// Permanent reports whether the reply is a permanent negative completion
// reply (RFC 5321 §4.2.1: 5yz).
func (r Reply) Permanent() bool { return r.Code >= 500 && r.Code <= 599 }

// positive reports a positive completion reply (2yz).
func (r Reply) positive() bool { return r.Code >= 200 && r.Code <= 299 }

// appendWire appends r in wire form: RFC 5321 §4.2.1, "-" after the code on
// every line but the last; RFC 2034 §4, the enhanced code starts every line.
// Used by tests and the fuzz target to check the parser round-trips.
func (r Reply) appendWire(buf []byte) []byte {
	lines := r.Text
	if len(lines) == 0 {
		lines = []string{""}
	}
	for i, l := range lines {
		buf = strconv.AppendInt(buf, int64(r.Code), 10)
		if i < len(lines)-1 {
			buf = append(buf, '-')
		} else {
			buf = append(buf, ' ')
		}
		if r.Enhanced != "" {
			buf = append(buf, r.Enhanced...)
			if l != "" {
				buf = append(buf, ' ')
			}
		}
		buf = append(buf, l...)
		buf = append(buf, '\r', '\n')
	}
	return buf
}

// readReply reads one reply from br. It returns the raw lines (without line
// endings) for the transcript, also when parsing fails. A bare LF ends a
// line as CRLF does: tolerating it costs nothing on the client side.
func readReply(br *bufio.Reader) (Reply, []string, error) {
	var (
		r     Reply
		raw   []string
		texts []string
	)
	for {
		line, err := readReplyLine(br)
		if err != nil {
			return Reply{}, raw, err
		}
		raw = append(raw, line)
		if len(raw) > maxReplyLines {
			return Reply{}, raw, fmt.Errorf("%w: reply has more than %d lines", errProtocol, maxReplyLines)
		}
		// RFC 5321 §4.2: Reply-code [ ("-" / SP) textstring ] CRLF; a
		// bare code is allowed on the last line.
		code, ok := parseCode(line)
		if !ok {
			return Reply{}, raw, fmt.Errorf("%w: reply line %q does not start with a 3-digit reply code", errProtocol, logLine(line))
		}
		if len(raw) == 1 {
			r.Code = code
		} else if code != r.Code {
			// RFC 5321 §4.2.1: all lines of a multi-line reply carry
			// the same code.
			return Reply{}, raw, fmt.Errorf("%w: multi-line reply changes code from %d to %d", errProtocol, r.Code, code)
		}
		last := true
		text := ""
		if len(line) > 3 {
			switch line[3] {
			case '-':
				last = false
			case ' ':
			default:
				return Reply{}, raw, fmt.Errorf("%w: reply line %q has neither space nor '-' after the code", errProtocol, logLine(line))
			}
			text = line[4:]
		}
		texts = append(texts, text)
		if last {
			break
		}
	}
	// RFC 2034 §4: the enhanced status code comes first on each line of
	// the text. Its class must agree with the reply code's first digit
	// (RFC 3463 §2); a reply with a different prefix carries none.
	r.Enhanced = enhancedCode(texts[0], r.Code)
	r.Text = texts
	if r.Enhanced != "" {
		for i, t := range texts {
			if rest, ok := strings.CutPrefix(t, r.Enhanced); ok && (rest == "" || rest[0] == ' ') {
				r.Text[i] = strings.TrimPrefix(rest, " ")
			}
		}
	}
	return r, raw, nil
}

// readReplyLine reads one line of at most maxReplyLine octets without its
// line ending.
func readReplyLine(br *bufio.Reader) (string, error) {
	var buf []byte
	for {
		piece, err := br.ReadSlice('\n')
		if len(buf)+len(piece) > maxReplyLine+2 {
			return "", fmt.Errorf("%w: reply line longer than %d octets", errProtocol, maxReplyLine)
		}
		buf = append(buf, piece...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			if len(buf) > 0 && errors.Is(err, io.EOF) {
				return "", fmt.Errorf("%w: connection closed in the middle of a reply line", errProtocol)
			}
			return "", err
		}
		break
	}
	buf = bytes.TrimSuffix(buf[:len(buf)-1], []byte("\r"))
	if len(buf) > maxReplyLine {
		return "", fmt.Errorf("%w: reply line longer than %d octets", errProtocol, maxReplyLine)
	}
	if bytes.ContainsAny(buf, "\r\x00") {
		return "", fmt.Errorf("%w: reply line %q contains a CR or NUL", errProtocol, logLine(string(buf)))
	}
	return string(buf), nil
}

// parseCode parses the reply code at the start of line. RFC 5321 §4.2:
// first digit 2-5, second 0-5, third 0-9.
func parseCode(line string) (int, bool) {
	if len(line) < 3 {
		return 0, false
	}
	a, b, c := line[0], line[1], line[2]
	if a < '2' || a > '5' || b < '0' || b > '5' || c < '0' || c > '9' {
		return 0, false
	}
	return int(a-'0')*100 + int(b-'0')*10 + int(c-'0'), true
}

// enhancedCode returns the RFC 3463 §2 status code at the start of text
// (class "." subject "." detail, subject and detail of 1-3 digits, followed
// by a space or the end), or "" when there is none or its class differs from
// the reply code's.
func enhancedCode(text string, code int) string {
	end := strings.IndexByte(text, ' ')
	if end < 0 {
		end = len(text)
	}
	s := text[:end]
	parts := strings.Split(s, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || int(parts[0][0]-'0') != code/100 {
		return ""
	}
	switch parts[0][0] {
	case '2', '4', '5':
	default:
		return ""
	}
	for _, p := range parts[1:] {
		if len(p) < 1 || len(p) > 3 {
			return ""
		}
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return ""
			}
		}
	}
	return s
}

// Stage names the step of a session that failed.
type Stage string

// Stages of a session.
const (
	StageConnect  Stage = "connect"
	StageGreeting Stage = "greeting"
	StageEHLO     Stage = "ehlo"
	StageStartTLS Stage = "starttls"
	StageAuth     Stage = "auth"
	StageMail     Stage = "mail"
	StageRcpt     Stage = "rcpt"
	StageData     Stage = "data"
	StageDataEnd  Stage = "data-end"
	StageReset    Stage = "rset"
	StageQuit     Stage = "quit"
)

// Error is a failed step of a session. Reply is set when the server
// answered with an error reply, or when the client refused the step itself
// with a reply of its own making (a message larger than the server's SIZE,
// an extension the server lacks); Err is set for network, timeout and
// protocol errors, and for the client's own refusals the sentinel error
// (ErrNeeds8BitMIME and others). A failure without Reply is temporary.
type Error struct {
	Stage Stage
	Reply *Reply
	Err   error
}

func (e *Error) Error() string {
	switch {
	case e.Reply != nil && e.Err != nil:
		return fmt.Sprintf("smtp %s: %v (%s)", e.Stage, e.Err, e.Reply)
	case e.Reply != nil:
		return fmt.Sprintf("smtp %s: server replied %s", e.Stage, e.Reply)
	case e.Err != nil:
		return fmt.Sprintf("smtp %s: %v", e.Stage, e.Err)
	}
	return fmt.Sprintf("smtp %s: failed", e.Stage)
}

func (e *Error) Unwrap() error { return e.Err }

// Permanent reports whether the failure is permanent: a 5xx reply.
func (e *Error) Permanent() bool { return e.Reply != nil && e.Reply.Permanent() }

// logLine renders a protocol line for a log with control characters and
// non-ASCII bytes escaped, so the log shows what came over the wire.
func logLine(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			b.WriteString(`\\`)
		case c >= 0x20 && c < 0x7f:
			b.WriteByte(c)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\t':
			b.WriteString(`\t`)
		default:
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	return b.String()
}
