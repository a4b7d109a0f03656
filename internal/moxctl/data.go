package moxctl

// Data commands: import, export, deliver, backup. moxctl opens the files as
// the invoking admin and passes them to master as fds; it never reads a
// message to import or deliver (store does, from its own copy).

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"moxd/internal/ctl"
	"moxd/internal/ipc"
)

// progressEvery is how often import progress is shown.
const progressEvery = time.Second

func (c *cli) importCmd(args []string) int {
	if len(args) != 4 || args[0] != "mbox" && args[0] != "maildir" {
		return c.usage()
	}
	format, account, mailbox, path := args[0], args[1], args[2], args[3]
	// Open what is imported before asking master for anything.
	var mboxFile *os.File
	var entries []maildirEntry
	var problems []string
	if format == "mbox" {
		f, err := os.Open(path)
		if err != nil {
			return c.failf("%v", err)
		}
		defer f.Close()
		if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
			return c.failf("%s is not a regular file", path)
		}
		mboxFile = f
	} else {
		var err error
		entries, problems, err = scanMaildir(path)
		if err != nil {
			return c.failf("%v", err)
		}
	}

	cl, code := c.dial()
	if cl == nil {
		return code
	}
	defer cl.Close()
	var last time.Time
	cl.OnProgress = func(p ctl.Progress) {
		if time.Since(last) >= progressEvery {
			last = time.Now()
			fmt.Fprintf(c.stderr, "%d messages so far (%s)\n", p.Messages, formatSize(int64(p.Bytes)))
		}
	}
	// Ctrl-C: between files the import is ended with abort; during an mbox
	// file (one long request) the connection is closed, which makes master
	// abort the import as soon as store is done with the file.
	var interrupted atomic.Bool
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-sigs:
			interrupted.Store(true)
			if format == "mbox" {
				cl.Close()
			}
		case <-stop:
		}
	}()

	if _, err := cl.Call(ctl.Request{Cmd: "import begin", Args: []string{account, mailbox}}, nil, nil); err != nil {
		return c.check(err)
	}
	var err error
	if format == "mbox" {
		_, err = cl.Call(ctl.Request{Cmd: "import mbox"}, []*os.File{mboxFile}, nil)
	} else {
		err = c.sendMaildir(cl, entries, &interrupted)
	}
	if interrupted.Load() && err == nil {
		err = errors.New("interrupted")
	}
	if err != nil {
		if format == "maildir" || !interrupted.Load() {
			cl.Call(ctl.Request{Cmd: "import end", Args: []string{"abort"}}, nil, nil)
		}
		return c.failf("import aborted, nothing was imported: %v", err)
	}
	var res ctl.ImportResult
	if _, err := cl.Call(ctl.Request{Cmd: "import end"}, nil, &res); err != nil {
		return c.check(err)
	}
	if c.json {
		c.printJSON(res)
	} else {
		fmt.Fprintf(c.stdout, "imported %d messages into %s of %s, skipped %d\n", res.Imported, mailbox, account, res.Skipped)
		for _, p := range problems {
			fmt.Fprintf(c.stdout, "  %s\n", p)
		}
		for _, p := range res.Problems {
			fmt.Fprintf(c.stdout, "  %s: %s\n", p.Where, p.Reason)
		}
		if res.MoreProblems > 0 {
			fmt.Fprintf(c.stdout, "  and %d more problems\n", res.MoreProblems)
		}
	}
	if res.Skipped > 0 {
		return ExitFailed
	}
	return ExitOK
}

// sendMaildir passes the maildir's files to master in groups of at most
// ipc.MaxImportFiles.
func (c *cli) sendMaildir(cl *ctl.Client, entries []maildirEntry, interrupted *atomic.Bool) error {
	last := time.Now()
	for i := 0; i < len(entries); i += ipc.MaxImportFiles {
		if interrupted.Load() {
			return errors.New("interrupted")
		}
		group := entries[i:min(i+ipc.MaxImportFiles, len(entries))]
		var files []*os.File
		var desc []ctl.ImportFile
		closeAll := func() {
			for _, f := range files {
				f.Close()
			}
		}
		for _, e := range group {
			f, err := os.Open(e.path)
			if err != nil {
				closeAll()
				return err
			}
			files = append(files, f)
			desc = append(desc, e.desc)
		}
		_, err := cl.Call(ctl.Request{Cmd: "import files", Files: desc}, files, nil)
		closeAll()
		if err != nil {
			return err
		}
		if time.Since(last) >= progressEvery {
			last = time.Now()
			fmt.Fprintf(c.stderr, "%d of %d messages so far\n", i+len(group), len(entries))
		}
	}
	return nil
}

func (c *cli) export(args []string) int {
	if (len(args) != 3 && len(args) != 4) || args[0] != "mbox" && args[0] != "maildir" {
		return c.usage()
	}
	format, account, dir := args[0], args[1], args[2]
	if err := newOrEmptyDir(dir); err != nil {
		return c.failf("%v", err)
	}
	cl, code := c.dial()
	if cl == nil {
		return code
	}
	defer cl.Close()
	var mailboxes []string
	if len(args) == 4 {
		mailboxes = []string{args[3]}
	} else {
		var l ctl.MailboxList
		if _, err := cl.Call(ctl.Request{Cmd: "mailbox list", Args: []string{account}}, nil, &l); err != nil {
			return c.check(err)
		}
		mailboxes = l.Mailboxes
	}
	failed := false
	for _, mb := range mailboxes {
		target, err := mailboxPath(dir, mb)
		if err != nil {
			fmt.Fprintf(c.stderr, "moxctl: %v\n", err)
			failed = true
			continue
		}
		files, err := cl.Call(ctl.Request{Cmd: "export", Args: []string{account, mb}}, nil, nil)
		if err != nil {
			return c.check(err)
		}
		if len(files) != 1 {
			return c.failf("export of %s: no stream from master", mb)
		}
		n, problems, werr := writeExport(format, target, files[0])
		files[0].Close()
		var res ctl.ExportResult
		if _, err := cl.Next(&res); err != nil {
			return c.failf("export of %s: %v", mb, err)
		}
		if werr != nil {
			return c.failf("export of %s: %v", mb, werr)
		}
		if format == "maildir" && uint64(n) != res.Messages {
			problems = append(problems, fmt.Sprintf("store sent %d messages, %d written", res.Messages, n))
			failed = true
		}
		fmt.Fprintf(c.stdout, "%s: %d messages\n", mb, res.Messages)
		for _, p := range problems {
			fmt.Fprintf(c.stdout, "  %s\n", p)
		}
	}
	if failed {
		return ExitFailed
	}
	return ExitOK
}

// writeExport writes one mailbox's stream: as target+".mbox", or as the
// maildir target.
func writeExport(format, target string, r io.Reader) (int, []string, error) {
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		return 0, nil, err
	}
	if format == "maildir" {
		return writeMaildir(target, r, maildirHost(), os.Getpid())
	}
	f, err := os.OpenFile(target+".mbox", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, nil, err
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return 0, nil, err
}

// mailboxPath is where mailbox mb goes below dir: its hierarchy ("/") as
// directories. Names that would leave dir are refused.
func mailboxPath(dir, mb string) (string, error) {
	for _, el := range strings.Split(mb, "/") {
		if el == "" || el == "." || el == ".." {
			return "", fmt.Errorf("mailbox %q cannot be written as a file name; export it alone with a different layout", mb)
		}
	}
	return filepath.Join(dir, filepath.FromSlash(mb)), nil
}

// newOrEmptyDir creates dir (0700), or accepts it if it is an empty
// directory.
func newOrEmptyDir(dir string) error {
	err := os.Mkdir(dir, 0o700)
	if err == nil || !errors.Is(err, fs.ErrExist) {
		return err
	}
	entries, rerr := os.ReadDir(dir)
	if rerr != nil {
		return rerr
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s is not empty; export into a new or empty directory", dir)
	}
	return nil
}

func (c *cli) deliver(args []string) int {
	if len(args) != 1 {
		return c.usage()
	}
	f, err := messageFile(c.stdin)
	if err != nil {
		return c.failf("%v", err)
	}
	defer f.Close()
	cl, code := c.dial()
	if cl == nil {
		return code
	}
	defer cl.Close()
	var d ctl.Delivered
	if _, err := cl.Call(ctl.Request{Cmd: "deliver", Args: args}, []*os.File{f}, &d); err != nil {
		return c.check(err)
	}
	if c.json {
		return c.printJSON(d)
	}
	fmt.Fprintf(c.stdout, "delivered to account %s, mailbox %s, uid %d\n", d.Account, d.Mailbox, d.UID)
	return ExitOK
}

// messageFile returns a regular file with the message on stdin: stdin
// itself when it is a regular file, otherwise a copy in an unlinked
// temporary file (in $TMPDIR, mode 0600) that only this process can reach.
func messageFile(stdin *os.File) (*os.File, error) {
	if fi, err := stdin.Stat(); err == nil && fi.Mode().IsRegular() {
		// Store reads from offset 0; a dup keeps stdin itself open.
		fd, err := syscall.Dup(int(stdin.Fd()))
		if err != nil {
			return nil, err
		}
		syscall.CloseOnExec(fd)
		return os.NewFile(uintptr(fd), stdin.Name()), nil
	}
	f, err := os.CreateTemp("", "moxctl-deliver-")
	if err != nil {
		return nil, fmt.Errorf("temporary file for the message: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := io.Copy(f, stdin); err != nil {
		f.Close()
		return nil, fmt.Errorf("reading the message from standard input: %w", err)
	}
	return f, nil
}

func (c *cli) backup(args []string) int {
	if len(args) != 1 {
		return c.usage()
	}
	dir, err := filepath.Abs(args[0])
	if err != nil {
		return c.failf("%v", err)
	}
	cl, code := c.dial()
	if cl == nil {
		return code
	}
	defer cl.Close()
	var res ctl.BackupResult
	if _, err := cl.Call(ctl.Request{Cmd: "backup", Args: []string{dir}}, nil, &res); err != nil {
		return c.check(err)
	}
	if c.json {
		return c.printJSON(res)
	}
	fmt.Fprintf(c.stdout, "backup written to %s: %d accounts, %d messages, %s; queue: %d messages, %d recipients; %d files listed in manifest.txt\n",
		res.Dir, res.Accounts, res.Messages, formatSize(int64(res.Bytes)), res.QueueMessages, res.QueueRecipients, res.Files)
	return ExitOK
}
