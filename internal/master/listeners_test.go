package master

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"moxd/internal/ipc"
)

const testConf = "/etc/moxd/moxd.conf"

// checkBound asserts that bl is a listening socket on a real port of the
// wanted address family, reachable by a client.
func checkBound(t *testing.T, bl *boundListener, wantAddr netip.Addr) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(bl.addr)
	if err != nil {
		t.Fatalf("bound address %q: %v", bl.addr, err)
	}
	if ap.Port() == 0 {
		t.Errorf("bound address %s has port 0", bl.addr)
	}
	if ap.Addr() != wantAddr {
		t.Errorf("bound address %s, want host %s", bl.addr, wantAddr)
	}
	// The kept file is the listening socket: a client can connect to it.
	dial := bl.addr
	if wantAddr.IsUnspecified() {
		loop := netip.MustParseAddr("127.0.0.1")
		if wantAddr.Is6() {
			loop = netip.IPv6Loopback()
		}
		dial = netip.AddrPortFrom(loop, ap.Port()).String()
	}
	c, err := net.DialTimeout("tcp", dial, 5*time.Second)
	if err != nil {
		t.Errorf("connect to bound listener %s: %v", dial, err)
	} else {
		c.Close()
	}
	return ap
}

func hasIPv6Loopback() bool {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

func TestBind(t *testing.T) {
	tests := []struct {
		kind, addr string
		needIPv6   bool
		wantHost   string
		wantOwner  ipc.Role
	}{
		{"smtp", "127.0.0.1:0", false, "127.0.0.1", ipc.RoleSMTP},
		{"submission", "127.0.0.1:0", false, "127.0.0.1", ipc.RoleSubmission},
		{"submissions", "0.0.0.0:0", false, "0.0.0.0", ipc.RoleSubmission},
		{"imaps", "[::ffff:127.0.0.1]:0", false, "127.0.0.1", ipc.RoleIMAP},
		{"https", "[::1]:0", true, "::1", ipc.RoleWeb},
		{"http", "[::]:0", true, "::", ipc.RoleWeb},
	}
	v6 := hasIPv6Loopback()
	for _, tc := range tests {
		t.Run(tc.kind+" "+tc.addr, func(t *testing.T) {
			if tc.needIPv6 && !v6 {
				t.Skip("host has no IPv6 loopback")
			}
			bl, err := bind(tc.kind, tc.addr, testConf)
			if err != nil {
				t.Fatalf("bind: %v", err)
			}
			defer bl.file.Close()
			checkBound(t, bl, netip.MustParseAddr(tc.wantHost))
			if bl.kind != tc.kind || bl.owner != tc.wantOwner {
				t.Errorf("kind %q owner %v, want %q %v", bl.kind, bl.owner, tc.kind, tc.wantOwner)
			}
		})
	}
}

func TestBindErrors(t *testing.T) {
	busy, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyAddr := busy.Addr().String()

	tests := []struct {
		name, kind, addr string
		want             []string
	}{
		{"in use", "imap", busyAddr, []string{busyAddr, "already in use", "listen.imap", testConf}},
		{"not on this host", "smtp", "192.0.2.1:25", []string{"192.0.2.1:25", "not an address of this host", "listen.smtp", testConf}},
		{"host name", "smtp", "localhost:25", []string{"localhost:25", "listen.smtp", testConf}},
		{"no port", "submission", "127.0.0.1", []string{"127.0.0.1", "listen.submission"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bl, err := bind(tc.kind, tc.addr, testConf)
			if err == nil {
				bl.file.Close()
				t.Fatalf("bind(%q) succeeded (bound %s), want error", tc.addr, bl.addr)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

// TestBindDualStack binds the IPv4 and the IPv6 wildcard on one port, in
// both orders: IPv6 sockets are v6-only, so they do not collide.
func TestBindDualStack(t *testing.T) {
	if !hasIPv6Loopback() {
		t.Skip("host has no IPv6 loopback")
	}
	for _, order := range [][2]string{{"0.0.0.0", "::"}, {"::", "0.0.0.0"}} {
		t.Run(order[0]+" first", func(t *testing.T) {
			first, err := bind("smtp", netip.AddrPortFrom(netip.MustParseAddr(order[0]), 0).String(), testConf)
			if err != nil {
				t.Fatalf("bind first: %v", err)
			}
			defer first.file.Close()
			ap := checkBound(t, first, netip.MustParseAddr(order[0]))
			second := netip.AddrPortFrom(netip.MustParseAddr(order[1]), ap.Port()).String()
			bl, err := bind("smtp", second, testConf)
			if err != nil {
				t.Fatalf("bind %s after %s: %v", second, first.addr, err)
			}
			defer bl.file.Close()
			checkBound(t, bl, netip.MustParseAddr(order[1]))

			// The same family again on that port is in use.
			if again, err := bind("smtp", second, testConf); err == nil {
				again.file.Close()
				t.Errorf("second bind of %s succeeded", second)
			} else if !strings.Contains(err.Error(), "already in use") {
				t.Errorf("second bind of %s: %v, want already in use", second, err)
			}
		})
	}
}
