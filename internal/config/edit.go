package config

// Editing domains.conf in memory: the changes moxctl (through moxd-master)
// makes to accounts, addresses and domains. Each function checks its
// arguments, applies the change to a copy, validates the whole result with
// the checks Load applies, and only then changes d; on error d is left as it
// was. Errors are meant for the admin: they name the account, address or
// domain and say what to do instead.

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
)

// Clone returns a deep copy of d.
func (d *Dynamic) Clone() *Dynamic {
	c := cloneValue(reflect.ValueOf(d).Elem()).Addr().Interface().(*Dynamic)
	c.accountUIDs = maps.Clone(d.accountUIDs) // Unexported: cloneValue skips it.
	return c
}

// Validate checks d with the checks Load applies to domains.conf and
// normalizes it in place (lower-cased domain names and address domains).
func (d *Dynamic) Validate() error {
	return validateDynamic("domains.conf", d, nil, dynOptions{})
}

// FindAccount returns the index of the account named name (compared without
// case, as Load does), or -1.
func (d *Dynamic) FindAccount(name string) int {
	for i, a := range d.Accounts {
		if strings.EqualFold(a.Name, name) {
			return i
		}
	}
	return -1
}

// FindDomain returns the index of the domain name (compared in its
// normalized form), or -1.
func (d *Dynamic) FindDomain(name string) int {
	_, ascii, err := normalizeDomain(name)
	if err != nil {
		return -1
	}
	for i, dom := range d.Domains {
		if _, a, err := normalizeDomain(dom.Name); err == nil && a == ascii {
			return i
		}
	}
	return -1
}

// addressKey returns the form in which addresses are compared (addrKey:
// the local part as its domain compares it, the domain in ASCII) and the
// normalized address. A catchall ("@domain") is an address too.
func (d *Dynamic) addressKey(addr string) (key, norm string, err error) {
	lp, dom, err := splitAccountAddress(addr)
	if err != nil {
		return "", "", err
	}
	name, ascii, err := normalizeDomain(dom)
	if err != nil {
		return "", "", fmt.Errorf("address %q: %w", addr, err)
	}
	settings := &Domain{}
	if i := d.FindDomain(name); i >= 0 {
		settings = &d.Domains[i]
	}
	return addrKey(lp, ascii, settings), lp + "@" + name, nil
}

// AddressOwner returns the account that has addr in its addresses and the
// index of addr in that list, or ok false.
func (d *Dynamic) AddressOwner(addr string) (account, index int, ok bool) {
	key, _, err := d.addressKey(addr)
	if err != nil {
		return -1, -1, false
	}
	for i, a := range d.Accounts {
		for j, x := range a.Addresses {
			if k, _, err := d.addressKey(x); err == nil && k == key {
				return i, j, true
			}
		}
	}
	return -1, -1, false
}

// isPostmaster reports whether addr is postmaster@ its domain (the local
// part compared without case, RFC 5321 §4.5.1).
func isPostmaster(addr string) bool {
	lp, _, err := splitAddress(addr)
	return err == nil && strings.EqualFold(lp, "postmaster")
}

// commit validates n and makes it d's content.
func (d *Dynamic) commit(n *Dynamic) error {
	if err := n.Validate(); err != nil {
		return fmt.Errorf("the change would make domains.conf invalid: %w", err)
	}
	*d = *n
	return nil
}

// checkAddressDomain checks that addr is well-formed and its domain
// configured.
func (d *Dynamic) checkAddressDomain(addr string) (norm string, err error) {
	_, norm, err = d.addressKey(addr)
	if err != nil {
		return "", err
	}
	_, dom, _ := splitAccountAddress(norm)
	if d.FindDomain(dom) < 0 {
		return "", fmt.Errorf("domain %q of address %q is not configured; add it first (moxctl domain add %s ACCOUNT)", dom, addr, dom)
	}
	return norm, nil
}

// AddAccount adds account a. Its name must not be in use (compared without
// case: names become directory names), and each of its addresses must have
// a configured domain and must not belong to another account.
func (d *Dynamic) AddAccount(a Account) error {
	if err := checkAccountName(a.Name); err != nil {
		return err
	}
	if i := d.FindAccount(a.Name); i >= 0 {
		return fmt.Errorf("account %q already exists", d.Accounts[i].Name)
	}
	if _, err := ParseQuota(a.Quota); err != nil {
		return err
	}
	n := d.Clone()
	na := Account{
		Name:                         a.Name,
		Quota:                        a.Quota,
		Addresses:                    []string{},
		MaxMessagesPerDay:            a.MaxMessagesPerDay,
		MaxFirstTimeRecipientsPerDay: a.MaxFirstTimeRecipientsPerDay,
		Destinations:                 slices.Clone(a.Destinations),
	}
	for _, addr := range a.Addresses {
		norm, err := n.checkAddressDomain(addr)
		if err != nil {
			return err
		}
		if i, _, ok := n.AddressOwner(addr); ok {
			return fmt.Errorf("address %q already belongs to account %q", addr, n.Accounts[i].Name)
		}
		if slices.Contains(na.Addresses, norm) {
			return fmt.Errorf("address %q is given twice", addr)
		}
		na.Addresses = append(na.Addresses, norm)
	}
	n.Accounts = append(n.Accounts, na)
	return d.commit(n)
}

// RemoveAccount removes the account name. An account holding the
// postmaster address of a configured domain is not removed: the domain
// would be left without one.
func (d *Dynamic) RemoveAccount(name string) error {
	i := d.FindAccount(name)
	if i < 0 {
		return fmt.Errorf("no account %q", name)
	}
	var pms []string
	for _, addr := range d.Accounts[i].Addresses {
		if isPostmaster(addr) {
			pms = append(pms, addr)
		}
	}
	if len(pms) > 0 {
		return fmt.Errorf("account %q has %s, the postmaster address every domain needs (RFC 5321 section 4.5.1); give it to another account first (moxctl address move %s ACCOUNT), or remove the domain", d.Accounts[i].Name, strings.Join(pms, ", "), pms[0])
	}
	n := d.Clone()
	n.Accounts = slices.Delete(n.Accounts, i, i+1)
	return d.commit(n)
}

// AddAddress gives addr to account. The domain must be configured and the
// address must not belong to any account yet.
func (d *Dynamic) AddAddress(addr, account string) error {
	i := d.FindAccount(account)
	if i < 0 {
		return fmt.Errorf("no account %q", account)
	}
	norm, err := d.checkAddressDomain(addr)
	if err != nil {
		return err
	}
	if j, _, ok := d.AddressOwner(addr); ok {
		return fmt.Errorf("address %q already belongs to account %q", addr, d.Accounts[j].Name)
	}
	n := d.Clone()
	n.Accounts[i].Addresses = append(n.Accounts[i].Addresses, norm)
	return d.commit(n)
}

// RemoveAddress removes addr from the account that has it. The postmaster
// address of a configured domain cannot be removed, only moved.
func (d *Dynamic) RemoveAddress(addr string) error {
	i, j, ok := d.AddressOwner(addr)
	if !ok {
		return fmt.Errorf("no account has address %q", addr)
	}
	if isPostmaster(addr) {
		return fmt.Errorf("%q is the postmaster address of its domain, which every domain needs (RFC 5321 section 4.5.1); give it to another account instead (moxctl address move %s ACCOUNT), or remove the domain", addr, addr)
	}
	n := d.Clone()
	n.Accounts[i].Addresses = slices.Delete(n.Accounts[i].Addresses, j, j+1)
	return d.commit(n)
}

// MoveAddress gives addr, which another account has, to account.
func (d *Dynamic) MoveAddress(addr, account string) error {
	to := d.FindAccount(account)
	if to < 0 {
		return fmt.Errorf("no account %q", account)
	}
	i, j, ok := d.AddressOwner(addr)
	if !ok {
		return fmt.Errorf("no account has address %q; add it instead (moxctl address add %s %s)", addr, addr, account)
	}
	if i == to {
		return fmt.Errorf("address %q already belongs to account %q", addr, d.Accounts[to].Name)
	}
	n := d.Clone()
	moved := n.Accounts[i].Addresses[j]
	n.Accounts[i].Addresses = slices.Delete(n.Accounts[i].Addresses, j, j+1)
	n.Accounts[to].Addresses = append(n.Accounts[to].Addresses, moved)
	return d.commit(n)
}

// AddDomain adds dom and gives its postmaster address to account, unless
// some account has that address already.
func (d *Dynamic) AddDomain(dom Domain, account string) error {
	name, _, err := normalizeDomain(dom.Name)
	if err != nil {
		return err
	}
	if i := d.FindDomain(name); i >= 0 {
		return fmt.Errorf("domain %q already exists", d.Domains[i].Name)
	}
	ai := d.FindAccount(account)
	if ai < 0 {
		return fmt.Errorf("no account %q: give an existing account to receive postmaster@%s", account, name)
	}
	n := d.Clone()
	nd := cloneValue(reflect.ValueOf(dom)).Interface().(Domain)
	nd.Name = name
	n.Domains = append(n.Domains, nd)
	pm := "postmaster@" + name
	if _, _, ok := n.AddressOwner(pm); !ok {
		n.Accounts[ai].Addresses = append(n.Accounts[ai].Addresses, pm)
	}
	return d.commit(n)
}

// RemoveDomain removes the domain name together with its postmaster
// address. A domain that other addresses still use is not removed; the
// error lists them.
func (d *Dynamic) RemoveDomain(name string) error {
	di := d.FindDomain(name)
	if di < 0 {
		return fmt.Errorf("no domain %q", name)
	}
	_, ascii, _ := normalizeDomain(d.Domains[di].Name)
	var used []string
	n := d.Clone()
	for i := range n.Accounts {
		a := &n.Accounts[i]
		var keep []string
		for _, addr := range a.Addresses {
			key, _, err := d.addressKey(addr)
			if err != nil || !strings.HasSuffix(key, "@"+ascii) {
				keep = append(keep, addr)
				continue
			}
			if !isPostmaster(addr) {
				used = append(used, fmt.Sprintf("%s (account %s)", addr, a.Name))
			}
		}
		if keep == nil {
			keep = []string{}
		}
		a.Addresses = keep
		for _, dest := range a.Destinations {
			if key, _, err := d.addressKey(dest.Address); err == nil && strings.HasSuffix(key, "@"+ascii) {
				used = append(used, fmt.Sprintf("%s (account %s, [[account.destination]])", dest.Address, a.Name))
			}
		}
	}
	if len(used) > 0 {
		return fmt.Errorf("domain %q is still used by %s; remove those addresses first (moxctl address rm ADDRESS)", d.Domains[di].Name, strings.Join(used, ", "))
	}
	n.Domains = slices.Delete(n.Domains, di, di+1)
	return d.commit(n)
}
