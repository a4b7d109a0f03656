package sevenbit

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func crlfs(s string) string {
	return strings.ReplaceAll(s, "\n", "\r\n")
}

func convert(t *testing.T, in string) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := Convert(&out, strings.NewReader(in), 10<<20); err != nil {
		t.Fatalf("Convert: %v", err)
	}
	check7bit(t, out.Bytes())
	return out.Bytes()
}

// check7bit asserts 7-bit output with CRLF line endings and lines of at
// most 998 octets.
func check7bit(t *testing.T, b []byte) {
	t.Helper()
	for i, c := range b {
		if c >= 0x80 {
			t.Fatalf("8-bit octet %#x at offset %d", c, i)
		}
	}
	n := bytes.Count(b, []byte("\n"))
	for i, l := range bytes.Split(b, []byte("\n")) {
		if i < n && !bytes.HasSuffix(l, []byte("\r")) {
			t.Errorf("line %d %q has no CRLF", i+1, l)
		}
		if len(bytes.TrimSuffix(l, []byte("\r"))) > 998 {
			t.Errorf("line %d is %d octets", i+1, len(l))
		}
	}
}

// leaves returns the content type and decoded body of every leaf part,
// read with net/mail and mime/multipart (which decodes quoted-printable).
func leaves(t *testing.T, r io.Reader) [][2]string {
	t.Helper()
	msg, err := mail.ReadMessage(r)
	if err != nil {
		t.Fatalf("ReadMessage: %v", err)
	}
	var out [][2]string
	var walk func(ctype, cte string, body io.Reader)
	walk = func(ctype, cte string, body io.Reader) {
		mt, params, _ := mime.ParseMediaType(ctype)
		if mt == "" {
			mt = "text/plain"
		}
		switch {
		case strings.HasPrefix(mt, "multipart/"):
			mr := multipart.NewReader(body, params["boundary"])
			for {
				p, err := mr.NextRawPart()
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					return // the latter: a missing close delimiter
				}
				if err != nil {
					t.Fatalf("NextRawPart: %v", err)
				}
				walk(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p)
			}
		case mt == "message/rfc822":
			inner, err := mail.ReadMessage(body)
			if err != nil {
				t.Fatalf("inner ReadMessage: %v", err)
			}
			walk(inner.Header.Get("Content-Type"), inner.Header.Get("Content-Transfer-Encoding"), inner.Body)
		default:
			if strings.EqualFold(cte, "quoted-printable") {
				body = quotedprintable.NewReader(body)
			}
			b, err := io.ReadAll(body)
			if err != nil && err != io.ErrUnexpectedEOF {
				t.Fatalf("read body: %v", err)
			}
			out = append(out, [2]string{mt, string(b)})
		}
	}
	walk(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
	return out
}

func TestSinglePart(t *testing.T) {
	body := "Grüße aus Köln!\r\nZeile mit Leerzeichen am Ende   \r\n\tTab = Gleichheitszeichen\r\n" +
		strings.Repeat("ä", 200) + "\r\nbare\rCR and tab at end\t\r\n"
	in := "From: a@example.org\r\nSubject: test\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body
	out := convert(t, in)
	msg, err := mail.ReadMessage(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if got := msg.Header.Get("Content-Transfer-Encoding"); got != "quoted-printable" {
		t.Errorf("Content-Transfer-Encoding %q", got)
	}
	if n := len(msg.Header["Content-Transfer-Encoding"]); n != 1 {
		t.Errorf("%d Content-Transfer-Encoding fields", n)
	}
	if !bytes.HasPrefix(out, []byte("From: a@example.org\r\nSubject: test\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n")) {
		t.Errorf("other header fields changed:\n%s", out)
	}
	dec, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	if string(dec) != body {
		t.Errorf("decoded body %q, want %q", dec, body)
	}
	for _, l := range strings.Split(string(out), "\r\n") {
		if len(l) > 76 {
			t.Errorf("quoted-printable line of %d characters: %q", len(l), l)
		}
	}
}

func TestNoMIME(t *testing.T) {
	// An 8-bit body without MIME fields gets MIME-Version and the encoding;
	// LF line endings become CRLF; a body without final line break keeps
	// its bytes (a soft line break ends the output).
	out := convert(t, "Subject: x\n\nnaïve\nend")
	want := "Subject: x\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nna=C3=AFve\r\nend=\r\n"
	if string(out) != want {
		t.Errorf("got %q, want %q", out, want)
	}
}

const mixed = `From: a@example.org
To: b@example.net
Subject: mixed
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

This is the preamble, with an 8-bit octet: é.
--outer
Content-Type: text/plain; charset=us-ascii

plain ASCII part
 stays as it is.
--outer
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Ünïcödé part
--outer
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64

AAECAwQFBgcICQ==
--outer
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

already =C3=A9ncoded
--inner
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: 8bit

<p>café</p>
--inner--
--outer
Content-Type: message/rfc822
Content-Transfer-Encoding: 8bit

From: c@example.com
Subject: inner
Content-Type: text/plain; charset=utf-8

inner bödy
--outer--
epilogue
`

func TestMultipart(t *testing.T) {
	in := crlfs(mixed)
	out := string(convert(t, in))

	want := [][2]string{
		{"text/plain", "plain ASCII part\r\n stays as it is."},
		{"text/plain", "Ünïcödé part"},
		{"application/octet-stream", "AAECAwQFBgcICQ=="},
		{"text/plain", "already éncoded"},
		{"text/html", "<p>café</p>"},
		{"text/plain", "inner bödy"},
	}
	got := leaves(t, strings.NewReader(out))
	orig := leaves(t, strings.NewReader(in))
	if len(got) != len(want) || len(orig) != len(want) {
		t.Fatalf("leaves %q, original %q, want %q", got, orig, want)
	}
	for i := range want {
		if got[i] != want[i] || orig[i] != want[i] {
			t.Errorf("leaf %d: converted %q, original %q, want %q", i, got[i], orig[i], want[i])
		}
	}

	// Parts without 8-bit octets are byte-identical.
	for _, s := range []string{
		"--outer\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nplain ASCII part\r\n stays as it is.\r\n--outer\r\n",
		"--outer\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAwQFBgcICQ==\r\n--outer\r\n",
		"--inner\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nalready =C3=A9ncoded\r\n--inner\r\n",
		"--outer--\r\nepilogue\r\n",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks unchanged %q", s)
		}
	}
	// The converted parts and the relabeled message/rfc822.
	for _, s := range []string{
		"This is the preamble, with an 8-bit octet: ??.\r\n--outer\r\n",
		"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=C3=9Cn=C3=AFc=C3=B6d=C3=A9 part\r\n--outer\r\n",
		"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 7bit\r\n\r\nFrom: c@example.com\r\n",
		"Content-Type: text/plain; charset=utf-8\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ninner b=C3=B6dy\r\n--outer--",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
}

func TestUnchanged(t *testing.T) {
	in := strings.ReplaceAll(crlfs(mixed), "é", "e")
	for _, r := range "ÜïöéüäÖ" {
		in = strings.ReplaceAll(in, string(r), "o")
	}
	if need, err := Needed(strings.NewReader(in)); err != nil || need {
		t.Fatalf("Needed = %v, %v for a 7-bit message", need, err)
	}
	if out := convert(t, in); string(out) != in {
		t.Errorf("7-bit message changed:\n%s", out)
	}
	if need, err := Needed(strings.NewReader(crlfs(mixed))); err != nil || !need {
		t.Errorf("Needed = %v, %v for an 8-bit message", need, err)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"8-bit top header", "Subject: Grüße\r\n\r\nbody\r\n", ErrHeader8Bit},
		{"8-bit continuation", "Subject: hi\r\n Grüße\r\n\r\nbody\r\n", ErrHeader8Bit},
		{"8-bit part header", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; name=\"ä.txt\"\r\n\r\nx\r\n--b--\r\n", ErrHeader8Bit},
		{"8-bit inner message header", "Content-Type: message/rfc822\r\n\r\nSubject: ä\r\n\r\nx\r\n", ErrHeader8Bit},
		{"binary part", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: binary\r\n\r\nx\r\n--b--\r\n", ErrBinary},
		{"binary message", "Content-Transfer-Encoding: BINARY\r\n\r\nx\r\n", ErrBinary},
		{"too large", "Subject: x\r\n\r\n" + strings.Repeat("y", 2000), ErrTooLarge},
		{"long header", "Subject: " + strings.Repeat("y", 1000) + "\r\n\r\nx\r\n", ErrLongHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Convert(io.Discard, strings.NewReader(tt.in), 2000)
			if !errors.Is(err, tt.want) {
				t.Errorf("Convert error %v, want %v", err, tt.want)
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	long := strings.Repeat("w", 1500)
	tests := []struct {
		name, in string
		want     [][2]string // leaves; nil: only check the output is 7-bit
	}{
		{"missing close delimiter", "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nhé\n", [][2]string{{"text/plain", "hé"}}}, // mime/multipart drops the final CRLF
		{"boundary in a non-multipart", "Content-Type: text/plain\n\n--b\nhé\n--b--\n", [][2]string{{"text/plain", "--b\r\nhé\r\n--b--\r\n"}}},
		{"part without header", "Content-Type: multipart/mixed; boundary=b\n\n--b\nhé wörld\n--b--\n", [][2]string{{"text/plain", "hé wörld"}}},
		{"inner close missing", "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: multipart/alternative; boundary=c\n\n--c\n\nfirst é\n--b\n\nsecond é\n--b--\n",
			[][2]string{{"text/plain", "first é"}, {"text/plain", "second é"}}},
		{"long 7-bit line", "Content-Type: text/plain\n\n" + long + "\n", [][2]string{{"text/plain", long + "\r\n"}}},
		{"8-bit in quoted-printable", "Content-Transfer-Encoding: quoted-printable\n\nr=C3=A9sum\xc3\xa9 =\nx=ZZ\n", [][2]string{{"text/plain", "résumé x=ZZ\r\n"}}},
		{"8-bit in base64", "Content-Transfer-Encoding: base64\n\naGVs\xffbG8=\n", nil},
		{"no boundary parameter", "Content-Type: multipart/mixed\n\nhé\n", nil},
		{"long preamble", "Content-Type: multipart/mixed; boundary=b\n\n" + long + "\n--b\n\nx\n--b--\n", [][2]string{{"text/plain", "x"}}},
		{"header without empty line", "Subject: x\n\tcontinued\nbödy", [][2]string{{"text/plain", "bödy"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := convert(t, tt.in)
			if tt.want == nil {
				return
			}
			got := leaves(t, bytes.NewReader(out))
			if len(got) != len(tt.want) {
				t.Fatalf("leaves %q, want %q\n%s", got, tt.want, out)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("leaf %d %q, want %q\n%s", i, got[i], tt.want[i], out)
				}
			}
		})
	}

	// Deep nesting is bounded; the innermost levels become a leaf.
	var in strings.Builder
	for i := 0; i < 3*MaxDepth; i++ {
		in.WriteString("Content-Type: multipart/mixed; boundary=b" + strings.Repeat("x", i) + "\r\n\r\n--b" + strings.Repeat("x", i) + "\r\n")
	}
	in.WriteString("\r\nbottom é\r\n")
	convert(t, in.String())
}

func TestQPEncode(t *testing.T) {
	for _, s := range []string{"", "a", "a\r\n", "=", " \r\n\t", strings.Repeat("é", 100), strings.Repeat("x ", 100) + "\r\n", "\r\r\n\n", strings.Repeat("=", 80)} {
		enc := qpEncode([]byte(s))
		dec, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(enc)))
		if err != nil || string(dec) != s {
			t.Errorf("qpEncode(%q) = %q decodes to %q (%v)", s, enc, dec, err)
		}
		if got := string(qpDecode(enc)); got != s {
			t.Errorf("qpDecode(qpEncode(%q)) = %q", s, got)
		}
		for _, l := range strings.Split(string(enc), "\r\n") {
			if len(l) > 76 || strings.HasSuffix(l, " ") || strings.HasSuffix(l, "\t") {
				t.Errorf("bad encoded line %q", l)
			}
		}
	}
}

// TestPythonInterop compares the decoded leaves Python's email package
// finds in the original and in the converted message.
func TestPythonInterop(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("python3 is needed for the interoperability test: %v", err)
		}
		t.Skipf("python3 not found: %v", err)
	}
	dir := t.TempDir()
	in := crlfs(mixed)
	inPath, outPath := filepath.Join(dir, "in.eml"), filepath.Join(dir, "out.eml")
	if err := os.WriteFile(inPath, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(outPath, convert(t, in), 0o600); err != nil {
		t.Fatal(err)
	}
	script := `
import email, email.policy, sys
with open(sys.argv[1], 'rb') as f:
    msg = email.message_from_binary_file(f, policy=email.policy.default)
for part in msg.walk():
    if part.is_multipart():
        continue
    body = part.get_payload(decode=True).replace(b'\r\n', b'\n')
    print(part.get_content_type(), body.decode('utf-8', 'replace').rstrip('\n').encode('unicode_escape').decode())
`
	run := func(path string) string {
		out, err := exec.Command(python, "-c", script, path).CombinedOutput()
		if err != nil {
			t.Fatalf("python3 %s: %v\n%s", path, err, out)
		}
		return string(out)
	}
	orig, conv := run(inPath), run(outPath)
	if orig != conv {
		t.Errorf("python3 decodes the original as\n%s\nand the converted message as\n%s", orig, conv)
	}
	if n := strings.Count(conv, "\n"); n != 6 || !strings.Contains(conv, `text/html <p>caf\xe9</p>`) {
		t.Errorf("python3 found unexpected leaves:\n%s", conv)
	}
}
