package mlog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

type domain struct{ ascii, unicode string }

func (d domain) LogString() string {
	if d.unicode == d.ascii {
		return d.ascii
	}
	return d.ascii + "/" + d.unicode
}

func TestEscape(t *testing.T) {
	cases := []struct{ in, want string }{
		{"plain", "plain"},
		{"münchen", `m\u00fcnchen`},
		{"a\nb", `a\nb`},
		{"pаypal", `p\u0430ypal`}, // Cyrillic a
		{"\xff", `\xff`},
		{"tab\t", `tab\t`},
	}
	for _, c := range cases {
		if got := Escape(c.in); got != c.want {
			t.Errorf("Escape(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewHandler(&buf, Options{Level: LevelTrace}))
	log.Info("delivered", "rcpt", "jörg@example.org", "domain", domain{"xn--mnchen-3ya.de", "münchen.de"}, "evil", "x\nlevel=ERROR msg=forged")
	log.Log(nil, LevelTrace, "transcript")
	out := buf.String()
	for _, want := range []string{`rcpt=j\u00f6rg@example.org`, `domain=xn--mnchen-3ya.de/m\u00fcnchen.de`, `evil="x\\nlevel=ERROR msg=forged"`, "level=TRACE"} {
		if !strings.Contains(out, want) {
			t.Errorf("log output lacks %s:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "\n"); n != 2 {
		t.Errorf("got %d lines, want 2 (a value must never start a new line):\n%s", n, out)
	}
	if strings.Contains(out, "time=") {
		t.Errorf("time logged although WithTime is false:\n%s", out)
	}
}
