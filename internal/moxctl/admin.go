package moxctl

// account, address and domain commands.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"moxd/internal/ctl"
)

func (c *cli) account(args []string) int {
	if len(args) == 0 {
		return c.usage()
	}
	switch sub, a := args[0], args[1:]; {
	case sub == "add" && len(a) >= 2:
		req := ctl.Request{Cmd: "account add", Args: a}
		if !isTerminal(c.stdin) {
			pw, err := readPasswordLine(c.stdin)
			if err != nil && !errors.Is(err, errNoPassword) {
				return c.failf("reading the password from standard input: %v", err)
			}
			req.Secret = pw
		}
		var res ctl.ChangeResult
		if code := c.do(req, &res); code != ExitOK {
			return code
		}
		return c.changed(res, fmt.Sprintf("account %s added", a[0]))
	case sub == "rm" && len(a) == 1:
		var res ctl.ChangeResult
		if code := c.do(ctl.Request{Cmd: "account rm", Args: a}, &res); code != ExitOK {
			return code
		}
		return c.changed(res, fmt.Sprintf("account %s removed", a[0]))
	case sub == "list" && len(a) == 0:
		var l ctl.AccountList
		if code := c.do(ctl.Request{Cmd: "account list"}, &l); code != ExitOK {
			return code
		}
		if c.json {
			return c.printJSON(l)
		}
		printAccounts(c.stdout, l)
		return ExitOK
	case sub == "password" && len(a) == 1:
		pw, err := readPassword(c.stdin, c.stderr)
		if err != nil {
			return c.failf("%v", err)
		}
		if code := c.do(ctl.Request{Cmd: "account password", Args: a, Secret: pw}, nil); code != ExitOK {
			return code
		}
		if !c.json {
			fmt.Fprintf(c.stdout, "password of %s set\n", a[0])
		}
		return ExitOK
	}
	return c.usage()
}

// changed prints the outcome of a change; a warning makes the exit status 1.
func (c *cli) changed(res ctl.ChangeResult, done string) int {
	if c.json {
		c.printJSON(res)
	} else {
		fmt.Fprintln(c.stdout, done)
	}
	if res.Warning != "" {
		return c.failf("warning: %s", res.Warning)
	}
	return ExitOK
}

func printAccounts(w io.Writer, l ctl.AccountList) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tMESSAGES\tSIZE\tQUOTA\tPASSWORD\tADDRESSES")
	for _, a := range l.Accounts {
		quota := "-"
		if a.Quota > 0 {
			quota = formatSize(a.Quota)
		}
		msgs, size, pw := fmt.Sprint(a.Messages), formatSize(a.Size), "no"
		if a.HasPassword {
			pw = "yes"
		}
		if a.UsageError != "" {
			msgs, size, pw = "?", "?", "?"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.Name, msgs, size, quota, pw, strings.Join(a.Addresses, " "))
	}
	tw.Flush()
	for _, a := range l.Accounts {
		if a.UsageError != "" {
			fmt.Fprintf(w, "usage not known: %s\n", a.UsageError)
			break
		}
	}
}

// formatSize shows a byte count with a binary unit.
func formatSize(n int64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%dB", n)
	}
	f := float64(n)
	i := -1
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	return fmt.Sprintf("%.1f%c", f, units[i])
}

func (c *cli) address(args []string) int {
	if len(args) == 0 {
		return c.usage()
	}
	sub, a := args[0], args[1:]
	var done string
	switch {
	case sub == "add" && len(a) == 2:
		done = fmt.Sprintf("address %s added to account %s", a[0], a[1])
	case sub == "move" && len(a) == 2:
		done = fmt.Sprintf("address %s moved to account %s", a[0], a[1])
	case sub == "rm" && len(a) == 1:
		done = fmt.Sprintf("address %s removed", a[0])
	default:
		return c.usage()
	}
	var res ctl.ChangeResult
	if code := c.do(ctl.Request{Cmd: "address " + sub, Args: a}, &res); code != ExitOK {
		return code
	}
	return c.changed(res, done)
}

func (c *cli) domain(args []string) int {
	if len(args) == 0 {
		return c.usage()
	}
	switch sub, a := args[0], args[1:]; {
	case sub == "add" && len(a) == 2:
		var res ctl.DomainAdded
		if code := c.do(ctl.Request{Cmd: "domain add", Args: a}, &res); code != ExitOK {
			return code
		}
		if c.json {
			c.printJSON(res)
		} else {
			fmt.Fprintf(c.stdout, "domain %s added; postmaster@%s goes to account %s\n", res.Domain, res.Domain, res.Postmaster)
			fmt.Fprintf(c.stdout, "publish these DNS records (zone file lines):\n\n")
			for _, r := range res.Records {
				fmt.Fprintln(c.stdout, r.ZoneLine())
			}
		}
		if res.Warning != "" {
			return c.failf("warning: %s", res.Warning)
		}
		return ExitOK
	case sub == "rm" && len(a) == 1:
		var res ctl.ChangeResult
		if code := c.do(ctl.Request{Cmd: "domain rm", Args: a}, &res); code != ExitOK {
			return code
		}
		return c.changed(res, fmt.Sprintf("domain %s removed", a[0]))
	case sub == "list" && len(a) == 0:
		var l ctl.DomainList
		if code := c.do(ctl.Request{Cmd: "domain list"}, &l); code != ExitOK {
			return code
		}
		if c.json {
			return c.printJSON(l)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "DOMAIN\tADDRESSES\tDKIM")
		for _, d := range l.Domains {
			fmt.Fprintf(tw, "%s\t%d\t%s\n", d.Name, d.Addresses, strings.Join(d.Selectors, ", "))
		}
		tw.Flush()
		return ExitOK
	}
	return c.usage()
}

var errNoPassword = errors.New("no password given")

// readPasswordLine reads one line from a non-terminal: the password,
// without its line ending.
func readPasswordLine(in io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(in, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errNoPassword
	}
	return line, nil
}

// readPassword reads a password: on a terminal it asks twice without echo,
// otherwise it reads one line.
func readPassword(in *os.File, prompt io.Writer) (string, error) {
	if !isTerminal(in) {
		pw, err := readPasswordLine(in)
		if err != nil {
			return "", fmt.Errorf("reading the password from standard input: %w", err)
		}
		return pw, nil
	}
	var pws [2]string
	for i, p := range []string{"new password: ", "repeat password: "} {
		fmt.Fprint(prompt, p)
		pw, err := readNoEcho(in)
		fmt.Fprintln(prompt)
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		pws[i] = pw
	}
	if pws[0] != pws[1] {
		return "", errors.New("the passwords differ; nothing changed")
	}
	if pws[0] == "" {
		return "", errNoPassword
	}
	return pws[0], nil
}
