// Package ctl is the protocol of moxd-master's control socket, spoken by
// moxctl: one JSON request line, one JSON response line, per connection.
//
// The socket lives in run_dir (mode 0660, group admin_group, or 0600 when no
// admin group is configured); master also checks the peer's credentials.
package ctl

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"
)

// SocketName is the control socket's file name in run_dir.
const SocketName = "ctl.sock"

// SocketPath returns the control socket path for a run_dir.
func SocketPath(runDir string) string {
	return filepath.Join(runDir, SocketName)
}

// MaxRequest bounds a request line.
const MaxRequest = 64 * 1024

// Request is one command.
type Request struct {
	Cmd  string   `json:"cmd"`
	Args []string `json:"args,omitempty"`
}

// Response answers a request.
type Response struct {
	OK    bool            `json:"ok"`
	Error string          `json:"error,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// Status is the answer to "status".
type Status struct {
	Master MasterStatus `json:"master"`
	Roles  []RoleStatus `json:"roles"`
}

// MasterStatus describes moxd-master itself.
type MasterStatus struct {
	PID           int     `json:"pid"`
	Version       string  `json:"version"`
	BuildID       string  `json:"build_id"`
	Config        string  `json:"config"`
	UptimeSeconds float64 `json:"uptime_seconds"`
	Localserve    bool    `json:"localserve"`
	Stopping      bool    `json:"stopping"`
}

// RoleStatus describes one role's process.
type RoleStatus struct {
	Role          string     `json:"role"`
	PID           int        `json:"pid"`
	UID           uint32     `json:"uid"`
	GID           uint32     `json:"gid"`
	State         string     `json:"state"`
	Restarts      int        `json:"restarts"`
	UptimeSeconds float64    `json:"uptime_seconds"`
	Listeners     []Listener `json:"listeners,omitempty"`
	Counters      []Counter  `json:"counters,omitempty"`
	LastExit      string     `json:"last_exit,omitempty"`
}

// Listener is a bound listening address.
type Listener struct {
	Kind string `json:"kind"`
	Addr string `json:"addr"`
}

// Counter is a named counter of a role, e.g. signatures per key.
type Counter struct {
	Name  string `json:"name"`
	Value uint64 `json:"value"`
}

// Down lists the roles that are not ready.
func (s *Status) Down() []string {
	var l []string
	for _, r := range s.Roles {
		if r.State != "ready" {
			l = append(l, r.Role)
		}
	}
	return l
}

// ReloadResult is the answer to "reload".
type ReloadResult struct {
	// NeedRestart lists changed settings that only take effect after a restart
	// of moxd (listeners, users, directories).
	NeedRestart []string `json:"need_restart,omitempty"`
}

// LogLevels is the answer to "loglevel".
type LogLevels struct {
	Levels map[string]string `json:"levels"` // by role, "master" included
}

// ErrNotRunning means no master answers on the socket.
var ErrNotRunning = errors.New("moxd is not running (no answer on the control socket)")

// Do sends req to the control socket at path and decodes the answer's data
// into v (if not nil).
func Do(path string, req Request, v any, timeout time.Duration) error {
	conn, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrNotRunning, path, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("send to %s: %w", path, err)
	}
	var resp Response
	dec := json.NewDecoder(bufio.NewReader(conn))
	if err := dec.Decode(&resp); err != nil {
		return fmt.Errorf("read answer from %s: %w", path, err)
	}
	if !resp.OK {
		return errors.New(resp.Error)
	}
	if v != nil && len(resp.Data) > 0 {
		if err := json.Unmarshal(resp.Data, v); err != nil {
			return fmt.Errorf("decode answer: %w", err)
		}
	}
	return nil
}
