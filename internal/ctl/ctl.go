// Package ctl is the protocol of moxd-master's control socket, spoken by
// moxctl. It runs in moxctl (the client side) and in moxd-master (the
// server side).
//
// The protocol: over a unix stream socket, the client sends one JSON request
// line and master answers with JSON response lines; a connection may carry
// several requests one after the other (an import sends its files in
// several). A request line may come with file descriptors (SCM_RIGHTS) in
// the same sendmsg; Request.FDs says how many, and master checks the count
// per command and closes any it did not expect. A response line may carry
// fds the same way (export passes the read end of a pipe). Response lines
// with Progress set are interim; the last line of an answer has none.
//
// The socket lives in run_dir (mode 0660, group admin_group, or 0600 when no
// admin group is configured); master also checks the peer's credentials.
package ctl

import (
	"encoding/json"
	"errors"
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

// MaxFDs is the most file descriptors one request or response line may
// carry.
const MaxFDs = 4

// Request is one command.
type Request struct {
	Cmd  string   `json:"cmd"`
	Args []string `json:"args,omitempty"`
	// Secret is a password (account add, account password). Master never
	// logs it nor writes it to the audit log; it goes to store only.
	Secret string `json:"secret,omitempty"`
	// FDs is the number of file descriptors sent with this line.
	FDs int `json:"fds,omitempty"`
	// Files describes the message files of "import files", one per fd.
	Files []ImportFile `json:"files,omitempty"`
}

// Response answers a request.
type Response struct {
	OK    bool            `json:"ok"`
	Error string          `json:"error,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
	// Progress marks an interim line: more lines follow.
	Progress *Progress `json:"progress,omitempty"`
	// FDs is the number of file descriptors sent with this line.
	FDs int `json:"fds,omitempty"`
}

// Progress is how far a running import has come.
type Progress struct {
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
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
// into v (if not nil). It is Dial and one Call without files.
func Do(path string, req Request, v any, timeout time.Duration) error {
	c, err := Dial(path)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	files, err := c.Call(req, nil, v)
	closeFiles(files)
	return err
}
