package mbox

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// exported is what Reader should give back for a message written by Writer:
// lines end in CRLF (CRs before a line end removed, a last line without
// newline completed), status fields of the message's own header removed with
// their continuation lines, and a header without an empty line after it
// completed with one. It is written from the rules, not from the Writer's
// code, so the two check each other.
func exported(msg []byte) []byte {
	s := string(msg)
	if s == "" {
		return []byte("\r\n")
	}
	s = strings.TrimSuffix(s, "\n")
	lines := strings.Split(s, "\n")
	var out []string
	inHeader, skipping := true, false
	for _, l := range lines {
		l = strings.TrimRight(l, "\r")
		if inHeader {
			if l == "" {
				inHeader = false
			} else if l[0] == ' ' || l[0] == '\t' {
				if skipping {
					continue
				}
			} else {
				name, _, ok := strings.Cut(l, ":")
				skipping = ok && isStatusField(strings.TrimRight(name, " \t"))
				if skipping {
					continue
				}
			}
		}
		out = append(out, l)
	}
	if inHeader {
		out = append(out, "")
	}
	return []byte(strings.Join(out, "\r\n") + "\r\n")
}

// entry is one message given to the Writer.
type entry struct {
	envelope string
	received time.Time
	flags    Flags
	keywords []string
	msg      string
}

// writeAll writes entries to an mbox and returns it.
func writeAll(t testing.TB, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for i, e := range entries {
		if err := w.WriteMessage(e.envelope, e.received, e.flags, e.keywords, strings.NewReader(e.msg)); err != nil {
			t.Fatalf("WriteMessage %d: %v", i, err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	return buf.Bytes()
}

// checkRoundTrip reads mbox back and compares each message with its entry.
func checkRoundTrip(t testing.TB, mbox []byte, entries []entry) {
	t.Helper()
	r := NewReader(bytes.NewReader(mbox), 0)
	for i, e := range entries {
		m, err := r.Next()
		if err != nil {
			t.Fatalf("message %d: Next: %v\nmbox:\n%q", i, err, mbox)
		}
		if want := exported([]byte(e.msg)); !bytes.Equal(m.Data, want) {
			t.Fatalf("message %d: data\n%q\nwant\n%q\nmbox:\n%q", i, m.Data, want, mbox)
		}
		wantEnv := e.envelope
		if wantEnv == "" || wantEnv == "<>" {
			wantEnv = "MAILER-DAEMON"
		}
		if m.Envelope != wantEnv {
			t.Errorf("message %d: envelope %q, want %q", i, m.Envelope, wantEnv)
		}
		if want := e.received.Truncate(time.Second); !m.Date.Equal(want) {
			t.Errorf("message %d: date %v, want %v", i, m.Date, want)
		}
		if m.Flags != e.flags {
			t.Errorf("message %d: flags %+v, want %+v", i, m.Flags, e.flags)
		}
		if want := uniqueFold(e.keywords); !reflect.DeepEqual(m.Keywords, want) {
			t.Errorf("message %d: keywords %q, want %q", i, m.Keywords, want)
		}
	}
	if m, err := r.Next(); err != io.EOF {
		t.Fatalf("after %d messages: got %v, %v; want io.EOF", len(entries), m, err)
	}
	if p := r.Problems(); len(p) != 0 {
		t.Errorf("problems reading back: %v", p)
	}
}

// uniqueFold returns keywords without case-insensitive repeats, nil if none.
func uniqueFold(keywords []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, k := range keywords {
		if !seen[strings.ToLower(k)] {
			seen[strings.ToLower(k)] = true
			out = append(out, k)
		}
	}
	return out
}

var when = time.Date(2024, 3, 9, 7, 5, 3, 0, time.UTC)

func TestWriterFormat(t *testing.T) {
	// What mutt or Dovecot see: the exact bytes of a small mbox.
	entries := []entry{
		{"alice@example.org", time.Date(2024, 3, 9, 8, 5, 3, 999, time.FixedZone("CET", 3600)),
			Flags{Seen: true, Answered: true, Flagged: true, Draft: true, Deleted: true}, []string{"$Label1", "work", "Work"},
			"Subject: hi\r\nStatus: U\r\n  continued\r\n\r\nFrom me\r\n>From you\r\n\r\n"},
		{"", when, Flags{}, nil, "Subject: two\n\nno newline"},
		{"a b\tc@example.org", when, Flags{}, nil, " folded first\nSubject: x\n"},
	}
	got := string(writeAll(t, entries))
	want := "From alice@example.org Sat Mar  9 07:05:03 2024\n" +
		"Status: RO\n" +
		"X-Status: AFTD\n" +
		"X-Keywords: $Label1 work\n" +
		"Subject: hi\n" +
		"\n" +
		">From me\n" +
		">>From you\n" +
		"\n" +
		"\n" +
		"From MAILER-DAEMON Sat Mar  9 07:05:03 2024\n" +
		"Status: O\n" +
		"Subject: two\n" +
		"\n" +
		"no newline\n" +
		"\n" +
		"From a_b_c@example.org Sat Mar  9 07:05:03 2024\n" +
		" folded first\n" +
		"Status: O\n" +
		"Subject: x\n" +
		"\n"
	if got != want {
		t.Errorf("mbox:\n%s\nwant:\n%s", got, want)
	}
}

func TestWriterRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		e    entry
	}{
		{"plain CRLF", entry{"bob@example.org", when, Flags{Seen: true}, []string{"$Forwarded"}, "Subject: a\r\nTo: b@example.org\r\n\r\nbody\r\n"}},
		{"plain LF", entry{"bob@example.org", when, Flags{}, nil, "Subject: a\n\nbody\n"}},
		{"From lines", entry{"x@example.org", when, Flags{Flagged: true}, nil,
			"Subject: q\n\nFrom start\n>From one\n>>From two\n>>>From three\n> From not\nFrom\nFromage\n\nFrom after blank\n"}},
		{"From line in header", entry{"x@example.org", when, Flags{}, nil, "From x\n>From y\nSubject: s\n\nb\n"}},
		{"no trailing newline", entry{"x@example.org", when, Flags{Draft: true}, nil, "Subject: s\n\nlast line"}},
		{"no trailing newline From", entry{"x@example.org", when, Flags{}, nil, "Subject: s\n\nFrom x"}},
		{"header only", entry{"x@example.org", when, Flags{}, nil, "Subject: only\r\n"}},
		{"header only no newline", entry{"x@example.org", when, Flags{}, nil, "Subject: only"}},
		{"empty", entry{"x@example.org", when, Flags{Seen: true}, []string{"k"}, ""}},
		{"blank lines at end", entry{"x@example.org", when, Flags{}, nil, "Subject: s\n\nb\n\n\n"}},
		{"blank lines only", entry{"x@example.org", when, Flags{}, nil, "\n\n\n"}},
		{"status fields of the message dropped", entry{"x@example.org", when, Flags{Answered: true}, nil,
			"Status: RO\nX-Status: F\n  D\nX-Keywords: junk\nX-UID: 4\nX-Mozilla-Status: 0001\nX-IMAPbase: 1 2\nSubject: s\nX-Statusx: kept\n\nStatus: R in the body stays\n"}},
		{"CRs", entry{"x@example.org", when, Flags{}, nil, "Subject: s\r\r\n\r\nbare\rCR\r\nend\r\r"}},
		{"CR line in header", entry{"x@example.org", when, Flags{}, nil, "Subject: s\n\r\r\nStatus: R body\n"}},
		{"mixed endings", entry{"x@example.org", when, Flags{}, nil, "A: 1\r\nB: 2\n\r\nx\ny\r\n"}},
		{"folded first line", entry{"x@example.org", when, Flags{Seen: true}, []string{"a"}, "\tcontinued\nSubject: s\n\nb\n"}},
		{"long lines", entry{"x@example.org", when, Flags{}, nil,
			"Subject: " + strings.Repeat("s", 3*readBufSize) + "\n\n" + strings.Repeat(">", 2*readBufSize) + "From long\n" +
				strings.Repeat("b", readBufSize-1) + "\r\n" + strings.Repeat("c", readBufSize) + strings.Repeat("\r", readBufSize+3) + "\n"}},
		{"long '>' run not From", entry{"x@example.org", when, Flags{}, nil, "S: s\n\n" + strings.Repeat(">", readBufSize+1) + "Fro\n"}},
		{"long CR run in header", entry{"x@example.org", when, Flags{}, nil, "S: s\n" + strings.Repeat("\r", readBufSize*2) + "\nStatus: body\n"}},
		{"null sender", entry{"<>", when, Flags{}, nil, "S: s\n\nb\n"}},
		{"keywords repeated", entry{"x@example.org", when, Flags{}, []string{"Work", "work", "$Junk", "WORK"}, "S: s\n\nb\n"}},
		{"all flags", entry{"x@example.org", when, Flags{true, true, true, true, true}, nil, "S: s\n\nb\n"}},
		{"old date", entry{"x@example.org", time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), Flags{}, nil, "S: s\n\nb\n"}},
		{"sub-second date", entry{"x@example.org", when.Add(999 * time.Millisecond), Flags{}, nil, "S: s\n\nb\n"}},
		{"zero date", entry{"x@example.org", time.Time{}, Flags{}, nil, "S: s\n\nb\n"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Alone, and between two other messages.
			checkRoundTrip(t, writeAll(t, []entry{tc.e}), []entry{tc.e})
			three := []entry{tests[0].e, tc.e, tests[1].e}
			checkRoundTrip(t, writeAll(t, three), three)
		})
	}
}

// TestWriterSmallReads checks that the output does not depend on how the
// message arrives.
func TestWriterSmallReads(t *testing.T) {
	msg := "\tfold\nStatus: R\n more\nSubject: s\r\n\r\n>>From x\r\nFrom y\n" + strings.Repeat(">", 100) + "From z\nend\r\r"
	want := writeAll(t, []entry{{"a@example.org", when, Flags{Seen: true}, nil, msg}})
	for name, r := range map[string]io.Reader{
		"one byte": iotest.OneByteReader(strings.NewReader(msg)),
		"half":     iotest.HalfReader(strings.NewReader(msg)),
		"data+EOF": iotest.DataErrReader(strings.NewReader(msg)),
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			w := NewWriter(&buf)
			if err := w.WriteMessage("a@example.org", when, Flags{Seen: true}, nil, r); err != nil {
				t.Fatal(err)
			}
			w.Flush()
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("got\n%q\nwant\n%q", buf.Bytes(), want)
			}
		})
	}
}

// randomMessage makes a message from pieces that matter to mbox: From lines
// with and without quoting, blank lines, CRLF and LF, status fields, folding,
// and sometimes no final newline.
func randomMessage(rng *rand.Rand) string {
	pieces := []string{"From ", ">From ", ">>From ", "From", "Status: RO", "X-Keywords: a", " folded", "\t",
		"Subject: s", "", "\r", "text", ">", "X-Mozilla-Status: 1", "From x@y Mon Jan  2 15:04:05 2006"}
	var b strings.Builder
	for range rng.IntN(30) {
		for range 1 + rng.IntN(3) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		if rng.IntN(2) == 0 {
			b.WriteString("\r\n")
		} else {
			b.WriteString("\n")
		}
	}
	s := b.String()
	if rng.IntN(4) == 0 {
		s = strings.TrimRight(s, "\r\n")
	}
	return s
}

func TestWriterRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 1))
	kws := []string{"$Junk", "NonJunk", "work", "Work", "x-1"}
	var entries []entry
	for i := range 500 {
		var kw []string
		for _, k := range kws {
			if rng.IntN(3) == 0 {
				kw = append(kw, k)
			}
		}
		entries = append(entries, entry{
			envelope: fmt.Sprintf("u%d@example.org", i),
			received: time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)),
			flags:    Flags{rng.IntN(2) == 0, rng.IntN(2) == 0, rng.IntN(2) == 0, rng.IntN(2) == 0, rng.IntN(2) == 0},
			keywords: kw,
			msg:      randomMessage(rng),
		})
	}
	checkRoundTrip(t, writeAll(t, entries), entries)
}

func TestWriterErrors(t *testing.T) {
	t.Run("bad keyword", func(t *testing.T) {
		for _, kw := range []string{"two words", "a,b", "", "\\Seen"} {
			var buf bytes.Buffer
			w := NewWriter(&buf)
			err := w.WriteMessage("a@example.org", when, Flags{}, []string{"ok", kw}, strings.NewReader("S: s\n\nb\n"))
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", kw)) {
				t.Errorf("keyword %q: got error %v, want one naming the keyword", kw, err)
			}
			w.Flush()
			if buf.Len() != 0 {
				t.Errorf("keyword %q: %d bytes written for a refused message", kw, buf.Len())
			}
		}
	})

	t.Run("read error ends the message", func(t *testing.T) {
		failure := errors.New("disk on fire")
		var buf bytes.Buffer
		w := NewWriter(&buf)
		err := w.WriteMessage("a@example.org", when, Flags{}, nil, io.MultiReader(strings.NewReader("Subject: cut\n\npart"), iotest.ErrReader(failure)))
		if !errors.Is(err, failure) {
			t.Fatalf("got %v, want the read error", err)
		}
		if err := w.WriteMessage("b@example.org", when, Flags{Seen: true}, nil, strings.NewReader("Subject: next\n\nb\n")); err != nil {
			t.Fatalf("message after a read error: %v", err)
		}
		w.Flush()
		msgs, problems := readAll(t, buf.String(), 0)
		if len(msgs) != 2 || string(msgs[0].Data) != "Subject: cut\r\n\r\npart\r\n" || string(msgs[1].Data) != "Subject: next\r\n\r\nb\r\n" || !msgs[1].Flags.Seen {
			t.Errorf("read back %d messages: %q / %q", len(msgs), msgs[0].Data, msgs[len(msgs)-1].Data)
		}
		if len(problems) != 0 {
			t.Errorf("problems: %v", problems)
		}
	})

	t.Run("write error sticks", func(t *testing.T) {
		failure := errors.New("disk full")
		w := NewWriter(failingWriter{failure})
		big := "Subject: big\n\n" + strings.Repeat("x", 2*readBufSize) + "\n"
		err := w.WriteMessage("a@example.org", when, Flags{}, nil, strings.NewReader(big))
		if !errors.Is(err, failure) {
			t.Fatalf("WriteMessage: got %v, want the write error", err)
		}
		if err := w.WriteMessage("a@example.org", when, Flags{}, nil, strings.NewReader("S: s\n\n")); !errors.Is(err, failure) {
			t.Errorf("next WriteMessage: got %v, want the write error", err)
		}
		if err := w.Flush(); !errors.Is(err, failure) {
			t.Errorf("Flush: got %v, want the write error", err)
		}
	})
}

type failingWriter struct{ err error }

func (f failingWriter) Write([]byte) (int, error) { return 0, f.err }

// TestWriterStreams checks that a large message is not held in memory.
func TestWriterStreams(t *testing.T) {
	const size = 32 << 20
	line := strings.Repeat("x", 70) + "\r\n"
	src := io.MultiReader(strings.NewReader("Subject: big\r\n\r\n"), &repeatReader{line: line, left: size})
	w := NewWriter(io.Discard)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := w.WriteMessage("a@example.org", when, Flags{}, nil, src); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Errorf("writing a %d MiB message allocated %d KiB, want under 1 MiB", size>>20, alloc>>10)
	}
}

// repeatReader returns line again and again, left bytes in all.
type repeatReader struct {
	line string
	off  int
	left int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && r.left > 0 {
		c := copy(p[n:min(len(p), n+r.left)], r.line[r.off:])
		n += c
		r.left -= c
		r.off = (r.off + c) % len(r.line)
	}
	return n, nil
}

func TestMaildirInfo(t *testing.T) {
	tests := []struct {
		flags    Flags
		letters  string
		want     string
		readBack string // Keyword letters ParseMaildirInfo returns.
	}{
		{Flags{}, "", ":2,", ""},
		{Flags{Seen: true}, "", ":2,S", ""},
		{Flags{true, true, true, true, true}, "", ":2,DFRST", ""},
		{Flags{Answered: true, Draft: true}, "cab", ":2,DRabc", "abc"},
		{Flags{Flagged: true}, "zaaz", ":2,Faz", "az"},
		{Flags{Deleted: true}, "A1b", ":2,Tb", "b"},
	}
	for _, tc := range tests {
		got := MaildirInfo(tc.flags, []byte(tc.letters))
		if got != tc.want {
			t.Errorf("MaildirInfo(%+v, %q) = %q, want %q", tc.flags, tc.letters, got, tc.want)
		}
		flags, letters, ok := ParseMaildirInfo("cur/1700000000.M1P2.host,S=10" + got)
		if !ok || flags != tc.flags || string(letters) != tc.readBack {
			t.Errorf("ParseMaildirInfo(%q) = %+v %q %v, want %+v %q true", got, flags, letters, ok, tc.flags, tc.readBack)
		}
	}
}

func FuzzWriterRoundTrip(f *testing.F) {
	f.Add("a@example.org", int64(1700000000), uint8(0x1f), "$Junk work", []byte("Subject: s\r\n\r\nFrom x\r\n>From y\r\n"))
	f.Add("", int64(0), uint8(0), "", []byte(""))
	f.Add("a b", int64(-1), uint8(3), "a A", []byte("Status: R\n x\n\n>>From \r\r\nlast"))
	f.Add("x", int64(253402300799), uint8(8), "k", []byte(" f\nX-IMAP: 1\n\r\n\n\n"))
	f.Fuzz(func(t *testing.T, envelope string, unix int64, flagBits uint8, keywords string, msg []byte) {
		// The From_ line carries years 0..9999 only; outside that the
		// date is lost by design.
		if unix < -62135596800 || unix > 253402300799 {
			unix = 0
		}
		var kw []string
		for k := range strings.FieldsSeq(keywords) {
			if IsAtom(k) && !strings.Contains(k, ",") {
				kw = append(kw, k)
			}
		}
		flags := Flags{flagBits&1 != 0, flagBits&2 != 0, flagBits&4 != 0, flagBits&8 != 0, flagBits&16 != 0}
		var buf bytes.Buffer
		w := NewWriter(&buf)
		if err := w.WriteMessage(envelope, time.Unix(unix, 0), flags, kw, bytes.NewReader(msg)); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		r := NewReader(&buf, 0)
		m, err := r.Next()
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if want := exported(msg); !bytes.Equal(m.Data, want) {
			t.Fatalf("data\n%q\nwant\n%q", m.Data, want)
		}
		if m.Flags != flags || !reflect.DeepEqual(m.Keywords, uniqueFold(kw)) {
			t.Fatalf("flags %+v keywords %q, want %+v %q", m.Flags, m.Keywords, flags, uniqueFold(kw))
		}
		if !m.Date.Equal(time.Unix(unix, 0)) {
			t.Fatalf("date %v, want %v", m.Date, time.Unix(unix, 0).UTC())
		}
		if m.Envelope == "" || strings.ContainsAny(m.Envelope, " \t\r\n") {
			t.Fatalf("envelope %q", m.Envelope)
		}
		if _, err := r.Next(); err != io.EOF {
			t.Fatalf("second message in a one-message mbox: %v", err)
		}
	})
}

func BenchmarkWriter(b *testing.B) {
	body := strings.Repeat(strings.Repeat("x", 76)+"\r\n", 130)
	msg := "Subject: bench\r\nTo: a@example.org\r\n\r\n" + body + "From quoted\r\n"
	w := NewWriter(io.Discard)
	r := strings.NewReader(msg)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		r.Reset(msg)
		if err := w.WriteMessage("a@example.org", when, Flags{Seen: true}, []string{"a", "b"}, r); err != nil {
			b.Fatal(err)
		}
	}
}
