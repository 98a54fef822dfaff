package stream

import (
	"context"
	"fmt"
	"time"

	"github.com/iii-go/iii"
)

// ChangeType is the kind of change an Event reports.
type ChangeType string

// The kinds of change of a stream.
const (
	// Created: an item was set where there was none.
	Created ChangeType = "create"
	// Updated: an item was replaced or updated.
	Updated ChangeType = "update"
	// Deleted: an item was deleted.
	Deleted ChangeType = "delete"
	// Sent: an event was sent to the stream (Send); nothing changed.
	Sent ChangeType = "event"
)

// Event is a change of a stream, as a "stream" trigger delivers it, with
// the item decoded into T.
type Event[T any] struct {
	// Type is the kind of change.
	Type ChangeType
	// Time is when the engine saw the change (millisecond precision).
	Time time.Time
	// StreamName, GroupID and ID name the item; ID is "" for an event
	// sent to a whole group.
	StreamName, GroupID, ID string
	// Data is the item after a create or update, the item deleted for a
	// delete; nil for a Sent event.
	Data *T
	// Message is the event sent, for Type Sent.
	Message *iii.StreamMessage
}

// DecodeEvent decodes the item of a raw iii.StreamEvent into T.
func DecodeEvent[T any](ev iii.StreamEvent) (Event[T], error) {
	out := Event[T]{
		Type:       ChangeType(ev.Change.Type),
		Time:       time.UnixMilli(ev.Timestamp),
		StreamName: ev.StreamName,
		GroupID:    ev.GroupID,
		ID:         ev.ID,
		Message:    ev.Change.Event,
	}
	if out.Type != Sent {
		d, err := decodeOptional[T]("stream event", ev.Change.Data)
		if err != nil {
			return out, err
		}
		out.Data = d
	}
	return out, nil
}

// OnChange registers function functionID, which calls handler with each
// change of stream cfg.StreamName that cfg matches, and binds it to the
// engine's "stream" trigger type. cfg.StreamName is required; cfg.GroupID
// and cfg.ItemID narrow the changes when set, and cfg.ConditionFunctionID
// names a function the engine asks first (see RegisterCondition).
//
// The engine calls the functions bound to one write one after the other,
// but the changes of different writes may arrive in any order and
// concurrently. A handler's error is only logged by the engine.
func OnChange[T any](w *iii.III, functionID string, cfg iii.StreamConfig, handler func(context.Context, Event[T]) error) (*iii.Subscription, error) {
	if handler == nil {
		return nil, fmt.Errorf("%w: nil handler for function %q", iii.ErrInvalidID, functionID)
	}
	if cfg.StreamName == "" {
		return nil, fmt.Errorf("%w: a stream trigger needs a stream name", iii.ErrInvalidID)
	}
	return subscribe(w, functionID, iii.TriggerTypeStream, cfg, func(ctx context.Context, ev iii.StreamEvent) (any, error) {
		e, err := DecodeEvent[T](ev)
		if err != nil {
			return nil, err
		}
		return nil, handler(ctx, e)
	})
}

// RegisterCondition registers function functionID as a condition of
// "stream" triggers (iii.StreamConfig.ConditionFunctionID): the engine
// calls it with a change before the bound function and skips that
// function when it returns false (or fails).
func RegisterCondition[T any](w *iii.III, functionID string, cond func(context.Context, Event[T]) (bool, error)) (*iii.FunctionRef, error) {
	if cond == nil {
		return nil, fmt.Errorf("%w: nil condition for function %q", iii.ErrInvalidID, functionID)
	}
	return iii.RegisterFunction(w, functionID, func(ctx context.Context, ev iii.StreamEvent) (bool, error) {
		e, err := DecodeEvent[T](ev)
		if err != nil {
			return false, err
		}
		return cond(ctx, e)
	})
}

// OnJoin registers function functionID, which calls handler when a client
// of the engine's stream WebSocket server subscribes to a group or an
// item, and binds it to the engine's "stream:join" trigger type. A result
// with Unauthorized true refuses the client. The engine (v0.22.1) calls
// every join function for every stream: check ev.StreamName. An error
// does not refuse the client.
func OnJoin(w *iii.III, functionID string, handler func(context.Context, iii.StreamJoinLeaveEvent) (iii.StreamJoinResult, error)) (*iii.Subscription, error) {
	if handler == nil {
		return nil, fmt.Errorf("%w: nil handler for function %q", iii.ErrInvalidID, functionID)
	}
	return subscribe(w, functionID, iii.TriggerTypeStreamJoin, iii.StreamJoinLeaveConfig{}, handler)
}

// OnLeave registers function functionID, which calls handler when a
// client's subscription ends (it unsubscribed or disconnected), and binds
// it to the engine's "stream:leave" trigger type. The engine (v0.22.1)
// calls every leave function for every stream: check ev.StreamName.
func OnLeave(w *iii.III, functionID string, handler func(context.Context, iii.StreamJoinLeaveEvent) error) (*iii.Subscription, error) {
	if handler == nil {
		return nil, fmt.Errorf("%w: nil handler for function %q", iii.ErrInvalidID, functionID)
	}
	return subscribe(w, functionID, iii.TriggerTypeStreamLeave, iii.StreamJoinLeaveConfig{}, func(ctx context.Context, ev iii.StreamJoinLeaveEvent) (any, error) {
		return nil, handler(ctx, ev)
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
