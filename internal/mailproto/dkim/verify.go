// Package dkim verifies DomainKeys Identified Mail signatures (RFC 6376,
// with RFC 8301 for algorithms and key sizes, RFC 8463 for Ed25519) on
// inbound messages. moxd-smtp runs it on port 25 after DATA; its results
// feed DMARC (package dmarc) and the Authentication-Results header
// (package authres). Signing is not here yet; it will live beside this
// file, with its own SignOptions.
//
// The cryptography, canonicalization and key-record parsing are
// github.com/emersion/go-msgauth/dkim. This package adds what moxd needs
// around it:
//
//   - bounds for hostile input: the header section is read here, limited
//     in bytes and fields, at most MaxSignatures signatures are verified,
//     each one's list of signed fields is bounded, and long runs of line
//     breaks in the body (which go-msgauth buffers, and copies
//     quadratically with simple canonicalization) are refused;
//   - the selector, algorithm and b= of each signature, which go-msgauth's
//     Verification does not carry, from our own tag-list parser (tags.go),
//     matched to go-msgauth's verifications by header order;
//   - key lookups through moxd's dns.Resolver, recording per key whether
//     the answer was DNSSEC-authentic;
//   - statuses as RFC 8601 §2.7.1 names them.
//
// Pure protocol code: no IPC, no configuration.
package dkim

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"moxd/internal/dns"
)

// Status is a DKIM verification result (RFC 8601 §2.7.1).
type Status string

// The DKIM results. StatusNone (the message was not signed) is never in a
// Result; it is what callers report when Verify returns no results.
const (
	StatusNone      Status = "none"
	StatusPass      Status = "pass"
	StatusFail      Status = "fail"
	StatusPolicy    Status = "policy"
	StatusNeutral   Status = "neutral"
	StatusTemperror Status = "temperror"
	StatusPermerror Status = "permerror"
)

// Result is the verification of one DKIM-Signature header field.
type Result struct {
	Status Status
	// Domain is the d= tag (the SDID), lower case.
	Domain string
	// Selector is the s= tag, Algorithm the a= tag (lower case), Identity
	// the i= tag (the AUID) as written; empty when absent or unparsable.
	Selector  string
	Algorithm string
	Identity  string
	// HeaderB is the start of the b= tag for Authentication-Results
	// header.b: 8 characters, more when needed to tell this signature
	// apart from another one in the message (RFC 6008 §2).
	HeaderB string
	// Authentic is true when the key record lookup was DNSSEC-authentic.
	Authentic bool
	// Testing is true when the key record has flag t=y (RFC 6376 §3.6.1:
	// the domain is testing DKIM). The status is reported unchanged.
	Testing bool
	// Err says why the status is not pass, for logs and the reason in
	// Authentication-Results; nil for pass.
	Err error
}

// VerifyOptions bounds the work Verify does for one message. Zero values
// mean the defaults.
type VerifyOptions struct {
	// MaxSignatures is the number of DKIM-Signature fields verified, from
	// the top; later ones are ignored (RFC 6376 §6.1 allows verifiers to
	// limit this). Default 10.
	MaxSignatures int
	// MaxHeaderBytes bounds the header section. Default 256 KiB.
	MaxHeaderBytes int
	// MaxHeaderFields bounds the number of header fields. Default 1000.
	MaxHeaderFields int
}

const (
	defaultMaxSignatures   = 10
	defaultMaxHeaderBytes  = 256 * 1024
	defaultMaxHeaderFields = 1000

	// maxSignedFields bounds the h= list of one signature. Each entry
	// makes go-msgauth scan the whole header, so h= times the number of
	// fields is the header-hashing work; real signers list a few dozen.
	maxSignedFields = 512

	// maxBreakRun bounds a run of line breaks (with only white space in
	// between) in the body. go-msgauth holds such a run in memory until
	// the next other character, and with simple body canonicalization
	// copies it again on every write: quadratic in the run.
	maxBreakRun = 256 << 10
)

// ErrHeaderTooLarge is returned when the header section exceeds
// MaxHeaderBytes or MaxHeaderFields.
var ErrHeaderTooLarge = errors.New("dkim: header section too large")

// errBreakRun marks signatures not verified because of a hostile body.
var errBreakRun = fmt.Errorf("body has a run of more than %d line breaks", maxBreakRun)

// signature is one DKIM-Signature header field and what we parsed of it.
type signature struct {
	field int // index in the header fields
	tags  map[string]string
	res   Result
	// skip is set when this package decided the result itself; the field
	// is then hidden from go-msgauth.
	skip bool
	// keyName is the DNS name go-msgauth will query for the key.
	keyName string
	b       string // b= with white space removed
}

// Verify checks every DKIM-Signature header field of the message read from
// msg (at most opts.MaxSignatures) and returns one Result per signature in
// header order, top first. No signatures: no results and no error.
//
// An error is returned when the message could not be read, or its header
// exceeds the limits in opts (ErrHeaderTooLarge); callers then report
// dkim=temperror or permerror for the message. msg is not necessarily read
// to the end.
func Verify(ctx context.Context, r dns.Resolver, msg io.Reader, opts VerifyOptions) ([]Result, error) {
	if opts.MaxSignatures <= 0 {
		opts.MaxSignatures = defaultMaxSignatures
	}
	if opts.MaxHeaderBytes <= 0 {
		opts.MaxHeaderBytes = defaultMaxHeaderBytes
	}
	if opts.MaxHeaderFields <= 0 {
		opts.MaxHeaderFields = defaultMaxHeaderFields
	}

	br := bufio.NewReaderSize(msg, 32*1024)
	fields, err := readHeader(br, opts.MaxHeaderBytes, opts.MaxHeaderFields)
	if err != nil {
		return nil, err
	}

	var sigs []*signature
	for i, f := range fields {
		if len(sigs) == opts.MaxSignatures {
			break
		}
		name, value, _ := strings.Cut(string(f), ":")
		if strings.EqualFold(strings.TrimSpace(name), "DKIM-Signature") {
			sigs = append(sigs, newSignature(i, value))
		}
	}
	if len(sigs) == 0 {
		return nil, nil
	}
	setHeaderB(sigs)

	// Hand go-msgauth the header with the signatures we already decided
	// renamed, so it verifies only the others, in the same order.
	var hdr bytes.Buffer
	var verifiable []*signature
	next := 0
	for i, f := range fields {
		if next < len(sigs) && sigs[next].field == i {
			s := sigs[next]
			next++
			if s.skip {
				hdr.WriteString("X-Unverified-")
			} else {
				verifiable = append(verifiable, s)
			}
		}
		hdr.Write(f)
	}
	hdr.WriteString("\r\n")

	if len(verifiable) > 0 {
		keys := &keyLookup{ctx: ctx, r: r, answers: map[string]keyAnswer{}}
		body := &guardedBody{r: br}
		verifs, err := msgdkim.VerifyWithOptions(io.MultiReader(&hdr, body), &msgdkim.VerifyOptions{
			LookupTXT:        keys.lookupTXT,
			MaxVerifications: len(verifiable),
		})
		if err != nil && !errors.Is(err, msgdkim.ErrTooManySignatures) {
			return nil, fmt.Errorf("dkim: verify: %w", err)
		}
		if body.err != nil {
			return nil, fmt.Errorf("dkim: read message: %w", body.err)
		}
		// go-msgauth returns verifications in header order of the
		// DKIM-Signature fields it found (checked by TestMatchBySelector);
		// cross-check the count and the d= it parsed.
		if len(verifs) != len(verifiable) {
			return nil, fmt.Errorf("dkim: %d verifications for %d signatures", len(verifs), len(verifiable))
		}
		for i, v := range verifs {
			s := verifiable[i]
			if v.Domain != "" && !strings.EqualFold(v.Domain, stripFWS(s.tags["d"])) {
				return nil, fmt.Errorf("dkim: verification %d is for %q, signature for %q", i, v.Domain, s.res.Domain)
			}
			s.res.Status, s.res.Err = statusOf(v.Err)
			if ans, ok := keys.get(s.keyName); ok {
				s.res.Authentic = ans.authentic
				checkKeyFlags(s, ans.txts)
			}
			if body.overrun && (s.res.Status == StatusPass || s.res.Status == StatusFail) {
				s.res.Status, s.res.Err = StatusPolicy, errBreakRun
			}
		}
	}

	results := make([]Result, len(sigs))
	for i, s := range sigs {
		results[i] = s.res
	}
	return results, nil
}

// newSignature parses a DKIM-Signature field value and decides up front
// the signatures that go-msgauth need not see.
func newSignature(field int, value string) *signature {
	s := &signature{field: field}
	tags, err := parseTags(value)
	if err != nil {
		// RFC 6376 §3.2, §6.1.1: an invalid tag-list is PERMFAIL.
		s.skip = true
		s.res = Result{Status: StatusPermerror, Err: fmt.Errorf("malformed signature: %w", err)}
		return s
	}
	s.tags = tags
	s.b = stripFWS(tags["b"])
	s.res = Result{
		Domain:    strings.ToLower(stripFWS(tags["d"])),
		Selector:  stripFWS(tags["s"]),
		Algorithm: strings.ToLower(stripFWS(tags["a"])),
		Identity:  stripFWS(tags["i"]),
	}
	s.keyName = s.res.Selector + "._domainkey." + stripFWS(tags["d"])

	fail := func(st Status, err error) *signature {
		s.skip = true
		s.res.Status, s.res.Err = st, err
		return s
	}
	// Checks go-msgauth would make later, made before any DNS lookup:
	// names that cannot be queried, and limits on hostile input.
	if _, ok := tags["d"]; ok && !validName(s.res.Domain, 253) {
		return fail(StatusPermerror, fmt.Errorf("invalid d= domain %q", shorten(s.res.Domain)))
	}
	if _, ok := tags["s"]; ok && (!validName(s.res.Selector, 253) || len(s.keyName) > 253) {
		return fail(StatusPermerror, fmt.Errorf("invalid s= selector %q", shorten(s.res.Selector)))
	}
	if n := strings.Count(tags["h"], ":") + 1; n > maxSignedFields {
		return fail(StatusPolicy, fmt.Errorf("signature covers %d header fields, more than %d", n, maxSignedFields))
	}
	if _, ok := tags["l"]; ok {
		// The body length limit lets anyone append content after the
		// signed part; go-msgauth refuses it, we report it as what it is:
		// a signature acceptable in form but not to our policy (RFC 8601
		// §2.7.1 "policy"; RFC 6376 §8.2).
		return fail(StatusPolicy, errors.New("signature has a body length limit (l=), not accepted"))
	}
	return s
}

// validName checks that s is a DNS name we may query: labels of 1 to 63
// octets of letters, digits, "-" and "_" (UTF-8 allowed, RFC 8616 §4), at
// most max octets in all.
func validName(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for l := range strings.SplitSeq(s, ".") {
		if len(l) == 0 || len(l) > 63 {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(isAlpha(c) || c >= '0' && c <= '9' || c == '-' || c == '_' || c >= 0x80) {
				return false
			}
		}
	}
	return true
}

// setHeaderB sets HeaderB to the shortest prefix of b= of at least 8
// characters that no other signature of the message shares (RFC 6008 §2).
func setHeaderB(sigs []*signature) {
	for _, s := range sigs {
		n := min(8, len(s.b))
		for n < len(s.b) {
			unique := true
			for _, o := range sigs {
				if o != s && strings.HasPrefix(o.b, s.b[:n]) {
					unique = false
					break
				}
			}
			if unique {
				break
			}
			n++
		}
		s.res.HeaderB = s.b[:n]
	}
}

// statusOf maps a go-msgauth verification error to a status (RFC 8601
// §2.7.1, RFC 6376 §6.1: TEMPFAIL, PERMFAIL, and a signature or body hash
// that does not verify).
func statusOf(err error) (Status, error) {
	switch {
	case err == nil:
		return StatusPass, nil
	case msgdkim.IsTempFail(err):
		return StatusTemperror, err
	case msgdkim.IsPermFail(err):
		return StatusPermerror, err
	default:
		// go-msgauth returns other errors separately, so what is left in a
		// Verification is its failError: body hash or signature mismatch.
		return StatusFail, err
	}
}

// checkKeyFlags applies the key record's t= flags (RFC 6376 §3.6.1), which
// go-msgauth parses but does not act on.
func checkKeyFlags(s *signature, txts []string) {
	if len(txts) != 1 {
		return
	}
	key, err := parseTags(txts[0])
	if err != nil {
		return
	}
	for f := range strings.SplitSeq(key["t"], ":") {
		switch trimFWS(f) {
		case "y":
			s.res.Testing = true
		case "s":
			// "s": the i= domain must be d= itself, not a subdomain.
			if s.res.Status != StatusPass {
				continue
			}
			_, idom, _ := strings.Cut(s.res.Identity, "@")
			if s.res.Identity != "" && !strings.EqualFold(idom, s.res.Domain) {
				s.res.Status = StatusPermerror
				s.res.Err = fmt.Errorf("key has t=s but i= domain %q is not d= %q", idom, s.res.Domain)
			}
		}
	}
}

// readHeader reads the header section up to and including the empty line
// and returns its fields, each with its continuation lines and line ends,
// split the way go-msgauth splits them: a line starting with SP or HTAB
// continues the previous field. A header without the empty line (a message
// without body) is completed with one.
func readHeader(br *bufio.Reader, maxBytes, maxFields int) ([][]byte, error) {
	var fields [][]byte
	total := 0
	for {
		line, err := readLine(br, maxBytes-total)
		if err != nil && err != io.EOF {
			return nil, err
		}
		total += len(line)
		if len(line) > 0 && line[len(line)-1] != '\n' {
			line = append(line, '\r', '\n')
		}
		if len(line) == 0 || string(line) == "\n" || string(line) == "\r\n" {
			return fields, nil
		}
		if len(fields) > 0 && (line[0] == ' ' || line[0] == '\t') {
			fields[len(fields)-1] = append(fields[len(fields)-1], line...)
		} else {
			if len(fields) == maxFields {
				return nil, ErrHeaderTooLarge
			}
			fields = append(fields, line)
		}
		if err == io.EOF {
			return fields, nil
		}
	}
}

// readLine reads one line including its LF, at most max bytes.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > max {
			return nil, ErrHeaderTooLarge
		}
		line = append(line, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			return line, io.EOF
		}
		return line, err
	}
}

// guardedBody passes the body to go-msgauth and never returns an error
// other than io.EOF: on a read error go-msgauth's parallel verification
// would leave its goroutines blocked on pipes. Errors are kept in err; a
// run of more than maxBreakRun line breaks ends the body early and sets
// overrun.
type guardedBody struct {
	r       io.Reader
	err     error
	overrun bool
	run     int // line breaks since the last character other than white space
}

func (g *guardedBody) Read(p []byte) (int, error) {
	if g.err != nil || g.overrun {
		return 0, io.EOF
	}
	n, err := g.r.Read(p)
	for i := 0; i < n; i++ {
		switch p[i] {
		case '\r', '\n':
			g.run++
			if g.run > maxBreakRun {
				g.overrun = true
				return i, nil
			}
		case ' ', '\t':
		default:
			g.run = 0
		}
	}
	if err != nil && err != io.EOF {
		g.err = err
		return n, nil
	}
	return n, err
}

// keyLookup adapts dns.Resolver to go-msgauth's LookupTXT and remembers,
// per queried name, the answer and whether it was authentic. go-msgauth
// verifies several signatures concurrently, hence the lock.
type keyLookup struct {
	ctx     context.Context
	r       dns.Resolver
	mu      sync.Mutex
	answers map[string]keyAnswer
}

type keyAnswer struct {
	txts      []string
	authentic bool
}

func (k *keyLookup) lookupTXT(name string) ([]string, error) {
	txts, res, err := k.r.LookupTXT(k.ctx, name)
	k.mu.Lock()
	k.answers[name] = keyAnswer{txts: txts, authentic: res.Authentic}
	k.mu.Unlock()
	if err != nil {
		// go-msgauth tells temporary errors apart with a type assertion to
		// net.Error: hand it the bare *net.DNSError. Any other error (a
		// canceled context) counts as temporary.
		var de *net.DNSError
		if errors.As(err, &de) {
			return nil, de
		}
		return nil, &net.DNSError{Err: err.Error(), Name: name, IsTemporary: true}
	}
	return txts, nil
}

func (k *keyLookup) get(name string) (keyAnswer, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	a, ok := k.answers[name]
	return a, ok
}
