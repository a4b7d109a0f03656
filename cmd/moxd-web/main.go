// Command moxd-web is the web role of moxd. It is started by moxd-master, never
// by hand; see moxd-master(8).
package main

import (
	"moxd/internal/ipc"
	"moxd/internal/web"
	"moxd/internal/worker"
)

func main() {
	worker.Main(worker.Role{Role: ipc.RoleWeb, Run: web.Run})
}
