package ipc

// QueueDNSCheck (FamQueueAdmin, master -> queue; queue serves it on
// master's channel only) asks queue to check the DNS records of a hosted
// domain for "moxctl dns check": MX, SPF (also for the addresses mail
// leaves from: socks remote_ips, source_ips), DKIM, DMARC, MTA-STS,
// TLSRPT and DNSSEC. Queue does the lookups with its resolver and writes
// the report: root never parses DNS answers (DESIGN.md §1). Answered with
// QueueText, one line per check.
//
// Domain is the domain as configured (Unicode form, lower case). DKIM
// holds the TXT records keys says are to be published for the domain's
// selectors, so queue can compare the published keys with the signing
// keys; a selector with an empty Record could not be asked of keys (keys
// was down) and is checked only for presence and syntax.
type QueueDNSCheck struct {
	Domain string
	DKIM   []QueueDNSCheckDKIM
}

// QueueDNSCheckDKIM is one selector of a QueueDNSCheck with its expected
// record.
type QueueDNSCheckDKIM struct {
	Selector string
	Record   string
}

// MaxDNSCheckSelectors bounds QueueDNSCheck.DKIM; the frame limit bounds
// the size of all records together (an RSA-2048 record takes about 420
// bytes).
const MaxDNSCheckSelectors = 16

func (*QueueDNSCheck) Type() MsgType { return TypeQueueDNSCheck }
func (*QueueDNSCheck) FDs() int      { return 0 }
func (m *QueueDNSCheck) Encode(e *Encoder) {
	if m.Domain == "" {
		e.Fail("dns check without a domain")
	}
	e.StringMax(m.Domain, MaxNameLen)
	e.CountMax(len(m.DKIM), MaxDNSCheckSelectors)
	for _, k := range m.DKIM {
		if k.Selector == "" {
			e.Fail("dns check with an empty DKIM selector")
		}
		e.StringMax(k.Selector, MaxNameLen)
		e.StringMax(k.Record, MaxDKIMRecord)
	}
}
func (m *QueueDNSCheck) Decode(d *Decoder) {
	m.Domain = d.StringMax(MaxNameLen)
	if d.Err() == nil && m.Domain == "" {
		d.Fail("dns check without a domain")
	}
	n := d.Count(MaxDNSCheckSelectors)
	m.DKIM = nil
	for i := 0; i < n && d.Err() == nil; i++ {
		k := QueueDNSCheckDKIM{Selector: d.StringMax(MaxNameLen), Record: d.StringMax(MaxDKIMRecord)}
		if d.Err() == nil && k.Selector == "" {
			d.Fail("dns check with an empty DKIM selector")
		}
		m.DKIM = append(m.DKIM, k)
	}
}
