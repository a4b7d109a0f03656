package auth

import (
	"context"
	"testing"
)

// FuzzServer feeds arbitrary client messages into every mechanism; none may
// panic, and success must name an account.
func FuzzServer(f *testing.F) {
	mechs := Mechanisms(true, true)
	seeds := []struct {
		mech       int
		m1, m2, m3 string
	}{
		{6, "\x00mjl\x00pw", "", ""},
		{6, "", "mjl\x00mjl\x00pw", ""},
		{7, "mjl", "pw", ""},
		{7, "", "mjl", "*"},
		{4, "", "mjl 0123456789abcdef0123456789abcdef", ""},
		{3, "n,,n=mjl,r=abc", "c=biws,r=abcX,p=AAAA", ""},
		{2, "n,a=mjl,n=mjl,r=abc", "c=biws,r=abc,p=AAAAAAAAAAAAAAAAAAAAAAAAAAA=", ""},
		{0, "p=tls-exporter,,n=mjl,r=abc", "c=cD10bHMtZXhwb3J0ZXIsLAEC,r=abc,p=", ""},
		{1, "p=tls-server-end-point,,n=m=2Cjl,r=abc,x=y", "c=,r=,p=", ""},
		{2, "y,,n=mjl,r=abc", "", ""},
		{3, "n,,m=x,n=mjl,r=abc", "", ""},
		{3, "n,,n=mj=l,r=a", "", ""},
	}
	for _, s := range seeds {
		f.Add(uint8(s.mech), []byte(s.m1), []byte(s.m2), []byte(s.m3))
	}
	creds, err := NewCredentials("pw", fastParams)
	if err != nil {
		f.Fatal(err)
	}
	lookup := lookupMap(map[string]Credentials{"mjl": creds})
	h := NewHasher(2)
	cb := []ChannelBinding{{CBTLSExporter, []byte{1, 2}}, {CBTLSServerEndPoint, []byte{3, 4}}}
	f.Fuzz(func(t *testing.T, mech uint8, m1, m2, m3 []byte) {
		name := mechs[int(mech)%len(mechs)]
		m, err := NewServer(name, lookup, h, true, cb)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if len(m1) == 0 {
			m1 = nil
		}
		for _, msg := range [][]byte{m1, m2, m3} {
			_, done, err := m.Next(ctx, msg)
			if done && (err != nil || m.Identity() == "") {
				t.Fatalf("%s: done with error %v, identity %q", name, err, m.Identity())
			}
			if err != nil && m.Identity() != "" {
				t.Fatalf("%s: identity %q with error %v", name, m.Identity(), err)
			}
			if done || err != nil {
				return
			}
		}
	})
}
