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

// The payloads of the benchmarks below, shaped like what cmd/bench sends.

// textPayload returns a JSON string of n bytes: words of plain ASCII, with
// escapes (\n\", once or twice) where the length crosses a multiple of esc
// and a 2-byte rune where it crosses a multiple of utf, when those are not 0.
// (escaped/10KiB has an escape every 18 bytes, utf8/10KiB a rune every 8.)
func textPayload(n, esc, utf int) []byte {
	b := make([]byte, 0, n)
	b = append(b, '"')
	words := []string{"lorem ", "ipsum ", "dolor ", "sit ", "amet, ", "consectetur ", "adipiscing ", "elit. "}
	for i := 0; len(b) < n-8; i++ {
		switch {
		case esc > 0 && len(b)/esc != (len(b)+8)/esc:
			b = append(b, `\n\"`...)
		case utf > 0 && len(b)/utf != (len(b)+8)/utf:
			b = append(b, "é"...)
		default:
			b = append(b, words[i%len(words)]...)
		}
	}
	for len(b) < n-1 {
		b = append(b, 'x')
	}
	return append(b, '"')
}

// recordsPayload returns a JSON object of about n bytes: an array of small
// records (numbers, short strings, arrays, nested objects), as cmd/bench's.
func recordsPayload(n int) []byte {
	const item = `{"id":12345,"name":"benchmark payload","tags":["a","b","c"],"nested":{"x":1.5,"y":true}}`
	b := []byte(`{"items":[`)
	for i := 0; len(b)+len(item)+2 < n; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, item...)
	}
	return append(b, "]}"...)
}

// keysPayload returns a JSON object with many short keys, as the engine
// forwards a caller's payload (with "_caller_worker_id" put in front).
func keysPayload() []byte {
	return []byte(`{"_caller_worker_id":"0c1f5e2a-7d3b-4f6e-9a8c-2b1d0e3f4a5b","data":"hello world","user":"alice","id":42,"ok":true,"ts":1733234567890,"tags":["x","y"],"a":1,"b":"two","c":null,"d":3.25,"e":"five","f":{"g":"h","i":[1,2,3]},"message":"a short message with a few more words in it"}`)
}

func invokeFrame(data []byte) []byte {
	b := []byte(`{"type":"invokefunction","invocation_id":"5b0e7c1a-9d2f-4e3b-8a6c-1f0e2d3c4b5a","function_id":"bench::echo","data":`)
	b = append(b, data...)
	return append(b, `,"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","baggage":"iii.function.id=bench::echo"}`...)
}

var payloads = []struct {
	name string
	data []byte
}{
	{"string/100B", textPayload(100, 0, 0)},
	{"string/10KiB", textPayload(10<<10, 0, 0)},
	{"string/1MiB", textPayload(1<<20, 0, 0)},
	{"escaped/10KiB", textPayload(10<<10, 64, 0)},
	{"utf8/10KiB", textPayload(10<<10, 0, 32)},
	{"records/10KiB", recordsPayload(10 << 10)},
	{"records/1MiB", recordsPayload(1 << 20)},
	{"keys", keysPayload()},
}

func BenchmarkDecodeInvoke(b *testing.B) {
	for _, p := range payloads {
		frame := invokeFrame(p.data)
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				if _, err := Decode(frame); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkValid(b *testing.B) {
	for _, p := range payloads {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(p.data)))
			for b.Loop() {
				if !Valid(p.data) {
					b.Fatal("invalid")
				}
			}
		})
	}
}

func BenchmarkAppendString(b *testing.B) {
	var strs []struct{ name, s string }
	for _, p := range payloads[:5] {
		var s string
		if err := json.Unmarshal(p.data, &s); err != nil {
			b.Fatal(err)
		}
		strs = append(strs, struct{ name, s string }{p.name, s})
	}
	strs = append(strs,
		struct{ name, s string }{"string/16B", "iii.function.id="},
		struct{ name, s string }{"attr/40B", "orders::create invoked by worker-7 ok"},
		struct{ name, s string }{"json/200B", string(keysPayload()[:200])}, // a payload recorded in a span: many quotes
	)
	for _, c := range strs {
		b.Run(c.name, func(b *testing.B) {
			buf := make([]byte, 0, 2*len(c.s)+2)
			b.ReportAllocs()
			b.SetBytes(int64(len(c.s)))
			for b.Loop() {
				buf = appendString(buf[:0], c.s)
			}
		})
	}
}
