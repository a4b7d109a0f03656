package storeclient_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"moxd/internal/auth"
	"moxd/internal/ipc"
	"moxd/internal/storage/login"
	"moxd/internal/storage/storeclient"
)

const testDeadline = 20 * time.Second

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	t.Cleanup(cancel)
	return ctx
}

// pair connects a client Conn of role to a store Conn served by handler.
func pair(t *testing.T, role ipc.Role, handler ipc.HandlerFunc) (client, store *ipc.Conn) {
	t.Helper()
	fs, fc, err := ipc.Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	store, err = ipc.New(fs, ipc.Options{Local: ipc.RoleStore, Peer: role, Handler: handler})
	if err != nil {
		fc.Close()
		t.Fatal(err)
	}
	client, err = ipc.New(fc, ipc.Options{Local: role, Peer: ipc.RoleStore})
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		client.Close()
		store.Close()
	})
	return client, store
}

// serviceClient returns a client of role talking to svc on generation 1.
func serviceClient(t *testing.T, svc *login.Service, role ipc.Role) *storeclient.Auth {
	client, _ := pair(t, role, func(ctx context.Context, req *ipc.Request) (ipc.Message, []*os.File, error) {
		m, err := svc.Handle(ctx, role, 1, req)
		return m, nil, err
	})
	return storeclient.NewAuth(func() (*ipc.Conn, error) { return client, nil })
}

// TestErrors checks how store's answers map to the package's errors.
func TestErrors(t *testing.T) {
	ctx := testContext(t)
	ip := netip.MustParseAddr("192.0.2.1")
	tests := []struct {
		name  string
		reply error
		want  error
	}{
		{"denied", ipc.Errorf(ipc.CodeDenied, "authentication failed"), storeclient.ErrAuthFailed},
		{"gone", ipc.Errorf(ipc.CodeNotFound, "no exchange"), storeclient.ErrAuthFailed},
		{"refused", ipc.Errorf(ipc.CodeBusy, "too many failed logins"), storeclient.ErrRateLimited},
		{"malformed", ipc.Errorf(ipc.CodeBadRequest, "no NUL"), storeclient.ErrMalformed},
		{"internal", errors.New("database broke"), storeclient.ErrUnavailable},
		{"not ready", ipc.Errorf(ipc.CodeUnavailable, "starting"), storeclient.ErrUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			client, _ := pair(t, ipc.RoleIMAP, func(ctx context.Context, req *ipc.Request) (ipc.Message, []*os.File, error) {
				return nil, nil, tc.reply
			})
			a := storeclient.NewAuth(func() (*ipc.Conn, error) { return client, nil })
			_, err := a.Start(ctx, auth.MechPLAIN, ip, true, nil, []byte("\x00u\x00p"), true)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), "store auth start") {
				t.Fatalf("error %q does not say what was asked", err)
			}
		})
	}

	t.Run("no channel", func(t *testing.T) {
		a := storeclient.NewAuth(func() (*ipc.Conn, error) { return nil, ipc.ErrClosed })
		if _, err := a.Start(ctx, auth.MechPLAIN, ip, true, nil, nil, false); !errors.Is(err, storeclient.ErrUnavailable) {
			t.Fatalf("start: %v", err)
		}
		if err := a.RevokeToken(auth.Token{1}); !errors.Is(err, storeclient.ErrUnavailable) {
			t.Fatalf("revoke: %v", err)
		}
	})
	t.Run("channel closed", func(t *testing.T) {
		client, store := pair(t, ipc.RoleIMAP, func(ctx context.Context, req *ipc.Request) (ipc.Message, []*os.File, error) {
			return &ipc.Ack{}, nil, nil
		})
		store.Close()
		<-client.Done()
		a := storeclient.NewAuth(func() (*ipc.Conn, error) { return client, nil })
		if _, err := a.CheckToken(ctx, auth.Token{1}, ipc.RoleIMAP); !errors.Is(err, storeclient.ErrUnavailable) {
			t.Fatalf("check token: %v", err)
		}
	})
	t.Run("invalid token", func(t *testing.T) {
		client, _ := pair(t, ipc.RoleIMAP, func(ctx context.Context, req *ipc.Request) (ipc.Message, []*os.File, error) {
			return nil, nil, ipc.Errorf(ipc.CodeDenied, "session token not valid, log in again: expired")
		})
		a := storeclient.NewAuth(func() (*ipc.Conn, error) { return client, nil })
		_, err := a.CheckToken(ctx, auth.Token{1}, ipc.RoleIMAP)
		if !errors.Is(err, auth.ErrTokenInvalid) || !errors.Is(err, storeclient.ErrAuthFailed) {
			t.Fatalf("check token: %v", err)
		}
	})
}

// TestRequests checks what the client sends for its arguments.
func TestRequests(t *testing.T) {
	ctx := testContext(t)
	got := make(chan ipc.Message, 10)
	client, _ := pair(t, ipc.RoleSubmission, func(ctx context.Context, req *ipc.Request) (ipc.Message, []*os.File, error) {
		got <- req.Msg
		switch req.Msg.(type) {
		case *ipc.AuthStart, *ipc.AuthContinue:
			return &ipc.AuthStep{Exchange: 5, Challenge: []byte("next")}, nil, nil
		case *ipc.TokenCheck:
			return &ipc.TokenInfo{Account: "mjl", Expires: 1700000000}, nil, nil
		case *ipc.TokenRevoke:
			return nil, nil, nil
		}
		return &ipc.Ack{}, nil, nil
	})
	a := storeclient.NewAuth(func() (*ipc.Conn, error) { return client, nil })
	ip := netip.MustParseAddr("2001:db8::7")
	cbs := []auth.ChannelBinding{
		{Type: auth.CBTLSExporter, Data: bytes.Repeat([]byte{1}, 32)},
		{Type: auth.CBTLSServerEndPoint, Data: nil},                          // no data: dropped
		{Type: "tls-unique", Data: bytes.Repeat([]byte{2}, ipc.MaxCBData+1)}, // too long: dropped
	}
	st, err := a.Start(ctx, auth.MechSCRAMSHA256Plus, ip, true, cbs, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if st.Exchange != 5 || string(st.Challenge) != "next" || st.Done {
		t.Fatalf("step %+v", st)
	}
	start := (<-got).(*ipc.AuthStart)
	if start.Mechanism != auth.MechSCRAMSHA256Plus || start.RemoteIP != ip || !start.TLS || !start.HasInitial || len(start.InitialResponse) != 0 {
		t.Fatalf("start %+v", start)
	}
	if len(start.ChannelBindings) != 1 || start.ChannelBindings[0].Type != auth.CBTLSExporter {
		t.Fatalf("channel bindings sent: %+v", start.ChannelBindings)
	}

	if _, err := a.Continue(ctx, 5, []byte("resp")); err != nil {
		t.Fatal(err)
	}
	if c := (<-got).(*ipc.AuthContinue); c.Exchange != 5 || string(c.Response) != "resp" {
		t.Fatalf("continue %+v", c)
	}
	if _, err := a.Continue(ctx, 5, []byte("*")); !errors.Is(err, storeclient.ErrAborted) {
		t.Fatalf("cancel: %v", err)
	}
	if ab := (<-got).(*ipc.AuthAbort); ab.Exchange != 5 {
		t.Fatalf("abort %+v", ab)
	}
	if _, err := a.Continue(ctx, 5, make([]byte, ipc.MaxSASLMessage+1)); !errors.Is(err, storeclient.ErrMalformed) {
		t.Fatalf("long response: %v", err)
	}
	if ab := (<-got).(*ipc.AuthAbort); ab.Exchange != 5 {
		t.Fatalf("abort after long response %+v", ab)
	}

	info, err := a.CheckToken(ctx, auth.Token{9}, ipc.RoleSubmission)
	if err != nil || info.Account != "mjl" || !info.Expires.Equal(time.Unix(1700000000, 0)) {
		t.Fatalf("token info %+v, %v", info, err)
	}
	if tc := (<-got).(*ipc.TokenCheck); tc.Token != [32]byte{9} || tc.Issuer != ipc.RoleSubmission {
		t.Fatalf("token check %+v", tc)
	}
	if err := a.RevokeToken(auth.Token{9}); err != nil {
		t.Fatal(err)
	}
	if tr := (<-got).(*ipc.TokenRevoke); tr.Token != [32]byte{9} {
		t.Fatalf("token revoke %+v", tr)
	}
	if _, err := a.Start(ctx, auth.MechPLAIN, netip.Addr{}, true, nil, nil, false); err == nil {
		t.Fatal("start without client IP")
	}
}

// gsaslPath returns the gsasl binary; in CI (which installs it) a missing
// gsasl fails the test.
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

// gsasl prints its channel binding prompts without a newline, in front of
// its first client message.
var gsaslPrompts = []string{
	"Enter base64 encoded tls-exporter channel binding: ",
	"Enter base64 encoded tls-unique channel binding: ",
}

// gsaslLogin runs "gsasl --client" for mech and relays its messages through
// a to store. input answers gsasl's prompts before the exchange.
func gsaslLogin(t *testing.T, a *storeclient.Auth, mech, password string, cbs []auth.ChannelBinding, input string) (storeclient.Step, error, error) {
	t.Helper()
	ctx := testContext(t)
	cmd := exec.CommandContext(ctx, gsaslPath(t), "--quiet", "--client", "--no-starttls",
		"--mechanism", mech, "--authentication-id", "mjl@example.org", "--password", password)
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
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	finish := func() error {
		stdin.Close()
		for range lines {
		}
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("gsasl: %w: %s", err, strings.TrimSpace(stderr.String()))
		}
		return nil
	}
	read := func() (string, bool) {
		select {
		case l, ok := <-lines:
			for _, p := range gsaslPrompts {
				l = strings.TrimPrefix(l, p)
			}
			return l, ok
		case <-ctx.Done():
			t.Fatal("gsasl: no output")
			return "", false
		}
	}
	if l, _ := read(); l != mech {
		t.Fatalf("gsasl chose mechanism %q", l)
	}
	io.WriteString(stdin, input)

	ip := netip.MustParseAddr("203.0.113.9")
	var st storeclient.Step
	for first := true; ; first = false {
		line, ok := read()
		if !ok {
			return st, errors.New("gsasl ended during the exchange"), finish()
		}
		resp, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			t.Fatalf("gsasl line %q: %v", line, err)
		}
		if first {
			st, err = a.Start(ctx, mech, ip, true, cbs, resp, line != "")
		} else {
			st, err = a.Continue(ctx, st.Exchange, resp)
		}
		if err != nil {
			return st, err, finish()
		}
		if st.Done {
			io.WriteString(stdin, "\n")
			return st, nil, finish()
		}
		io.WriteString(stdin, base64.StdEncoding.EncodeToString(st.Challenge)+"\n")
	}
}

// TestGsasl logs in with gsasl's client through this package and the login
// service.
func TestGsasl(t *testing.T) {
	gsaslPath(t)
	creds, err := auth.NewCredentials("Pass-w0rd", auth.Params{Argon2Time: 1, Argon2MemoryKiB: 64, Argon2Threads: 1, SCRAMIterations: 4096})
	if err != nil {
		t.Fatal(err)
	}
	svc := login.New(login.Config{
		Lookup: func(ctx context.Context, name string) (string, auth.Credentials, error) {
			if name != "mjl@example.org" {
				return "", auth.Credentials{}, auth.ErrUnknownUser
			}
			return "mjl", creds, nil
		},
		Hasher: auth.NewHasher(2),
		Sleep:  func(ctx context.Context, d time.Duration) error { return nil },
	})
	a := serviceClient(t, svc, ipc.RoleSubmission)
	exporter := bytes.Repeat([]byte{0x42}, 32)
	cbs := []auth.ChannelBinding{{Type: auth.CBTLSExporter, Data: exporter}}
	cbInput := base64.StdEncoding.EncodeToString(exporter) + "\n"
	tests := []struct {
		mech     string
		password string
		cbs      []auth.ChannelBinding
		input    string
		wantOK   bool
		note     string
	}{
		{auth.MechPLAIN, "Pass-w0rd", nil, "", true, ""},
		{auth.MechPLAIN, "wrong", nil, "", false, ""},
		{auth.MechLOGIN, "Pass-w0rd", nil, "", true, ""},
		{auth.MechCRAMMD5, "Pass-w0rd", nil, "", true, ""},
		{auth.MechSCRAMSHA1, "Pass-w0rd", nil, "\n\n", true, ""},
		{auth.MechSCRAMSHA256, "Pass-w0rd", nil, "\n\n", true, ""},
		{auth.MechSCRAMSHA256, "wrong", nil, "\n\n", false, ""},
		{auth.MechSCRAMSHA1Plus, "Pass-w0rd", cbs, cbInput, true, ""},
		{auth.MechSCRAMSHA256Plus, "Pass-w0rd", cbs, cbInput, true, ""},
		{auth.MechSCRAMSHA256Plus, "wrong", cbs, cbInput, false, ""},
		// gsasl binds to other data than store was given: must fail.
		{auth.MechSCRAMSHA256Plus, "Pass-w0rd", []auth.ChannelBinding{{Type: auth.CBTLSExporter, Data: bytes.Repeat([]byte{1}, 32)}}, cbInput, false, "other-binding"},
	}
	for _, tc := range tests {
		t.Run(strings.TrimSuffix(tc.mech+"/"+tc.password+"/"+tc.note, "/"), func(t *testing.T) {
			st, storeErr, clientErr := gsaslLogin(t, a, tc.mech, tc.password, tc.cbs, tc.input)
			if tc.wantOK {
				if storeErr != nil || clientErr != nil {
					t.Fatalf("store: %v; gsasl: %v", storeErr, clientErr)
				}
				if !st.Done || st.Account != "mjl" {
					t.Fatalf("step %+v", st)
				}
				info, err := a.CheckToken(testContext(t), st.Token, ipc.RoleSubmission)
				if err != nil || info.Account != "mjl" {
					t.Fatalf("token of gsasl login: %+v, %v", info, err)
				}
				return
			}
			if !errors.Is(storeErr, storeclient.ErrAuthFailed) {
				t.Fatalf("store: %v, want ErrAuthFailed (gsasl: %v)", storeErr, clientErr)
			}
		})
	}
}
