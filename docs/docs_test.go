// Package docs holds moxd's man pages and design notes; its test keeps them
// correct: the man pages pass mandoc's linter and the IPC allow-matrix
// document matches the table in the code.
package docs

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"moxd/internal/ipc"
)

var update = flag.Bool("update", false, "rewrite generated documents")

// TestManPages runs mandoc -T lint on every man page. CI installs mandoc;
// elsewhere a missing mandoc skips the test.
func TestManPages(t *testing.T) {
	if _, err := exec.LookPath("mandoc"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("mandoc not installed; .ci/run installs it")
		}
		t.Skip("mandoc not installed (apt-get install mandoc)")
	}
	pages, _ := filepath.Glob("*.[0-9]")
	if len(pages) < 3 {
		t.Fatalf("found man pages %v, want moxd-master.8, moxctl.8, moxd.conf.5", pages)
	}
	for _, p := range pages {
		out, err := exec.Command("mandoc", "-T", "lint", "-W", "warning", p).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("mandoc -T lint %s: %v\n%s", p, err, out)
		}
	}
}

// TestIPCMatrix checks docs/ipc-matrix.md against the allow-matrix in
// internal/ipc. Regenerate with: go test ./docs -run TestIPCMatrix -update
func TestIPCMatrix(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("# IPC allow-matrix\n\n")
	b.WriteString("Generated from `internal/ipc/matrix.go` by `go test ./docs -run TestIPCMatrix -update`; do not edit.\n")
	b.WriteString("Each row: the role that sends requests and events of a message family, the role that answers,\n")
	b.WriteString("and whether file descriptors may travel with requests or replies. Anything not listed is a\n")
	b.WriteString("protocol error: the receiver closes the channel and master restarts the sender.\n\n")
	if err := ipc.WriteMatrixDoc(&b); err != nil {
		t.Fatal(err)
	}
	const path = "ipc-matrix.md"
	if *update {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	have, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(have, b.Bytes()) {
		t.Fatalf("%s is out of date with internal/ipc/matrix.go: run go test ./docs -run TestIPCMatrix -update", path)
	}
	for _, r := range ipc.Matrix() {
		if !strings.Contains(string(have), r.From.String()) || !strings.Contains(string(have), r.Family.String()) {
			t.Errorf("matrix doc lacks rule %v", r)
		}
	}
}
