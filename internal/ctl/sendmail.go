package ctl

import "path/filepath"

// The sendmail socket: moxctl's sendmail mode (any local user) talks to
// master on a socket of its own, mode 0666 in run_dir, which serves only
// two requests:
//
//	sendmail identity            → SendmailIdentity
//	sendmail submit FROM RCPT... → SendmailResult, with the message as one fd
//
// Master takes the caller's uid from the socket's peer credentials and
// submits as the account whose unix_users lists it; no other command is
// served there.

// SendmailSocketName is the sendmail socket's file name in run_dir.
const SendmailSocketName = "sendmail.sock"

// SendmailSocketPath returns the sendmail socket path for a run_dir.
func SendmailSocketPath(runDir string) string {
	return filepath.Join(runDir, SendmailSocketName)
}

// SendmailIdentity answers "sendmail identity": the account the caller's
// uid submits as, its address for MAIL FROM and a From header, and the
// host name for Message-IDs.
type SendmailIdentity struct {
	Account  string `json:"account"`
	Address  string `json:"address"`
	Hostname string `json:"hostname"`
}

// SendmailResult answers "sendmail submit". A refusal is an Error with
// Temporary set when trying again later may work.
type SendmailResult struct {
	Message    uint64 `json:"message,omitempty"`
	Recipients int    `json:"recipients,omitempty"`
	Error      string `json:"error,omitempty"`
	Temporary  bool   `json:"temporary,omitempty"`
}
