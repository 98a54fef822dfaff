package state

import (
	"context"
	"fmt"

	"github.com/iii-go/iii"
)

// Event is a change of a state value, as a "state" trigger delivers it,
// with the values decoded into T.
type Event[T any] struct {
	// Type is the kind of change: iii.StateCreated, iii.StateUpdated or
	// iii.StateDeleted.
	Type iii.StateEventType
	// Scope and Key name the changed value.
	Scope, Key string
	// Old is the value before the change; nil when there was none.
	Old *T
	// New is the value after the change; nil after a delete.
	New *T
}

// DecodeEvent decodes the values of a raw iii.StateEvent into T.
func DecodeEvent[T any](ev iii.StateEvent) (Event[T], error) {
	out := Event[T]{Type: ev.EventType, Scope: ev.Scope, Key: ev.Key}
	var err error
	if out.Old, err = decodeOptional[T]("state event", ev.OldValue); err != nil {
		return out, err
	}
	if out.New, err = decodeOptional[T]("state event", ev.NewValue); err != nil {
		return out, err
	}
	return out, nil
}

// OnChange registers function functionID, which calls handler with each
// change of a state value that cfg matches, and binds it to the engine's
// "state" trigger type. An empty cfg matches every change; cfg.Scope and
// cfg.Key narrow it (exact matches), and cfg.ConditionFunctionID names a
// function the engine asks first (see RegisterCondition).
//
// The engine calls the functions bound to one write one after the other,
// but the changes of different writes may arrive in any order and
// concurrently. A handler's error is only logged by the engine.
func OnChange[T any](w *iii.III, functionID string, cfg iii.StateConfig, handler func(context.Context, Event[T]) error) (*iii.Subscription, error) {
	if handler == nil {
		return nil, fmt.Errorf("%w: nil handler for function %q", iii.ErrInvalidID, functionID)
	}
	return subscribe(w, functionID, iii.TriggerTypeState, cfg, func(ctx context.Context, ev iii.StateEvent) (any, error) {
		e, err := DecodeEvent[T](ev)
		if err != nil {
			return nil, err
		}
		return nil, handler(ctx, e)
	})
}

// RegisterCondition registers function functionID as a condition of
// "state" triggers (iii.StateConfig.ConditionFunctionID): the engine calls
// it with a change before the bound function and skips that function when
// it returns false (or fails).
func RegisterCondition[T any](w *iii.III, functionID string, cond func(context.Context, Event[T]) (bool, error)) (*iii.FunctionRef, error) {
	if cond == nil {
		return nil, fmt.Errorf("%w: nil condition for function %q", iii.ErrInvalidID, functionID)
	}
	return iii.RegisterFunction(w, functionID, func(ctx context.Context, ev iii.StateEvent) (bool, error) {
		e, err := DecodeEvent[T](ev)
		if err != nil {
			return false, err
		}
		return cond(ctx, e)
	})
}

// subscribe registers a function and binds it to a trigger type; the
// function is withdrawn again if the binding fails.
func subscribe[E, R any](w *iii.III, functionID, triggerType string, cfg any, h func(context.Context, E) (R, error)) (*iii.Subscription, error) {
	f, err := iii.RegisterFunction(w, functionID, h)
	if err != nil {
		return nil, err
	}
	t, err := w.RegisterTrigger(iii.TriggerInput{Type: triggerType, FunctionID: functionID, Config: cfg})
	if err != nil {
		_ = f.Unregister()
		return nil, err
	}
	return &iii.Subscription{Function: f, Trigger: t}, nil
}
