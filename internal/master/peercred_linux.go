//go:build linux

package master

import (
	"net"

	"golang.org/x/sys/unix"
)

func peerCred(c *net.UnixConn) (uid, gid uint32, err error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var cred *unix.Ucred
	var serr error
	err = rc.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return 0, 0, err
	}
	return cred.Uid, cred.Gid, nil
}
