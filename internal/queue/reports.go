package queue

// DMARC evaluations for aggregate reports (RFC 7489 §7.2). smtp sends one
// event per evaluated message; queue buffers them in memory (bounded:
// when the buffer is full, evaluations are dropped and counted) and
// writes them to reports.db every few seconds. Losing the last seconds of
// them in a crash is accepted (DESIGN.md §5). Composing and sending the
// reports comes with the next issue.
//
// reports.db:
//
//	meta   "schema"                                  8 bytes
//	dmarc  policy domain · 0 · time (8) · seq (8)    evaluation record
//
// The key orders evaluations by policy domain and time, which is how a
// report for one domain and period reads them.

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"moxd/internal/ipc"
)

const (
	reportsDBName      = "reports.db"
	bucketDMARC        = "dmarc"
	reportsFlushEvery  = 5 * time.Second
	maxBufferedReports = 10000
	// reportsSchema is the layout of reports.db, versioned apart from
	// queue.db.
	reportsSchema = 1
)

// reports keeps DMARC evaluations and TLS results.
type reports struct {
	log *slog.Logger
	db  *bolt.DB

	mu  sync.Mutex
	buf []*ipc.DMARCEval
	tls map[tlsResultKey]*tlsCount // TLS results counted since the last flush (tlsresults.go)

	flushMu sync.Mutex // one flush at a time

	stored  atomic.Uint64
	dropped atomic.Uint64 // buffer full, or the write failed
	invalid atomic.Uint64 // values outside the report schema
}

func openReports(dir string, log *slog.Logger) (*reports, error) {
	db, err := openDB(filepath.Join(dir, reportsDBName), dbLockTimeout)
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists([]byte(bucketMeta))
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists([]byte(bucketDMARC)); err != nil {
			return err
		}
		v := meta.Get([]byte(metaSchema))
		if v == nil {
			return meta.Put([]byte(metaSchema), key64(reportsSchema))
		}
		if len(v) != 8 || binary.BigEndian.Uint64(v) != reportsSchema {
			return fmt.Errorf("reports database has schema %x, this moxd-queue reads version %d; run the moxd release that wrote it, or restore a backup", v, reportsSchema)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &reports{log: log, db: db}, nil
}

// DMARC report vocabulary (RFC 7489 Appendix C).
var (
	dmarcDispositions = []string{"none", "quarantine", "reject"}
	dmarcPolicies     = []string{"", "none", "quarantine", "reject"}
	dmarcAlignments   = []string{"", "r", "s"}
	dmarcResults      = []string{"pass", "fail"}
	dkimResults       = []string{"none", "pass", "fail", "policy", "neutral", "temperror", "permerror"}
	spfResults        = []string{"none", "neutral", "pass", "fail", "softfail", "temperror", "permerror"}
	spfScopes         = []string{"", "helo", "mfrom"}
	overrideReasons   = []string{"forwarded", "sampled_out", "trusted_forwarder", "mailing_list", "local_policy", "other"}
)

// validEval checks an evaluation's values against the report schema.
func validEval(e *ipc.DMARCEval) bool {
	if e.PolicyDomain == "" || e.Time <= 0 {
		return false
	}
	if _, err := netip.ParseAddr(e.SourceIP); err != nil {
		return false
	}
	if !slices.Contains(dmarcDispositions, e.Disposition) || !slices.Contains(dmarcPolicies, e.P) ||
		!slices.Contains(dmarcPolicies, e.SP) || !slices.Contains(dmarcAlignments, e.ADKIM) ||
		!slices.Contains(dmarcAlignments, e.ASPF) || !slices.Contains(dmarcResults, e.Result) ||
		(e.SPFResult != "" && !slices.Contains(spfResults, e.SPFResult)) || !slices.Contains(spfScopes, e.SPFScope) {
		return false
	}
	for _, d := range e.DKIM {
		if !slices.Contains(dkimResults, d.Result) {
			return false
		}
	}
	for _, r := range e.Reasons {
		if !slices.Contains(overrideReasons, r.Type) {
			return false
		}
	}
	return true
}

// add buffers an evaluation.
func (r *reports) add(e *ipc.DMARCEval) {
	if !validEval(e) {
		r.invalid.Add(1)
		r.log.Debug("dmarc evaluation with values outside the report schema dropped", "domain", e.PolicyDomain)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.buf) >= maxBufferedReports {
		r.dropped.Add(1)
		return
	}
	r.buf = append(r.buf, e)
}

// run writes buffered evaluations every few seconds until ctx ends, then
// once more.
func (r *reports) run(ctx context.Context) {
	t := time.NewTicker(reportsFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			r.flush()
			return
		case <-t.C:
			r.flush()
		}
	}
}

// flush writes the buffered evaluations in one transaction.
func (r *reports) flush() {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	l := r.buf
	r.buf = nil
	tls := r.tls
	r.tls = nil
	r.mu.Unlock()
	if len(tls) > 0 {
		if err := r.db.Update(func(tx *bolt.Tx) error { return flushTLS(tx, tls) }); err != nil {
			r.log.Error("write tls results; they are lost", "count", len(tls), "err", err)
		}
	}
	if len(l) == 0 {
		return
	}
	err := r.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketDMARC))
		for _, e := range l {
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			k := append([]byte(e.PolicyDomain), 0)
			k = binary.BigEndian.AppendUint64(k, uint64(e.Time))
			k = binary.BigEndian.AppendUint64(k, seq)
			if err := b.Put(k, marshalEval(e)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		r.dropped.Add(uint64(len(l)))
		r.log.Error("write dmarc evaluations; they are lost", "count", len(l), "err", err)
		return
	}
	r.stored.Add(uint64(len(l)))
}

func (r *reports) close() {
	r.flush()
	r.db.Close()
}

// evaluations returns the stored evaluations of domain, in time order.
func (r *reports) evaluations(domain string) ([]*ipc.DMARCEval, error) {
	var l []*ipc.DMARCEval
	prefix := append([]byte(domain), 0)
	err := r.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket([]byte(bucketDMARC)).Cursor()
		for k, v := c.Seek(prefix); k != nil && len(k) == len(prefix)+16 && string(k[:len(prefix)]) == string(prefix); k, v = c.Next() {
			e, err := unmarshalEval(v)
			if err != nil {
				return err
			}
			e.PolicyDomain = domain
			e.Time = int64(binary.BigEndian.Uint64(k[len(prefix):]))
			l = append(l, e)
		}
		return nil
	})
	return l, err
}

// marshalEval encodes an evaluation without policy domain and time, which
// are in the key.
func marshalEval(e *ipc.DMARCEval) []byte {
	r := newRecord()
	for _, s := range []string{e.HeaderFrom, e.EnvelopeFrom, e.EnvelopeTo, e.SourceIP, e.Disposition,
		e.P, e.SP, e.ADKIM, e.ASPF, e.FO, e.Result, e.SPFResult, e.SPFDomain, e.SPFScope} {
		r.string(s)
	}
	r.byte(e.Pct)
	r.bool(e.HasRUA)
	r.bool(e.DKIMAligned)
	r.bool(e.SPFAligned)
	r.uint(uint64(len(e.DKIM)))
	for _, d := range e.DKIM {
		r.string(d.Domain)
		r.string(d.Selector)
		r.string(d.Result)
	}
	r.uint(uint64(len(e.Reasons)))
	for _, x := range e.Reasons {
		r.string(x.Type)
		r.string(x.Comment)
	}
	return r.b
}

func unmarshalEval(b []byte) (*ipc.DMARCEval, error) {
	r := newReader(b)
	e := &ipc.DMARCEval{}
	for _, p := range []*string{&e.HeaderFrom, &e.EnvelopeFrom, &e.EnvelopeTo, &e.SourceIP, &e.Disposition,
		&e.P, &e.SP, &e.ADKIM, &e.ASPF, &e.FO, &e.Result, &e.SPFResult, &e.SPFDomain, &e.SPFScope} {
		*p = r.string()
	}
	e.Pct = r.byte()
	e.HasRUA = r.bool()
	e.DKIMAligned = r.bool()
	e.SPFAligned = r.bool()
	n := r.uint()
	if n > ipc.MaxDMARCDKIM {
		r.fail("dkim count")
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		e.DKIM = append(e.DKIM, ipc.DMARCDKIM{Domain: r.string(), Selector: r.string(), Result: r.string()})
	}
	n = r.uint()
	if n > ipc.MaxDMARCReasons {
		r.fail("reason count")
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		e.Reasons = append(e.Reasons, ipc.DMARCReason{Type: r.string(), Comment: r.string()})
	}
	if err := r.done(); err != nil {
		return nil, fmt.Errorf("dmarc evaluation: %w", err)
	}
	return e, nil
}
