package smtp

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// dataSession is a session with a transaction ready for DATA or BDAT.
func dataSession(t *testing.T, cfg Config) (*session, *testSession) {
	t.Helper()
	s, ts := mailSession(t, cfg)
	s.expect("MAIL FROM:<a@example.org>", "250")
	s.expect("RCPT TO:<b@example.org>", "250")
	return s, ts
}

// TestSmuggling sends the known smuggling vectors: a bare LF or CR around a
// dot must never end the data, and must never let the rest pass for a
// second message.
func TestSmuggling(t *testing.T) {
	vectors := []string{"\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r", "\r\n.\r", ".\n", "\r\n.\r\r\n"}
	for _, v := range vectors {
		t.Run(strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(v), func(t *testing.T) {
			s, ts := dataSession(t, Config{})
			s.expect("DATA", "354")
			smuggled := "MAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n"
			s.send("Subject: first\r\n\r\nbody" + v + smuggled + ".\r\n")
			if got := s.reply(); !strings.HasPrefix(got, "554 5.6.0") {
				t.Fatalf("reply %q, want 554 5.6.0 for the bare line ending", got)
			}
			// The whole input was one (refused) message; the session
			// goes on with a clean state.
			s.expect("RCPT TO:<c@example.org>", "503 5.5.1")
			s.expect("NOOP", "250")
			if got := ts.got(); len(got) != 0 {
				t.Fatalf("session stored %d messages, want none", len(got))
			}
			if !errors.Is(ts.readErr, ErrBareLineEnding) {
				t.Fatalf("body read error %v, want ErrBareLineEnding", ts.readErr)
			}
		})
	}
}

func TestDataEndOnlyAfterCRLF(t *testing.T) {
	s, ts := dataSession(t, Config{})
	s.expect("DATA", "354")
	// A line starting with a dot but longer, and a dot at the very start
	// of the data, are content.
	s.send(".\x20not the end\r\n.. \r\nlast\r\n.\r\n")
	if got := s.reply(); got != "250 2.0.0 message accepted" {
		t.Fatalf("reply %q", got)
	}
	if got := ts.got(); len(got) != 1 || got[0].body != "\x20not the end\r\n. \r\nlast\r\n" {
		t.Fatalf("got %+v", got)
	}
}

func TestDataLongLines(t *testing.T) {
	// Lines longer than the read buffer, with a CRLF split across reads,
	// stay intact.
	s, ts := dataSession(t, Config{})
	s.expect("DATA", "354")
	long := strings.Repeat("x", 4095) + "\r\n" + strings.Repeat("y", 9000) + "\r\n"
	s.sendAsync(long + ".\r\n")
	if got := s.reply(); got != "250 2.0.0 message accepted" {
		t.Fatalf("reply %q", got)
	}
	if got := ts.got(); len(got) != 1 || got[0].body != long {
		t.Fatalf("message differs from what was sent")
	}
}

func TestDataTooLarge(t *testing.T) {
	s, ts := dataSession(t, Config{MaxMessageSize: 100})
	s.expect("DATA", "354")
	s.sendAsync(strings.Repeat("0123456789\r\n", 20) + ".\r\n")
	if got := s.reply(); !strings.HasPrefix(got, "552 5.3.4") {
		t.Fatalf("reply %q, want 552 5.3.4", got)
	}
	s.expect("NOOP", "250")
	if len(ts.got()) != 0 {
		t.Fatalf("too large message stored")
	}
	// Far beyond the limit, the server stops reading and closes.
	s2, _ := dataSession(t, Config{MaxMessageSize: 100})
	s2.expect("DATA", "354")
	s2.sendAsync(strings.Repeat("0123456789\r\n", 200000) + ".\r\n")
	if got := s2.reply(); !strings.HasPrefix(got, "552 5.3.4") || !strings.Contains(got, "closing") {
		t.Fatalf("reply %q, want 552 closing", got)
	}
}

func TestDataTimeout(t *testing.T) {
	s, _ := dataSession(t, Config{CommandTimeout: 200 * time.Millisecond})
	s.expect("DATA", "354")
	s.send("Subject: x\r\n\r\npartial")
	if got := s.reply(); !strings.HasPrefix(got, "421 4.4.2") {
		t.Fatalf("reply %q, want 421 4.4.2", got)
	}
}

func TestBDATChunks(t *testing.T) {
	s, ts := dataSession(t, Config{})
	s.send("BDAT 12\r\nSubject: hi\r")
	if got := s.reply(); got != "250 2.0.0 12 octets received" {
		t.Fatalf("first chunk: %q", got)
	}
	s.send("BDAT 7 LAST\r\n\n\r\nbody")
	if got := s.reply(); got != "250 2.0.0 message accepted" {
		t.Fatalf("last chunk: %q", got)
	}
	if got := ts.got(); len(got) != 1 || got[0].body != "Subject: hi\r\n\r\nbody" {
		t.Fatalf("got %+v", got)
	}
	// BDAT 0 LAST ends an empty message; pipelined chunks get one reply
	// each.
	s.expect("MAIL FROM:<a@example.org>", "250")
	s.expect("RCPT TO:<b@example.org>", "250")
	s.send("BDAT 3\r\nabcBDAT 2\r\n\r\nBDAT 0 LAST\r\n")
	for _, want := range []string{"250 2.0.0 3 octets", "250 2.0.0 2 octets", "250 2.0.0 message accepted"} {
		if got := s.reply(); !strings.HasPrefix(got, want) {
			t.Fatalf("reply %q, want %q", got, want)
		}
	}
	if got := ts.got(); len(got) != 2 || got[1].body != "abc\r\n" {
		t.Fatalf("got %+v", got)
	}
}

func TestBDATRefused(t *testing.T) {
	// Outside a transaction the chunk is read and discarded: its content
	// is never taken for commands.
	s, ts := mailSession(t, Config{})
	s.send("BDAT 28\r\nMAIL FROM:<evil@example.org>")
	if got := s.reply(); !strings.HasPrefix(got, "503 5.5.1") {
		t.Fatalf("reply %q, want 503", got)
	}
	s.expect("RCPT TO:<x@example.org>", "503 5.5.1")
	// A bare LF inside chunks is refused like in DATA.
	s.expect("MAIL FROM:<a@example.org>", "250")
	s.expect("RCPT TO:<b@example.org>", "250")
	s.send("BDAT 5 LAST\r\na\nb\r\n")
	if got := s.reply(); !strings.HasPrefix(got, "554 5.6.0") {
		t.Fatalf("reply %q, want 554 5.6.0", got)
	}
	// A bare CR at the very end too.
	s.expect("MAIL FROM:<a@example.org>", "250")
	s.expect("RCPT TO:<b@example.org>", "250")
	s.send("BDAT 2 LAST\r\na\r")
	if got := s.reply(); !strings.HasPrefix(got, "554 5.6.0") {
		t.Fatalf("reply %q, want 554 5.6.0", got)
	}
	// Too large.
	s.expect("MAIL FROM:<a@example.org>", "250")
	s.expect("RCPT TO:<b@example.org>", "250")
	if len(ts.got()) != 0 {
		t.Fatalf("refused messages were stored")
	}
	// RSET between chunks ends the transaction.
	s.send("BDAT 3\r\nabc")
	if got := s.reply(); got != "250 2.0.0 3 octets received" {
		t.Fatalf("chunk reply %q", got)
	}
	s.expect("RSET", "250 2.0.0 OK")
	s.expect("BDAT 0 LAST", "503 5.5.1")
	if len(ts.got()) != 0 {
		t.Fatalf("interrupted message was stored")
	}
	// A BDAT without a usable size ends the session.
	s.expect("BDAT x", "501 5.5.4")
	s.expectClosed()

	// So does a chunk no message could be, outside a transaction.
	s2, _ := mailSession(t, Config{MaxMessageSize: 1000})
	s2.expect("BDAT 999999999999", "552 5.3.4")
	s2.expectClosed()
}

func TestBDATTooLarge(t *testing.T) {
	s, ts := dataSession(t, Config{MaxMessageSize: 10})
	s.send("BDAT 20 LAST\r\n01234567890123456789")
	if got := s.reply(); !strings.HasPrefix(got, "552 5.3.4") {
		t.Fatalf("reply %q, want 552", got)
	}
	s.expect("NOOP", "250")
	if len(ts.got()) != 0 {
		t.Fatalf("too large message stored")
	}
}

func TestBareLineEndingScan(t *testing.T) {
	tests := []struct {
		data   string
		prevCR bool
		bare   bool
	}{
		{"abc\r\n", false, false},
		{"\r\n", false, false},
		{"\n", true, false},
		{"\n", false, true},
		{"a\nb", false, true},
		{"a\rb", false, true},
		{"abc\r", false, false}, // continues in the next piece
		{"x", true, true},
		{"", true, true},
		{"\r\r\n", false, true},
	}
	for _, tt := range tests {
		if got := bareLineEnding([]byte(tt.data), tt.prevCR, false); got != tt.bare {
			t.Errorf("bareLineEnding(%q, prevCR %v) = %v, want %v", tt.data, tt.prevCR, got, tt.bare)
		}
	}
}
