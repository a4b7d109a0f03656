package headerfield

import (
	"strings"
	"testing"
)

func TestFold(t *testing.T) {
	long := strings.Repeat("x", 90)
	tests := []struct {
		tokens []string
		want   string
	}{
		{[]string{"a", "b"}, "Name: a b\r\n"},
		{nil, "Name:\r\n"},
		{[]string{strings.Repeat("a", 70), "bcdefghij"}, "Name: " + strings.Repeat("a", 70) + "\r\n\tbcdefghij\r\n"},
		{[]string{long, "b"}, "Name:\r\n\t" + long + "\r\n\tb\r\n"},
	}
	for _, tt := range tests {
		got := Fold("Name", tt.tokens)
		if got != tt.want {
			t.Errorf("Fold(%q) = %q, want %q", tt.tokens, got, tt.want)
		}
		for _, line := range strings.Split(strings.TrimSuffix(got, "\r\n"), "\r\n") {
			if len(line) > MaxLine && !strings.Contains(line, long) {
				t.Errorf("line %q longer than %d", line, MaxLine)
			}
		}
	}
	h := New("R")
	h.Add("x;")
	h.Break()
	h.Add("a=b", "c=d")
	if got := h.String(); got != "R: x;\r\n\ta=b c=d\r\n" {
		t.Errorf("Break: %q", got)
	}
}

func TestQuoteAndAtoms(t *testing.T) {
	if got := Quote("a \"b\"\\\x01ü"); got != `"a \"b\"\\?ü"` {
		t.Errorf("Quote = %s", got)
	}
	for s, want := range map[string]bool{"a.b": true, "a..b": false, ".a": false, "a b": false, "a+b": true, "": false, "ü": false} {
		if IsDotAtom(s) != want {
			t.Errorf("IsDotAtom(%q) != %v", s, want)
		}
	}
}
