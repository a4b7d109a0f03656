package smtp

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// FuzzSession feeds arbitrary client bytes to a session. The session must
// end (no hang), must not panic (Serve recovers panics and reports them in
// its error, which fails the test), and every reply it sends in plain text
// must be well formed.
func FuzzSession(f *testing.F) {
	seeds := []string{
		"EHLO client.example\r\nNOOP\r\nRSET\r\nHELP\r\nVRFY postmaster\r\nEXPN staff\r\nQUIT\r\n",
		"HELO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nBDAT 3 LAST\r\nabc\r\nQUIT\r\n",
		"EHLO [192.0.2.1]\r\nAUTH PLAIN AHVzZXIAc2VjcmV0\r\nQUIT\r\n",
		"EHLO [IPv6:2001:db8::1]\r\nSTARTTLS\r\n",
		"EHLO client.example\r\nSTARTTLS\r\nEHLO client.example\r\n",
		"EHLO client.example\r\nSTARTTLS\r\n\x16\x03\x01\x00\x2a\x01\x00\x00\x26\x03\x03",
		"STARTTLS\r\nSTARTTLS x\r\nEHLO bad..name\r\nEHLO\r\n",
		"GET / HTTP/1.1\r\nHost: mail.example.org\r\n\r\n",
		"NOOP\nNOOP\rNOOP\r\n\r\n\x00\xff\r\n",
		"NOOP " + strings.Repeat("x", 5000) + "\r\nQUIT\r\n",
		"xyzzy\r\nxyzzy\r\nxyzzy\r\nxyzzy\r\nxyzzy\r\nxyzzy\r\nxyzzy\r\nxyzzy\r\nxyzzy\r\nxyzzy\r\nxyzzy\r\n",
		"EHLO c\r\nMAIL FROM:<a@b.example> SIZE=10 BODY=8BITMIME SMTPUTF8\r\nRCPT TO:<\"q x\"@b.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x+40y\r\nDATA\r\nSubject: x\r\n\r\n..dot\r\n.\r\nQUIT\r\n",
		"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<postmaster>\r\nBDAT 5\r\nab\r\nBDAT 3 LAST\r\nc\r\nRSET\r\n",
		"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\nx\n.\nmore\r\n.\r\n",
		"EHLO c\r\nAUTH CRAM-MD5\r\n*\r\nAUTH PLAIN =\r\n",
		"EHLO c\r\nMAIL FROM:<@a.example,@b.example:u@c.example>\r\nRCPT TO:<ü@ä.example>\r\n",
		"",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	serverTLS, _ := testTLS(f)

	f.Fuzz(func(t *testing.T, data []byte) {
		srv, cli := net.Pipe()
		defer cli.Close()
		done := make(chan error, 1)
		go func() {
			done <- Serve(context.Background(), srv, Config{
				Hostname:       testHost,
				TLSConfig:      serverTLS,
				CommandTimeout: 20 * time.Millisecond, // short: a session waiting for more input ends quickly
				TLSTimeout:     20 * time.Millisecond,
				Session:        &testSession{mechs: []string{"PLAIN", "CRAM-MD5"}},
				MaxMessageSize: 1000,
			})
		}()
		out := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(cli)
			out <- b
		}()
		// The trailing QUIT ends most sessions without waiting for the
		// timeout. Write errors are expected when the server closes first.
		cli.SetWriteDeadline(time.Now().Add(testDeadline))
		cli.Write(data)
		cli.Write([]byte("\r\nQUIT\r\n"))

		var err error
		select {
		case err = <-done:
		case <-time.After(testDeadline):
			t.Fatalf("Serve did not return")
		}
		if err != nil && strings.Contains(err.Error(), "panic") {
			t.Fatalf("Serve: %v", err)
		}
		cli.Close()
		checkReplies(t, <-out)
	})
}

// checkReplies checks that server output is a sequence of CRLF-terminated
// reply lines "ddd " or "ddd-", up to a STARTTLS go-ahead (after which the
// bytes are TLS).
func checkReplies(t *testing.T, b []byte) {
	t.Helper()
	for len(b) > 0 {
		i := bytes.Index(b, []byte("\r\n"))
		if i < 0 {
			t.Fatalf("unterminated reply line %q", b)
		}
		line := b[:i]
		b = b[i+2:]
		if len(line) < 4 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' || line[2] < '0' || line[2] > '9' || (line[3] != ' ' && line[3] != '-') {
			t.Fatalf("malformed reply line %q", line)
		}
		if bytes.IndexByte(line, '\n') >= 0 || bytes.IndexByte(line, '\r') >= 0 {
			t.Fatalf("reply line %q contains CR or LF", line)
		}
		if bytes.HasPrefix(line, []byte("220 2.0.0 ")) {
			return
		}
	}
}

// FuzzParsePath checks that any path either fails to parse or round-trips:
// the address it yields parses again to the same path.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"<a@example.org>", "<>", `<"a b\"c"@example.org>`, "<@r.example:u@example.org>", "<ü@bücher.example>", "<Postmaster>", "<a@[IPv6:::1]>", "<a@[192.0.2.1]> SIZE=1"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, utf8OK bool) {
		p, pm, _, err := parsePath(s, utf8OK)
		if err != nil || pm {
			return
		}
		again, _, rest, err := parsePath(p.String(), utf8OK)
		if err != nil || rest != "" || again != p {
			t.Fatalf("%q parsed to %q, which parses to %q, %q, %v", s, p.String(), again.String(), rest, err)
		}
		if p.UTF8() && !utf8OK {
			t.Fatalf("%q: UTF-8 accepted without SMTPUTF8", s)
		}
	})
}

// FuzzParams checks the ESMTP parameter and xtext parsers on any input:
// no panic, and accepted keywords are upper-cased and unique.
func FuzzParams(f *testing.F) {
	for _, s := range []string{" SIZE=10 BODY=8BITMIME", " NOTIFY=SUCCESS,DELAY ORCPT=rfc822;a+2Bb@example.org", " ENVID=QQ+2B+3D", " AUTH=<>", "  SMTPUTF8", " x=ü", " =", " A=B=C"} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, utf8OK bool) {
		l, err := parseParams(s, utf8OK)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, p := range l {
			if p.key != strings.ToUpper(p.key) || seen[p.key] || !isKeyword(p.key) {
				t.Fatalf("%q: bad key %q", s, p.key)
			}
			seen[p.key] = true
			if p.set {
				decodeXtext(p.value)
				parseNotify(p.value)
			}
		}
	})
}
