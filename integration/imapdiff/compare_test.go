package imapdiff

import (
	"strings"
	"testing"
)

const testRules = `# comment
cap | * | IMAP4rev2 | present | Dovecot 2.3 has no IMAP4rev2
cap | * | CATENATE | absent | moxd does not implement CATENATE
line | * | (\w+) S: \* OK \[UNSEEN \d+\] | - | RFC 9051 dropped UNSEEN
line | sel | (\w+) S: \* (\d+) RECENT | $1 S: * $2 RECENT-ISH | fabricated rewrite for the test
extra | * | A S: \* OK \[NEWCODE\] | - | fabricated extra line of the other server
`

func TestCompare(t *testing.T) {
	rules, err := ParseRules(strings.NewReader(testRules), []string{"sel"})
	if err != nil {
		t.Fatal(err)
	}
	dovecot := []string{
		"A S: * OK [CAPABILITY CATENATE IMAP4rev1 LITERAL+]",
		"A C: b SELECT INBOX",
		"A S: * 2 EXISTS",
		"A S: * 0 RECENT",
		"A S: * OK [UNSEEN 1]",
		"A S: b OK [READ-WRITE]",
	}
	same := []string{
		"A S: * OK [CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+]",
		"A C: b SELECT INBOX",
		"A S: * 2 EXISTS",
		"A S: * 0 RECENT-ISH",
		"A S: * OK [NEWCODE]",
		"A S: b OK [READ-WRITE]",
	}
	if d := Compare(dovecot, same, rules.For("sel")); d != nil {
		t.Errorf("allowed differences reported: %v", d)
	}
	// Without the script-specific rule the RECENT line differs.
	d := Compare(dovecot, same, rules.For("other"))
	if len(d) != 1 || d[0].Dovecot != "A S: * 0 RECENT" || d[0].Other != "A S: * 0 RECENT-ISH" || d[0].OtherLine != 4 {
		t.Errorf("got %v, want one changed RECENT line", d)
	}
	// A real difference: missing EXISTS, different completion, extra line.
	other := []string{
		"A S: * OK [CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+]",
		"A C: b SELECT INBOX",
		"A S: * 0 RECENT-ISH",
		"A S: b NO [NONEXISTENT]",
		"A S: * BYE",
	}
	d = Compare(dovecot, other, rules.For("sel"))
	var sb strings.Builder
	for _, x := range d {
		sb.WriteString(x.String() + "\n")
	}
	want := "-3: A S: * 2 EXISTS\n-5: A S: b OK [READ-WRITE]\n+4: A S: b NO [NONEXISTENT]\n+5: A S: * BYE\n"
	if sb.String() != want {
		t.Errorf("diff:\n%s\nwant:\n%s", sb.String(), want)
	}
	// Cap rules also apply inside tagged [CAPABILITY] codes and * CAPABILITY.
	exp := rules.Expected([]string{"A S: a OK [CAPABILITY CATENATE MOVE]", "A S: * CAPABILITY CATENATE MOVE"})
	if exp[0] != "A S: a OK [CAPABILITY IMAP4rev2 MOVE]" || exp[1] != "A S: * CAPABILITY IMAP4rev2 MOVE" {
		t.Errorf("Expected: %q", exp)
	}
}

func TestRuleMatches(t *testing.T) {
	rules, err := ParseRules(strings.NewReader(testRules), nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := []string{"A S: * CAPABILITY IMAP4rev1 CATENATE", "A C: b NOOP", "A S: b OK"}
	for _, r := range rules {
		want := r.Kind == RuleCap
		if got := r.Matches(tr); got != want {
			t.Errorf("rule %d %s %s: Matches = %v, want %v", r.Line, r.Kind, r.Pattern, got, want)
		}
	}
	if rules[0].Matches([]string{"A S: * CAPABILITY IMAP4rev2"}) {
		t.Error("IMAP4rev2 present rule matches a list that has IMAP4rev2")
	}
}

func TestParseRulesErrors(t *testing.T) {
	for _, bad := range []string{
		"cap | * | IMAP4rev2 | present\n",                      // 4 fields
		"cap | * | IMAP4rev2 | maybe | a long enough reason\n", // bad expect
		"cap | * | NO SPACE | absent | a long enough reason\n", // bad name
		"line | * | ( | - | a long enough reason\n",            // bad regexp
		"extra | * | x | y | a long enough reason\n",           // extra must be -
		"line | nosuch | x | - | a long enough reason\n",       // unknown script
		"what | * | x | - | a long enough reason\n",            // unknown kind
		"cap | * | CATENATE | absent | short\n",                // reason too short
		"cap |  | CATENATE | absent | a long enough reason\n",  // empty field
	} {
		if _, err := ParseRules(strings.NewReader(bad), []string{"sel"}); err == nil {
			t.Errorf("ParseRules(%q) accepted", bad)
		}
	}
}

// A tagged rule ("script:tag") applies to the lines of that command only;
// the same line elsewhere is compared as it is.
func TestTaggedRules(t *testing.T) {
	const tagged = `line | sel:v | A S: \* SEARCH 2 | A S: * SEARCH | fabricated: only the answer to v changes
extra | sel:d | A S: \+ | - | fabricated: a continuation the other server sends in d
cap | sel:c | MOVE | absent | fabricated: one command's list lacks MOVE
line | sel:x | [AB] S: \* 1 EXISTS | - | fabricated: in x of either session; B's IDLE x goes on after DONE
`
	rules, err := ParseRules(strings.NewReader(tagged), []string{"sel"})
	if err != nil {
		t.Fatal(err)
	}
	if rules[0].Script != "sel" || rules[0].Tag != "v" {
		t.Fatalf("parsed script %q tag %q", rules[0].Script, rules[0].Tag)
	}
	dovecot := []string{
		"A S: * OK [CAPABILITY IMAP4rev1 MOVE]",
		"A C: u SEARCH NEW",
		"A S: * SEARCH 2",
		"A S: u OK",
		"A C: v SEARCH NEW",
		"A S: * SEARCH 2",
		"A S: v OK",
		"A C: c CAPABILITY",
		"A S: * CAPABILITY IMAP4rev1 MOVE",
		"A S: c OK",
		"A C: d APPEND x {1}",
		"A S: d NO",
		"B C: x IDLE",
		"B S: +",
		"A C: e NOOP",
		"A S: * 1 EXISTS",
		"A S: e OK",
		"B C: DONE",
		"B S: * 1 EXISTS",
		"B S: x OK",
		"A C: x NOOP",
		"A S: * 1 EXISTS",
		"A S: x OK",
	}
	want := []string{
		"A S: * OK [CAPABILITY IMAP4rev1 MOVE]",
		"A C: u SEARCH NEW",
		"A S: * SEARCH 2",
		"A S: u OK",
		"A C: v SEARCH NEW",
		"A S: * SEARCH",
		"A S: v OK",
		"A C: c CAPABILITY",
		"A S: * CAPABILITY IMAP4rev1",
		"A S: c OK",
		"A C: d APPEND x {1}",
		"A S: d NO",
		"B C: x IDLE",
		"B S: +",
		"A C: e NOOP",
		"A S: * 1 EXISTS",
		"A S: e OK",
		"B C: DONE",
		"B S: x OK",
		"A C: x NOOP",
		"A S: x OK",
	}
	rs := rules.For("sel")
	if got := rs.Expected(dovecot); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Expected:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The extra rule drops "+" in d only.
	other := append([]string{}, want[:11]...)
	other = append(other, "A S: +", "A S: d NO")
	other = append(other, want[12:]...)
	if d := Compare(dovecot, other, rs); d != nil {
		t.Errorf("allowed differences reported: %v", d)
	}
	other[5] = "A S: +"
	if d := Compare(dovecot, other, rs); len(d) != 1 || d[0].Other != "A S: +" || d[0].OtherLine != 6 {
		t.Errorf("a \"+\" in v: got %v, want it reported", d)
	}
	// Matches looks within the command only.
	if !rules[0].Matches(dovecot) || rules[0].Matches(dovecot[:5]) {
		t.Error("tagged line rule: Matches should see v's SEARCH and not u's")
	}
	if !rules[2].Matches(dovecot) || rules[2].Matches(dovecot[:8]) {
		t.Error("tagged cap rule: Matches should see c's list and not the greeting's")
	}
	if !HasCommand(dovecot, "x") || HasCommand(dovecot, "DONE") || HasCommand(dovecot, "w") {
		t.Error("HasCommand")
	}
	for _, bad := range []string{
		"line | *:v | x | - | a long enough reason\n",      // tag without script
		"line | sel: | x | - | a long enough reason\n",     // empty tag
		"line | :v | x | - | a long enough reason\n",       // empty script
		"line | nosuch:v | x | - | a long enough reason\n", // unknown script
		"line | sel:v:w | x | - | a long enough reason\n",  // two tags
	} {
		if _, err := ParseRules(strings.NewReader(bad), []string{"sel"}); err == nil {
			t.Errorf("ParseRules(%q) accepted", bad)
		}
	}
}
