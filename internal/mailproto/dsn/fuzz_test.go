package dsn

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed files: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	m := testMessage(Recipient{FinalRecipient: "jürgen@example.net", OriginalRecipient: "utf-8;j\\x{FC}rgen@example.net", Action: Failed, Status: "5.1.1", Diagnostic: "550 no"})
	m.SMTPUTF8 = true
	m.HeadersOnly = true
	var b bytes.Buffer
	if err := m.Compose(&b); err != nil {
		f.Fatal(err)
	}
	f.Add(b.Bytes())
	f.Add([]byte("Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\nContent-Type: message/delivery-status\n\nFinal-Recipient: x\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := Parse(bytes.NewReader(data))
		if err != nil {
			if rep != nil {
				t.Errorf("report %+v with error %v", rep, err)
			}
			return
		}
		if len(rep.Recipients) == 0 || len(rep.Recipients) > MaxRecipients {
			t.Errorf("%d recipients", len(rep.Recipients))
		}
		if strings.ContainsAny(rep.OriginalMessageID, "<>") {
			t.Errorf("message id %q has angle brackets", rep.OriginalMessageID)
		}
	})
}

// FuzzCompose checks that whatever text a remote server or a sender puts in
// the diagnostic, subject, explanation and original message, the DSN stays
// within the line limits, is 7-bit without SMTPUTF8 outside the original,
// and parses back.
func FuzzCompose(f *testing.F) {
	f.Add("550 5.1.1 no such user", "lunch?", "note", []byte(origMsg), false)
	f.Add(strings.Repeat("x", 3000), strings.Repeat("é ", 300), "a\r\nb\n", []byte("Subject: \xff\r\n\r\n"), true)
	f.Fuzz(func(t *testing.T, diag, subject, expl string, orig []byte, hdrs bool) {
		m := testMessage(Recipient{FinalRecipient: "bob@example.net", Action: Failed, Status: "5.1.1", Diagnostic: diag})
		m.OriginalSubject = subject
		m.Explanation = expl
		m.Original = bytes.NewReader(orig)
		m.HeadersOnly = hdrs
		var b bytes.Buffer
		if err := m.Compose(&b); err != nil {
			t.Fatalf("Compose: %v", err)
		}
		out := b.Bytes()
		for _, l := range bytes.Split(out, []byte("\n")) {
			if len(bytes.TrimSuffix(l, []byte("\r"))) > 998 {
				t.Fatalf("line of %d octets", len(l))
			}
		}
		if i := bytes.Index(out, []byte("Content-Description: Original message")); hdrs && !is7bit(out) || !hdrs && !is7bit(out[:max(i, 0)]) {
			t.Fatalf("8-bit octets in an ASCII DSN")
		}
		rep, err := Parse(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if len(rep.Recipients) != 1 || rep.Recipients[0].FinalRecipient != "bob@example.net" {
			t.Fatalf("Parse = %+v", rep)
		}
	})
}
