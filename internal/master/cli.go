package master

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"moxd/internal/config"
	"moxd/internal/ctl"
	"moxd/internal/mlog"
	"moxd/internal/version"
)

// DefaultConfig is the config file used without -f.
const DefaultConfig = "/etc/moxd/moxd.conf"

// daemonStartWait bounds how long "moxd-master" without -d waits for the
// daemon to report that every role is ready.
const daemonStartWait = 5 * time.Minute

// envDaemonChild marks the re-executed daemon process.
const envDaemonChild = "MOXD_DAEMON_CHILD"

const usage = `usage: moxd-master [-dnv] [-f file]
       moxd-master localserve [-v] [-dir dir] [-ip address] [-port-offset n]
       moxd-master version

  -d   stay in the foreground and log to stderr (default: daemon, syslog facility mail)
  -f   configuration file (default ` + DefaultConfig + `)
  -n   check the configuration and exit
  -v   verbose: log at debug level
`

// Main is the moxd-master command; it returns the process exit code.
func Main(args []string, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "localserve":
			return localserveMain(args[1:], stderr)
		case "version":
			fmt.Fprintf(os.Stdout, "moxd %s (build %s)\n", version.Version, version.BuildID())
			return ExitOK
		case "_killall":
			return KillAllMain()
		}
	}
	fs := flag.NewFlagSet("moxd-master", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	foreground := fs.Bool("d", false, "")
	file := fs.String("f", DefaultConfig, "")
	check := fs.Bool("n", false, "")
	verbose := fs.Bool("v", false, "")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		if err != nil && !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "moxd-master: %v\n", err)
		}
		fmt.Fprint(stderr, usage)
		return 2
	}
	path, err := filepath.Abs(*file)
	if err != nil {
		fmt.Fprintf(stderr, "moxd-master: %v\n", err)
		return ExitFailed
	}
	if *check {
		if _, err := config.Load(path); err != nil {
			fmt.Fprintf(stderr, "moxd-master: %v\n", err)
			return ExitFailed
		}
		fmt.Fprintf(stderr, "moxd-master: configuration %s OK\n", path)
		return ExitOK
	}
	if *foreground {
		return runForeground(path, *verbose, NewStderrOutput(stderr), nil)
	}
	if os.Getenv(envDaemonChild) == "" {
		return daemonize(stderr)
	}
	return daemonChild(path, *verbose)
}

// runForeground runs master with out as log destination. onReady, if set, is
// called when all roles are ready.
func runForeground(path string, verbose bool, out *Output, onReady func(Snapshot)) int {
	level := new(slog.LevelVar)
	log := slog.New(mlog.NewHandler(out.Writer(), mlog.Options{Level: level}))
	opts := Options{
		ConfigPath: path,
		Log:        log,
		Level:      level,
		WorkerLog:  out.Line,
		OnReady:    onReady,
	}
	opts.Verbose = verbose
	code, err := Run(context.Background(), opts)
	if err != nil {
		log.Error("moxd-master: " + err.Error())
		if code == ExitOK {
			code = ExitFailed
		}
	}
	return code
}

// daemonize re-executes moxd-master detached from the terminal and waits
// until it reports that all roles are ready (exit 0) or that start failed
// (exit 1, with the reason on stderr), so rc scripts see the real outcome.
func daemonize(stderr io.Writer) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "moxd-master: %v\n", err)
		return ExitFailed
	}
	rd, wr, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(stderr, "moxd-master: %v\n", err)
		return ExitFailed
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintf(stderr, "moxd-master: %v\n", err)
		return ExitFailed
	}
	env := append(os.Environ(), envDaemonChild+"=1")
	p, err := os.StartProcess(exe, os.Args, &os.ProcAttr{
		Dir:   "/",
		Env:   env,
		Files: []*os.File{devnull, devnull, devnull, wr},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	wr.Close()
	devnull.Close()
	if err != nil {
		fmt.Fprintf(stderr, "moxd-master: start daemon: %v\n", err)
		return ExitFailed
	}
	p.Release()
	// Wait for the daemon's word, but not forever: a role that never gets
	// ready keeps the daemon retrying in the background.
	rd.SetReadDeadline(time.Now().Add(daemonStartWait))
	msg, err := io.ReadAll(io.LimitReader(rd, 64*1024))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		fmt.Fprintf(stderr, "moxd-master: not all roles were ready after %s; moxd keeps trying in the background: see the mail log and \"moxctl status\"\n", daemonStartWait)
		return ExitFailed
	}
	s := string(msg)
	if s == "ok\n" {
		return ExitOK
	}
	if s == "" {
		s = "daemon exited during start; see the mail log (syslog facility mail)\n"
	}
	fmt.Fprintf(stderr, "moxd-master: %s", s)
	return ExitFailed
}

// daemonChild is the detached master. fd 3 is the pipe to the waiting parent.
func daemonChild(path string, verbose bool) int {
	report := os.NewFile(3, "daemon-report")
	// Whoever claims the pipe first reports: "ok" once all roles are ready,
	// or the reason the start failed.
	var reported atomic.Bool
	say := func(msg string) {
		if reported.CompareAndSwap(false, true) {
			fmt.Fprint(report, msg)
			report.Close()
		}
	}
	out, err := NewSyslogOutput()
	if err != nil {
		say(err.Error() + "\n")
		return ExitFailed
	}
	level := new(slog.LevelVar)
	log := slog.New(mlog.NewHandler(out.Writer(), mlog.Options{Level: level}))
	var pidfile string
	if cfg, err := config.LoadStatic(path); err == nil {
		pidfile = filepath.Join(cfg.RunDir, "moxd.pid")
	}
	code, err := Run(context.Background(), Options{
		Verbose:    verbose,
		ConfigPath: path,
		Log:        log,
		Level:      level,
		WorkerLog:  out.Line,
		OnReady: func(Snapshot) {
			if pidfile != "" {
				if err := os.WriteFile(pidfile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
					log.Error("write pid file", "err", err)
				}
			}
			say("ok\n")
		},
	})
	if pidfile != "" {
		os.Remove(pidfile)
	}
	if err != nil {
		log.Error("moxd-master: " + err.Error())
		say(err.Error() + "\n")
		if code == ExitOK {
			code = ExitFailed
		}
	} else {
		say("stopped before all roles were ready; see the mail log\n")
	}
	return code
}

// SocketFor returns the control socket of a config file, for moxctl.
func SocketFor(path string) (string, error) {
	s, err := config.LoadStatic(path)
	if err != nil {
		return "", err
	}
	return ctl.SocketPath(s.RunDir), nil
}
