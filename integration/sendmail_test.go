//go:build linux

package integration

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const sendmailBaseUID = 64900

const sendmailDomains = `[[domain]]
name = "localhost"
localpart_separators = ["+"]

[[account]]
name = "mox"
addresses = ["mox@localhost", "postmaster@localhost"]
unix_users = ["65534"]

[[account]]
name = "other"
addresses = ["other@localhost"]
`

// runAsUser runs the program as uid with HOME and MOXD_CONFIG set and
// stdin; it returns the combined output and the exit code.
func runAsUser(t *testing.T, uid, home, conf, stdin, prog string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("setpriv", append([]string{"--reuid=" + uid, "--regid=" + uid, "--clear-groups", "--", prog}, args...)...)
	cmd.Env = []string{"HOME=" + home, "MOXD_CONFIG=" + conf, "PATH=/usr/bin:/bin"}
	cmd.Stdin = strings.NewReader(stdin)
	out, _ := cmd.CombinedOutput()
	return string(out), cmd.ProcessState.ExitCode()
}

// userDir returns a new directory owned by uid that uid can reach.
func userDir(t *testing.T, uid int) string {
	t.Helper()
	d, err := os.MkdirTemp("", "moxd-home-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	os.Chmod(d, 0o755)
	os.Chown(d, uid, uid)
	return d
}

// TestSendmail: moxctl invoked as sendmail by a local user listed in an
// account's unix_users submits as that account through the sendmail
// socket, without any password; a user in no account is refused and
// finds the message in ~/dead.letter.
func TestSendmail(t *testing.T) {
	needRoot(t)
	needTool(t, "setpriv")
	dir, conf := writeConfig(t, confOptions{baseUID: sendmailBaseUID, domainsCfg: sendmailDomains})
	in := start(t, dir, conf, sendmailBaseUID)
	defer func() {
		in.stop()
		waitNoProcs(t, sendmailBaseUID, sendmailBaseUID+7)
	}()
	in.waitReady()
	for _, p := range []string{conf, filepath.Join(dir, "domains.conf")} {
		os.Chmod(p, 0o644) // sendmail reads run_dir from moxd.conf
	}
	link := filepath.Join(dir, "sendmail")
	if err := os.Symlink(filepath.Join(binDir, "moxctl"), link); err != nil {
		t.Fatal(err)
	}

	home := userDir(t, 65534)
	msg := "To: other@localhost\nSubject: cron output\n\nthe job ran\n.\nnot part of the message\n"
	out, code := runAsUser(t, "65534", home, conf, msg, link, "-t", "-F", "Cron Daemon")
	if code != 0 {
		t.Fatalf("sendmail as nobody: exit %d\n%s", code, out)
	}
	var got string
	deadline := time.Now().Add(10 * time.Second)
	for got == "" && time.Now().Before(deadline) {
		for _, m := range exportMessages(t, conf, "other", "INBOX") {
			if strings.Contains(m, "Subject: cron output") {
				got = m
			}
		}
		if got == "" {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if got == "" {
		t.Fatalf("message from sendmail not delivered to other's INBOX\n%s", in.stderr.String())
	}
	for _, want := range []string{"From: \"Cron Daemon\" <mox@localhost>", "Received: from uid 65534 by ", "Message-ID: <", "the job ran"} {
		if !strings.Contains(got, want) {
			t.Errorf("delivered message lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "not part of the message") {
		t.Errorf("the text after the line with a dot was sent:\n%s", got)
	}

	// With ~/.moxd-sendmail.conf, the message goes to that submission
	// server instead (here moxd's own port 465), with SASL.
	const password = "integration-Sendmail-1"
	if out, code := moxctlRun(t, conf, password+"\n", "account", "password", "mox"); code != 0 {
		t.Fatalf("account password: exit %d\n%s", code, out)
	}
	_, port, _ := net.SplitHostPort(listenerAddr(in.waitReady(), "submissions"))
	home3 := userDir(t, 65534)
	pwFile := filepath.Join(home3, "password")
	os.WriteFile(pwFile, []byte(password+"\n"), 0o600)
	os.Chown(pwFile, 65534, 65534)
	rc := fmt.Sprintf("host = \"localhost\"\nport = %s\ntls = \"implicit\"\nusername = \"mox@localhost\"\npassword_file = %q\nca_file = %q\nmechanisms = [\"SCRAM-SHA-256\"]\n",
		port, pwFile, filepath.Join(dir, "data", "localca.pem"))
	os.WriteFile(filepath.Join(home3, ".moxd-sendmail.conf"), []byte(rc), 0o644)
	out, code = runAsUser(t, "65534", home3, conf, "Subject: remote submission\n\nvia 465\n", link, "-f", "mox@localhost", "other@localhost")
	if code != 0 {
		t.Fatalf("sendmail with a submission server: exit %d\n%s", code, out)
	}
	got = ""
	deadline = time.Now().Add(10 * time.Second)
	for got == "" && time.Now().Before(deadline) {
		for _, m := range exportMessages(t, conf, "other", "INBOX") {
			if strings.Contains(m, "Subject: remote submission") {
				got = m
			}
		}
		if got == "" {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !strings.Contains(got, "with ESMTPSA") || !strings.Contains(got, "From: <mox@localhost>") {
		t.Fatalf("message submitted through port 465 not delivered as expected:\n%s", got)
	}

	// A uid in no account's unix_users is refused by master; the message
	// is kept in the user's dead.letter.
	home2 := userDir(t, 1)
	out, code = runAsUser(t, "1", home2, conf, "Subject: refused\n\nbody\n", filepath.Join(binDir, "moxctl"), "-f", conf, "sendmail", "other@localhost")
	if code == 0 || !strings.Contains(out, "unix_users") || !strings.Contains(out, "dead.letter") {
		t.Fatalf("sendmail as uid 1: exit %d\n%s", code, out)
	}
	if b, err := os.ReadFile(filepath.Join(home2, "dead.letter")); err != nil || !strings.Contains(string(b), "Subject: refused") {
		t.Fatalf("dead.letter: %v\n%s", err, b)
	}
	// The control socket stays closed to that user.
	if out, code := runAsUser(t, "1", home2, conf, "", filepath.Join(binDir, "moxctl"), "-f", conf, "status"); code == 0 {
		t.Fatalf("moxctl status as uid 1 succeeded:\n%s", out)
	}
}
