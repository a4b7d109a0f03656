//go:build linux

package dnsbed

// The cases end to end: the real moxd binaries run in the bed's namespace,
// moxd-master as root with the roles under their own uids. Its config has
// no [dns] table, so master reads the namespace's /etc/resolv.conf and
// moxd-smtp resolves through the bed's unbound with trust-ad. swaks
// delivers each case's message to port 25 from the case's client address
// (added to the namespace's loopback), and the headers moxd-smtp put on the
// stored message are compared with the peers' verdicts.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/authres"

	"moxd/internal/ctl"
	"moxd/internal/mailproto/mbox"
)

const (
	moxdBaseUID  = 64700 // roles run as 64700.. (uid = gid)
	moxdHostname = "mx.moxd.test"
	moxdRcpt     = "bob@moxd.test"
	moxdBuildID  = "dnsbed-test-build"
)

// The roles of moxd's [users] table.
var moxdRoles = []string{"keys", "store", "queue", "smtp", "submission", "imap", "web"}

// moxdBuild is a go build of moxd's commands running in the background
// while the bed comes up.
type moxdBuild struct {
	dir  string
	done chan struct{}
	err  error
}

// startBuild builds ./cmd/... into a new directory the role uids can
// traverse. The test waits for the build (cancelled with ctx) before the
// directory is removed.
func startBuild(t *testing.T, ctx context.Context) *moxdBuild {
	t.Helper()
	dir, err := os.MkdirTemp("", "moxd-dnsbed-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mb := &moxdBuild{dir: dir, done: make(chan struct{})}
	go func() {
		defer close(mb.done)
		root, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}").Output()
		if err != nil {
			mb.err = fmt.Errorf("go list -m: %v", err)
			return
		}
		args := []string{"build", "-p", "2", "-trimpath", "-ldflags", "-X moxd/internal/version.buildID=" + moxdBuildID, "-o", dir + "/"}
		if os.Getenv("MOXD_RACE") != "" {
			args = append(args, "-race") // as integration's buildBinaries
		}
		cmd := exec.CommandContext(ctx, "go", append(args, "./cmd/...")...)
		cmd.Dir = strings.TrimSpace(string(root))
		if out, err := cmd.CombinedOutput(); err != nil {
			mb.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	}()
	t.Cleanup(func() { <-mb.done })
	return mb
}

func (mb *moxdBuild) wait(t *testing.T) string {
	t.Helper()
	<-mb.done
	if mb.err != nil {
		t.Fatal(mb.err)
	}
	return mb.dir
}

// moxd is moxd-master running in the bed's namespace.
type moxd struct {
	dir, conf string
	bin       string
	master    *proc
	smtpAddr  string
	addrs     map[string]string // listener kind to the address moxd bound
}

// moxdOptions are additions to moxd.conf.
type moxdOptions struct {
	Top    string // keys before the first table (log levels)
	Tables string // tables after the bed's own
}

// startMoxd writes the config and starts moxd-master in the namespace;
// it returns when every role is ready. Master is stopped when the test
// ends, and any process left under the role uids is killed and reported.
func (b *bed) startMoxd(bin string, opts moxdOptions) *moxd {
	t := b.t
	t.Helper()
	dir, err := os.MkdirTemp("", "moxd-dnsbed-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, "hostname = %q\ndata_dir = %q\nrun_dir = %q\n%s\n[users]\n", moxdHostname, filepath.Join(dir, "data"), filepath.Join(dir, "run"), opts.Top)
	for i, r := range moxdRoles {
		fmt.Fprintf(&conf, "%s = \"%d:%[2]d\"\n", r, moxdBaseUID+i)
	}
	conf.WriteString("\n[listen]\n")
	for _, k := range []string{"smtp", "submission", "submissions", "imap", "imaps", "http", "https"} {
		fmt.Fprintf(&conf, "%s = [\"127.0.0.1:0\"]\n", k)
	}
	// No [dns]: resolv.conf, that is the namespace's.
	conf.WriteString("\n[tls]\nlocal_ca = true\n")
	conf.WriteString(opts.Tables)
	m := &moxd{dir: dir, conf: filepath.Join(dir, "moxd.conf"), bin: bin, addrs: map[string]string{}}
	domains := "[[domain]]\nname = \"moxd.test\"\n\n[[account]]\nname = \"bob\"\naddresses = [\"" + moxdRcpt + "\", \"postmaster@moxd.test\"]\n"
	for name, text := range map[string]string{m.conf: conf.String(), filepath.Join(dir, "domains.conf"): domains} {
		if err := os.WriteFile(name, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Registered before master's own cleanup, so it runs after master has
	// stopped.
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			pids := pidsOfUIDs(moxdBaseUID, moxdBaseUID+len(moxdRoles))
			if len(pids) == 0 {
				return
			}
			if time.Now().After(deadline) {
				for _, pid := range pids {
					syscall.Kill(pid, syscall.SIGKILL)
				}
				t.Errorf("processes of the role uids left after moxd-master stopped, killed: %v", pids)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	m.master = b.daemon(filepath.Join(bin, "moxd-master"), "-d", "-f", m.conf)

	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-m.master.done:
			t.Fatalf("moxd-master exited (%v) before all roles were ready", m.master.err)
		default:
		}
		var st ctl.Status
		err := ctl.Do(ctl.SocketPath(filepath.Join(dir, "run")), ctl.Request{Cmd: "status"}, &st, 5*time.Second)
		if err == nil && len(st.Down()) == 0 {
			for _, r := range st.Roles {
				for _, l := range r.Listeners {
					m.addrs[l.Kind] = l.Addr
				}
			}
			m.smtpAddr = m.addrs["smtp"]
			if m.smtpAddr == "" {
				t.Fatalf("moxd status lists no smtp listener: %+v", st)
			}
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("moxd not ready after 20s: status %+v, err %v", st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pidsOfUIDs lists the live processes whose real uid is in [lo, hi).
func pidsOfUIDs(lo, hi int) []int {
	ents, _ := os.ReadDir("/proc")
	var l []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		var uid int
		zombie := false
		for _, line := range strings.Split(string(status), "\n") {
			k, v, _ := strings.Cut(line, ":")
			f := strings.Fields(v)
			switch {
			case k == "State" && len(f) > 0:
				zombie = f[0] == "Z"
			case k == "Uid" && len(f) > 0:
				uid, _ = strconv.Atoi(f[0])
			}
		}
		if !zombie && uid >= lo && uid < hi {
			l = append(l, pid)
		}
	}
	return l
}

// moxdCase is what moxd made of one case: the SMTP reply to the message
// and, when it was stored, its trace headers.
type moxdCase struct {
	Reply    string // the reply to the end of DATA
	Stored   bool
	AR       string // Authentication-Results, unfolded
	Received string // unfolded
	AuthServ string
	SPF      *authres.SPFResult
	DKIM     []*authres.DKIMResult
	Selector []string // header.s per DKIM result, which go-msgauth drops
	DMARC    *authres.DMARCResult
	DNSSEC   []string // the checks of the "(dnssec-authentic: ...)" comment
}

// runMoxd delivers every case to moxd and reads back what was stored.
func (b *bed) runMoxd(m *moxd, cases []peerCase, bcs []bedCase) []moxdCase {
	t := b.t
	t.Helper()
	host, port, err := net.SplitHostPort(m.smtpAddr)
	if err != nil {
		t.Fatal(err)
	}
	added := map[string]bool{}
	for _, c := range cases {
		if !added[c.IP] {
			added[c.IP] = true
			b.host("ip", "-n", b.ns, "addr", "add", c.IP+"/32", "dev", "lo")
		}
	}
	res := make([]moxdCase, len(cases))
	for i, c := range cases {
		out, stderr, code := b.run(nil, "swaks", "--server", host, "--port", port, "--local-interface", c.IP,
			"--helo", c.Helo, "--from", c.Sender, "--to", moxdRcpt, "--data", "@"+c.File, "--timeout", "20")
		// swaks shows the client's lines as " -> ", the server's as
		// "<- " or, for errors, "<** ". The reply to the message follows
		// the final ".".
		lines := strings.Split(out, "\n")
		for j, l := range lines {
			if strings.TrimRight(l, "\r") != " -> ." {
				continue
			}
			for _, r := range lines[j+1:] {
				if strings.HasPrefix(r, "<-") || strings.HasPrefix(r, "<**") {
					res[i].Reply = strings.TrimSpace(strings.TrimLeft(r, "<-*"))
					break
				}
			}
		}
		if res[i].Reply == "" {
			t.Fatalf("%s: swaks (exit %d) shows no reply to the message:\n%s%s", c.Name, code, out, stderr)
		}
	}

	exp := filepath.Join(m.dir, "export")
	if out, err := exec.CommandContext(b.ctx, filepath.Join(m.bin, "moxctl"), "-f", m.conf, "export", "mbox", "bob", exp, "INBOX").CombinedOutput(); err != nil {
		t.Fatalf("moxctl export: %v\n%s", err, out)
	}
	stored := map[string][]byte{} // by Message-ID
	filepath.Walk(exp, func(path string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		r := mbox.NewReader(bytes.NewReader(data), 1<<20)
		for {
			msg, err := r.Next()
			if err != nil {
				return nil
			}
			h, err := mail.ReadMessage(bytes.NewReader(msg.Data))
			if err != nil {
				t.Fatalf("exported message in %s: %v", path, err)
			}
			id := h.Header.Get("Message-Id")
			if _, dup := stored[id]; dup {
				t.Errorf("message %s stored more than once", id)
			}
			stored[id] = msg.Data
		}
	})
	for i, c := range cases {
		id := "<" + c.Name + "@" + bcs[i].from + ">"
		data, ok := stored[id]
		if !ok {
			continue
		}
		delete(stored, id)
		res[i].Stored = true
		if err := parseTrace(&res[i], data); err != nil {
			t.Errorf("%s: %v\n%s", c.Name, err, data)
		}
	}
	for id := range stored {
		t.Errorf("moxd stored a message no case sent: %s", id)
	}
	return res
}

// parseTrace reads moxd's Authentication-Results and Received headers
// from a stored message.
func parseTrace(mc *moxdCase, data []byte) error {
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return err
	}
	ars, rcvd := msg.Header["Authentication-Results"], msg.Header["Received"]
	if len(ars) != 1 || len(rcvd) != 1 {
		return fmt.Errorf("%d Authentication-Results and %d Received headers, want one each", len(ars), len(rcvd))
	}
	mc.AR, mc.Received = ars[0], rcvd[0]
	id, results, err := authres.Parse(mc.AR)
	if err != nil {
		return fmt.Errorf("authres.Parse: %v", err)
	}
	mc.AuthServ = id
	for _, r := range results {
		switch r := r.(type) {
		case *authres.SPFResult:
			if mc.SPF != nil {
				return fmt.Errorf("two spf results")
			}
			mc.SPF = r
		case *authres.DKIMResult:
			mc.DKIM = append(mc.DKIM, r)
		case *authres.DMARCResult:
			if mc.DMARC != nil {
				return fmt.Errorf("two dmarc results")
			}
			mc.DMARC = r
		}
	}
	// header.s, split the way authres.Parse splits.
	for _, part := range strings.Split(mc.AR, ";") {
		f := strings.Fields(part)
		if len(f) == 0 || !strings.HasPrefix(strings.ToLower(f[0]), "dkim=") {
			continue
		}
		sel := ""
		for _, p := range f[1:] {
			if v, ok := strings.CutPrefix(p, "header.s="); ok {
				sel = v
			}
		}
		mc.Selector = append(mc.Selector, sel)
	}
	if mc.SPF == nil || mc.DMARC == nil || len(mc.Selector) != len(mc.DKIM) {
		return fmt.Errorf("Authentication-Results without spf or dmarc, or with unparsable dkim results")
	}
	if _, rest, ok := strings.Cut(mc.Received, "(dnssec-authentic: "); ok {
		l, _, ok := strings.Cut(rest, ")")
		if !ok {
			return fmt.Errorf("unterminated dnssec-authentic comment in Received")
		}
		mc.DNSSEC = strings.Fields(l)
	} else if !strings.Contains(mc.Received, "(no dnssec-authentic lookups)") {
		return fmt.Errorf("Received has no dnssec-authentic comment")
	}
	return nil
}

// compareMoxd checks what moxd did with a case against the peers'
// verdicts: a DMARC failure under p=reject refused with 550 5.7.1, anything
// else stored with their SPF, DKIM and DMARC results, and the checks whose
// zones are signed (and not broken) named DNSSEC-authentic in Received.
func compareMoxd(t *testing.T, c bedCase, zones map[string]*zone, mc moxdCase, py pyspfCase, ma mailauthCase, dkimpy []bool) {
	t.Helper()
	errorf := func(format string, args ...any) {
		t.Helper()
		t.Errorf("%s: moxd end to end: "+format, append([]any{c.name}, args...)...)
	}
	if mc.Stored {
		t.Logf("%s: moxd replied %q; Authentication-Results: %s; Received: %s", c.name, mc.Reply, mc.AR, mc.Received)
	} else {
		t.Logf("%s: moxd replied %q", c.name, mc.Reply)
	}
	if ma.DMARC.Result == "fail" && ma.DMARC.Policy == "reject" {
		if !strings.HasPrefix(mc.Reply, "550 5.7.1") || !strings.Contains(mc.Reply, c.from) {
			errorf("mailauth says DMARC fail under p=reject, moxd replied %q, want 550 5.7.1 naming %s", mc.Reply, c.from)
		}
		if mc.Stored {
			errorf("the refused message was stored")
		}
		return
	}
	if !strings.HasPrefix(mc.Reply, "250 ") || !mc.Stored {
		errorf("reply %q, stored %v; want 250 and the message stored", mc.Reply, mc.Stored)
		return
	}
	if mc.AuthServ != moxdHostname {
		errorf("Authentication-Results authserv-id %q, want %q", mc.AuthServ, moxdHostname)
	}
	sender := "alice@" + c.mailFrom
	if v := string(mc.SPF.Value); v != py.Result || v != ma.SPF || mc.SPF.From != sender {
		errorf("spf=%s smtp.mailfrom=%s; pyspf says %s, mailauth %s, for %s", v, mc.SPF.From, py.Result, ma.SPF, sender)
	}
	if len(mc.DKIM) != len(c.signers) || len(ma.DKIM) != len(c.signers) || len(dkimpy) != len(c.signers) {
		errorf("%d dkim results, mailauth %d, dkimverify %d; want %d", len(mc.DKIM), len(ma.DKIM), len(dkimpy), len(c.signers))
	} else {
		for i, sg := range c.signers {
			d, v := mc.DKIM[i], string(mc.DKIM[i].Value)
			if d.Domain != sg.domain || mc.Selector[i] != sg.selector {
				errorf("dkim result %d is for d=%s s=%s, want d=%s s=%s", i, d.Domain, mc.Selector[i], sg.domain, sg.selector)
			}
			if v != ma.DKIM[i].result() || dkimpy[i] != (v == string(authres.ResultPass)) {
				errorf("dkim=%s for d=%s s=%s; mailauth says %s (%s), dkimverify verified=%v", v, sg.domain, sg.selector, ma.DKIM[i].Result, ma.DKIM[i].Comment, dkimpy[i])
			}
		}
	}
	if v := string(mc.DMARC.Value); v != ma.DMARC.Result || mc.DMARC.From != c.from {
		errorf("dmarc=%s header.from=%s; mailauth says %s for %s", v, mc.DMARC.From, ma.DMARC.Result, c.from)
	}

	var want []string
	if zones[c.mailFrom].authentic() {
		want = append(want, "spf")
	}
	if slices.ContainsFunc(c.signers, func(s signer) bool { return zones[s.domain].authentic() }) {
		want = append(want, "dkim")
	}
	if zones[c.from].authentic() {
		want = append(want, "dmarc")
	}
	if !slices.Equal(mc.DNSSEC, want) {
		errorf("Received lists %v as DNSSEC-authentic, want %v: %s", mc.DNSSEC, want, mc.Received)
	}
}
