// Package dmarc evaluates Domain-based Message Authentication, Reporting
// and Conformance (RFC 7489) for inbound messages: it finds the policy of
// the From domain, checks whether SPF or DKIM passed for an identifier
// aligned with it, and applies the policy's sampling. moxd-smtp runs it
// after DATA on port 25; the Evaluation it builds is sent to moxd-queue for
// aggregate reports (RFC 7489 §7.2).
//
// Records are parsed with github.com/emersion/go-msgauth/dmarc after a
// lenient pass of our own (record.go) that applies the RFC's rules for
// invalid tags, which go-msgauth treats as errors. Organizational domains
// come from the Public Suffix List in golang.org/x/net/publicsuffix
// (RFC 7489 §3.2). FromDomain (from.go) extracts the RFC5322.From domain;
// it is our own parser because DMARC needs exactly one address and its
// domain, including for the malformed headers spammers send.
//
// Pure protocol code: no IPC, no configuration; DNS only through the
// dns.Resolver it is given.
package dmarc

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"

	"golang.org/x/net/publicsuffix"

	"moxd/internal/dns"
	"moxd/internal/mailproto/dkim"
	"moxd/internal/mailproto/spf"
)

// Status is a DMARC result (RFC 7489 §11.2).
type Status string

// The DMARC results.
const (
	StatusNone      Status = "none"
	StatusPass      Status = "pass"
	StatusFail      Status = "fail"
	StatusTemperror Status = "temperror"
	StatusPermerror Status = "permerror"
)

// Args is what DMARC evaluation needs.
type Args struct {
	// FromDomain is the RFC5322.From domain in ASCII (see FromDomain).
	FromDomain string
	// SPF is the SPF evaluation of the transaction. It counts for
	// alignment only for the MAIL FROM identity, which with a null reverse
	// path is postmaster@HELO (RFC 7489 §4.1 and §3.1.2, RFC 7208 §2.4).
	SPF spf.Received
	// DKIM are the results of all signatures of the message.
	DKIM []dkim.Result
	// Random returns a number in 0..99 for pct= sampling; nil uses
	// math/rand.
	Random func() int
}

// Result is the outcome of a DMARC evaluation.
type Result struct {
	Status Status
	// Reject and Quarantine say what the domain's policy asks for this
	// message: DMARC failed, the effective policy is reject (quarantine)
	// and pct= sampling selected the message. A reject policy whose
	// sampling skipped the message asks for quarantine instead (RFC 7489
	// §6.6.4). At most one of them is true.
	Reject     bool
	Quarantine bool
	// SampledOut is set when the message failed but pct= kept the policy
	// from being applied in full (report override "sampled_out").
	SampledOut bool
	// Policy is the effective policy for the From domain: p=, or sp= when
	// the record is the organizational domain's and From is a subdomain.
	// Empty without a record.
	Policy string
	// Domain is where the record was found (without "_dmarc."), the
	// policy domain of reports.
	Domain     string
	OrgDomain  string
	FromDomain string
	// AlignedSPF and AlignedDKIM say which mechanisms passed for an
	// identifier aligned with the From domain (RFC 7489 §3.1).
	AlignedSPF  bool
	AlignedDKIM bool
	// Record is the policy record, nil when none was found.
	Record *Record
	// Authentic is true when every DNS lookup made to find the record was
	// DNSSEC-authentic (including a lookup that found nothing).
	Authentic bool
	// Reason is a human-readable explanation, for logs and the SMTP reply.
	Reason string
	// Err is the cause of a temperror or permerror.
	Err error
}

// OrganizationalDomain returns the organizational domain of an ASCII
// domain (RFC 7489 §3.2): the public suffix plus one label, or the domain
// itself when it is a public suffix or the list has no answer.
func OrganizationalDomain(domain string) string {
	domain = normalizeDomain(domain)
	org, err := publicsuffix.EffectiveTLDPlusOne(domain)
	if err != nil {
		return domain
	}
	return org
}

func normalizeDomain(d string) string {
	return strings.TrimSuffix(strings.ToLower(d), ".")
}

// aligned compares an authenticated domain with the From domain (RFC 7489
// §3.1.1, §3.1.2): strict mode needs them equal, relaxed mode needs equal
// organizational domains.
func aligned(authDomain, fromDomain, mode string) bool {
	authDomain = normalizeDomain(authDomain)
	if authDomain == "" {
		return false
	}
	if mode == "s" {
		return authDomain == fromDomain
	}
	return OrganizationalDomain(authDomain) == OrganizationalDomain(fromDomain)
}

// Verify evaluates DMARC for a message (RFC 7489 §6.6).
func Verify(ctx context.Context, r dns.Resolver, a Args) Result {
	from := normalizeDomain(a.FromDomain)
	res := Result{FromDomain: from}
	if from == "" {
		res.Status = StatusNone
		res.Reason = "no From domain to evaluate DMARC for"
		return res
	}
	res.OrgDomain = OrganizationalDomain(from)

	rec, domain, authentic, err := lookupRecord(ctx, r, from, res.OrgDomain)
	res.Authentic = authentic
	res.Domain = domain
	switch {
	case errors.Is(err, errTemporary):
		res.Status, res.Err = StatusTemperror, err
		res.Reason = fmt.Sprintf("temporary error looking up the DMARC record of %s: %v", from, err)
		return res
	case err != nil:
		res.Status, res.Err = StatusPermerror, err
		res.Reason = fmt.Sprintf("DMARC record of %s not usable: %v", domain, err)
		return res
	case rec == nil:
		res.Status = StatusNone
		res.Reason = fmt.Sprintf("no DMARC record for %s", from)
		return res
	}
	res.Record = rec

	// RFC 7489 §6.3 "sp": for subdomains of the domain queried, applied
	// when the record came from the organizational domain.
	res.Policy = rec.Policy
	if domain != from && rec.SubdomainPolicy != "" {
		res.Policy = rec.SubdomainPolicy
	}

	// RFC 7489 §4.1, §3.1.2: DMARC uses SPF's result for the MAIL FROM
	// identity; with a null reverse path that is postmaster@HELO, which
	// package spf reports as identity "helo" with an empty MailFrom.
	spfCounts := a.SPF.Identity == spf.IdentityMailFrom || a.SPF.Identity == spf.IdentityHELO && a.SPF.MailFrom == ""
	spfAligned := spfCounts && aligned(a.SPF.Domain, from, rec.ASPF)
	res.AlignedSPF = spfAligned && a.SPF.Result == spf.StatusPass
	temporary := spfAligned && a.SPF.Result == spf.StatusTemperror
	for _, d := range a.DKIM {
		if !aligned(d.Domain, from, rec.ADKIM) {
			continue
		}
		switch d.Status {
		case dkim.StatusPass:
			res.AlignedDKIM = true
		case dkim.StatusTemperror:
			temporary = true
		}
	}

	// RFC 7489 §6.6.2 step 4: pass when at least one aligned identifier
	// passed.
	if res.AlignedSPF || res.AlignedDKIM {
		res.Status = StatusPass
		var via []string
		if res.AlignedSPF {
			via = append(via, "SPF")
		}
		if res.AlignedDKIM {
			via = append(via, "DKIM")
		}
		res.Reason = fmt.Sprintf("%s passed aligned with From domain %s", strings.Join(via, " and "), from)
		return res
	}
	if temporary {
		// Not in RFC 7489, which would call this a failure: when the only
		// checks that could have passed aligned ended in a temporary
		// error, a later attempt may pass, so a transient DNS problem
		// does not become a permanent rejection.
		res.Status = StatusTemperror
		res.Err = errors.New("aligned SPF or DKIM check had a temporary error")
		res.Reason = fmt.Sprintf("DMARC of %s undetermined: an aligned SPF or DKIM check had a temporary error", from)
		return res
	}

	res.Status = StatusFail
	res.Reason = fmt.Sprintf("DMARC policy of %s is %s and neither SPF nor DKIM passed aligned with From domain %s", domain, res.Policy, from)
	if res.Policy == "none" {
		return res
	}
	// RFC 7489 §6.6.4: apply the policy to pct percent of failing
	// messages; a reject not applied becomes quarantine, a quarantine not
	// applied becomes none.
	selected := true
	if rec.Percent < 100 {
		random := a.Random
		if random == nil {
			random = func() int { return rand.IntN(100) }
		}
		selected = random() < rec.Percent
	}
	switch {
	case res.Policy == "reject" && selected:
		res.Reject = true
	case res.Policy == "reject":
		res.Quarantine, res.SampledOut = true, true
		res.Reason += fmt.Sprintf("; pct=%d sampling applies quarantine instead of reject", rec.Percent)
	case res.Policy == "quarantine" && selected:
		res.Quarantine = true
	case res.Policy == "quarantine":
		res.SampledOut = true
		res.Reason += fmt.Sprintf("; pct=%d sampling does not apply the policy", rec.Percent)
	}
	return res
}

// errTemporary marks temporary DNS failures of the record lookup.
var errTemporary = errors.New("temporary DNS error")

// lookupRecord finds the DMARC record for from (RFC 7489 §6.6.3): at
// _dmarc.<from>, and when there is none at _dmarc.<org>. It returns the
// record (nil for none), the domain whose record applies, and whether all
// lookups were authentic.
func lookupRecord(ctx context.Context, r dns.Resolver, from, org string) (*Record, string, bool, error) {
	authentic := true
	domain := from
	for {
		name := "_dmarc." + domain
		txts, res, err := r.LookupTXT(ctx, name)
		authentic = authentic && res.Authentic
		var de *net.DNSError
		if err != nil && !(errors.As(err, &de) && de.IsNotFound) {
			// SERVFAIL, timeouts, a canceled context: temporary.
			return nil, domain, false, fmt.Errorf("%w: %s: %v", errTemporary, name, err)
		}
		var records []string
		for _, txt := range txts {
			if isDMARC(txt) { // RFC 7489 §6.6.3 step 2
				records = append(records, txt)
			}
		}
		switch {
		case len(records) > 1:
			// RFC 7489 §6.6.3 step 4: more than one record, no DMARC
			// processing; reported as permerror so the admin sees why.
			return nil, domain, authentic, fmt.Errorf("%d DMARC records at %s", len(records), name)
		case len(records) == 1:
			rec, err := parseRecord(records[0])
			if err != nil {
				return nil, domain, authentic, err
			}
			return rec, domain, authentic, nil
		}
		if domain == org {
			return nil, "", authentic, nil
		}
		domain = org // RFC 7489 §6.6.3 step 3
	}
}
