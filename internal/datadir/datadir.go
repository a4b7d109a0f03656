// Package datadir checks the data directory a role owns (keys, store,
// queue) before the role uses it.
package datadir

import (
	"fmt"
	"os"
	"syscall"
)

// Check verifies that dir is a directory (not a symlink) owned by this
// process's uid with no access for group or others.
func Check(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("data dir %s is not a directory", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != uint32(os.Geteuid()) {
		return fmt.Errorf("data dir %s is owned by uid %d, this role runs as uid %d", dir, st.Uid, os.Geteuid())
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("data dir %s has mode %04o: no access for group or others allowed", dir, fi.Mode().Perm())
	}
	return nil
}
