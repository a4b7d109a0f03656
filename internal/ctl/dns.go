package ctl

// DNSRecords answers "dns records": the records to publish for a hosted
// domain, made by master from the configuration and the DKIM public keys
// keys reports.
type DNSRecords struct {
	Domain  string      `json:"domain"`
	Records []DNSRecord `json:"records"`
	// Warning is set when some records are missing, e.g. the DKIM
	// records while keys is down.
	Warning string `json:"warning,omitempty"`
}
