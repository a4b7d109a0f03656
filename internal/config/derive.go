package config

// Values derived from validated configuration files, in the form the role
// slices (slices.go) carry them. Master builds the slices from these; the
// conversions live here so that the file format and its meaning stay in
// one package.

import "strings"

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
