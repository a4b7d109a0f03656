package imap

import (
	"strings"
	"testing"

	"moxd/internal/mailproto/message"
)

func TestAppendEnvelope(t *testing.T) {
	e := &message.Envelope{
		Subject: "caf\u00e9 \"quoted\"",
		From:    []message.Address{{Name: "A", Mailbox: "a", Host: "example.org"}},
		To: []message.Address{
			{Mailbox: "friends"}, // group start
			{Mailbox: "b", Host: "example.org"},
			{}, // group end
		},
		MessageID: "<id@example.org>",
	}
	got := string(AppendEnvelope(nil, e, false))
	want := `(NIL {14}` + "\r\n" + `caf` + "\u00e9" + ` "quoted" (("A" NIL "a" "example.org")) NIL NIL ((NIL NIL "friends" NIL)(NIL NIL "b" "example.org")(NIL NIL NIL NIL)) NIL NIL NIL "<id@example.org>")`
	if got != want {
		t.Errorf("envelope:\n%q\nwant\n%q", got, want)
	}
	if got := string(AppendEnvelope(nil, e, true)); !strings.HasPrefix(got, `(NIL "caf`+"\u00e9"+` \"quoted\"" `) {
		t.Errorf("envelope with UTF-8: %q", got)
	}
	if got := string(AppendEnvelope(nil, nil, false)); got != "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)" {
		t.Errorf("nil envelope: %q", got)
	}
}

func TestAppendBodyStructure(t *testing.T) {
	text := &message.Part{MediaType: "text", MediaSubtype: "plain", BodyStart: 10, End: 25, BodyLines: 2,
		Params:   []message.Param{{Name: "charset", Value: "utf-8"}, {Name: "title*", Value: "utf-8'en'%E2%82%AC"}},
		Language: []string{"en"}, Description: "d\u00e9sc"}
	// A message/rfc822 part in base64 has no embedded message in the tree:
	// a basic part, no envelope.
	encoded := &message.Part{MediaType: "message", MediaSubtype: "rfc822", Encoding: "base64", BodyStart: 30, End: 90, BodyLines: 1}
	empty := &message.Part{MediaType: "multipart", MediaSubtype: "mixed", Truncated: true}
	root := &message.Part{MediaType: "multipart", MediaSubtype: "related", Parts: []*message.Part{text, encoded, empty},
		Disposition: "inline", Location: "http://example.org/x"}
	for _, tc := range []struct {
		extended, utf8 bool
		want           string
	}{
		{true, false, `(("text" "plain" ("charset" "utf-8" "title*" "utf-8'en'%E2%82%AC") NIL {5}` + "\r\n" + "d\u00e9sc" + ` "7bit" 15 2 NIL NIL ("en") NIL)` +
			`("message" "rfc822" NIL NIL NIL "base64" 60 NIL NIL NIL NIL)` +
			`(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) "mixed" NIL NIL NIL NIL)` +
			` "related" NIL ("inline" NIL) NIL "http://example.org/x")`},
		{false, true, `(("text" "plain" ("charset" "utf-8" "title*" "utf-8'en'%E2%82%AC") NIL "d` + "\u00e9" + `sc" "7bit" 15 2)` +
			`("message" "rfc822" NIL NIL NIL "base64" 60)` +
			`(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) "mixed") "related")`},
	} {
		if got := string(AppendBodyStructure(nil, root, tc.extended, tc.utf8)); got != tc.want {
			t.Errorf("extended %v:\n%q\nwant\n%q", tc.extended, got, tc.want)
		}
	}
}
