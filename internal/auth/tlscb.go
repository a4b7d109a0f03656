package auth

import "crypto/tls"

// ServerChannelBindings returns the channel bindings a server can compute
// for the SCRAM -PLUS mechanisms from its side of a TLS connection:
// tls-exporter (RFC 9266), which needs TLS 1.3 or TLS 1.2 with the extended
// master secret (RFC 7627), as Go's ExportKeyingMaterial enforces. It
// returns nil without TLS or when no binding can be computed; the -PLUS
// mechanisms are then not offered.
//
// tls-server-end-point (RFC 5929 §4) is not computed here: the server side
// would need the certificate it presented, which crypto/tls does not put in
// the server's ConnectionState.
func ServerChannelBindings(cs *tls.ConnectionState) []ChannelBinding {
	if cs == nil || !cs.HandshakeComplete {
		return nil
	}
	// RFC 9266 §2: label "EXPORTER-Channel-Binding", no context, 32 bytes.
	b, err := cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
	if err != nil {
		return nil
	}
	return []ChannelBinding{{Type: CBTLSExporter, Data: b}}
}
