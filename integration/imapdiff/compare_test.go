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
