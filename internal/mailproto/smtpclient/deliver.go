package smtpclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Envelope is one mail transaction's sender, recipients and parameters.
type Envelope struct {
	// MailFrom is the reverse-path address without angle brackets, "" for
	// the null sender. Addresses are sent as given: a local part that
	// needs quoting must already be quoted.
	MailFrom   string
	Recipients []Recipient
	// EightBitMIME sends BODY=8BITMIME (RFC 6152 §2); the server must
	// announce 8BITMIME, else Deliver fails with ErrNeeds8BitMIME before
	// MAIL.
	EightBitMIME bool
	// SMTPUTF8 sends SMTPUTF8 (RFC 6531 §3.4); the server must announce
	// it, else ErrNeedsSMTPUTF8. An address with non-ASCII bytes needs it.
	SMTPUTF8 bool
	// RequireTLS sends REQUIRETLS (RFC 8689 §2); the session must be
	// TLS and the server must announce REQUIRETLS, else
	// ErrNeedsRequireTLS.
	RequireTLS bool
	// Ret is the DSN RET value, "FULL" or "HDRS", "" for none (RFC 3461
	// §4.3). DSN parameters (Ret, EnvID, NOTIFY, ORCPT) are only sent
	// when the server announces DSN; without it the caller owes the
	// "relayed" notification of RFC 3461 §4.1 (check Extensions().DSN).
	Ret string
	// EnvID is the DSN ENVID, unencoded; it is sent as xtext (RFC 3461
	// §4.4).
	EnvID string
	// Size is sent as SIZE= (RFC 1870 §6) when the server announces SIZE;
	// 0 means the size passed to Deliver. When it exceeds the server's
	// announced limit, Deliver fails before MAIL with a permanent *Error
	// (reply 552 5.3.4).
	Size int64
}

// Recipient is one forward-path of a transaction.
type Recipient struct {
	// Addr is the address without angle brackets.
	Addr string
	// Notify is the DSN NOTIFY value (RFC 3461 §4.1), e.g.
	// "SUCCESS,FAILURE" or "NEVER"; "" for none.
	Notify string
	// ORcpt is the DSN ORCPT value "addr-type;addr" (RFC 3461 §4.2),
	// unencoded: the address part is sent as xtext. "" for none.
	ORcpt string
}

// RcptResult is the outcome of one recipient of a transaction.
type RcptResult struct {
	// Reply is the server's refusal of the RCPT, or for a recipient it
	// accepted, the final reply after the message data. A reply the
	// client made itself (a network failure, 451 4.4.2; a recipient it
	// would not send, its text starts with "not sent:") has the same form.
	Reply Reply
	// Tried is false only for recipients left out because of the server's
	// LIMITS RCPTMAX: the caller sends them in another transaction.
	Tried bool
	// Accepted is true when the server took the message for this
	// recipient.
	Accepted bool
}

// Errors for messages the server cannot take as they are. Deliver returns
// them inside an *Error with a permanent synthetic reply; errors.Is finds
// them.
var (
	ErrNeeds8BitMIME   = errors.New("message needs 8BITMIME, which the server does not announce")
	ErrNeedsSMTPUTF8   = errors.New("message needs SMTPUTF8 (non-ASCII address or SMTPUTF8 requested), which the server does not announce or the envelope does not request")
	ErrNeedsRequireTLS = errors.New("message needs REQUIRETLS, which needs a TLS session with a server announcing REQUIRETLS")
)

// dataChunk is how much message data is read and written per block; each
// block gets a fresh write deadline (RFC 5321 §4.5.3.2.5).
const dataChunk = 32 << 10

// localReply is a reply the client makes for a step it does not send.
func localReply(code int, enhanced, text string) Reply {
	return Reply{Code: code, Enhanced: enhanced, Text: []string{"not sent: " + text}}
}

// failureReply is the reply recipients get when the transaction failed
// without a server reply: temporary (RFC 3463 §3.5, X.4.2 bad connection).
func failureReply(err error) Reply {
	return Reply{Code: 451, Enhanced: "4.4.2", Text: []string{err.Error()}}
}

// transaction is the state of one Deliver call.
type transaction struct {
	c       *Client
	ctx     context.Context
	results []RcptResult
	send    []int // indexes of recipients whose RCPT is sent
	lines   []string
	// join waits for the writer of a pipelined command group; nil when
	// there is none (or after it was joined).
	join func() error
}

// Deliver runs one mail transaction: MAIL, a RCPT per recipient, and the
// message data (size bytes of data, with CRLF line endings) once for all
// accepted recipients. With PIPELINING it sends MAIL, the RCPTs and DATA in
// one group (RFC 2920 §3.1); with CHUNKING it sends the data with one BDAT
// LAST (RFC 3030 §2) instead of DATA and dot-stuffing.
//
// results has one entry per env.Recipients, in order. The error is nil when
// the transaction ran to its end, even if the server refused some or all
// recipients (see results). It is an *Error when the transaction as a whole
// failed: MAIL or DATA refused, the message refused after the data, a
// network or protocol failure, a timeout, ctx ending, or a check before
// MAIL (ErrNeeds8BitMIME and the other sentinels, a size over the server's
// limit, an invalid envelope); results then carry the reason for each
// recipient, temporary (4xx) when the server did not give one. A 421 reply
// ends the session: Broken reports true.
//
// After Deliver returns the session is ready for another Deliver unless it
// is Broken: a transaction that ended without the message sent is reset
// with RSET.
func (c *Client) Deliver(ctx context.Context, env Envelope, data io.ReaderAt, size int64) ([]RcptResult, error) {
	t := &transaction{c: c, ctx: ctx, results: make([]RcptResult, len(env.Recipients))}
	if err := c.usable(StageMail); err != nil {
		t.failAll(localReply(451, "4.4.2", "connection is broken"))
		return t.results, err
	}
	if len(env.Recipients) == 0 {
		return t.results, &Error{Stage: StageRcpt, Err: errors.New("envelope has no recipients")}
	}
	if size < 0 {
		return t.results, &Error{Stage: StageData, Err: fmt.Errorf("negative message size %d", size)}
	}
	mail, err := c.mailCommand(env, size)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.Reply != nil {
			t.failAll(*e.Reply)
		}
		return t.results, err
	}
	t.prepareRcpts(env)
	if len(t.send) == 0 {
		// Every recipient was refused by the checks: nothing to send.
		return t.results, nil
	}

	end := c.arm(ctx)
	defer end()
	defer t.joinWriter()
	return t.run(mail, data, size)
}

// failAll gives every recipient reply r.
func (t *transaction) failAll(r Reply) {
	for i := range t.results {
		t.results[i] = RcptResult{Reply: r, Tried: true}
	}
}

// prepareRcpts builds the RCPT lines, refuses the recipients that cannot
// be sent, and leaves out those beyond RCPTMAX.
func (t *transaction) prepareRcpts(env Envelope) {
	c := t.c
	for i, r := range env.Recipients {
		line, reply := c.rcptCommand(r)
		if reply != nil {
			t.results[i] = RcptResult{Reply: *reply, Tried: true}
			continue
		}
		// RFC 9422 §4.2: the client sends at most RCPTMAX recipients
		// per transaction; the rest go in another one.
		if c.ext.RcptMax > 0 && len(t.send) >= c.ext.RcptMax {
			continue
		}
		t.results[i].Tried = true
		t.send = append(t.send, i)
		t.lines = append(t.lines, line)
	}
}

// run sends the transaction to the server.
func (t *transaction) run(mail string, data io.ReaderAt, size int64) ([]RcptResult, error) {
	c, ctx := t.c, t.ctx
	pipelined := c.ext.Pipelining
	chunking := c.ext.Chunking && !c.cfg.DisableChunking
	if pipelined {
		// RFC 2920 §3.1: MAIL and RCPT may be grouped, DATA is the last
		// command of a group; a group is written at once, then the
		// replies are read in order.
		group := append([]string{mail}, t.lines...)
		if !chunking {
			group = append(group, "DATA")
		}
		t.writeAsync(group)
	} else if err := c.writeLines(ctx, StageMail, c.cfg.CommandTimeout, mail); err != nil {
		return t.netFailure(err)
	}

	mr, err := c.readReply(ctx, StageMail, c.cfg.CommandTimeout)
	if err != nil {
		return t.netFailure(err)
	}
	mailOK := mr.positive()
	if !mailOK {
		return t.mailRefused(mr, pipelined && !chunking)
	}

	var accepted []int
	for k, i := range t.send {
		if !pipelined {
			if err := c.writeLines(ctx, StageRcpt, c.cfg.CommandTimeout, t.lines[k]); err != nil {
				return t.netFailure(err)
			}
		}
		rr, err := c.readReply(ctx, StageRcpt, c.cfg.CommandTimeout)
		if err != nil {
			return t.netFailure(err)
		}
		if rr.Code == 421 {
			t.settle(rr)
			return t.results, &Error{Stage: StageRcpt, Reply: &rr}
		}
		t.results[i].Reply = rr
		if rr.positive() {
			accepted = append(accepted, i)
		}
	}

	if chunking {
		if err := t.joinWriter(); err != nil {
			return t.netFailure(err)
		}
		if len(accepted) == 0 {
			t.resetAfter()
			return t.results, nil
		}
		return t.sendBDAT(accepted, data, size)
	}

	if !pipelined {
		if len(accepted) == 0 {
			t.resetAfter()
			return t.results, nil
		}
		if err := c.writeLines(ctx, StageData, c.cfg.CommandTimeout, "DATA"); err != nil {
			return t.netFailure(err)
		}
	}
	dr, err := c.readReply(ctx, StageData, c.cfg.DataInitTimeout)
	if err != nil {
		return t.netFailure(err)
	}
	if err := t.joinWriter(); err != nil {
		return t.netFailure(err)
	}
	if len(accepted) == 0 {
		// RFC 2920 §3.1: if every RCPT failed but the server still
		// answers DATA with 354, the client sends the terminating "."
		// alone and ignores the outcome.
		if dr.Code == 354 {
			if err := t.endEmptyData(); err != nil {
				return t.netFailure(err)
			}
		}
		t.resetAfter()
		return t.results, nil
	}
	if dr.Code != 354 {
		// RFC 5321 §4.1.1.4: 354 is the only go-ahead for the data.
		t.settle(dr)
		if dr.Code != 421 {
			t.resetAfter()
		}
		return t.results, &Error{Stage: StageData, Reply: &dr}
	}
	c.transactions++
	if err := t.sendData(data, size); err != nil {
		return t.netFailure(err)
	}
	return t.finish(accepted, false)
}

// mailRefused handles a refused MAIL: every recipient gets its reply. In a
// pipelined group the RCPT and DATA replies still come and are read and
// dropped (RFC 2920 §3.1: the client must check every status).
func (t *transaction) mailRefused(mr Reply, dataSent bool) ([]RcptResult, error) {
	c, ctx := t.c, t.ctx
	for _, i := range t.send {
		t.results[i].Reply = mr
	}
	mailErr := &Error{Stage: StageMail, Reply: &mr}
	if mr.Code == 421 || !c.ext.Pipelining {
		return t.results, mailErr
	}
	for range t.send {
		rr, err := c.readReply(ctx, StageRcpt, c.cfg.CommandTimeout)
		if err != nil || rr.Code == 421 {
			return t.results, mailErr
		}
	}
	if dataSent {
		dr, err := c.readReply(ctx, StageData, c.cfg.DataInitTimeout)
		if err != nil || dr.Code == 421 {
			return t.results, mailErr
		}
		if t.joinWriter() != nil {
			return t.results, mailErr
		}
		if dr.Code == 354 {
			// A server that refused MAIL must not accept DATA; end the
			// empty message and reset.
			if t.endEmptyData() != nil {
				return t.results, mailErr
			}
			t.resetAfter()
		}
	}
	return t.results, mailErr
}

// endEmptyData sends the end-of-data line right after a 354 for a
// transaction without accepted recipients, and reads the reply.
func (t *transaction) endEmptyData() error {
	c := t.c
	if err := c.writeLines(t.ctx, StageDataEnd, c.cfg.DataBlockTimeout, "."); err != nil {
		return err
	}
	r, err := c.readReply(t.ctx, StageDataEnd, c.cfg.DataTermTimeout)
	if err == nil {
		c.log.Debug("smtp server took DATA without recipients", "reply", r.String())
	}
	return err
}

// resetAfter sends RSET after a transaction that did not end with the
// message sent, so the next Deliver starts clean. Its failure does not
// change the transaction's outcome; it leaves the client broken.
func (t *transaction) resetAfter() {
	if t.c.broken {
		return
	}
	if err := t.c.reset(t.ctx); err != nil {
		t.c.log.Debug("smtp rset after failed transaction", "err", err)
	}
}

// settle gives reply r to every sent recipient without a final outcome:
// those the server has not answered and those whose RCPT it accepted.
func (t *transaction) settle(r Reply) {
	for _, i := range t.send {
		res := &t.results[i]
		if res.Accepted || (res.Reply.Code != 0 && !res.Reply.positive()) {
			continue
		}
		res.Reply = r
	}
}

// netFailure ends the transaction after a network, protocol or timeout
// error (err is an *Error from the I/O helpers, or a writer's error).
func (t *transaction) netFailure(err error) ([]RcptResult, error) {
	var e *Error
	if !errors.As(err, &e) {
		e = t.c.ioError(t.ctx, StageData, err)
	}
	t.c.fail()
	t.settle(failureReply(e))
	return t.results, e
}

// writeAsync starts writing a pipelined command group in another goroutine
// (see the implementation notes in client.go). It touches only the
// connection, bw and the logger.
func (t *transaction) writeAsync(lines []string) {
	c, ctx := t.c, t.ctx
	done := make(chan error, 1)
	go func() {
		done <- c.writeGroup(ctx, lines)
	}()
	t.join = func() error {
		err := <-done
		if err != nil {
			return c.ioError(ctx, StageMail, err)
		}
		return nil
	}
}

// joinWriter waits for the pipelined group writer, if any. When the client
// is already broken the connection is closed and the writer ends soon.
func (t *transaction) joinWriter() error {
	if t.join == nil {
		return nil
	}
	join := t.join
	t.join = nil
	if t.c.broken {
		join()
		return nil
	}
	return join()
}

// writeGroup writes command lines and flushes them, under the command
// timeout. It returns plain I/O errors and does not change the client's
// state: it may run beside the reader.
func (c *Client) writeGroup(ctx context.Context, lines []string) error {
	if err := c.writeDeadline(ctx, c.cfg.CommandTimeout); err != nil {
		return err
	}
	for _, l := range lines {
		if c.log.Enabled(ctx, LevelTrace) {
			c.log.Log(ctx, LevelTrace, "smtp send", "line", logLine(l))
		}
		c.bw.WriteString(l)
		c.bw.WriteString("\r\n")
	}
	return c.bw.Flush()
}

// finish reads the reply after the message data and gives it to the
// accepted recipients.
func (t *transaction) finish(accepted []int, bdat bool) ([]RcptResult, error) {
	c := t.c
	r, err := c.readReply(t.ctx, StageDataEnd, c.cfg.DataTermTimeout)
	if err != nil {
		return t.netFailure(err)
	}
	ok := r.positive()
	for _, i := range accepted {
		t.results[i].Reply = r
		t.results[i].Accepted = ok
	}
	if ok {
		return t.results, nil
	}
	if bdat {
		// RFC 3030 §2: after a failed BDAT the transaction is over on
		// the client's side; RSET makes sure the server agrees. After
		// DATA the server has reset already (RFC 5321 §4.1.1.4).
		t.resetAfter()
	}
	return t.results, &Error{Stage: StageDataEnd, Reply: &r}
}

// sendBDAT sends the message as one chunk: RFC 3030 §2, "BDAT" SP size SP
// "LAST", then exactly size octets, not dot-stuffed.
func (t *transaction) sendBDAT(accepted []int, data io.ReaderAt, size int64) ([]RcptResult, error) {
	c, ctx := t.c, t.ctx
	line := "BDAT " + strconv.FormatInt(size, 10) + " LAST"
	if c.log.Enabled(ctx, LevelTrace) {
		c.log.Log(ctx, LevelTrace, "smtp send", "line", line)
	}
	c.bw.WriteString(line + "\r\n")
	c.transactions++
	if err := c.copyData(ctx, data, size, false); err != nil {
		return t.netFailure(err)
	}
	return t.finish(accepted, true)
}

// sendData sends the message after a 354 reply, dot-stuffed and terminated
// (RFC 5321 §4.5.2, §4.1.1.4).
func (t *transaction) sendData(data io.ReaderAt, size int64) error {
	return t.c.copyData(t.ctx, data, size, true)
}

// copyData streams size bytes of data to the server in blocks, each under
// a fresh DataBlockTimeout write deadline. With stuff it applies RFC 5321
// §4.5.2 transparency (a line starting with "." gets another "."),
// completes a last line without CRLF, and ends with "." CRLF. A line start
// is after any LF, also one without CR before it, so that no server, lax
// about line endings or not, can find an end of data inside the message.
func (c *Client) copyData(ctx context.Context, data io.ReaderAt, size int64, stuff bool) error {
	sr := io.NewSectionReader(data, 0, size)
	buf := make([]byte, min(int64(dataChunk), max(size, 1)))
	var (
		total     int64
		lineStart = true
		last      [2]byte // last two bytes of the data
	)
	for {
		n, rerr := sr.Read(buf)
		if n > 0 {
			if err := c.writeDeadline(ctx, c.cfg.DataBlockTimeout); err != nil {
				return c.ioError(ctx, StageData, err)
			}
			p := buf[:n]
			if n >= 2 {
				last = [2]byte{p[n-2], p[n-1]}
			} else {
				last = [2]byte{last[1], p[0]}
			}
			total += int64(n)
			var werr error
			if stuff {
				werr = c.writeStuffed(p, &lineStart)
			} else {
				_, werr = c.bw.Write(p)
			}
			if werr != nil {
				return c.ioError(ctx, StageData, werr)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			c.fail()
			return &Error{Stage: StageData, Err: fmt.Errorf("read message data: %w", rerr)}
		}
	}
	if total != size {
		// The server expects size octets (BDAT) or would get a
		// truncated message (DATA): the session cannot go on.
		c.fail()
		return &Error{Stage: StageData, Err: fmt.Errorf("message data has %d bytes, %d were announced", total, size)}
	}
	if err := c.writeDeadline(ctx, c.cfg.DataBlockTimeout); err != nil {
		return c.ioError(ctx, StageData, err)
	}
	if stuff {
		if total > 0 && last != [2]byte{'\r', '\n'} {
			c.bw.WriteString("\r\n")
		}
		c.bw.WriteString(".\r\n")
	}
	if err := c.bw.Flush(); err != nil {
		return c.ioError(ctx, StageData, err)
	}
	if c.log.Enabled(ctx, LevelTrace) {
		c.log.Log(ctx, LevelTrace, "smtp send", "data", fmt.Sprintf("[%d bytes of message data]", total))
	}
	return nil
}

// writeStuffed writes p with dot-stuffing; lineStart carries over blocks.
func (c *Client) writeStuffed(p []byte, lineStart *bool) error {
	for len(p) > 0 {
		if *lineStart && p[0] == '.' {
			// RFC 5321 §4.5.2: double a leading period.
			if err := c.bw.WriteByte('.'); err != nil {
				return err
			}
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			*lineStart = false
			_, err := c.bw.Write(p)
			return err
		}
		if _, err := c.bw.Write(p[:i+1]); err != nil {
			return err
		}
		p = p[i+1:]
		*lineStart = true
	}
	return nil
}

// mailCommand checks the envelope against the session and builds the MAIL
// command. Its errors are *Errors with a synthetic permanent reply.
func (c *Client) mailCommand(env Envelope, size int64) (string, error) {
	refuse := func(code int, enhanced, text string, err error) (string, error) {
		r := localReply(code, enhanced, text)
		if err == nil {
			err = errors.New(text)
		}
		return "", &Error{Stage: StageMail, Reply: &r, Err: err}
	}
	if !validAddress(env.MailFrom) {
		return refuse(501, "5.1.7", "sender address contains control characters", nil)
	}
	needUTF8 := !isASCII(env.MailFrom)
	for _, r := range env.Recipients {
		needUTF8 = needUTF8 || !isASCII(r.Addr)
	}
	switch {
	case needUTF8 && !env.SMTPUTF8:
		return refuse(553, "5.6.7", "non-ASCII address without SMTPUTF8 in the envelope", ErrNeedsSMTPUTF8)
	case env.SMTPUTF8 && !c.ext.SMTPUTF8:
		// RFC 6531 §3.4: SMTPUTF8 only to a server that announces it.
		return refuse(553, "5.6.7", "server does not announce SMTPUTF8", ErrNeedsSMTPUTF8)
	case env.EightBitMIME && !c.ext.EightBitMIME:
		// RFC 6152 §3: 8-bit data only to a server announcing 8BITMIME.
		return refuse(554, "5.6.3", "server does not announce 8BITMIME", ErrNeeds8BitMIME)
	case env.RequireTLS && (c.tlsState == nil || !c.ext.RequireTLS):
		// RFC 8689 §4.2.1: REQUIRETLS only over TLS to a server
		// announcing it; 5.7.30 "REQUIRETLS support required" when
		// that is missing.
		return refuse(550, "5.7.30", "REQUIRETLS needs TLS and a server announcing REQUIRETLS", ErrNeedsRequireTLS)
	}
	msgSize := env.Size
	if msgSize <= 0 {
		msgSize = size
	}
	if c.ext.SizeOffered && c.ext.Size > 0 && msgSize > c.ext.Size {
		// RFC 1870 §6: do not send a message larger than the server's
		// announced maximum.
		return refuse(552, "5.3.4", fmt.Sprintf("message of %d bytes exceeds the server's SIZE limit of %d bytes", msgSize, c.ext.Size), nil)
	}
	ret := strings.ToUpper(env.Ret)
	if ret != "" && ret != "FULL" && ret != "HDRS" {
		return refuse(501, "5.5.4", fmt.Sprintf("DSN RET %q is not FULL or HDRS", logLine(env.Ret)), nil)
	}

	var b strings.Builder
	b.WriteString("MAIL FROM:<" + env.MailFrom + ">")
	if c.ext.SizeOffered && msgSize > 0 {
		b.WriteString(" SIZE=" + strconv.FormatInt(msgSize, 10)) // RFC 1870 §6
	}
	if env.EightBitMIME {
		b.WriteString(" BODY=8BITMIME") // RFC 6152 §2
	}
	if env.SMTPUTF8 {
		b.WriteString(" SMTPUTF8") // RFC 6531 §3.4
	}
	if env.RequireTLS {
		b.WriteString(" REQUIRETLS") // RFC 8689 §2
	}
	if c.ext.DSN {
		if ret != "" {
			b.WriteString(" RET=" + ret) // RFC 3461 §4.3
		}
		if env.EnvID != "" {
			b.WriteString(" ENVID=" + xtext(env.EnvID)) // RFC 3461 §4.4
		}
	}
	line := b.String()
	if len(line)+2 > maxCommandLine {
		// RFC 5321 §4.5.3.1.4: command lines are at most 512 octets.
		return refuse(500, "5.5.4", fmt.Sprintf("MAIL command would be %d octets, over the limit of %d (RFC 5321 §4.5.3.1.4)", len(line)+2, maxCommandLine), nil)
	}
	return line, nil
}

// rcptCommand builds the RCPT command for r, or the reply refusing r.
func (c *Client) rcptCommand(r Recipient) (string, *Reply) {
	refuse := func(code int, enhanced, text string) (string, *Reply) {
		rep := localReply(code, enhanced, text)
		return "", &rep
	}
	if r.Addr == "" || !validAddress(r.Addr) {
		return refuse(501, "5.1.3", "recipient address is empty or contains control characters")
	}
	var b strings.Builder
	b.WriteString("RCPT TO:<" + r.Addr + ">")
	if c.ext.DSN {
		if r.Notify != "" {
			notify, ok := checkNotify(r.Notify)
			if !ok {
				return refuse(501, "5.5.4", fmt.Sprintf("DSN NOTIFY %q is not NEVER or a list of SUCCESS, FAILURE, DELAY", logLine(r.Notify)))
			}
			b.WriteString(" NOTIFY=" + notify) // RFC 3461 §4.1
		}
		if r.ORcpt != "" {
			typ, addr, ok := strings.Cut(r.ORcpt, ";")
			if !ok || !isAtom(typ) {
				return refuse(501, "5.5.4", fmt.Sprintf("DSN ORCPT %q is not addr-type;address", logLine(r.ORcpt)))
			}
			b.WriteString(" ORCPT=" + typ + ";" + xtext(addr)) // RFC 3461 §4.2
		}
	}
	line := b.String()
	if len(line)+2 > maxCommandLine {
		return refuse(500, "5.5.4", fmt.Sprintf("RCPT command would be %d octets, over the limit of %d (RFC 5321 §4.5.3.1.4)", len(line)+2, maxCommandLine))
	}
	return line, nil
}

// checkNotify validates and upper-cases a NOTIFY value: RFC 3461 §4.1,
// "NEVER" alone or a comma-separated list of SUCCESS, FAILURE and DELAY.
func checkNotify(s string) (string, bool) {
	s = strings.ToUpper(s)
	if s == "NEVER" {
		return s, true
	}
	seen := map[string]bool{}
	for _, w := range strings.Split(s, ",") {
		switch w {
		case "SUCCESS", "FAILURE", "DELAY":
			if seen[w] {
				return "", false
			}
			seen[w] = true
		default:
			return "", false
		}
	}
	return s, true
}

// xtext encodes s: RFC 3461 §4, octets "!" to "~" except "+" and "=" as
// themselves, all others as "+" and two upper-case hex digits.
func xtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch >= '!' && ch <= '~' && ch != '+' && ch != '=' {
			b.WriteByte(ch)
		} else {
			fmt.Fprintf(&b, "+%02X", ch)
		}
	}
	return b.String()
}

// validAddress: no control characters, which would break the command
// line (a CR or LF would let an address inject a command).
func validAddress(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// isAtom: an addr-type (RFC 3461 §4.2, an RFC 5322 atom; in practice
// letters, digits and "-").
func isAtom(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-') {
			return false
		}
	}
	return true
}
