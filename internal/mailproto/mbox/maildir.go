package mbox

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ParseMaildirInfo returns the flags in the info part of a maildir file name,
// the ":2," suffix described at https://cr.yp.to/proto/maildir.html. The name
// may include directories. Flag letters:
//
//	P passed (resent or bounced; no IMAP flag, ignored)
//	R replied  -> Answered
//	S seen     -> Seen
//	T trashed  -> Deleted
//	D draft    -> Draft
//	F flagged  -> Flagged
//
// Lowercase letters a..z are Dovecot keyword indices, returned in
// keywordLetters for lookup in the map from ParseDovecotKeywords. Other
// uppercase letters are flags of other programs and are ignored. ok is false
// when the name has no ":2," info part or the info holds a character that is
// not a letter; flags and keywordLetters are then empty.
func ParseMaildirInfo(filename string) (flags Flags, keywordLetters []byte, ok bool) {
	if i := strings.LastIndexByte(filename, '/'); i >= 0 {
		filename = filename[i+1:]
	}
	i := strings.LastIndex(filename, ":2,")
	if i < 0 {
		return Flags{}, nil, false
	}
	info := filename[i+len(":2,"):]
	for j := 0; j < len(info); j++ {
		c := info[j]
		switch {
		case c == 'R':
			flags.Answered = true
		case c == 'S':
			flags.Seen = true
		case c == 'T':
			flags.Deleted = true
		case c == 'D':
			flags.Draft = true
		case c == 'F':
			flags.Flagged = true
		case c >= 'A' && c <= 'Z':
			// 'P' (passed) and flags of other programs: nothing to keep.
		case c >= 'a' && c <= 'z':
			if strings.IndexByte(string(keywordLetters), c) < 0 {
				keywordLetters = append(keywordLetters, c)
			}
		default:
			return Flags{}, nil, false
		}
	}
	return flags, keywordLetters, true
}

// ParseDovecotKeywords reads a Dovecot "dovecot-keywords" file from a maildir
// directory. Each line is an index 0..25 and a keyword name separated by a
// space; index N is the letter 'a'+N in maildir file names. Lines that are not
// of that form, indices out of range or used twice, and names that are not
// IMAP atoms are reported as Problems with the byte offset of the line, and
// skipped. Empty lines are ignored.
func ParseDovecotKeywords(r io.Reader) (map[byte]string, []Problem) {
	keywords := map[byte]string{}
	var problems []Problem
	br := bufio.NewReader(r)
	var offset int64
	for {
		line, err := br.ReadString('\n')
		lineOffset := offset
		offset += int64(len(line))
		if line != "" {
			if p := parseKeywordLine(strings.TrimRight(line, "\r\n"), keywords); p != "" {
				problems = append(problems, Problem{lineOffset, p})
			}
		}
		if err == io.EOF {
			break
		} else if err != nil {
			problems = append(problems, Problem{offset, fmt.Sprintf("reading dovecot-keywords: %v", err)})
			break
		}
	}
	return keywords, problems
}

// parseKeywordLine adds one "N name" line to keywords, or returns why not.
func parseKeywordLine(line string, keywords map[byte]string) string {
	if strings.TrimSpace(line) == "" {
		return ""
	}
	num, name, ok := strings.Cut(line, " ")
	if !ok {
		return fmt.Sprintf("line %q: want an index, a space and a keyword", line)
	}
	name = strings.TrimSpace(name)
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || n > 25 {
		return fmt.Sprintf("line %q: index must be a number from 0 to 25", line)
	}
	if !IsAtom(name) {
		return fmt.Sprintf("line %q: keyword %q is not an IMAP atom", line, name)
	}
	letter := byte('a' + n)
	if prev, dup := keywords[letter]; dup {
		return fmt.Sprintf("line %q: index %d already names keyword %q", line, n, prev)
	}
	keywords[letter] = name
	return ""
}
