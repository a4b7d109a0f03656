// Command moxd-master is moxd's supervisor, run as root: it binds the
// listeners and starts every role as its own unprivileged process. See
// moxd-master(8).
package main

import (
	"os"

	"moxd/internal/master"
)

func main() {
	os.Exit(master.Main(os.Args[1:], os.Stderr))
}
