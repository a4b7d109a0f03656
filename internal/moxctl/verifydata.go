package moxctl

// verifydata checks account directories offline, without master. Root
// never opens a database or parses message data (DESIGN.md §1): started as
// root, moxctl resolves the store's user from moxd.conf and runs itself
// again as that user (new process, uid, gid and no supplementary groups set
// by the kernel at exec), with a hidden subcommand that does the work.

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
	"moxd/internal/storage/account"
)

// verifyChild is the hidden subcommand verifydata runs as the store user.
const verifyChild = "_verifydata"

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
	if os.Geteuid() != 0 {
		return c.verifyChild(append([]string{abs}, fixArg...))
	}
	// A backup directory is root's (mode 0700), so the store user could not
	// reach the accounts below it by name: root opens the accounts
	// directory and the child gets it as fd 3.
	accounts, err := accountsDir(abs)
	if err != nil {
		return c.failf("%v", err)
	}
	df, err := os.Open(accounts)
	if err != nil {
		return c.failf("%v", err)
	}
	defer df.Close()
	childArgs := append([]string{"-accounts", "/dev/fd/3", accounts}, fixArg...)
	st, err := config.LoadStatic(c.file)
	if err != nil {
		return c.failf("%v (verifydata runs as users.store of the configuration)", err)
	}
	u, err := config.ResolveUser(st.Users.Store)
	if err != nil {
		return c.failf("users.store in %s: %v", c.file, err)
	}
	exe, err := os.Executable()
	if err != nil {
		return c.failf("finding the moxctl binary to run as the store user: %v", err)
	}
	cmd := exec.Command(exe, append([]string{verifyChild}, childArgs...)...)
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
		return c.failf("running verifydata as %s (uid %d): %v", st.Users.Store, u.UID, err)
	}
	return ExitOK
}

// accountsDir finds the accounts of dir: a data_dir or a backup
// (DIR/store/accounts), or a store directory (DIR/accounts).
func accountsDir(dir string) (string, error) {
	for _, p := range []string{filepath.Join(dir, "store", "accounts"), filepath.Join(dir, "accounts")} {
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return p, nil
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	return "", fmt.Errorf("%s has neither store/accounts nor accounts: give a data directory, a backup directory or a store directory", dir)
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
