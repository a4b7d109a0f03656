package imapdiff

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// RuleKind is the kind of an allowed difference.
type RuleKind string

const (
	// RuleCap: Dovecot advertises Cap and the other server will not
	// (Expect "absent"), or the other way round (Expect "present"). It
	// applies to every CAPABILITY list.
	RuleCap RuleKind = "cap"
	// RuleLine: a Dovecot line matching Pattern (anchored) is expected in
	// the other transcript as Expect (a regexp replacement, $1 allowed), or
	// not at all when Expect is "-".
	RuleLine RuleKind = "line"
	// RuleExtra: a line of the other transcript matching Pattern has no
	// Dovecot counterpart. Expect must be "-".
	RuleExtra RuleKind = "extra"
)

// Rule is one allowed difference, one line of allowed-differences.txt:
//
//	kind | script | pattern | expect | reason
//
// Fields are separated by " | " (which therefore cannot occur inside a
// field); script is a script name, "*" (every script), or "name:tag",
// which limits the rule to the lines of the commands of script name with
// that tag: the command line, its literals and continuations, and every
// server line of the command's session from there to the next command of
// that session (an IDLE keeps its tag across "C: DONE"). For a line or cap
// rule the lines are those of the Dovecot transcript, for an extra rule
// those of the other server's. A tag is compared exactly (IMAP tags are
// echoed as sent) and, in a script whose sessions share tags, names the
// commands of every session. Blank lines and lines starting with # are
// comments.
type Rule struct {
	Line    int
	Kind    RuleKind
	Script  string // script name or "*"
	Tag     string // the command tag after "name:", or "" for every line
	Pattern string
	Expect  string
	Reason  string
	re      *regexp.Regexp
}

// Rules is a parsed allowed-differences file.
type Rules []Rule

// ParseRules parses and validates the allowed-differences format. scripts,
// if not nil, are the known script names a rule may name.
func ParseRules(r io.Reader, scripts []string) (Rules, error) {
	known := map[string]bool{"*": true}
	for _, s := range scripts {
		known[s] = true
	}
	var rules Rules
	sc := bufio.NewScanner(r)
	lineno := 0
	for sc.Scan() {
		lineno++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, " | ")
		if len(f) != 5 {
			return nil, fmt.Errorf("line %d: want 5 fields \"kind | script | pattern | expect | reason\", got %d", lineno, len(f))
		}
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
			if f[i] == "" {
				return nil, fmt.Errorf("line %d: field %d is empty", lineno, i+1)
			}
		}
		ru := Rule{Line: lineno, Kind: RuleKind(f[0]), Script: f[1], Pattern: f[2], Expect: f[3], Reason: f[4]}
		if name, tag, ok := strings.Cut(ru.Script, ":"); ok {
			if name == "*" || name == "" || tag == "" || strings.ContainsAny(tag, ": ") {
				return nil, fmt.Errorf("line %d: %q: a tagged rule is \"script:tag\", for one script", lineno, ru.Script)
			}
			ru.Script, ru.Tag = name, tag
		}
		if scripts != nil && !known[ru.Script] {
			return nil, fmt.Errorf("line %d: no script %q", lineno, ru.Script)
		}
		if len(ru.Reason) < 10 {
			return nil, fmt.Errorf("line %d: give a reason a reviewer can check", lineno)
		}
		switch ru.Kind {
		case RuleCap:
			if !capName.MatchString(ru.Pattern) {
				return nil, fmt.Errorf("line %d: %q is not a capability name", lineno, ru.Pattern)
			}
			if ru.Expect != "absent" && ru.Expect != "present" {
				return nil, fmt.Errorf("line %d: cap rules expect \"absent\" or \"present\", not %q", lineno, ru.Expect)
			}
		case RuleLine, RuleExtra:
			re, err := regexp.Compile("^(?:" + ru.Pattern + ")$")
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", lineno, err)
			}
			ru.re = re
			if ru.Kind == RuleExtra && ru.Expect != "-" {
				return nil, fmt.Errorf("line %d: extra rules expect \"-\"", lineno)
			}
		default:
			return nil, fmt.Errorf("line %d: unknown kind %q (cap, line, extra)", lineno, ru.Kind)
		}
		rules = append(rules, ru)
	}
	return rules, sc.Err()
}

var capName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9=+._-]*$`)

// For returns the rules that apply to script.
func (rs Rules) For(script string) Rules {
	var out Rules
	for _, r := range rs {
		if r.Script == "*" || r.Script == script {
			out = append(out, r)
		}
	}
	return out
}

// appliesTo reports whether r may apply to a line of the command with tag
// (see commandTags).
func (r Rule) appliesTo(tag string) bool {
	return r.Tag == "" || r.Tag == tag
}

// commandTags returns, for each line of a transcript, the tag of the
// command it belongs to: that of the last "C:" line of its session ("C:
// DONE" continues the IDLE before it), or "" before the session's first
// command (the greeting).
func commandTags(tr []string) []string {
	cur := map[string]string{}
	tags := make([]string, len(tr))
	for i, l := range tr {
		sess, kind, text, ok := splitLine(l)
		if !ok {
			continue
		}
		if kind == "C:" && text != "DONE" {
			tag, _, _ := strings.Cut(text, " ")
			cur[sess] = tag
		}
		tags[i] = cur[sess]
	}
	return tags
}

// HasCommand reports whether a transcript has a command with tag.
func HasCommand(tr []string, tag string) bool {
	for _, l := range tr {
		if _, kind, text, ok := splitLine(l); ok && kind == "C:" {
			if t, _, _ := strings.Cut(text, " "); t == tag && text != "DONE" {
				return true
			}
		}
	}
	return false
}

// Matches reports whether a line or cap rule matches something in a
// Dovecot transcript (within its command, for a tagged rule); a rule that
// matches nothing is stale.
func (r Rule) Matches(dovecot []string) bool {
	tags := commandTags(dovecot)
	for i, l := range dovecot {
		if !r.appliesTo(tags[i]) {
			continue
		}
		switch r.Kind {
		case RuleLine:
			if r.re.MatchString(l) {
				return true
			}
		case RuleCap:
			found, isList := false, false
			rewriteCaps(responseText(l), func(c []string) []string {
				isList = true
				for _, x := range c {
					found = found || strings.EqualFold(x, r.Pattern)
				}
				return c
			})
			if isList && found != (r.Expect == "present") {
				return true
			}
		}
	}
	return false
}

// responseText is the text of a server line without session and prefix.
func responseText(l string) string {
	_, rest, _ := strings.Cut(l, " S: ")
	// A [CAPABILITY] code inside a status response.
	if i := strings.Index(rest, "[CAPABILITY "); i >= 0 {
		return rest[i:]
	}
	return rest
}

// Expected turns a normalised Dovecot transcript into the transcript
// expected from another server under rs.
func (rs Rules) Expected(dovecot []string) []string {
	var out []string
	tags := commandTags(dovecot)
	for i, l := range dovecot {
		keep := true
		for _, r := range rs {
			if r.Kind == RuleLine && r.appliesTo(tags[i]) && r.re.MatchString(l) {
				if r.Expect == "-" {
					keep = false
					break
				}
				l = r.re.ReplaceAllString(l, r.Expect)
			}
		}
		if !keep {
			continue
		}
		out = append(out, rs.capsOf(l, tags[i]))
	}
	return out
}

// capsOf applies the cap rules to a CAPABILITY list in server line l of
// the command with tag.
func (rs Rules) capsOf(l, tag string) string {
	head, rest, ok := strings.Cut(l, " S: ")
	if !ok {
		return l
	}
	pre := ""
	if i := strings.Index(rest, "[CAPABILITY "); i >= 0 {
		pre, rest = rest[:i], rest[i:]
	}
	cut := ""
	if strings.HasPrefix(rest, "[CAPABILITY ") {
		if j := strings.IndexByte(rest, ']'); j >= 0 {
			rest, cut = rest[:j+1], rest[j+1:]
		}
	}
	rest = rewriteCaps(rest, func(caps []string) []string {
		for _, r := range rs {
			if r.Kind != RuleCap || !r.appliesTo(tag) {
				continue
			}
			var kept []string
			for _, c := range caps {
				if !strings.EqualFold(c, r.Pattern) {
					kept = append(kept, c)
				}
			}
			if r.Expect == "present" {
				kept = append(kept, r.Pattern)
			}
			caps = kept
		}
		return caps
	})
	return head + " S: " + pre + rest + cut
}

// Diff is one difference between expected and actual transcripts. A line
// missing from Other has Other == "" and OtherLine == 0; a line only in
// Other has Dovecot == "" and DovecotLine == 0. Line numbers count from 1.
type Diff struct {
	DovecotLine int
	Dovecot     string
	OtherLine   int
	Other       string
}

func (d Diff) String() string {
	var parts []string
	if d.DovecotLine > 0 {
		parts = append(parts, fmt.Sprintf("-%d: %s", d.DovecotLine, d.Dovecot))
	}
	if d.OtherLine > 0 {
		parts = append(parts, fmt.Sprintf("+%d: %s", d.OtherLine, d.Other))
	}
	return strings.Join(parts, "\n")
}

// Compare compares a normalised Dovecot transcript with a normalised one of
// another server, allowing the differences in rules (already selected for
// the script with Rules.For). It returns nil when they agree.
func Compare(dovecot, other []string, rules Rules) []Diff {
	want := rules.Expected(dovecot)
	var got []string
	var gotLine []int
	tags := commandTags(other)
	for i, l := range other {
		extra := false
		for _, r := range rules {
			if r.Kind == RuleExtra && r.appliesTo(tags[i]) && r.re.MatchString(l) {
				extra = true
				break
			}
		}
		if !extra {
			got = append(got, l)
			gotLine = append(gotLine, i+1)
		}
	}
	// Line numbers of want in the Dovecot transcript are lost by line
	// rules; number them in the expected transcript.
	return lcsDiff(want, got, gotLine)
}

// lcsDiff is a longest-common-subsequence line diff; consecutive removals
// and additions are paired into one Diff.
func lcsDiff(a, b []string, bLine []int) []Diff {
	n, m := len(a), len(b)
	l := make([][]int, n+1)
	for i := range l {
		l[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				l[i][j] = l[i+1][j+1] + 1
			} else {
				l[i][j] = max(l[i+1][j], l[i][j+1])
			}
		}
	}
	var diffs []Diff
	var dels, adds []Diff
	flush := func() {
		for k := 0; k < max(len(dels), len(adds)); k++ {
			var d Diff
			if k < len(dels) {
				d.DovecotLine, d.Dovecot = dels[k].DovecotLine, dels[k].Dovecot
			}
			if k < len(adds) {
				d.OtherLine, d.Other = adds[k].OtherLine, adds[k].Other
			}
			diffs = append(diffs, d)
		}
		dels, adds = nil, nil
	}
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			flush()
			i++
			j++
		case j < m && (i == n || l[i][j+1] >= l[i+1][j]):
			adds = append(adds, Diff{OtherLine: bLine[j], Other: b[j]})
			j++
		default:
			dels = append(dels, Diff{DovecotLine: i + 1, Dovecot: a[i]})
			i++
		}
	}
	flush()
	return diffs
}
