package moxctl

// sendmail(8) mode: invoked as "sendmail" (a link to moxctl) or as
// "moxctl sendmail", it reads a message on standard input and submits it,
// for cron, scripts and programs that expect a local sendmail.
//
// Local submission goes through master's sendmail socket (0666, next to
// the control socket): master maps the caller's uid (from the socket's
// peer credentials, not from anything the caller says) to the account
// whose unix_users lists it, and hands the message as a file to queue,
// which checks it like any submission. No password is stored anywhere.
//
// When a submission server is configured (~/.moxd-sendmail.conf, else
// /etc/moxd/sendmail.conf), the message goes there instead, with SASL
// (the most secure mechanism both sides have unless one is configured).
//
// A message that cannot be submitted is appended to ~/dead.letter and the
// error is printed; the exit status is 75 (EX_TEMPFAIL) when trying again
// later may work, 1 otherwise.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"moxd/internal/config"
	"moxd/internal/ctl"
	"moxd/internal/mailproto/smtpclient"
)

// Exit statuses of sendmail mode (sysexits.h).
const (
	exitTempFail = 75 // EX_TEMPFAIL
)

// maxSendmailMessage bounds the message read from standard input.
const maxSendmailMessage = 100 << 20

// sendmailOpts are the options of a sendmail invocation.
type sendmailOpts struct {
	from     string // -f: envelope sender
	fullName string // -F: display name for a From header moxctl adds
	headers  bool   // -t: recipients from To, Cc and Bcc
	dotEnds  bool   // without -i/-oi: a line "." ends the message
	rcpts    []string
}

// parseSendmailArgs parses the options sendmail users expect. Options
// that only matter to other implementations (-odi, -oem, -bm, -v, -N,
// -R, -X and other -o and -b flags) are accepted and ignored; -bs, -bd,
// -bp and -q ask for things moxctl does not do and are refused.
func parseSendmailArgs(args []string) (*sendmailOpts, error) {
	o := &sendmailOpts{dotEnds: true}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			o.rcpts = append(o.rcpts, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			o.rcpts = append(o.rcpts, a)
			continue
		}
		value := func(flag string) (string, error) {
			if len(a) > len(flag) {
				return a[len(flag):], nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("option %s needs a value", flag)
			}
			i++
			return args[i], nil
		}
		var err error
		switch {
		case a == "-t":
			o.headers = true
		case a == "-i", a == "-oi", a == "-oitrue":
			o.dotEnds = false
		case strings.HasPrefix(a, "-f"), strings.HasPrefix(a, "-r"):
			o.from, err = value(a[:2])
		case strings.HasPrefix(a, "-F"):
			o.fullName, err = value("-F")
		case a == "-bs", a == "-bd", a == "-bp", strings.HasPrefix(a, "-q"), a == "-bi":
			return nil, fmt.Errorf("option %s is not supported: moxctl sendmail only submits a message read from standard input", a)
		case strings.HasPrefix(a, "-N"), strings.HasPrefix(a, "-R"), strings.HasPrefix(a, "-X"), strings.HasPrefix(a, "-B"),
			strings.HasPrefix(a, "-V"), strings.HasPrefix(a, "-L"), strings.HasPrefix(a, "-h"), strings.HasPrefix(a, "-C"):
			// Options with a value that moxctl ignores.
			if len(a) == 2 {
				i++
			}
		case strings.HasPrefix(a, "-o"), strings.HasPrefix(a, "-b"), a == "-v", a == "-m", a == "-n", a == "-U", a == "-G", a == "-Am", a == "-Ac":
		default:
			return nil, fmt.Errorf("unknown option %s", a)
		}
		if err != nil {
			return nil, err
		}
	}
	if !o.headers && len(o.rcpts) == 0 {
		return nil, errors.New("no recipients: give them as arguments, or use -t to take them from the To, Cc and Bcc header fields")
	}
	return o, nil
}

// readSendmailMessage reads the message from r: up to EOF, or a line with
// only "." when dotEnds, with line endings made CRLF.
func readSendmailMessage(r io.Reader, dotEnds bool) ([]byte, error) {
	br := bufio.NewReader(io.LimitReader(r, maxSendmailMessage+1))
	var b bytes.Buffer
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			line = bytes.TrimRight(line, "\r\n")
			if dotEnds && string(line) == "." {
				break
			}
			b.Write(line)
			b.WriteString("\r\n")
		}
		if err == io.EOF {
			break
		} else if err != nil {
			return nil, err
		}
		if b.Len() > maxSendmailMessage {
			return nil, fmt.Errorf("message larger than %d MiB", maxSendmailMessage>>20)
		}
	}
	if b.Len() > maxSendmailMessage {
		return nil, fmt.Errorf("message larger than %d MiB", maxSendmailMessage>>20)
	}
	return b.Bytes(), nil
}

// headerFields splits msg into its header fields (each with its folded
// continuation lines) and the body (after the empty line).
func headerFields(msg []byte) (fields [][]byte, body []byte) {
	rest := msg
	for len(rest) > 0 {
		if bytes.HasPrefix(rest, []byte("\r\n")) {
			return fields, rest[2:]
		}
		end := bytes.Index(rest, []byte("\r\n"))
		if end < 0 {
			end = len(rest) - 2
		}
		line := rest[:end+2]
		rest = rest[end+2:]
		if (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			fields[len(fields)-1] = append(fields[len(fields)-1], line...)
			continue
		}
		if !bytes.Contains(line, []byte(":")) {
			// Not a header field: the message has no header.
			return nil, msg
		}
		fields = append(fields, bytes.Clone(line))
	}
	return fields, nil
}

func fieldName(f []byte) string {
	n, _, _ := bytes.Cut(f, []byte(":"))
	return strings.ToLower(strings.TrimSpace(string(n)))
}

// prepareMessage applies -t (recipients from the header, Bcc removed) and
// adds the From, Date and Message-ID fields the message lacks. It returns
// the message and the recipients.
func prepareMessage(msg []byte, o *sendmailOpts, fromAddr, hostname string, now time.Time) ([]byte, []string, error) {
	fields, body := headerFields(msg)
	rcpts := append([]string(nil), o.rcpts...)
	var out bytes.Buffer
	have := map[string]bool{}
	for _, f := range fields {
		name := fieldName(f)
		have[name] = true
		if o.headers && (name == "to" || name == "cc" || name == "bcc") {
			_, v, _ := bytes.Cut(f, []byte(":"))
			l, err := mail.ParseAddressList(strings.TrimSpace(strings.NewReplacer("\r\n", "").Replace(string(v))))
			if err != nil {
				return nil, nil, fmt.Errorf("-t: %s header: %v", name, err)
			}
			for _, a := range l {
				rcpts = append(rcpts, a.Address)
			}
			if name == "bcc" {
				continue // RFC 5322 §3.6.3: Bcc is not sent on
			}
		}
		out.Write(f)
	}
	var add bytes.Buffer
	if !have["from"] {
		a := mail.Address{Name: o.fullName, Address: fromAddr}
		fmt.Fprintf(&add, "From: %s\r\n", a.String())
	}
	if !have["date"] {
		fmt.Fprintf(&add, "Date: %s\r\n", now.Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	}
	if !have["message-id"] {
		id := make([]byte, 12)
		rand.Read(id)
		fmt.Fprintf(&add, "Message-ID: <%s@%s>\r\n", hex.EncodeToString(id), hostname)
	}
	if len(rcpts) == 0 {
		return nil, nil, errors.New("-t: no recipients in the To, Cc and Bcc header fields")
	}
	var b bytes.Buffer
	b.Write(add.Bytes())
	b.Write(out.Bytes())
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes(), rcpts, nil
}

// sendmailConf is ~/.moxd-sendmail.conf or /etc/moxd/sendmail.conf.
type sendmailConf struct {
	Host         string   `toml:"host"`
	Port         int      `toml:"port"`
	TLS          string   `toml:"tls"` // "implicit" (default, port 465) or "starttls" (port 587)
	Username     string   `toml:"username"`
	PasswordFile string   `toml:"password_file"`
	Mechanisms   []string `toml:"mechanisms"`
	From         string   `toml:"from"` // envelope sender and From address
	CAFile       string   `toml:"ca_file"`
}

// loadSendmailConf returns the remote submission settings, nil when none
// are configured.
func loadSendmailConf() (*sendmailConf, string, error) {
	var paths []string
	if home, err := os.UserHomeDir(); err == nil {
		paths = append(paths, filepath.Join(home, ".moxd-sendmail.conf"))
	}
	paths = append(paths, "/etc/moxd/sendmail.conf")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, p, err
		}
		var c sendmailConf
		md, err := toml.Decode(string(b), &c)
		if err != nil {
			return nil, p, err
		}
		if u := md.Undecoded(); len(u) > 0 {
			return nil, p, fmt.Errorf("unknown key %s", u[0])
		}
		if c.Host == "" || c.Username == "" || c.PasswordFile == "" {
			return nil, p, errors.New("host, username and password_file are required")
		}
		if c.TLS == "" {
			c.TLS = "implicit"
		}
		if c.TLS != "implicit" && c.TLS != "starttls" {
			return nil, p, fmt.Errorf("tls %q: use implicit or starttls", c.TLS)
		}
		if c.Port == 0 {
			c.Port = 465
			if c.TLS == "starttls" {
				c.Port = 587
			}
		}
		return &c, p, nil
	}
	return nil, "", nil
}

// sendmailError is a failure with its exit status.
type sendmailError struct {
	temporary bool
	err       error
}

func (e *sendmailError) Error() string { return e.err.Error() }

// sendmail runs sendmail mode.
func (c *cli) sendmail(args []string) int {
	o, err := parseSendmailArgs(args)
	if err != nil {
		fmt.Fprintf(c.stderr, "sendmail: %v\n", err)
		return ExitUsage
	}
	msg, err := readSendmailMessage(c.stdin, o.dotEnds)
	if err != nil {
		fmt.Fprintf(c.stderr, "sendmail: reading the message: %v\n", err)
		return ExitFailed
	}
	err = c.submitSendmail(o, msg)
	if err == nil {
		return ExitOK
	}
	code := ExitFailed
	var se *sendmailError
	if errors.As(err, &se) && se.temporary {
		code = exitTempFail
	}
	if p, derr := saveDeadLetter(msg, o.from); derr != nil {
		fmt.Fprintf(c.stderr, "sendmail: %v; saving the message failed too: %v\n", err, derr)
	} else {
		fmt.Fprintf(c.stderr, "sendmail: %v; the message was saved in %s\n", err, p)
	}
	return code
}

func (c *cli) submitSendmail(o *sendmailOpts, msg []byte) error {
	rc, path, err := loadSendmailConf()
	if err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	if rc != nil {
		return submitRemote(rc, o, msg)
	}
	return c.submitLocal(o, msg)
}

// sendmailSocket is the path of master's sendmail socket: in the run
// directory of the configuration when moxctl can read it, else in the
// default run directory.
func (c *cli) sendmailSocket() string {
	if st, err := config.LoadStatic(c.file); err == nil {
		return ctl.SendmailSocketPath(st.RunDir)
	}
	return ctl.SendmailSocketPath(config.DefaultRunDir)
}

func (c *cli) submitLocal(o *sendmailOpts, msg []byte) error {
	cl, err := ctl.Dial(c.sendmailSocket())
	if err != nil {
		return &sendmailError{true, fmt.Errorf("moxd is not reachable (%v)", err)}
	}
	defer cl.Close()
	var id ctl.SendmailIdentity
	if _, err := cl.Call(ctl.Request{Cmd: "sendmail identity"}, nil, &id); err != nil {
		return &sendmailError{false, err}
	}
	from := o.from
	if from == "" {
		from = id.Address
	}
	prepared, rcpts, err := prepareMessage(msg, o, from, id.Hostname, time.Now())
	if err != nil {
		return err
	}
	f, err := os.CreateTemp("", "moxctl-sendmail-")
	if err != nil {
		return &sendmailError{true, fmt.Errorf("temporary file for the message: %w", err)}
	}
	os.Remove(f.Name())
	defer f.Close()
	if _, err := f.Write(prepared); err != nil {
		return &sendmailError{true, fmt.Errorf("temporary file for the message: %w", err)}
	}
	var res ctl.SendmailResult
	if _, err := cl.Call(ctl.Request{Cmd: "sendmail submit", Args: append([]string{from}, rcpts...)}, []*os.File{f}, &res); err != nil {
		return &sendmailError{true, err}
	}
	if res.Error != "" {
		return &sendmailError{res.Temporary, errors.New(res.Error)}
	}
	return nil
}

// submitRemote submits through the configured submission server.
func submitRemote(rc *sendmailConf, o *sendmailOpts, msg []byte) error {
	pw, err := os.ReadFile(rc.PasswordFile)
	if err != nil {
		return fmt.Errorf("password_file: %v", err)
	}
	password := strings.TrimRight(string(pw), "\r\n")
	from := o.from
	if from == "" {
		from = rc.From
	}
	if from == "" {
		from = rc.Username
	}
	host, _ := os.Hostname()
	prepared, rcpts, err := prepareMessage(msg, o, from, host, time.Now())
	if err != nil {
		return err
	}
	tcfg := &tls.Config{ServerName: rc.Host, MinVersion: tls.VersionTLS12}
	if rc.CAFile != "" {
		pool, err := certPool(rc.CAFile)
		if err != nil {
			return err
		}
		tcfg.RootCAs = pool
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	addr := net.JoinHostPort(rc.Host, strconv.Itoa(rc.Port))
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return &sendmailError{true, fmt.Errorf("connect to %s: %v", addr, err)}
	}
	if rc.TLS == "implicit" {
		tc := tls.Client(conn, tcfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return &sendmailError{true, fmt.Errorf("tls with %s: %v", addr, err)}
		}
		conn = tc
	}
	cl, err := smtpclient.New(ctx, conn, smtpclient.Config{Hostname: host})
	if err != nil {
		conn.Close()
		return smtpError(err)
	}
	defer cl.Close()
	if rc.TLS == "starttls" {
		if err := cl.StartTLS(ctx, tcfg); err != nil {
			return smtpError(err)
		}
	}
	if err := cl.Auth(ctx, rc.Mechanisms, rc.Username, password); err != nil {
		return smtpError(err)
	}
	env := smtpclient.Envelope{MailFrom: from}
	for _, r := range rcpts {
		env.Recipients = append(env.Recipients, smtpclient.Recipient{Addr: r})
	}
	res, err := cl.Deliver(ctx, env, bytes.NewReader(prepared), int64(len(prepared)))
	if err != nil {
		return smtpError(err)
	}
	var refused []string
	temporary := false
	for i, r := range res {
		if !r.Accepted {
			refused = append(refused, fmt.Sprintf("%s: %s", rcpts[i], r.Reply))
			temporary = temporary || !r.Reply.Permanent()
		}
	}
	cl.Quit(ctx)
	if len(refused) > 0 {
		return &sendmailError{temporary, fmt.Errorf("%s refused recipients: %s", addr, strings.Join(refused, "; "))}
	}
	return nil
}

func smtpError(err error) error {
	var se *smtpclient.Error
	return &sendmailError{!(errors.As(err, &se) && se.Permanent()), err}
}

// saveDeadLetter appends msg to ~/dead.letter in mbox form and returns the
// path.
func saveDeadLetter(msg []byte, from string) (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(home, "dead.letter")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return "", err
	}
	if from == "" {
		from = "MAILER-DAEMON"
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "From %s %s\n", from, time.Now().Format(time.ANSIC))
	for _, line := range strings.SplitAfter(strings.ReplaceAll(string(msg), "\r\n", "\n"), "\n") {
		if strings.HasPrefix(strings.TrimLeft(line, ">"), "From ") {
			b.WriteString(">")
		}
		b.WriteString(line)
	}
	b.WriteString("\n")
	if _, err := f.Write(b.Bytes()); err != nil {
		f.Close()
		return "", err
	}
	return p, f.Close()
}

// certPool reads the PEM certificates of a CA file.
func certPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ca_file: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("ca_file %s has no PEM certificate", path)
	}
	return pool, nil
}
