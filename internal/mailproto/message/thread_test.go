package message

import (
	"reflect"
	"testing"
)

func TestBaseSubject(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Re: [fwd: Foo] (fwd)", "Foo"},
		{"Foo", "Foo"},
		{"re: Foo", "Foo"},
		{"RE: Re: FW: Fwd: foo", "foo"},
		{"Re[2]: foo", "foo"},
		{"Re [2] : foo", "foo"},
		{"[list] Re: foo", "foo"},
		{"[list] [other] Re: foo", "foo"},
		{"[list] foo", "foo"},
		{"[list]", "[list]"},
		{"Re: [list]", "[list]"},
		{"foo (fwd) (FWD)  ", "foo"},
		{"[Fwd: [Fwd: foo]]", "foo"},
		{"[fwd: re: foo (fwd)]", "foo"},
		{"Rebuild: foo", "Rebuild: foo"},
		{"Fwfoo", "Fwfoo"},
		{"  Re:\tfoo \t bar  ", "foo bar"},
		{"Re: ", ""},
		{"", ""},
		{"[unclosed Re: foo", "[unclosed Re: foo"},
		{"foo (fwd) bar", "foo (fwd) bar"},
	}
	for _, tc := range tests {
		if got := BaseSubject(tc.in); got != tc.want {
			t.Errorf("BaseSubject(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestMessageIDs(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"<a@x> <b@y>\r\n <c@z>", []string{"<a@x>", "<b@y>", "<c@z>"}},
		{"Your message of Monday <a@x>", []string{"<a@x>"}},
		{"<a@\r\n x>", []string{"<a@x>"}},
		{"<broken <b@y>", []string{"<b@y>"}},
		{"<> <c@z", nil},
		{"", nil},
	}
	for _, tc := range tests {
		if got := MessageIDs(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("MessageIDs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
