package master

// Data commands on the control socket: import, export, local delivery and
// backup. Master relays them to store (FamStoreAdmin) with the fds moxctl
// passed, and asks queue for its part of a backup (FamQueueAdmin); it never
// reads message data itself (DESIGN.md §1): moxctl opens the files as the
// admin, store reads them, and for an export master only creates the pipe
// whose ends it hands to store and moxctl.

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"moxd/internal/ctl"
	"moxd/internal/ipc"
	"moxd/internal/version"
)

// dataTimeout bounds one data call to store (an mbox file of many
// gigabytes, a whole mailbox export, a backup).
const dataTimeout = 12 * time.Hour

// sessionImport is the import a control connection began.
type sessionImport struct {
	job     uint64
	account string
	mailbox string
}

// handleData runs the data commands; false means unknown command.
func (s *ctlSession) handleData(req ctl.Request, files []*os.File) bool {
	a := req.Args
	usage := func(u string) error { return fmt.Errorf("usage: %s", u) }
	switch req.Cmd {
	case "mailbox list":
		if len(a) != 1 {
			s.respond(nil, usage("mailbox list ACCOUNT"))
			break
		}
		s.respond(s.m.mailboxList(a[0]))
	case "import begin":
		if len(a) != 2 {
			s.respond(nil, usage("import begin ACCOUNT MAILBOX"))
			break
		}
		s.respond(nil, s.importBegin(a[0], a[1]))
	case "import mbox":
		if len(a) != 0 {
			closeAll(files)
			s.respond(nil, usage("import mbox (with the file)"))
			break
		}
		s.respond(nil, s.importMbox(files[0]))
	case "import files":
		if len(a) != 0 {
			closeAll(files)
			s.respond(nil, usage("import files (with the files)"))
			break
		}
		s.respond(nil, s.importFiles(req.Files, files))
	case "import end":
		abort := len(a) == 1 && a[0] == "abort"
		if len(a) > 1 || len(a) == 1 && !abort {
			s.respond(nil, usage("import end [abort]"))
			break
		}
		s.respond(s.importEnd(abort))
	case "export":
		if len(a) != 2 {
			s.respond(nil, usage("export ACCOUNT MAILBOX"))
			break
		}
		s.export(req, a[0], a[1])
	case "deliver":
		if len(a) != 1 {
			closeAll(files)
			s.respond(nil, usage("deliver ADDRESS (with the message file)"))
			break
		}
		f := files[0]
		s.respond(s.audited(req, func() (any, error) { return s.m.deliver(a[0], f) }))
	case "backup":
		if len(a) != 1 {
			s.respond(nil, usage("backup DIR"))
			break
		}
		s.respond(s.audited(req, func() (any, error) { return s.m.backup(a[0], time.Now()) }))
	default:
		if s.handleDNS(req, files) {
			return true
		}
		return s.handleQueue(req, files)
	}
	return true
}

// close ends what the connection left: an import not ended is aborted.
func (s *ctlSession) close() {
	if s.imp == nil {
		return
	}
	imp := s.imp
	s.imp = nil
	err := s.m.endImport(imp, true, nil)
	result := "aborted: moxctl closed the connection"
	if err != nil {
		result += "; abort failed: " + err.Error()
	}
	s.m.audit(s.uid, "import", []string{imp.account, imp.mailbox}, result)
}

// mailboxList lists the mailboxes of account, paging through store.
func (m *Master) mailboxList(account string) (ctl.MailboxList, error) {
	l := ctl.MailboxList{Mailboxes: []string{}}
	c, err := m.storeConn()
	if err != nil {
		return l, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeCallTimeout)
	defer cancel()
	for {
		rep, err := c.Call(ctx, &ipc.MailboxList{Account: account, Start: uint32(len(l.Mailboxes))})
		if err != nil {
			return l, storeError(err)
		}
		mn := rep.Msg.(*ipc.MailboxNames)
		l.Mailboxes = append(l.Mailboxes, mn.Names...)
		if len(mn.Names) == 0 || len(l.Mailboxes) >= int(mn.Total) {
			return l, nil
		}
	}
}

func (s *ctlSession) importBegin(account, mailbox string) error {
	if s.imp != nil {
		return fmt.Errorf("an import into %s of account %s is running on this connection; end it first", s.imp.mailbox, s.imp.account)
	}
	c, err := s.m.storeConn()
	if err != nil {
		return err
	}
	job := s.m.importSeq.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), storeCallTimeout)
	defer cancel()
	if _, err := c.Call(ctx, &ipc.ImportBegin{Job: job, Account: account, Mailbox: mailbox}); err != nil {
		return storeError(err)
	}
	s.imp = &sessionImport{job: job, account: account, mailbox: mailbox}
	return nil
}

// importCall sends one data request of the running import, with progress
// lines to moxctl while store works on it. It closes files.
func (s *ctlSession) importCall(msg ipc.Message, files []*os.File) error {
	defer closeAll(files)
	if s.imp == nil {
		return errors.New("no import running on this connection (import begin first)")
	}
	c, err := s.m.storeConn()
	if err != nil {
		return err
	}
	job := s.imp.job
	s.m.progressMu.Lock()
	s.m.progress[job] = func(p ipc.Progress) {
		s.wmu.Lock()
		defer s.wmu.Unlock()
		s.c.WriteResponse(ctl.Response{OK: true, Progress: &ctl.Progress{Messages: p.Messages, Bytes: p.Bytes}})
	}
	s.m.progressMu.Unlock()
	defer func() {
		s.m.progressMu.Lock()
		delete(s.m.progress, job)
		s.m.progressMu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), dataTimeout)
	defer cancel()
	if _, err := c.Call(ctx, msg, files...); err != nil {
		return storeError(err)
	}
	return nil
}

// importProgress passes store's progress report to the connection running
// the import.
func (m *Master) importProgress(p *ipc.Progress) {
	m.progressMu.Lock()
	f := m.progress[p.Job]
	m.progressMu.Unlock()
	if f != nil {
		f(*p)
	}
}

func (s *ctlSession) importMbox(f *os.File) error {
	if err := regularFile(f); err != nil {
		f.Close()
		return err
	}
	job := uint64(0)
	if s.imp != nil {
		job = s.imp.job
	}
	return s.importCall(&ipc.ImportMbox{Job: job}, []*os.File{f})
}

func (s *ctlSession) importFiles(desc []ctl.ImportFile, files []*os.File) error {
	for _, f := range files {
		if err := regularFile(f); err != nil {
			closeAll(files)
			return err
		}
	}
	m := &ipc.ImportFiles{}
	if s.imp != nil {
		m.Job = s.imp.job
	}
	for _, d := range desc {
		m.Files = append(m.Files, ipc.ImportFile{Name: d.Name, Flags: d.Flags, Keywords: d.Keywords, Received: d.Received})
	}
	return s.importCall(m, files)
}

// regularFile refuses an fd that is not a regular file before it goes to
// store (which checks again): a FIFO or device would only make store wait.
func regularFile(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("passed file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("passed file is not a regular file (%s)", fi.Mode().Type())
	}
	return nil
}

func (s *ctlSession) importEnd(abort bool) (ctl.ImportResult, error) {
	var res ctl.ImportResult
	if s.imp == nil {
		return res, errors.New("no import running on this connection (import begin first)")
	}
	imp := s.imp
	s.imp = nil
	err := s.m.endImport(imp, abort, &res)
	var result string
	switch {
	case err != nil:
		result = "failed: " + err.Error()
	case abort:
		result = "aborted"
	default:
		result = fmt.Sprintf("ok: %d imported, %d skipped", res.Imported, res.Skipped)
	}
	s.m.audit(s.uid, "import", []string{imp.account, imp.mailbox}, result)
	return res, err
}

// endImport publishes or aborts an import; res, if not nil, gets store's
// result.
func (m *Master) endImport(imp *sessionImport, abort bool, res *ctl.ImportResult) error {
	c, err := m.storeConn()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), dataTimeout)
	defer cancel()
	rep, err := c.Call(ctx, &ipc.ImportEnd{Job: imp.job, Abort: abort})
	if err != nil {
		return storeError(err)
	}
	if res != nil {
		ir := rep.Msg.(*ipc.ImportResult)
		res.Imported, res.Skipped, res.MoreProblems = ir.Imported, ir.Skipped, ir.MoreProblems
		for _, p := range ir.Problems {
			res.Problems = append(res.Problems, ctl.ImportProblem{Where: p.Where, Reason: p.Reason})
		}
	}
	return nil
}

// export streams one mailbox: the first answer carries the read end of a
// pipe whose write end store gets; once store is done (and master's copy of
// the write end is closed, so moxctl sees the end of the stream), the
// second answer carries the result.
func (s *ctlSession) export(req ctl.Request, account, mailbox string) {
	c, err := s.m.storeConn()
	if err != nil {
		s.respond(nil, err)
		return
	}
	r, w, err := os.Pipe()
	if err != nil {
		s.respond(nil, fmt.Errorf("pipe: %w", err))
		return
	}
	s.respond(struct{}{}, nil, r)
	r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), dataTimeout)
	defer cancel()
	rep, err := c.Call(ctx, &ipc.Export{Account: account, Mailbox: mailbox}, w)
	w.Close()
	var res ctl.ExportResult
	result := "ok"
	if err != nil {
		err = storeError(err)
		result = "failed: " + err.Error()
	} else {
		er := rep.Msg.(*ipc.ExportResult)
		res = ctl.ExportResult{Messages: er.Messages, Bytes: er.Bytes}
		result = fmt.Sprintf("ok: %d messages", res.Messages)
	}
	s.m.audit(s.uid, req.Cmd, req.Args, result)
	s.respond(res, err)
}

// deliver hands a message file to store for the account of address.
func (m *Master) deliver(address string, f *os.File) (ctl.Delivered, error) {
	defer f.Close()
	var res ctl.Delivered
	if err := regularFile(f); err != nil {
		return res, err
	}
	c, err := m.storeConn()
	if err != nil {
		return res, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeCallTimeout)
	defer cancel()
	rep, err := c.Call(ctx, &ipc.LocalDeliver{Address: address}, f)
	if err != nil {
		return res, storeError(err)
	}
	d := rep.Msg.(*ipc.LocalDelivered)
	return ctl.Delivered{Account: d.Account, Mailbox: d.Mailbox, UID: d.UID}, nil
}

// backup writes a backup into dir, which must not exist: dir/queue and
// dir/store (queue's and store's parts, written by them, queue's first),
// dir/keys (a copy of keys' directory), dir/config (moxd.conf and
// domains.conf) and dir/manifest.txt with a SHA-256 of every file
// (DESIGN.md §5, docs/storage.md "Backup").
func (m *Master) backup(dir string, now time.Time) (ctl.BackupResult, error) {
	var res ctl.BackupResult
	if !filepath.IsAbs(dir) {
		return res, fmt.Errorf("backup directory %q is not an absolute path", dir)
	}
	dir = filepath.Clean(dir)
	res.Dir = dir
	qc, err := m.queueConn()
	if err != nil {
		return res, fmt.Errorf("%w; no backup made", err)
	}
	c, err := m.storeConn()
	if err != nil {
		return res, fmt.Errorf("%w; no backup made", err)
	}
	cfg := m.config()
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return res, fmt.Errorf("backup directory %s exists; give a new directory", dir)
		}
		return res, fmt.Errorf("create backup directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return res, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), dataTimeout)
	defer cancel()
	// Queue's part before store's: a message queue delivers into store
	// meanwhile is then in both parts, or in store's; never in neither.
	rep, err := m.backupPart(ctx, qc, dir, ipc.RoleQueue, func(path string) ipc.Message { return &ipc.QueueBackup{Path: path} })
	if err != nil {
		return res, err
	}
	qr := rep.Msg.(*ipc.QueueBackupResult)
	res.QueueMessages, res.QueueRecipients = qr.Messages, qr.Recipients
	rep, err = m.backupPart(ctx, c, dir, ipc.RoleStore, func(path string) ipc.Message { return &ipc.Backup{Path: path} })
	if err != nil {
		return res, err
	}
	br := rep.Msg.(*ipc.BackupResult)
	res.Accounts, res.Messages, res.Bytes = br.Accounts, br.Messages, br.Bytes

	if err := copyTree(roleDir(cfg.Static.DataDir, ipc.RoleKeys), filepath.Join(dir, "keys")); err != nil {
		return res, fmt.Errorf("copy keys' directory: %w", err)
	}
	confDir := filepath.Join(dir, "config")
	if err := os.Mkdir(confDir, 0o700); err != nil {
		return res, err
	}
	for _, p := range []string{cfg.Path, cfg.DomainsPath} {
		if err := copyFile(p, filepath.Join(confDir, filepath.Base(p))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return res, fmt.Errorf("copy %s: %w", p, err)
		}
	}
	n, err := writeManifest(dir, cfg.Static.Hostname, now, res)
	if err != nil {
		return res, err
	}
	res.Files = n
	m.log.Info("backup written", "dir", dir, "accounts", res.Accounts, "messages", res.Messages, "queued", res.QueueMessages, "files", n)
	return res, nil
}

// backupPart creates dir/<role>, owned by the role's user (0700), and asks
// the role on c to write its part into it, passing the directory opened:
// the role cannot reach it by name below root's dir.
func (m *Master) backupPart(ctx context.Context, c *ipc.Conn, dir string, r ipc.Role, msg func(path string) ipc.Message) (*ipc.Reply, error) {
	part := roleDir(dir, r)
	u := m.config().Users[r.String()]
	if err := ensureDir(dirSpec{path: part, uid: u.UID, gid: u.GID, mode: 0o700, what: "backup of " + r.String()}, m.asRoot); err != nil {
		return nil, err
	}
	fd, err := unix.Open(part, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", part, err)
	}
	df := os.NewFile(uintptr(fd), part)
	rep, err := c.Call(ctx, msg(part), df)
	df.Close()
	if err != nil {
		return nil, fmt.Errorf("%s's part of the backup: %w", r, roleError(r, err))
	}
	return rep, nil
}

// queueConn returns the channel to queue when queue serves.
func (m *Master) queueConn() (*ipc.Conn, error) {
	var c *ipc.Conn
	m.call(func() {
		if p := m.procs[ipc.RoleQueue]; p != nil && p.state == stateReady && p.conn != nil {
			c = p.conn
		}
	})
	if c == nil {
		return nil, errors.New("queue unavailable (see moxctl status)")
	}
	return c, nil
}

// roleError makes an error from a role readable for the admin, as
// storeError does for store.
func roleError(r ipc.Role, err error) error {
	var re *ipc.RemoteError
	if errors.As(err, &re) {
		return fmt.Errorf("%s: %s", r, re.Message)
	}
	return err
}

// copyTree copies the regular files and directories below src to dst (new),
// keeping permission bits and owners; symbolic links and other files are
// skipped. Nothing is followed.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(target, 0o700); err != nil {
				return err
			}
			return chownLike(target, info)
		case info.Mode().IsRegular():
			return copyFile(p, target)
		}
		return nil
	})
}

// copyFile copies a regular file (not following a symlink) to a new file,
// with the same permission bits and, as root, owner, and syncs it.
func copyFile(src, dst string) error {
	f, err := openNoFollow(src)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOENT) {
			return fs.ErrNotExist
		}
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, info.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, f); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	if err := os.Chmod(dst, info.Mode().Perm()); err != nil {
		return err
	}
	return chownLike(dst, info)
}

// chownLike gives path the owner of info, when master runs as root.
func chownLike(path string, info fs.FileInfo) error {
	if os.Geteuid() != 0 {
		return nil
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return os.Lchown(path, int(st.Uid), int(st.Gid))
	}
	return nil
}

// writeManifest writes dir/manifest.txt and returns the number of files it
// lists.
func writeManifest(dir, hostname string, now time.Time, res ctl.BackupResult) (int, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("list backup files: %w", err)
	}
	sort.Strings(files)
	var b strings.Builder
	fmt.Fprintf(&b, "# moxd backup manifest\n")
	fmt.Fprintf(&b, "version: %s\nbuild: %s\n", version.Version, version.BuildID())
	fmt.Fprintf(&b, "time: %s\nhostname: %s\n", now.UTC().Format(time.RFC3339), hostname)
	fmt.Fprintf(&b, "queue: %d messages, %d recipients (taken before store's part)\n", res.QueueMessages, res.QueueRecipients)
	fmt.Fprintf(&b, "store: %d accounts, %d messages, %d bytes\n", res.Accounts, res.Messages, res.Bytes)
	fmt.Fprintf(&b, "files: %d, sha256 and path relative to this directory:\n", len(files))
	for _, rel := range files {
		sum, err := fileSHA256(filepath.Join(dir, rel))
		if err != nil {
			return 0, err
		}
		fmt.Fprintf(&b, "%s  %s\n", sum, filepath.ToSlash(rel))
	}
	p := filepath.Join(dir, "manifest.txt")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	bw := bufio.NewWriter(f)
	bw.WriteString(b.String())
	if err := bw.Flush(); err != nil {
		f.Close()
		return 0, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return 0, err
	}
	return len(files), f.Close()
}

func fileSHA256(path string) (string, error) {
	f, err := openNoFollow(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
