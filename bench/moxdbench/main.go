// Command moxdbench measures a real moxd instance; "make bench" runs it.
// Every case prints one line: "case  moxd=<value>  peer=<value>  ratio=<moxd/peer>"
// (or without peer when the case has an absolute goal), plus the
// configuration it ran with.
//
//	moxdbench -bin DIR tls        P5: full TLS handshakes/s through moxd-keys vs the same
//	                              handshake served by a process holding the key itself
//	moxdbench -bin DIR restart    time from kill -9 of smtp to the next greeting
//	moxdbench -bin DIR coldstart  P7: exec of moxd-master to a response on every listener
//	moxdbench -bin DIR import [-n N] P6: import of a generated N-message mbox by moxctl
//	                              import vs Dovecot's doveadm import (msgs/s, peak RSS)
//	moxdbench -bin DIR inbound [-n N] [-rounds R] P1: N messages (default 2000) from
//	                              smtp-source into one mailbox, moxd vs Postfix, R rounds
//	                              each (default 3), in a network namespace with local DNS
//	moxdbench -bin DIR outbound [-n N] [-rounds R] [-destconc C] P2: delivery of N queued
//	                              messages (default 2000) to one smtp-sink, moxd vs Postfix
//	                              relaying to it, R rounds each (default 3); -destconc sets
//	                              moxd's destination_concurrency (default: moxd's, 10);
//	                              MOXDBENCH_PERF=DIR records moxd-queue with perf per round
//	moxdbench -bin DIR imap [-n N] [-msgs M] [-imaps] P3: memory per idle IMAP connection, N
//	                              connections (default 1000) in IDLE; P4: UID FETCH 1:*
//	                              (FLAGS), SELECT and SELECT (QRESYNC) on an M-message
//	                              INBOX (default 100000); moxd vs a Dovecot imap daemon,
//	                              both in plain text on loopback (-imaps: moxd over TLS)
//	moxdbench mboxgen -n N -o FILE  write the P6 mbox (deterministic for a -seed)
//	moxdbench serve-tls ...       (internal) the in-process-key peer server
//	moxdbench inbound-ns NETNS    (internal) P1 inside the namespace inbound made
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"moxd/internal/ctl"
	"moxd/internal/keys/keyclient"
	"moxd/internal/mailproto/smtp"
)

var (
	binDir   = flag.String("bin", "bin", "directory with the moxd binaries")
	duration = flag.Duration("duration", 1500*time.Millisecond, "length of one measuring round (tls)")
	rounds   = flag.Int("rounds", 10, "rounds per side (tls, inbound: default 3): moxd and peer back to back")
	conns    = flag.Int("conns", 4, "concurrent handshake loops (tls)")
	repeat   = flag.Int("repeat", 10, "repetitions (restart, coldstart)")
	count    = flag.Int("n", 100000, "messages in the mbox (import, mboxgen); messages sent (inbound: default 2000)")
	output   = flag.String("o", "", "mbox file to write (mboxgen)")
	seed     = flag.Uint64("seed", 6, "seed of the generated mbox (import, mboxgen)")
	destConc = flag.Int("destconc", 0, "moxd's [queue] destination_concurrency (outbound); 0: moxd's default")
)

func main() {
	flag.Parse()
	if flag.NArg() < 1 {
		fmt.Fprintln(os.Stderr, "usage: moxdbench [flags] tls|restart|coldstart|import|inbound|outbound|imap|mboxgen [flags]")
		os.Exit(2)
	}
	caseName := flag.Arg(0)
	if caseName != "serve-tls" && caseName != "inbound-ns" {
		// Flags may also follow the case: "moxdbench mboxgen -n 2000 -o FILE".
		if err := flag.CommandLine.Parse(flag.Args()[1:]); err != nil || flag.NArg() > 0 {
			fmt.Fprintf(os.Stderr, "moxdbench: unexpected arguments after %s: %q\n", caseName, flag.Args())
			os.Exit(2)
		}
	}
	var err error
	switch caseName {
	case "tls":
		err = benchTLS()
	case "restart":
		err = benchRestart()
	case "coldstart":
		err = benchColdstart()
	case "import":
		if *count < 1 {
			err = fmt.Errorf("-n must be at least 1")
		} else {
			err = benchImport(*count, *seed)
		}
	case "inbound", "inbound-ns":
		// Defaults of P1 where the flags' defaults are for other cases.
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["n"] {
			*count = 2000
		}
		if !set["rounds"] {
			*rounds = 3
		}
		switch {
		case *count < 4 || *rounds < 1:
			err = fmt.Errorf("inbound needs -n of at least 4 and -rounds of at least 1")
		case caseName == "inbound":
			err = benchInbound(*count, *rounds)
		case flag.NArg() != 2:
			err = fmt.Errorf("usage: moxdbench inbound-ns NETNS")
		default:
			err = benchInboundNS(flag.Arg(1), *count, *rounds)
		}
	case "outbound":
		// Defaults of P2 where the flags' defaults are for other cases.
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["n"] {
			*count = 2000
		}
		if !set["rounds"] {
			*rounds = 3
		}
		if *count < 1 || *rounds < 1 || *destConc < 0 || *destConc > 1000 {
			err = fmt.Errorf("outbound needs -n and -rounds of at least 1, -destconc from 0 to 1000")
		} else {
			err = benchOutbound(*count, *rounds, *destConc)
		}
	case "imap":
		err = benchIMAPCase()
	case "mboxgen":
		if *output == "" || *count < 1 {
			err = fmt.Errorf("mboxgen needs -o FILE and -n of at least 1")
		} else {
			err = mboxGenerate(*output, *count, *seed)
		}
	case "serve-tls":
		err = serveTLS(flag.Args()[1:])
	default:
		err = fmt.Errorf("unknown case %q", caseName)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "moxdbench: %v\n", err)
		os.Exit(1)
	}
}

// instance is a moxd started for benchmarking.
type instance struct {
	dir  string
	conf string
	cmd  *exec.Cmd
	log  *os.File
}

// newConfig writes a config with port-0 listeners into a new directory.
func newConfig() (dir, conf string, err error) {
	return newConfigWith("localhost", benchBaseConfig)
}

// benchBaseConfig is what the tls, restart and coldstart cases add to the
// defaults: no DNS (they send no mail), and the loopback clients exempt
// from the per-IP connection limits, which a handshake loop opening a
// connection per handshake would hit (300 a minute by default).
const benchBaseConfig = "[dns]\noffline = true\n[limits]\ntrusted_networks = [\"127.0.0.0/8\"]\n"

// newConfigWith is newConfig with another hostname and extra sections
// appended.
func newConfigWith(hostname, extra string) (dir, conf string, err error) {
	dir, err = os.MkdirTemp("", "moxdbench-")
	if err != nil {
		return
	}
	os.Chmod(dir, 0o755)
	var b strings.Builder
	fmt.Fprintf(&b, "hostname = %q\ndata_dir = %q\nrun_dir = %q\nlog_level = \"warn\"\n", hostname, filepath.Join(dir, "data"), filepath.Join(dir, "run"))
	root := os.Geteuid() == 0
	if !root {
		b.WriteString("localserve = true\n")
	}
	b.WriteString("[users]\n")
	for i, r := range []string{"keys", "store", "queue", "smtp", "submission", "imap", "web"} {
		id := uint32(64300 + i)
		if !root {
			id = uint32(os.Getuid())
		}
		fmt.Fprintf(&b, "%s = \"%d:%d\"\n", r, id, id)
	}
	b.WriteString("[listen]\n")
	for _, k := range []string{"smtp", "submission", "submissions", "imap", "imaps", "http", "https"} {
		fmt.Fprintf(&b, "%s = [\"127.0.0.1:0\"]\n", k)
	}
	b.WriteString("[tls]\nlocal_ca = true\n")
	b.WriteString(extra)
	conf = filepath.Join(dir, "moxd.conf")
	err = os.WriteFile(conf, []byte(b.String()), 0o644)
	return
}

func startInstance(dir, conf string) (*instance, error) {
	log, err := os.Create(filepath.Join(dir, "moxd.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(*binDir, "moxd-master"), "-d", "-f", conf)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &instance{dir: dir, conf: conf, cmd: cmd, log: log}, nil
}

// readyInstance starts moxd on a new config and waits until every role is
// ready; it returns the status and a pool trusting the local CA.
func readyInstance() (*instance, ctl.Status, *x509.CertPool, error) {
	dir, conf, err := newConfig()
	if err != nil {
		return nil, ctl.Status{}, nil, err
	}
	in, err := startInstance(dir, conf)
	if err != nil {
		os.RemoveAll(dir)
		return nil, ctl.Status{}, nil, err
	}
	st, err := in.waitReady()
	if err != nil {
		in.cleanup()
		return nil, ctl.Status{}, nil, err
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "data", "localca.pem"))
	if err != nil {
		in.cleanup()
		return nil, ctl.Status{}, nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return in, st, pool, nil
}

// cleanup stops moxd and removes its directory.
func (in *instance) cleanup() {
	in.stop()
	os.RemoveAll(in.dir)
}

func (in *instance) status() (ctl.Status, error) {
	var st ctl.Status
	err := ctl.Do(ctl.SocketPath(filepath.Join(in.dir, "run")), ctl.Request{Cmd: "status"}, &st, 10*time.Second)
	return st, err
}

func (in *instance) waitReady() (ctl.Status, error) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		st, err := in.status()
		if err == nil && len(st.Down()) == 0 {
			return st, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return ctl.Status{}, fmt.Errorf("moxd not ready within 60s; see %s", in.log.Name())
}

func (in *instance) stop() {
	in.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { in.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		in.cmd.Process.Kill()
	}
	in.log.Close()
}

func addr(st ctl.Status, kind string) string {
	for _, r := range st.Roles {
		for _, l := range r.Listeners {
			if l.Kind == kind {
				return l.Addr
			}
		}
	}
	return ""
}

func rolePID(st ctl.Status, name string) int {
	for _, r := range st.Roles {
		if r.Role == name {
			return r.PID
		}
	}
	return 0
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// handshakeRate runs conns loops of dial + TLS handshake + read the first
// line, for duration, and returns full handshakes per second. Session
// resumption is off, so every handshake signs once.
func handshakeRate(target string, pool *x509.CertPool) (float64, error) {
	var n atomic.Int64
	// errBox keeps the first error: atomic.Value needs one concrete type.
	type errBox struct{ err error }
	var firstErr atomic.Pointer[errBox]
	stop := time.Now().Add(*duration)
	var wg sync.WaitGroup
	for i := 0; i < *conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", target, &tls.Config{RootCAs: pool, ServerName: "localhost", ClientSessionCache: nil})
				if err != nil {
					firstErr.CompareAndSwap(nil, &errBox{err})
					continue
				}
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
					firstErr.CompareAndSwap(nil, &errBox{err})
				} else {
					n.Add(1)
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
	if n.Load() == 0 {
		var err error
		if b := firstErr.Load(); b != nil {
			err = b.err
		}
		return 0, fmt.Errorf("no handshake completed: %v", err)
	}
	return float64(n.Load()) / duration.Seconds(), nil
}

// benchTLS is P5.
func benchTLS() error {
	in, st, pool, err := readyInstance()
	if err != nil {
		return err
	}
	defer in.cleanup()
	dir := in.dir

	// The peer: this same program serving TLS with the same certificate and
	// key loaded in its own process (as root the bench can read keys/).
	keyDir := filepath.Join(dir, "data", "keys", "localca")
	peer := exec.Command(os.Args[0], "serve-tls", filepath.Join(keyDir, "leaf.crt"), filepath.Join(keyDir, "leaf.key"), filepath.Join(keyDir, "ca.crt"))
	peerOut, err := peer.StdoutPipe()
	if err != nil {
		return err
	}
	peer.Stderr = os.Stderr
	if err := peer.Start(); err != nil {
		return err
	}
	defer peer.Process.Kill()
	line, err := bufio.NewReader(peerOut).ReadString('\n')
	if err != nil {
		return fmt.Errorf("peer server: %v", err)
	}
	peerAddr := strings.TrimSpace(line)

	moxdAddr := addr(st, "submissions")
	var moxd, inproc, ratios []float64
	subPID, keysPID := rolePID(st, "submission"), rolePID(st, "keys")
	var subCPU, keysCPU, peerCPU, moxdN, peerN float64
	for i := 0; i < *rounds; i++ {
		// Alternate which side goes first, so drift over time does not favour one.
		var r [2]float64
		for j := 0; j < 2; j++ {
			if (i+j)%2 == 0 {
				s0, k0 := cpuTime(subPID), cpuTime(keysPID)
				v, err := handshakeRate(moxdAddr, pool)
				if err != nil {
					return fmt.Errorf("moxd: %w", err)
				}
				subCPU += cpuTime(subPID) - s0
				keysCPU += cpuTime(keysPID) - k0
				moxdN += v * duration.Seconds()
				r[0] = v
			} else {
				p0 := cpuTime(peer.Process.Pid)
				v, err := handshakeRate(peerAddr, pool)
				if err != nil {
					return fmt.Errorf("peer: %w", err)
				}
				peerCPU += cpuTime(peer.Process.Pid) - p0
				peerN += v * duration.Seconds()
				r[1] = v
			}
		}
		moxd = append(moxd, r[0])
		inproc = append(inproc, r[1])
		ratios = append(ratios, r[0]/r[1])
	}
	slices.Sort(ratios)
	q1, q3 := ratios[len(ratios)/4], ratios[(3*len(ratios))/4]
	fmt.Printf("# P5 cpu per handshake: moxd submission %.0f us + keys %.0f us; peer %.0f us\n", subCPU/moxdN*1e6, keysCPU/moxdN*1e6, peerCPU/peerN*1e6)
	fmt.Printf("P5 tls-handshakes/s  moxd=%.0f  peer=%.0f  ratio=%.2f  (goal >= 0.90; median of %d back-to-back pairs of %s, ratios %.2f..%.2f, middle half %.2f..%.2f; ECDSA P-256, TLS 1.3, %d concurrent clients; peer = the same SMTP/TLS server code with the key in its own process; limit raised: [limits] trusted_networks = 127.0.0.0/8)\n",
		median(moxd), median(inproc), median(ratios), *rounds, *duration, ratios[0], ratios[len(ratios)-1], q1, q3, *conns)
	return nil
}

// serveTLS is the in-process-key peer: it prints its address, then serves
// TLS connections with the same greeting as moxd's submissions listener.
func serveTLS(args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("serve-tls CERT KEY CA")
	}
	leaf, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	ca, err := os.ReadFile(args[2])
	if err != nil {
		return err
	}
	key, err := os.ReadFile(args[1])
	if err != nil {
		return err
	}
	cert, err := tls.X509KeyPair(append(leaf, ca...), key)
	if err != nil {
		return err
	}
	// The same TLS settings and SMTP server code as moxd-smtp, with the key
	// in this process instead of behind moxd-keys.
	cfg := keyclient.ServerConfig(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil })
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go smtp.Serve(context.Background(), c, smtp.Config{Hostname: "localhost", TLSConfig: cfg, ImplicitTLS: true, Submission: true, Session: greetOnly{}})
	}
}

// greetOnly is the peer's smtp.Session: the bench only handshakes and
// reads the greeting, so every transaction is refused.
type greetOnly struct{}

var errGreetOnly = &smtp.Reply{Code: 554, Enhanced: "5.3.2", Lines: []string{"this bench peer only greets"}}

func (greetOnly) Hello(context.Context, *smtp.State) error                { return nil }
func (greetOnly) AuthMechanisms(*smtp.State) []string                     { return nil }
func (greetOnly) Mail(context.Context, *smtp.State, *smtp.MailFrom) error { return errGreetOnly }
func (greetOnly) Rcpt(context.Context, *smtp.State, *smtp.RcptTo) error   { return errGreetOnly }
func (greetOnly) Data(context.Context, *smtp.State, io.Reader) error      { return errGreetOnly }
func (greetOnly) Reset(*smtp.State)                                       {}
func (greetOnly) Auth(context.Context, *smtp.State, string, []byte, bool, func([]byte) ([]byte, error)) (string, error) {
	return "", errGreetOnly
}

// benchRestart: kill -9 smtp, time to the next greeting on its listener.
func benchRestart() error {
	in, st, _, err := readyInstance()
	if err != nil {
		return err
	}
	defer in.cleanup()
	target := addr(st, "smtp")
	var times []float64
	for i := 0; i < *repeat; i++ {
		time.Sleep(1100 * time.Millisecond) // ready >= 1s: restarted at once
		st, err := in.status()
		if err != nil {
			return err
		}
		pid := rolePID(st, "smtp")
		t0 := time.Now()
		syscall.Kill(pid, syscall.SIGKILL)
		// The listening socket stays open in master: this connection waits
		// in its backlog until the new worker accepts it.
		for {
			g, err := greet(target, false, nil)
			if err == nil && strings.HasPrefix(g, "220 ") {
				break
			}
			if time.Since(t0) > 30*time.Second {
				return fmt.Errorf("no greeting within 30s after kill: %v", err)
			}
		}
		times = append(times, float64(time.Since(t0).Microseconds())/1000)
	}
	fmt.Printf("restart-smtp-ms  moxd=%.1f  (kill -9 of a worker ready >= 1s to the next greeting on the same listener; median of %d, min %.1f, max %.1f)\n", median(times), len(times), slices.Min(times), slices.Max(times))
	return nil
}

// greet reads the first response on addr, with TLS if pool is set; for
// http it sends a request.
func greet(target string, useTLS bool, pool *x509.CertPool) (string, error) {
	c, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if useTLS {
		tc := tls.Client(c, &tls.Config{RootCAs: pool, ServerName: "localhost"})
		if err := tc.Handshake(); err != nil {
			return "", err
		}
		c = tc
	}
	return bufio.NewReader(c).ReadString('\n')
}

// benchColdstart is P7: exec of moxd-master to a response on every listener.
// The first start creates keys (DKIM RSA, local CA); the measured starts are
// later ones on the same data, as after a reboot.
func benchColdstart() error {
	// The first start creates the keys; it is not measured.
	first, _, pool, err := readyInstance()
	if err != nil {
		return err
	}
	first.stop()
	defer os.RemoveAll(first.dir)
	dir, conf := first.dir, first.conf

	var times []float64
	for i := 0; i < *repeat; i++ {
		t0 := time.Now()
		in, err := startInstance(dir, conf)
		if err != nil {
			return err
		}
		// Listeners are bound before any worker starts; find their ports
		// from status as soon as the control socket answers.
		var st ctl.Status
		for {
			st, err = in.status()
			if err == nil {
				break
			}
			if time.Since(t0) > 30*time.Second {
				in.stop()
				return fmt.Errorf("control socket: %v", err)
			}
			time.Sleep(time.Millisecond)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 7)
		for _, k := range []string{"smtp", "submission", "submissions", "imap", "imaps", "http", "https"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a := addr(st, k)
				for time.Since(t0) < 30*time.Second {
					var resp string
					var err error
					switch k {
					case "http", "https":
						resp, err = httpGet(k, a, pool)
					default:
						resp, err = greet(a, k == "submissions" || k == "imaps", pool)
					}
					if err == nil && resp != "" {
						return
					}
					time.Sleep(time.Millisecond)
				}
				errs <- fmt.Errorf("%s %s: no response", k, a)
			}()
		}
		wg.Wait()
		elapsed := time.Since(t0)
		in.stop()
		select {
		case err := <-errs:
			return err
		default:
		}
		times = append(times, float64(elapsed.Microseconds())/1000)
	}
	m := median(times)
	fmt.Printf("P7 coldstart-ms  moxd=%.0f  (goal < 500; exec of moxd-master to a response on all 7 listeners incl. TLS handshakes; median of %d, min %.0f, max %.0f)\n", m, len(times), slices.Min(times), slices.Max(times))
	return nil
}

func httpGet(kind, a string, pool *x509.CertPool) (string, error) {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}, DisableKeepAlives: true}}
	scheme := "http"
	if kind == "https" {
		scheme = "https"
	}
	resp, err := client.Get(scheme + "://" + a + "/")
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	return resp.Status, nil
}

// cpuTime is the user+system CPU seconds a process used so far.
func cpuTime(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	var ut, st float64
	fmt.Sscanf(f[11], "%g", &ut)
	fmt.Sscanf(f[12], "%g", &st)
	return (ut + st) / 100 // USER_HZ
}
