package invocation

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// recordingInvoker records the messages a mailbox hands it; the first user
// message blocks until release is closed.
type recordingInvoker struct {
	mu      sync.Mutex
	user    []any
	release chan struct{}
	busy    chan struct{} // closed once the first user message is being handled
	once    sync.Once
}

func (r *recordingInvoker) InvokeSystemMessage(any) {}

func (r *recordingInvoker) InvokeUserMessage(m any) {
	r.once.Do(func() {
		close(r.busy)
		<-r.release
	})
	r.mu.Lock()
	r.user = append(r.user, m)
	r.mu.Unlock()
}

func (r *recordingInvoker) EscalateFailure(any, any) {}

// TestMailboxPostsDoNotWaitAndKeepTheirOrder posts many messages to a
// mailbox whose goroutine is busy: no post waits for it (the channel of
// six the mailbox had made the seventh wait), and they are handled in the
// order posted once it is free.
func TestMailboxPostsDoNotWaitAndKeepTheirOrder(t *testing.T) {
	var owner mailboxOwner
	r := &recordingInvoker{release: make(chan struct{}), busy: make(chan struct{})}
	mb := newMailbox(&owner)
	mb.RegisterHandlers(r, nil)
	mb.Start()
	mb.PostUserMessage(0)
	<-r.busy
	const n = 100
	posted := make(chan struct{})
	go func() {
		for i := 1; i < n; i++ {
			mb.PostUserMessage(i)
		}
		close(posted)
	}()
	select {
	case <-posted:
	case <-time.After(10 * time.Second):
		t.Fatal("posting to a busy mailbox waits for it")
	}
	if got := mb.UserMessageCount(); got != n-1 {
		t.Errorf("%d messages waiting, want %d", got, n-1)
	}
	close(r.release)
	mb.PostSystemMessage(&actor.Stop{})
	owner.wg.Wait()
	if len(r.user) != n {
		t.Fatalf("%d messages handled, want %d", len(r.user), n)
	}
	for i, m := range r.user {
		if m != i {
			t.Fatalf("message %d is %v", i, m)
		}
	}
}

// TestMailboxHeapIsSmall measures a mailbox holding a message, as an
// invocation actor's does once a task was posted to it: its channel of six
// made it some 256 bytes, the queue under a mutex about 120, with its first array inline 96.
func TestMailboxHeapIsSmall(t *testing.T) {
	const n = 4000
	var owner mailboxOwner
	mbs := make([]actor.Mailbox, 0, n)
	task := &Task{}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		mb := newMailbox(&owner)
		mb.PostUserMessage(task)
		mbs = append(mbs, mb)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	t.Logf("%d B per mailbox", per)
	if per > 112 {
		t.Errorf("a mailbox holds %d B of heap, want at most 112", per)
	}
	runtime.KeepAlive(mbs)
}

// orderInvoker records every message it is handed, system ones included.
type orderInvoker struct {
	mu  sync.Mutex
	got []any
}

func (o *orderInvoker) record(m any) {
	o.mu.Lock()
	o.got = append(o.got, m)
	o.mu.Unlock()
}

func (o *orderInvoker) InvokeSystemMessage(m any) { o.record(m) }
func (o *orderInvoker) InvokeUserMessage(m any)   { o.record(m) }
func (o *orderInvoker) EscalateFailure(any, any)  {}

// TestSuspendedMailboxHoldsUserMessagesAndTakesSystemOnes suspends a
// mailbox with user messages queued: system messages overtake them, and
// on resume they are handled in the order they were posted, before what is
// posted after.
func TestSuspendedMailboxHoldsUserMessagesAndTakesSystemOnes(t *testing.T) {
	var owner mailboxOwner
	o := &orderInvoker{}
	mb := newMailbox(&owner)
	mb.RegisterHandlers(o, nil)
	watch, restart := &actor.Watch{}, &actor.Restart{}
	mb.PostSystemMessage(&actor.SuspendMailbox{})
	mb.PostUserMessage("a")
	mb.PostUserMessage("b")
	mb.PostSystemMessage(watch)
	mb.PostUserMessage("c")
	mb.PostSystemMessage(restart)
	mb.PostSystemMessage(&actor.ResumeMailbox{})
	mb.PostUserMessage("d")
	mb.Start()
	mb.PostSystemMessage(&actor.Stop{})
	owner.wg.Wait()
	want := []any{watch, restart, "a", "b", "c", "d"}
	if len(o.got) != len(want)+1 {
		t.Fatalf("handled %v, want %v then Stop", o.got, want)
	}
	for i, m := range want {
		if o.got[i] != m {
			t.Fatalf("handled %v, want %v then Stop", o.got, want)
		}
	}
}
