package master

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"time"

	"moxd/internal/config"
	"moxd/internal/ctl"
	"moxd/internal/ipc"
	"moxd/internal/version"
)

// listenControl creates the control socket for moxctl.
func (m *Master) listenControl() (*net.UnixListener, error) {
	cfg := m.cfg
	adminGID := -1
	if cfg.Static.AdminGroup != "" {
		gid, err := config.ResolveGroup(cfg.Static.AdminGroup)
		if err != nil {
			return nil, fmt.Errorf("admin_group in %s: %w", cfg.Path, err)
		}
		adminGID = int(gid)
	}
	path := ctl.SocketPath(cfg.Static.RunDir)
	ln, err := listenSocket("control socket", path)
	if err != nil {
		return nil, err
	}
	mode := os.FileMode(0o600)
	if adminGID >= 0 {
		mode = 0o660
		if err := os.Chown(path, -1, adminGID); err != nil {
			ln.Close()
			return nil, fmt.Errorf("control socket: chown to admin_group: %w", err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	go m.serveControl(ln, adminGID)
	return ln, nil
}

// listenSocket listens on the unix socket path (what names it in errors),
// replacing a stale socket left by a crash; it refuses when a live master
// answers there.
func listenSocket(what, path string) (*net.UnixListener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s %s exists and is not a socket: remove it", what, path)
		}
		// A live master answers; a stale socket from a crash does not.
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("another moxd-master is running (it answers on %s)", path)
		}
		os.Remove(path)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	ln.SetUnlinkOnClose(true)
	return ln, nil
}

// acceptLoop serves the connections of ln with handle until ln closes.
func (m *Master) acceptLoop(ln *net.UnixListener, what string, handle func(*net.UnixConn)) {
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			m.log.Error(what+" accept", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		go handle(c)
	}
}

func (m *Master) serveControl(ln *net.UnixListener, adminGID int) {
	m.acceptLoop(ln, "control socket", func(c *net.UnixConn) { m.controlConn(c, adminGID) })
}

// allowed checks the peer's credentials: root, master's own uid (localserve),
// or a member of admin_group. It returns the peer's uid.
func (m *Master) allowed(c *net.UnixConn, adminGID int) (uint32, error) {
	uid, gid, groups, err := peerCred(c)
	if err != nil {
		return 0, fmt.Errorf("peer credentials: %w", err)
	}
	if uid == 0 || uid == uint32(os.Geteuid()) {
		return uid, nil
	}
	if adminGID >= 0 {
		if gid == uint32(adminGID) || slices.Contains(groups, uint32(adminGID)) {
			return uid, nil
		}
		if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
			if gids, err := u.GroupIds(); err == nil && slices.Contains(gids, strconv.Itoa(adminGID)) {
				return uid, nil
			}
		}
	}
	return 0, fmt.Errorf("uid %d may not control moxd: use root or a member of admin_group", uid)
}

// controlTimeout bounds how long master waits for the next request line on
// a control connection.
const controlTimeout = 5 * time.Minute

func (m *Master) controlConn(uc *net.UnixConn, adminGID int) {
	c := ctl.NewConn(uc)
	defer c.Close()
	s := &ctlSession{m: m, c: c}
	uid, err := m.allowed(uc, adminGID)
	if err != nil {
		m.log.Warn("control connection refused", "err", err)
		s.respond(nil, err)
		return
	}
	s.uid = uid
	defer s.close()
	for {
		c.SetDeadline(time.Now().Add(controlTimeout))
		req, files, err := c.ReadRequest()
		if errors.Is(err, io.EOF) {
			return
		} else if err != nil {
			s.respond(nil, err)
			return
		}
		// Never log Secret; Args never hold one.
		m.log.Debug("control command", "cmd", req.Cmd, "args", req.Args, "fds", len(files))
		if err := checkFDs(req, files); err != nil {
			closeAll(files)
			s.respond(nil, err)
			continue
		}
		// Data commands run for as long as their data takes.
		c.SetDeadline(time.Time{})
		switch req.Cmd {
		case "status":
			s.respond(m.Status(), nil)
		case "reload":
			res, err := m.Reload()
			s.respond(res, err)
		case "stop":
			s.respond(nil, nil)
			m.Stop(ExitOK, "moxctl stop")
		case "loglevel":
			res, err := m.LogLevel(req.Args)
			s.respond(res, err)
		default:
			if !s.handle(req, files) {
				s.respond(nil, fmt.Errorf("unknown command %q", req.Cmd))
			}
		}
	}
}

// fdRule is how many fds a command takes.
type fdRule struct{ min, max int }

// commandFDs lists the commands that take fds; every other takes none.
var commandFDs = map[string]fdRule{
	"import mbox":  {1, 1},
	"import files": {1, ipc.MaxImportFiles},
	"deliver":      {1, 1},
}

// checkFDs checks the number of fds that came with a request against its
// command. The caller closes them on error.
func checkFDs(req ctl.Request, files []*os.File) error {
	r := commandFDs[req.Cmd]
	if n := len(files); n < r.min || n > r.max {
		if r.max == 0 {
			return fmt.Errorf("command %q takes no file descriptors, %d were passed (closed)", req.Cmd, n)
		}
		return fmt.Errorf("command %q takes %d to %d file descriptors, %d were passed (closed)", req.Cmd, r.min, r.max, n)
	}
	if req.Cmd == "import files" && len(req.Files) != len(files) {
		return fmt.Errorf("command \"import files\" describes %d files but passed %d file descriptors (closed)", len(req.Files), len(files))
	}
	return nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// Snapshot is the supervision state at one moment.
type Snapshot struct {
	Status        ctl.Status
	LocalCA       string // path of the exported local CA certificate, if any
	ControlSocket string
}

func (m *Master) snapshot() Snapshot {
	cfg := m.config()
	st := ctl.Status{Master: ctl.MasterStatus{
		PID:           os.Getpid(),
		Version:       version.Version,
		BuildID:       m.buildID,
		Config:        cfg.Path,
		UptimeSeconds: time.Since(m.started).Seconds(),
		Localserve:    cfg.Static.Localserve,
		Stopping:      m.stopping,
	}}
	for _, r := range ipc.WorkerRoles() {
		p := m.procs[r]
		rs := ctl.RoleStatus{
			Role:     r.String(),
			PID:      p.pid,
			UID:      p.user.UID,
			GID:      p.user.GID,
			State:    p.state.String(),
			Restarts: p.restarts,
			LastExit: p.lastExit,
		}
		if r == ipc.RoleKeys && p.state == stateReady && !p.provisioned {
			rs.State = "provisioning"
		}
		if p.state == stateReady {
			rs.UptimeSeconds = time.Since(p.readyAt).Seconds()
		}
		for _, l := range p.listeners {
			rs.Listeners = append(rs.Listeners, ctl.Listener{Kind: l.kind, Addr: l.addr})
		}
		st.Roles = append(st.Roles, rs)
	}
	snap := Snapshot{Status: st, ControlSocket: ctl.SocketPath(cfg.Static.RunDir)}
	if cfg.Static.TLS.LocalCA {
		snap.LocalCA = LocalCAPath(cfg)
	}
	return snap
}

// Status collects the state of every role, with counters from the ready ones.
func (m *Master) Status() ctl.Status {
	var snap Snapshot
	conns := map[string]*ipc.Conn{}
	m.call(func() {
		snap = m.snapshot()
		for r, p := range m.procs {
			if p.state == stateReady && p.conn != nil {
				conns[r.String()] = p.conn
			}
		}
	})
	st := snap.Status
	for i := range st.Roles {
		conn := conns[st.Roles[i].Role]
		if conn == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		counters, err := fetchCounters(ctx, conn)
		cancel()
		if err != nil {
			m.log.Debug("status from role", "role", st.Roles[i].Role, "err", err)
			continue
		}
		st.Roles[i].Counters = counters
	}
	return st
}

func fetchCounters(ctx context.Context, conn *ipc.Conn) ([]ctl.Counter, error) {
	var l []ctl.Counter
	for {
		rep, err := conn.Call(ctx, &ipc.GetStatus{Start: uint16(len(l))})
		if err != nil {
			return nil, err
		}
		sr := rep.Msg.(*ipc.StatusReply)
		for _, c := range sr.Counters {
			l = append(l, ctl.Counter{Name: c.Name, Value: c.Value})
		}
		if len(l) >= int(sr.Total) || len(sr.Counters) == 0 {
			return l, nil
		}
	}
}

// Reload re-reads the configuration. Settings that need a restart of moxd
// are reported and keep their running values; the rest is applied: log
// levels, certificate files (renewals), DKIM keys, and every role's slice.
func (m *Master) Reload() (ctl.ReloadResult, error) {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	// systemd's Type=notify-reload wants the monotonic time with RELOADING.
	m.notify.send(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", monotonicUsec()))
	defer m.notify.send("READY=1")
	var res ctl.ReloadResult
	old := m.config()
	cfg, err := config.Load(old.Path)
	if err != nil {
		return res, fmt.Errorf("configuration not reloaded: %w", err)
	}
	resolver, err := resolverSlice(cfg, os.ReadFile)
	if err != nil {
		return res, fmt.Errorf("configuration not reloaded: %w", err)
	}
	res.NeedRestart = restartOnly(old, cfg)
	// Keep what only a restart can change.
	cfg.Static.Listen = old.Static.Listen
	cfg.Static.DataDir = old.Static.DataDir
	cfg.Static.RunDir = old.Static.RunDir
	cfg.Static.LibexecDir = old.Static.LibexecDir
	cfg.Static.Users = old.Static.Users
	cfg.Static.AdminGroup = old.Static.AdminGroup
	cfg.Users = old.Users
	cfg.Static.Hostname = old.Static.Hostname
	cfg.Static.Localserve = old.Static.Localserve
	m.call(func() { m.dns = resolver })
	if err := m.apply(cfg); err != nil {
		return res, err
	}
	m.log.Info("configuration reloaded", "need_restart", res.NeedRestart)
	return res, nil
}

// apply makes cfg the running configuration: every role gets its new slice
// and a Reload event, keys gets the certificate files and the DKIM keys
// again, log levels are set. The caller holds reloadMu.
func (m *Master) apply(cfg *config.Config) error {
	var keysConn *ipc.Conn
	var conns []*ipc.Conn
	m.call(func() {
		m.cfgMu.Lock()
		m.cfg = cfg
		m.cfgMu.Unlock()
		for _, r := range ipc.WorkerRoles() {
			p := m.procs[r]
			m.updateSlice(p, cfg)
			if p.conn == nil || (p.state != stateReady && p.state != stateHandshaken) {
				continue
			}
			if r == ipc.RoleKeys {
				keysConn = p.conn
			} else {
				conns = append(conns, p.conn)
			}
		}
	})
	if err := m.applyLevels(cfg, true); err != nil {
		return err
	}
	if keysConn != nil {
		if err := keysConn.Notify(&ipc.Reload{}); err != nil {
			return fmt.Errorf("reload keys: %w", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), provisionLimit)
		err := m.provision(ctx, cfg, keysConn)
		cancel()
		if err != nil {
			return fmt.Errorf("reload keys: %w", err)
		}
	}
	for _, c := range conns {
		c.Notify(&ipc.Reload{})
	}
	return nil
}

// restartOnly lists settings that differ and only take effect at start.
func restartOnly(a, b *config.Config) []string {
	var l []string
	if !slices.Equal(a.Static.ListenerList(), b.Static.ListenerList()) {
		l = append(l, "listen")
	}
	if a.Static.DataDir != b.Static.DataDir {
		l = append(l, "data_dir")
	}
	if a.Static.RunDir != b.Static.RunDir {
		l = append(l, "run_dir")
	}
	if a.Static.LibexecDir != b.Static.LibexecDir {
		l = append(l, "libexec_dir")
	}
	if a.Static.Users != b.Static.Users {
		l = append(l, "users")
	}
	if a.Static.Localserve != b.Static.Localserve {
		l = append(l, "localserve")
	}
	if a.Static.Hostname != b.Static.Hostname {
		// Greetings take it at start; certificates follow on reload.
		l = append(l, "hostname")
	}
	if a.Static.AdminGroup != b.Static.AdminGroup {
		l = append(l, "admin_group")
	}
	return l
}

// applyLevels sets master's and every role's log level from the config.
func (m *Master) applyLevels(cfg *config.Config, notify bool) error {
	base, err := parseLevel(cfg.Static.LogLevel)
	if err != nil {
		return err
	}
	levels := map[ipc.Role]slog.Level{ipc.RoleMaster: base}
	for _, r := range ipc.WorkerRoles() {
		levels[r] = base
	}
	for name, l := range cfg.Static.RoleLogLevels {
		r, err := ipc.ParseRole(name)
		if err != nil {
			return err
		}
		lv, err := parseLevel(l)
		if err != nil {
			return err
		}
		levels[r] = lv
	}
	m.setLevels(levels, notify)
	return nil
}

// setLevels records levels and, with notify, sends them to running roles
// (roles starting later get theirs after their handshake).
func (m *Master) setLevels(levels map[ipc.Role]slog.Level, notify bool) {
	m.levelsMu.Lock()
	for r, l := range levels {
		m.levels[r] = l
	}
	m.levelsMu.Unlock()
	if l, ok := levels[ipc.RoleMaster]; ok && m.opts.Level != nil {
		m.opts.Level.Set(l)
	}
	if !notify {
		return
	}
	m.call(func() {
		for r, l := range levels {
			p := m.procs[r]
			if p == nil || p.conn == nil || p.state == stateDown {
				continue
			}
			c := p.conn
			go c.Notify(&ipc.SetLogLevel{Level: int32(l)})
		}
	})
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "trace":
		return slog.LevelDebug - 4, nil
	case "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown log level %q: use trace, debug, info, warn or error", s)
}

func levelName(l slog.Level) string {
	if l < slog.LevelDebug {
		return "trace"
	}
	return strings.ToLower(l.String())
}

// LogLevel implements "moxctl loglevel [LEVEL [ROLE]]".
func (m *Master) LogLevel(args []string) (ctl.LogLevels, error) {
	switch len(args) {
	case 0:
	case 1, 2:
		lv, err := parseLevel(args[0])
		if err != nil {
			return ctl.LogLevels{}, err
		}
		levels := map[ipc.Role]slog.Level{}
		if len(args) == 2 {
			r, err := ipc.ParseRole(args[1])
			if err != nil {
				return ctl.LogLevels{}, fmt.Errorf("%v (roles: master, keys, store, queue, smtp, submission, imap, web)", err)
			}
			levels[r] = lv
		} else {
			levels[ipc.RoleMaster] = lv
			for _, r := range ipc.WorkerRoles() {
				levels[r] = lv
			}
		}
		m.setLevels(levels, true)
	default:
		return ctl.LogLevels{}, fmt.Errorf("usage: loglevel [LEVEL [ROLE]]")
	}
	res := ctl.LogLevels{Levels: map[string]string{}}
	m.levelsMu.Lock()
	defer m.levelsMu.Unlock()
	for r, l := range m.levels {
		res.Levels[r.String()] = levelName(l)
	}
	return res, nil
}
