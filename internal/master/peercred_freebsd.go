//go:build freebsd

package master

import (
	"net"

	"golang.org/x/sys/unix"
)

// peerCred returns the peer's uid, its first group and its other groups
// (xucred lists up to 16).
func peerCred(c *net.UnixConn) (uid, gid uint32, groups []uint32, err error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, 0, nil, err
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
		return 0, 0, nil, err
	}
	n := max(0, min(int(xu.Ngroups), len(xu.Groups)))
	return xu.Uid, xu.Groups[0], xu.Groups[1:max(n, 1)], nil
}
