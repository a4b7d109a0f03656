//go:build freebsd

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
	var xu *unix.Xucred
	var serr error
	err = rc.Control(func(fd uintptr) {
		xu, serr = unix.GetsockoptXucred(int(fd), 0 /* SOL_LOCAL */, unix.LOCAL_PEERCRED)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return 0, 0, err
	}
	return xu.Uid, xu.Groups[0], nil
}
