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
	TypeProgress      MsgType = 0x0106
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

	TypeRcptCheck     MsgType = 0x0601
	TypeNewBody       MsgType = 0x0602
	TypeDeliver       MsgType = 0x0603
	TypeReleaseBody   MsgType = 0x0604
	TypeBodyFile      MsgType = 0x0605
	TypeRcptResult    MsgType = 0x0681
	TypeBodyPipe      MsgType = 0x0682
	TypeDeliverResult MsgType = 0x0683
	TypeBodyFileReply MsgType = 0x0684

	// session: authentication (0x0701-0x071f, 0x0781-0x079f)
	TypeAuthStart    MsgType = 0x0701
	TypeAuthContinue MsgType = 0x0702
	TypeAuthAbort    MsgType = 0x0703
	TypeTokenCheck   MsgType = 0x0704
	TypeTokenRevoke  MsgType = 0x0705
	TypeAuthStep     MsgType = 0x0781
	TypeTokenInfo    MsgType = 0x0782

	// session: mailboxes and messages (0x0701-0x071f and 0x0781-0x079f
	// are authentication).
	TypeSessionOpen    MsgType = 0x0720
	TypeSessionClose   MsgType = 0x0721
	TypeMailboxGet     MsgType = 0x0722
	TypeMailboxPageReq MsgType = 0x0723
	TypeMailboxChange  MsgType = 0x0724
	TypeMessagesReq    MsgType = 0x0725
	TypeMessageOpen    MsgType = 0x0726
	TypeFlagsStore     MsgType = 0x0727
	TypeCopyMessages   MsgType = 0x0728
	TypeExpunge        MsgType = 0x0729
	TypeChangesReq     MsgType = 0x072b
	TypeSearch         MsgType = 0x072c
	TypeSessionInfo    MsgType = 0x07a0
	TypeMailboxReply   MsgType = 0x07a2
	TypeMailboxPage    MsgType = 0x07a3
	TypeMessageBatch   MsgType = 0x07a5
	TypeMessageFile    MsgType = 0x07a6
	TypeFlagsStored    MsgType = 0x07a7
	TypeCopyResult     MsgType = 0x07a8
	TypeExpunged       MsgType = 0x07a9
	TypeChangesReply   MsgType = 0x07ab
	TypeSearchResult   MsgType = 0x07ac

	// session: MULTIAPPEND (msg_append.go) and QUOTA (msg_quota.go).
	TypeAppendMessages   MsgType = 0x072d
	TypeQuotaGet         MsgType = 0x072e
	TypeAppendedMessages MsgType = 0x07ad
	TypeQuotaInfo        MsgType = 0x07ae

	// session: SORT and THREAD keys (msg_sortkeys.go).
	TypeSortKeysReq MsgType = 0x072f
	TypeSortKeys    MsgType = 0x07af

	TypeNewSpool      MsgType = 0x0801
	TypeAddRecipients MsgType = 0x0802
	TypeSubmit        MsgType = 0x0803
	TypeSpoolPipe     MsgType = 0x0881
	TypeSubmitted     MsgType = 0x0883

	TypeDMARCEval MsgType = 0x0901

	TypeQueueBackup          MsgType = 0x0a01
	TypeQueueList            MsgType = 0x0a02
	TypeQueueDump            MsgType = 0x0a03
	TypeQueueAction          MsgType = 0x0a04
	TypeQueueHoldRules       MsgType = 0x0a05
	TypeQueueRetired         MsgType = 0x0a06
	TypeQueueSuppress        MsgType = 0x0a07
	TypeQueueWebhooks        MsgType = 0x0a08
	TypeQueueSendmail        MsgType = 0x0a09
	TypeQueueDNSCheck        MsgType = 0x0a0a // answered with QueueText
	TypeQueueBackupResult    MsgType = 0x0a81
	TypeQueueListing         MsgType = 0x0a82
	TypeQueueText            MsgType = 0x0a83
	TypeQueueCount           MsgType = 0x0a84
	TypeQueueHoldRuleList    MsgType = 0x0a85
	TypeQueueRetiredList     MsgType = 0x0a86
	TypeQueueSuppressionList MsgType = 0x0a87
	TypeQueueWebhookList     MsgType = 0x0a88
	TypeQueueSendmailResult  MsgType = 0x0a89

	TypeMailboxChanged MsgType = 0x0c01
	TypeResync         MsgType = 0x0c02

	TypeAccountPassword   MsgType = 0x0b01
	TypeAccountRemove     MsgType = 0x0b02
	TypeAccountUsage      MsgType = 0x0b03
	TypeMailboxList       MsgType = 0x0b04
	TypeImportBegin       MsgType = 0x0b05
	TypeImportMbox        MsgType = 0x0b06
	TypeImportFiles       MsgType = 0x0b07
	TypeImportEnd         MsgType = 0x0b08
	TypeExport            MsgType = 0x0b09
	TypeBackup            MsgType = 0x0b0a
	TypeLocalDeliver      MsgType = 0x0b0b
	TypeAccountUsageReply MsgType = 0x0b83
	TypeMailboxNames      MsgType = 0x0b84
	TypeImportResult      MsgType = 0x0b88
	TypeExportResult      MsgType = 0x0b89
	TypeBackupResult      MsgType = 0x0b8a
	TypeLocalDelivered    MsgType = 0x0b8b

	TypeLocalRetry MsgType = 0x0d01

	TypeIncomingDelivery MsgType = 0x0e01
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
	TypeProgress:      {"ctl.Progress", FamCtl, kindEvent, func() Message { return new(Progress) }, 0},

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

	TypeRcptCheck:     {"deliver.RcptCheck", FamDeliver, kindRequest, func() Message { return new(RcptCheck) }, TypeRcptResult},
	TypeRcptResult:    {"deliver.RcptResult", FamDeliver, kindReply, func() Message { return new(RcptResult) }, 0},
	TypeNewBody:       {"deliver.NewBody", FamDeliver, kindRequest, func() Message { return new(NewBody) }, TypeBodyPipe},
	TypeBodyPipe:      {"deliver.BodyPipe", FamDeliver, kindReply, func() Message { return new(BodyPipe) }, 0},
	TypeDeliver:       {"deliver.Deliver", FamDeliver, kindRequest, func() Message { return new(Deliver) }, TypeDeliverResult},
	TypeDeliverResult: {"deliver.DeliverResult", FamDeliver, kindReply, func() Message { return new(DeliverResult) }, 0},
	TypeReleaseBody:   {"deliver.ReleaseBody", FamDeliver, kindEvent, func() Message { return new(ReleaseBody) }, 0},
	TypeBodyFile:      {"deliver.BodyFile", FamDeliver, kindRequest, func() Message { return new(BodyFile) }, TypeBodyFileReply},
	TypeBodyFileReply: {"deliver.BodyFileReply", FamDeliver, kindReply, func() Message { return new(BodyFileReply) }, 0},

	// session: authentication
	TypeAuthStart:    {"session.AuthStart", FamSession, kindRequest, func() Message { return new(AuthStart) }, TypeAuthStep},
	TypeAuthContinue: {"session.AuthContinue", FamSession, kindRequest, func() Message { return new(AuthContinue) }, TypeAuthStep},
	TypeAuthStep:     {"session.AuthStep", FamSession, kindReply, func() Message { return new(AuthStep) }, 0},
	TypeAuthAbort:    {"session.AuthAbort", FamSession, kindRequest, func() Message { return new(AuthAbort) }, TypeAck},
	TypeTokenCheck:   {"session.TokenCheck", FamSession, kindRequest, func() Message { return new(TokenCheck) }, TypeTokenInfo},
	TypeTokenInfo:    {"session.TokenInfo", FamSession, kindReply, func() Message { return new(TokenInfo) }, 0},
	TypeTokenRevoke:  {"session.TokenRevoke", FamSession, kindEvent, func() Message { return new(TokenRevoke) }, 0},

	// session: mailboxes and messages
	TypeSessionOpen:    {"session.SessionOpen", FamSession, kindRequest, func() Message { return new(SessionOpen) }, TypeSessionInfo},
	TypeSessionInfo:    {"session.SessionInfo", FamSession, kindReply, func() Message { return new(SessionInfo) }, 0},
	TypeSessionClose:   {"session.SessionClose", FamSession, kindEvent, func() Message { return new(SessionClose) }, 0},
	TypeMailboxGet:     {"session.MailboxGet", FamSession, kindRequest, func() Message { return new(MailboxGet) }, TypeMailboxReply},
	TypeMailboxReply:   {"session.MailboxReply", FamSession, kindReply, func() Message { return new(MailboxReply) }, 0},
	TypeMailboxPageReq: {"session.MailboxPageReq", FamSession, kindRequest, func() Message { return new(MailboxPageReq) }, TypeMailboxPage},
	TypeMailboxPage:    {"session.MailboxPage", FamSession, kindReply, func() Message { return new(MailboxPage) }, 0},
	TypeMailboxChange:  {"session.MailboxChange", FamSession, kindRequest, func() Message { return new(MailboxChange) }, TypeMailboxReply},
	TypeMessagesReq:    {"session.MessagesReq", FamSession, kindRequest, func() Message { return new(MessagesReq) }, TypeMessageBatch},
	TypeMessageBatch:   {"session.MessageBatch", FamSession, kindReply, func() Message { return new(MessageBatch) }, 0},
	TypeMessageOpen:    {"session.MessageOpen", FamSession, kindRequest, func() Message { return new(MessageOpen) }, TypeMessageFile},
	TypeMessageFile:    {"session.MessageFile", FamSession, kindReply, func() Message { return new(MessageFile) }, 0},
	TypeFlagsStore:     {"session.FlagsStore", FamSession, kindRequest, func() Message { return new(FlagsStore) }, TypeFlagsStored},
	TypeFlagsStored:    {"session.FlagsStored", FamSession, kindReply, func() Message { return new(FlagsStored) }, 0},
	TypeCopyMessages:   {"session.CopyMessages", FamSession, kindRequest, func() Message { return new(CopyMessages) }, TypeCopyResult},
	TypeCopyResult:     {"session.CopyResult", FamSession, kindReply, func() Message { return new(CopyResult) }, 0},
	TypeExpunge:        {"session.Expunge", FamSession, kindRequest, func() Message { return new(Expunge) }, TypeExpunged},
	TypeExpunged:       {"session.Expunged", FamSession, kindReply, func() Message { return new(Expunged) }, 0},
	TypeChangesReq:     {"session.ChangesReq", FamSession, kindRequest, func() Message { return new(ChangesReq) }, TypeChangesReply},
	TypeChangesReply:   {"session.ChangesReply", FamSession, kindReply, func() Message { return new(ChangesReply) }, 0},
	TypeSearch:         {"session.Search", FamSession, kindRequest, func() Message { return new(Search) }, TypeSearchResult},
	TypeSearchResult:   {"session.SearchResult", FamSession, kindReply, func() Message { return new(SearchResult) }, 0},

	TypeAppendMessages:   {"session.AppendMessages", FamSession, kindRequest, func() Message { return new(AppendMessages) }, TypeAppendedMessages},
	TypeAppendedMessages: {"session.AppendedMessages", FamSession, kindReply, func() Message { return new(AppendedMessages) }, 0},
	TypeQuotaGet:         {"session.QuotaGet", FamSession, kindRequest, func() Message { return new(QuotaGet) }, TypeQuotaInfo},
	TypeQuotaInfo:        {"session.QuotaInfo", FamSession, kindReply, func() Message { return new(QuotaInfo) }, 0},
	TypeSortKeysReq:      {"session.SortKeysReq", FamSession, kindRequest, func() Message { return new(SortKeysReq) }, TypeSortKeys},
	TypeSortKeys:         {"session.SortKeys", FamSession, kindReply, func() Message { return new(SortKeys) }, 0},

	TypeNewSpool:      {"submit.NewSpool", FamSubmit, kindRequest, func() Message { return new(NewSpool) }, TypeSpoolPipe},
	TypeSpoolPipe:     {"submit.SpoolPipe", FamSubmit, kindReply, func() Message { return new(SpoolPipe) }, 0},
	TypeAddRecipients: {"submit.AddRecipients", FamSubmit, kindRequest, func() Message { return new(AddRecipients) }, TypeAck},
	TypeSubmit:        {"submit.Submit", FamSubmit, kindRequest, func() Message { return new(Submit) }, TypeSubmitted},
	TypeSubmitted:     {"submit.Submitted", FamSubmit, kindReply, func() Message { return new(Submitted) }, 0},

	TypeDMARCEval: {"reports.DMARCEval", FamReports, kindEvent, func() Message { return new(DMARCEval) }, 0},

	TypeQueueBackup:          {"queueadmin.Backup", FamQueueAdmin, kindRequest, func() Message { return new(QueueBackup) }, TypeQueueBackupResult},
	TypeQueueBackupResult:    {"queueadmin.BackupResult", FamQueueAdmin, kindReply, func() Message { return new(QueueBackupResult) }, 0},
	TypeQueueList:            {"queueadmin.List", FamQueueAdmin, kindRequest, func() Message { return new(QueueList) }, TypeQueueListing},
	TypeQueueListing:         {"queueadmin.Listing", FamQueueAdmin, kindReply, func() Message { return new(QueueListing) }, 0},
	TypeQueueDump:            {"queueadmin.Dump", FamQueueAdmin, kindRequest, func() Message { return new(QueueDump) }, TypeQueueText},
	TypeQueueText:            {"queueadmin.Text", FamQueueAdmin, kindReply, func() Message { return new(QueueText) }, 0},
	TypeQueueAction:          {"queueadmin.Action", FamQueueAdmin, kindRequest, func() Message { return new(QueueAction) }, TypeQueueCount},
	TypeQueueCount:           {"queueadmin.Count", FamQueueAdmin, kindReply, func() Message { return new(QueueCount) }, 0},
	TypeQueueHoldRules:       {"queueadmin.HoldRules", FamQueueAdmin, kindRequest, func() Message { return new(QueueHoldRules) }, TypeQueueHoldRuleList},
	TypeQueueHoldRuleList:    {"queueadmin.HoldRuleList", FamQueueAdmin, kindReply, func() Message { return new(QueueHoldRuleList) }, 0},
	TypeQueueRetired:         {"queueadmin.Retired", FamQueueAdmin, kindRequest, func() Message { return new(QueueRetired) }, TypeQueueRetiredList},
	TypeQueueRetiredList:     {"queueadmin.RetiredList", FamQueueAdmin, kindReply, func() Message { return new(QueueRetiredList) }, 0},
	TypeQueueSuppress:        {"queueadmin.Suppress", FamQueueAdmin, kindRequest, func() Message { return new(QueueSuppress) }, TypeQueueSuppressionList},
	TypeQueueSuppressionList: {"queueadmin.SuppressionList", FamQueueAdmin, kindReply, func() Message { return new(QueueSuppressionList) }, 0},
	TypeQueueWebhooks:        {"queueadmin.Webhooks", FamQueueAdmin, kindRequest, func() Message { return new(QueueWebhooks) }, TypeQueueWebhookList},
	TypeQueueWebhookList:     {"queueadmin.WebhookList", FamQueueAdmin, kindReply, func() Message { return new(QueueWebhookList) }, 0},
	TypeQueueSendmail:        {"queueadmin.Sendmail", FamQueueAdmin, kindRequest, func() Message { return new(QueueSendmail) }, TypeQueueSendmailResult},
	TypeQueueSendmailResult:  {"queueadmin.SendmailResult", FamQueueAdmin, kindReply, func() Message { return new(QueueSendmailResult) }, 0},
	TypeQueueDNSCheck:        {"queueadmin.DNSCheck", FamQueueAdmin, kindRequest, func() Message { return new(QueueDNSCheck) }, TypeQueueText},

	TypeLocalRetry: {"localretry.LocalRetry", FamRetry, kindRequest, func() Message { return new(LocalRetry) }, TypeAck},

	TypeIncomingDelivery: {"incoming.IncomingDelivery", FamIncoming, kindEvent, func() Message { return new(IncomingDelivery) }, 0},

	TypeMailboxChanged: {"events.MailboxChanged", FamEvents, kindEvent, func() Message { return new(MailboxChanged) }, 0},
	TypeResync:         {"events.Resync", FamEvents, kindEvent, func() Message { return new(Resync) }, 0},

	TypeAccountPassword:   {"storeadmin.AccountPassword", FamStoreAdmin, kindRequest, func() Message { return new(AccountPassword) }, TypeAck},
	TypeAccountRemove:     {"storeadmin.AccountRemove", FamStoreAdmin, kindRequest, func() Message { return new(AccountRemove) }, TypeAck},
	TypeAccountUsage:      {"storeadmin.AccountUsage", FamStoreAdmin, kindRequest, func() Message { return new(AccountUsage) }, TypeAccountUsageReply},
	TypeAccountUsageReply: {"storeadmin.AccountUsageReply", FamStoreAdmin, kindReply, func() Message { return new(AccountUsageReply) }, 0},
	TypeMailboxList:       {"storeadmin.MailboxList", FamStoreAdmin, kindRequest, func() Message { return new(MailboxList) }, TypeMailboxNames},
	TypeMailboxNames:      {"storeadmin.MailboxNames", FamStoreAdmin, kindReply, func() Message { return new(MailboxNames) }, 0},
	TypeImportBegin:       {"storeadmin.ImportBegin", FamStoreAdmin, kindRequest, func() Message { return new(ImportBegin) }, TypeAck},
	TypeImportMbox:        {"storeadmin.ImportMbox", FamStoreAdmin, kindRequest, func() Message { return new(ImportMbox) }, TypeAck},
	TypeImportFiles:       {"storeadmin.ImportFiles", FamStoreAdmin, kindRequest, func() Message { return new(ImportFiles) }, TypeAck},
	TypeImportEnd:         {"storeadmin.ImportEnd", FamStoreAdmin, kindRequest, func() Message { return new(ImportEnd) }, TypeImportResult},
	TypeImportResult:      {"storeadmin.ImportResult", FamStoreAdmin, kindReply, func() Message { return new(ImportResult) }, 0},
	TypeExport:            {"storeadmin.Export", FamStoreAdmin, kindRequest, func() Message { return new(Export) }, TypeExportResult},
	TypeExportResult:      {"storeadmin.ExportResult", FamStoreAdmin, kindReply, func() Message { return new(ExportResult) }, 0},
	TypeBackup:            {"storeadmin.Backup", FamStoreAdmin, kindRequest, func() Message { return new(Backup) }, TypeBackupResult},
	TypeBackupResult:      {"storeadmin.BackupResult", FamStoreAdmin, kindReply, func() Message { return new(BackupResult) }, 0},
	TypeLocalDeliver:      {"storeadmin.LocalDeliver", FamStoreAdmin, kindRequest, func() Message { return new(LocalDeliver) }, TypeLocalDelivered},
	TypeLocalDelivered:    {"storeadmin.LocalDelivered", FamStoreAdmin, kindReply, func() Message { return new(LocalDelivered) }, 0},
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
