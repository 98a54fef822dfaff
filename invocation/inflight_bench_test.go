package invocation

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/iii-go/iii/actors"
	"github.com/iii-go/iii/connection/wire"
)

// BenchmarkInvocationInFlightHeap parks n invocations in running handlers
// (every one on an invocation actor of its own, the pool grown to n) and
// reports what each holds: heap-B/task is the live heap (HeapAlloc after a
// GC, the tasks' frames excluded: they are allocated before), stack-B/task
// the goroutine stacks (StackInuse). Each op is one round of n; the first
// round grows the pool, later ones reuse it, so run it with -benchtime 1x:
//
//	go test ./invocation -run '^$' -bench InFlightHeap -benchtime 1x
func BenchmarkInvocationInFlightHeap(b *testing.B) {
	const n = 2000
	sys := actors.NewSystem(nil)
	release := make(chan struct{})
	var running sync.WaitGroup
	in, err := NewInbound(sys, Config{Limit: n, MaxBacklog: n, MaxBacklogBytes: 64 << 20,
		Exec: func(*Task) {
			running.Done()
			<-release
		}})
	if err != nil {
		b.Fatal(err)
	}
	msgs := make([]wire.InvokeFunction, n)
	var heap, stack float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		running.Add(n)
		for i := range msgs {
			in.Dispatch(NewTask(nil, &msgs[i]))
		}
		running.Wait()
		runtime.GC()
		runtime.ReadMemStats(&after)
		heap += float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
		stack += float64(int64(after.StackInuse)-int64(before.StackInuse)) / n
		close(release)
		ctx := b.Context()
		if err := in.Idle(ctx); err != nil {
			b.Fatal(err)
		}
		release = make(chan struct{})
	}
	b.ReportMetric(heap/float64(b.N), "heap-B/task")
	b.ReportMetric(stack/float64(b.N), "stack-B/task")
	in.Close()
	sys.Stop(5 * time.Second)
	in.Wait()
}
