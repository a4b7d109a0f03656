package master

// The sendmail socket (ctl/sendmail.go): local users' mail, from
// "moxctl sendmail". The socket is 0666 so every local user reaches it;
// what a caller may do is decided by its uid from the peer credentials:
// the uid must be listed in an account's unix_users, and its message is
// submitted as that account, through queue, which checks it like every
// submission (sender addresses, daily limits) and DKIM-signs it. Master
// never reads the message: it checks that the fd is a regular file and
// passes it on.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"moxd/internal/ctl"
	"moxd/internal/ipc"
)

// sendmailTimeout bounds one submission through queue.
const sendmailTimeout = 2 * time.Minute

// maxSendmailConns bounds the sendmail socket's connections at a time:
// every local user can connect.
const maxSendmailConns = 32

// listenSendmail creates the sendmail socket.
func (m *Master) listenSendmail() (*net.UnixListener, error) {
	path := ctl.SendmailSocketPath(m.config().Static.RunDir)
	ln, err := listenSocket("sendmail socket", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o666); err != nil {
		ln.Close()
		return nil, fmt.Errorf("sendmail socket: %w", err)
	}
	slots := make(chan struct{}, maxSendmailConns)
	go m.acceptLoop(ln, "sendmail socket", func(c *net.UnixConn) {
		select {
		case slots <- struct{}{}:
		default:
			m.log.Warn("sendmail socket: too many connections; closing one", "limit", maxSendmailConns)
			c.Close()
			return
		}
		defer func() { <-slots }()
		m.sendmailConn(c)
	})
	return ln, nil
}

func (m *Master) sendmailConn(uc *net.UnixConn) {
	c := ctl.NewConn(uc)
	defer c.Close()
	s := &ctlSession{m: m, c: c}
	uid, _, _, err := peerCred(uc)
	if err != nil {
		s.respond(nil, fmt.Errorf("peer credentials: %w", err))
		return
	}
	s.uid = uid
	for range 4 {
		c.SetDeadline(time.Now().Add(sendmailTimeout))
		req, files, err := c.ReadRequest()
		if errors.Is(err, io.EOF) {
			return
		} else if err != nil {
			s.respond(nil, err)
			return
		}
		switch req.Cmd {
		case "sendmail identity":
			closeAll(files)
			s.respond(m.sendmailIdentity(uid))
		case "sendmail submit":
			if len(files) != 1 || len(req.Args) < 2 {
				closeAll(files)
				s.respond(nil, errors.New("usage: sendmail submit FROM RCPT... (with the message file)"))
				continue
			}
			res := m.sendmailSubmit(uid, req.Args[0], req.Args[1:], files[0])
			files[0].Close()
			s.respond(res, nil)
		default:
			closeAll(files)
			s.respond(nil, fmt.Errorf("the sendmail socket serves only sendmail identity and sendmail submit, not %q", req.Cmd))
			return
		}
	}
}

// sendmailAccount returns the account of uid.
func (m *Master) sendmailAccount(uid uint32) (string, error) {
	cfg := m.config()
	name, ok := cfg.Dynamic.AccountForUID(int(uid))
	if !ok {
		return "", fmt.Errorf("uid %d may not send mail: it is in no account's unix_users (domains.conf); ask the administrator", uid)
	}
	return name, nil
}

func (m *Master) sendmailIdentity(uid uint32) (*ctl.SendmailIdentity, error) {
	name, err := m.sendmailAccount(uid)
	if err != nil {
		return nil, err
	}
	cfg := m.config()
	id := &ctl.SendmailIdentity{Account: name, Hostname: cfg.Static.HostnameASCII()}
	for _, a := range cfg.Dynamic.Accounts {
		if a.Name != name {
			continue
		}
		for _, addr := range a.AllAddresses() {
			if !strings.HasPrefix(addr, "@") {
				id.Address = addr
				break
			}
		}
	}
	if id.Address == "" {
		return nil, fmt.Errorf("account %s has no address to send from", name)
	}
	return id, nil
}

// sendmailSubmit passes the message to queue; refusals are in the result.
func (m *Master) sendmailSubmit(uid uint32, from string, rcpts []string, f *os.File) *ctl.SendmailResult {
	fail := func(temporary bool, format string, args ...any) *ctl.SendmailResult {
		return &ctl.SendmailResult{Error: fmt.Sprintf(format, args...), Temporary: temporary}
	}
	name, err := m.sendmailAccount(uid)
	if err != nil {
		return fail(false, "%v", err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return fail(false, "the message must be passed as a regular file")
	}
	if len(rcpts) > ipc.MaxSendmailRecipients {
		return fail(false, "more than %d recipients; send the message in parts", ipc.MaxSendmailRecipients)
	}
	qc, err := m.queueConn()
	if err != nil {
		return fail(true, "%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), sendmailTimeout)
	defer cancel()
	rep, err := qc.Call(ctx, &ipc.QueueSendmail{Account: name, UID: uid, MailFrom: from, Recipients: rcpts}, f)
	if err != nil {
		var re *ipc.RemoteError
		if errors.As(err, &re) {
			temporary := re.Code != ipc.CodeDenied && re.Code != ipc.CodeBadRequest
			return fail(temporary, "%s", re.Message)
		}
		return fail(true, "queue: %v", err)
	}
	sub := rep.Msg.(*ipc.QueueSendmailResult)
	m.log.Info("local mail submitted", "uid", uid, "account", name, "msg", sub.Message, "recipients", sub.Recipients)
	return &ctl.SendmailResult{Message: sub.Message, Recipients: int(sub.Recipients)}
}
