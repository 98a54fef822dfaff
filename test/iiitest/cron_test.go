package iiitest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/iii-go/iii/connection/wire"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCronNextTimes(t *testing.T) {
	cases := []struct{ expr, after, want string }{
		{"* * * * * *", "2026-12-03T10:00:00Z", "2026-12-03T10:00:01Z"},
		{"0 */5 * * * *", "2026-12-03T10:00:00Z", "2026-12-03T10:05:00Z"},
		{"0 */5 * * * *", "2026-12-03T10:04:59.5Z", "2026-12-03T10:05:00Z"},
		{"0 0 12 * * *", "2026-12-03T12:00:00Z", "2026-12-04T12:00:00Z"},
		// Day of week 1 is Sunday; 2026-12-06 is a Sunday.
		{"0 0 0 * * 1", "2026-12-03T10:00:00Z", "2026-12-06T00:00:00Z"},
		{"0 0 0 * * Mon", "2026-12-03T10:00:00Z", "2026-12-07T00:00:00Z"},
		{"@weekly", "2026-12-03T10:00:00Z", "2026-12-06T00:00:00Z"},
		// Day of month AND day of week: the next Friday the 13th.
		{"0 0 0 13 * FRI", "2026-12-03T10:00:00Z", "2027-08-13T00:00:00Z"},
		{"0 0 0 29 FEB ?", "2026-12-03T10:00:00Z", "2028-02-29T00:00:00Z"},
		{"0 0 0 31 * *", "2026-11-01T00:00:00Z", "2026-12-31T00:00:00Z"},
		{"10/20 * * * * *", "2026-12-03T10:00:00Z", "2026-12-03T10:00:10Z"},
		{"10/20 * * * * *", "2026-12-03T10:00:50Z", "2026-12-03T10:01:10Z"},
		{"0 0 0 1 1 * 2030", "2026-12-03T10:00:00Z", "2030-01-01T00:00:00Z"},
		{"@yearly", "2026-12-03T10:00:00Z", "2027-01-01T00:00:00Z"},
		{"@hourly", "2026-12-03T10:00:00Z", "2026-12-03T11:00:00Z"},
		{"0 0 0 ** *", "2026-12-03T10:00:00Z", "2026-12-04T00:00:00Z"}, // no space needed after '*'
		{"0 0 9-17/4 * * Mon-Fri", "2026-12-03T10:00:00Z", "2026-12-03T13:00:00Z"},
		{"0 0 0 ? * ?/2 ", "2026-12-03T10:00:00Z", "2026-12-05T00:00:00Z"},
		{"0 0 0 1 1 * 1999", "2026-12-03T10:00:00Z", ""},
	}
	for _, c := range cases {
		sc, err := parseCron(c.expr)
		if err != nil {
			t.Errorf("%q: %v", c.expr, err)
			continue
		}
		got, ok := sc.next(mustTime(t, c.after))
		if c.want == "" {
			if ok {
				t.Errorf("%q after %s = %s, want none", c.expr, c.after, got)
			}
			continue
		}
		if !ok || !got.Equal(mustTime(t, c.want)) {
			t.Errorf("%q after %s = %s %v, want %s", c.expr, c.after, got, ok, c.want)
		}
	}
}

// The messages are those engine v0.22.1 answered for these expressions.
func TestCronParseErrorsMatchTheEngine(t *testing.T) {
	cases := []struct{ expr, want string }{
		{"not a cron", "not a cron\n^\nThe 'Seconds' field does not support using names. 'not' specified."},
		{"0 * * * *", "0 * * * *\n         ^\n"},
		{"60 * * * * *", "60 * * * * *\n^\nSeconds must be less than 59. ('60' specified.)"},
		{"*/0 * * * * *", "*/0 * * * * *\n^\nrange step cannot be zero"},
		{"0 0 0 * * Mon/2", "0 0 0 * * Mon/2\n             ^\n"},
		{"@daily x", "@daily x\n       ^\n"},
		{"0 0 0 1 1 1 1969", "0 0 0 1 1 1 1969\n            ^\n"},
		{"a * * * * *", "a * * * * *\n^\nThe 'Seconds' field does not support using names. 'a' specified."},
		{"5-3 * * * * *", "5-3 * * * * *\n^\nInvalid range for Seconds: 5-3"},
		{"0 0 25 * * *", "0 0 25 * * *\n    ^\nHours must be less than 23. ('25' specified.)"},
		{"0 0 0 * * */8", "0 0 0 * * */8\n          ^\nDays of Week must be between 1 and 7. ('8' specified.)"},
		{"0 0 0 1 1 1 2026 x", "0 0 0 1 1 1 2026 x\n                 ^\n"},
		{"0 0\n 25 * * *", "parse error at line 2, column 2\n  |\n2 |  25 * * *\n  |  ^\nHours must be less than 23. ('25' specified.)"},
		{"1, * * * * *", "1, * * * * *\n ^\n"},
		{"0 0 0 1 * Mon-Sun", "0 0 0 1 * Mon-Sun\n          ^\nInvalid named range for Days of Week: Mon-Sun"},
	}
	for _, c := range cases {
		_, err := parseCron(c.expr)
		if err == nil || err.Error() != c.want {
			t.Errorf("%q: error %q, want %q", c.expr, err, c.want)
		}
	}
}

func TestCronEventFormat(t *testing.T) {
	at := mustTime(t, "2026-12-03T10:05:00Z")
	got := string(cronEventJSON("j1", at, at.Add(1234567*time.Nanosecond)))
	want := `{"actual_time":"2026-12-03T10:05:00.001234567+00:00","job_id":"j1","scheduled_time":"2026-12-03T10:05:00+00:00","trigger":"cron"}`
	if got != want {
		t.Fatalf("event = %s\nwant    %s", got, want)
	}
	for ns, want := range map[int]string{5_000_000: ".005", 5_000: ".000005", 0: ""} {
		if got := string(appendRFC3339(nil, at.Add(time.Duration(ns)))); got != "2026-12-03T10:05:00"+want+"+00:00" {
			t.Errorf("%d ns: %s", ns, got)
		}
	}
}

func TestCronFiresOnTheFakeClockWithMetadataAndNoOverlap(t *testing.T) {
	clock := NewFakeClock(mustTime(t, "2026-12-03T10:00:00Z"))
	e := NewEngine(t, WithClock(clock))
	c := dial(t, e)
	c.register("jobs::tick")
	c.send(&wire.RegisterTrigger{ID: "t1", TriggerType: "cron", FunctionID: "jobs::tick",
		Config: json.RawMessage(`{"expression":"* * * * * *"}`), Metadata: json.RawMessage(`{"m":1}`)})
	if err := clock.WaitTimers(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(3 * time.Second)
	inv := expectMsg[*wire.InvokeFunction](t, c)
	if want := `{"actual_time":"2026-12-03T10:00:01+00:00","job_id":"t1","scheduled_time":"2026-12-03T10:00:01+00:00","trigger":"cron"}`; string(inv.Data) != want || string(inv.Metadata) != `{"m":1}` || !inv.HasInvocationID {
		t.Fatalf("fire = %s", wire.Encode(inv))
	}
	// The run has not ended: no second fire, however far the clock goes.
	clock.Advance(time.Minute)
	c.expectQuiet()
	if n := clock.Timers(); n != 0 {
		t.Fatalf("%d timers armed during a run", n)
	}
	c.send(&wire.InvocationResult{InvocationID: inv.InvocationID, FunctionID: "jobs::tick", Result: json.RawMessage(`null`)})
	if err := clock.WaitTimers(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	// Armed from the end of the run: the next second after 10:01:03.
	if at, _ := clock.NextTimer(); !at.Equal(mustTime(t, "2026-12-03T10:01:04Z")) {
		t.Fatalf("next = %s", at)
	}
	clock.Advance(time.Second)
	inv = expectMsg[*wire.InvokeFunction](t, c)
	var ev struct {
		Scheduled string `json:"scheduled_time"`
	}
	_ = json.Unmarshal(inv.Data, &ev)
	if ev.Scheduled != "2026-12-03T10:01:04+00:00" {
		t.Fatalf("second fire = %s", inv.Data)
	}
	// Unregistering stops the job.
	c.send(&wire.InvocationResult{InvocationID: inv.InvocationID, FunctionID: "jobs::tick", Result: json.RawMessage(`null`)})
	if err := clock.WaitTimers(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	c.send(&wire.UnregisterTrigger{ID: "t1", TriggerType: "cron"})
	c.sync()
	if n := clock.Timers(); n != 0 {
		t.Fatalf("%d timers after unregister", n)
	}
	clock.Advance(time.Hour)
	c.expectQuiet()
}

func TestCronRefusesInvalidBindingsAsTheEngine(t *testing.T) {
	clock := NewFakeClock(mustTime(t, "2026-12-03T10:00:00Z"))
	e := NewEngine(t, WithClock(clock))
	c := dial(t, e)
	c.register("jobs::tick")
	for _, tc := range []struct{ id, cfg, msg string }{
		{"b1", `{"expression":"0 * * * *"}`, "Invalid cron expression '0 * * * *': 0 * * * *\n         ^\n"},
		{"b2", `{"expression":""}`, "Cron expression is required"},
		{"b3", `{"expression":5}`, "Cron expression is required"},
		{"b4", `{}`, "Cron expression is required"},
	} {
		c.send(&wire.RegisterTrigger{ID: tc.id, TriggerType: "cron", FunctionID: "jobs::tick", Config: json.RawMessage(tc.cfg)})
		r := expectMsg[*wire.TriggerRegistrationResult](t, c)
		if r.ID != tc.id || r.TriggerType != "cron" || r.FunctionID != "jobs::tick" || r.Error == nil ||
			r.Error.Code != "trigger_registration_failed" || r.Error.Message != tc.msg {
			t.Fatalf("%s: %s", tc.id, wire.Encode(r))
		}
	}
	// A second binding with a live binding's id is refused; the first stays.
	c.send(&wire.RegisterTrigger{ID: "ok", TriggerType: "cron", FunctionID: "jobs::tick", Config: json.RawMessage(`{"expression":"*/2 * * * * *"}`)})
	c.send(&wire.RegisterTrigger{ID: "ok", TriggerType: "cron", FunctionID: "jobs::tick", Config: json.RawMessage(`{"expression":"* * * * * *"}`)})
	r := expectMsg[*wire.TriggerRegistrationResult](t, c)
	if r.Error == nil || r.Error.Message != "Cron job 'ok' is already registered" {
		t.Fatalf("duplicate: %s", wire.Encode(r))
	}
	if err := clock.WaitTimers(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	if at, _ := clock.NextTimer(); !at.Equal(mustTime(t, "2026-12-03T10:00:02Z")) {
		t.Fatalf("next = %s (the first binding's schedule should stay)", at)
	}
	// engine::register_trigger fails with the same error.
	errb := c.builtin("engine::register_trigger", `{"trigger_type":"cron","function_id":"jobs::tick","config":{"expression":"60 * * * * *"}}`, nil)
	if errb == nil || errb.Code != "trigger_registration_failed" ||
		errb.Message != "Invalid cron expression '60 * * * * *': 60 * * * * *\n^\nSeconds must be less than 59. ('60' specified.)" {
		t.Fatalf("register_trigger: %+v", errb)
	}
}

func TestCronConditionFunctionAndOwnerlessBinding(t *testing.T) {
	clock := NewFakeClock(mustTime(t, "2026-12-03T10:00:00Z"))
	e := NewEngine(t, WithClock(clock))
	c := dial(t, e)
	c.register("jobs::tick")
	c.register("jobs::when")
	waitFn(t, e, "jobs::when")
	var reg struct{ ID string }
	if errb := c.builtin("engine::register_trigger", `{"trigger_type":"cron","function_id":"jobs::tick","config":{"expression":"0 * * * * *","condition_function_id":"jobs::when"}}`, &reg); errb != nil {
		t.Fatal(errb)
	}
	for i, answer := range []string{`false`, `true`} {
		if err := clock.WaitTimers(ctxT(t), 1); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Minute)
		cond := expectMsg[*wire.InvokeFunction](t, c)
		if cond.FunctionID != "jobs::when" {
			t.Fatalf("%d: first call = %s", i, wire.Encode(cond))
		}
		c.send(&wire.InvocationResult{InvocationID: cond.InvocationID, FunctionID: cond.FunctionID, Result: json.RawMessage(answer)})
	}
	inv := expectMsg[*wire.InvokeFunction](t, c)
	if inv.FunctionID != "jobs::tick" {
		t.Fatalf("handler call = %s", wire.Encode(inv))
	}
	var ev struct {
		JobID string `json:"job_id"`
	}
	_ = json.Unmarshal(inv.Data, &ev)
	if ev.JobID != reg.ID {
		t.Fatalf("job_id %q, want the trigger id %q", ev.JobID, reg.ID)
	}
}

func TestCronStopsWhenTheEngineStops(t *testing.T) {
	clock := NewFakeClock(mustTime(t, "2026-12-03T10:00:00Z"))
	e := NewEngine(t, WithClock(clock))
	c := dial(t, e)
	c.register("jobs::tick")
	c.send(&wire.RegisterTrigger{ID: "t1", TriggerType: "cron", FunctionID: "jobs::tick", Config: json.RawMessage(`{"expression":"* * * * * *"}`)})
	if err := clock.WaitTimers(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	e.Stop()
	if n := clock.Timers(); n != 0 {
		t.Fatalf("%d timers after Stop", n)
	}
	clock.Advance(time.Minute) // nothing to fire, nothing to block on
}

func TestCronOnTheRealClock(t *testing.T) {
	e := NewEngine(t)
	c := dial(t, e)
	c.register("jobs::tick")
	c.send(&wire.RegisterTrigger{ID: "t1", TriggerType: "cron", FunctionID: "jobs::tick", Config: json.RawMessage(`{"expression":"* * * * * *"}`)})
	inv := expectMsg[*wire.InvokeFunction](t, c)
	var ev struct {
		Trigger string    `json:"trigger"`
		Sched   time.Time `json:"scheduled_time"`
		Actual  time.Time `json:"actual_time"`
	}
	if err := json.Unmarshal(inv.Data, &ev); err != nil || ev.Trigger != "cron" || ev.Sched.Nanosecond() != 0 || ev.Actual.Before(ev.Sched) {
		t.Fatalf("fire = %s (%v)", inv.Data, err)
	}
}

func TestCronStopsWhenItsWorkerLeaves(t *testing.T) {
	clock := NewFakeClock(mustTime(t, "2026-12-03T10:00:00Z"))
	e := NewEngine(t, WithClock(clock))
	c := dial(t, e)
	c.register("jobs::tick")
	c.send(&wire.RegisterTrigger{ID: "t1", TriggerType: "cron", FunctionID: "jobs::tick", Config: json.RawMessage(`{"expression":"* * * * * *"}`)})
	if err := clock.WaitTimers(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	c.close()
	if err := e.WaitFunctionGone(ctxT(t), "jobs::tick"); err != nil {
		t.Fatal(err)
	}
	if n := clock.Timers(); n != 0 {
		t.Fatalf("%d timers after the owner left", n)
	}
}
