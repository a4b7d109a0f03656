package queue

// Routes choose the transport of a delivery attempt. Routes of the sender
// account come first, then those of the sender's domain, then the global
// ones; the first route whose criteria all match wins. No matching route,
// or a route with an empty transport, means direct delivery (MX lookup).
// A message whose transport was set with "moxctl queue transport" skips
// the routes.

import (
	"fmt"
	"strings"

	"golang.org/x/net/idna"

	"moxd/internal/config"
)

// routeTable holds the routes and transports of a config slice.
type routeTable struct {
	account    map[string][]config.QueueRoute
	domain     map[string][]config.QueueRoute
	global     []config.QueueRoute
	transports map[string]*config.QueueTransport
}

// directTransport is the transport of direct delivery without a
// [[transport]] of kind direct.
var directTransport = &config.QueueTransport{Name: "", Kind: config.TransportDirect}

func newRouteTable(s config.QueueSlice) (*routeTable, error) {
	rt := &routeTable{
		account:    map[string][]config.QueueRoute{},
		domain:     map[string][]config.QueueRoute{},
		global:     s.Routes,
		transports: map[string]*config.QueueTransport{},
	}
	for i := range s.Transports {
		t := &s.Transports[i]
		rt.transports[t.Name] = t
	}
	for _, a := range s.Accounts {
		rt.account[a.Name] = a.Routes
	}
	for d, l := range s.DomainRoutes {
		rt.domain[strings.ToLower(d)] = l
	}
	check := func(where string, l []config.QueueRoute) error {
		for i, r := range l {
			if r.Transport != "" && rt.transports[r.Transport] == nil {
				return fmt.Errorf("%s route %d names transport %q, which is not configured", where, i+1, r.Transport)
			}
		}
		return nil
	}
	if err := check("global", rt.global); err != nil {
		return nil, err
	}
	for name, l := range rt.account {
		if err := check("account "+name, l); err != nil {
			return nil, err
		}
	}
	for name, l := range rt.domain {
		if err := check("domain "+name, l); err != nil {
			return nil, err
		}
	}
	return rt, nil
}

// routeInput is what a route is chosen by.
type routeInput struct {
	Account    string
	FromDomain string // MAIL FROM domain, "" for the null sender
	ToDomain   string
	Attempts   int    // earlier attempts of the recipient
	Override   string // the message's transport set by an admin, "" for none
}

// choose returns the transport for in and a description of the route
// that chose it, for logs and dumps.
func (rt *routeTable) choose(in routeInput) (*config.QueueTransport, string, error) {
	// Config holds domains lower-case in Unicode form; addresses may have
	// A-labels.
	in.FromDomain, in.ToDomain = unicodeDomain(in.FromDomain), unicodeDomain(in.ToDomain)
	if in.Override != "" {
		t := rt.transports[in.Override]
		if t == nil {
			return nil, "", fmt.Errorf("the message's transport %q is not configured; set another with moxctl queue transport", in.Override)
		}
		return t, "transport set on the message", nil
	}
	for _, set := range []struct {
		name   string
		routes []config.QueueRoute
	}{
		{"account " + in.Account, rt.account[in.Account]},
		{"domain " + in.FromDomain, rt.domain[in.FromDomain]},
		{"global", rt.global},
	} {
		for i, r := range set.routes {
			if !routeMatches(r, in) {
				continue
			}
			why := fmt.Sprintf("%s route %d", set.name, i+1)
			if r.Transport == "" {
				return directTransport, why, nil
			}
			return rt.transports[r.Transport], why, nil
		}
	}
	return directTransport, "no route", nil
}

func routeMatches(r config.QueueRoute, in routeInput) bool {
	return in.Attempts >= r.MinimumAttempts &&
		domainListed(r.FromDomains, in.FromDomain) &&
		domainListed(r.ToDomains, in.ToDomain)
}

// domainListed says whether d matches the list: an empty list matches
// everything, a leading "." matches subdomains.
func domainListed(l []string, d string) bool {
	if len(l) == 0 {
		return true
	}
	d = strings.ToLower(strings.TrimSuffix(d, "."))
	for _, e := range l {
		e = strings.ToLower(e)
		if e == "" || e == d || (strings.HasPrefix(e, ".") && strings.HasSuffix(d, e)) {
			return true
		}
	}
	return false
}

// unicodeDomain is d lower-case in Unicode form (d as is when it is not a
// valid IDNA name).
func unicodeDomain(d string) string {
	d = strings.ToLower(strings.TrimSuffix(d, "."))
	if u, err := idna.Lookup.ToUnicode(d); err == nil {
		return u
	}
	return d
}
