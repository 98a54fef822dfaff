package goid

import (
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestIDsAreDistinctAndStable(t *testing.T) {
	me := ID()
	if me == 0 {
		t.Fatal("no id for this goroutine")
	}
	if ID() != me {
		t.Fatal("the id changed")
	}
	other := make(chan uint64)
	go func() { other <- ID() }()
	if o := <-other; o == 0 || o == me {
		t.Fatalf("other goroutine's id %d, this one's %d", o, me)
	}
}

func TestSetHoldsTheGoroutinesThatEntered(t *testing.T) {
	var s Set
	if s.Current() {
		t.Fatal("empty set holds this goroutine")
	}
	id := s.Enter()
	if !s.Current() {
		t.Fatal("entered, not held")
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if s.Current() {
			t.Error("another goroutine is held")
		}
	}()
	wg.Wait()
	s.Leave(id)
	if s.Current() {
		t.Fatal("held after leaving")
	}
	var nilSet *Set
	nilSet.Leave(nilSet.Enter())
	if nilSet.Current() {
		t.Fatal("nil set holds a goroutine")
	}
}
