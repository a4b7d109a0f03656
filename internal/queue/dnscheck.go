package queue

// The DNS check of a hosted domain ("moxctl dns check DOMAIN"): master
// relays the request with the DKIM records keys says are to be published,
// and queue, the role that does outbound DNS, looks everything up with
// its resolver and answers a report, one line per check. Root never sees
// a DNS answer, only this text (DESIGN.md §1).
//
// Every line starts with its level: OK, INFO (optional or informational
// records), WARN (mail is likely to be rejected or junked somewhere) or
// ERROR (mail fails a check receivers make, or a lookup failed). moxctl
// exits 1 when a line is WARN or ERROR. Anything taken from DNS is shown
// with control characters replaced, and clipped.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/idna"

	"moxd/internal/config"
	"moxd/internal/ipc"
	"moxd/internal/mailproto/dmarc"
	"moxd/internal/mailproto/mtasts"
	"moxd/internal/mailproto/spf"
)

// dnsCheckTimeout bounds one check; master waits longer.
const dnsCheckTimeout = 90 * time.Second

// Levels of report lines.
const (
	levelOK    = "OK"
	levelInfo  = "INFO"
	levelWarn  = "WARN"
	levelError = "ERROR"
)

// dnsReport collects the lines of a check.
type dnsReport struct {
	lines []string
}

func (r *dnsReport) add(level, check, format string, args ...any) {
	r.lines = append(r.lines, fmt.Sprintf("%-5s %s: %s", level, check, fmt.Sprintf(format, args...)))
}

func (r *dnsReport) text(header string) string {
	s := header + "\n" + strings.Join(r.lines, "\n") + "\n"
	if len(s) > ipc.MaxQueueText {
		const note = "\n[report cut]\n"
		s = ipc.ClipText(s, ipc.MaxQueueText-len(note)) + note
	}
	return s
}

// dnsText makes a value from DNS printable on one line: control
// characters become "?", long values are cut.
func dnsText(s string) string {
	const max = 300
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
	if len(s) > max {
		s = ipc.ClipText(s, max) + "..."
	}
	return s
}

// dnsCheck runs the checks of m and returns the report.
func (sv *service) dnsCheck(ctx context.Context, m *ipc.QueueDNSCheck) (ipc.Message, error) {
	domain := strings.ToLower(strings.TrimSuffix(m.Domain, "."))
	ascii, err := idna.Lookup.ToASCII(domain)
	if err != nil || !strings.Contains(ascii, ".") {
		return nil, ipc.Errorf(ipc.CodeBadRequest, "%q is not a domain name", m.Domain)
	}
	ctx, cancel := context.WithTimeout(ctx, dnsCheckTimeout)
	defer cancel()
	st := sv.settings.Load()
	c := &dnsChecker{sv: sv, st: st, domain: domain, ascii: ascii, host: strings.ToLower(strings.TrimSuffix(sv.hostname, "."))}
	authentic := c.checkMX(ctx)
	c.checkSPF(ctx)
	c.checkDKIM(ctx, m.DKIM)
	c.checkDMARC(ctx)
	c.checkMTASTS(ctx)
	c.checkTLSRPT(ctx)
	if authentic {
		c.add(levelInfo, "DNSSEC", "the MX answer is DNSSEC-authentic: senders can use DANE when TLSA records for the MX hosts are published (RFC 7672)")
	} else {
		c.add(levelInfo, "DNSSEC", "the MX answer is not DNSSEC-authentic (unsigned zone, or queue's resolver does not validate or is not trusted, see [dns] in moxd.conf): DANE needs a signed zone")
	}
	name := ascii
	if ascii != domain {
		name = domain + " (" + ascii + ")"
	}
	sv.log.Info("dns check", "domain", ascii, "lines", len(c.lines))
	return &ipc.QueueText{Text: c.text(fmt.Sprintf("DNS check of %s for this host %s, with moxd-queue's resolver:", name, c.host))}, nil
}

// dnsChecker is one running check.
type dnsChecker struct {
	dnsReport
	sv     *service
	st     *settings
	domain string // Unicode form, lower case
	ascii  string
	host   string // this host, ASCII
}

// notFound reports whether err says the name or its records do not
// exist (NXDOMAIN, NODATA).
func notFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// checkMX checks that the domain's MX records name this host; it returns
// whether the answer was DNSSEC-authentic.
func (c *dnsChecker) checkMX(ctx context.Context) bool {
	const check = "MX"
	mxs, res, err := c.sv.out.resolver.LookupMX(ctx, c.ascii)
	suggest := fmt.Sprintf(`publish "%s. IN MX 10 %s."`, c.ascii, c.host)
	switch {
	case notFound(err) || err == nil && len(mxs) == 0:
		c.add(levelWarn, check, "no MX records for %s, senders use its address records instead (RFC 5321 §5.1); %s", c.ascii, suggest)
		return res.Authentic
	case err != nil:
		c.add(levelError, check, "lookup failed: %s", dnsText(err.Error()))
		return false
	}
	var hosts []string
	ours := false
	for _, mx := range mxs {
		h := strings.ToLower(strings.TrimSuffix(mx.Host, "."))
		if h == "" {
			// RFC 7505: a null MX, the domain accepts no mail.
			c.add(levelWarn, check, "%s has a null MX (RFC 7505): it accepts no mail; replace it: %s", c.ascii, suggest)
			return res.Authentic
		}
		hosts = append(hosts, fmt.Sprintf("%d %s", mx.Pref, dnsText(h)))
		ours = ours || h == c.host
	}
	if !ours {
		c.add(levelWarn, check, "the MX records (%s) do not name this host %s; %s", strings.Join(hosts, ", "), c.host, suggest)
	} else {
		c.add(levelOK, check, "%s", strings.Join(hosts, ", "))
	}
	return res.Authentic
}

// spfSource is a set of addresses mail for the domain may leave from.
type spfSource struct {
	what  string
	helo  string
	addrs []string
}

// checkSPF checks the domain's SPF record and that it allows every
// address queue sends from: the remote_ips of socks transports, the
// source_ips of [queue] and of direct transports, or without source_ips
// this host's addresses.
func (c *dnsChecker) checkSPF(ctx context.Context) {
	const check = "SPF"
	r := c.sv.out.resolver
	txts, _, err := r.LookupTXT(ctx, c.ascii)
	var records []string
	for _, t := range txts {
		// RFC 7208 §4.5: "v=spf1" followed by a space or the end.
		if l := strings.ToLower(t); l == "v=spf1" || strings.HasPrefix(l, "v=spf1 ") {
			records = append(records, t)
		}
	}
	switch {
	case err != nil && !notFound(err):
		c.add(levelError, check, "TXT lookup failed: %s", dnsText(err.Error()))
		return
	case len(records) > 1:
		// Every evaluation would be a permerror.
		c.add(levelError, check, "%d SPF records at %s, receivers treat that as an error (RFC 7208 §4.5); merge them into one", len(records), c.ascii)
		return
	case len(records) == 0:
		c.add(levelWarn, check, `no SPF record at %s: receivers cannot tell your mail from forgeries; publish "%s. IN TXT \"v=spf1 mx -all\""`, c.ascii, c.ascii)
	default:
		c.add(levelOK, check, "%s", dnsText(records[0]))
	}

	var sources []spfSource
	var names []string
	for name := range c.st.routes.transports {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		t := c.st.routes.transports[name]
		switch {
		case t.Kind == config.TransportSocks && len(t.RemoteIPs) > 0:
			sources = append(sources, spfSource{fmt.Sprintf("remote_ips of transport %q (socks)", name), t.RemoteHostname, t.RemoteIPs})
		case t.Kind == config.TransportDirect && len(t.SourceIPs) > 0:
			sources = append(sources, spfSource{fmt.Sprintf("source_ips of transport %q (direct)", name), c.host, t.SourceIPs})
		}
	}
	if l := c.st.delivery.SourceIPs; len(l) > 0 {
		sources = append(sources, spfSource{"[queue] source_ips", c.host, l})
	} else if c.host != "" && c.host != "localhost" {
		// Direct delivery connects from an address the system chooses,
		// normally one of this host's.
		ips, _, err := r.LookupIP(ctx, "ip", c.host)
		if err != nil {
			c.add(levelWarn, check, "cannot check the addresses of this host %s: %s", c.host, dnsText(err.Error()))
		} else {
			var l []string
			for _, ip := range ips {
				l = append(l, ip.String())
			}
			sources = append(sources, spfSource{"this host's addresses (" + c.host + ")", c.host, l})
		}
	}
	for _, src := range sources {
		c.checkSPFSource(ctx, src)
	}
}

// checkSPFSource evaluates the domain's SPF for each address of src with
// a MAIL FROM postmaster@domain.
func (c *dnsChecker) checkSPFSource(ctx context.Context, src spfSource) {
	const check = "SPF"
	var missing, mechs []string
	failed := false
	for _, s := range src.addrs {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			c.add(levelError, check, "%s: %q is not an IP address", src.what, s)
			failed = true
			continue
		}
		ip = ip.Unmap()
		rcv := spf.Verify(ctx, c.sv.out.resolver, spf.Args{
			RemoteIP:          ip,
			MailFromLocalpart: "postmaster",
			MailFromDomain:    c.ascii,
			HelloDomain:       src.helo,
			LocalHostname:     c.host,
		})
		switch rcv.Result {
		case spf.StatusPass:
			continue
		case spf.StatusTemperror, spf.StatusPermerror:
			why := ""
			if rcv.Err != nil {
				why = ": " + dnsText(rcv.Err.Error())
			}
			c.add(levelError, check, "evaluating the record for %s of %s: %s%s", ip, src.what, rcv.Result, why)
			failed = true
			continue
		}
		missing = append(missing, fmt.Sprintf("%s (%s)", ip, rcv.Result))
		if ip.Is4() {
			mechs = append(mechs, "ip4:"+ip.String())
		} else {
			mechs = append(mechs, "ip6:"+ip.String())
		}
	}
	if len(missing) > 0 {
		c.add(levelWarn, check, "the record of %s does not allow %s of %s; add %s before its \"all\"", c.ascii, strings.Join(missing, ", "), src.what, strings.Join(mechs, " "))
	} else if !failed && len(src.addrs) > 0 {
		c.add(levelOK, check, "allows %s: %s", src.what, strings.Join(src.addrs, ", "))
	}
}

// checkDKIM checks the key record of every selector queue signs with
// (and every selector master sent), and compares it with the record keys
// gave master.
func (c *dnsChecker) checkDKIM(ctx context.Context, expected []ipc.QueueDNSCheckDKIM) {
	const check = "DKIM"
	want := map[string]*ipc.QueueDNSCheckDKIM{}
	var sels []string
	for i := range expected {
		e := &expected[i]
		s := strings.ToLower(e.Selector)
		if want[s] == nil {
			sels = append(sels, s)
		}
		want[s] = e
	}
	own, _ := c.st.dkimFor(c.domain)
	for _, q := range own {
		if s := strings.ToLower(q.Selector); !slices.Contains(sels, s) {
			sels = append(sels, s)
		}
	}
	if len(sels) == 0 {
		c.add(levelWarn, check, "no DKIM selectors configured for %s: its messages are not signed; add a [[domain.dkim]] in domains.conf", c.domain)
		return
	}
	for _, sel := range sels {
		name := sel + "._domainkey." + c.ascii
		var exp string
		if e := want[sel]; e != nil {
			exp = e.Record
		}
		publish := fmt.Sprintf(`; "moxctl dns records %s" prints the record to publish`, c.domain)
		txts, _, err := c.sv.out.resolver.LookupTXT(ctx, name)
		switch {
		case notFound(err) || err == nil && len(txts) == 0:
			c.add(levelError, check, "no key record at %s: receivers cannot verify the signatures of selector %s%s", name, sel, publish)
			continue
		case err != nil:
			c.add(levelError, check, "TXT lookup of %s failed: %s", name, dnsText(err.Error()))
			continue
		case len(txts) > 1:
			c.add(levelWarn, check, "%d TXT records at %s, receivers may use any of them (RFC 6376 §3.6.2.2); keep only the key", len(txts), name)
		}
		// A key record among other TXT records: the first with a p=.
		tags := dkimKeyTags(txts[0])
		for _, t := range txts {
			if tt := dkimKeyTags(t); tt["p"] != "" {
				tags = tt
				break
			}
		}
		if v, ok := tags["v"]; ok && v != "DKIM1" {
			c.add(levelError, check, "the record at %s has v=%s, not DKIM1 (RFC 6376 §3.6.1)%s", name, dnsText(v), publish)
			continue
		}
		p, ok := tags["p"]
		if !ok {
			c.add(levelError, check, "the record at %s has no p= (public key)%s", name, publish)
			continue
		}
		if p == "" {
			c.add(levelError, check, "the record at %s has an empty p=: the key is revoked (RFC 6376 §3.6.1)%s", name, publish)
			continue
		}
		if exp == "" {
			c.add(levelOK, check, "%s has a key record (k=%s); not compared with the signing key, keys did not answer", name, dnsText(keyType(tags)))
			continue
		}
		wt := dkimKeyTags(exp)
		if wt["p"] != p || keyType(wt) != keyType(tags) {
			c.add(levelError, check, "the key at %s is not the one moxd signs with for selector %s; signatures will fail%s", name, sel, publish)
			continue
		}
		c.add(levelOK, check, "%s has the signing key (k=%s)", name, dnsText(keyType(tags)))
	}
}

// dkimKeyTags parses the tag list of a DKIM key record (RFC 6376 §3.2,
// §3.6.1) leniently, for the check only: tag names lower case, values
// without white space (p= ignores it), the first of duplicate tags.
func dkimKeyTags(txt string) map[string]string {
	tags := map[string]string{}
	for spec := range strings.SplitSeq(txt, ";") {
		k, v, ok := strings.Cut(spec, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		if _, dup := tags[k]; dup || k == "" {
			continue
		}
		tags[k] = strings.Join(strings.Fields(v), "")
	}
	return tags
}

// keyType is k= of a key record, "rsa" when absent (RFC 6376 §3.6.1).
func keyType(tags map[string]string) string {
	if k := strings.ToLower(tags["k"]); k != "" {
		return k
	}
	return "rsa"
}

// checkDMARC looks up the DMARC record that applies to the domain, its
// own or its organizational domain's (RFC 7489 §6.6.3).
func (c *dnsChecker) checkDMARC(ctx context.Context) {
	const check = "DMARC"
	// An evaluation without SPF or DKIM results: only the record matters.
	res := dmarc.Verify(ctx, c.sv.out.resolver, dmarc.Args{FromDomain: c.ascii, Random: func() int { return 0 }})
	switch {
	case res.Status == dmarc.StatusTemperror:
		c.add(levelError, check, "lookup failed: %s", dnsText(res.Reason))
		return
	case res.Status == dmarc.StatusPermerror:
		c.add(levelError, check, "the record at _dmarc.%s is not usable: %s", dnsText(res.Domain), dnsText(errText(res.Err)))
		return
	case res.Record == nil:
		c.add(levelWarn, check, `no DMARC record at _dmarc.%s; publish "_dmarc.%s. IN TXT \"v=DMARC1;p=reject;rua=mailto:postmaster@%s\""`, c.ascii, c.ascii, c.ascii)
		return
	}
	where := ""
	if res.Domain != c.ascii {
		where = fmt.Sprintf(" (the record of the organizational domain %s)", dnsText(res.Domain))
	}
	note := ""
	switch res.Policy {
	case "none":
		note = ": receivers only report, they take no action on failing mail"
	case "quarantine":
		note = ": receivers treat failing mail as suspicious"
	case "reject":
		note = ": receivers reject failing mail"
	}
	if len(res.Record.RUA) == 0 {
		note += "; no rua=, so no aggregate reports"
	}
	c.add(levelOK, check, "p=%s%s%s", dnsText(res.Policy), where, note)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// checkMTASTS reports the domain's MTA-STS record and, when there is
// one, whether its policy lets senders deliver to this host (RFC 8461).
func (c *dnsChecker) checkMTASTS(ctx context.Context) {
	const check = "MTA-STS"
	name := "_mta-sts." + c.ascii
	txts, _, err := c.sv.out.resolver.LookupTXT(ctx, name)
	if err != nil && !notFound(err) {
		c.add(levelError, check, "TXT lookup of %s failed: %s", name, dnsText(err.Error()))
		return
	}
	if !slices.ContainsFunc(txts, func(t string) bool { return strings.HasPrefix(t, "v=STSv1") }) {
		c.add(levelInfo, check, "no record at %s (optional: with a policy, senders require TLS to your MX hosts)", name)
		return
	}
	rec, err := mtasts.LookupRecord(ctx, c.sv.out.resolver, c.ascii)
	if err != nil {
		c.add(levelWarn, check, "%s", dnsText(err.Error()))
		return
	}
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	p, err := mtasts.Fetch(fctx, c.st.httpClient(c.sv.out.resolver), c.ascii)
	switch {
	case err != nil:
		c.add(levelWarn, check, "record id=%s, but the policy cannot be fetched: %s", dnsText(rec.ID), dnsText(err.Error()))
	case p.Mode == mtasts.ModeNone:
		c.add(levelInfo, check, "record id=%s, policy mode none (withdrawn)", dnsText(rec.ID))
	case !p.Matches(c.host):
		c.add(levelWarn, check, "record id=%s, policy mode %s does not list this host %s in its mx lines", dnsText(rec.ID), p.Mode, c.host)
	default:
		c.add(levelOK, check, "record id=%s, policy mode %s lists this host", dnsText(rec.ID), p.Mode)
	}
}

// checkTLSRPT reports the domain's TLS reporting record (RFC 8460 §3).
func (c *dnsChecker) checkTLSRPT(ctx context.Context) {
	const check = "TLSRPT"
	name := "_smtp._tls." + c.ascii
	txts, _, err := c.sv.out.resolver.LookupTXT(ctx, name)
	if err != nil && !notFound(err) {
		c.add(levelError, check, "TXT lookup of %s failed: %s", name, dnsText(err.Error()))
		return
	}
	var records []string
	for _, t := range txts {
		// RFC 8460 §3: the record starts with "v=TLSRPTv1".
		if rest, ok := strings.CutPrefix(t, "v=TLSRPTv1"); ok && (rest == "" || strings.HasPrefix(strings.TrimLeft(rest, " \t"), ";")) {
			records = append(records, t)
		}
	}
	switch len(records) {
	case 0:
		c.add(levelInfo, check, "no record at %s (optional: senders then send no TLS failure reports)", name)
	case 1:
		c.add(levelOK, check, "%s", dnsText(records[0]))
	default:
		c.add(levelWarn, check, "%d records at %s: senders send no reports (RFC 8460 §3); keep one", len(records), name)
	}
}
