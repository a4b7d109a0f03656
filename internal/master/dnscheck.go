package master

// DNS commands on the control socket: "dns records DOMAIN" prints the
// records a hosted domain should publish, made from the configuration and
// the DKIM public keys of keys; "dns check DOMAIN" has moxd-queue look the
// domain's records up and relays its report. Master parses no DNS answer
// (DESIGN.md §1): queue does the lookups and writes the report text;
// master only passes it the DKIM records keys wants published, so queue
// can compare them with what DNS has.

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"moxd/internal/config"
	"moxd/internal/ctl"
	"moxd/internal/ipc"
)

// handleDNS runs the dns commands; false means unknown command (files
// are then left to the caller).
func (s *ctlSession) handleDNS(req ctl.Request, files []*os.File) bool {
	switch req.Cmd {
	case "dns check", "dns records":
	default:
		return false
	}
	closeAll(files) // checkFDs let none through: these commands take no fds
	if len(req.Args) != 1 {
		s.respond(nil, fmt.Errorf("usage: %s DOMAIN", req.Cmd))
		return true
	}
	cfg := s.m.config()
	i := cfg.Dynamic.FindDomain(strings.TrimSuffix(req.Args[0], "."))
	if i < 0 {
		s.respond(nil, fmt.Errorf("domain %q is not configured (see moxctl domain list)", req.Args[0]))
		return true
	}
	dom := cfg.Dynamic.Domains[i]
	if req.Cmd == "dns records" {
		s.respond(s.m.dnsRecords(cfg, dom), nil)
		return true
	}
	dkim, _ := s.m.dkimRecords(dom)
	if len(dkim) > ipc.MaxDNSCheckSelectors {
		// Queue checks the others against DNS only.
		dkim = dkim[:ipc.MaxDNSCheckSelectors]
	}
	s.respond(s.m.queueCall(&ipc.QueueDNSCheck{Domain: dom.Name, DKIM: dkim}))
	return true
}

// dkimRecords asks keys for the TXT record of each DKIM selector of dom.
// A selector keys did not answer for has an empty Record; the warning
// says why.
func (m *Master) dkimRecords(dom config.Domain) ([]ipc.QueueDNSCheckDKIM, string) {
	var l []ipc.QueueDNSCheckDKIM
	var warn []string
	kc := m.keysConn()
	for _, sel := range dom.DKIM {
		k := ipc.QueueDNSCheckDKIM{Selector: sel.Selector}
		if kc == nil {
			if len(warn) == 0 {
				warn = append(warn, "keys unavailable (see moxctl status): no DKIM records")
			}
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), provisionLimit)
			rep, err := kc.Call(ctx, &ipc.EnsureDKIM{Domain: dom.Name, Selector: sel.Selector, Algorithm: sel.Algorithm})
			cancel()
			if err != nil {
				warn = append(warn, fmt.Sprintf("DKIM key %s: %v", sel.Selector, roleError(ipc.RoleKeys, err)))
			} else {
				k.Record = rep.Msg.(*ipc.DKIMPublic).Record
			}
		}
		l = append(l, k)
	}
	return l, strings.Join(warn, "; ")
}

// dnsRecords returns the records dom should publish: MX for this host,
// SPF allowing the MX hosts and every address queue sends from that the MX
// records do not cover, DMARC, and the DKIM keys.
func (m *Master) dnsRecords(cfg *config.Config, dom config.Domain) ctl.DNSRecords {
	res := ctl.DNSRecords{Domain: dom.Name, Records: dnsRecords(dom.Name, cfg.Static.HostnameASCII())}
	if mechs := spfAddresses(&cfg.Static); len(mechs) > 0 {
		for i, r := range res.Records {
			if r.Type == "TXT" && strings.HasPrefix(r.Value, `"v=spf1 `) {
				res.Records[i].Value = txtValue("v=spf1 mx " + strings.Join(mechs, " ") + " -all")
			}
		}
	}
	dkim, warn := m.dkimRecords(dom)
	for _, k := range dkim {
		if k.Record != "" {
			res.Records = append(res.Records, ctl.DNSRecord{Name: k.Selector + "._domainkey." + asciiDomain(dom.Name) + ".", Type: "TXT", Value: txtValue(k.Record)})
		}
	}
	res.Warning = warn
	return res
}

// spfAddresses returns the ip4: and ip6: mechanisms for the addresses
// mail leaves from when they are set: [queue] source_ips, the source_ips
// of direct transports and the remote_ips of socks transports.
func spfAddresses(st *config.Static) []string {
	var mechs []string
	seen := map[netip.Addr]bool{}
	add := func(l []string) {
		for _, s := range l {
			ip, err := netip.ParseAddr(s)
			if err != nil || seen[ip.Unmap()] {
				continue
			}
			ip = ip.Unmap()
			seen[ip] = true
			if ip.Is4() {
				mechs = append(mechs, "ip4:"+ip.String())
			} else {
				mechs = append(mechs, "ip6:"+ip.String())
			}
		}
	}
	add(st.Queue.SourceIPs)
	for _, t := range st.Transports {
		switch t.Kind {
		case config.TransportDirect:
			add(t.SourceIPs)
		case config.TransportSocks:
			add(t.RemoteIPs)
		}
	}
	return mechs
}
