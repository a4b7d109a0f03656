//go:build linux

package worker

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// harden applies the process restrictions every worker runs under: no core
// dumps, not dumpable (so /proc/<pid>/environ, mem and fd are root-only and no
// sibling can ptrace it), and no privilege gain through exec.
func harden() error {
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		return fmt.Errorf("setrlimit core: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl PR_SET_DUMPABLE: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl PR_SET_NO_NEW_PRIVS: %w", err)
	}
	// Exit if master dies, even before our channel notices (master also sets
	// Pdeathsig at exec; repeating it here survives a credential change).
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("prctl PR_SET_PDEATHSIG: %w", err)
	}
	return nil
}
