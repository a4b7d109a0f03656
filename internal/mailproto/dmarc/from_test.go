package dmarc

import (
	"errors"
	"strings"
	"testing"
)

func TestFromDomain(t *testing.T) {
	tests := []struct {
		name   string
		header string
		want   string
		err    error
	}{
		{"plain", "From: alice@example.com\r\n", "example.com", nil},
		{"name-addr", "To: x@y.org\r\nFrom: Alice <alice@Example.COM>\r\nSubject: hi\r\n\r\n", "example.com", nil},
		{"case-insensitive name, space before colon", "FROM : alice@example.com\r\n", "example.com", nil},
		{"folded", "From: \"Alice\r\n Doe\"\r\n\t<alice@example.com>\r\nTo: b@c.d\r\n", "example.com", nil},
		{"lf line ends", "Subject: x\nFrom: a@example.com\n\n", "example.com", nil},
		{"comments", "From: (boss) alice(x)@(y (nested) )example.com (Alice)\r\n", "example.com", nil},
		{"comment with parens and specials", "From: Alice (a \\) <evil@evil.example>, x) <alice@example.com>\r\n", "example.com", nil},
		{"quoted display name with comma and @", "From: \"Doe, John <john@bank.example>\" <john@example.com>\r\n", "example.com", nil},
		{"quoted local part", "From: \"john doe\"@example.com\r\n", "example.com", nil},
		{"quoted local part with @", "From: \"a@b\"@example.com\r\n", "example.com", nil},
		{"encoded word with specials", "From: =?utf-8?q?Doe,_John_<j@bank.example>?= <john@example.com>\r\n", "example.com", nil},
		{"encoded word base64", "From: =?UTF-8?B?SsO2cmc=?= <j@example.com>\r\n", "example.com", nil},
		{"utf-8 display name", "From: Jörg Müller <j@example.com>\r\n", "example.com", nil},
		{"unquoted @ in display name", "From: ceo@bank.example <attacker@evil.example>\r\n", "evil.example", nil},
		{"group with one address", "From: Team: alice@example.com;\r\n", "example.com", nil},
		{"group without final semicolon", "From: Team: Alice <alice@example.com>\r\n", "example.com", nil},
		{"route", "From: <@relay.example,@other.example:alice@example.com>\r\n", "example.com", nil},
		{"obs local part and domain", "From: alice . smith @ example . com\r\n", "example.com", nil},
		{"obs empty list elements", "From: , alice@example.com ,\r\n", "example.com", nil},
		{"idna", "From: a@ñandú.example\r\n", "xn--and-6ma2c.example", nil},
		{"idna upper case", "From: a@BÜCHER.example\r\n", "xn--bcher-kva.example", nil},
		{"a-label kept", "From: a@XN--BCHER-KVA.example\r\n", "xn--bcher-kva.example", nil},
		{"utf-8 local part", "From: jörg@example.com\r\n", "example.com", nil},
		{"body From ignored", "From: a@example.com\r\n\r\nFrom: b@other.example\r\n", "example.com", nil},
		{"X-From ignored", "X-From: a@other.example\r\nFrom: a@example.com\r\nFromX: b@c.d\r\n", "example.com", nil},
		{"no From", "To: a@example.com\r\n", "", ErrNoFrom},
		{"From only in body", "To: a@example.com\r\n\r\nFrom: a@example.com\r\n", "", ErrNoFrom},
		{"two From fields", "From: a@example.com\r\nFrom: b@example.com\r\n", "", ErrMultipleFrom},
		{"two addresses", "From: a@example.com, b@example.com\r\n", "", ErrFromSyntax},
		{"two addresses in group", "From: g: a@example.com, b@example.com;\r\n", "", ErrFromSyntax},
		{"unquoted comma in display name", "From: Doe, John <john@example.com>\r\n", "", ErrFromSyntax},
		{"empty group", "From: undisclosed-recipients:;\r\n", "", ErrFromSyntax},
		{"empty", "From:\r\n", "", ErrFromSyntax},
		{"no @", "From: alice\r\n", "", ErrFromSyntax},
		{"no domain", "From: alice@\r\n", "", ErrFromSyntax},
		{"trailing dot", "From: alice@example.com.\r\n", "", ErrFromSyntax},
		{"domain literal", "From: alice@[192.0.2.1]\r\n", "", ErrFromSyntax},
		{"unterminated quote", "From: \"alice <a@example.com>\r\n", "", ErrFromSyntax},
		{"unterminated comment", "From: (alice <a@example.com>\r\n", "", ErrFromSyntax},
		{"unclosed angle", "From: Alice <a@example.com\r\n", "", ErrFromSyntax},
		{"junk after address", "From: a@example.com b@example.com\r\n", "", ErrFromSyntax},
		{"control character", "From: a@exa\x01mple.com\r\n", "", ErrFromSyntax},
		{"invalid domain character", "From: a@exa!mple.com\r\n", "", ErrFromSyntax},
		{"label too long", "From: a@" + strings.Repeat("x", 64) + ".com\r\n", "", ErrFromSyntax},
		{"invalid idna", "From: a@\u00ad\u200d.example\r\n", "", ErrFromSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FromDomain([]byte(tt.header))
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("got %q, %v; want error %v", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestEncodedWordLen(t *testing.T) {
	for in, want := range map[string]int{
		"=?utf-8?q?abc?=":        15,
		"=?utf-8?Q?a,b<c>?= x":   18,
		"=?utf-8?x?abc?=":        0,
		"=?utf-8?q?a b?=":        0,
		"=?utf-8?q?abc":          0,
		"=??q?abc?=":             0,
		"=?a.b?q?x?=":            0,
		"=?us-ascii*en?b?QQ==?=": 22,
	} {
		if got := encodedWordLen(in); got != want {
			t.Errorf("encodedWordLen(%q) = %d, want %d", in, got, want)
		}
	}
}

// FuzzFromDomain checks that FromDomain never panics, that a domain it
// returns is lower-case ASCII of valid labels, and that the domain is
// stable: a plain From header with it gives it back.
func FuzzFromDomain(f *testing.F) {
	for _, s := range []string{
		"From: alice@example.com\r\n",
		"From: \"Doe, J\" (c (n)) <@r:j@EXAMPLE.com>\r\nTo: x\r\n\r\n",
		"From: =?utf-8?q?a,b?= <a@b.example>\n",
		"From: g: a@ñ.example;\r\n",
		"From: a@b, c@d\r\n", "From: (\r\n", "From: \"\r\n", "from:a@[1.2.3.4]",
		"From: x\r\n\tFrom: y\r\nFrom: z\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, header []byte) {
		d, err := FromDomain(header)
		if err != nil {
			return
		}
		if d == "" || d != strings.ToLower(d) {
			t.Fatalf("domain %q", d)
		}
		for i := 0; i < len(d); i++ {
			if d[i] >= 0x80 || d[i] <= ' ' {
				t.Fatalf("domain %q not ASCII", d)
			}
		}
		again, err := FromDomain([]byte("From: x@" + d + "\r\n"))
		if err != nil || again != d {
			t.Fatalf("domain %q reparsed as %q, %v", d, again, err)
		}
	})
}
