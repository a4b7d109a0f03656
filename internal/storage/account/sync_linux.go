//go:build linux

package account

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// syncFiles makes the files written in dir durable with one syncfs(2),
// which flushes the whole file system dir is on: one call for an import
// chunk instead of an fsync per message.
func syncFiles(dir string, paths []string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open %s for syncfs: %w", dir, err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("syncfs %s: %w", dir, err)
	}
	return nil
}
