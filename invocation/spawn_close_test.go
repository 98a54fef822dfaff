package invocation

import (
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iii-go/iii/actors"
	"github.com/iii-go/iii/connection/wire"
)

// Closing the pool while the supervisor still has actors to spawn for a
// burst, then stopping the system: no actor is spawned once the pool is
// closed. (protoactor hands a stopping actor its messages: the supervisor
// spawned children after it had stopped its others, never stopped them,
// and so never stopped itself; the system's stop waited its whole timeout
// and the children's goroutines were left behind.)
func TestInboundClosedDuringABurstSpawnsNoActorTheStopMisses(t *testing.T) {
	for round := range 20 {
		var lateStop atomic.Bool
		sys := actors.NewSystem(slog.New(onLog(func(msg string) {
			if msg == "iii: actors did not stop in time" {
				lateStop.Store(true)
			}
		})))
		in, err := NewInbound(sys, Config{Exec: func(*Task) {}, Limit: 4 * spawnBatch, MaxBacklog: 1, MaxBacklogBytes: 1})
		if err != nil {
			t.Fatal(err)
		}
		for range 4 * spawnBatch {
			in.Dispatch(NewTask(nil, &wire.InvokeFunction{}))
		}
		in.Close()
		sys.Stop(2 * time.Second)
		if lateStop.Load() {
			t.Fatalf("round %d: the actor system did not stop: an actor spawned after the pool closed was never stopped", round)
		}
		gone := make(chan struct{})
		go func() { in.Wait(); close(gone) }()
		select {
		case <-gone:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: invocation actors' goroutines left running after the system stopped", round)
		}
	}
}
