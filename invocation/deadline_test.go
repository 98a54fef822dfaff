package invocation

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/iii-go/iii/connection/wire"
)

// TestDeadlineHeapKeepsOrderAndPlaces pushes and removes calls at random
// and checks after each step that the heap is ordered and that every call
// knows its place in it.
func TestDeadlineHeapKeepsOrderAndPlaces(t *testing.T) {
	var sh shard
	r := rand.New(rand.NewPCG(1, 2))
	var in []*Call
	check := func() {
		t.Helper()
		for i, c := range sh.heap {
			if int(c.index) != i {
				t.Fatalf("call at %d thinks it is at %d", i, c.index)
			}
			if i > 0 && sh.heap[(i-1)/2].deadline > c.deadline {
				t.Fatalf("heap out of order at %d", i)
			}
		}
		if len(sh.heap) != len(in) {
			t.Fatalf("heap holds %d calls, want %d", len(sh.heap), len(in))
		}
	}
	for range 5000 {
		if len(in) == 0 || r.IntN(3) > 0 {
			c := &Call{deadline: r.Int64N(1000), index: -1}
			sh.push(c)
			in = append(in, c)
		} else {
			i := r.IntN(len(in))
			sh.remove(in[i])
			if in[i].index != -1 {
				t.Fatal("a removed call keeps a place")
			}
			in = append(in[:i], in[i+1:]...)
		}
		check()
	}
}

// TestPendingTimesOutEachCallAtItsOwnDeadline makes calls with short and
// long timeouts: the short ones time out, the long ones stay pending
// (their results are still taken), whatever the order they were made in.
func TestPendingTimesOutEachCallAtItsOwnDeadline(t *testing.T) {
	p := NewPending()
	const n = 300
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		long     []*Call
		timedOut = make(chan struct{}, n)
	)
	for i := range n {
		c, _ := p.Add()
		timeout := time.Duration(1+i%5) * time.Millisecond
		if i%3 == 0 {
			timeout = time.Hour
			mu.Lock()
			long = append(long, c)
			mu.Unlock()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := p.Wait(context.Background(), c, timeout)
			switch {
			case timeout == time.Hour && (o.Err != nil || o.Result == nil || o.Result.InvocationID != c.ID):
				t.Errorf("a call with an hour to go ended with %+v", o)
			case timeout < time.Hour && !errors.Is(o.Err, ErrTimeout):
				t.Errorf("a call with %s to go ended with %+v", timeout, o)
			case timeout < time.Hour:
				timedOut <- struct{}{}
			}
		}()
	}
	for range n - len(long) {
		<-timedOut
	}
	if got := p.Len(); got != len(long) {
		t.Fatalf("%d calls pending after the short ones timed out, want %d", got, len(long))
	}
	for _, c := range long {
		if !p.Complete(&wire.InvocationResult{InvocationID: c.ID}) {
			t.Fatal("a pending call's result was not taken")
		}
	}
	wg.Wait()
	for i := range p.shards {
		if sh := &p.shards[i]; len(sh.heap) != 0 {
			t.Fatalf("shard %d keeps %d deadlines", i, len(sh.heap))
		}
	}
	// A shard's timer is left to run once its heap is empty, until the
	// table closes.
	p.FailAll(errors.New("closed"), true)
	for i := range p.shards {
		if sh := &p.shards[i]; sh.when != 0 {
			t.Fatalf("shard %d keeps its timer due %d after the table closed", i, sh.when)
		}
	}
}

// TestPendingReusedCallIsNotTimedOutByItsPastDeadline times a call out,
// releases it and checks that its next use, from the pool, waits for its
// own result: neither what is left of its past timeout nor a late result
// of the call that timed out reaches it.
func TestPendingReusedCallIsNotTimedOutByItsPastDeadline(t *testing.T) {
	p := NewPending()
	for range 200 {
		c, _ := p.Add()
		if o := p.Wait(context.Background(), c, time.Microsecond); !errors.Is(o.Err, ErrTimeout) {
			t.Fatalf("outcome %+v", o)
		}
		old := c.ID
		p.Release(c)
		c2, _ := p.Add()
		if p.Complete(&wire.InvocationResult{InvocationID: old}) || p.Len() != 1 {
			t.Fatal("a late result of the timed-out call was taken")
		}
		if !p.Complete(&wire.InvocationResult{InvocationID: c2.ID}) {
			t.Fatal("the result was not taken")
		}
		if o := p.Wait(context.Background(), c2, time.Hour); o.Err != nil || o.Result.InvocationID != c2.ID {
			t.Fatalf("outcome %+v", o)
		}
		p.Release(c2)
	}
}

// TestPendingCallHeapIsSmall measures the heap a call holds while it waits
// with a timeout: the call, its channel, its table and deadline entries.
// With a timer of its own per call it was some 390 bytes; with the shards'
// deadline heaps, about 270; with their hash tables chained through the
// calls instead of maps, about 220.
func TestPendingCallHeapIsSmall(t *testing.T) {
	const n = 4000
	p := NewPending()
	cs := make([]*Call, 0, n)
	runtime.GC()
	runtime.GC() // empties the pool of calls: every call below is new
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		c, _ := p.Add()
		p.arm(c, time.Hour)
		cs = append(cs, c)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	t.Logf("%d B per waiting call", per)
	if per > 256 {
		t.Errorf("a waiting call holds %d B of heap, want at most 256", per)
	}
	p.FailAll(errors.New("done"), true)
	for _, c := range cs {
		<-c.done
	}
}

// TestShardTableMatchesAMap inserts, looks up and deletes calls at random
// (the table grows, and lets go of its buckets when a burst is over) and
// checks the shard's table against a map.
func TestShardTableMatchesAMap(t *testing.T) {
	var sh shard
	r := rand.New(rand.NewPCG(3, 4))
	want := map[wire.UUID]*Call{}
	var ids []wire.UUID
	peak := 0
	for round := range 30000 {
		switch {
		case round < 3000 || len(ids) == 0 || r.IntN(2) == 0 && round < 12000:
			c := &Call{ID: wire.NewUUID(), index: -1}
			sh.insert(c)
			want[c.ID] = c
			ids = append(ids, c.ID)
		default:
			i := r.IntN(len(ids))
			id := ids[i]
			if got := sh.delete(id); got != want[id] {
				t.Fatalf("delete returned %p, want %p", got, want[id])
			}
			if sh.delete(id) != nil || sh.lookup(id) != nil {
				t.Fatal("a deleted call is still there")
			}
			delete(want, id)
			ids = append(ids[:i], ids[i+1:]...)
		}
		peak = max(peak, len(sh.buckets))
		if sh.n != len(want) {
			t.Fatalf("the table counts %d calls, want %d", sh.n, len(want))
		}
		if round%97 == 0 {
			for id, c := range want {
				if sh.lookup(id) != c {
					t.Fatal("a call is not found by its id")
				}
			}
		}
	}
	if len(want) != 0 || len(sh.buckets) > 1024 || peak <= 1024 {
		t.Fatalf("%d calls left, %d buckets kept of %d", len(want), len(sh.buckets), peak)
	}
}

// TestPendingTimerLeftRunningTimesOutTheNextCall: a shard's timer stays
// armed for the deadline of a call that has completed since; a later call
// in that shard still times out at its own deadline, whether that is
// later (the timer finds nothing due, then re-arms) or earlier (the timer
// is moved up).
func TestPendingTimerLeftRunningTimesOutTheNextCall(t *testing.T) {
	for _, c := range []struct {
		name          string
		first, second time.Duration
	}{
		{"later deadline", 5 * time.Millisecond, 30 * time.Millisecond},
		{"earlier deadline", time.Hour, 5 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := NewPending()
			a := sameShardCall(t, p, wire.UUID{})
			p.arm(a, c.first)
			if !p.Complete(&wire.InvocationResult{InvocationID: a.ID}) {
				t.Fatal("the first call was not pending")
			}
			<-a.done
			if sh := p.shard(a.ID); sh.when == 0 {
				t.Fatal("the shard's timer was disarmed: this test no longer covers a timer left running")
			}
			b := sameShardCall(t, p, a.ID)
			start := time.Now()
			o := p.Wait(context.Background(), b, c.second)
			if !errors.Is(o.Err, ErrTimeout) {
				t.Fatalf("outcome %+v, want a timeout", o)
			}
			if took := time.Since(start); took < c.second {
				t.Fatalf("timed out after %s, before its timeout of %s", took, c.second)
			}
			p.Release(a)
			p.Release(b)
		})
	}
}

// sameShardCall adds calls until one falls in the shard of id (any, if id
// is zero) and fails the others.
func sameShardCall(t *testing.T, p *Pending, id wire.UUID) *Call {
	t.Helper()
	for range 10000 {
		c, err := p.Add()
		if err != nil {
			t.Fatal(err)
		}
		if id == (wire.UUID{}) || p.shard(c.ID) == p.shard(id) {
			return c
		}
		p.Fail(c, errors.New("other shard"))
		<-c.done
		p.Release(c)
	}
	t.Fatal("no call fell in the shard")
	return nil
}
