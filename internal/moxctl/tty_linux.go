package moxctl

import "golang.org/x/sys/unix"

// Terminal attribute requests of this system.
const (
	ioctlGetTermios = unix.TCGETS
	ioctlSetTermios = unix.TCSETS
)
