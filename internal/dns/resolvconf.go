package dns

import (
	"fmt"
	"net/netip"
	"strings"
)

// ParseResolvConf reads the resolver settings moxd uses from the contents
// of a resolv.conf(5) file: the "nameserver" addresses, as "ip:53" or
// "[ipv6%zone]:53" in file order, and whether "options" includes
// "trust-ad". Comments start with '#' or ';'; other keywords (search,
// domain, sortlist, other options) are ignored. A nameserver line without
// a valid IP address is an error naming the line. servers is empty when
// the file has no nameserver lines; the caller decides what to do then
// (glibc would use 127.0.0.1).
//
// moxd-master reads the file and passes the result on; roles never read
// files themselves.
func ParseResolvConf(data []byte) (servers []string, trustAD bool, err error) {
	lineno := 0
	for line := range strings.Lines(string(data)) {
		lineno++
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(f) < 2 {
				return nil, false, fmt.Errorf("resolv.conf line %d: nameserver without address", lineno)
			}
			ip, err := netip.ParseAddr(f[1])
			if err != nil {
				return nil, false, fmt.Errorf("resolv.conf line %d: nameserver %q: not an IP address", lineno, f[1])
			}
			servers = append(servers, netip.AddrPortFrom(ip, 53).String())
		case "options":
			for _, o := range f[1:] {
				if o == "trust-ad" {
					trustAD = true
				}
			}
		}
	}
	return servers, trustAD, nil
}
