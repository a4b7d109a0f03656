package smtpclient

import (
	"bufio"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func parseReplyString(s string) (Reply, error) {
	r, _, err := readReply(bufio.NewReader(strings.NewReader(s)))
	return r, err
}

func TestReadReply(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Reply
		err  bool
	}{
		{"single", "250 ok\r\n", Reply{Code: 250, Text: []string{"ok"}}, false},
		{"enhanced", "550 5.1.1 no such user\r\n", Reply{Code: 550, Enhanced: "5.1.1", Text: []string{"no such user"}}, false},
		{"enhanced only", "250 2.0.0\r\n", Reply{Code: 250, Enhanced: "2.0.0", Text: []string{""}}, false},
		{"bare code", "250\r\n", Reply{Code: 250, Text: []string{""}}, false},
		{"bare LF", "221 bye\n", Reply{Code: 221, Text: []string{"bye"}}, false},
		{"multi-line enhanced on every line", "452-4.5.3 too many\r\n452 4.5.3 recipients\r\n",
			Reply{Code: 452, Enhanced: "4.5.3", Text: []string{"too many", "recipients"}}, false},
		{"multi-line enhanced on first line only", "550-5.7.1 policy\r\n550 see https://example.org\r\n",
			Reply{Code: 550, Enhanced: "5.7.1", Text: []string{"policy", "see https://example.org"}}, false},
		{"class differs from code", "250 5.1.1 odd\r\n", Reply{Code: 250, Text: []string{"5.1.1 odd"}}, false},
		{"not an enhanced code", "250 2.0.0x ok\r\n", Reply{Code: 250, Text: []string{"2.0.0x ok"}}, false},
		{"subject too long", "550 5.1234.1 x\r\n", Reply{Code: 550, Text: []string{"5.1234.1 x"}}, false},
		{"334 base64", "334 PDEyMzQ+\r\n", Reply{Code: 334, Text: []string{"PDEyMzQ+"}}, false},
		{"empty continuation lines", "250-\r\n250 \r\n", Reply{Code: 250, Text: []string{"", ""}}, false},

		{"code changes", "250-first\r\n251 second\r\n", Reply{}, true},
		{"bad separator", "250_ok\r\n", Reply{}, true},
		{"two digits", "25 ok\r\n", Reply{}, true},
		{"first digit 1", "150 ok\r\n", Reply{}, true},
		{"first digit 6", "650 ok\r\n", Reply{}, true},
		{"second digit 6", "260 ok\r\n", Reply{}, true},
		{"letters", "abc ok\r\n", Reply{}, true},
		{"empty line", "\r\n", Reply{}, true},
		{"eof in line", "250 o", Reply{}, true},
		{"eof in reply", "250-more\r\n", Reply{}, true},
		{"CR inside", "250 a\rb\r\n", Reply{}, true},
		{"NUL inside", "250 a\x00b\r\n", Reply{}, true},
		{"line too long", "250 " + strings.Repeat("x", maxReplyLine) + "\r\n", Reply{}, true},
		{"too many lines", strings.Repeat("250-x\r\n", maxReplyLines) + "250 x\r\n", Reply{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseReplyString(tt.in)
			if tt.err {
				if err == nil {
					t.Fatalf("got %+v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("error %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestReadReplyLimits(t *testing.T) {
	// The longest accepted line and the most lines are accepted.
	long := "250 " + strings.Repeat("x", maxReplyLine-4) + "\r\n"
	if _, err := parseReplyString(long); err != nil {
		t.Fatalf("line of %d octets: %v", maxReplyLine, err)
	}
	many := strings.Repeat("250-x\r\n", maxReplyLines-1) + "250 x\r\n"
	r, err := parseReplyString(many)
	if err != nil || len(r.Text) != maxReplyLines {
		t.Fatalf("reply of %d lines: %v, %d lines", maxReplyLines, err, len(r.Text))
	}
	// A too long line is a protocol error, and the parser does not
	// consume unbounded input looking for its end.
	_, err = parseReplyString("250 " + strings.Repeat("x", 1<<20))
	if !errors.Is(err, errProtocol) {
		t.Fatalf("endless line: %v, want protocol error", err)
	}
}

func TestReplyString(t *testing.T) {
	r := Reply{Code: 550, Enhanced: "5.1.1", Text: []string{"user unknown", "", "try later"}}
	if got, want := r.String(), "550 5.1.1 user unknown; try later"; got != want {
		t.Fatalf("String: %q, want %q", got, want)
	}
	if got := (Reply{Code: 250}).String(); got != "250" {
		t.Fatalf("String of bare reply: %q", got)
	}
	if !r.Permanent() || (Reply{Code: 451}).Permanent() || (Reply{Code: 250}).Permanent() {
		t.Fatalf("Permanent wrong")
	}
}

func TestErrorPermanent(t *testing.T) {
	perm := &Error{Stage: StageRcpt, Reply: &Reply{Code: 550, Enhanced: "5.1.1", Text: []string{"no"}}}
	temp := &Error{Stage: StageMail, Reply: &Reply{Code: 451, Text: []string{"later"}}}
	netErr := &Error{Stage: StageData, Err: errors.New("connection reset")}
	if !perm.Permanent() || temp.Permanent() || netErr.Permanent() {
		t.Fatalf("Permanent: %v %v %v", perm.Permanent(), temp.Permanent(), netErr.Permanent())
	}
	if got := perm.Error(); got != "smtp rcpt: server replied 550 5.1.1 no" {
		t.Fatalf("Error: %q", got)
	}
	if !strings.Contains(netErr.Error(), "connection reset") || !errors.Is(netErr, netErr.Err) {
		t.Fatalf("Error/Unwrap of network error: %q", netErr.Error())
	}
}

func TestParseEHLO(t *testing.T) {
	r, err := parseReplyString(strings.Join([]string{
		"250-mx.example.org greets you",
		"250-PIPELINING",
		"250-8bitmime",
		"250-SIZE 35882577",
		"250-AUTH PLAIN scram-sha-256 CRAM-MD5",
		"250-AUTH=PLAIN LOGIN",
		"250-LIMITS RCPTMAX=50 MAILMAX=10 RCPTDOMAINMAX=5",
		"250-ENHANCEDSTATUSCODES",
		"250-CHUNKING",
		"250-BINARYMIME",
		"250-SMTPUTF8",
		"250-REQUIRETLS",
		"250-DSN",
		"250-STARTTLS",
		"250-X-UNKNOWN whatever",
		"250 ", // smtp-sink ends with an empty line
	}, "\r\n") + "\r\n")
	if err != nil {
		t.Fatal(err)
	}
	got := parseEHLO(r)
	want := Extensions{
		EHLO: true, Pipelining: true, EightBitMIME: true, SMTPUTF8: true, StartTLS: true,
		Chunking: true, RequireTLS: true, DSN: true, EnhancedStatusCodes: true, BinaryMIME: true,
		Size: 35882577, SizeOffered: true,
		Auth:    []string{"PLAIN", "SCRAM-SHA-256", "CRAM-MD5", "LOGIN"},
		RcptMax: 50, MailMax: 10,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}

	r, _ = parseReplyString("250-mx\r\n250-SIZE\r\n250 LIMITS RCPTMAX=x\r\n")
	got = parseEHLO(r)
	if !got.SizeOffered || got.Size != 0 || got.RcptMax != 0 || got.Pipelining {
		t.Fatalf("SIZE without value, bad LIMITS: %+v", got)
	}
}
