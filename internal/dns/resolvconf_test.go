package dns_test

import (
	"net/netip"
	"reflect"
	"testing"

	"moxd/internal/dns"
)

var resolvConfTests = []struct {
	name    string
	data    string
	servers []string
	trustAD bool
	err     bool
}{
	{"empty", "", nil, false, false},
	{"systemd-resolved", "# This is /run/systemd/resolve/stub-resolv.conf\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n",
		[]string{"127.0.0.53:53"}, true, false},
	{"several", "nameserver 192.0.2.1\nnameserver ::1\nnameserver fe80::1%eth0\n",
		[]string{"192.0.2.1:53", "[::1]:53", "[fe80::1%eth0]:53"}, false, false},
	{"comments", "; comment\n# nameserver 192.0.2.9\nnameserver 192.0.2.1 # trailing\n  nameserver\t192.0.2.2;x\n",
		[]string{"192.0.2.1:53", "192.0.2.2:53"}, false, false},
	{"options", "options ndots:2\noptions rotate trust-ad timeout:1\n", nil, true, false},
	{"trust-ad commented", "options edns0 # trust-ad\n", nil, false, false},
	{"other keywords", "domain example.test\nsearch example.test\nsortlist 192.0.2.0/24\nnameserver 192.0.2.1\n",
		[]string{"192.0.2.1:53"}, false, false},
	{"crlf, no final newline", "nameserver 192.0.2.1\r\nnameserver 192.0.2.2", []string{"192.0.2.1:53", "192.0.2.2:53"}, false, false},
	{"bad address", "nameserver 192.0.2.1\nnameserver dns.example.test\n", nil, false, true},
	{"missing address", "nameserver\n", nil, false, true},
	{"address with port", "nameserver 192.0.2.1:53\n", nil, false, true},
}

func TestParseResolvConf(t *testing.T) {
	for _, tc := range resolvConfTests {
		servers, trustAD, err := dns.ParseResolvConf([]byte(tc.data))
		if (err != nil) != tc.err {
			t.Errorf("%s: error %v, want error %v", tc.name, err, tc.err)
			continue
		}
		if !reflect.DeepEqual(servers, tc.servers) || trustAD != tc.trustAD {
			t.Errorf("%s: %q, trust-ad %v; want %q, %v", tc.name, servers, trustAD, tc.servers, tc.trustAD)
		}
	}
}

// FuzzParseResolvConf checks that every server ParseResolvConf returns is
// an address New accepts, on port 53.
func FuzzParseResolvConf(f *testing.F) {
	for _, tc := range resolvConfTests {
		f.Add([]byte(tc.data))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		servers, _, err := dns.ParseResolvConf(data)
		if err != nil {
			return
		}
		for _, s := range servers {
			ap, err := netip.ParseAddrPort(s)
			if err != nil || ap.Port() != 53 {
				t.Fatalf("server %q: %v", s, err)
			}
		}
		if len(servers) > 0 {
			if _, err := dns.New(dns.Config{Servers: servers}); err != nil {
				t.Fatalf("New(%q): %v", servers, err)
			}
		}
	})
}
