package config

// Slices: the typed part of the configuration each role receives from master
// over IPC (as strict JSON). Roles never read config files; a role's slice
// holds only what that role uses, and secrets only where used.

// Slice is the config slice of one role.
type Slice struct {
	Role     string `json:"role"`
	Hostname string `json:"hostname"`
	// Dir is the role's own data directory (keys, store, queue); empty for
	// network roles, which own no files.
	Dir   string      `json:"dir,omitempty"`
	Keys  *KeysSlice  `json:"keys,omitempty"`
	SMTP  *SMTPSlice  `json:"smtp,omitempty"`
	Store *StoreSlice `json:"store,omitempty"`
	IMAP  *NetSlice   `json:"imap,omitempty"`
	Web   *NetSlice   `json:"web,omitempty"`
}

// KeysSlice is what moxd-keys needs.
type KeysSlice struct {
	// LocalCANames: when set, keys maintains a private CA and a certificate for
	// these names (tls.local_ca).
	LocalCANames []string `json:"local_ca_names,omitempty"`
	// CertNames are the names of configured certificate pairs (tls.certificate);
	// master passes their files as fds.
	CertNames []string `json:"cert_names,omitempty"`
}

// SMTPSlice is what an smtp or submission instance needs.
type SMTPSlice struct {
	// Submission is true for the submission instance (587/465).
	Submission bool `json:"submission"`
}

// NetSlice is what imap and web need for now.
type NetSlice struct{}

// StoreSlice is what moxd-store needs: the accounts it keeps and the
// addresses that deliver to them.
type StoreSlice struct {
	Domains  []string       `json:"domains"`
	Accounts []StoreAccount `json:"accounts"`
}

// StoreAccount is one configured account.
type StoreAccount struct {
	Name      string   `json:"name"`
	Addresses []string `json:"addresses"`
	// Quota is the account's size limit in bytes; 0 means unlimited.
	Quota int64 `json:"quota,omitempty"`
}
