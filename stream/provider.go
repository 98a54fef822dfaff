package stream

import (
	"context"
	"errors"
	"fmt"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/update"
)

// Provider stores the items of a custom stream (RegisterProvider): the
// engine sends the stream's stream::get, set, delete, list and
// list_groups calls to it instead of using its own store, and still
// reports the writes to the stream's subscribers and "stream" triggers.
// Its methods run concurrently, once per call. An error fails the caller's
// call: the engine passes a get's, list's or list_groups' error on as it
// is, and wraps a set's or delete's into a STREAM_SET_ERROR or
// STREAM_DELETE_ERROR.
type Provider[T any] interface {
	// Get returns the item, or nil when there is none.
	Get(ctx context.Context, item Item) (*T, error)
	// Set stores data as the item and returns the value before (Old, nil
	// when the item is new: a create) and after (New).
	Set(ctx context.Context, item Item, data T) (Result[T], error)
	// Delete removes the item and returns the value it had (nil when there
	// was none: then nothing is reported).
	Delete(ctx context.Context, item Item) (*T, error)
	// List returns the items of a group.
	List(ctx context.Context, group Group) ([]T, error)
	// ListGroups returns the group ids of the stream.
	ListGroups(ctx context.Context, streamName string) ([]string, error)
}

// Updater is a Provider that also applies updates (stream::update); the
// engine updates a custom stream without one in its own store, apart from
// the provider's items. update.Apply applies ops as the engine does.
type Updater[T any] interface {
	// Update applies ops to the item (a missing item starts as {}) and
	// returns the values before and after, and the ops it skipped.
	Update(ctx context.Context, item Item, ops []update.Op) (Result[T], error)
}

// The functions a custom stream registers, for stream NAME:
// stream::get(NAME), stream::set(NAME), ... (ProviderFunctionID).
const (
	opGet        = "get"
	opSet        = "set"
	opDelete     = "delete"
	opList       = "list"
	opListGroups = "list_groups"
	opUpdate     = "update"
)

// ProviderFunctionID returns the id of the function the engine calls for
// operation op ("get", "set", "delete", "list", "list_groups" or
// "update") of custom stream streamName: "stream::<op>(<streamName>)".
func ProviderFunctionID(op, streamName string) string {
	return "stream::" + op + "(" + streamName + ")"
}

// Registration is a custom stream registered by RegisterProvider.
type Registration struct {
	name string
	fns  []*iii.FunctionRef
}

// StreamName returns the custom stream's name.
func (r *Registration) StreamName() string { return r.name }

// Functions returns the functions registered for the stream.
func (r *Registration) Functions() []*iii.FunctionRef { return r.fns }

// Unregister withdraws the stream's functions: the engine goes back to
// its own store for the stream.
func (r *Registration) Unregister() error {
	var errs []error
	for _, f := range r.fns {
		if err := f.Unregister(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// wire shapes of a custom stream's answers.
type setAnswer[T any] struct {
	OldValue *T             `json:"old_value"`
	NewValue T              `json:"new_value"`
	Errors   []update.Error `json:"errors,omitempty"`
}

type deleteAnswer[T any] struct {
	OldValue *T `json:"old_value"`
}

// RegisterProvider makes worker w the store of stream streamName: it
// registers the functions the engine calls for the stream's reads and
// writes (ProviderFunctionID), which call p; if p is also an Updater,
// updates too. On an error, the functions already registered are
// withdrawn.
func RegisterProvider[T any](w *iii.III, streamName string, p Provider[T]) (*Registration, error) {
	if p == nil {
		return nil, fmt.Errorf("%w: nil provider for stream %q", iii.ErrInvalidID, streamName)
	}
	if streamName == "" {
		return nil, fmt.Errorf("%w: a custom stream needs a name", iii.ErrInvalidID)
	}
	r := &Registration{name: streamName}
	add := func(f *iii.FunctionRef, err error) error {
		if err != nil {
			_ = r.Unregister()
			return err
		}
		r.fns = append(r.fns, f)
		return nil
	}
	id := func(op string) string { return ProviderFunctionID(op, streamName) }
	if err := add(iii.RegisterFunction(w, id(opGet), func(ctx context.Context, in Item) (*T, error) {
		return p.Get(ctx, in)
	})); err != nil {
		return nil, err
	}
	if err := add(iii.RegisterFunction(w, id(opSet), func(ctx context.Context, in struct {
		Item
		Data T `json:"data"`
	}) (setAnswer[T], error) {
		res, err := p.Set(ctx, in.Item, in.Data)
		return setAnswer[T]{OldValue: res.Old, NewValue: res.New}, err
	})); err != nil {
		return nil, err
	}
	if err := add(iii.RegisterFunction(w, id(opDelete), func(ctx context.Context, in Item) (deleteAnswer[T], error) {
		old, err := p.Delete(ctx, in)
		return deleteAnswer[T]{OldValue: old}, err
	})); err != nil {
		return nil, err
	}
	if err := add(iii.RegisterFunction(w, id(opList), func(ctx context.Context, in Group) ([]T, error) {
		items, err := p.List(ctx, in)
		if items == nil {
			items = []T{}
		}
		return items, err
	})); err != nil {
		return nil, err
	}
	if err := add(iii.RegisterFunction(w, id(opListGroups), func(ctx context.Context, in struct {
		StreamName string `json:"stream_name"`
	}) ([]string, error) {
		groups, err := p.ListGroups(ctx, in.StreamName)
		if groups == nil {
			groups = []string{}
		}
		return groups, err
	})); err != nil {
		return nil, err
	}
	if u, ok := p.(Updater[T]); ok {
		if err := add(iii.RegisterFunction(w, id(opUpdate), func(ctx context.Context, in struct {
			Item
			Ops []update.Op `json:"ops"`
		}) (setAnswer[T], error) {
			res, err := u.Update(ctx, in.Item, in.Ops)
			return setAnswer[T]{OldValue: res.Old, NewValue: res.New, Errors: res.Errors}, err
		})); err != nil {
			return nil, err
		}
	}
	return r, nil
}
