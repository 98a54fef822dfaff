package stream_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/stream"
	"github.com/iii-go/iii/test/iiitest"
	"github.com/iii-go/iii/update"
)

// TestMain fails the run if any test leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type msg struct {
	Text  string `json:"text"`
	Likes int    `json:"likes,omitempty"`
}

func setup(t *testing.T) (*iiitest.Engine, *iii.III, context.Context) {
	t.Helper()
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	if err := w.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	return eng, w, ctx
}

func newWorker(t *testing.T, eng *iiitest.Engine) *iii.III {
	w := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	t.Cleanup(w.Shutdown)
	return w
}

func TestItems(t *testing.T) {
	_, w, ctx := setup(t)
	chat := stream.New[msg](w, "chat")
	if _, found, err := chat.Get(ctx, "room", "m1"); err != nil || found {
		t.Fatalf("Get of a missing item = %v, %v", found, err)
	}
	r, err := chat.Set(ctx, "room", "m1", msg{Text: "hi"})
	if err != nil || !r.Created() || r.New.Text != "hi" {
		t.Fatalf("Set = %+v, %v", r, err)
	}
	r, err = chat.Set(ctx, "room", "m1", msg{Text: "hello"})
	if err != nil || r.Created() || r.Old.Text != "hi" {
		t.Fatalf("second Set = %+v, %v", r, err)
	}
	r, err = chat.Update(ctx, "room", "m1", update.Increment("likes", 2), update.Increment("text", 1))
	if err != nil || r.New != (msg{"hello", 2}) || len(r.Errors) != 1 || r.Errors[0].Code != update.CodeIncrementNotNumber {
		t.Fatalf("Update = %+v, %v", r, err)
	}
	if m, found, err := chat.Get(ctx, "room", "m1"); err != nil || !found || m != (msg{"hello", 2}) {
		t.Fatalf("Get = %+v, %v, %v", m, found, err)
	}
	chat.Set(ctx, "room", "m0", msg{Text: "second"})
	chat.Set(ctx, "hall", "m9", msg{Text: "elsewhere"})
	stream.Set(ctx, w, "news", "today", "n1", "headline")
	if list, err := chat.List(ctx, "room"); err != nil || len(list) != 2 || list[0].Text != "hello" || list[1].Text != "second" {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if list, err := chat.List(ctx, "none"); err != nil || list == nil || len(list) != 0 {
		t.Fatalf("List of an unknown group = %#v, %v", list, err)
	}
	groups, err := chat.ListGroups(ctx)
	sort.Strings(groups) // the engine promises no order
	if err != nil || !slices.Equal(groups, []string{"hall", "room"}) {
		t.Fatalf("ListGroups = %v, %v", groups, err)
	}
	old, err := chat.Delete(ctx, "room", "m1")
	if err != nil || old == nil || old.Text != "hello" {
		t.Fatalf("Delete = %+v, %v", old, err)
	}
	if old, err := chat.Delete(ctx, "room", "m1"); err != nil || old != nil {
		t.Fatalf("Delete of a missing item = %+v, %v", old, err)
	}
	all, err := stream.ListAll(ctx, w)
	if err != nil || len(all) != 2 || all[0].Name != "chat" || !slices.Equal(all[0].Groups, []string{"hall", "room"}) || all[1].Name != "news" {
		t.Fatalf("ListAll = %+v, %v", all, err)
	}
	if err := chat.Send(ctx, "room", "", "typing", map[string]string{"who": "ada"}); err != nil {
		t.Fatalf("Send = %v", err)
	}
}

func TestEngineErrors(t *testing.T) {
	_, w, ctx := setup(t)
	_, err := w.Trigger(ctx, iii.TriggerRequest{FunctionID: stream.FunctionSet, Payload: map[string]string{"stream_name": "s", "group_id": "g"}})
	var re *iii.RemoteError
	if !errors.As(err, &re) || re.Code != "deserialization_error" || re.Message != "Failed to deserialize input for stream::set: missing field `item_id`" {
		t.Fatalf("set without item_id: %v", err)
	}
	_, err = w.Trigger(ctx, iii.TriggerRequest{FunctionID: stream.FunctionSend, Payload: map[string]string{"stream_name": "s", "group_id": "g", "type": "x"}})
	if iii.ErrorCode(err) != "deserialization_error" {
		t.Fatalf("send without data: %v", err)
	}
}

type events[T any] chan stream.Event[T]

func (ch events[T]) next(t *testing.T, ctx context.Context) stream.Event[T] {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-ctx.Done():
		t.Fatal("no event")
		return stream.Event[T]{}
	}
}

func onChange[T any](t *testing.T, ctx context.Context, eng *iiitest.Engine, w *iii.III, id string, cfg iii.StreamConfig) events[T] {
	t.Helper()
	ch := make(events[T], 16)
	sub, err := stream.OnChange(w, id, cfg, func(ctx context.Context, e stream.Event[T]) error {
		ch <- e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.WaitTrigger(ctx, sub.Trigger.ID()); err != nil {
		t.Fatal(err)
	}
	return ch
}

func TestOnChange(t *testing.T) {
	eng, w, ctx := setup(t)
	all := onChange[msg](t, ctx, eng, w, "on::chat", iii.StreamConfig{StreamName: "chat"})
	room := onChange[msg](t, ctx, eng, w, "on::room", iii.StreamConfig{StreamName: "chat", GroupID: "room"})
	item := onChange[msg](t, ctx, eng, w, "on::m2", iii.StreamConfig{StreamName: "chat", GroupID: "room", ItemID: "m2"})
	chat := stream.New[msg](w, "chat")
	before := time.Now().Add(-time.Second)

	// Another stream, another group: only the stream-wide binding.
	stream.Set(ctx, w, "other", "room", "m1", msg{Text: "no"})
	chat.Set(ctx, "hall", "m1", msg{Text: "hall"})
	if e := all.next(t, ctx); e.GroupID != "hall" || e.Type != stream.Created || e.Data.Text != "hall" || e.Time.Before(before) {
		t.Fatalf("all: %+v", e)
	}

	chat.Set(ctx, "room", "m1", msg{Text: "a"})
	if e := room.next(t, ctx); e.Type != stream.Created || e.StreamName != "chat" || e.GroupID != "room" || e.ID != "m1" || e.Data.Text != "a" {
		t.Fatalf("created: %+v", e)
	}
	chat.Update(ctx, "room", "m1", update.Increment("likes", 1))
	if e := room.next(t, ctx); e.Type != stream.Updated || *e.Data != (msg{"a", 1}) {
		t.Fatalf("updated: %+v", e)
	}
	chat.Delete(ctx, "room", "m1")
	if e := room.next(t, ctx); e.Type != stream.Deleted || *e.Data != (msg{"a", 1}) {
		t.Fatalf("deleted: %+v", e)
	}
	// Deleting a missing item reports nothing; the next event is the send.
	chat.Delete(ctx, "room", "m1")
	chat.Send(ctx, "room", "", "typing", map[string]string{"who": "ada"})
	e := room.next(t, ctx)
	if e.Type != stream.Sent || e.Data != nil || e.ID != "" || e.Message == nil || e.Message.Type != "typing" || string(e.Message.Data) != `{"who":"ada"}` {
		t.Fatalf("sent: %+v", e)
	}
	chat.Set(ctx, "room", "m2", msg{Text: "b"})
	if e := item.next(t, ctx); e.ID != "m2" || e.Data.Text != "b" {
		t.Fatalf("item: %+v", e)
	}
	if len(item) != 0 {
		t.Fatalf("item binding got %+v", <-item)
	}
	// The stream-wide binding saw the 6 chat changes of room too; never
	// the other stream.
	for range 5 {
		if e := all.next(t, ctx); e.StreamName != "chat" {
			t.Fatalf("all: %+v", e)
		}
	}
	room.next(t, ctx) // m2
	if len(all)+len(room) != 0 {
		t.Fatal("extra events")
	}
}

func TestOnChangeCondition(t *testing.T) {
	eng, w, ctx := setup(t)
	if _, err := stream.RegisterCondition(w, "cond::liked", func(ctx context.Context, e stream.Event[msg]) (bool, error) {
		return e.Data != nil && e.Data.Likes > 0, nil
	}); err != nil {
		t.Fatal(err)
	}
	liked := onChange[msg](t, ctx, eng, w, "on::liked", iii.StreamConfig{StreamName: "chat", ConditionFunctionID: "cond::liked"})
	stream.Set(ctx, w, "chat", "g", "a", msg{Text: "a"})
	stream.Set(ctx, w, "chat", "g", "b", msg{Text: "b", Likes: 1})
	if e := liked.next(t, ctx); e.ID != "b" {
		t.Fatalf("liked: %+v", e)
	}
	stream.Set(ctx, w, "chat", "g", "c", msg{Text: "c", Likes: 2})
	if e := liked.next(t, ctx); e.ID != "c" {
		t.Fatalf("liked got %+v, want c (a must be skipped)", e)
	}
}

func TestOnChangeValidation(t *testing.T) {
	_, w, _ := setup(t)
	h := func(context.Context, stream.Event[msg]) error { return nil }
	if _, err := stream.OnChange(w, "x", iii.StreamConfig{}, h); !errors.Is(err, iii.ErrInvalidID) {
		t.Fatalf("no stream name: %v", err)
	}
	if _, err := stream.OnChange[msg](w, "x", iii.StreamConfig{StreamName: "s"}, nil); !errors.Is(err, iii.ErrInvalidID) {
		t.Fatalf("nil handler: %v", err)
	}
	if _, err := stream.OnJoin(w, "x", nil); !errors.Is(err, iii.ErrInvalidID) {
		t.Fatalf("nil join handler: %v", err)
	}
	if _, err := stream.OnLeave(w, "x", nil); !errors.Is(err, iii.ErrInvalidID) {
		t.Fatalf("nil leave handler: %v", err)
	}
	if _, err := stream.RegisterCondition[msg](w, "x", nil); !errors.Is(err, iii.ErrInvalidID) {
		t.Fatalf("nil condition: %v", err)
	}
}

func TestJoinLeave(t *testing.T) {
	eng, w, ctx := setup(t)
	var mu sync.Mutex
	var joined, left []iii.StreamJoinLeaveEvent
	j, err := stream.OnJoin(w, "on::join", func(ctx context.Context, ev iii.StreamJoinLeaveEvent) (iii.StreamJoinResult, error) {
		mu.Lock()
		joined = append(joined, ev)
		mu.Unlock()
		return iii.StreamJoinResult{Unauthorized: ev.StreamName == "secret"}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := stream.OnLeave(w, "on::leave", func(ctx context.Context, ev iii.StreamJoinLeaveEvent) error {
		mu.Lock()
		left = append(left, ev)
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	eng.WaitTrigger(ctx, j.Trigger.ID())
	eng.WaitTrigger(ctx, l.Trigger.ID())

	sub := iiitest.StreamSubscription{SubscriptionID: "s1", StreamName: "chat", GroupID: "room", Context: json.RawMessage(`{"user":"ada"}`)}
	if unauth, err := eng.StreamJoin(ctx, sub); err != nil || unauth {
		t.Fatalf("join chat = %v, %v", unauth, err)
	}
	if unauth, err := eng.StreamJoin(ctx, iiitest.StreamSubscription{SubscriptionID: "s2", StreamName: "secret", GroupID: "g", ID: "i"}); err != nil || !unauth {
		t.Fatalf("join secret = %v, %v", unauth, err)
	}
	if err := eng.StreamLeave(ctx, sub); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(joined) != 2 || joined[0].SubscriptionID != "s1" || joined[0].GroupID != "room" || joined[0].ID != "" || string(joined[0].Context) != `{"user":"ada"}` ||
		joined[1].ID != "i" || string(joined[1].Context) != "null" {
		t.Fatalf("joined = %+v", joined)
	}
	if len(left) != 1 || left[0].SubscriptionID != "s1" || left[0].StreamName != "chat" {
		t.Fatalf("left = %+v", left)
	}
}
