//go:build !linux

package account

import (
	"fmt"
	"os"
)

// syncFiles makes the files durable with an fsync each: systems other than
// Linux have no syncfs(2).
func syncFiles(dir string, paths []string) error {
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("open %s for sync: %w", p, err)
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("sync %s: %w", p, err)
		}
	}
	return nil
}
