package queue

// Transports: how a job's recipients leave the host. Direct delivery (and
// socks, which is direct delivery through a SOCKS5 proxy) looks up the
// domain's MX hosts and applies the TLS policy of each host (tlspolicy
// below); smtp, submission and submissions hand everything to one
// configured smarthost. Every transport ends in transact, which sends one
// copy of the data for all recipients of the job and turns the replies
// into outcomes.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/idna"
	"golang.org/x/net/proxy"

	"moxd/internal/config"
	"moxd/internal/dns"
	"moxd/internal/ipc"
	"moxd/internal/mailproto/dane"
	"moxd/internal/mailproto/mtasts"
	"moxd/internal/mailproto/sevenbit"
	"moxd/internal/mailproto/smtpclient"
)

const (
	dialTimeout = 30 * time.Second
	// maxAddrsPerHost bounds the addresses tried per MX host.
	maxAddrsPerHost = 3
	// maxRounds bounds the transactions of one job on one connection:
	// recipients over the server's RCPTMAX, or refused with 452, go in
	// the next one at once (RFC 5321 §4.5.3.1.10).
	maxRounds = 8
)

// tlsMode is the TLS requirement towards one host.
type tlsMode int

const (
	tlsOpportunistic tlsMode = iota // STARTTLS when offered, unverified; plaintext when it fails
	tlsEncrypted                    // TLS required, unverified (DANE with only unusable TLSA records)
	tlsPKIX                         // TLS required, PKIX-verified (MTA-STS, smarthosts)
	tlsDANE                         // TLS required, verified with TLSA records
)

func (t tlsMode) verified() bool { return t == tlsPKIX || t == tlsDANE }

func (t tlsMode) String() string {
	switch t {
	case tlsEncrypted:
		return "tls (unverified)"
	case tlsPKIX:
		return "tls (pkix)"
	case tlsDANE:
		return "tls (dane)"
	}
	return "opportunistic starttls"
}

// hostPolicy is what delivery to one host demands.
type hostPolicy struct {
	mode    tlsMode
	tlsa    []dns.TLSA
	names   []string // names for DANE-TA and PKIX checks
	sni     string   // server name to send; "" for the host name (DANE: the TLSA base domain, RFC 7672 §8.1)
	why     string   // where the policy came from
	noCheck bool     // TLS-Required: No: verification failures are ignored
}

// attemptError is a failed attempt at one host or the whole job.
type attemptError struct {
	permanent bool
	status    string
	host      string
	msg       string
}

func (e *attemptError) Error() string { return e.msg }

func tempErr(host, status, format string, args ...any) *attemptError {
	return &attemptError{host: host, status: status, msg: fmt.Sprintf(format, args...)}
}

func permErr(host, status, format string, args ...any) *attemptError {
	return &attemptError{permanent: true, host: host, status: status, msg: fmt.Sprintf(format, args...)}
}

// failAll gives every recipient the same outcome for err.
func failAll(rcpts []*Recipient, err error, transport string) []outcome {
	o := outcome{Error: err.Error(), Transport: transport}
	var ae *attemptError
	if errors.As(err, &ae) {
		o.Permanent, o.Status, o.Host = ae.permanent, ae.status, ae.host
	}
	outs := make([]outcome, len(rcpts))
	for i, rc := range rcpts {
		outs[i] = o
		outs[i].Seq = rc.Seq
	}
	return outs
}

// deliverRemote delivers rcpts at domain through the transport the routes
// choose.
func (d *deliverer) deliverRemote(ctx context.Context, m *Message, rcpts []*Recipient, domain string) []outcome {
	st := d.sv.settings.Load()
	_, fromDomain, _ := parseAddress(m.MailFrom)
	attempts := rcpts[0].Attempts
	for _, rc := range rcpts {
		attempts = min(attempts, rc.Attempts)
	}
	tr, why, err := st.routes.choose(routeInput{Account: m.Account, FromDomain: fromDomain, ToDomain: domain, Attempts: attempts, Override: m.Transport})
	if err != nil {
		return failAll(rcpts, tempErr("", "4.3.5", "%v", err), "")
	}
	d.log.Debug("route chosen", "msg", m.ID, "domain", domain, "transport", tr.Name, "kind", tr.Kind, "route", why)
	key := tr.Name + "|" + tr.Kind
	if tr.Kind == config.TransportDirect || tr.Kind == config.TransportSocks {
		key += "|" + domain
	}
	release, err := d.acquire(ctx, key)
	if err != nil {
		outs := failAll(rcpts, err, tr.Name)
		for i := range outs {
			outs[i].NotAttempt = true
		}
		return outs
	}
	defer release()
	switch tr.Kind {
	case config.TransportDirect, config.TransportSocks:
		return d.deliverDirect(ctx, m, rcpts, domain, tr, key)
	default:
		return d.deliverSmarthost(ctx, m, rcpts, tr, key)
	}
}

// mxHost is one host to try.
type mxHost struct {
	name string     // ASCII host name, "" for an IP literal
	ip   netip.Addr // set for an IP literal
}

// lookupHosts returns the hosts of domain in the order to try (RFC 5321
// §5.1) and whether the MX answer was DNSSEC-authentic.
func (d *deliverer) lookupHosts(ctx context.Context, domain string) ([]mxHost, bool, error) {
	if strings.HasPrefix(domain, "[") && strings.HasSuffix(domain, "]") {
		lit := strings.TrimPrefix(domain[1:len(domain)-1], "IPv6:")
		ip, err := netip.ParseAddr(lit)
		if err != nil {
			return nil, false, permErr("", "5.1.2", "address literal %s is not an IP address", domain)
		}
		return []mxHost{{ip: ip}}, false, nil
	}
	ascii, err := idna.Lookup.ToASCII(domain)
	if err != nil {
		return nil, false, permErr("", "5.1.2", "domain %q is not a valid domain name: %v", domain, err)
	}
	mxs, res, err := d.resolver.LookupMX(ctx, ascii)
	var dnsErr *net.DNSError
	switch {
	case err == nil:
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound && strings.Contains(dnsErr.Err, "NXDOMAIN"):
		return nil, res.Authentic, permErr("", "5.1.2", "domain %s does not exist (NXDOMAIN)", ascii)
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		// RFC 5321 §5.1: no MX records: the domain itself is the host.
		return []mxHost{{name: ascii}}, res.Authentic, nil
	default:
		return nil, false, tempErr("", "4.4.3", "MX lookup for %s: %v", ascii, err)
	}
	if len(mxs) == 1 && mxs[0].Host == dns.NullMX {
		// RFC 7505 §3: a null MX says the domain accepts no mail.
		return nil, res.Authentic, permErr("", "5.1.10", "domain %s accepts no mail (null MX record, RFC 7505)", ascii)
	}
	// Sorted by preference; hosts of equal preference in random order
	// (RFC 5321 §5.1).
	slices.SortStableFunc(mxs, func(a, b *net.MX) int { return int(a.Pref) - int(b.Pref) })
	for i := 0; i < len(mxs); {
		j := i
		for j < len(mxs) && mxs[j].Pref == mxs[i].Pref {
			j++
		}
		rand.Shuffle(j-i, func(a, b int) { mxs[i+a], mxs[i+b] = mxs[i+b], mxs[i+a] })
		i = j
	}
	var hosts []mxHost
	for _, mx := range mxs {
		if mx.Host == dns.NullMX || mx.Host == "" {
			continue
		}
		hosts = append(hosts, mxHost{name: strings.ToLower(strings.TrimSuffix(mx.Host, "."))})
	}
	if len(hosts) == 0 {
		return nil, res.Authentic, permErr("", "5.1.10", "domain %s has no usable MX host", ascii)
	}
	return hosts, res.Authentic, nil
}

// onPooled delivers on an idle session of key, if there is one; nil
// means there was none or it failed before any answer.
func (d *deliverer) onPooled(ctx context.Context, key string, m *Message, rcpts []*Recipient, tr *config.QueueTransport) []outcome {
	pc := d.pool.get(key, m.RequireTLS == RequireTLSYes)
	if pc == nil {
		return nil
	}
	outs, reusable := d.transact(ctx, pc.c, m, rcpts, pc.host, tr, pc.policy)
	if reusable {
		d.pool.put(key, pc)
	} else {
		pc.c.Close()
	}
	return outs
}

// deliverDirect delivers to the MX hosts of domain, in order, until one
// gives definite answers.
func (d *deliverer) deliverDirect(ctx context.Context, m *Message, rcpts []*Recipient, domain string, tr *config.QueueTransport, key string) []outcome {
	st := d.sv.settings.Load()
	if m.RequireTLS == RequireTLSNo {
		// Sessions made without the domain's TLS policy (RFC 8689 §5)
		// are pooled apart: other messages must not use them.
		key += "|tls-required-no"
	}
	if outs := d.onPooled(ctx, key, m, rcpts, tr); outs != nil {
		return outs
	}
	hosts, mxAuthentic, err := d.lookupHosts(ctx, domain)
	if err != nil {
		return failAll(rcpts, err, tr.Name)
	}
	var policy *mtasts.Policy
	strict := false
	if st.delivery.MTASTS && m.RequireTLS != RequireTLSNo && hosts[0].name != "" {
		policy, strict, err = d.mtasts.get(ctx, domain, d.resolver, st.httpClient(d.resolver))
		if err != nil {
			d.log.Info("mta-sts policy not available; requiring verified tls", "domain", domain, "err", err)
			d.tlsResult(domain, hostPolicy{why: "mta-sts"}, "", tlsResultSTSPolicyFetch, err.Error())
		}
	}
	port := 25
	if st.delivery.Port != 0 {
		port = st.delivery.Port
	}
	var last *attemptError
	for _, h := range hosts {
		if ctx.Err() != nil {
			break
		}
		pol, err := d.hostPolicy(ctx, m, h, port, mxAuthentic, policy, strict)
		if err != nil {
			last = asAttemptError(err, h.display())
			if policy != nil {
				d.tlsResult(domain, hostPolicy{why: "mta-sts"}, h.display(), tlsResultValidationFailure, err.Error())
			} else {
				d.tlsResult(domain, hostPolicy{why: "dane"}, h.display(), tlsResultDNSSECInvalid, err.Error())
			}
			continue
		}
		outs, err := d.tryHost(ctx, m, rcpts, h, port, pol, tr, key)
		if err == nil {
			return outs
		}
		last = asAttemptError(err, h.display())
		d.log.Debug("host failed", "msg", m.ID, "host", h.display(), "err", err)
	}
	if last == nil {
		last = tempErr("", "4.4.1", "no host of %s could be tried", domain)
	}
	return failAll(rcpts, last, tr.Name)
}

func (h mxHost) display() string {
	if h.name != "" {
		return h.name
	}
	return h.ip.String()
}

func asAttemptError(err error, host string) *attemptError {
	var ae *attemptError
	if errors.As(err, &ae) {
		if ae.host == "" {
			ae.host = host
		}
		return ae
	}
	return tempErr(host, "4.4.1", "%s: %v", host, err)
}

// hostPolicy decides the TLS policy towards host h: DANE when the MX and
// the host's TLSA records are DNSSEC-authentic (RFC 7672), else MTA-STS
// (RFC 8461), else opportunistic STARTTLS.
func (d *deliverer) hostPolicy(ctx context.Context, m *Message, h mxHost, port int, mxAuthentic bool, policy *mtasts.Policy, strict bool) (hostPolicy, error) {
	if m.RequireTLS == RequireTLSNo {
		// RFC 8689 §5: TLS-Required: No: deliver even when the
		// certificate does not verify.
		return hostPolicy{mode: tlsOpportunistic, noCheck: true, why: "TLS-Required: No"}, nil
	}
	if h.name != "" && mxAuthentic {
		r, err := dane.Lookup(ctx, d.resolver, h.name, port, mxAuthentic)
		if err != nil {
			// RFC 7672 §2.2: a failed lookup in a signed zone never
			// downgrades: this host is deferred.
			return hostPolicy{}, tempErr(h.name, "4.7.5", "TLSA lookup for %s failed (DNSSEC-signed, so delivery waits instead of going without DANE): %v", h.name, err)
		}
		switch {
		case len(r.Records) > 0:
			names := []string{h.name}
			if r.Base != "" && r.Base != h.name {
				names = append(names, r.Base)
			}
			return hostPolicy{mode: tlsDANE, tlsa: r.Records, names: names, sni: r.Base, why: "dane"}, nil
		case r.AllUnusable:
			return hostPolicy{mode: tlsEncrypted, why: "dane (no usable TLSA record)"}, nil
		}
	}
	if policy != nil && policy.Mode == mtasts.ModeEnforce {
		if h.name == "" || !policy.Matches(h.name) {
			return hostPolicy{}, tempErr(h.display(), "4.7.5", "MX host %s is not allowed by the MTA-STS policy of the domain (mx: %s)", h.display(), strings.Join(policy.MX, ", "))
		}
		return hostPolicy{mode: tlsPKIX, names: []string{h.name}, why: "mta-sts enforce"}, nil
	}
	if strict && h.name != "" {
		return hostPolicy{mode: tlsPKIX, names: []string{h.name}, why: "mta-sts (policy could not be fetched)"}, nil
	}
	return hostPolicy{mode: tlsOpportunistic, why: "opportunistic"}, nil
}

// tryHost delivers through one host, trying its addresses in turn.
func (d *deliverer) tryHost(ctx context.Context, m *Message, rcpts []*Recipient, h mxHost, port int, pol hostPolicy, tr *config.QueueTransport, key string) ([]outcome, error) {
	st := d.sv.settings.Load()
	if m.RequireTLS == RequireTLSYes && !pol.mode.verified() {
		// RFC 8689 §4.2.1: only over verified TLS (DANE or MTA-STS).
		return nil, permErr(h.display(), "5.7.30", "REQUIRETLS: %s has neither DANE nor an MTA-STS policy in enforce mode, so TLS cannot be verified", h.display())
	}
	var ips []netip.Addr
	if h.name == "" {
		ips = []netip.Addr{h.ip}
	} else if tr.Kind != config.TransportSocks {
		l, _, err := d.resolver.LookupIP(ctx, "ip", h.name)
		if err != nil {
			return nil, tempErr(h.name, "4.4.4", "address lookup for %s: %v", h.name, err)
		}
		for _, ip := range l {
			if a, ok := netip.AddrFromSlice(ip); ok {
				ips = append(ips, a.Unmap())
			}
		}
		if len(ips) > maxAddrsPerHost {
			ips = ips[:maxAddrsPerHost]
		}
	}
	ehlo := d.sv.hostname
	if tr.Kind == config.TransportSocks && tr.RemoteHostname != "" {
		ehlo = tr.RemoteHostname
	}
	var targets []string
	if tr.Kind == config.TransportSocks {
		// The proxy resolves the name.
		targets = []string{net.JoinHostPort(h.display(), strconv.Itoa(port))}
	} else {
		for _, ip := range ips {
			targets = append(targets, netip.AddrPortFrom(ip, uint16(port)).String())
		}
	}
	var last error
	for _, addr := range targets {
		c, pol2, err := d.connect(ctx, addr, h.display(), ehlo, pol, tr, st)
		if _, dom, _ := parseAddress(rcpts[0].Address); err != nil {
			var ae *attemptError
			if errors.As(err, &ae) && ae.status == "4.7.5" {
				result := tlsResultValidationFailure
				if strings.Contains(ae.msg, "does not offer STARTTLS") {
					result = tlsResultStartTLSNotSupported
				} else if tlsPolicyType(pol) == tlsPolicySTS {
					result = tlsResultSTSWebPKIInvalid
				}
				d.tlsResult(dom, pol, h.display(), result, ae.msg)
			}
		} else if _, ok := c.TLS(); ok {
			d.tlsResult(dom, pol2, h.display(), tlsResultSuccess, "")
		} else {
			d.tlsResult(dom, pol2, h.display(), tlsResultStartTLSNotSupported, pol2.why)
		}
		if err != nil {
			last = err
			continue
		}
		outs, reusable := d.transact(ctx, c, m, rcpts, h.display(), tr, pol2)
		if reusable {
			d.pool.put(key, &pooledConn{c: c, host: h.display(), policy: pol2, since: d.now()})
		} else {
			c.Quit(context.WithoutCancel(ctx))
		}
		if outs == nil {
			last = tempErr(h.display(), "4.4.2", "connection to %s failed before the transaction", addr)
			continue
		}
		return outs, nil
	}
	if last == nil {
		last = tempErr(h.display(), "4.4.4", "no address for %s", h.display())
	}
	return nil, last
}

// dialer returns the dialer of a transport: from its source IPs (or
// [queue] source_ips), through its SOCKS5 proxy for socks.
func (d *deliverer) dialer(tr *config.QueueTransport, st *settings, addr string) (proxy.ContextDialer, error) {
	nd := &net.Dialer{Timeout: dialTimeout}
	srcs := tr.SourceIPs
	if len(srcs) == 0 && tr.Kind == config.TransportDirect {
		srcs = st.delivery.SourceIPs
	}
	if len(srcs) > 0 {
		target, err := netip.ParseAddrPort(addr)
		for _, s := range srcs {
			ip, perr := netip.ParseAddr(s)
			if perr == nil && (err != nil || ip.Is4() == target.Addr().Is4()) {
				nd.LocalAddr = &net.TCPAddr{IP: ip.AsSlice()}
				break
			}
		}
	}
	if tr.Kind != config.TransportSocks {
		return nd, nil
	}
	p, err := proxy.SOCKS5("tcp", tr.SocksAddress, nil, nd)
	if err != nil {
		return nil, fmt.Errorf("socks proxy %s: %w", tr.SocksAddress, err)
	}
	cd, ok := p.(proxy.ContextDialer)
	if !ok {
		return nil, fmt.Errorf("socks proxy %s: no context dialer", tr.SocksAddress)
	}
	return cd, nil
}

// connect opens an SMTP session to addr (host for names in TLS) and
// applies the host policy to STARTTLS. An opportunistic TLS failure
// reconnects in plaintext once (RFC 3207 §4.1 leaves that to the client).
func (d *deliverer) connect(ctx context.Context, addr, host, ehlo string, pol hostPolicy, tr *config.QueueTransport, st *settings) (*smtpclient.Client, hostPolicy, error) {
	c, err := d.dial(ctx, addr, ehlo, tr, st, nil)
	if err != nil {
		return nil, pol, tempErr(host, "4.4.1", "connect to %s (%s): %v", host, addr, err)
	}
	if !c.Extensions().StartTLS {
		if pol.mode != tlsOpportunistic {
			c.Quit(ctx)
			return nil, pol, tempErr(host, "4.7.5", "%s does not offer STARTTLS, which the %s policy requires", host, pol.why)
		}
		return c, pol, nil
	}
	cfg := d.tlsConfig(host, pol, st)
	err = c.StartTLS(ctx, cfg)
	if err == nil {
		return c, pol, nil
	}
	c.Close()
	if pol.mode != tlsOpportunistic {
		return nil, pol, tempErr(host, "4.7.5", "TLS with %s (%s policy): %v", host, pol.why, err)
	}
	var se *smtpclient.Error
	if errors.As(err, &se) && se.Reply != nil && se.Reply.Code == 421 {
		return nil, pol, tempErr(host, "4.4.2", "STARTTLS at %s: %v", host, err)
	}
	d.log.Info("opportunistic TLS failed; delivering without TLS", "host", host, "err", err)
	c, err = d.dial(ctx, addr, ehlo, tr, st, nil)
	if err != nil {
		return nil, pol, tempErr(host, "4.4.1", "reconnect to %s (%s) without TLS: %v", host, addr, err)
	}
	pol.why = "opportunistic, plaintext after a failed TLS handshake"
	return c, pol, nil
}

// dial connects to addr and reads the greeting and EHLO; with implicit
// TLS when tlsCfg is set.
func (d *deliverer) dial(ctx context.Context, addr, ehlo string, tr *config.QueueTransport, st *settings, tlsCfg *tls.Config) (*smtpclient.Client, error) {
	dl, err := d.dialer(tr, st, addr)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	conn, err := dl.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		tc := tls.Client(conn, tlsCfg)
		if err := tc.HandshakeContext(dctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("tls: %w", err)
		}
		conn = tc
	}
	c, err := smtpclient.New(ctx, conn, smtpclient.Config{Hostname: ehlo, Log: d.log})
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// tlsConfig is the client TLS configuration for a policy.
func (d *deliverer) tlsConfig(host string, pol hostPolicy, st *settings) *tls.Config {
	base := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12, RootCAs: st.roots}
	switch {
	case pol.noCheck || pol.mode == tlsOpportunistic || pol.mode == tlsEncrypted:
		base.InsecureSkipVerify = true
		return base
	case pol.mode == tlsDANE:
		sni := pol.sni
		if sni == "" {
			sni = host
		}
		return dane.Config(base, sni, pol.tlsa, pol.names, d.now)
	}
	return base
}

// deliverSmarthost delivers through the transport's configured host.
func (d *deliverer) deliverSmarthost(ctx context.Context, m *Message, rcpts []*Recipient, tr *config.QueueTransport, key string) []outcome {
	st := d.sv.settings.Load()
	if outs := d.onPooled(ctx, key, m, rcpts, tr); outs != nil {
		return outs
	}
	host := tr.Host
	port := tr.Port
	if port == 0 {
		port = map[string]int{config.TransportSMTP: 25, config.TransportSubmission: 587, config.TransportSubmissions: 465}[tr.Kind]
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	if ap, err := netip.ParseAddr(host); err != nil {
		// A name: resolve with moxd's resolver, never the system's.
		l, _, err := d.resolver.LookupIP(ctx, "ip", host)
		if err != nil || len(l) == 0 {
			return failAll(rcpts, tempErr(host, "4.4.4", "address of transport %s host %s: %v", tr.Name, host, err), tr.Name)
		}
		addr = net.JoinHostPort(l[0].String(), strconv.Itoa(port))
	} else {
		addr = netip.AddrPortFrom(ap, uint16(port)).String()
	}
	pol := hostPolicy{mode: tlsPKIX, names: []string{host}, why: "transport " + tr.Name}
	if tr.NoTLSVerify {
		pol.noCheck = true
	}
	cfg := d.tlsConfig(host, pol, st)
	var c *smtpclient.Client
	var err error
	switch tr.Kind {
	case config.TransportSubmissions:
		c, err = d.dial(ctx, addr, d.sv.hostname, tr, st, cfg)
	default:
		c, err = d.dial(ctx, addr, d.sv.hostname, tr, st, nil)
		if err == nil {
			switch {
			case c.Extensions().StartTLS:
				err = c.StartTLS(ctx, cfg)
			case tr.Kind == config.TransportSubmission:
				err = fmt.Errorf("%s does not offer STARTTLS, required for transport kind submission", host)
			default:
				pol.mode = tlsOpportunistic
			}
		}
	}
	if err != nil {
		if c != nil {
			c.Close()
		}
		return failAll(rcpts, tempErr(host, "4.4.1", "transport %s (%s): %v", tr.Name, addr, err), tr.Name)
	}
	if tr.Username != "" {
		if err := c.Auth(ctx, tr.Mechanisms, tr.Username, tr.Password); err != nil {
			c.Close()
			// Credentials are a configuration problem: keep the
			// message queued while the admin fixes them.
			return failAll(rcpts, tempErr(host, "4.7.8", "authentication to transport %s at %s: %v; check username and password_file of the transport", tr.Name, host, err), tr.Name)
		}
	}
	if m.RequireTLS == RequireTLSYes && (pol.noCheck || !pol.mode.verified()) {
		c.Quit(ctx)
		return failAll(rcpts, permErr(host, "5.7.30", "REQUIRETLS: transport %s does not verify the TLS certificate of %s", tr.Name, host), tr.Name)
	}
	outs, reusable := d.transact(ctx, c, m, rcpts, host, tr, pol)
	if reusable {
		d.pool.put(key, &pooledConn{c: c, host: host, policy: pol, since: d.now()})
	} else {
		c.Quit(context.WithoutCancel(ctx))
	}
	if outs == nil {
		return failAll(rcpts, tempErr(host, "4.4.2", "connection to transport %s lost before the transaction", tr.Name), tr.Name)
	}
	return outs
}

// transact runs the mail transactions for rcpts on c and returns an
// outcome per recipient (nil when the connection failed before any
// answer, so the caller may try elsewhere) and whether c can be reused.
func (d *deliverer) transact(ctx context.Context, c *smtpclient.Client, m *Message, rcpts []*Recipient, host string, tr *config.QueueTransport, pol hostPolicy) ([]outcome, bool) {
	ext := c.Extensions()
	_, verifiedTLS := c.TLS()
	verifiedTLS = verifiedTLS && pol.mode.verified() && !pol.noCheck
	if m.Account != "" && tr.Kind != config.TransportSubmission && tr.Kind != config.TransportSubmissions {
		_, dom, _ := parseAddress(rcpts[0].Address)
		_, tlsOn := c.TLS()
		d.q.recordTLSSeen(m.Account, dom, TLSSeen{STARTTLS: ext.StartTLS || tlsOn, RequireTLS: ext.RequireTLS, Updated: d.now()})
	}
	if m.RequireTLS == RequireTLSYes {
		if !verifiedTLS {
			return failAll(rcpts, permErr(host, "5.7.30", "REQUIRETLS: the TLS connection to %s is not verified", host), tr.Name), false
		}
		if !ext.RequireTLS {
			return failAll(rcpts, permErr(host, "5.7.30", "REQUIRETLS: %s does not announce REQUIRETLS (RFC 8689)", host), tr.Name), false
		}
	}
	if m.SMTPUTF8 && !ext.SMTPUTF8 {
		return failAll(rcpts, permErr(host, "5.6.7", "the message needs SMTPUTF8 (internationalized addresses or headers) and %s does not support it", host), tr.Name), true
	}
	data, size, cleanup, err := d.messageData(ctx, m, ext.EightBitMIME)
	if err != nil {
		var ae *attemptError
		if errors.As(err, &ae) {
			ae.host = host
			return failAll(rcpts, ae, tr.Name), true
		}
		return failAll(rcpts, tempErr(host, "4.3.0", "read queued message: %v", err), tr.Name), true
	}
	defer cleanup()
	env := smtpclient.Envelope{
		MailFrom:     d.sv.envelopeFrom(m),
		EightBitMIME: m.EightBit && ext.EightBitMIME,
		SMTPUTF8:     m.SMTPUTF8,
		RequireTLS:   m.RequireTLS == RequireTLSYes,
		Size:         size,
	}
	if ext.DSN {
		switch m.Ret {
		case ipc.RetFull:
			env.Ret = "FULL"
		case ipc.RetHdrs:
			env.Ret = "HDRS"
		}
		env.EnvID = m.EnvID
	}
	tlsDesc := "plaintext (" + pol.why + ")"
	if cs, ok := c.TLS(); ok {
		tlsDesc = fmt.Sprintf("%s %s, %s policy", tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite), pol.why)
		if pol.noCheck {
			tlsDesc += ", unverified"
		}
	}
	outs := make([]outcome, 0, len(rcpts))
	pending := rcpts
	for round := 0; round < maxRounds && len(pending) > 0; round++ {
		env.Recipients = env.Recipients[:0]
		for _, rc := range pending {
			r := smtpclient.Recipient{Addr: rc.Address}
			if ext.DSN {
				r.Notify = notifyString(rc.Notify)
				r.ORcpt = rc.ORcpt
			}
			env.Recipients = append(env.Recipients, r)
		}
		results, err := c.Deliver(ctx, env, data, size)
		if round == 0 && c.Broken() && ctx.Err() == nil && unanswered(err) {
			// The connection failed before the server answered MAIL (a
			// pooled session the server had closed, for example): no
			// data went out, so the caller tries a new connection or
			// the next host within this attempt.
			return nil, false
		}
		if err != nil && len(results) != len(pending) {
			return append(outs, failAll(pending, tempErr(host, "4.4.2", "%v", err), tr.Name)...), false
		}
		var again []*Recipient
		progress := false
		for i, res := range results {
			rc := pending[i]
			if !res.Tried || (res.Reply.Code == 452 && !res.Accepted && err == nil) {
				// RCPTMAX, or 452 "too many recipients" (RFC 5321
				// §4.5.3.1.10): at once, in the next transaction.
				again = append(again, rc)
				continue
			}
			progress = true
			o := outcome{Seq: rc.Seq, Host: host, Transport: tr.Name, Error: res.Reply.String(), Status: res.Reply.Enhanced, TLS: tlsDesc}
			switch {
			case res.Accepted:
				o.Delivered = true
				o.Relayed = !ext.DSN
			case res.Reply.Permanent():
				o.Permanent = true
			}
			if err != nil && !res.Accepted && res.Reply.Code == 0 {
				o.Error = err.Error()
			}
			outs = append(outs, o)
		}
		if err != nil || c.Broken() {
			return append(outs, failAll(again, tempErr(host, "4.4.2", "connection to %s ended", host), tr.Name)...), false
		}
		if !progress && round > 0 {
			return append(outs, failAll(again, tempErr(host, "4.5.3", "%s accepted none of the remaining recipients", host), tr.Name)...), true
		}
		pending = again
	}
	if len(pending) > 0 {
		outs = append(outs, failAll(pending, tempErr(host, "4.5.3", "too many transactions needed for the recipients at %s", host), tr.Name)...)
	}
	return outs, !c.Broken()
}

// unanswered says whether err from Deliver is a failure of the connection
// before any reply to MAIL: the message data was not sent.
func unanswered(err error) bool {
	var se *smtpclient.Error
	return errors.As(err, &se) && se.Reply == nil && se.Err != nil && se.Stage == smtpclient.StageMail
}

func notifyString(n uint8) string {
	if n == 0 {
		return ""
	}
	if n&ipc.NotifyNever != 0 {
		return "NEVER"
	}
	var l []string
	for _, b := range []struct {
		bit  uint8
		name string
	}{{ipc.NotifySuccess, "SUCCESS"}, {ipc.NotifyFailure, "FAILURE"}, {ipc.NotifyDelay, "DELAY"}} {
		if n&b.bit != 0 {
			l = append(l, b.name)
		}
	}
	return strings.Join(l, ",")
}

// messageData returns the bytes to send: the message's prepended header
// lines and its file, converted to 7 bits for a server without 8BITMIME
// (RFC 6152 §3).
//
// The DKIM signatures made at submission cover the 8-bit body, so a
// converted message is signed again, for the same domain, over what is
// sent.
func (d *deliverer) messageData(ctx context.Context, m *Message, server8bit bool) (io.ReaderAt, int64, func(), error) {
	f, err := os.Open(d.q.filePath(m.FileID))
	if err != nil {
		return nil, 0, nil, err
	}
	data := newPrefixedFile(m.Prepend, f, m.Size)
	size := int64(len(m.Prepend)) + m.Size
	if !m.EightBit || server8bit {
		return data, size, func() { f.Close() }, nil
	}
	need, err := sevenbit.Needed(io.NewSectionReader(data, 0, size))
	if err != nil {
		f.Close()
		return nil, 0, nil, err
	}
	if !need {
		return data, size, func() { f.Close() }, nil
	}
	tmp, err := createTemp(d.q.tmpDir, "7bit")
	if err != nil {
		f.Close()
		return nil, 0, nil, err
	}
	cleanup := func() { f.Close(); tmp.Close(); os.Remove(tmp.Name()) }
	err = sevenbit.Convert(tmp, io.NewSectionReader(f, 0, m.Size), 2*m.Size+4096)
	switch {
	case errors.Is(err, sevenbit.ErrHeader8Bit), errors.Is(err, sevenbit.ErrBinary), errors.Is(err, sevenbit.ErrLongHeader):
		cleanup()
		return nil, 0, nil, permErr("", "5.6.3", "the server does not support 8BITMIME and the message cannot be converted to 7 bits: %v", err)
	case err != nil:
		cleanup()
		return nil, 0, nil, err
	}
	fi, err := tmp.Stat()
	if err != nil {
		cleanup()
		return nil, 0, nil, err
	}
	prepend := ""
	if dom := dkimDomainOf(m.Prepend); dom != "" {
		if prepend, err = d.sv.dkimSign(ctx, dom, tmp.Name()); err != nil {
			cleanup()
			return nil, 0, nil, fmt.Errorf("DKIM signature of the 7-bit form: %w", err)
		}
	}
	return newPrefixedFile(prepend, tmp, fi.Size()), int64(len(prepend)) + fi.Size(), cleanup, nil
}

// dkimDomainOf returns the d= domain of the first DKIM-Signature field in
// prepend, "" when there is none.
func dkimDomainOf(prepend string) string {
	for _, tag := range strings.Split(strings.NewReplacer("\r\n", "", "\t", "", " ", "").Replace(prepend), ";") {
		if v, ok := strings.CutPrefix(tag, "d="); ok {
			return v
		}
	}
	return ""
}

// prefixedFile reads prefix followed by the first size bytes of f.
type prefixedFile struct {
	prefix string
	f      io.ReaderAt
	size   int64
}

func newPrefixedFile(prefix string, f io.ReaderAt, size int64) *prefixedFile {
	return &prefixedFile{prefix, f, size}
}

func (p *prefixedFile) ReadAt(b []byte, off int64) (int, error) {
	n := 0
	if off < int64(len(p.prefix)) {
		n = copy(b, p.prefix[off:])
		if n == len(b) {
			return n, nil
		}
		off += int64(n)
	}
	fo := off - int64(len(p.prefix))
	if fo >= p.size {
		return n, io.EOF
	}
	rest := b[n:]
	if int64(len(rest)) > p.size-fo {
		rest = rest[:p.size-fo]
	}
	m, err := p.f.ReadAt(rest, fo)
	n += m
	if err == nil && n < len(b) {
		err = io.EOF
	}
	return n, err
}

// rootPool is the system roots plus the configured extra CA certificates.
func rootPool(extraPEM string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if extraPEM != "" && !pool.AppendCertsFromPEM([]byte(extraPEM)) {
		return nil, errors.New("queue.ca_file has no usable certificate")
	}
	return pool, nil
}
