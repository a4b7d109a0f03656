package moxctl

// verifydata checks account directories and the queue offline, without
// master. Root never opens a database or parses message data (DESIGN.md
// §1): started as root, moxctl resolves the store's and the queue's users
// from moxd.conf and runs itself again as each (new process, uid, gid and
// no supplementary groups set by the kernel at exec), with a hidden
// subcommand that does the work: account.Verify as the store user,
// queue.Verify as the queue user.

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"moxd/internal/config"
	"moxd/internal/queue"
	"moxd/internal/storage/account"
)

// verifyChild is the hidden subcommand verifydata runs as the store user,
// verifyQueueChild the one it runs as the queue user.
const (
	verifyChild      = "_verifydata"
	verifyQueueChild = "_verifyqueue"
)

// verifydata checks the store part (the accounts) and the queue part of a
// data directory or backup, each as its owner, and exits with the worse of
// the two results.
func (c *cli) verifydata(args []string) int {
	var dir string
	fix := false
	for _, a := range args {
		switch {
		case a == "-fix":
			fix = true
		case dir == "" && !strings.HasPrefix(a, "-"):
			dir = a
		default:
			return c.usage()
		}
	}
	if dir == "" {
		return c.usage()
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return c.failf("%v", err)
	}
	var fixArg []string
	if fix {
		fixArg = []string{"-fix"}
	}
	accounts, err := findAccounts(abs)
	if err != nil {
		return c.failf("%v", err)
	}
	queueDir, err := findQueue(abs)
	if err != nil {
		return c.failf("%v", err)
	}
	if accounts == "" && queueDir == "" {
		return c.failf("%s has no accounts (store/accounts or accounts) and no queue (queue/queue.db or queue.db): give a data directory, a backup directory, a store directory or a queue directory", abs)
	}
	if accounts == "" {
		fmt.Fprintf(c.stdout, "no accounts in %s, not checked\n", abs)
	}
	if queueDir == "" {
		fmt.Fprintf(c.stdout, "no queue in %s, not checked\n", abs)
	}
	code := ExitOK
	if os.Geteuid() != 0 {
		if accounts != "" {
			code = max(code, c.verifyChild(append([]string{"-accounts", accounts, accounts}, fixArg...)))
		}
		if queueDir != "" {
			code = max(code, c.verifyQueueChild(append([]string{"-queue", queueDir, queueDir}, fixArg...)))
		}
		return code
	}
	st, err := config.LoadStatic(c.file)
	if err != nil {
		return c.failf("%v (verifydata runs as users.store and users.queue of the configuration)", err)
	}
	if accounts != "" {
		code = max(code, c.runAsOwner("users.store", st.Users.Store, verifyChild, "-accounts", accounts, fixArg))
	}
	if queueDir != "" {
		code = max(code, c.runAsOwner("users.queue", st.Users.Queue, verifyQueueChild, "-queue", queueDir, fixArg))
	}
	return code
}

// runAsOwner runs moxctl's hidden subcommand child as the user of spec
// (config key key) on the directory dir. A backup directory is root's
// (mode 0700), so the owner could not reach its part below it by name:
// root opens dir and the child gets it as fd 3, named "flag /dev/fd/3 dir".
func (c *cli) runAsOwner(key, spec, child, flag, dir string, fixArg []string) int {
	u, err := config.ResolveUser(spec)
	if err != nil {
		return c.failf("%s in %s: %v", key, c.file, err)
	}
	df, err := os.Open(dir)
	if err != nil {
		return c.failf("%v", err)
	}
	defer df.Close()
	exe, err := os.Executable()
	if err != nil {
		return c.failf("finding the moxctl binary to run as %s: %v", key, err)
	}
	cmd := exec.Command(exe, append([]string{child, flag, "/dev/fd/3", dir}, fixArg...)...)
	cmd.Stdout, cmd.Stderr = c.stdout, c.stderr
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.ExtraFiles = []*os.File{df}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: []uint32{}}}
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		return c.failf("running verifydata as %s (uid %d): %v", spec, u.UID, err)
	}
	return ExitOK
}

// accountsDir finds the accounts of dir: a data_dir or a backup
// (DIR/store/accounts), or a store directory (DIR/accounts).
func accountsDir(dir string) (string, error) {
	p, err := findAccounts(dir)
	if err == nil && p == "" {
		err = fmt.Errorf("%s has neither store/accounts nor accounts: give a data directory, a backup directory or a store directory", dir)
	}
	return p, err
}

// findAccounts is accountsDir, with "" when dir has no accounts.
func findAccounts(dir string) (string, error) {
	for _, p := range []string{filepath.Join(dir, "store", "accounts"), filepath.Join(dir, "accounts")} {
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return p, nil
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	return "", nil
}

// findQueue finds the queue of dir: a data_dir or a backup (DIR/queue), or
// a queue directory itself; "" if dir has none.
func findQueue(dir string) (string, error) {
	for _, p := range []string{filepath.Join(dir, "queue"), dir} {
		if fi, err := os.Stat(filepath.Join(p, "queue.db")); err == nil && fi.Mode().IsRegular() {
			return p, nil
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	return "", nil
}

// verifyChild runs account.Verify on every account of the directory and
// prints each problem; exit 1 if there is any. Its arguments: DIR [-fix],
// or -accounts PATH NAME [-fix] for an accounts directory at PATH (an fd
// passed by the parent) shown as NAME.
func (c *cli) verifyChild(args []string) int {
	fix := len(args) > 0 && args[len(args)-1] == "-fix"
	if fix {
		args = args[:len(args)-1]
	}
	var dir, shown string
	switch {
	case len(args) == 3 && args[0] == "-accounts":
		dir, shown = args[1], args[2]
	case len(args) == 1:
		var err error
		if dir, err = accountsDir(args[0]); err != nil {
			return c.failf("%v", err)
		}
		shown = dir
	default:
		return c.usage()
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return c.failf("%v", err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	// Problems are printed below; the log is for errors besides them.
	log := slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	code := ExitOK
	checked, found := 0, 0
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		checked++
		problems, err := account.Verify(filepath.Join(dir, e.Name()), fix, log)
		if err != nil {
			fmt.Fprintf(c.stdout, "account %s: %v\n", e.Name(), err)
			code = ExitFailed
			continue
		}
		for _, p := range problems {
			fixed := ""
			if p.Fixed {
				fixed = " (fixed)"
			}
			fmt.Fprintf(c.stdout, "account %s: %s: %s%s\n", e.Name(), p.Where, p.What, fixed)
			found++
			code = ExitFailed
		}
	}
	fmt.Fprintf(c.stdout, "%d accounts checked in %s, %d problems\n", checked, shown, found)
	return code
}

// verifyQueueChild runs queue.Verify (queue.VerifyFix with -fix) on a queue
// directory and prints each problem; exit 1 if there is any. Its
// arguments: DIR [-fix], or -queue PATH NAME [-fix] for a queue directory
// at PATH (an fd passed by the parent) shown as NAME. With -fix only what
// moxd-queue itself removes at start is removed (files of transactions
// that never committed, tmp/); other problems are reported only.
func (c *cli) verifyQueueChild(args []string) int {
	fix := len(args) > 0 && args[len(args)-1] == "-fix"
	if fix {
		args = args[:len(args)-1]
	}
	var dir, shown string
	switch {
	case len(args) == 3 && args[0] == "-queue":
		dir, shown = args[1], args[2]
	case len(args) == 1:
		var err error
		if dir, err = findQueue(args[0]); err != nil {
			return c.failf("%v", err)
		} else if dir == "" {
			return c.failf("%s has no queue (queue/queue.db or queue.db)", args[0])
		}
		shown = dir
	default:
		return c.usage()
	}
	problems, err := queue.VerifyFix(dir, fix)
	for _, p := range problems {
		fixed := ""
		if p.Fixed {
			fixed = " (fixed)"
		}
		fmt.Fprintf(c.stdout, "queue: %s: %s%s\n", p.Where, p.What, fixed)
	}
	if err != nil {
		fmt.Fprintf(c.stdout, "queue in %s: %v\n", shown, err)
		return ExitFailed
	}
	fmt.Fprintf(c.stdout, "queue checked in %s, %d problems\n", shown, len(problems))
	if len(problems) > 0 {
		return ExitFailed
	}
	return ExitOK
}
