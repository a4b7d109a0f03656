package ctl

// Answers of the account, domain and data commands. The commands and their
// arguments (Request.Cmd, Request.Args):
//
//	account add NAME [ADDRESS...]   Secret: optional password
//	account rm NAME
//	account list
//	account password NAME          Secret: the password
//	address add ADDRESS ACCOUNT
//	address rm ADDRESS
//	address move ADDRESS ACCOUNT
//	domain add DOMAIN ACCOUNT
//	domain rm DOMAIN
//	domain list
//	mailbox list ACCOUNT
//	import begin ACCOUNT MAILBOX
//	import mbox                    1 fd: the mbox file
//	import files                   1..4 fds, Files describes each
//	import end [abort]
//	export ACCOUNT MAILBOX         answer: 1 fd (pipe read end), then ExportResult
//	deliver ADDRESS                1 fd: the message file
//	backup DIR

// AccountInfo is one account in AccountList.
type AccountInfo struct {
	Name      string   `json:"name"`
	Addresses []string `json:"addresses"`
	Quota     int64    `json:"quota,omitempty"` // bytes; 0: unlimited
	// Usage from store; UsageError says why it is missing (e.g. "store
	// unavailable").
	Size        int64  `json:"size"`
	Messages    int64  `json:"messages"`
	Mailboxes   uint32 `json:"mailboxes"`
	HasPassword bool   `json:"has_password"`
	UsageError  string `json:"usage_error,omitempty"`
}

// AccountList answers "account list".
type AccountList struct {
	Accounts []AccountInfo `json:"accounts"`
}

// DomainInfo is one domain in DomainList.
type DomainInfo struct {
	Name      string   `json:"name"`
	Selectors []string `json:"selectors,omitempty"` // "selector (algorithm)"
	Addresses int      `json:"addresses"`           // addresses in this domain
}

// DomainList answers "domain list".
type DomainList struct {
	Domains []DomainInfo `json:"domains"`
}

// DNSRecord is a record an admin publishes, in zone file form.
type DNSRecord struct {
	Name  string `json:"name"` // fully qualified, with trailing dot
	Type  string `json:"type"` // MX, TXT
	Value string `json:"value"`
}

// ZoneLine returns the record as a zone file line.
func (r DNSRecord) ZoneLine() string {
	return r.Name + " IN " + r.Type + " " + r.Value
}

// DomainAdded answers "domain add": the records to publish.
type DomainAdded struct {
	Domain     string      `json:"domain"`
	Postmaster string      `json:"postmaster"` // account that has postmaster@domain
	Records    []DNSRecord `json:"records"`
	// Warning is set when the domain was added but a later step failed,
	// e.g. creating the DKIM keys while keys was down.
	Warning string `json:"warning,omitempty"`
}

// ChangeResult answers the commands that change domains.conf.
type ChangeResult struct {
	// Warning is set when the change was made but a later step failed, e.g.
	// setting the password of a new account while store was down.
	Warning string `json:"warning,omitempty"`
}

// MailboxList answers "mailbox list".
type MailboxList struct {
	Mailboxes []string `json:"mailboxes"`
}

// ImportFile describes one file of "import files".
type ImportFile struct {
	Name     string   `json:"name"`               // where it came from, for problem reports
	Flags    uint8    `json:"flags,omitempty"`    // ipc.Flag* bits
	Keywords []string `json:"keywords,omitempty"` // IMAP keywords
	Received int64    `json:"received,omitempty"` // Unix seconds; 0: now
}

// ImportProblem is a skipped or damaged message: Where is a byte offset or
// a file name.
type ImportProblem struct {
	Where  string `json:"where"`
	Reason string `json:"reason"`
}

// ImportResult answers "import end".
type ImportResult struct {
	Imported     uint64          `json:"imported"`
	Skipped      uint64          `json:"skipped"`
	Problems     []ImportProblem `json:"problems,omitempty"`
	MoreProblems uint64          `json:"more_problems,omitempty"`
}

// ExportResult is the second answer line of "export", after the stream.
type ExportResult struct {
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
}

// Delivered answers "deliver".
type Delivered struct {
	Account string `json:"account"`
	Mailbox string `json:"mailbox"`
	UID     uint32 `json:"uid"`
}

// BackupResult answers "backup": store's counts, queue's counts and the
// files of the manifest.
type BackupResult struct {
	Dir             string `json:"dir"`
	Accounts        uint32 `json:"accounts"`
	Messages        uint64 `json:"messages"`
	Bytes           uint64 `json:"bytes"`
	QueueMessages   uint64 `json:"queue_messages"`
	QueueRecipients uint64 `json:"queue_recipients"`
	Files           int    `json:"files"` // files listed in the manifest
}
