package durable

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestCopyAndSync(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, []byte("message"), 0o600); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "dst")
	if err := CopyFile(src, dst, 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(dst); err != nil || string(b) != "message" {
		t.Fatalf("copy %q, %v", b, err)
	}
	// dst exists now: O_EXCL refuses, and nothing is removed.
	if err := CopyFile(src, dst, 0o600); err == nil {
		t.Fatalf("copy over an existing file succeeded")
	}
	if _, err := os.Stat(dst); err != nil {
		t.Fatalf("existing dst removed: %v", err)
	}
	if err := SyncDir(dir); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	os.Symlink(dir, link)
	if err := SyncDirNoFollow(link); err == nil {
		t.Fatalf("SyncDirNoFollow followed a symlink")
	}
	if err := SyncDir(link); err != nil {
		t.Fatalf("SyncDir of a symlink to a directory: %v", err)
	}
	if err := SyncDir(src); err == nil {
		t.Fatalf("SyncDir of a file succeeded")
	}
	if !LinkImpossible(&os.LinkError{Err: syscall.EXDEV}) || LinkImpossible(&os.LinkError{Err: syscall.ENOENT}) {
		t.Fatalf("LinkImpossible wrong")
	}
}

func TestLinkOrCopy(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.WriteFile(src, []byte("m"), 0o600)
	dst := filepath.Join(dir, "dst")
	if err := LinkOrCopy(src, dst, 0o600); err != nil {
		t.Fatal(err)
	}
	a, _ := os.Stat(src)
	b, _ := os.Stat(dst)
	if !os.SameFile(a, b) {
		t.Fatalf("same file system: not linked")
	}
	if err := LinkOrCopy(src, dst, 0o600); !os.IsExist(err) {
		t.Fatalf("existing dst: %v, want exists", err)
	}
}
