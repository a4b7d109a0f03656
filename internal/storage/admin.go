package storage

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"moxd/internal/durable"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"moxd/internal/auth"
	"moxd/internal/ipc"
	"moxd/internal/mailproto/mbox"
	"moxd/internal/storage/account"
)

// Store administration (FamStoreAdmin): what moxctl asks for through
// master. Master has checked who asks; store checks what is asked.

const (
	// adminTimeout bounds a short administration request.
	adminTimeout = time.Minute
	// importIdle drops an import nobody added to or ended for this long.
	importIdle = 30 * time.Minute
	// progressEvery is how often an import reports progress to master.
	progressEvery = time.Second
)

// importJob is an import between ImportBegin and ImportEnd.
type importJob struct {
	mu       sync.Mutex // one request of the job at a time
	id       uint64
	account  string
	mailbox  string
	imp      *account.Import
	added    uint64
	bytes    uint64
	skipped  uint64
	problems []ipc.ImportProblem
	more     uint64
	last     time.Time
}

func (j *importJob) problem(where, reason string) {
	if len(j.problems) < ipc.MaxProblems {
		j.problems = append(j.problems, ipc.ImportProblem{Where: where, Reason: ipc.ClipText(reason, ipc.MaxTextLen)})
	} else {
		j.more++
	}
}

// serveAdmin handles master's FamStoreAdmin requests.
func (sv *service) serveAdmin(ctx context.Context, req *ipc.Request) (ipc.Message, []*os.File, error) {
	switch m := req.Msg.(type) {
	case *ipc.AccountPassword:
		return sv.setPassword(ctx, m)
	case *ipc.AccountRemove:
		var err error
		switch m.Phase {
		case ipc.RemovePrepare:
			err = sv.store.prepareRemove(m.Account)
		case ipc.RemoveFinish:
			err = sv.store.finishRemove(m.Account)
		case ipc.RemoveCancel:
			err = sv.store.cancelRemove(m.Account)
		}
		if err != nil {
			return nil, nil, accountError(err)
		}
		if m.Phase == ipc.RemoveFinish {
			sv.tokens.RevokeAccount(m.Account)
			sv.sessions.removeWhere(func(s *session) bool { return s.account == m.Account })
		}
		return &ipc.Ack{}, nil, nil
	case *ipc.AccountUsage:
		a, err := sv.store.Account(m.Account)
		if err != nil {
			return nil, nil, accountError(err)
		}
		size, n := a.Usage()
		mbs, err := a.Mailboxes()
		if err != nil {
			return nil, nil, err
		}
		_, has, err := a.Credentials()
		if err != nil {
			return nil, nil, err
		}
		return &ipc.AccountUsageReply{Size: size, Messages: n, Quota: sv.store.quota(m.Account), Mailboxes: uint32(len(mbs)), HasPassword: has}, nil, nil
	case *ipc.MailboxList:
		a, err := sv.store.Account(m.Account)
		if err != nil {
			return nil, nil, accountError(err)
		}
		l, err := a.Mailboxes()
		if err != nil {
			return nil, nil, err
		}
		reply := &ipc.MailboxNames{Total: uint32(len(l))}
		for i := int(m.Start); i < len(l) && len(reply.Names) < ipc.MaxMailboxList; i++ {
			reply.Names = append(reply.Names, l[i].Name)
		}
		return reply, nil, nil
	case *ipc.ImportBegin:
		return sv.importBegin(ctx, m)
	case *ipc.ImportMbox:
		defer closeFiles(req.Files)
		return sv.importMbox(ctx, m, req.Files[0])
	case *ipc.ImportFiles:
		defer closeFiles(req.Files)
		return sv.importFiles(ctx, m, req.Files)
	case *ipc.ImportEnd:
		return sv.importEnd(ctx, m)
	case *ipc.Export:
		f := req.Files[0]
		defer f.Close()
		return sv.export(ctx, m, f)
	case *ipc.Backup:
		f := req.Files[0]
		defer f.Close()
		return sv.backup(ctx, m, f)
	case *ipc.LocalDeliver:
		f := req.Files[0]
		defer f.Close()
		return sv.localDeliver(ctx, m, f)
	}
	closeFiles(req.Files)
	return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "unexpected %T", req.Msg)
}

// setPassword hashes outside any account lock and stores the credentials
// in one short transaction; open sessions of the account go on.
func (sv *service) setPassword(ctx context.Context, m *ipc.AccountPassword) (ipc.Message, []*os.File, error) {
	ctx, cancel := withTimeout(ctx, adminTimeout)
	defer cancel()
	if m.Password == "" {
		return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "empty password")
	}
	a, err := sv.store.Account(m.Account)
	if err != nil {
		return nil, nil, accountError(err)
	}
	c, err := sv.hasher.New(ctx, m.Password, auth.DefaultParams())
	if err != nil {
		return nil, nil, fmt.Errorf("hash password: %w", err)
	}
	if err := a.SetCredentials(ctx, c); err != nil {
		return nil, nil, err
	}
	sv.log.Info("password changed", "account", m.Account)
	return &ipc.Ack{}, nil, nil
}

func (sv *service) importBegin(ctx context.Context, m *ipc.ImportBegin) (ipc.Message, []*os.File, error) {
	a, err := sv.store.Account(m.Account)
	if err != nil {
		return nil, nil, accountError(err)
	}
	sv.importsMu.Lock()
	_, dup := sv.imports[m.Job]
	sv.importsMu.Unlock()
	if dup {
		return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "import job %d exists", m.Job)
	}
	imp, err := a.BeginImport(ctx, m.Mailbox)
	if err != nil {
		return nil, nil, accountError(err)
	}
	j := &importJob{id: m.Job, account: m.Account, mailbox: m.Mailbox, imp: imp, last: time.Now()}
	sv.importsMu.Lock()
	sv.imports[m.Job] = j
	sv.importsMu.Unlock()
	sv.log.Info("import started", "account", m.Account, "mailbox", m.Mailbox, "job", m.Job)
	return &ipc.Ack{}, nil, nil
}

func (sv *service) importJob(id uint64) (*importJob, error) {
	sv.importsMu.Lock()
	defer sv.importsMu.Unlock()
	j := sv.imports[id]
	if j == nil {
		return nil, ipc.Errorf(ipc.CodeNotFound, "no import job %d", id)
	}
	return j, nil
}

// importMbox reads a whole mbox file passed by moxctl. The file must be a
// regular file; it is read with pread (never mmapped) and must not change
// while it is read.
func (sv *service) importMbox(ctx context.Context, m *ipc.ImportMbox, f *os.File) (ipc.Message, []*os.File, error) {
	j, err := sv.importJob(m.Job)
	if err != nil {
		return nil, nil, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	before, err := regularFile(f)
	if err != nil {
		return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "mbox: %v", err)
	}
	r := mbox.NewReader(bufio.NewReaderSize(io.NewSectionReader(f, 0, before.Size()), 256<<10), sv.bodies.max())
	nextProgress := time.Now().Add(progressEvery)
	for {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		msg, err := r.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			return nil, nil, ipc.Errorf(ipc.CodeFailed, "read mbox: %v", err)
		}
		received := msg.Date
		if err := j.imp.Add(ctx, msg.Data, mboxFlags(msg.Flags), msg.Keywords, received); err != nil {
			if errors.Is(err, account.ErrQuota) || ctx.Err() != nil {
				return nil, nil, accountError(err)
			}
			j.skipped++
			j.problem(fmt.Sprintf("offset %d", msg.Offset), err.Error())
			continue
		}
		j.added++
		j.bytes += uint64(len(msg.Data))
		if now := time.Now(); now.After(nextProgress) {
			nextProgress = now.Add(progressEvery)
			sv.progress(j)
		}
	}
	for _, p := range r.Problems() {
		j.problem(fmt.Sprintf("offset %d", p.Offset), p.Reason)
		if isSkip(p.Reason) {
			j.skipped++
		}
	}
	after, err := regularFile(f)
	if err != nil || after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) {
		return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "mbox file changed while it was imported; stop the program writing it and import again")
	}
	j.last = time.Now()
	sv.progress(j)
	return &ipc.Ack{}, nil, nil
}

// isSkip tells a skipped message from a damaged-but-imported one in the
// mbox reader's problem reasons.
func isSkip(reason string) bool {
	return strings.HasPrefix(reason, "message skipped")
}

// importFiles adds message files (a maildir import).
func (sv *service) importFiles(ctx context.Context, m *ipc.ImportFiles, files []*os.File) (ipc.Message, []*os.File, error) {
	j, err := sv.importJob(m.Job)
	if err != nil {
		return nil, nil, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for i, info := range m.Files {
		body, err := account.BodyFromFile(ctx, j.imp.TmpDir(), files[i], sv.bodies.max())
		if err != nil {
			j.skipped++
			j.problem(info.Name, err.Error())
			continue
		}
		var received time.Time
		if info.Received != 0 {
			received = time.Unix(info.Received, 0)
		}
		err = j.imp.AddBody(ctx, body, account.Flags(info.Flags), info.Keywords, received)
		body.Remove()
		if err != nil {
			if errors.Is(err, account.ErrQuota) {
				return nil, nil, accountError(err)
			}
			j.skipped++
			j.problem(info.Name, err.Error())
			continue
		}
		j.added++
		j.bytes += uint64(body.Size())
	}
	j.last = time.Now()
	return &ipc.Ack{}, nil, nil
}

func (sv *service) importEnd(ctx context.Context, m *ipc.ImportEnd) (ipc.Message, []*os.File, error) {
	j, err := sv.importJob(m.Job)
	if err != nil {
		return nil, nil, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	sv.importsMu.Lock()
	delete(sv.imports, m.Job)
	sv.importsMu.Unlock()
	res := &ipc.ImportResult{Skipped: j.skipped, Problems: j.problems, MoreProblems: j.more}
	if m.Abort {
		if err := j.imp.Abort(); err != nil {
			return nil, nil, err
		}
		sv.log.Info("import aborted", "account", j.account, "job", j.id)
		return res, nil, nil
	}
	_, n, err := j.imp.Publish(ctx)
	if err != nil {
		j.imp.Abort()
		return nil, nil, accountError(err)
	}
	res.Imported = uint64(n)
	sv.log.Info("import published", "account", j.account, "mailbox", j.mailbox, "messages", n, "skipped", j.skipped)
	return res, nil, nil
}

// progress tells master how far import j has come.
func (sv *service) progress(j *importJob) {
	if sv.notifyMaster != nil {
		sv.notifyMaster(&ipc.Progress{Job: j.id, Messages: j.added, Bytes: j.bytes})
	}
}

// expireImports aborts imports left idle (moxctl died without ending).
func (sv *service) expireImports(now time.Time) {
	sv.importsMu.Lock()
	var l []*importJob
	for id, j := range sv.imports {
		if j.mu.TryLock() {
			if now.Sub(j.last) > importIdle {
				delete(sv.imports, id)
				l = append(l, j)
			}
			j.mu.Unlock()
		}
	}
	sv.importsMu.Unlock()
	for _, j := range l {
		j.imp.Abort()
		sv.log.Info("idle import dropped", "account", j.account, "job", j.id)
	}
}

func mboxFlags(f mbox.Flags) account.Flags {
	var r account.Flags
	if f.Seen {
		r |= account.FlagSeen
	}
	if f.Answered {
		r |= account.FlagAnswered
	}
	if f.Flagged {
		r |= account.FlagFlagged
	}
	if f.Deleted {
		r |= account.FlagDeleted
	}
	if f.Draft {
		r |= account.FlagDraft
	}
	return r
}

func toMboxFlags(f account.Flags) mbox.Flags {
	return mbox.Flags{
		Seen:     f&account.FlagSeen != 0,
		Answered: f&account.FlagAnswered != 0,
		Flagged:  f&account.FlagFlagged != 0,
		Deleted:  f&account.FlagDeleted != 0,
		Draft:    f&account.FlagDraft != 0,
	}
}

// exportWriteTimeout bounds one write into the export pipe: a reader that
// stops reading ends the export instead of holding store.
const exportWriteTimeout = 5 * time.Minute

// export writes one mailbox as an mbox stream into the pipe w. No
// database transaction is open while writing: messages are listed in
// batches and each file opened on its own.
func (sv *service) export(ctx context.Context, m *ipc.Export, w *os.File) (ipc.Message, []*os.File, error) {
	a, err := sv.store.Account(m.Account)
	if err != nil {
		return nil, nil, accountError(err)
	}
	mb, err := a.Mailbox(m.Mailbox)
	if err != nil {
		return nil, nil, accountError(err)
	}
	cw := &countWriter{f: w}
	mw := mbox.NewWriter(cw)
	res := &ipc.ExportResult{}
	from := uint32(1)
	for {
		msgs, err := a.Messages(mb.ID, mb.UIDValidity, from, 256)
		if err != nil {
			return nil, nil, accountError(err)
		}
		if len(msgs) == 0 {
			break
		}
		for _, msg := range msgs {
			if err := ctx.Err(); err != nil {
				return nil, nil, err
			}
			f, _, prefix, err := a.OpenMessage(mb.ID, mb.UIDValidity, msg.UID)
			if errors.Is(err, account.ErrNotFound) {
				continue // expunged meanwhile
			} else if err != nil {
				return nil, nil, err
			}
			err = mw.WriteMessage("", msg.Received, toMboxFlags(msg.Flags), exportKeywords(msg.Keywords), io.MultiReader(bytes.NewReader(prefix), f))
			f.Close()
			if err != nil {
				return nil, nil, ipc.Errorf(ipc.CodeFailed, "write export stream: %v", err)
			}
			res.Messages++
		}
		from = msgs[len(msgs)-1].UID + 1
	}
	if err := mw.Flush(); err != nil {
		return nil, nil, ipc.Errorf(ipc.CodeFailed, "write export stream: %v", err)
	}
	res.Bytes = cw.n
	return res, nil, nil
}

// exportKeywords keeps the keywords an mbox X-Keywords field can carry.
func exportKeywords(l []string) []string {
	var r []string
	for _, k := range l {
		if mbox.IsAtom(k) && !strings.Contains(k, ",") {
			r = append(r, k)
		}
	}
	return r
}

// countWriter writes to a pipe with a deadline per write.
type countWriter struct {
	f *os.File
	n uint64
}

func (c *countWriter) Write(p []byte) (int, error) {
	c.f.SetWriteDeadline(time.Now().Add(exportWriteTimeout))
	n, err := c.f.Write(p)
	c.n += uint64(n)
	return n, err
}

// backup writes every account into m.Path, which must be the directory
// master passed as dir.
func (sv *service) backup(ctx context.Context, m *ipc.Backup, dir *os.File) (ipc.Message, []*os.File, error) {
	fi, err := dir.Stat()
	if err != nil || !fi.IsDir() {
		return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "backup target is not a directory")
	}
	// The backup's top directory is root's and closed to store: reach the
	// part through the fd master opened, not through its path.
	base := fdPath(dir)
	if pfi, err := os.Stat(base); err != nil || !os.SameFile(fi, pfi) {
		return nil, nil, ipc.Errorf(ipc.CodeFailed, "cannot reach the backup directory through its descriptor (%s); on BSD mount fdescfs on /dev/fd", base)
	}
	accountsDir := filepath.Join(base, "accounts")
	if err := os.Mkdir(accountsDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("backup: %w", err)
	}
	res := &ipc.BackupResult{}
	for _, name := range sv.store.Accounts() {
		a, err := sv.store.Account(name)
		if err != nil {
			return nil, nil, fmt.Errorf("backup account %s: %w", name, err)
		}
		if err := a.Backup(ctx, filepath.Join(accountsDir, name)); err != nil {
			return nil, nil, fmt.Errorf("backup account %s: %w", name, err)
		}
		size, n := a.Usage()
		res.Accounts++
		res.Messages += uint64(n)
		res.Bytes += uint64(size)
	}
	if err := durable.SyncDir(accountsDir); err != nil {
		return nil, nil, err
	}
	sv.log.Info("backup written", "path", m.Path, "accounts", res.Accounts, "messages", res.Messages)
	return res, nil, nil
}

// localDeliver delivers a message file moxctl passed to one address.
func (sv *service) localDeliver(ctx context.Context, m *ipc.LocalDeliver, f *os.File) (ipc.Message, []*os.File, error) {
	ctx, cancel := withTimeout(ctx, deliverTimeout)
	defer cancel()
	if _, ok := sv.store.Recipient(m.Address); !ok {
		return nil, nil, ipc.Errorf(ipc.CodeNotFound, "no account has address %q", m.Address)
	}
	if err := sv.diskFull(); err != nil {
		return nil, nil, err
	}
	body, err := account.BodyFromFile(ctx, sv.store.tmpDir, f, sv.bodies.max())
	if err != nil {
		return nil, nil, ipc.Errorf(ipc.CodeBadRequest, "message: %v", err)
	}
	defer body.Remove()
	res := sv.deliver(ctx, &ipc.Deliver{Recipients: []ipc.DeliverRcpt{{Address: m.Address}}}, body)
	r := res.Results[0]
	if r.State != ipc.RcptOK {
		return nil, nil, ipc.Errorf(ipc.CodeFailed, "delivery to %s failed: %s", m.Address, r.Text)
	}
	return &ipc.LocalDelivered{Account: r.Account, Mailbox: r.Mailbox, UID: r.UID}, nil, nil
}

// regularFile checks that f is a regular file and returns its status.
func regularFile(f *os.File) (os.FileInfo, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	return fi, nil
}

// fdPath is a path that names the open directory f itself.
func fdPath(f *os.File) string {
	if runtime.GOOS == "linux" {
		return fmt.Sprintf("/proc/self/fd/%d", f.Fd())
	}
	return fmt.Sprintf("/dev/fd/%d", f.Fd())
}
