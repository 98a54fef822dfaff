package wire

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// TelemetryKind identifies a binary telemetry frame by its 4-byte prefix.
type TelemetryKind uint8

// The telemetry frames of the protocol: an ASCII prefix followed by OTLP/JSON.
const (
	TelemetryNone    TelemetryKind = iota
	TelemetryTraces                // "OTLP": ExportTraceServiceRequest
	TelemetryMetrics               // "MTRC": ExportMetricsServiceRequest
	TelemetryLogs                  // "LOGS": ExportLogsServiceRequest
)

var telemetryPrefixes = [...]string{TelemetryTraces: "OTLP", TelemetryMetrics: "MTRC", TelemetryLogs: "LOGS"}

// Prefix returns the 4-byte frame prefix of k.
func (k TelemetryKind) Prefix() string {
	if k == TelemetryNone || int(k) >= len(telemetryPrefixes) {
		return ""
	}
	return telemetryPrefixes[k]
}

// SplitTelemetry recognises a binary telemetry frame and returns its kind
// and OTLP/JSON payload. A binary frame without a known prefix is a JSON
// message (TelemetryNone).
func SplitTelemetry(b []byte) (TelemetryKind, []byte) {
	if len(b) >= 4 {
		for k := TelemetryTraces; k <= TelemetryLogs; k++ {
			if string(b[:4]) == telemetryPrefixes[k] {
				return k, b[4:]
			}
		}
	}
	return TelemetryNone, b
}

// AppendTelemetry appends a telemetry frame: the prefix of k, then payload.
func AppendTelemetry(dst []byte, k TelemetryKind, payload []byte) []byte {
	dst = append(dst, k.Prefix()...)
	return append(dst, payload...)
}

// The types below are the parts of OTLP/JSON (proto3 JSON mapping, camelCase
// keys, hex trace and span ids) that workers send and tests inspect.

// Uint64 is an OTLP fixed64 field: JSON encoders write it as a string (the
// proto3 mapping) or as a number; both decode.
type Uint64 uint64

// MarshalJSON writes the proto3 form, a decimal string.
func (u Uint64) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, strconv.FormatUint(uint64(u), 10)), nil
}

// UnmarshalJSON accepts a string or a number.
func (u *Uint64) UnmarshalJSON(b []byte) error {
	b = bytes.Trim(b, `"`)
	if len(b) == 0 || string(b) == "null" {
		*u = 0
		return nil
	}
	v, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(string(b), 64)
		if ferr != nil {
			return err
		}
		v = uint64(f)
	}
	*u = Uint64(v)
	return nil
}

// Int64 is an OTLP int64 field, written as a string or a number.
type Int64 int64

// MarshalJSON writes the proto3 form, a decimal string.
func (i Int64) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, strconv.FormatInt(int64(i), 10)), nil
}

// UnmarshalJSON accepts a string or a number.
func (i *Int64) UnmarshalJSON(b []byte) error {
	b = bytes.Trim(b, `"`)
	if len(b) == 0 || string(b) == "null" {
		*i = 0
		return nil
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(string(b), 64)
		if ferr != nil {
			return err
		}
		v = int64(f)
	}
	*i = Int64(v)
	return nil
}

// AnyValue is an OTLP attribute or log body value; exactly one field is set.
type AnyValue struct {
	StringValue *string       `json:"stringValue,omitempty"`
	BoolValue   *bool         `json:"boolValue,omitempty"`
	IntValue    *Int64        `json:"intValue,omitempty"`
	DoubleValue *float64      `json:"doubleValue,omitempty"`
	ArrayValue  *ArrayValue   `json:"arrayValue,omitempty"`
	KvlistValue *KeyValueList `json:"kvlistValue,omitempty"`
	BytesValue  []byte        `json:"bytesValue,omitempty"`
}

// String returns the value as text (strings unquoted, others in JSON).
func (v AnyValue) String() string {
	switch {
	case v.StringValue != nil:
		return *v.StringValue
	case v.BoolValue != nil:
		return strconv.FormatBool(*v.BoolValue)
	case v.IntValue != nil:
		return strconv.FormatInt(int64(*v.IntValue), 10)
	case v.DoubleValue != nil:
		return strconv.FormatFloat(*v.DoubleValue, 'g', -1, 64)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// ArrayValue is a list of values.
type ArrayValue struct {
	Values []AnyValue `json:"values"`
}

// KeyValueList is a list of key-value pairs.
type KeyValueList struct {
	Values []KeyValue `json:"values"`
}

// KeyValue is one attribute.
type KeyValue struct {
	Key   string   `json:"key"`
	Value AnyValue `json:"value"`
}

// Attributes is an OTLP attribute list.
type Attributes []KeyValue

// Get returns the value of the attribute named key as text, and whether it exists.
func (a Attributes) Get(key string) (string, bool) {
	for _, kv := range a {
		if kv.Key == key {
			return kv.Value.String(), true
		}
	}
	return "", false
}

// Resource describes the entity producing telemetry.
type Resource struct {
	Attributes Attributes `json:"attributes,omitempty"`
}

// Scope is the instrumentation scope.
type Scope struct {
	Name    string `json:"name,omitempty"`
	Version string `json:"version,omitempty"`
}

// TracesRequest is an ExportTraceServiceRequest.
type TracesRequest struct {
	ResourceSpans []ResourceSpans `json:"resourceSpans"`
}

// ResourceSpans groups spans by resource.
type ResourceSpans struct {
	Resource   Resource     `json:"resource"`
	ScopeSpans []ScopeSpans `json:"scopeSpans"`
}

// ScopeSpans groups spans by instrumentation scope.
type ScopeSpans struct {
	Scope Scope  `json:"scope"`
	Spans []Span `json:"spans"`
}

// Span is one OTLP span.
type Span struct {
	TraceID           string      `json:"traceId"`
	SpanID            string      `json:"spanId"`
	TraceState        string      `json:"traceState,omitempty"`
	ParentSpanID      string      `json:"parentSpanId,omitempty"`
	Name              string      `json:"name"`
	Kind              int         `json:"kind,omitempty"`
	StartTimeUnixNano Uint64      `json:"startTimeUnixNano"`
	EndTimeUnixNano   Uint64      `json:"endTimeUnixNano"`
	Attributes        Attributes  `json:"attributes,omitempty"`
	Events            []SpanEvent `json:"events,omitempty"`
	Links             []SpanLink  `json:"links,omitempty"`
	Status            SpanStatus  `json:"status"`
}

// SpanEvent is a timed event on a span (e.g. an exception).
type SpanEvent struct {
	TimeUnixNano Uint64     `json:"timeUnixNano"`
	Name         string     `json:"name"`
	Attributes   Attributes `json:"attributes,omitempty"`
}

// SpanLink links a span to another.
type SpanLink struct {
	TraceID    string     `json:"traceId"`
	SpanID     string     `json:"spanId"`
	Attributes Attributes `json:"attributes,omitempty"`
}

// Span status codes.
const (
	StatusUnset = 0
	StatusOK    = 1
	StatusError = 2
)

// SpanStatus is a span's outcome.
type SpanStatus struct {
	Code    int    `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// LogsRequest is an ExportLogsServiceRequest.
type LogsRequest struct {
	ResourceLogs []ResourceLogs `json:"resourceLogs"`
}

// ResourceLogs groups log records by resource.
type ResourceLogs struct {
	Resource  Resource    `json:"resource"`
	ScopeLogs []ScopeLogs `json:"scopeLogs"`
}

// ScopeLogs groups log records by instrumentation scope.
type ScopeLogs struct {
	Scope      Scope       `json:"scope"`
	LogRecords []LogRecord `json:"logRecords"`
}

// LogRecord is one OTLP log record.
type LogRecord struct {
	TimeUnixNano         Uint64     `json:"timeUnixNano,omitempty"`
	ObservedTimeUnixNano Uint64     `json:"observedTimeUnixNano,omitempty"`
	SeverityNumber       int        `json:"severityNumber,omitempty"`
	SeverityText         string     `json:"severityText,omitempty"`
	Body                 AnyValue   `json:"body"`
	Attributes           Attributes `json:"attributes,omitempty"`
	TraceID              string     `json:"traceId,omitempty"`
	SpanID               string     `json:"spanId,omitempty"`
	Flags                int        `json:"flags,omitempty"`
}

// MetricsRequest is an ExportMetricsServiceRequest.
type MetricsRequest struct {
	ResourceMetrics []ResourceMetrics `json:"resourceMetrics"`
}

// ResourceMetrics groups metrics by resource.
type ResourceMetrics struct {
	Resource     Resource       `json:"resource"`
	ScopeMetrics []ScopeMetrics `json:"scopeMetrics"`
}

// ScopeMetrics groups metrics by instrumentation scope.
type ScopeMetrics struct {
	Scope   Scope    `json:"scope"`
	Metrics []Metric `json:"metrics"`
}

// Metric is one OTLP metric; exactly one of Sum, Gauge and Histogram is set.
type Metric struct {
	Name        string     `json:"name"`
	Description string     `json:"description,omitempty"`
	Unit        string     `json:"unit,omitempty"`
	Sum         *Sum       `json:"sum,omitempty"`
	Gauge       *Gauge     `json:"gauge,omitempty"`
	Histogram   *Histogram `json:"histogram,omitempty"`
}

// Aggregation temporalities.
const (
	TemporalityDelta      = 1
	TemporalityCumulative = 2
)

// Sum is a counter-like metric.
type Sum struct {
	DataPoints             []NumberDataPoint `json:"dataPoints"`
	AggregationTemporality int               `json:"aggregationTemporality,omitempty"`
	IsMonotonic            bool              `json:"isMonotonic,omitempty"`
}

// Gauge is a sampled value.
type Gauge struct {
	DataPoints []NumberDataPoint `json:"dataPoints"`
}

// NumberDataPoint is one point of a Sum or Gauge; one of AsInt and AsDouble is set.
type NumberDataPoint struct {
	Attributes        Attributes `json:"attributes,omitempty"`
	StartTimeUnixNano Uint64     `json:"startTimeUnixNano,omitempty"`
	TimeUnixNano      Uint64     `json:"timeUnixNano,omitempty"`
	AsInt             *Int64     `json:"asInt,omitempty"`
	AsDouble          *float64   `json:"asDouble,omitempty"`
}

// Value returns the point's value as a float64.
func (p NumberDataPoint) Value() float64 {
	if p.AsInt != nil {
		return float64(*p.AsInt)
	}
	if p.AsDouble != nil {
		return *p.AsDouble
	}
	return 0
}

// Histogram is a distribution metric.
type Histogram struct {
	DataPoints             []HistogramDataPoint `json:"dataPoints"`
	AggregationTemporality int                  `json:"aggregationTemporality,omitempty"`
}

// HistogramDataPoint is one point of a Histogram.
type HistogramDataPoint struct {
	Attributes        Attributes `json:"attributes,omitempty"`
	StartTimeUnixNano Uint64     `json:"startTimeUnixNano,omitempty"`
	TimeUnixNano      Uint64     `json:"timeUnixNano,omitempty"`
	Count             Uint64     `json:"count"`
	Sum               *float64   `json:"sum,omitempty"`
	BucketCounts      []Uint64   `json:"bucketCounts,omitempty"`
	ExplicitBounds    []float64  `json:"explicitBounds,omitempty"`
	Min               *float64   `json:"min,omitempty"`
	Max               *float64   `json:"max,omitempty"`
}
