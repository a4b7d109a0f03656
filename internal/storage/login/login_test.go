package login_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"moxd/internal/auth"
	"moxd/internal/ipc"
	"moxd/internal/storage/login"
	"moxd/internal/storage/storeclient"
)

const testDeadline = 10 * time.Second

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	t.Cleanup(cancel)
	return ctx
}

// fastParams keep credential creation quick in tests.
var fastParams = auth.Params{Argon2Time: 1, Argon2MemoryKiB: 64, Argon2Threads: 1, SCRAMIterations: auth.MinSCRAMIterations}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is a login service with accounts mjl (password "Pass-w0rd", also
// reachable as mjl@example.org) and other ("0ther-pass"), a fake clock and
// a recorded failure delay.
type env struct {
	t       *testing.T
	svc     *login.Service
	clock   *fakeClock
	limiter *auth.Limiter
	tokens  *auth.Tokens

	mu     sync.Mutex
	sleeps []time.Duration
	// gate, when set, makes Sleep report on entered and wait for gate.
	entered chan time.Duration
	gate    chan struct{}
}

func newEnv(t *testing.T, limits auth.LimiterConfig, tweak func(*login.Config)) *env {
	t.Helper()
	e := &env{t: t, clock: &fakeClock{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}}
	creds := map[string]auth.Credentials{}
	for account, pw := range map[string]string{"mjl": "Pass-w0rd", "other": "0ther-pass"} {
		c, err := auth.NewCredentials(pw, fastParams)
		if err != nil {
			t.Fatal(err)
		}
		creds[account] = c
	}
	aliases := map[string]string{"mjl": "mjl", "mjl@example.org": "mjl", "other": "other"}
	e.limiter = auth.NewLimiter(limits, e.clock.Now)
	e.tokens = auth.NewTokens(e.clock.Now)
	cfg := login.Config{
		Lookup: func(ctx context.Context, name string) (string, auth.Credentials, error) {
			acc, ok := aliases[name]
			if !ok {
				return "", auth.Credentials{}, fmt.Errorf("login name %q: %w", name, auth.ErrUnknownUser)
			}
			return acc, creds[acc], nil
		},
		Hasher:  auth.NewHasher(2),
		Limiter: e.limiter,
		Tokens:  e.tokens,
		Now:     e.clock.Now,
		Sleep:   e.sleep,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	e.svc = login.New(cfg)
	return e
}

func (e *env) sleep(ctx context.Context, d time.Duration) error {
	e.mu.Lock()
	e.sleeps = append(e.sleeps, d)
	entered, gate := e.entered, e.gate
	e.mu.Unlock()
	if gate == nil {
		return nil
	}
	entered <- d
	select {
	case <-gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *env) takeSleeps() []time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	l := e.sleeps
	e.sleeps = nil
	return l
}

// client connects role on channel generation gen to the service over a
// socketpair, as the store role will.
func (e *env) client(role ipc.Role, gen uint64) *storeclient.Auth {
	t := e.t
	t.Helper()
	fs, fc, err := ipc.Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	store, err := ipc.New(fs, ipc.Options{Local: ipc.RoleStore, Peer: role, Handler: ipc.HandlerFunc(
		func(ctx context.Context, req *ipc.Request) (ipc.Message, []*os.File, error) {
			if !login.Handles(req.Msg.Type()) {
				return nil, nil, fmt.Errorf("test store does not serve %s", ipc.MessageName(req.Msg.Type()))
			}
			m, err := e.svc.Handle(ctx, role, gen, req)
			return m, nil, err
		})})
	if err != nil {
		fc.Close()
		t.Fatal(err)
	}
	conn, err := ipc.New(fc, ipc.Options{Local: role, Peer: ipc.RoleStore})
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		store.Close()
	})
	return storeclient.NewAuth(func() (*ipc.Conn, error) { return conn, nil })
}

var (
	clientIP  = netip.MustParseAddr("192.0.2.10")
	clientIP2 = netip.MustParseAddr("2001:db8:1::10")
	exporter  = bytes.Repeat([]byte{0x5a}, 32)
	endPoint  = bytes.Repeat([]byte{0xc3}, 32)
	bindings  = []auth.ChannelBinding{{Type: auth.CBTLSExporter, Data: exporter}, {Type: auth.CBTLSServerEndPoint, Data: endPoint}}
)

// run drives a whole exchange with c.
func run(ctx context.Context, a *storeclient.Auth, mech string, ip netip.Addr, tls bool, cbs []auth.ChannelBinding, c saslClient) (storeclient.Step, error) {
	init, has := c.initial()
	st, err := a.Start(ctx, mech, ip, tls, cbs, init, has)
	for err == nil && !st.Done {
		resp, cerr := c.next(st.Challenge)
		if cerr != nil {
			a.Abort(ctx, st.Exchange)
			return st, fmt.Errorf("client: %w", cerr)
		}
		st, err = a.Continue(ctx, st.Exchange, resp)
	}
	return st, err
}

// mechClient returns the client side of mech for user and pass.
func mechClient(mech, user, pass string) saslClient {
	switch mech {
	case auth.MechPLAIN:
		return &plainClient{user: user, pass: pass, sendInitial: true}
	case auth.MechLOGIN:
		return &loginClient{user, pass}
	case auth.MechCRAMMD5:
		return &cramClient{user, pass}
	case auth.MechSCRAMSHA1Plus, auth.MechSCRAMSHA256Plus:
		return newSCRAM(mech, user, pass, auth.CBTLSExporter, exporter)
	}
	return newSCRAM(mech, user, pass, "", nil)
}

func TestExchanges(t *testing.T) {
	e := newEnv(t, auth.LimiterConfig{}, nil)
	imap := e.client(ipc.RoleIMAP, 1)
	ctx := testContext(t)
	tests := []struct {
		name   string
		mech   string
		tls    bool
		client saslClient
	}{
		{"plain", auth.MechPLAIN, true, &plainClient{"mjl", "Pass-w0rd", true}},
		{"plain-no-initial", auth.MechPLAIN, true, &plainClient{"mjl@example.org", "Pass-w0rd", false}},
		{"login", auth.MechLOGIN, true, &loginClient{"mjl", "Pass-w0rd"}},
		{"cram-md5", auth.MechCRAMMD5, false, &cramClient{"mjl@example.org", "Pass-w0rd"}},
		{"scram-sha-1", auth.MechSCRAMSHA1, false, newSCRAM(auth.MechSCRAMSHA1, "mjl", "Pass-w0rd", "", nil)},
		{"scram-sha-256", auth.MechSCRAMSHA256, true, newSCRAM(auth.MechSCRAMSHA256, "mjl@example.org", "Pass-w0rd", "", nil)},
		{"scram-sha-1-plus", auth.MechSCRAMSHA1Plus, true, newSCRAM(auth.MechSCRAMSHA1Plus, "mjl", "Pass-w0rd", auth.CBTLSExporter, exporter)},
		{"scram-sha-256-plus-exporter", auth.MechSCRAMSHA256Plus, true, newSCRAM(auth.MechSCRAMSHA256Plus, "mjl", "Pass-w0rd", auth.CBTLSExporter, exporter)},
		{"scram-sha-256-plus-endpoint", auth.MechSCRAMSHA256Plus, true, newSCRAM(auth.MechSCRAMSHA256Plus, "mjl@example.org", "Pass-w0rd", auth.CBTLSServerEndPoint, endPoint)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := run(ctx, imap, tc.mech, clientIP, tc.tls, bindings, tc.client)
			if err != nil {
				t.Fatalf("login: %v", err)
			}
			if !st.Done || st.Account != "mjl" || st.Token == (auth.Token{}) {
				t.Fatalf("step %+v, want done for account mjl with a token", st)
			}
			info, err := imap.CheckToken(ctx, st.Token, ipc.RoleIMAP)
			if err != nil {
				t.Fatalf("check new token: %v", err)
			}
			if info.Account != "mjl" || !info.Expires.Equal(e.clock.Now().Add(login.DefaultTokenLifetime)) {
				t.Fatalf("token info %+v", info)
			}
			if _, err := imap.Continue(ctx, st.Exchange, nil); !errors.Is(err, storeclient.ErrAuthFailed) {
				t.Fatalf("continuing a finished exchange: %v, want ErrAuthFailed", err)
			}
		})
	}
	if d := e.takeSleeps(); len(d) != 0 {
		t.Fatalf("successful logins were delayed: %v", d)
	}
	if n := e.svc.Exchanges(); n != 0 {
		t.Fatalf("%d exchanges left after finished logins", n)
	}
}

func TestWrongPassword(t *testing.T) {
	base := auth.DefaultLimiterConfig().BaseDelay
	for _, mech := range []string{auth.MechPLAIN, auth.MechLOGIN, auth.MechCRAMMD5, auth.MechSCRAMSHA1, auth.MechSCRAMSHA256, auth.MechSCRAMSHA256Plus} {
		t.Run(mech, func(t *testing.T) {
			e := newEnv(t, auth.LimiterConfig{}, nil)
			sub := e.client(ipc.RoleSubmission, 1)
			ctx := testContext(t)
			for i, want := range []time.Duration{base, 2 * base, 4 * base} {
				st, err := run(ctx, sub, mech, clientIP, true, bindings, mechClient(mech, "mjl", "wrong"))
				if !errors.Is(err, storeclient.ErrAuthFailed) || st.Done {
					t.Fatalf("attempt %d: %v, want ErrAuthFailed", i, err)
				}
				if d := e.takeSleeps(); !slices.Equal(d, []time.Duration{want}) {
					t.Fatalf("attempt %d: delays %v, want [%v]", i, d, want)
				}
			}
			// Unknown users fail the same way.
			if _, err := run(ctx, sub, mech, clientIP2, true, bindings, mechClient(mech, "nobody", "Pass-w0rd")); !errors.Is(err, storeclient.ErrAuthFailed) {
				t.Fatalf("unknown user: %v, want ErrAuthFailed", err)
			}
			if d := e.takeSleeps(); !slices.Equal(d, []time.Duration{base}) {
				t.Fatalf("unknown user: delays %v, want [%v]", d, base)
			}
			// The right password still works: no account lockout.
			if _, err := run(ctx, sub, mech, clientIP, true, bindings, mechClient(mech, "mjl", "Pass-w0rd")); err != nil {
				t.Fatalf("right password after failures: %v", err)
			}
		})
	}
}

// TestDelayBlocksNothing holds a failed login in its delay and shows other
// logins on the same channel go through meanwhile, and that the answer
// comes only after the delay.
func TestDelayBlocksNothing(t *testing.T) {
	e := newEnv(t, auth.LimiterConfig{}, nil)
	e.entered = make(chan time.Duration, 1)
	e.gate = make(chan struct{})
	imap := e.client(ipc.RoleIMAP, 1)
	ctx := testContext(t)

	failed := make(chan error, 1)
	go func() {
		_, err := run(ctx, imap, auth.MechPLAIN, clientIP, true, nil, &plainClient{"mjl", "wrong", true})
		failed <- err
	}()
	select {
	case <-e.entered:
	case <-ctx.Done():
		t.Fatal("failed login never reached its delay")
	}
	select {
	case err := <-failed:
		t.Fatalf("failed login answered before its delay ended: %v", err)
	default:
	}
	// Another account, and mjl from another client, log in meanwhile.
	for _, c := range []struct {
		ip   netip.Addr
		user string
		pass string
	}{{clientIP, "other", "0ther-pass"}, {clientIP2, "mjl", "Pass-w0rd"}} {
		if _, err := run(ctx, imap, auth.MechSCRAMSHA256, c.ip, true, nil, newSCRAM(auth.MechSCRAMSHA256, c.user, c.pass, "", nil)); err != nil {
			t.Fatalf("login of %s during another's delay: %v", c.user, err)
		}
	}
	close(e.gate)
	select {
	case err := <-failed:
		if !errors.Is(err, storeclient.ErrAuthFailed) {
			t.Fatalf("delayed failure: %v, want ErrAuthFailed", err)
		}
	case <-ctx.Done():
		t.Fatal("no answer after the delay")
	}
}

func TestMalformed(t *testing.T) {
	e := newEnv(t, auth.LimiterConfig{}, nil)
	web := e.client(ipc.RoleWeb, 1)
	ctx := testContext(t)
	tests := []struct {
		name    string
		mech    string
		tls     bool
		cbs     []auth.ChannelBinding
		initial []byte
		has     bool
	}{
		{"plain without NUL", auth.MechPLAIN, true, nil, []byte("mjl Pass-w0rd"), true},
		{"plain empty password", auth.MechPLAIN, true, nil, []byte("\x00mjl\x00"), true},
		{"plain without TLS", auth.MechPLAIN, false, nil, []byte("\x00mjl\x00Pass-w0rd"), true},
		{"unknown mechanism", "XOAUTH2", true, nil, nil, false},
		{"mechanism name too long", "SCRAM-SHA-256-PLUS-EXTRA-LONG", true, nil, nil, false},
		{"plus without binding", auth.MechSCRAMSHA256Plus, true, nil, nil, false},
		{"scram garbage", auth.MechSCRAMSHA256, true, nil, []byte("hello"), true},
		{"scram plus with flag n", auth.MechSCRAMSHA256Plus, true, bindings, []byte("n,,n=mjl,r=abcdef"), true},
		{"cram with initial response", auth.MechCRAMMD5, false, nil, []byte("mjl 0123"), true},
		{"initial response too long", auth.MechPLAIN, true, nil, bytes.Repeat([]byte("a"), ipc.MaxSASLMessage+1), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := web.Start(ctx, tc.mech, clientIP, tc.tls, tc.cbs, tc.initial, tc.has)
			if !errors.Is(err, storeclient.ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
	// A malformed response later in an exchange.
	st, err := web.Start(ctx, auth.MechSCRAMSHA256, clientIP, true, nil, []byte("n,,n=mjl,r=abcdef"), true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := web.Continue(ctx, st.Exchange, []byte("c=biws,r=wrong")); !errors.Is(err, storeclient.ErrMalformed) {
		t.Fatalf("client-final without proof: %v, want ErrMalformed", err)
	}
	if d := e.takeSleeps(); len(d) != 0 {
		t.Fatalf("malformed messages were delayed as failed logins: %v", d)
	}
	if recs := e.limiter.TakeRecords(); len(recs) != 0 {
		t.Fatalf("malformed messages counted as failed logins: %+v", recs)
	}
	if n := e.svc.Exchanges(); n != 0 {
		t.Fatalf("%d exchanges left after malformed ones", n)
	}
}

// TestReplay sends a SCRAM client-final message again: on its finished
// exchange and on a fresh exchange with the same client nonce.
func TestReplay(t *testing.T) {
	e := newEnv(t, auth.LimiterConfig{}, nil)
	sub := e.client(ipc.RoleSubmission, 1)
	ctx := testContext(t)
	c := newSCRAM(auth.MechSCRAMSHA256, "mjl", "Pass-w0rd", "", nil)
	st, err := run(ctx, sub, auth.MechSCRAMSHA256, clientIP, true, nil, c)
	if err != nil || !st.Done {
		t.Fatalf("login: %v", err)
	}
	if _, err := sub.Continue(ctx, st.Exchange, c.clientFinal); !errors.Is(err, storeclient.ErrAuthFailed) {
		t.Fatalf("final message replayed on its finished exchange: %v, want ErrAuthFailed", err)
	}
	first := c.first()
	st2, err := sub.Start(ctx, auth.MechSCRAMSHA256, clientIP, true, nil, first, true)
	if err != nil {
		t.Fatal(err)
	}
	if st2.Exchange == st.Exchange {
		t.Fatalf("exchange id %d given out twice", st.Exchange)
	}
	st3, err := sub.Continue(ctx, st2.Exchange, c.clientFinal)
	if err == nil || st3.Done {
		t.Fatalf("final message replayed on a new exchange was accepted: %+v", st3)
	}
	if !errors.Is(err, storeclient.ErrMalformed) {
		t.Fatalf("replay on a new exchange: %v, want ErrMalformed (nonce mismatch)", err)
	}
}

// TestExchangeOwnership shows an exchange id is only good on the channel
// that started it.
func TestExchangeOwnership(t *testing.T) {
	e := newEnv(t, auth.LimiterConfig{}, nil)
	imap1 := e.client(ipc.RoleIMAP, 1)
	imap2 := e.client(ipc.RoleIMAP, 2)
	web := e.client(ipc.RoleWeb, 1)
	ctx := testContext(t)

	c := newSCRAM(auth.MechSCRAMSHA256, "mjl", "Pass-w0rd", "", nil)
	st, err := imap1.Start(ctx, auth.MechSCRAMSHA256, clientIP, true, nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	first, err := c.next(st.Challenge)
	if err != nil {
		t.Fatal(err)
	}
	for name, other := range map[string]*storeclient.Auth{"other role": web, "other generation": imap2} {
		if _, err := other.Continue(ctx, st.Exchange, first); !errors.Is(err, storeclient.ErrAuthFailed) {
			t.Fatalf("%s continued the exchange: %v, want ErrAuthFailed", name, err)
		}
		// Aborting someone else's exchange does nothing.
		if err := other.Abort(ctx, st.Exchange); err != nil {
			t.Fatalf("%s abort: %v", name, err)
		}
	}
	// The owner goes on undisturbed.
	st, err = imap1.Continue(ctx, st.Exchange, first)
	for err == nil && !st.Done {
		resp, cerr := c.next(st.Challenge)
		if cerr != nil {
			t.Fatal(cerr)
		}
		st, err = imap1.Continue(ctx, st.Exchange, resp)
	}
	if err != nil || st.Account != "mjl" {
		t.Fatalf("owner's login: %+v, %v", st, err)
	}
}

func TestAbort(t *testing.T) {
	e := newEnv(t, auth.LimiterConfig{}, nil)
	imap := e.client(ipc.RoleIMAP, 1)
	ctx := testContext(t)
	st, err := imap.Start(ctx, auth.MechLOGIN, clientIP, true, nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := imap.Continue(ctx, st.Exchange, []byte("*")); !errors.Is(err, storeclient.ErrAborted) {
		t.Fatalf("client cancel: %v, want ErrAborted", err)
	}
	if _, err := imap.Continue(ctx, st.Exchange, []byte("mjl")); !errors.Is(err, storeclient.ErrAuthFailed) {
		t.Fatalf("continue after cancel: %v, want ErrAuthFailed", err)
	}
	st, err = imap.Start(ctx, auth.MechLOGIN, clientIP, true, nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := imap.Abort(ctx, st.Exchange); err != nil {
		t.Fatal(err)
	}
	if n := e.svc.Exchanges(); n != 0 {
		t.Fatalf("%d exchanges after abort", n)
	}
}

func TestCapAndIdle(t *testing.T) {
	e := newEnv(t, auth.LimiterConfig{}, func(c *login.Config) { c.MaxExchanges = 3 })
	imap := e.client(ipc.RoleIMAP, 1)
	web := e.client(ipc.RoleWeb, 1)
	ctx := testContext(t)
	start := func(a *storeclient.Auth) (storeclient.Step, error) {
		return a.Start(ctx, auth.MechSCRAMSHA256, clientIP, true, nil, nil, false)
	}
	var ids []uint64
	for range 3 {
		st, err := start(imap)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, st.Exchange)
	}
	if _, err := start(imap); !errors.Is(err, storeclient.ErrRateLimited) {
		t.Fatalf("exchange beyond the cap: %v, want ErrRateLimited", err)
	}
	// The cap is per role.
	wst, err := start(web)
	if err != nil {
		t.Fatalf("other role at imap's cap: %v", err)
	}
	if err := imap.Abort(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	st, err := start(imap)
	if err != nil {
		t.Fatalf("after an abort: %v", err)
	}
	ids = append(ids[1:], st.Exchange)

	e.clock.Advance(login.DefaultIdleTimeout - time.Second)
	c := newSCRAM(auth.MechSCRAMSHA256, "mjl", "Pass-w0rd", "", nil)
	if _, err := imap.Continue(ctx, ids[0], c.first()); err != nil {
		t.Fatalf("exchange idle for less than the timeout: %v", err)
	}
	e.clock.Advance(2 * time.Second)
	// ids[1] and ids[2] are now idle past the timeout, ids[0] not.
	if _, err := imap.Continue(ctx, ids[1], c.first()); !errors.Is(err, storeclient.ErrAuthFailed) {
		t.Fatalf("idle exchange: %v, want ErrAuthFailed", err)
	}
	if _, err := start(imap); err != nil {
		t.Fatalf("start after idle exchanges expired: %v", err)
	}
	if n := e.svc.Exchanges(); n != 3 {
		t.Fatalf("%d exchanges, want 3 (imap's live one and new one, web's)", n)
	}
	if err := web.Abort(ctx, wst.Exchange); err != nil {
		t.Fatal(err)
	}
}

// TestBusyExchange sends a second response while the first is still being
// checked.
func TestBusyExchange(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	e := newEnv(t, auth.LimiterConfig{}, func(c *login.Config) {
		inner := c.Lookup
		c.Lookup = func(ctx context.Context, name string) (string, auth.Credentials, error) {
			if name == "mjl" {
				close(entered)
				<-release
			}
			return inner(ctx, name)
		}
	})
	imap := e.client(ipc.RoleIMAP, 1)
	ctx := testContext(t)
	c := newSCRAM(auth.MechSCRAMSHA256, "mjl", "Pass-w0rd", "", nil)
	st, err := imap.Start(ctx, auth.MechSCRAMSHA256, clientIP, true, nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	first := c.first()
	done := make(chan error, 1)
	go func() {
		_, err := imap.Continue(ctx, st.Exchange, first)
		done <- err
	}()
	<-entered
	if _, err := imap.Continue(ctx, st.Exchange, first); !errors.Is(err, storeclient.ErrMalformed) {
		t.Fatalf("second step while the first runs: %v, want ErrMalformed", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("first step: %v", err)
	}
}

func TestRolesWithoutLogin(t *testing.T) {
	e := newEnv(t, auth.LimiterConfig{}, nil)
	ctx := testContext(t)
	for _, role := range []ipc.Role{ipc.RoleSMTP, ipc.RoleQueue} {
		a := e.client(role, 1)
		if _, err := a.Start(ctx, auth.MechPLAIN, clientIP, true, nil, []byte("\x00mjl\x00Pass-w0rd"), true); !errors.Is(err, storeclient.ErrAuthFailed) {
			t.Errorf("%s logged in: %v, want ErrAuthFailed", role, err)
		}
	}
}

func TestRateLimit(t *testing.T) {
	limits := auth.LimiterConfig{PerPrefixAccount: 2, PerPrefix: 4}
	e := newEnv(t, limits, nil)
	sub := e.client(ipc.RoleSubmission, 1)
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()
	login := func(ip netip.Addr, user, pass string) error {
		_, err := run(ctx, sub, auth.MechPLAIN, ip, true, nil, &plainClient{user, pass, true})
		return err
	}
	for i := range 2 {
		if err := login(clientIP, "mjl@example.org", "wrong"); !errors.Is(err, storeclient.ErrAuthFailed) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	// The account is refused from this prefix, under either of its names,
	// even with the right password.
	for _, name := range []string{"mjl", "mjl@example.org"} {
		if err := login(clientIP, name, "Pass-w0rd"); !errors.Is(err, storeclient.ErrRateLimited) {
			t.Fatalf("login as %s after %d failures: %v, want ErrRateLimited", name, limits.PerPrefixAccount, err)
		}
	}
	// Another account from the same prefix, and the same account from
	// another prefix, still log in.
	if err := login(clientIP, "other", "0ther-pass"); err != nil {
		t.Fatalf("other account: %v", err)
	}
	if err := login(clientIP2, "mjl", "Pass-w0rd"); err != nil {
		t.Fatalf("other prefix: %v", err)
	}
	// Enough failures from the prefix refuse it before any mechanism runs.
	for _, name := range []string{"nobody1", "nobody2"} {
		if err := login(clientIP, name, "x"); !errors.Is(err, storeclient.ErrAuthFailed) {
			t.Fatalf("failure for %s: %v", name, err)
		}
	}
	if _, err := sub.Start(ctx, "NO-SUCH-MECH", clientIP, true, nil, nil, false); !errors.Is(err, storeclient.ErrRateLimited) {
		t.Fatalf("start from a refused prefix: %v, want ErrRateLimited", err)
	}
}

// TestRecordFailures runs the service's loop and checks the failures reach
// RecordFailures in a batch when it ends.
func TestRecordFailures(t *testing.T) {
	var mu sync.Mutex
	var batches [][]auth.FailureRecord
	e := newEnv(t, auth.LimiterConfig{}, func(c *login.Config) {
		c.RecordFailures = func(recs []auth.FailureRecord) {
			mu.Lock()
			defer mu.Unlock()
			batches = append(batches, recs)
		}
	})
	sub := e.client(ipc.RoleSubmission, 1)
	ctx := testContext(t)
	runCtx, stop := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- e.svc.Run(runCtx) }()

	for range 2 {
		if _, err := run(ctx, sub, auth.MechPLAIN, clientIP, true, nil, &plainClient{"mjl@example.org", "wrong", true}); !errors.Is(err, storeclient.ErrAuthFailed) {
			t.Fatal(err)
		}
	}
	if _, err := run(ctx, sub, auth.MechPLAIN, clientIP2, true, nil, &plainClient{"Nobody", "wrong", true}); !errors.Is(err, storeclient.ErrAuthFailed) {
		t.Fatal(err)
	}
	stop()
	if err := <-runDone; err != nil {
		t.Fatalf("run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	got := map[string]int{}
	for _, b := range batches {
		for _, r := range b {
			got[r.Prefix.String()+" "+r.Account] += r.Failures
		}
	}
	want := map[string]int{"192.0.2.10/32 mjl": 2, "2001:db8:1::/64 nobody": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("recorded failures %v, want %v", got, want)
	}
}

func TestTokens(t *testing.T) {
	e := newEnv(t, auth.LimiterConfig{}, nil)
	imap := e.client(ipc.RoleIMAP, 1)
	sub := e.client(ipc.RoleSubmission, 4)
	queue := e.client(ipc.RoleQueue, 2)
	web := e.client(ipc.RoleWeb, 1)
	ctx := testContext(t)
	loginAs := func(a *storeclient.Auth) auth.Token {
		t.Helper()
		st, err := run(ctx, a, auth.MechPLAIN, clientIP, true, nil, &plainClient{"mjl", "Pass-w0rd", true})
		if err != nil {
			t.Fatal(err)
		}
		return st.Token
	}
	imapTok := loginAs(imap)
	subTok := loginAs(sub)

	checks := []struct {
		name   string
		by     *storeclient.Auth
		tok    auth.Token
		issuer ipc.Role
		ok     bool
	}{
		{"own token", imap, imapTok, ipc.RoleIMAP, true},
		{"queue checks submission's", queue, subTok, ipc.RoleSubmission, true},
		{"queue checks imap's", queue, imapTok, ipc.RoleIMAP, false},
		{"web checks imap's", web, imapTok, ipc.RoleIMAP, false},
		{"imap's token as web's", web, imapTok, ipc.RoleWeb, false},
		{"submission's token named as imap's", imap, subTok, ipc.RoleIMAP, false},
		{"random token", imap, auth.Token{1, 2, 3}, ipc.RoleIMAP, false},
	}
	for _, c := range checks {
		info, err := c.by.CheckToken(ctx, c.tok, c.issuer)
		switch {
		case c.ok && (err != nil || info.Account != "mjl"):
			t.Errorf("%s: %+v, %v; want account mjl", c.name, info, err)
		case !c.ok && (!errors.Is(err, auth.ErrTokenInvalid) || !errors.Is(err, storeclient.ErrAuthFailed)):
			t.Errorf("%s: %+v, %v; want an invalid token", c.name, info, err)
		}
	}

	// A token from an earlier channel generation is not valid on the new one.
	imap2 := e.client(ipc.RoleIMAP, 2)
	if _, err := imap2.CheckToken(ctx, imapTok, ipc.RoleIMAP); !errors.Is(err, auth.ErrTokenInvalid) {
		t.Fatalf("token of generation 1 on generation 2: %v", err)
	}

	// Revoking by another role does nothing; by the owner it ends the token.
	if err := web.RevokeToken(imapTok); err != nil {
		t.Fatal(err)
	}
	if err := imap.RevokeToken(imapTok); err != nil {
		t.Fatal(err)
	}
	waitInvalid(t, imap, imapTok, ipc.RoleIMAP)

	// Channel reset: the store role revokes the generation.
	tok := loginAs(imap)
	e.svc.RevokeGeneration(ipc.RoleIMAP, 1)
	if _, err := imap.CheckToken(ctx, tok, ipc.RoleIMAP); !errors.Is(err, auth.ErrTokenInvalid) {
		t.Fatalf("token after its generation was revoked: %v", err)
	}
	if _, err := queue.CheckToken(ctx, subTok, ipc.RoleSubmission); err != nil {
		t.Fatalf("another role's token after imap's generation was revoked: %v", err)
	}

	// Expiry.
	e.clock.Advance(login.DefaultTokenLifetime)
	if _, err := queue.CheckToken(ctx, subTok, ipc.RoleSubmission); !errors.Is(err, auth.ErrTokenInvalid) {
		t.Fatalf("token after its lifetime: %v", err)
	}
}

// waitInvalid waits for an event to have revoked tok: events are served
// apart from requests, so a check right after may still see it.
func waitInvalid(t *testing.T, a *storeclient.Auth, tok auth.Token, issuer ipc.Role) {
	t.Helper()
	ctx := testContext(t)
	for {
		_, err := a.CheckToken(ctx, tok, issuer)
		if errors.Is(err, auth.ErrTokenInvalid) {
			return
		}
		if err != nil {
			t.Fatalf("check token: %v", err)
		}
		select {
		case <-ctx.Done():
			t.Fatal("token still valid after revoke")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestRevokeGenerationEndsExchanges checks a channel reset also drops the
// exchanges in progress on it.
func TestRevokeGenerationEndsExchanges(t *testing.T) {
	e := newEnv(t, auth.LimiterConfig{}, nil)
	imap := e.client(ipc.RoleIMAP, 1)
	ctx := testContext(t)
	st, err := imap.Start(ctx, auth.MechSCRAMSHA256, clientIP, true, nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	e.svc.RevokeGeneration(ipc.RoleIMAP, 1)
	if n := e.svc.Exchanges(); n != 0 {
		t.Fatalf("%d exchanges after the generation was revoked", n)
	}
	c := newSCRAM(auth.MechSCRAMSHA256, "mjl", "Pass-w0rd", "", nil)
	if _, err := imap.Continue(ctx, st.Exchange, c.first()); !errors.Is(err, storeclient.ErrAuthFailed) {
		t.Fatalf("continue after reset: %v", err)
	}
}

func TestHandles(t *testing.T) {
	for _, typ := range ipc.MessageTypes() {
		fam, _ := ipc.TypeFamily(typ)
		name := ipc.MessageName(typ)
		isAuth := strings.HasPrefix(name, "session.Auth") || strings.HasPrefix(name, "session.Token")
		_, isReq := ipc.ReplyType(typ)
		want := isAuth && (isReq || ipc.IsEvent(typ)) && fam == ipc.FamSession
		if got := login.Handles(typ); got != want {
			t.Errorf("Handles(%s) = %v, want %v", name, got, want)
		}
	}
}

// TestAuthMessages checks the codec rules of the authentication messages
// that the generic ipc tests do not know about.
func TestAuthMessages(t *testing.T) {
	frame := func(m ipc.Message) []byte {
		t.Helper()
		b, err := ipc.EncodeFrame(ipc.Header{Type: m.Type(), ID: 1}, m)
		if err != nil {
			t.Fatalf("encode %s: %v", ipc.MessageName(m.Type()), err)
		}
		return b
	}
	if ipc.MaxSASLMessage != auth.MaxMessageSize {
		t.Fatalf("ipc.MaxSASLMessage %d differs from auth.MaxMessageSize %d", ipc.MaxSASLMessage, auth.MaxMessageSize)
	}
	// IPv4 travels mapped and comes back as IPv4.
	b := frame(&ipc.AuthStart{Mechanism: "PLAIN", RemoteIP: netip.MustParseAddr("192.0.2.1")})
	_, m, err := ipc.DecodeFrame(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ip := m.(*ipc.AuthStart).RemoteIP; ip != netip.MustParseAddr("192.0.2.1") {
		t.Fatalf("remote ip came back as %s", ip)
	}

	bad := []struct {
		name string
		m    ipc.Message
	}{
		{"start without ip", &ipc.AuthStart{Mechanism: "PLAIN"}},
		{"initial data without HasInitial", &ipc.AuthStart{Mechanism: "PLAIN", RemoteIP: clientIP, InitialResponse: []byte("x")}},
		{"done without account", &ipc.AuthStep{Exchange: 1, Done: true}},
		{"done with challenge", &ipc.AuthStep{Exchange: 1, Done: true, Account: "mjl", Challenge: []byte("v=")}},
		{"response too long", &ipc.AuthContinue{Exchange: 1, Response: make([]byte, ipc.MaxSASLMessage+1)}},
	}
	for _, tc := range bad {
		if _, err := ipc.EncodeFrame(ipc.Header{Type: tc.m.Type(), ID: 1, Flags: replyFlag(tc.m)}, tc.m); err == nil {
			t.Errorf("%s: encoded", tc.name)
		}
	}

	// The decoder enforces the same rules on what a peer sends.
	b = frame(&ipc.AuthStart{Mechanism: "PLAIN", RemoteIP: clientIP, InitialResponse: []byte("x"), HasInitial: true})
	b[len(b)-1] = 0 // HasInitial
	if _, _, err := ipc.DecodeFrame(b, 0); err == nil {
		t.Error("decoded an initial response without HasInitial")
	}
	step := &ipc.AuthStep{Exchange: 1}
	b, err = ipc.EncodeFrame(ipc.Header{Type: step.Type(), ID: 1, Flags: ipc.FlagReply}, step)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-32-2-1] = 1 // Done, before the empty account and the token
	if _, _, err := ipc.DecodeFrame(b, 0); err == nil {
		t.Error("decoded a finished step without account")
	}
}

func replyFlag(m ipc.Message) ipc.Flags {
	if _, ok := ipc.ReplyType(m.Type()); ok || ipc.IsEvent(m.Type()) {
		return 0
	}
	return ipc.FlagReply
}
