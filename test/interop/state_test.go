package interop_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/state"
)

// A Node worker's state::set reaches a Go worker's "state" trigger, with
// the value as the Node worker wrote it.
func TestNodeStateSetSeenByGoStateTrigger(t *testing.T) {
	eng := routingEngine(t)
	ctx := testCtx(t)
	w := iii.RegisterWorker(eng.URL, iii.InitOptions{})
	t.Cleanup(w.Shutdown)
	scope := "interop-" + wire.NewUUID().String() // unique on a shared engine

	type item struct {
		Hello string `json:"hello"`
		N     int    `json:"n"`
	}
	events := make(chan state.Event[item], 4)
	sub, err := state.OnChange(w, "gointerop::state-changed", iii.StateConfig{Scope: scope},
		func(ctx context.Context, e state.Event[item]) error {
			events <- e
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if eng.double != nil {
		if err := eng.double.WaitTrigger(ctx, sub.Trigger.ID()); err != nil {
			t.Fatal(err)
		}
	} else {
		// An engine has no hook: the binding is live once it is listed.
		for {
			if _, err := w.TriggerInfo(ctx, sub.Trigger.ID()); err == nil {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatal("the binding was never listed")
			case <-time.After(50 * time.Millisecond):
			}
		}
	}

	payload, _ := json.Marshal(map[string]any{"scope": scope, "key": "k1", "value": item{"world", 42}})
	node := startScript(t, eng.URL, "caller.mjs", "ECHO_FN=state::set", "PAYLOAD="+string(payload),
		"VOID_FN=-", "FAIL_FN=-", "MISSING_FN=-")
	readyID(t, node)
	r := result(t, node, "echo")
	if !r.OK {
		t.Fatalf("node state::set: %+v", r.Error)
	}
	var set struct {
		OldValue json.RawMessage `json:"old_value"`
		NewValue item            `json:"new_value"`
	}
	if err := json.Unmarshal(r.Result, &set); err != nil || string(set.OldValue) != "null" || set.NewValue != (item{"world", 42}) {
		t.Fatalf("node state::set result %s (%v)", r.Result, err)
	}
	select {
	case e := <-events:
		if e.Type != iii.StateCreated || e.Scope != scope || e.Key != "k1" || e.Old != nil || e.New == nil || *e.New != (item{"world", 42}) {
			t.Fatalf("event %+v", e)
		}
	case <-ctx.Done():
		t.Fatal("no state event")
	}
	node.wait(ev("done"))
}
