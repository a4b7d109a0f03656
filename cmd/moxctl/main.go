// Command moxctl controls a running moxd through moxd-master's control
// socket, and is sendmail(8) when invoked by that name. See moxctl(8).
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"moxd/internal/moxctl"
)

func main() {
	// Installed as sendmail (a link, or through mailer.conf), it is
	// sendmail(8) for local users.
	switch filepath.Base(os.Args[0]) {
	case "sendmail", "send-mail":
		os.Exit(moxctl.SendmailMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	case "mailq", "newaliases", "hoststat", "purgestat", "makemap":
		fmt.Fprintf(os.Stderr, "%s: not supported by moxd; see \"moxctl queue list\" and domains.conf aliases\n", filepath.Base(os.Args[0]))
		os.Exit(1)
	}
	os.Exit(moxctl.Main(os.Args[1:], os.Stdout, os.Stderr))
}
