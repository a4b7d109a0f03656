package auth

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// gsaslPath returns the gsasl binary. CI installs it, so there a missing
// gsasl fails the test instead of skipping it.
func gsaslPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("gsasl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("gsasl not found (CI must install the gsasl package): %v", err)
		}
		t.Skipf("gsasl not installed: %v", err)
	}
	return p
}

// gsasl prompts for channel binding data on stdout without a newline, so
// these prefixes can start a line of client data.
var gsaslPrompts = []string{
	"Enter base64 encoded tls-exporter channel binding: ",
	"Enter base64 encoded tls-unique channel binding: ",
}

// runGsasl drives "gsasl --client" in its stdin/stdout mode against m.
// preInput answers gsasl's channel binding prompts. It returns the server's
// error and gsasl's exit error.
func runGsasl(t *testing.T, m Mechanism, preInput string, args ...string) (serverErr, clientErr error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	args = append([]string{"--quiet", "--client", "--no-starttls"}, args...)
	cmd := exec.CommandContext(ctx, gsaslPath(t), args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start gsasl: %v", err)
	}
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			lines <- s.Text()
		}
	}()
	wait := func() error {
		stdin.Close()
		for range lines {
		}
		err := cmd.Wait()
		if err != nil {
			err = fmt.Errorf("gsasl: %w; stderr: %s", err, strings.TrimSpace(stderr.String()))
		}
		return err
	}
	next := func() (string, bool) {
		select {
		case l, ok := <-lines:
			return l, ok
		case <-ctx.Done():
			t.Fatalf("gsasl: no output: %v", ctx.Err())
		}
		return "", false
	}
	write := func(s string) {
		if _, err := io.WriteString(stdin, s); err != nil {
			t.Fatalf("write to gsasl: %v", err)
		}
	}

	if mech, _ := next(); mech != args[len(args)-1] && !strings.Contains(strings.Join(args, " "), mech) {
		t.Fatalf("gsasl chose mechanism %q", mech)
	}
	write(preInput)
	for first := true; ; first = false {
		line, ok := next()
		if !ok {
			return errors.New("gsasl ended before the exchange was done"), wait()
		}
		for _, p := range gsaslPrompts {
			line = strings.TrimPrefix(line, p)
		}
		resp, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			t.Fatalf("gsasl line %q: %v", line, err)
		}
		if first && line == "" {
			resp = nil
		}
		ch, done, err := m.Next(ctx, resp)
		if err != nil {
			return err, wait()
		}
		if done {
			write("\n") // no additional data with success
			return nil, wait()
		}
		// After SCRAM's server-final v=, gsasl checks it and answers
		// with an empty response, as SMTP and IMAP clients do.
		write(base64.StdEncoding.EncodeToString(ch) + "\n")
	}
}

func TestGsasl(t *testing.T) {
	gsaslPath(t)
	creds := mustCreds(t, "Pass-w0rd")
	lookup := lookupMap(map[string]Credentials{"mjl@example.org": creds})
	exporter := bytes.Repeat([]byte{0xa5}, 32)
	cbLine := base64.StdEncoding.EncodeToString(exporter) + "\n"
	cb := []ChannelBinding{{CBTLSExporter, exporter}, {CBTLSServerEndPoint, []byte("unused-by-gsasl")}}
	tests := []struct {
		mech     string
		password string
		tls      bool
		cb       []ChannelBinding
		preInput string
		wantOK   bool
	}{
		{MechPLAIN, "Pass-w0rd", true, nil, "", true},
		{MechPLAIN, "wrong", true, nil, "", false},
		{MechLOGIN, "Pass-w0rd", true, nil, "", true},
		{MechLOGIN, "wrong", true, nil, "", false},
		{MechCRAMMD5, "Pass-w0rd", false, nil, "", true},
		{MechCRAMMD5, "wrong", false, nil, "", false},
		{MechSCRAMSHA1, "Pass-w0rd", false, nil, "\n\n", true},
		{MechSCRAMSHA1, "wrong", false, nil, "\n\n", false},
		{MechSCRAMSHA256, "Pass-w0rd", false, nil, "\n\n", true},
		{MechSCRAMSHA256, "wrong", false, nil, "\n\n", false},
		{MechSCRAMSHA1Plus, "Pass-w0rd", true, cb, cbLine, true},
		{MechSCRAMSHA256Plus, "Pass-w0rd", true, cb, cbLine, true},
		{MechSCRAMSHA256Plus, "wrong", true, cb, cbLine, false},
		// gsasl binds to other data than the server has: must fail.
		{MechSCRAMSHA256Plus, "Pass-w0rd", true, []ChannelBinding{{CBTLSExporter, []byte("other")}}, cbLine, false},
	}
	for _, tc := range tests {
		t.Run(tc.mech+"/"+tc.password, func(t *testing.T) {
			m, err := NewServer(tc.mech, lookup, NewHasher(2), tc.tls, tc.cb)
			if err != nil {
				t.Fatal(err)
			}
			serverErr, clientErr := runGsasl(t, m, tc.preInput, "--mechanism", tc.mech,
				"--authentication-id", "mjl@example.org", "--password", tc.password)
			if tc.wantOK {
				if serverErr != nil || clientErr != nil {
					t.Fatalf("server: %v; client: %v", serverErr, clientErr)
				}
				if m.Identity() != "mjl@example.org" {
					t.Fatalf("identity %q", m.Identity())
				}
				return
			}
			if !errors.Is(serverErr, ErrAuthFailed) {
				t.Fatalf("server: %v, want ErrAuthFailed (client: %v)", serverErr, clientErr)
			}
			if m.Identity() != "" {
				t.Fatalf("identity %q after failure", m.Identity())
			}
		})
	}
}

// TestGsaslMkpasswd compares our SCRAM stored and server keys with the
// ones gsasl derives for the same password, salt and iteration count.
func TestGsaslMkpasswd(t *testing.T) {
	path := gsaslPath(t)
	salt := []byte("0123456789abcdef")
	for _, tc := range []struct {
		mech string
		h    func() hash.Hash
	}{{MechSCRAMSHA1, sha1.New}, {MechSCRAMSHA256, sha256.New}} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := exec.CommandContext(ctx, path, "--mkpasswd", "--mechanism", tc.mech, "--password", "Pass-w0rd",
			"--iteration-count", "4096", "--salt", base64.StdEncoding.EncodeToString(salt)).Output()
		cancel()
		if err != nil {
			t.Fatalf("gsasl --mkpasswd: %v", err)
		}
		keys, err := newSCRAMKeys(tc.h, "Pass-w0rd", salt, 4096)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("{%s}4096,%s,%s,%s", tc.mech, base64.StdEncoding.EncodeToString(salt),
			base64.StdEncoding.EncodeToString(keys.StoredKey), base64.StdEncoding.EncodeToString(keys.ServerKey))
		if got := strings.TrimSpace(string(out)); got != want {
			t.Errorf("%s: gsasl %q, moxd %q", tc.mech, got, want)
		}
	}
}

// forgedFinal changes the SCRAM server signature, as a server without the
// account's keys would have to.
type forgedFinal struct{ Mechanism }

func (f forgedFinal) Next(ctx context.Context, response []byte) ([]byte, bool, error) {
	ch, done, err := f.Mechanism.Next(ctx, response)
	if bytes.HasPrefix(ch, []byte("v=")) {
		ch = []byte("v=" + base64.StdEncoding.EncodeToString(make([]byte, sha256.Size)))
	}
	return ch, done, err
}

// TestGsaslRejectsForgedServer shows gsasl checks our server signature:
// success in TestGsasl means gsasl accepted a real one.
func TestGsaslRejectsForgedServer(t *testing.T) {
	gsaslPath(t)
	lookup := lookupMap(map[string]Credentials{"mjl": mustCreds(t, "pw")})
	m, err := NewServer(MechSCRAMSHA256, lookup, NewHasher(1), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, clientErr := runGsasl(t, forgedFinal{m}, "\n\n", "--mechanism", MechSCRAMSHA256, "--authentication-id", "mjl", "--password", "pw")
	if clientErr == nil {
		t.Fatal("gsasl accepted a forged server signature")
	}
}
