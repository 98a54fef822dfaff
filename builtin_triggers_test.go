package iii_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/iii-go/iii"
)

// The trigger type ids are the ones the engine's builtin workers register.
func TestBuiltinTriggerTypeIDs(t *testing.T) {
	got := []string{iii.TriggerTypeHTTP, iii.TriggerTypeCron, iii.TriggerTypeQueue, iii.TriggerTypeSubscribe,
		iii.TriggerTypeState, iii.TriggerTypeStream, iii.TriggerTypeStreamJoin, iii.TriggerTypeStreamLeave, iii.TriggerTypeLog}
	want := []string{"http", "cron", "durable:subscriber", "subscribe", "state", "stream", "stream:join", "stream:leave", "log"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ids = %q, want %q", got, want)
	}
}

// Each configuration marshals to exactly the JSON the engine's worker reads:
// its field names, required fields always present, optional ones omitted
// when unset.
func TestBuiltinTriggerConfigJSON(t *testing.T) {
	zero := 0
	three := 3
	cases := []struct {
		name string
		cfg  any
		want string
	}{
		{"http/minimal", iii.HTTPConfig{APIPath: "/orders/:id"}, `{"api_path":"/orders/:id"}`},
		{"http/full", iii.HTTPConfig{APIPath: "/orders", Method: "POST", ConditionFunctionID: "orders::allowed",
			MiddlewareFunctionIDs: []string{"auth::check", "audit::log"}},
			`{"api_path":"/orders","http_method":"POST","condition_function_id":"orders::allowed","middleware_function_ids":["auth::check","audit::log"]}`},
		{"http/empty-middleware", iii.HTTPConfig{APIPath: "/", MiddlewareFunctionIDs: []string{}}, `{"api_path":"/"}`},
		{"cron/minimal", iii.CronConfig{Expression: "0 */5 * * * *"}, `{"expression":"0 */5 * * * *"}`},
		{"cron/full", iii.CronConfig{Expression: "* * * * * *", ConditionFunctionID: "jobs::due"},
			`{"expression":"* * * * * *","condition_function_id":"jobs::due"}`},
		{"cron/zero", iii.CronConfig{}, `{"expression":""}`},
		{"queue/minimal", iii.QueueConfig{Topic: "orders"}, `{"topic":"orders"}`},
		{"queue/empty-tuning", iii.QueueConfig{Topic: "orders", Queue: &iii.QueueSubscriberConfig{}},
			`{"topic":"orders","queue_config":{}}`},
		{"queue/full", iii.QueueConfig{Topic: "orders", ConditionFunctionID: "orders::ok", Queue: &iii.QueueSubscriberConfig{
			Type: "fifo", MaxRetries: &three, Concurrency: 4, VisibilityTimeout: 30, DelaySeconds: 2,
			BackoffType: "exponential", BackoffDelayMs: 500, MaxPriority: 10}},
			`{"topic":"orders","condition_function_id":"orders::ok","queue_config":{"type":"fifo","maxRetries":3,"concurrency":4,"visibilityTimeout":30,"delaySeconds":2,"backoffType":"exponential","backoffDelayMs":500,"maxPriority":10}}`},
		{"queue/no-retries", iii.QueueConfig{Topic: "t", Queue: &iii.QueueSubscriberConfig{MaxRetries: &zero}},
			`{"topic":"t","queue_config":{"maxRetries":0}}`},
		{"subscribe/minimal", iii.SubscribeConfig{Topic: "user.created"}, `{"topic":"user.created"}`},
		{"subscribe/full", iii.SubscribeConfig{Topic: "a", ConditionFunctionID: "c"}, `{"topic":"a","condition_function_id":"c"}`},
		{"state/zero", iii.StateConfig{}, `{}`},
		{"state/full", iii.StateConfig{Scope: "users", Key: "u1", ConditionFunctionID: "users::changed"},
			`{"scope":"users","key":"u1","condition_function_id":"users::changed"}`},
		{"stream/minimal", iii.StreamConfig{StreamName: "chat"}, `{"stream_name":"chat"}`},
		{"stream/zero", iii.StreamConfig{}, `{"stream_name":""}`},
		{"stream/full", iii.StreamConfig{StreamName: "chat", GroupID: "room-1", ItemID: "m1", ConditionFunctionID: "chat::visible"},
			`{"stream_name":"chat","group_id":"room-1","item_id":"m1","condition_function_id":"chat::visible"}`},
		{"stream-join-leave/zero", iii.StreamJoinLeaveConfig{}, `{}`},
		{"stream-join-leave/full", iii.StreamJoinLeaveConfig{StreamName: "chat", ConditionFunctionID: "chat::may-join"},
			`{"stream_name":"chat","condition_function_id":"chat::may-join"}`},
		{"log/zero", iii.LogConfig{}, `{}`},
		{"log/error", iii.LogConfig{Level: iii.LogLevelError}, `{"level":"error"}`},
		{"log/all", iii.LogConfig{Level: iii.LogLevelAll}, `{"level":"all"}`},
	}
	for _, c := range cases {
		got, err := json.Marshal(c.cfg)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if string(got) != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
}

// A cron fire's payload, as the engine's cron worker builds it (RFC 3339
// times with an explicit +00:00 offset and fractional seconds).
func TestCronEventDecodesEnginePayload(t *testing.T) {
	raw := `{"trigger":"cron","job_id":"5f0c6c1e-2b7a-4c64-9d0e-3f1f4f0d9a11","scheduled_time":"2026-12-03T10:30:00+00:00","actual_time":"2026-12-03T10:30:00.001234567+00:00"}`
	var e iii.CronEvent
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		t.Fatal(err)
	}
	want := iii.CronEvent{Trigger: "cron", JobID: "5f0c6c1e-2b7a-4c64-9d0e-3f1f4f0d9a11",
		ScheduledTime: time.Date(2026, 12, 3, 10, 30, 0, 0, time.UTC),
		ActualTime:    time.Date(2026, 12, 3, 10, 30, 0, 1234567, time.UTC)}
	if e.Trigger != want.Trigger || e.JobID != want.JobID || !e.ScheduledTime.Equal(want.ScheduledTime) || !e.ActualTime.Equal(want.ActualTime) {
		t.Fatalf("got %+v, want %+v", e, want)
	}
}

// State events as the engine's state worker builds them: a created value
// (old_value null), an update, and a deletion (new_value null).
func TestStateEventDecodesEnginePayload(t *testing.T) {
	cases := []struct {
		raw  string
		want iii.StateEvent
	}{
		{`{"type":"state","event_type":"state:created","scope":"users","key":"u1","old_value":null,"new_value":{"name":"Ada"}}`,
			iii.StateEvent{Type: "state", EventType: iii.StateCreated, Scope: "users", Key: "u1",
				OldValue: json.RawMessage(`null`), NewValue: json.RawMessage(`{"name":"Ada"}`)}},
		{`{"type":"state","event_type":"state:updated","scope":"counters","key":"hits","old_value":1,"new_value":2}`,
			iii.StateEvent{Type: "state", EventType: iii.StateUpdated, Scope: "counters", Key: "hits",
				OldValue: json.RawMessage(`1`), NewValue: json.RawMessage(`2`)}},
		{`{"type":"state","event_type":"state:deleted","scope":"users","key":"u1","old_value":{"name":"Ada"},"new_value":null}`,
			iii.StateEvent{Type: "state", EventType: iii.StateDeleted, Scope: "users", Key: "u1",
				OldValue: json.RawMessage(`{"name":"Ada"}`), NewValue: json.RawMessage(`null`)}},
	}
	for _, c := range cases {
		var e iii.StateEvent
		if err := json.Unmarshal([]byte(c.raw), &e); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(e, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.raw, e, c.want)
		}
	}
}

// A log record as the engine's observability worker delivers it, once with
// every field and once with the optional ones null.
func TestLogRecordDecodesEnginePayload(t *testing.T) {
	full := `{"timestamp_unix_nano":1764757800000000001,"observed_timestamp_unix_nano":1764757800000000002,` +
		`"severity_number":17,"severity_text":"ERROR","body":"payment failed","attributes":{"order":"o-1","attempt":2},` +
		`"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","resource":{"service.name":"billing"},` +
		`"service_name":"billing","instrumentation_scope_name":"iii-go","instrumentation_scope_version":"0.1.0"}`
	var r iii.LogRecord
	if err := json.Unmarshal([]byte(full), &r); err != nil {
		t.Fatal(err)
	}
	want := iii.LogRecord{TimestampUnixNano: 1764757800000000001, ObservedTimestampUnixNano: 1764757800000000002,
		SeverityNumber: 17, SeverityText: "ERROR", Body: "payment failed",
		Attributes: map[string]json.RawMessage{"order": json.RawMessage(`"o-1"`), "attempt": json.RawMessage(`2`)},
		TraceID:    "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7",
		Resource: map[string]string{"service.name": "billing"}, ServiceName: "billing",
		InstrumentationScopeName: "iii-go", InstrumentationScopeVersion: "0.1.0"}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("got %+v\nwant %+v", r, want)
	}

	sparse := `{"timestamp_unix_nano":5,"observed_timestamp_unix_nano":5,"severity_number":9,"severity_text":"INFO",` +
		`"body":"started","attributes":{},"trace_id":null,"span_id":null,"resource":{},"service_name":"iii",` +
		`"instrumentation_scope_name":null,"instrumentation_scope_version":null}`
	var s iii.LogRecord
	if err := json.Unmarshal([]byte(sparse), &s); err != nil {
		t.Fatal(err)
	}
	if s.TraceID != "" || s.SpanID != "" || s.InstrumentationScopeName != "" || s.SeverityNumber != 9 || s.Body != "started" {
		t.Fatalf("sparse record decoded as %+v", s)
	}
}

// Stream events as the engine's stream worker builds them: an item set
// (create), a deletion, and an event sent to a group (no item id).
func TestStreamEventDecodesEnginePayload(t *testing.T) {
	cases := []struct {
		raw  string
		want iii.StreamEvent
	}{
		{`{"type":"stream","timestamp":1764757800123,"streamName":"chat","groupId":"room-1","id":"m1","event":{"type":"create","data":{"text":"hi"}}}`,
			iii.StreamEvent{Type: "stream", Timestamp: 1764757800123, StreamName: "chat", GroupID: "room-1", ID: "m1",
				Change: iii.StreamChange{Type: "create", Data: json.RawMessage(`{"text":"hi"}`)}}},
		{`{"type":"stream","timestamp":2,"streamName":"chat","groupId":"room-1","id":"m1","event":{"type":"delete","data":{"text":"hi"}}}`,
			iii.StreamEvent{Type: "stream", Timestamp: 2, StreamName: "chat", GroupID: "room-1", ID: "m1",
				Change: iii.StreamChange{Type: "delete", Data: json.RawMessage(`{"text":"hi"}`)}}},
		{`{"type":"stream","timestamp":3,"streamName":"chat","groupId":"room-1","id":null,"event":{"type":"event","event":{"type":"typing","data":{"user":"ada"}}}}`,
			iii.StreamEvent{Type: "stream", Timestamp: 3, StreamName: "chat", GroupID: "room-1",
				Change: iii.StreamChange{Type: "event", Event: &iii.StreamMessage{Type: "typing", Data: json.RawMessage(`{"user":"ada"}`)}}}},
	}
	for _, c := range cases {
		var e iii.StreamEvent
		if err := json.Unmarshal([]byte(c.raw), &e); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(e, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.raw, e, c.want)
		}
	}
}

// A join event as the engine's stream worker builds it, and the answer a
// join function gives to refuse the client.
func TestStreamJoinLeaveEventDecodesEnginePayload(t *testing.T) {
	raw := `{"subscription_id":"sub-1","stream_name":"chat","group_id":"room-1","id":null,"context":{"user":"ada"}}`
	var e iii.StreamJoinLeaveEvent
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		t.Fatal(err)
	}
	want := iii.StreamJoinLeaveEvent{SubscriptionID: "sub-1", StreamName: "chat", GroupID: "room-1",
		Context: json.RawMessage(`{"user":"ada"}`)}
	if !reflect.DeepEqual(e, want) {
		t.Fatalf("got %+v\nwant %+v", e, want)
	}
	if b, _ := json.Marshal(iii.StreamJoinResult{Unauthorized: true}); string(b) != `{"unauthorized":true}` {
		t.Fatalf("join result = %s", b)
	}
}
