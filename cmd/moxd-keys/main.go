// Command moxd-keys is the keys role of moxd. It is started by moxd-master, never
// by hand; see moxd-master(8).
package main

import (
	"moxd/internal/ipc"
	"moxd/internal/keys"
	"moxd/internal/worker"
)

func main() {
	worker.Main(worker.Role{
		Role: ipc.RoleKeys,
		Run:  keys.Run,
		// A signature is short CPU work: serving it on the reader saves a
		// goroutine handoff per TLS handshake.
		Inline: []ipc.MsgType{ipc.TypeSign, ipc.TypeDKIMSign},
	})
}
