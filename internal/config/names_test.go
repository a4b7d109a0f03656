package config

import (
	"strings"
	"testing"
)

func TestPunycode(t *testing.T) {
	// Vectors from RFC 3492 §7.1 and well-known IDNs.
	tests := []struct{ in, want string }{
		{"bücher", "bcher-kva"},
		{"münchen", "mnchen-3ya"},
		{"пример", "e1afmkfd"},
		{"例え", "r8jz45g"},
		{"ليهمابتكلموشعربي؟", "egbpdaj6bu4bxfgehfvwxn"},
		{"他们为什么不说中文", "ihqwcrb4cv8a8dqg056pqjye"},
		{"3年B組金八先生", "3B-ww4c5e180e575a65lsy2b"},
		{"abc", "abc-"},
	}
	for _, tc := range tests {
		got, err := punycodeEncode(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("punycode(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestNormalizeDomain(t *testing.T) {
	tests := []struct {
		in, name, ascii string
		err             string // Substring of the error.
	}{
		{"Mail.Example.COM", "mail.example.com", "mail.example.com", ""},
		{"localhost", "localhost", "localhost", ""},
		{"xn--bcher-kva.example", "xn--bcher-kva.example", "xn--bcher-kva.example", ""},
		{"Bücher.Example", "bücher.example", "xn--bcher-kva.example", ""},
		{"a-b.c0", "a-b.c0", "a-b.c0", ""},
		{"", "", "", "empty domain name"},
		{"example.com.", "", "", "ends with a dot"},
		{"a..b", "", "", "empty label"},
		{"-a.com", "", "", "starts or ends with '-'"},
		{"a-.com", "", "", "starts or ends with '-'"},
		{"bü-.com", "", "", "starts or ends with '-'"},
		{"a_b.com", "", "", "contains '_'"},
		{"a b.com", "", "", "contains ' '"},
		{"1.2.3.4", "", "", "is an IP address"},
		{"::1", "", "", "is an IP address"},
		{"example.123", "", "", "all-numeric last label"},
		{strings.Repeat("a", 64) + ".com", "", "", "longer than 63"},
		{strings.Repeat("abcdefghi.", 26) + "com", "", "", "longer than 253"},
		{"\xff.com", "", "", "not valid UTF-8"},
	}
	for _, tc := range tests {
		name, ascii, err := normalizeDomain(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || name != tc.name || ascii != tc.ascii {
			t.Errorf("%q: %q %q %v, want %q %q", tc.in, name, ascii, err, tc.name, tc.ascii)
		}
	}
}

func TestAddressSyntax(t *testing.T) {
	tests := []struct {
		addr string
		err  string
	}{
		{"mjl@example.org", ""},
		{"first.last+tag@example.org", ""},
		{"møx@example.org", ""},
		{`"with space"@example.org`, ""},
		{`"a\"b@c"@example.org`, ""},
		{"mjl", "has no '@'"},
		{"mjl@", "has no domain"},
		{"@example.org", "empty local part"},
		{".mjl@example.org", "empty part around a dot"},
		{"m..jl@example.org", "empty part around a dot"},
		{"mjl.@example.org", "empty part around a dot"},
		{"m jl@example.org", "contains ' '"},
		{`"unterminated@example.org`, "unterminated quoted"},
		{`"a"b"@example.org`, "unescaped"},
		{strings.Repeat("x", 65) + "@example.org", "longer than 64"},
	}
	for _, tc := range tests {
		_, _, err := splitAddress(tc.addr)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%q: error %v, want %q", tc.addr, err, tc.err)
		}
	}
}

func TestSelectorAndAccountSyntax(t *testing.T) {
	for _, tc := range []struct {
		sel string
		ok  bool
	}{{"moxd-ed", true}, {"2024.a", true}, {"A1", true}, {"", false}, {"a..b", false}, {"-a", false}, {"a_b", false}, {strings.Repeat("a", 64), false}} {
		if err := checkSelector(tc.sel); (err == nil) != tc.ok {
			t.Errorf("selector %q: %v", tc.sel, err)
		}
	}
	for _, tc := range []struct {
		name string
		ok   bool
	}{{"mox", true}, {"Mjl_2.x-y", true}, {"", false}, {".hidden", false}, {"-x", false}, {"a/b", false}, {"a b", false}, {strings.Repeat("a", 65), false}} {
		if err := checkAccountName(tc.name); (err == nil) != tc.ok {
			t.Errorf("account %q: %v", tc.name, err)
		}
	}
}
