// Command moxctl controls a running moxd through moxd-master's control
// socket. See moxctl(8).
package main

import (
	"os"

	"moxd/internal/moxctl"
)

func main() {
	os.Exit(moxctl.Main(os.Args[1:], os.Stdout, os.Stderr))
}
