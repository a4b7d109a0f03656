package queue

import (
	"reflect"
	"testing"
	"time"

	"moxd/internal/ipc"
)

func sampleEval(domain string, t int64) *ipc.DMARCEval {
	return &ipc.DMARCEval{
		PolicyDomain: domain, HeaderFrom: domain, EnvelopeFrom: "bounce." + domain, EnvelopeTo: "example.org",
		SourceIP: "192.0.2.25", Time: t, Disposition: "quarantine",
		P: "quarantine", SP: "reject", ADKIM: "r", ASPF: "s", Pct: 50, FO: "1", HasRUA: true,
		Result: "fail", SPFAligned: false, DKIMAligned: false, SPFResult: "softfail", SPFDomain: "bounce." + domain, SPFScope: "mfrom",
		DKIM:    []ipc.DMARCDKIM{{Domain: domain, Selector: "s1", Result: "fail"}, {Domain: "esp.example", Selector: "x", Result: "pass"}},
		Reasons: []ipc.DMARCReason{{Type: "sampled_out", Comment: "pct"}},
	}
}

// TestDMARCEvaluations sends evaluations as smtp does and finds them in
// reports.db after a flush, also after reopening.
func TestDMARCEvaluations(t *testing.T) {
	tq := newTestQueue(t, testSlice())
	smtp := tq.conn(ipc.RoleSMTP)
	base := time.Now().Unix()
	var sent []*ipc.DMARCEval
	for i := range 5 {
		e := sampleEval("example.net", base+int64(i))
		sent = append(sent, e)
		if err := smtp.Notify(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := smtp.Notify(sampleEval("other.example", base)); err != nil {
		t.Fatal(err)
	}
	bad := sampleEval("example.net", base)
	bad.Disposition = "discard"
	if err := smtp.Notify(bad); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "evaluations buffered", func() bool {
		tq.sv.reports.mu.Lock()
		defer tq.sv.reports.mu.Unlock()
		// Events are handled concurrently: the invalid one may come
		// after the others.
		return len(tq.sv.reports.buf) == 6 && tq.sv.reports.invalid.Load() > 0
	})
	if n := tq.sv.reports.invalid.Load(); n != 1 {
		t.Errorf("%d invalid evaluations, want 1", n)
	}
	// Nothing is written before the flush (DESIGN.md §5: side records
	// are written every few seconds).
	if l, _ := tq.sv.reports.evaluations("example.net"); len(l) != 0 {
		t.Fatalf("%d evaluations stored before the flush", len(l))
	}
	tq.sv.reports.flush()
	got, err := tq.sv.reports.evaluations("example.net")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, sent) {
		t.Fatalf("stored evaluations differ:\n got %+v\nwant %+v", got, sent)
	}
	if n := tq.sv.reports.stored.Load(); n != 6 {
		t.Errorf("stored counter %d, want 6", n)
	}
	dir := tq.dir
	tq.stop()
	r, err := openReports(dir, testLog())
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	if l, _ := r.evaluations("other.example"); len(l) != 1 {
		t.Errorf("%d evaluations for other.example after reopen", len(l))
	}
}

// TestDMARCBufferFull drops and counts evaluations beyond the buffer.
func TestDMARCBufferFull(t *testing.T) {
	tq := newTestQueue(t, testSlice())
	r := tq.sv.reports
	now := time.Now().Unix()
	for range maxBufferedReports + 3 {
		r.add(sampleEval("example.net", now))
	}
	if n := r.dropped.Load(); n != 3 {
		t.Errorf("%d dropped, want 3", n)
	}
	r.flush()
	if n := r.stored.Load(); n != maxBufferedReports {
		t.Errorf("%d stored, want %d", n, maxBufferedReports)
	}
	// After the flush there is room again.
	r.add(sampleEval("example.net", now))
	if n := r.dropped.Load(); n != 3 {
		t.Errorf("%d dropped after flush", n)
	}
}
