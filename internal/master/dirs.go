package master

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// dirSpec is a directory master maintains.
type dirSpec struct {
	path     string
	uid, gid uint32
	mode     uint32
	what     string // for errors: which config key or role
}

// ensureDir creates a directory with owner and mode, or checks an existing
// one. Rules (DESIGN.md §8): never follow a symlink, never chown recursively,
// fix owner and mode only on a directory master creates itself; an existing
// directory with the wrong owner or a looser mode is an error that says what
// to run. The parent must exist.
func ensureDir(d dirSpec, asRoot bool) error {
	parent, name := filepath.Split(filepath.Clean(d.path))
	pfd, err := unix.Open(parent, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%s: open parent %s: %w", d.what, parent, err)
	}
	defer unix.Close(pfd)

	created := false
	if err := unix.Mkdirat(pfd, name, 0700); err == nil {
		created = true
	} else if !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("%s: create %s: %w", d.what, d.path, err)
	}
	fd, err := unix.Openat(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EMLINK) || errors.Is(err, unix.ENOTDIR) { // EMLINK: FreeBSD
			return fmt.Errorf("%s: %s is a symlink or not a directory; moxd does not follow symlinks for its data: replace it with a directory", d.what, d.path)
		}
		return fmt.Errorf("%s: open %s: %w", d.what, d.path, err)
	}
	defer unix.Close(fd)
	if created {
		if asRoot {
			if err := unix.Fchown(fd, int(d.uid), int(d.gid)); err != nil {
				return fmt.Errorf("%s: chown %s: %w", d.what, d.path, err)
			}
		}
		if err := unix.Fchmod(fd, d.mode); err != nil {
			return fmt.Errorf("%s: chmod %s: %w", d.what, d.path, err)
		}
		return nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("%s: stat %s: %w", d.what, d.path, err)
	}
	mode := uint32(st.Mode) & 0o7777
	if asRoot && (st.Uid != d.uid || st.Gid != d.gid) {
		return fmt.Errorf("%s: %s is owned by %d:%d, want %d:%d: fix with \"chown %d:%d %s\" (moxd only sets owners on directories it creates)", d.what, d.path, st.Uid, st.Gid, d.uid, d.gid, d.uid, d.gid, d.path)
	}
	if mode&^d.mode != 0 {
		return fmt.Errorf("%s: %s has mode %04o, want at most %04o: fix with \"chmod %04o %s\"", d.what, d.path, mode, d.mode, d.mode, d.path)
	}
	return nil
}

// ensureTopDir creates (if missing) an absolute directory and its missing
// parents, for master's own top-level dirs (data_dir, run_dir).
func ensureTopDir(path string, mode os.FileMode) error {
	fi, err := os.Lstat(path)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s exists and is not a directory (moxd does not follow symlinks for its data)", path)
		}
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(path, mode); err != nil {
		return err
	}
	return os.Chmod(path, mode)
}

// searchable checks that every directory from / down to dir lets other users
// pass (o+x): roles run under their own uids and must reach their data dirs
// below data_dir.
func searchable(dir string) error {
	p := filepath.Clean(dir)
	for {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s is below %s (mode %04o), which the role users cannot enter: give data_dir a path every user may pass through (e.g. /var/db/moxd; for localserve as root, -dir under /var/tmp), or run localserve as an ordinary user", dir, p, fi.Mode().Perm())
		}
		parent := filepath.Dir(p)
		if parent == p {
			return nil
		}
		p = parent
	}
}
