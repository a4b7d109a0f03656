package smtpclient

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Interoperability with Postfix's smtp-sink(1), a real server: it
// announces PIPELINING without CHUNKING, so the DATA path runs against it.

const smtpSinkPath = "/usr/sbin/smtp-sink"

func TestSMTPSink(t *testing.T) {
	if _, err := os.Stat(smtpSinkPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("smtp-sink is required in CI (install postfix): %v", err)
		}
		t.Skipf("smtp-sink not installed: %v", err)
	}

	// A free port: listen on :0, note the port, close.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	args := []string{"-v"}
	if os.Geteuid() == 0 {
		// smtp-sink refuses to run as root without a user to switch to.
		args = append(args, "-u", "nobody")
	}
	args = append(args, addr, "10")
	cmd := exec.Command(smtpSinkPath, args...)
	out := &syncBuffer{}
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start smtp-sink: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	stop := func() {
		cmd.Process.Kill()
		<-exited
	}
	t.Cleanup(stop)

	var conn net.Conn
	for deadline := time.Now().Add(testDeadline); ; {
		conn, err = net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			break
		}
		select {
		case <-exited:
			t.Fatalf("smtp-sink exited: %s", out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("smtp-sink does not accept on %s: %v\n%s", addr, err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}

	cc := &countingConn{Conn: conn}
	c := newClient(t, cc, testConfig())
	ext := c.Extensions()
	if !ext.Pipelining || ext.Chunking || !ext.DSN {
		t.Fatalf("smtp-sink extensions %+v", ext)
	}
	env := envelope("sender@example.net", "a@example.org", "b@example.org", "c@example.org")
	env.Recipients[0].Notify = "FAILURE"
	res, err := deliver(t, c, env, dotMessage)
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	for i, r := range res {
		if !r.Accepted || r.Reply.Code != 250 {
			t.Fatalf("recipient %d: %+v", i, r)
		}
	}
	if w := cc.writeWith("MAIL FROM"); !strings.Contains(w, "RCPT TO:<c@example.org>\r\nDATA\r\n") {
		t.Fatalf("not pipelined: %q", w)
	}
	if err := c.Quit(testContext(t)); err != nil {
		t.Fatalf("Quit: %v", err)
	}

	// smtp-sink -v logs each command it reads; wait for the QUIT.
	for deadline := time.Now().Add(testDeadline); !strings.Contains(out.String(), "smtp-sink: QUIT"); {
		if time.Now().After(deadline) {
			t.Fatalf("smtp-sink log lacks QUIT:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	counts := map[string]int{}
	for _, line := range strings.Split(out.String(), "\n") {
		// Lines are "<argv0>: <command>", argv0 being the path.
		_, cmdLine, ok := strings.Cut(line, "smtp-sink: ")
		if !ok {
			continue
		}
		verb, _, _ := strings.Cut(cmdLine, " ")
		switch verb {
		case "MAIL", "RCPT", "DATA", ".":
			counts[verb]++
		}
	}
	want := map[string]int{"MAIL": 1, "RCPT": 3, "DATA": 1, ".": 1}
	for verb, n := range want {
		if counts[verb] != n {
			t.Fatalf("smtp-sink saw %s %d times, want %d:\n%s", verb, counts[verb], n, out)
		}
	}
	if !strings.Contains(out.String(), "RCPT TO:<a@example.org> NOTIFY=FAILURE") {
		t.Fatalf("DSN NOTIFY not sent:\n%s", out)
	}
}
