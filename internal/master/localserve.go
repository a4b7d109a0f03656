package master

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"moxd/internal/config"
	"moxd/internal/ctl"
)

const localserveUsage = `usage: moxd-master localserve [-v] [-dir dir] [-ip address] [-port-offset n]

Runs moxd in the foreground for development and testing, with a generated
configuration in dir (written on first run): hostname localhost, a private
CA and certificate, DKIM keys, account mox@localhost, and listeners on the
standard ports plus the offset. Works offline. As a non-root user every role
runs as a separate process under that user; as root each role runs under its
own numeric uid from the generated config.
`

func localserveMain(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("localserve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	defDir := "moxd-localserve"
	if d, err := os.UserConfigDir(); err == nil {
		defDir = filepath.Join(d, "moxd-localserve")
	}
	dir := fs.String("dir", defDir, "")
	ip := fs.String("ip", "127.0.0.1", "")
	offset := fs.Int("port-offset", 1000, "")
	verbose := fs.Bool("v", false, "")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		if err != nil && err != flag.ErrHelp {
			fmt.Fprintf(stderr, "moxd-master localserve: %v\n", err)
		}
		fmt.Fprint(stderr, localserveUsage)
		return 2
	}
	if *offset < 0 || *offset > 64000 {
		fmt.Fprintf(stderr, "moxd-master localserve: -port-offset %d: must be between 0 and 64000\n", *offset)
		return 2
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		fmt.Fprintf(stderr, "moxd-master localserve: %v\n", err)
		return ExitFailed
	}
	created, err := config.WriteLocalserve(config.LocalserveOptions{Dir: abs, IP: *ip, PortOffset: *offset, AsRoot: os.Geteuid() == 0})
	if err != nil {
		fmt.Fprintf(stderr, "moxd-master localserve: %v\n", err)
		return ExitFailed
	}
	path := filepath.Join(abs, "moxd.conf")
	if created {
		fmt.Fprintf(stderr, "moxd-master localserve: wrote new configuration %s and %s\n", path, filepath.Join(abs, "domains.conf"))
	}
	st, err := config.LoadStatic(path)
	if err != nil {
		fmt.Fprintf(stderr, "moxd-master localserve: %v\n", err)
		return ExitFailed
	}
	if !st.Localserve {
		fmt.Fprintf(stderr, "moxd-master localserve: %s is not a localserve configuration (localserve = true missing); run moxd-master -f %s for a real setup\n", path, path)
		return ExitFailed
	}
	out := NewStderrOutput(stderr)
	return runForeground(path, *verbose, out, func(s Snapshot) {
		if created {
			// The documented test password, set through the control
			// socket like "moxctl account password" would.
			req := ctl.Request{Cmd: "account password", Args: []string{LocalserveAccount}, Secret: LocalservePassword}
			if err := ctl.Do(s.ControlSocket, req, nil, 30*time.Second); err != nil {
				fmt.Fprintf(stderr, "moxd-master localserve: setting the password of account %s: %v\n", LocalserveAccount, err)
			}
		}
		fmt.Fprint(stderr, localserveBanner(path, s))
	})
}

// The account localserve creates, and the password it gets on the first
// run.
const (
	LocalserveAccount  = "mox"
	LocalservePassword = "moxmoxmox"
)

func localserveBanner(path string, s Snapshot) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nmoxd localserve is ready (config %s)\n\n", path)
	for _, r := range s.Status.Roles {
		for _, l := range r.Listeners {
			fmt.Fprintf(&b, "  %-12s %-22s (role %s)\n", l.Kind, l.Addr, r.Role)
		}
	}
	fmt.Fprintf(&b, "\n  smtp accepts mail for any address (unknown ones go to mox@localhost); local parts ending in\n")
	fmt.Fprintf(&b, "  temperror, permerror, a 4xx/5xx code or timeout simulate failures (see README).\n")
	fmt.Fprintf(&b, "  submission: AUTH as mox@localhost, password %s; submitted messages never leave this host:\n", LocalservePassword)
	fmt.Fprintf(&b, "  the queue delivers them to the local accounts (any other address: mox@localhost), and the\n")
	fmt.Fprintf(&b, "  special local parts above simulate failures, DSNs and retries.\n")
	fmt.Fprintf(&b, "  imap/imaps: log in as mox@localhost with the same password; on loopback, LOGIN also works\n")
	fmt.Fprintf(&b, "  without TLS. The web interface answers that it is not available yet.\n")
	if s.LocalCA != "" {
		fmt.Fprintf(&b, "  TLS: certificates from a private CA; trust %s, e.g.\n", s.LocalCA)
		for _, r := range s.Status.Roles {
			for _, l := range r.Listeners {
				if l.Kind == "submission" {
					fmt.Fprintf(&b, "    openssl s_client -starttls smtp -connect %s -CAfile %s -verify_return_error -brief\n", l.Addr, s.LocalCA)
				}
			}
		}
	}
	fmt.Fprintf(&b, "  Status: moxctl -f %s status\n", path)
	fmt.Fprintf(&b, "  Control socket: %s\n\n", s.ControlSocket)
	return b.String()
}
