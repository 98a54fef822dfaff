package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestDecodeRejectsBadFramesWithTypedErrors(t *testing.T) {
	malformed := map[string]string{
		"empty":                   ``,
		"whitespace":              "  \n",
		"not an object":           `[1,2]`,
		"garbage":                 `\x00\xff{{`,
		"truncated":               `{"type":"invokefunction","function_id":"a","data":{"x":`,
		"truncated string":        `{"type":"ping`,
		"missing type":            `{"id":"x"}`,
		"type not a string":       `{"type":7}`,
		"missing required field":  `{"type":"invokefunction","function_id":"a"}`,
		"missing data":            `{"type":"invokefunction","invocation_id":"5b0e7c1a-9d2f-4e3b-8a6c-1f0e2d3c4b5a","function_id":"a"}`,
		"wrong field type":        `{"type":"registerfunction","id":42}`,
		"invalid uuid":            `{"type":"invocationresult","invocation_id":"not-a-uuid","function_id":"f"}`,
		"invalid uuid digits":     `{"type":"invocationresult","invocation_id":"5b0e7c1a-9d2f-4e3b-8a6c-1f0e2d3c4b5z","function_id":"f"}`,
		"bad action":              `{"type":"invokefunction","function_id":"a","data":1,"action":{"type":"later"}}`,
		"enqueue without queue":   `{"type":"invokefunction","function_id":"a","data":1,"action":{"type":"enqueue"}}`,
		"bad method":              `{"type":"registerfunction","id":"a","invocation":{"url":"u","method":"get"}}`,
		"duplicate field":         `{"type":"unregisterfunction","id":"a","id":"b"}`,
		"duplicate type":          `{"type":"ping","type":"pong"}`,
		"duplicate type later":    `{"id":"a","type":"unregisterfunction","type":"ping"}`,
		"trailing data":           `{"type":"ping"} x`,
		"two objects":             `{"type":"ping"}{"type":"ping"}`,
		"bad number":              `{"type":"invokefunction","function_id":"a","data":01}`,
		"bad literal":             `{"type":"invokefunction","function_id":"a","data":nul}`,
		"control char in string":  "{\"type\":\"unregisterfunction\",\"id\":\"a\nb\"}",
		"invalid utf8 in string":  "{\"type\":\"unregisterfunction\",\"id\":\"a\xffb\"}",
		"bad escape":              `{"type":"unregisterfunction","id":"a\qb"}`,
		"error body without code": `{"type":"invocationresult","invocation_id":"5b0e7c1a-9d2f-4e3b-8a6c-1f0e2d3c4b5a","function_id":"f","error":{"message":"m"}}`,
		"description null":        `{"type":"registertriggertype","id":"a","description":null}`,
		"nesting too deep":        `{"type":"invokefunction","function_id":"a","data":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}`,
		"trailing comma":          `{"type":"unregisterfunction","id":"a",}`,
		"negative timeout":        `{"type":"registerfunction","id":"a","invocation":{"url":"u","timeout_ms":-1}}`,
	}
	for name, frame := range malformed {
		t.Run(name, func(t *testing.T) {
			m, err := Decode([]byte(frame))
			if err == nil {
				t.Fatalf("decoded %#v, want an error", m)
			}
			var de *DecodeError
			if !errors.As(err, &de) || !errors.Is(err, ErrMalformed) || errors.Is(err, ErrUnknownType) {
				t.Fatalf("error %v (%T) is not a malformed-frame DecodeError", err, err)
			}
		})
	}
	for _, frame := range []string{`{"type":"nonsense"}`, `{"type":"RegisterFunction","id":"a"}`, `{"id":"a","type":"shutdown"}`} {
		_, err := Decode([]byte(frame))
		if !errors.Is(err, ErrUnknownType) || errors.Is(err, ErrMalformed) {
			t.Errorf("%s: error %v, want ErrUnknownType", frame, err)
		}
		var de *DecodeError
		if !errors.As(err, &de) || de.Type == "" {
			t.Errorf("%s: DecodeError without its type: %#v", frame, de)
		}
	}
}

func TestDecodeAcceptsWhatTheEngineAccepts(t *testing.T) {
	cases := map[string]func(Message) bool{
		// type not first, unknown fields, whitespace
		` { "function_id" : "f", "extra": {"a":[1,2,{"b":null}]}, "type" : "invokefunction", "data" : null } `: func(m Message) bool {
			i := m.(*InvokeFunction)
			return i.FunctionID == "f" && string(i.Data) == "null" && !i.HasInvocationID
		},
		// uuid forms
		`{"type":"invocationresult","invocation_id":"5B0E7C1A9D2F4E3B8A6C1F0E2D3C4B5A","function_id":"f"}`: func(m Message) bool {
			return m.(*InvocationResult).InvocationID.String() == "5b0e7c1a-9d2f-4e3b-8a6c-1f0e2d3c4b5a"
		},
		`{"type":"invocationresult","invocation_id":"{5b0e7c1a-9d2f-4e3b-8a6c-1f0e2d3c4b5a}","function_id":"f"}`: func(m Message) bool {
			return m.(*InvocationResult).InvocationID.String() == "5b0e7c1a-9d2f-4e3b-8a6c-1f0e2d3c4b5a"
		},
		`{"type":"invocationresult","invocation_id":"urn:uuid:5b0e7c1a-9d2f-4e3b-8a6c-1f0e2d3c4b5a","function_id":"f","result":null,"error":null}`: func(m Message) bool {
			r := m.(*InvocationResult)
			return r.InvocationID.String() == "5b0e7c1a-9d2f-4e3b-8a6c-1f0e2d3c4b5a" && r.Error == nil && IsNull(r.Result)
		},
		// escapes in keys and values, surrogate pairs
		`{"typ\u0065":"unregisterfunction","id":"a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"}`: func(m Message) bool {
			return m.(*UnregisterFunction).ID == "a\"\\/\b\f\n\r\té😀"
		},
		// optional nulls
		`{"type":"workerregistered","worker_id":"w","reattach_token":null}`: func(m Message) bool {
			return m.(*WorkerRegistered).ReattachToken == ""
		},
		`{"type":"invokefunction","function_id":"f","data":{},"action":{"queue":"","type":"enqueue"}}`: func(m Message) bool {
			a := m.(*InvokeFunction).Action
			return a.Kind == ActionEnqueue && a.Queue == ""
		},
		`{"type":"invokefunction","function_id":"f","data":[],"action":null,"metadata":null}`: func(m Message) bool {
			i := m.(*InvokeFunction)
			return i.Action.Kind == ActionNone && IsNull(i.Metadata)
		},
		`{"type":"registrationrejected","code":"FUNCTION_NAMESPACE_CONFLICT","namespace":"shop-a","function_id":"orders::create","owner_worker_id":""}`: func(m Message) bool {
			r := m.(*RegistrationRejected)
			return r.Code == FunctionNamespaceConflict && r.FunctionID == "orders::create" && r.Namespace == "shop-a"
		},
		`{"type":"registertrigger","id":"1","trigger_type":"t","function_id":"f","config":{},"namespace":"shop-a","trigger_namespace":"shared"}`: func(m Message) bool {
			r := m.(*RegisterTrigger)
			return r.Namespace == "shop-a" && r.TriggerNamespace == "shared"
		},
		`{"type":"invokefunction","function_id":"f","data":-1.5e+10,"namespace":"ns"}`: func(m Message) bool {
			return string(m.(*InvokeFunction).Data) == "-1.5e+10" && m.(*InvokeFunction).Namespace == "ns"
		},
	}
	for frame, check := range cases {
		m, err := Decode([]byte(frame))
		if err != nil {
			t.Errorf("%s: %v", frame, err)
			continue
		}
		if !check(m) {
			t.Errorf("%s: decoded %#v", frame, m)
		}
	}
}

func TestEncodeEscapesStringsLikeTheEngine(t *testing.T) {
	cases := map[string]string{
		"plain":          `"plain"`,
		"q\"b\\s/":       `"q\"b\\s/"`,
		"\b\f\n\r\t":     `"\b\f\n\r\t"`,
		"\x00\x01\x1f":   `"\u0000\u0001\u001f"`,
		"<&>\u2028é😀":    `"<&>` + "\u2028é😀" + `"`,
		"bad\xffutf8":    `"bad` + "\ufffd" + `utf8"`,
		"\x7f":           "\"\x7f\"",
		"tab\tend\x1bok": `"tab\tend\u001bok"`,
	}
	for in, want := range cases {
		if got := string(AppendString(nil, in)); got != want {
			t.Errorf("AppendString(%q) = %s, want %s", in, got, want)
		}
		var back string
		if err := json.Unmarshal(AppendString(nil, in), &back); err != nil {
			t.Errorf("AppendString(%q) is not valid JSON: %v", in, err)
		}
	}
}

func TestEncodeOmitsAbsentOptionalFields(t *testing.T) {
	id := MustParseUUID("5b0e7c1a-9d2f-4e3b-8a6c-1f0e2d3c4b5a")
	cases := []struct {
		m    Message
		want string
	}{
		{&InvokeFunction{FunctionID: "f", Data: json.RawMessage(`{}`), Action: TriggerAction{Kind: ActionVoid}},
			`{"type":"invokefunction","function_id":"f","data":{},"action":{"type":"void"}}`},
		{&InvokeFunction{InvocationID: id, HasInvocationID: true, FunctionID: "f", Data: nil, Action: TriggerAction{Kind: ActionEnqueue}},
			`{"type":"invokefunction","invocation_id":"5b0e7c1a-9d2f-4e3b-8a6c-1f0e2d3c4b5a","function_id":"f","data":null,"action":{"type":"enqueue","queue":""}}`},
		{&InvocationResult{InvocationID: id, FunctionID: "f"},
			`{"type":"invocationresult","invocation_id":"5b0e7c1a-9d2f-4e3b-8a6c-1f0e2d3c4b5a","function_id":"f"}`},
		{&RegisterTrigger{ID: "t", TriggerType: "x", FunctionID: "f"},
			`{"type":"registertrigger","id":"t","trigger_type":"x","function_id":"f","config":null}`},
		{&RegisterFunction{ID: "f"}, `{"type":"registerfunction","id":"f"}`},
		{&ErrorFrame{Error: ErrorBody{Code: "AUTH_ERROR", Message: "no"}}, `{"type":"error","error":{"code":"AUTH_ERROR","message":"no"}}`},
	}
	for _, c := range cases {
		if got := string(Encode(c.m)); got != c.want {
			t.Errorf("got  %s\nwant %s", got, c.want)
		}
	}
}

func TestUUIDRoundTrip(t *testing.T) {
	for range 100 {
		u := NewUUID()
		if u[6]>>4 != 4 || u[8]>>6 != 2 {
			t.Fatalf("%s is not a v4 UUID", u)
		}
		back, err := ParseUUID(u.String())
		if err != nil || back != u {
			t.Fatalf("round trip of %s: %s, %v", u, back, err)
		}
	}
	for _, bad := range []string{"", "5b0e7c1a", "5b0e7c1a-9d2f-4e3b-8a6c-1f0e2d3c4b5", "5b0e7c1a_9d2f_4e3b_8a6c_1f0e2d3c4b5a", "{5b0e7c1a-9d2f-4e3b-8a6c-1f0e2d3c4b5a)"} {
		if _, err := ParseUUID(bad); err == nil {
			t.Errorf("ParseUUID(%q) succeeded", bad)
		}
	}
}

func TestTelemetryFramesAreRecognisedByPrefix(t *testing.T) {
	for _, k := range []TelemetryKind{TelemetryTraces, TelemetryMetrics, TelemetryLogs} {
		f := AppendTelemetry(nil, k, []byte(`{"x":1}`))
		got, payload := SplitTelemetry(f)
		if got != k || string(payload) != `{"x":1}` {
			t.Errorf("%s: got %v %q", k.Prefix(), got, payload)
		}
	}
	if k, p := SplitTelemetry([]byte(`{"type":"ping"}`)); k != TelemetryNone || string(p) != `{"type":"ping"}` {
		t.Errorf("a JSON binary frame was taken for telemetry: %v", k)
	}
	var req TracesRequest
	body := `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},"scopeSpans":[{"scope":{"name":"s"},"spans":[{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","name":"call","kind":3,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":1700000000000000500,"status":{"code":2}}]}]}]}`
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		t.Fatal(err)
	}
	sp := req.ResourceSpans[0].ScopeSpans[0].Spans[0]
	if sp.StartTimeUnixNano != 1700000000000000000 || sp.EndTimeUnixNano != 1700000000000000500 || sp.Status.Code != StatusError {
		t.Errorf("span: %+v", sp)
	}
	if v, ok := req.ResourceSpans[0].Resource.Attributes.Get("service.name"); !ok || v != "svc" {
		t.Errorf("service.name = %q", v)
	}
}

func FuzzDecode(f *testing.F) {
	for _, v := range loadVectors(f) {
		f.Add([]byte(v.Frame))
	}
	f.Add([]byte(`{"id":"a","type":"unregisterfunction"}`))
	f.Add([]byte(`{"type":"invokefunction","function_id":"f","data":"\ud83d\ude00"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownType) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if !json.Valid(b) {
			t.Fatalf("decoded invalid JSON %q", b)
		}
		out := m.AppendJSON(nil)
		if !json.Valid(out) {
			t.Fatalf("re-encoding of %q is invalid JSON: %q", b, out)
		}
		m2, err := Decode(out)
		if err != nil {
			t.Fatalf("re-encoding %q does not decode: %v", out, err)
		}
		if out2 := m2.AppendJSON(nil); string(out2) != string(out) {
			t.Fatalf("encoding is not stable:\n%s\n%s", out, out2)
		}
	})
}

func TestDecodeInternedReusesFunctionIDs(t *testing.T) {
	var in Interner
	frame := []byte(`{"type":"invocationresult","invocation_id":"5b0e7c1a-9d2f-4e3b-8a6c-1f0e2d3c4b5a","function_id":"orders::create","result":1}`)
	if _, err := DecodeInterned(frame, &in); err != nil { // first sight: kept
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := DecodeInterned(frame, &in); err != nil {
			t.Fatal(err)
		}
	})
	plain := testing.AllocsPerRun(100, func() { _, _ = Decode(frame) })
	if allocs >= plain {
		t.Fatalf("interned decode allocates %.0f times, plain %.0f", allocs, plain)
	}
	m, _ := DecodeInterned([]byte(`{"type":"invocationresult","invocation_id":"5b0e7c1a-9d2f-4e3b-8a6c-1f0e2d3c4b5a","function_id":"a\u00e9"}`), &in)
	if m.(*InvocationResult).FunctionID != "aé" {
		t.Fatalf("escaped id %q", m.(*InvocationResult).FunctionID)
	}
}

func TestValidAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range []string{`{}`, ` [1, "a", {"b": null}] `, `"x"`, `-1.5e3`, `true`, `{`, `[1,]`, `{"a"}`, ``, `1 2`, `"\x01"`} {
		if Valid([]byte(s)) != json.Valid([]byte(s)) {
			t.Errorf("Valid(%q) = %v, encoding/json says %v", s, Valid([]byte(s)), json.Valid([]byte(s)))
		}
	}
}

func TestInternerKeepsABoundedNumberOfShortStrings(t *testing.T) {
	var in Interner
	frame := func(id string) []byte {
		return []byte(`{"type":"invocationresult","invocation_id":"5b0e7c1a-9d2f-4e3b-8a6c-1f0e2d3c4b5a","function_id":"` + id + `"}`)
	}
	// A peer sending long ids: none is kept.
	long := strings.Repeat("x", 64<<10)
	for i := range 50 {
		id := fmt.Sprint(i) + long
		m, err := DecodeInterned(frame(id), &in)
		if err != nil || m.(*InvocationResult).FunctionID != id {
			t.Fatalf("long id: %v", err)
		}
	}
	if len(in.m) != 0 || in.bytes != 0 {
		t.Fatalf("kept %d long ids (%d bytes)", len(in.m), in.bytes)
	}
	// Many distinct short ids: at most MaxInterned, MaxInternedBytes.
	mid := strings.Repeat("y", MaxInternedLen-8)
	for i := range 2 * MaxInterned {
		if _, err := DecodeInterned(frame(fmt.Sprintf("%08d", i)+mid), &in); err != nil {
			t.Fatal(err)
		}
	}
	total := 0
	for s := range in.m {
		total += len(s)
		if len(s) > MaxInternedLen {
			t.Fatalf("kept a %d-byte string", len(s))
		}
	}
	if len(in.m) > MaxInterned || total > MaxInternedBytes || total != in.bytes {
		t.Fatalf("kept %d strings, %d bytes (counted %d)", len(in.m), total, in.bytes)
	}
}
