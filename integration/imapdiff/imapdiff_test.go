//go:build linux

package imapdiff

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.dovecot.golden from a run against Dovecot")

// goldenPath is the normalised transcript of script name against target.
func goldenPath(name, target string) string {
	return filepath.Join("testdata", name+"."+target+".golden")
}

// otherTargets are the servers compared with Dovecot's golden transcripts.
// Each entry starts its server (skipping or failing like startDovecot) and
// returns a function giving the login for one run of one script. See the
// package comment for adding moxd.
var otherTargets = []struct {
	name  string
	start func(t *testing.T) (Target, func(t *testing.T, user string) (string, string))
}{}

// TestDovecot runs every script twice against Dovecot, each run with its
// own user: the two normalised transcripts must be identical (otherwise
// normalisation misses something), and equal to the golden file.
func TestDovecot(t *testing.T) {
	scripts, err := LoadScripts("testdata")
	if err != nil {
		t.Fatal(err)
	}
	tg := startDovecot(t)
	for _, s := range scripts {
		t.Run(s.Name, func(t *testing.T) {
			t.Parallel()
			var runs [2][]string
			for i := range runs {
				rt := tg
				rt.User = s.Name + "-" + string(rune('1'+i))
				raw, err := Run(rt, s)
				if err != nil {
					t.Fatalf("run %d: %v\nraw transcript:\n%s", i+1, err, strings.Join(raw, "\n"))
				}
				runs[i] = Normalize(raw, tg.Norm)
			}
			if d := lineDiff(runs[0], runs[1]); d != "" {
				t.Fatalf("two runs against Dovecot differ after normalisation (-run1 +run2):\n%s", d)
			}
			got := strings.Join(runs[0], "\n") + "\n"
			p := goldenPath(s.Name, "dovecot")
			if *update {
				if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(p)
			if err != nil {
				t.Fatalf("%v (create it with go test ./integration/imapdiff -update, then review it)", err)
			}
			if d := lineDiff(strings.Split(strings.TrimSuffix(string(want), "\n"), "\n"), runs[0]); d != "" {
				t.Errorf("transcript differs from %s (-golden +got); after review: -update\n%s", p, d)
			}
		})
	}
}

// lineDiff renders Compare without rules, for test messages.
func lineDiff(a, b []string) string {
	var sb strings.Builder
	lines := make([]int, len(b))
	for i := range lines {
		lines[i] = i + 1
	}
	for _, d := range lcsDiff(a, b, lines) {
		sb.WriteString(d.String())
		sb.WriteString("\n")
	}
	return sb.String()
}

func loadRules(t *testing.T, scripts []*Script) Rules {
	t.Helper()
	var names []string
	for _, s := range scripts {
		names = append(names, s.Name)
	}
	f, err := os.Open(filepath.Join("testdata", "allowed-differences.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rules, err := ParseRules(f, names)
	if err != nil {
		t.Fatalf("allowed-differences.txt: %v", err)
	}
	return rules
}

func readGolden(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile(goldenPath(name, "dovecot"))
	if err != nil {
		t.Fatalf("%v (create it with go test ./integration/imapdiff -update, then review it)", err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// TestAllowedDifferences checks the file parses, names existing scripts
// (and, for a tagged rule, a command of the script), and that no rule is
// stale (each matches some Dovecot golden transcript, within its command
// for a tagged rule).
func TestAllowedDifferences(t *testing.T) {
	scripts, err := LoadScripts("testdata")
	if err != nil {
		t.Fatal(err)
	}
	rules := loadRules(t, scripts)
	if len(rules) == 0 {
		t.Fatal("no rules parsed")
	}
	goldens := map[string][]string{}
	for _, s := range scripts {
		goldens[s.Name] = readGolden(t, s.Name)
	}
	for _, r := range rules {
		if r.Tag != "" && !HasCommand(goldens[r.Script], r.Tag) {
			t.Errorf("line %d: script %s has no command tagged %q", r.Line, r.Script, r.Tag)
			continue
		}
		used := false
		for name, g := range goldens {
			if (r.Script == "*" || r.Script == name) && r.Matches(g) {
				used = true
			}
		}
		if !used && r.Kind != RuleExtra {
			t.Errorf("line %d: rule %s %q matches no Dovecot golden transcript: stale, remove it", r.Line, r.Kind, r.Pattern)
		}
	}
}

// TestOtherTargets runs the scripts against each entry of otherTargets and
// compares with Dovecot's golden transcripts under allowed-differences.txt.
func TestOtherTargets(t *testing.T) {
	if len(otherTargets) == 0 {
		t.Skip("no other target yet (moxd's IMAP server is not built); see the package comment")
	}
	scripts, err := LoadScripts("testdata")
	if err != nil {
		t.Fatal(err)
	}
	rules := loadRules(t, scripts)
	for _, ot := range otherTargets {
		t.Run(ot.name, func(t *testing.T) {
			tg, login := ot.start(t)
			for _, s := range scripts {
				t.Run(s.Name, func(t *testing.T) {
					rt := tg
					rt.User, rt.Password = login(t, s.Name)
					raw, err := Run(rt, s)
					if err != nil {
						t.Fatalf("%v\nraw transcript:\n%s", err, strings.Join(raw, "\n"))
					}
					got := Normalize(raw, tg.Norm)
					for _, d := range Compare(readGolden(t, s.Name), got, rules.For(s.Name)) {
						t.Errorf("%s vs dovecot (-expected +%s):\n%s", s.Name, tg.Name, d)
					}
				})
			}
		})
	}
}
