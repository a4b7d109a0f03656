package master

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"moxd/internal/config"
	"moxd/internal/ipc"
)

func marshalSlice(s config.Slice) ([]byte, error) {
	return json.Marshal(s)
}

// ctlHandler serves the requests a worker sends master on its channel.
func (m *Master) ctlHandler(p *proc, gen uint64) ipc.Handler {
	return ipc.HandlerFunc(func(ctx context.Context, req *ipc.Request) (ipc.Message, []*os.File, error) {
		for _, f := range req.Files {
			f.Close() // workers never send master fds (the matrix forbids it)
		}
		switch msg := req.Msg.(type) {
		case *ipc.Hello:
			if msg.Role != p.role {
				m.post(func() {
					if p.gen == gen {
						m.log.Error("worker claims the wrong role; killing it", "role", p.role.String(), "claimed", msg.Role.String())
						m.kill(p)
					}
				})
				return nil, nil, ipc.Errorf(ipc.CodeDenied, "this channel belongs to role %s", p.role)
			}
			if msg.BuildID != m.buildID {
				err := fmt.Sprintf("%s has build %s, moxd-master has build %s", p.bin, msg.BuildID, m.buildID)
				m.log.Error("worker build differs from master: stopping everything so the service manager restarts moxd with the new binaries", "role", p.role.String(), "worker_build", msg.BuildID, "master_build", m.buildID)
				m.Stop(ExitRestart, err)
				return nil, nil, ipc.Errorf(ipc.CodeBuildMismatch, "%s", err)
			}
			m.post(func() { m.hello(p, gen) })
			return &ipc.HelloReply{Generation: gen, ConfigSize: uint32(len(*p.slice.Load()))}, nil, nil

		case *ipc.GetConfig:
			b := *p.slice.Load()
			off := int(msg.Offset)
			if off > len(b) {
				return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "config offset %d beyond size %d", off, len(b))
			}
			end := min(off+ipc.MaxConfigChunk, len(b))
			return &ipc.ConfigChunk{Total: uint32(len(b)), Data: b[off:end]}, nil, nil

		case *ipc.GetListeners:
			start := int(msg.Start)
			if start > len(p.listeners) {
				return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "listener index %d beyond %d", start, len(p.listeners))
			}
			end := min(start+ipc.MaxFDs, len(p.listeners))
			batch := &ipc.ListenerBatch{Total: uint16(len(p.listeners))}
			var files []*os.File
			for _, l := range p.listeners[start:end] {
				f, err := dupFile(l.file)
				if err != nil {
					for _, g := range files {
						g.Close()
					}
					return nil, nil, fmt.Errorf("dup listener %s: %w", l.addr, err)
				}
				files = append(files, f)
				batch.Listeners = append(batch.Listeners, ipc.ListenerInfo{Kind: l.kind, Addr: l.addr})
			}
			return batch, files, nil

		case *ipc.Ready:
			m.post(func() { m.ready(p, gen) })
			return nil, nil, nil

		case *ipc.Progress:
			if p.role == ipc.RoleStore {
				m.importProgress(msg)
			}
			return nil, nil, nil

		case *ipc.Violation:
			m.post(func() { m.violation(p, gen, msg.Peer, msg.Reason) })
			return nil, nil, nil
		}
		return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "unexpected %s", ipc.MessageName(req.Msg.Type()))
	})
}

// violationWindow limits restarts on violation reports; see violation.
const violationWindow = time.Minute

// violation: a worker reports that a peer broke the IPC protocol. The peer
// is restarted; its fresh process gets fresh channels.
func (m *Master) violation(reporter *proc, gen uint64, peer ipc.Role, reason string) {
	if reporter.gen != gen {
		return
	}
	q, ok := m.procs[peer]
	if !ok {
		m.log.Error("protocol violation report names no role", "reporter", reporter.role.String(), "peer", peer.String())
		return
	}
	if q.state == stateDown || time.Since(q.startedAt) < readyStable {
		return // already restarting
	}
	// A compromised worker must not be able to keep another role (say,
	// store, and with it every IMAP session) restarting: at most one
	// restart per reporter and peer per violationWindow. The reporter has
	// closed its channel to the peer anyway.
	key := [2]ipc.Role{reporter.role, peer}
	if last, ok := m.violations[key]; ok && time.Since(last) < violationWindow {
		m.log.Warn("repeated protocol violation report ignored", "role", peer.String(), "reported_by", reporter.role.String(), "reason", reason, "window", violationWindow)
		return
	}
	m.violations[key] = time.Now()
	m.log.Error("peer broke the IPC protocol; restarting it", "role", peer.String(), "reported_by", reporter.role.String(), "reason", reason)
	q.killReason = "protocol violation reported by " + reporter.role.String()
	m.kill(q)
}

// provisionKeys hands keys the configured certificate files and makes sure
// the configured DKIM keys exist; only then does keys count as ready for the
// roles depending on it.
func (m *Master) provisionKeys(p *proc, gen uint64, conn *ipc.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), provisionLimit)
	defer cancel()
	cfg := m.config()
	err := m.provision(ctx, cfg, conn)
	m.post(func() {
		if p.gen != gen || p.state != stateReady {
			return
		}
		if err != nil {
			m.log.Error("providing keys with certificates and DKIM keys; restarting keys", "err", err)
			p.killReason = "provisioning: " + err.Error()
			m.kill(p)
			return
		}
		p.provisioned = true
		// TLS roles fetch the complete certificate set again.
		for _, r := range []ipc.Role{ipc.RoleSMTP, ipc.RoleSubmission, ipc.RoleIMAP, ipc.RoleWeb} {
			if q := m.procs[r]; q.conn != nil && (q.state == stateReady || q.state == stateHandshaken) {
				c := q.conn
				go c.Notify(&ipc.Reload{})
			}
		}
		m.afterReady()
	})
}

func (m *Master) provision(ctx context.Context, cfg *config.Config, conn *ipc.Conn) error {
	var names []string
	for _, c := range cfg.Static.TLS.Certificates {
		cert, err := openNoFollow(c.CertFile)
		if err != nil {
			return fmt.Errorf("tls.certificate cert_file in %s: %w", cfg.Path, err)
		}
		key, err := openNoFollow(c.KeyFile)
		if err != nil {
			cert.Close()
			return fmt.Errorf("tls.certificate key_file in %s: %w", cfg.Path, err)
		}
		rep, err := conn.Call(ctx, &ipc.LoadCertPair{Name: c.Name()}, cert, key)
		cert.Close()
		key.Close()
		if err != nil {
			return fmt.Errorf("certificate %s (%s, %s): %w", c.Name(), c.CertFile, c.KeyFile, err)
		}
		cl := rep.Msg.(*ipc.CertLoaded)
		m.log.Info("certificate loaded", "name", c.Name(), "names", cl.Names, "not_after", time.Unix(cl.NotAfter, 0).UTC())
		names = append(names, c.Name())
	}
	if _, err := conn.Call(ctx, &ipc.CommitCerts{Names: names}); err != nil {
		return fmt.Errorf("commit certificates: %w", err)
	}
	for _, d := range cfg.Dynamic.Domains {
		for _, sel := range d.DKIM {
			rep, err := conn.Call(ctx, &ipc.EnsureDKIM{Domain: d.Name, Selector: sel.Selector, Algorithm: sel.Algorithm})
			if err != nil {
				return fmt.Errorf("DKIM key %s._domainkey.%s (%s): %w", sel.Selector, d.Name, cfg.DomainsPath, err)
			}
			dp := rep.Msg.(*ipc.DKIMPublic)
			if dp.Created {
				m.log.Info("DKIM key generated; publish this TXT record", "name", dp.Selector+"._domainkey."+dp.Domain, "record", dp.Record)
			}
		}
	}
	if cfg.Static.TLS.LocalCA {
		rep, err := conn.Call(ctx, &ipc.GetLocalCA{})
		if err != nil {
			return fmt.Errorf("local CA: %w", err)
		}
		ca := rep.Msg.(*ipc.LocalCA)
		if err := writeCAFile(LocalCAPath(cfg), ca.CertDER); err != nil {
			return err
		}
	}
	return nil
}

// LocalCAPath is where master publishes the local CA certificate (public)
// when tls.local_ca is set, for clients to trust.
func LocalCAPath(cfg *config.Config) string {
	return filepath.Join(cfg.Static.DataDir, "localca.pem")
}

func writeCAFile(path string, der []byte) error {
	pemData := encodePEM("CERTIFICATE", der)
	if old, err := os.ReadFile(path); err == nil && string(old) == string(pemData) {
		return nil
	}
	tmp := path + ".tmp"
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		return fmt.Errorf("write local CA certificate: %w", err)
	}
	if _, err := f.Write(pemData); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// openNoFollow opens a file master passes to keys; a symlink is refused so a
// path under an untrusted directory cannot be redirected to another file.
func openNoFollow(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		if err == unix.ELOOP {
			return nil, fmt.Errorf("%s is a symlink; give the path of the file itself", path)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	return f, nil
}
