package iiitest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/iii-go/iii/connection/wire"
)

// builtinFunc runs an engine:: function. c is the calling worker (nil for
// engine-originated calls); data is only valid during the call. reply must
// be called at most once; for void calls it does nothing.
type builtinFunc func(e *Engine, c *worker, id string, data json.RawMessage, reply func(json.RawMessage, *wire.ErrorBody))

type builtinDef struct {
	fn          builtinFunc
	description string
	metadata    json.RawMessage
	worker      string // the in-process worker listed as its owner; "" is runtimeWorkerName
}

// runtimeWorkerName is the in-process worker the builtins belong to.
const runtimeWorkerName = "iii-engine-functions"

// engineVersion is the engine version the double imitates.
const engineVersion = "0.22.1"

// builtins are the engine:: (and other in-engine) functions. Files of the
// package add theirs to it in init funcs (it exists before any init runs).
var builtins = map[string]builtinDef{}

func init() {
	logFn := func(level string) builtinDef {
		return builtinDef{fn: func(e *Engine, c *worker, id string, data json.RawMessage, reply func(json.RawMessage, *wire.ErrorBody)) {
			builtinLog(e, c, id, level, data, reply)
		}, description: "Log a " + level + " message"}
	}
	for id, def := range map[string]builtinDef{
		"engine::channels::create":          {fn: builtinChannelsCreate, description: "Create a streaming channel pair"},
		"engine::functions::list":           {fn: builtinFunctionsList, description: "List registered functions with their owning worker name."},
		"engine::functions::info":           {fn: builtinFunctionsInfo, description: "Inspect functions: schemas, owner, and registered triggers. Single `function_id`, or `function_ids: [...]` (max 32) to fetch several contracts in one call."},
		"engine::triggers::list":            {fn: builtinTriggersList, description: "List trigger types registered with the engine."},
		"engine::triggers::info":            {fn: builtinTriggersInfo, description: "Inspect one trigger type: schemas, owner, and live instance count."},
		"engine::registered-triggers::list": {fn: builtinRegisteredTriggersList, description: "List registered trigger instances (subscriber rows)."},
		"engine::registered-triggers::info": {fn: builtinRegisteredTriggersInfo, description: "Inspect one registered trigger instance with denormalized trigger and function detail."},
		"engine::workers::list":             {fn: builtinWorkersList, description: "List workers connected to the engine."},
		"engine::workers::info":             {fn: builtinWorkersInfo, description: "Inspect one connected worker's full surface (functions, trigger types, registered triggers)."},
		"engine::workers::register":         {fn: builtinWorkersRegister, description: "Register worker metadata"},
		"engine::register_trigger":          {fn: builtinRegisterTrigger, description: "Register a trigger that fires `function_id` directly, with `metadata` delivered to the handler as a distinct argument (not folded into the payload). Returns the trigger id (pass it to engine::unregister_trigger)."},
		"engine::unregister_trigger":        {fn: builtinUnregisterTrigger, description: "Unregister a trigger by id. Idempotent; reports whether it existed."},
		// The v0.22.1 engine has no queue provider of its own (the queue
		// worker registers it); the double's is in memory, installed only
		// WithQueue, and marked internal so that it does not show in the
		// default function list.
		enqueueProvider:      {fn: builtinEnqueue, description: "In-memory queue provider of the engine double", metadata: json.RawMessage(`{"internal":true}`)},
		"engine::log::info":  logFn("info"),
		"engine::log::warn":  logFn("warn"),
		"engine::log::error": logFn("error"),
		"engine::log::debug": logFn("debug"),
		"engine::log::trace": logFn("trace"),
	} {
		builtins[id] = def
	}
}

// decodeInput decodes a builtin's input like serde does: it must be an
// object; required fields are checked by the caller with missingField.
func decodeInput(id string, data json.RawMessage, v any) *wire.ErrorBody {
	t := bytes.TrimLeft(data, " \t\r\n")
	if len(t) == 0 || t[0] != '{' {
		return inputError(id, "invalid type: "+serdeKind(t)+", expected a map")
	}
	if err := json.Unmarshal(data, v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return inputError(id, fmt.Sprintf("invalid type: %s, expected %s for field `%s`", ute.Value, ute.Type, ute.Field))
		}
		return inputError(id, err.Error())
	}
	return nil
}

// serdeKind names the JSON value t starts with as serde's errors do ("null"
// for nothing).
func serdeKind(t []byte) string {
	switch {
	case len(t) == 0:
		return "null"
	case t[0] == '[':
		return "sequence"
	case t[0] == '"':
		return "string"
	case t[0] == 't' || t[0] == 'f':
		return "boolean"
	case t[0] == 'n':
		return "null"
	case t[0] == '{':
		return "map"
	}
	return "number"
}

func inputError(id, msg string) *wire.ErrorBody {
	return &wire.ErrorBody{Code: "deserialization_error", Message: "Failed to deserialize input for " + id + ": " + msg}
}

func missingField(id, field string) *wire.ErrorBody {
	return inputError(id, "missing field `"+field+"`")
}

func ok(reply func(json.RawMessage, *wire.ErrorBody), v any) { reply(marshal(v), nil) }

// ── outputs (field order as the engine's structs) ──────────────────────

type functionSummary struct {
	FunctionID  string          `json:"function_id"`
	WorkerName  string          `json:"worker_name"`
	Description *string         `json:"description,omitempty"`
	Metadata    json.RawMessage `json:"metadata,omitempty"`
	Namespace   string          `json:"namespace,omitempty"` // WithNamespaces
}

type registeredTriggerRef struct {
	ID          string          `json:"id"`
	TriggerType string          `json:"trigger_type"`
	Config      json.RawMessage `json:"config"`
}

type functionDetail struct {
	FunctionID         string                 `json:"function_id"`
	WorkerName         string                 `json:"worker_name"`
	Description        *string                `json:"description,omitempty"`
	RequestSchema      json.RawMessage        `json:"request_schema,omitempty"`
	ResponseSchema     json.RawMessage        `json:"response_schema,omitempty"`
	Metadata           json.RawMessage        `json:"metadata,omitempty"`
	RegisteredTriggers []registeredTriggerRef `json:"registered_triggers"`
}

type triggerTypeSummary struct {
	ID          string `json:"id"`
	WorkerName  string `json:"worker_name"`
	Description string `json:"description"`
}

type triggerTypeDetail struct {
	ID                  string          `json:"id"`
	WorkerName          string          `json:"worker_name"`
	Description         string          `json:"description"`
	ConfigurationSchema json.RawMessage `json:"configuration_schema,omitempty"`
	RequestSchema       json.RawMessage `json:"request_schema,omitempty"`
	ResponseSchema      json.RawMessage `json:"response_schema,omitempty"`
	InstanceCount       int             `json:"instance_count"`
}

type registeredTriggerSummary struct {
	ID            string          `json:"id"`
	TriggerType   string          `json:"trigger_type"`
	FunctionID    string          `json:"function_id"`
	WorkerName    string          `json:"worker_name"`
	Config        json.RawMessage `json:"config"`
	ConfigSummary string          `json:"config_summary"`
}

type registeredTriggerDetail struct {
	ID          string             `json:"id"`
	TriggerType string             `json:"trigger_type"`
	FunctionID  string             `json:"function_id"`
	WorkerName  string             `json:"worker_name"`
	Config      json.RawMessage    `json:"config"`
	Metadata    json.RawMessage    `json:"metadata,omitempty"`
	Trigger     *triggerTypeDetail `json:"trigger"`
	Function    *functionDetail    `json:"function"`
}

type workerSummary struct {
	Name              *string `json:"name"`
	Description       *string `json:"description"`
	Version           *string `json:"version"`
	ID                string  `json:"id"`
	Runtime           *string `json:"runtime"`
	OS                *string `json:"os"`
	Status            string  `json:"status"`
	FunctionCount     int     `json:"function_count"`
	ConnectedAtMs     uint64  `json:"connected_at_ms"`
	ActiveInvocations int     `json:"active_invocations"`
	Isolation         *string `json:"isolation"`
	IPAddress         *string `json:"ip_address"`
	Namespace         string  `json:"namespace,omitempty"` // WithNamespaces
}

type workerDetail struct {
	workerSummary
	PID      *uint32 `json:"pid,omitempty"`
	Internal bool    `json:"internal"`
}

// ── helpers over the state (Engine.mu held) ─────────────────────────────

func strPtr(s string) *string { return &s }

func optDesc(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func optRaw(r json.RawMessage) json.RawMessage {
	if wire.IsNull(r) {
		return nil
	}
	return r
}

func rawOrNull(r json.RawMessage) json.RawMessage {
	if len(r) == 0 {
		return json.RawMessage("null")
	}
	return r
}

func firstSegment(s string) string {
	seg, _, _ := strings.Cut(s, "::")
	return seg
}

func containsFold(haystack, needle string) bool {
	return strings.Contains(strings.ToLower(haystack), strings.ToLower(needle))
}

// liveWorkers returns the connections oldest first.
func (st *state) liveWorkers() []*worker {
	ws := make([]*worker, 0, len(st.workers))
	for _, c := range st.workers {
		ws = append(ws, c)
	}
	slices.SortFunc(ws, func(a, b *worker) int { return a.connectedAt.Compare(b.connectedAt) })
	return ws
}

// ownerIndex maps function ids to worker names: the runtime worker first,
// then named connections by the ids they registered (first wins).
func (st *state) ownerIndex() map[string]string {
	idx := make(map[string]string)
	for id, b := range builtins {
		idx[id] = cmp.Or(b.worker, runtimeWorkerName)
	}
	for _, c := range st.liveWorkers() {
		if c.meta.name == nil {
			continue
		}
		for id := range c.fns {
			if _, ok := idx[id]; !ok {
				idx[id] = *c.meta.name
			}
		}
	}
	return idx
}

func workerNameFor(idx map[string]string, fnID string) string {
	if n, ok := idx[fnID]; ok {
		return n
	}
	return firstSegment(fnID)
}

func (e *Engine) functionSummariesLocked(st *state) []functionSummary {
	idx := st.ownerIndex()
	out := make([]functionSummary, 0, len(st.functions))
	for k, f := range st.functions {
		out = append(out, functionSummary{FunctionID: f.id, WorkerName: workerNameFor(idx, f.id), Description: optDesc(f.description), Metadata: optRaw(f.metadata),
			Namespace: e.nsField(k)})
	}
	slices.SortFunc(out, func(a, b functionSummary) int { return strings.Compare(a.FunctionID, b.FunctionID) })
	return out
}

func (st *state) functionDetail(idx map[string]string, id string) *functionDetail {
	f := st.functions[id]
	if f == nil {
		return nil
	}
	d := &functionDetail{
		FunctionID:         id,
		WorkerName:         workerNameFor(idx, id),
		Description:        optDesc(f.description),
		RequestSchema:      optRaw(f.requestFormat),
		ResponseSchema:     optRaw(f.responseFormat),
		Metadata:           optRaw(f.metadata),
		RegisteredTriggers: []registeredTriggerRef{},
	}
	for _, bid := range sortedKeys(st.bindings) {
		if b := st.bindings[bid]; b.function == id {
			d.RegisteredTriggers = append(d.RegisteredTriggers, registeredTriggerRef{b.id, b.ttype, rawOrNull(b.config)})
		}
	}
	return d
}

func (st *state) ttypeOwnerName(tt *ttype) string {
	if tt.provider != nil && !tt.provider.gone && tt.provider.meta.name != nil {
		return *tt.provider.meta.name
	}
	switch tt.id {
	case "http":
		return "iii-http"
	case "cron":
		return "iii-cron"
	case "subscribe":
		return "iii-pubsub"
	case "state":
		return "iii-state"
	case "durable:subscriber":
		return "queue"
	case "stream", "stream:join", "stream:leave":
		return "iii-stream"
	case "log", "trace":
		return "iii-observability"
	case "configuration":
		return "configuration"
	}
	return firstSegment(tt.id)
}

func (st *state) ttypeDetail(id string) *triggerTypeDetail {
	tt := st.ttypes[id]
	if tt == nil {
		return nil
	}
	n := 0
	for _, b := range st.bindings {
		if b.ttype == id {
			n++
		}
	}
	return &triggerTypeDetail{
		ID:                  tt.id,
		WorkerName:          st.ttypeOwnerName(tt),
		Description:         tt.description,
		ConfigurationSchema: optRaw(tt.triggerRequestFormat),
		RequestSchema:       optRaw(tt.callRequestFormat),
		InstanceCount:       n,
	}
}

func configSummary(cfg json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, rawOrNull(cfg)); err != nil {
		return "{}"
	}
	s := b.String()
	if utf8.RuneCountInString(s) <= 80 {
		return s
	}
	r := []rune(s)
	return string(r[:80]) + "…"
}

func (st *state) registeredSummaries(idx map[string]string) []registeredTriggerSummary {
	out := make([]registeredTriggerSummary, 0, len(st.bindings))
	for _, id := range sortedKeys(st.bindings) {
		b := st.bindings[id]
		out = append(out, registeredTriggerSummary{b.id, b.ttype, b.function, workerNameFor(idx, b.function), rawOrNull(b.config), configSummary(b.config)})
	}
	return out
}

func (st *state) activeInvocations(c *worker) int {
	n := 0
	for _, p := range st.pending {
		if p.handler == c || p.caller == c {
			n++
		}
	}
	return n
}

func (st *state) workerSummary(c *worker) workerSummary {
	ws := workerSummary{
		Name:              c.meta.name,
		Description:       c.meta.description,
		Version:           c.meta.version,
		ID:                c.id,
		Runtime:           c.meta.runtime,
		OS:                c.meta.os,
		Status:            "connected",
		FunctionCount:     len(c.fns),
		ConnectedAtMs:     uint64(c.connectedAt.UnixMilli()),
		ActiveInvocations: st.activeInvocations(c),
		Isolation:         c.meta.isolation,
	}
	if c.ip != "" {
		ws.IPAddress = strPtr(c.ip)
	}
	if c.e.cfg.namespaces {
		ws.Namespace = nsName(c.nsx.ns)
	}
	return ws
}

// runtimeBuiltins lists the builtins of the runtime worker itself (not
// those of the in-process workers the double imitates, like iii-state).
func runtimeBuiltins() []string {
	var ids []string
	for id, b := range builtins {
		if b.worker == "" {
			ids = append(ids, id)
		}
	}
	return ids
}

func (st *state) runtimeSummary() workerSummary {
	return workerSummary{
		Name:          strPtr(runtimeWorkerName),
		Description:   strPtr("Core engine introspection (engine::*) and platform authoring reference."),
		Version:       strPtr(engineVersion),
		ID:            st.runtimeID,
		Runtime:       strPtr("engine"),
		Status:        "available",
		FunctionCount: len(runtimeBuiltins()),
		ConnectedAtMs: uint64(st.startedAt.UnixMilli()),
		Isolation:     strPtr("in-process"),
	}
}

// ── the builtins ─────────────────────────────────────────────────────────

func builtinFunctionsList(e *Engine, c *worker, id string, data json.RawMessage, reply func(json.RawMessage, *wire.ErrorBody)) {
	var in struct {
		Search          *string  `json:"search"`
		Prefix          *string  `json:"prefix"`
		Worker          *string  `json:"worker"`
		Workers         []string `json:"workers"`
		IncludeInternal *bool    `json:"include_internal"`
	}
	if errb := decodeInput(id, data, &in); errb != nil {
		reply(nil, errb)
		return
	}
	e.mu.Lock()
	fns := e.functionSummariesLocked(e.st)
	e.mu.Unlock()
	fns = slices.DeleteFunc(fns, func(f functionSummary) bool {
		if in.IncludeInternal == nil || !*in.IncludeInternal {
			if strings.HasPrefix(f.FunctionID, "engine::") && !strings.HasPrefix(f.FunctionID, "engine::queue::") {
				return true
			}
			var md struct {
				Internal bool `json:"internal"`
			}
			if len(f.Metadata) > 0 && json.Unmarshal(f.Metadata, &md) == nil && md.Internal {
				return true
			}
		}
		if in.Prefix != nil && !strings.HasPrefix(f.FunctionID, *in.Prefix) {
			return true
		}
		if in.Worker != nil || len(in.Workers) > 0 {
			if !(in.Worker != nil && *in.Worker == f.WorkerName) && !slices.Contains(in.Workers, f.WorkerName) {
				return true
			}
		}
		if in.Search != nil && *in.Search != "" {
			if !containsFold(f.FunctionID, *in.Search) && !containsFold(deref(f.Description), *in.Search) {
				return true
			}
		}
		return false
	})
	if in.Search != nil && *in.Search != "" {
		needle := strings.ToLower(*in.Search)
		rank := func(id string) int {
			l := strings.ToLower(id)
			if strings.HasPrefix(l, needle) || slices.Contains(strings.Split(l, "::"), needle) {
				return 0
			}
			if strings.Contains(l, needle) {
				return 1
			}
			return 2
		}
		slices.SortStableFunc(fns, func(a, b functionSummary) int {
			if ra, rb := rank(a.FunctionID), rank(b.FunctionID); ra != rb {
				return ra - rb
			}
			return strings.Compare(a.FunctionID, b.FunctionID)
		})
	}
	ok(reply, struct {
		Functions []functionSummary `json:"functions"`
	}{fns})
}

func builtinFunctionsInfo(e *Engine, c *worker, id string, data json.RawMessage, reply func(json.RawMessage, *wire.ErrorBody)) {
	var in struct {
		FunctionID  *string  `json:"function_id"`
		FunctionIDs []string `json:"function_ids"`
	}
	if errb := decodeInput(id, data, &in); errb != nil {
		reply(nil, errb)
		return
	}
	invalid := func(msg string) { reply(nil, &wire.ErrorBody{Code: "INVALID_ARGUMENTS", Message: msg}) }
	hasIDs := in.FunctionIDs != nil
	switch {
	case in.FunctionID != nil && hasIDs:
		invalid("pass either `function_id` or `function_ids`, not both")
		return
	case in.FunctionID == nil && !hasIDs:
		invalid("missing field `function_id` (or `function_ids` for a batch)")
		return
	}
	e.mu.Lock()
	st := e.st
	idx := st.ownerIndex()
	if in.FunctionID != nil {
		d := st.functionDetail(idx, *in.FunctionID)
		e.mu.Unlock()
		if d == nil {
			reply(nil, &wire.ErrorBody{Code: "NOT_FOUND", Message: "Function '" + *in.FunctionID + "' is not registered."})
			return
		}
		ok(reply, d)
		return
	}
	var ids []string
	for _, f := range in.FunctionIDs {
		if !slices.Contains(ids, f) {
			ids = append(ids, f)
		}
	}
	var entries []any
	for _, f := range ids {
		if d := st.functionDetail(idx, f); d != nil {
			entries = append(entries, d)
		} else {
			entries = append(entries, struct {
				FunctionID string `json:"function_id"`
				Error      string `json:"error"`
			}{f, "not_found"})
		}
	}
	e.mu.Unlock()
	switch {
	case len(ids) == 0:
		invalid("`function_ids` must be a non-empty array of function ids")
	case len(ids) > 32:
		invalid("too many function_ids (max 32)")
	default:
		ok(reply, struct {
			Functions []any `json:"functions"`
		}{entries})
	}
}

func builtinTriggersList(e *Engine, c *worker, id string, data json.RawMessage, reply func(json.RawMessage, *wire.ErrorBody)) {
	var in struct {
		Search          *string `json:"search"`
		Prefix          *string `json:"prefix"`
		Worker          *string `json:"worker"`
		IncludeInternal *bool   `json:"include_internal"`
	}
	if errb := decodeInput(id, data, &in); errb != nil {
		reply(nil, errb)
		return
	}
	e.mu.Lock()
	st := e.st
	out := make([]triggerTypeSummary, 0, len(st.ttypes))
	for _, tid := range sortedKeys(st.ttypes) {
		tt := st.ttypes[tid]
		s := triggerTypeSummary{tt.id, st.ttypeOwnerName(tt), tt.description}
		switch {
		case (in.IncludeInternal == nil || !*in.IncludeInternal) && strings.HasPrefix(s.ID, "engine::"):
		case in.Prefix != nil && !strings.HasPrefix(s.ID, *in.Prefix):
		case in.Worker != nil && s.WorkerName != *in.Worker:
		case in.Search != nil && *in.Search != "" && !containsFold(s.ID, *in.Search) && !containsFold(s.Description, *in.Search):
		default:
			out = append(out, s)
		}
	}
	e.mu.Unlock()
	ok(reply, struct {
		Triggers []triggerTypeSummary `json:"triggers"`
	}{out})
}

func builtinTriggersInfo(e *Engine, c *worker, id string, data json.RawMessage, reply func(json.RawMessage, *wire.ErrorBody)) {
	var in struct {
		ID *string `json:"id"`
	}
	if errb := decodeInput(id, data, &in); errb != nil {
		reply(nil, errb)
		return
	}
	if in.ID == nil {
		reply(nil, missingField(id, "id"))
		return
	}
	e.mu.Lock()
	d := e.st.ttypeDetail(*in.ID)
	e.mu.Unlock()
	if d == nil {
		reply(nil, &wire.ErrorBody{Code: "NOT_FOUND", Message: "Trigger type '" + *in.ID + "' is not registered."})
		return
	}
	ok(reply, d)
}

func builtinRegisteredTriggersList(e *Engine, c *worker, id string, data json.RawMessage, reply func(json.RawMessage, *wire.ErrorBody)) {
	var in struct {
		Search          *string `json:"search"`
		TriggerType     *string `json:"trigger_type"`
		FunctionID      *string `json:"function_id"`
		Worker          *string `json:"worker"`
		IncludeInternal *bool   `json:"include_internal"`
	}
	if errb := decodeInput(id, data, &in); errb != nil {
		reply(nil, errb)
		return
	}
	e.mu.Lock()
	st := e.st
	all := st.registeredSummaries(st.ownerIndex())
	e.mu.Unlock()
	out := slices.DeleteFunc(all, func(t registeredTriggerSummary) bool {
		switch {
		case (in.IncludeInternal == nil || !*in.IncludeInternal) && strings.HasPrefix(t.FunctionID, "engine::"):
		case in.TriggerType != nil && t.TriggerType != *in.TriggerType:
		case in.FunctionID != nil && t.FunctionID != *in.FunctionID:
		case in.Worker != nil && t.WorkerName != *in.Worker:
		case in.Search != nil && *in.Search != "" && !containsFold(t.ID, *in.Search) && !containsFold(t.TriggerType, *in.Search) && !containsFold(t.FunctionID, *in.Search):
		default:
			return false
		}
		return true
	})
	ok(reply, struct {
		RegisteredTriggers []registeredTriggerSummary `json:"registered_triggers"`
	}{out})
}

func builtinRegisteredTriggersInfo(e *Engine, c *worker, id string, data json.RawMessage, reply func(json.RawMessage, *wire.ErrorBody)) {
	var in struct {
		ID *string `json:"id"`
	}
	if errb := decodeInput(id, data, &in); errb != nil {
		reply(nil, errb)
		return
	}
	if in.ID == nil {
		reply(nil, missingField(id, "id"))
		return
	}
	e.mu.Lock()
	st := e.st
	var d *registeredTriggerDetail
	if b := st.bindings[*in.ID]; b != nil {
		idx := st.ownerIndex()
		d = &registeredTriggerDetail{
			ID:          b.id,
			TriggerType: b.ttype,
			FunctionID:  b.function,
			WorkerName:  workerNameFor(idx, b.function),
			Config:      rawOrNull(b.config),
			Metadata:    optRaw(b.metadata),
			Trigger:     st.ttypeDetail(b.ttype),
			Function:    st.functionDetail(idx, b.function),
		}
	}
	e.mu.Unlock()
	if d == nil {
		reply(nil, &wire.ErrorBody{Code: "NOT_FOUND", Message: "Registered trigger '" + *in.ID + "' was not found."})
		return
	}
	ok(reply, d)
}

func builtinWorkersList(e *Engine, c *worker, id string, data json.RawMessage, reply func(json.RawMessage, *wire.ErrorBody)) {
	var in struct {
		Search  *string `json:"search"`
		Runtime *string `json:"runtime"`
		Status  *string `json:"status"`
	}
	if errb := decodeInput(id, data, &in); errb != nil {
		reply(nil, errb)
		return
	}
	e.mu.Lock()
	st := e.st
	var out []workerSummary
	for _, w := range st.liveWorkers() {
		if w.meta.pid != nil { // the engine hides connections without a pid
			out = append(out, st.workerSummary(w))
		}
	}
	out = append(out, st.runtimeSummary())
	e.mu.Unlock()
	display := func(w workerSummary) string {
		if w.Name != nil {
			return *w.Name
		}
		return w.ID
	}
	sort.SliceStable(out, func(i, j int) bool {
		if a, b := display(out[i]), display(out[j]); a != b {
			return a < b
		}
		return out[i].ID < out[j].ID
	})
	out = slices.DeleteFunc(out, func(w workerSummary) bool {
		switch {
		case in.Runtime != nil && (w.Runtime == nil || *w.Runtime != *in.Runtime):
		case in.Status != nil && w.Status != *in.Status:
		case in.Search != nil && *in.Search != "" && !containsFold(deref(w.Name), *in.Search):
		default:
			return false
		}
		return true
	})
	if out == nil {
		out = []workerSummary{}
	}
	ok(reply, struct {
		Workers []workerSummary `json:"workers"`
	}{out})
}

func builtinWorkersInfo(e *Engine, c *worker, id string, data json.RawMessage, reply func(json.RawMessage, *wire.ErrorBody)) {
	var in struct {
		Name *string `json:"name"`
	}
	if errb := decodeInput(id, data, &in); errb != nil {
		reply(nil, errb)
		return
	}
	if in.Name == nil {
		reply(nil, missingField(id, "name"))
		return
	}
	name := *in.Name
	e.mu.Lock()
	st := e.st
	var env *workerDetail
	var fnIDs []string
	if name == runtimeWorkerName {
		env = &workerDetail{workerSummary: st.runtimeSummary(), Internal: true}
		fnIDs = runtimeBuiltins()
	} else {
		for _, w := range st.liveWorkers() {
			if w.meta.name != nil && *w.meta.name == name {
				env = &workerDetail{workerSummary: st.workerSummary(w), PID: w.meta.pid}
				for id := range w.fns {
					fnIDs = append(fnIDs, w.fnKey(id))
				}
				break
			}
		}
	}
	if env == nil {
		e.mu.Unlock()
		reply(nil, &wire.ErrorBody{Code: "NOT_FOUND", Message: "Worker '" + name + "' is not connected."})
		return
	}
	idx := st.ownerIndex()
	sort.Strings(fnIDs)
	fns := []functionSummary{}
	fnSet := make(map[string]bool)
	for _, id := range fnIDs {
		if f := st.functions[id]; f != nil {
			fns = append(fns, functionSummary{f.id, workerNameFor(idx, f.id), optDesc(f.description), optRaw(f.metadata), e.nsField(id)})
			fnSet[f.id] = true
		}
	}
	tts := []triggerTypeSummary{}
	for _, tid := range sortedKeys(st.ttypes) {
		tt := st.ttypes[tid]
		if owner := st.ttypeOwnerName(tt); owner == name {
			tts = append(tts, triggerTypeSummary{tt.id, owner, tt.description})
		}
	}
	rts := []registeredTriggerSummary{}
	for _, t := range st.registeredSummaries(idx) {
		if fnSet[t.FunctionID] {
			rts = append(rts, t)
		}
	}
	e.mu.Unlock()
	ok(reply, struct {
		Worker             *workerDetail              `json:"worker"`
		Functions          []functionSummary          `json:"functions"`
		TriggerTypes       []triggerTypeSummary       `json:"trigger_types"`
		RegisteredTriggers []registeredTriggerSummary `json:"registered_triggers"`
	}{env, fns, tts, rts})
}

// sanitizeWorkerText strips control, bidi-override and line-separator
// characters, keeps at most 280 characters and trims; empty means unset.
func sanitizeWorkerText(s *string) *string {
	if s == nil {
		return nil
	}
	var b strings.Builder
	n := 0
	for _, r := range *s {
		if unicode.IsControl(r) || (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069) || r == 0x2028 || r == 0x2029 {
			continue
		}
		if n == 280 {
			break
		}
		b.WriteRune(r)
		n++
	}
	t := strings.TrimSpace(b.String())
	if t == "" {
		return nil
	}
	return &t
}

func builtinWorkersRegister(e *Engine, c *worker, id string, data json.RawMessage, reply func(json.RawMessage, *wire.ErrorBody)) {
	var in struct {
		Runtime     *string `json:"runtime"`
		Version     *string `json:"version"`
		Name        *string `json:"name"`
		Description *string `json:"description"`
		OS          *string `json:"os"`
		Telemetry   *struct {
			Language    *string `json:"language"`
			ProjectName *string `json:"project_name"`
			Framework   *string `json:"framework"`
		} `json:"telemetry"`
		PID       *uint32 `json:"pid"`
		Isolation *string `json:"isolation"`
		Caller    *string `json:"_caller_worker_id"`
	}
	if errb := decodeInput(id, data, &in); errb != nil {
		reply(nil, errb)
		return
	}
	callerID := ""
	if c != nil {
		callerID = c.id // the engine injects it into the payload
	} else if in.Caller != nil {
		callerID = *in.Caller
	} else {
		reply(nil, missingField(id, "_caller_worker_id"))
		return
	}
	if e.cfg.namespaces && !e.nsWorkerRegister(callerID, data, in.Name, reply) {
		return
	}
	ob := outbox{}
	e.mu.Lock()
	st := e.st
	if w := st.workers[callerID]; w != nil {
		m := &w.meta
		rt := "unknown"
		if in.Runtime != nil {
			rt = *in.Runtime
		}
		m.runtime = &rt
		m.version = in.Version
		if n := sanitizeWorkerText(in.Name); n != nil {
			m.name = n
		}
		if d := sanitizeWorkerText(in.Description); d != nil {
			m.description = d
		}
		if in.OS != nil {
			m.os = in.OS
		}
		m.telemetry = nil
		if in.Telemetry != nil {
			m.telemetry = marshal(in.Telemetry)
		}
		if in.PID != nil {
			m.pid = in.PID
		}
		if in.Isolation != nil {
			m.isolation = in.Isolation
		}
		m.raw = bytes.Clone(data)
	}
	e.fireLocked(&ob, st, triggerWorkersAvailable, workersEvent("worker_metadata_updated", callerID))
	e.notifyLocked()
	e.mu.Unlock()
	e.flush(&ob)
	reply(json.RawMessage(`{"success":true}`), nil)
}

func builtinRegisterTrigger(e *Engine, c *worker, id string, data json.RawMessage, reply func(json.RawMessage, *wire.ErrorBody)) {
	var in struct {
		TriggerType *string         `json:"trigger_type"`
		FunctionID  *string         `json:"function_id"`
		Config      json.RawMessage `json:"config"`
		Metadata    json.RawMessage `json:"metadata"`
	}
	if errb := decodeInput(id, data, &in); errb != nil {
		reply(nil, errb)
		return
	}
	switch {
	case in.TriggerType == nil:
		reply(nil, missingField(id, "trigger_type"))
		return
	case in.FunctionID == nil:
		reply(nil, missingField(id, "function_id"))
		return
	}
	b := &binding{
		id:       wire.NewUUID().String(),
		ttype:    *in.TriggerType,
		function: *in.FunctionID,
		config:   bytes.Clone(rawOrNull(in.Config)),
		metadata: bytes.Clone(optRaw(in.Metadata)),
	}
	ob := outbox{}
	e.mu.Lock()
	st := e.st
	tt := st.ttypes[b.ttype]
	if tt == nil || tt.provider == nil {
		errb := e.addBindingLocked(&ob, st, b)
		e.notifyLocked()
		e.mu.Unlock()
		e.flush(&ob)
		if errb != nil {
			reply(nil, errb)
			return
		}
		reply(idResult(b.id), nil)
		return
	}
	// A worker provider: wait for its triggerregistrationresult.
	p := tt.provider
	a := &ackWait{b: b, reply: reply}
	p.acks[b.id] = a
	a.timer = time.AfterFunc(e.cfg.ackTimeout, func() { e.ackTimedOut(p, b.id, a) })
	ob.add(p, b.registerMsg())
	e.mu.Unlock()
	e.flush(&ob)
}

func builtinUnregisterTrigger(e *Engine, c *worker, id string, data json.RawMessage, reply func(json.RawMessage, *wire.ErrorBody)) {
	var in struct {
		ID          *string `json:"id"`
		TriggerType *string `json:"trigger_type"`
	}
	if errb := decodeInput(id, data, &in); errb != nil {
		reply(nil, errb)
		return
	}
	if in.ID == nil {
		reply(nil, missingField(id, "id"))
		return
	}
	ob := outbox{}
	e.mu.Lock()
	removed := e.unregisterTriggerLocked(&ob, e.st, *in.ID)
	e.notifyLocked()
	e.mu.Unlock()
	e.flush(&ob)
	if removed {
		reply(json.RawMessage(`{"removed":true}`), nil)
	} else {
		reply(json.RawMessage(`{"removed":false}`), nil)
	}
}

func builtinEnqueue(e *Engine, c *worker, id string, data json.RawMessage, reply func(json.RawMessage, *wire.ErrorBody)) {
	var in struct {
		Queue       *string         `json:"queue"`
		FunctionID  *string         `json:"function_id"`
		Data        json.RawMessage `json:"data"`
		Receipt     *string         `json:"messageReceiptId"`
		Traceparent *string         `json:"traceparent"`
		Baggage     *string         `json:"baggage"`
		Namespace   *string         `json:"namespace"`
	}
	if errb := decodeInput(id, data, &in); errb != nil {
		reply(nil, errb)
		return
	}
	if in.FunctionID == nil {
		reply(nil, missingField(id, "function_id"))
		return
	}
	fnID := *in.FunctionID
	if e.cfg.namespaces {
		fnID = nsKey(deref(in.Namespace), fnID)
	}
	receipt := deref(in.Receipt)
	if receipt == "" {
		receipt = wire.NewUUID().String()
	}
	q := DefaultQueueName
	if in.Queue != nil {
		q = *in.Queue
	}
	if !e.queueKnown(q) {
		reply(nil, &wire.ErrorBody{Code: "queue_error", Message: "Queue '" + q + "' not found"})
		return
	}
	e.queueJob(queuedJob{queue: q, fnID: fnID, data: bytes.Clone(rawOrNull(in.Data)), traceparent: deref(in.Traceparent), baggage: deref(in.Baggage)})
	reply(receiptResult(receipt), nil)
}

func builtinChannelsCreate(e *Engine, c *worker, id string, data json.RawMessage, reply func(json.RawMessage, *wire.ErrorBody)) {
	var in struct {
		BufferSize *uint64 `json:"buffer_size"`
	}
	if errb := decodeInput(id, data, &in); errb != nil {
		reply(nil, errb)
		return
	}
	size := 64
	if in.BufferSize != nil {
		size = int(min(max(*in.BufferSize, 1), 1024))
	}
	ch := e.newChannel(size)
	type ref struct {
		ChannelID string `json:"channel_id"`
		AccessKey string `json:"access_key"`
		Direction string `json:"direction"`
	}
	ok(reply, struct {
		Writer ref `json:"writer"`
		Reader ref `json:"reader"`
	}{ref{ch.id, ch.key, "write"}, ref{ch.id, ch.key, "read"}})
}

func builtinLog(e *Engine, c *worker, id, level string, data json.RawMessage, reply func(json.RawMessage, *wire.ErrorBody)) {
	var in struct {
		Message     *string         `json:"message"`
		Data        json.RawMessage `json:"data"`
		TraceID     *string         `json:"trace_id"`
		SpanID      *string         `json:"span_id"`
		ServiceName *string         `json:"service_name"`
	}
	if errb := decodeInput(id, data, &in); errb != nil {
		reply(nil, errb)
		return
	}
	if in.Message == nil {
		reply(nil, missingField(id, "message"))
		return
	}
	rec := wire.LogRecord{SeverityText: strings.ToUpper(level), Body: wire.AnyValue{StringValue: in.Message}, TraceID: deref(in.TraceID), SpanID: deref(in.SpanID)}
	if in.ServiceName != nil {
		rec.Attributes = wire.Attributes{{Key: "service.name", Value: wire.AnyValue{StringValue: in.ServiceName}}}
	}
	e.tel.addLogs(e, []wire.LogRecord{rec})
	e.fireLogRecords([]storedLog{logBuiltinRecord(level, *in.Message, in.Data, in.TraceID, in.SpanID, in.ServiceName)})
	reply(nil, nil)
}
