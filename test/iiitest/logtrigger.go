package iiitest

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/iii-go/iii/connection/wire"
)

// The engine's observability worker provides the "log" trigger type: every
// log record it stores (those of the engine::log::* functions and of the
// workers' OTLP LOGS frames) is delivered to each binding whose level
// matches, fire-and-forget, with the binding's metadata.
func init() {
	registerEngineTriggerType(engineTriggerType{
		id:          "log",
		description: "Log event trigger",
		newProvider: func(e *Engine) engineProvider {
			return &logProvider{subs: make(map[string]*binding)}
		},
	})
}

// logProvider holds the log bindings of one engine state (guarded by
// Engine.mu).
type logProvider struct {
	subs map[string]*binding
}

func (p *logProvider) bind(e *Engine, ob *outbox, st *state, b *binding) *wire.ErrorBody {
	p.subs[b.id] = b
	return nil
}

func (p *logProvider) unbind(e *Engine, ob *outbox, st *state, b *binding) {
	delete(p.subs, b.id)
}

// storedLog is the record a log trigger delivers, with its keys in the
// engine's (sorted) order.
type storedLog struct {
	Attributes                  map[string]json.RawMessage `json:"attributes"`
	Body                        string                     `json:"body"`
	InstrumentationScopeName    *string                    `json:"instrumentation_scope_name"`
	InstrumentationScopeVersion *string                    `json:"instrumentation_scope_version"`
	ObservedTimestampUnixNano   uint64                     `json:"observed_timestamp_unix_nano"`
	Resource                    map[string]string          `json:"resource"`
	ServiceName                 string                     `json:"service_name"`
	SeverityNumber              int                        `json:"severity_number"`
	SeverityText                string                     `json:"severity_text"`
	SpanID                      *string                    `json:"span_id"`
	TimestampUnixNano           uint64                     `json:"timestamp_unix_nano"`
	TraceID                     *string                    `json:"trace_id"`
}

// logProviderLocked returns the engine's log provider while a binding
// exists, else nil.
func (e *Engine) logProviderLocked() *logProvider {
	tt := e.st.ttypes["log"]
	if tt == nil {
		return nil
	}
	p, _ := tt.engine.(*logProvider)
	if p == nil || len(p.subs) == 0 {
		return nil
	}
	return p
}

// fireLogRecords delivers records to the matching log bindings: a binding
// with level "all" (the default) gets every record, one with another level
// the records whose severity text is that level (case-insensitively).
func (e *Engine) fireLogRecords(recs []storedLog) {
	ob := outbox{}
	e.mu.Lock()
	if p := e.logProviderLocked(); p != nil {
		for _, id := range sortedKeys(p.subs) {
			b := p.subs[id]
			var cfg struct {
				Level any `json:"level"`
			}
			_ = json.Unmarshal(b.config, &cfg)
			level, ok := cfg.Level.(string)
			if !ok {
				level = "all"
			}
			for i := range recs {
				if level == "all" || level == strings.ToLower(recs[i].SeverityText) {
					e.callLocked(&ob, e.st, b.function, marshal(&recs[i]), b.metadata, "", "", nil)
				}
			}
		}
	}
	e.mu.Unlock()
	e.flush(&ob)
}

// hasLogBindings reports whether a log binding exists (so that a LOGS
// frame is worth decoding at once).
func (e *Engine) hasLogBindings() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.logProviderLocked() != nil
}

// logSeverity is the severity number of an engine::log::<level> record.
var logSeverity = map[string]int{"trace": 1, "debug": 5, "info": 9, "warn": 13, "error": 17}

// logBuiltinRecord is the record the engine stores for an engine::log::*
// call: its data object's members as attributes, the engine's own resource
// and instrumentation scope, the caller's service name ("unknown" if none).
func logBuiltinRecord(level, message string, data json.RawMessage, traceID, spanID, service *string) storedLog {
	now := uint64(time.Now().UnixNano())
	attrs := map[string]json.RawMessage{}
	_ = json.Unmarshal(data, &attrs)
	if attrs == nil {
		attrs = map[string]json.RawMessage{}
	}
	svc := "unknown"
	if service != nil {
		svc = *service
	}
	scope, version := "iii", engineVersion
	return storedLog{
		Attributes: attrs, Body: message,
		InstrumentationScopeName: &scope, InstrumentationScopeVersion: &version,
		ObservedTimestampUnixNano: now, TimestampUnixNano: now,
		Resource:    map[string]string{"service.name": "iii", "service.version": engineVersion},
		ServiceName: svc, SeverityNumber: logSeverity[level], SeverityText: strings.ToUpper(level),
		SpanID: spanID, TraceID: traceID,
	}
}

// fireOTLPLogs delivers the records of a LOGS frame, converted as the
// engine stores them.
func (e *Engine) fireOTLPLogs(payload []byte) {
	var req wire.LogsRequest
	if json.Unmarshal(payload, &req) != nil {
		return
	}
	var recs []storedLog
	for _, rl := range req.ResourceLogs {
		res := map[string]string{}
		svc := "unknown"
		for _, kv := range rl.Resource.Attributes {
			res[kv.Key] = otlpString(kv.Value)
			if kv.Key == "service.name" && svc == "unknown" {
				svc = otlpString(kv.Value)
			}
		}
		for _, sl := range rl.ScopeLogs {
			var scope, version *string
			if sl.Scope.Name != "" {
				scope = &sl.Scope.Name
			}
			if sl.Scope.Version != "" {
				version = &sl.Scope.Version
			}
			for _, r := range sl.LogRecords {
				attrs := make(map[string]json.RawMessage, len(r.Attributes))
				for _, kv := range r.Attributes {
					attrs[kv.Key] = otlpJSON(kv.Value)
				}
				recs = append(recs, storedLog{
					Attributes: attrs, Body: otlpString(r.Body),
					InstrumentationScopeName: scope, InstrumentationScopeVersion: version,
					ObservedTimestampUnixNano: uint64(r.ObservedTimeUnixNano), TimestampUnixNano: uint64(r.TimeUnixNano),
					Resource: res, ServiceName: svc,
					SeverityNumber: r.SeverityNumber, SeverityText: r.SeverityText,
					SpanID:  otlpID(r.SpanID, "0000000000000000"),
					TraceID: otlpID(r.TraceID, "00000000000000000000000000000000"),
				})
			}
		}
	}
	if len(recs) > 0 {
		e.fireLogRecords(recs)
	}
}

func otlpID(id, zero string) *string {
	if id == "" || id == zero {
		return nil
	}
	return &id
}

// otlpString is an OTLP value as the engine turns it into text: primitives
// as text, lists and maps as JSON, anything else empty.
func otlpString(v wire.AnyValue) string {
	switch {
	case v.StringValue != nil:
		return *v.StringValue
	case v.IntValue != nil:
		return strconv.FormatInt(int64(*v.IntValue), 10)
	case v.DoubleValue != nil:
		return strconv.FormatFloat(*v.DoubleValue, 'f', -1, 64)
	case v.BoolValue != nil:
		return strconv.FormatBool(*v.BoolValue)
	case v.KvlistValue != nil, v.ArrayValue != nil:
		return string(otlpJSON(v))
	}
	return ""
}

// otlpJSON is an OTLP value as the engine turns it into JSON (bytes and
// empty values are null, non-finite numbers 0).
func otlpJSON(v wire.AnyValue) json.RawMessage {
	switch {
	case v.StringValue != nil:
		return marshal(*v.StringValue)
	case v.IntValue != nil:
		return json.RawMessage(strconv.FormatInt(int64(*v.IntValue), 10))
	case v.DoubleValue != nil:
		d := *v.DoubleValue
		if math.IsNaN(d) || math.IsInf(d, 0) {
			return json.RawMessage("0")
		}
		return marshal(d)
	case v.BoolValue != nil:
		return json.RawMessage(strconv.FormatBool(*v.BoolValue))
	case v.KvlistValue != nil:
		m := make(map[string]json.RawMessage, len(v.KvlistValue.Values))
		for _, kv := range v.KvlistValue.Values {
			m[kv.Key] = otlpJSON(kv.Value)
		}
		return marshal(m)
	case v.ArrayValue != nil:
		a := make([]json.RawMessage, 0, len(v.ArrayValue.Values))
		for _, x := range v.ArrayValue.Values {
			a = append(a, otlpJSON(x))
		}
		return marshal(a)
	}
	return json.RawMessage("null")
}
