package wire

import (
	"encoding/json"
	"testing"
)

var benchInvoke = []byte(`{"type":"invokefunction","invocation_id":"5b0e7c1a-9d2f-4e3b-8a6c-1f0e2d3c4b5a","function_id":"bench::echo","data":{"id":12345,"name":"benchmark payload","tags":["a","b","c"],"nested":{"x":1.5,"y":true}},"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}`)

func BenchmarkDecodeInvokeFunction(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchInvoke)))
	for b.Loop() {
		if _, err := Decode(benchInvoke); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeInvokeFunctionStdlib is the baseline: encoding/json into an
// equivalent struct.
func BenchmarkDecodeInvokeFunctionStdlib(b *testing.B) {
	type action struct {
		Type  string `json:"type"`
		Queue string `json:"queue"`
	}
	type invoke struct {
		Type         string          `json:"type"`
		InvocationID *string         `json:"invocation_id"`
		FunctionID   string          `json:"function_id"`
		Data         json.RawMessage `json:"data"`
		Traceparent  string          `json:"traceparent"`
		Baggage      string          `json:"baggage"`
		Action       *action         `json:"action"`
		Metadata     json.RawMessage `json:"metadata"`
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(benchInvoke)))
	for b.Loop() {
		var m invoke
		if err := json.Unmarshal(benchInvoke, &m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeInvocationResult(b *testing.B) {
	m := &InvocationResult{InvocationID: NewUUID(), FunctionID: "bench::echo", Result: json.RawMessage(`{"id":12345,"name":"benchmark payload","tags":["a","b","c"]}`)}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = m.AppendJSON(buf[:0])
	}
}
