//go:build unix && !linux

package master

import (
	"syscall"
)

func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Setpgid: true}
}

// becomeSubreaper: only Linux has a portable-enough interface; on the BSDs
// orphans of workers are reparented to init, which reaps them.
func becomeSubreaper() error { return nil }

// killUID ends every process of uid: a short-lived child running as uid sends
// SIGKILL to -1, which reaches exactly the processes that uid may signal,
// that is its own, except the sender itself.
func killUID(uid, gid uint32) ([]int, error) {
	return nil, killAsUID(uid, gid)
}
