package master

import (
	"bufio"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"moxd/internal/mlog"
)

// logSink collects worker stderr lines. Each worker's pipe has its own reader
// goroutine that never blocks on output: lines go into a bounded queue, and
// when the queue is full (the log destination is slow) lines are dropped and
// counted, so a worker never stalls on a write to stderr. Lines are prefixed
// with the role by master, so no worker can forge another's lines.
type logSink struct {
	out     func(role, line string)
	queue   chan sinkLine
	dropped atomic.Uint64
	wg      sync.WaitGroup
}

type sinkLine struct{ role, line string }

// maxLine bounds one worker log line; longer lines are cut.
const maxLine = 8 * 1024

func newLogSink(out func(role, line string)) *logSink {
	s := &logSink{out: out, queue: make(chan sinkLine, 4096)}
	go func() {
		var lastDropped uint64
		for l := range s.queue {
			s.out(l.role, l.line)
			if d := s.dropped.Load(); d != lastDropped {
				s.out("master", "level=WARN msg=\"worker log lines dropped: log output too slow\" dropped="+strconv.FormatUint(d-lastDropped, 10))
				lastDropped = d
			}
		}
	}()
	return s
}

// drain reads r (a worker's stderr) until EOF.
func (s *logSink) drain(role string, r io.ReadCloser) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer r.Close()
		br := bufio.NewReaderSize(r, maxLine)
		for {
			line, err := br.ReadSlice('\n')
			if len(line) > 0 {
				text := strings.TrimRight(string(line), "\r\n")
				if err == bufio.ErrBufferFull {
					text += " [line cut]"
					// Skip the rest of the over-long line.
					for err == bufio.ErrBufferFull {
						_, err = br.ReadSlice('\n')
					}
				}
				s.put(role, mlog.Escape(text))
			}
			if err != nil && err != bufio.ErrBufferFull {
				return
			}
		}
	}()
}

func (s *logSink) put(role, line string) {
	select {
	case s.queue <- sinkLine{role, line}:
	default:
		s.dropped.Add(1)
	}
}

// levelOf extracts the level= field of a text-handler line, for syslog
// priorities.
func levelOf(line string) slog.Level {
	// The text handler starts every line with level=, after time= if the
	// handler logs times.
	if strings.HasPrefix(line, "time=") {
		if _, after, ok := strings.Cut(line, " "); ok {
			line = after
		}
	}
	rest, ok := strings.CutPrefix(line, "level=")
	if !ok {
		return slog.LevelInfo
	}
	switch {
	case strings.HasPrefix(rest, "ERROR"):
		return slog.LevelError
	case strings.HasPrefix(rest, "WARN"):
		return slog.LevelWarn
	case strings.HasPrefix(rest, "DEBUG"), strings.HasPrefix(rest, "TRACE"):
		return slog.LevelDebug
	}
	return slog.LevelInfo
}
