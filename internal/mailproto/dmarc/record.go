package dmarc

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	msgdmarc "github.com/emersion/go-msgauth/dmarc"
)

// Record is a published DMARC policy record (RFC 7489 §6.3), the fields
// moxd acts on and reports (RFC 7489 appendix C "policy_published").
type Record struct {
	Policy string `json:"p"` // none, quarantine or reject
	// SubdomainPolicy is sp=, empty when not published (then p applies).
	SubdomainPolicy string `json:"sp,omitempty"`
	ADKIM           string `json:"adkim"` // "r" or "s"
	ASPF            string `json:"aspf"`  // "r" or "s"
	Percent         int    `json:"pct"`
	// FailureOptions is fo= as published and valid, "0" when absent.
	FailureOptions string   `json:"fo"`
	RUA            []string `json:"rua,omitempty"`
	RUF            []string `json:"ruf,omitempty"`
	// ReportInterval is ri= in seconds, 86400 when absent.
	ReportInterval int `json:"ri"`
}

// isDMARC reports whether txt is a DMARC record at all: it starts with a
// v=DMARC1 tag (RFC 7489 §6.4 dmarc-version; the value is case-sensitive,
// §6.3 "v": "MUST match precisely"). Other TXT records at _dmarc are
// discarded (RFC 7489 §6.6.3 step 2).
func isDMARC(txt string) bool {
	s := strings.TrimLeft(txt, " \t")
	if len(s) == 0 || s[0] != 'v' && s[0] != 'V' {
		return false
	}
	s = strings.TrimLeft(s[1:], " \t")
	if !strings.HasPrefix(s, "=") {
		return false
	}
	s = strings.TrimLeft(s[1:], " \t")
	if !strings.HasPrefix(s, "DMARC1") {
		return false
	}
	s = strings.TrimLeft(s[len("DMARC1"):], " \t")
	return s == "" || s[0] == ';'
}

// errNoPolicy: the record has no valid p= (or an invalid sp=) and no valid
// rua= to fall back on, so no DMARC processing applies (RFC 7489 §6.6.3
// step 5).
var errNoPolicy = errors.New("record has no valid p= or has an invalid sp=, and no valid rua=")

// parseRecord parses a DMARC record as RFC 7489 §6.3 asks: tag names and
// keyword values case-insensitively (RFC 5234 §2.3), unknown tags ignored,
// invalid values of optional tags discarded in favour of the defaults, and
// an invalid p= or sp= read as p=none when the record has a valid rua=
// (§6.6.3 step 5). The cleaned record is then parsed by go-msgauth, which
// is strict about all of these.
func parseRecord(txt string) (*Record, error) {
	if !isDMARC(txt) {
		return nil, errors.New("not a DMARC record")
	}
	_, rest, _ := strings.Cut(txt, ";")
	tags := map[string]string{}
	var order []string
	for spec := range strings.SplitSeq(rest, ";") {
		name, value, ok := strings.Cut(spec, "=")
		if !ok {
			// An empty spec (trailing ";") or junk: ignore (§6.3 "syntax
			// errors in the remainder of the record SHOULD be discarded").
			continue
		}
		name = strings.ToLower(strings.TrimSpace(name))
		value = strings.TrimSpace(value)
		if _, dup := tags[name]; dup || name == "v" {
			continue // the first occurrence counts
		}
		tags[name] = value
		order = append(order, name)
	}

	clean := []string{"v=DMARC1"}
	keep := func(name, value string) { clean = append(clean, name+"="+value) }
	validPolicy := func(v string) bool { return v == "none" || v == "quarantine" || v == "reject" }

	p := strings.ToLower(tags["p"])
	pOK := validPolicy(p)
	sp, hasSP := tags["sp"]
	sp = strings.ToLower(sp)
	if !pOK || hasSP && !validPolicy(sp) {
		// RFC 7489 §6.6.3 step 5.
		if !hasValidURI(tags["rua"]) {
			return nil, errNoPolicy
		}
		p, hasSP = "none", false
	}
	keep("p", p)
	if hasSP {
		keep("sp", sp)
	}
	for _, name := range order {
		v := tags[name]
		lv := strings.ToLower(v)
		switch name {
		case "adkim", "aspf":
			if lv == "r" || lv == "s" {
				keep(name, lv)
			}
		case "pct":
			if n, err := strconv.Atoi(v); err == nil && n >= 0 && n <= 100 {
				keep(name, strconv.Itoa(n))
			}
		case "fo":
			if validFO(lv) {
				keep(name, strings.ReplaceAll(lv, " ", ""))
			}
		case "rf":
			if lv == "afrf" {
				keep(name, lv)
			}
		case "ri":
			// Bounded so go-msgauth's conversion to a Duration cannot
			// overflow; ten years is more than any report interval.
			if n, err := strconv.Atoi(v); err == nil && n > 0 && n <= 10*365*86400 {
				keep(name, strconv.Itoa(n))
			}
		case "rua", "ruf":
			keep(name, v)
		}
	}

	mr, err := msgdmarc.Parse(strings.Join(clean, "; "))
	if err != nil {
		return nil, fmt.Errorf("parse record: %w", err)
	}
	rec := &Record{
		Policy:          string(mr.Policy),
		SubdomainPolicy: string(mr.SubdomainPolicy),
		ADKIM:           string(mr.DKIMAlignment),
		ASPF:            string(mr.SPFAlignment),
		Percent:         100,
		FailureOptions:  "0",
		RUA:             nonEmpty(mr.ReportURIAggregate),
		RUF:             nonEmpty(mr.ReportURIFailure),
		ReportInterval:  86400,
	}
	if mr.Percent != nil {
		rec.Percent = *mr.Percent
	}
	if mr.ReportInterval > 0 {
		rec.ReportInterval = int(mr.ReportInterval.Seconds())
	}
	for _, c := range clean {
		if v, ok := strings.CutPrefix(c, "fo="); ok {
			rec.FailureOptions = v
		}
	}
	return rec, nil
}

// validFO checks fo= (RFC 7489 §6.4 dmarc-fo): a colon-separated list of
// 0, 1, d and s.
func validFO(s string) bool {
	for o := range strings.SplitSeq(s, ":") {
		switch strings.TrimSpace(o) {
		case "0", "1", "d", "s":
		default:
			return false
		}
	}
	return true
}

// hasValidURI reports whether a rua= value holds at least one syntactically
// valid reporting URI (RFC 7489 §6.4 dmarc-uri: a URI with an optional
// "!size" suffix).
func hasValidURI(v string) bool {
	for u := range strings.SplitSeq(v, ",") {
		u = strings.TrimSpace(u)
		if i := strings.LastIndexByte(u, '!'); i >= 0 {
			u = u[:i]
		}
		if pu, err := url.Parse(u); err == nil && pu.Scheme != "" && (pu.Opaque != "" || pu.Host != "" || pu.Path != "") {
			return true
		}
	}
	return false
}

func nonEmpty(l []string) []string {
	var out []string
	for _, s := range l {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
