package stream_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/stream"
	"github.com/iii-go/iii/update"
)

// memStore is a custom stream kept in a map, recording the calls it gets.
type memStore struct {
	mu    sync.Mutex
	items map[stream.Item]msg
	calls []string
	fail  error
}

func newMemStore() *memStore { return &memStore{items: map[stream.Item]msg{}} }

func (s *memStore) record(op string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, op)
	return s.fail
}

func (s *memStore) Get(ctx context.Context, it stream.Item) (*msg, error) {
	if err := s.record("get"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.items[it]; ok {
		return &m, nil
	}
	return nil, nil
}

func (s *memStore) Set(ctx context.Context, it stream.Item, data msg) (stream.Result[msg], error) {
	if err := s.record("set"); err != nil {
		return stream.Result[msg]{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := stream.Result[msg]{New: data}
	if old, ok := s.items[it]; ok {
		r.Old = &old
	}
	s.items[it] = data
	return r, nil
}

func (s *memStore) Delete(ctx context.Context, it stream.Item) (*msg, error) {
	if err := s.record("delete"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.items[it]
	if !ok {
		return nil, nil
	}
	delete(s.items, it)
	return &old, nil
}

func (s *memStore) List(ctx context.Context, g stream.Group) ([]msg, error) {
	if err := s.record("list"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []msg
	for it, m := range s.items {
		if it.StreamName == g.StreamName && it.GroupID == g.GroupID {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b msg) int { return a.Likes - b.Likes })
	return out, nil
}

func (s *memStore) ListGroups(ctx context.Context, name string) ([]string, error) {
	if err := s.record("list_groups"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for it := range s.items {
		if it.StreamName == name && !slices.Contains(out, it.GroupID) {
			out = append(out, it.GroupID)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (s *memStore) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// memUpdater adds updates, with update.Apply.
type memUpdater struct{ *memStore }

func (u memUpdater) Update(ctx context.Context, it stream.Item, ops []update.Op) (stream.Result[msg], error) {
	if err := u.record("update"); err != nil {
		return stream.Result[msg]{}, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	var r stream.Result[msg]
	var old json.RawMessage
	if m, ok := u.items[it]; ok {
		r.Old = &m
		old, _ = json.Marshal(m)
	}
	nv, errs, err := update.Apply(old, ops)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(nv, &r.New); err != nil {
		return r, err
	}
	r.Errors = errs
	u.items[it] = r.New
	return r, nil
}

func TestProviderRoutesCalls(t *testing.T) {
	eng, w, ctx := setup(t)
	store := newMemStore()
	reg, err := stream.RegisterProvider[msg](w, "custom", store)
	if err != nil {
		t.Fatal(err)
	}
	if len(reg.Functions()) != 5 || reg.StreamName() != "custom" {
		t.Fatalf("registered %d functions", len(reg.Functions()))
	}
	// Another worker uses the stream; the engine routes to the provider.
	client := newWorker(t, eng)
	if err := client.WaitForFunction(ctx, stream.ProviderFunctionID("list_groups", "custom")); err != nil {
		t.Fatal(err)
	}
	events := onChange[msg](t, ctx, eng, client, "on::custom", iii.StreamConfig{StreamName: "custom"})
	s := stream.New[msg](client, "custom")

	r, err := s.Set(ctx, "g", "a", msg{Text: "a", Likes: 1})
	if err != nil || !r.Created() || r.New.Text != "a" {
		t.Fatalf("Set = %+v, %v", r, err)
	}
	if e := events.next(t, ctx); e.Type != stream.Created || e.ID != "a" || e.Data.Text != "a" {
		t.Fatalf("create event: %+v", e)
	}
	r, err = s.Set(ctx, "g", "a", msg{Text: "a2", Likes: 1})
	if err != nil || r.Created() || r.Old.Text != "a" {
		t.Fatalf("second Set = %+v, %v", r, err)
	}
	if e := events.next(t, ctx); e.Type != stream.Updated || e.Data.Text != "a2" {
		t.Fatalf("update event: %+v", e)
	}
	s.Set(ctx, "g", "b", msg{Text: "b", Likes: 2})
	events.next(t, ctx)
	if m, found, err := s.Get(ctx, "g", "a"); err != nil || !found || m.Text != "a2" {
		t.Fatalf("Get = %+v, %v, %v", m, found, err)
	}
	if _, found, err := s.Get(ctx, "g", "zz"); err != nil || found {
		t.Fatalf("Get of a missing item = %v, %v", found, err)
	}
	if list, err := s.List(ctx, "g"); err != nil || len(list) != 2 || list[0].Text != "a2" || list[1].Text != "b" {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if list, err := s.List(ctx, "none"); err != nil || len(list) != 0 {
		t.Fatalf("List of an empty group = %+v, %v", list, err)
	}
	if groups, err := s.ListGroups(ctx); err != nil || !slices.Equal(groups, []string{"g"}) {
		t.Fatalf("ListGroups = %v, %v", groups, err)
	}
	if old, err := s.Delete(ctx, "g", "b"); err != nil || old == nil || old.Text != "b" {
		t.Fatalf("Delete = %+v, %v", old, err)
	}
	if e := events.next(t, ctx); e.Type != stream.Deleted || e.Data.Text != "b" {
		t.Fatalf("delete event: %+v", e)
	}
	if old, err := s.Delete(ctx, "g", "b"); err != nil || old != nil {
		t.Fatalf("Delete of a missing item = %+v, %v", old, err)
	}
	// Without an Updater, the engine updates in its own store: the
	// provider never sees it, and its item is not the starting value.
	u, err := s.Update(ctx, "g", "a", update.Increment("likes", 5))
	if err != nil || !u.Created() || u.New.Likes != 5 {
		t.Fatalf("Update = %+v, %v", u, err)
	}
	if e := events.next(t, ctx); e.Type != stream.Created || e.Data.Likes != 5 {
		t.Fatalf("update event: %+v", e)
	}
	if m, _, _ := s.Get(ctx, "g", "a"); m.Likes != 1 {
		t.Fatalf("provider's item changed: %+v", m)
	}
	want := []string{"set", "set", "set", "get", "get", "list", "list", "list_groups", "delete", "delete"}
	if got := store.Calls(); !slices.Equal(got[:len(want)], want) {
		t.Fatalf("provider calls = %v", got)
	}
	// Nothing reached the engine's store but the update.
	if all, _ := stream.ListAll(ctx, client); len(all) != 1 || all[0].Name != "custom" {
		t.Fatalf("engine store: %+v", all)
	}
	if len(events) != 0 {
		t.Fatalf("extra event %+v", <-events)
	}

	// Unregistered, the stream is the engine's again.
	if err := reg.Unregister(); err != nil {
		t.Fatal(err)
	}
	if err := eng.WaitFunctionGone(ctx, stream.ProviderFunctionID("get", "custom")); err != nil {
		t.Fatal(err)
	}
	if m, found, err := s.Get(ctx, "g", "a"); err != nil || !found || m.Likes != 5 {
		t.Fatalf("Get after Unregister = %+v, %v, %v", m, found, err)
	}
}

func TestProviderUpdater(t *testing.T) {
	eng, w, ctx := setup(t)
	store := memUpdater{newMemStore()}
	reg, err := stream.RegisterProvider[msg](w, "custom", store)
	if err != nil || len(reg.Functions()) != 6 {
		t.Fatalf("RegisterProvider = %v, %v", reg, err)
	}
	events := onChange[msg](t, ctx, eng, w, "on::custom", iii.StreamConfig{StreamName: "custom"})
	s := stream.New[msg](w, "custom")
	s.Set(ctx, "g", "a", msg{Text: "a"})
	events.next(t, ctx)
	r, err := s.Update(ctx, "g", "a", update.Increment("likes", 3), update.Append("likes", "x"))
	if err != nil || r.Created() || r.New != (msg{"a", 3}) || len(r.Errors) != 1 || r.Errors[0].OpIndex != 1 {
		t.Fatalf("Update = %+v, %v", r, err)
	}
	if e := events.next(t, ctx); e.Type != stream.Updated || *e.Data != (msg{"a", 3}) {
		t.Fatalf("update event: %+v", e)
	}
	if got := store.Calls(); !slices.Equal(got, []string{"set", "update"}) {
		t.Fatalf("provider calls = %v", got)
	}
}

func TestProviderErrors(t *testing.T) {
	eng, w, ctx := setup(t)
	store := newMemStore()
	store.fail = iii.NewInvocationError("STORE_DOWN", "store is down")
	if _, err := stream.RegisterProvider[msg](w, "custom", store); err != nil {
		t.Fatal(err)
	}
	events := onChange[msg](t, ctx, eng, w, "on::custom", iii.StreamConfig{StreamName: "custom"})
	s := stream.New[msg](w, "custom")
	// Reads pass the provider's error on as it is.
	_, _, err := s.Get(ctx, "g", "a")
	var re *iii.RemoteError
	if !errors.As(err, &re) || re.Code != "STORE_DOWN" || re.Message != "store is down" {
		t.Fatalf("Get: %v", err)
	}
	if _, err := s.List(ctx, "g"); iii.ErrorCode(err) != "STORE_DOWN" {
		t.Fatalf("List: %v", err)
	}
	// Writes wrap it.
	_, err = s.Set(ctx, "g", "a", msg{})
	if !errors.As(err, &re) || re.Code != "STREAM_SET_ERROR" || re.Message != `Failed to set value: Failed to invoke function: ErrorBody { code: "STORE_DOWN", message: "store is down", stacktrace: None }` {
		t.Fatalf("Set: %v", err)
	}
	if _, err := s.Delete(ctx, "g", "a"); iii.ErrorCode(err) != "STREAM_DELETE_ERROR" {
		t.Fatalf("Delete: %v", err)
	}
	// A failed write reports nothing; the next event is the engine store's
	// update (no Updater).
	store.mu.Lock()
	store.fail = nil
	store.mu.Unlock()
	s.Update(ctx, "g", "u", update.Set("text", "u"))
	if e := events.next(t, ctx); e.ID != "u" {
		t.Fatalf("event %+v", e)
	}
}

func TestProviderRegistration(t *testing.T) {
	_, w, _ := setup(t)
	if _, err := stream.RegisterProvider[msg](w, "s", nil); !errors.Is(err, iii.ErrInvalidID) {
		t.Fatalf("nil provider: %v", err)
	}
	if _, err := stream.RegisterProvider[msg](w, "", newMemStore()); !errors.Is(err, iii.ErrInvalidID) {
		t.Fatalf("no name: %v", err)
	}
	// A clash withdraws what was registered.
	if _, err := iii.RegisterFunction(w, stream.ProviderFunctionID("list", "s"), func(context.Context, any) (any, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.RegisterProvider[msg](w, "s", newMemStore()); !errors.Is(err, iii.ErrDuplicate) {
		t.Fatalf("clash: %v", err)
	}
	if _, err := stream.RegisterProvider[msg](w, "s2", newMemStore()); err != nil {
		t.Fatal(err)
	}
	// s's get, set and delete were withdrawn: registering again works.
	if _, err := iii.RegisterFunction(w, stream.ProviderFunctionID("get", "s"), func(context.Context, any) (any, error) { return nil, nil }); err != nil {
		t.Fatalf("get(s) still registered: %v", err)
	}
}
