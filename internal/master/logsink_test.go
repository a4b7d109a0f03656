package master

import (
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// sinkDeadline bounds every wait in these tests; it only catches a hang.
const sinkDeadline = 30 * time.Second

// waitClosed fails the test when ch is not closed within sinkDeadline.
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(sinkDeadline):
		t.Fatalf("%s did not finish within %s", what, sinkDeadline)
	}
}

// drained returns a channel closed when every drain goroutine of s returned.
func drained(s *logSink) <-chan struct{} {
	ch := make(chan struct{})
	go func() { s.wg.Wait(); close(ch) }()
	return ch
}

// TestLogSinkSlowOutput writes far more than a pipe buffer through a worker
// stderr pipe while the log output is stuck: the writer must never block,
// and every line is either delivered later or counted as dropped.
func TestLogSinkSlowOutput(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var worker, master []string
	out := func(role, line string) {
		<-release
		mu.Lock()
		defer mu.Unlock()
		if role == "master" {
			master = append(master, line)
		} else {
			worker = append(worker, line)
		}
	}
	s := newLogSink(out)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	s.drain("smtp", r)

	// 10 MiB of 128-byte lines.
	const lineLen = 128
	const total = 10 << 20 / lineLen
	written := make(chan struct{})
	var werr error
	go func() {
		defer close(written)
		defer w.Close()
		var buf []byte
		for i := range total {
			l := fmt.Sprintf("level=INFO msg=filler n=%08d ", i)
			buf = append(buf, l+strings.Repeat("x", lineLen-1-len(l))+"\n"...)
			if len(buf) >= 64<<10 || i == total-1 {
				if _, werr = w.Write(buf); werr != nil {
					return
				}
				buf = buf[:0]
			}
		}
	}()
	waitClosed(t, written, "writing 10 MiB to the worker stderr pipe with a blocked log output")
	if werr != nil {
		t.Fatalf("write: %v", werr)
	}
	waitClosed(t, drained(s), "draining the pipe")

	dropped := s.dropped.Load()
	if dropped == 0 {
		t.Fatalf("no lines counted as dropped although the output was blocked for %d lines", total)
	}
	if dropped >= total {
		t.Fatalf("dropped %d of %d lines: nothing was queued", dropped, total)
	}

	close(release)
	// Every line is accounted for: delivered or dropped.
	deadline := time.Now().Add(sinkDeadline)
	for {
		mu.Lock()
		n := len(worker)
		mu.Unlock()
		if uint64(n)+dropped == total {
			break
		}
		if uint64(n)+dropped > total {
			t.Fatalf("%d lines delivered + %d dropped > %d written", n, dropped, total)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d lines delivered + %d dropped, want %d", n, dropped, total)
		}
		time.Sleep(10 * time.Millisecond)
	}

	mu.Lock()
	defer mu.Unlock()
	// Delivered lines are whole and in order.
	re := regexp.MustCompile(`^level=INFO msg=filler n=(\d{8}) x+$`)
	last := -1
	for _, l := range worker {
		m := re.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("delivered line is not a written line: %q", l)
		}
		n, _ := strconv.Atoi(m[1])
		if n <= last {
			t.Fatalf("line %d delivered after line %d", n, last)
		}
		last = n
	}
	// Master reports the drops with their number.
	if len(master) != 1 {
		t.Fatalf("master lines %q, want one drop report", master)
	}
	want := "dropped=" + strconv.FormatUint(dropped, 10)
	if !strings.Contains(master[0], "worker log lines dropped") || !strings.HasSuffix(master[0], want) || levelOf(master[0]) != slog.LevelWarn {
		t.Errorf("drop report %q, want a WARN line ending in %q", master[0], want)
	}
}

func TestLogSinkLines(t *testing.T) {
	long := strings.Repeat("x", 3*maxLine)
	cut := strings.Repeat("x", maxLine) + " [line cut]"
	tests := []struct {
		name  string
		input string
		want  []string
	}{
		{"plain", "level=INFO msg=hello\n", []string{"level=INFO msg=hello"}},
		{"several", "a\nb\nc\n", []string{"a", "b", "c"}},
		{"crlf", "a\r\nb\r\n", []string{"a", "b"}},
		{"last line without newline", "a\nb", []string{"a", "b"}},
		{"escape character", "msg=\x1b[31mred\x1b[0m\n", []string{`msg=\x1b[31mred\x1b[0m`}},
		{"non-ASCII", "msg=héllo ☃\n", []string{`msg=h\u00e9llo \u2603`}},
		{"invalid UTF-8", "msg=a\xffb\n", []string{`msg=a\xffb`}},
		{"carriage return inside", "a\rlevel=ERROR forged\n", []string{`a\rlevel=ERROR forged`}},
		{"over-long line", long + "\nnext\n", []string{cut, "next"}},
		{"over-long line at end", long, []string{cut}},
		{"line of exactly maxLine-1", strings.Repeat("y", maxLine-1) + "\nz\n", []string{strings.Repeat("y", maxLine-1), "z"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			type line struct{ role, text string }
			got := make(chan line, 100)
			s := newLogSink(func(role, text string) { got <- line{role, text} })
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			s.drain("smtp", r)
			written := make(chan struct{})
			go func() {
				defer close(written)
				w.Write([]byte(tc.input))
				w.Close()
			}()
			waitClosed(t, written, "writing")
			waitClosed(t, drained(s), "draining")
			// The queue keeps order, so this marks the end of the input.
			s.put("end", "")

			var lines []string
			for {
				select {
				case l := <-got:
					if l.role == "end" {
						if strings.Join(lines, "\n") != strings.Join(tc.want, "\n") || len(lines) != len(tc.want) {
							t.Errorf("lines:\n%q\nwant:\n%q", lines, tc.want)
						}
						return
					}
					if l.role != "smtp" {
						t.Errorf("line %q has role %q, want smtp", l.text, l.role)
					}
					lines = append(lines, l.text)
				case <-time.After(sinkDeadline):
					t.Fatalf("lines not delivered; have %q", lines)
				}
			}
		})
	}
}

// TestLogSinkRoles checks that each pipe's lines carry its own role, whatever
// the lines say.
func TestLogSinkRoles(t *testing.T) {
	var mu sync.Mutex
	got := map[string][]string{}
	s := newLogSink(func(role, line string) {
		mu.Lock()
		got[role] = append(got[role], line)
		mu.Unlock()
	})
	inputs := map[string]string{
		"keys": "level=INFO msg=\"keys line\"\n",
		"smtp": "level=INFO role=keys msg=\"pretending to be keys\"\n",
	}
	for role, in := range inputs {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		s.drain(role, r)
		go func() {
			w.Write([]byte(in))
			w.Close()
		}()
	}
	waitClosed(t, drained(s), "draining")
	done := make(chan struct{})
	s.put("end", "")
	go func() {
		for {
			mu.Lock()
			n := len(got["end"])
			mu.Unlock()
			if n > 0 {
				close(done)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	waitClosed(t, done, "delivery")
	mu.Lock()
	defer mu.Unlock()
	for role, in := range inputs {
		want := strings.TrimSuffix(in, "\n")
		if len(got[role]) != 1 || got[role][0] != want {
			t.Errorf("role %s: lines %q, want [%q]", role, got[role], want)
		}
	}
}

func TestLevelOf(t *testing.T) {
	tests := []struct {
		line string
		want slog.Level
	}{
		{"level=ERROR msg=boom", slog.LevelError},
		{"level=WARN msg=slow", slog.LevelWarn},
		{"level=INFO msg=hello", slog.LevelInfo},
		{"level=DEBUG msg=detail", slog.LevelDebug},
		{"level=TRACE msg=transcript", slog.LevelDebug},
		{"level=DEBUG+2 msg=odd", slog.LevelDebug},
		{"time=2025-01-01T00:00:00Z level=ERROR msg=x", slog.LevelError},
		{`level=INFO msg="client said level=ERROR"`, slog.LevelInfo},
		{"panic: runtime error: index out of range", slog.LevelInfo},
		{"", slog.LevelInfo},
		{"level=", slog.LevelInfo},
		{"level=BOGUS", slog.LevelInfo},
	}
	for _, tc := range tests {
		if got := levelOf(tc.line); got != tc.want {
			t.Errorf("levelOf(%q) = %v, want %v", tc.line, got, tc.want)
		}
	}
}
