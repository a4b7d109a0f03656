package master

// Account, address and domain administration on the control socket
// (moxctl account|address|domain ...), and the audit log.
//
// Every change to domains.conf goes the same way, one at a time (reloadMu):
// the running configuration is copied and edited (config.Dynamic's edit
// functions check the change), the file on disk must still be the one
// master loaded (a hand edit since then refuses the change and asks for
// "moxctl reload"), config.WriteDynamic replaces it atomically, and the new
// configuration is applied exactly as a reload applies it. Every command
// that changes something appends a line to the audit log, also when it
// failed.

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"moxd/internal/config"
	"moxd/internal/ctl"
	"moxd/internal/ipc"
)

// storeCallTimeout bounds a short administration call to store.
const storeCallTimeout = 30 * time.Second

// AuditLogName is the audit log's file name in data_dir.
const AuditLogName = "audit.log"

// ctlSession is one control connection: its peer and the import it runs.
type ctlSession struct {
	m   *Master
	c   *ctl.Conn
	uid uint32

	wmu sync.Mutex // one response line at a time (progress comes from elsewhere)
	imp *sessionImport
}

// respond writes the answer to a request: data on success, the error
// otherwise, with files.
func (s *ctlSession) respond(data any, err error, files ...*os.File) {
	resp := ctl.Response{OK: err == nil}
	if err != nil {
		resp.Error = err.Error()
	} else if data != nil {
		b, merr := json.Marshal(data)
		if merr != nil {
			resp = ctl.Response{Error: merr.Error()}
			files = nil
		}
		resp.Data = b
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if werr := s.c.WriteResponse(resp, files...); werr != nil {
		s.m.log.Debug("control answer", "err", werr)
	}
}

// handle runs a command of this file or of data.go; false means unknown
// command (files are then closed).
func (s *ctlSession) handle(req ctl.Request, files []*os.File) bool {
	a := req.Args
	usage := func(u string) error { return fmt.Errorf("usage: %s", u) }
	switch req.Cmd {
	case "account add":
		if len(a) < 2 {
			s.respond(nil, usage("account add NAME ADDRESS..."))
			break
		}
		s.respond(s.audited(req, func() (any, error) { return s.m.accountAdd(a[0], a[1:], req.Secret) }))
	case "account rm":
		if len(a) != 1 {
			s.respond(nil, usage("account rm NAME"))
			break
		}
		s.respond(s.audited(req, func() (any, error) { return s.m.accountRemove(a[0]) }))
	case "account list":
		if len(a) != 0 {
			s.respond(nil, usage("account list"))
			break
		}
		s.respond(s.m.accountList(), nil)
	case "account password":
		if len(a) != 1 {
			s.respond(nil, usage("account password NAME"))
			break
		}
		s.respond(s.audited(req, func() (any, error) { return nil, s.m.accountPassword(a[0], req.Secret) }))
	case "address add", "address move":
		if len(a) != 2 {
			s.respond(nil, usage(req.Cmd+" ADDRESS ACCOUNT"))
			break
		}
		s.respond(s.audited(req, func() (any, error) {
			return s.m.changeDynamic(func(d *config.Dynamic) error {
				if req.Cmd == "address move" {
					return d.MoveAddress(a[0], a[1])
				}
				return d.AddAddress(a[0], a[1])
			})
		}))
	case "address rm":
		if len(a) != 1 {
			s.respond(nil, usage("address rm ADDRESS"))
			break
		}
		s.respond(s.audited(req, func() (any, error) {
			return s.m.changeDynamic(func(d *config.Dynamic) error { return d.RemoveAddress(a[0]) })
		}))
	case "domain add":
		if len(a) != 2 {
			s.respond(nil, usage("domain add DOMAIN ACCOUNT"))
			break
		}
		s.respond(s.audited(req, func() (any, error) { return s.m.domainAdd(a[0], a[1], time.Now()) }))
	case "domain rm":
		if len(a) != 1 {
			s.respond(nil, usage("domain rm DOMAIN"))
			break
		}
		s.respond(s.audited(req, func() (any, error) {
			return s.m.changeDynamic(func(d *config.Dynamic) error { return d.RemoveDomain(a[0]) })
		}))
	case "domain list":
		if len(a) != 0 {
			s.respond(nil, usage("domain list"))
			break
		}
		s.respond(domainList(s.m.config()), nil)
	default:
		return s.handleData(req, files)
	}
	closeAll(files)
	return true
}

// audited runs f and writes the audit line for req with its outcome.
func (s *ctlSession) audited(req ctl.Request, f func() (any, error)) (any, error) {
	v, err := f()
	result := "ok"
	if err != nil {
		result = "failed: " + err.Error()
	} else if w := warning(v); w != "" {
		result = "ok, warning: " + w
	}
	s.m.audit(s.uid, req.Cmd, req.Args, result)
	return v, err
}

// warning returns the warning of an answer that has one.
func warning(v any) string {
	switch r := v.(type) {
	case ctl.ChangeResult:
		return r.Warning
	case ctl.DomainAdded:
		return r.Warning
	}
	return ""
}

// audit appends one line to <data_dir>/audit.log (root only, mode 0600)
// and syncs it: time, caller uid, command, arguments, result. Passwords
// never get here: they travel in Request.Secret, not in Args.
func (m *Master) audit(uid uint32, cmd string, args []string, result string) {
	if args == nil {
		args = []string{}
	}
	argsJSON, _ := json.Marshal(args)
	line := fmt.Sprintf("%s uid=%d cmd=%q args=%s result=%q\n", time.Now().UTC().Format(time.RFC3339), uid, cmd, argsJSON, result)
	path := filepath.Join(m.config().Static.DataDir, AuditLogName)
	m.auditMu.Lock()
	defer m.auditMu.Unlock()
	if err := appendSynced(path, []byte(line)); err != nil {
		m.log.Error("audit log", "path", path, "err", err, "cmd", cmd, "args", args, "result", result)
	}
}

// appendSynced appends data to the file at path, created 0600 if missing,
// and fsyncs it. A file not owned by master's uid, not a regular file, or
// readable by others is refused.
func appendSynced(path string, data []byte) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.Mode().IsRegular() || ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s is not a regular file owned by uid %d; move it away", path, os.Geteuid())
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s has mode %04o; fix with \"chmod 0600 %s\"", path, fi.Mode().Perm(), path)
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Sync()
}

// storeConn returns the channel to store when store serves.
func (m *Master) storeConn() (*ipc.Conn, error) {
	var c *ipc.Conn
	m.call(func() {
		if p := m.procs[ipc.RoleStore]; p != nil && p.state == stateReady && p.conn != nil {
			c = p.conn
		}
	})
	if c == nil {
		return nil, errors.New("store unavailable (see moxctl status)")
	}
	return c, nil
}

// keysConn returns the channel to keys when keys serves.
func (m *Master) keysConn() *ipc.Conn {
	var c *ipc.Conn
	m.call(func() {
		if p := m.procs[ipc.RoleKeys]; p != nil && p.state == stateReady && p.conn != nil {
			c = p.conn
		}
	})
	return c
}

// storeError makes an error from store readable for the admin.
func storeError(err error) error {
	var re *ipc.RemoteError
	if errors.As(err, &re) {
		return fmt.Errorf("store: %s", re.Message)
	}
	return err
}

// isNotFound reports whether store answered "not found".
func isNotFound(err error) bool {
	var re *ipc.RemoteError
	return errors.As(err, &re) && re.Code == ipc.CodeNotFound
}

// editDynamic returns the running configuration and an edited copy of its
// domains.conf. It refuses when domains.conf changed on disk since it was
// loaded. The caller holds reloadMu.
func (m *Master) editDynamic(edit func(d *config.Dynamic) error) (*config.Config, *config.Dynamic, error) {
	old := m.config()
	data, err := os.ReadFile(old.DomainsPath)
	if errors.Is(err, os.ErrNotExist) {
		data = nil
	} else if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", old.DomainsPath, err)
	}
	if sha256.Sum256(data) != old.DynamicHash {
		return nil, nil, &config.ErrChanged{Path: old.DomainsPath}
	}
	nd := old.Dynamic.Clone()
	if err := edit(nd); err != nil {
		return nil, nil, err
	}
	return old, nd, nil
}

// writeDynamic writes nd as domains.conf and returns the configuration to
// apply. The caller holds reloadMu.
func (m *Master) writeDynamic(old *config.Config, nd *config.Dynamic) (*config.Config, error) {
	sum, err := config.WriteDynamic(old.DomainsPath, nd, old.DynamicHash, 0)
	if err != nil {
		if sum == ([32]byte{}) {
			return nil, err
		}
		// Only the directory sync failed: the file was replaced.
		m.log.Error("domains.conf written, but not synced", "err", err)
	}
	cfg := *old
	cfg.Dynamic = *nd.Clone()
	if err := cfg.Dynamic.Validate(); err != nil {
		return nil, err // WriteDynamic validated the same; cannot happen
	}
	cfg.DynamicHash = sum
	return &cfg, nil
}

// changeDynamic edits, writes and applies domains.conf.
func (m *Master) changeDynamic(edit func(d *config.Dynamic) error) (ctl.ChangeResult, error) {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	return m.changeDynamicLocked(edit)
}

func (m *Master) changeDynamicLocked(edit func(d *config.Dynamic) error) (ctl.ChangeResult, error) {
	old, nd, err := m.editDynamic(edit)
	if err != nil {
		return ctl.ChangeResult{}, err
	}
	cfg, err := m.writeDynamic(old, nd)
	if err != nil {
		return ctl.ChangeResult{}, err
	}
	return m.applyChange(cfg), nil
}

// applyChange applies a written configuration. domains.conf is changed
// already, so a failure here is a warning, not an error: the roles that did
// not get the change get it at the next reload or restart.
func (m *Master) applyChange(cfg *config.Config) ctl.ChangeResult {
	if err := m.apply(cfg); err != nil {
		m.log.Error("applying changed domains.conf", "err", err)
		return ctl.ChangeResult{Warning: fmt.Sprintf("domains.conf was changed, but applying it failed: %v; run \"moxctl reload\"", err)}
	}
	m.log.Info("domains.conf changed")
	return ctl.ChangeResult{}
}

// accountAdd adds an account with addresses and, if password is not empty,
// sets its password.
func (m *Master) accountAdd(name string, addresses []string, password string) (ctl.ChangeResult, error) {
	if len(password) > ipc.MaxPasswordLen {
		return ctl.ChangeResult{}, fmt.Errorf("password longer than %d bytes", ipc.MaxPasswordLen)
	}
	res, err := m.changeDynamic(func(d *config.Dynamic) error {
		return d.AddAccount(config.Account{Name: name, Addresses: addresses})
	})
	if err != nil || password == "" {
		return res, err
	}
	if err := m.setPassword(name, password); err != nil {
		msg := fmt.Sprintf("account %s was added, but its password was not set: %v; set it with \"moxctl account password %s\"", name, err, name)
		if res.Warning != "" {
			msg = res.Warning + "; " + msg
		}
		res.Warning = msg
	}
	return res, nil
}

// setPassword sends a password to store. A new account may take store a
// moment to set up after the configuration reached it, so "not found" is
// retried for a few seconds.
func (m *Master) setPassword(name, password string) error {
	c, err := m.storeConn()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeCallTimeout)
	defer cancel()
	for {
		_, err := c.Call(ctx, &ipc.AccountPassword{Account: name, Password: password})
		if err == nil {
			return nil
		}
		if !isNotFound(err) {
			return storeError(err)
		}
		select {
		case <-ctx.Done():
			return storeError(err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// accountPassword sets the password of a configured account.
func (m *Master) accountPassword(name, password string) error {
	if password == "" {
		return errors.New("empty password")
	}
	if len(password) > ipc.MaxPasswordLen {
		return fmt.Errorf("password longer than %d bytes", ipc.MaxPasswordLen)
	}
	cfg := m.config()
	i := cfg.Dynamic.FindAccount(name)
	if i < 0 {
		return fmt.Errorf("no account %q", name)
	}
	return m.setPassword(cfg.Dynamic.Accounts[i].Name, password)
}

// accountRemove removes an account in two phases (docs/storage.md "Account
// removal"): store marks the account and closes it, master writes
// domains.conf without it, store deletes it. If domains.conf cannot be
// written, store is told to cancel and the account stays.
func (m *Master) accountRemove(name string) (ctl.ChangeResult, error) {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	var res ctl.ChangeResult
	old, nd, err := m.editDynamic(func(d *config.Dynamic) error { return d.RemoveAccount(name) })
	if err != nil {
		return res, err
	}
	name = old.Dynamic.Accounts[old.Dynamic.FindAccount(name)].Name
	c, err := m.storeConn()
	if err != nil {
		return res, fmt.Errorf("%w; account %s not removed", err, name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeCallTimeout)
	defer cancel()
	if _, err := c.Call(ctx, &ipc.AccountRemove{Account: name, Phase: ipc.RemovePrepare}); err != nil {
		return res, fmt.Errorf("%w; account %s not removed", storeError(err), name)
	}
	cfg, err := m.writeDynamic(old, nd)
	if err != nil {
		if _, cerr := c.Call(ctx, &ipc.AccountRemove{Account: name, Phase: ipc.RemoveCancel}); cerr != nil {
			m.log.Error("cancel account removal; store keeps the account at its next start", "account", name, "err", cerr)
		}
		return res, fmt.Errorf("%w; account %s not removed", err, name)
	}
	// Finish before store gets the new configuration: store finishes a
	// marked account that is no longer configured by itself, and then
	// knows of no removal in progress.
	if _, err := c.Call(ctx, &ipc.AccountRemove{Account: name, Phase: ipc.RemoveFinish}); err != nil {
		res.Warning = fmt.Sprintf("account %s is removed from domains.conf; store did not delete its data yet (%v) and does so when it gets the new configuration or starts", name, storeError(err))
		m.log.Error("finish account removal", "account", name, "err", err)
	}
	if r := m.applyChange(cfg); r.Warning != "" {
		res.Warning = strings.TrimPrefix(res.Warning+"; "+r.Warning, "; ")
	}
	return res, nil
}

// accountList lists accounts with their usage from store.
func (m *Master) accountList() ctl.AccountList {
	cfg := m.config()
	l := ctl.AccountList{Accounts: []ctl.AccountInfo{}}
	c, cerr := m.storeConn()
	for _, a := range cfg.Dynamic.Accounts {
		ai := ctl.AccountInfo{Name: a.Name, Addresses: a.Addresses, Quota: a.QuotaBytes()}
		if cerr != nil {
			ai.UsageError = "store unavailable"
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			rep, err := c.Call(ctx, &ipc.AccountUsage{Account: a.Name})
			cancel()
			if err != nil {
				ai.UsageError = storeError(err).Error()
			} else {
				u := rep.Msg.(*ipc.AccountUsageReply)
				ai.Size, ai.Messages, ai.Mailboxes, ai.HasPassword = u.Size, u.Messages, u.Mailboxes, u.HasPassword
			}
		}
		l.Accounts = append(l.Accounts, ai)
	}
	return l
}

// domainList lists the configured domains.
func domainList(cfg *config.Config) ctl.DomainList {
	l := ctl.DomainList{Domains: []ctl.DomainInfo{}}
	for _, d := range cfg.Dynamic.Domains {
		di := ctl.DomainInfo{Name: d.Name}
		for _, s := range d.DKIM {
			di.Selectors = append(di.Selectors, s.Selector+" ("+s.Algorithm+")")
		}
		for _, a := range cfg.Dynamic.Accounts {
			for _, addr := range a.Addresses {
				if i := strings.LastIndexByte(addr, '@'); i >= 0 && addr[i+1:] == d.Name {
					di.Addresses++
				}
			}
		}
		l.Domains = append(l.Domains, di)
	}
	return l
}

// newSelectors returns the DKIM selectors of a new domain: one ed25519 and
// one rsa2048 key, named after the year, e.g. 2026a-ed and 2026a-rsa.
func newSelectors(now time.Time) []config.DKIMSelector {
	y := now.Year()
	return []config.DKIMSelector{
		{Selector: fmt.Sprintf("%da-ed", y), Algorithm: "ed25519"},
		{Selector: fmt.Sprintf("%da-rsa", y), Algorithm: "rsa2048"},
	}
}

// domainAdd adds a domain with new DKIM selectors and postmaster@domain for
// account, has keys create the DKIM keys, and returns the DNS records to
// publish.
func (m *Master) domainAdd(domain, account string, now time.Time) (ctl.DomainAdded, error) {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	var res ctl.DomainAdded
	sels := newSelectors(now)
	cr, err := m.changeDynamicLocked(func(d *config.Dynamic) error {
		return d.AddDomain(config.Domain{Name: domain, DKIM: sels}, account)
	})
	if err != nil {
		return res, err
	}
	cfg := m.config()
	dom := cfg.Dynamic.Domains[cfg.Dynamic.FindDomain(domain)]
	res.Domain = dom.Name
	if i, _, ok := cfg.Dynamic.AddressOwner("postmaster@" + dom.Name); ok {
		res.Postmaster = cfg.Dynamic.Accounts[i].Name
	}
	var dkim []ctl.DNSRecord
	var warn []string
	if cr.Warning != "" {
		warn = append(warn, cr.Warning)
	}
	kc := m.keysConn()
	for _, sel := range dom.DKIM {
		if kc == nil {
			warn = append(warn, "keys unavailable: the DKIM keys are created when keys is back; their records are then in the log of moxd-master")
			break
		}
		ctx, cancel := context.WithTimeout(context.Background(), provisionLimit)
		rep, err := kc.Call(ctx, &ipc.EnsureDKIM{Domain: dom.Name, Selector: sel.Selector, Algorithm: sel.Algorithm})
		cancel()
		if err != nil {
			warn = append(warn, fmt.Sprintf("DKIM key %s: %v", sel.Selector, storeError(err)))
			continue
		}
		dp := rep.Msg.(*ipc.DKIMPublic)
		dkim = append(dkim, ctl.DNSRecord{Name: sel.Selector + "._domainkey." + asciiDomain(dom.Name) + ".", Type: "TXT", Value: txtValue(dp.Record)})
	}
	res.Records = append(dnsRecords(dom.Name, cfg.Static.HostnameASCII()), dkim...)
	if len(warn) > 0 {
		// The domain was added; the answer still carries what is known.
		res.Warning = strings.Join(warn, "; ")
		m.log.Warn("domain added with problems", "domain", dom.Name, "problems", res.Warning)
	}
	return res, nil
}

func asciiDomain(name string) string {
	if a, err := config.DomainASCII(name); err == nil {
		return a
	}
	return name
}

// dnsRecords returns the MX, SPF and DMARC records of a domain served by
// host (ASCII).
func dnsRecords(domain, host string) []ctl.DNSRecord {
	d := asciiDomain(domain)
	return []ctl.DNSRecord{
		{Name: d + ".", Type: "MX", Value: "10 " + host + "."},
		// RFC 7208 §4.6: only the domain's MX hosts send its mail.
		{Name: d + ".", Type: "TXT", Value: txtValue("v=spf1 mx -all")},
		// RFC 7489 §6.3: reject failing mail, aggregate reports to postmaster.
		{Name: "_dmarc." + d + ".", Type: "TXT", Value: txtValue("v=DMARC1;p=reject;rua=mailto:postmaster@" + d)},
	}
}

// txtValue quotes a TXT record value for a zone file, split into strings
// of at most 255 bytes (RFC 1035 §3.3.14: a character-string has a
// one-byte length).
func txtValue(s string) string {
	var parts []string
	for len(s) > 255 {
		parts = append(parts, s[:255])
		s = s[255:]
	}
	parts = append(parts, s)
	for i, p := range parts {
		p = strings.ReplaceAll(p, `\`, `\\`)
		parts[i] = `"` + strings.ReplaceAll(p, `"`, `\"`) + `"`
	}
	return strings.Join(parts, " ")
}
