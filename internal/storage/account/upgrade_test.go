package account

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestUpgrade opens the data written by earlier versions (testdata/upgrade)
// with the current code: every account opens, holds its messages, and
// verifies clean.
func TestUpgrade(t *testing.T) {
	versions, err := filepath.Glob("../../../testdata/upgrade/v*")
	if err != nil || len(versions) == 0 {
		t.Fatalf("no test data under testdata/upgrade: %v", err)
	}
	for _, v := range versions {
		t.Run(filepath.Base(v), func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(v, "store")); os.IsNotExist(err) {
				t.Skip("no store part: the store schema did not change in this version")
			}
			// Work on a copy: opening may upgrade the database.
			dst := filepath.Join(testDir(t), "data")
			if out, err := exec.Command("cp", "-a", v, dst).CombinedOutput(); err != nil {
				t.Fatalf("copy %s: %v\n%s", v, err, out)
			}
			dirs, err := filepath.Glob(filepath.Join(dst, "store", "accounts", "*"))
			if err != nil || len(dirs) == 0 {
				t.Fatalf("no accounts in %s", v)
			}
			for _, dir := range dirs {
				a, err := Open(dir, Options{})
				if err != nil {
					t.Fatalf("open %s: %v", dir, err)
				}
				size, n := a.Usage()
				mbs, err := a.Mailboxes()
				if err != nil || len(mbs) < 2 || n == 0 || size == 0 {
					t.Errorf("%s: %d mailboxes (%v), %d messages, %d bytes", dir, len(mbs), err, n, size)
				}
				// Records from before save dates and training states read
				// with the received time and the state of their keywords.
				for _, mb := range mbs {
					msgs, err := a.Messages(mb.ID, mb.UIDValidity, 1, 0)
					if err != nil {
						t.Fatalf("%s: messages of %s: %v", dir, mb.Name, err)
					}
					for _, m := range msgs {
						if !m.SaveDate.Equal(m.Received) || m.Training != trainingOfNames(m.Keywords) {
							t.Errorf("%s: %s uid %d: saved %v, received %v, training %s with keywords %v", dir, mb.Name, m.UID, m.SaveDate, m.Received, m.Training, m.Keywords)
						}
					}
				}
				if err := a.Close(); err != nil {
					t.Fatal(err)
				}
				problems, err := Verify(dir, false, nil)
				if err != nil || len(problems) > 0 {
					t.Errorf("verify %s: %v %v", dir, problems, err)
				}
			}
			if _, err := os.Stat(dst); err != nil {
				t.Fatal(err)
			}
		})
	}
}
