package iii_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// idleWorkersHeap returns the live heap (after a GC) that n connected
// workers add, per worker. The engine double runs in this process and
// is started first; its side of each connection is included.
func idleWorkersHeap(tb testing.TB, url string, n int) (perWorker uint64) {
	tb.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ws := make([]*iii.III, n)
	for i := range ws {
		ws[i] = iii.RegisterWorker(url, iii.InitOptions{})
	}
	for _, w := range ws {
		if err := w.WaitConnected(context.Background()); err != nil {
			tb.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	for _, w := range ws {
		w.Shutdown()
	}
	if after.HeapAlloc < before.HeapAlloc {
		return 0
	}
	return (after.HeapAlloc - before.HeapAlloc) / uint64(n)
}

// BenchmarkIdleWorkerHeap reports the live heap an idle worker holds once
// connected (heap-B/worker: HeapAlloc after a GC, with 4 workers, over
// what was live before; the double's side of the connection included).
//
//	go test -run '^$' -bench IdleWorkerHeap -benchtime 5x
func BenchmarkIdleWorkerHeap(b *testing.B) {
	eng, err := iiitest.Start("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	idleWorkersHeap(b, eng.URL, 1) // warm up the process (pools, types)
	var sum uint64
	for b.Loop() {
		sum += idleWorkersHeap(b, eng.URL, 4)
	}
	b.ReportMetric(float64(sum)/float64(b.N), "heap-B/worker")
}
