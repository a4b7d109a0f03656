package queue

// Local users' mail ("moxctl sendmail"): master maps the caller's uid to
// an account and passes the message file it got from moxctl
// (ipc.QueueSendmail). Queue copies the file into its own, then accepts
// it like a submission (submit.go): the account must be configured, MAIL
// FROM and the From header must be addresses it may send as, the daily
// limits apply, and the message is DKIM-signed. Its Received field names
// the local uid.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"moxd/internal/ipc"
	"moxd/internal/mailproto/sevenbit"
)

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func (sv *service) sendmail(ctx context.Context, m *ipc.QueueSendmail, f *os.File) (ipc.Message, error) {
	ctx, cancel := withTimeout(ctx, submitTimeout)
	defer cancel()
	st := sv.settings.Load()
	if _, ok := st.accounts[m.Account]; !ok {
		return nil, ipc.Errorf(ipc.CodeDenied, "account %q is not in the queue's configuration; check the account in domains.conf and reload", m.Account)
	}
	tmp, size, err := copyRegularFile(ctx, sv.q.tmpDir, nil, f, st.maxSize)
	if errors.Is(err, errBadMessage) {
		return nil, ipc.Errorf(ipc.CodeBadRequest, "message file: %v", err)
	} else if err != nil {
		return nil, remoteError("copy message file", err)
	}
	defer os.Remove(tmp)
	var rcpts []ipc.SubmitRcpt
	utf8 := !ascii(m.MailFrom)
	for _, r := range m.Recipients {
		rcpts = append(rcpts, ipc.SubmitRcpt{Address: r})
		utf8 = utf8 || !ascii(r)
	}
	// BODY=8BITMIME only when the message has 8-bit octets (RFC 6152).
	eightBit := true
	if c, err := os.Open(tmp); err == nil {
		eightBit, err = sevenbit.Needed(c)
		c.Close()
		if err != nil {
			eightBit = true
		}
	}
	now := sv.now()
	prefix := fmt.Sprintf("Received: from uid %d by %s (moxd) with local (sendmail)\r\n\tfor %s; %s\r\n",
		m.UID, sv.hostname, m.Account, now.Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	var file *os.File
	defer func() {
		if file != nil {
			file.Close()
		}
	}()
	rep, err := sv.accept(ctx, &submission{
		account:  m.Account,
		mailFrom: m.MailFrom,
		rcpts:    rcpts,
		prefix:   []byte(prefix),
		eightBit: eightBit,
		smtputf8: utf8,
		open: func() (*os.File, int64, error) {
			var err error
			if file, err = os.Open(tmp); err != nil {
				return nil, 0, remoteError("open message copy", err)
			}
			return file, size, nil
		},
	})
	if err != nil {
		sv.refused.Add(1)
		return nil, err
	}
	sv.submitted.Add(1)
	sv.log.Info("local mail queued", "uid", m.UID, "account", m.Account, "msg", rep.Message, "took", time.Since(now))
	return &ipc.QueueSendmailResult{Message: rep.Message, Recipients: uint32(rep.Recipients)}, nil
}
