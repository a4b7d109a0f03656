package imapdiff

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Script is one parsed testdata/*.imap file.
type Script struct {
	Name  string // file name without .imap; also the base of the login name
	Steps []Step
}

// StepKind says what a step does.
type StepKind int

const (
	// StepCommand sends a command (with its literals) and reads responses
	// until its tagged completion. "x IDLE" returns at the "+" instead, and
	// "DONE" ends the pending IDLE and reads until its completion.
	StepCommand StepKind = iota
	// StepWait reads responses until an untagged one matches Pattern.
	StepWait
	// StepCapture sets a variable from the previous command's responses.
	StepCapture
)

// Step is one action of one session.
type Step struct {
	Line    int    // line number in the script, for error messages
	Session string // "A" unless the line names another session
	Kind    StepKind

	// StepCommand: Lines[i] is sent, followed by Literals[i] when i <
	// len(Literals); Lines[i] then ends in {n}, {n+}, {*} or {*+}. {*}
	// is replaced by the literal's size when sending.
	Lines    []string
	Literals [][]byte
	Tag      string

	// StepWait and StepCapture.
	Pattern *regexp.Regexp
	Var     string // StepCapture
}

// literalMark matches the literal announcement at the end of a command line.
var literalMark = regexp.MustCompile(`\{(\d+|\*)(\+?)\}$`)

// sessionName is the optional prefix naming a session: a capital letter,
// optionally followed by digits ("A", "B", "C2").
var sessionName = regexp.MustCompile(`^[A-Z][0-9]*$`)

// LoadScripts parses every *.imap file in dir, sorted by name.
func LoadScripts(dir string) ([]*Script, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.imap"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var scripts []*Script
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		s, err := ParseScript(strings.TrimSuffix(filepath.Base(p), ".imap"), f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		scripts = append(scripts, s)
	}
	return scripts, nil
}

// ParseScript reads the script format (see the package comment).
func ParseScript(name string, r io.Reader) (*Script, error) {
	s := &Script{Name: name}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	lineno := 0
	// cur is the command being assembled; lit the literal being collected.
	var cur *Step
	var lit []string
	inLit := false
	finishLit := func() error {
		if !inLit {
			return nil
		}
		data := []byte(strings.Join(lit, "\r\n"))
		last := cur.Lines[len(cur.Lines)-1]
		m := literalMark.FindStringSubmatch(last)
		if m[1] != "*" {
			n, _ := strconv.Atoi(m[1])
			if n != len(data) {
				return fmt.Errorf("line %d: literal announced as {%d} has %d bytes", cur.Line, n, len(data))
			}
		}
		cur.Literals = append(cur.Literals, data)
		lit, inLit = nil, false
		return nil
	}
	finish := func() error {
		if cur == nil {
			return nil
		}
		if err := finishLit(); err != nil {
			return err
		}
		if len(cur.Literals) == len(cur.Lines)-1 && literalMark.MatchString(cur.Lines[len(cur.Lines)-1]) {
			return fmt.Errorf("line %d: literal announced but no L: lines follow", cur.Line)
		}
		if len(cur.Literals) == len(cur.Lines) {
			// The literal was the last thing: the command still needs its
			// CRLF, which an empty continuation provides.
			cur.Lines = append(cur.Lines, "")
		}
		s.Steps = append(s.Steps, *cur)
		cur = nil
		return nil
	}
	for sc.Scan() {
		lineno++
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			if inLit {
				// Inside a literal, blank lines must be written "L:".
				return nil, fmt.Errorf("line %d: blank or comment line inside a literal; write an empty line as \"L:\"", lineno)
			}
			continue
		}
		session := "A"
		rest := line
		if i := strings.IndexByte(line, ' '); i > 0 && sessionName.MatchString(line[:i]) {
			session, rest = line[:i], line[i+1:]
		}
		if cur != nil && cur.Session != session && !strings.HasPrefix(rest, "L:") {
			if err := finish(); err != nil {
				return nil, err
			}
		}
		verb, arg, _ := strings.Cut(rest, " ")
		switch verb {
		case "C:":
			if err := finish(); err != nil {
				return nil, err
			}
			if arg == "" {
				return nil, fmt.Errorf("line %d: empty command", lineno)
			}
			tag, _, _ := strings.Cut(arg, " ")
			cur = &Step{Line: lineno, Session: session, Kind: StepCommand, Lines: []string{arg}, Tag: tag}
		case "L:":
			if cur == nil || cur.Session != session {
				return nil, fmt.Errorf("line %d: literal data without a command of session %s", lineno, session)
			}
			if !inLit {
				if len(cur.Literals) != len(cur.Lines)-1 || !literalMark.MatchString(cur.Lines[len(cur.Lines)-1]) {
					return nil, fmt.Errorf("line %d: literal data but the command line does not end in {n}", lineno)
				}
				inLit = true
			}
			lit = append(lit, arg)
		case "C+:":
			if cur == nil || !inLit {
				return nil, fmt.Errorf("line %d: C+: continues a command after literal data only", lineno)
			}
			if err := finishLit(); err != nil {
				return nil, err
			}
			cur.Lines = append(cur.Lines, arg)
		case "WAIT", "CAPTURE":
			if err := finish(); err != nil {
				return nil, err
			}
			st := Step{Line: lineno, Session: session, Kind: StepWait}
			pat := arg
			if verb == "CAPTURE" {
				st.Kind = StepCapture
				st.Var, pat, _ = strings.Cut(arg, " ")
				if st.Var == "" || pat == "" {
					return nil, fmt.Errorf("line %d: want CAPTURE name regexp", lineno)
				}
			}
			re, err := regexp.Compile(pat)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", lineno, err)
			}
			if verb == "CAPTURE" && re.NumSubexp() < 1 {
				return nil, fmt.Errorf("line %d: CAPTURE regexp needs a group", lineno)
			}
			st.Pattern = re
			s.Steps = append(s.Steps, st)
		default:
			return nil, fmt.Errorf("line %d: unknown line %q (want [session] C:, C+:, L:, WAIT or CAPTURE)", lineno, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := finish(); err != nil {
		return nil, err
	}
	if len(s.Steps) == 0 {
		return nil, fmt.Errorf("no steps")
	}
	return s, nil
}
