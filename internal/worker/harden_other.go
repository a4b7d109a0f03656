//go:build unix && !linux

package worker

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// harden applies the restrictions available on this system: no core dumps.
// Workers run under their own uid without supplementary groups, which on the
// BSDs already keeps other uids from tracing them; they exit when master's
// channel closes.
func harden() error {
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		return fmt.Errorf("setrlimit core: %w", err)
	}
	return nil
}
