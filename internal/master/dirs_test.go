package master

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// owner returns the uid and gid of path (not following a symlink).
func owner(t *testing.T, path string) (uint32, uint32) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return st.Uid, st.Gid
}

func TestEnsureDir(t *testing.T) {
	asRoot := os.Geteuid() == 0
	self := uint32(os.Geteuid())
	selfGID := uint32(os.Getegid())
	tests := []struct {
		name     string
		rootOnly bool
		// setup prepares the file system below dir and returns the path to
		// pass to ensureDir.
		setup    func(t *testing.T, dir string) string
		uid, gid uint32
		mode     uint32
		wantErr  []string // substrings of the error; nil: success
		// parentErr: the error is about the parent, so it names the parent
		// rather than the path.
		parentErr bool
		// wantMode and wantUID/wantGID are checked after success, and after
		// an error to show nothing was changed.
		wantMode         os.FileMode
		wantUID, wantGID uint32
	}{
		{
			name:     "creates with mode",
			setup:    func(t *testing.T, dir string) string { return filepath.Join(dir, "queue") },
			uid:      self,
			gid:      selfGID,
			mode:     0o750,
			wantMode: 0o750,
			wantUID:  self, wantGID: selfGID,
		},
		{
			name:     "creates with owner as root",
			rootOnly: true,
			setup:    func(t *testing.T, dir string) string { return filepath.Join(dir, "store") },
			uid:      60001,
			gid:      60002,
			mode:     0o700,
			wantMode: 0o700,
			wantUID:  60001, wantGID: 60002,
		},
		{
			name:     "trailing slash",
			setup:    func(t *testing.T, dir string) string { return filepath.Join(dir, "keys") + "/" },
			uid:      self,
			gid:      selfGID,
			mode:     0o700,
			wantMode: 0o700,
			wantUID:  self, wantGID: selfGID,
		},
		{
			name: "existing with tighter mode is accepted",
			setup: func(t *testing.T, dir string) string {
				return mkdirMode(t, filepath.Join(dir, "keys"), 0o700)
			},
			uid:      self,
			gid:      selfGID,
			mode:     0o750,
			wantMode: 0o700,
			wantUID:  self, wantGID: selfGID,
		},
		{
			name: "symlink to a directory is refused",
			setup: func(t *testing.T, dir string) string {
				real := mkdirMode(t, filepath.Join(dir, "elsewhere"), 0o700)
				link := filepath.Join(dir, "keys")
				if err := os.Symlink(real, link); err != nil {
					t.Fatal(err)
				}
				return link
			},
			uid:     self,
			gid:     selfGID,
			mode:    0o700,
			wantErr: []string{"symlink", "keys", "replace it with a directory"},
		},
		{
			name: "dangling symlink is refused",
			setup: func(t *testing.T, dir string) string {
				link := filepath.Join(dir, "keys")
				if err := os.Symlink(filepath.Join(dir, "missing"), link); err != nil {
					t.Fatal(err)
				}
				return link
			},
			uid:     self,
			gid:     selfGID,
			mode:    0o700,
			wantErr: []string{"symlink"},
		},
		{
			name: "file is refused",
			setup: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "keys")
				if err := os.WriteFile(p, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			},
			uid:     self,
			gid:     selfGID,
			mode:    0o700,
			wantErr: []string{"not a directory"},
		},
		{
			name: "existing with looser mode",
			setup: func(t *testing.T, dir string) string {
				return mkdirMode(t, filepath.Join(dir, "queue"), 0o755)
			},
			uid:      self,
			gid:      selfGID,
			mode:     0o700,
			wantErr:  []string{"mode 0755", "chmod 0700 "},
			wantMode: 0o755,
			wantUID:  self, wantGID: selfGID,
		},
		{
			name:     "existing with other owner as root",
			rootOnly: true,
			setup: func(t *testing.T, dir string) string {
				p := mkdirMode(t, filepath.Join(dir, "store"), 0o700)
				if err := os.Chown(p, 60001, 60001); err != nil {
					t.Fatal(err)
				}
				return p
			},
			uid:      60003,
			gid:      60004,
			mode:     0o700,
			wantErr:  []string{"owned by 60001:60001", "chown 60003:60004 "},
			wantMode: 0o700,
			wantUID:  60001, wantGID: 60001,
		},
		{
			name:      "missing parent",
			setup:     func(t *testing.T, dir string) string { return filepath.Join(dir, "nonexistent", "keys") },
			uid:       self,
			gid:       selfGID,
			mode:      0o700,
			wantErr:   []string{"open parent", "nonexistent"},
			parentErr: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.rootOnly && !asRoot {
				t.Skip("owner checks need root")
			}
			path := tc.setup(t, t.TempDir())
			d := dirSpec{path: path, uid: tc.uid, gid: tc.gid, mode: tc.mode, what: "data dir of role test"}
			err := ensureDir(d, asRoot)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("ensureDir: %v", err)
				}
			} else {
				if err == nil {
					t.Fatalf("ensureDir succeeded, want error with %q", tc.wantErr)
				}
				msg := err.Error()
				for _, s := range append(tc.wantErr, "data dir of role test") {
					if !strings.Contains(msg, s) {
						t.Errorf("error %q does not contain %q", msg, s)
					}
				}
				if !tc.parentErr && !strings.Contains(msg, filepath.Clean(path)) {
					t.Errorf("error %q does not name the path %s", msg, filepath.Clean(path))
				}
			}
			if tc.wantMode == 0 {
				return
			}
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if !fi.IsDir() {
				t.Fatalf("%s is not a directory after ensureDir", path)
			}
			if got := fi.Mode().Perm(); got != tc.wantMode {
				t.Errorf("mode %04o, want %04o", got, tc.wantMode)
			}
			if uid, gid := owner(t, path); uid != tc.wantUID || gid != tc.wantGID {
				t.Errorf("owner %d:%d, want %d:%d", uid, gid, tc.wantUID, tc.wantGID)
			}
		})
	}
}

// TestEnsureDirSymlinkTargetUntouched checks that a refused symlink did not
// lead to a change of the directory it points to.
func TestEnsureDirSymlinkTargetUntouched(t *testing.T) {
	dir := t.TempDir()
	real := mkdirMode(t, filepath.Join(dir, "elsewhere"), 0o777)
	link := filepath.Join(dir, "keys")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	err := ensureDir(dirSpec{path: link, uid: 60001, gid: 60001, mode: 0o700, what: "test"}, os.Geteuid() == 0)
	if err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Fatalf("ensureDir on symlink: %v, want error naming symlink", err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o777 {
		t.Errorf("target mode changed to %04o", fi.Mode().Perm())
	}
	if uid, _ := owner(t, real); uid != uint32(os.Geteuid()) {
		t.Errorf("target owner changed to %d", uid)
	}
}

func mkdirMode(t *testing.T, p string, mode os.FileMode) string {
	t.Helper()
	if err := os.Mkdir(p, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // not subject to umask
		t.Fatal(err)
	}
	return p
}

func TestEnsureTopDir(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string) string
		wantErr string
	}{
		{
			name:  "creates missing parents",
			setup: func(t *testing.T, dir string) string { return filepath.Join(dir, "var", "db", "moxd") },
		},
		{
			name:  "existing directory",
			setup: func(t *testing.T, dir string) string { return mkdirMode(t, filepath.Join(dir, "moxd"), 0o755) },
		},
		{
			name: "file",
			setup: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "moxd")
				if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
				return p
			},
			wantErr: "is not a directory",
		},
		{
			name: "symlink to directory",
			setup: func(t *testing.T, dir string) string {
				real := mkdirMode(t, filepath.Join(dir, "real"), 0o755)
				p := filepath.Join(dir, "moxd")
				if err := os.Symlink(real, p); err != nil {
					t.Fatal(err)
				}
				return p
			},
			wantErr: "symlinks",
		},
		{
			name: "below a file",
			setup: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "file")
				if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
				return filepath.Join(p, "moxd")
			},
			wantErr: "not a directory",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.setup(t, t.TempDir())
			err := ensureTopDir(path, 0o755)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ensureTopDir(%s): %v, want error containing %q", path, err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("error %q does not name %s", err, path)
				}
				return
			}
			if err != nil {
				t.Fatalf("ensureTopDir(%s): %v", path, err)
			}
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if !fi.IsDir() || fi.Mode().Perm() != 0o755 {
				t.Errorf("%s: mode %v, want directory with 0755", path, fi.Mode())
			}
		})
	}
}
