package smtp

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestAuth(t *testing.T) {
	// The test mechanism: "TWO" sends challenge "c1", wants response
	// "r1", then sends final data "ok" and wants an empty response.
	var gotInitial []byte
	var gotHasInitial bool
	ts := &testSession{
		mechs: []string{"PLAIN", "TWO"},
		auth: func(mech string, initial []byte, hasInitial bool, exchange func([]byte) ([]byte, error)) (string, error) {
			gotInitial, gotHasInitial = initial, hasInitial
			switch mech {
			case "PLAIN":
				if !hasInitial {
					resp, err := exchange(nil)
					if err != nil {
						return "", err
					}
					initial = resp
				}
				if !bytes.Equal(initial, []byte("\x00mjl\x00secret")) {
					return "", errorReply(535, "5.7.8", "authentication failed")
				}
				return "mjl", nil
			case "TWO":
				resp, err := exchange([]byte("c1"))
				if err != nil {
					return "", err
				}
				if string(resp) != "r1" {
					return "", errorReply(535, "5.7.8", "authentication failed")
				}
				if resp, err := exchange([]byte("ok")); err != nil || len(resp) != 0 {
					return "", errorReply(535, "5.7.8", "authentication failed")
				}
				return "other", nil
			}
			return "", errors.New("unexpected mechanism")
		},
	}
	s := startSession(t, Config{Submission: true, Session: ts})
	s.reply()
	s.expect("AUTH PLAIN AG1qbABzZWNyZXQ=", "503 5.5.1")
	if got := s.cmd("EHLO client.example"); !strings.Contains(got, "250-AUTH PLAIN TWO") {
		t.Fatalf("EHLO %q lacks AUTH", got)
	}
	s.expect("AUTH", "501 5.5.4")
	s.expect("AUTH CRAM-MD5", "504 5.5.4")
	s.expect("AUTH PLAIN !!!", "501 5.5.2")
	s.expect("AUTH PLAIN AG1qbABvdGhlcg==", "535 5.7.8")
	// "=" is an empty initial response (RFC 4954 §4).
	s.expect("AUTH PLAIN =", "535 5.7.8")
	if !gotHasInitial || len(gotInitial) != 0 {
		t.Fatalf("empty initial response: %q %v", gotInitial, gotHasInitial)
	}
	// Without initial response: an empty challenge, then the response.
	s.expect("AUTH PLAIN", "334 ")
	s.expect("*", "501 5.0.0")
	s.expect("AUTH PLAIN", "334 ")
	s.expect("not base64!", "501 5.5.2")
	s.expect("AUTH TWO", "334 YzE=")
	s.expect("cjE=", "334 b2s=")
	s.expect("", "235 2.7.0")
	if got := s.cmd("EHLO client.example"); strings.Contains(got, "AUTH") {
		t.Fatalf("EHLO after AUTH %q still offers AUTH", got)
	}
	s.expect("AUTH PLAIN AG1qbABzZWNyZXQ=", "503 5.5.1 already authenticated")
	s.expect("MAIL FROM:<a@example.org>", "250")
}

func TestAuthNotOffered(t *testing.T) {
	// Port 25: no mechanisms, no AUTH extension; AUTH gets 502.
	s, _ := mailSession(t, Config{})
	s.expect("AUTH PLAIN AG1qbABzZWNyZXQ=", "502 5.5.1 AUTH is not available on this port")
	if got := s.cmd("EHLO client.example"); strings.Contains(got, "AUTH") {
		t.Fatalf("EHLO %q offers AUTH", got)
	}
}

func TestAuthResponseTooLong(t *testing.T) {
	s, _ := mailSession(t, Config{Submission: true, Session: &testSession{mechs: []string{"PLAIN"}}})
	s.expect("AUTH PLAIN", "334")
	s.sendAsync(strings.Repeat("A", maxAuthLine+10) + "\r\n")
	if got := s.reply(); !strings.HasPrefix(got, "501 5.5.2") {
		t.Fatalf("reply %q, want 501 5.5.2", got)
	}
	s.expect("NOOP", "250")
}
