package ipc

import "net/netip"

// FamReports (smtp -> queue): the DMARC evaluations of incoming messages,
// which queue keeps for aggregate reports (RFC 7489 §7.2). Events only:
// smtp never waits for queue on a delivery's path, and a lost evaluation
// costs one row in a report.
//
// The fields are plain strings and integers in the words of the aggregate
// report's XML schema (RFC 7489 Appendix C); the protocol package's
// evaluation type is converted by smtp, and queue checks the values when
// it records them.

// Limits of report fields.
const (
	MaxDMARCDKIM    = 8   // DKIM results in one DMARCEval
	MaxDMARCReasons = 4   // policy override reasons in one DMARCEval
	MaxResultWord   = 16  // result, disposition and policy words ("temperror", "quarantine")
	MaxDMARCFO      = 32  // DMARCEval.FO, the fo= tag ("0:1:d:s")
	MaxReasonType   = 32  // DMARCReason.Type ("trusted_forwarder")
	MaxReasonText   = 256 // DMARCReason.Comment
	MaxIPText       = 64  // DMARCEval.SourceIP in text form
)

// DMARCDKIM is one DKIM result of an evaluation (RFC 7489 Appendix C
// DKIMAuthResultType): result is none, pass, fail, policy, neutral,
// temperror or permerror.
type DMARCDKIM struct {
	Domain   string
	Selector string
	Result   string
}

// DMARCReason is a policy override reason (RFC 7489 Appendix C
// PolicyOverrideReason): type is forwarded, sampled_out,
// trusted_forwarder, mailing_list, local_policy or other.
type DMARCReason struct {
	Type    string
	Comment string
}

// DMARCEval is one DMARC evaluation of an incoming message, an event.
// Domains are lower-case; EnvelopeFrom is the MAIL FROM domain ("" for
// the null sender), EnvelopeTo the first recipient's domain. Time is in
// Unix seconds. Disposition is what was applied (none, quarantine,
// reject); P, SP, ADKIM, ASPF, Pct and FO are the published record's tags
// (ADKIM and ASPF "r" or "s"), HasRUA says the record asks for aggregate
// reports. Result is the DMARC result (pass, fail); DKIMAligned and
// SPFAligned are the aligned results the report's policy_evaluated
// carries. SPF* are the SPF check's result (none, neutral, pass, fail,
// softfail, temperror, permerror), domain and scope (helo, mfrom).
type DMARCEval struct {
	PolicyDomain string
	HeaderFrom   string
	EnvelopeFrom string
	EnvelopeTo   string
	SourceIP     string
	Time         int64
	Disposition  string
	P, SP        string
	ADKIM, ASPF  string
	Pct          uint8
	FO           string
	HasRUA       bool
	Result       string
	DKIMAligned  bool
	SPFAligned   bool
	SPFResult    string
	SPFDomain    string
	SPFScope     string
	DKIM         []DMARCDKIM
	Reasons      []DMARCReason
}

func (*DMARCEval) Type() MsgType { return TypeDMARCEval }
func (*DMARCEval) FDs() int      { return 0 }
func (m *DMARCEval) Encode(e *Encoder) {
	if _, err := netip.ParseAddr(m.SourceIP); err != nil || m.Pct > 100 {
		e.Fail("dmarc evaluation with source ip %q, pct %d", m.SourceIP, m.Pct)
	}
	e.StringMax(m.PolicyDomain, MaxNameLen)
	e.StringMax(m.HeaderFrom, MaxNameLen)
	e.StringMax(m.EnvelopeFrom, MaxNameLen)
	e.StringMax(m.EnvelopeTo, MaxNameLen)
	e.StringMax(m.SourceIP, MaxIPText)
	e.Int64(m.Time)
	e.StringMax(m.Disposition, MaxResultWord)
	e.StringMax(m.P, MaxResultWord)
	e.StringMax(m.SP, MaxResultWord)
	e.StringMax(m.ADKIM, MaxResultWord)
	e.StringMax(m.ASPF, MaxResultWord)
	e.Uint8(m.Pct)
	e.StringMax(m.FO, MaxDMARCFO)
	e.Bool(m.HasRUA)
	e.StringMax(m.Result, MaxResultWord)
	e.Bool(m.DKIMAligned)
	e.Bool(m.SPFAligned)
	e.StringMax(m.SPFResult, MaxResultWord)
	e.StringMax(m.SPFDomain, MaxNameLen)
	e.StringMax(m.SPFScope, MaxResultWord)
	e.CountMax(len(m.DKIM), MaxDMARCDKIM)
	for _, r := range m.DKIM {
		e.StringMax(r.Domain, MaxNameLen)
		e.StringMax(r.Selector, MaxNameLen)
		e.StringMax(r.Result, MaxResultWord)
	}
	e.CountMax(len(m.Reasons), MaxDMARCReasons)
	for _, r := range m.Reasons {
		e.StringMax(r.Type, MaxReasonType)
		e.StringMax(r.Comment, MaxReasonText)
	}
}
func (m *DMARCEval) Decode(d *Decoder) {
	m.PolicyDomain = d.StringMax(MaxNameLen)
	m.HeaderFrom = d.StringMax(MaxNameLen)
	m.EnvelopeFrom = d.StringMax(MaxNameLen)
	m.EnvelopeTo = d.StringMax(MaxNameLen)
	m.SourceIP = d.StringMax(MaxIPText)
	m.Time = d.Int64()
	m.Disposition = d.StringMax(MaxResultWord)
	m.P = d.StringMax(MaxResultWord)
	m.SP = d.StringMax(MaxResultWord)
	m.ADKIM = d.StringMax(MaxResultWord)
	m.ASPF = d.StringMax(MaxResultWord)
	m.Pct = d.Uint8()
	m.FO = d.StringMax(MaxDMARCFO)
	m.HasRUA = d.Bool()
	m.Result = d.StringMax(MaxResultWord)
	m.DKIMAligned = d.Bool()
	m.SPFAligned = d.Bool()
	m.SPFResult = d.StringMax(MaxResultWord)
	m.SPFDomain = d.StringMax(MaxNameLen)
	m.SPFScope = d.StringMax(MaxResultWord)
	n := d.Count(MaxDMARCDKIM)
	for i := 0; i < n && d.Err() == nil; i++ {
		var r DMARCDKIM
		r.Domain = d.StringMax(MaxNameLen)
		r.Selector = d.StringMax(MaxNameLen)
		r.Result = d.StringMax(MaxResultWord)
		m.DKIM = append(m.DKIM, r)
	}
	n = d.Count(MaxDMARCReasons)
	for i := 0; i < n && d.Err() == nil; i++ {
		var r DMARCReason
		r.Type = d.StringMax(MaxReasonType)
		r.Comment = d.StringMax(MaxReasonText)
		m.Reasons = append(m.Reasons, r)
	}
	if d.Err() == nil {
		if _, err := netip.ParseAddr(m.SourceIP); err != nil || m.Pct > 100 {
			d.Fail("dmarc evaluation with source ip %q, pct %d", m.SourceIP, m.Pct)
		}
	}
}
