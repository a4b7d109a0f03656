package queue

// Submissions (DESIGN.md §4). Every check a submission must pass is made
// here, in queue: the submitting role's own checks only give its client an
// early answer, and a compromised submission or web process must still be
// unable to send as someone else or past the limits. In order:
//
//  1. the spool belongs to the channel (its content is awaited only
//     after the session and envelope checks);
//  2. store says the session token is valid for the channel's role and
//     names the account, which must be configured;
//  3. MAIL FROM is not null and is an address the account may send as;
//  4. the recipients are addresses, at least one;
//  5. the message arrived completely, has a header and exactly one From
//     address, which the account may send as too;
//  6. in the commit: the account's daily limits.
//
// The accepted message is written as the queue file (the submitter's
// header lines, then the message without its X-Moxd-Extra-* fields),
// fsynced, linked and committed; only then does Submitted go back.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"moxd/internal/auth"
	"moxd/internal/ipc"
	"moxd/internal/storage/storeclient"
)

// maxFutureRelease bounds FUTURERELEASE (RFC 4865 §3: the server announces
// its maximum interval).
const maxFutureRelease = 60 * 24 * time.Hour

// submitTimeout bounds one Submit when the caller set no deadline.
const submitTimeout = 2 * time.Minute

func (sv *service) submit(ctx context.Context, ch channelKey, m *ipc.Submit) (*ipc.Submitted, error) {
	ctx, cancel := withTimeout(ctx, submitTimeout)
	defer cancel()

	// The spool is consumed by this Submit whatever its outcome: a refused
	// message is sent again from the start.
	sp, err := sv.spools.take(ch, m.Spool)
	if err != nil {
		return nil, err
	}
	defer func() { go sp.discard() }()
	if err := checkPrefix(m.Prefix, submitPrefixFields); err != nil {
		return nil, headerError(err)
	}

	if m.Token == ([32]byte{}) {
		return nil, ipc.Errorf(ipc.CodeDenied, "submission without a session: authenticate first")
	}
	ti, err := storeclient.NewAuth(sv.storePeer).CheckToken(ctx, auth.Token(m.Token), ch.role)
	if errors.Is(err, auth.ErrTokenInvalid) {
		return nil, ipc.Errorf(ipc.CodeDenied, "session not valid (expired, logged out, or from before a restart): authenticate again")
	} else if err != nil {
		sv.log.Info("session token check failed", "err", err)
		return nil, ipc.Errorf(ipc.CodeUnavailable, "cannot check the session with the account store now; try again later")
	}
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	return sv.accept(ctx, &submission{
		account:    ti.Account,
		mailFrom:   m.MailFrom,
		rcpts:      append(sp.rcpts, m.Recipients...),
		release:    m.FutureRelease,
		prefix:     m.Prefix,
		smtputf8:   m.SMTPUTF8,
		eightBit:   m.EightBit,
		ret:        m.Ret,
		envID:      m.EnvID,
		requireTLS: m.RequireTLS,
		open: func() (*os.File, int64, error) {
			if err := sp.wait(ctx); err != nil {
				return nil, 0, remoteError("receive message", err)
			}
			var err error
			if f, err = os.Open(sp.path); err != nil {
				return nil, 0, remoteError("open spooled message", err)
			}
			return f, sp.size, nil
		},
	})
}

// submission is a message to accept: from a submitting role (submit) or
// from a local user through master (sendmail.go).
type submission struct {
	account    string
	mailFrom   string
	rcpts      []ipc.SubmitRcpt
	release    int64 // FUTURERELEASE, Unix ns; 0 for none
	prefix     []byte
	smtputf8   bool
	eightBit   bool
	ret        uint8
	envID      string
	requireTLS bool
	// open returns the message and its size, once the envelope passed
	// its checks; the caller closes the file.
	open func() (*os.File, int64, error)
}

// accept checks a submission's envelope and message for its account and
// queues it (steps 3 to 6 of the package comment above, and DKIM
// signing).
func (sv *service) accept(ctx context.Context, m *submission) (*ipc.Submitted, error) {
	st := sv.settings.Load()
	account := m.account
	acct, ok := st.accounts[account]
	if !ok {
		return nil, ipc.Errorf(ipc.CodeDenied, "account %q may not send: it is not in the queue's configuration; check the account in domains.conf and reload", account)
	}

	if m.mailFrom == "" {
		return nil, ipc.Errorf(ipc.CodeDenied, "a submission needs a MAIL FROM address of account %q; the null sender <> is only for delivery status notifications", account)
	}
	lp, dom, err := parseAddress(m.mailFrom)
	if err != nil {
		return nil, ipc.Errorf(ipc.CodeBadRequest, "MAIL FROM %q: %v", ipc.ClipText(m.mailFrom, 200), err)
	}
	if !st.book.MaySendAs(account, lp, dom) {
		return nil, ipc.Errorf(ipc.CodeDenied, "MAIL FROM %q is not an address account %q may send as; use one of the account's addresses, or add it to the account in domains.conf", m.mailFrom, account)
	}

	all := m.rcpts
	if len(all) == 0 {
		return nil, ipc.Errorf(ipc.CodeBadRequest, "message without recipients; give at least one RCPT TO")
	}
	if len(all) > maxMessageRecipients {
		return nil, ipc.Errorf(ipc.CodeBadRequest, "more than %d recipients for one message; send it in several messages", maxMessageRecipients)
	}
	rcpts := make([]Recipient, len(all))
	for i, r := range all {
		if _, _, err := parseAddress(r.Address); err != nil {
			return nil, ipc.Errorf(ipc.CodeBadRequest, "recipient %q: %v", ipc.ClipText(r.Address, 200), err)
		}
		rcpts[i] = Recipient{Address: r.Address, Notify: r.Notify, ORcpt: r.ORcpt}
	}

	first := sv.now()
	if m.release != 0 {
		t := time.Unix(0, m.release)
		if t.After(first.Add(maxFutureRelease)) {
			return nil, ipc.Errorf(ipc.CodeBadRequest, "future release at %s is more than %d days ahead; choose an earlier time", t.UTC().Format(time.RFC3339), int(maxFutureRelease/(24*time.Hour)))
		}
		if t.After(first) {
			first = t
		}
	}

	f, size, err := m.open()
	if err != nil {
		return nil, err
	}
	h, err := scanHeader(f, size)
	if err != nil {
		return nil, headerError(err)
	}
	flp, fdom, err := h.fromAddress(f)
	if err != nil {
		return nil, headerError(err)
	}
	if !st.book.MaySendAs(account, flp, fdom) {
		return nil, ipc.Errorf(ipc.CodeDenied, "From header address %q is not an address account %q may send as; use one of the account's addresses, or add it to the account in domains.conf", flp+"@"+fdom, account)
	}
	extra, drop, err := h.extra()
	if err != nil {
		return nil, headerError(err)
	}
	messageID := h.first("Message-ID")
	for _, name := range []string{"Message-ID", "Date"} {
		v, added := prefixField(m.prefix, name)
		if !added {
			continue
		}
		if h.first(name) != "" {
			return nil, ipc.Errorf(ipc.CodeBadRequest, "the message has a %s header, and the submitting server added another", name)
		}
		if name == "Message-ID" {
			messageID = v
		}
	}
	// SMTPUTF8 as a property of the message, not of the client's MAIL
	// command: only UTF-8 in an address or the header needs a server
	// with SMTPUTF8 (RFC 6531 §3.4); an ASCII message sent with the
	// parameter goes anywhere.
	smtputf8 := m.smtputf8 && (h.eightBit || !ascii(m.mailFrom) || slices.ContainsFunc(rcpts, func(rc Recipient) bool { return !ascii(rc.Address) }))
	msg := Message{
		Account:   account,
		MailFrom:  m.mailFrom,
		SMTPUTF8:  smtputf8,
		EightBit:  m.eightBit,
		Ret:       m.ret,
		EnvID:     m.envID,
		Extra:     extra,
		MessageID: recordString(messageID),
		Subject:   recordString(h.first("Subject")),
	}
	switch {
	case m.requireTLS:
		msg.RequireTLS = RequireTLSYes
	case h.tlsRequiredNo():
		// RFC 8689 §5: only without the REQUIRETLS parameter.
		msg.RequireTLS = RequireTLSNo
	}

	tmp, size, err := writeQueueFile(sv.q.tmpDir, m.prefix, f, size, drop)
	if err != nil {
		return nil, remoteError("write queue file", err)
	}
	// Signed as queued, aligned with the From header's domain.
	if msg.Prepend, err = sv.dkimSign(ctx, fdom, tmp); err != nil {
		os.Remove(tmp)
		sv.log.Error("dkim signing failed; submission refused for now", "account", account, "domain", fdom, "err", err)
		return nil, ipc.Errorf(ipc.CodeUnavailable, "the message cannot be DKIM-signed now (%v); try again later", err)
	}
	if acct.UniqueMailFrom {
		msg.FromID = randomID(10)
	}
	id, err := sv.q.addMessage(&newMessage{
		msg:    msg,
		rcpts:  rcpts,
		tmp:    tmp,
		size:   size,
		first:  first,
		limits: dailyLimits{Messages: acct.MaxMessagesPerDay, FirstTimeRecipients: acct.MaxFirstTimeRecipientsPerDay},
	})
	if err != nil {
		os.Remove(tmp)
		var le *LimitError
		if errors.As(err, &le) {
			sv.log.Info("submission refused", "account", account, "reason", le.msg)
		} else {
			sv.log.Error("queue submission", "account", account, "err", err)
		}
		return nil, remoteError("queue message", err)
	}
	sv.log.Info("message queued", "msg", id, "account", account, "mailfrom", m.mailFrom, "recipients", len(rcpts), "size", size, "messageid", msg.MessageID)
	return &ipc.Submitted{Message: id, Recipients: len(rcpts)}, nil
}

// headerError is the reply for a refused header.
func headerError(err error) error {
	if errors.Is(err, errBadHeader) {
		return ipc.Errorf(ipc.CodeBadRequest, "%v", err)
	}
	return remoteError("read message", err)
}

// writeQueueFile writes the queue file into tmpDir: prefix, then the
// message of size bytes in src without the fields in drop (in header
// order). The file is fsynced. It returns the path and size.
func writeQueueFile(tmpDir string, prefix []byte, src *os.File, size int64, drop []headerField) (string, int64, error) {
	f, err := createTemp(tmpDir, "msg")
	if err != nil {
		return "", 0, err
	}
	n, err := func() (int64, error) {
		n, err := f.Write(prefix)
		total := int64(n)
		if err != nil {
			return total, err
		}
		var off int64
		for _, d := range append(drop, headerField{start: size, end: size}) {
			c, err := io.Copy(f, io.NewSectionReader(src, off, d.start-off))
			total += c
			if err != nil {
				return total, err
			}
			off = d.end
		}
		if err := f.Sync(); err != nil {
			return total, fmt.Errorf("sync queue file: %w", err)
		}
		return total, f.Close()
	}()
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", 0, fmt.Errorf("write queue file: %w", err)
	}
	return f.Name(), n, nil
}

// parseAddress splits an SMTP path address "localpart@domain" (RFC 5321
// §4.1.2, without angle brackets). A quoted local part is unquoted; the
// domain is lower-cased. UTF-8 is allowed (RFC 6531).
func parseAddress(s string) (localpart, domain string, err error) {
	if len(s) > ipc.MaxAddressLen {
		return "", "", fmt.Errorf("address longer than %d bytes", ipc.MaxAddressLen)
	}
	if !utf8.ValidString(s) {
		return "", "", errors.New("address is not valid UTF-8")
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return "", "", errors.New("not an address of the form user@domain")
	}
	lp, dom := s[:at], s[at+1:]
	for _, c := range dom {
		if c <= ' ' || c == 0x7f || strings.ContainsRune("<>()[]\\,;:@\"", c) {
			return "", "", fmt.Errorf("domain %q is not a domain name", dom)
		}
	}
	if strings.HasPrefix(lp, "\"") {
		// RFC 5321 §4.1.2 Quoted-string: unquote, keeping escaped
		// characters.
		if len(lp) < 2 || !strings.HasSuffix(lp, "\"") {
			return "", "", errors.New("unterminated quoted local part")
		}
		var b strings.Builder
		inner := lp[1 : len(lp)-1]
		for i := 0; i < len(inner); i++ {
			c := inner[i]
			if c == '\\' && i+1 < len(inner) {
				i++
				c = inner[i]
			} else if c == '"' || c == '\\' {
				return "", "", errors.New("bad quoted local part")
			}
			b.WriteByte(c)
		}
		lp = b.String()
	} else {
		for _, c := range lp {
			if c <= ' ' || c == 0x7f || strings.ContainsRune("<>()[]\\,;:@\"", c) {
				return "", "", fmt.Errorf("local part %q needs quoting", lp)
			}
		}
	}
	if lp == "" {
		return "", "", errors.New("empty local part")
	}
	return lp, strings.ToLower(dom), nil
}

// withTimeout bounds ctx by d unless it has an earlier deadline.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}
