package imapd

// IDLE (RFC 2177, RFC 9051 §6.3.13): the client waits for the server to
// push mailbox changes, until it sends DONE.
//
// Implementation notes:
//   - No goroutine per idling connection: the connection's own goroutine
//     waits for input, and the mailbox cache wakes it by moving the read
//     deadline into the past (wakeIdle), as the watcher does to stop it
//     (conn.interrupt). A woken IDLE reports, re-arms the deadline and
//     waits again.
//   - Waiting must not take input: a deadline that fires in the middle of
//     a line would lose the part already read. So IDLE waits through
//     waitReader, which sits below the command reader and keeps the one
//     octet it waited for, and only then reads the line, after switching
//     wake-ups off (idleWait, under its mutex, so no wake-up can move the
//     deadline once the line is being read).
//   - Under COMPRESS=DEFLATE no deadline is moved: a goroutine reads the
//     line through the decompressor and the cache wakes the session
//     through a channel; the goroutine ends with the line (or with the
//     connection). (compress/flate's reader kept a timeout for good; the
//     inflate reader used now does not, but this path does not depend on
//     it.)
//   - The deadline is the server's idle timeout from the start of IDLE
//     (RFC 9051 §5.4); a server shutdown or store restart ends IDLE with
//     BYE like any other wait for a command.

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"moxd/internal/mailproto/imap"
)

func init() {
	addVerbs(map[string]verb{
		"IDLE": {authState, (*conn).cmdIdle},
	})
	addCaps(capEntry{name: "IDLE"})
}

// waitReader passes reads through to the connection; wait blocks until
// there is input without consuming it.
type waitReader struct {
	r    io.Reader
	b    [1]byte
	have bool // b holds an octet not yet passed on
}

func (w *waitReader) Read(p []byte) (int, error) {
	if w.have && len(p) > 0 {
		p[0] = w.b[0]
		w.have = false
		return 1, nil
	}
	return w.r.Read(p)
}

// wait returns when there is input, or with the read's error (a deadline).
func (w *waitReader) wait() error {
	for !w.have {
		n, err := w.r.Read(w.b[:])
		if n > 0 {
			w.have = true
			break
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Wake-up states of idleWait.
const (
	idleOff     uint8 = iota // not waiting: wake-ups do nothing
	idleWaiting              // waiting in IDLE: a wake-up interrupts the read
	idleWoken                // woken, not yet noticed
)

// idleWait is a connection's IDLE wake-up state.
type idleWait struct {
	mu    sync.Mutex
	state uint8
	wake  chan struct{} // set: wake-ups go here instead (COMPRESS)
}

// wakeIdle interrupts the connection's wait in IDLE, if it is waiting. It
// is called by mailbox caches, with their lock held.
func (c *conn) wakeIdle() {
	c.idle.mu.Lock()
	defer c.idle.mu.Unlock()
	switch {
	case c.idle.state != idleWaiting:
	case c.idle.wake != nil:
		select {
		case c.idle.wake <- struct{}{}:
		default:
		}
	default:
		c.idle.state = idleWoken
		c.nc.SetReadDeadline(time.Unix(1, 0))
	}
}

// setIdle sets the wake-up state and returns the one before.
func (c *conn) setIdle(st uint8) uint8 {
	c.idle.mu.Lock()
	defer c.idle.mu.Unlock()
	old := c.idle.state
	c.idle.state = st
	return old
}

func (c *conn) cmdIdle(cmd *imap.Command) error {
	// RFC 9051 §6.3.13: a continuation, then untagged updates.
	c.w.WriteString("+ idling\r\n")
	if err := c.flush(); err != nil {
		return err
	}
	deadline := time.Now().Add(c.idleTimeout())
	if c.deflate != nil {
		return c.idleReading(deadline)
	}
	c.setIdle(idleWaiting)
	defer c.setIdle(idleOff)
	for {
		if c.sel != nil {
			c.report(true)
			if c.state == stateLogout {
				// The mailbox is gone: report wrote BYE.
				c.flush()
				return &ioError{errors.New("selected mailbox gone")}
			}
			if err := c.flush(); err != nil {
				return err
			}
		}
		// Re-arm, then look for a wake-up that came before: the cache
		// sets the state before the past deadline, so none is missed.
		c.nc.SetReadDeadline(deadline)
		if why := c.stopped(); why != "" {
			c.bye(imap.CodeUnavailable, why)
			return &ioError{errors.New(why)}
		}
		if c.setIdle(idleWaiting) == idleWoken {
			continue
		}
		if c.r.Buffered() == 0 {
			err := c.in.wait()
			var ne net.Error
			switch {
			case err == nil:
			case errors.As(err, &ne) && ne.Timeout() && c.stopped() == "" && time.Now().Before(deadline):
				continue // woken by the cache
			default:
				c.readFailed(err)
				return &ioError{err}
			}
		}
		// Input: read the line with wake-ups off.
		c.setIdle(idleOff)
		c.nc.SetReadDeadline(deadline)
		return c.idleLine(c.r.ReadLine())
	}
}

// idleLine is the end of IDLE: the line after it, or a read error.
func (c *conn) idleLine(line string, err error) error {
	if err != nil {
		c.readFailed(err)
		return &ioError{err}
	}
	if strings.EqualFold(line, "DONE") {
		return &okText{text: "IDLE terminated"}
	}
	// RFC 2177 §3: anything but DONE is an error; IDLE ends.
	return respBAD("expected DONE to end IDLE")
}

// idleReading is IDLE with a goroutine reading the line (COMPRESS).
func (c *conn) idleReading(deadline time.Time) error {
	type result struct {
		line string
		err  error
	}
	wake := make(chan struct{}, 1)
	c.idle.mu.Lock()
	c.idle.state, c.idle.wake = idleWaiting, wake
	c.idle.mu.Unlock()
	defer func() {
		c.idle.mu.Lock()
		c.idle.state, c.idle.wake = idleOff, nil
		c.idle.mu.Unlock()
	}()
	c.nc.SetReadDeadline(deadline)
	if why := c.stopped(); why != "" {
		c.bye(imap.CodeUnavailable, why)
		return &ioError{errors.New(why)}
	}
	lines := make(chan result, 1)
	go func() {
		l, err := c.r.ReadLine()
		lines <- result{l, err}
	}()
	for {
		if c.sel != nil {
			c.report(true)
			if c.state == stateLogout {
				c.flush()
				return &ioError{errors.New("selected mailbox gone")}
			}
			if err := c.flush(); err != nil {
				return err
			}
		}
		select {
		case <-wake:
		case r := <-lines:
			return c.idleLine(r.line, r.err)
		}
	}
}
