package connection

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// A callback that blocks while the state keeps changing (a flapping
// connection) holds at most maxQueuedStates changes: the oldest it has not
// seen are dropped, and once it returns it still gets the latest.
func TestStateNotifierBoundsWhatWaitsForABlockedCallback(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var seen []State
	var n stateNotifier
	n.start(func(s State) {
		if s == Connecting {
			<-release // the first change blocks the callback
		}
		mu.Lock()
		seen = append(seen, s)
		mu.Unlock()
	}, slog.New(slog.DiscardHandler))
	n.push(Connecting)
	const changes = 3 * maxQueuedStates
	for i := range changes {
		if i%2 == 0 {
			n.push(Reconnecting)
		} else {
			n.push(Connected)
		}
	}
	n.mu.Lock()
	queued, dropped := len(n.queue), n.dropped
	n.mu.Unlock()
	if queued > maxQueuedStates {
		t.Fatalf("%d changes wait for the blocked callback; the bound is %d", queued, maxQueuedStates)
	}
	close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !n.close(ctx) {
		t.Fatal("the notifier did not deliver what was queued")
	}
	mu.Lock()
	defer mu.Unlock()
	if got, want := len(seen), 1+changes-dropped; got != want {
		t.Fatalf("the callback saw %d changes, want %d (%d dropped)", got, want, dropped)
	}
	if seen[len(seen)-1] != Connected {
		t.Fatalf("the last change the callback saw is %v, want the latest, %v", seen[len(seen)-1], Connected)
	}
}
