package message

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// flatPart is what a test checks of one part: its path ("" for the root,
// "1", "1.2" ...), its type, and the header and body cut from the message
// at the part's offsets.
type flatPart struct {
	path      string
	typ       string
	header    string
	body      string
	lines     int64
	truncated bool
}

// flatten lists the parts of p in tree order, cutting header and body out
// of msg by offset.
func flatten(t *testing.T, msg string, p *Part) []flatPart {
	t.Helper()
	var out []flatPart
	var walk func(p *Part, path string)
	walk = func(p *Part, path string) {
		if p.HeaderStart < 0 || p.HeaderStart > p.BodyStart || p.BodyStart > p.End || p.End > int64(len(msg)) {
			t.Fatalf("part %q: bad offsets %d %d %d for size %d", path, p.HeaderStart, p.BodyStart, p.End, len(msg))
		}
		out = append(out, flatPart{
			path:      path,
			typ:       p.MediaType + "/" + p.MediaSubtype,
			header:    msg[p.HeaderStart:p.BodyStart],
			body:      msg[p.BodyStart:p.End],
			lines:     p.BodyLines,
			truncated: p.Truncated,
		})
		for i, c := range p.Parts {
			cp := fmt.Sprint(i + 1)
			if path != "" {
				cp = path + "." + cp
			}
			walk(c, cp)
		}
	}
	walk(p, "")
	return out
}

func parseString(t *testing.T, msg string, lim Limits) *Part {
	t.Helper()
	p, err := Parse(strings.NewReader(msg), int64(len(msg)), lim)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return p
}

// crlf turns the LF line endings of a test message into CRLF.
func crlf(s string) string {
	return strings.ReplaceAll(s, "\n", "\r\n")
}

func TestParseStructure(t *testing.T) {
	mixed := `From: a@example.org
Content-Type: multipart/mixed; boundary="outer"

This is the preamble.
--outer
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain

plain text
--inner
Content-Type: text/html

<p>html</p>
--inner--
inner epilogue
--outer
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64

AAAA
--outer--
outer epilogue
`
	rfc822 := `Subject: outer
Content-Type: multipart/mixed; boundary=b

--b

see attached
--b
Content-Type: message/rfc822

Subject: inner
Content-Type: multipart/alternative; boundary=c

--c

inner text
--c--
--b--
`
	digest := `Content-Type: multipart/digest; boundary=d

--d

Subject: one

first
--d
Content-Type: text/plain

not a message
--d--
`
	missingFinal := `Content-Type: multipart/mixed; boundary=b

--b

part one
--b

part two
`
	boundaryLike := `Content-Type: multipart/mixed; boundary=b

--b

--bb is not a boundary
--b-- x is not a closing boundary
-- b neither
--b  
Content-Type: text/plain

padded boundary above
--b--  
`
	headerOnly := "Subject: no body\n"
	noHeader := "\nbody only\n"
	emptyPart := `Content-Type: multipart/mixed; boundary=b

--b
--b

x
--b--`

	tests := []struct {
		name string
		msg  string
		want []flatPart
	}{
		{"mixed with alternative", mixed, []flatPart{
			{"", "multipart/mixed", "From: a@example.org\nContent-Type: multipart/mixed; boundary=\"outer\"\n\n",
				mixed[strings.Index(mixed, "This is"):], 21, false},
			{"1", "multipart/alternative", "Content-Type: multipart/alternative; boundary=inner\n\n",
				"--inner\nContent-Type: text/plain\n\nplain text\n--inner\nContent-Type: text/html\n\n<p>html</p>\n--inner--\ninner epilogue", 10, false},
			{"1.1", "text/plain", "Content-Type: text/plain\n\n", "plain text", 1, false},
			{"1.2", "text/html", "Content-Type: text/html\n\n", "<p>html</p>", 1, false},
			{"2", "application/octet-stream", "Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n", "AAAA", 1, false},
		}},
		{"message/rfc822 attachment", rfc822, []flatPart{
			{"", "multipart/mixed", "Subject: outer\nContent-Type: multipart/mixed; boundary=b\n\n", rfc822[strings.Index(rfc822, "--b"):], 14, false},
			{"1", "text/plain", "\n", "see attached", 1, false},
			{"2", "message/rfc822", "Content-Type: message/rfc822\n\n", "Subject: inner\nContent-Type: multipart/alternative; boundary=c\n\n--c\n\ninner text\n--c--", 7, false},
			{"2.1", "multipart/alternative", "Subject: inner\nContent-Type: multipart/alternative; boundary=c\n\n", "--c\n\ninner text\n--c--", 4, false},
			{"2.1.1", "text/plain", "\n", "inner text", 1, false},
		}},
		{"digest default type", digest, []flatPart{
			{"", "multipart/digest", "Content-Type: multipart/digest; boundary=d\n\n", digest[strings.Index(digest, "--d"):], 10, false},
			{"1", "message/rfc822", "\n", "Subject: one\n\nfirst", 3, false},
			{"1.1", "text/plain", "Subject: one\n\n", "first", 1, false},
			{"2", "text/plain", "Content-Type: text/plain\n\n", "not a message", 1, false},
		}},
		{"missing final boundary", missingFinal, []flatPart{
			{"", "multipart/mixed", "Content-Type: multipart/mixed; boundary=b\n\n", missingFinal[strings.Index(missingFinal, "--b"):], 6, true},
			{"1", "text/plain", "\n", "part one", 1, false},
			{"2", "text/plain", "\n", "part two\n", 1, false},
		}},
		{"boundary-like lines and padding", boundaryLike, []flatPart{
			{"", "multipart/mixed", "Content-Type: multipart/mixed; boundary=b\n\n", boundaryLike[strings.Index(boundaryLike, "--b"):], 10, false},
			{"1", "text/plain", "\n", "--bb is not a boundary\n--b-- x is not a closing boundary\n-- b neither", 3, false},
			{"2", "text/plain", "Content-Type: text/plain\n\n", "padded boundary above", 1, false},
		}},
		{"header only", headerOnly, []flatPart{
			{"", "text/plain", headerOnly, "", 0, false},
		}},
		{"no header", noHeader, []flatPart{
			{"", "text/plain", "\n", "body only\n", 1, false},
		}},
		{"part without header or blank line", emptyPart, []flatPart{
			{"", "multipart/mixed", "Content-Type: multipart/mixed; boundary=b\n\n", "--b\n--b\n\nx\n--b--", 5, false},
			{"1", "text/plain", "", "", 0, true},
			{"2", "text/plain", "\n", "x", 1, false},
		}},
	}
	for _, tc := range tests {
		for _, ending := range []string{"LF", "CRLF"} {
			t.Run(tc.name+"/"+ending, func(t *testing.T) {
				msg := tc.msg
				conv := func(s string) string { return s }
				if ending == "CRLF" {
					conv = crlf
				}
				msg = conv(msg)
				got := flatten(t, msg, parseString(t, msg, DefaultLimits()))
				var want []flatPart
				for _, w := range tc.want {
					w.header, w.body = conv(w.header), conv(w.body)
					want = append(want, w)
				}
				if len(got) != len(want) {
					t.Fatalf("got %d parts, want %d: %+v", len(got), len(want), got)
				}
				for i := range got {
					if g := got[i]; g.lines != want[i].lines {
						g.lines = want[i].lines
						if g == want[i] {
							t.Errorf("part %q: %d lines, want %d", g.path, got[i].lines, want[i].lines)
							continue
						}
					}
					if got[i] != want[i] {
						t.Errorf("part %q differs\ngot:  %+v\nwant: %+v", want[i].path, got[i], want[i])
					}
				}
			})
		}
	}
}

func TestParseContentFields(t *testing.T) {
	msg := crlf(`Content-Type: Text/HTML; CHARSET="utf-8";
 title*0*=us-ascii'en'This%20is; title*1=" even more "; title*2*=%2A%2A%2Afun%2A%2A%2A;
 name*1=" world"; name*0=hello; format=flowed; format=fixed
Content-Transfer-Encoding: QUOTED-PRINTABLE (comment)
Content-ID: <part1@example.org>
Content-Description: a  description
Content-Disposition: Attachment; filename*=utf-8''%E2%82%AC.txt; size=10
Content-Language: en, de (German)
Content-Location: http://example.org/x
Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==

body
`)
	p := parseString(t, msg, DefaultLimits())
	want := &Part{
		HeaderStart: 0, BodyStart: int64(strings.Index(msg, "body")), End: int64(len(msg)), BodyLines: 1,
		MediaType: "text", MediaSubtype: "html",
		Params: []Param{
			{"charset", "utf-8"},
			{"title*", "us-ascii'en'This%20is%20even%20more%20%2A%2A%2Afun%2A%2A%2A"},
			{"name", "hello world"},
			{"format", "flowed"},
		},
		ID: "<part1@example.org>", Description: "a  description", Encoding: "quoted-printable",
		Disposition:       "attachment",
		DispositionParams: []Param{{"filename*", "utf-8''%E2%82%AC.txt"}, {"size", "10"}},
		Language:          []string{"en", "de"},
		Location:          "http://example.org/x",
		MD5:               "Q2hlY2sgSW50ZWdyaXR5IQ==",
		Envelope:          &Envelope{},
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("got  %+v\nwant %+v", p, want)
	}
}

func TestParseDefaults(t *testing.T) {
	tests := []struct {
		name, contentType string
		typ, sub          string
		params            []Param
	}{
		{"absent", "", "text", "plain", []Param{{"charset", "us-ascii"}}},
		{"no subtype", "Content-Type: text\n", "text", "plain", []Param{{"charset", "us-ascii"}}},
		{"garbage", "Content-Type: ;;\n", "text", "plain", []Param{{"charset", "us-ascii"}}},
		{"unterminated quote", "Content-Type: image/png; name=\"a\n", "image", "png", []Param{{"name", "a"}}},
		{"parameter without value", "Content-Type: text/plain; flowed; charset=x\n", "text", "plain", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := parseString(t, tc.contentType+"\nx", DefaultLimits())
			if p.MediaType != tc.typ || p.MediaSubtype != tc.sub || !reflect.DeepEqual(p.Params, tc.params) || p.Encoding != "7bit" {
				t.Errorf("got %s/%s %v %s, want %s/%s %v 7bit", p.MediaType, p.MediaSubtype, p.Params, p.Encoding, tc.typ, tc.sub, tc.params)
			}
		})
	}
}

func TestParseLimits(t *testing.T) {
	nested := "Content-Type: multipart/mixed; boundary=a\n\n--a\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n--b--\n--a--\n"
	t.Run("depth", func(t *testing.T) {
		p := parseString(t, nested, Limits{MaxDepth: 1, MaxParts: 100, MaxHeaderBytes: 1000})
		got := flatten(t, nested, p)
		if len(got) != 2 || got[1].body != "--b\n\nx\n--b--" || got[1].truncated || got[0].truncated {
			t.Errorf("got %+v, want root and one opaque, untruncated multipart", got)
		}
	})
	t.Run("parts", func(t *testing.T) {
		msg := "Content-Type: multipart/mixed; boundary=a\n\n--a\n\n1\n--a\n\n2\n--a\n\n3\n--a--\nepilogue\n"
		p := parseString(t, msg, Limits{MaxDepth: 10, MaxParts: 3, MaxHeaderBytes: 1000})
		got := flatten(t, msg, p)
		if len(got) != 3 || !got[0].truncated || got[0].body != msg[strings.Index(msg, "--a"):] {
			t.Errorf("got %+v, want root truncated with 2 children and full body", got)
		}
	})
	t.Run("header bytes", func(t *testing.T) {
		msg := "Subject: " + strings.Repeat("x", 100) + "\nContent-Type: text/html\n\nbody"
		p := parseString(t, msg, Limits{MaxDepth: 10, MaxParts: 10, MaxHeaderBytes: 50})
		if !p.Truncated || p.MediaSubtype != "plain" || msg[p.BodyStart:p.End] != "body" {
			t.Errorf("got truncated %v subtype %s body %q, want truncated, default type, body", p.Truncated, p.MediaSubtype, msg[p.BodyStart:p.End])
		}
	})
	t.Run("boundary after long header", func(t *testing.T) {
		msg := "Content-Type: multipart/mixed; boundary=a\n\n--a\nX: " + strings.Repeat("y", 200) + "\n--a\n\nz\n--a--\n"
		p := parseString(t, msg, Limits{MaxDepth: 10, MaxParts: 10, MaxHeaderBytes: 60})
		got := flatten(t, msg, p)
		if len(got) != 3 || !got[1].truncated || got[2].body != "z" {
			t.Errorf("got %+v, want a truncated header-only part then part z", got)
		}
	})
}

// TestParseLongLines checks offsets when lines are longer than the read
// buffer.
func TestParseLongLines(t *testing.T) {
	long := strings.Repeat("a", 200000)
	msg := crlf("Content-Type: multipart/mixed; boundary=b\nX-Long: "+long+"\n\n--b\n\n"+long+"\n"+long+"\n--b--\n") + "\r"
	got := flatten(t, msg, parseString(t, msg, DefaultLimits()))
	if len(got) != 2 || got[1].body != long+"\r\n"+long || got[1].lines != 2 || !strings.HasSuffix(got[0].body, "--b--\r\n\r") {
		t.Errorf("got %d parts, part 1 lines %d", len(got), got[len(got)-1].lines)
	}
}

func TestEnvelope(t *testing.T) {
	msg := crlf(`Date: Mon, 7 Feb 1994 21:52:25
  -0800 (PST)
From: "Fred  Foobar" <foobar@Blurdybloop.example>, =?utf-8?q?J=C3=B6rg?= <joerg@example.org>
To: undisclosed-recipients:;, Team: alice@example.org, Bob <bob@example.org>;, local
Cc: <@route.example:carol@example.net>, "odd" <@example.net>
Subject: afternoon meeting
Message-ID: <B27397-0100000@Blurdybloop.example>
In-Reply-To: <x@y>

`)
	p := parseString(t, msg, DefaultLimits())
	from := []Address{{"Fred  Foobar", "foobar", "Blurdybloop.example"}, {"=?utf-8?q?J=C3=B6rg?=", "joerg", "example.org"}}
	want := &Envelope{
		Date:    "Mon, 7 Feb 1994 21:52:25  -0800 (PST)",
		Subject: "afternoon meeting",
		From:    from, Sender: from, ReplyTo: from,
		To: []Address{
			{"", "undisclosed-recipients", ""}, {},
			{"", "Team", ""}, {"", "alice", "example.org"}, {"Bob", "bob", "example.org"}, {},
			{"", "local", MissingHost},
		},
		Cc:        []Address{{"", "carol", "example.net"}, {"odd", MissingMailbox, "example.net"}},
		MessageID: "<B27397-0100000@Blurdybloop.example>",
		InReplyTo: "<x@y>",
	}
	if !reflect.DeepEqual(p.Envelope, want) {
		t.Errorf("got  %+v\nwant %+v", p.Envelope, want)
	}

	// Missing fields stay empty, Sender and Reply-To are kept when given.
	msg = "From: a@x\nSender: s@x\nReply-To: r@x\n\n"
	p = parseString(t, msg, DefaultLimits())
	want = &Envelope{
		From:    []Address{{"", "a", "x"}},
		Sender:  []Address{{"", "s", "x"}},
		ReplyTo: []Address{{"", "r", "x"}},
	}
	if !reflect.DeepEqual(p.Envelope, want) {
		t.Errorf("got  %+v\nwant %+v", p.Envelope, want)
	}
}

func TestEmbeddedEnvelope(t *testing.T) {
	tests := []struct {
		name, msg        string
		path             []int // indexes from the root to the message/rfc822 part
		partSubject      string
		embeddedSubjects string
	}{
		{"root is message/rfc822", "Subject: outer\nContent-Type: message/rfc822\n\nSubject: inner\nFrom: i@x\n\nhi\n", nil, "outer", "inner"},
		{"attachment", "Subject: outer\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n\nSubject: inner\nFrom: i@x\n\nhi\n--b--\n", []int{0}, "inner", "inner"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := parseString(t, tc.msg, DefaultLimits())
			if p.Envelope == nil || p.Envelope.Subject != "outer" {
				t.Fatalf("root envelope %+v, want subject outer", p.Envelope)
			}
			for _, i := range tc.path {
				p = p.Parts[i]
			}
			if len(p.Parts) != 1 || p.Envelope == nil || p.Parts[0].Envelope == nil {
				t.Fatalf("message part %+v, want one child and envelopes", p)
			}
			if p.Envelope.Subject != tc.partSubject || p.Parts[0].Envelope.Subject != tc.embeddedSubjects || len(p.Parts[0].Envelope.From) != 1 {
				t.Errorf("part envelope %+v, embedded %+v", p.Envelope, p.Parts[0].Envelope)
			}
		})
	}
}
