package master

import (
	"fmt"
	"io"
	"log/slog"
	"log/syslog"
	"strings"
	"sync"
	"time"
)

// Output is where master writes its own and its workers' log lines: stderr
// in the foreground (-d, localserve), syslog facility mail as a daemon.
type Output struct {
	mu     sync.Mutex
	w      io.Writer      // foreground
	syslog *syslog.Writer // daemon
}

// NewStderrOutput writes "time role: line" to w.
func NewStderrOutput(w io.Writer) *Output {
	return &Output{w: w}
}

// NewSyslogOutput logs to syslog with facility mail and tag "moxd".
func NewSyslogOutput() (*Output, error) {
	sw, err := syslog.New(syslog.LOG_MAIL|syslog.LOG_INFO, "moxd")
	if err != nil {
		return nil, fmt.Errorf("no syslog daemon to log to (%v): start syslogd/rsyslogd, or run moxd-master -d with stderr redirected", err)
	}
	return &Output{syslog: sw}, nil
}

// Line writes one line of role.
func (o *Output) Line(role, line string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.syslog == nil {
		fmt.Fprintf(o.w, "%s %s: %s\n", time.Now().Format("2006-01-02T15:04:05.000Z07:00"), role, line)
		return
	}
	msg := role + ": " + line
	switch levelOf(line) {
	case slog.LevelError:
		o.syslog.Err(msg)
	case slog.LevelWarn:
		o.syslog.Warning(msg)
	case slog.LevelDebug:
		o.syslog.Debug(msg)
	default:
		o.syslog.Info(msg)
	}
}

// Writer returns an io.Writer for master's own slog handler: every write is
// one or more lines of role "master".
func (o *Output) Writer() io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
			o.Line("master", l)
		}
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
