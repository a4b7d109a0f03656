//go:build linux

package master

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Credential: cred,
		Setpgid:    true, // a terminal's ^C reaches master only; master stops workers in order
		Pdeathsig:  syscall.SIGKILL,
	}
}

// becomeSubreaper makes orphaned descendants of workers children of master,
// so they are reaped and never linger as zombies.
func becomeSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// killUID sends SIGKILL to every process whose real, effective, saved or
// filesystem uid is uid, and returns their pids. Before a role starts, nothing
// may be left of a previous instance under its uid.
func killUID(uid, _ uint32) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("read /proc: %w", err)
	}
	self := os.Getpid()
	var killed []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		uids, err := procUIDs(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue // gone meanwhile
		}
		for _, u := range uids {
			if u == uid {
				if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
					killed = append(killed, pid)
				}
				break
			}
		}
	}
	return killed, nil
}

func procUIDs(path string) ([]uint32, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			var uids []uint32
			for _, s := range strings.Fields(rest) {
				v, err := strconv.ParseUint(s, 10, 32)
				if err != nil {
					return nil, fmt.Errorf("%s: bad Uid line %q", path, line)
				}
				uids = append(uids, uint32(v))
			}
			return uids, nil
		}
	}
	return nil, fmt.Errorf("%s: no Uid line", path)
}
