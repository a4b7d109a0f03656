//go:build freebsd || openbsd || netbsd || darwin

package moxctl

import "golang.org/x/sys/unix"

// Terminal attribute requests of this system.
const (
	ioctlGetTermios = unix.TIOCGETA
	ioctlSetTermios = unix.TIOCSETA
)
