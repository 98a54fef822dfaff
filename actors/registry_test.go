package actors

import (
	"context"
	"log/slog"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// TestRegistryIsShrunkAndKeepsItsProcesses: a system's process registry
// has registryBuckets buckets, the processes protoactor registered while
// creating the system are still found, and actors spawned afterwards are
// reachable by their pids.
func TestRegistryIsShrunkAndKeepsItsProcesses(t *testing.T) {
	ref := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
	defer ref.Shutdown()
	sys := NewSystem(nil)
	defer sys.Stop(time.Second)
	if n := len(sys.AS.ProcessRegistry.LocalPIDs.LocalPIDs); n != registryBuckets {
		t.Fatalf("%d registry buckets, want %d", n, registryBuckets)
	}
	var want []string
	for _, m := range ref.ProcessRegistry.LocalPIDs.LocalPIDs {
		for id := range m.Items() {
			want = append(want, id)
		}
	}
	if len(want) == 0 {
		t.Fatal("protoactor registers no process of its own any more: the test needs another reference")
	}
	for _, id := range want {
		if _, ok := sys.AS.ProcessRegistry.GetLocal(id); !ok {
			t.Errorf("process %q, registered by protoactor at start, is lost", id)
		}
	}
	var started atomic.Int32
	var pids []*actor.PID
	for range 200 {
		pid, err := sys.Spawn("", actor.PropsFromProducer(func() actor.Actor { return &counter{started: &started} }))
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, pid := range pids {
		sys.Send(pid, inc{})
		f := NewFuture[int]()
		if n, err := Request(ctx, sys, pid, f, &get{reply: f}); err != nil || n != 1 {
			t.Fatalf("actor %d: state %d, %v", i, n, err)
		}
	}
}

// TestSystemHeapIsSmall: an idle system holds far less than the 2.8 MB of
// protoactor's default registry (a guard on live bytes, with a wide margin:
// a shrunk system holds about 30 KB).
func TestSystemHeapIsSmall(t *testing.T) {
	const n = 10
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	systems := make([]*System, n)
	for i := range systems {
		systems[i] = NewSystem(nil)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	for _, s := range systems {
		s.Stop(time.Second)
	}
	per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	t.Logf("live heap per idle system: %d B", per)
	if per > 512<<10 {
		t.Fatalf("an idle actor system holds %d B of heap", per)
	}
}
