package keys

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// newTestDir returns a fresh keys directory with the right mode.
func newTestDir(t *testing.T) *Dir {
	t.Helper()
	p := filepath.Join(t.TempDir(), "keys")
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	d, err := OpenDir(p)
	if err != nil {
		t.Fatalf("OpenDir: %v", err)
	}
	return d
}

func TestOpenDir(t *testing.T) {
	base := t.TempDir()
	mk := func(name string, mode os.FileMode) string {
		p := filepath.Join(base, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := mk("good", 0o700)
	open := mk("open", 0o755)
	private := mk("group", 0o750)
	narrow := mk("narrow", 0o500)
	sticky := mk("sticky", 0o700|os.ModeSticky)
	link := filepath.Join(base, "link")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o700); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		path    string
		wantErr string
	}{
		{"good", good, ""},
		{"good with trailing slash", good + "/", ""},
		{"mode 0755", open, "chmod 0700"},
		{"mode 0750", private, "chmod 0700"},
		{"mode 0500", narrow, "chmod 0700"},
		{"sticky", sticky, "chmod 0700"},
		{"symlink to a good dir", link, "is a symlink"},
		{"regular file", file, "not a directory"},
		{"missing", filepath.Join(base, "missing"), "does not exist"},
		{"empty", "", "empty path"},
	}
	if os.Geteuid() == 0 {
		// Only root can give a directory away to test the owner check.
		other := mk("other", 0o700)
		if err := os.Chown(other, 4242, 4242); err != nil {
			t.Fatal(err)
		}
		tests = append(tests, struct {
			name    string
			path    string
			wantErr string
		}{"owned by another uid", other, "chown"})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := OpenDir(tc.path)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("OpenDir: %v", err)
				}
				if d.Path() != filepath.Clean(tc.path) {
					t.Errorf("Path() = %q, want %q", d.Path(), filepath.Clean(tc.path))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("OpenDir(%q) err = %v, want one containing %q", tc.path, err, tc.wantErr)
			}
		})
	}
}

func TestWriteReadFile(t *testing.T) {
	d := newTestDir(t)
	p := filepath.Join(d.Path(), "f")
	for _, content := range []string{"first", "second, longer content"} {
		if err := writeFile(p, []byte(content)); err != nil {
			t.Fatalf("writeFile: %v", err)
		}
		got, err := d.readFile(p)
		if err != nil || string(got) != content {
			t.Fatalf("readFile = %q, %v; want %q", got, err, content)
		}
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != 0o600 {
			t.Errorf("mode = %v, want -rw-------", fi.Mode())
		}
	}
	entries, err := os.ReadDir(d.Path())
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want only f (no temporary files left)", names)
	}

	if _, err := d.readFile(filepath.Join(d.Path(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("readFile(missing) err = %v, want fs.ErrNotExist", err)
	}

	// Files the keys process must not trust.
	link := filepath.Join(d.Path(), "link")
	if err := os.Symlink(p, link); err != nil {
		t.Fatal(err)
	}
	readable := filepath.Join(d.Path(), "readable")
	if err := os.WriteFile(readable, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(readable, 0o640); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(d.Path(), "big")
	if err := os.WriteFile(big, make([]byte, maxKeyFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(d.Path(), "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path, wantErr string
	}{
		{link, "symlink"},
		{readable, "chmod 0600"},
		{big, "larger than"},
		{sub, "not a regular file"},
	}
	for _, tc := range tests {
		if _, err := d.readFile(tc.path); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("readFile(%s) err = %v, want one containing %q", filepath.Base(tc.path), err, tc.wantErr)
		}
	}

	// writeFile replaces a symlink instead of writing through it.
	target := filepath.Join(d.Path(), "target")
	if err := os.WriteFile(target, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	link2 := filepath.Join(d.Path(), "link2")
	if err := os.Symlink(target, link2); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(link2, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("write through symlink changed its target to %q", b)
	}
}

func TestSubdirRefusesSymlink(t *testing.T) {
	d := newTestDir(t)
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(d.Path(), "dkim")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.EnsureDKIM("example.org", "s1", DKIMEd25519); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Fatalf("EnsureDKIM through a symlinked dkim directory: err = %v, want symlink refusal", err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("files created outside the keys directory: %d", len(entries))
	}
}
