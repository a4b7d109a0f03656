package main

// The inbound case is P1: durable inbound delivery. Postfix's smtp-source
// sends n messages of 10 KiB over 20 concurrent SMTP sessions (one message
// per connection, its default) to one recipient, first at moxd's port 25,
// then at a Postfix delivering to a maildir, in alternating rounds with
// fresh state each. The clock starts when smtp-source starts and stops when
// the n-th message is durably stored:
//
//   - moxd: the account's message count from "account list" on the control
//     socket (master asks store for AccountUsage, whose count is of committed
//     messages), one call every 5 ms over one kept-open connection. There is
//     no cheaper status call with a message count: "status" has none, and
//     "mailbox list" has names only.
//   - Postfix: the number of files in the maildir's new/, read every 5 ms.
//     virtual(8) fsyncs a message in tmp/ before it links it into new/.
//
// The times the n/4-th, 3n/4-th and n-th message arrived give the tail
// figure: the rate of the last quarter against the rate of the first.
//
// Both servers need DNS that answers: moxd checks iprev, SPF, DKIM and DMARC
// on port 25, and Postfix's smtpd looks up the client's name. The machine's
// resolver answers NXDOMAIN for everything, so the case runs in a network
// namespace of its own ("moxdbench inbound" makes it and runs "moxdbench
// inbound-ns" inside), whose /etc/resolv.conf names an unbound on
// 127.0.0.1:53 serving only local data. moxd reads that file through
// master ([dns] resolv_conf, default /etc/resolv.conf); Postfix reads it
// through the C library.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"moxd/internal/ctl"
)

const (
	inboundSessions = 20
	inboundSize     = 10240
	inboundSender   = "sender@bench.example"
	// inboundClient is the name smtp-source gives in EHLO (-M); the local
	// DNS maps it to 127.0.0.1 and back.
	inboundClient  = "client.bench.example"
	inboundDomain  = "dest.example"
	inboundAccount = "rcpt"
	inboundRcpt    = inboundAccount + "@" + inboundDomain
	inboundHost    = "mx." + inboundDomain
	inboundPoll    = 10 * time.Millisecond
)

// inboundLimitsRaised is the part of moxd.conf the case adds to the config
// of the other cases. It is printed in the report as it is written.
const inboundLimitsRaised = `trusted_networks = ["127.0.0.0/8"]`

// The local DNS data, shared by unbound's config and the report.
var inboundRecords = []string{
	"1.0.0.127.in-addr.arpa. 300 IN PTR " + inboundClient + ".",
	inboundClient + ". 300 IN A 127.0.0.1",
	`bench.example. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
	`_dmarc.bench.example. 300 IN TXT "v=DMARC1; p=none"`,
}

// inboundRun is one measured round of one server.
type inboundRun struct {
	marks [3]time.Duration // arrival of the n/4-th, 3n/4-th and n-th message
	busy  float64          // share of all cores' time not idle during the round
}

func quarters(n int) (q1, q3 int) { return n / 4, n - n/4 }

func (r inboundRun) rate(n int) float64 { return float64(n) / r.marks[2].Seconds() }

func (r inboundRun) first(n int) float64 {
	q1, _ := quarters(n)
	return float64(q1) / r.marks[0].Seconds()
}

func (r inboundRun) last(n int) float64 {
	_, q3 := quarters(n)
	return float64(n-q3) / (r.marks[2] - r.marks[1]).Seconds()
}

// inboundSide collects the rounds of one server.
type inboundSide struct {
	runs []inboundRun
	err  error
}

// benchInbound is P1 as started by bench/run: it makes the network
// namespace and runs the measurement inside it. Anything that keeps the case
// from running ends up in the P1 line, not in the exit status, so that the
// other cases still run.
func benchInbound(n, rounds int) error {
	unavailable := func(format string, args ...any) error {
		fmt.Printf("P1  unavailable (%s)\n", fmt.Sprintf(format, args...))
		return nil
	}
	if os.Geteuid() != 0 {
		return unavailable("needs root: a network namespace for local DNS, Postfix, moxd roles under their own uids")
	}
	for _, tool := range []string{"smtp-source", "postfix", "postconf", "unbound", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			reason := tool + " not found: install Debian packages postfix, unbound and iproute2 (bench/run does as root)"
			if why := os.Getenv("MOXDBENCH_P1_INSTALL"); why != "" {
				reason += "; " + why
			}
			return unavailable("%s", reason)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return unavailable("own executable: %v", err)
	}
	bin, err := filepath.Abs(*binDir)
	if err != nil {
		return unavailable("%v", err)
	}

	ns := fmt.Sprintf("moxdbench-p1-%d", os.Getpid())
	cleanup, err := makeNetns(ns)
	defer cleanup()
	if err != nil {
		return unavailable("network namespace %s: %v", ns, err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, exe, "-bin", bin, "-n", strconv.Itoa(n), "-rounds", strconv.Itoa(rounds), "inbound-ns", ns)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	// A Ctrl-C reaches the child too (same process group); it stops its
	// servers and returns, and then the namespace is removed here.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return unavailable("ip netns exec: %v", err)
	}
	go func() {
		for s := range sigs {
			if s == syscall.SIGTERM {
				cmd.Process.Signal(s)
			}
		}
	}()
	if err := cmd.Wait(); err != nil {
		return unavailable("moxdbench inbound-ns in namespace %s: %v", ns, err)
	}
	return nil
}

// makeNetns creates network namespace ns with loopback up and a resolv.conf
// naming 127.0.0.1. The returned cleanup removes what was made, also after
// an error.
func makeNetns(ns string) (cleanup func(), err error) {
	var undo []func()
	cleanup = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	run := func(args ...string) error {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
		return nil
	}
	if err := run("ip", "netns", "add", ns); err != nil {
		return cleanup, err
	}
	undo = append(undo, func() { run("ip", "netns", "del", ns) })
	if err := run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"); err != nil {
		return cleanup, err
	}
	// "ip netns exec" bind-mounts the files of /etc/netns/NAME over those
	// of /etc for the command it runs. /etc/netns itself stays, as
	// /run/netns does: other namespaces' users (tests) may be using it.
	if err := os.MkdirAll("/etc/netns", 0o755); err != nil {
		return cleanup, err
	}
	etc := filepath.Join("/etc/netns", ns)
	if err := os.Mkdir(etc, 0o755); err != nil {
		return cleanup, err
	}
	undo = append(undo, func() { os.RemoveAll(etc) })
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		return cleanup, err
	}
	// Without 127.0.0.1 in /etc/hosts, Postfix (through the C library)
	// finds the client's name in DNS as moxd does, not "localhost" in the
	// file.
	return cleanup, os.WriteFile(filepath.Join(etc, "hosts"), []byte(netnsHosts), 0o644)
}

// netnsHosts is /etc/hosts in the namespace.
const netnsHosts = "# moxdbench P1: empty, so that names come from the local unbound (glibc would\n# read \"::1 localhost\" as a name of 127.0.0.1 too)\n"

// benchInboundNS is P1 inside the namespace made by benchInbound.
func benchInboundNS(ns string, n, rounds int) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	unavailable := func(err error) error {
		fmt.Printf("P1  unavailable (%s)\n", oneLine(err))
		return nil
	}
	root, err := os.MkdirTemp("", "moxdbench-p1-")
	if err != nil {
		return unavailable(err)
	}
	defer os.RemoveAll(root)
	// Traversable by Postfix's and moxd's users.
	if err := os.Chmod(root, 0o755); err != nil {
		return unavailable(err)
	}
	ub, ubVersion, err := startUnbound(ctx, filepath.Join(root, "unbound"))
	if err != nil {
		return unavailable(fmt.Errorf("local DNS: %w", err))
	}
	defer stopChild(ub)
	pfVersion := "Postfix"
	if out, err := exec.Command("postconf", "-d", "-h", "mail_version").Output(); err == nil {
		pfVersion += " " + strings.TrimSpace(string(out))
	}

	var moxd, peer inboundSide
	var notes moxdNotes
	for r := 0; r < rounds && ctx.Err() == nil; r++ {
		if moxd.err == nil {
			run, nt, err := moxdInbound(ctx, n, r == 0)
			if err != nil {
				moxd.err = fmt.Errorf("round %d: %w", r+1, err)
				fmt.Fprintf(os.Stderr, "# P1 moxd round %d: %v\n", r+1, err)
			} else {
				moxd.runs = append(moxd.runs, run)
				if r == 0 {
					notes.authResults = nt.authResults
				}
				notes.counters = append(notes.counters, nt.counters...)
				if notes.cpu == nil {
					notes.cpu = map[string]float64{}
				}
				for k, v := range nt.cpu {
					notes.cpu[k] += v
				}
				notes.messages += nt.messages
			}
		}
		if peer.err == nil && ctx.Err() == nil {
			run, err := postfixInbound(ctx, filepath.Join(root, fmt.Sprintf("postfix-%d", r+1)), n)
			if err != nil {
				peer.err = fmt.Errorf("round %d: %w", r+1, err)
				fmt.Fprintf(os.Stderr, "# P1 peer round %d: %v\n", r+1, err)
			} else {
				peer.runs = append(peer.runs, run)
			}
		}
	}
	if ctx.Err() != nil {
		return unavailable(errors.New("interrupted"))
	}

	q1, q3 := quarters(n)
	fmt.Printf("# P1 load: smtp-source -c -s %d -m %d -l %d -M %s -f %s -t %s 127.0.0.1:PORT (one message per connection), %d rounds per server alternating moxd, Postfix, fresh state each round; figures are medians, the tail ratio the median of the rounds' last/first\n",
		inboundSessions, n, inboundSize, inboundClient, inboundSender, inboundRcpt, rounds)
	fmt.Printf("# P1 DNS: network namespace %s, its /etc/resolv.conf = nameserver 127.0.0.1 and /etc/hosts without 127.0.0.1: %s with local-zone \".\" static and only: %s\n",
		ns, ubVersion, strings.Join(inboundRecords, "; "))
	fmt.Printf("# P1 moxd: checks that ran (port 25 runs them all): iprev, SPF of MAIL FROM, DKIM (the messages are unsigned), DMARC; resolver: the namespace's unbound from [dns] resolv_conf = /etc/resolv.conf (the default)\n")
	if notes.authResults != "" {
		fmt.Printf("# P1 moxd: %s\n", notes.authResults)
	}
	fmt.Printf("# P1 moxd: limit raised: [limits] %s (127.0.0.1 exempt from connections_per_minute, default 300/min per IP, and concurrent_connections, default 100 per IP; smtp-source opens %d connections); all else default\n", inboundLimitsRaised, n)
	if c := slices.Compact(slices.Clone(notes.counters)); len(c) == 1 {
		fmt.Printf("# P1 moxd: smtp role counters after every round: %s\n", c[0])
	} else if len(c) > 1 {
		fmt.Printf("# P1 moxd: smtp role counters after each round: %s\n", strings.Join(notes.counters, "; "))
	}
	if notes.messages > 0 {
		var l []string
		for _, k := range slices.Sorted(maps.Keys(notes.cpu)) {
			if us := notes.cpu[k] / float64(notes.messages) * 1e6; us >= 1 {
				l = append(l, fmt.Sprintf("%s %.0f", k, us))
			}
		}
		fmt.Printf("# P1 moxd: CPU us per message by process (status polling included in master and store): %s\n", strings.Join(l, ", "))
	}
	fmt.Printf("# P1 moxd: stored = message count of account %s from \"account list\" on the control socket (store's AccountUsage, committed messages), polled every %s\n", inboundAccount, inboundPoll)
	fmt.Printf("# P1 peer: %s, own config and queue in a temp dir, smtpd on 127.0.0.1 -> cleanup -> qmgr -> virtual(8) maildir as uid nobody (fsync of queue file and of maildir file); no limit raised (smtpd_client_connection_count_limit = 50 >= %d sessions, connection rate limit 0, 127.0.0.0/8 in mynetworks); no SPF/DKIM/DMARC (not built in), client name lookup per connection; stored = files in new/, polled every %s\n",
		pfVersion, inboundSessions, inboundPoll)
	fmt.Printf("# P1 disk: moxd's data_dir, Postfix's queue and maildir all in new directories in %s (%s)\n", os.TempDir(), fsType(root))
	for _, s := range []struct {
		name string
		side inboundSide
	}{{"moxd", moxd}, {"peer", peer}} {
		var total, first, last, busy []string
		for _, r := range s.side.runs {
			busy = append(busy, fmt.Sprintf("%.0f%%", r.busy*100))
			total = append(total, fmt.Sprintf("%.0f", r.rate(n)))
			first = append(first, fmt.Sprintf("%.0f", r.first(n)))
			last = append(last, fmt.Sprintf("%.0f", r.last(n)))
		}
		if len(total) > 0 {
			fmt.Printf("# P1 spread %s: msgs/s %s; first%d %s; last%d %s; CPU busy (all cores, whole machine) %s\n", s.name, strings.Join(total, " "), q1, strings.Join(first, " "), n-q3, strings.Join(last, " "), strings.Join(busy, " "))
		}
	}

	rates := func(s inboundSide, f func(inboundRun, int) float64) []float64 {
		var v []float64
		for _, r := range s.runs {
			v = append(v, f(r, n))
		}
		return v
	}
	tailRatio := func(r inboundRun, n int) float64 { return r.last(n) / r.first(n) }
	var b strings.Builder
	b.WriteString("P1 ")
	if moxd.err != nil {
		fmt.Fprintf(&b, " moxd=unavailable (%s)", oneLine(moxd.err))
	} else {
		fmt.Fprintf(&b, " moxd=%.0f", median(rates(moxd, inboundRun.rate)))
	}
	if peer.err != nil {
		fmt.Fprintf(&b, " peer=unavailable (%s)", oneLine(peer.err))
	} else {
		fmt.Fprintf(&b, " peer=%.0f", median(rates(peer, inboundRun.rate)))
	}
	if moxd.err == nil && peer.err == nil {
		fmt.Fprintf(&b, " ratio=%.2f", median(rates(moxd, inboundRun.rate))/median(rates(peer, inboundRun.rate)))
	}
	b.WriteString("  goal>=2.0")
	fmt.Println(b.String())
	for _, s := range []struct {
		name, goal string
		side       inboundSide
	}{{"moxd", "goal>=0.8", moxd}, {"peer", "informational", peer}} {
		if s.side.err != nil {
			continue
		}
		fmt.Printf("P1-tail  %s first%d=%.0f last%d=%.0f ratio=%.2f  %s\n", s.name, q1, median(rates(s.side, inboundRun.first)), n-q3, median(rates(s.side, inboundRun.last)), median(rates(s.side, tailRatio)), s.goal)
	}
	return nil
}

// fsType names the file system dir is on, from /proc/self/mounts (the
// mount with the longest path that contains dir), for the report.
func fsType(dir string) string {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return "file system unknown"
	}
	best, typ := "", "file system unknown"
	for l := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 3 {
			continue
		}
		mp := f[1]
		if (dir == mp || strings.HasPrefix(dir, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(best) {
			best, typ = mp, f[2]+" "+f[0]
		}
	}
	if strings.HasPrefix(typ, "tmpfs") {
		typ += ": fsync costs nothing there"
	}
	return typ
}

// machineCPU returns the busy and total time of all cores so far, in
// clock ticks, from /proc/stat; iowait counts as idle.
func machineCPU() (busy, total uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(firstLine(b))
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0
	}
	for i, v := range f[1:] {
		x, _ := strconv.ParseUint(v, 10, 64)
		total += x
		if i != 3 && i != 4 { // idle, iowait
			busy += x
		}
	}
	return busy, total
}

// startUnbound starts unbound in the foreground on 127.0.0.1:53 with the
// local data and waits until the records resolve through /etc/resolv.conf.
func startUnbound(ctx context.Context, dir string) (*exec.Cmd, string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, `server:
    interface: 127.0.0.1
    port: 53
    do-ip6: no
    num-threads: 1
    username: ""
    chroot: ""
    directory: %q
    pidfile: %q
    use-syslog: no
    logfile: ""
    verbosity: 0
    module-config: "iterator"
    # Nothing leaves the namespace: every name without local data is NXDOMAIN.
    local-zone: "." static
    # Replaces unbound's default zone, whose PTR is "localhost".
    local-zone: "127.in-addr.arpa." static
    local-zone: "bench.example." static
`, dir, filepath.Join(dir, "unbound.pid"))
	for _, r := range inboundRecords {
		fmt.Fprintf(&b, "    local-data: '%s'\n", r)
	}
	b.WriteString("remote-control:\n    control-enable: no\n")
	conf := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		return nil, "", err
	}
	if out, err := exec.Command("unbound-checkconf", conf).CombinedOutput(); err != nil {
		return nil, "", fmt.Errorf("unbound-checkconf: %v: %s", err, bytes.TrimSpace(out))
	}
	version := "unbound"
	if out, err := exec.Command("unbound", "-V").Output(); err == nil {
		version = strings.ToLower(firstLine(out)) // "Version 1.17.1"
		version = "unbound " + strings.TrimPrefix(version, "version ")
	}
	var out bytes.Buffer
	cmd := exec.Command("unbound", "-d", "-c", conf)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	// The resolver as every program here sees it: /etc/resolv.conf of the
	// namespace.
	res := &net.Resolver{PreferGo: true}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := checkLocalDNS(ctx, res)
		if err == nil {
			return cmd, version, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stopChild(cmd)
			return nil, "", fmt.Errorf("%v; unbound said: %s", err, lastLines(out.Bytes(), 3))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkLocalDNS checks that the names moxd and Postfix look up resolve.
func checkLocalDNS(ctx context.Context, res *net.Resolver) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	names, err := res.LookupAddr(ctx, "127.0.0.1")
	if err != nil || len(names) != 1 || names[0] != inboundClient+"." {
		return fmt.Errorf("PTR of 127.0.0.1: %v %v", names, err)
	}
	addrs, err := res.LookupHost(ctx, inboundClient)
	if err != nil || !slices.Equal(addrs, []string{"127.0.0.1"}) {
		return fmt.Errorf("address of %s: %v %v", inboundClient, addrs, err)
	}
	for _, name := range []string{"bench.example", "_dmarc.bench.example"} {
		if txt, err := res.LookupTXT(ctx, name); err != nil || len(txt) != 1 {
			return fmt.Errorf("TXT of %s: %v %v", name, txt, err)
		}
	}
	return nil
}

// stopChild terminates a process this program started and waits for it.
func stopChild(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// loadErr is a failed round, with what smtp-source said.
func loadErr(what string, err error, out []byte) error {
	return fmt.Errorf("%s: %v; smtp-source said: %s", what, err, lastLines(bytes.ReplaceAll(out, []byte("\r"), []byte("\n")), 2))
}

// runLoad runs smtp-source against target and polls count until n messages
// are stored. ackIsDurable says that the server stores a message before it
// answers DATA, so every message smtp-source sent must be counted by the
// time it exits.
func runLoad(ctx context.Context, target string, n int, ackIsDurable bool, count func() (int, error)) (run inboundRun, err error) {
	q1, q3 := quarters(n)
	limit := 60*time.Second + time.Duration(n)*100*time.Millisecond
	var out bytes.Buffer
	src := exec.Command("smtp-source", "-c", "-s", strconv.Itoa(inboundSessions), "-m", strconv.Itoa(n), "-l", strconv.Itoa(inboundSize),
		"-M", inboundClient, "-f", inboundSender, "-t", inboundRcpt, target)
	src.Stdout, src.Stderr = &out, &out
	t0 := time.Now()
	if err := src.Start(); err != nil {
		return run, err
	}
	exited := make(chan error, 1)
	go func() { exited <- src.Wait() }()
	defer func() {
		if src.ProcessState == nil {
			src.Process.Kill()
			<-exited
		}
	}()
	busy0, total0 := machineCPU()
	defer func() {
		busy1, total1 := machineCPU()
		if total1 > total0 {
			run.busy = float64(busy1-busy0) / float64(total1-total0)
		}
	}()
	var srcDone time.Time // when smtp-source exited successfully
	var lastErr error
	got := 0
	tick := time.NewTicker(inboundPoll)
	defer tick.Stop()
	for got < n {
		select {
		case <-ctx.Done():
			return run, ctx.Err()
		case err := <-exited:
			if err != nil {
				return run, loadErr(fmt.Sprintf("smtp-source failed with %d of %d messages stored", got, n), err, out.Bytes())
			}
			srcDone = time.Now()
			continue
		case <-tick.C:
		}
		c, err := count()
		now := time.Since(t0)
		if err != nil {
			lastErr = err
		} else {
			if got < q1 && c >= q1 {
				run.marks[0] = now
			}
			if got < q3 && c >= q3 {
				run.marks[1] = now
			}
			got = c
		}
		switch {
		case now > limit:
			return run, fmt.Errorf("%d of %d messages stored after %s (last poll error: %v)", got, n, limit, lastErr)
		case ackIsDurable && !srcDone.IsZero() && time.Since(srcDone) > 2*time.Second && got < n:
			return run, fmt.Errorf("smtp-source had %d messages accepted, but only %d are stored 2s later (last poll error: %v)", n, got, lastErr)
		}
	}
	run.marks[2] = time.Since(t0)
	if got > n {
		return run, fmt.Errorf("%d messages stored, %d sent", got, n)
	}
	if srcDone.IsZero() {
		select {
		case err := <-exited:
			if err != nil {
				return run, loadErr("smtp-source", err, out.Bytes())
			}
		case <-time.After(10 * time.Second):
			return run, errors.New("smtp-source did not exit 10s after the last message was stored")
		}
	}
	return run, nil
}

// moxdNotes is what a moxd round adds to the report.
type moxdNotes struct {
	authResults string             // of the first message, from the first round
	counters    []string           // smtp role counters per round
	cpu         map[string]float64 // CPU seconds per process (role or master)
	messages    int                // messages the CPU seconds are for
}

// moxdInbound runs one round against a new moxd instance.
func moxdInbound(ctx context.Context, n int, readHeaders bool) (inboundRun, moxdNotes, error) {
	var notes moxdNotes
	dir, conf, err := newConfigWith(inboundHost, "[limits]\n"+inboundLimitsRaised+"\n")
	if err != nil {
		return inboundRun{}, notes, err
	}
	domains := fmt.Sprintf("[[domain]]\nname = %q\n\n[[account]]\nname = %q\naddresses = [%q, %q]\n", inboundDomain, inboundAccount, inboundRcpt, "postmaster@"+inboundDomain)
	if err := os.WriteFile(filepath.Join(dir, "domains.conf"), []byte(domains), 0o644); err != nil {
		os.RemoveAll(dir)
		return inboundRun{}, notes, err
	}
	in, err := startInstance(dir, conf)
	if err != nil {
		os.RemoveAll(dir)
		return inboundRun{}, notes, err
	}
	defer in.cleanup()
	st, err := in.waitReady()
	if err != nil {
		return inboundRun{}, notes, err
	}
	target := addr(st, "smtp")
	if target == "" {
		return inboundRun{}, notes, errors.New("no smtp listener in moxctl status")
	}
	sock := ctl.SocketPath(filepath.Join(dir, "run"))
	var cl *ctl.Client
	defer func() {
		if cl != nil {
			cl.Close()
		}
	}()
	count := func() (int, error) {
		if cl == nil {
			c, err := ctl.Dial(sock)
			if err != nil {
				return 0, err
			}
			cl = c
		}
		cl.SetDeadline(time.Now().Add(5 * time.Second))
		var l ctl.AccountList
		if _, err := cl.Call(ctl.Request{Cmd: "account list"}, nil, &l); err != nil {
			// The connection may be out of step: a new one next time.
			cl.Close()
			cl = nil
			return 0, err
		}
		for _, a := range l.Accounts {
			if a.Name == inboundAccount {
				if a.UsageError != "" {
					return 0, errors.New(a.UsageError)
				}
				return int(a.Messages), nil
			}
		}
		return 0, fmt.Errorf("no account %s in account list", inboundAccount)
	}
	pids := map[string]int{"master": st.Master.PID}
	for _, r := range st.Roles {
		pids[r.Role] = r.PID
	}
	cpu0 := map[string]float64{}
	for name, pid := range pids {
		cpu0[name] = cpuTime(pid)
	}
	run, err := runLoad(ctx, target, n, true, count)
	if err != nil {
		return run, notes, fmt.Errorf("%w; moxd log: %s", err, moxdLogTail(in))
	}
	notes.cpu, notes.messages = map[string]float64{}, n
	for name, pid := range pids {
		notes.cpu[name] = cpuTime(pid) - cpu0[name]
	}
	st2, err := in.status()
	if err != nil {
		return run, notes, err
	}
	var restarted []string
	for _, r := range st2.Roles {
		if r.Restarts > 0 {
			restarted = append(restarted, fmt.Sprintf("%s %dx", r.Role, r.Restarts))
		}
		if r.Role == "smtp" {
			var c []string
			for _, k := range r.Counters {
				c = append(c, fmt.Sprintf("%s=%d", k.Name, k.Value))
			}
			notes.counters = append(notes.counters, strings.Join(c, ", "))
		}
	}
	if len(restarted) > 0 {
		return run, notes, fmt.Errorf("roles restarted during the round: %s; moxd log: %s", strings.Join(restarted, ", "), moxdLogTail(in))
	}
	if readHeaders {
		if cl == nil {
			c, err := ctl.Dial(sock)
			if err != nil {
				return run, notes, err
			}
			cl = c
		}
		h, err := firstMessageHeaders(cl, []string{"Authentication-Results", "Received-SPF"})
		if err != nil {
			notes.authResults = "reading the first message back: " + err.Error()
		} else {
			notes.authResults = "headers of the first message: " + h
		}
	}
	return run, notes, nil
}

// moxdLogTail is the end of the instance's log, for error reports.
func moxdLogTail(in *instance) string {
	b, _ := os.ReadFile(in.log.Name())
	if len(bytes.TrimSpace(b)) == 0 {
		return "empty"
	}
	return lastLines(b, 3)
}

// firstMessageHeaders exports the Inbox of the bench account and returns
// the named header fields of its first message, unfolded.
func firstMessageHeaders(cl *ctl.Client, names []string) (string, error) {
	cl.SetDeadline(time.Now().Add(60 * time.Second))
	files, err := cl.Call(ctl.Request{Cmd: "export", Args: []string{inboundAccount, "INBOX"}}, nil, nil)
	if err != nil {
		return "", err
	}
	if len(files) != 1 {
		for _, f := range files {
			f.Close()
		}
		return "", fmt.Errorf("export: %d fds, want 1", len(files))
	}
	stream := files[0]
	var fields []string
	br := bufio.NewReader(stream)
	inHeader, started := false, false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			break
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case !started && strings.HasPrefix(line, "From "):
			started, inHeader = true, true
		case inHeader && line == "":
			inHeader = false
		case inHeader && (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")):
			if len(fields) > 0 && fields[len(fields)-1] != "" {
				fields[len(fields)-1] += " " + strings.TrimSpace(line)
			}
		case inHeader:
			keep := ""
			for _, nm := range names {
				if len(line) > len(nm) && strings.EqualFold(line[:len(nm)+1], nm+":") {
					keep = line
				}
			}
			fields = append(fields, keep)
		}
		if started && !inHeader {
			// The rest of the stream is read and dropped so that store ends
			// the export normally.
			io.Copy(io.Discard, br)
			break
		}
	}
	stream.Close()
	var res ctl.ExportResult
	if _, err := cl.Next(&res); err != nil {
		return "", err
	}
	var kept []string
	for _, f := range fields {
		if f != "" {
			kept = append(kept, f)
		}
	}
	if len(kept) == 0 {
		return "", fmt.Errorf("none of %s in the first of %d exported messages", strings.Join(names, ", "), res.Messages)
	}
	return strings.Join(kept, " | "), nil
}

// postfixInbound runs one round against a new Postfix instance in dir.
func postfixInbound(ctx context.Context, dir string, n int) (inboundRun, error) {
	nobody, err := user.Lookup("nobody")
	if err != nil {
		return inboundRun{}, fmt.Errorf("user nobody: %w", err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	confDir := filepath.Join(dir, "config")
	mail := filepath.Join(dir, "mail")
	// "postfix start" makes the directories inside the queue directory
	// (post-install create-missing), not the queue directory itself.
	for _, d := range []string{confDir, mail, filepath.Join(dir, "queue")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return inboundRun{}, err
		}
	}
	if err := os.Chown(mail, uid, gid); err != nil {
		return inboundRun{}, err
	}
	port, err := freePort()
	if err != nil {
		return inboundRun{}, err
	}
	if err := writePostfixConfig(dir, port, uid, gid); err != nil {
		return inboundRun{}, err
	}
	out, err := exec.Command("postfix", "-c", confDir, "start").CombinedOutput()
	if err != nil {
		stopPostfix(dir)
		return inboundRun{}, fmt.Errorf("postfix -c %s start: %v: %s; maillog: %s", confDir, err, lastLines(out, 2), postfixLogTail(dir))
	}
	defer stopPostfix(dir)
	target := fmt.Sprintf("127.0.0.1:%d", port)
	if err := waitGreeting(target, 30*time.Second); err != nil {
		return inboundRun{}, fmt.Errorf("postfix smtpd: %v; maillog: %s", err, postfixLogTail(dir))
	}
	newDir := filepath.Join(mail, inboundDomain, inboundAccount, "new")
	count := func() (int, error) {
		f, err := os.Open(newDir)
		if errors.Is(err, os.ErrNotExist) {
			return 0, nil // virtual(8) makes the maildir at the first delivery
		} else if err != nil {
			return 0, err
		}
		defer f.Close()
		names, err := f.Readdirnames(-1)
		return len(names), err
	}
	run, err := runLoad(ctx, target, n, false, count)
	if err != nil {
		return run, fmt.Errorf("%w; maillog: %s", err, postfixLogTail(dir))
	}
	return run, nil
}

// writePostfixConfig writes main.cf, master.cf and the mailbox table of a
// Postfix that accepts mail for inboundRcpt on 127.0.0.1:port and delivers
// it with virtual(8) into a maildir below dir/mail. Nothing of the system's
// Postfix configuration is read or changed; limits are Postfix's defaults.
func writePostfixConfig(dir string, port, uid, gid int) error {
	confDir := filepath.Join(dir, "config")
	mainCF := fmt.Sprintf(`# Written by moxdbench for case P1.
compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
maillog_file_prefixes = %[1]s
maillog_file = %[1]s/maillog
syslog_name = postfix-moxdbench
myhostname = %[2]s
mydomain = %[3]s
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
alias_maps =
alias_database =
biff = no
virtual_mailbox_domains = %[3]s
virtual_mailbox_base = %[1]s/mail
virtual_mailbox_maps = texthash:%[1]s/config/vmailbox
virtual_uid_maps = static:%[4]d
virtual_gid_maps = static:%[5]d
`, dir, inboundHost, inboundDomain, uid, gid)
	// The Debian master.cf services, each without chroot (the queue
	// directory is not set up as one: no resolv.conf inside), and smtpd on
	// the bench port only.
	masterCF := fmt.Sprintf(`127.0.0.1:%d inet n - n - - smtpd
pickup     unix  n - n 60   1 pickup
cleanup    unix  n - n -    0 cleanup
qmgr       unix  n - n 300  1 qmgr
tlsmgr     unix  - - n 1000? 1 tlsmgr
rewrite    unix  - - n -    - trivial-rewrite
bounce     unix  - - n -    0 bounce
defer      unix  - - n -    0 bounce
trace      unix  - - n -    0 bounce
verify     unix  - - n -    1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -    - proxymap
proxywrite unix  - - n -    1 proxymap
smtp       unix  - - n -    - smtp
relay      unix  - - n -    - smtp
showq      unix  n - n -    - showq
error      unix  - - n -    - error
retry      unix  - - n -    - error
discard    unix  - - n -    - discard
local      unix  - n n -    - local
virtual    unix  - n n -    - virtual
lmtp       unix  - - n -    - lmtp
anvil      unix  - - n -    1 anvil
scache     unix  - - n -    1 scache
postlog    unix-dgram n - n - 1 postlogd
`, port)
	vmailbox := fmt.Sprintf("%s %s/%s/\n", inboundRcpt, inboundDomain, inboundAccount)
	for name, text := range map[string]string{"main.cf": mainCF, "master.cf": masterCF, "vmailbox": vmailbox} {
		if err := os.WriteFile(filepath.Join(confDir, name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// stopPostfix stops the master of the Postfix in dir by its pid file and
// waits until it and its children are gone.
func stopPostfix(dir string) {
	b, err := os.ReadFile(filepath.Join(dir, "queue", "pid", "master.pid"))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	children := childPIDs(pid)
	syscall.Kill(pid, syscall.SIGTERM)
	for _, p := range append([]int{pid}, children...) {
		if !waitGone(p, 20*time.Second) {
			syscall.Kill(p, syscall.SIGKILL)
			waitGone(p, 5*time.Second)
		}
	}
}

// childPIDs lists the processes whose parent is pid.
func childPIDs(pid int) []int {
	var l []int
	for p, parent := range parentPIDs() {
		if parent == pid {
			l = append(l, p)
		}
	}
	slices.Sort(l)
	return l
}

// parentPIDs maps every process in /proc to its parent.
func parentPIDs() map[int]int {
	parents := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 {
			if pp, err := strconv.Atoi(f[1]); err == nil {
				parents[p] = pp
			}
		}
	}
	return parents
}

// waitGone waits until process pid (not a child of this program) has exited.
func waitGone(pid int, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		// A zombie has exited; its parent reaps it.
		s := string(b)
		if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) > 0 && f[0] == "Z" {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// postfixLogTail is the end of the Postfix instance's maillog.
func postfixLogTail(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "maillog"))
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return "empty"
	}
	return lastLines(b, 3)
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitGreeting waits until target answers with an SMTP greeting.
func waitGreeting(target string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp", target, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			br := bufio.NewReader(c)
			var line string
			line, err = br.ReadString('\n')
			if err == nil && !strings.HasPrefix(line, "220") {
				err = fmt.Errorf("greeting %q", strings.TrimSpace(line))
			}
			if err == nil {
				fmt.Fprintf(c, "QUIT\r\n")
				br.ReadString('\n')
			}
			c.Close()
			if err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
