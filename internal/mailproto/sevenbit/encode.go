package sevenbit

import "bytes"

// qpLine is the longest encoded line, soft line break included (RFC 2045
// §6.7 rule 5).
const qpLine = 76

const hexDigits = "0123456789ABCDEF"

// qpEncode returns b quoted-printable encoded (RFC 2045 §6.7). Each CRLF
// of b is a hard line break; any other CR or LF is encoded, so decoding
// gives back exactly b.
func qpEncode(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/8)
	lines := bytes.Split(b, crlf)
	for i, l := range lines {
		col := 0
		for j, c := range l {
			// Rule 2 and 3: printable ASCII but "=" as itself, space and
			// tab too except at the end of a line, everything else as =XX.
			literal := c >= '!' && c <= '~' && c != '='
			literal = literal || (c == ' ' || c == '\t') && j < len(l)-1
			n := 3
			if literal {
				n = 1
			}
			// Rule 5: a soft line break ("=" at the end of the line)
			// keeps lines within qpLine.
			if col+n > qpLine-1 {
				out = append(out, '=', '\r', '\n')
				col = 0
			}
			if literal {
				out = append(out, c)
			} else {
				out = append(out, '=', hexDigits[c>>4], hexDigits[c&0x0f])
			}
			col += n
		}
		if i < len(lines)-1 {
			out = append(out, crlf...)
		}
	}
	return out
}

// qpDecode decodes quoted-printable leniently, for repairing a part that
// breaks the encoding's rules: an "=" not followed by two hex digits and
// octets that should have been encoded are taken as themselves (RFC 2045
// §6.7, note 1). Transport padding is removed (rule 3).
func qpDecode(b []byte) []byte {
	out := make([]byte, 0, len(b))
	lines := bytes.Split(b, crlf)
	for i, l := range lines {
		l = bytes.TrimRight(l, " \t")
		soft := false
		if n := len(l); n > 0 && l[n-1] == '=' {
			l, soft = l[:n-1], true
		}
		for j := 0; j < len(l); j++ {
			if l[j] == '=' && j+2 < len(l) && isHex(l[j+1]) && isHex(l[j+2]) {
				out = append(out, unhex(l[j+1])<<4|unhex(l[j+2]))
				j += 2
				continue
			}
			out = append(out, l[j])
		}
		if !soft && i < len(lines)-1 {
			out = append(out, crlf...)
		}
	}
	return out
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' || c >= 'a' && c <= 'f'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// rewrapBase64 keeps only the base64 alphabet of b, which is all a decoder
// looks at (RFC 2045 §6.8), in lines of 76 characters.
func rewrapBase64(b []byte) []byte {
	var out []byte
	col := 0
	for _, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=') {
			continue
		}
		if col == qpLine {
			out = append(out, crlf...)
			col = 0
		}
		out = append(out, c)
		col++
	}
	return out
}
