package dmarc

import (
	"strings"
	"time"

	"moxd/internal/mailproto/spf"
)

// Evaluation is one message's row in a DMARC aggregate report (RFC 7489
// §7.2.1.1 and appendix C: "record" with "row", "policy_evaluated",
// "identifiers" and "auth_results", plus the "policy_published" of the
// record). moxd-smtp builds it with NewEvaluation and sends it to
// moxd-queue, which stores and aggregates it; the JSON form is what is
// stored.
type Evaluation struct {
	// PolicyDomain is the domain whose record was applied.
	PolicyDomain string `json:"domain"`
	// Published is the record as published (appendix C
	// "policy_published"); HasRUA says whether it asks for aggregate
	// reports at all.
	Published Record `json:"published"`
	HasRUA    bool   `json:"hasRua,omitempty"`

	// Disposition is the policy applied: "none", "quarantine" or
	// "reject" (appendix C "DispositionType"). NewEvaluation sets what the
	// domain's policy asks; a caller that decides otherwise (local policy)
	// sets Disposition and Override.
	Disposition string `json:"disposition"`
	// Override is the reason the disposition differs from the policy
	// (appendix C "PolicyOverrideType": "sampled_out", "local_policy",
	// ...), empty when it does not.
	Override string `json:"override,omitempty"`
	// DKIMAligned and SPFAligned are "pass" or "fail" (appendix C
	// "policy_evaluated").
	DKIMAligned string `json:"dkimAligned"`
	SPFAligned  string `json:"spfAligned"`

	// Identifiers (appendix C "identifiers"). EnvelopeFrom is the MAIL
	// FROM domain, empty for the null reverse path.
	HeaderFrom   string `json:"headerFrom"`
	EnvelopeFrom string `json:"envelopeFrom,omitempty"`
	EnvelopeTo   string `json:"envelopeTo,omitempty"`

	// Authentication results (appendix C "auth_results"): every DKIM
	// signature, and the SPF check.
	DKIM []DKIMAuth `json:"dkim,omitempty"`
	SPF  SPFAuth    `json:"spf"`

	// SourceIP is the client's address (appendix C "row/source_ip").
	SourceIP string `json:"ip"`
	// Time is when the message was received, in Unix seconds; reports
	// group rows by the interval it falls in.
	Time int64 `json:"time"`
}

// DKIMAuth is one DKIM result of a report row (appendix C
// "DKIMAuthResultType").
type DKIMAuth struct {
	Domain   string `json:"d"`
	Selector string `json:"s,omitempty"`
	Result   string `json:"result"`
}

// SPFAuth is the SPF result of a report row (appendix C
// "SPFAuthResultType"); Scope is "mfrom" or "helo".
type SPFAuth struct {
	Domain string `json:"d"`
	Scope  string `json:"scope"`
	Result string `json:"result"`
}

// NewEvaluation builds the report row for a message from the arguments
// and result of Verify, the envelope recipient's domain and the time the
// message was received.
func NewEvaluation(a Args, res Result, envelopeTo string, received time.Time) Evaluation {
	ev := Evaluation{
		PolicyDomain: res.Domain,
		Disposition:  "none",
		DKIMAligned:  "fail",
		SPFAligned:   "fail",
		HeaderFrom:   res.FromDomain,
		EnvelopeTo:   normalizeDomain(envelopeTo),
		Time:         received.Unix(),
	}
	if res.Record != nil {
		ev.Published = *res.Record
		ev.HasRUA = len(res.Record.RUA) > 0
	}
	switch {
	case res.Reject:
		ev.Disposition = "reject"
	case res.Quarantine:
		ev.Disposition = "quarantine"
	}
	if res.SampledOut {
		ev.Override = "sampled_out"
	}
	if res.AlignedDKIM {
		ev.DKIMAligned = "pass"
	}
	if res.AlignedSPF {
		ev.SPFAligned = "pass"
	}
	if i := strings.LastIndexByte(a.SPF.MailFrom, '@'); i >= 0 {
		ev.EnvelopeFrom = normalizeDomain(a.SPF.MailFrom[i+1:])
	}
	for _, d := range a.DKIM {
		ev.DKIM = append(ev.DKIM, DKIMAuth{Domain: d.Domain, Selector: d.Selector, Result: string(d.Status)})
	}
	ev.SPF = SPFAuth{Domain: a.SPF.Domain, Scope: "mfrom", Result: string(a.SPF.Result)}
	if a.SPF.Identity == spf.IdentityHELO {
		ev.SPF.Scope = "helo"
	}
	if ev.SPF.Result == "" {
		ev.SPF.Result = string(spf.StatusNone)
	}
	if a.SPF.RemoteIP.IsValid() {
		ev.SourceIP = a.SPF.RemoteIP.String()
	}
	return ev
}
