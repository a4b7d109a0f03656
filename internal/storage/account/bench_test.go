package account

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// BenchmarkDeliverConcurrent measures 20 concurrent deliveries into one
// mailbox (bench case P1); it reports commits per delivery.
func BenchmarkDeliverConcurrent(b *testing.B) {
	a, tmp := newAccount(b, Options{})
	body := newBody(b, tmp, msgText("bench", "x"))
	const workers = 20
	ctx := testCtx(b)
	before := a.commits.Load()
	b.ResetTimer()
	var wg sync.WaitGroup
	per := (b.N + workers - 1) / workers
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				if r := a.Deliver(ctx, []Delivery{{Body: body}}); r[0].Err != nil {
					b.Error(r[0].Err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(a.commits.Load()-before)/float64(per*workers), "commits/delivery")
}

// importMessages fills mailbox name with n small messages via an import.
func importMessages(b *testing.B, a *Account, name string, n int) Mailbox {
	b.Helper()
	ctx := testCtx(b)
	im, err := a.BeginImport(ctx, name)
	if err != nil {
		b.Fatal(err)
	}
	when := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		if err := im.Add(ctx, []byte(msgText(fmt.Sprintf("msg %d", i), "body text")), Flags(i%2), nil, when); err != nil {
			b.Fatal(err)
		}
	}
	mb, _, err := im.Publish(ctx)
	if err != nil {
		b.Fatal(err)
	}
	return mb
}

// BenchmarkImport measures importing small messages (bench case P6).
func BenchmarkImport(b *testing.B) {
	a, _ := newAccount(b, Options{})
	b.ResetTimer()
	importMessages(b, a, "Imported", b.N)
}

// Benchmarks for a mailbox of 100k messages (bench case P4): UID FETCH
// 1:* FLAGS is a cursor walk over msgs, SELECT reads two records.
func BenchmarkLargeMailbox(b *testing.B) {
	a, _ := newAccount(b, Options{})
	mb := importMessages(b, a, "Big", 100000)
	b.Run("Messages", func(b *testing.B) {
		for b.Loop() {
			l, err := a.Messages(mb.ID, mb.UIDValidity, 1, 0)
			if err != nil || len(l) != 100000 {
				b.Fatal(len(l), err)
			}
		}
	})
	b.Run("UIDs", func(b *testing.B) {
		for b.Loop() {
			if _, err := a.UIDs(mb.ID, mb.UIDValidity); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Select", func(b *testing.B) {
		for b.Loop() {
			if _, err := a.Mailbox("Big"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Deliver", func(b *testing.B) {
		body := newBody(b, testDir(b), msgText("bench", "x"))
		ctx := testCtx(b)
		for b.Loop() {
			if r := a.Deliver(ctx, []Delivery{{Body: body, Mailbox: "Big"}}); r[0].Err != nil {
				b.Fatal(r[0].Err)
			}
		}
	})
}
