//go:build unix && !linux

package master

import (
	"fmt"
	"os"
	"syscall"
)

// killAsUID runs "moxd-master _killall" as uid; see killUID.
func killAsUID(uid, gid uint32) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer devnull.Close()
	p, err := os.StartProcess(exe, []string{exe, "_killall"}, &os.ProcAttr{
		Dir:   "/",
		Env:   []string{},
		Files: []*os.File{devnull, devnull, os.Stderr},
		Sys:   &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}}},
	})
	if err != nil {
		return fmt.Errorf("start killer for uid %d: %w", uid, err)
	}
	// The reaper may collect it first; either way it has finished.
	p.Wait()
	return nil
}
