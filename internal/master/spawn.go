package master

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
)

// spawnRequest asks the spawner thread to start one process.
type spawnRequest struct {
	path  string
	argv  []string
	files []*os.File
	cred  *syscall.Credential // nil: keep master's own ids (non-root localserve)
	reply chan spawnResult
}

type spawnResult struct {
	proc *os.Process
	err  error
}

// spawner starts worker processes from one goroutine locked to its OS thread
// for the life of master. On Linux the parent-death signal of a child fires
// when the *thread* that forked it exits; a thread that never exits makes
// Pdeathsig mean "when master dies".
type spawner struct {
	reqs chan spawnRequest
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnRequest)}
	started := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		// Never unlocked and never returns: the thread must outlive every child.
		close(started)
		for r := range s.reqs {
			p, err := os.StartProcess(r.path, r.argv, &os.ProcAttr{
				Dir:   "/",
				Env:   []string{},
				Files: r.files,
				Sys:   sysProcAttr(r.cred),
			})
			r.reply <- spawnResult{p, err}
		}
		select {}
	}()
	<-started
	return s
}

// start execs path with argv; files become fds 0, 1, 2, 3, ... in the child.
// Workers get an empty environment and cwd "/"; with cred they run under that
// uid/gid with no supplementary groups.
func (s *spawner) start(path string, argv []string, files []*os.File, cred *syscall.Credential) (*os.Process, error) {
	r := spawnRequest{path: path, argv: argv, files: files, cred: cred, reply: make(chan spawnResult, 1)}
	s.reqs <- r
	res := <-r.reply
	if res.err != nil {
		return nil, fmt.Errorf("exec %s: %w", path, res.err)
	}
	return res.proc, nil
}
