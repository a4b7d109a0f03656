//go:build openbsd

package master

import (
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sockpeercred is OpenBSD's struct sockpeercred (getsockopt SO_PEERCRED).
type sockpeercred struct {
	uid uint32
	gid uint32
	pid int32
}

// peerCred returns the peer's uid and gid; OpenBSD does not report the
// supplementary groups, so the caller consults the user database.
func peerCred(c *net.UnixConn) (uid, gid uint32, groups []uint32, err error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, 0, nil, err
	}
	var pc sockpeercred
	var serr error
	err = rc.Control(func(fd uintptr) {
		n := uint32(unsafe.Sizeof(pc))
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_PEERCRED, uintptr(unsafe.Pointer(&pc)), uintptr(unsafe.Pointer(&n)), 0)
		if e != 0 {
			serr = e
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return 0, 0, nil, err
	}
	return pc.uid, pc.gid, nil, nil
}
