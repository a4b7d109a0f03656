package imapdiff

import (
	"strings"
	"testing"
)

func TestParseScript(t *testing.T) {
	s, err := ParseScript("x", strings.NewReader(`# comment
C: a LOGIN ${USER} ${PASS}
C: b APPEND INBOX {5}
L: hello
C: c APPEND INBOX (\Seen) {*}
L: Subject: x
L:
C+: {3+}
L: abc
B C: d IDLE
A WAIT ^\* 1 EXISTS
B C: DONE
CAPTURE v \[UIDVALIDITY (\d+)\]
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Steps) != 7 {
		t.Fatalf("got %d steps, want 7", len(s.Steps))
	}
	ap := s.Steps[2]
	if ap.Tag != "c" || len(ap.Lines) != 3 || len(ap.Literals) != 2 || string(ap.Literals[0]) != "Subject: x\r\n" || string(ap.Literals[1]) != "abc" || ap.Lines[2] != "" {
		t.Errorf("multiappend step: %+v", ap)
	}
	if s.Steps[3].Session != "B" || s.Steps[4].Kind != StepWait || s.Steps[4].Session != "A" || s.Steps[6].Var != "v" {
		t.Errorf("steps: %+v", s.Steps[3:])
	}

	for _, bad := range []string{
		"C: a APPEND INBOX {4}\nL: hello\n",     // wrong size
		"C: a APPEND INBOX {4}\nC: b NOOP\n",    // literal missing
		"L: hello\n",                            // no command
		"C: a NOOP\nL: x\n",                     // no literal announced
		"C: a NOOP\nC+: more\n",                 // continuation without literal
		"CAPTURE v nogroup\n",                   // no group
		"WAIT (\n",                              // bad regexp
		"S: * OK\n",                             // unknown line
		"# only a comment\n",                    // no steps
		"C: a APPEND INBOX {*}\nL: x\n\nL: y\n", // blank line inside literal
	} {
		if _, err := ParseScript("bad", strings.NewReader(bad)); err == nil {
			t.Errorf("ParseScript(%q) accepted", bad)
		}
	}
}

func TestLoadScripts(t *testing.T) {
	scripts, err := LoadScripts("testdata")
	if err != nil {
		t.Fatal(err)
	}
	if len(scripts) < 12 {
		t.Errorf("%d scripts, want at least 12", len(scripts))
	}
}
