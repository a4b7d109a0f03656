//go:build linux

package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// adminDomains is a domains.conf with the postmaster address every domain
// needs.
const adminDomains = "[[domain]]\nname = \"localhost\"\n[[domain.dkim]]\nselector = \"sel-ed\"\nalgorithm = \"ed25519\"\n\n[[account]]\nname = \"mox\"\naddresses = [\"mox@localhost\", \"postmaster@localhost\"]\n"

// moxctlRun runs moxctl with args and stdin, and returns its output and
// exit code.
func moxctlRun(t *testing.T, conf, stdin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "moxctl"), append([]string{"-f", conf}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, _ := cmd.CombinedOutput()
	return string(out), cmd.ProcessState.ExitCode()
}

// TestAdminCommands: domains and accounts changed through moxctl on a
// running server, written to domains.conf and audited.
func TestAdminCommands(t *testing.T) {
	needRoot(t)
	const base = 64400
	dir, conf := writeConfig(t, confOptions{baseUID: base, domainsCfg: adminDomains})
	in := start(t, dir, conf, base)
	defer func() {
		in.stop()
		waitNoProcs(t, base, base+7)
	}()
	in.waitReady()
	domains := filepath.Join(dir, "domains.conf")

	// domain add prints the records to publish, DKIM included.
	out, code := moxctlRun(t, conf, "", "domain", "add", "example.test", "mox")
	if code != 0 {
		t.Fatalf("domain add: exit %d\n%s", code, out)
	}
	for _, want := range []string{
		"example.test. IN MX 10 localhost.",
		`example.test. IN TXT "v=spf1 mx -all"`,
		`_dmarc.example.test. IN TXT "v=DMARC1;p=reject;rua=mailto:postmaster@example.test"`,
		"a-ed._domainkey.example.test. IN TXT \"v=DKIM1;",
		"a-rsa._domainkey.example.test. IN TXT \"v=DKIM1;",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("domain add output lacks %q:\n%s", want, out)
		}
	}

	// account add with a password on stdin, list, password, rm.
	const password = "integration-Secret-1"
	if out, code := moxctlRun(t, conf, password+"\n", "account", "add", "jo", "jo@example.test"); code != 0 {
		t.Fatalf("account add: exit %d\n%s", code, out)
	}
	b, _ := os.ReadFile(domains)
	if !strings.Contains(string(b), `"jo@example.test"`) || !strings.Contains(string(b), `"postmaster@example.test"`) {
		t.Errorf("domains.conf after account add:\n%s", b)
	}
	out, code = moxctlRun(t, conf, "", "account", "list")
	if code != 0 || !strings.Contains(out, "jo@example.test") || !strings.Contains(out, "mox@localhost") {
		t.Errorf("account list: exit %d\n%s", code, out)
	}
	if out, code := moxctlRun(t, conf, password+"2\n", "account", "password", "jo"); code != 0 || !strings.Contains(out, "password of jo set") {
		t.Errorf("account password: exit %d\n%s", code, out)
	}
	if out, code := moxctlRun(t, conf, "", "account", "rm", "jo"); code != 0 {
		t.Errorf("account rm: exit %d\n%s", code, out)
	}
	if b, _ := os.ReadFile(domains); strings.Contains(string(b), `"jo@example.test"`) {
		t.Errorf("account still in domains.conf:\n%s", b)
	}

	// The audit log has every change, never the password.
	audit, err := os.ReadFile(filepath.Join(dir, "data", "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`cmd="domain add"`, `cmd="account add" args=["jo","jo@example.test"]`, `cmd="account password"`, `cmd="account rm"`} {
		if !strings.Contains(string(audit), want) {
			t.Errorf("audit log lacks %q:\n%s", want, audit)
		}
	}
	if strings.Contains(string(audit), password) || strings.Contains(in.stderr.String(), password) {
		t.Errorf("password in the audit log or master's log")
	}
	if fi, err := os.Stat(filepath.Join(dir, "data", "audit.log")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("audit log mode: %v %v", fi, err)
	}

	// A hand edit of domains.conf makes the next change fail with the
	// reload hint, and is kept.
	edited := string(b) + "\n# edited by hand\n"
	if err := os.WriteFile(domains, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code = moxctlRun(t, conf, "", "account", "add", "other", "other@example.test")
	if code != 1 || !strings.Contains(out, "moxctl reload") {
		t.Errorf("account add after a hand edit: exit %d\n%s", code, out)
	}
	if b, _ := os.ReadFile(domains); string(b) != edited {
		t.Errorf("hand edit overwritten")
	}
	if out, code := moxctlRun(t, conf, "", "reload"); code != 0 {
		t.Fatalf("reload: %s", out)
	}
	if out, code := moxctlRun(t, conf, "", "account", "add", "other", "other@example.test"); code != 0 {
		t.Errorf("account add after reload: exit %d\n%s", code, out)
	}
}
