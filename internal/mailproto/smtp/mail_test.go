package smtp

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestPathParse(t *testing.T) {
	tests := []struct {
		in         string
		utf8       bool
		addr       string // Address() of the result; "" with err for failures
		postmaster bool
		err        bool
	}{
		{"<a@example.org>", false, "a@example.org", false, false},
		{"<A.B+tag@Example.ORG>", false, "A.B+tag@Example.ORG", false, false},
		{"<>", false, "", false, false},
		{`<"a b"@example.org>`, false, `"a b"@example.org`, false, false},
		{`<"a\"b"@example.org>`, false, `"a\"b"@example.org`, false, false},
		{`<"a>b"@example.org>`, false, `"a>b"@example.org`, false, false},
		{`<"ab"@example.org>`, false, "ab@example.org", false, false}, // needlessly quoted
		{"<@relay1.example,@relay2.example:u@example.org>", false, "u@example.org", false, false},
		{"<a@[192.0.2.1]>", false, "a@[192.0.2.1]", false, false},
		{"<a@[IPv6:2001:db8::1]>", false, "a@[IPv6:2001:db8::1]", false, false},
		{"<Postmaster>", false, "postmaster", true, false},
		{"<postmaster@example.org>", false, "postmaster@example.org", false, false},
		{"<ü@example.org>", true, "ü@example.org", false, false},
		{"<a@bücher.example>", true, "a@bücher.example", false, false},
		{"<ü@example.org>", false, "", false, true},
		{"<a@bücher.example>", false, "", false, true},
		{"a@example.org", false, "", false, true},
		{"<a@example.org", false, "", false, true},
		{"<a>", false, "", false, true},
		{"<a@>", false, "", false, true},
		{"<@example.org>", false, "", false, true},
		{"<a..b@example.org>", false, "", false, true},
		{"<.a@example.org>", false, "", false, true},
		{"<a.@example.org>", false, "", false, true},
		{"<a b@example.org>", false, "", false, true},
		{"<a@b@example.org>", false, "", false, true},
		{"<a@exa_mple.org>", false, "", false, true},
		{"<a@[300.0.0.1]>", false, "", false, true},
		{"<" + strings.Repeat("a", 65) + "@example.org>", false, "", false, true},
		{"<" + strings.Repeat("a", 64) + "@example.org>", false, strings.Repeat("a", 64) + "@example.org", false, false},
		{"<a@" + strings.Repeat("abcdefghi.", 25) + "org>", false, "", false, true},
		{"<\"unterminated@example.org>", false, "", false, true},
		{"<\"ctl\x01\"@example.org>", false, "", false, true},
		{"<@relay.example a@example.org>", false, "", false, true},
		{"<a@example.org\xff>", true, "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, pm, rest, err := parsePath(tt.in, tt.utf8)
			if tt.err {
				if err == nil {
					t.Fatalf("parsePath(%q) = %q, want an error", tt.in, p.Address())
				}
				return
			}
			if err != nil {
				t.Fatalf("parsePath(%q): %v", tt.in, err)
			}
			if got := p.Address(); got != tt.addr || pm != tt.postmaster || rest != "" {
				t.Fatalf("parsePath(%q) = %q postmaster %v rest %q, want %q postmaster %v", tt.in, got, pm, rest, tt.addr, tt.postmaster)
			}
		})
	}
}

func TestPathASCIIDomain(t *testing.T) {
	p := Path{Localpart: "a", Domain: "Bücher.Example"}
	d, err := p.ASCIIDomain()
	if err != nil || d != "xn--bcher-kva.example" {
		t.Fatalf("ASCIIDomain = %q, %v, want xn--bcher-kva.example", d, err)
	}
	if !p.UTF8() || (Path{Localpart: "a", Domain: "example.org"}).UTF8() {
		t.Fatalf("UTF8 wrong")
	}
	if got := p.LogString(); !strings.Contains(got, `\u00fc`) {
		t.Fatalf("LogString %q does not escape non-ASCII", got)
	}
}

// mailSession is a session after EHLO.
func mailSession(t *testing.T, cfg Config) (*session, *testSession) {
	t.Helper()
	ts, ok := cfg.Session.(*testSession)
	if !ok {
		ts = &testSession{}
		cfg.Session = ts
	}
	s := startSession(t, cfg)
	s.reply()
	s.expect("EHLO client.example", "250")
	return s, ts
}

func TestMailParams(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	tests := []struct {
		line string
		tls  bool
		want string
		// check looks at the accepted MAIL.
		check func(m MailFrom) error
	}{
		{"MAIL FROM:<a@example.org>", false, "250 2.1.0", func(m MailFrom) error {
			if m.Size != -1 || m.Body != Body7Bit || m.SMTPUTF8 || m.RequireTLS || m.Ret != "" || m.EnvID != "" {
				return fmt.Errorf("defaults wrong: %+v", m)
			}
			return nil
		}},
		{"MAIL FROM: <a@example.org>", false, "250 2.1.0", nil},
		{"mail from:<a@example.org>", false, "250 2.1.0", nil},
		{"MAIL FROM:<a@example.org> SIZE=1000 BODY=8BITMIME RET=HDRS ENVID=QQ+2Bx AUTH=<>", false, "250 2.1.0", func(m MailFrom) error {
			if m.Size != 1000 || m.Body != Body8BitMIME || m.Ret != RetHdrs || m.EnvID != "QQ+x" || m.Auth != "<>" {
				return fmt.Errorf("params wrong: %+v", m)
			}
			return nil
		}},
		{"MAIL FROM:<a@example.org> body=7bit  ret=full", false, "250 2.1.0", func(m MailFrom) error {
			if m.Body != Body7Bit || m.Ret != RetFull {
				return fmt.Errorf("params wrong: %+v", m)
			}
			return nil
		}},
		{"MAIL FROM:<ü@example.org> SMTPUTF8", false, "250 2.1.0", func(m MailFrom) error {
			if !m.SMTPUTF8 || m.Path.Localpart != "ü" {
				return fmt.Errorf("utf8 wrong: %+v", m)
			}
			return nil
		}},
		{"MAIL FROM:<ü@example.org>", false, "553 5.6.7", nil},
		{"MAIL FROM:<a@example.org> SIZE=104857601", false, "552 5.3.4", nil},
		{"MAIL FROM:<a@example.org> SIZE=x", false, "501 5.5.4", nil},
		{"MAIL FROM:<a@example.org> SIZE", false, "501 5.5.4", nil},
		{"MAIL FROM:<a@example.org> BODY=BINARYMIME", false, "504 5.5.4", nil},
		{"MAIL FROM:<a@example.org> BODY=9BIT", false, "501 5.5.4", nil},
		{"MAIL FROM:<a@example.org> SMTPUTF8=yes", false, "501 5.5.4", nil},
		{"MAIL FROM:<a@example.org> XFOO=1", false, "555 5.5.4", nil},
		{"MAIL FROM:<a@example.org> SIZE=1 SIZE=2", false, "501 5.5.4", nil},
		{"MAIL FROM:<a@example.org> ENVID=a+zz", false, "501 5.5.4", nil},
		{"MAIL FROM:<a@example.org> RET=ALL", false, "501 5.5.4", nil},
		{"MAIL FROM:<a@example.org> REQUIRETLS", false, "530 5.7.10", nil},
		{"MAIL FROM:<a@example.org> REQUIRETLS", true, "250 2.1.0", func(m MailFrom) error {
			if !m.RequireTLS {
				return errors.New("REQUIRETLS not set")
			}
			return nil
		}},
		{"MAIL FROM:<a@example.org>SIZE=1", false, "501 5.5.4", nil},
		{"MAIL TO:<a@example.org>", false, "501 5.5.4", nil},
		{"MAIL FROM:a@example.org", false, "501 5.5.4", nil},
		{"MAIL FROM:<postmaster>", false, "501 5.1.7", nil},
		{"MAIL FROM:<>", false, "250 2.1.0", func(m MailFrom) error {
			if !m.Path.IsNull() {
				return errors.New("not null")
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s tls=%v", tt.line, tt.tls), func(t *testing.T) {
			var got *MailFrom
			ts := &testSession{mail: func(m *MailFrom) error { got = m; return nil }}
			cfg := Config{Session: ts, RequireTLS: true}
			if tt.tls {
				cfg.TLSConfig = serverTLS
			}
			s, _ := mailSession(t, cfg)
			if tt.tls {
				s.expect("STARTTLS", "220")
				s.startTLS(clientTLS)
				s.expect("EHLO client.example", "250")
			}
			s.expect(tt.line, tt.want)
			if tt.check != nil {
				if got == nil {
					t.Fatalf("session did not see MAIL")
				}
				if err := tt.check(*got); err != nil {
					t.Fatal(err)
				}
			}
			if !strings.HasPrefix(tt.want, "250") {
				// A refused MAIL leaves no transaction.
				s.expect("RCPT TO:<b@example.org>", "503 5.5.1")
			}
		})
	}
}

func TestRcptParams(t *testing.T) {
	tests := []struct {
		line   string
		want   string
		notify uint8
		orcpt  string
	}{
		{"RCPT TO:<b@example.org>", "250 2.1.5", 0, ""},
		{"RCPT TO: <b@example.org>", "250 2.1.5", 0, ""},
		{"RCPT TO:<b@example.org> NOTIFY=NEVER", "250 2.1.5", NotifyNever, ""},
		{"RCPT TO:<b@example.org> NOTIFY=success,DELAY", "250 2.1.5", NotifySuccess | NotifyDelay, ""},
		{"RCPT TO:<b@example.org> NOTIFY=FAILURE ORCPT=rfc822;b+2Bx@example.org", "250 2.1.5", NotifyFailure, "rfc822;b+x@example.org"},
		{"RCPT TO:<b@example.org> NOTIFY=NEVER,SUCCESS", "501 5.5.4", 0, ""},
		{"RCPT TO:<b@example.org> NOTIFY=SUCCESS,SUCCESS", "501 5.5.4", 0, ""},
		{"RCPT TO:<b@example.org> ORCPT=b@example.org", "501 5.5.4", 0, ""},
		{"RCPT TO:<b@example.org> FOO=BAR", "555 5.5.4", 0, ""},
		{"RCPT TO:<>", "501 5.1.3", 0, ""},
		{"RCPT TO:<ü@example.org>", "553 5.6.7", 0, ""},
		{"RCPT TO:<b@exa mple.org>", "501 5.1.3", 0, ""},
		{"RCPT FROM:<b@example.org>", "501 5.5.4", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			var got *RcptTo
			s, _ := mailSession(t, Config{Session: &testSession{rcpt: func(r *RcptTo) error { got = r; return nil }}})
			s.expect("MAIL FROM:<a@example.org>", "250")
			s.expect(tt.line, tt.want)
			if strings.HasPrefix(tt.want, "250") && (got == nil || got.Notify != tt.notify || got.ORcpt != tt.orcpt) {
				t.Fatalf("rcpt %+v, want notify %d orcpt %q", got, tt.notify, tt.orcpt)
			}
		})
	}
}

func TestTransactionBasics(t *testing.T) {
	s, ts := mailSession(t, Config{})
	s.expect("DATA", "503 5.5.1")
	s.expect("MAIL FROM:<a@example.org>", "250 2.1.0")
	s.expect("MAIL FROM:<a@example.org>", "503 5.5.1")
	s.expect("AUTH PLAIN AGEAYg==", "503 5.5.1")
	s.expect("DATA", "554 5.5.1 no valid recipients")
	s.expect("RCPT TO:<b@example.org>", "250 2.1.5")
	s.expect("RCPT TO:<Postmaster>", "250 2.1.5")
	s.expect("DATA", "354")
	// Dot-stuffed lines lose one dot; the message keeps its CRLFs.
	s.send("Subject: test\r\n\r\n..one dot\r\n...two dots\r\n.x\r\n.\r\n")
	if got := s.reply(); got != "250 2.0.0 message accepted" {
		t.Fatalf("after data: %q", got)
	}
	// A second transaction on the same session.
	s.expect("MAIL FROM:<>", "250")
	s.expect("RCPT TO:<c@example.org>", "250")
	s.expect("RSET", "250")
	s.expect("RCPT TO:<c@example.org>", "503 5.5.1")
	s.expect("MAIL FROM:<d@example.org>", "250")
	s.expect("RCPT TO:<e@example.org>", "250")
	s.expect("DATA", "354")
	s.send(".\r\n")
	if got := s.reply(); !strings.HasPrefix(got, "250 2.0.0") {
		t.Fatalf("after empty message: %q", got)
	}
	got := ts.got()
	if len(got) != 2 {
		t.Fatalf("%d messages, want 2", len(got))
	}
	if got[0].body != "Subject: test\r\n\r\n.one dot\r\n..two dots\r\nx\r\n" || strings.Join(got[0].rcpts, ",") != "b@example.org,postmaster" || got[0].from.Address() != "a@example.org" {
		t.Fatalf("first message %+v", got[0])
	}
	if got[1].body != "" || got[1].from.Address() != "d@example.org" || strings.Join(got[1].rcpts, ",") != "e@example.org" {
		t.Fatalf("second message %+v", got[1])
	}
	if ts.resets != 1 {
		t.Fatalf("%d resets, want 1 (RSET)", ts.resets)
	}
}

func TestMaxRecipients(t *testing.T) {
	for _, cfgMax := range []int{0, 50, 120} {
		want := cfgMax
		switch {
		case cfgMax == 0:
			want = DefaultMaxRecipients
		case cfgMax < 100:
			want = 100 // RFC 5321 §4.5.3.1.8
		}
		s, _ := mailSession(t, Config{MaxRecipients: cfgMax})
		s.expect("MAIL FROM:<a@example.org>", "250")
		var b strings.Builder
		for i := range want + 1 {
			fmt.Fprintf(&b, "RCPT TO:<r%d@example.org>\r\n", i)
		}
		s.sendAsync(b.String())
		for i := range want {
			if got := s.reply(); !strings.HasPrefix(got, "250 2.1.5") {
				t.Fatalf("max %d: recipient %d: %q", cfgMax, i, got)
			}
		}
		if got := s.reply(); !strings.HasPrefix(got, "452 4.5.3") {
			t.Fatalf("max %d: recipient %d: %q, want 452 4.5.3", cfgMax, want, got)
		}
		s.expect("RSET", "250")
	}
}

func TestPipelining(t *testing.T) {
	s, ts := mailSession(t, Config{Session: &testSession{rcpt: func(r *RcptTo) error {
		if r.Path.Localpart == "unknown" {
			return errorReply(550, "5.1.1", "no such user")
		}
		return nil
	}}})
	// RFC 2920: one write with the whole transaction; replies in order.
	s.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<unknown@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n")
	for _, want := range []string{"250 2.1.0", "250 2.1.5", "550 5.1.1", "250 2.1.5", "354"} {
		if got := s.reply(); !strings.HasPrefix(got, want) {
			t.Fatalf("reply %q, want %q", got, want)
		}
	}
	s.send("hello\r\n.\r\nNOOP\r\nQUIT\r\n")
	for _, want := range []string{"250 2.0.0", "250 2.0.0", "221"} {
		if got := s.reply(); !strings.HasPrefix(got, want) {
			t.Fatalf("reply %q, want %q", got, want)
		}
	}
	if got := ts.got(); len(got) != 1 || strings.Join(got[0].rcpts, ",") != "b@example.org,c@example.org" {
		t.Fatalf("got %+v", got)
	}
}

func TestSessionReplies(t *testing.T) {
	// A Session's 2xx replaces the default text, a plain error is a 451,
	// a 421 ends the session.
	ts := &testSession{
		mail: func(m *MailFrom) error {
			switch m.Path.Localpart {
			case "custom":
				return errorReply(250, "2.1.0", "welcome back")
			case "broken":
				return errors.New("database on fire")
			case "bye":
				return errorReply(421, "4.7.0", "go away")
			}
			return nil
		},
	}
	s, _ := mailSession(t, Config{Session: ts})
	s.expect("MAIL FROM:<custom@example.org>", "250 2.1.0 welcome back")
	s.expect("RSET", "250")
	s.expect("MAIL FROM:<broken@example.org>", "451 4.3.0")
	s.expect("MAIL FROM:<bye@example.org>", "421 4.7.0 go away")
	s.expectClosed()
}

func TestSubmissionNeedsAuth(t *testing.T) {
	s, _ := mailSession(t, Config{Submission: true, Session: &testSession{mechs: []string{"PLAIN"}}})
	s.expect("MAIL FROM:<a@example.org>", "530 5.7.0")
	s.expect("AUTH PLAIN AGEAYg==", "235 2.7.0")
	s.expect("AUTH PLAIN AGEAYg==", "503 5.5.1 already authenticated")
	s.expect("MAIL FROM:<a@example.org>", "250")
}
