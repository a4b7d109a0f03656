// Command moxd-imap is the imap role of moxd. It is started by moxd-master, never
// by hand; see moxd-master(8).
package main

import (
	"moxd/internal/imapd"
	"moxd/internal/ipc"
	"moxd/internal/worker"
)

func main() {
	worker.Main(worker.Role{Role: ipc.RoleIMAP, Run: imapd.Run})
}
