package config

// Values derived from validated configuration files, in the form the role
// slices (slices.go) carry them. Master builds the slices from these; the
// conversions live here so that the file format and its meaning stay in
// one package.

import (
	"math"
	"slices"
	"strings"
)

// MaxMessageBytes returns smtp.max_message_size in bytes.
func (s *Static) MaxMessageBytes() int64 {
	n, err := ParseSize(s.SMTP.MaxMessageSize)
	if err != nil {
		return 0 // Only for a Static that did not pass validation.
	}
	return n
}

// DiskReserveBytes returns store.disk_reserve in bytes, 0 for no check.
func (s *Static) DiskReserveBytes() int64 {
	n, err := ParseSize(s.Store.DiskReserve)
	if err != nil {
		return 0
	}
	return n
}

// LimitsSlice returns the [limits] section as network roles get it.
func (s *Static) LimitsSlice() LimitsSlice {
	l := s.Limits
	ls := LimitsSlice{
		TrustedNetworks: append([]string(nil), l.TrustedNetworks...),
		MaxAuthFailures: l.MaxAuthFailures,
	}
	copy(ls.ConnectionsPerMinute[:], l.ConnectionsPerMinute)
	copy(ls.ConcurrentConnections[:], l.ConcurrentConnections)
	// Validated, so the durations parse.
	ls.AuthFailureDelay, _ = parseDelay(l.AuthFailureDelay)
	ls.UnknownRecipientDelay, _ = parseDelay(l.UnknownRecipientDelay)
	return ls
}

// AddrDomains returns the domains with their addressing rules, as store and
// queue resolve addresses with them.
func (d *Dynamic) AddrDomains() []AddrDomain {
	l := make([]AddrDomain, 0, len(d.Domains))
	for _, dom := range d.Domains {
		ad := AddrDomain{
			Name:                   dom.Name,
			LocalpartSeparators:    append([]string(nil), dom.LocalpartSeparators...),
			LocalpartCaseSensitive: dom.LocalpartCaseSensitive,
		}
		for _, a := range dom.Aliases {
			ad.Aliases = append(ad.Aliases, AddrAlias{Address: a.Address, Members: append([]string{}, a.Members...), MembersMaySend: a.MembersMaySend})
		}
		l = append(l, ad)
	}
	return l
}

// AllAddresses returns the account's addresses followed by the addresses
// of its destinations that are not among them (compared as written after
// normalization), as the account receives mail at all of them.
func (a *Account) AllAddresses() []string {
	l := append([]string{}, a.Addresses...)
	for _, dest := range a.Destinations {
		if !containsFold(l, dest.Address) {
			l = append(l, dest.Address)
		}
	}
	return l
}

// DestinationMap returns the account's destinations as address -> mailbox.
func (a *Account) DestinationMap() map[string]string {
	if len(a.Destinations) == 0 {
		return nil
	}
	m := make(map[string]string, len(a.Destinations))
	for _, dest := range a.Destinations {
		m[dest.Address] = dest.Mailbox
	}
	return m
}

func containsFold(l []string, s string) bool {
	for _, x := range l {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// Postmaster returns the name of the account that receives system mail:
// postmaster_account when set; otherwise the account holding postmaster@
// of the configured domain that is hostname or its closest parent, and
// else of the first domain. It returns "" when there is none (no
// domains).
func (d *Dynamic) Postmaster(hostname string) string {
	if d.PostmasterAccount != "" {
		if i := d.FindAccount(d.PostmasterAccount); i >= 0 {
			return d.Accounts[i].Name
		}
		return ""
	}
	for name := strings.ToLower(hostname); name != ""; {
		if d.FindDomain(name) >= 0 {
			if a, _, ok := d.AddressOwner("postmaster@" + name); ok {
				return d.Accounts[a].Name
			}
		}
		_, parent, ok := strings.Cut(name, ".")
		if !ok || !strings.Contains(parent, ".") {
			break // Never a top-level domain.
		}
		name = parent
	}
	if len(d.Domains) == 0 {
		return ""
	}
	if a, _, ok := d.AddressOwner("postmaster@" + d.Domains[0].Name); ok {
		return d.Accounts[a].Name
	}
	return ""
}

// QueueDelivery returns the [queue] section as moxd-queue gets it, with the
// CA certificates of queue.ca_file that Load read.
func (s *Static) QueueDelivery() QueueDelivery {
	q := s.Queue
	// Validated, so the durations parse.
	firstRetry, _ := parseDuration(q.FirstRetry, minFirstRetry, maxFirstRetry, "")
	keep, _ := parseDuration(q.Keep, minKeep, maxKeep, "")
	return QueueDelivery{
		MaxAttempts:            q.MaxAttempts,
		FirstRetry:             firstRetry,
		DelayedDSNAfter:        q.DelayedDSNAfter,
		Keep:                   keep,
		Concurrency:            q.Concurrency,
		DestinationConcurrency: q.DestinationConcurrency,
		DestinationRate:        q.DestinationRate,
		SourceIPs:              slices.Clone(q.SourceIPs),
		MTASTS:                 q.MTASTS,
		TestCA:                 q.caPEM,
		Port:                   q.Port,
		WebhookAllowPrivate:    q.WebhookAllowPrivate,
	}
}

// QueueWebhooks returns the account's webhooks as moxd-queue gets them.
func (a *Account) QueueWebhooks() []QueueWebhook {
	var l []QueueWebhook
	for _, h := range a.Webhooks {
		l = append(l, QueueWebhook{Kind: h.Kind, URL: h.URL, Authorization: h.Authorization, Events: slices.Clone(h.Events)})
	}
	return l
}

// HasIncomingWebhook reports whether the account has an incoming
// [[account.webhook]].
func (a *Account) HasIncomingWebhook() bool {
	for _, h := range a.Webhooks {
		if h.Kind == "incoming" {
			return true
		}
	}
	return false
}

// FindTransport returns the index of the [[transport]] named name, or -1.
func (s *Static) FindTransport(name string) int {
	return slices.IndexFunc(s.Transports, func(t Transport) bool { return t.Name == name })
}

// PortOrDefault returns the port of a smarthost transport: port, or when
// it is 0, the default of the kind (25, 587 or 465). It is 0 for the kinds
// without a smarthost (direct, socks).
func (t *Transport) PortOrDefault() int {
	if !slices.Contains(smarthostKinds, t.Kind) {
		return 0
	}
	if t.Port != 0 {
		return t.Port
	}
	return defaultTransportPort(t.Kind)
}

// QueueTransports returns the [[transport]] sections as moxd-queue gets
// them, with the passwords that Load read from password_file.
func (s *Static) QueueTransports() []QueueTransport {
	var l []QueueTransport
	for _, t := range s.Transports {
		qt := QueueTransport{
			Name:           t.Name,
			Kind:           t.Kind,
			Host:           t.Host,
			Port:           t.PortOrDefault(),
			Username:       t.Username,
			Mechanisms:     slices.Clone(t.Mechanisms),
			NoTLSVerify:    t.NoTLSVerify,
			SourceIPs:      slices.Clone(t.SourceIPs),
			SocksAddress:   t.SocksAddress,
			RemoteIPs:      slices.Clone(t.RemoteIPs),
			RemoteHostname: t.RemoteHostname,
		}
		if t.password != nil {
			qt.Password = *t.password
		}
		l = append(l, qt)
	}
	return l
}

// queueRoutes returns routes as moxd-queue gets them; nil for none.
func queueRoutes(routes []Route) []QueueRoute {
	var l []QueueRoute
	for _, r := range routes {
		l = append(l, QueueRoute{
			FromDomains:     slices.Clone(r.FromDomains),
			ToDomains:       slices.Clone(r.ToDomains),
			MinimumAttempts: r.MinimumAttempts,
			Transport:       r.Transport,
		})
	}
	return l
}

// QueueRoutes returns the global routes ([[route]]).
func (d *Dynamic) QueueRoutes() []QueueRoute {
	return queueRoutes(d.Routes)
}

// QueueRoutes returns the account's routes ([[account.route]]).
func (a *Account) QueueRoutes() []QueueRoute {
	return queueRoutes(a.Routes)
}

// DomainRoutes returns the routes of each domain that has any
// ([[domain.route]]), by domain name; nil when none has.
func (d *Dynamic) DomainRoutes() map[string][]QueueRoute {
	var m map[string][]QueueRoute
	for _, dom := range d.Domains {
		if len(dom.Routes) == 0 {
			continue
		}
		if m == nil {
			m = map[string][]QueueRoute{}
		}
		m[dom.Name] = queueRoutes(dom.Routes)
	}
	return m
}

// QueueDKIM returns the DKIM selectors of each domain that has any
// ([[domain.dkim]]), by domain name, as moxd-queue signs with them (keys
// holds the keys); nil when no domain has any.
func (d *Dynamic) QueueDKIM() map[string][]QueueDKIM {
	var m map[string][]QueueDKIM
	for _, dom := range d.Domains {
		if len(dom.DKIM) == 0 {
			continue
		}
		if m == nil {
			m = map[string][]QueueDKIM{}
		}
		for _, sel := range dom.DKIM {
			m[dom.Name] = append(m[dom.Name], QueueDKIM{Selector: sel.Selector, Algorithm: sel.Algorithm})
		}
	}
	return m
}

// AccountForUID returns the name of the account whose unix_users has uid,
// for local mail submitted through the control socket. The names in
// unix_users were resolved to uids when the configuration was validated.
func (d *Dynamic) AccountForUID(uid int) (string, bool) {
	if uid < 0 || int64(uid) > math.MaxUint32 {
		return "", false
	}
	name, ok := d.accountUIDs[uint32(uid)]
	return name, ok
}
