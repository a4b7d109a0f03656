// Package datadir checks the data directory a role owns (keys, store,
// queue) before the role uses it.
package datadir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// Check verifies that dir suits a role that owns it: see CheckOwned, for
// this process's effective uid.
func Check(dir string) error {
	return CheckOwned(dir, os.Geteuid())
}

// CheckOwned verifies that path is a real directory (not a symlink), mode
// 0700 exactly, owned by uid. Each failure says how to fix it.
func CheckOwned(path string, uid int) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s does not exist; create it with mode 0700 owned by uid %d", path, uid)
	} else if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("%s is a symlink; use the real directory's path or replace the link with a directory (mode 0700, owner uid %d)", path, uid)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory (mode %v); move it away and create a directory with mode 0700 owned by uid %d", path, fi.Mode(), uid)
	}
	if m := fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky); m != 0o700 {
		return fmt.Errorf("%s has mode %#o, want exactly 0700; run chmod 0700 %s", path, uint32(m.Perm())|specialBits(m), path)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: cannot determine owner", path)
	}
	if int(st.Uid) != uid {
		return fmt.Errorf("%s is owned by uid %d, want uid %d (the role using it); run chown %d %s", path, st.Uid, uid, uid, path)
	}
	return nil
}

// specialBits renders setuid, setgid and sticky as their octal digits.
func specialBits(m fs.FileMode) uint32 {
	var b uint32
	if m&fs.ModeSetuid != 0 {
		b |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		b |= 0o1000
	}
	return b
}
