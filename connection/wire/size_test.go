package wire

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

// randString mixes plain, escaped, control, multi-byte and invalid bytes.
func randString(r *rand.Rand, n int) string {
	alphabet := []string{"a", "\"", "\\", "\n", "\x01", "é", "\xff", "𝄞", "<"}
	var b strings.Builder
	for range n {
		b.WriteString(alphabet[r.IntN(len(alphabet))])
	}
	return b.String()
}

// TestFrameFitsMatchesTheEncodedSize: for limits just below, at and above
// a frame's encoded size, FrameFits answers as measuring would, whether it
// answers from its bound or by encoding.
func TestFrameFitsMatchesTheEncodedSize(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		var m Message
		str := func() string { return randString(r, r.IntN(40)) }
		raw := json.RawMessage(`"` + strings.Repeat("x", r.IntN(3000)) + `"`)
		switch i % 3 {
		case 0:
			f := &InvokeFunction{FunctionID: str(), Data: raw, Traceparent: str(), Baggage: str(),
				Namespace: str(), HasInvocationID: r.IntN(2) == 0}
			if r.IntN(2) == 0 {
				f.Metadata = json.RawMessage(`{"k":[1,2,3]}`)
			}
			switch r.IntN(3) {
			case 1:
				f.Action = TriggerAction{Kind: ActionVoid}
			case 2:
				f.Action = TriggerAction{Kind: ActionEnqueue, Queue: str()}
			}
			m = f
		case 1:
			res := &InvocationResult{FunctionID: str(), Result: raw, Traceparent: str(), Baggage: str()}
			if r.IntN(2) == 0 {
				res.Error = &ErrorBody{Code: str(), Message: str(), Stacktrace: str()}
			}
			m = res
		default:
			m = &RegisterService{ID: str(), Name: str()}
		}
		n := len(m.AppendJSON(nil))
		for _, limit := range []int{n - 1, n, n + 1, n + envelope, 2 * n} {
			if got, want := FrameFits(m, limit), n <= limit; got != want {
				t.Fatalf("FrameFits(%T of %d bytes, %d) = %v", m, n, limit, got)
			}
		}
	}
}

// TestFrameFitsCountsTheEnvelope: a payload that alone is within the limit
// but whose frame is not does not fit.
func TestFrameFitsCountsTheEnvelope(t *testing.T) {
	const limit = 1 << 10
	m := &InvokeFunction{FunctionID: "f", Data: json.RawMessage(`"` + strings.Repeat("x", limit-2) + `"`)}
	if FrameFits(m, limit) {
		t.Fatal("a frame around a payload of exactly the limit fits")
	}
}

func TestSalvageReadsTheIDsOfAFrameThatDoesNotDecode(t *testing.T) {
	const id = "0b6f4a4e-8a59-4d5e-9b07-6c1b1d7f2a11"
	for _, tc := range []struct {
		frame string
		ok    bool
		kind  Kind
		fn    string
	}{
		{`{"type":"invokefunction","invocation_id":"` + id + `","function_id":"f"}`, true, KindInvokeFunction, "f"},
		{`{"function_id":7,"type":"invocationresult","invocation_id":"` + id + `","error":5}`, true, KindInvocationResult, ""},
		{`{"type":"invokefunction","invocation_id":null,"function_id":"f"}`, false, 0, ""},
		{`{"type":"invokefunction","invocation_id":"not-a-uuid"}`, false, 0, ""},
		{`{"type":"nosuchtype","invocation_id":"` + id + `"}`, false, 0, ""},
		{`{"type":"invokefunction","invocation_id":"` + id, false, 0, ""},
	} {
		v, ok := Salvage([]byte(tc.frame))
		if ok != tc.ok || ok && (v.Kind != tc.kind || v.InvocationID.String() != id || v.FunctionID != tc.fn) {
			t.Errorf("Salvage(%s) = %+v, %v", tc.frame, v, ok)
		}
	}
}
