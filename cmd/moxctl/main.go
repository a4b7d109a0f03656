// Command moxctl controls a running moxd through moxd-master's control
// socket, and is sendmail(8) when invoked by that name. See moxctl(8).
package main

import (
	"os"
	"path/filepath"

	"moxd/internal/moxctl"
)

func main() {
	// Installed as sendmail (a link), it is sendmail(8) for local users.
	if filepath.Base(os.Args[0]) == "sendmail" {
		os.Exit(moxctl.SendmailMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(moxctl.Main(os.Args[1:], os.Stdout, os.Stderr))
}
