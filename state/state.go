// Package state reads and writes the iii engine's key-value state (the
// state::* functions of its state worker) and receives its change events
// (the "state" trigger type), with Go types for the values.
//
// Values live under a scope (a namespace, e.g. "users") and a key. Every
// function takes the worker (*iii.III) that makes the calls; a Scope binds
// a worker, a scope name and a value type together:
//
//	users := state.New[User](w, "users")
//	_, err := users.Set(ctx, "u1", User{Name: "Ada"})
//	u, found, err := users.Get(ctx, "u1")
//	r, err := users.Update(ctx, "u1", update.Increment("visits", 1))
//
// A failed call returns the engine's error (an *iii.RemoteError, see
// iii.ErrorCode) or the worker's (iii.ErrNotConnected, iii.ErrTimeout, ...).
// The operations of an Update that the engine skipped are not a failure of
// the call: they are in Result.Errors, and Result.Err joins them.
//
// OnChange registers a function that receives the changes of a scope (or
// of one key, or of everything) as typed Events.
package state

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/internal/kvwire"
	"github.com/iii-go/iii/update"
)

// The engine's state functions.
const (
	FunctionSet        = "state::set"
	FunctionGet        = "state::get"
	FunctionDelete     = "state::delete"
	FunctionUpdate     = "state::update"
	FunctionList       = "state::list"
	FunctionListGroups = "state::list_groups"
)

// Result is the outcome of a write: the value before and after it.
type Result[T any] struct {
	// Old is the value before the write; nil when there was none (the
	// write created the key).
	Old *T
	// New is the value after the write.
	New T
	// Errors are the update operations the engine skipped (Update only);
	// the others were applied.
	Errors []update.Error
}

// Created reports whether the write created the key.
func (r Result[T]) Created() bool { return r.Old == nil }

// Err returns the skipped operations as one error (nil when all applied);
// each is an update.Error for errors.As.
func (r Result[T]) Err() error { return update.Errors(r.Errors) }

func decodeResult[T any](functionID string, raw json.RawMessage) (Result[T], error) {
	old, nv, errs, err := kvwire.DecodeWrite[T](functionID, raw)
	if err != nil {
		return Result[T]{}, fmt.Errorf("state: %w", err)
	}
	return Result[T]{Old: old, New: nv, Errors: errs}, nil
}

func decodeOptional[T any](what string, raw json.RawMessage) (*T, error) {
	v, err := kvwire.Optional[T](what, raw)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	return v, nil
}

// call makes an awaited call and returns its raw result.
func call(ctx context.Context, w *iii.III, functionID string, payload any) (json.RawMessage, error) {
	return w.Trigger(ctx, iii.TriggerRequest{FunctionID: functionID, Payload: payload})
}

// Get returns the value of key in scope; found is false (and the value
// the zero T) when there is none.
func Get[T any](ctx context.Context, w *iii.III, scope, key string) (value T, found bool, err error) {
	raw, err := call(ctx, w, FunctionGet, map[string]string{"scope": scope, "key": key})
	if err != nil {
		return value, false, err
	}
	v, err := decodeOptional[T](FunctionGet, raw)
	if err != nil || v == nil {
		return value, false, err
	}
	return *v, true, nil
}

// Set stores value under key in scope, replacing any value there, and
// returns the values before and after.
func Set[T any](ctx context.Context, w *iii.III, scope, key string, value T) (Result[T], error) {
	raw, err := call(ctx, w, FunctionSet, struct {
		Scope string `json:"scope"`
		Key   string `json:"key"`
		Value T      `json:"value"`
	}{scope, key, value})
	if err != nil {
		return Result[T]{}, err
	}
	return decodeResult[T](FunctionSet, raw)
}

// Update applies ops, in order and atomically, to the value of key in
// scope (a missing value starts as {}), stores the outcome and returns
// the values before and after. Operations the engine could not apply are
// skipped and listed in Result.Errors; see package update.
func Update[T any](ctx context.Context, w *iii.III, scope, key string, ops ...update.Op) (Result[T], error) {
	if ops == nil {
		ops = []update.Op{}
	}
	raw, err := call(ctx, w, FunctionUpdate, struct {
		Scope string      `json:"scope"`
		Key   string      `json:"key"`
		Ops   []update.Op `json:"ops"`
	}{scope, key, ops})
	if err != nil {
		return Result[T]{}, err
	}
	return decodeResult[T](FunctionUpdate, raw)
}

// Delete removes key from scope and returns the value it had (nil when
// there was none). The engine reports the delete to "state" triggers
// either way.
func Delete[T any](ctx context.Context, w *iii.III, scope, key string) (*T, error) {
	raw, err := call(ctx, w, FunctionDelete, map[string]string{"scope": scope, "key": key})
	if err != nil {
		return nil, err
	}
	return decodeOptional[T](FunctionDelete, raw)
}

// List returns the values of scope, in the order their keys were first
// set (with the engine's in-memory store).
func List[T any](ctx context.Context, w *iii.III, scope string) ([]T, error) {
	raw, err := call(ctx, w, FunctionList, map[string]string{"scope": scope})
	if err != nil {
		return nil, err
	}
	var out []T
	if kvwire.IsNull(raw) {
		return []T{}, nil
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("state: result of %s does not decode into %T: %w", FunctionList, out, err)
	}
	return out, nil
}

// ListGroups returns the names of the scopes that hold (or held) values,
// sorted.
func ListGroups(ctx context.Context, w *iii.III) ([]string, error) {
	raw, err := call(ctx, w, FunctionListGroups, struct{}{})
	if err != nil {
		return nil, err
	}
	var out struct {
		Groups []string `json:"groups"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("state: result of %s: %w", FunctionListGroups, err)
	}
	if out.Groups == nil {
		out.Groups = []string{}
	}
	return out.Groups, nil
}

// Scope is one scope of the state, holding values of type T, used through
// worker w.
type Scope[T any] struct {
	w    *iii.III
	name string
}

// New returns the scope named name, used through worker w.
func New[T any](w *iii.III, name string) *Scope[T] { return &Scope[T]{w: w, name: name} }

// Name returns the scope's name.
func (s *Scope[T]) Name() string { return s.name }

// Get is the package's Get in this scope.
func (s *Scope[T]) Get(ctx context.Context, key string) (T, bool, error) {
	return Get[T](ctx, s.w, s.name, key)
}

// Set is the package's Set in this scope.
func (s *Scope[T]) Set(ctx context.Context, key string, value T) (Result[T], error) {
	return Set(ctx, s.w, s.name, key, value)
}

// Update is the package's Update in this scope.
func (s *Scope[T]) Update(ctx context.Context, key string, ops ...update.Op) (Result[T], error) {
	return Update[T](ctx, s.w, s.name, key, ops...)
}

// Delete is the package's Delete in this scope.
func (s *Scope[T]) Delete(ctx context.Context, key string) (*T, error) {
	return Delete[T](ctx, s.w, s.name, key)
}

// List is the package's List of this scope.
func (s *Scope[T]) List(ctx context.Context) ([]T, error) { return List[T](ctx, s.w, s.name) }

// OnChange is the package's OnChange for this scope (and key, if not "").
func (s *Scope[T]) OnChange(functionID, key string, handler func(context.Context, Event[T]) error) (*iii.Subscription, error) {
	return OnChange(s.w, functionID, iii.StateConfig{Scope: s.name, Key: key}, handler)
}
