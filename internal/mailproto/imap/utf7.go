package imap

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
)

// Modified UTF-7 for mailbox names (RFC 3501 §5.1.3). IMAP4rev1 clients, and
// IMAP4rev2 clients that have not enabled UTF8=ACCEPT (RFC 6855 §3), name
// mailboxes this way: printable US-ASCII except "&" stands for itself, "&" is
// written "&-", and everything else is UTF-16 in a modified base64 (","
// instead of "/", no padding) between "&" and "-".

const mutf7Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,"

// EncodeMailboxUTF7 returns name in modified UTF-7. Invalid UTF-8 in name is
// encoded as U+FFFD.
func EncodeMailboxUTF7(name string) string {
	var b strings.Builder
	var units []uint16
	flush := func() {
		if len(units) == 0 {
			return
		}
		b.WriteByte('&')
		var acc uint32
		var bits uint
		for _, u := range units {
			acc = acc<<16 | uint32(u)
			bits += 16
			for bits >= 6 {
				bits -= 6
				b.WriteByte(mutf7Alphabet[(acc>>bits)&0x3f])
			}
		}
		if bits > 0 {
			b.WriteByte(mutf7Alphabet[(acc<<(6-bits))&0x3f])
		}
		b.WriteByte('-')
		units = units[:0]
	}
	for _, r := range name {
		if r >= 0x20 && r <= 0x7e {
			flush()
			if r == '&' {
				b.WriteString("&-")
			} else {
				b.WriteRune(r)
			}
			continue
		}
		units = utf16.AppendRune(units, r)
	}
	flush()
	return b.String()
}

// DecodeMailboxUTF7 decodes a modified UTF-7 mailbox name. It is strict: it
// accepts exactly the strings EncodeMailboxUTF7 produces, rejecting 8-bit
// and control characters, a bare "&", bad or non-shortest base64, nonzero
// padding bits, unpaired surrogates, printable US-ASCII that was encoded
// (RFC 3501 §5.1.3 "MUST NOT"), and two encoded runs back to back.
func DecodeMailboxUTF7(s string) (string, error) {
	var b strings.Builder
	prevEncoded := false // the previous run was base64: "&...-&...-" is not shortest
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return "", fmt.Errorf("modified UTF-7: byte 0x%02x at offset %d must be encoded", c, i)
		}
		if c != '&' {
			b.WriteByte(c)
			prevEncoded = false
			i++
			continue
		}
		end := strings.IndexByte(s[i+1:], '-')
		if end < 0 {
			return "", fmt.Errorf("modified UTF-7: \"&\" at offset %d is not closed by \"-\" (write \"&-\" for \"&\")", i)
		}
		enc := s[i+1 : i+1+end]
		if enc == "" {
			b.WriteByte('&')
			prevEncoded = false
			i += 2
			continue
		}
		if prevEncoded {
			return "", fmt.Errorf("modified UTF-7: encoded runs at offset %d are not merged", i)
		}
		text, err := decodeMUTF7Run(enc)
		if err != nil {
			return "", fmt.Errorf("modified UTF-7: at offset %d: %v", i, err)
		}
		b.WriteString(text)
		prevEncoded = true
		i += end + 2
	}
	return b.String(), nil
}

// decodeMUTF7Run decodes the base64 between "&" and "-".
func decodeMUTF7Run(enc string) (string, error) {
	var units []uint16
	var acc uint32
	var bits uint
	for i := 0; i < len(enc); i++ {
		v := strings.IndexByte(mutf7Alphabet, enc[i])
		if v < 0 {
			return "", fmt.Errorf("%q is not a modified base64 character", enc[i])
		}
		acc = acc<<6 | uint32(v)
		bits += 6
		if bits >= 16 {
			bits -= 16
			units = append(units, uint16(acc>>bits))
			acc &= 1<<bits - 1
		}
	}
	// Shortest form: fewer than 6 leftover bits, all zero.
	if bits >= 6 {
		return "", errors.New("base64 run has extra characters")
	}
	if acc != 0 {
		return "", errors.New("base64 run has nonzero padding bits")
	}
	var b strings.Builder
	for i := 0; i < len(units); i++ {
		u := units[i]
		var r rune
		switch {
		case utf16.IsSurrogate(rune(u)):
			if u >= 0xdc00 || i+1 >= len(units) {
				return "", errors.New("unpaired UTF-16 surrogate")
			}
			r = utf16.DecodeRune(rune(u), rune(units[i+1]))
			if r == 0xfffd {
				return "", errors.New("unpaired UTF-16 surrogate")
			}
			i++
		case u >= 0x20 && u <= 0x7e:
			return "", fmt.Errorf("printable US-ASCII %q must not be encoded", rune(u))
		default:
			r = rune(u)
		}
		b.WriteRune(r)
	}
	return b.String(), nil
}
