package imapdiff

import (
	"fmt"
	"regexp"
	"slices"
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
//   - with Sizes, sizes become <SIZE>;
//   - where order carries no meaning, a canonical order (canonicalOrder):
//     flags in FLAGS and PERMANENTFLAGS lists and mailbox attributes in
//     LIST/LSUB responses are sorted, the data items of a FETCH response
//     too, the untagged responses of SELECT/EXAMINE are put in one order,
//     and the LIST/LSUB responses of one command are sorted by name.
//     This runs first, so <MODSEQ-n> numbers the values in that order.
//
// Client lines and directives are left as written.
func Normalize(raw []string, opt NormalizeOptions) []string {
	now := opt.Now
	if now.IsZero() {
		now = time.Now()
	}
	n := &normalizer{opt: opt, now: now, modseq: map[string]int{}}
	ordered := canonicalOrder(raw)
	out := make([]string, 0, len(ordered))
	for _, l := range ordered {
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

// Canonical order. RFC 9051 gives no meaning to the order of the flags in
// a flag list (§7.3.4 FLAGS, §7.1 PERMANENTFLAGS, §7.5.2 FETCH FLAGS: a
// set), of mailbox attributes (§7.3.1), of the data items of one FETCH
// response (§7.5.2: "data item names and their values"), of the untagged
// data of SELECT/EXAMINE (§6.3.2 lists what is sent, not in which order)
// or of the LIST responses of one command (§6.3.9). Servers differ in
// all of these (Dovecot lists mailboxes in storage order, moxd by name);
// canonicalOrder rewrites them into one order so that only behaviour is
// compared. A response with a literal in a place this does not expect is
// left as it is.

// transcript line parts: session, kind ("C:", "S:", ...), text.
func splitLine(l string) (sess, kind, text string, ok bool) {
	sess, rest, ok := strings.Cut(l, " ")
	if !ok || len(rest) < 2 {
		return "", "", "", false
	}
	return sess, rest[:2], strings.TrimPrefix(rest[2:], " "), true
}

func canonicalOrder(raw []string) []string {
	out := slices.Clone(raw)
	for i := range out {
		if sess, kind, text, ok := splitLine(out[i]); ok && (kind == "S:" || kind == "S+") {
			if sorted := sortFlagLists(text); sorted != text {
				out[i] = sess + " " + kind + " " + sorted
			}
		}
	}
	out = sortFetchItems(out)
	for i := 0; i < len(out); i++ {
		sess, kind, text, ok := splitLine(out[i])
		if !ok || kind != "C:" {
			continue
		}
		f := strings.Fields(text)
		if len(f) < 2 {
			continue
		}
		end, ok := responseEnd(out, i, sess, f[0])
		if !ok {
			continue
		}
		switch strings.ToUpper(f[1]) {
		case "SELECT", "EXAMINE":
			reorderSelect(out[i+1:end], sess)
		case "LIST", "LSUB":
			reorderList(out[i+1:end], sess)
		}
		i = end - 1
	}
	return out
}

// responseEnd returns the index of the tagged completion of the command
// at i (session sess, tag), if the transcript has one.
func responseEnd(l []string, i int, sess, tag string) (int, bool) {
	for j := i + 1; j < len(l); j++ {
		s, kind, text, ok := splitLine(l[j])
		if !ok || s != sess {
			continue
		}
		if kind == "S|" || kind == "S+" || kind == "C+" || kind == "L:" {
			continue
		}
		if kind != "S:" {
			return 0, false
		}
		if t, _, _ := strings.Cut(text, " "); t == tag {
			return j, true
		}
	}
	return 0, false
}

// plainResponses returns the texts of the untagged one-line responses of
// session sess in lines, or false if a response spans several lines or
// another session is interleaved.
func plainResponses(lines []string, sess string) ([]string, bool) {
	texts := make([]string, len(lines))
	for k, l := range lines {
		s, kind, text, ok := splitLine(l)
		if !ok || s != sess || kind != "S:" || !strings.HasPrefix(text, "* ") || literalEnd.MatchString(text) {
			return nil, false
		}
		texts[k] = text
	}
	return texts, true
}

// selectRank is the canonical position of an untagged SELECT/EXAMINE
// response; other responses (VANISHED, FETCH of QRESYNC) keep their order
// after these.
func selectRank(text string) int {
	up := strings.ToUpper(text)
	for k, p := range []string{"* OK [CLOSED]", "* FLAGS ", "* OK [PERMANENTFLAGS ", "EXISTS", "RECENT", "* OK [UNSEEN ", "* OK [UIDVALIDITY ", "* OK [UIDNEXT ", "* OK [HIGHESTMODSEQ ", "* OK [NOMODSEQ]", "* LIST "} {
		if p == "EXISTS" || p == "RECENT" {
			if f := strings.Fields(up); len(f) == 3 && f[2] == p {
				return k
			}
			continue
		}
		if strings.HasPrefix(up, p) {
			return k
		}
	}
	return 100
}

func reorderSelect(lines []string, sess string) {
	texts, ok := plainResponses(lines, sess)
	if !ok {
		return
	}
	slices.SortStableFunc(texts, func(a, b string) int { return selectRank(a) - selectRank(b) })
	for k, t := range texts {
		lines[k] = sess + " S: " + t
	}
}

// reorderList sorts the LIST/LSUB responses of one command by mailbox
// name, each with the untagged responses that follow it (the STATUS of
// LIST-STATUS, RFC 5819 §2).
func reorderList(lines []string, sess string) {
	texts, ok := plainResponses(lines, sess)
	if !ok || len(texts) == 0 {
		return
	}
	isList := func(t string) bool {
		up := strings.ToUpper(t)
		return strings.HasPrefix(up, "* LIST ") || strings.HasPrefix(up, "* LSUB ")
	}
	if !isList(texts[0]) {
		return
	}
	var groups [][]string
	for _, t := range texts {
		if isList(t) {
			groups = append(groups, nil)
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], t)
	}
	name := func(t string) string {
		// After the attribute list and the delimiter.
		if i := strings.IndexByte(t, ')'); i >= 0 {
			return t[i+1:]
		}
		return t
	}
	slices.SortStableFunc(groups, func(a, b []string) int { return strings.Compare(name(a[0]), name(b[0])) })
	k := 0
	for _, g := range groups {
		for _, t := range g {
			lines[k] = sess + " S: " + t
			k++
		}
	}
}

// flagListRe finds the flag lists whose order means nothing: FLAGS
// (response and FETCH item), PERMANENTFLAGS, and the attributes of
// LIST/LSUB.
var flagListRe = regexp.MustCompile(`(?i)(\bFLAGS \(|\bPERMANENTFLAGS \(|^\* (?:LIST|LSUB) \()([^()]*)\)`)

func sortFlagLists(text string) string {
	return flagListRe.ReplaceAllStringFunc(text, func(m string) string {
		p := flagListRe.FindStringSubmatch(m)
		f := strings.Fields(p[2])
		slices.SortFunc(f, func(a, b string) int { return strings.Compare(strings.ToUpper(a), strings.ToUpper(b)) })
		return p[1] + strings.Join(f, " ") + ")"
	})
}

// fetchRe is the start of a FETCH response.
var fetchRe = regexp.MustCompile(`(?i)^(\* \d+ FETCH \()(.*)$`)

// fetchItem is one data item of a FETCH response: text is "NAME value",
// or for a literal "NAME {n}" with the literal's transcript lines.
type fetchItem struct {
	text string
	lit  []string
}

// sortFetchItems puts the data items of each FETCH response in a
// canonical order: items without literal sorted by name, then those with a
// literal, sorted by name. A response after a literal continues on an
// "S+" line; the rewritten one continues with " NAME ..." or ")".
func sortFetchItems(in []string) []string {
	out := make([]string, 0, len(in))
	for i := 0; i < len(in); i++ {
		sess, kind, text, ok := splitLine(in[i])
		var m []string
		if ok && kind == "S:" {
			m = fetchRe.FindStringSubmatch(text)
		}
		if m == nil {
			out = append(out, in[i])
			continue
		}
		items, next, ok := parseFetch(in, i, sess, m[2])
		if !ok {
			out = append(out, in[i])
			continue
		}
		var plain, lits []fetchItem
		for _, it := range items {
			if it.lit != nil {
				lits = append(lits, it)
			} else {
				plain = append(plain, it)
			}
		}
		byName := func(a, b fetchItem) int {
			return strings.Compare(strings.ToUpper(itemName(a.text)), strings.ToUpper(itemName(b.text)))
		}
		slices.SortStableFunc(plain, byName)
		slices.SortStableFunc(lits, byName)
		var texts []string
		for _, it := range plain {
			texts = append(texts, it.text)
		}
		line := sess + " S: " + m[1]
		for _, it := range lits {
			texts = append(texts, it.text)
			out = append(out, line+strings.Join(texts, " "))
			out = append(out, it.lit...)
			line, texts = sess+" S+ ", nil
			line += " "
		}
		if len(lits) > 0 && len(texts) == 0 {
			line = sess + " S+ "
		}
		out = append(out, line+strings.Join(texts, " ")+")")
		i = next - 1
	}
	return out
}

// itemName is the name of a FETCH data item ("BODY[HEADER]<0>").
func itemName(item string) string {
	name, _ := splitItem(item)
	return name
}

// parseFetch reads the items of the FETCH response whose first line's
// text after "(" is rest, at in[i], and returns them and the index after
// the response.
func parseFetch(in []string, i int, sess, rest string) ([]fetchItem, int, bool) {
	var items []fetchItem
	j := i + 1
	for {
		rest = strings.TrimLeft(rest, " ")
		if rest == ")" {
			return items, j, true
		}
		if rest == "" {
			return nil, 0, false
		}
		name, after := splitItem(rest)
		if name == "" || !strings.HasPrefix(after, " ") {
			return nil, 0, false
		}
		after = after[1:]
		if lm := literalEnd.FindString(after); lm != "" && lm == after {
			// The value is a literal ending this line; its lines follow,
			// then the response continues on an S+ line.
			it := fetchItem{text: name + " " + after}
			for j < len(in) {
				s, kind, _, ok := splitLine(in[j])
				if !ok || s != sess || kind != "S|" {
					break
				}
				it.lit = append(it.lit, in[j])
				j++
			}
			if j >= len(in) {
				return nil, 0, false
			}
			s, kind, text, ok := splitLine(in[j])
			if !ok || s != sess || kind != "S+" {
				return nil, 0, false
			}
			if it.lit == nil {
				it.lit = []string{}
			}
			items = append(items, it)
			rest = text
			j++
			continue
		}
		n := valueLen(after)
		if n <= 0 {
			return nil, 0, false
		}
		items = append(items, fetchItem{text: name + " " + after[:n]})
		rest = after[n:]
	}
}

// splitItem splits "NAME rest" where NAME may hold a section in brackets
// (with spaces) and a partial <...>.
func splitItem(s string) (name, rest string) {
	i := 0
	for i < len(s) && s[i] != ' ' && s[i] != '[' && s[i] != ')' {
		i++
	}
	if i < len(s) && s[i] == '[' {
		j := strings.IndexByte(s[i:], ']')
		if j < 0 {
			return "", s
		}
		i += j + 1
		if i < len(s) && s[i] == '<' {
			k := strings.IndexByte(s[i:], '>')
			if k < 0 {
				return "", s
			}
			i += k + 1
		}
	}
	return s[:i], s[i:]
}

// valueLen is the length of the IMAP value at the start of s: a
// parenthesised list, a quoted string or an atom; 0 if malformed.
func valueLen(s string) int {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' {
					i++
				}
			}
			if i >= len(s) {
				return 0
			}
		case c == '(':
			depth++
		case c == ')':
			if depth == 0 {
				return i
			}
			depth--
			if depth == 0 {
				return i + 1
			}
		case c == ' ' && depth == 0:
			return i
		case c == '{' && depth > 0:
			// A literal inside a list (e.g. in ENVELOPE) is not handled.
			return 0
		}
	}
	return 0
}
