package queue

import (
	"strings"
	"testing"

	"moxd/internal/config"
)

func TestRouteChoice(t *testing.T) {
	slice := config.QueueSlice{
		Transports: []config.QueueTransport{
			{Name: "relay", Kind: config.TransportSMTP, Host: "relay.example.net"},
			{Name: "fallback", Kind: config.TransportSubmission, Host: "smtp.example.net"},
			{Name: "pinned", Kind: config.TransportDirect, SourceIPs: []string{"192.0.2.1"}},
		},
		Accounts: []config.QueueAccount{
			{Name: "mjl", Routes: []config.QueueRoute{{ToDomains: []string{"partner.example"}, Transport: "relay"}}},
			{Name: "other"},
		},
		DomainRoutes: map[string][]config.QueueRoute{
			"example.com": {{ToDomains: []string{".example.org"}, Transport: "pinned"}},
		},
		Routes: []config.QueueRoute{
			{MinimumAttempts: 3, Transport: "fallback"},
			{FromDomains: []string{"lists.example.com"}, Transport: "relay"},
		},
	}
	rt, err := newRouteTable(slice)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		in   routeInput
		want string // transport name, "" for direct
		why  string
	}{
		{"no route: direct", routeInput{Account: "other", FromDomain: "example.com", ToDomain: "example.net"}, "", "no route"},
		{"account route first", routeInput{Account: "mjl", FromDomain: "example.com", ToDomain: "partner.example", Attempts: 5}, "relay", "account mjl route 1"},
		{"account route misses: domain route", routeInput{Account: "mjl", FromDomain: "example.com", ToDomain: "sub.example.org"}, "pinned", "domain example.com route 1"},
		{"leading dot does not match the domain itself", routeInput{Account: "other", FromDomain: "example.com", ToDomain: "example.org"}, "", "no route"},
		{"minimum attempts not reached", routeInput{Account: "other", FromDomain: "example.com", ToDomain: "example.net", Attempts: 2}, "", "no route"},
		{"fallback from the fourth attempt", routeInput{Account: "other", FromDomain: "example.com", ToDomain: "example.net", Attempts: 3}, "fallback", "global route 1"},
		{"from domain criterion", routeInput{Account: "other", FromDomain: "lists.example.com", ToDomain: "x.example"}, "relay", "global route 2"},
		{"case-insensitive", routeInput{Account: "other", FromDomain: "LISTS.example.com", ToDomain: "X.example"}, "relay", "global route 2"},
		{"override wins", routeInput{Account: "mjl", FromDomain: "example.com", ToDomain: "partner.example", Override: "fallback"}, "fallback", "transport set on the message"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, why, err := rt.choose(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if tr.Name != tc.want || why != tc.why {
				t.Fatalf("choose = %q (%s), want %q (%s)", tr.Name, why, tc.want, tc.why)
			}
			if tc.want == "" && tr.Kind != config.TransportDirect {
				t.Fatalf("direct delivery has kind %q", tr.Kind)
			}
		})
	}
	if _, _, err := rt.choose(routeInput{Override: "gone"}); err == nil || !strings.Contains(err.Error(), `"gone"`) {
		t.Fatalf("override with unknown transport: err = %v", err)
	}
	slice.Routes = append(slice.Routes, config.QueueRoute{Transport: "missing"})
	if _, err := newRouteTable(slice); err == nil || !strings.Contains(err.Error(), `"missing"`) {
		t.Fatalf("route naming an unknown transport: err = %v", err)
	}
}
