package ipc

import (
	"fmt"
	"slices"
)

// Field limits, enforced when encoding and when decoding.
const (
	MaxConfigChunk = 15 * 1024 // ConfigChunk.Data
	MaxChainChunk  = 15 * 1024 // ChainChunk.Data
	MaxNameLen     = 255       // domain names, certificate names, selectors, counter names, listener kinds and addresses
	MaxTextLen     = 1024      // Violation.Reason
	MaxBuildIDLen  = 128       // Hello.BuildID
	MaxAlgorithm   = 32        // EnsureDKIM.Algorithm
	MaxNames       = 100       // names in one list (CertLoaded, CommitCerts, CertInfo)
	MaxCounters    = 1024      // counters in one StatusReply
	MaxCertBatch   = 64        // certificates in one CertBatch
	MaxPublicKey   = 2048      // CertInfo.PublicKey, PKIX DER
	MaxDigest      = 64        // Sign.Digest, DKIMSign.Digest
	MaxSignature   = 1024      // Signature.Sig, DKIMSignature.Sig
	MaxDKIMRecord  = 4096      // DKIMPublic.Record
	MaxCertDER     = 8192      // LocalCA.CertDER
)

// Message is one typed message. Encode writes its fields in wire order and
// Decode reads them back, checking limits; both report problems through the
// Encoder or Decoder. FDs is the exact number of fds a frame carrying the
// message must have; it may depend on decoded fields.
type Message interface {
	Type() MsgType
	Encode(e *Encoder)
	Decode(d *Decoder)
	FDs() int
}

// kind says how a message type travels: as a request expecting a reply, as a
// one-way event, or as a reply.
type kind uint8

const (
	kindRequest kind = iota + 1
	kindEvent
	kindReply
)

func (k kind) String() string {
	switch k {
	case kindRequest:
		return "request"
	case kindEvent:
		return "event"
	case kindReply:
		return "reply"
	}
	return "invalid kind"
}

// msgInfo describes a message type.
type msgInfo struct {
	name  string // family.Name, or Name for FamAny
	fam   Family
	kind  kind
	new   func() Message
	reply MsgType // for requests: the reply type (ErrorReply may always come instead)
}

// Message type numbers.
const (
	TypeErrorReply MsgType = 0x0001

	TypeHello         MsgType = 0x0101
	TypeGetConfig     MsgType = 0x0102
	TypeGetListeners  MsgType = 0x0103
	TypeReady         MsgType = 0x0104
	TypeViolation     MsgType = 0x0105
	TypeHelloReply    MsgType = 0x0181
	TypeConfigChunk   MsgType = 0x0182
	TypeListenerBatch MsgType = 0x0183

	TypePeerUp       MsgType = 0x0201
	TypeSetLogLevel  MsgType = 0x0202
	TypeGetStatus    MsgType = 0x0203
	TypeShutdown     MsgType = 0x0204
	TypeReload       MsgType = 0x0205
	TypeStatusReply  MsgType = 0x0283
	TypeShutdownDone MsgType = 0x0284

	TypeLoadCertPair MsgType = 0x0301
	TypeCommitCerts  MsgType = 0x0302
	TypeEnsureDKIM   MsgType = 0x0303
	TypeGetLocalCA   MsgType = 0x0304
	TypeCertLoaded   MsgType = 0x0381
	TypeAck          MsgType = 0x0382 // generic empty reply, family FamAny
	TypeDKIMPublic   MsgType = 0x0383
	TypeLocalCA      MsgType = 0x0384

	TypeGetCerts   MsgType = 0x0401
	TypeGetChain   MsgType = 0x0402
	TypeSign       MsgType = 0x0403
	TypeCertBatch  MsgType = 0x0481
	TypeChainChunk MsgType = 0x0482
	TypeSignature  MsgType = 0x0483

	TypeDKIMSign      MsgType = 0x0501
	TypeDKIMSignature MsgType = 0x0581
)

// messageTable is the one place that says what every message type is.
// ErrorReply and Ack are FamAny: replies that may answer a request of any
// family (Ack keeps the number 0x0382 it was given in the keysadmin range).
var messageTable = map[MsgType]msgInfo{
	TypeErrorReply: {"ErrorReply", FamAny, kindReply, func() Message { return new(ErrorReply) }, 0},
	TypeAck:        {"Ack", FamAny, kindReply, func() Message { return new(Ack) }, 0},

	TypeHello:         {"ctl.Hello", FamCtl, kindRequest, func() Message { return new(Hello) }, TypeHelloReply},
	TypeHelloReply:    {"ctl.HelloReply", FamCtl, kindReply, func() Message { return new(HelloReply) }, 0},
	TypeGetConfig:     {"ctl.GetConfig", FamCtl, kindRequest, func() Message { return new(GetConfig) }, TypeConfigChunk},
	TypeConfigChunk:   {"ctl.ConfigChunk", FamCtl, kindReply, func() Message { return new(ConfigChunk) }, 0},
	TypeGetListeners:  {"ctl.GetListeners", FamCtl, kindRequest, func() Message { return new(GetListeners) }, TypeListenerBatch},
	TypeListenerBatch: {"ctl.ListenerBatch", FamCtl, kindReply, func() Message { return new(ListenerBatch) }, 0},
	TypeReady:         {"ctl.Ready", FamCtl, kindEvent, func() Message { return new(Ready) }, 0},
	TypeViolation:     {"ctl.Violation", FamCtl, kindEvent, func() Message { return new(Violation) }, 0},

	TypePeerUp:       {"supervise.PeerUp", FamSupervise, kindEvent, func() Message { return new(PeerUp) }, 0},
	TypeSetLogLevel:  {"supervise.SetLogLevel", FamSupervise, kindEvent, func() Message { return new(SetLogLevel) }, 0},
	TypeGetStatus:    {"supervise.GetStatus", FamSupervise, kindRequest, func() Message { return new(GetStatus) }, TypeStatusReply},
	TypeStatusReply:  {"supervise.StatusReply", FamSupervise, kindReply, func() Message { return new(StatusReply) }, 0},
	TypeShutdown:     {"supervise.Shutdown", FamSupervise, kindRequest, func() Message { return new(Shutdown) }, TypeShutdownDone},
	TypeShutdownDone: {"supervise.ShutdownDone", FamSupervise, kindReply, func() Message { return new(ShutdownDone) }, 0},
	TypeReload:       {"supervise.Reload", FamSupervise, kindEvent, func() Message { return new(Reload) }, 0},

	TypeLoadCertPair: {"keysadmin.LoadCertPair", FamKeysAdmin, kindRequest, func() Message { return new(LoadCertPair) }, TypeCertLoaded},
	TypeCertLoaded:   {"keysadmin.CertLoaded", FamKeysAdmin, kindReply, func() Message { return new(CertLoaded) }, 0},
	TypeCommitCerts:  {"keysadmin.CommitCerts", FamKeysAdmin, kindRequest, func() Message { return new(CommitCerts) }, TypeAck},
	TypeEnsureDKIM:   {"keysadmin.EnsureDKIM", FamKeysAdmin, kindRequest, func() Message { return new(EnsureDKIM) }, TypeDKIMPublic},
	TypeDKIMPublic:   {"keysadmin.DKIMPublic", FamKeysAdmin, kindReply, func() Message { return new(DKIMPublic) }, 0},
	TypeGetLocalCA:   {"keysadmin.GetLocalCA", FamKeysAdmin, kindRequest, func() Message { return new(GetLocalCA) }, TypeLocalCA},
	TypeLocalCA:      {"keysadmin.LocalCA", FamKeysAdmin, kindReply, func() Message { return new(LocalCA) }, 0},

	TypeGetCerts:   {"tls.GetCerts", FamTLS, kindRequest, func() Message { return new(GetCerts) }, TypeCertBatch},
	TypeCertBatch:  {"tls.CertBatch", FamTLS, kindReply, func() Message { return new(CertBatch) }, 0},
	TypeGetChain:   {"tls.GetChain", FamTLS, kindRequest, func() Message { return new(GetChain) }, TypeChainChunk},
	TypeChainChunk: {"tls.ChainChunk", FamTLS, kindReply, func() Message { return new(ChainChunk) }, 0},
	TypeSign:       {"tls.Sign", FamTLS, kindRequest, func() Message { return new(Sign) }, TypeSignature},
	TypeSignature:  {"tls.Signature", FamTLS, kindReply, func() Message { return new(Signature) }, 0},

	TypeDKIMSign:      {"dkim.DKIMSign", FamDKIM, kindRequest, func() Message { return new(DKIMSign) }, TypeDKIMSignature},
	TypeDKIMSignature: {"dkim.DKIMSignature", FamDKIM, kindReply, func() Message { return new(DKIMSignature) }, 0},
}

func lookupType(t MsgType) (msgInfo, bool) {
	info, ok := messageTable[t]
	return info, ok
}

// MessageName returns the message type's name, "ctl.Hello" for example, or
// "unknown(0x....)" for a type that is not defined.
func MessageName(t MsgType) string {
	if info, ok := messageTable[t]; ok {
		return info.name
	}
	return fmt.Sprintf("unknown(%#04x)", uint16(t))
}

// String returns MessageName(t).
func (t MsgType) String() string { return MessageName(t) }

// ReplyType returns the reply type a request of type t expects (ErrorReply
// may always come instead); ok is false if t is not a request type.
func ReplyType(t MsgType) (reply MsgType, ok bool) {
	info, found := messageTable[t]
	if !found || info.kind != kindRequest {
		return 0, false
	}
	return info.reply, true
}

// TypeFamily returns the family of message type t (FamAny for ErrorReply and
// Ack); ok is false for an undefined type.
func TypeFamily(t MsgType) (f Family, ok bool) {
	info, found := messageTable[t]
	return info.fam, found
}

// IsEvent reports whether t is a one-way event type (sent with Conn.Notify).
func IsEvent(t MsgType) bool {
	info, ok := messageTable[t]
	return ok && info.kind == kindEvent
}

// IsRequest reports whether t is a request type (sent with Conn.Call).
func IsRequest(t MsgType) bool {
	info, ok := messageTable[t]
	return ok && info.kind == kindRequest
}

// MessageTypes returns every defined message type, in numeric order.
func MessageTypes() []MsgType {
	var l []MsgType
	for t := range messageTable {
		l = append(l, t)
	}
	slices.Sort(l)
	return l
}
