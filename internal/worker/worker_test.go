package worker

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"moxd/internal/config"
)

func TestDecodeSlice(t *testing.T) {
	keys := config.Slice{
		Role:     "keys",
		Hostname: "mail.example.org",
		Dir:      "/var/db/moxd/keys",
		Keys:     &config.KeysSlice{LocalCANames: []string{"mail.example.org"}, CertNames: []string{"fullchain"}},
	}
	keysJSON, err := json.Marshal(keys)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		in      string
		want    *config.Slice // nil: error expected
		wantErr string
	}{
		{name: "as master marshals it", in: string(keysJSON), want: &keys},
		{name: "submission", in: `{"role":"submission","hostname":"mail.example.org","smtp":{"submission":true}}`,
			want: &config.Slice{Role: "submission", Hostname: "mail.example.org", SMTP: &config.SMTPSlice{Submission: true}}},
		{name: "imap", in: `{"role":"imap","hostname":"mail.example.org","imap":{}}`,
			want: &config.Slice{Role: "imap", Hostname: "mail.example.org", IMAP: &config.IMAPSlice{}}},
		{name: "surrounding whitespace", in: " \n{\"role\":\"web\",\"hostname\":\"h\",\"web\":{}}\n ",
			want: &config.Slice{Role: "web", Hostname: "h", Web: &config.NetSlice{}}},
		{name: "unknown field", in: `{"role":"smtp","hostname":"h","relay":"evil.example"}`, wantErr: "relay"},
		{name: "unknown nested field", in: `{"role":"smtp","hostname":"h","smtp":{"submission":false,"auth":true}}`, wantErr: "auth"},
		{name: "second object", in: `{"role":"smtp","hostname":"h"}{"role":"keys","hostname":"h"}`, wantErr: "trailing data"},
		{name: "trailing text", in: `{"role":"smtp","hostname":"h"} x`, wantErr: "trailing data"},
		{name: "trailing brace", in: `{"role":"smtp","hostname":"h"}}`, wantErr: "trailing data"},
		{name: "trailing bracket", in: `{"role":"smtp","hostname":"h"}]x`, wantErr: "trailing data"},
		{name: "trailing number", in: `{"role":"smtp","hostname":"h"} 1`, wantErr: "trailing data"},
		{name: "wrong type", in: `{"role":"smtp","hostname":7}`, wantErr: "hostname"},
		{name: "truncated", in: `{"role":"smtp","hostname":"h"`, wantErr: "config slice"},
		{name: "empty", in: ``, wantErr: "config slice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got config.Slice
			err := DecodeSlice([]byte(tc.in), &got)
			if tc.want != nil {
				if err != nil {
					t.Fatalf("DecodeSlice: %v", err)
				}
				if !reflect.DeepEqual(got, *tc.want) {
					t.Errorf("decoded %+v, want %+v", got, *tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("DecodeSlice(%q) accepted: %+v", tc.in, got)
			}
			for _, s := range []string{"config slice from master", tc.wantErr} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}
