package config

// The TOML library reports lines for syntax and type errors, but not where a
// key is. Unknown keys and validation errors must name a line too, so this
// file holds a small scanner that walks a TOML document (already accepted by
// the parser) and records the line on which each key path first appears.
//
// Paths include array indices: the second [[domain]] section's first
// [[domain.dkim]] selector key is "domain[1].dkim[0].selector". Unknown keys
// from the library come without indices, so the scanner also records each
// path with indices removed (first occurrence wins).

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// keyPath is a key path; array indices are separate elements written "[N]".
type keyPath []string

func isIndex(piece string) bool {
	return len(piece) >= 3 && piece[0] == '[' && piece[len(piece)-1] == ']'
}

func index(n int) string {
	return "[" + strconv.Itoa(n) + "]"
}

// String formats the path for messages: dotted, with indices attached and
// keys that are not bare quoted.
func (p keyPath) String() string {
	var b strings.Builder
	for i, piece := range p {
		if isIndex(piece) {
			b.WriteString(piece)
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		if isBareKey(piece) {
			b.WriteString(piece)
		} else {
			b.WriteString(strconv.Quote(piece))
		}
	}
	return b.String()
}

func (p keyPath) join() string {
	return strings.Join(p, "\x00")
}

// with returns a new path with pieces appended; p itself is never modified,
// so paths can be extended in loops without aliasing.
func (p keyPath) with(pieces ...string) keyPath {
	n := make(keyPath, 0, len(p)+len(pieces))
	n = append(n, p...)
	return append(n, pieces...)
}

func (p keyPath) withoutIndices() keyPath {
	var n keyPath
	for _, piece := range p {
		if !isIndex(piece) {
			n = append(n, piece)
		}
	}
	return n
}

func isBareKey(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !isBareKeyChar(c) {
			return false
		}
	}
	return true
}

func isBareKeyChar(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// keyLines maps key paths to the 1-based line where they first appear.
type keyLines struct {
	exact map[string]int // Path with indices.
	plain map[string]int // Path without indices.
}

// line returns the line of path p. When p itself is not in the file (a default
// value), it returns the line of the nearest enclosing table or array element
// that is, and 0 when there is none.
func (kl *keyLines) line(p keyPath) int {
	if kl == nil {
		return 0
	}
	for n := len(p); n > 0; n-- {
		if l, ok := kl.exact[p[:n].join()]; ok {
			return l
		}
	}
	return 0
}

// has reports whether path p itself is in the file.
func (kl *keyLines) has(p keyPath) bool {
	if kl == nil {
		return false
	}
	_, ok := kl.exact[p.join()]
	return ok
}

// plainLine returns the first line of a path reported by the TOML library
// (without indices), or 0.
func (kl *keyLines) plainLine(k toml.Key) int {
	return kl.plain[keyPath(k).join()]
}

// errorf returns an *Error for key p in file, located with kl.
func (kl *keyLines) errorf(file string, p keyPath, format string, args ...any) *Error {
	return &Error{File: file, Line: kl.line(p), Key: p.String(), Msg: fmt.Sprintf(format, args...)}
}

func (kl *keyLines) record(p keyPath, line int) {
	if _, ok := kl.exact[p.join()]; !ok {
		kl.exact[p.join()] = line
	}
	pl := p.withoutIndices().join()
	if _, ok := kl.plain[pl]; !ok {
		kl.plain[pl] = line
	}
}

type keyScanner struct {
	data   []byte
	i      int
	line   int
	kl     *keyLines
	arrays map[string]int // Element count per array of tables ([[x]]), by indexed path.
}

// scanKeyLines records the line of every key, table header and array-of-tables
// element in a TOML document. It never fails: on input it does not understand
// it moves on to the next line, so at worst a line number is missing.
func scanKeyLines(data []byte) *keyLines {
	s := &keyScanner{
		data:   data,
		line:   1,
		kl:     &keyLines{exact: map[string]int{}, plain: map[string]int{}},
		arrays: map[string]int{},
	}
	var table keyPath
	for {
		s.skipSpaceNL()
		if s.eof() {
			break
		}
		start := s.i
		if s.data[s.i] == '[' {
			table = s.header()
		} else {
			s.keyValue(table)
		}
		s.skipLine(start)
	}
	return s.kl
}

func (s *keyScanner) eof() bool {
	return s.i >= len(s.data)
}

func (s *keyScanner) peek(off int) byte {
	if s.i+off < len(s.data) {
		return s.data[s.i+off]
	}
	return 0
}

// advance moves one byte forward, counting lines.
func (s *keyScanner) advance() {
	if s.data[s.i] == '\n' {
		s.line++
	}
	s.i++
}

func (s *keyScanner) skipSpaces() {
	for !s.eof() && (s.data[s.i] == ' ' || s.data[s.i] == '\t') {
		s.i++
	}
}

// skipSpaceNL skips white space, newlines and comments.
func (s *keyScanner) skipSpaceNL() {
	for !s.eof() {
		switch s.data[s.i] {
		case ' ', '\t', '\r', '\n':
			s.advance()
		case '#':
			for !s.eof() && s.data[s.i] != '\n' {
				s.i++
			}
		default:
			return
		}
	}
}

// skipLine moves past the end of the current line (a trailing comment or
// anything not understood). If nothing was consumed since start, it moves
// at least one byte so scanning always progresses.
func (s *keyScanner) skipLine(start int) {
	if s.i == start && !s.eof() {
		s.advance()
		if s.data[s.i-1] == '\n' {
			return
		}
	}
	for !s.eof() && s.data[s.i] != '\n' {
		s.i++
	}
	if !s.eof() {
		s.advance()
	}
}

// resolve appends key pieces to prefix. A piece naming an array of tables
// refers to its last element so far, as in TOML.
func (s *keyScanner) resolve(prefix keyPath, pieces []string) keyPath {
	p := prefix.with()
	for _, piece := range pieces {
		p = append(p, piece)
		if n := s.arrays[p.join()]; n > 0 {
			p = append(p, index(n-1))
		}
	}
	return p
}

// header reads a [table] or [[array]] header and returns the table path.
func (s *keyScanner) header() keyPath {
	line := s.line
	s.i++
	array := s.peek(0) == '['
	if array {
		s.i++
	}
	pieces := s.key()
	if len(pieces) == 0 {
		return nil
	}
	s.skipSpaces()
	if s.peek(0) == ']' {
		s.i++
	}
	if array && s.peek(0) == ']' {
		s.i++
	}
	if !array {
		p := s.resolve(nil, pieces)
		s.recordPrefixes(p, line)
		return p
	}
	arr := s.resolve(nil, pieces[:len(pieces)-1]).with(pieces[len(pieces)-1])
	n := s.arrays[arr.join()]
	s.arrays[arr.join()] = n + 1
	elem := arr.with(index(n))
	s.recordPrefixes(elem, line)
	return elem
}

func (s *keyScanner) recordPrefixes(p keyPath, line int) {
	for n := 1; n <= len(p); n++ {
		s.kl.record(p[:n], line)
	}
}

// keyValue reads "key = value" inside table prefix.
func (s *keyScanner) keyValue(prefix keyPath) {
	line := s.line
	pieces := s.key()
	if len(pieces) == 0 {
		return
	}
	s.skipSpaces()
	if s.peek(0) != '=' {
		return
	}
	s.i++
	s.skipSpaces()
	p := s.resolve(prefix, pieces)
	s.recordPrefixes(p, line)
	s.value(p)
}

// key reads a possibly dotted key of bare and quoted pieces.
func (s *keyScanner) key() []string {
	var pieces []string
	for {
		s.skipSpaces()
		if s.eof() {
			return pieces
		}
		var piece string
		switch c := s.data[s.i]; {
		case c == '"':
			start := s.i
			s.i++
			for !s.eof() && s.data[s.i] != '"' && s.data[s.i] != '\n' {
				if s.data[s.i] == '\\' && s.i+1 < len(s.data) {
					s.i++
				}
				s.i++
			}
			end := s.i
			if !s.eof() && s.data[s.i] == '"' {
				s.i++
			}
			piece = unescapeBasic(string(s.data[start+1 : end]))
		case c == '\'':
			s.i++
			start := s.i
			for !s.eof() && s.data[s.i] != '\'' && s.data[s.i] != '\n' {
				s.i++
			}
			piece = string(s.data[start:s.i])
			if !s.eof() && s.data[s.i] == '\'' {
				s.i++
			}
		case c < 0x80 && isBareKeyChar(rune(c)):
			start := s.i
			for !s.eof() && s.data[s.i] < 0x80 && isBareKeyChar(rune(s.data[s.i])) {
				s.i++
			}
			piece = string(s.data[start:s.i])
		default:
			return pieces
		}
		pieces = append(pieces, piece)
		s.skipSpaces()
		if s.peek(0) != '.' {
			return pieces
		}
		s.i++
	}
}

// unescapeBasic resolves the escapes of a TOML basic string (TOML 1.0 and
// the \e and \xHH of TOML 1.1). Bad escapes are kept as written: the TOML
// library has already rejected invalid documents.
func unescapeBasic(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		n := 0
		switch s[i] {
		case 'b':
			b.WriteByte('\b')
			continue
		case 't':
			b.WriteByte('\t')
			continue
		case 'n':
			b.WriteByte('\n')
			continue
		case 'f':
			b.WriteByte('\f')
			continue
		case 'r':
			b.WriteByte('\r')
			continue
		case 'e':
			b.WriteByte(0x1b)
			continue
		case '"', '\\':
			b.WriteByte(s[i])
			continue
		case 'x':
			n = 2
		case 'u':
			n = 4
		case 'U':
			n = 8
		}
		if n > 0 && i+n < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+1+n], 16, 32); err == nil {
				b.WriteRune(rune(v))
				i += n
				continue
			}
		}
		b.WriteByte('\\')
		b.WriteByte(s[i])
	}
	return b.String()
}

// value skips a value, recording the keys of inline tables inside it.
func (s *keyScanner) value(p keyPath) {
	if s.eof() {
		return
	}
	switch s.data[s.i] {
	case '"', '\'':
		s.str()
	case '[':
		s.i++
		for n := 0; ; {
			s.skipSpaceNL()
			if s.eof() {
				return
			}
			switch s.data[s.i] {
			case ']':
				s.i++
				return
			case ',':
				s.i++
				continue
			}
			start := s.i
			elem := p.with(index(n))
			s.kl.record(elem, s.line)
			s.value(elem)
			n++
			if s.i == start {
				s.advance() // Not a value; never loop on it.
			}
		}
	case '{':
		s.i++
		for {
			s.skipSpaceNL()
			if s.eof() {
				return
			}
			switch s.data[s.i] {
			case '}':
				s.i++
				return
			case ',':
				s.i++
				continue
			}
			start := s.i
			s.keyValue(p)
			if s.i == start {
				s.advance()
			}
		}
	default:
		// Number, boolean or date/time: up to the next delimiter.
		for !s.eof() && !strings.ContainsRune(",]}#\r\n", rune(s.data[s.i])) {
			s.i++
		}
	}
}

// str skips a basic or literal string, single- or multi-line.
func (s *keyScanner) str() {
	q := s.data[s.i]
	escapes := q == '"'
	if s.peek(1) == q && s.peek(2) == q {
		s.i += 3
		for !s.eof() {
			if escapes && s.data[s.i] == '\\' && s.i+1 < len(s.data) {
				s.i++
				s.advance()
				continue
			}
			if s.data[s.i] == q && s.peek(1) == q && s.peek(2) == q {
				s.i += 3
				// Up to two quotes may end the content right before the delimiter.
				for k := 0; k < 2 && s.peek(0) == q; k++ {
					s.i++
				}
				return
			}
			s.advance()
		}
		return
	}
	s.i++
	for !s.eof() && s.data[s.i] != q && s.data[s.i] != '\n' {
		if escapes && s.data[s.i] == '\\' && s.i+1 < len(s.data) && s.data[s.i+1] != '\n' {
			s.i++
		}
		s.i++
	}
	if !s.eof() && s.data[s.i] == q {
		s.i++
	}
}

// Type errors from the TOML library are plain errors in this form.
var typeErrorRegexp = regexp.MustCompile(`^toml: line ([0-9]+) \(last key "((?:[^"\\]|\\.)*)"\): (.*)$`)
var badTypeRegexp = regexp.MustCompile(`^incompatible types: TOML value has type (.*); destination has type (.*)$`)

// decodeError turns an error from the TOML library into an *Error with the
// file and line.
func decodeError(path string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		msg := "invalid TOML: " + pe.Message
		if pe.LastKey != "" {
			msg += fmt.Sprintf(" (last key %s)", pe.LastKey)
		}
		return &Error{File: path, Line: pe.Position.Line, Msg: msg}
	}
	m := typeErrorRegexp.FindStringSubmatch(err.Error())
	if m == nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	line, _ := strconv.Atoi(m[1])
	key, uerr := strconv.Unquote(`"` + m[2] + `"`)
	if uerr != nil {
		key = m[2]
	}
	msg := m[3]
	if t := badTypeRegexp.FindStringSubmatch(msg); t != nil {
		msg = fmt.Sprintf("wrong type: %s given, %s expected", tomlTypeName(t[1]), tomlTypeName(t[2]))
	} else if strings.HasPrefix(msg, "type mismatch for ") {
		if _, after, ok := strings.Cut(msg, "expected table but found "); ok {
			msg = fmt.Sprintf("wrong type: %s given, table expected", tomlTypeName(after))
		}
	}
	return &Error{File: path, Line: line, Key: key, Msg: msg}
}

// tomlTypeName names a Go type from a library message in TOML terms.
func tomlTypeName(t string) string {
	switch {
	case t == "string", t == "boolean", t == "integer", t == "float":
		return t
	case t == "bool":
		return "boolean"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "integer"
	case strings.HasPrefix(t, "float"):
		return "float"
	case t == "slice", strings.HasPrefix(t, "[]"):
		return "array"
	case t == "map", strings.HasPrefix(t, "map["):
		return "table"
	case strings.Contains(t, "time."), strings.Contains(t, "Local"):
		return "date/time"
	}
	return t
}
