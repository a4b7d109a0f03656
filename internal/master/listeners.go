package master

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"

	"moxd/internal/ipc"
)

// boundListener is one socket master bound; the file stays open in master for
// its whole life so a restarted worker gets the same socket.
type boundListener struct {
	kind  string // config key: smtp, submission, ...
	addr  string // bound address (port 0 resolved)
	file  *os.File
	owner ipc.Role
}

// listenerOwner maps a listener kind to the role serving it.
func listenerOwner(kind string) ipc.Role {
	switch kind {
	case "smtp":
		return ipc.RoleSMTP
	case "submission", "submissions":
		return ipc.RoleSubmission
	case "imap", "imaps":
		return ipc.RoleIMAP
	case "http", "https":
		return ipc.RoleWeb
	}
	return 0
}

// bind binds one configured listener address. IPv6 sockets are v6-only so an
// IPv4 and an IPv6 wildcard on the same port do not collide.
func bind(kind, addr, configFile string) (*boundListener, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("listen.%s in %s: %q: %w", kind, configFile, addr, err)
	}
	network := "tcp4"
	if ap.Addr().Is6() && !ap.Addr().Is4In6() {
		network = "tcp6"
	}
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), network, addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("listen.%s in %s: address %s is already in use by another program (find it with \"ss -ltnp\" or \"fstat\", or change listen.%s)", kind, configFile, addr, kind)
		}
		if errors.Is(err, syscall.EADDRNOTAVAIL) {
			return nil, fmt.Errorf("listen.%s in %s: address %s is not an address of this host: change listen.%s", kind, configFile, addr, kind)
		}
		if errors.Is(err, syscall.EACCES) {
			return nil, fmt.Errorf("listen.%s in %s: binding %s needs root (start moxd-master as root, or use ports above 1023): %w", kind, configFile, addr, err)
		}
		return nil, fmt.Errorf("listen.%s in %s: %s: %w", kind, configFile, addr, err)
	}
	tl := ln.(*net.TCPListener)
	f, err := tl.File()
	bound := tl.Addr().String()
	tl.Close()
	if err != nil {
		return nil, fmt.Errorf("listen.%s %s: %w", kind, addr, err)
	}
	return &boundListener{kind: kind, addr: bound, file: f, owner: listenerOwner(kind)}, nil
}

// dupFile duplicates f (close-on-exec) so IPC can send and close the copy
// while master keeps the original.
func dupFile(f *os.File) (*os.File, error) {
	fd, err := dupCloexec(int(f.Fd()))
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}
