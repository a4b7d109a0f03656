package moxctl

// moxctl dns: the DNS records of a hosted domain. "dns records" prints
// what to publish (master makes it from the configuration and the DKIM
// keys); "dns check" prints the report moxd-queue writes after looking
// the domain's records up with its resolver. moxctl never looks anything
// up itself and only shows the report, with control characters as "?".

import (
	"fmt"
	"strings"

	"moxd/internal/ctl"
	"moxd/internal/ipc"
)

const dnsUsage = `usage: moxctl dns records DOMAIN
       moxctl dns check DOMAIN
`

func (c *cli) dns(args []string) int {
	if len(args) != 2 || args[0] != "records" && args[0] != "check" {
		fmt.Fprint(c.stderr, dnsUsage)
		return ExitUsage
	}
	req := ctl.Request{Cmd: "dns " + args[0], Args: args[1:]}
	if args[0] == "records" {
		var res ctl.DNSRecords
		if code := c.do(req, &res); code != ExitOK {
			return code
		}
		if c.json {
			c.printJSON(res)
		} else {
			for _, r := range res.Records {
				fmt.Fprintln(c.stdout, r.ZoneLine())
			}
		}
		if res.Warning != "" {
			return c.failf("warning: %s", res.Warning)
		}
		return ExitOK
	}
	var text ipc.QueueText
	if code := c.do(req, &text); code != ExitOK {
		return code
	}
	// Each line of the report starts with its level (internal/queue/dnscheck.go).
	var warnings, errs int
	for l := range strings.SplitSeq(text.Text, "\n") {
		switch {
		case strings.HasPrefix(l, "WARN "):
			warnings++
		case strings.HasPrefix(l, "ERROR "):
			errs++
		}
	}
	if c.json {
		c.printJSON(struct {
			Text     string `json:"text"`
			Warnings int    `json:"warnings"`
			Errors   int    `json:"errors"`
		}{text.Text, warnings, errs})
	} else {
		fmt.Fprint(c.stdout, printable(text.Text, true))
		if !strings.HasSuffix(text.Text, "\n") {
			fmt.Fprintln(c.stdout)
		}
	}
	if warnings+errs > 0 {
		return ExitFailed
	}
	return ExitOK
}
