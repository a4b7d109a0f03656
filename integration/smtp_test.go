//go:build linux

package integration

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"moxd/internal/ctl"
	"moxd/internal/dns/dnstest"
	"moxd/internal/mailproto/mbox"
)

// The SMTP tests share one instance (mailSuite) whose DNS is an in-process
// server of this test process, so SPF, DKIM, DMARC and iprev run against
// known records. Real clients written by others talk to it: swaks, Python's
// smtplib, curl, GNU gsasl, and Postfix relaying into it.

const mailBaseUID = 64600

// mailPassword is the password of account mox in the mail suite.
const mailPassword = "integration-Mail-1"

var (
	mailOnce  sync.Once
	mailInst  *instance
	mailDNS   *dnstest.Server
	mailError string
)

const mailDomains = `[[domain]]
name = "localhost"
localpart_separators = ["+"]
[[domain.dkim]]
selector = "sel-ed"
algorithm = "ed25519"
[[domain.alias]]
address = "team@localhost"
members = ["mox@localhost", "other@localhost"]

[[account]]
name = "mox"
addresses = ["mox@localhost", "postmaster@localhost"]
max_messages_per_day = 1000

[[account]]
name = "other"
addresses = ["other@localhost"]

[[account]]
name = "small"
addresses = ["small@localhost"]
quota = "2K"
`

// mailSuite returns the running mail instance, starting it the first time.
func mailSuite(t *testing.T) *instance {
	t.Helper()
	needRoot(t)
	mailOnce.Do(func() {
		var err error
		mailDNS, err = dnstest.New(
			`sender.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
			`_dmarc.sender.test. 300 IN TXT "v=DMARC1; p=none"`,
			`strict.test. 300 IN TXT "v=spf1 -all"`,
			`_dmarc.strict.test. 300 IN TXT "v=DMARC1; p=reject"`,
			`1.0.0.127.in-addr.arpa. 300 IN PTR client.sender.test.`,
			`client.sender.test. 300 IN A 127.0.0.1`,
		)
		if err != nil {
			mailError = err.Error()
			return
		}
		mailDNS.SetAuthentic("sender.test")
		dir, conf := writeConfig(t, confOptions{
			baseUID:    mailBaseUID,
			keep:       true,
			domainsCfg: mailDomains,
			dns:        fmt.Sprintf("nameservers = [%q]\n", mailDNS.Addr()),
			extra:      "\n[limits]\nunknown_recipient_delay = \"100ms\"\nauth_failure_delay = \"100ms\"\n",
		})
		in := start(t, dir, conf, mailBaseUID)
		in.waitReady()
		if out, code := moxctlRun(t, conf, mailPassword+"\n", "account", "password", "mox"); code != 0 {
			mailError = fmt.Sprintf("setting the password: exit %d: %s", code, out)
			return
		}
		mailInst = in
	})
	if mailInst == nil {
		t.Fatalf("mail suite did not start: %s", mailError)
	}
	mailInst.t = t
	return mailInst
}

// stopMailSuite is called by TestZZStopShared.
func stopMailSuite(t *testing.T) {
	if mailInst == nil {
		return
	}
	mailInst.t = t
	mailInst.stop()
	waitNoProcs(t, mailBaseUID, mailBaseUID+7)
	os.RemoveAll(mailInst.dir)
	mailDNS.Close()
}

// needTool skips without the program, but fails in CI, where .ci/run
// installs it.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not installed; .ci/run must install it", name)
	}
	t.Skipf("%s not installed", name)
	return ""
}

// mailAddr returns the address of a listener of the mail suite.
func mailAddr(t *testing.T, in *instance, kind string) (host, port string) {
	t.Helper()
	st := in.waitReady()
	a := listenerAddr(st, kind)
	h, p, err := net.SplitHostPort(a)
	if err != nil {
		t.Fatalf("listener %s: %q", kind, a)
	}
	return h, p
}

// exportMessages returns the messages of a mailbox.
func exportMessages(t *testing.T, conf, account, mailbox string) []string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "export")
	if text, code := moxctlRun(t, conf, "", "export", "mbox", account, out, mailbox); code != 0 {
		t.Fatalf("export: exit %d\n%s", code, text)
	}
	var msgs []string
	filepath.Walk(out, func(path string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		r := mbox.NewReader(f, 1<<20)
		for {
			m, err := r.Next()
			if err != nil {
				break
			}
			msgs = append(msgs, string(m.Data))
		}
		return nil
	})
	return msgs
}

// findMessage returns the message with the given Message-ID, failing
// unless there is exactly one.
func findMessage(t *testing.T, msgs []string, id string) string {
	t.Helper()
	var found []string
	for _, m := range msgs {
		if strings.Contains(m, "Message-ID: <"+id+">") {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("message %s found %d times, want once", id, len(found))
	}
	return found[0]
}

// unfold joins folded header lines, for matching header content.
func unfold(s string) string {
	return strings.NewReplacer("\r\n\t", " ", "\r\n ", " ").Replace(s)
}

func runTool(t *testing.T, stdin string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() {
		out, err = cmd.CombinedOutput()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		return string(out), fmt.Errorf("%s timed out", name)
	}
	return string(out), err
}

// TestSMTPSwaks delivers to port 25 with swaks: plain, STARTTLS and
// pipelined; the stored messages carry the trace and check results.
func TestSMTPSwaks(t *testing.T) {
	in := mailSuite(t)
	swaks := needTool(t, "swaks")
	host, port := mailAddr(t, in, "smtp")
	cases := []struct {
		id    string
		extra []string
		tls   bool
	}{
		{"swaks-plain", nil, false},
		{"swaks-tls", []string{"--tls"}, true},
		{"swaks-pipeline", []string{"--pipeline"}, false},
	}
	for _, c := range cases {
		args := append([]string{"--server", host, "--port", port, "--helo", "client.sender.test", "--from", "a@sender.test", "--to", "mox@localhost",
			"--header", "Message-ID: <" + c.id + "@sender.test>", "--header", "From: <a@sender.test>", "--body", "hello from swaks", "--timeout", "30"}, c.extra...)
		out, err := runTool(t, "", swaks, args...)
		if err != nil || !strings.Contains(out, "250 2.0.0") {
			t.Fatalf("swaks %v: %v\n%s", c.extra, err, out)
		}
		if c.id == "swaks-plain" && strings.Contains(out, "AUTH") {
			t.Errorf("port 25 announces AUTH:\n%s", out)
		}
	}
	msgs := exportMessages(t, in.conf, "mox", "INBOX")
	for _, c := range cases {
		m := unfold(findMessage(t, msgs, c.id+"@sender.test"))
		for _, want := range []string{"Authentication-Results: localhost", "iprev=pass", "spf=pass", "smtp.mailfrom=a@sender.test", "dmarc=", "Received: from client.sender.test (client.sender.test [127.0.0.1]) by localhost (moxd)", "dnssec-authentic: ", "hello from swaks"} {
			if !strings.Contains(m, want) {
				t.Errorf("%s lacks %q:\n%s", c.id, want, m)
			}
		}
		if c.tls && !strings.Contains(m, "with ESMTPS (TLS 1.3 ") {
			t.Errorf("%s: Received does not record TLS:\n%s", c.id, m)
		}
	}
}

// TestSMTPRecipients checks unknown recipients, aliases and separators on
// port 25.
func TestSMTPRecipients(t *testing.T) {
	in := mailSuite(t)
	swaks := needTool(t, "swaks")
	host, port := mailAddr(t, in, "smtp")
	out, _ := runTool(t, "", swaks, "--server", host, "--port", port, "--from", "a@sender.test", "--to", "nobody@localhost", "--quit-after", "RCPT", "--timeout", "30")
	if !strings.Contains(out, "550 5.1.1") {
		t.Fatalf("unknown recipient: want 550 5.1.1:\n%s", out)
	}
	out, err := runTool(t, "", swaks, "--server", host, "--port", port, "--from", "a@sender.test", "--to", "team@localhost,mox+tag@localhost",
		"--header", "Message-ID: <alias@sender.test>", "--timeout", "30")
	if err != nil {
		t.Fatalf("alias: %v\n%s", err, out)
	}
	// mox gets it twice (through the alias and the tagged address), other
	// once through the alias.
	if n := strings.Count(strings.Join(exportMessages(t, in.conf, "mox", "INBOX"), "\n"), "Message-ID: <alias@sender.test>"); n != 2 {
		t.Errorf("mox has the alias message %d times, want 2", n)
	}
	findMessage(t, exportMessages(t, in.conf, "other", "INBOX"), "alias@sender.test")
}

// TestSMTPDMARCReject: a message failing DMARC of a p=reject domain gets
// 550 with the reason.
func TestSMTPDMARCReject(t *testing.T) {
	in := mailSuite(t)
	swaks := needTool(t, "swaks")
	host, port := mailAddr(t, in, "smtp")
	out, _ := runTool(t, "", swaks, "--server", host, "--port", port, "--from", "a@strict.test", "--to", "mox@localhost",
		"--header", "From: <a@strict.test>", "--header", "Message-ID: <dmarc@strict.test>", "--timeout", "30")
	if !strings.Contains(out, "550 5.7.1") || !strings.Contains(out, "strict.test") {
		t.Fatalf("want 550 5.7.1 naming strict.test:\n%s", out)
	}
}

// TestSubmissionSwaks submits over 587 (STARTTLS) and 465 with PLAIN,
// LOGIN and CRAM-MD5, and checks a foreign From is refused.
func TestSubmissionSwaks(t *testing.T) {
	in := mailSuite(t)
	swaks := needTool(t, "swaks")
	host, port := mailAddr(t, in, "submission")
	_, port465 := mailAddr(t, in, "submissions")
	for _, c := range []struct {
		port string
		args []string
	}{
		{port, []string{"--tls", "--auth", "PLAIN"}},
		{port, []string{"--tls", "--auth", "LOGIN"}},
		{port, []string{"--auth", "CRAM-MD5"}},
		{port465, []string{"--tlsc", "--auth", "PLAIN"}},
	} {
		args := append([]string{"--server", host, "--port", c.port, "--from", "mox@localhost", "--to", "someone@remote.test",
			"--auth-user", "mox", "--auth-password", mailPassword, "--header", "From: <mox@localhost>", "--timeout", "30"}, c.args...)
		out, err := runTool(t, "", swaks, args...)
		if err != nil || !strings.Contains(out, "250 2.0.0 message queued as") {
			t.Fatalf("swaks %v: %v\n%s", c.args, err, out)
		}
	}
	// PLAIN is not offered before TLS.
	out, _ := runTool(t, "", swaks, "--server", host, "--port", port, "--from", "mox@localhost", "--to", "x@remote.test", "--auth", "PLAIN",
		"--auth-user", "mox", "--auth-password", mailPassword, "--timeout", "30")
	if strings.Contains(out, "235 ") {
		t.Fatalf("PLAIN accepted without TLS:\n%s", out)
	}
	// A From the account does not own: refused by queue.
	out, _ = runTool(t, "", swaks, "--server", host, "--port", port, "--tls", "--auth", "PLAIN", "--auth-user", "mox", "--auth-password", mailPassword,
		"--from", "mox@localhost", "--to", "x@remote.test", "--header", "From: <boss@elsewhere.test>", "--timeout", "30")
	if !strings.Contains(out, "550 5.7.1") || !strings.Contains(out, "boss@elsewhere.test") {
		t.Fatalf("foreign From: want 550 5.7.1 naming the address:\n%s", out)
	}
	// Wrong password.
	out, _ = runTool(t, "", swaks, "--server", host, "--port", port, "--tls", "--auth", "PLAIN", "--auth-user", "mox", "--auth-password", "wrong",
		"--from", "mox@localhost", "--to", "x@remote.test", "--timeout", "30")
	if !strings.Contains(out, "535 5.7.8") {
		t.Fatalf("wrong password: want 535 5.7.8:\n%s", out)
	}
}

// TestSMTPPython uses Python's smtplib for the MX (with an SMTPUTF8
// recipient domain) and for submission over implicit TLS.
func TestSMTPPython(t *testing.T) {
	in := mailSuite(t)
	py := needTool(t, "/usr/bin/python3")
	host, port := mailAddr(t, in, "smtp")
	_, port465 := mailAddr(t, in, "submissions")
	script := fmt.Sprintf(`
import smtplib, ssl
s = smtplib.SMTP(%[1]q, %[2]s, timeout=30)
s.ehlo("client.sender.test")
assert s.has_extn("smtputf8") and s.has_extn("chunking") and not s.has_extn("auth")
s.sendmail("a@sender.test", ["mox@localhost"], b"From: <a@sender.test>\r\nMessage-ID: <python-mx@sender.test>\r\nSubject: py\r\n\r\nhello\r\n")
s.quit()
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP_SSL(%[1]q, %[3]s, context=ctx, timeout=30)
s.login("mox", %[4]q)
r = s.sendmail("mox@localhost", ["ünïcode@bücher.test"], "From: <mox@localhost>\r\nSubject: py\r\n\r\nhello\r\n".encode(), mail_options=["SMTPUTF8"])
assert r == {}, r
s.quit()
print("ok")
`, host, port, port465, mailPassword)
	out, err := runTool(t, "", py, "-c", script)
	if err != nil || !strings.Contains(out, "ok") {
		t.Fatalf("python: %v\n%s", err, out)
	}
	findMessage(t, exportMessages(t, in.conf, "mox", "INBOX"), "python-mx@sender.test")
}

// TestSMTPCurl sends with curl's smtp:// to port 25.
func TestSMTPCurl(t *testing.T) {
	in := mailSuite(t)
	curl := needTool(t, "curl")
	host, port := mailAddr(t, in, "smtp")
	msg := "From: <a@sender.test>\r\nMessage-ID: <curl@sender.test>\r\nSubject: curl\r\n\r\nhello\r\n"
	out, err := runTool(t, msg, curl, "-sS", "--url", "smtp://"+host+":"+port, "--mail-from", "a@sender.test", "--mail-rcpt", "mox@localhost", "--upload-file", "-")
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	findMessage(t, exportMessages(t, in.conf, "mox", "INBOX"), "curl@sender.test")
}

// TestSubmissionGSASL logs in with SCRAM-SHA-256-PLUS using GNU gsasl, an
// independent SASL client, over STARTTLS with channel binding.
func TestSubmissionGSASL(t *testing.T) {
	in := mailSuite(t)
	gsasl := needTool(t, "gsasl")
	host, port := mailAddr(t, in, "submission")
	ca := filepath.Join(in.dir, "data", "localca.pem")
	for _, mech := range []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5"} {
		args := []string{"--smtp", "--connect", host + ":" + port, "--hostname", "localhost", "--starttls", "--x509-ca-file", ca,
			"--mechanism", mech, "--authentication-id", "mox", "--password", mailPassword, "--verbose"}
		if !strings.HasSuffix(mech, "-PLUS") {
			// Without --no-cb gsasl says it could bind ("y" flag);
			// against a server offering -PLUS that is a downgrade and
			// correctly refused (RFC 5802 §6).
			args = append(args, "--no-cb")
		}
		out, err := runTool(t, "", gsasl, args...)
		if err != nil || !strings.Contains(out, "235 2.7.0") {
			t.Fatalf("gsasl %s: %v\n%s", mech, err, out)
		}
	}
	out, _ := runTool(t, "", gsasl, "--smtp", "--connect", host+":"+port, "--hostname", "localhost", "--starttls", "--x509-ca-file", ca,
		"--mechanism", "SCRAM-SHA-256-PLUS", "--authentication-id", "mox", "--password", "wrong", "--verbose")
	if !strings.Contains(out, "535 5.7.8") {
		t.Fatalf("gsasl with a wrong password: want 535:\n%s", out)
	}
}

// rawSession is a line client for tests that need exact bytes.
type rawSession struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawSession {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s := &rawSession{t: t, conn: conn, br: bufio.NewReader(conn)}
	s.reply("220")
	return s
}

func (s *rawSession) reply(want string) string {
	s.t.Helper()
	s.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	var all []string
	for {
		l, err := s.br.ReadString('\n')
		if err != nil {
			s.t.Fatalf("read reply (want %s) after %q: %v", want, all, err)
		}
		all = append(all, strings.TrimRight(l, "\r\n"))
		if len(l) < 4 || l[3] != '-' {
			break
		}
	}
	got := strings.Join(all, "\n")
	if !strings.HasPrefix(got, want) {
		s.t.Fatalf("reply %q, want %s", got, want)
	}
	return got
}

func (s *rawSession) cmd(line, want string) string {
	s.t.Helper()
	s.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(s.conn, "%s\r\n", line)
	return s.reply(want)
}

// TestSMTPSmuggling sends the smuggling vectors to the real server: none
// ends the data, none creates a second message.
func TestSMTPSmuggling(t *testing.T) {
	in := mailSuite(t)
	st := in.waitReady()
	addr := listenerAddr(st, "smtp")
	for i, v := range []string{"\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r"} {
		s := dialRaw(t, addr)
		s.cmd("EHLO client.sender.test", "250")
		s.cmd("MAIL FROM:<a@sender.test>", "250")
		s.cmd("RCPT TO:<mox@localhost>", "250")
		s.cmd("DATA", "354")
		fmt.Fprintf(s.conn, "From: <a@sender.test>\r\nMessage-ID: <smuggle-outer-%d@sender.test>\r\n\r\nfirst%sMAIL FROM:<a@sender.test>\r\nRCPT TO:<mox@localhost>\r\nDATA\r\nMessage-ID: <smuggle-inner-%d@sender.test>\r\n\r\nsmuggled\r\n.\r\n", i, v, i)
		s.reply("554 5.6.0")
		s.cmd("QUIT", "221")
	}
	for _, m := range exportMessages(t, in.conf, "mox", "INBOX") {
		if strings.Contains(m, "smuggle-") {
			t.Fatalf("a smuggling vector was stored:\n%s", m)
		}
	}
}

// TestSMTPKillAfterAck kills moxd-smtp right after each 250: every
// acknowledged message is in the store.
func TestSMTPKillAfterAck(t *testing.T) {
	in := mailSuite(t)
	var acked []string
	for i := range 8 {
		st := in.waitReady()
		s := dialRaw(t, listenerAddr(st, "smtp"))
		s.cmd("EHLO client.sender.test", "250")
		id := fmt.Sprintf("kill-%d@sender.test", i)
		s.cmd("MAIL FROM:<a@sender.test>", "250")
		s.cmd("RCPT TO:<mox@localhost>", "250")
		s.cmd("DATA", "354")
		fmt.Fprintf(s.conn, "From: <a@sender.test>\r\nMessage-ID: <%s>\r\n\r\nbody %d\r\n.\r\n", id, i)
		s.reply("250 2.0.0")
		acked = append(acked, id)
		pid := pidOf(in, "smtp")
		if pid == 0 {
			t.Fatalf("no smtp pid")
		}
		syscall.Kill(pid, syscall.SIGKILL)
		in.waitStatus("smtp restarted", func(st ctl.Status) bool { r := role(st, "smtp"); return r.PID != pid && r.State == "ready" })
	}
	msgs := exportMessages(t, in.conf, "mox", "INBOX")
	for _, id := range acked {
		findMessage(t, msgs, id)
	}
}

// TestSMTPLocalRetry: one recipient's account is over its quota while the
// other's takes the message: the client hears 250, and queue holds the
// failed recipient for a local retry with store's copy of the message.
func TestSMTPLocalRetry(t *testing.T) {
	in := mailSuite(t)
	before, _ := counter(in.waitReady(), "queue", "local_retries_accepted")
	st := in.waitReady()
	s := dialRaw(t, listenerAddr(st, "smtp"))
	s.cmd("EHLO client.sender.test", "250")
	s.cmd("MAIL FROM:<a@sender.test>", "250")
	s.cmd("RCPT TO:<mox@localhost>", "250")
	s.cmd("RCPT TO:<small@localhost>", "250")
	s.cmd("DATA", "354")
	fmt.Fprintf(s.conn, "From: <a@sender.test>\r\nMessage-ID: <retry@sender.test>\r\n\r\n%s\r\n.\r\n", strings.Repeat("x", 4000))
	if got := s.reply("250 2.0.0"); !strings.Contains(got, "1 of 2") {
		t.Fatalf("reply %q, want 250 saying one recipient is queued", got)
	}
	findMessage(t, exportMessages(t, in.conf, "mox", "INBOX"), "retry@sender.test")
	after, ok := counter(in.waitReady(), "queue", "local_retries_accepted")
	if !ok || after != before+1 {
		t.Fatalf("queue local_retries_accepted %d -> %d, want one more", before, after)
	}
	st = in.waitReady()
	if n, _ := counter(st, "queue", "recipients_queued"); n < 1 {
		t.Fatalf("queue holds %d recipients, want the over-quota one", n)
	}
}
