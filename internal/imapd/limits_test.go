package imapd

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"

	"moxd/internal/connlimit"
)

// TestConnectionLimit: over the per-IP limit a connection gets a BYE
// greeting saying which limit; a trusted network is exempt; closing a
// connection frees its place.
func TestConnectionLimit(t *testing.T) {
	lim := connlimit.New(nil, [3]int{}, [3]int{2, 0, 0}, nil)
	e := newEnv(t, func(e *env) { e.srv.Limiter = lim })
	c1, g1 := e.dial(t)
	_, g2 := e.dial(t)
	_, g3 := e.dial(t)
	if !strings.HasPrefix(g1, "* OK ") || !strings.HasPrefix(g2, "* OK ") {
		t.Fatalf("greetings within the limit: %q, %q", g1, g2)
	}
	if !strings.HasPrefix(g3, "* BYE [UNAVAILABLE] ") || !strings.Contains(g3, "concurrent_connections") {
		t.Fatalf("third connection: %q, want BYE naming the limit", g3)
	}
	c1.ok("LOGOUT")
	c1.nc.Close()
	// The place is free once the server has seen the close.
	var g string
	for range 50 {
		if _, g = e.dial(t); strings.HasPrefix(g, "* OK ") {
			break
		}
	}
	if !strings.HasPrefix(g, "* OK ") {
		t.Errorf("after a logout, a new connection got %q", g)
	}
	lim.SetLimits([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, [3]int{}, [3]int{1, 0, 0})
	for range 3 {
		if _, g := e.dial(t); !strings.HasPrefix(g, "* OK ") {
			t.Fatalf("trusted network refused: %q", g)
		}
	}
	if n := e.srv.Counters(); n[1].Name != "connections_refused_limits" || n[1].Value == 0 {
		t.Errorf("counters %+v: no refused connection counted", n)
	}
}

// TestAuthLimitsReload: SetAuthLimits (a config reload) changes how many
// failed logins end the connection, for connections from then on.
func TestAuthLimitsReload(t *testing.T) {
	e := newEnv(t)
	c, _ := e.dial(t)
	c.starttls()
	c.expect("LOGIN mjl@example.org wrong", "NO [AUTHENTICATIONFAILED]")
	c.expect("LOGIN mjl@example.org wrong", "NO [AUTHENTICATIONFAILED]")
	e.srv.SetAuthLimits(0, 1)
	c, _ = e.dial(t)
	c.starttls()
	c.expect("LOGIN mjl@example.org wrong", "NO [AUTHENTICATIONFAILED]")
	if l := c.line(); !strings.HasPrefix(l, "* BYE ") {
		t.Errorf("after the one allowed failure: %q, want BYE", l)
	}
}

// TestShutdown: when the server's context ends, a connection waiting for
// a command, logged in or not, gets BYE [UNAVAILABLE].
func TestShutdown(t *testing.T) {
	e := newEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go e.srv.Serve(ctx, nc, false)
		}
	}()
	e.addr = ln.Addr().String()
	c1, _ := e.dial(t)
	c2, _ := e.dial(t)
	c2.login()
	c2.ok("SELECT INBOX")
	cancel()
	for _, c := range []*client{c1, c2} {
		if l := c.line(); !strings.HasPrefix(l, "* BYE [UNAVAILABLE] server shutting down") {
			t.Errorf("after shutdown: %q", l)
		}
	}
}
