package imapd

// APPEND (RFC 9051 §6.3.12) with MULTIAPPEND (RFC 3502), literal8 data
// (RFC 3516 §4.4), APPENDLIMIT (RFC 7889) and APPENDUID (RFC 4315 §3).
//
// Implementation notes:
//   - Message data never sits in memory. The parser hands each APPEND
//     literal to the Reader's Literal hook (appendLiteral), which copies it
//     to the connection's spool: a temporary file created in os.TempDir()
//     and unlinked at once, so no other process can open it (moxd-imap has
//     no directory of its own). The messages of a MULTIAPPEND follow each
//     other in the file. The handler hands the fd to store, which receives
//     the messages and commits them in one transaction, all or none
//     (ipc.AppendMessages); nothing is emulated here.
//   - The hook sees the data before the command is parsed to its end, the
//     handler only a complete command. A command that fails after some of
//     its literals (a syntax error in a later message, a refused literal)
//     leaves those in the spool, so the command loop closes the spool
//     before it reads each command (conn.loop): an APPEND's spool holds
//     its own messages only, and the limits below count only them. The
//     handler checks that the spool has exactly its messages, with their
//     sizes. The spool is also closed after every APPEND, when it would
//     exceed its limits, and when the connection ends.
//   - Limits: a message is at most MaxAppendSize octets. The parser
//     refuses a larger synchronizing literal before "+" ([TOOBIG]); a
//     non-synchronizing one is at most 4096 octets under LITERAL- (RFC
//     7888 §5). One APPEND holds at most ipc.MaxAppendMessages messages
//     of together maxSpoolFactor times MaxAppendSize, checked as the data
//     arrives. Store applies its own size limit and the quota.
//   - Before login nothing is written: the hook refuses and the parser
//     discards the data.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"moxd/internal/ipc"
	"moxd/internal/mailproto/imap"
	"moxd/internal/storage/storeclient"
)

const (
	// DefaultMaxAppendSize is the APPEND message limit when
	// Server.MaxAppendSize is 0: store's default max_message_size.
	DefaultMaxAppendSize = 100 << 20
	// maxSpoolFactor times the message limit bounds one MULTIAPPEND.
	maxSpoolFactor = 4
	// appendCallTimeout bounds store's receiving and committing of an
	// APPEND, which copies up to maxSpoolFactor large messages.
	appendCallTimeout = 5 * time.Minute
)

func init() {
	addVerbs(map[string]verb{
		"APPEND": {authState, (*conn).cmdAppend},
	})
	addCaps(
		capEntry{name: "MULTIAPPEND"}, // RFC 3502
		capEntry{name: "UIDPLUS"},     // RFC 4315: APPENDUID, COPYUID, UID EXPUNGE
		// RFC 7889 §3: the largest message APPEND accepts.
		capEntry{name: "APPENDLIMIT", value: func(c *conn) string { return strconv.FormatInt(c.maxAppend(), 10) }},
	)
}

func (c *conn) maxAppend() int64 {
	if c.srv.MaxAppendSize > 0 {
		return c.srv.MaxAppendSize
	}
	return DefaultMaxAppendSize
}

// setAppendHooks sets the Reader's APPEND limit and streaming hook; it is
// called whenever the Reader is made.
func (c *conn) setAppendHooks() {
	// RFC 7889 §4: a larger synchronizing literal gets NO [TOOBIG]
	// before "+".
	c.r.MaxAppend = c.maxAppend()
	c.r.Literal = c.appendLiteral
}

// appendSpool is the file that the message literals of an APPEND go to.
type appendSpool struct {
	f       *os.File
	entries []spoolEntry
	end     int64 // bytes written
}

// spoolEntry is one message in the spool.
type spoolEntry struct {
	offset, size int64
	nul          bool // holds a NUL octet
}

// newSpool creates the spool file; closeSpool closes it, at the latest
// when the connection ends (cleanup).
func (c *conn) newSpool() (*appendSpool, error) {
	f, err := os.CreateTemp("", "moxd-imap-append-")
	if err != nil {
		return nil, fmt.Errorf("create append spool file: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("unlink append spool file: %w", err)
	}
	return &appendSpool{f: f}, nil
}

func spoolLen(sp *appendSpool) int {
	if sp == nil {
		return 0
	}
	return len(sp.entries)
}

// closeSpool closes and forgets the spool, if there is one.
func (c *conn) closeSpool() {
	if c.spool != nil {
		c.spool.f.Close()
		c.spool = nil
	}
}

// appendLiteral is the Reader's Literal hook: it copies one APPEND
// message of n octets from r to the spool. An error refuses the command
// (the parser discards the rest of the data).
func (c *conn) appendLiteral(n int64, r io.Reader) error {
	if c.state != stateAuth && c.state != stateSelected {
		return errors.New("APPEND needs a login first")
	}
	if c.spool == nil {
		sp, err := c.newSpool()
		if err != nil {
			c.log.Error("append", "err", err)
			return errors.New("cannot receive the message now, try again later")
		}
		c.spool = sp
	}
	sp := c.spool
	// RFC 3502 §6.3.11: the server may refuse a MULTIAPPEND it cannot
	// take in one piece.
	if len(sp.entries) >= ipc.MaxAppendMessages {
		c.closeSpool()
		return fmt.Errorf("at most %d messages in one APPEND", ipc.MaxAppendMessages)
	}
	if max := maxSpoolFactor * c.maxAppend(); sp.end+n > max {
		c.closeSpool()
		return fmt.Errorf("%w: the messages of one APPEND may have %d octets together", imap.ErrLiteralTooBig, max)
	}
	e := spoolEntry{offset: sp.end, size: n}
	buf := make([]byte, 64<<10)
	armed := time.Now()
	var got int64
	for {
		m, rerr := r.Read(buf)
		if m > 0 {
			if !e.nul && bytes.IndexByte(buf[:m], 0) >= 0 {
				e.nul = true
			}
			if _, err := sp.f.Write(buf[:m]); err != nil {
				c.log.Error("append: write spool file", "err", err)
				c.closeSpool()
				return errors.New("cannot receive the message now, try again later")
			}
			got += int64(m)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			c.closeSpool()
			return rerr // the parser reports the connection's failure
		}
		// A large message may take longer than the idle timeout: move
		// the deadline on as data arrives, unless the connection is
		// being stopped (then its past deadline stays).
		if time.Since(armed) > c.idleTimeout()/4 {
			armed = time.Now()
			if why := c.armRead(); why != "" {
				c.nc.SetReadDeadline(time.Unix(1, 0))
			}
		}
	}
	if got != n {
		c.closeSpool()
		return io.ErrUnexpectedEOF
	}
	sp.end += n
	sp.entries = append(sp.entries, e)
	return nil
}

func (c *conn) cmdAppend(cmd *imap.Command) error {
	a := cmd.Args.(*imap.AppendArgs)
	defer c.closeSpool()
	sp := c.spool
	k := len(a.Messages)
	if sp == nil || len(sp.entries) != k {
		return &respError{status: imap.NO, code: imap.CodeServerBug, text: "internal error", cause: fmt.Errorf("append: spool holds %d messages for an APPEND of %d", spoolLen(sp), k)}
	}
	entries := sp.entries
	msgs := make([]storeclient.AppendMessage, k)
	for i, m := range a.Messages {
		if entries[i].size != m.Size {
			return &respError{status: imap.NO, code: imap.CodeServerBug, text: "internal error", cause: fmt.Errorf("append: spool has %d octets for a message of %d", entries[i].size, m.Size)}
		}
		if entries[i].nul && !m.Binary {
			// RFC 9051 §4.3: NUL only in literal8 (RFC 3516 §4.4).
			return respBAD("message %d contains NUL: send it as literal8 (~{n})", i+1)
		}
		flags, kw, err := parseFlags(m.Flags)
		if err != nil {
			return err
		}
		// RFC 9051 §6.3.12: without a date-time, the date is now.
		msgs[i] = storeclient.AppendMessage{Size: m.Size, Flags: flags, Keywords: kw, Received: m.Date}
	}
	ctx, cancel := context.WithTimeout(c.ctx, appendCallTimeout)
	defer cancel()
	res, err := c.sess.AppendAll(ctx, canonName(a.Mailbox), sp.f, entries[0].offset, msgs)
	switch {
	case errors.Is(err, storeclient.ErrNotFound):
		// RFC 9051 §6.3.12: a missing mailbox is NO [TRYCREATE].
		return respNO(imap.CodeTryCreate, "mailbox does not exist, CREATE it first")
	case errors.Is(err, storeclient.ErrTooLarge):
		return respNO(imap.CodeTooBig, "message larger than the server accepts")
	case errors.Is(err, storeclient.ErrTooMany):
		return respNO(imap.CodeLimit, "too many messages or keywords in one APPEND")
	case err != nil:
		// [OVERQUOTA] (RFC 9208 §4.3.1) and the rest.
		return storeError(err)
	}
	// RFC 4315 §3: APPENDUID, a UID set for MULTIAPPEND (RFC 3502).
	return &okText{code: imap.CodeAppendUID(res.UIDValidity, expandRanges(res.UIDs)...), text: "APPEND completed"}
}
