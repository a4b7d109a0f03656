//go:build linux

package master

import (
	"errors"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// peerCred returns the uid, primary gid and supplementary groups of the
// process at the other end of c, as the kernel recorded them at connect.
func peerCred(c *net.UnixConn) (uid, gid uint32, groups []uint32, err error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, 0, nil, err
	}
	var cred *unix.Ucred
	var serr error
	err = rc.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if serr == nil {
			groups, serr = peerGroups(int(fd))
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return 0, 0, nil, err
	}
	return cred.Uid, cred.Gid, groups, nil
}

// peerGroups reads SO_PEERGROUPS (Linux 4.13+): the peer's supplementary
// groups.
func peerGroups(fd int) ([]uint32, error) {
	buf := make([]uint32, 64)
	for {
		n := uint32(len(buf) * 4)
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS, uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		switch {
		case e == unix.ERANGE && int(n/4) > len(buf):
			buf = make([]uint32, n/4)
			continue
		case e == unix.ENOPROTOOPT:
			return nil, nil // older kernel: the user database is consulted instead
		case e != 0:
			return nil, errors.New("getsockopt SO_PEERGROUPS: " + e.Error())
		}
		return buf[:n/4], nil
	}
}
