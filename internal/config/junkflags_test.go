package config

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestJunkFlagsConfig(t *testing.T) {
	const host = "hostname = \"mail.example.org\"\n"
	const acct = "[[domain]]\nname = \"example.org\"\n[[account]]\nname = \"pm\"\naddresses = [\"postmaster@example.org\"]\n"

	// Valid rules: the flag is normalized, patterns match whole names
	// without case.
	c, err := load(writeFiles(t, host, acct+"automatic_junk_flags = true\n"+
		"[[account.junk_flag]]\nmailbox = \"lists/.*\"\nflag = \"$junk\"\n"+
		"[[account.junk_flag]]\nmailbox = '(archive|sent)'\nflag = \"NONE\"\n"+
		"[[account.junk_flag]]\nmailbox = \".*\"\nflag = \"$NOTJUNK\"\n"), testEnv(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	a := c.Dynamic.Accounts[0]
	want := []JunkFlag{{"lists/.*", JunkFlagJunk}, {"(archive|sent)", JunkFlagNone}, {".*", JunkFlagNotJunk}}
	if !reflect.DeepEqual(a.JunkFlags, want) || !a.JunkFlagsOn() {
		t.Errorf("junk flags %+v (on %v), want %+v, on", a.JunkFlags, a.JunkFlagsOn(), want)
	}
	re, err := JunkFlagPattern(a.JunkFlags[1].Mailbox)
	if err != nil {
		t.Fatal(err)
	}
	for name, match := range map[string]bool{"Archive": true, "SENT": true, "Archive/2024": false, "My Archive": false, "sent|x": false} {
		if re.MatchString(name) != match {
			t.Errorf("pattern %q on %q: match %v, want %v", a.JunkFlags[1].Mailbox, name, !match, match)
		}
	}

	// Absent means on; false turns them off.
	c, err = load(writeFiles(t, host, acct), testEnv(0, 0))
	if err != nil || !c.Dynamic.Accounts[0].JunkFlagsOn() {
		t.Fatalf("absent: on %v, %v", err == nil && c.Dynamic.Accounts[0].JunkFlagsOn(), err)
	}
	c, err = load(writeFiles(t, host, acct+"automatic_junk_flags = false\n"), testEnv(0, 0))
	if err != nil || c.Dynamic.Accounts[0].JunkFlagsOn() {
		t.Fatalf("false: on %v, %v", err == nil && c.Dynamic.Accounts[0].JunkFlagsOn(), err)
	}

	for _, tc := range []struct {
		name, rules, want string
	}{
		{"bad pattern", "[[account.junk_flag]]\nmailbox = \"(junk\"\nflag = \"$Junk\"\n",
			`{domains}:7: account[0].junk_flag[0].mailbox: "(junk" is not a regular expression: missing closing ): "(junk" (syntax: https://pkg.go.dev/regexp/syntax)`},
		{"pattern escaping its group", "[[account.junk_flag]]\nmailbox = \"a)|(b\"\nflag = \"$Junk\"\n",
			`{domains}:7: account[0].junk_flag[0].mailbox: "a)|(b" is not a regular expression: unexpected ): "a)|(b" (syntax: https://pkg.go.dev/regexp/syntax)`},
		{"no pattern", "[[account.junk_flag]]\nflag = \"$Junk\"\n",
			`{domains}:6: account[0].junk_flag[0].mailbox: required: a regular expression for the mailbox names the rule is for, e.g. "(junk|spam)(/.*)?", or ".*" for every mailbox`},
		{"unknown flag", "[[account.junk_flag]]\nmailbox = \"junk\"\nflag = \"spam\"\n",
			`{domains}:8: account[0].junk_flag[0].flag: "spam" is not a junk flag; use "$Junk", "$NotJunk" or "none" (to remove both)`},
		{"no flag", "[[account.junk_flag]]\nmailbox = \"junk\"\n",
			`{domains}:6: account[0].junk_flag[0].flag: required: "$Junk", "$NotJunk" or "none"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFiles(t, host, acct+tc.rules)
			want := strings.ReplaceAll(tc.want, "{domains}", filepath.Join(filepath.Dir(p), "domains.conf"))
			_, err := load(p, testEnv(0, 0))
			if err == nil || err.Error() != want {
				t.Errorf("error\n got %v\nwant %s", err, want)
			}
		})
	}
}
