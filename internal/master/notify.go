package master

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// notifier tells a service manager about master's state with the sd_notify
// datagram protocol: READY=1 once every role is ready, RELOADING=1 and
// READY=1 around a reload, STOPPING=1 on stop. It is active only when the
// service manager set NOTIFY_SOCKET (systemd with Type=notify); workers never
// see the variable, their environment is empty.
type notifier struct {
	addr *net.UnixAddr
}

// newNotifier reads NOTIFY_SOCKET and removes it from master's environment.
func newNotifier() *notifier {
	path := os.Getenv("NOTIFY_SOCKET")
	os.Unsetenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if strings.HasPrefix(path, "@") {
		path = "\x00" + path[1:] // abstract socket namespace (Linux)
	}
	return &notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
}

// send delivers one state message; failures only go to the log.
func (n *notifier) send(state string) error {
	if n == nil {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}
