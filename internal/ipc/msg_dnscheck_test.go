package ipc

import "testing"

// TestQueueDNSCheckRefused: a check without a domain or with an empty
// selector is refused by the sender and by the receiver.
func TestQueueDNSCheckRefused(t *testing.T) {
	for _, m := range []*QueueDNSCheck{
		{},
		{Domain: "example.org", DKIM: []QueueDNSCheckDKIM{{Selector: "s1"}, {Record: "v=DKIM1; p=x"}}},
	} {
		if _, err := encodePayload(m); err == nil {
			t.Errorf("%+v encoded", m)
		}
		e := newEncoder(nil, MaxPayload)
		e.String(m.Domain)
		e.Count(len(m.DKIM))
		for _, k := range m.DKIM {
			e.String(k.Selector)
			e.String(k.Record)
		}
		d := NewDecoder(e.buf)
		new(QueueDNSCheck).Decode(d)
		if err := d.Done(); err == nil || !isProtocolError(err) {
			t.Errorf("%+v decoded: %v", m, err)
		}
	}
	// More selectors than allowed.
	m := &QueueDNSCheck{Domain: "example.org"}
	for range MaxDNSCheckSelectors + 1 {
		m.DKIM = append(m.DKIM, QueueDNSCheckDKIM{Selector: "s"})
	}
	if _, err := encodePayload(m); err == nil {
		t.Errorf("%d selectors encoded", len(m.DKIM))
	}
}
