package main

// The outbound case is P2: outbound delivery of n queued 10 KiB messages,
// one recipient each, to one domain, whose only MX host is Postfix's
// smtp-sink on 127.0.0.1. The peer is Postfix relaying to the same sink.
// Each round starts a new server and fills its queue while delivery is
// stopped, then releases the queue; the clock runs from the release to
// the empty queue. Rounds alternate which server goes first.
//
//   - moxd: a hold rule for the sink's domain ("queue holdrules add
//     -rcptdomain") holds every message as it is submitted, over the
//     submission listener (STARTTLS, AUTH PLAIN) from several connections
//     of this program. The clock starts before "queue holdrules rm" and
//     "queue unhold -all" on the control socket and stops when the queue
//     role's messages_queued counter, from "status" every 10 ms over one
//     kept-open connection, is 0. Direct delivery: the MX lookup goes to
//     a DNS server in this program ([dns] nameservers), the connection to
//     [queue] port, the sink's port.
//   - Postfix: smtpd holds every message (check_client_access
//     static:HOLD); the same messages come in over plain SMTP from the
//     same client. The clock starts before "postsuper -H ALL" and
//     "postqueue -f" and stops when qmgr has logged n "removed" lines
//     (the maillog is read every 10 ms) and no file is left in the queue
//     directories incoming, active, deferred, hold and maildrop.
//     Delivery: relayhost = [127.0.0.1]:PORT, no DNS.
//
// Both deliver without TLS (smtp-sink offers no STARTTLS), and both must
// have handed every message to the sink: moxd's outbound_delivered counter
// and Postfix's status=sent lines in its log are checked after each round,
// the sink's own message count (which it writes out as it exits) after
// the last.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mdns "github.com/miekg/dns"

	"moxd/internal/ctl"
	"moxd/internal/ipc"
	"moxd/internal/queue"
)

const (
	outboundSize    = 10240
	outboundDomain  = "sink.test"
	outboundMX      = "mx." + outboundDomain
	outboundRcpt    = "rcpt@" + outboundDomain
	outboundFrom    = "bench.example"
	outboundAccount = "sender"
	outboundSender  = outboundAccount + "@" + outboundFrom
	outboundHost    = "mail." + outboundFrom
	outboundPoll    = 10 * time.Millisecond
	// outboundFillConns are the client's connections filling a queue.
	outboundFillConns = 8
	// outboundPassword is the bench account's password (a new instance
	// per round, on loopback).
	outboundPassword = "p2-bench-password"
)

// outboundLimitsRaised is what the case changes in moxd's account
// defaults (1000 messages a day and 200 first-time recipients); printed as
// written.
const outboundLimitsRaised = "max_messages_per_day = 0, max_first_time_recipients_per_day = 0"

// outboundRootSOA is in the authority section of NXDOMAIN answers for
// names outside the sink's domain.
const outboundRootSOA = ". 300 IN SOA ns.bench.invalid. hostmaster.bench.invalid. 1 3600 600 86400 300"

// The DNS data of direct delivery; every other name is NXDOMAIN.
var outboundRecords = []string{
	outboundDomain + ". 300 IN SOA ns." + outboundDomain + ". hostmaster." + outboundDomain + ". 1 3600 600 86400 300",
	outboundDomain + ". 300 IN MX 10 " + outboundMX + ".",
	outboundMX + ". 300 IN A 127.0.0.1",
}

// outboundRun is one measured round of one server.
type outboundRun struct {
	elapsed time.Duration      // release to empty queue
	release time.Duration      // of which the release commands
	fill    time.Duration      // queueing the n messages, not measured
	busy    float64            // share of all cores' time not idle
	busySec float64            // CPU seconds of the whole machine
	cpu     map[string]float64 // CPU seconds per server process (name)
	sinkCPU float64            // CPU seconds of smtp-sink
	selfCPU float64            // CPU seconds of this program (polling)
	note    string             // counters after the round
	dnsQ    int64              // DNS questions in the round (moxd)
}

// others is the CPU share of all cores that went to processes other than
// the server's, the sink and this program: other load on the machine.
func (r outboundRun) others() float64 {
	if r.busy == 0 {
		return 0
	}
	v := r.busySec - r.sinkCPU - r.selfCPU
	for _, c := range r.cpu {
		v -= c
	}
	return max(0, v/r.busySec*r.busy)
}

// cpuWindow is the CPU counters at the start of a measured window.
type cpuWindow struct {
	busy, total uint64
	self, sink  float64
	sinkPID     int
}

func startWindow(sinkPID int) cpuWindow {
	w := cpuWindow{sinkPID: sinkPID, self: cpuTime(os.Getpid()), sink: cpuTime(sinkPID)}
	w.busy, w.total = machineCPU()
	return w
}

// end records the machine's, the sink's and this program's CPU since w.
func (w cpuWindow) end(run *outboundRun) {
	busy, total := machineCPU()
	if total > w.total {
		run.busy = float64(busy-w.busy) / float64(total-w.total)
		run.busySec = float64(busy-w.busy) / 100 // USER_HZ
	}
	run.sinkCPU = cpuTime(w.sinkPID) - w.sink
	run.selfCPU = cpuTime(os.Getpid()) - w.self
}

func (r outboundRun) rate(n int) float64 { return float64(n) / r.elapsed.Seconds() }

// outboundSide collects the rounds of one server.
type outboundSide struct {
	runs []outboundRun
	err  error
}

// benchOutbound is P2. destConc, when not 0, sets moxd's [queue]
// destination_concurrency. Anything that keeps the case from running ends
// up in the P2 line, not in the exit status.
func benchOutbound(n, rounds, destConc int) error {
	unavailable := func(format string, args ...any) error {
		fmt.Printf("P2 outbound  unavailable (%s)\n", fmt.Sprintf(format, args...))
		return nil
	}
	if os.Geteuid() != 0 {
		return unavailable("needs root: Postfix, smtp-sink, moxd roles under their own uids")
	}
	for _, tool := range []string{"smtp-sink", "postfix", "postconf", "postsuper", "postqueue"} {
		if _, err := exec.LookPath(tool); err != nil {
			reason := tool + " not found: install Debian package postfix (bench/run does as root)"
			if why := os.Getenv("MOXDBENCH_P1_INSTALL"); why != "" {
				reason += "; " + why
			}
			return unavailable("%s", reason)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	root, err := os.MkdirTemp("", "moxdbench-p2-")
	if err != nil {
		return unavailable("%v", err)
	}
	defer os.RemoveAll(root)
	// Traversable by Postfix's and moxd's users.
	if err := os.Chmod(root, 0o755); err != nil {
		return unavailable("%v", err)
	}
	dnsSrv, err := startBenchDNS(outboundRecords)
	if err != nil {
		return unavailable("DNS server: %v", err)
	}
	defer dnsSrv.stop()
	sink, err := startSink()
	if err != nil {
		return unavailable("smtp-sink: %v", err)
	}
	defer sink.stop()
	pfVersion := "Postfix"
	if out, err := exec.Command("postconf", "-d", "-h", "mail_version").Output(); err == nil {
		pfVersion += " " + strings.TrimSpace(string(out))
	}
	pfNames := []string{"default_destination_concurrency_limit", "initial_destination_concurrency", "default_process_limit", "smtp_connection_cache_on_demand", "qmgr_message_active_limit"}
	pf := postfixDefaults(pfNames)
	var pfDefaults []string
	for _, k := range pfNames {
		pfDefaults = append(pfDefaults, k+" = "+pf[k])
	}

	var moxd, peer outboundSide
	for r := 0; r < rounds && ctx.Err() == nil; r++ {
		for j := 0; j < 2 && ctx.Err() == nil; j++ {
			if (r+j)%2 == 0 {
				if moxd.err != nil {
					continue
				}
				run, err := moxdOutbound(ctx, n, r, destConc, dnsSrv, sink)
				if err != nil {
					moxd.err = fmt.Errorf("round %d: %w", r+1, err)
					fmt.Fprintf(os.Stderr, "# P2 moxd round %d: %v\n", r+1, err)
				} else {
					moxd.runs = append(moxd.runs, run)
				}
			} else {
				if peer.err != nil {
					continue
				}
				run, err := postfixOutbound(ctx, filepath.Join(root, fmt.Sprintf("postfix-%d", r+1)), n, r, sink)
				if err != nil {
					peer.err = fmt.Errorf("round %d: %w", r+1, err)
					fmt.Fprintf(os.Stderr, "# P2 peer round %d: %v\n", r+1, err)
				} else {
					peer.runs = append(peer.runs, run)
				}
			}
		}
	}
	if ctx.Err() != nil {
		return unavailable("interrupted")
	}
	// Each round checked the server's own records of n deliveries; the
	// sink's count confirms them all at once.
	sinkNote := "it counted every message of every round"
	if got := sink.stop(); got != int64(n*(len(moxd.runs)+len(peer.runs))) {
		sinkNote = fmt.Sprintf("it counted %d messages, the rounds' servers reported %d delivered", got, n*(len(moxd.runs)+len(peer.runs)))
		if moxd.err == nil && peer.err == nil {
			moxd.err = errors.New("smtp-sink: " + sinkNote)
			peer.err = moxd.err
		}
	}

	dc := fmt.Sprintf("%d (default)", queue.DefaultDestinationConcurrency)
	if destConc != 0 {
		dc = fmt.Sprintf("%d (default %d, set by -destconc)", destConc, queue.DefaultDestinationConcurrency)
	}
	moxdConc := fmt.Sprintf("concurrency = %d (default), destination_concurrency = %s", queue.DefaultConcurrency, dc)
	fmt.Printf("# P2 load: %d messages of %d bytes, From and MAIL FROM %s, one recipient %s each, sent by this program over %d connections into a held queue; %d rounds per server alternating which goes first, fresh state each round; figures are medians\n",
		n, outboundSize, outboundSender, outboundRcpt, outboundFillConns, rounds)
	fmt.Printf("# P2 sink: %s (one process for both servers, no dumps); %s\n", strings.Join(sink.cmd.Args, " "), sinkNote)
	fmt.Printf("# P2 moxd: submission (STARTTLS, AUTH PLAIN) with hold rule -rcptdomain %s; clock from \"queue holdrules rm\" + \"queue unhold -all\" to messages_queued = 0 (status every %s); direct delivery: [dns] nameservers = [\"%s\"] (this program's DNS server: %s; else NXDOMAIN), [queue] port = the sink's, %s, mta_sts = true (default: a TXT lookup, NXDOMAIN); account limits raised: %s\n",
		outboundDomain, outboundPoll, dnsSrv.addr, strings.Join(outboundRecords[1:], "; "), moxdConc, outboundLimitsRaised)
	fmt.Printf("# P2 peer: %s, own config and queue in a temp dir, smtpd holds every message (check_client_access static:HOLD); clock from \"postsuper -H ALL\" + \"postqueue -f\" to n \"removed\" lines of qmgr in the maillog (read every %s) and then no file in incoming, active, deferred, hold, maildrop; relayhost = [127.0.0.1]:SINKPORT, default_transport = smtp, all else default: %s\n",
		pfVersion, outboundPoll, strings.Join(pfDefaults, ", "))
	fmt.Printf("# P2 disk: moxd's data_dir and Postfix's queue in new directories in %s (%s)\n", os.TempDir(), fsType(root))
	for _, s := range []struct {
		name string
		side outboundSide
	}{{"moxd", moxd}, {"peer", peer}} {
		if len(s.side.runs) == 0 {
			continue
		}
		var rates, fills, releases, busy, others, sinkCPU, selfCPU, notes []string
		cpu := map[string]float64{}
		for _, r := range s.side.runs {
			rates = append(rates, fmt.Sprintf("%.0f", r.rate(n)))
			fills = append(fills, fmt.Sprintf("%.1fs", r.fill.Seconds()))
			releases = append(releases, fmt.Sprintf("%.0fms", float64(r.release.Microseconds())/1000))
			busy = append(busy, fmt.Sprintf("%.0f%%", r.busy*100))
			others = append(others, fmt.Sprintf("%.0f%%", r.others()*100))
			sinkCPU = append(sinkCPU, fmt.Sprintf("%.0f", r.sinkCPU/float64(n)*1e6))
			selfCPU = append(selfCPU, fmt.Sprintf("%.0f", r.selfCPU/float64(n)*1e6))
			notes = append(notes, r.note)
			for k, v := range r.cpu {
				cpu[k] += v
			}
		}
		fmt.Printf("# P2 spread %s: msgs/s %s; of the time, release commands %s; queue filled in %s (not measured); CPU busy (all cores, whole machine) %s, of which other processes (and kernel time charged to none) %s; CPU us per message of smtp-sink %s, of this program's polling %s\n",
			s.name, strings.Join(rates, " "), strings.Join(releases, " "), strings.Join(fills, " "), strings.Join(busy, " "), strings.Join(others, " "), strings.Join(sinkCPU, " "), strings.Join(selfCPU, " "))
		var l []string
		for _, k := range slices.Sorted(maps.Keys(cpu)) {
			if us := cpu[k] / float64(n*len(s.side.runs)) * 1e6; us >= 1 {
				l = append(l, fmt.Sprintf("%s %.0f", k, us))
			}
		}
		what := ""
		if s.name == "moxd" {
			what = " (answering the status polls included: master asks every role)"
		}
		fmt.Printf("# P2 %s: CPU us per message by process, release to empty%s: %s\n", s.name, what, strings.Join(l, ", "))
		if c := slices.Compact(slices.Clone(notes)); len(c) == 1 {
			fmt.Printf("# P2 %s: after every round: %s\n", s.name, c[0])
		} else {
			fmt.Printf("# P2 %s: after each round: %s\n", s.name, strings.Join(notes, "; "))
		}
	}

	rates := func(s outboundSide) []float64 {
		var v []float64
		for _, r := range s.runs {
			v = append(v, r.rate(n))
		}
		return v
	}
	var b strings.Builder
	fmt.Fprintf(&b, "P2 outbound n=%d size=10KiB ", n)
	if moxd.err != nil {
		fmt.Fprintf(&b, " moxd=unavailable (%s)", oneLine(moxd.err))
	} else {
		fmt.Fprintf(&b, " moxd=%.0f msgs/s", median(rates(moxd)))
	}
	if peer.err != nil {
		fmt.Fprintf(&b, " peer=unavailable (%s)", oneLine(peer.err))
	} else {
		fmt.Fprintf(&b, " peer=%.0f msgs/s", median(rates(peer)))
	}
	if moxd.err == nil && peer.err == nil {
		fmt.Fprintf(&b, " ratio=%.2f", median(rates(moxd))/median(rates(peer)))
	}
	fmt.Fprintf(&b, "  goal>=1.5  (queue start to empty, one smtp-sink; moxd: direct delivery, MX from a local DNS server, concurrency %d, destination_concurrency %s; peer: %s relayhost, destination concurrency limit %s (default, starting at %s))",
		queue.DefaultConcurrency, dc, pfVersion, pf["default_destination_concurrency_limit"], pf["initial_destination_concurrency"])
	fmt.Println(b.String())
	return nil
}

// postfixDefaults returns the default values of the named Postfix
// parameters ("?" when postconf does not tell).
func postfixDefaults(names []string) map[string]string {
	m := map[string]string{}
	for _, k := range names {
		m[k] = "?"
	}
	out, _ := exec.Command("postconf", append([]string{"-d"}, names...)...).Output()
	for l := range strings.SplitSeq(string(out), "\n") {
		if k, v, ok := strings.Cut(l, " = "); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// outboundMessage is message i of a round: 10 KiB with the headers of a
// submission, lines ending in LF (net/smtp's writer sends CRLF).
func outboundMessage(round, i int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: <%s>\nTo: <%s>\nSubject: P2 bench message %d\nDate: %s\nMessage-ID: <p2-%d-%d@%s>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n",
		outboundSender, outboundRcpt, i, time.Now().Format(time.RFC1123Z), round, i, outboundFrom)
	line := strings.Repeat("0123456789", 7) + "\n"
	// Sizes count CRLF: one more byte per line.
	size := b.Len() + strings.Count(b.String(), "\n")
	for size+len(line)+1 <= outboundSize {
		b.WriteString(line)
		size += len(line) + 1
	}
	if rest := outboundSize - size - 2; rest > 0 {
		b.WriteString(strings.Repeat("x", rest) + "\n")
	}
	return b.Bytes()
}

// fillQueue sends n messages to target over outboundFillConns connections;
// with tlsCfg, after STARTTLS and AUTH PLAIN as the bench account.
func fillQueue(ctx context.Context, target string, tlsCfg *tls.Config, round, n int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, outboundFillConns)
	for k := 0; k < outboundFillConns; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fillConn(ctx, target, tlsCfg, round, n, &next); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func fillConn(ctx context.Context, target string, tlsCfg *tls.Config, round, n int, next *atomic.Int64) error {
	conn, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	c, err := smtp.NewClient(conn, outboundHost)
	if err != nil {
		return err
	}
	if err := c.Hello("client." + outboundFrom); err != nil {
		return err
	}
	if tlsCfg != nil {
		if err := c.StartTLS(tlsCfg); err != nil {
			return fmt.Errorf("starttls: %w", err)
		}
		if err := c.Auth(smtp.PlainAuth("", outboundAccount, outboundPassword, outboundHost)); err != nil {
			return fmt.Errorf("auth: %w", err)
		}
	}
	for ctx.Err() == nil {
		i := int(next.Add(1)) - 1
		if i >= n {
			break
		}
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		// Not c.Mail: it adds SMTPUTF8 whenever the server offers it,
		// which moxd then demands of the next hop (smtp-sink has none).
		id, err := c.Text.Cmd("MAIL FROM:<%s> BODY=7BIT", outboundSender)
		if err == nil {
			c.Text.StartResponse(id)
			_, _, err = c.Text.ReadResponse(250)
			c.Text.EndResponse(id)
		}
		if err != nil {
			return fmt.Errorf("message %d: MAIL: %w", i, err)
		}
		if err := c.Rcpt(outboundRcpt); err != nil {
			return fmt.Errorf("message %d: RCPT: %w", i, err)
		}
		w, err := c.Data()
		if err != nil {
			return fmt.Errorf("message %d: DATA: %w", i, err)
		}
		if _, err := w.Write(outboundMessage(round, i)); err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
		if err := w.Close(); err != nil {
			return fmt.Errorf("message %d: end of data: %w", i, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return c.Quit()
}

// moxdOutbound runs one round against a new moxd instance.
func moxdOutbound(ctx context.Context, n, round, destConc int, dnsSrv *benchDNS, sink *sinkProc) (outboundRun, error) {
	var run outboundRun
	extra := fmt.Sprintf("[dns]\nnameservers = [%q]\n[queue]\nport = %d\n", dnsSrv.addr, sink.port)
	if destConc != 0 {
		extra += fmt.Sprintf("destination_concurrency = %d\n", destConc)
	}
	dir, conf, err := newConfigWith(outboundHost, extra)
	if err != nil {
		return run, err
	}
	domains := fmt.Sprintf("[[domain]]\nname = %q\n\n[[account]]\nname = %q\naddresses = [%q, %q]\nmax_messages_per_day = 0\nmax_first_time_recipients_per_day = 0\n",
		outboundFrom, outboundAccount, outboundSender, "postmaster@"+outboundFrom)
	if err := os.WriteFile(filepath.Join(dir, "domains.conf"), []byte(domains), 0o644); err != nil {
		os.RemoveAll(dir)
		return run, err
	}
	in, err := startInstance(dir, conf)
	if err != nil {
		os.RemoveAll(dir)
		return run, err
	}
	defer in.cleanup()
	st, err := in.waitReady()
	if err != nil {
		return run, fmt.Errorf("%w; moxd log: %s", err, moxdLogTail(in))
	}
	target := addr(st, "submission")
	if target == "" {
		return run, errors.New("no submission listener in moxctl status")
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "data", "localca.pem"))
	if err != nil {
		return run, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	sock := ctl.SocketPath(filepath.Join(dir, "run"))
	call := func(req ctl.Request, resp any) error {
		return ctl.Do(sock, req, resp, 60*time.Second)
	}
	if err := call(ctl.Request{Cmd: "account password", Args: []string{outboundAccount}, Secret: outboundPassword}, nil); err != nil {
		return run, fmt.Errorf("account password: %w", err)
	}
	var rules ipc.QueueHoldRuleList
	if err := call(ctl.Request{Cmd: "queue holdrules add", Args: []string{"-rcptdomain", outboundDomain}}, &rules); err != nil {
		return run, fmt.Errorf("queue holdrules add: %w", err)
	}
	if len(rules.Rules) != 1 {
		return run, fmt.Errorf("queue holdrules add: %d rules in the answer", len(rules.Rules))
	}
	ruleID := strconv.FormatUint(rules.Rules[0].ID, 10)

	t := time.Now()
	if err := fillQueue(ctx, target, &tls.Config{RootCAs: pool, ServerName: outboundHost}, round, n); err != nil {
		return run, fmt.Errorf("filling the queue: %w; moxd log: %s", err, moxdLogTail(in))
	}
	run.fill = time.Since(t)

	cl, err := ctl.Dial(sock)
	if err != nil {
		return run, err
	}
	defer func() {
		if cl != nil {
			cl.Close()
		}
	}()
	counters := func() (map[string]uint64, error) {
		if cl == nil {
			c, err := ctl.Dial(sock)
			if err != nil {
				return nil, err
			}
			cl = c
		}
		cl.SetDeadline(time.Now().Add(5 * time.Second))
		var s ctl.Status
		if _, err := cl.Call(ctl.Request{Cmd: "status"}, nil, &s); err != nil {
			cl.Close()
			cl = nil
			return nil, err
		}
		for _, r := range s.Roles {
			if r.Role == "queue" {
				m := map[string]uint64{}
				for _, c := range r.Counters {
					m[c.Name] = c.Value
				}
				if _, ok := m["messages_queued"]; ok {
					return m, nil
				}
			}
		}
		return nil, errors.New("no messages_queued counter of role queue in status")
	}
	c0, err := counters()
	if err != nil {
		return run, err
	}
	if c0["messages_queued"] != uint64(n) || c0["outbound_delivered"] != 0 {
		return run, fmt.Errorf("after filling: messages_queued %d, outbound_delivered %d; want %d and 0", c0["messages_queued"], c0["outbound_delivered"], n)
	}

	pids := map[string]int{"master": st.Master.PID}
	for _, r := range st.Roles {
		pids["moxd-"+r.Role] = r.PID
	}
	cpu0 := map[string]float64{}
	for name, pid := range pids {
		cpu0[name] = cpuTime(pid)
	}
	dns0 := dnsSrv.questions.Load()
	stopPerf := startPerf(fmt.Sprintf("moxd-queue-round%d", round+1), pids["moxd-queue"])
	defer stopPerf()
	win := startWindow(sink.cmd.Process.Pid)
	limit := 60*time.Second + time.Duration(n)*50*time.Millisecond

	t0 := time.Now()
	if err := call(ctl.Request{Cmd: "queue holdrules rm", Args: []string{ruleID}}, nil); err != nil {
		return run, fmt.Errorf("queue holdrules rm: %w", err)
	}
	var cnt ipc.QueueCount
	if err := call(ctl.Request{Cmd: "queue unhold", Args: []string{"-all"}}, &cnt); err != nil {
		return run, fmt.Errorf("queue unhold -all: %w", err)
	}
	if cnt.N != uint32(n) {
		return run, fmt.Errorf("queue unhold -all released %d recipients, want %d", cnt.N, n)
	}
	run.release = time.Since(t0)
	var last map[string]uint64
	var lastErr error
	tick := time.NewTicker(outboundPoll)
	defer tick.Stop()
	for {
		c, err := counters()
		if err != nil {
			lastErr = err
		} else {
			last = c
			if c["messages_queued"] == 0 {
				break
			}
		}
		if time.Since(t0) > limit {
			return run, fmt.Errorf("queue not empty %s after the release: counters %v (last poll error: %v); moxd log: %s", limit, last, lastErr, moxdLogTail(in))
		}
		select {
		case <-ctx.Done():
			return run, ctx.Err()
		case <-tick.C:
		}
	}
	run.elapsed = time.Since(t0)
	win.end(&run)
	stopPerf()
	run.cpu = map[string]float64{}
	for name, pid := range pids {
		run.cpu[name] = cpuTime(pid) - cpu0[name]
	}
	run.dnsQ = dnsSrv.questions.Load() - dns0

	if last["outbound_delivered"] != uint64(n) || last["outbound_failed"] != 0 || last["outbound_deferred"] != 0 || last["dsns_queued"] != 0 {
		why := "no retired record"
		var rl ipc.QueueRetiredList
		if err := call(ctl.Request{Cmd: "queue retired list", Args: []string{"-account", outboundAccount, "-n", "50"}}, &rl); err != nil {
			why = "queue retired list: " + err.Error()
		} else {
			// The newest first: a DSN's delivery may come before the
			// failure that caused it.
			for _, e := range rl.Entries {
				if e.Address == outboundRcpt {
					why = fmt.Sprintf("a retired recipient %s: delivered %v after %d attempts, host %q, status %q: %s", e.Address, e.Delivered, e.Attempts, e.LastHost, e.LastStatus, e.LastError)
					break
				}
			}
		}
		return run, fmt.Errorf("after the round: outbound_delivered %d, failed %d, deferred %d, dsns_queued %d; want %d, 0, 0, 0; %s; moxd log: %s",
			last["outbound_delivered"], last["outbound_failed"], last["outbound_deferred"], last["dsns_queued"], n, why, moxdLogTail(in))
	}
	st2, err := in.status()
	if err != nil {
		return run, err
	}
	for _, r := range st2.Roles {
		if r.Restarts > 0 {
			return run, fmt.Errorf("role %s restarted %d times during the round; moxd log: %s", r.Role, r.Restarts, moxdLogTail(in))
		}
	}
	run.note = fmt.Sprintf("queue counters outbound_delivered=%d connections_reused=%d; DNS questions during delivery %d", last["outbound_delivered"], last["connections_reused"], run.dnsQ)
	return run, nil
}

// postfixOutbound runs one round against a new Postfix instance in dir.
func postfixOutbound(ctx context.Context, dir string, n, round int, sink *sinkProc) (outboundRun, error) {
	var run outboundRun
	nobody, err := user.Lookup("nobody")
	if err != nil {
		return run, fmt.Errorf("user nobody: %w", err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	confDir := filepath.Join(dir, "config")
	queueDir := filepath.Join(dir, "queue")
	for _, d := range []string{confDir, queueDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return run, err
		}
	}
	port, err := freePort()
	if err != nil {
		return run, err
	}
	// P1's master.cf (its services unchrooted, smtpd on port only), with a
	// main.cf of its own.
	if err := writePostfixConfig(dir, port, uid, gid); err != nil {
		return run, err
	}
	os.Remove(filepath.Join(confDir, "vmailbox"))
	mainCF := fmt.Sprintf(`# Written by moxdbench for case P2.
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
relay_domains =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
alias_maps =
alias_database =
biff = no
default_transport = smtp
relayhost = [127.0.0.1]:%[4]d
# Every message goes to the hold queue until postsuper -H.
smtpd_recipient_restrictions = check_client_access static:HOLD
`, dir, outboundHost, outboundFrom, sink.port)
	if err := os.WriteFile(filepath.Join(confDir, "main.cf"), []byte(mainCF), 0o644); err != nil {
		return run, err
	}
	out, err := exec.Command("postfix", "-c", confDir, "start").CombinedOutput()
	if err != nil {
		stopPostfix(dir)
		return run, fmt.Errorf("postfix -c %s start: %v: %s; maillog: %s", confDir, err, lastLines(out, 2), postfixLogTail(dir))
	}
	defer stopPostfix(dir)
	target := fmt.Sprintf("127.0.0.1:%d", port)
	if err := waitGreeting(target, 30*time.Second); err != nil {
		return run, fmt.Errorf("postfix smtpd: %v; maillog: %s", err, postfixLogTail(dir))
	}
	queued := func(dirs ...string) (int, error) {
		total := 0
		for _, d := range dirs {
			err := filepath.WalkDir(filepath.Join(queueDir, d), func(_ string, e fs.DirEntry, err error) error {
				if err != nil {
					if errors.Is(err, fs.ErrNotExist) {
						return nil // a file that moved on while the walk ran
					}
					return err
				}
				if e.Type().IsRegular() {
					total++
				}
				return nil
			})
			if err != nil {
				return 0, err
			}
		}
		return total, nil
	}
	t := time.Now()
	if err := fillQueue(ctx, target, nil, round, n); err != nil {
		return run, fmt.Errorf("filling the queue: %w; maillog: %s", err, postfixLogTail(dir))
	}
	run.fill = time.Since(t)
	// smtpd answers after cleanup wrote the queue file into hold.
	if h, err := queued("hold"); err != nil || h != n {
		return run, fmt.Errorf("after filling: %d files in the hold queue (%v), want %d; maillog: %s", h, err, n, postfixLogTail(dir))
	}

	masterPID := postfixMasterPID(dir)
	cpu0 := map[int]float64{}
	for _, p := range childPIDs(masterPID) {
		cpu0[p] = cpuTime(p)
	}
	cpu0[masterPID] = cpuTime(masterPID)
	win := startWindow(sink.cmd.Process.Pid)
	limit := 60*time.Second + time.Duration(n)*50*time.Millisecond

	cmdCPU0, reaped0 := childrenCPU(os.Getpid()), childrenCPU(masterPID)
	t0 := time.Now()
	if out, err := exec.Command("postsuper", "-c", confDir, "-H", "ALL").CombinedOutput(); err != nil {
		return run, fmt.Errorf("postsuper -H ALL: %v: %s", err, lastLines(out, 2))
	}
	if out, err := exec.Command("postqueue", "-c", confDir, "-f").CombinedOutput(); err != nil {
		return run, fmt.Errorf("postqueue -f: %v: %s", err, lastLines(out, 2))
	}
	run.release = time.Since(t0)
	cmdCPU := childrenCPU(os.Getpid()) - cmdCPU0
	tick := time.NewTicker(outboundPoll)
	defer tick.Stop()
	// qmgr logs "<id>: removed" once it deleted a message's queue file:
	// reading the new part of the log each poll costs far less than
	// listing the queue directories, which is done once the count is
	// reached, to confirm.
	removed := 0
	var offset int64
	var partial []byte
	readRemoved := func() error {
		f, err := os.Open(filepath.Join(dir, "maillog"))
		if err != nil {
			return err
		}
		defer f.Close()
		b, err := io.ReadAll(io.NewSectionReader(f, offset, 1<<40))
		offset += int64(len(b))
		b = append(partial, b...)
		i := bytes.LastIndexByte(b, '\n') + 1
		removed += bytes.Count(b[:i], []byte(": removed\n"))
		partial = append(partial[:0], b[i:]...)
		return err
	}
	left := n
	var lastErr error
	for {
		if err := readRemoved(); err != nil {
			lastErr = err
		}
		if removed >= n {
			c, err := queued("incoming", "active", "deferred", "hold", "maildrop")
			if err != nil {
				lastErr = err
			} else if left = c; c == 0 {
				break
			}
		}
		if time.Since(t0) > limit {
			return run, fmt.Errorf("%d messages removed from the queue %s after the release, %d files left (last error: %v); maillog: %s", removed, limit, left, lastErr, postfixLogTail(dir))
		}
		select {
		case <-ctx.Done():
			return run, ctx.Err()
		case <-tick.C:
		}
	}
	run.elapsed = time.Since(t0)
	win.end(&run)
	// The CPU of Postfix's processes: those that ran before the release
	// and the smtp processes qmgr started (they stay for max_idle, 100s).
	run.cpu = map[string]float64{}
	for _, p := range append(childPIDs(masterPID), masterPID) {
		run.cpu[procName(p)] += cpuTime(p) - cpu0[p]
	}
	run.cpu["postsuper+postqueue"] = cmdCPU
	// Processes that exited during the round (max_use, max_idle) were
	// reaped by master.
	run.cpu["exited children"] = childrenCPU(masterPID) - reaped0
	// qmgr logs "removed" after the last delivery; postlogd may lag a little.
	var sent, other int
	deadline := time.Now().Add(5 * time.Second)
	for {
		sent, other = postfixStatuses(dir)
		if sent >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if sent != n || other != 0 {
		return run, fmt.Errorf("maillog has %d status=sent and %d other delivery statuses, want %d and 0; maillog: %s", sent, other, n, postfixLogTail(dir))
	}
	run.note = fmt.Sprintf("maillog status=sent %d, no other status", sent)
	return run, nil
}

// startPerf starts "perf record -g" of process pid into
// $MOXDBENCH_PERF/NAME.data when that variable names a directory, for a
// look at where a server's time goes ("perf report -i FILE"); the
// returned function stops it (and may be called again).
func startPerf(name string, pid int) func() {
	dir := os.Getenv("MOXDBENCH_PERF")
	if dir == "" || pid == 0 {
		return func() {}
	}
	out := filepath.Join(dir, name+".data")
	cmd := exec.Command("perf", "record", "-q", "-g", "-F", "2000", "-p", strconv.Itoa(pid), "-o", out)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "# P2 perf: %v\n", err)
		return func() {}
	}
	time.Sleep(200 * time.Millisecond) // perf attaches
	var once sync.Once
	return func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGINT)
			cmd.Wait()
			fmt.Fprintf(os.Stderr, "# P2 perf: wrote %s\n", out)
		})
	}
}

// postfixMasterPID reads the pid file of the Postfix in dir.
func postfixMasterPID(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, "queue", "pid", "master.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// postfixStatuses counts the delivery lines in the maillog of the Postfix
// in dir: status=sent, and any other status.
func postfixStatuses(dir string) (sent, other int) {
	f, err := os.Open(filepath.Join(dir, "maillog"))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.Contains(l, " status=sent "):
			sent++
		case strings.Contains(l, " status="):
			other++
		}
	}
	return sent, other
}

// childrenCPU is the user+system CPU seconds of the children of process
// pid that exited and were waited for.
func childrenCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 15 {
		return 0
	}
	var ut, st float64
	fmt.Sscanf(f[13], "%g", &ut)
	fmt.Sscanf(f[14], "%g", &st)
	return (ut + st) / 100 // USER_HZ
}

// procName is the command name of a process, from /proc.
func procName(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// sinkProc is the running smtp-sink with its message count.
type sinkProc struct {
	cmd   *exec.Cmd
	port  int
	count atomic.Int64 // "mesg=" of its -c counters
	done  chan struct{}
	once  sync.Once
	out   bytes.Buffer // what it said apart from the counters
}

// startSink starts smtp-sink on a free port of 127.0.0.1. With -c it
// prints "sess=N quit=N mesg=N" and a carriage return at each message.
func startSink() (*sinkProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &sinkProc{port: port, done: make(chan struct{})}
	target := fmt.Sprintf("127.0.0.1:%d", port)
	s.cmd = exec.Command("smtp-sink", "-u", "nobody", "-c", target, "1000")
	// Not StdoutPipe: Wait would close it before the counters smtp-sink
	// writes as it exits are read.
	stdout, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	s.cmd.Stdout, s.cmd.Stderr = w, &s.out
	err = s.cmd.Start()
	w.Close()
	if err != nil {
		stdout.Close()
		return nil, err
	}
	go func() {
		defer close(s.done)
		defer stdout.Close()
		br := bufio.NewReader(stdout)
		for {
			rec, err := br.ReadString('\r')
			if i := strings.LastIndex(rec, "mesg="); i >= 0 {
				if v, err := strconv.ParseInt(strings.TrimSpace(rec[i+5:]), 10, 64); err == nil {
					s.count.Store(v)
				}
			}
			if err != nil {
				io.Copy(io.Discard, br)
				return
			}
		}
	}()
	if err := waitGreeting(target, 10*time.Second); err != nil {
		s.stop()
		return nil, fmt.Errorf("%v: %s", err, lastLines(s.out.Bytes(), 2))
	}
	return s, nil
}

// stop ends smtp-sink, which writes its last counters as it exits
// (before, they sit in its stdio buffer), and returns its message count.
func (s *sinkProc) stop() int64 {
	s.once.Do(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done: // end of its output: it exited
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-s.done
		}
		s.cmd.Wait()
	})
	return s.count.Load()
}

// benchDNS is a DNS server for direct delivery: it answers from its
// records, NODATA for other types of their names, NXDOMAIN for any other
// name, on UDP and TCP of one port of 127.0.0.1.
type benchDNS struct {
	addr      string
	udp, tcp  *mdns.Server
	records   []mdns.RR
	soas      []mdns.RR // of the zones, the root's last
	questions atomic.Int64
}

func startBenchDNS(records []string) (*benchDNS, error) {
	s := &benchDNS{}
	for _, r := range append(slices.Clone(records), outboundRootSOA) {
		rr, err := mdns.NewRR(r)
		if err != nil {
			return nil, fmt.Errorf("record %q: %v", r, err)
		}
		if rr.Header().Rrtype == mdns.TypeSOA {
			s.soas = append(s.soas, rr)
		}
		if rr.Header().Name != "." {
			s.records = append(s.records, rr)
		}
	}
	var pc net.PacketConn
	var ln net.Listener
	for try := 0; ; try++ {
		var err error
		pc, err = net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ln, err = net.Listen("tcp4", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		if try == 10 {
			return nil, err
		}
	}
	s.addr = pc.LocalAddr().String()
	h := mdns.HandlerFunc(s.serve)
	s.udp = &mdns.Server{PacketConn: pc, Handler: h}
	s.tcp = &mdns.Server{Listener: ln, Handler: h}
	go s.udp.ActivateAndServe()
	go s.tcp.ActivateAndServe()
	return s, nil
}

func (s *benchDNS) serve(w mdns.ResponseWriter, req *mdns.Msg) {
	m := new(mdns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	if len(req.Question) == 1 {
		s.questions.Add(1)
		q := req.Question[0]
		found := false
		for _, rr := range s.records {
			h := rr.Header()
			if !strings.EqualFold(h.Name, q.Name) {
				continue
			}
			found = true
			if h.Rrtype == q.Qtype {
				m.Answer = append(m.Answer, mdns.Copy(rr))
			}
		}
		if len(m.Answer) == 0 {
			if !found {
				m.Rcode = mdns.RcodeNameError
			}
			for _, soa := range s.soas {
				if mdns.IsSubDomain(soa.Header().Name, q.Name) {
					m.Ns = []mdns.RR{mdns.Copy(soa)}
					break
				}
			}
		}
	}
	if o := req.IsEdns0(); o != nil {
		m.SetEdns0(o.UDPSize(), false)
	}
	w.WriteMsg(m)
}

func (s *benchDNS) stop() {
	s.udp.Shutdown()
	s.tcp.Shutdown()
}
