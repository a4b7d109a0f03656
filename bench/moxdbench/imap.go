package main

// The imap case is P3 and P4: moxd's IMAP server against Dovecot's, both on
// loopback, both filled from the same generated mboxes.
//
// P3, memory per idle connection: N connections (-n, default 1000) each log
// in, SELECT INBOX (a mailbox of p3Messages messages) and IDLE, and are
// then left alone. The figure is the growth of the summed PSS
// (/proc/PID/smaps_rollup) of every process of the server (the server's
// top process and all its descendants) from before the first of them
// connected to a few seconds after the last one went idle, divided by N.
// Before "before", one connection logs in, selects and logs out, so that
// processes a server starts at its first login (Dovecot's auth) are in both
// samples. When moxd does not know IDLE yet (it answers BAD), both servers
// are measured with idle selected connections without IDLE, and the case
// line says so.
//
// P4, latency on a large mailbox: an INBOX of -msgs messages (default
// 100000), imported by "moxctl import mbox" and by "doveadm import". Four
// commands, each timed from sending it to its tagged OK, with all untagged
// responses read: UID FETCH 1:* (FLAGS) on one selected connection; SELECT
// INBOX repeated on one logged-in connection; SELECT INBOX as the first
// command of a new connection after login (where one process per
// connection shows); and SELECT INBOX (QRESYNC (uidvalidity modseq
// 1:last-uid)) repeated on one connection after ENABLE QRESYNC, where
// modseq is the HIGHESTMODSEQ from before p4Changes flag changes on as many
// messages, so the answer is those p4Changes FETCH responses and no
// VANISHED. Each command runs once untimed per server, then
// p4Runs times interleaved with the peer (the side going first alternates);
// the figure is the median.
//
// Dovecot runs as a daemon on a throw-away configuration in a temporary
// directory: imap on a free loopback port in plain text (Dovecot counts
// loopback connections as secure, so LOGIN is allowed), passwd-file users
// whose mail is a maildir owned by uid nobody, and its default process
// model (imap-login service_count = 1, one imap process with client_limit
// = 1 per connection). Only the limits that would refuse N connections are
// raised, and the report names them. It needs root (it starts as root and
// switches users); without root the peer is reported unavailable.
//
// moxd runs as the other cases start it (as root: every role under its own
// uid), with two accounts. Its clients use plain text on loopback like
// Dovecot's, so both figures hold the same transport (with -imaps they use
// imaps with the instance's local CA, and the TLS state of every
// connection is in moxd's figure only). They log in with AUTHENTICATE
// SCRAM-SHA-256 (moxd refuses LOGIN without TLS outside localserve),
// keeping SaltedPassword as a real
// client does: LOGIN makes moxd-store hash the password with argon2id (64
// MiB, two at a time), and the freed memory stays mapped long after the
// logins, so with LOGIN P3 would count about 120 MiB of login transient
// as per-connection memory. Dovecot's clients use LOGIN against its
// {PLAIN} passwd-file, which costs no memory either.

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"moxd/internal/ctl"
)

var (
	imapMsgs = flag.Int("msgs", 100000, "messages in the large mailbox (imap, P4)")
	imapTLS  = flag.Bool("imaps", false, "imap: moxd's clients use imaps (TLS with the local CA) instead of plain text on loopback like the peer's")
)

const (
	p3Messages   = 100 // messages in the INBOX the P3 connections select
	p3Parallel   = 16  // connections being set up at one time
	p3Settle     = 3 * time.Second
	p4Runs       = 20
	p4Changes    = 100
	p4Keyword    = "moxdbenchP4"
	settleWait   = 3 * time.Second
	imapPassword = "moxdbench-imap-password"
	imapTimeout  = 2 * time.Minute // per command
	imapLimitsP3 = `trusted_networks = ["127.0.0.0/8"]`
)

// benchIMAPCase is "moxdbench imap": flag defaults of this case, then
// benchIMAP.
func benchIMAPCase() error {
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["n"] {
		*count = 1000
	}
	if *count < 1 || *count > 10000 || *imapMsgs < p4Changes {
		return fmt.Errorf("imap needs -n from 1 to 10000 and -msgs of at least %d", p4Changes)
	}
	return benchIMAP(*count, *imapMsgs)
}

// imapSide is one server under test.
type imapSide struct {
	name  string // "moxd" or "peer"
	addr  string
	tls   *tls.Config // nil: plain text
	pid   int         // the server's top process
	users map[string]string
	// scram: log in with AUTHENTICATE SCRAM-SHA-256 instead of LOGIN.
	scram bool
	err   error // set when the side cannot be measured
}

func (s *imapSide) user(account string) string { return s.users[account] }

// benchIMAP is P3 and P4.
func benchIMAP(n, msgs int) error {
	root, err := os.MkdirTemp("", "moxdbench-imap-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	// Traversable by Dovecot's users and moxd's roles.
	if err := os.Chmod(root, 0o755); err != nil {
		return err
	}
	src := filepath.Join(root, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		return err
	}
	small, big := filepath.Join(src, "small.mbox"), filepath.Join(src, "big.mbox")
	if err := mboxGenerate(small, p3Messages, *seed); err != nil {
		return err
	}
	if err := mboxGenerate(big, msgs, *seed+1); err != nil {
		return err
	}
	for _, f := range []string{small, big} {
		if err := os.Chmod(f, 0o644); err != nil {
			return err
		}
	}

	moxd := &imapSide{name: "moxd", users: map[string]string{"idle": "idle@localhost", "big": "big@localhost"}, scram: true}
	in, moxdNote, err := startIMAPMoxd(moxd, small)
	if err != nil {
		moxd.err = err
		fmt.Fprintf(os.Stderr, "# P3/P4 moxd: %v\n", err)
	} else {
		defer in.cleanup()
	}
	peer := &imapSide{name: "peer", users: map[string]string{"idle": "idle", "big": "big"}}
	dc, peerNote, err := startIMAPDovecot(peer, filepath.Join(root, "dovecot"), n, small)
	if err != nil {
		peer.err = err
		fmt.Fprintf(os.Stderr, "# P3/P4 peer: %v\n", err)
	} else {
		defer stopDovecot(dc)
	}
	sides := []*imapSide{moxd, peer}

	// IDLE or not: decided by moxd, the same for both.
	useIdle, idleNote := true, ""
	if moxd.err == nil {
		if st, err := probeIdle(moxd); err != nil {
			moxd.err = fmt.Errorf("IDLE probe: %w", err)
		} else if st != "" {
			useIdle = false
			idleNote = fmt.Sprintf("NO IDLE: moxd answered %q, so both servers were measured with selected connections not in IDLE", st)
		}
	}
	benchP3(sides, n, useIdle, idleNote, moxdNote, peerNote)
	benchP4(sides, in, dc, big, msgs)
	return nil
}

// startIMAPMoxd starts moxd with the accounts "idle" (filled from small)
// and "big" (empty until P4).
func startIMAPMoxd(s *imapSide, small string) (*instance, string, error) {
	dir, conf, err := newConfigWith("localhost", "[dns]\noffline = true\n[limits]\n"+imapLimitsP3+"\n")
	if err != nil {
		return nil, "", err
	}
	domains := "[[domain]]\nname = \"localhost\"\n\n[[account]]\nname = \"idle\"\naddresses = [\"idle@localhost\", \"postmaster@localhost\"]\n\n[[account]]\nname = \"big\"\naddresses = [\"big@localhost\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "domains.conf"), []byte(domains), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, "", err
	}
	in, err := startInstance(dir, conf)
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", err
	}
	fail := func(err error) (*instance, string, error) {
		err = fmt.Errorf("%w; moxd's log: %s", err, moxdLogTail(in))
		in.cleanup()
		return nil, "", err
	}
	st, err := in.waitReady()
	if err != nil {
		return fail(err)
	}
	for _, a := range []string{"idle", "big"} {
		if err := ctl.Do(ctl.SocketPath(filepath.Join(dir, "run")), ctl.Request{Cmd: "account password", Args: []string{a}, Secret: imapPassword}, nil, 30*time.Second); err != nil {
			return fail(fmt.Errorf("account password %s: %w", a, err))
		}
	}
	if _, err := moxdFill(in, "idle", small); err != nil {
		return fail(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "data", "localca.pem"))
	if err != nil {
		return fail(err)
	}
	// The same transport as the peer's clients (plain text on loopback,
	// where moxd offers SCRAM but not LOGIN), unless -imaps.
	transport := "imap in plain text (AUTHENTICATE SCRAM-SHA-256; the peer's clients use plain text too)"
	listener := "imap"
	if *imapTLS {
		transport, listener = "imaps (TLS 1.3, local CA)", "imaps"
		s.tls = &tls.Config{RootCAs: x509Pool(caPEM), ServerName: "localhost"}
	}
	s.addr = addr(st, listener)
	if s.addr == "" {
		return fail(fmt.Errorf("no %s listener in moxctl status", listener))
	}
	s.pid = in.cmd.Process.Pid
	mode := "as root, every role under its own uid"
	if os.Geteuid() != 0 {
		mode = "localserve, one uid"
	}
	note := fmt.Sprintf("moxd %s, %s on 127.0.0.1, log_level warn; limit raised: [limits] %s (exempts 127.0.0.1 from concurrent_connections, default 100 per IP, and connections_per_minute, default 300 per IP); all else default", mode, transport, imapLimitsP3)
	return in, note, nil
}

// moxdFill imports an mbox into the INBOX of account and returns the time
// it took.
func moxdFill(in *instance, account, mbox string) (time.Duration, error) {
	cmd := exec.Command(filepath.Join(*binDir, "moxctl"), "-f", in.conf, "import", "mbox", account, "INBOX", mbox)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("moxctl import mbox %s: %v: %s", account, err, firstLine(out.Bytes()))
	}
	return time.Since(t0), nil
}

// dovecotServer is the running peer.
type dovecotServer struct {
	cmd  *exec.Cmd
	dir  string
	conf string
	mail string // parent of the users' maildirs
}

// startIMAPDovecot starts Dovecot's imap with the users "idle" (filled from
// small) and "big" (empty until P4), its limits raised for n connections.
func startIMAPDovecot(s *imapSide, dir string, n int, small string) (*dovecotServer, string, error) {
	if os.Geteuid() != 0 {
		return nil, "", errors.New("needs root: Dovecot starts as root and runs mail as uid nobody")
	}
	dovecot, err := exec.LookPath("dovecot")
	if err == nil {
		_, err = os.Stat("/usr/lib/dovecot/imap")
	}
	if err == nil {
		_, err = exec.LookPath("doveadm")
	}
	if err != nil {
		reason := "dovecot, doveadm or /usr/lib/dovecot/imap not found: install Debian package dovecot-imapd (bench/run does as root)"
		if why := os.Getenv("MOXDBENCH_DOVECOT_IMAP_INSTALL"); why != "" {
			reason += "; " + why
		}
		return nil, "", errors.New(reason)
	}
	version := "Dovecot"
	if out, err := exec.Command(dovecot, "--version").Output(); err == nil {
		version += " " + strings.TrimSpace(string(out))
	}
	mail := filepath.Join(dir, "mail")
	for _, d := range []string{dir, mail} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, "", err
		}
	}
	const nobody = 65534
	if err := os.Chown(mail, nobody, nobody); err != nil {
		return nil, "", err
	}
	var users strings.Builder
	for _, u := range []string{"idle", "big"} {
		fmt.Fprintf(&users, "%s:{PLAIN}%s:%d:%d::%s\n", u, imapPassword, nobody, nobody, filepath.Join(mail, u))
	}
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte(users.String()), 0o644); err != nil {
		return nil, "", err
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	conf := filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(conf, []byte(dovecotIMAPConfig(dir, port, n)), 0o644); err != nil {
		return nil, "", err
	}
	cmd := exec.Command(dovecot, "-F", "-c", conf)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	d := &dovecotServer{cmd: cmd, dir: dir, conf: conf, mail: mail}
	s.addr = fmt.Sprintf("127.0.0.1:%d", port)
	s.pid = cmd.Process.Pid
	// Listening when it greets.
	var gerr error
	for t0 := time.Now(); time.Since(t0) < 20*time.Second; time.Sleep(20 * time.Millisecond) {
		var c *imapClient
		if c, gerr = dialIMAP(s); gerr == nil {
			c.close()
			break
		}
	}
	if gerr != nil {
		stopDovecot(d)
		log, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
		return nil, "", fmt.Errorf("dovecot did not greet on %s: %v: %s %s", s.addr, gerr, bytes.TrimSpace(out.Bytes()), lastLines(log, 3))
	}
	if _, err := dovecotFill(d, "idle", small); err != nil {
		stopDovecot(d)
		return nil, "", err
	}
	limit := n + 100
	note := fmt.Sprintf("%s, own config in a temp dir, imap plain text on 127.0.0.1 (loopback counts as secure), passwd-file users, mail_location maildir as uid nobody; default process model (imap-login service_count=1, imap client_limit=1: one imap process per connection); limits raised: default_process_limit = %d (default 100), default_client_limit = %d (default 1000), protocol imap mail_max_userip_connections = %d (default 10); all else default",
		version, limit, dovecotClientLimit(n), limit)
	return d, note, nil
}

func dovecotClientLimit(n int) int { return max(1000, 4*n+100) }

// dovecotIMAPConfig is the peer's whole configuration: nothing is read
// from /etc/dovecot.
func dovecotIMAPConfig(dir string, port, n int) string {
	return fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
ssl = no
protocols = imap
listen = 127.0.0.1
disable_plaintext_auth = no
auth_mechanisms = plain
default_internal_user = dovecot
default_login_user = dovenull
default_process_limit = %[3]d
default_client_limit = %[4]d
mail_location = maildir:%[1]s/mail/%%u
passdb {
  driver = passwd-file
  args = scheme=PLAIN %[1]s/users
}
userdb {
  driver = passwd-file
  args = %[1]s/users
}
protocol imap {
  mail_max_userip_connections = %[3]d
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %[2]d
  }
  inet_listener imaps {
    port = 0
  }
}
`, dir, port, n+100, dovecotClientLimit(n))
}

// dovecotFill imports an mbox into the INBOX of user with doveadm, without
// fsync: the fill is not what is measured.
func dovecotFill(d *dovecotServer, user, mbox string) (time.Duration, error) {
	source := fmt.Sprintf("mbox:%s:INBOX=%s:INDEX=MEMORY", filepath.Dir(mbox), mbox)
	cmd := exec.Command("doveadm", "-c", d.conf, "-o", "mail_fsync=never", "import", "-u", user, source, "", "mailbox", "INBOX", "all")
	cmd.Dir = d.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		log, _ := os.ReadFile(filepath.Join(d.dir, "dovecot.log"))
		return 0, fmt.Errorf("doveadm import -u %s: %v: %s %s", user, err, bytes.TrimSpace(out.Bytes()), lastLines(log, 3))
	}
	return time.Since(t0), nil
}

// stopDovecot stops the peer and waits until its processes are gone.
func stopDovecot(d *dovecotServer) {
	procs := processTree(d.cmd.Process.Pid)
	stopChild(d.cmd)
	for _, p := range procs {
		waitGone(p, 10*time.Second)
	}
}

// benchP3 measures and prints P3.
func benchP3(sides []*imapSide, n int, useIdle bool, idleNote, moxdNote, peerNote string) {
	what := "login + SELECT INBOX + IDLE"
	if !useIdle {
		what = "login + SELECT INBOX, no IDLE"
	}
	res := make([]p3Result, len(sides))
	for i, s := range sides {
		if s.err != nil {
			continue
		}
		r, err := p3Side(s, n, useIdle)
		if err != nil {
			s.err = fmt.Errorf("P3: %w", err)
			fmt.Fprintf(os.Stderr, "# P3 %s: %v\n", s.name, err)
			continue
		}
		res[i] = r
	}
	if moxdNote != "" {
		fmt.Printf("# P3/P4 moxd: %s\n", moxdNote)
	}
	if peerNote != "" {
		fmt.Printf("# P3/P4 peer: %s\n", peerNote)
	}
	for i, s := range sides {
		if s.err == nil {
			fmt.Printf("# P3 %s: %s\n", s.name, res[i].breakdown(n))
		}
	}
	var b strings.Builder
	b.WriteString("P3 imap-idle-KiB/conn ")
	for i, s := range sides {
		if s.err != nil {
			fmt.Fprintf(&b, " %s=unavailable (%s)", s.name, oneLine(s.err))
		} else {
			fmt.Fprintf(&b, " %s=%.1f", s.name, res[i].perConn(n))
		}
	}
	if sides[0].err == nil && sides[1].err == nil {
		fmt.Fprintf(&b, "  ratio=%.3f", res[0].perConn(n)/res[1].perConn(n))
	}
	fmt.Fprintf(&b, "  (goal ratio <= 0.10; %d connections from 127.0.0.1 each %s, INBOX of %d messages, login: moxd AUTHENTICATE SCRAM-SHA-256, peer LOGIN; growth of the summed PSS (smaps_rollup) of all the server's processes from before the first connection to %s after the last, / %d", n, what, p3Messages, p3Settle, n)
	if idleNote != "" {
		fmt.Fprintf(&b, "; %s", idleNote)
	}
	b.WriteString(")")
	fmt.Println(b.String())
}

// p3Result is one server's memory before and after.
type p3Result struct {
	before, after map[string]procMem // by process name
}

func (r p3Result) perConn(n int) float64 {
	return float64(sumPSS(r.after)-sumPSS(r.before)) / float64(n)
}

// breakdown lists the growth by process name.
func (r p3Result) breakdown(n int) string {
	var l []string
	names := slices.Sorted(maps.Keys(r.after))
	for name := range maps.Keys(r.before) {
		if _, ok := r.after[name]; !ok {
			names = append(names, name)
		}
	}
	for _, name := range names {
		a, b := r.after[name], r.before[name]
		l = append(l, fmt.Sprintf("%s %d->%d procs %+.1f KiB/conn", name, b.procs, a.procs, float64(a.pssKiB-b.pssKiB)/float64(n)))
	}
	return fmt.Sprintf("PSS %d KiB before, %d KiB after; by process name: %s", sumPSS(r.before), sumPSS(r.after), strings.Join(l, ", "))
}

// p3Side opens n idle connections to s and measures its memory.
func p3Side(s *imapSide, n int, useIdle bool) (p3Result, error) {
	// A first login starts what a server starts only then.
	c, err := p3Open(s, false)
	if err != nil {
		return p3Result{}, fmt.Errorf("first connection: %w", err)
	}
	c.cmd(nil, "LOGOUT")
	c.close()
	if err := waitSettled(s.pid, 10*time.Second); err != nil {
		return p3Result{}, err
	}
	var r p3Result
	r.before = treeMem(s.pid)

	conns := make([]*imapClient, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	var failed int
	sem := make(chan struct{}, p3Parallel)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := p3Open(s, useIdle)
			if err != nil {
				mu.Lock()
				failed++
				if firstErr == nil {
					firstErr = fmt.Errorf("connection %d: %w", i+1, err)
				}
				mu.Unlock()
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.close()
			}
		}
		// Dovecot's imap processes exit after their clients went away;
		// wait for that, so the next measurement starts from quiet.
		waitSettled(s.pid, 30*time.Second)
	}()
	if firstErr != nil {
		return p3Result{}, fmt.Errorf("%d of %d connections failed, first: %w", failed, n, firstErr)
	}
	time.Sleep(p3Settle)
	r.after = treeMem(s.pid)
	return r, nil
}

// p3Open opens one connection, logged in with INBOX selected, and in IDLE
// when idle is set.
func p3Open(s *imapSide, idle bool) (*imapClient, error) {
	c, err := dialIMAP(s)
	if err != nil {
		return nil, err
	}
	if err := c.login(s, "idle"); err != nil {
		c.close()
		return nil, err
	}
	if _, err := c.ok(nil, "SELECT INBOX"); err != nil {
		c.close()
		return nil, err
	}
	// The deadline was for the commands: an idle connection waits.
	c.conn.SetDeadline(time.Time{})
	if idle {
		st, err := c.idle()
		if err == nil && st != "" {
			err = fmt.Errorf("IDLE: %s", st)
		}
		if err != nil {
			c.close()
			return nil, err
		}
	}
	return c, nil
}

// probeIdle reports "" if s knows IDLE, or its tagged answer when it does
// not.
func probeIdle(s *imapSide) (string, error) {
	c, err := dialIMAP(s)
	if err != nil {
		return "", err
	}
	defer c.close()
	if err := c.login(s, "idle"); err != nil {
		return "", err
	}
	if _, err := c.ok(nil, "SELECT INBOX"); err != nil {
		return "", err
	}
	st, err := c.idle()
	if err != nil || st != "" {
		return st, err
	}
	// RFC 2177 §3: DONE ends IDLE with the tagged OK.
	c.conn.SetDeadline(time.Now().Add(imapTimeout))
	if _, err := io.WriteString(c.conn, "DONE\r\n"); err != nil {
		return "", err
	}
	for {
		l, err := c.readLine()
		if err != nil {
			return "", err
		}
		if t, ok := strings.CutPrefix(l, c.lastTag+" "); ok {
			if !strings.HasPrefix(t, "OK") {
				return "", fmt.Errorf("IDLE after DONE: %s", t)
			}
			return "", nil
		}
	}
}

// waitSettled waits until the number of processes of the tree at pid has
// not changed for a second.
func waitSettled(pid int, limit time.Duration) error {
	last, since := -1, time.Now()
	for t0 := time.Now(); time.Since(t0) < limit; time.Sleep(100 * time.Millisecond) {
		k := len(processTree(pid))
		if k != last {
			last, since = k, time.Now()
		} else if time.Since(since) >= time.Second {
			return nil
		}
	}
	return fmt.Errorf("processes of pid %d still changing after %s", pid, limit)
}

// procMem is the memory of the processes of one name.
type procMem struct {
	procs  int
	pssKiB int64
}

func sumPSS(m map[string]procMem) int64 {
	var t int64
	for _, v := range m {
		t += v.pssKiB
	}
	return t
}

// treeMem sums PSS over pid and its descendants, by process name.
func treeMem(pid int) map[string]procMem {
	m := map[string]procMem{}
	for _, p := range processTree(pid) {
		pss, err := pssKiB(p)
		if err != nil {
			continue // exited meanwhile
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p))
		name := strings.TrimSpace(string(comm))
		v := m[name]
		v.procs++
		v.pssKiB += pss
		m[name] = v
	}
	return m
}

// pssKiB is the proportional set size of a process.
func pssKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Pss:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no Pss in /proc/%d/smaps_rollup", pid)
}

// processTree lists pid and all its descendants.
func processTree(pid int) []int {
	children := map[int][]int{}
	for p, parent := range parentPIDs() {
		children[parent] = append(children[parent], p)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		return nil
	}
	l := []int{pid}
	for i := 0; i < len(l); i++ {
		l = append(l, children[l[i]]...)
	}
	return l
}

// p4Series is the timings of one command on both sides.
type p4Series struct {
	ms  [2][]float64
	err [2]error
}

// benchP4 fills the large mailboxes, measures and prints P4.
func benchP4(sides []*imapSide, in *instance, dc *dovecotServer, big string, msgs int) {
	// Both fills at once: they are not measured, and Dovecot's takes
	// minutes for 100000 messages.
	var fill [2]time.Duration
	var wg sync.WaitGroup
	for i, s := range sides {
		if s.err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if i == 0 {
				fill[i], err = moxdFill(in, "big", big)
			} else {
				fill[i], err = dovecotFill(dc, "big", big)
			}
			if err != nil {
				s.err = fmt.Errorf("P4 fill: %w", err)
			}
		}()
	}
	wg.Wait()
	settle(sides)
	// The connections that stay: info (SELECT with CONDSTORE, for the
	// flag changes) and fetch (plain SELECT, for UID FETCH).
	var info, fetch [2]*imapClient
	var mb [2]mailboxState
	for i, s := range sides {
		if s.err != nil {
			continue
		}
		var err error
		info[i], fetch[i], mb[i], err = p4Connect(s, msgs)
		if err != nil {
			s.err = fmt.Errorf("P4: %w", err)
			fmt.Fprintf(os.Stderr, "# P4 %s: %v\n", s.name, err)
		}
	}
	defer closeAll(info[:])
	defer closeAll(fetch[:])
	for i, s := range sides {
		if s.err == nil {
			fmt.Printf("# P4 %s: INBOX of %d messages filled in %.1fs (%s, both fills at the same time); UIDVALIDITY %d, UIDNEXT %d, HIGHESTMODSEQ %d\n", s.name, msgs, fill[i].Seconds(), []string{"moxctl import mbox", "doveadm import, mail_fsync=never"}[i], mb[i].uidValidity, mb[i].uidNext, mb[i].highestModSeq)
		}
	}

	fetchRun := func(i int) (time.Duration, error) {
		k := 0
		t0 := time.Now()
		if _, err := fetch[i].ok(func(l string) {
			if strings.HasPrefix(l, "* ") && strings.Contains(l, " FETCH ") {
				k++
			}
		}, "UID FETCH 1:* (FLAGS)"); err != nil {
			return 0, err
		}
		d := time.Since(t0)
		if k != msgs {
			return 0, fmt.Errorf("UID FETCH 1:* (FLAGS) gave %d FETCH responses, want %d", k, msgs)
		}
		return d, nil
	}
	fetchS := interleave(sides, fetchRun)

	// SELECT INBOX again and again on one logged-in connection (RFC 9051
	// §6.3.2: each one first closes the mailbox the previous one opened).
	var sel [2]*imapClient
	defer closeAll(sel[:])
	selectS := interleave(sides, func(i int) (time.Duration, error) {
		if sel[i] == nil {
			c, err := loggedIn(sides[i], "big")
			if err != nil {
				return 0, err
			}
			sel[i] = c
		}
		return timedSelect(sel[i], msgs, 0, "SELECT INBOX")
	})
	// The first SELECT of a new connection, as a client opening the
	// mailbox: Dovecot's imap process for the connection is new.
	freshS := interleave(sides, func(i int) (time.Duration, error) {
		c, err := loggedIn(sides[i], "big")
		if err != nil {
			return 0, err
		}
		defer c.close()
		d, err := timedSelect(c, msgs, 0, "SELECT INBOX")
		if err == nil {
			c.cmd(nil, "LOGOUT")
		}
		return d, err
	})

	// The changes QRESYNC reports: a keyword on p4Changes messages spread
	// over the mailbox, one STORE each.
	for i, s := range sides {
		if s.err != nil {
			continue
		}
		for k := range p4Changes {
			seq := 1 + k*(msgs/p4Changes)
			if _, err := info[i].ok(nil, "STORE %d +FLAGS.SILENT (%s)", seq, p4Keyword); err != nil {
				s.err = fmt.Errorf("P4 flag changes: %w", err)
				break
			}
		}
	}
	settle(sides)
	var qr [2]*imapClient
	defer closeAll(qr[:])
	qresyncS := interleave(sides, func(i int) (time.Duration, error) {
		if qr[i] == nil {
			c, err := loggedIn(sides[i], "big")
			if err != nil {
				return 0, err
			}
			// RFC 7162 §3.2.3: QRESYNC in SELECT needs ENABLE QRESYNC
			// first.
			enabled := ""
			if _, err := c.ok(func(l string) {
				if e, ok := strings.CutPrefix(l, "* ENABLED"); ok {
					enabled = strings.TrimSpace(e)
				}
			}, "ENABLE QRESYNC"); err != nil {
				c.close()
				return 0, err
			}
			if !slices.Contains(strings.Fields(strings.ToUpper(enabled)), "QRESYNC") {
				// What the server says to the SELECT anyway, for the report.
				m := mb[i]
				st, err := c.cmd(nil, "SELECT INBOX (QRESYNC (%d %d 1:%d))", m.uidValidity, m.highestModSeq, m.uidNext-1)
				c.close()
				if err == nil {
					err = fmt.Errorf("SELECT (QRESYNC ...) answered %q", st)
				}
				return 0, fmt.Errorf("ENABLE QRESYNC answered \"* ENABLED %s\"; %w", enabled, err)
			}
			qr[i] = c
		}
		m := mb[i]
		return timedSelect(qr[i], msgs, p4Changes, "SELECT INBOX (QRESYNC (%d %d 1:%d))", m.uidValidity, m.highestModSeq, m.uidNext-1)
	})

	known := "1:last-uid"
	if sides[0].err == nil && sides[1].err == nil && mb[0].uidNext == mb[1].uidNext {
		known = fmt.Sprintf("1:%d", mb[0].uidNext-1)
	}
	for _, c := range []struct {
		name, what string
		s          p4Series
	}{
		{"uid-fetch-flags-ms", "\"UID FETCH 1:* (FLAGS)\" on one connection that did a plain SELECT INBOX", fetchS},
		{"select-ms", "\"SELECT INBOX\" repeated on one logged-in connection", selectS},
		{"select-fresh-ms", "\"SELECT INBOX\" as the first command after login on a new connection (connection and login not timed)", freshS},
		{"select-qresync-ms", fmt.Sprintf("\"SELECT INBOX (QRESYNC (uidvalidity modseq %s))\" repeated on one connection after ENABLE QRESYNC, modseq = HIGHESTMODSEQ before %d STOREs of +FLAGS.SILENT (%s) on %d messages spread over the mailbox; answer checked: %d FETCH, no VANISHED", known, p4Changes, p4Keyword, p4Changes, p4Changes), qresyncS},
	} {
		printP4(c.name, c.what, c.s, sides, msgs)
	}
}

// settle lets the servers finish what a change of the large mailbox leaves
// them to do before the measurements start: twice a new connection SELECTs
// INBOX and logs out, with settleWait after each. Dovecot moves the
// imported messages from new/ to cur/ at the first SELECT and rereads the
// whole of cur/ at every SELECT for about two seconds after files in it
// were renamed (flag changes rename them), which makes a SELECT take 40
// ms instead of 1 on 10000 messages; and a process that saw the changes
// stays slower (8 ms) at every later SELECT than a new one.
func settle(sides []*imapSide) {
	for range 2 {
		for _, s := range sides {
			if s.err != nil {
				continue
			}
			c, err := loggedIn(s, "big")
			if err == nil {
				_, err = c.ok(nil, "SELECT INBOX")
				c.cmd(nil, "LOGOUT")
				c.close()
			}
			if err != nil {
				s.err = fmt.Errorf("P4 settle: %w", err)
			}
		}
		time.Sleep(settleWait)
	}
}

// loggedIn opens a connection to s logged in as account.
func loggedIn(s *imapSide, account string) (*imapClient, error) {
	c, err := dialIMAP(s)
	if err != nil {
		return nil, err
	}
	if err := c.login(s, account); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// timedSelect times a SELECT command on c and checks its answer: OK,
// msgs EXISTS, fetches FETCH responses and no VANISHED.
func timedSelect(c *imapClient, msgs, fetches int, format string, args ...any) (time.Duration, error) {
	exists, nfetch, vanished := -1, 0, 0
	t0 := time.Now()
	_, err := c.ok(func(l string) {
		switch {
		case strings.HasPrefix(l, "* VANISHED"):
			vanished++
		case strings.HasPrefix(l, "* ") && strings.Contains(l, " FETCH "):
			nfetch++
		default:
			parseNumber(l, "EXISTS", &exists)
		}
	}, format, args...)
	d := time.Since(t0)
	if err != nil {
		return 0, err
	}
	if exists != msgs || nfetch != fetches || vanished != 0 {
		return 0, fmt.Errorf("%s gave %d EXISTS, %d FETCH and %d VANISHED responses, want %d, %d and 0", strings.Fields(format)[0], exists, nfetch, vanished, msgs, fetches)
	}
	return d, nil
}

func closeAll(l []*imapClient) {
	for _, c := range l {
		if c != nil {
			c.close()
		}
	}
}

// printP4 prints the line of one P4 command.
func printP4(name, what string, s p4Series, sides []*imapSide, msgs int) {
	var b strings.Builder
	fmt.Fprintf(&b, "P4 %s ", name)
	for i, side := range sides {
		err := side.err
		if err == nil {
			err = s.err[i]
		}
		if err != nil {
			fmt.Fprintf(&b, " %s=unavailable (%s)", side.name, oneLine(err))
		} else {
			fmt.Fprintf(&b, " %s=%.1f", side.name, median(s.ms[i]))
		}
	}
	ok := func(i int) bool { return sides[i].err == nil && s.err[i] == nil && len(s.ms[i]) > 0 }
	if ok(0) && ok(1) {
		fmt.Fprintf(&b, "  ratio=%.2f", median(s.ms[0])/median(s.ms[1]))
	}
	fmt.Fprintf(&b, "  (goal ratio <= 1.0; median of %d runs interleaved with the peer after one untimed run each; %s; INBOX of %d messages", p4Runs, what, msgs)
	for i, side := range sides {
		if ok(i) {
			fmt.Fprintf(&b, "; %s min %.1f max %.1f", side.name, slices.Min(s.ms[i]), slices.Max(s.ms[i]))
		}
	}
	b.WriteString(")")
	fmt.Println(b.String())
}

// interleave runs f once untimed for each side, then p4Runs times for each,
// alternating which side goes first. A side whose f fails is not run again
// and keeps its error.
func interleave(sides []*imapSide, f func(i int) (time.Duration, error)) p4Series {
	var s p4Series
	for i, side := range sides {
		if side.err != nil {
			continue
		}
		if _, err := f(i); err != nil {
			s.err[i] = err
		}
	}
	for r := range p4Runs {
		for j := range 2 {
			i := (r + j) % 2
			if sides[i].err != nil || s.err[i] != nil {
				continue
			}
			d, err := f(i)
			if err != nil {
				s.err[i] = fmt.Errorf("run %d: %w", r+1, err)
				continue
			}
			s.ms[i] = append(s.ms[i], float64(d.Microseconds())/1000)
		}
	}
	return s
}

// mailboxState is what SELECT (CONDSTORE) reported.
type mailboxState struct {
	exists, uidValidity, uidNext, highestModSeq int
}

// p4Connect opens the two kept connections of a side, checks the message
// count and reports the mailbox's state.
func p4Connect(s *imapSide, msgs int) (info, fetch *imapClient, m mailboxState, err error) {
	defer func() {
		if err != nil {
			for _, c := range []*imapClient{info, fetch} {
				if c != nil {
					c.close()
				}
			}
			info, fetch = nil, nil
		}
	}()
	if info, err = dialIMAP(s); err != nil {
		return
	}
	if err = info.login(s, "big"); err != nil {
		return
	}
	m.exists = -1
	if _, err = info.ok(func(l string) {
		parseNumber(l, "EXISTS", &m.exists)
		parseCode(l, "UIDVALIDITY", &m.uidValidity)
		parseCode(l, "UIDNEXT", &m.uidNext)
		parseCode(l, "HIGHESTMODSEQ", &m.highestModSeq)
	}, "SELECT INBOX (CONDSTORE)"); err != nil {
		return
	}
	if m.exists != msgs || m.uidValidity == 0 || m.uidNext == 0 || m.highestModSeq == 0 {
		err = fmt.Errorf("SELECT INBOX (CONDSTORE): EXISTS %d (want %d), UIDVALIDITY %d, UIDNEXT %d, HIGHESTMODSEQ %d", m.exists, msgs, m.uidValidity, m.uidNext, m.highestModSeq)
		return
	}
	if fetch, err = dialIMAP(s); err != nil {
		return
	}
	if err = fetch.login(s, "big"); err != nil {
		return
	}
	_, err = fetch.ok(nil, "SELECT INBOX")
	return
}

// parseNumber sets *v from an untagged "* N WORD" line.
func parseNumber(l, word string, v *int) {
	f := strings.Fields(l)
	if len(f) == 3 && f[0] == "*" && strings.EqualFold(f[2], word) {
		if x, err := strconv.Atoi(f[1]); err == nil {
			*v = x
		}
	}
}

// parseCode sets *v from a response code "[CODE N]" in an untagged line.
func parseCode(l, code string, v *int) {
	i := strings.Index(strings.ToUpper(l), "["+code+" ")
	if i < 0 {
		return
	}
	rest := l[i+len(code)+2:]
	if j := strings.IndexByte(rest, ']'); j >= 0 {
		if x, err := strconv.Atoi(rest[:j]); err == nil {
			*v = x
		}
	}
}

// imapClient is the bench's IMAP client: commands as lines, responses as
// lines with their literals, nothing parsed beyond what a case checks.
type imapClient struct {
	conn    net.Conn
	r       *bufio.Reader
	tags    int
	lastTag string
}

// dialIMAP connects to s and reads the greeting.
func dialIMAP(s *imapSide) (*imapClient, error) {
	nc, err := net.DialTimeout("tcp", s.addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Now().Add(imapTimeout))
	if s.tls != nil {
		tc := tls.Client(nc, s.tls)
		if err := tc.Handshake(); err != nil {
			nc.Close()
			return nil, fmt.Errorf("TLS with %s: %w", s.addr, err)
		}
		nc = tc
	}
	c := &imapClient{conn: nc, r: bufio.NewReaderSize(nc, 16<<10)}
	l, err := c.readLine()
	if err == nil && !strings.HasPrefix(l, "* OK") {
		err = fmt.Errorf("greeting %q", l)
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

func (c *imapClient) close() { c.conn.Close() }

// readLine reads one response line including the literals it announces
// ("{n}" at the end of a line is followed by n bytes and more of the line).
func (c *imapClient) readLine() (string, error) {
	var b strings.Builder
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			return "", err
		}
		b.WriteString(l)
		t := strings.TrimRight(l, "\r\n")
		i := strings.LastIndexByte(t, '{')
		if !strings.HasSuffix(t, "}") || i < 0 {
			return strings.TrimRight(b.String(), "\r\n"), nil
		}
		n, err := strconv.ParseInt(t[i+1:len(t)-1], 10, 64)
		if err != nil || n < 0 || n > 64<<20 {
			return strings.TrimRight(b.String(), "\r\n"), nil
		}
		if _, err := io.CopyN(&b, c.r, n); err != nil {
			return "", err
		}
	}
}

// send writes one tagged command.
func (c *imapClient) send(format string, args ...any) error {
	c.tags++
	c.lastTag = fmt.Sprintf("b%d", c.tags)
	c.conn.SetDeadline(time.Now().Add(imapTimeout))
	_, err := fmt.Fprintf(c.conn, "%s %s\r\n", c.lastTag, fmt.Sprintf(format, args...))
	return err
}

// cmd sends a command and reads up to its tagged answer, which it returns
// without the tag; every other line goes to each when set.
func (c *imapClient) cmd(each func(string), format string, args ...any) (string, error) {
	if err := c.send(format, args...); err != nil {
		return "", err
	}
	for {
		l, err := c.readLine()
		if err != nil {
			return "", fmt.Errorf("%s: %w", strings.Fields(format)[0], err)
		}
		if t, ok := strings.CutPrefix(l, c.lastTag+" "); ok {
			return t, nil
		}
		if each != nil {
			each(l)
		}
	}
}

// ok is cmd for a command that must succeed.
func (c *imapClient) ok(each func(string), format string, args ...any) (string, error) {
	st, err := c.cmd(each, format, args...)
	if err == nil && !strings.HasPrefix(st, "OK") {
		err = fmt.Errorf("%s: %s", fmt.Sprintf(format, args...), st)
	}
	return st, err
}

func (c *imapClient) login(s *imapSide, account string) error {
	if s.scram {
		return c.authenticateSCRAM(s.user(account), imapPassword)
	}
	_, err := c.ok(nil, "LOGIN %s %s", strconv.Quote(s.user(account)), strconv.Quote(imapPassword))
	return err
}

// scramSalted caches SCRAM's SaltedPassword by password, salt and
// iteration count, as a client that stores it does: PBKDF2 runs once, not
// at every login.
var scramSalted sync.Map

// authenticateSCRAM logs in with AUTHENTICATE SCRAM-SHA-256 (RFC 5802,
// RFC 7677) and the initial response of RFC 4959, without channel binding.
func (c *imapClient) authenticateSCRAM(user, pass string) error {
	var nb [18]byte
	rand.Read(nb[:])
	nonce := base64.RawStdEncoding.EncodeToString(nb[:])
	// RFC 5802 §5.1: "=" and "," in the name are escaped.
	name := strings.NewReplacer("=", "=3D", ",", "=2C").Replace(user)
	const gs2 = "n,,"
	clientFirstBare := "n=" + name + ",r=" + nonce
	if err := c.send("AUTHENTICATE SCRAM-SHA-256 %s", base64.StdEncoding.EncodeToString([]byte(gs2+clientFirstBare))); err != nil {
		return err
	}
	serverFirst, err := c.challenge()
	if err != nil {
		return err
	}
	attrs := strings.Split(serverFirst, ",")
	if len(attrs) < 3 || !strings.HasPrefix(attrs[0], "r="+nonce) || !strings.HasPrefix(attrs[1], "s=") || !strings.HasPrefix(attrs[2], "i=") {
		return fmt.Errorf("SCRAM: unexpected server-first-message %q", serverFirst)
	}
	salt, err := base64.StdEncoding.DecodeString(attrs[1][2:])
	if err != nil {
		return fmt.Errorf("SCRAM salt: %w", err)
	}
	iter, err := strconv.Atoi(attrs[2][2:])
	if err != nil || iter < 1 || iter > 1<<20 {
		return fmt.Errorf("SCRAM: iteration count %q", attrs[2])
	}
	key := pass + "\x00" + string(salt) + "\x00" + attrs[2]
	salted, ok := scramSalted.Load(key)
	if !ok {
		// RFC 5802 §3: SaltedPassword := Hi(password, salt, i).
		b, err := pbkdf2.Key(sha256.New, pass, salt, iter, sha256.Size)
		if err != nil {
			return err
		}
		salted, _ = scramSalted.LoadOrStore(key, b)
	}
	sp := salted.([]byte)
	mac := func(k []byte, m string) []byte {
		h := hmac.New(sha256.New, k)
		h.Write([]byte(m))
		return h.Sum(nil)
	}
	// RFC 5802 §3: ClientProof := ClientKey XOR HMAC(H(ClientKey),
	// AuthMessage); ServerSignature := HMAC(HMAC(SaltedPassword, "Server
	// Key"), AuthMessage).
	withoutProof := "c=" + base64.StdEncoding.EncodeToString([]byte(gs2)) + "," + attrs[0]
	authMsg := clientFirstBare + "," + serverFirst + "," + withoutProof
	clientKey := mac(sp, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	proof := mac(storedKey[:], authMsg)
	subtle.XORBytes(proof, proof, clientKey)
	if _, err := io.WriteString(c.conn, base64.StdEncoding.EncodeToString([]byte(withoutProof+",p="+base64.StdEncoding.EncodeToString(proof)))+"\r\n"); err != nil {
		return err
	}
	serverFinal, err := c.challenge()
	if err != nil {
		return err
	}
	want := "v=" + base64.StdEncoding.EncodeToString(mac(mac(sp, "Server Key"), authMsg))
	if v, _, _ := strings.Cut(serverFinal, ","); v != want {
		return fmt.Errorf("SCRAM: server-final-message %q does not prove the server knows the password", serverFinal)
	}
	// RFC 5802 §5: an empty response ends the exchange.
	if _, err := io.WriteString(c.conn, "\r\n"); err != nil {
		return err
	}
	for {
		l, err := c.readLine()
		if err != nil {
			return fmt.Errorf("AUTHENTICATE: %w", err)
		}
		if t, ok := strings.CutPrefix(l, c.lastTag+" "); ok {
			if !strings.HasPrefix(t, "OK") {
				return fmt.Errorf("AUTHENTICATE SCRAM-SHA-256 %s: %s", user, t)
			}
			return nil
		}
	}
}

// challenge reads a SASL challenge ("+ base64") of the command in
// progress; its tagged answer instead is an error.
func (c *imapClient) challenge() (string, error) {
	for {
		l, err := c.readLine()
		if err != nil {
			return "", fmt.Errorf("AUTHENTICATE: %w", err)
		}
		if t, ok := strings.CutPrefix(l, "+"); ok {
			b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(t))
			if err != nil {
				return "", fmt.Errorf("AUTHENTICATE: challenge %q: %w", l, err)
			}
			return string(b), nil
		}
		if t, ok := strings.CutPrefix(l, c.lastTag+" "); ok {
			return "", fmt.Errorf("AUTHENTICATE: %s", t)
		}
	}
}

// idle sends IDLE and waits for the continuation; it returns "" when the
// server is idling, else its tagged answer.
func (c *imapClient) idle() (string, error) {
	if err := c.send("IDLE"); err != nil {
		return "", err
	}
	for {
		l, err := c.readLine()
		if err != nil {
			return "", fmt.Errorf("IDLE: %w", err)
		}
		if strings.HasPrefix(l, "+") {
			// The deadline was for the command: an idle connection waits.
			c.conn.SetDeadline(time.Time{})
			return "", nil
		}
		if t, ok := strings.CutPrefix(l, c.lastTag+" "); ok {
			return t, nil
		}
	}
}

// x509Pool is a pool of the certificates in pem.
func x509Pool(pem []byte) *x509.CertPool {
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(pem)
	return p
}
