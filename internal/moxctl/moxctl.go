// Package moxctl is the admin command line. It runs as the admin (root or a
// member of admin_group) and talks to moxd-master's control socket. It never
// opens moxd's data itself: files to import or deliver are opened as the
// admin and passed to master as fds; exports arrive as a stream. The
// offline commands verifydata and gentestdata, which do open a data
// directory, run as the owners of its parts (verifydata re-executes moxctl
// with the store's and the queue's uids when started as root).
package moxctl

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"moxd/internal/config"
	"moxd/internal/ctl"
)

// Exit codes.
const (
	ExitOK         = 0
	ExitFailed     = 1 // command failed, or status found a role down
	ExitUsage      = 2
	ExitNotRunning = 3 // no master answers (as LSB "program is not running")
)

// DefaultConfig is used without -f.
const DefaultConfig = "/etc/moxd/moxd.conf"

const usage = `usage: moxctl [-j] [-f file] command [args]

commands:
  status                 state of every role; exit 1 if a role is not ready, 3 if moxd is not running
  reload                 re-read the configuration (certificates, log levels, DKIM keys)
  stop                   stop moxd: roles in reverse start order, after draining
  loglevel [LEVEL [ROLE]] show log levels, or set LEVEL (trace, debug, info, warn, error) for all or one role
  config test            check the configuration files
  config describe [domains]
                         print moxd.conf (or domains.conf) with every option documented

  account add NAME ADDRESS...
                         add an account; a password is read from standard input when it is not a terminal
  account rm NAME        remove an account and all its messages
  account list           accounts, addresses, size and message count
  account password NAME  set the password (asked twice on a terminal, else one line from standard input)
  address add ADDRESS ACCOUNT
  address rm ADDRESS
  address move ADDRESS ACCOUNT
                         give an address (e.g. a postmaster address) to another account
  domain add DOMAIN ACCOUNT
                         add a domain with new DKIM keys, postmaster@DOMAIN to ACCOUNT; prints the DNS records
  domain rm DOMAIN       remove a domain no address uses any more
  domain list
  dns records DOMAIN     the DNS records to publish for DOMAIN: MX, SPF, DMARC, DKIM keys
  dns check DOMAIN       look up DOMAIN's records (MX, SPF for the addresses mail leaves from, DKIM keys,
                         DMARC, MTA-STS, TLSRPT, DNSSEC) and say what to fix; exit 1 on a warning or error

  import mbox|maildir ACCOUNT MAILBOX PATH
                         import an mbox file or a maildir directory into MAILBOX
  export mbox|maildir ACCOUNT DIR [MAILBOX]
                         write all mailboxes (or one) of ACCOUNT into the new or empty DIR
  deliver ADDRESS        deliver the message on standard input to the account of ADDRESS
  sendmail [-t] [-i] [-f FROM] [-F NAME] [RCPT...]
                         submit the message on standard input as the account of your unix user
                         (unix_users in domains.conf); also runs when moxctl is invoked as "sendmail"
  backup DIR             write a backup of moxd's data into the new directory DIR

  queue list [FILTER] [-sort queued|-queued|next|-next] [-n N]
                         queued recipients: next attempt, attempts, last error
  queue dump MSGID       a message's envelope, recipients with their last errors, and header
  queue hold|unhold|fail|drop FILTER
                         hold or release recipients; fail them now (with a DSN) or drop them (without)
  queue schedule FILTER -at TIME|now | -in DURATION
                         set the next attempt
  queue transport NAME|- FILTER
                         send with a configured transport, or (-) by the routes again
  queue requiretls yes|no|default FILTER
  queue holdrules list | add [-account A] [-senderdomain D] [-rcptdomain D] | rm ID
                         hold new messages that match
  queue retired list [-account A] [-n N] [-oldest] | print MSGID [SEQ]
                         delivered and failed recipients, kept for [queue] keep
  queue suppress list [ACCOUNT] | add ACCOUNT ADDRESS [REASON...] | rm ACCOUNT ADDRESS | lookup ACCOUNT ADDRESS
                         addresses an account's messages are not sent to
  queue webhooks list [ACCOUNT] | retired [ACCOUNT] [-n N]
                         webhook events waiting to be posted; retired: posted or given up, newest first
                         FILTER: -id N (or MSGID arguments), -account A, -from S, -to S, -transport T,
                         -held or -notheld; changing every queued message needs -all
  verifydata DIR [-fix]  check (and with -fix repair) the accounts and the queue in a data or backup directory, offline
  gentestdata DIR        write a data directory with test accounts, messages and a queue, offline
  help                   this text

  -f file   configuration file (default ` + DefaultConfig + `)
  -j        print JSON

exit status: 0 ok, 1 failed (or problems found), 2 usage, 3 moxd not running
`

type cli struct {
	file   string
	json   bool
	stdin  *os.File
	stdout io.Writer
	stderr io.Writer
}

// Main runs moxctl with the process's standard input and returns its exit
// code.
func Main(args []string, stdout, stderr io.Writer) int {
	return MainIO(args, os.Stdin, stdout, stderr)
}

// MainIO runs moxctl with stdin as standard input.
func MainIO(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("moxctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr}
	fs.StringVar(&c.file, "f", DefaultConfig, "")
	fs.BoolVar(&c.json, "j", false, "")
	if err := fs.Parse(args); err != nil || fs.NArg() == 0 {
		if err != nil && !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "moxctl: %v\n", err)
		}
		fmt.Fprint(stderr, usage)
		return ExitUsage
	}
	if abs, err := filepath.Abs(c.file); err == nil {
		c.file = abs
	}
	args = fs.Args()
	switch args[0] {
	case "status":
		if len(args) != 1 {
			return c.usage()
		}
		return c.status()
	case "reload":
		if len(args) != 1 {
			return c.usage()
		}
		var res ctl.ReloadResult
		if code := c.do(ctl.Request{Cmd: "reload"}, &res); code != ExitOK {
			return code
		}
		if c.json {
			return c.printJSON(res)
		}
		fmt.Fprintln(stdout, "configuration reloaded")
		if len(res.NeedRestart) > 0 {
			fmt.Fprintf(stdout, "changed settings that take effect only after a restart of moxd: %s\n", strings.Join(res.NeedRestart, ", "))
		}
		return ExitOK
	case "stop":
		if len(args) != 1 {
			return c.usage()
		}
		if code := c.do(ctl.Request{Cmd: "stop"}, nil); code != ExitOK {
			return code
		}
		if !c.json {
			fmt.Fprintln(stdout, "moxd is stopping")
		}
		return ExitOK
	case "loglevel":
		if len(args) > 3 {
			return c.usage()
		}
		var res ctl.LogLevels
		if code := c.do(ctl.Request{Cmd: "loglevel", Args: args[1:]}, &res); code != ExitOK {
			return code
		}
		if c.json {
			return c.printJSON(res)
		}
		var roles []string
		for r := range res.Levels {
			roles = append(roles, r)
		}
		sort.Strings(roles)
		for _, r := range roles {
			fmt.Fprintf(stdout, "%-12s %s\n", r, res.Levels[r])
		}
		return ExitOK
	case "config":
		return c.config(args[1:])
	case "help":
		fmt.Fprint(stdout, usage)
		return ExitOK
	case "account":
		return c.account(args[1:])
	case "address":
		return c.address(args[1:])
	case "domain":
		return c.domain(args[1:])
	case "import":
		return c.importCmd(args[1:])
	case "export":
		return c.export(args[1:])
	case "deliver":
		return c.deliver(args[1:])
	case "sendmail":
		return c.sendmail(args[1:])
	case "backup":
		return c.backup(args[1:])
	case "queue":
		return c.queue(args[1:])
	case "dns":
		return c.dns(args[1:])
	case "verifydata":
		return c.verifydata(args[1:])
	case "gentestdata":
		return c.gentestdata(args[1:])
	case verifyChild:
		return c.verifyChild(args[1:])
	case verifyQueueChild:
		return c.verifyQueueChild(args[1:])
	}
	fmt.Fprintf(stderr, "moxctl: unknown command %q\n", args[0])
	return c.usage()
}

func (c *cli) usage() int {
	fmt.Fprint(c.stderr, usage)
	return ExitUsage
}

func (c *cli) printJSON(v any) int {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		fmt.Fprintf(c.stderr, "moxctl: %v\n", err)
		return ExitFailed
	}
	fmt.Fprintln(c.stdout, string(b))
	return ExitOK
}

// do sends one request to master.
func (c *cli) do(req ctl.Request, v any) int {
	cl, code := c.dial()
	if cl == nil {
		return code
	}
	defer cl.Close()
	cl.SetDeadline(time.Now().Add(3 * time.Minute))
	files, err := cl.Call(req, nil, v)
	for _, f := range files {
		f.Close()
	}
	return c.check(err)
}

// dial connects to master; on failure it reports and returns the exit code.
func (c *cli) dial() (*ctl.Client, int) {
	st, err := config.LoadStatic(c.file)
	if err != nil {
		fmt.Fprintf(c.stderr, "moxctl: %v\n", err)
		return nil, ExitFailed
	}
	cl, err := ctl.Dial(ctl.SocketPath(st.RunDir))
	if err != nil {
		return nil, c.check(err)
	}
	return cl, ExitOK
}

// check reports err and returns the exit code for it.
func (c *cli) check(err error) int {
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(c.stderr, "moxctl: %v\n", err)
	if errors.Is(err, ctl.ErrNotRunning) {
		return ExitNotRunning
	}
	return ExitFailed
}

// failf reports an error and returns ExitFailed.
func (c *cli) failf(format string, args ...any) int {
	fmt.Fprintf(c.stderr, "moxctl: "+format+"\n", args...)
	return ExitFailed
}

func (c *cli) status() int {
	var st ctl.Status
	if code := c.do(ctl.Request{Cmd: "status"}, &st); code != ExitOK {
		return code
	}
	code := ExitOK
	if len(st.Down()) > 0 || st.Master.Stopping {
		code = ExitFailed
	}
	if c.json {
		if c.printJSON(st) != ExitOK {
			return ExitFailed
		}
		return code
	}
	up := time.Duration(st.Master.UptimeSeconds * float64(time.Second)).Round(time.Second)
	fmt.Fprintf(c.stdout, "moxd %s (build %s), master pid %d, up %s, config %s\n", st.Master.Version, st.Master.BuildID, st.Master.PID, up, st.Master.Config)
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tPID\tUID\tGID\tSTATE\tRESTARTS\tUPTIME\tLISTENERS")
	for _, r := range st.Roles {
		var ls []string
		for _, l := range r.Listeners {
			ls = append(ls, l.Kind+"="+l.Addr)
		}
		uptime := "-"
		if r.State == "ready" {
			uptime = time.Duration(r.UptimeSeconds * float64(time.Second)).Round(time.Second).String()
		}
		pid := "-"
		if r.PID != 0 {
			pid = fmt.Sprint(r.PID)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%d\t%s\t%s\n", r.Role, pid, r.UID, r.GID, r.State, r.Restarts, uptime, strings.Join(ls, " "))
	}
	tw.Flush()
	first := true
	for _, r := range st.Roles {
		for _, ctr := range r.Counters {
			if first {
				fmt.Fprintln(c.stdout, "\ncounters:")
				first = false
			}
			fmt.Fprintf(c.stdout, "  %-10s %-40s %d\n", r.Role, ctr.Name, ctr.Value)
		}
	}
	for _, r := range st.Roles {
		if r.State != "ready" && r.LastExit != "" {
			fmt.Fprintf(c.stdout, "%s: last exit: %s\n", r.Role, r.LastExit)
		}
	}
	if down := st.Down(); len(down) > 0 {
		fmt.Fprintf(c.stdout, "not ready: %s\n", strings.Join(down, ", "))
	}
	return code
}

func (c *cli) config(args []string) int {
	if len(args) == 0 {
		return c.usage()
	}
	switch args[0] {
	case "test":
		if len(args) != 1 {
			return c.usage()
		}
		cfg, err := config.Load(c.file)
		if err != nil {
			fmt.Fprintf(c.stderr, "moxctl: %v\n", err)
			return ExitFailed
		}
		fmt.Fprintf(c.stdout, "configuration OK: %s, %s\n", cfg.Path, cfg.DomainsPath)
		return ExitOK
	case "describe":
		var err error
		switch {
		case len(args) == 1:
			err = config.Describe(c.stdout)
		case len(args) == 2 && args[1] == "domains":
			err = config.DescribeDomains(c.stdout)
		default:
			return c.usage()
		}
		if err != nil {
			fmt.Fprintf(c.stderr, "moxctl: %v\n", err)
			return ExitFailed
		}
		return ExitOK
	}
	return c.usage()
}

// SendmailMain runs sendmail mode, for moxctl invoked as "sendmail": the
// arguments are sendmail's (-f is the sender there, not the config file);
// MOXD_CONFIG names the configuration file when it is not the default.
func SendmailMain(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	c := &cli{file: DefaultConfig, stdin: stdin, stdout: stdout, stderr: stderr}
	if p := os.Getenv("MOXD_CONFIG"); p != "" {
		c.file = p
	}
	return c.sendmail(args)
}
