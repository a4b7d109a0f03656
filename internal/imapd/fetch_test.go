package imapd

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"moxd/internal/ipc"
	"moxd/internal/storage/storeclient"
)

// The test messages are assembled here from their parts, so the sizes and
// line counts BODYSTRUCTURE must report are known without a MIME parser.

const (
	fAltText = "Hello,\r\nthe plain text =E2=82=AC 5, a soft=\r\n break.\r\ntrailing space   \r\n"
	// fAltText decoded (RFC 2045 §6.7: soft break and trailing white
	// space removed).
	fAltTextDecoded = "Hello,\r\nthe plain text \u20ac 5, a soft break.\r\ntrailing space\r\n"
	fAltHTML        = "<p>Hello,</p>\r\n<p>the HTML.</p>" // no line break at the end
	fInnerHeader    = "From: Carol <carol@example.com>\r\nTo: alice@example.org\r\nSubject: inner\r\nDate: Tue, 2 Jan 2024 09:00:00 +0100\r\nMessage-ID: <inner@example.com>\r\n"
	fInnerBody      = "Inner body,\r\nsecond line.\r\n"
	fInnerMsg       = fInnerHeader + "\r\n" + fInnerBody
	fAttach         = "%PDF-1.4\n\x00\x01\x02 binary \xff\xfe and more bytes to need a second base64 line, and a few more\n"
)

var (
	fAltPart1   = "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + fAltText
	fAltPart2   = "Content-Type: text/html; charset=utf-8\r\n\r\n" + fAltHTML
	fAltBody    = mimeBody("alt", "", fAltPart1, fAltPart2)
	fPart1      = "Content-Type: multipart/alternative; boundary=alt\r\n\r\n" + fAltBody
	fAttachB64  = wrap76(base64.StdEncoding.EncodeToString([]byte(fAttach)))
	fPart2MIME  = "Content-Type: application/pdf; name=\"report.pdf\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"report.pdf\"; size=1234\r\nContent-ID: <att1@example.org>\r\nContent-Description: The report\r\nContent-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\nContent-Language: en, de\r\nContent-Location: http://example.org/report.pdf\r\n\r\n"
	fPart3MIME  = "Content-Type: message/rfc822\r\n\r\n"
	fMixedHdr   = "From: \"Alice Example\" <alice@example.org>\r\nTo: Bob <bob@example.net>\r\nSubject: The report\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <outer@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n"
	fMixedBody  = mimeBody("outer", "This is a MIME message.\r\n", fPart1, fPart2MIME+fAttachB64, fPart3MIME+fInnerMsg) + "epilogue\r\n"
	fMixed      = fMixedHdr + fMixedBody
	fGroupsHdr  = "From: =?iso-8859-1?q?J=F6rg?= <joerg@example.org>\r\nSender: secretary@example.org\r\nReply-To: replies@example.org\r\nTo: A Group: alice@example.org, \"Bob B.\" <bob@example.org>;, Undisclosed recipients:;\r\nCc: \"Quote \\\"me\\\"\" <q@example.org>\r\nSubject: =?utf-8?b?w6lsw6h2ZQ==?= report\r\nDate: Mon, 1 Jan 2024 11:00:00 +0000\r\nMessage-ID: <groups@example.org>\r\nIn-Reply-To: <outer@example.org>\r\n\r\n"
	fGroupsBody = "Plain body.\r\nTwo lines, no break at the end"
	fGroups     = fGroupsHdr + fGroupsBody
	fUTF8Inner  = "From: Zo\u00eb <zoe@example.org>\r\nSubject: \u00dcn\u00efc\u00f6d\u00e9\r\n\r\nbody\r\n"
	fUTF8Text   = "Sch\u00f6ne Gr\u00fc\u00dfe\r\n"
	fUTF8       = "From: \"J\u00f6rg M\u00fcller\" <joerg@example.org>\r\nTo: alice@example.org\r\nSubject: Gr\u00fc\u00dfe aus K\u00f6ln\r\nMessage-ID: <utf8@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=g\r\n\r\n" +
		mimeBody("g", "", "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"+fUTF8Text, "Content-Type: message/global\r\n\r\n"+fUTF8Inner)
	fUU = "From: x@example.org\r\nSubject: uu\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 f\r\n#86)C\r\n`\r\nend\r\n"
)

// mimeBody returns a multipart body: preamble, the parts (header, empty
// line, body) and the closing boundary. A part's body is then exactly
// what was given: the line break before a boundary belongs to the
// boundary (RFC 2046 §5.1.1).
func mimeBody(boundary, preamble string, parts ...string) string {
	s := preamble + "--" + boundary + "\r\n" + strings.Join(parts, "\r\n--"+boundary+"\r\n")
	return s + "\r\n--" + boundary + "--\r\n"
}

func wrap76(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	return b.String() + s + "\r\n"
}

// lines counts lines as BODYSTRUCTURE does: a last line without line
// break counts.
func lines(s string) int {
	n := strings.Count(s, "\n")
	if s != "" && !strings.HasSuffix(s, "\n") {
		n++
	}
	return n
}

// fetchEnv delivers the test messages (UIDs 1-4) and returns a client with
// INBOX selected.
func fetchEnv(t *testing.T) (*env, *client) {
	t.Helper()
	e := newEnv(t)
	for _, m := range []string{fMixed, fGroups, fUTF8, fUU} {
		e.st.Deliver(t, "mjl@example.org", m)
	}
	c, _ := e.dial(t)
	c.login()
	c.ok("SELECT INBOX")
	return e, c
}

// fetchOne runs a FETCH and returns the untagged data, failing the test
// unless the command succeeded.
func (c *client) fetchOne(cmd string) string {
	c.t.Helper()
	out, res := c.raw(cmd)
	if !strings.HasPrefix(res, "OK") {
		c.t.Fatalf("%s: %s\n%s", cmd, res, out)
	}
	return out
}

func lit(s string) string { return "{" + strconv.Itoa(len(s)) + "}\r\n" + s }

var (
	fInnerEnvelope = `("Tue, 2 Jan 2024 09:00:00 +0100" "inner" (("Carol" NIL "carol" "example.com")) (("Carol" NIL "carol" "example.com")) (("Carol" NIL "carol" "example.com")) ((NIL NIL "alice" "example.org")) NIL NIL NIL "<inner@example.com>")`
	fMixedEnvelope = `("Mon, 1 Jan 2024 10:00:00 +0000" "The report" (("Alice Example" NIL "alice" "example.org")) (("Alice Example" NIL "alice" "example.org")) (("Alice Example" NIL "alice" "example.org")) (("Bob" NIL "bob" "example.net")) NIL NIL NIL "<outer@example.org>")`
)

// mixedStructure is the expected BODYSTRUCTURE (extended) or BODY of
// fMixed.
func mixedStructure(extended bool) string {
	ext := func(s string) string {
		if extended {
			return " " + s
		}
		return ""
	}
	none := ext("NIL NIL NIL NIL")
	return fmt.Sprintf(`(((%s)(%s) "alternative"%s)(%s)(%s) "mixed"%s)`,
		fmt.Sprintf(`"text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" %d %d`, len(fAltText), lines(fAltText))+none,
		fmt.Sprintf(`"text" "html" ("charset" "utf-8") NIL NIL "7bit" %d %d`, len(fAltHTML), lines(fAltHTML))+none,
		ext(`("boundary" "alt") NIL NIL NIL`),
		fmt.Sprintf(`"application" "pdf" ("name" "report.pdf") "<att1@example.org>" "The report" "base64" %d`, len(fAttachB64))+
			ext(`"Q2hlY2sgSW50ZWdyaXR5IQ==" ("attachment" ("filename" "report.pdf" "size" "1234")) ("en" "de") "http://example.org/report.pdf"`),
		fmt.Sprintf(`"message" "rfc822" NIL NIL NIL "7bit" %d %s ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" %d %d%s) %d`,
			len(fInnerMsg), fInnerEnvelope, len(fInnerBody), lines(fInnerBody), none, lines(fInnerMsg))+none,
		ext(`("boundary" "outer") NIL NIL NIL`))
}

func TestFetchStructure(t *testing.T) {
	_, c := fetchEnv(t)
	if out := c.fetchOne("FETCH 1 BODYSTRUCTURE"); out != "* 1 FETCH (BODYSTRUCTURE "+mixedStructure(true)+")\r\n" {
		t.Errorf("BODYSTRUCTURE:\n%q\nwant\n%q", out, mixedStructure(true))
	}
	if out := c.fetchOne("FETCH 1 BODY"); out != "* 1 FETCH (BODY "+mixedStructure(false)+")\r\n" {
		t.Errorf("BODY:\n%q\nwant\n%q", out, mixedStructure(false))
	}
	if out := c.fetchOne("FETCH 1 ENVELOPE"); out != "* 1 FETCH (ENVELOPE "+fMixedEnvelope+")\r\n" {
		t.Errorf("ENVELOPE:\n%q\nwant\n%q", out, fMixedEnvelope)
	}

	// Groups (RFC 9051 §7.5.2: start and end markers), encoded words left
	// encoded, Sender and Reply-To as given, no Bcc.
	env := `("Mon, 1 Jan 2024 11:00:00 +0000" "=?utf-8?b?w6lsw6h2ZQ==?= report" (("=?iso-8859-1?q?J=F6rg?=" NIL "joerg" "example.org")) ((NIL NIL "secretary" "example.org")) ((NIL NIL "replies" "example.org")) ` +
		`((NIL NIL "A Group" NIL)(NIL NIL "alice" "example.org")("Bob B." NIL "bob" "example.org")(NIL NIL NIL NIL)(NIL NIL "Undisclosed recipients" NIL)(NIL NIL NIL NIL)) ` +
		`(("Quote \"me\"" NIL "q" "example.org")) NIL "<outer@example.org>" "<groups@example.org>")`
	single := fmt.Sprintf(`("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" %d %d`, len(fGroupsBody), lines(fGroupsBody))
	out := c.fetchOne("UID FETCH 2 (ENVELOPE BODYSTRUCTURE BODY)")
	if want := "* 2 FETCH (UID 2 ENVELOPE " + env + " BODYSTRUCTURE " + single + " NIL NIL NIL NIL) BODY " + single + "))\r\n"; out != want {
		t.Errorf("single part:\n%q\nwant\n%q", out, want)
	}

	// Macros (RFC 9051 §6.4.5): ALL has ENVELOPE, FULL BODY too.
	out = c.fetchOne("FETCH 2 FULL")
	m := regexp.MustCompile(`^\* 2 FETCH \(FLAGS \(\) INTERNALDATE "[^"]+" RFC822.SIZE (\d+) ENVELOPE (.*) BODY (.*)\)\r\n$`).FindStringSubmatch(out)
	if m == nil || m[1] != strconv.Itoa(len(fGroups)) || m[2] != env || m[3] != single+")" {
		t.Errorf("FULL: %q", out)
	}
	if out := c.fetchOne("FETCH 1 ALL"); !strings.HasSuffix(out, " ENVELOPE "+fMixedEnvelope+")\r\n") || !strings.HasPrefix(out, "* 1 FETCH (FLAGS () INTERNALDATE ") {
		t.Errorf("ALL: %q", out)
	}
	if u := c.ok("FETCH 1:2 FAST"); len(u) != 2 || strings.Contains(u[0], "ENVELOPE") {
		t.Errorf("FAST: %q", u)
	}
	// None of them set \Seen.
	if u := c.ok("FETCH 1:2 FLAGS"); strings.Join(u, "\n") != "* 1 FETCH (FLAGS ())\n* 2 FETCH (FLAGS ())" {
		t.Errorf("flags after structure: %q", u)
	}
}

// TestFetchUTF8: 8-bit header text is a literal unless UTF8=ACCEPT is
// enabled (RFC 6855 §3), and message/global is followed like
// message/rfc822.
func TestFetchUTF8(t *testing.T) {
	e, c := fetchEnv(t)
	inner := `("message" "global" NIL NIL NIL "7bit" %d (NIL %s ((%s NIL "zoe" "example.org")) ((%s NIL "zoe" "example.org")) ((%s NIL "zoe" "example.org")) NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 1 NIL NIL NIL NIL) %d NIL NIL NIL NIL)`
	want := func(q func(string) string) string {
		zoe := q("Zo\u00eb")
		return fmt.Sprintf(`* 3 FETCH (ENVELOPE (NIL %s ((%s NIL "joerg" "example.org")) ((%s NIL "joerg" "example.org")) ((%s NIL "joerg" "example.org")) ((NIL NIL "alice" "example.org")) NIL NIL NIL "<utf8@example.org>") BODYSTRUCTURE (("text" "plain" ("charset" "utf-8") NIL NIL "8bit" %d %d NIL NIL NIL NIL)`+inner+` "mixed" ("boundary" "g") NIL NIL NIL))`+"\r\n",
			q("Gr\u00fc\u00dfe aus K\u00f6ln"), q("J\u00f6rg M\u00fcller"), q("J\u00f6rg M\u00fcller"), q("J\u00f6rg M\u00fcller"),
			len(fUTF8Text), lines(fUTF8Text),
			len(fUTF8Inner), q("\u00dcn\u00efc\u00f6d\u00e9"), zoe, zoe, zoe, lines(fUTF8Inner))
	}
	if out, wantLit := c.fetchOne("FETCH 3 (ENVELOPE BODYSTRUCTURE)"), want(lit); out != wantLit {
		t.Errorf("without UTF8=ACCEPT:\n%q\nwant\n%q", out, wantLit)
	}

	c2, _ := e.dial(t)
	c2.login()
	c2.ok("ENABLE UTF8=ACCEPT")
	c2.ok("SELECT INBOX")
	quoted := func(s string) string { return `"` + s + `"` }
	if out, wantQ := c2.fetchOne("FETCH 3 (ENVELOPE BODYSTRUCTURE)"), want(quoted); out != wantQ {
		t.Errorf("with UTF8=ACCEPT:\n%q\nwant\n%q", out, wantQ)
	}
	// The embedded message/global's header and body.
	if out := c2.fetchOne("FETCH 3 (BODY.PEEK[2.HEADER.FIELDS (Subject)] BODY.PEEK[2.1])"); out != "* 3 FETCH (BODY[2.HEADER.FIELDS (SUBJECT)] "+lit("Subject: \u00dcn\u00efc\u00f6d\u00e9\r\n\r\n")+" BODY[2.1] {6}\r\nbody\r\n)\r\n" {
		t.Errorf("message/global sections: %q", out)
	}
}

func TestFetchSections(t *testing.T) {
	_, c := fetchEnv(t)
	check := func(cmd, want string) {
		t.Helper()
		if out := c.fetchOne(cmd); out != want+")\r\n" {
			t.Errorf("%s:\n%q\nwant\n%q", cmd, out, want+")\r\n")
		}
	}
	check("FETCH 1 BODY.PEEK[1]", "* 1 FETCH (BODY[1] "+lit(fAltBody))
	check("FETCH 1 (BODY.PEEK[1.1] BODY.PEEK[1.2])", "* 1 FETCH (BODY[1.1] "+lit(fAltText)+" BODY[1.2] "+lit(fAltHTML))
	check("FETCH 1 BODY.PEEK[1.1.MIME]", "* 1 FETCH (BODY[1.1.MIME] "+lit("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"))
	check("FETCH 1 BODY.PEEK[2]", "* 1 FETCH (BODY[2] "+lit(fAttachB64))
	check("FETCH 1 BODY.PEEK[2.MIME]", "* 1 FETCH (BODY[2.MIME] "+lit(fPart2MIME))
	// The message/rfc822 part: its body is the embedded message, whose
	// header, text and part 1 (not multipart) follow.
	check("FETCH 1 BODY.PEEK[3]", "* 1 FETCH (BODY[3] "+lit(fInnerMsg))
	check("FETCH 1 BODY.PEEK[3.MIME]", "* 1 FETCH (BODY[3.MIME] "+lit(fPart3MIME))
	check("FETCH 1 BODY.PEEK[3.HEADER]", "* 1 FETCH (BODY[3.HEADER] "+lit(fInnerHeader+"\r\n"))
	check("FETCH 1 BODY.PEEK[3.TEXT]", "* 1 FETCH (BODY[3.TEXT] "+lit(fInnerBody))
	check("FETCH 1 BODY.PEEK[3.1]", "* 1 FETCH (BODY[3.1] "+lit(fInnerBody))
	check("FETCH 1 BODY.PEEK[3.1.MIME]", "* 1 FETCH (BODY[3.1.MIME] "+lit(fInnerHeader+"\r\n"))
	// Field order is the header's; names match without case; the empty
	// line is included; the response names the fields in upper case.
	check("FETCH 1 BODY.PEEK[3.HEADER.FIELDS (subject FROM x-none)]", "* 1 FETCH (BODY[3.HEADER.FIELDS (SUBJECT FROM X-NONE)] "+lit("From: Carol <carol@example.com>\r\nSubject: inner\r\n\r\n"))
	check("FETCH 1 BODY.PEEK[HEADER.FIELDS.NOT (Content-Type MIME-Version From To Date)]", "* 1 FETCH (BODY[HEADER.FIELDS.NOT (CONTENT-TYPE MIME-VERSION FROM TO DATE)] "+lit("Subject: The report\r\nMessage-ID: <outer@example.org>\r\n\r\n"))
	check("FETCH 1 BODY.PEEK[HEADER.FIELDS (X-None)]", "* 1 FETCH (BODY[HEADER.FIELDS (X-NONE)] {2}\r\n\r\n")
	check("FETCH 1 BODY.PEEK[HEADER]", "* 1 FETCH (BODY[HEADER] "+lit(fMixedHdr))
	check("FETCH 1 BODY.PEEK[TEXT]", "* 1 FETCH (BODY[TEXT] "+lit(fMixedBody))
	check("FETCH 1 RFC822.HEADER", "* 1 FETCH (RFC822.HEADER "+lit(fMixedHdr))

	// Sections that do not exist: the empty string.
	check("FETCH 1 (BODY.PEEK[4] BODY.PEEK[1.3] BODY.PEEK[2.1] BODY.PEEK[1.HEADER] BODY.PEEK[2.TEXT] BODY.PEEK[4.MIME] BINARY.PEEK[9] BINARY.SIZE[9])",
		`* 1 FETCH (BODY[4] "" BODY[1.3] "" BODY[2.1] "" BODY[1.HEADER] "" BODY[2.TEXT] "" BODY[4.MIME] "" BINARY[9] "" BINARY.SIZE[9] 0`)

	// Partials: of the section, the origin in the response.
	check("FETCH 1 BODY.PEEK[1.1]<7.9>", "* 1 FETCH (BODY[1.1]<7> "+lit(fAltText[7:16]))
	check("FETCH 1 BODY.PEEK[3.TEXT]<0.5>", "* 1 FETCH (BODY[3.TEXT]<0> "+lit(fInnerBody[:5]))
	check("FETCH 1 BODY.PEEK[3.HEADER.FIELDS (Subject)]<2.100>", "* 1 FETCH (BODY[3.HEADER.FIELDS (SUBJECT)]<2> "+lit("bject: inner\r\n\r\n"))
	check("FETCH 1 BODY.PEEK[1.2]<1000.10>", "* 1 FETCH (BODY[1.2]<1000> {0}\r\n")

	// A message that is not multipart: part 1 is its body, 1.MIME its
	// header.
	check("FETCH 2 (BODY.PEEK[1] BODY.PEEK[1.MIME] BODY.PEEK[2])", "* 2 FETCH (BODY[1] "+lit(fGroupsBody)+" BODY[1.MIME] "+lit(fGroupsHdr)+` BODY[2] ""`)
	check("FETCH 2 BODY.PEEK[HEADER.FIELDS (Reply-To SENDER)]", "* 2 FETCH (BODY[HEADER.FIELDS (REPLY-TO SENDER)] "+lit("Sender: secretary@example.org\r\nReply-To: replies@example.org\r\n\r\n"))
	if u := c.ok("FETCH 1:2 FLAGS"); strings.Join(u, "\n") != "* 1 FETCH (FLAGS ())\n* 2 FETCH (FLAGS ())" {
		t.Errorf("PEEK set flags: %q", u)
	}
	// BODY[...] sets \Seen.
	check("FETCH 1 BODY[3.TEXT]<0.5>", "* 1 FETCH (BODY[3.TEXT]<0> "+lit(fInnerBody[:5])+` FLAGS (\Seen)`)
}

func TestFetchBinary(t *testing.T) {
	_, c := fetchEnv(t)
	check := func(cmd, want string) {
		t.Helper()
		if out := c.fetchOne(cmd); out != want+")\r\n" {
			t.Errorf("%s:\n%q\nwant\n%q", cmd, out, want+")\r\n")
		}
	}
	if u := c.ok("CAPABILITY"); !strings.Contains(u[0], " BINARY") {
		t.Errorf("CAPABILITY without BINARY: %q", u)
	}
	// Quoted-printable decoded; no NUL, so a plain literal.
	check("FETCH 1 BINARY.PEEK[1.1]", "* 1 FETCH (BINARY[1.1] "+lit(fAltTextDecoded))
	// Base64 with NUL: literal8 (RFC 3516 §4.3).
	check("FETCH 1 BINARY.PEEK[2]", "* 1 FETCH (BINARY[2] ~"+lit(fAttach))
	check("FETCH 1 BINARY.PEEK[2]<9.4>", "* 1 FETCH (BINARY[2]<9> ~"+lit(fAttach[9:13]))
	check("FETCH 1 BINARY.PEEK[1.1]<6.8>", "* 1 FETCH (BINARY[1.1]<6> "+lit(fAltTextDecoded[6:14]))
	// Identity encodings pass through.
	check("FETCH 1 (BINARY.PEEK[1.2] BINARY.PEEK[3.1])", "* 1 FETCH (BINARY[1.2] "+lit(fAltHTML)+" BINARY[3.1] "+lit(fInnerBody))
	check("FETCH 1 (BINARY.SIZE[1.1] BINARY.SIZE[1.2] BINARY.SIZE[2] BINARY.SIZE[3.1])",
		fmt.Sprintf("* 1 FETCH (BINARY.SIZE[1.1] %d BINARY.SIZE[1.2] %d BINARY.SIZE[2] %d BINARY.SIZE[3.1] %d", len(fAltTextDecoded), len(fAltHTML), len(fAttach), len(fInnerBody)))
	// BINARY[] is the message as stored.
	check("FETCH 2 BINARY.PEEK[]", "* 2 FETCH (BINARY[] "+lit(fGroups))
	check("FETCH 2 (BINARY.PEEK[1] BINARY.SIZE[1])", "* 2 FETCH (BINARY[1] "+lit(fGroupsBody)+fmt.Sprintf(" BINARY.SIZE[1] %d", len(fGroupsBody)))

	// Not for multipart or message parts (RFC 9051 §6.4.5); the BAD comes
	// before any response for the message.
	for _, s := range []string{"FETCH 1 BINARY.PEEK[1]", "FETCH 1 BINARY.PEEK[3]", "FETCH 1 BINARY.SIZE[3]", "FETCH 3 (UID BINARY.PEEK[2])"} {
		if u := c.expect(s, "BAD"); len(u) != 0 {
			t.Errorf("%s: %q", s, u)
		}
	}
	// An encoding moxd cannot remove: NO [UNKNOWN-CTE] (RFC 3516 §4.3),
	// while BODY still has it.
	c.expect("FETCH 4 BINARY.PEEK[1]", "NO [UNKNOWN-CTE]")
	c.expect("FETCH 4 BINARY.SIZE[1]", "NO [UNKNOWN-CTE]")
	if out := c.fetchOne("FETCH 4 BODY.PEEK[1]"); !strings.HasSuffix(out, "begin 644 f\r\n#86)C\r\n`\r\nend\r\n)\r\n") {
		t.Errorf("BODY of x-uuencode part: %q", out)
	}

	// \Seen: BINARY sets it, BINARY.PEEK and BINARY.SIZE do not.
	if u := c.ok("FETCH 1:2 FLAGS"); strings.Join(u, "\n") != "* 1 FETCH (FLAGS ())\n* 2 FETCH (FLAGS ())" {
		t.Errorf("flags after PEEK: %q", u)
	}
	check("FETCH 2 BINARY[1]<0.5>", "* 2 FETCH (BINARY[1]<0> "+lit(fGroupsBody[:5])+` FLAGS (\Seen)`)
}

// TestFetchPrefix: the header lines store adds at delivery are part of the
// top-level header, and every part's offsets move by their length.
func TestFetchPrefix(t *testing.T) {
	e := newEnv(t)
	prefix := "Received: from mail.example.net by mail.example.org; Mon, 1 Jan 2024 10:00:01 +0000\r\n"
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	d := storeclient.NewDeliverer(e.st.Peer(ipc.RoleSMTP))
	b, err := d.NewBody(ctx, int64(len(fMixed)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Write([]byte(fMixed)); err != nil {
		t.Fatal(err)
	}
	res, err := d.Deliver(ctx, b, storeclient.Envelope{MailFrom: "sender@example.net", Prefix: []byte(prefix)}, []storeclient.Recipient{{Address: "mjl@example.org"}})
	if err != nil || len(res) != 1 || res[0].State != storeclient.RcptOK {
		t.Fatalf("deliver: %v %v", res, err)
	}
	c, _ := e.dial(t)
	c.login()
	c.ok("EXAMINE INBOX")
	out := c.fetchOne("FETCH 1 (RFC822.SIZE BODY.PEEK[HEADER] BODY.PEEK[1.2] BODY.PEEK[2.MIME] BODY.PEEK[3.HEADER.FIELDS (Subject)] BINARY.PEEK[2]<0.4> BODY.PEEK[HEADER.FIELDS (Received)])")
	want := fmt.Sprintf("* 1 FETCH (RFC822.SIZE %d BODY[HEADER] %s BODY[1.2] %s BODY[2.MIME] %s BODY[3.HEADER.FIELDS (SUBJECT)] %s BINARY[2]<0> ~%s BODY[HEADER.FIELDS (RECEIVED)] %s)\r\n",
		len(prefix)+len(fMixed), lit(prefix+fMixedHdr), lit(fAltHTML), lit(fPart2MIME), lit("Subject: inner\r\n\r\n"), lit(fAttach[:4]), lit(prefix+"\r\n"))
	if out != want {
		t.Errorf("with prefix:\n%q\nwant\n%q", out, want)
	}
	if out := c.fetchOne("FETCH 1 BODYSTRUCTURE"); out != "* 1 FETCH (BODYSTRUCTURE "+mixedStructure(true)+")\r\n" {
		t.Errorf("BODYSTRUCTURE with prefix: %q", out)
	}
}

func TestFetchDecoders(t *testing.T) {
	for _, tc := range []struct{ enc, in, want string }{
		{"base64", "aGVs\r\nbG8=\r\n", "hello"},
		{"base64", "aGVsbG8", "hello"},                           // padding missing
		{"base64", "aG Vs*bG8=\r\n\r\n", "hello"},                // characters outside the alphabet
		{"base64", "aGk=aGk=", "hihi"},                           // concatenated encodings
		{"quoted-printable", "a=3Db=\r\nc \t\r\nd", "a=bc\r\nd"}, // soft break, trailing white space
		{"quoted-printable", "x=\ny\nz =  \r\nw", "xy\r\nz w"},   // bare LF; "=" with trailing white space
		{"quoted-printable", "5=ZZ =4 =e9=", "5=ZZ =4 \xe9"},     // not escapes; lower case hex; "=" at the end
		{"quoted-printable", "a\rb \r\n", "a\rb\r\n"},
		{"7bit", "as\r\nis", "as\r\nis"},
	} {
		// Every way of cutting the input gives the same output.
		for cut := 0; cut <= len(tc.in); cut++ {
			var out bytes.Buffer
			w := newDecoder(tc.enc, &out)
			w.Write([]byte(tc.in[:cut]))
			w.Write([]byte(tc.in[cut:]))
			w.Close()
			if out.String() != tc.want {
				t.Errorf("%s %q cut at %d: %q, want %q", tc.enc, tc.in, cut, out.String(), tc.want)
				break
			}
		}
	}
	for _, in := range []string{"a\nb\r\nc\n", "\n\n", "x\r", "\r\n"} {
		want := strings.ReplaceAll(strings.ReplaceAll(in, "\r\n", "\n"), "\n", "\r\n")
		for cut := 0; cut <= len(in); cut++ {
			var out bytes.Buffer
			w := &crlfWriter{w: &out}
			w.Write([]byte(in[:cut]))
			w.Write([]byte(in[cut:]))
			if out.String() != want {
				t.Errorf("crlf %q cut at %d: %q, want %q", in, cut, out.String(), want)
			}
		}
	}
}

func TestFilterHeader(t *testing.T) {
	long := "X-Long: " + strings.Repeat("y", 10000) + "\r\n"
	hdr := "From: a@example.org\r\nSubject: one\r\n two\r\nnot a field\r\n" + long + "Subject : again\r\nX-Other: z\r\n\r\nbody\r\n"
	for _, tc := range []struct {
		names []string
		not   bool
		in    string
		want  string
	}{
		{[]string{"subject"}, false, hdr, "Subject: one\r\n two\r\nSubject : again\r\n\r\n"},
		{[]string{"X-LONG", "from"}, false, hdr, "From: a@example.org\r\n" + long + "\r\n"},
		{[]string{"Subject", "X-Long"}, true, hdr, "From: a@example.org\r\nX-Other: z\r\n\r\n"},
		{[]string{"B"}, false, "A: 1\r\nB: 2", "B: 2\r\n\r\n"}, // no empty line, no line break
		{[]string{"A"}, false, "", "\r\n"},
	} {
		var out bytes.Buffer
		if err := filterHeader(&out, strings.NewReader(tc.in), tc.names, tc.not); err != nil || out.String() != tc.want {
			t.Errorf("filterHeader %v %v: %q %v, want %q", tc.names, tc.not, out.String(), err, tc.want)
		}
	}
}

// TestPythonImaplibFetch: Python's imaplib reads BODYSTRUCTURE and a
// section, and Python's email package, parsing the message on its own,
// finds the sizes and line counts BODYSTRUCTURE reports.
func TestPythonImaplibFetch(t *testing.T) {
	e := newEnv(t)
	e.st.Deliver(t, "mjl@example.org", fMixed)
	script := `
import email
M.login("mjl@example.org", "secret")
M.select("INBOX")
typ, data = M.fetch("1", "(BODYSTRUCTURE BODY.PEEK[1])")
head, part1 = data[0]
print(typ)
print(head.decode())
sys.stdout.flush()
sys.stdout.buffer.write(part1 + b"\n")
typ, data = M.fetch("1", "(BODY.PEEK[])")
msg = email.message_from_bytes(data[0][1])
for p in msg.walk():
    if p.is_multipart() or p.get_content_maintype() == "message":
        continue
    body = p.get_payload().encode("utf-8", "surrogateescape")
    n = body.count(b"\n") + (1 if body and not body.endswith(b"\n") else 0)
    print(p.get_content_type(), len(body), n)
print(M.logout()[0])
`
	out, err := imaplibCommand(t, e.addr, script).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	l := strings.SplitN(string(out), "\n", 3)
	if len(l) < 3 || l[0] != "OK" || l[1] != "1 (BODYSTRUCTURE "+mixedStructure(true)+" BODY[1] {"+strconv.Itoa(len(fAltBody))+"}" || !strings.HasPrefix(l[2], fAltBody+"\n") {
		t.Fatalf("python output:\n%s", out)
	}
	// The leaf parts of our BODYSTRUCTURE, in order: type, size, lines.
	leaf := regexp.MustCompile(`\("(text|application)" "([a-z]+)" (?:NIL|\([^()]*\)) (?:NIL|"[^"]*") (?:NIL|"[^"]*") "[a-z0-9-]+" (\d+)(?: (\d+))?`)
	var ours []string
	for _, m := range leaf.FindAllStringSubmatch(l[1], -1) {
		s := m[1] + "/" + m[2] + " " + m[3]
		if m[1] == "text" {
			s += " " + m[4]
		}
		ours = append(ours, s)
	}
	var python []string
	for _, s := range strings.Split(strings.TrimSuffix(l[2][len(fAltBody)+1:], "BYE\n"), "\n") {
		if s == "" {
			continue
		}
		if f := strings.Fields(s); !strings.HasPrefix(f[0], "text/") {
			s = f[0] + " " + f[1] // lines only for text parts
		}
		python = append(python, s)
	}
	if len(ours) != 4 || strings.Join(ours, "\n") != strings.Join(python, "\n") {
		t.Fatalf("sizes and lines: moxd\n%s\nPython email\n%s", strings.Join(ours, "\n"), strings.Join(python, "\n"))
	}
}
