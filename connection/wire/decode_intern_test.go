package wire

import (
	"strings"
	"testing"
	"unsafe"
)

// The baggage the engine adds to every traced call is interned like a
// function id; any other baggage is decoded, not interned.
func TestTheEnginesBaggageIsInterned(t *testing.T) {
	var in Interner
	frame := func(bag string) []byte {
		return []byte(`{"type":"invokefunction","invocation_id":"00000000-0000-4000-8000-000000000001","function_id":"a::b","data":null,"baggage":"` + bag + `"}`)
	}
	decode := func(bag string) string {
		m, err := DecodeInterned(frame(bag), &in)
		if err != nil {
			t.Fatal(err)
		}
		return m.(*InvokeFunction).Baggage
	}
	a, b := decode("iii.function.id=a::b"), decode("iii.function.id=a::b")
	if a != "iii.function.id=a::b" || unsafe.StringData(a) != unsafe.StringData(b) {
		t.Fatalf("the engine's baggage %q, %q: not interned", a, b)
	}
	for _, bag := range []string{"tenant=t1", "iii.function.id=a::b,tenant=t1", `iii.function.id=a\u003ab`} {
		x, y := decode(bag), decode(bag)
		if x != strings.ReplaceAll(bag, `\u003a`, ":") || unsafe.StringData(x) == unsafe.StringData(y) {
			t.Fatalf("baggage %q decoded as %q, interned %v", bag, x, unsafe.StringData(x) == unsafe.StringData(y))
		}
	}
}
