package wire

import "testing"

// Decoding must not allocate per member key or for the "type" name: only
// the message, its string fields and nothing else.
func TestDecodeAllocations(t *testing.T) {
	result := []byte(`{"type":"invocationresult","invocation_id":"5b0e7c1a-9d2f-4e3b-8a6c-1f0e2d3c4b5a","function_id":"bench::echo","result":{"ok":true}}`)
	for _, c := range []struct {
		name  string
		frame []byte
		max   float64
	}{
		{"invokefunction", benchInvoke, 3},     // message, function_id, traceparent
		{"invocationresult", result, 2},        // message, function_id
		{"ping", []byte(`{"type":"ping"}`), 1}, // message
	} {
		if n := testing.AllocsPerRun(100, func() {
			if _, err := Decode(c.frame); err != nil {
				t.Fatal(err)
			}
		}); n > c.max {
			t.Errorf("%s: %v allocations, want at most %v", c.name, n, c.max)
		}
	}
}
