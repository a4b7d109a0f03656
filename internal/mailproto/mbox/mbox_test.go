package mbox

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// readAll reads every message from input with the given limit.
func readAll(t testing.TB, input string, max int64) ([]*Message, []Problem) {
	t.Helper()
	r := NewReader(strings.NewReader(input), max)
	var msgs []*Message
	for {
		m, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		msgs = append(msgs, m)
	}
	// After EOF, Next keeps returning EOF.
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("Next after end: got %v, want io.EOF", err)
	}
	return msgs, r.Problems()
}

// crlf turns LF line endings in s into CRLF.
func crlf(s string) string {
	return strings.ReplaceAll(s, "\n", "\r\n")
}

// want describes an expected message.
type want struct {
	offset   int64
	envelope string
	date     time.Time
	data     string // With LF line endings; compared after crlf().
	flags    Flags
	keywords []string
}

func checkMessages(t *testing.T, got []*Message, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		for _, m := range got {
			t.Logf("got message at %d: %q", m.Offset, m.Data)
		}
		t.Fatalf("got %d messages, want %d", len(got), len(wants))
	}
	for i, w := range wants {
		m := got[i]
		if m.Offset != w.offset {
			t.Errorf("message %d: offset %d, want %d", i, m.Offset, w.offset)
		}
		if m.Envelope != w.envelope {
			t.Errorf("message %d: envelope %q, want %q", i, m.Envelope, w.envelope)
		}
		if !m.Date.Equal(w.date) {
			t.Errorf("message %d: date %v, want %v", i, m.Date, w.date)
		}
		if string(m.Data) != crlf(w.data) {
			t.Errorf("message %d: data\n%q\nwant\n%q", i, m.Data, crlf(w.data))
		}
		if m.Flags != w.flags {
			t.Errorf("message %d: flags %+v, want %+v", i, m.Flags, w.flags)
		}
		if !reflect.DeepEqual(m.Keywords, w.keywords) {
			t.Errorf("message %d: keywords %q, want %q", i, m.Keywords, w.keywords)
		}
	}
}

func checkProblems(t *testing.T, got []Problem, wants []Problem) {
	t.Helper()
	if len(got) != len(wants) {
		t.Fatalf("got problems %v, want %d problems like %v", got, len(wants), wants)
	}
	for i, w := range wants {
		if got[i].Offset != w.Offset || !strings.Contains(got[i].Reason, w.Reason) {
			t.Errorf("problem %d: got %v, want offset %d with reason containing %q", i, got[i], w.Offset, w.Reason)
		}
	}
}

func date(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

const msg1 = "From alice@example.org Mon Jan  2 15:04:05 2006\n" +
	"Status: RO\n" +
	"X-Status: AF\n" +
	"X-Keywords: $Label1, Work  todo\n" +
	"X-UID: 12\n" +
	"Subject: one\n" +
	"\n" +
	"Hello\n" +
	">From here on, quoted in mboxo and mboxrd.\n" +
	">>From twice quoted, mboxrd.\n" +
	"> From is not a From_ line.\n" +
	"\n"

const msg2 = "From MAILER-DAEMON Tue Feb 14 09:00:00 2023 +0100\n" +
	"X-IMAPbase: 1234 5\n" +
	"X-Mozilla-Status: 0005\n" +
	"X-Mozilla-Status2: 00000000\n" +
	"Subject: two\n" +
	"  folded\n" +
	"\n" +
	"Body line\n" +
	"From a line not after a blank line stays in the body\n" +
	"\n" +
	"\n" +
	"Two blank lines above, one is content.\n" +
	"\n"

const msg3 = "From bob@example.org not a date\n" +
	"Status: D\n" +
	"X-Status: T\n" +
	"Subject: three\n" +
	"\n" +
	"Last\n"

func TestReader(t *testing.T) {
	mbox := msg1 + msg2 + msg3
	o2 := int64(len(msg1))
	o3 := int64(len(msg1 + msg2))
	wants := []want{
		{0, "alice@example.org", date("2006-01-02T15:04:05Z"),
			"Subject: one\n\nHello\nFrom here on, quoted in mboxo and mboxrd.\n>From twice quoted, mboxrd.\n> From is not a From_ line.\n",
			Flags{Seen: true, Answered: true, Flagged: true}, []string{"$Label1", "Work", "todo"}},
		{o2, "MAILER-DAEMON", date("2023-02-14T09:00:00+01:00"),
			"Subject: two\n  folded\n\nBody line\nFrom a line not after a blank line stays in the body\n\n\nTwo blank lines above, one is content.\n",
			Flags{Seen: true, Flagged: true}, nil},
		{o3, "bob@example.org", time.Time{}, "Subject: three\n\nLast\n", Flags{Deleted: true, Draft: true}, nil},
	}

	tests := []struct {
		name  string
		input string
		wants []want
	}{
		{"LF", mbox, wants},
		// Offsets shift by one per line when every line ending gains a CR.
		{"CRLF", crlf(mbox), func() []want {
			w := append([]want(nil), wants...)
			w[1].offset = int64(len(crlf(msg1)))
			w[2].offset = int64(len(crlf(msg1 + msg2)))
			return w
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msgs, problems := readAll(t, tc.input, 1<<20)
			checkMessages(t, msgs, tc.wants)
			checkProblems(t, problems, nil)
		})
	}
}

func TestReaderDamaged(t *testing.T) {
	big := "From big@example.org Mon Jan  2 15:04:05 2006\nSubject: big\n\n" + strings.Repeat("0123456789abcdef\n", 100) + "\n"
	small := "From small@example.org Mon Jan  2 15:04:05 2006\nSubject: small\n\nok\n\n"
	jan2 := date("2006-01-02T15:04:05Z")

	tests := []struct {
		name     string
		input    string
		max      int64
		wants    []want
		problems []Problem
	}{
		{"empty file", "", 1000, nil, nil},
		{"only blank lines", "\n\r\n\n", 1000, nil, nil},
		{"no From line", "Subject: x\n\nbody\n", 1000, nil,
			[]Problem{{0, "17 bytes before the first"}}},
		{"garbage before first message", "garbage\nmore\n" + small, 1000,
			[]want{{13, "small@example.org", jan2, "Subject: small\n\nok\n", Flags{}, nil}},
			[]Problem{{0, "13 bytes before the first"}}},
		{"message over limit skipped", small + big + small, 1000,
			[]want{
				{0, "small@example.org", jan2, "Subject: small\n\nok\n", Flags{}, nil},
				{int64(len(small + big)), "small@example.org", jan2, "Subject: small\n\nok\n", Flags{}, nil},
			},
			[]Problem{{int64(len(small)), fmt.Sprintf("message skipped: %d bytes in the mbox, over the limit of 1000 bytes", len(big))}}},
		{"line over limit skipped", small + "From x Mon Jan  2 15:04:05 2006\nSubject: " + strings.Repeat("x", 200) + "\n\nb\n\n" + small, 100,
			[]want{
				{0, "small@example.org", jan2, "Subject: small\n\nok\n", Flags{}, nil},
				{int64(len(small)) + 32 + 9 + 200 + 5, "small@example.org", jan2, "Subject: small\n\nok\n", Flags{}, nil},
			},
			[]Problem{{int64(len(small)), "over the limit of 100 bytes"}}},
		{"truncated mid-header", small + "From x Mon Jan  2 15:04:05 2006\nSubject: cut\nTo: som", 1000,
			[]want{
				{0, "small@example.org", jan2, "Subject: small\n\nok\n", Flags{}, nil},
				{int64(len(small)), "x", jan2, "Subject: cut\nTo: som\n\n", Flags{}, nil},
			},
			[]Problem{{int64(len(small)), "truncated in its header"}}},
		{"truncated mid-body", small + "From x Mon Jan  2 15:04:05 2006\nStatus: R\nSubject: cut\n\nline one\nline t", 1000,
			[]want{
				{0, "small@example.org", jan2, "Subject: small\n\nok\n", Flags{}, nil},
				{int64(len(small)), "x", jan2, "Subject: cut\n\nline one\nline t\n", Flags{Seen: true}, nil},
			},
			[]Problem{{int64(len(small)), "truncated in its body"}}},
		{"truncated after From line", small + "From x Mon Jan  2 15:04:05 2006\n", 1000,
			[]want{{0, "small@example.org", jan2, "Subject: small\n\nok\n", Flags{}, nil}},
			[]Problem{{int64(len(small)), "nothing after the \"From \" line"}}},
		{"header without empty line", "From x Mon Jan  2 15:04:05 2006\nSubject: h\n", 1000,
			[]want{{0, "x", jan2, "Subject: h\n\n", Flags{}, nil}}, nil},
		{"bad keywords dropped", "From x Mon Jan  2 15:04:05 2006\nX-Keywords: good,bad\\one (paren) Good\n\nb\n", 1000,
			[]want{{0, "x", jan2, "\nb\n", Flags{}, []string{"good"}}},
			[]Problem{{0, `keyword "bad\\one" dropped`}, {0, `keyword "(paren)" dropped`}}},
		{"bad X-Mozilla-Status", "From x Mon Jan  2 15:04:05 2006\nX-Mozilla-Status: zz\nSubject: s\n\nb\n", 1000,
			[]want{{0, "x", jan2, "Subject: s\n\nb\n", Flags{}, nil}},
			[]Problem{{0, `X-Mozilla-Status "zz"`}}},
		{"header ended right before next From", "From a Mon Jan  2 15:04:05 2006\nSubject: a\n\nFrom b Mon Jan  2 15:04:05 2006\nSubject: b\n\nbody\n", 1000,
			[]want{
				{0, "a", jan2, "Subject: a\n\n", Flags{}, nil},
				{int64(len("From a Mon Jan  2 15:04:05 2006\nSubject: a\n\n")), "b", jan2, "Subject: b\n\nbody\n", Flags{}, nil},
			}, nil},
		{"date forms", "From a Mon Jan  2 15:04:05 MST 2006\n\nx\n\nFrom b Mon Jan 2 15:04:05 -0700 2006\n\ny\n", 1000,
			[]want{
				{0, "a", time.Date(2006, 1, 2, 15, 4, 5, 0, time.FixedZone("MST", 0)), "\nx\n", Flags{}, nil},
				{int64(len("From a Mon Jan  2 15:04:05 MST 2006\n\nx\n\n")), "b", date("2006-01-02T15:04:05-07:00"), "\ny\n", Flags{}, nil},
			}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msgs, problems := readAll(t, tc.input, tc.max)
			checkMessages(t, msgs, tc.wants)
			checkProblems(t, problems, tc.problems)
		})
	}
}

// TestReaderSmallReads checks that results do not depend on how the input
// arrives: one byte at a time, and lines longer than the read buffer.
func TestReaderSmallReads(t *testing.T) {
	long := strings.Repeat("y", readBufSize*2+3)
	input := crlf(msg1) + "From z Mon Jan  2 15:04:05 2006\r\nSubject: long\r\n\r\n" + long + "\r\n>From " + long + "\r\n"
	for _, tc := range []struct {
		name string
		r    io.Reader
	}{
		{"whole", strings.NewReader(input)},
		{"one byte", iotest.OneByteReader(strings.NewReader(input))},
		{"half", iotest.HalfReader(strings.NewReader(input))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(tc.r, 1<<20)
			m1, err := r.Next()
			if err != nil {
				t.Fatalf("first message: %v", err)
			}
			if !strings.HasPrefix(string(m1.Data), "Subject: one\r\n\r\nHello\r\n") {
				t.Errorf("first message data %q", m1.Data)
			}
			m2, err := r.Next()
			if err != nil {
				t.Fatalf("second message: %v", err)
			}
			wantData := "Subject: long\r\n\r\n" + long + "\r\nFrom " + long + "\r\n"
			if string(m2.Data) != wantData {
				t.Errorf("long message: got %d bytes, want %d", len(m2.Data), len(wantData))
			}
			if m2.Offset != int64(len(crlf(msg1))) {
				t.Errorf("long message offset %d, want %d", m2.Offset, len(crlf(msg1)))
			}
			if _, err := r.Next(); err != io.EOF {
				t.Errorf("after last message: %v, want io.EOF", err)
			}
			if p := r.Problems(); len(p) != 0 {
				t.Errorf("problems: %v", p)
			}
		})
	}
}

func TestReaderReadError(t *testing.T) {
	failure := errors.New("disk on fire")
	r := NewReader(io.MultiReader(strings.NewReader(msg1), iotest.ErrReader(failure)), 1<<20)
	_, err := r.Next()
	if !errors.Is(err, failure) {
		t.Fatalf("got %v, want the read error", err)
	}
	if _, err2 := r.Next(); !errors.Is(err2, failure) {
		t.Fatalf("second Next: got %v, want the read error again", err2)
	}
}

func FuzzReader(f *testing.F) {
	f.Add([]byte(msg1+msg2+msg3), int64(1000))
	f.Add([]byte(crlf(msg1+msg2)), int64(100))
	f.Add([]byte("garbage\nFrom x\n\n\nFrom y\nA: b\n c\n\n>From z"), int64(10))
	f.Add([]byte("From \rFrom \n\r\n"), int64(1))
	f.Add([]byte(""), int64(0))
	f.Fuzz(func(t *testing.T, data []byte, max int64) {
		if max > 1<<20 || max < -1 {
			max = 1 << 20
		}
		r := NewReader(bytes.NewReader(data), max)
		limit := max
		if limit <= 0 {
			limit = 100 * 1024 * 1024
		}
		last := int64(-1)
		for {
			m, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("Next on a bytes.Reader: %v", err)
			}
			if m.Offset <= last || m.Offset >= int64(len(data)) {
				t.Fatalf("offset %d after %d, input %d bytes", m.Offset, last, len(data))
			}
			last = m.Offset
			if int64(len(m.Data)) > limit {
				t.Fatalf("message of %d bytes, limit %d", len(m.Data), limit)
			}
			if !bytes.HasPrefix(data[m.Offset:], []byte("From ")) {
				t.Fatalf("offset %d is not at a From_ line", m.Offset)
			}
		}
		for _, p := range r.Problems() {
			if p.Offset < 0 || p.Offset > int64(len(data)) {
				t.Fatalf("problem offset %d outside input of %d bytes", p.Offset, len(data))
			}
		}
	})
}

func BenchmarkReader(b *testing.B) {
	// 10000 messages of about 10 KiB: a 100 MiB-class mbox.
	var buf bytes.Buffer
	body := strings.Repeat(strings.Repeat("x", 76)+"\n", 130)
	for i := range 10000 {
		fmt.Fprintf(&buf, "From user%d@example.org Mon Jan  2 15:04:05 2006\nStatus: RO\nX-Keywords: a b\nSubject: message %d\n\n%s>From quoted\n\n", i, i, body)
	}
	input := buf.Bytes()
	b.SetBytes(int64(len(input)))
	b.ResetTimer()
	for b.Loop() {
		r := NewReader(bytes.NewReader(input), 1<<20)
		n := 0
		for {
			_, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 10000 {
			b.Fatalf("read %d messages, want 10000", n)
		}
	}
}
