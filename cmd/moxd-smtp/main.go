// Command moxd-smtp is the smtp role (port 25) and, run as
// "moxd-smtp submission", the submission role (ports 587 and 465) of moxd. It
// is started by moxd-master, never by hand; see moxd-master(8).
package main

import (
	"fmt"
	"os"

	"moxd/internal/ipc"
	"moxd/internal/smtpd"
	"moxd/internal/worker"
)

func main() {
	role := ipc.RoleSMTP
	if len(os.Args) == 2 && os.Args[1] == "submission" {
		role = ipc.RoleSubmission
	} else if len(os.Args) != 2 || os.Args[1] != "smtp" {
		fmt.Fprintln(os.Stderr, "usage: moxd-smtp smtp|submission (started by moxd-master)")
		os.Exit(worker.ExitUsage)
	}
	worker.Main(worker.Role{Role: role, Run: smtpd.Run})
}
