package state_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/state"
	"github.com/iii-go/iii/test/iiitest"
	"github.com/iii-go/iii/update"
)

// TestMain fails the run if any test leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type user struct {
	Name   string `json:"name"`
	Visits int    `json:"visits,omitempty"`
}

func setup(t *testing.T) (*iiitest.Engine, *iii.III, context.Context) {
	t.Helper()
	eng := iiitest.NewEngine(t)
	w := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	t.Cleanup(w.Shutdown)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	if err := w.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	return eng, w, ctx
}

func TestSetGetDelete(t *testing.T) {
	_, w, ctx := setup(t)
	users := state.New[user](w, "users")

	if _, found, err := users.Get(ctx, "u1"); err != nil || found {
		t.Fatalf("Get of a missing key = %v, %v", found, err)
	}
	r, err := users.Set(ctx, "u1", user{Name: "Ada"})
	if err != nil || !r.Created() || r.New.Name != "Ada" {
		t.Fatalf("first Set = %+v, %v", r, err)
	}
	r, err = users.Set(ctx, "u1", user{Name: "Ada L."})
	if err != nil || r.Created() || r.Old.Name != "Ada" || r.New.Name != "Ada L." {
		t.Fatalf("second Set = %+v, %v", r, err)
	}
	u, found, err := users.Get(ctx, "u1")
	if err != nil || !found || u.Name != "Ada L." {
		t.Fatalf("Get = %+v, %v, %v", u, found, err)
	}
	old, err := users.Delete(ctx, "u1")
	if err != nil || old == nil || old.Name != "Ada L." {
		t.Fatalf("Delete = %+v, %v", old, err)
	}
	if old, err := users.Delete(ctx, "u1"); err != nil || old != nil {
		t.Fatalf("Delete of a missing key = %+v, %v", old, err)
	}
	if _, found, _ := users.Get(ctx, "u1"); found {
		t.Fatal("deleted key still found")
	}
	// The data alias of value, as the engine accepts it.
	if _, err := w.Trigger(ctx, iii.TriggerRequest{FunctionID: state.FunctionSet, Payload: map[string]any{"scope": "users", "key": "u2", "data": user{Name: "Bo"}}}); err != nil {
		t.Fatal(err)
	}
	if u, _, _ := users.Get(ctx, "u2"); u.Name != "Bo" {
		t.Fatalf("set with data = %+v", u)
	}
}

func TestValueTypes(t *testing.T) {
	_, w, ctx := setup(t)
	if _, err := state.Set(ctx, w, "misc", "n", 42); err != nil {
		t.Fatal(err)
	}
	if n, found, err := state.Get[int](ctx, w, "misc", "n"); err != nil || !found || n != 42 {
		t.Fatalf("Get[int] = %v, %v, %v", n, found, err)
	}
	_, _, err := state.Get[string](ctx, w, "misc", "n")
	if err == nil {
		t.Fatal("Get[string] of a number succeeded")
	}
	var re *iii.RemoteError
	if errors.As(err, &re) {
		t.Fatalf("a decode error is not the engine's: %v", err)
	}
}

func TestUpdate(t *testing.T) {
	_, w, ctx := setup(t)
	users := state.New[user](w, "users")
	r, err := users.Update(ctx, "u1", update.Set("name", "Ada"), update.Increment("visits", 2))
	if err != nil || !r.Created() || r.New != (user{"Ada", 2}) || r.Err() != nil {
		t.Fatalf("Update of a missing key = %+v, %v", r, err)
	}
	r, err = users.Update(ctx, "u1", update.Increment("visits", 1), update.Append("name", 5), update.Remove("nothing"))
	if err != nil || r.Created() || *r.Old != (user{"Ada", 2}) || r.New != (user{"Ada", 3}) {
		t.Fatalf("Update = %+v, %v", r, err)
	}
	var ue update.Error
	if len(r.Errors) != 1 || !errors.As(r.Err(), &ue) || ue.OpIndex != 1 || ue.Code != update.CodeAppendTypeMismatch {
		t.Fatalf("op errors = %+v (%v)", r.Errors, r.Err())
	}
	if u, _, _ := users.Get(ctx, "u1"); u != (user{"Ada", 3}) {
		t.Fatalf("stored = %+v", u)
	}
	// Merge, on the untyped API.
	m, err := state.Update[map[string]any](ctx, w, "users", "u1", update.Merge(map[string]any{"city": "London"}))
	if err != nil || m.New["city"] != "London" || m.New["name"] != "Ada" {
		t.Fatalf("merge = %+v, %v", m, err)
	}
}

func TestListAndGroups(t *testing.T) {
	_, w, ctx := setup(t)
	for _, k := range []string{"c", "a", "b"} {
		if _, err := state.Set(ctx, w, "letters", k, k+k); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := state.Set(ctx, w, "alpha", "x", "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := state.Delete[string](ctx, w, "letters", "a"); err != nil {
		t.Fatal(err)
	}
	got, err := state.List[string](ctx, w, "letters")
	if err != nil || !slices.Equal(got, []string{"cc", "bb"}) {
		t.Fatalf("List = %v, %v (want insertion order)", got, err)
	}
	if got, err := state.List[string](ctx, w, "nothing"); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("List of an unknown scope = %#v, %v", got, err)
	}
	groups, err := state.ListGroups(ctx, w)
	if err != nil || !slices.Equal(groups, []string{"alpha", "letters"}) {
		t.Fatalf("ListGroups = %v, %v", groups, err)
	}
}

func TestEngineErrors(t *testing.T) {
	_, w, ctx := setup(t)
	_, err := w.Trigger(ctx, iii.TriggerRequest{FunctionID: state.FunctionSet, Payload: map[string]string{"scope": "s", "key": "k"}})
	var re *iii.RemoteError
	if !errors.As(err, &re) || re.Code != "deserialization_error" || re.Message != "Failed to deserialize input for state::set: missing field `value`" {
		t.Fatalf("set without value: %v", err)
	}
	_, err = w.Trigger(ctx, iii.TriggerRequest{FunctionID: state.FunctionUpdate, Payload: map[string]any{"scope": "s", "key": "k", "ops": []any{map[string]any{"type": "bogus", "path": "x"}}}})
	if iii.ErrorCode(err) != "deserialization_error" {
		t.Fatalf("update with an unknown op: %v", err)
	}
	_, err = w.Trigger(ctx, iii.TriggerRequest{FunctionID: state.FunctionGet, Payload: map[string]string{"key": "k"}})
	if iii.ErrorCode(err) != "deserialization_error" {
		t.Fatalf("get without scope: %v", err)
	}
}

// events collects a subscription's events.
type events[T any] chan state.Event[T]

func (ch events[T]) next(t *testing.T, ctx context.Context) state.Event[T] {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-ctx.Done():
		t.Fatal("no event")
		return state.Event[T]{}
	}
}

func subscribe[T any](t *testing.T, ctx context.Context, eng *iiitest.Engine, w *iii.III, id string, cfg iii.StateConfig) events[T] {
	t.Helper()
	ch := make(events[T], 16)
	sub, err := state.OnChange(w, id, cfg, func(ctx context.Context, e state.Event[T]) error {
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
	all := subscribe[user](t, ctx, eng, w, "on::all", iii.StateConfig{})
	scoped := subscribe[user](t, ctx, eng, w, "on::users", iii.StateConfig{Scope: "users"})
	keyed := subscribe[user](t, ctx, eng, w, "on::u2", iii.StateConfig{Scope: "users", Key: "u2"})

	// Other scopes reach only the unfiltered binding (filters apply at the
	// write, so once "all" has it, the others never will).
	if _, err := state.Set(ctx, w, "admins", "a", user{Name: "Root"}); err != nil {
		t.Fatal(err)
	}
	if e := all.next(t, ctx); e.Scope != "admins" || e.Type != iii.StateCreated || e.Old != nil || e.New.Name != "Root" {
		t.Fatalf("all: %+v", e)
	}

	users := state.New[user](w, "users")
	users.Set(ctx, "u1", user{Name: "Ada"})
	e := scoped.next(t, ctx)
	if e.Type != iii.StateCreated || e.Key != "u1" || e.Old != nil || e.New.Name != "Ada" {
		t.Fatalf("created: %+v", e)
	}
	users.Update(ctx, "u1", update.Increment("visits", 1))
	e = scoped.next(t, ctx)
	if e.Type != iii.StateUpdated || e.Old.Visits != 0 || e.New.Visits != 1 {
		t.Fatalf("updated: %+v", e)
	}
	users.Delete(ctx, "u1")
	e = scoped.next(t, ctx)
	if e.Type != iii.StateDeleted || e.Old.Name != "Ada" || e.New != nil {
		t.Fatalf("deleted: %+v", e)
	}
	// The engine reports a delete of a missing key too.
	users.Delete(ctx, "ghost")
	if e = scoped.next(t, ctx); e.Type != iii.StateDeleted || e.Key != "ghost" || e.Old != nil || e.New != nil {
		t.Fatalf("deleted ghost: %+v", e)
	}
	users.Set(ctx, "u2", user{Name: "Bo"})
	if e = keyed.next(t, ctx); e.Key != "u2" || e.New.Name != "Bo" {
		t.Fatalf("keyed: %+v", e)
	}
	// keyed saw nothing of u1.
	if len(keyed) != 0 {
		t.Fatalf("keyed got %+v", <-keyed)
	}
	for range 5 { // all saw the 5 users events too
		all.next(t, ctx)
	}
}

func TestOnChangeCondition(t *testing.T) {
	eng, w, ctx := setup(t)
	if _, err := state.RegisterCondition(w, "cond::big", func(ctx context.Context, e state.Event[int]) (bool, error) {
		return e.New != nil && *e.New >= 10, nil
	}); err != nil {
		t.Fatal(err)
	}
	big := subscribe[int](t, ctx, eng, w, "on::big", iii.StateConfig{Scope: "n", ConditionFunctionID: "cond::big"})
	all := subscribe[int](t, ctx, eng, w, "on::all", iii.StateConfig{Scope: "n"})
	state.Set(ctx, w, "n", "a", 5)
	state.Set(ctx, w, "n", "b", 50)
	seen := map[string]bool{}
	for range 2 {
		seen[all.next(t, ctx).Key] = true
	}
	// The condition skips a (5 < 10) and passes b.
	if e := big.next(t, ctx); e.Key != "b" || *e.New != 50 {
		t.Fatalf("big: %+v", e)
	}
	if !seen["a"] || !seen["b"] {
		t.Fatalf("all: %v", seen)
	}
	// Another write: big's next event is c, never a.
	state.Set(ctx, w, "n", "c", 70)
	if e := big.next(t, ctx); e.Key != "c" {
		t.Fatalf("big got %+v, want c (a must be skipped)", e)
	}
}

func TestOnChangeValidation(t *testing.T) {
	_, w, _ := setup(t)
	if _, err := state.OnChange[int](w, "x", iii.StateConfig{}, nil); !errors.Is(err, iii.ErrInvalidID) {
		t.Fatalf("nil handler: %v", err)
	}
	if _, err := state.RegisterCondition[int](w, "x", nil); !errors.Is(err, iii.ErrInvalidID) {
		t.Fatalf("nil condition: %v", err)
	}
	h := func(context.Context, state.Event[int]) error { return nil }
	if _, err := state.OnChange(w, "dup", iii.StateConfig{}, h); err != nil {
		t.Fatal(err)
	}
	if _, err := state.OnChange(w, "dup", iii.StateConfig{}, h); !errors.Is(err, iii.ErrDuplicate) {
		t.Fatalf("duplicate: %v", err)
	}
}

func TestWorkerErrors(t *testing.T) {
	_, w, ctx := setup(t)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := state.Get[int](cctx, w, "s", "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	w.Shutdown()
	if _, err := state.Set(ctx, w, "s", "k", 1); !errors.Is(err, iii.ErrShutdown) {
		t.Fatalf("after Shutdown: %v", err)
	}
}
