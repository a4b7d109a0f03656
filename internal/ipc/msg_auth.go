package ipc

// FamSession, authentication (submission, imap, web -> store; queue for
// TokenCheck): moxd-store runs the server side of SASL for the network
// roles, which never see credentials (DESIGN.md §6). An exchange is
// AuthStart, then AuthContinue until an AuthStep says Done; on success
// store issues a session token bound to the calling role and channel
// generation. TokenCheck and TokenRevoke work on such tokens.
//
// Errors come as ErrorReply: CodeDenied for a failed login (store has
// applied the failure delay already) or a token that is not valid,
// CodeBadRequest for a malformed SASL message, CodeBusy while the client's
// network is refused for too many failed logins, CodeNotFound for an
// exchange id the channel does not have (finished, aborted or idle).

import "net/netip"

// Limits of authentication fields.
const (
	// MaxSASLMessage bounds a client response and a server challenge, in
	// bytes after base64 decoding; it equals auth.MaxMessageSize.
	MaxSASLMessage = 4096
	// MaxMechanismLen bounds a SASL mechanism name (RFC 4422 §3.1: at
	// most 20 characters).
	MaxMechanismLen = 20
	// MaxChannelBindings bounds the channel binding types in one
	// AuthStart.
	MaxChannelBindings = 4
	// MaxCBTypeLen bounds a channel binding type name ("tls-exporter").
	MaxCBTypeLen = 32
	// MaxCBData bounds channel binding data: 32 bytes for tls-exporter
	// (RFC 9266 §2), a certificate hash of up to 64 bytes for
	// tls-server-end-point (RFC 5929 §4.1).
	MaxCBData = 64
)

// ChannelBinding is the channel binding data of the TLS connection an
// exchange runs on, computed by the network role.
type ChannelBinding struct {
	Type string // "tls-exporter" or "tls-server-end-point"
	Data []byte
}

// AuthStart begins an exchange with Mechanism for a client at RemoteIP,
// which the failure limits count against. TLS says the client connection
// is under TLS (PLAIN and LOGIN need it); ChannelBindings are offered for
// the -PLUS mechanisms. InitialResponse is the client's initial response
// when HasInitial is set (it may be empty: RFC 4954 §4 "=", RFC 4959 §3).
// Answered with AuthStep.
type AuthStart struct {
	Mechanism       string
	RemoteIP        netip.Addr // travels as 16 bytes; IPv4 comes back unmapped
	TLS             bool
	ChannelBindings []ChannelBinding
	InitialResponse []byte
	HasInitial      bool
}

func (*AuthStart) Type() MsgType { return TypeAuthStart }
func (*AuthStart) FDs() int      { return 0 }
func (m *AuthStart) Encode(e *Encoder) {
	if !m.RemoteIP.IsValid() {
		e.Fail("auth start without remote IP")
		return
	}
	if !m.HasInitial && len(m.InitialResponse) > 0 {
		e.Fail("auth start with initial response data but HasInitial not set")
		return
	}
	e.StringMax(m.Mechanism, MaxMechanismLen)
	encodeAddr(e, m.RemoteIP)
	e.Bool(m.TLS)
	e.CountMax(len(m.ChannelBindings), MaxChannelBindings)
	for _, cb := range m.ChannelBindings {
		e.StringMax(cb.Type, MaxCBTypeLen)
		e.BytesMax(cb.Data, MaxCBData)
	}
	e.BytesMax(m.InitialResponse, MaxSASLMessage)
	e.Bool(m.HasInitial)
}
func (m *AuthStart) Decode(d *Decoder) {
	m.Mechanism = d.StringMax(MaxMechanismLen)
	m.RemoteIP = decodeAddr(d)
	m.TLS = d.Bool()
	n := d.Count(MaxChannelBindings)
	for i := 0; i < n && d.Err() == nil; i++ {
		var cb ChannelBinding
		cb.Type = d.StringMax(MaxCBTypeLen)
		cb.Data = d.BytesMax(MaxCBData)
		m.ChannelBindings = append(m.ChannelBindings, cb)
	}
	m.InitialResponse = d.BytesMax(MaxSASLMessage)
	m.HasInitial = d.Bool()
	if !m.HasInitial && len(m.InitialResponse) > 0 {
		d.Fail("auth start with initial response data but HasInitial not set")
	}
}

// AuthContinue gives the client's next response in exchange Exchange.
// Answered with AuthStep.
type AuthContinue struct {
	Exchange uint64
	Response []byte
}

func (*AuthContinue) Type() MsgType { return TypeAuthContinue }
func (*AuthContinue) FDs() int      { return 0 }
func (m *AuthContinue) Encode(e *Encoder) {
	e.Uint64(m.Exchange)
	e.BytesMax(m.Response, MaxSASLMessage)
}
func (m *AuthContinue) Decode(d *Decoder) {
	m.Exchange = d.Uint64()
	m.Response = d.BytesMax(MaxSASLMessage)
}

// AuthStep answers AuthStart and AuthContinue. Without Done, Challenge is
// the server challenge to send and Exchange names the exchange in the
// next AuthContinue. With Done the exchange succeeded and is over:
// Account is the account logged in to and Token the session token store
// issued for it (revoke it with TokenRevoke when the session ends).
type AuthStep struct {
	Exchange  uint64
	Challenge []byte
	Done      bool
	Account   string
	Token     [32]byte
}

func (*AuthStep) Type() MsgType { return TypeAuthStep }
func (*AuthStep) FDs() int      { return 0 }
func (m *AuthStep) Encode(e *Encoder) {
	if m.Done && (m.Account == "" || len(m.Challenge) > 0) {
		e.Fail("finished auth step needs an account and no challenge")
		return
	}
	e.Uint64(m.Exchange)
	e.BytesMax(m.Challenge, MaxSASLMessage)
	e.Bool(m.Done)
	e.StringMax(m.Account, MaxAccountLen)
	e.Bytes32(m.Token)
}
func (m *AuthStep) Decode(d *Decoder) {
	m.Exchange = d.Uint64()
	m.Challenge = d.BytesMax(MaxSASLMessage)
	m.Done = d.Bool()
	m.Account = d.StringMax(MaxAccountLen)
	m.Token = d.Bytes32()
	if m.Done && (m.Account == "" || len(m.Challenge) > 0) {
		d.Fail("finished auth step needs an account and no challenge")
	}
}

// AuthAbort ends exchange Exchange without a result, when the client
// cancels or its connection ends. Answered with Ack, also for an exchange
// that is already gone.
type AuthAbort struct {
	Exchange uint64
}

func (*AuthAbort) Type() MsgType       { return TypeAuthAbort }
func (*AuthAbort) FDs() int            { return 0 }
func (m *AuthAbort) Encode(e *Encoder) { e.Uint64(m.Exchange) }
func (m *AuthAbort) Decode(d *Decoder) { m.Exchange = d.Uint64() }

// TokenCheck asks which account Token stands for. Issuer is the role the
// token was issued to: the asking role itself, or for queue the
// submission or web role whose submission carries the token. Answered
// with TokenInfo, or CodeDenied when the token is not valid (unknown,
// revoked, expired, from another role or channel generation).
type TokenCheck struct {
	Token  [32]byte
	Issuer Role
}

func (*TokenCheck) Type() MsgType { return TypeTokenCheck }
func (*TokenCheck) FDs() int      { return 0 }
func (m *TokenCheck) Encode(e *Encoder) {
	e.Bytes32(m.Token)
	e.Role(m.Issuer)
}
func (m *TokenCheck) Decode(d *Decoder) {
	m.Token = d.Bytes32()
	m.Issuer = d.Role()
}

// TokenInfo answers TokenCheck. Expires is in Unix seconds.
type TokenInfo struct {
	Account string
	Expires int64
}

func (*TokenInfo) Type() MsgType { return TypeTokenInfo }
func (*TokenInfo) FDs() int      { return 0 }
func (m *TokenInfo) Encode(e *Encoder) {
	e.StringMax(m.Account, MaxAccountLen)
	e.Int64(m.Expires)
}
func (m *TokenInfo) Decode(d *Decoder) {
	m.Account = d.StringMax(MaxAccountLen)
	m.Expires = d.Int64()
}

// TokenRevoke ends a token the sending role was issued, at session close.
// An event.
type TokenRevoke struct {
	Token [32]byte
}

func (*TokenRevoke) Type() MsgType       { return TypeTokenRevoke }
func (*TokenRevoke) FDs() int            { return 0 }
func (m *TokenRevoke) Encode(e *Encoder) { e.Bytes32(m.Token) }
func (m *TokenRevoke) Decode(d *Decoder) { m.Token = d.Bytes32() }

// encodeAddr writes an IP address as 16 bytes, IPv4 as IPv4-mapped IPv6
// (RFC 4291 §2.5.5.2), without zone.
func encodeAddr(e *Encoder, ip netip.Addr) {
	b16 := ip.As16()
	if b := e.grow(len(b16)); b != nil {
		copy(b, b16[:])
	}
}

// decodeAddr reads what encodeAddr wrote; a mapped IPv4 address comes back
// as IPv4.
func decodeAddr(d *Decoder) netip.Addr {
	var b16 [16]byte
	copy(b16[:], d.take(len(b16)))
	return netip.AddrFrom16(b16).Unmap()
}
