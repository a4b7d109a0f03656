package moxctl

// Maildir on the moxctl side: reading a maildir's metadata for an import
// (flags from file names, keywords from dovecot-keywords; the messages
// themselves go to store as fds, unread by moxctl), and turning an exported
// mbox stream into a maildir.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"moxd/internal/ctl"
	"moxd/internal/ipc"
	"moxd/internal/mailproto/mbox"
)

// ipcFlags converts mbox flags to ipc flag bits.
func ipcFlags(f mbox.Flags) uint8 {
	var b uint8
	for _, x := range []struct {
		set bool
		bit uint8
	}{
		{f.Seen, ipc.FlagSeen},
		{f.Answered, ipc.FlagAnswered},
		{f.Flagged, ipc.FlagFlagged},
		{f.Deleted, ipc.FlagDeleted},
		{f.Draft, ipc.FlagDraft},
	} {
		if x.set {
			b |= x.bit
		}
	}
	return b
}

// maildirFile describes a maildir message file for "import files": flags
// from the info part of its name, keywords from its keyword letters looked
// up in the dovecot-keywords map, received time from its modification time
// (the maildir convention). rel is the name relative to the maildir, e.g.
// "cur/1700000000.M1P2.host:2,S". Unknown keyword letters are returned as
// problems.
func maildirFile(rel string, mtime time.Time, keywords map[byte]string) (ctl.ImportFile, []string) {
	f := ctl.ImportFile{Name: rel}
	if !mtime.IsZero() {
		f.Received = mtime.Unix()
	}
	flags, letters, ok := mbox.ParseMaildirInfo(rel)
	if !ok {
		return f, nil
	}
	f.Flags = ipcFlags(flags)
	var problems []string
	for _, l := range letters {
		kw, ok := keywords[l]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: keyword letter %q is not in dovecot-keywords; keyword dropped", rel, l))
			continue
		}
		f.Keywords = append(f.Keywords, kw)
	}
	return f, problems
}

// maildirEntry is a message file found in a maildir.
type maildirEntry struct {
	path string // full path
	desc ctl.ImportFile
}

// scanMaildir lists the message files in dir's cur/ and new/ (in name
// order, which for maildir names is roughly delivery order) with their
// metadata, and the problems found (a bad dovecot-keywords line, unknown
// keyword letters). A dir without cur/ and new/ is an error.
func scanMaildir(dir string) ([]maildirEntry, []string, error) {
	keywords := map[byte]string{}
	var problems []string
	if f, err := os.Open(filepath.Join(dir, "dovecot-keywords")); err == nil {
		var kp []mbox.Problem
		keywords, kp = mbox.ParseDovecotKeywords(f)
		f.Close()
		for _, p := range kp {
			problems = append(problems, "dovecot-keywords: "+p.String())
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, err
	}
	var l []maildirEntry
	found := false
	for _, sub := range []string{"cur", "new"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, nil, err
		}
		found = true
		sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
		for _, e := range entries {
			if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			info, err := e.Info()
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s/%s: %v", sub, e.Name(), err))
				continue
			}
			desc, p := maildirFile(sub+"/"+e.Name(), info.ModTime(), keywords)
			problems = append(problems, p...)
			l = append(l, maildirEntry{filepath.Join(dir, sub, e.Name()), desc})
		}
	}
	if !found {
		return nil, nil, fmt.Errorf("%s is not a maildir: it has no cur/ or new/ directory", dir)
	}
	return l, problems, nil
}

// writeMaildir reads an mbox stream (an export) and writes its messages
// into the new maildir dir: cur/, new/ and tmp/, each message in cur/ with
// its flags and keyword letters in its name and its received time as
// modification time, and the keywords in dovecot-keywords. It returns the
// number of messages and the problems the mbox reader reported.
func writeMaildir(dir string, r io.Reader, host string, pid int) (int, []string, error) {
	for _, sub := range []string{"", "cur", "new", "tmp"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			return 0, nil, err
		}
	}
	var keywords []string        // index = letter - 'a'
	letters := map[string]byte{} // lower-cased keyword -> letter
	var problems []string
	mr := mbox.NewReader(r, 0)
	n := 0
	for {
		m, err := mr.Next()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return n, problems, fmt.Errorf("reading the export stream: %w", err)
		}
		var kl []byte
		for _, kw := range m.Keywords {
			k := strings.ToLower(kw)
			l, ok := letters[k]
			if !ok {
				// Maildir names have the 26 letters a..z for keywords.
				if len(keywords) == 26 {
					problems = append(problems, fmt.Sprintf("message at offset %d: keyword %q dropped: a maildir holds at most 26 keywords", m.Offset, kw))
					continue
				}
				l = byte('a' + len(keywords))
				letters[k] = l
				keywords = append(keywords, kw)
			}
			kl = append(kl, l)
		}
		received := m.Date
		if received.IsZero() {
			received = time.Now()
		}
		name := fmt.Sprintf("%d.M%dP%d.%s%s", received.Unix(), n, pid, host, mbox.MaildirInfo(m.Flags, kl))
		p := filepath.Join(dir, "cur", name)
		data := bytes.ReplaceAll(m.Data, []byte("\r\n"), []byte("\n"))
		if err := os.WriteFile(p, data, 0o600); err != nil {
			return n, problems, err
		}
		os.Chtimes(p, received, received)
		n++
	}
	for _, p := range mr.Problems() {
		problems = append(problems, p.String())
	}
	if len(keywords) > 0 {
		var b strings.Builder
		for i, kw := range keywords {
			fmt.Fprintf(&b, "%d %s\n", i, kw)
		}
		if err := os.WriteFile(filepath.Join(dir, "dovecot-keywords"), []byte(b.String()), 0o600); err != nil {
			return n, problems, err
		}
	}
	return n, problems, nil
}

// maildirHost is the host part of maildir file names: no '/' or ':'.
func maildirHost() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "localhost"
	}
	return strings.NewReplacer("/", `\057`, ":", `\072`).Replace(h)
}
