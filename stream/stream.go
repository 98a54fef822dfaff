// Package stream reads and writes the iii engine's streams (the stream::*
// functions of its stream worker), receives their changes (the "stream",
// "stream:join" and "stream:leave" trigger types) and serves custom
// streams, with Go types for the items.
//
// A stream holds items in groups: an item is named by the stream's name,
// a group id and an item id. Clients of the engine's stream WebSocket
// server subscribe to a group or an item and get its changes live; a
// worker reads and writes the items with the functions of this package,
// which take the worker (*iii.III) that makes the calls. A Stream binds a
// worker, a stream name and an item type together:
//
//	rooms := stream.New[Message](w, "chat")
//	_, err := rooms.Set(ctx, "room-1", "msg-1", Message{Text: "hi"})
//	msgs, err := rooms.List(ctx, "room-1")
//
// OnChange receives a stream's changes as typed Events; OnJoin and OnLeave
// the subscriptions of its clients. RegisterProvider makes a worker the
// store of a stream: the engine then sends that stream's reads and writes
// to the worker's Provider instead of its own store.
//
// A failed call returns the engine's error (an *iii.RemoteError, see
// iii.ErrorCode) or the worker's (iii.ErrNotConnected, iii.ErrTimeout, ...).
package stream

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/internal/kvwire"
	"github.com/iii-go/iii/state"
	"github.com/iii-go/iii/update"
)

// The engine's stream functions.
const (
	FunctionSet        = "stream::set"
	FunctionGet        = "stream::get"
	FunctionDelete     = "stream::delete"
	FunctionUpdate     = "stream::update"
	FunctionList       = "stream::list"
	FunctionListGroups = "stream::list_groups"
	FunctionListAll    = "stream::list_all"
	FunctionSend       = "stream::send"
)

// Result is the outcome of a write: the item before and after it (see
// state.Result).
type Result[T any] = state.Result[T]

// Item names an item of a stream; it is also the engine's input of a
// custom stream's get and delete.
type Item struct {
	StreamName string `json:"stream_name"`
	GroupID    string `json:"group_id"`
	ItemID     string `json:"item_id"`
}

// Group names a group of a stream; it is also the engine's input of a
// custom stream's list.
type Group struct {
	StreamName string `json:"stream_name"`
	GroupID    string `json:"group_id"`
}

// Info describes a stream of the engine's own store (ListAll).
type Info struct {
	// Name is the stream's name.
	Name string `json:"id"`
	// Groups are its groups, sorted.
	Groups []string `json:"groups"`
}

// Message is an event sent to a stream's subscribers (Send).
type Message struct {
	// StreamName and GroupID name the subscribers' group.
	StreamName, GroupID string
	// ID, if set, names the item the event is about.
	ID string
	// Type is the event's type, chosen by the sender.
	Type string
	// Data is the event's data: any value that encodes to JSON.
	Data any
}

func decodeResult[T any](functionID string, raw json.RawMessage) (Result[T], error) {
	old, nv, errs, err := kvwire.DecodeWrite[T](functionID, raw)
	if err != nil {
		return Result[T]{}, fmt.Errorf("stream: %w", err)
	}
	return Result[T]{Old: old, New: nv, Errors: errs}, nil
}

func decodeOptional[T any](what string, raw json.RawMessage) (*T, error) {
	v, err := kvwire.Optional[T](what, raw)
	if err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	return v, nil
}

func call(ctx context.Context, w *iii.III, functionID string, payload any) (json.RawMessage, error) {
	return w.Trigger(ctx, iii.TriggerRequest{FunctionID: functionID, Payload: payload})
}

func decodeList[T any](functionID string, raw json.RawMessage) ([]T, error) {
	out := []T{}
	if kvwire.IsNull(raw) {
		return out, nil
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("stream: result of %s does not decode into %T: %w", functionID, out, err)
	}
	return out, nil
}

// Get returns an item; found is false (and the value the zero T) when
// there is none.
func Get[T any](ctx context.Context, w *iii.III, streamName, groupID, itemID string) (value T, found bool, err error) {
	raw, err := call(ctx, w, FunctionGet, Item{streamName, groupID, itemID})
	if err != nil {
		return value, false, err
	}
	v, err := decodeOptional[T](FunctionGet, raw)
	if err != nil || v == nil {
		return value, false, err
	}
	return *v, true, nil
}

// Set stores an item, replacing any item there, and returns the values
// before and after. The stream's subscribers and "stream" triggers see a
// create or an update.
func Set[T any](ctx context.Context, w *iii.III, streamName, groupID, itemID string, data T) (Result[T], error) {
	raw, err := call(ctx, w, FunctionSet, struct {
		Item
		Data T `json:"data"`
	}{Item{streamName, groupID, itemID}, data})
	if err != nil {
		return Result[T]{}, err
	}
	return decodeResult[T](FunctionSet, raw)
}

// Update applies ops, in order and atomically, to an item (a missing item
// starts as {}), and returns the values before and after. Operations the
// engine could not apply are skipped and listed in Result.Errors; see
// package update. A custom stream without an Updater is updated in the
// engine's own store (as the engine does).
func Update[T any](ctx context.Context, w *iii.III, streamName, groupID, itemID string, ops ...update.Op) (Result[T], error) {
	if ops == nil {
		ops = []update.Op{}
	}
	raw, err := call(ctx, w, FunctionUpdate, struct {
		Item
		Ops []update.Op `json:"ops"`
	}{Item{streamName, groupID, itemID}, ops})
	if err != nil {
		return Result[T]{}, err
	}
	return decodeResult[T](FunctionUpdate, raw)
}

// Delete removes an item and returns the value it had (nil when there was
// none; then nothing is reported to subscribers or triggers).
func Delete[T any](ctx context.Context, w *iii.III, streamName, groupID, itemID string) (*T, error) {
	raw, err := call(ctx, w, FunctionDelete, Item{streamName, groupID, itemID})
	if err != nil {
		return nil, err
	}
	var out struct {
		OldValue json.RawMessage `json:"old_value"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("stream: result of %s: %w", FunctionDelete, err)
	}
	return decodeOptional[T](FunctionDelete, out.OldValue)
}

// List returns the items of a group.
func List[T any](ctx context.Context, w *iii.III, streamName, groupID string) ([]T, error) {
	raw, err := call(ctx, w, FunctionList, Group{streamName, groupID})
	if err != nil {
		return nil, err
	}
	return decodeList[T](FunctionList, raw)
}

// ListGroups returns the group ids of a stream (in no particular order
// with the engine's store).
func ListGroups(ctx context.Context, w *iii.III, streamName string) ([]string, error) {
	raw, err := call(ctx, w, FunctionListGroups, map[string]string{"stream_name": streamName})
	if err != nil {
		return nil, err
	}
	return decodeList[string](FunctionListGroups, raw)
}

// ListAll returns the streams of the engine's own store with their
// groups, sorted by name (custom streams are not listed).
func ListAll(ctx context.Context, w *iii.III) ([]Info, error) {
	raw, err := call(ctx, w, FunctionListAll, struct{}{})
	if err != nil {
		return nil, err
	}
	var out struct {
		Stream []Info `json:"stream"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("stream: result of %s: %w", FunctionListAll, err)
	}
	if out.Stream == nil {
		out.Stream = []Info{}
	}
	return out.Stream, nil
}

// Send sends an event to the subscribers of a group (and to the stream's
// "stream" triggers, as a change of type "event"); nothing is stored.
func Send(ctx context.Context, w *iii.III, m Message) error {
	in := struct {
		StreamName string  `json:"stream_name"`
		GroupID    string  `json:"group_id"`
		ID         *string `json:"id,omitempty"`
		Type       string  `json:"type"`
		Data       any     `json:"data"`
	}{StreamName: m.StreamName, GroupID: m.GroupID, Type: m.Type, Data: m.Data}
	if m.ID != "" {
		in.ID = &m.ID
	}
	_, err := call(ctx, w, FunctionSend, in)
	return err
}

// Stream is one stream, holding items of type T, used through worker w.
type Stream[T any] struct {
	w    *iii.III
	name string
}

// New returns the stream named name, used through worker w.
func New[T any](w *iii.III, name string) *Stream[T] { return &Stream[T]{w: w, name: name} }

// Name returns the stream's name.
func (s *Stream[T]) Name() string { return s.name }

// Get is the package's Get in this stream.
func (s *Stream[T]) Get(ctx context.Context, groupID, itemID string) (T, bool, error) {
	return Get[T](ctx, s.w, s.name, groupID, itemID)
}

// Set is the package's Set in this stream.
func (s *Stream[T]) Set(ctx context.Context, groupID, itemID string, data T) (Result[T], error) {
	return Set(ctx, s.w, s.name, groupID, itemID, data)
}

// Update is the package's Update in this stream.
func (s *Stream[T]) Update(ctx context.Context, groupID, itemID string, ops ...update.Op) (Result[T], error) {
	return Update[T](ctx, s.w, s.name, groupID, itemID, ops...)
}

// Delete is the package's Delete in this stream.
func (s *Stream[T]) Delete(ctx context.Context, groupID, itemID string) (*T, error) {
	return Delete[T](ctx, s.w, s.name, groupID, itemID)
}

// List is the package's List in this stream.
func (s *Stream[T]) List(ctx context.Context, groupID string) ([]T, error) {
	return List[T](ctx, s.w, s.name, groupID)
}

// ListGroups is the package's ListGroups of this stream.
func (s *Stream[T]) ListGroups(ctx context.Context) ([]string, error) {
	return ListGroups(ctx, s.w, s.name)
}

// Send is the package's Send to a group of this stream; id may be "".
func (s *Stream[T]) Send(ctx context.Context, groupID, id, eventType string, data any) error {
	return Send(ctx, s.w, Message{StreamName: s.name, GroupID: groupID, ID: id, Type: eventType, Data: data})
}

// OnChange is the package's OnChange for this stream, narrowed to a group
// and an item when they are not "".
func (s *Stream[T]) OnChange(functionID, groupID, itemID string, handler func(context.Context, Event[T]) error) (*iii.Subscription, error) {
	return OnChange(s.w, functionID, iii.StreamConfig{StreamName: s.name, GroupID: groupID, ItemID: itemID}, handler)
}
