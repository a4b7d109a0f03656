package imapdiff

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
)

// NormalizeOptions are the per-target knobs of normalisation.
type NormalizeOptions struct {
	// Sizes replaces RFC822.SIZE, STATUS SIZE and server literal lengths
	// by <SIZE>, for a server that adds headers to stored messages.
	Sizes bool
	// Now is the reference for "server-assigned" timestamps; zero means
	// time.Now().
	Now time.Time
}

// Normalize rewrites a raw transcript so that two runs against the same
// server, or runs against two servers, differ only in behaviour:
//
//   - text after the status (and response code) of OK/NO/BAD/BYE/PREAUTH,
//     tagged or untagged, and of "+" continuations is dropped: it is human
//     text (and Dovecot puts timings in it);
//   - CAPABILITY lists, in responses and in [CAPABILITY] codes, are sorted;
//   - UIDVALIDITY values (in codes, STATUS, APPENDUID, COPYUID) become
//     <UIDVALIDITY>;
//   - MODSEQ and HIGHESTMODSEQ values become <MODSEQ-n>, n numbering the
//     distinct values by first appearance in the transcript, so equal
//     values stay equal;
//   - timestamps within two days of now (INTERNALDATE "dd-Mon-yyyy ..."
//     and RFC 5322 dates) become <DATE>: the server chose them. Dates the
//     script wrote (APPEND date, Date: headers, all in the past) stay, so
//     the transcript still shows that they were kept;
//   - "* ID (...)" becomes "* ID <ID>";
//   - with Sizes, sizes become <SIZE>.
//
// Client lines and directives are left as written.
func Normalize(raw []string, opt NormalizeOptions) []string {
	now := opt.Now
	if now.IsZero() {
		now = time.Now()
	}
	n := &normalizer{opt: opt, now: now, modseq: map[string]int{}}
	out := make([]string, 0, len(raw))
	for _, l := range raw {
		out = append(out, n.line(l))
	}
	return out
}

type normalizer struct {
	opt    NormalizeOptions
	now    time.Time
	modseq map[string]int
}

func (n *normalizer) line(l string) string {
	sess, rest, ok := strings.Cut(l, " ")
	if !ok || len(rest) < 3 {
		return l
	}
	kind, text := rest[:2], strings.TrimPrefix(rest[2:], " ")
	switch kind {
	case "S:":
		text = n.response(text, true)
	case "S+":
		text = n.response(text, false)
	case "S|":
		text = n.dates(text)
	default:
		return l
	}
	if text == "" {
		return sess + " " + kind
	}
	return sess + " " + kind + " " + text
}

var (
	// statusResp: tag or "*", status, optional code, optional text.
	statusResp = regexp.MustCompile(`^(\S+) (?i:(OK|NO|BAD|BYE|PREAUTH))(?: (\[[^\]]*\]))?(?: .*)?$`)
	capList    = regexp.MustCompile(`(?i)^(\* CAPABILITY |\[CAPABILITY )([^\]]*)(\]?)$`)
	uidvRe     = regexp.MustCompile(`(?i)\b(UIDVALIDITY|APPENDUID|COPYUID) \d+`)
	modseqRe   = regexp.MustCompile(`(?i)\b((?:HIGHEST)?MODSEQ) (\(?)(\d+)`)
	idResp     = regexp.MustCompile(`(?i)^\* ID .*$`)
	sizeRe     = regexp.MustCompile(`(?i)\b(RFC822\.SIZE|SIZE) \d+`)
	litSizeRe  = regexp.MustCompile(`\{\d+\}$`)
	// INTERNALDATE form (RFC 3501 date-time), quoted.
	internalDateRe = regexp.MustCompile(`"[ 0-9]\d-[A-Za-z]{3}-\d{4} \d\d:\d\d:\d\d [+-]\d{4}"`)
	// RFC 5322 date-time, day name optional.
	rfc5322DateRe = regexp.MustCompile(`(?:[A-Za-z]{3}, )?\d{1,2} [A-Za-z]{3} \d{4} \d\d:\d\d(?::\d\d)? [+-]\d{4}`)
)

// response normalises a server line; first says it starts a response
// (rather than continuing one after a literal).
func (n *normalizer) response(text string, first bool) string {
	if first {
		if text == "+" || strings.HasPrefix(text, "+ ") {
			return "+"
		}
		if m := statusResp.FindStringSubmatch(text); m != nil {
			text = m[1] + " " + strings.ToUpper(m[2])
			if m[3] != "" {
				text += " " + sortCaps(m[3])
			}
		}
		if idResp.MatchString(text) {
			return "* ID <ID>"
		}
		text = sortCaps(text)
	}
	text = uidvRe.ReplaceAllString(text, "$1 <UIDVALIDITY>")
	text = modseqRe.ReplaceAllStringFunc(text, func(m string) string {
		p := modseqRe.FindStringSubmatch(m)
		id, ok := n.modseq[p[3]]
		if !ok {
			id = len(n.modseq) + 1
			n.modseq[p[3]] = id
		}
		return fmt.Sprintf("%s %s<MODSEQ-%d>", p[1], p[2], id)
	})
	if n.opt.Sizes {
		text = sizeRe.ReplaceAllString(text, "$1 <SIZE>")
		text = litSizeRe.ReplaceAllString(text, "{<SIZE>}")
	}
	return n.dates(text)
}

// sortCaps sorts the list of a "* CAPABILITY" response or a [CAPABILITY]
// code; other text is returned unchanged.
func sortCaps(text string) string {
	return rewriteCaps(text, func(c []string) []string { return c })
}

// rewriteCaps applies f to a capability list and returns the line with the
// result sorted (case-insensitively, as capability names are).
func rewriteCaps(text string, f func([]string) []string) string {
	m := capList.FindStringSubmatch(text)
	if m == nil {
		return text
	}
	caps := f(strings.Fields(m[2]))
	sort.SliceStable(caps, func(i, j int) bool { return strings.ToUpper(caps[i]) < strings.ToUpper(caps[j]) })
	return m[1] + strings.Join(caps, " ") + m[3]
}

func (n *normalizer) dates(text string) string {
	near := func(layouts []string) func(string) string {
		return func(s string) string {
			v := strings.Trim(s, `"`)
			for _, layout := range layouts {
				t, err := time.Parse(layout, v)
				if err != nil {
					continue
				}
				if d := n.now.Sub(t); d < 48*time.Hour && d > -48*time.Hour {
					return strings.Replace(s, v, "<DATE>", 1)
				}
				return s
			}
			return s
		}
	}
	text = internalDateRe.ReplaceAllStringFunc(text, near([]string{"_2-Jan-2006 15:04:05 -0700"}))
	text = rfc5322DateRe.ReplaceAllStringFunc(text, near([]string{
		"Mon, 2 Jan 2006 15:04:05 -0700", "2 Jan 2006 15:04:05 -0700",
		"Mon, 2 Jan 2006 15:04 -0700", "2 Jan 2006 15:04 -0700",
	}))
	return text
}
