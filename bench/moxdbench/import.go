package main

// The import case is P6: a generated mbox of n messages imported by moxd
// ("moxctl import mbox") and by Dovecot ("doveadm import"), msgs/s and peak
// RSS of each.
//
// Dovecot runs as uid nobody on a throw-away configuration in a temporary
// directory: mail_location maildir, the source mbox opened as an mbox
// mail_location with in-memory indexes (so nothing is written beside it), and
// doveadm in its system-user form (USER and HOME from the environment), which
// needs no auth process and no listeners. mail_fsync is left at its default
// (optimized: every saved message file is fsynced before it is moved into
// cur/). Time is from the start of doveadm to its exit; peak RSS is ru_maxrss
// of doveadm from wait4.
//
// moxd runs as the other cases start it, with an account "bench" in
// domains.conf. Time is from the start of moxctl to its exit; peak RSS is
// VmHWM of moxd-store, which does the import.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// importResult is one side's figures.
type importResult struct {
	seconds float64
	rssKiB  int64
	note    string // How the figure was taken, for the report line.
}

func (r importResult) rate(n int) float64 { return float64(n) / r.seconds }

// benchImport is P6.
func benchImport(n int, seed uint64) error {
	dir, err := os.MkdirTemp("", "moxdbench-import-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// Readable by Dovecot running as nobody and by moxd's roles.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		return err
	}
	mboxPath := filepath.Join(src, "bench.mbox")
	if err := mboxGenerate(mboxPath, n, seed); err != nil {
		return err
	}
	if err := os.Chmod(mboxPath, 0o644); err != nil {
		return err
	}

	name := "import-" + strconv.Itoa(n)
	if n%1000 == 0 {
		name = fmt.Sprintf("import-%dk", n/1000)
	}

	peer, peerErr := dovecotImport(filepath.Join(dir, "dovecot"), mboxPath, n)
	if peerErr != nil {
		fmt.Fprintf(os.Stderr, "# P6 peer: %v\n", peerErr)
	}
	// Dovecot's copy is not needed any more: free the disk before moxd runs.
	if err := os.RemoveAll(filepath.Join(dir, "dovecot")); err != nil {
		return err
	}
	moxd, moxdErr := moxdImport(mboxPath)
	if moxdErr != nil {
		fmt.Fprintf(os.Stderr, "# P6 moxd: %v\n", moxdErr)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "P6 %s ", name)
	if moxdErr != nil {
		fmt.Fprintf(&b, " moxd=unavailable (%s)", oneLine(moxdErr))
	} else {
		fmt.Fprintf(&b, " moxd=%.0f", moxd.rate(n))
	}
	if peerErr != nil {
		fmt.Fprintf(&b, "  peer=unavailable (%s)", oneLine(peerErr))
	} else {
		fmt.Fprintf(&b, "  peer=%.0f", peer.rate(n))
	}
	if moxdErr == nil && peerErr == nil {
		fmt.Fprintf(&b, "  ratio=%.2f", moxd.rate(n)/peer.rate(n))
	}
	if moxdErr == nil {
		fmt.Fprintf(&b, "  rss_moxd=%.0fMiB", float64(moxd.rssKiB)/1024)
	}
	if peerErr == nil {
		fmt.Fprintf(&b, "  rss_peer=%.0fMiB", float64(peer.rssKiB)/1024)
	}
	fmt.Fprintf(&b, "  goal ratio>=1.0 rss<300MiB  (msgs/s, %d messages from one mbox, seed %d", n, seed)
	if moxdErr == nil {
		fmt.Fprintf(&b, "; moxd: %s", moxd.note)
	}
	if peerErr == nil {
		fmt.Fprintf(&b, "; peer: %s", peer.note)
	}
	b.WriteString(")")
	fmt.Println(b.String())
	return nil
}

// oneLine shortens an error for the report line.
func oneLine(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// dovecotImport imports mboxPath with doveadm into a new maildir under dir
// and checks that n messages arrived.
func dovecotImport(dir, mboxPath string, n int) (importResult, error) {
	doveadm, err := exec.LookPath("doveadm")
	if err != nil {
		reason := "doveadm not found: install Debian package dovecot-core (bench/run does as root)"
		// bench/run says why its install failed.
		if why := os.Getenv("MOXDBENCH_DOVECOT_INSTALL"); why != "" {
			reason += "; " + why
		}
		return importResult{}, errors.New(reason)
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		return importResult{}, fmt.Errorf("user nobody: %w", err)
	}
	uid, _ := strconv.ParseUint(nobody.Uid, 10, 32)
	gid, _ := strconv.ParseUint(nobody.Gid, 10, 32)
	if os.Geteuid() != 0 {
		// Without root, doveadm runs as this user.
		uid, gid = uint64(os.Getuid()), uint64(os.Getgid())
	}
	home := filepath.Join(dir, "mail", "bench")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return importResult{}, err
	}
	for _, d := range []string{dir, filepath.Join(dir, "mail"), home} {
		if err := os.Chown(d, int(uid), int(gid)); err != nil {
			return importResult{}, err
		}
	}
	conf := filepath.Join(dir, "dovecot.conf")
	// No listeners, no auth: doveadm opens the storage itself. mail_fsync
	// is not set: Dovecot's default fsyncs every saved message.
	confText := fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
ssl = no
protocols =
mail_location = maildir:%[1]s/mail/%%u
`, dir)
	if err := os.WriteFile(conf, []byte(confText), 0o644); err != nil {
		return importResult{}, err
	}
	// doveconf must agree that fsync is on: the default, not a leftover
	// global setting.
	if out, err := exec.Command("doveconf", "-c", conf, "-h", "mail_fsync").Output(); err != nil {
		return importResult{}, fmt.Errorf("doveconf -c %s: %v", conf, err)
	} else if v := strings.TrimSpace(string(out)); v == "never" {
		return importResult{}, fmt.Errorf("dovecot mail_fsync is %q: the comparison needs fsync", v)
	}
	source := fmt.Sprintf("mbox:%s:INBOX=%s:INDEX=MEMORY", filepath.Dir(mboxPath), mboxPath)
	cmd := exec.Command(doveadm, "-c", conf, "import", source, "", "mailbox", "INBOX", "all")
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "USER=bench", "HOME=" + home}
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	err = cmd.Run()
	elapsed := time.Since(t0)
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
		return importResult{}, fmt.Errorf("doveadm import: %v: %s %s", err, out.Bytes(), lastLines(log, 3))
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return importResult{}, errors.New("no rusage for doveadm")
	}
	got := 0
	for _, sub := range []string{"cur", "new"} {
		entries, err := os.ReadDir(filepath.Join(home, sub))
		if err != nil {
			return importResult{}, fmt.Errorf("dovecot maildir: %w", err)
		}
		got += len(entries)
	}
	if got != n {
		return importResult{}, fmt.Errorf("doveadm import stored %d messages, want %d", got, n)
	}
	return importResult{
		seconds: elapsed.Seconds(),
		rssKiB:  int64(ru.Maxrss), // KiB on Linux and the BSDs.
		note:    fmt.Sprintf("doveadm import %.1fs to maildir, mail_fsync=optimized (default: fsync per message), ru_maxrss of doveadm", elapsed.Seconds()),
	}, nil
}

// firstLine returns the first non-empty line of b: for a failed command,
// usually what went wrong before a usage text.
func firstLine(b []byte) string {
	for l := range strings.SplitSeq(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return "no output"
}

// lastLines returns the last k lines of b.
func lastLines(b []byte, k int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-k):], " | ")
}

// moxdImport starts moxd with an account "bench" and times moxctl import.
func moxdImport(mboxPath string) (importResult, error) {
	moxctl := filepath.Join(*binDir, "moxctl")
	if _, err := os.Stat(moxctl); err != nil {
		return importResult{}, fmt.Errorf("moxctl: %w (run make build)", err)
	}
	dir, conf, err := newConfig()
	if err != nil {
		return importResult{}, err
	}
	domains := "[[domain]]\nname = \"localhost\"\n\n[[account]]\nname = \"bench\"\naddresses = [\"bench@localhost\", \"postmaster@localhost\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "domains.conf"), []byte(domains), 0o644); err != nil {
		os.RemoveAll(dir)
		return importResult{}, err
	}
	in, err := startInstance(dir, conf)
	if err != nil {
		os.RemoveAll(dir)
		return importResult{}, err
	}
	defer in.cleanup()
	st, err := in.waitReady()
	if err != nil {
		return importResult{}, err
	}
	storePID := rolePID(st, "store")
	if storePID == 0 {
		return importResult{}, errors.New("no store role in moxctl status")
	}

	cmd := exec.Command(moxctl, "-f", conf, "import", "mbox", "bench", "INBOX", mboxPath)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	err = cmd.Run()
	elapsed := time.Since(t0)
	if err != nil {
		return importResult{}, fmt.Errorf("moxctl import mbox: %v: %s", err, firstLine(out.Bytes()))
	}
	// The store must be the one that ran the import, not a restarted one.
	if st2, err := in.status(); err != nil || rolePID(st2, "store") != storePID {
		return importResult{}, fmt.Errorf("moxd-store restarted during the import; see %s", in.log.Name())
	}
	hwm, err := vmHWM(storePID)
	if err != nil {
		return importResult{}, err
	}
	return importResult{
		seconds: elapsed.Seconds(),
		rssKiB:  hwm,
		note:    fmt.Sprintf("moxctl import %.1fs (%s), VmHWM of moxd-store", elapsed.Seconds(), lastLines(out.Bytes(), 1)),
	}, nil
}

// vmHWM is the peak resident set size of a process in KiB.
func vmHWM(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}
