// Package master is moxd-master: the only process running as root. It reads
// the configuration, creates data directories, binds every listener, and
// starts one unprivileged process per role, supervising them for its whole
// life. It never parses network data or message content and never loads a
// private key (DESIGN.md §1, §2).
//
// Implementation notes:
//   - All supervision state lives on one goroutine (the loop). IPC handlers,
//     the reaper, timers and control commands post closures to it; nothing
//     else touches proc state. Work that may block (IPC calls to workers,
//     config file reads) runs outside the loop and posts its result back.
//   - Master reaps every child itself with wait4(-1) on SIGCHLD (it is a child
//     subreaper on Linux), so exec.Cmd.Wait is never used.
//   - Every start of a role gets a new generation number; events carrying an
//     older generation are ignored, so a late event about a dead process can
//     never affect its successor.
//   - Listener sockets are bound once and kept open: a restarted worker gets
//     the same sockets, and connections queue in the backlog meanwhile.
package master

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"moxd/internal/config"
	"moxd/internal/dns"
	"moxd/internal/ipc"
	"moxd/internal/version"
	"moxd/internal/worker"
)

// Exit codes of moxd-master.
const (
	ExitOK = 0
	// ExitFailed: configuration or startup error; nothing was left running.
	ExitFailed = 1
	// ExitRestart: the worker binaries on disk are from another build (a
	// package upgrade). Master stopped everything; the service manager should
	// start moxd again (EX_TEMPFAIL).
	ExitRestart = 75
)

// Timing of supervision.
const (
	startTimeout   = 30 * time.Second // hello + ready
	depWait        = 10 * time.Second // cold start: how long a role waits for its dependencies before starting anyway
	readyStable    = time.Second      // a role ready this long is restarted at once when it dies
	maxBackoff     = 30 * time.Second
	shutdownGrace  = 10 * time.Second
	killWait       = 5 * time.Second
	provisionLimit = 2 * time.Minute // RSA key generation on a slow machine
)

// Options for Run.
type Options struct {
	ConfigPath string
	Log        *slog.Logger   // master's own log
	Level      *slog.LevelVar // master's level, changed by "moxctl loglevel"
	Verbose    bool           // -v: master logs at debug level whatever the config says
	// WorkerLog receives each line a worker writes to stderr, already escaped.
	WorkerLog func(role, line string)
	// OnReady is called once when every role is ready after the cold start.
	OnReady func(st Snapshot)
	// OnStartFailed is called when the cold start could not complete.
	OnStartFailed func(err error)
}

type procState int

const (
	stateDown procState = iota
	statePending
	stateBackoff
	stateStarting
	stateHandshaken
	stateReady
)

func (s procState) String() string {
	return [...]string{"down", "pending", "backoff", "starting", "handshaken", "ready"}[s]
}

// proc is one role's process slot. Only the loop goroutine touches it, except
// fields documented otherwise.
type proc struct {
	role  ipc.Role
	user  config.User
	bin   string
	state procState

	pid        int
	process    *os.Process
	conn       *ipc.Conn
	gen        uint64
	startedAt  time.Time
	readyAt    time.Time
	restarts   int
	quickFails int
	lastExit   string        // how the previous process ended
	killReason string        // why master killed the current process, if it did
	exited     chan struct{} // closed when the current process has been reaped
	timer      *time.Timer
	listeners  []*boundListener
	// provisioned: keys only; certificates and DKIM keys handed over.
	provisioned bool

	slice atomic.Pointer[[]byte] // config slice; read by IPC handlers
}

// Master is a running moxd-master.
type Master struct {
	opts    Options
	log     *slog.Logger
	asRoot  bool
	buildID string
	started time.Time

	cfgMu sync.Mutex
	cfg   *config.Config
	// dns is how smtp and queue reach DNS, read with the configuration
	// at start and reload (resolverSlice); set and read on the loop.
	dns config.DNSSlice

	libexec   string
	listeners []*boundListener
	procs     map[ipc.Role]*proc
	loop      chan func()
	spawner   *spawner
	sink      *logSink
	gen       uint64

	stopping  bool
	stopOnce  sync.Once
	exitCode  atomic.Int32
	stopped   chan struct{}
	coldStart bool
	// recheckArmed: a cold-start re-check of pending roles is scheduled.
	recheckArmed bool
	coldSince    time.Time
	localCA      []byte

	reloadMu sync.Mutex // one reload or domains.conf change at a time
	auditMu  sync.Mutex // one audit log line at a time

	importSeq  atomic.Uint64 // import job ids
	progressMu sync.Mutex
	progress   map[uint64]func(ipc.Progress) // running imports by job id

	notify *notifier // service manager (sd_notify), nil if none

	violations map[[2]ipc.Role]time.Time // last restart on a violation report, by reporter and peer; loop only

	levelsMu sync.Mutex
	levels   map[ipc.Role]slog.Level
}

// deps are what a role waits for at cold start (DESIGN.md §2).
func deps(r ipc.Role) []ipc.Role {
	switch r {
	case ipc.RoleStore:
		return []ipc.Role{ipc.RoleKeys}
	case ipc.RoleQueue:
		return []ipc.Role{ipc.RoleKeys, ipc.RoleStore}
	case ipc.RoleSMTP, ipc.RoleSubmission, ipc.RoleIMAP, ipc.RoleWeb:
		// imap needs no queue, but network roles start only when the whole
		// back end is up, so the start order is the same on every machine.
		return []ipc.Role{ipc.RoleKeys, ipc.RoleStore, ipc.RoleQueue}
	}
	return nil
}

// binary is the worker executable of a role.
func binary(r ipc.Role) string {
	if r == ipc.RoleSubmission {
		return "moxd-smtp"
	}
	return "moxd-" + r.String()
}

// Run starts moxd and supervises it until ctx ends, a stop command, a signal
// or a fatal condition. It returns master's exit code.
func Run(ctx context.Context, opts Options) (int, error) {
	m := &Master{
		opts:    opts,
		log:     opts.Log,
		asRoot:  os.Geteuid() == 0,
		buildID: version.BuildID(),
		started: time.Now(),
		procs:   map[ipc.Role]*proc{},
		loop:    make(chan func(), 256),
		stopped: make(chan struct{}),
		levels:  map[ipc.Role]slog.Level{},

		violations: map[[2]ipc.Role]time.Time{},
		notify:     newNotifier(),
		progress:   map[uint64]func(ipc.Progress){},
	}
	// Job ids differ across restarts of master, so a job store still holds
	// from a previous master is never taken for a new one.
	m.importSeq.Store(uint64(time.Now().UnixNano()))
	if err := m.setup(); err != nil {
		m.closeListeners()
		return ExitFailed, err
	}
	if err := m.applyLevels(m.cfg, false); err != nil {
		m.closeListeners()
		return ExitFailed, fmt.Errorf("%s: %w", m.cfg.Path, err)
	}
	if opts.Verbose {
		m.setLevels(map[ipc.Role]slog.Level{ipc.RoleMaster: slog.LevelDebug}, false)
	}
	defer m.closeListeners()

	ctl, err := m.listenControl()
	if err != nil {
		return ExitFailed, err
	}
	defer ctl.Close()
	sm, err := m.listenSendmail()
	if err != nil {
		return ExitFailed, err
	}
	defer sm.Close()

	if err := becomeSubreaper(); err != nil {
		m.log.Warn("cannot become child subreaper; orphaned worker children are reaped by init", "err", err)
	}
	m.spawner = newSpawner()
	m.sink = newLogSink(opts.WorkerLog)

	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGCHLD, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	go m.signals(ctx, sigs)

	m.log.Info("starting", "version", version.Version, "build", m.buildID, "config", m.cfg.Path, "root", m.asRoot)
	if !m.asRoot {
		m.log.Warn("localserve as a non-root user: every role runs as a separate process but all under one uid, so roles are not isolated from each other as they are when started as root")
	}
	m.coldStart = true
	m.coldSince = time.Now()
	for _, r := range ipc.WorkerRoles() {
		m.procs[r].state = statePending
	}
	m.startPending()

	for {
		select {
		case f := <-m.loop:
			f()
		case <-m.stopped:
			// Let the last worker log lines through; a descendant that kept a
			// stderr pipe open must not keep master from exiting.
			drained := make(chan struct{})
			go func() { m.sink.wg.Wait(); close(drained) }()
			select {
			case <-drained:
			case <-time.After(2 * time.Second):
			}
			return int(m.exitCode.Load()), nil
		}
	}
}

// post runs f on the loop goroutine.
func (m *Master) post(f func()) {
	select {
	case m.loop <- f:
	case <-m.stopped:
	}
}

// call runs f on the loop and waits for it.
func (m *Master) call(f func()) {
	done := make(chan struct{})
	m.post(func() { f(); close(done) })
	select {
	case <-done:
	case <-m.stopped:
	}
}

func (m *Master) config() *config.Config {
	m.cfgMu.Lock()
	defer m.cfgMu.Unlock()
	return m.cfg
}

// setup loads the config and prepares everything that must succeed before any
// worker starts: users, binaries, directories, listeners.
func (m *Master) setup() error {
	cfg, err := config.Load(m.opts.ConfigPath)
	if err != nil {
		return err
	}
	m.cfg = cfg
	if !m.asRoot && !cfg.Static.Localserve {
		return fmt.Errorf("moxd-master must be started as root so it can bind ports and run each role under its own user (for development, use \"moxd-master localserve\")")
	}
	if m.dns, err = resolverSlice(cfg, os.ReadFile); err != nil {
		return err
	}
	if m.asRoot {
		seen := map[uint32]string{}
		for _, r := range ipc.WorkerRoles() {
			u := cfg.Users[r.String()]
			if other, ok := seen[u.UID]; ok {
				return fmt.Errorf("%s: users.%s and users.%s are the same uid %d: each role needs its own user so a compromised role cannot reach another's data", cfg.Path, other, r, u.UID)
			}
			seen[u.UID] = r.String()
		}
	}

	m.libexec = cfg.Static.LibexecDir
	if m.libexec == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find moxd-master executable (set libexec_dir in %s): %w", cfg.Path, err)
		}
		if exe, err = filepath.EvalSymlinks(exe); err == nil {
			m.libexec = filepath.Dir(exe)
		}
	}
	for _, r := range ipc.WorkerRoles() {
		p := &proc{role: r, user: cfg.Users[r.String()], bin: filepath.Join(m.libexec, binary(r))}
		if err := checkBinary(p.bin, m.asRoot); err != nil {
			return fmt.Errorf("role %s: %w (libexec_dir in %s)", r, err, cfg.Path)
		}
		m.procs[r] = p
		m.updateSlice(p, cfg)
	}

	if err := m.makeDirs(cfg); err != nil {
		return err
	}
	// Certificate files are opened again for keys at every (re)start; check
	// them now so a bad path fails the start instead of keys' provisioning.
	for i, c := range cfg.Static.TLS.Certificates {
		for key, path := range map[string]string{"cert_file": c.CertFile, "key_file": c.KeyFile} {
			f, err := openNoFollow(path)
			if err != nil {
				return fmt.Errorf("%s: tls.certificate[%d].%s: %w", cfg.Path, i, key, err)
			}
			f.Close()
		}
	}

	for _, ls := range cfg.Static.ListenerList() {
		bl, err := bind(ls.Kind, ls.Addr, cfg.Path)
		if err != nil {
			return err
		}
		m.listeners = append(m.listeners, bl)
		m.procs[bl.owner].listeners = append(m.procs[bl.owner].listeners, bl)
	}
	return nil
}

// checkBinary refuses a worker binary that anyone but root could have
// replaced: master runs it with a role's privileges.
func checkBinary(path string, asRoot bool) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("worker binary: %w", err)
	}
	if !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("worker binary %s is not an executable file", path)
	}
	if asRoot {
		st, ok := fi.Sys().(*syscall.Stat_t)
		if ok && st.Uid != 0 {
			return fmt.Errorf("worker binary %s is not owned by root", path)
		}
		if fi.Mode()&0o022 != 0 {
			return fmt.Errorf("worker binary %s is writable by group or others", path)
		}
		if fi.Mode()&0o001 == 0 {
			return fmt.Errorf("worker binary %s is not executable by the role users: chmod 0755 %s", path, path)
		}
		if dir, err := os.Stat(filepath.Dir(path)); err == nil && dir.Mode()&0o022 != 0 {
			return fmt.Errorf("libexec directory %s is writable by group or others: anyone there could replace a worker binary", filepath.Dir(path))
		}
	}
	return nil
}

func (m *Master) makeDirs(cfg *config.Config) error {
	s := cfg.Static
	if err := ensureTopDir(s.DataDir, 0o755); err != nil {
		return fmt.Errorf("data_dir in %s: %w", cfg.Path, err)
	}
	if err := ensureTopDir(s.RunDir, 0o755); err != nil {
		return fmt.Errorf("run_dir in %s: %w", cfg.Path, err)
	}
	if m.asRoot {
		if err := searchable(s.DataDir); err != nil {
			return fmt.Errorf("data_dir in %s: %w", cfg.Path, err)
		}
	}
	for _, r := range []ipc.Role{ipc.RoleKeys, ipc.RoleStore, ipc.RoleQueue} {
		u := cfg.Users[r.String()]
		d := dirSpec{path: roleDir(s.DataDir, r), uid: u.UID, gid: u.GID, mode: 0o700, what: "data dir of role " + r.String()}
		if err := ensureDir(d, m.asRoot); err != nil {
			return err
		}
	}
	return nil
}

func roleDir(dataDir string, r ipc.Role) string {
	return filepath.Join(dataDir, r.String())
}

// updateSlice computes the config slice of a role.
func (m *Master) updateSlice(p *proc, cfg *config.Config) {
	s := config.Slice{Role: p.role.String(), Hostname: cfg.Static.Hostname}
	switch p.role {
	case ipc.RoleKeys:
		s.Dir = roleDir(cfg.Static.DataDir, p.role)
		ks := &config.KeysSlice{}
		if cfg.Static.TLS.LocalCA {
			ks.LocalCANames = []string{cfg.Static.Hostname}
		}
		for _, c := range cfg.Static.TLS.Certificates {
			ks.CertNames = append(ks.CertNames, c.Name())
		}
		s.Keys = ks
	case ipc.RoleStore:
		s.Dir = roleDir(cfg.Static.DataDir, p.role)
		s.Store = storeSlice(cfg)
	case ipc.RoleQueue:
		s.Dir = roleDir(cfg.Static.DataDir, p.role)
		s.Queue = queueSlice(cfg, m.dns)
	case ipc.RoleSMTP, ipc.RoleSubmission:
		s.SMTP = smtpSlice(cfg, m.dns, p.role == ipc.RoleSubmission)
	case ipc.RoleIMAP:
		s.IMAP = &config.IMAPSlice{Localserve: cfg.Static.Localserve, MaxMessageSize: cfg.Static.MaxMessageBytes(), Limits: cfg.Static.LimitsSlice()}
	case ipc.RoleWeb:
		s.Web = &config.NetSlice{}
	}
	b, err := marshalSlice(s)
	if err != nil {
		panic(fmt.Sprintf("marshal config slice: %v", err)) // static types; cannot fail
	}
	p.slice.Store(&b)
}

// storeSlice is the part of the configuration moxd-store needs: domains
// and accounts with their addresses, the message size limit, the disk
// reserve and, in localserve, the account that gets mail for every other
// address.
func storeSlice(cfg *config.Config) *config.StoreSlice {
	ss := &config.StoreSlice{
		Domains:        cfg.Dynamic.AddrDomains(),
		Accounts:       []config.StoreAccount{},
		MaxMessageSize: cfg.Static.MaxMessageBytes(),
		DiskReserve:    cfg.Static.DiskReserveBytes(),
		Postmaster:     cfg.Dynamic.Postmaster(cfg.Static.Hostname),
	}
	for _, a := range cfg.Dynamic.Accounts {
		ss.Accounts = append(ss.Accounts, config.StoreAccount{Name: a.Name, Addresses: a.Addresses, Quota: a.QuotaBytes(), Destinations: a.DestinationMap(),
			IncomingWebhook: a.HasIncomingWebhook(), NoJunkFlags: !a.JunkFlagsOn(), JunkFlags: a.JunkFlags})
	}
	if cfg.Static.Localserve {
		// README "localserve": every address is accepted.
		ss.FallbackAccount = ss.Postmaster
	}
	return ss
}

// queueSlice is what moxd-queue needs: which addresses each account may
// send as, its daily limits, and who gets system mail; the [queue]
// settings, the transports with their passwords, the routes and the DKIM
// selectors to sign with.
func queueSlice(cfg *config.Config, dns config.DNSSlice) *config.QueueSlice {
	qs := &config.QueueSlice{
		Localserve:     cfg.Static.Localserve,
		DNS:            dns,
		MaxMessageSize: cfg.Static.MaxMessageBytes(),
		Postmaster:     cfg.Dynamic.Postmaster(cfg.Static.Hostname),
		Domains:        cfg.Dynamic.AddrDomains(),
		Accounts:       []config.QueueAccount{},
		// Load read the CA file and the password files: no file IO here.
		Delivery:     cfg.Static.QueueDelivery(),
		Transports:   cfg.Static.QueueTransports(),
		Routes:       cfg.Dynamic.QueueRoutes(),
		DomainRoutes: cfg.Dynamic.DomainRoutes(),
		DKIM:         cfg.Dynamic.QueueDKIM(),
	}
	for _, a := range cfg.Dynamic.Accounts {
		qs.Accounts = append(qs.Accounts, config.QueueAccount{
			Name:                         a.Name,
			Addresses:                    a.AllAddresses(),
			MaxMessagesPerDay:            a.MessagesPerDay(),
			MaxFirstTimeRecipientsPerDay: a.FirstTimeRecipientsPerDay(),
			Routes:                       a.QueueRoutes(),
			Webhooks:                     a.QueueWebhooks(),
			UniqueMailFrom:               a.UniqueMailFrom,
		})
	}
	return qs
}

// smtpSlice is what an smtp or submission instance needs.
func smtpSlice(cfg *config.Config, dns config.DNSSlice, submission bool) *config.SMTPSlice {
	s := &cfg.Static
	return &config.SMTPSlice{
		Submission:     submission,
		Localserve:     s.Localserve,
		DNS:            dns,
		MaxMessageSize: s.MaxMessageBytes(),
		MaxRecipients:  s.SMTP.MaxRecipients,
		RequireTLS:     s.SMTP.RequireTLS,
		RejectDMARC:    s.SMTP.RejectDMARC,
		Limits:         s.LimitsSlice(),
	}
}

// resolverSlice says how the roles reach DNS, from the [dns] section: not
// at all (offline), the configured nameservers, or those of resolv_conf,
// which master reads itself (roles read no files). A resolv.conf without
// nameserver lines means 127.0.0.1, as in the C library.
func resolverSlice(cfg *config.Config, readFile func(string) ([]byte, error)) (config.DNSSlice, error) {
	d := cfg.Static.DNS
	switch {
	case d.Offline:
		return config.DNSSlice{Offline: true}, nil
	case len(d.Nameservers) > 0:
		return config.DNSSlice{Servers: slices.Clone(d.Nameservers), TrustAD: d.TrustAD}, nil
	}
	data, err := readFile(d.ResolvConf)
	if err != nil {
		return config.DNSSlice{}, fmt.Errorf("%s: dns.resolv_conf: %w (fix the file, set dns.nameservers, or set dns.offline = true to run without DNS)", cfg.Path, err)
	}
	servers, trustAD, err := dns.ParseResolvConf(data)
	if err != nil {
		return config.DNSSlice{}, fmt.Errorf("%s: dns.resolv_conf %s: %w (fix the file, or set dns.nameservers)", cfg.Path, d.ResolvConf, err)
	}
	if len(servers) == 0 {
		servers = []string{"127.0.0.1:53"}
	}
	return config.DNSSlice{Servers: servers, TrustAD: d.TrustAD || trustAD}, nil
}

func (m *Master) closeListeners() {
	for _, l := range m.listeners {
		l.file.Close()
	}
}

// signals turns signals into loop events.
func (m *Master) signals(ctx context.Context, sigs chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			m.Stop(ExitOK, "context ended")
			return
		case <-m.stopped:
			return
		case sig := <-sigs:
			switch sig {
			case syscall.SIGCHLD:
				m.reap()
			case syscall.SIGHUP:
				go func() {
					if _, err := m.Reload(); err != nil {
						m.log.Error("reload on SIGHUP", "err", err)
					}
				}()
			default:
				m.Stop(ExitOK, "signal "+sig.String())
			}
		}
	}
}

// reap collects every exited child.
func (m *Master) reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
		m.post(func() { m.exited(pid, ws) })
	}
}

// startPending starts, during the cold start, every pending role whose
// dependencies are ready (or that waited depWait for them).
func (m *Master) startPending() {
	if m.stopping {
		return
	}
	for _, r := range ipc.WorkerRoles() {
		p := m.procs[r]
		if p.state != statePending {
			continue
		}
		ok := true
		for _, d := range deps(r) {
			if !m.isReady(m.procs[d]) {
				ok = false
			}
		}
		if !ok && time.Since(m.coldSince) < depWait {
			continue
		}
		if !ok {
			m.log.Warn("starting role although its dependencies are not ready", "role", r.String(), "waited", depWait)
		}
		m.start(p)
	}
	// Re-check after depWait in case a dependency never gets ready: one
	// pending re-check at a time, however often ready events call this.
	if m.coldStart && !m.recheckArmed {
		m.recheckArmed = true
		time.AfterFunc(depWait, func() {
			m.post(func() {
				m.recheckArmed = false
				m.startPending()
			})
		})
	}
}

// isReady: ready, and for keys also provisioned.
func (m *Master) isReady(p *proc) bool {
	return p.state == stateReady && (p.role != ipc.RoleKeys || p.provisioned)
}

func (m *Master) nextGen() uint64 {
	m.gen++
	return m.gen
}

// start execs a role's worker.
func (m *Master) start(p *proc) {
	if m.stopping {
		p.state = stateDown
		return
	}
	self := uint32(os.Getuid())
	if m.asRoot && p.user.UID != self {
		killed, err := killUID(p.user.UID, p.user.GID)
		if err != nil {
			m.log.Error("ending leftover processes", "role", p.role.String(), "uid", p.user.UID, "err", err)
		} else if len(killed) > 0 {
			m.log.Warn("ended leftover processes of role uid before start", "role", p.role.String(), "uid", p.user.UID, "pids", killed)
		}
	}
	if err := m.spawn(p); err != nil {
		m.log.Error("starting role", "role", p.role.String(), "err", err)
		p.lastExit = err.Error()
		m.scheduleRestart(p, true)
	}
}

func (m *Master) spawn(p *proc) error {
	ours, theirs, err := ipc.Socketpair()
	if err != nil {
		return err
	}
	defer theirs.Close()
	rd, wr, err := os.Pipe()
	if err != nil {
		ours.Close()
		return err
	}
	defer wr.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		ours.Close()
		rd.Close()
		return err
	}
	defer devnull.Close()

	var cred *syscall.Credential
	if m.asRoot {
		cred = &syscall.Credential{Uid: p.user.UID, Gid: p.user.GID, Groups: []uint32{}}
	}
	gen := m.nextGen()
	process, err := m.spawner.start(p.bin, []string{p.bin, p.role.String()}, []*os.File{devnull, devnull, wr, theirs}, cred)
	if err != nil {
		ours.Close()
		rd.Close()
		return err
	}
	p.process = process
	p.pid = process.Pid
	p.gen = gen
	p.state = stateStarting
	p.startedAt = time.Now()
	p.readyAt = time.Time{}
	p.provisioned = false
	p.killReason = ""
	p.exited = make(chan struct{})
	m.sink.drain(p.role.String(), rd)

	conn, err := ipc.New(ours, ipc.Options{
		Local:   ipc.RoleMaster,
		Peer:    p.role,
		Handler: m.ctlHandler(p, gen),
		Log:     m.log.With("role", p.role.String()),
	})
	if err != nil {
		process.Kill()
		return err
	}
	p.conn = conn
	go func() {
		<-conn.Done()
		m.post(func() { m.connDown(p, gen, conn.Err()) })
	}()
	p.timer = time.AfterFunc(startTimeout, func() {
		m.post(func() {
			if p.gen == gen && p.state != stateReady && p.state != stateDown {
				m.log.Error("role did not become ready in time; killing it", "role", p.role.String(), "pid", p.pid, "timeout", startTimeout)
				p.killReason = "no ready within the start timeout"
				m.kill(p)
			}
		})
	})
	m.log.Debug("started role", "role", p.role.String(), "pid", p.pid, "uid", p.user.UID, "gid", p.user.GID)
	return nil
}

func (m *Master) kill(p *proc) {
	if p.process != nil && p.state != stateDown {
		p.process.Signal(syscall.SIGKILL)
	}
}

// connDown: the master channel of a role closed. A worker cannot live without
// it, so the process is killed; its exit restarts it.
func (m *Master) connDown(p *proc, gen uint64, err error) {
	if p.gen != gen || p.state == stateDown {
		return
	}
	var pe *ipc.ProtocolError
	if errors.As(err, &pe) {
		m.log.Error("role broke the IPC protocol; restarting it", "role", p.role.String(), "pid", p.pid, "err", err)
		p.killReason = "protocol error: " + pe.Error()
	}
	m.kill(p)
}

// exited handles a reaped child.
func (m *Master) exited(pid int, ws syscall.WaitStatus) {
	var p *proc
	for _, q := range m.procs {
		if q.pid == pid && q.state != stateDown && q.state != stateBackoff && q.state != statePending {
			p = q
		}
	}
	if p == nil {
		m.log.Debug("reaped process", "pid", pid, "status", describeStatus(ws))
		return
	}
	wasReady := p.state == stateReady
	readyFor := time.Duration(0)
	if !p.readyAt.IsZero() {
		readyFor = time.Since(p.readyAt)
	}
	p.state = stateDown
	p.pid = 0
	if p.timer != nil {
		p.timer.Stop()
	}
	if p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
	p.process.Release()
	p.process = nil
	close(p.exited)
	status := describeStatus(ws)
	p.lastExit = status
	if p.killReason != "" {
		p.lastExit += " (" + p.killReason + ")"
	}

	if m.stopping {
		m.log.Info("role stopped", "role", p.role.String(), "pid", pid, "status", status)
		return
	}
	if ws.Exited() && ws.ExitStatus() == worker.ExitBuildMismatch {
		m.Stop(ExitRestart, fmt.Sprintf("%s was built differently from moxd-master (binaries replaced by an upgrade?)", p.bin))
		return
	}
	p.restarts++
	stable := wasReady && readyFor >= readyStable
	m.log.Warn("role exited; restarting", "role", p.role.String(), "pid", pid, "status", status, "ready_for", readyFor.Round(time.Millisecond), "restarts", p.restarts)
	m.scheduleRestart(p, !stable)
}

// scheduleRestart restarts a role at once, or after a growing delay when it
// keeps failing right after start (crash loop).
func (m *Master) scheduleRestart(p *proc, quick bool) {
	if !quick {
		p.quickFails = 0
		m.start(p)
		return
	}
	p.quickFails++
	d := 100 * time.Millisecond << min(p.quickFails-1, 9)
	if d > maxBackoff {
		d = maxBackoff
	}
	if p.quickFails > 1 {
		m.log.Warn("role keeps failing right after start; throttling restarts", "role", p.role.String(), "failures", p.quickFails, "delay", d)
	}
	p.state = stateBackoff
	gen := p.gen
	p.timer = time.AfterFunc(d, func() {
		m.post(func() {
			if p.state == stateBackoff && p.gen == gen {
				m.start(p)
			}
		})
	})
}

func describeStatus(ws syscall.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		return "killed by signal " + ws.Signal().String()
	}
	return fmt.Sprintf("wait status %#x", uint32(ws))
}

// hello: a worker completed its handshake. Connect it to its running peers.
func (m *Master) hello(p *proc, gen uint64) {
	if p.gen != gen || p.state != stateStarting {
		return
	}
	p.state = stateHandshaken
	m.levelsMu.Lock()
	lvl, ok := m.levels[p.role]
	m.levelsMu.Unlock()
	conn := p.conn
	if ok {
		go conn.Notify(&ipc.SetLogLevel{Level: int32(lvl)})
	}
	for _, e := range ipc.Edges() {
		var other ipc.Role
		switch p.role {
		case e[0]:
			other = e[1]
		case e[1]:
			other = e[0]
		default:
			continue
		}
		q := m.procs[other]
		if q.state == stateHandshaken || q.state == stateReady {
			m.connectPeers(p, q)
		}
	}
}

// connectPeers creates a fresh channel between two running roles and hands
// each its end.
func (m *Master) connectPeers(a, b *proc) {
	fa, fb, err := ipc.Socketpair()
	if err != nil {
		m.log.Error("socketpair for peer channel", "a", a.role.String(), "b", b.role.String(), "err", err)
		return
	}
	gen := m.nextGen()
	ca, cb := a.conn, b.conn
	ra, rb := a.role, b.role
	go func() {
		defer fa.Close()
		defer fb.Close()
		if err := ca.Notify(&ipc.PeerUp{Peer: rb, Generation: gen}, fa); err != nil {
			m.log.Debug("hand over peer channel", "to", ra.String(), "peer", rb.String(), "err", err)
		}
		if err := cb.Notify(&ipc.PeerUp{Peer: ra, Generation: gen}, fb); err != nil {
			m.log.Debug("hand over peer channel", "to", rb.String(), "peer", ra.String(), "err", err)
		}
	}()
}

// ready: a worker reports it serves.
func (m *Master) ready(p *proc, gen uint64) {
	if p.gen != gen || (p.state != stateHandshaken && p.state != stateStarting) {
		return
	}
	p.state = stateReady
	p.readyAt = time.Now()
	if p.timer != nil {
		p.timer.Stop()
	}
	m.log.Info("role ready", "role", p.role.String(), "pid", p.pid, "startup", p.readyAt.Sub(p.startedAt).Round(time.Millisecond))
	if p.role == ipc.RoleKeys {
		conn := p.conn
		go m.provisionKeys(p, gen, conn)
		return
	}
	m.afterReady()
}

// afterReady advances the cold start and reports when all roles serve.
func (m *Master) afterReady() {
	if !m.coldStart {
		return
	}
	m.startPending()
	for _, p := range m.procs {
		if !m.isReady(p) {
			return
		}
	}
	m.coldStart = false
	m.log.Info("all roles ready", "startup", time.Since(m.coldSince).Round(time.Millisecond))
	if err := m.notify.send(fmt.Sprintf("READY=1\nMAINPID=%d\nSTATUS=all roles ready", os.Getpid())); err != nil {
		m.log.Error("tell the service manager", "err", err)
	}
	if m.opts.OnReady != nil {
		st := m.snapshot()
		go m.opts.OnReady(st)
	}
}

// Stop stops every role in reverse start order and makes Run return code.
func (m *Master) Stop(code int, reason string) {
	m.stopOnce.Do(func() {
		m.exitCode.Store(int32(code))
		m.post(func() {
			m.stopping = true
			m.log.Info("stopping", "reason", reason)
			m.notify.send("STOPPING=1")
			for _, p := range m.procs {
				if p.timer != nil {
					p.timer.Stop()
				}
				if p.state == stateBackoff || p.state == statePending {
					p.state = stateDown
				}
			}
			go m.stopSequence()
		})
	})
}

func (m *Master) stopSequence() {
	groups := [][]ipc.Role{
		{ipc.RoleSMTP, ipc.RoleSubmission, ipc.RoleIMAP, ipc.RoleWeb},
		{ipc.RoleQueue},
		{ipc.RoleStore},
		{ipc.RoleKeys},
	}
	type target struct {
		role    ipc.Role
		conn    *ipc.Conn
		exited  chan struct{}
		process *os.Process
	}
	for _, g := range groups {
		var ts []target
		m.call(func() {
			for _, r := range g {
				p := m.procs[r]
				if p.state != stateDown && p.process != nil {
					ts = append(ts, target{r, p.conn, p.exited, p.process})
				}
			}
		})
		var wg sync.WaitGroup
		for _, t := range ts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if t.conn != nil {
					ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace+2*time.Second)
					t.conn.Call(ctx, &ipc.Shutdown{GraceMillis: uint32(shutdownGrace / time.Millisecond)})
					cancel()
				}
				select {
				case <-t.exited:
					return
				case <-time.After(killWait):
				}
				m.log.Warn("role did not exit after shutdown; killing it", "role", t.role.String())
				t.process.Signal(syscall.SIGKILL)
				select {
				case <-t.exited:
				case <-time.After(killWait):
					m.log.Error("role not reaped after SIGKILL", "role", t.role.String())
				}
			}()
		}
		wg.Wait()
	}
	m.log.Info("stopped")
	close(m.stopped)
}
