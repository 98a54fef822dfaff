package invocation

import (
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/iii-go/iii/actors"
	"github.com/iii-go/iii/connection/wire"
)

// The three ways to run an inbound invocation, under the same load: one
// dispatching goroutine (the socket's read loop) keeping inFlight
// invocations running, each doing the same trivial work, so that what is
// measured is the runtime's cost. Run with
//
//	go test ./invocation -run '^$' -bench Invocation -benchmem -count 5
//
// cpu-µs/op is the process's CPU time (user+system, getrusage) per invocation.
const inFlight = 64

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runLoad dispatches b.N tasks with at most inFlight running. setup gets the
// function a task calls when it is done and returns the dispatcher.
func runLoad(b *testing.B, setup func(done func(*Task)) (dispatch func(*Task))) {
	sem := make(chan struct{}, inFlight)
	done := func(t *Task) {
		t.Msg.FunctionID = "bench::done" // the "reply"
		<-sem
	}
	dispatch := setup(done)
	msgs := make([]wire.InvokeFunction, inFlight*2)
	b.ReportAllocs()
	c0 := cpuTime()
	i := 0
	for b.Loop() {
		sem <- struct{}{}
		dispatch(NewTask(nil, &msgs[i%len(msgs)]))
		i++
	}
	for range inFlight { // the last ones finish
		sem <- struct{}{}
	}
	b.ReportMetric(float64((cpuTime()-c0).Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
}

// BenchmarkInvocationPooledActors is this package's design: invocation
// actors, each with a goroutine of its own, reused from a pool.
func BenchmarkInvocationPooledActors(b *testing.B) {
	sys := actors.NewSystem(nil)
	var in *Inbound
	runLoad(b, func(done func(*Task)) func(*Task) {
		var err error
		if in, err = NewInbound(sys, Config{Exec: done, Limit: 1024, MaxBacklog: 65536, MaxBacklogBytes: 64 << 20}); err != nil {
			b.Fatal(err)
		}
		return in.Dispatch
	})
	in.Close()
	sys.Stop(5 * time.Second)
	in.Wait()
}

// BenchmarkInvocationSpawnPerInvocation spawns a fresh supervised actor for
// each invocation, which stops itself after its reply.
func BenchmarkInvocationSpawnPerInvocation(b *testing.B) {
	sys := actors.NewSystem(nil)
	runLoad(b, func(done func(*Task)) func(*Task) {
		props := actor.PropsFromFunc(func(ctx actor.Context) {
			if t, ok := ctx.Message().(*Task); ok {
				done(t)
				ctx.Stop(ctx.Self())
			}
		})
		return func(t *Task) {
			pid := sys.AS.Root.Spawn(props)
			sys.AS.Root.Send(pid, t)
		}
	})
	sys.Stop(5 * time.Second)
}

// BenchmarkInvocationGoroutinePerInvocation runs each invocation on a new
// goroutine, with no actor.
func BenchmarkInvocationGoroutinePerInvocation(b *testing.B) {
	runLoad(b, func(done func(*Task)) func(*Task) {
		return func(t *Task) { go done(t) }
	})
}

// BenchmarkPendingCallArmAndComplete is a call's way through the pending
// table when few calls are in flight (its shard's heap is otherwise
// empty): added, given its deadline, completed and taken.
//
//	go test -run '^$' -bench PendingCallArmAndComplete ./invocation
func BenchmarkPendingCallArmAndComplete(b *testing.B) {
	p := NewPending()
	res := &wire.InvocationResult{}
	b.ReportAllocs()
	for b.Loop() {
		c, err := p.Add()
		if err != nil {
			b.Fatal(err)
		}
		p.arm(c, 30*time.Second)
		res.InvocationID = c.ID
		if !p.Complete(res) {
			b.Fatal("the call was not pending")
		}
		<-c.done
		p.Release(c)
	}
}
