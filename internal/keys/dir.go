package keys

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"moxd/internal/durable"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"moxd/internal/datadir"
)

// Dir is the keys directory (DATA/keys): a directory of mode 0700 owned by the
// uid moxd-keys runs as. Files in it are written atomically with mode 0600 and
// read without following symlinks; subdirectories are created with mode 0700.
//
// Layout:
//
//	localca/ca.key, localca/ca.crt       the local CA (created once)
//	localca/leaf.key, localca/leaf.crt   the host certificate it issues
//	dkim/<domain>/<selector>.key         DKIM keys, PKCS #8 PEM
//
// A Dir serialises its Ensure calls, so one Dir may be used from several
// goroutines. Two processes must not share a keys directory.
type Dir struct {
	path string
	uid  int
	now  func() time.Time // tests move the clock

	mu sync.Mutex // held by Ensure* for the whole read-check-write sequence
}

// maxKeyFile bounds every file this package reads: keys, certificates, chains.
const maxKeyFile = 1 << 20

// OpenDir checks path is a usable keys directory and returns it. The directory
// must already exist (the master creates it), must not be a symlink, must have
// mode 0700 exactly and must be owned by the effective uid of this process.
func OpenDir(path string) (*Dir, error) {
	if path == "" {
		return nil, fmt.Errorf("open keys directory: empty path; set the data directory in the config")
	}
	path = filepath.Clean(path)
	uid := os.Geteuid()
	if err := datadir.CheckOwned(path, uid); err != nil {
		return nil, fmt.Errorf("open keys directory: %w", err)
	}
	return &Dir{path: path, uid: uid, now: time.Now}, nil
}

// Path returns the directory's path as given to OpenDir, cleaned.
func (d *Dir) Path() string {
	return d.path
}

// subdir returns d/rel..., creating missing components with mode 0700 and
// checking existing ones as OpenDir checks the top directory. Components come
// from validated names or constants, never from raw input.
func (d *Dir) subdir(rel ...string) (string, error) {
	p := d.path
	for _, c := range rel {
		p = filepath.Join(p, c)
		err := os.Mkdir(p, 0o700)
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("create directory: %w", err)
		}
		if err == nil {
			if err := durable.SyncDirNoFollow(filepath.Dir(p)); err != nil {
				return "", err
			}
		}
		if err := datadir.CheckOwned(p, d.uid); err != nil {
			return "", err
		}
	}
	return p, nil
}

// readFile reads a file of the keys directory without following a symlink in
// its last component. It must be a regular file owned by this uid, not
// readable or writable by group or others, and at most maxKeyFile bytes.
// A missing file yields an error matching fs.ErrNotExist.
func (d *Dir) readFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("%s is a symlink; the keys directory holds only regular files, remove it", path)
		}
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file; remove it", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s has mode %#o, readable or writable by others; run chmod 0600 %s (and consider the key compromised)", path, uint32(fi.Mode().Perm()), path)
	}
	if owner, ok := fileUID(fi); !ok || owner != d.uid {
		return nil, fmt.Errorf("%s is owned by uid %d, want uid %d (the keys process); run chown %d %s", path, owner, d.uid, d.uid, path)
	}
	return readLimited(f, path)
}

// readLimited reads all of r, failing if it holds more than maxKeyFile bytes.
func readLimited(r io.Reader, name string) ([]byte, error) {
	buf, err := io.ReadAll(io.LimitReader(r, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(buf) > maxKeyFile {
		return nil, fmt.Errorf("%s is larger than %d bytes; it is not a key or certificate file", name, maxKeyFile)
	}
	return buf, nil
}

// writeFile replaces path atomically: the data goes to a new temporary file in
// the same directory (O_EXCL|O_NOFOLLOW, mode 0600), is synced, renamed over
// path, and the directory is synced so the rename survives a crash.
func writeFile(path string, data []byte) (rerr error) {
	dir, base := filepath.Split(path)
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := filepath.Join(dir, "."+base+".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if f != nil {
			f.Close()
		}
		if rerr != nil {
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, path, err)
	}
	return durable.SyncDirNoFollow(dir)
}

func fileUID(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}
