package iii

import (
	"encoding/json"
	"time"
)

// The ids of the trigger types the engine's builtin workers provide. Use
// them as TriggerInput.Type, with the matching configuration type below as
// TriggerInput.Config.
const (
	// TriggerTypeHTTP is the engine trigger type "http" (HTTP routes); its
	// configuration is HTTPConfig.
	TriggerTypeHTTP = "http"
	// TriggerTypeCron is the engine trigger type "cron" (schedules); its
	// configuration is CronConfig and a fire delivers a CronEvent.
	TriggerTypeCron = "cron"
	// TriggerTypeQueue is the engine's durable queue trigger type,
	// "durable:subscriber"; its configuration is QueueConfig and a fire
	// delivers the published message's data unchanged.
	TriggerTypeQueue = "durable:subscriber"
	// TriggerTypeSubscribe is the engine trigger type "subscribe" (pub/sub
	// topics); its configuration is SubscribeConfig and a fire delivers the
	// published data unchanged.
	TriggerTypeSubscribe = "subscribe"
	// TriggerTypeState is the engine trigger type "state" (changes of state
	// values); its configuration is StateConfig and a fire delivers a
	// StateEvent.
	TriggerTypeState = "state"
	// TriggerTypeStream is the engine trigger type "stream" (changes of
	// stream items); its configuration is StreamConfig and a fire delivers
	// a StreamEvent.
	TriggerTypeStream = "stream"
	// TriggerTypeStreamJoin is the engine trigger type "stream:join" (a
	// client subscribes to a stream); its configuration is
	// StreamJoinLeaveConfig and a fire delivers a StreamJoinLeaveEvent.
	TriggerTypeStreamJoin = "stream:join"
	// TriggerTypeStreamLeave is the engine trigger type "stream:leave" (a
	// client's subscription ends); its configuration is
	// StreamJoinLeaveConfig and a fire delivers a StreamJoinLeaveEvent.
	TriggerTypeStreamLeave = "stream:leave"
	// TriggerTypeLog is the engine trigger type "log" (log records the
	// engine's observability worker receives); its configuration is
	// LogConfig and a fire delivers a LogRecord.
	TriggerTypeLog = "log"
)

// HTTPConfig is the configuration of an engine "http" trigger
// (TriggerTypeHTTP): the bound function serves requests to Method Path on
// the engine's HTTP port.
type HTTPConfig struct {
	// APIPath is the route, with path parameters as ":name"
	// (e.g. "/orders/:id"). Required.
	APIPath string `json:"api_path"`
	// Method is the HTTP method; the engine uses GET when it is empty and
	// matches it case-insensitively.
	Method string `json:"http_method,omitempty"`
	// ConditionFunctionID, if set, is a function the engine calls with
	// the request first; the handler is skipped when it returns false.
	ConditionFunctionID string `json:"condition_function_id,omitempty"`
	// MiddlewareFunctionIDs are functions the engine runs before the
	// handler, in order.
	MiddlewareFunctionIDs []string `json:"middleware_function_ids,omitempty"`
}

// CronConfig is the configuration of an engine "cron" trigger
// (TriggerTypeCron). Each fire delivers a CronEvent.
type CronConfig struct {
	// Expression is the schedule, in the engine's cron format, in UTC:
	// six fields with seconds first, "sec min hour day-of-month month
	// day-of-week" (e.g. "0 */5 * * * *"), and an optional seventh, the
	// year; or @yearly, @monthly, @weekly, @daily, @hourly. Days of the
	// week run from 1 (Sunday) to 7, or SUN-SAT; a time must match both
	// the day of the month and the day of the week. The engine refuses an
	// empty or invalid expression (the five-field Unix form included) with
	// a trigger_registration_failed TriggerError. A run that is still going
	// when the next time comes delays it: runs of one trigger never
	// overlap, and the times missed meanwhile are skipped.
	Expression string `json:"expression"`
	// ConditionFunctionID, if set, is a function the engine calls with the
	// CronEvent first; the bound function is skipped when it returns false.
	ConditionFunctionID string `json:"condition_function_id,omitempty"`
}

// CronEvent is what an engine "cron" trigger (TriggerTypeCron) delivers to
// its function at each scheduled time.
type CronEvent struct {
	// Trigger is always "cron".
	Trigger string `json:"trigger"`
	// JobID is the id of the trigger binding that fired.
	JobID string `json:"job_id"`
	// ScheduledTime is the time the schedule named.
	ScheduledTime time.Time `json:"scheduled_time"`
	// ActualTime is the time the engine fired.
	ActualTime time.Time `json:"actual_time"`
}

// QueueConfig is the configuration of an engine durable queue trigger
// (TriggerTypeQueue, "durable:subscriber"): the function consumes the
// messages published to Topic (through the engine function
// "iii::durable::publish"). Each delivery passes the published data to the
// function as it was published, with no envelope; a delivery whose function
// fails is retried.
type QueueConfig struct {
	// Topic is the topic to consume. The engine ignores a binding with an
	// empty topic.
	Topic string `json:"topic"`
	// ConditionFunctionID, if set, is a function the engine calls with the
	// message first; the bound function is skipped when it returns false.
	ConditionFunctionID string `json:"condition_function_id,omitempty"`
	// Queue tunes this subscriber's queue; nil uses the engine's defaults.
	Queue *QueueSubscriberConfig `json:"queue_config,omitempty"`
}

// QueueSubscriberConfig is the per-subscriber queue tuning of an engine
// "durable:subscriber" trigger (QueueConfig.Queue). Each field left at its
// zero value (nil for MaxRetries) is not sent, and the engine uses its
// default for it.
type QueueSubscriberConfig struct {
	// Type is the delivery mode: "standard" (concurrent, unordered) or
	// "fifo" (one at a time, in order).
	Type string `json:"type,omitempty"`
	// MaxRetries is how many times a failed delivery is retried; a pointer
	// so that zero (no retries) can be sent.
	MaxRetries *int `json:"maxRetries,omitempty"`
	// Concurrency is how many messages are delivered at once.
	Concurrency int `json:"concurrency,omitempty"`
	// VisibilityTimeout is how long a delivered message stays invisible to
	// other consumers, in the unit the engine's queue adapter uses.
	VisibilityTimeout int `json:"visibilityTimeout,omitempty"`
	// DelaySeconds delays each delivery by this many seconds.
	DelaySeconds int `json:"delaySeconds,omitempty"`
	// BackoffType is the retry backoff strategy.
	BackoffType string `json:"backoffType,omitempty"`
	// BackoffDelayMs is the base retry delay in milliseconds.
	BackoffDelayMs int `json:"backoffDelayMs,omitempty"`
	// MaxPriority makes the queue a priority queue of that many levels
	// (1 to 255); only the RabbitMQ adapter honours it.
	MaxPriority int `json:"maxPriority,omitempty"`
}

// SubscribeConfig is the configuration of an engine "subscribe" trigger
// (TriggerTypeSubscribe): the function receives every event published to
// Topic, as published, with no envelope.
type SubscribeConfig struct {
	// Topic is the topic to subscribe to. The engine ignores a binding
	// with an empty topic.
	Topic string `json:"topic"`
	// ConditionFunctionID is part of the engine's declared format for this
	// type, but the engine's pub/sub worker (v0.22.1) does not apply it.
	ConditionFunctionID string `json:"condition_function_id,omitempty"`
}

// StateConfig is the configuration of an engine "state" trigger
// (TriggerTypeState): the function receives a StateEvent for each change of
// a state value that matches. Empty filters match everything.
type StateConfig struct {
	// Scope, if set, matches only changes in this scope (exactly).
	Scope string `json:"scope,omitempty"`
	// Key, if set, matches only changes of this key (exactly).
	Key string `json:"key,omitempty"`
	// ConditionFunctionID, if set, is a function the engine calls with the
	// StateEvent first; the bound function is skipped when it returns false.
	ConditionFunctionID string `json:"condition_function_id,omitempty"`
}

// StateEventType is the kind of change a StateEvent reports (engine trigger
// type "state").
type StateEventType string

// The kinds of change of an engine "state" trigger's StateEvent.
const (
	// StateCreated: the key had no value before ("state:created").
	StateCreated StateEventType = "state:created"
	// StateUpdated: the key's value was replaced or updated ("state:updated").
	StateUpdated StateEventType = "state:updated"
	// StateDeleted: the key was deleted ("state:deleted").
	StateDeleted StateEventType = "state:deleted"
)

// StateEvent is what an engine "state" trigger (TriggerTypeState) delivers
// to its function when a state value changes.
type StateEvent struct {
	// Type is always "state".
	Type string `json:"type"`
	// EventType is the kind of change.
	EventType StateEventType `json:"event_type"`
	// Scope is the changed value's scope.
	Scope string `json:"scope"`
	// Key is the changed value's key.
	Key string `json:"key"`
	// OldValue is the value before the change; the JSON null for
	// StateCreated.
	OldValue json.RawMessage `json:"old_value"`
	// NewValue is the value after the change; the JSON null for
	// StateDeleted.
	NewValue json.RawMessage `json:"new_value"`
}

// StreamConfig is the configuration of an engine "stream" trigger
// (TriggerTypeStream): the function is called for changes of the items of
// stream StreamName that match.
type StreamConfig struct {
	// StreamName is the stream to watch. Required: always sent, as the
	// engine's stream worker (v0.22.1) cannot register a binding without
	// it.
	StreamName string `json:"stream_name"`
	// GroupID, if set, matches only changes in this group.
	GroupID string `json:"group_id,omitempty"`
	// ItemID, if set, matches only changes of this item.
	ItemID string `json:"item_id,omitempty"`
	// ConditionFunctionID, if set, is a function the engine calls with the
	// event first; the bound function is skipped when it returns false.
	ConditionFunctionID string `json:"condition_function_id,omitempty"`
}

// StreamJoinLeaveConfig is the configuration of an engine "stream:join" or
// "stream:leave" trigger (TriggerTypeStreamJoin, TriggerTypeStreamLeave).
// Its fields are the engine's declared format for these types; the engine's
// stream worker (v0.22.1) applies neither and calls the function for every
// join (or leave) of every stream, so StreamJoinLeaveConfig{} is the usual
// value.
type StreamJoinLeaveConfig struct {
	// StreamName names the stream to watch (not applied by v0.22.1).
	StreamName string `json:"stream_name,omitempty"`
	// ConditionFunctionID names a condition function (not applied by
	// v0.22.1).
	ConditionFunctionID string `json:"condition_function_id,omitempty"`
}

// StreamEvent is what an engine "stream" trigger (TriggerTypeStream)
// delivers to its function when an item of the watched stream changes, or
// when an event is sent to the stream.
type StreamEvent struct {
	// Type is always "stream".
	Type string `json:"type"`
	// Timestamp is when the change happened, in milliseconds since the
	// Unix epoch.
	Timestamp int64 `json:"timestamp"`
	// StreamName is the stream.
	StreamName string `json:"streamName"`
	// GroupID is the group of the changed item.
	GroupID string `json:"groupId"`
	// ID is the changed item's id; empty for an event sent to a whole
	// group.
	ID string `json:"id"`
	// Change is what happened.
	Change StreamChange `json:"event"`
}

// StreamChange is the change a StreamEvent reports (engine trigger type
// "stream").
type StreamChange struct {
	// Type is "create", "update" or "delete" for a change of the item
	// (with Data), or "event" for an event sent to the stream (with Event).
	Type string `json:"type"`
	// Data is the item's new value (its old one for "delete").
	Data json.RawMessage `json:"data,omitempty"`
	// Event is the event sent, for Type "event".
	Event *StreamMessage `json:"event,omitempty"`
}

// StreamMessage is an event sent to a stream, as a StreamChange of Type
// "event" carries it (engine trigger type "stream").
type StreamMessage struct {
	// Type is the sender's event type.
	Type string `json:"type"`
	// Data is the sender's data.
	Data json.RawMessage `json:"data"`
}

// StreamJoinLeaveEvent is what an engine "stream:join" or "stream:leave"
// trigger (TriggerTypeStreamJoin, TriggerTypeStreamLeave) delivers to its
// function when a client subscribes to a stream or its subscription ends.
// A join function may answer with a StreamJoinResult to refuse the client.
type StreamJoinLeaveEvent struct {
	// SubscriptionID is the client's subscription id.
	SubscriptionID string `json:"subscription_id"`
	// StreamName is the stream.
	StreamName string `json:"stream_name"`
	// GroupID is the group subscribed to.
	GroupID string `json:"group_id"`
	// ID is the item subscribed to; empty for a whole group.
	ID string `json:"id"`
	// Context is what the stream's authentication function returned for
	// the client's connection; the JSON null when there is none.
	Context json.RawMessage `json:"context"`
}

// StreamJoinResult is what a function bound to an engine "stream:join"
// trigger (TriggerTypeStreamJoin) may return: Unauthorized true refuses the
// client's subscription.
type StreamJoinResult struct {
	// Unauthorized refuses the subscription when true.
	Unauthorized bool `json:"unauthorized"`
}

// LogLevel is the level filter of an engine "log" trigger (LogConfig.Level).
type LogLevel string

// The levels of an engine "log" trigger. A level other than LogLevelAll
// matches only records of exactly that level, not the levels above it.
const (
	// LogLevelAll matches every record ("all", the engine's default).
	LogLevelAll LogLevel = "all"
	// LogLevelDebug matches debug records only ("debug").
	LogLevelDebug LogLevel = "debug"
	// LogLevelInfo matches info records only ("info").
	LogLevelInfo LogLevel = "info"
	// LogLevelWarn matches warn records only ("warn").
	LogLevelWarn LogLevel = "warn"
	// LogLevelError matches error records only ("error").
	LogLevelError LogLevel = "error"
)

// LogConfig is the configuration of an engine "log" trigger (TriggerTypeLog):
// the function receives a LogRecord for each log record that matches Level.
type LogConfig struct {
	// Level filters the records; empty means LogLevelAll.
	Level LogLevel `json:"level,omitempty"`
}

// LogRecord is what an engine "log" trigger (TriggerTypeLog) delivers to its
// function: one log record, in OpenTelemetry's shape. Fields the record
// does not have arrive as JSON null and decode as zero values.
type LogRecord struct {
	// TimestampUnixNano is when the record was made, in nanoseconds since
	// the Unix epoch.
	TimestampUnixNano uint64 `json:"timestamp_unix_nano"`
	// ObservedTimestampUnixNano is when the engine observed the record.
	ObservedTimestampUnixNano uint64 `json:"observed_timestamp_unix_nano"`
	// SeverityNumber is the OpenTelemetry severity (5 debug, 9 info,
	// 13 warn, 17 error).
	SeverityNumber int `json:"severity_number"`
	// SeverityText is the level's name (e.g. "INFO").
	SeverityText string `json:"severity_text"`
	// Body is the message.
	Body string `json:"body"`
	// Attributes are the record's attributes.
	Attributes map[string]json.RawMessage `json:"attributes"`
	// TraceID is the trace the record belongs to, if any.
	TraceID string `json:"trace_id"`
	// SpanID is the span the record belongs to, if any.
	SpanID string `json:"span_id"`
	// Resource is the OpenTelemetry resource of the record's source.
	Resource map[string]string `json:"resource"`
	// ServiceName is the name of the service that logged.
	ServiceName string `json:"service_name"`
	// InstrumentationScopeName is the instrumentation scope's name, if any.
	InstrumentationScopeName string `json:"instrumentation_scope_name"`
	// InstrumentationScopeVersion is the instrumentation scope's version,
	// if any.
	InstrumentationScopeVersion string `json:"instrumentation_scope_version"`
}
