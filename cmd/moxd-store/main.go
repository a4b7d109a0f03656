// Command moxd-store is the store role of moxd. It is started by moxd-master, never
// by hand; see moxd-master(8).
package main

import (
	"moxd/internal/ipc"
	"moxd/internal/storage"
	"moxd/internal/worker"
)

func main() {
	worker.Main(worker.Role{Role: ipc.RoleStore, Run: storage.Run, MaxHandlers: storage.MaxHandlers})
}
