// Package addrbook resolves email addresses of the local domains to
// accounts and mailboxes, and answers whether an account may send as an
// address. moxd-store uses it for RCPT checks and deliveries, moxd-queue
// for sender checks of submitted mail; both build a Book from their config
// slice. The package is pure: no IPC, no files, no clock.
//
// Resolution of localpart@domain (Book.Resolve):
//
//  1. The domain must be local, compared without case, in Unicode or
//     A-label form (IDNA, RFC 5890).
//  2. The address itself, if an account has it. Local parts are compared
//     with config.LocalpartKey: without case unless the domain is
//     localpart_case_sensitive, "postmaster" always without case, a quoted
//     local part by its content.
//  3. If the local part contains one of the domain's separators (after its
//     first character), the part before the first separator, as in 2.
//  4. An alias with the address (or, as in 3, the part before the
//     separator): every member, each resolved by these rules except
//     aliases, deduplicated by account and mailbox.
//  5. The domain's catchall ("@domain"), only when nothing above matched.
//
// A destination (config.Destination) names the mailbox an address delivers
// into; without one, it is the Inbox.
package addrbook

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/idna"

	"moxd/internal/config"
)

// Account is one account as the book needs it. Destinations maps an
// address to the mailbox it delivers into; an address that appears only
// there is an address of the account as well. Destinations may be nil
// (queue's accounts have none).
type Account struct {
	Name         string
	Addresses    []string          // "localpart@domain", or "@domain" for a catchall
	Destinations map[string]string // address -> mailbox
}

// Target is where one resolved address delivers: an account and a mailbox
// ("" is the Inbox). Address is the configured address that led there: the
// account's address (for a tagged local part the address without the tag,
// for a catchall "@domain"), or for an alias the member address.
type Target struct {
	Account string
	Mailbox string
	Address string
}

// Book holds the local domains with their addresses. It is immutable once
// built and safe for concurrent use.
type Book struct {
	domains map[string]*domain // by ASCII name
}

type domain struct {
	name          string // as configured (Unicode form)
	separators    []string
	caseSensitive bool
	addrs         map[string]Target // localpart key -> target
	aliases       map[string]*alias // localpart key -> alias
	catchall      *Target
}

type alias struct {
	members        []member
	membersMaySend bool
}

type member struct {
	address   string // as configured
	localpart string
	domain    string // ASCII
}

// ErrInvalid is wrapped by the errors of New.
var ErrInvalid = errors.New("invalid address configuration")

// New builds a book from the local domains and the accounts with their
// addresses. Every address must be in one of the domains and belong to one
// account; alias addresses must be in their domain and members must be
// well-formed addresses. The configuration master validated always passes.
func New(domains []config.AddrDomain, accounts []Account) (*Book, error) {
	b := &Book{domains: map[string]*domain{}}
	for _, d := range domains {
		ascii, err := domainKey(d.Name)
		if err != nil {
			return nil, fmt.Errorf("%w: domain %q: %v", ErrInvalid, d.Name, err)
		}
		if b.domains[ascii] != nil {
			return nil, fmt.Errorf("%w: domain %q listed twice", ErrInvalid, d.Name)
		}
		for _, sep := range d.LocalpartSeparators {
			if sep == "" {
				return nil, fmt.Errorf("%w: domain %q: empty localpart separator", ErrInvalid, d.Name)
			}
		}
		b.domains[ascii] = &domain{
			name:          d.Name,
			separators:    d.LocalpartSeparators,
			caseSensitive: d.LocalpartCaseSensitive,
			addrs:         map[string]Target{},
			aliases:       map[string]*alias{},
		}
	}
	for _, a := range accounts {
		if a.Name == "" {
			return nil, fmt.Errorf("%w: account without name", ErrInvalid)
		}
		mailboxes := map[string]string{} // address key -> mailbox
		var extra []string
		for addr, mb := range a.Destinations {
			key, _, _, err := b.parse(addr, true)
			if err != nil {
				return nil, fmt.Errorf("%w: account %s: destination %v", ErrInvalid, a.Name, err)
			}
			mailboxes[key] = mb
			extra = append(extra, addr)
		}
		for _, addr := range append(append([]string{}, a.Addresses...), extra...) {
			key, lpKey, d, err := b.parse(addr, true)
			if err != nil {
				return nil, fmt.Errorf("%w: account %s: %v", ErrInvalid, a.Name, err)
			}
			t := Target{Account: a.Name, Mailbox: mailboxes[key], Address: addr}
			if lpKey == "" {
				if d.catchall != nil && d.catchall.Account != a.Name {
					return nil, fmt.Errorf("%w: catchall of %s belongs to accounts %s and %s", ErrInvalid, d.name, d.catchall.Account, a.Name)
				}
				if d.catchall == nil {
					d.catchall = &t
				}
				continue
			}
			if o, ok := d.addrs[lpKey]; ok {
				if o.Account != a.Name {
					return nil, fmt.Errorf("%w: address %s belongs to accounts %s and %s", ErrInvalid, addr, o.Account, a.Name)
				}
				continue
			}
			d.addrs[lpKey] = t
		}
	}
	for _, dc := range domains {
		d := b.domains[mustKey(dc.Name)]
		for _, al := range dc.Aliases {
			_, lpKey, ad, err := b.parse(al.Address, false)
			if err != nil {
				return nil, fmt.Errorf("%w: alias %v", ErrInvalid, err)
			}
			if ad != d {
				return nil, fmt.Errorf("%w: alias %s is not in domain %s", ErrInvalid, al.Address, dc.Name)
			}
			if d.aliases[lpKey] != nil {
				return nil, fmt.Errorf("%w: alias %s listed twice", ErrInvalid, al.Address)
			}
			x := &alias{membersMaySend: al.MembersMaySend}
			for _, m := range al.Members {
				lp, dom, err := splitAddress(m)
				if err != nil || lp == "" {
					return nil, fmt.Errorf("%w: alias %s: member %q is not an address", ErrInvalid, al.Address, m)
				}
				ascii, err := domainKey(dom)
				if err != nil {
					return nil, fmt.Errorf("%w: alias %s: member %q: %v", ErrInvalid, al.Address, m, err)
				}
				x.members = append(x.members, member{address: m, localpart: lp, domain: ascii})
			}
			d.aliases[lpKey] = x
		}
	}
	return b, nil
}

// mustKey is domainKey for a name New has checked already.
func mustKey(name string) string {
	k, _ := domainKey(name)
	return k
}

// parse splits an address of a local domain and returns its full key, the
// key of its local part ("" for a catchall) and its domain.
func (b *Book) parse(addr string, catchall bool) (key, lpKey string, d *domain, err error) {
	lp, dom, err := splitAddress(addr)
	if err != nil {
		return "", "", nil, err
	}
	if lp == "" && !catchall {
		return "", "", nil, fmt.Errorf("%q: a catchall is not allowed here", addr)
	}
	ascii, err := domainKey(dom)
	if err != nil {
		return "", "", nil, fmt.Errorf("%q: %v", addr, err)
	}
	d = b.domains[ascii]
	if d == nil {
		return "", "", nil, fmt.Errorf("%q: domain is not local", addr)
	}
	if lp != "" {
		lpKey = config.LocalpartKey(lp, d.caseSensitive)
	}
	return lpKey + "@" + ascii, lpKey, d, nil
}

// splitAddress splits at the last "@"; the local part may be empty.
func splitAddress(addr string) (localpart, domain string, err error) {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || at == len(addr)-1 {
		return "", "", fmt.Errorf("%q is not an address", addr)
	}
	return addr[:at], addr[at+1:], nil
}

// domainKey returns the form domains are compared in: lower-case A-labels.
// An ASCII name is only lower-cased: A-labels compare without decoding, and
// names that UTS #46 rejects but config accepts (such as "ex--ample.org")
// still match. A Unicode name is mapped and encoded with IDNA; a name IDNA
// refuses gets config's own encoding, so whatever config validated is in
// the book.
func domainKey(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty domain")
	}
	if isASCII(name) {
		return strings.ToLower(name), nil
	}
	ascii, err := idna.Lookup.ToASCII(name)
	if err != nil {
		if ascii, cerr := config.DomainASCII(name); cerr == nil {
			return ascii, nil
		}
		return "", err
	}
	return strings.ToLower(ascii), nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func (b *Book) domain(name string) *domain {
	ascii, err := domainKey(name)
	if err != nil {
		return nil
	}
	return b.domains[ascii]
}

// LocalDomain reports whether domain (Unicode or A-labels, any case) is one
// of the book's domains.
func (b *Book) LocalDomain(domain string) bool {
	return b.domain(domain) != nil
}

// Resolve returns where mail for localpart@domain goes, by the rules in
// the package comment; false when the domain is not local or nothing
// matches. An alias yields one target per distinct account and mailbox of
// its members.
func (b *Book) Resolve(localpart, domain string) ([]Target, bool) {
	d := b.domain(domain)
	if d == nil || localpart == "" {
		return nil, false
	}
	if t, ok := d.address(localpart); ok {
		return []Target{t}, true
	}
	if al := d.alias(localpart); al != nil {
		var l []Target
		for _, m := range al.members {
			md := b.domains[m.domain]
			if md == nil {
				continue // Members must be local; New does not insist.
			}
			t, ok := md.address(m.localpart)
			if !ok {
				if md.catchall == nil {
					continue
				}
				t = *md.catchall
			}
			t.Address = m.address
			if !containsTarget(l, t) {
				l = append(l, t)
			}
		}
		return l, len(l) > 0
	}
	if d.catchall != nil {
		return []Target{*d.catchall}, true
	}
	return nil, false
}

func containsTarget(l []Target, t Target) bool {
	for _, x := range l {
		if x.Account == t.Account && x.Mailbox == t.Mailbox {
			return true
		}
	}
	return false
}

// address looks localpart up among the account addresses: itself, then
// the part before its first separator.
func (d *domain) address(localpart string) (Target, bool) {
	if t, ok := d.addrs[config.LocalpartKey(localpart, d.caseSensitive)]; ok {
		return t, true
	}
	if base, ok := d.base(localpart); ok {
		t, ok := d.addrs[config.LocalpartKey(base, d.caseSensitive)]
		return t, ok
	}
	return Target{}, false
}

// alias looks localpart up among the aliases, as address does.
func (d *domain) alias(localpart string) *alias {
	if al := d.aliases[config.LocalpartKey(localpart, d.caseSensitive)]; al != nil {
		return al
	}
	if base, ok := d.base(localpart); ok {
		return d.aliases[config.LocalpartKey(base, d.caseSensitive)]
	}
	return nil
}

// base returns the local part before the first of the domain's separators;
// false when there is none, or nothing before it.
func (d *domain) base(localpart string) (string, bool) {
	cut := -1
	for _, sep := range d.separators {
		if i := strings.Index(localpart, sep); i > 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	if cut < 0 {
		return "", false
	}
	return localpart[:cut], true
}

// Tag returns what follows the first of the domain's separators in
// localpart ("mjl+a+b" gives "a+b" with separator "+"), the rule of
// base; false when the domain is not local or the local part has no
// separator after its first character. A quoted local part is looked at
// inside its quotes. Store uses it to find the unique id of a DSN sent
// to a unique MAIL FROM (account.unique_mail_from).
func (b *Book) Tag(localpart, domain string) (string, bool) {
	d := b.domain(domain)
	if d == nil {
		return "", false
	}
	if len(localpart) >= 2 && localpart[0] == '"' && localpart[len(localpart)-1] == '"' {
		localpart = localpart[1 : len(localpart)-1]
	}
	base, ok := d.base(localpart)
	if !ok {
		return "", false
	}
	rest := localpart[len(base):]
	for _, sep := range d.separators {
		if strings.HasPrefix(rest, sep) {
			return rest[len(sep):], true
		}
	}
	return "", false
}

// MaySendAs reports whether account may use localpart@domain as its
// sender address: the account has the address (also through a separator:
// an account with mjl@ may send as mjl+tag@), has the domain's catchall, or
// the address is an alias with members_may_send that has a member leading
// to the account. Account names are compared without case, as config
// does.
func (b *Book) MaySendAs(account, localpart, domain string) bool {
	d := b.domain(domain)
	if d == nil || localpart == "" || account == "" {
		return false
	}
	if t, ok := d.address(localpart); ok && strings.EqualFold(t.Account, account) {
		return true
	}
	if d.catchall != nil && strings.EqualFold(d.catchall.Account, account) {
		return true
	}
	if al := d.alias(localpart); al != nil && al.membersMaySend {
		for _, m := range al.members {
			md := b.domains[m.domain]
			if md == nil {
				continue
			}
			if t, ok := md.address(m.localpart); ok {
				if strings.EqualFold(t.Account, account) {
					return true
				}
			} else if md.catchall != nil && strings.EqualFold(md.catchall.Account, account) {
				return true
			}
		}
	}
	return false
}
