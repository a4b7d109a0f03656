package sevenbit

import (
	"bytes"
	"testing"
)

func FuzzConvert(f *testing.F) {
	f.Add([]byte(crlfs(mixed)))
	f.Add([]byte("Subject: x\n\nnaïve\nend"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: multipart/alternative; boundary=c\n\n--c\n\nfirst é\n--b\n\nsecond é\n--b--\n"))
	f.Add([]byte("Content-Transfer-Encoding: quoted-printable\n\nr=C3=A9sum\xc3\xa9 =\nx=ZZ\n"))
	f.Add([]byte("Content-Type: message/rfc822\r\n\r\nContent-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: x\r\n\r\n\xe9\r\n--d--\r\n"))
	f.Add([]byte("Content-Transfer-Encoding: base64\n\naGVs\xffbG8=\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		if err := Convert(&out, bytes.NewReader(data), 1<<20); err != nil {
			return
		}
		b := out.Bytes()
		for i, c := range b {
			if c >= 0x80 {
				t.Fatalf("8-bit octet at %d in output %q", i, b)
			}
		}
		for _, l := range bytes.Split(b, []byte("\n")) {
			if len(bytes.TrimSuffix(l, []byte("\r"))) > 998 {
				t.Fatalf("line of %d octets", len(l))
			}
		}
		need, err := Needed(bytes.NewReader(b))
		if err != nil || need {
			t.Fatalf("Needed(output) = %v, %v", need, err)
		}
	})
}
