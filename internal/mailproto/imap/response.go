package imap

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Writing responses: strings in the cheapest form the grammar allows,
// mailbox names, status responses and response codes (RFC 9051 §7.1).

// Status is the condition of a status response.
type Status string

const (
	OK      Status = "OK"
	NO      Status = "NO"
	BAD     Status = "BAD"
	BYE     Status = "BYE"
	PREAUTH Status = "PREAUTH"
)

// Quote returns s as an astring for a response, assuming no UTF8=ACCEPT:
// an atom, a quoted string or a literal.
func Quote(s string) string { return string(AppendAString(nil, s, false)) }

// AppendAString appends s as an atom if it is one (and not "NIL"), else as a
// string (see AppendString).
func AppendAString(buf []byte, s string, utf8OK bool) []byte {
	if s != "" && !strings.EqualFold(s, "NIL") {
		atom := true
		for i := 0; i < len(s) && atom; i++ {
			atom = isAStringChar(s[i])
		}
		if atom {
			return append(buf, s...)
		}
	}
	return AppendString(buf, s, utf8OK)
}

// AppendString appends s as a quoted string, or as a literal when it holds
// CR, LF or NUL, or 8-bit text when utf8OK is false (quoted strings carry
// UTF-8 only in IMAP4rev2 or with UTF8=ACCEPT) or invalid UTF-8.
func AppendString(buf []byte, s string, utf8OK bool) []byte {
	literal := !utf8.ValidString(s)
	for i := 0; i < len(s) && !literal; i++ {
		c := s[i]
		literal = c == '\r' || c == '\n' || c == 0 || (c >= 0x80 && !utf8OK)
	}
	if literal {
		buf = append(buf, '{')
		buf = strconv.AppendInt(buf, int64(len(s)), 10)
		buf = append(buf, "}\r\n"...)
		return append(buf, s...)
	}
	buf = append(buf, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			buf = append(buf, '\\')
		}
		buf = append(buf, s[i])
	}
	return append(buf, '"')
}

// AppendNString appends s as a string, or NIL if s is nil.
func AppendNString(buf []byte, s *string, utf8OK bool) []byte {
	if s == nil {
		return append(buf, "NIL"...)
	}
	return AppendString(buf, *s, utf8OK)
}

// AppendMailbox appends a mailbox name: in modified UTF-7 unless the client
// enabled UTF8=ACCEPT.
func AppendMailbox(buf []byte, name string, utf8Enabled bool) []byte {
	if !utf8Enabled {
		name = EncodeMailboxUTF7(name)
	}
	return AppendAString(buf, name, utf8Enabled)
}

// AppendStatus appends a status response: tag ("*" for untagged), status,
// optional response code without brackets, and text. CR and LF in code or
// text become spaces; an empty text becomes the status word, since RFC
// 3501 requires text.
func AppendStatus(buf []byte, tag string, st Status, code, text string) []byte {
	clean := strings.NewReplacer("\r", " ", "\n", " ")
	if tag == "" {
		tag = "*"
	}
	buf = append(buf, tag...)
	buf = append(buf, ' ')
	buf = append(buf, st...)
	buf = append(buf, ' ')
	if code != "" {
		buf = append(buf, '[')
		buf = append(buf, clean.Replace(code)...)
		buf = append(buf, "] "...)
	}
	if text == "" {
		text = string(st)
	}
	buf = append(buf, clean.Replace(text)...)
	return append(buf, "\r\n"...)
}

// Response codes (RFC 9051 §7.1, RFC 5530, RFC 4315, RFC 7162), without the
// brackets, for AppendStatus.
const (
	CodeNoModSeq             = "NOMODSEQ"
	CodeClosed               = "CLOSED"
	CodeTryCreate            = "TRYCREATE"
	CodeNonExistent          = "NONEXISTENT"
	CodeAlreadyExists        = "ALREADYEXISTS"
	CodeOverQuota            = "OVERQUOTA"
	CodeLimit                = "LIMIT"
	CodeAuthenticationFailed = "AUTHENTICATIONFAILED"
	CodeUnavailable          = "UNAVAILABLE"
	CodePrivacyRequired      = "PRIVACYREQUIRED"
	CodeCannot               = "CANNOT"
	CodeNoPerm               = "NOPERM"
	CodeInUse                = "INUSE"
	CodeServerBug            = "SERVERBUG"
	CodeTooBig               = "TOOBIG" // RFC 7889 §4
)

// CodeCapability is [CAPABILITY caps...].
func CodeCapability(caps ...string) string { return "CAPABILITY " + strings.Join(caps, " ") }

// CodeUIDValidity is [UIDVALIDITY n].
func CodeUIDValidity(n uint32) string { return "UIDVALIDITY " + strconv.FormatUint(uint64(n), 10) }

// CodeUIDNext is [UIDNEXT n].
func CodeUIDNext(n uint32) string { return "UIDNEXT " + strconv.FormatUint(uint64(n), 10) }

// CodeHighestModSeq is [HIGHESTMODSEQ n].
func CodeHighestModSeq(n uint64) string { return "HIGHESTMODSEQ " + strconv.FormatUint(n, 10) }

// CodeCopyUID is [COPYUID uidvalidity src dst] (RFC 4315 §3); src[i] was
// copied to dst[i].
func CodeCopyUID(uidValidity uint32, src, dst []uint32) string {
	return "COPYUID " + strconv.FormatUint(uint64(uidValidity), 10) + " " + FormatUIDSet(src) + " " + FormatUIDSet(dst)
}

// CodeAppendUID is [APPENDUID uidvalidity uid-set] (RFC 4315 §3, a set for
// MULTIAPPEND).
func CodeAppendUID(uidValidity uint32, uids ...uint32) string {
	return "APPENDUID " + strconv.FormatUint(uint64(uidValidity), 10) + " " + FormatUIDSet(uids)
}

// CodeModified is [MODIFIED set] (RFC 7162 §3.1.3).
func CodeModified(nums []uint32) string { return "MODIFIED " + FormatUIDSet(nums) }
