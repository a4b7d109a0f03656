package imapdiff

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Target is one IMAP server the scripts run against.
type Target struct {
	Name     string // "dovecot", "moxd"; names the golden file
	Addr     string // host:port, plaintext IMAP
	User     string // substituted for ${USER}
	Password string // substituted for ${PASS}
	Norm     NormalizeOptions
}

// Limits and deadlines of the runner. Deadlines are generous (DESIGN.md
// §11); a healthy server answers in milliseconds.
const (
	ioTimeout   = 10 * time.Second // per read or write
	waitTimeout = 10 * time.Second // WAIT, and the "+" of IDLE and literals
	maxLine     = 1 << 20
	maxLiteral  = 16 << 20
)

// Transcript line prefixes, after the session name: "C:" client line as
// written in the script ({*} resolved), "L:" literal line sent, "S:" server
// line (up to a literal), "S|" a line of a server literal, "S+" the server
// line's continuation after a literal, and directives as written.

type session struct {
	name    string
	conn    net.Conn
	r       *bufio.Reader
	idleTag string    // tag of the pending IDLE, if any
	last    []string  // raw responses of the last command, literals as {n}
	closed  bool      // server closed the connection
	out     *[]string // transcript
}

// Run connects sessions as the script uses them and returns the raw
// (unnormalised) transcript. An error means the script could not be
// carried out (connect failure, timeout, unknown variable); the transcript
// up to that point is returned with it.
func Run(tg Target, s *Script) ([]string, error) {
	var out []string
	vars := map[string]string{"USER": tg.User, "PASS": tg.Password}
	sessions := map[string]*session{}
	defer func() {
		for _, ss := range sessions {
			ss.conn.Close()
		}
	}()
	for _, st := range s.Steps {
		ss := sessions[st.Session]
		if ss == nil {
			c, err := net.DialTimeout("tcp", tg.Addr, ioTimeout)
			if err != nil {
				return out, fmt.Errorf("%s line %d: connect: %w", s.Name, st.Line, err)
			}
			ss = &session{name: st.Session, conn: c, r: bufio.NewReaderSize(c, 64*1024), out: &out}
			sessions[st.Session] = ss
			// The greeting.
			if _, err := ss.readResponse(time.Now().Add(ioTimeout)); err != nil {
				return out, fmt.Errorf("%s line %d: greeting: %w", s.Name, st.Line, err)
			}
		}
		var err error
		switch st.Kind {
		case StepCommand:
			err = ss.command(st, vars)
		case StepWait:
			ss.emit("WAIT " + st.Pattern.String())
			err = ss.wait(st.Pattern)
		case StepCapture:
			err = capture(ss, st, vars)
		}
		if err != nil {
			return out, fmt.Errorf("%s line %d (session %s): %w", s.Name, st.Line, st.Session, err)
		}
	}
	return out, nil
}

func (ss *session) emit(line string) {
	*ss.out = append(*ss.out, ss.name+" "+line)
}

var varRef = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)\}`)

func substitute(s string, vars map[string]string) (string, error) {
	var missing []string
	r := varRef.ReplaceAllStringFunc(s, func(m string) string {
		v, ok := vars[m[2:len(m)-1]]
		if !ok {
			missing = append(missing, m)
		}
		return v
	})
	if missing != nil {
		return "", fmt.Errorf("undefined variable %s (set it with CAPTURE)", strings.Join(missing, ", "))
	}
	return r, nil
}

func capture(ss *session, st Step, vars map[string]string) error {
	for _, l := range ss.last {
		if m := st.Pattern.FindStringSubmatch(l); m != nil {
			vars[st.Var] = m[1]
			ss.emit("CAPTURE " + st.Var)
			return nil
		}
	}
	return fmt.Errorf("CAPTURE %s: no response of the previous command matches %s", st.Var, st.Pattern)
}

// command sends one command and reads until its completion.
func (ss *session) command(st Step, vars map[string]string) error {
	if ss.closed {
		return errors.New("session already closed by the server")
	}
	ss.last = nil
	if st.Lines[0] == "DONE" && len(st.Lines) == 1 {
		if ss.idleTag == "" {
			return errors.New("DONE without a pending IDLE")
		}
		ss.emit("C: DONE")
		if err := ss.write("DONE\r\n"); err != nil {
			return err
		}
		tag := ss.idleTag
		ss.idleTag = ""
		return ss.readUntilTag(tag)
	}
	for i, line := range st.Lines {
		shown := line
		var lit []byte
		if i < len(st.Literals) {
			lit = st.Literals[i]
			shown = literalMark.ReplaceAllStringFunc(line, func(m string) string {
				return strings.Replace(m, "*", strconv.Itoa(len(lit)), 1)
			})
		}
		if i == 0 {
			ss.emit("C: " + shown)
		} else if shown != "" {
			ss.emit("C+: " + shown)
		}
		text, err := substitute(shown, vars)
		if err != nil {
			return err
		}
		if i == len(st.Literals) {
			// Last line: complete the command.
			if err := ss.write(text + "\r\n"); err != nil {
				return err
			}
			break
		}
		if err := ss.write(text + "\r\n"); err != nil {
			return err
		}
		if m := literalMark.FindStringSubmatch(shown); m[2] != "+" {
			// Synchronising literal: wait for "+", or a completion (NO/BAD)
			// which ends the command.
			done, err := ss.readUntilContinuation(st.Tag)
			if err != nil || done {
				return err
			}
		}
		for _, l := range strings.Split(string(lit), "\r\n") {
			ss.emit("L: " + l)
		}
		if err := ss.write(string(lit)); err != nil {
			return err
		}
	}
	if verb(st.Lines[0]) == "IDLE" {
		done, err := ss.readUntilContinuation(st.Tag)
		if err == nil && !done {
			ss.idleTag = st.Tag
		}
		return err
	}
	return ss.readUntilTag(st.Tag)
}

func verb(line string) string {
	f := strings.Fields(line)
	if len(f) < 2 {
		return ""
	}
	return strings.ToUpper(f[1])
}

func (ss *session) write(s string) error {
	ss.conn.SetWriteDeadline(time.Now().Add(ioTimeout))
	_, err := io.WriteString(ss.conn, s)
	return err
}

// readUntilTag reads responses until the tagged completion of tag, or EOF
// (recorded as "S: <EOF>", e.g. after LOGOUT or when the server gives up).
func (ss *session) readUntilTag(tag string) error {
	for {
		resp, err := ss.readResponse(time.Now().Add(ioTimeout))
		if err != nil {
			return err
		}
		if ss.closed {
			return nil
		}
		if t, _, _ := strings.Cut(resp, " "); t == tag {
			return nil
		}
	}
}

// readUntilContinuation reads until a "+" continuation request (false) or
// the tagged completion of tag (true).
func (ss *session) readUntilContinuation(tag string) (bool, error) {
	deadline := time.Now().Add(waitTimeout)
	for {
		resp, err := ss.readResponse(deadline)
		if err != nil {
			return false, err
		}
		if ss.closed {
			return true, nil
		}
		if resp == "+" || strings.HasPrefix(resp, "+ ") {
			return false, nil
		}
		if t, _, _ := strings.Cut(resp, " "); t == tag {
			return true, nil
		}
	}
}

// wait reads responses until an untagged one matches re.
func (ss *session) wait(re *regexp.Regexp) error {
	deadline := time.Now().Add(waitTimeout)
	for {
		resp, err := ss.readResponse(deadline)
		if err != nil {
			return fmt.Errorf("WAIT %s: %w", re, err)
		}
		if ss.closed {
			return fmt.Errorf("WAIT %s: connection closed", re)
		}
		if strings.HasPrefix(resp, "* ") && re.MatchString(resp) {
			return nil
		}
	}
}

// literalEnd matches a literal announced at the end of a server line.
var literalEnd = regexp.MustCompile(`\{(\d+)\}$`)

// readResponse reads one response (a line and any literals in it), records
// it in the transcript and in ss.last, and returns it with literals shown
// as {n}. At EOF it records "S: <EOF>" and sets ss.closed.
func (ss *session) readResponse(deadline time.Time) (string, error) {
	ss.conn.SetReadDeadline(deadline)
	var full strings.Builder
	prefix := "S: "
	for {
		line, err := ss.readLine()
		if err == io.EOF && full.Len() == 0 && prefix == "S: " {
			ss.emit("S: <EOF>")
			ss.closed = true
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("read response: %w", err)
		}
		ss.emit(prefix + line)
		full.WriteString(line)
		m := literalEnd.FindStringSubmatch(line)
		if m == nil {
			break
		}
		n, err := strconv.Atoi(m[1])
		if err != nil || n > maxLiteral {
			return "", fmt.Errorf("server literal {%s} too large", m[1])
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(ss.r, buf); err != nil {
			return "", fmt.Errorf("read literal: %w", err)
		}
		for _, l := range strings.Split(string(buf), "\n") {
			ss.emit("S| " + showLine(strings.TrimSuffix(l, "\r")))
		}
		prefix = "S+ "
	}
	ss.last = append(ss.last, full.String())
	return full.String(), nil
}

// showLine makes control characters visible so that transcripts stay line
// oriented and diffable.
func showLine(s string) string {
	for _, c := range s {
		if c < 0x20 && c != '\t' || c == 0x7f {
			q := strconv.Quote(s)
			return "(quoted) " + q
		}
	}
	return s
}

func (ss *session) readLine() (string, error) {
	var b []byte
	for {
		chunk, isPrefix, err := ss.r.ReadLine()
		if err != nil {
			return "", err
		}
		b = append(b, chunk...)
		if len(b) > maxLine {
			return "", fmt.Errorf("response line longer than %d bytes", maxLine)
		}
		if !isPrefix {
			return string(b), nil
		}
	}
}
