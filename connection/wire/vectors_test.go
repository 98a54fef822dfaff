package wire

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

type vector struct {
	Dir     string          `json:"dir"`
	Variant string          `json:"variant"`
	Frame   json.RawMessage `json:"frame"`
	Note    string          `json:"note"`
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	f, err := os.Open("testdata/vectors.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var vs []vector
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var v vector
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("line %d: %v", len(vs)+1, err)
		}
		vs = append(vs, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return vs
}

func variantKind(v string) Kind {
	switch v {
	case "NonMessage:AuthError":
		return KindError
	case "NonMessage:UnregisterTriggerType":
		return KindUnregisterTriggerType
	}
	return KindOf(strings.ToLower(v))
}

func jsonEqual(t testing.TB, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("invalid JSON %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}

// TestVectorsDecodeAndReencode runs every protocol vector: it decodes to the
// message its variant names, and re-encodes to equal JSON; frames the engine
// sends re-encode byte for byte, field order included.
func TestVectorsDecodeAndReencode(t *testing.T) {
	vs := loadVectors(t)
	if len(vs) != 56 {
		t.Fatalf("got %d vectors, want 56", len(vs))
	}
	for i, v := range vs {
		m, err := Decode(v.Frame)
		if err != nil {
			t.Errorf("vector %d (%s): decode: %v", i+1, v.Variant, err)
			continue
		}
		if want := variantKind(v.Variant); want == KindInvalid || m.Kind() != want {
			t.Errorf("vector %d: decoded kind %v, want variant %s", i+1, m.Kind(), v.Variant)
		}
		out := m.AppendJSON(nil)
		switch v.Dir {
		case "engine->worker":
			if !bytes.Equal(out, v.Frame) {
				t.Errorf("vector %d (%s): re-encoded\n%s\nwant\n%s", i+1, v.Variant, out, v.Frame)
			}
		case "worker->engine":
			if !jsonEqual(t, out, v.Frame) {
				t.Errorf("vector %d (%s): re-encoded JSON differs\n%s\nwant\n%s", i+1, v.Variant, out, v.Frame)
			}
		default:
			t.Errorf("vector %d: unknown dir %q", i+1, v.Dir)
		}
	}
}

// TestVectorsDecodeFieldValues spot-checks decoded values of one vector of
// each shape, so that a decoder that reproduces bytes without understanding
// them cannot pass.
func TestVectorsDecodeFieldValues(t *testing.T) {
	vs := loadVectors(t)
	get := func(n int) Message {
		m, err := Decode(vs[n-1].Frame)
		if err != nil {
			t.Fatalf("vector %d: %v", n, err)
		}
		return m
	}
	inv := get(15).(*InvokeFunction)
	if !inv.HasInvocationID || inv.InvocationID.String() != "5b0e7c1a-9d2f-4e3b-8a6c-1f0e2d3c4b5a" ||
		inv.FunctionID != "orders::create" || string(inv.Data) != `{"sku":"A-1","qty":2}` ||
		inv.Traceparent != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" ||
		inv.Baggage != "iii.function.id=checkout::submit" || inv.Action.Kind != ActionNone {
		t.Errorf("vector 15: %+v", inv)
	}
	for n, m := range map[int]Message{17: get(17), 18: get(18)} {
		if m.(*InvokeFunction).HasInvocationID {
			t.Errorf("vector %d: id-less call decoded with an id", n)
		}
	}
	var enq *InvokeFunction
	for i, v := range vs {
		if v.Dir == "worker->engine" && bytes.Contains(v.Frame, []byte(`"enqueue"`)) {
			enq = get(i + 1).(*InvokeFunction)
		}
	}
	if enq == nil || enq.Action.Kind != ActionEnqueue || enq.Action.Queue == "" {
		t.Errorf("enqueue vector: %+v", enq)
	}
	res := get(43).(*InvocationResult)
	if res.Error == nil || res.Error.Code != "invocation_failed" || res.Error.Message != "out of stock" ||
		res.Error.Stacktrace != "Error: out of stock\n    at handler (/app/orders.js:12:11)" || res.Result != nil {
		t.Errorf("vector 43: %+v %+v", res, res.Error)
	}
	reg := get(4).(*RegisterFunction)
	if reg.Invocation == nil || reg.Invocation.URL != "https://example.com/lambda" || reg.Invocation.Method != "POST" ||
		reg.Invocation.TimeoutMS == nil || *reg.Invocation.TimeoutMS != 30000 ||
		reg.Invocation.Headers["x-custom-header"] != "value" || reg.Invocation.Auth == nil ||
		reg.Invocation.Auth.Type != "bearer" || reg.Invocation.Auth.TokenKey != "LAMBDA_TOKEN" {
		t.Errorf("vector 4: %+v", reg.Invocation)
	}
	if u := get(11).(*UnregisterTrigger); u.TriggerType != "" || u.ID != "1f6f3b0c-2a4d-4e8b-9c7a-5d3e1f0a2b4c" {
		t.Errorf("vector 11: %+v", u)
	}
	if w := get(34).(*WorkerRegistered); w.WorkerID != "7f9c2b1e-3d4a-4c5b-9e8f-0a1b2c3d4e5f" || w.ReattachToken != "d2a6c0f4-1b3e-4f59-8a7c-6e5d4c3b2a10" {
		t.Errorf("vector 34: %+v", w)
	}
	if e := get(56).(*ErrorFrame); e.Error.Code != "AUTH_ERROR" {
		t.Errorf("vector 56: %+v", e)
	}
}
