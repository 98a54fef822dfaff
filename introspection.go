package iii

import (
	"context"
	"encoding/json"
	"fmt"
)

// FunctionInfo describes a function, as engine::functions::list and
// engine::functions::info report it (the schemas and triggers only from info).
type FunctionInfo struct {
	FunctionID         string          `json:"function_id"`
	WorkerName         string          `json:"worker_name"`
	Description        string          `json:"description,omitempty"`
	Metadata           json.RawMessage `json:"metadata,omitempty"`
	RequestSchema      json.RawMessage `json:"request_schema,omitempty"`
	ResponseSchema     json.RawMessage `json:"response_schema,omitempty"`
	RegisteredTriggers []TriggerRef    `json:"registered_triggers,omitempty"`
	// Namespace is the namespace the function is registered in (engine
	// v0.23, where an id may be in several); empty from engine v0.22.1.
	Namespace string `json:"namespace,omitempty"`
}

// TriggerRef is a binding as FunctionInfo lists it.
type TriggerRef struct {
	ID          string          `json:"id"`
	TriggerType string          `json:"trigger_type"`
	Config      json.RawMessage `json:"config"`
}

// TriggerInfo describes a trigger type, as engine::triggers::list and
// engine::triggers::info report it (schemas and count only from info).
type TriggerInfo struct {
	ID                  string          `json:"id"`
	WorkerName          string          `json:"worker_name"`
	Description         string          `json:"description"`
	ConfigurationSchema json.RawMessage `json:"configuration_schema,omitempty"`
	RequestSchema       json.RawMessage `json:"request_schema,omitempty"`
	ResponseSchema      json.RawMessage `json:"response_schema,omitempty"`
	InstanceCount       int             `json:"instance_count,omitempty"`
	// Namespace is the namespace the provider serves (engine v0.23);
	// empty from engine v0.22.1.
	Namespace string `json:"namespace,omitempty"`
}

// RegisteredTriggerInfo describes a binding, as
// engine::registered-triggers::list and ::info report it (Metadata, Trigger
// and Function only from info).
type RegisteredTriggerInfo struct {
	ID            string          `json:"id"`
	TriggerType   string          `json:"trigger_type"`
	FunctionID    string          `json:"function_id"`
	WorkerName    string          `json:"worker_name"`
	Config        json.RawMessage `json:"config"`
	ConfigSummary string          `json:"config_summary,omitempty"`
	Metadata      json.RawMessage `json:"metadata,omitempty"`
	Trigger       *TriggerInfo    `json:"trigger,omitempty"`
	Function      *FunctionInfo   `json:"function,omitempty"`
}

// WorkerInfo describes a worker connection, as engine::workers::list and
// engine::workers::info report it. Values the worker never reported (null
// on the wire) are empty. PID, Internal and LatestMetrics come only from info.
type WorkerInfo struct {
	Name              string          `json:"name"`
	Description       string          `json:"description"`
	Version           string          `json:"version"`
	ID                string          `json:"id"`
	Runtime           string          `json:"runtime"`
	OS                string          `json:"os"`
	Status            string          `json:"status"`
	FunctionCount     int             `json:"function_count"`
	ConnectedAtMS     int64           `json:"connected_at_ms"`
	ActiveInvocations int             `json:"active_invocations"`
	Isolation         string          `json:"isolation"`
	IPAddress         string          `json:"ip_address"`
	PID               int             `json:"pid,omitempty"`
	Internal          bool            `json:"internal,omitempty"`
	LatestMetrics     json.RawMessage `json:"latest_metrics,omitempty"`
	// Namespace is the worker's namespace (engine v0.23); empty from
	// engine v0.22.1.
	Namespace string `json:"namespace,omitempty"`
}

// WorkerDetail is what engine::workers::info reports about one worker.
type WorkerDetail struct {
	Worker             WorkerInfo              `json:"worker"`
	Functions          []FunctionInfo          `json:"functions"`
	TriggerTypes       []TriggerInfo           `json:"trigger_types"`
	RegisteredTriggers []RegisteredTriggerInfo `json:"registered_triggers"`
}

// FunctionFilter narrows ListFunctions; empty fields do not filter.
type FunctionFilter struct {
	Search          string   `json:"search,omitempty"`
	Prefix          string   `json:"prefix,omitempty"`
	Worker          string   `json:"worker,omitempty"`
	Workers         []string `json:"workers,omitempty"`
	IncludeInternal bool     `json:"include_internal,omitempty"` // engine::* and metadata.internal functions
}

// TriggerTypeFilter narrows ListTriggerTypes.
type TriggerTypeFilter struct {
	Search          string `json:"search,omitempty"`
	Prefix          string `json:"prefix,omitempty"`
	Worker          string `json:"worker,omitempty"`
	IncludeInternal bool   `json:"include_internal,omitempty"`
}

// TriggerFilter narrows ListTriggers.
type TriggerFilter struct {
	Search          string `json:"search,omitempty"`
	TriggerType     string `json:"trigger_type,omitempty"`
	FunctionID      string `json:"function_id,omitempty"`
	Worker          string `json:"worker,omitempty"`
	IncludeInternal bool   `json:"include_internal,omitempty"`
}

// WorkerFilter narrows ListWorkers.
type WorkerFilter struct {
	Search  string `json:"search,omitempty"`
	Runtime string `json:"runtime,omitempty"`
	Status  string `json:"status,omitempty"`
}

// builtin calls an engine builtin and decodes its result into out.
func (w *III) builtin(ctx context.Context, id string, in, out any) error {
	raw, err := w.Trigger(ctx, TriggerRequest{FunctionID: id, Payload: in})
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("iii: %s returned %s: %w", id, raw, err)
	}
	return nil
}

// ListFunctions lists the engine's functions (engine::functions::list).
func (w *III) ListFunctions(ctx context.Context, f FunctionFilter) ([]FunctionInfo, error) {
	var out struct {
		Functions []FunctionInfo `json:"functions"`
	}
	err := w.builtin(ctx, "engine::functions::list", f, &out)
	return out.Functions, err
}

// FunctionInfo describes one function with its schemas and bindings
// (engine::functions::info). A missing function is a *RemoteError with code
// NOT_FOUND.
func (w *III) FunctionInfo(ctx context.Context, id string) (*FunctionInfo, error) {
	var out FunctionInfo
	if err := w.builtin(ctx, "engine::functions::info", map[string]string{"function_id": id}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListTriggerTypes lists the trigger types (engine::triggers::list).
func (w *III) ListTriggerTypes(ctx context.Context, f TriggerTypeFilter) ([]TriggerInfo, error) {
	var out struct {
		Triggers []TriggerInfo `json:"triggers"`
	}
	err := w.builtin(ctx, "engine::triggers::list", f, &out)
	return out.Triggers, err
}

// TriggerTypeInfo describes one trigger type (engine::triggers::info).
func (w *III) TriggerTypeInfo(ctx context.Context, id string) (*TriggerInfo, error) {
	var out TriggerInfo
	if err := w.builtin(ctx, "engine::triggers::info", map[string]string{"id": id}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListTriggers lists the bindings (engine::registered-triggers::list).
func (w *III) ListTriggers(ctx context.Context, f TriggerFilter) ([]RegisteredTriggerInfo, error) {
	var out struct {
		RegisteredTriggers []RegisteredTriggerInfo `json:"registered_triggers"`
	}
	err := w.builtin(ctx, "engine::registered-triggers::list", f, &out)
	return out.RegisteredTriggers, err
}

// TriggerInfo describes one binding with its type and function
// (engine::registered-triggers::info).
func (w *III) TriggerInfo(ctx context.Context, id string) (*RegisteredTriggerInfo, error) {
	var out RegisteredTriggerInfo
	if err := w.builtin(ctx, "engine::registered-triggers::info", map[string]string{"id": id}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListWorkers lists the connected workers (engine::workers::list). The
// engine hides workers that never reported a pid.
func (w *III) ListWorkers(ctx context.Context, f WorkerFilter) ([]WorkerInfo, error) {
	var out struct {
		Workers []WorkerInfo `json:"workers"`
	}
	err := w.builtin(ctx, "engine::workers::list", f, &out)
	return out.Workers, err
}

// WorkerInfo describes the worker named name with its functions, trigger
// types and bindings (engine::workers::info).
func (w *III) WorkerInfo(ctx context.Context, name string) (*WorkerDetail, error) {
	var out WorkerDetail
	if err := w.builtin(ctx, "engine::workers::info", map[string]string{"name": name}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
