// Command moxd-queue is the queue role of moxd. It is started by moxd-master, never
// by hand; see moxd-master(8).
package main

import (
	"moxd/internal/ipc"
	"moxd/internal/queue"
	"moxd/internal/worker"
)

func main() {
	worker.Main(worker.Role{Role: ipc.RoleQueue, Run: queue.Run})
}
