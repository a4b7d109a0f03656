// Package durable holds the file-system steps that make writes survive a
// crash, shared by the roles that own files (keys, store, queue) and by
// master's config writer: syncing a directory so that names created in it
// are durable, and copying a file where a hard link is not possible.
package durable

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// SyncDir fsyncs directory dir, making the names created, renamed or
// removed in it durable. dir may be a /proc/self/fd path naming an open
// directory (backups write through those).
func SyncDir(dir string) error {
	return syncDir(dir, 0)
}

// SyncDirNoFollow is SyncDir refusing a symlink at dir, for directories
// whose path a peer could try to redirect.
func SyncDirNoFollow(dir string) error {
	return syncDir(dir, syscall.O_NOFOLLOW)
}

func syncDir(dir string, flags int) error {
	f, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY|flags, 0)
	if err != nil {
		return fmt.Errorf("open directory for sync: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// LinkImpossible reports whether a hard link failed because the target is
// on another file system or links are not allowed there, so that a copy
// (CopyFile) should take its place.
func LinkImpossible(err error) bool {
	return errors.Is(err, syscall.EXDEV) || errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EMLINK) || errors.Is(err, syscall.ENOTSUP)
}

// CopyFile copies src to the new file dst (created with O_EXCL, mode,
// never through a symlink) and fsyncs it. A failed copy leaves no dst.
func CopyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, mode)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
	}
	return err
}

// CreateTemp creates a new file named prefix-<random> in dir that nobody
// else can have opened (O_EXCL|O_NOFOLLOW, mode 0600). The owners' temp
// directories are their own; $TMPDIR is never used.
func CreateTemp(dir, prefix string) (*os.File, error) {
	if dir == "" {
		return nil, errors.New("no temporary directory given")
	}
	for range 10 {
		var rnd [12]byte
		if _, err := rand.Read(rnd[:]); err != nil {
			return nil, err
		}
		p := filepath.Join(dir, prefix+"-"+hex.EncodeToString(rnd[:]))
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, err
	}
	return nil, fmt.Errorf("no free file name in %s", dir)
}

// LinkOrCopy hard-links src to the new name dst, or copies it there (with
// mode, fsynced) where the file system cannot link (LinkImpossible).
func LinkOrCopy(src, dst string, mode os.FileMode) error {
	err := os.Link(src, dst)
	if err != nil && LinkImpossible(err) {
		err = CopyFile(src, dst, mode)
	}
	return err
}
