package dsn

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var (
	arrival = time.Date(2024, 5, 14, 9, 0, 0, 0, time.UTC)
	attempt = time.Date(2024, 5, 14, 9, 30, 0, 0, time.UTC)
	now     = time.Date(2024, 5, 14, 9, 31, 0, 0, time.UTC)
)

const origMsg = "Message-ID: <orig.1@example.org>\r\n" +
	"From: Alice <alice@example.org>\r\n" +
	"To: bob@example.net\r\n" +
	"Subject: lunch?\r\n" +
	"\r\n" +
	"Are you free on Friday?\r\n" +
	"-- \r\nAlice\r\n"

func testMessage(rcpts ...Recipient) *Message {
	return &Message{
		ReportingMTA:      "mail.example.org",
		From:              "postmaster@mail.example.org",
		To:                "alice@example.org",
		OriginalSubject:   "lunch?",
		MessageID:         "dsn.1@mail.example.org",
		OriginalMessageID: "orig.1@example.org",
		EnvID:             "QQ314159",
		ArrivalDate:       arrival,
		Date:              now,
		Recipients:        rcpts,
		Original:          strings.NewReader(origMsg),
	}
}

func compose(t *testing.T, m *Message) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := m.Compose(&b); err != nil {
		t.Fatalf("Compose: %v", err)
	}
	checkLines(t, b.Bytes())
	return b.Bytes()
}

// checkLines asserts CRLF line endings and lines of at most 998 octets.
func checkLines(t *testing.T, b []byte) {
	t.Helper()
	if !bytes.HasSuffix(b, []byte("\r\n")) {
		t.Errorf("message does not end with CRLF")
	}
	for i, line := range bytes.Split(b, []byte("\n")) {
		if i < bytes.Count(b, []byte("\n")) && !bytes.HasSuffix(line, []byte("\r")) {
			t.Errorf("line %d %q does not end in CRLF", i+1, line)
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if bytes.IndexByte(line, '\r') >= 0 {
			t.Errorf("line %d has a bare CR", i+1)
		}
		if len(line) > 998 {
			t.Errorf("line %d is %d octets long", i+1, len(line))
		}
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name     string
		smtputf8 bool
		rcpts    []Recipient
		want     []ReportRecipient
	}{
		{
			name: "failed",
			rcpts: []Recipient{{
				FinalRecipient: "bob@example.net", OriginalRecipient: "rfc822;Bob+2Bx@example.net",
				Action: Failed, Status: "5.1.1", RemoteMTA: "mx.example.net",
				Diagnostic: "550 5.1.1 no such user", LastAttempt: attempt,
			}},
			want: []ReportRecipient{{
				FinalRecipient: "bob@example.net", OriginalRecipient: "rfc822;Bob+x@example.net",
				Action: Failed, Status: "5.1.1", RemoteMTA: "mx.example.net", Diagnostic: "550 5.1.1 no such user",
			}},
		},
		{
			name: "all actions",
			rcpts: []Recipient{
				{FinalRecipient: "a@example.net", Action: Delayed, Status: "4.4.1", Diagnostic: "421-4.4.1 try later\r\n421 4.4.1 really", WillRetryUntil: now.Add(96 * time.Hour)},
				{FinalRecipient: "b@example.net", Action: Delivered, Status: "2.0.0"},
				{FinalRecipient: "c@example.net", Action: Relayed, Status: "2.0.0", RemoteMTA: "old.example.net"},
				{FinalRecipient: "d@example.net", Action: Expanded, Status: "2.1.5"},
			},
			want: []ReportRecipient{
				{FinalRecipient: "a@example.net", Action: Delayed, Status: "4.4.1", Diagnostic: "421-4.4.1 try later  421 4.4.1 really"},
				{FinalRecipient: "b@example.net", Action: Delivered, Status: "2.0.0"},
				{FinalRecipient: "c@example.net", Action: Relayed, Status: "2.0.0", RemoteMTA: "old.example.net"},
				{FinalRecipient: "d@example.net", Action: Expanded, Status: "2.1.5"},
			},
		},
		{
			name:     "smtputf8",
			smtputf8: true,
			rcpts: []Recipient{
				{FinalRecipient: "jürgen@bücher.example", OriginalRecipient: `utf-8;j\x{FC}rgen@b\x{FC}cher.example`, Action: Failed, Status: "5.2.2", Diagnostic: "552 5.2.2 Postfach voll – mailbox full"},
				{FinalRecipient: "plain@example.net", OriginalRecipient: "rfc822;plain@example.net", Action: Delivered, Status: "2.0.0"},
			},
			want: []ReportRecipient{
				{FinalRecipient: "jürgen@bücher.example", OriginalRecipient: "utf-8;jürgen@bücher.example", Action: Failed, Status: "5.2.2", Diagnostic: "552 5.2.2 Postfach voll – mailbox full"},
				{FinalRecipient: "plain@example.net", OriginalRecipient: "rfc822;plain@example.net", Action: Delivered, Status: "2.0.0"},
			},
		},
		{
			name: "utf-8 orcpt in an ASCII report",
			rcpts: []Recipient{
				{FinalRecipient: "xn--jrgen-kva@example.net", OriginalRecipient: "utf-8;jürgen@example.net", Action: Failed, Status: "5.1.1"},
				{FinalRecipient: "xn--jrgen-kva@example.org", OriginalRecipient: "rfc822;j+C3+BCrgen@example.org", Action: Failed, Status: "5.1.1"},
			},
			want: []ReportRecipient{
				{FinalRecipient: "xn--jrgen-kva@example.net", OriginalRecipient: "utf-8;jürgen@example.net", Action: Failed, Status: "5.1.1"},
				{FinalRecipient: "xn--jrgen-kva@example.org", OriginalRecipient: "utf-8;jürgen@example.org", Action: Failed, Status: "5.1.1"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := testMessage(tt.rcpts...)
			m.SMTPUTF8 = tt.smtputf8
			b := compose(t, m)
			if !tt.smtputf8 && !is7bit(b) {
				t.Errorf("ASCII DSN has 8-bit octets")
			}
			rep, err := Parse(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("Parse: %v\n%s", err, b)
			}
			want := &Report{ReportingMTA: "mail.example.org", EnvID: "QQ314159", Recipients: tt.want, OriginalMessageID: "orig.1@example.org"}
			if !reflect.DeepEqual(rep, want) {
				t.Errorf("Parse =\n%+v\nwant\n%+v\n%s", rep, want, b)
			}
		})
	}
}

// parts reads the composed message with net/mail and mime/multipart and
// returns the top header and the parts with their (transfer-decoded) bodies.
func parts(t *testing.T, b []byte) (mail.Header, string, []*multipart.Part, [][]byte) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("ReadMessage: %v", err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("Content-Type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	boundary := params["boundary"]
	mr := multipart.NewReader(msg.Body, boundary)
	var ps []*multipart.Part
	var bodies [][]byte
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("NextPart: %v", err)
		}
		body, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("read part: %v", err)
		}
		ps = append(ps, p)
		bodies = append(bodies, body)
	}
	return msg.Header, boundary, ps, bodies
}

func TestStructure(t *testing.T) {
	m := testMessage(
		Recipient{FinalRecipient: "bob@example.net", OriginalRecipient: "rfc822;bob@example.net", Action: Failed, Status: "5.1.1",
			RemoteMTA: "mx.example.net", Diagnostic: "550 5.1.1 " + strings.Repeat("very long reply ", 80), LastAttempt: attempt},
		Recipient{FinalRecipient: "carol@example.net", Action: Delayed, Status: "4.2.2", WillRetryUntil: now.Add(time.Hour)},
	)
	m.OriginalSubject = "Grüße aus Köln, " + strings.Repeat("lange Betreffzeile ", 8)
	m.Explanation = "We will keep trying for carol.\nNothing to do for now."
	b := compose(t, m)
	hdr, boundary, ps, bodies := parts(t, b)

	for _, f := range []string{"Date", "From", "To", "Subject", "Message-ID", "MIME-Version"} {
		if hdr.Get(f) == "" {
			t.Errorf("no %s header", f)
		}
	}
	checks := map[string]string{
		"Auto-Submitted": "auto-replied",
		"In-Reply-To":    "<orig.1@example.org>",
		"References":     "<orig.1@example.org>",
		"Message-ID":     "<dsn.1@mail.example.org>",
		"To":             "<alice@example.org>",
		"Date":           "Tue, 14 May 2024 09:31:00 +0000",
	}
	for k, v := range checks {
		if got := hdr.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	from, err := hdr.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Address != "postmaster@mail.example.org" {
		t.Errorf("From %v: %v", from, err)
	}
	subj, err := new(mime.WordDecoder).DecodeHeader(hdr.Get("Subject"))
	if want := "Undelivered mail: " + strings.TrimSpace(m.OriginalSubject); err != nil || subj != want {
		t.Errorf("Subject decodes to %q (%v), want %q", subj, err, want)
	}

	// Boundary only as delimiter lines.
	for i, line := range strings.Split(string(b), "\r\n") {
		if strings.Contains(line, boundary) && line != "--"+boundary && line != "--"+boundary+"--" && !strings.Contains(line, `boundary="`) {
			t.Errorf("line %d has the boundary: %q", i+1, line)
		}
	}

	var types []string
	for _, p := range ps {
		mt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		types = append(types, mt)
	}
	if want := []string{"text/plain", "message/delivery-status", "message/rfc822"}; !reflect.DeepEqual(types, want) {
		t.Fatalf("part types %v, want %v", types, want)
	}

	text := string(bodies[0])
	for _, s := range []string{"could not be delivered", "<bob@example.net>: delivery failed.", "The server mx.example.net answered: 550 5.1.1 very long reply",
		"<carol@example.net>: delivery is delayed.", "Grüße aus Köln", "We will keep trying for carol.", "The original message is attached."} {
		if !strings.Contains(strings.Join(strings.Fields(text), " "), s) {
			t.Errorf("text part lacks %q:\n%s", s, text)
		}
	}

	// The delivery-status part is header blocks (RFC 3464 §2.1).
	tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(bodies[1])))
	var blocks []textproto.MIMEHeader
	for {
		h, err := tr.ReadMIMEHeader()
		if len(h) > 0 {
			blocks = append(blocks, h)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("ReadMIMEHeader: %v\n%s", err, bodies[1])
		}
	}
	if len(blocks) != 3 {
		t.Fatalf("%d field blocks, want 3:\n%s", len(blocks), bodies[1])
	}
	wantBlocks := []map[string]string{
		{"Original-Envelope-Id": "QQ314159", "Reporting-Mta": "dns; mail.example.org", "Arrival-Date": "Tue, 14 May 2024 09:00:00 +0000"},
		{"Original-Recipient": "rfc822;bob@example.net", "Final-Recipient": "rfc822; bob@example.net", "Action": "failed", "Status": "5.1.1",
			"Remote-Mta": "dns; mx.example.net", "Last-Attempt-Date": "Tue, 14 May 2024 09:30:00 +0000"},
		{"Final-Recipient": "rfc822; carol@example.net", "Action": "delayed", "Status": "4.2.2", "Will-Retry-Until": "Tue, 14 May 2024 10:31:00 +0000"},
	}
	for i, want := range wantBlocks {
		for k, v := range want {
			if got := blocks[i].Get(k); got != v {
				t.Errorf("block %d %s = %q, want %q", i, k, got, v)
			}
		}
	}
	if d := blocks[1].Get("Diagnostic-Code"); !strings.HasPrefix(d, "smtp; 550 5.1.1 very long reply") {
		t.Errorf("Diagnostic-Code %q", d)
	}
	if !bytes.Contains(bodies[1], []byte("Diagnostic-Code: smtp; 550 5.1.1 very long reply very long reply very long\r\n reply very")) {
		t.Errorf("Diagnostic-Code not folded at 78:\n%s", bodies[1])
	}
	if n := longestLine(bodies[1]); n > 78 {
		t.Errorf("delivery-status part has a line of %d octets", n)
	}
	// Field order of RFC 3464 §2.3.
	order := []string{"Original-Recipient:", "Final-Recipient:", "Action:", "Status:", "Remote-MTA:", "Diagnostic-Code:", "Last-Attempt-Date:"}
	last := -1
	for _, f := range order {
		i := bytes.Index(bodies[1], []byte(f))
		if i < last {
			t.Errorf("%s out of order", f)
		}
		last = i
	}

	if !bytes.Equal(bodies[2], []byte(origMsg)) {
		t.Errorf("original part %q, want %q", bodies[2], origMsg)
	}
}

func TestOriginalVariants(t *testing.T) {
	rcpt := Recipient{FinalRecipient: "bob@example.net", Action: Failed, Status: "5.1.1"}
	hdrPart := origMsg[:strings.Index(origMsg, "\r\n\r\n")+2]
	big := origMsg + strings.Repeat("line of the big body\r\n", 1000)
	long := origMsg + strings.Repeat("x", 1200) + "\r\n"
	tests := []struct {
		name      string
		set       func(m *Message)
		wantType  string
		wantBody  string
		wantText  string
		wantParts int
	}{
		{"full", func(m *Message) {}, "message/rfc822", origMsg, "The original message is attached.", 3},
		{"LF input", func(m *Message) { m.Original = strings.NewReader(strings.ReplaceAll(origMsg, "\r\n", "\n")) }, "message/rfc822", origMsg, "The original message is attached.", 3},
		{"RET=HDRS", func(m *Message) { m.HeadersOnly = true }, "text/rfc822-headers", hdrPart, "The header section of the original message is attached.", 3},
		{"under cap", func(m *Message) { m.MaxOriginal = int64(len(origMsg)) }, "message/rfc822", origMsg, "The original message is attached.", 3},
		{"over cap", func(m *Message) { m.Original = strings.NewReader(big); m.MaxOriginal = 1000 }, "text/rfc822-headers", hdrPart, "the message is larger than 1000 bytes", 3},
		{"long lines", func(m *Message) { m.Original = strings.NewReader(long) }, "text/rfc822-headers", hdrPart, "lines longer than 998", 3},
		{"8-bit header without smtputf8", func(m *Message) { m.Original = strings.NewReader("Subject: Grüße\r\n\r\nHallo\r\n") }, "text/rfc822-headers", "Subject: Grüße\r\n", "UTF-8 characters", 3},
		{"smtputf8 full", func(m *Message) {
			m.SMTPUTF8 = true
			m.Original = strings.NewReader("Subject: Grüße\r\n\r\nHallo\r\n")
		}, "message/global", "Subject: Grüße\r\n\r\nHallo\r\n", "The original message is attached.", 3},
		{"smtputf8 headers", func(m *Message) {
			m.SMTPUTF8 = true
			m.HeadersOnly = true
			m.Original = strings.NewReader("Subject: Grüße\r\n\r\nHallo\r\n")
		}, "message/global-headers", "Subject: Grüße\r\n", "header section", 3},
		{"none", func(m *Message) { m.Original = nil }, "", "", "", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := testMessage(rcpt)
			tt.set(m)
			b := compose(t, m)
			if !m.SMTPUTF8 && !is7bit(b) && tt.wantType != "message/rfc822" {
				t.Errorf("ASCII DSN has 8-bit octets")
			}
			_, _, ps, bodies := parts(t, b)
			if len(ps) != tt.wantParts {
				t.Fatalf("%d parts, want %d", len(ps), tt.wantParts)
			}
			if !strings.Contains(strings.Join(strings.Fields(string(bodies[0])), " "), tt.wantText) {
				t.Errorf("text part lacks %q:\n%s", tt.wantText, bodies[0])
			}
			if tt.wantParts < 3 {
				return
			}
			mt, _, _ := mime.ParseMediaType(ps[2].Header.Get("Content-Type"))
			if mt != tt.wantType {
				t.Errorf("original part type %q, want %q", mt, tt.wantType)
			}
			if string(bodies[2]) != tt.wantBody {
				t.Errorf("original part %q, want %q", bodies[2], tt.wantBody)
			}
		})
	}
}

func TestComposeErrors(t *testing.T) {
	ok := Recipient{FinalRecipient: "bob@example.net", Action: Failed, Status: "5.1.1"}
	tests := []struct {
		name string
		set  func(m *Message)
		want string
	}{
		{"no recipients", func(m *Message) { m.Recipients = nil }, "no recipients"},
		{"no status", func(m *Message) { m.Recipients[0].Status = "" }, "Status is required"},
		{"bad status", func(m *Message) { m.Recipients[0].Status = "6.1.1" }, "not an enhanced status code"},
		{"bad action", func(m *Message) { m.Recipients[0].Action = "bounced" }, "action \"bounced\""},
		{"no action", func(m *Message) { m.Recipients[0].Action = "" }, "action \"\""},
		{"utf-8 recipient", func(m *Message) { m.Recipients[0].FinalRecipient = "jürgen@example.net" }, "set Message.SMTPUTF8"},
		{"utf-8 sender", func(m *Message) { m.To = "jürgen@example.net" }, "set Message.SMTPUTF8"},
		{"bad orcpt", func(m *Message) { m.Recipients[0].OriginalRecipient = "bob@example.net" }, "addr-type;address"},
		{"crlf in address", func(m *Message) { m.To = "a@b\r\nBcc: x@y" }, "control characters"},
		{"angle brackets", func(m *Message) { m.To = "<a@b>" }, "without angle brackets"},
		{"no message-id", func(m *Message) { m.MessageID = "" }, "MessageID is empty"},
		{"no date", func(m *Message) { m.Date = time.Time{} }, "Date is not set"},
		{"no reporting mta", func(m *Message) { m.ReportingMTA = "" }, "ReportingMTA"},
		{"bad remote mta", func(m *Message) { m.Recipients[0].RemoteMTA = "mx; evil" }, "RemoteMTA"},
		{"bad envid", func(m *Message) { m.EnvID = "a\nb" }, "EnvID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := testMessage(ok)
			tt.set(m)
			var b bytes.Buffer
			err := m.Compose(&b)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Compose error %v, want one with %q", err, tt.want)
			}
			if b.Len() != 0 {
				t.Errorf("Compose wrote %d bytes before failing", b.Len())
			}
		})
	}
}

func TestBadOriginalMessageID(t *testing.T) {
	for _, id := range []string{"<x@y>", "two words@x", "ümlaut@x"} {
		m := testMessage(Recipient{FinalRecipient: "bob@example.net", Action: Failed, Status: "5.1.1"})
		m.OriginalMessageID = id
		hdr, _, _, _ := parts(t, compose(t, m))
		if hdr.Get("In-Reply-To") != "" || hdr.Get("References") != "" {
			t.Errorf("message id %q: threading headers %q, %q", id, hdr.Get("In-Reply-To"), hdr.Get("References"))
		}
	}
}

func TestFold(t *testing.T) {
	words := strings.Repeat("word ", 100)
	solid := strings.Repeat("x", 2500)
	for _, v := range []string{"short", words, solid, "a " + solid + " b", strings.Repeat(" ", 100) + "x", strings.Repeat("ü", 700)} {
		f := fold("Diagnostic-Code", v)
		checkLines(t, []byte(f))
		for _, line := range strings.Split(strings.TrimSuffix(f, "\r\n"), "\r\n")[1:] {
			if strings.TrimSpace(line) == "" {
				t.Errorf("whitespace-only continuation line in %q", f)
			}
			if line[0] != ' ' {
				t.Errorf("continuation line %q does not start with a space", line)
			}
		}
		unfolded := strings.ReplaceAll(f, "\r\n", "")
		if v == words && unfolded != "Diagnostic-Code: "+strings.TrimSpace(words) {
			t.Errorf("folding at spaces changed the value: %q", unfolded)
		}
		if v == words && strings.Count(f, "\r\n") < 5 {
			t.Errorf("not folded: %q", f)
		}
	}
}

func TestParseFixtures(t *testing.T) {
	tests := []struct {
		file string
		want *Report
		err  error
	}{
		{"postfix.eml", &Report{
			ReportingMTA: "mail.example.net",
			Recipients: []ReportRecipient{
				{FinalRecipient: "bob@example.net", OriginalRecipient: "rfc822;bob@example.net", Action: Failed, Status: "5.1.1",
					RemoteMTA: "mx.example.net", Diagnostic: "550 5.1.1 <bob@example.net>: Recipient address rejected:    User unknown in virtual mailbox table"},
				{FinalRecipient: "dave@example.net", OriginalRecipient: "rfc822;dave@example.net", Action: Failed, Status: "4.4.1",
					Diagnostic: "connect to mx2.example.net[198.51.100.8]:25:    Connection timed out"},
			},
			OriginalMessageID: "lunch.8841@example.org",
		}, nil},
		{"exchange.eml", &Report{
			ReportingMTA: "AM0PR01MB5678.eurprd01.prod.exchangelabs.example",
			Recipients: []ReportRecipient{
				{FinalRecipient: "nobody@contoso.example", Action: Failed, Status: "5.1.10",
					RemoteMTA:  "AM0PR01MB1111.eurprd01.prod.exchangelabs.example",
					Diagnostic: "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"},
			},
			OriginalMessageID: "report.2024-05@example.org",
		}, nil},
		{"notdsn.eml", nil, ErrNotDSN},
		{"mdn.eml", nil, ErrNotDSN},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rep, err := Parse(f)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Parse error %v, want %v", err, tt.err)
			}
			if !reflect.DeepEqual(rep, tt.want) {
				t.Errorf("Parse =\n%+v\nwant\n%+v", rep, tt.want)
			}
		})
	}
}

func TestParseOddities(t *testing.T) {
	wrap := func(ctype, status string) string {
		return "Content-Type: multipart/mixed; boundary=outer\n\n--outer\nContent-Type: " + ctype + "; boundary=in\n\n--in\n" +
			"Content-Type: text/plain\n\nhi\n--in\nContent-Type: message/delivery-status\nContent-Transfer-Encoding: base64\n\n" +
			status + "\n--in--\n--outer--\n"
	}
	// base64 of a status without the blank line after the per-message
	// fields and with comments.
	status := "UmVwb3J0aW5nLU1UQTogZG5zOyBteC5leGFtcGxlCkZpbmFsLVJlY2lwaWVudDogUkZDODIyOyA8WEB5LmV4YW1wbGU+CkFjdGlvbjogRmFpbGVkIChib3VuY2UpClN0YXR1czogNS4wLjAgKHBlcm1hbmVudCkK"
	rep, err := Parse(strings.NewReader(wrap("multipart/report; report-type=Delivery-Status", status)))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := &Report{ReportingMTA: "mx.example", Recipients: []ReportRecipient{{FinalRecipient: "X@y.example", Action: Failed, Status: "5.0.0"}}}
	if !reflect.DeepEqual(rep, want) {
		t.Errorf("Parse = %+v, want %+v", rep, want)
	}

	if _, err := Parse(strings.NewReader(wrap("multipart/report; report-type=delivery-status", ""))); !errors.Is(err, ErrNotDSN) {
		t.Errorf("report without recipients: %v, want ErrNotDSN", err)
	}

	var many strings.Builder
	many.WriteString("Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n")
	for i := 0; i <= MaxRecipients; i++ {
		many.WriteString("\r\nFinal-Recipient: rfc822; a@b\r\nAction: failed\r\nStatus: 5.0.0\r\n")
	}
	many.WriteString("--b--\r\n")
	if _, err := Parse(strings.NewReader(many.String())); err == nil || !strings.Contains(err.Error(), "more than 1000 recipients") {
		t.Errorf("too many recipients: %v", err)
	}

	if _, err := Parse(io.MultiReader(strings.NewReader("Subject: x\r\n\r\n"), bytes.NewReader(make([]byte, MaxParseSize)))); !errors.Is(err, ErrTooLarge) {
		t.Errorf("large message: %v, want ErrTooLarge", err)
	}

	deep := "Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; x\n\nFinal-Recipient: rfc822; a@b\nAction: failed\nStatus: 5.0.0\n--b--\n"
	for i := 0; i < MaxDepth; i++ {
		deep = "Content-Type: multipart/mixed; boundary=m" + string(rune('a'+i)) + "\n\n--m" + string(rune('a'+i)) + "\n" + deep + "--m" + string(rune('a'+i)) + "--\n"
	}
	if _, err := Parse(strings.NewReader(deep)); !errors.Is(err, ErrNotDSN) {
		t.Errorf("report nested %d levels deep: %v, want ErrNotDSN", MaxDepth, err)
	}
}

// TestPythonInterop parses a composed DSN with Python's email package.
func TestPythonInterop(t *testing.T) {
	python := requirePython(t)
	m := testMessage(
		Recipient{FinalRecipient: "bob@example.net", Action: Failed, Status: "5.1.1", Diagnostic: "550 5.1.1 no such user"},
		Recipient{FinalRecipient: "carol@example.net", Action: Delayed, Status: "4.4.1"},
	)
	m.OriginalSubject = "Grüße"
	path := filepath.Join(t.TempDir(), "dsn.eml")
	if err := os.WriteFile(path, compose(t, m), 0o600); err != nil {
		t.Fatal(err)
	}
	script := `
import email, email.policy, sys
with open(sys.argv[1], 'rb') as f:
    msg = email.message_from_binary_file(f, policy=email.policy.default)
print(msg.get_content_type(), msg.get_param('report-type'), msg['subject'])
for p in msg.get_payload():
    print(p.get_content_type())
for block in msg.get_payload()[1].get_payload():
    if block['Action']:
        print(block['Final-Recipient'], block['Action'], block['Status'])
print(msg.get_payload()[2].get_payload()[0]['Message-ID'])
`
	out, err := exec.Command(python, "-c", script, path).CombinedOutput()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, out)
	}
	want := "multipart/report delivery-status Undelivered mail: Grüße\n" +
		"text/plain\nmessage/delivery-status\nmessage/rfc822\n" +
		"rfc822; bob@example.net failed 5.1.1\n" +
		"rfc822; carol@example.net delayed 4.4.1\n" +
		"<orig.1@example.org>\n"
	if string(out) != want {
		t.Errorf("python3 saw\n%s\nwant\n%s", out, want)
	}
}

// requirePython returns the path of python3, skipping the test without it
// unless CI is set.
func requirePython(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("python3 is needed for the interoperability test: %v", err)
		}
		t.Skipf("python3 not found: %v", err)
	}
	return p
}
