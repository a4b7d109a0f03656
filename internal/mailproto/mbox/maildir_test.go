package mbox

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseMaildirInfo(t *testing.T) {
	tests := []struct {
		name     string
		want     Flags
		keywords string
		ok       bool
	}{
		{"1355543030.M1P2.host:2,", Flags{}, "", true},
		{"1355543030.M1P2.host,S=1234,W=1260:2,FRS", Flags{Flagged: true, Answered: true, Seen: true}, "", true},
		{"cur/1355543030.M1P2.host:2,DT", Flags{Draft: true, Deleted: true}, "", true},
		{"/home/u/Maildir/.Sent/cur/x:2,PSab", Flags{Seen: true}, "ab", true},
		{"x:2,Sbab", Flags{Seen: true}, "ba", true},
		{"x:2,SXz", Flags{Seen: true}, "z", true},
		{"new/1355543030.M1P2.host", Flags{}, "", false},
		{"x:1,S", Flags{}, "", false},
		{"x:2,S1", Flags{}, "", false},
		{"dir:2,S/x", Flags{}, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			flags, letters, ok := ParseMaildirInfo(tc.name)
			if flags != tc.want || string(letters) != tc.keywords || ok != tc.ok {
				t.Errorf("got %+v %q %v, want %+v %q %v", flags, letters, ok, tc.want, tc.keywords, tc.ok)
			}
		})
	}
}

func TestParseDovecotKeywords(t *testing.T) {
	tests := []struct {
		name     string
		input    string
		want     map[byte]string
		problems []Problem
	}{
		{"empty", "", map[byte]string{}, nil},
		{"good", "0 $Junk\n1 NonJunk\r\n25 last", map[byte]string{'a': "$Junk", 'b': "NonJunk", 'z': "last"}, nil},
		{"bad lines", "0 one\nnospace\n26 toolate\n-1 neg\nx name\n1 bad\\name\n0 dup\n\n2 two\n",
			map[byte]string{'a': "one", 'c': "two"},
			[]Problem{
				{6, "want an index"},
				{14, "0 to 25"},
				{25, "0 to 25"},
				{32, "0 to 25"},
				{39, "not an IMAP atom"},
				{50, "already names keyword \"one\""},
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, problems := ParseDovecotKeywords(strings.NewReader(tc.input))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("keywords %v, want %v", got, tc.want)
			}
			checkProblems(t, problems, tc.problems)
		})
	}
}

func TestIsAtom(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{"$Forwarded", true},
		{"Work-2024", true},
		{"a+b", true},
		{"", false},
		{"two words", false},
		{"\\Seen", false},
		{"x*", false},
		{"50%", false},
		{"a]b", false},
		{"{3}", false},
		{"(x", false},
		{`"q"`, false},
		{"tab\there", false},
		{"ü", false},
		{"del\x7f", false},
	}
	for _, tc := range tests {
		if got := IsAtom(tc.s); got != tc.want {
			t.Errorf("IsAtom(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}
