package iiitest

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// The shortcut for a traceparent already in the engine's form agrees with
// the step-by-step rewrite.
func TestCanonicalTraceparentsAreKeptAsTheEngineRewritesThem(t *testing.T) {
	cases := []string{
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736+00f067aa0ba902b7-01",
	}
	for range 200 {
		cases = append(cases, fmt.Sprintf("00-%016x%016x-%016x-%02x", rand.Uint64()>>rand.IntN(64), rand.Uint64()>>rand.IntN(64), rand.Uint64()>>rand.IntN(64), rand.IntN(3)))
	}
	n := 0
	for _, tp := range cases {
		if canonicalTraceparent(tp) {
			n++
			if got := rewriteTraceparent(tp); got != tp {
				t.Errorf("%q is rewritten as %q", tp, got)
			}
		}
	}
	if n < 100 {
		t.Fatalf("only %d canonical cases", n)
	}
}

func TestTheEnginesOwnBaggageIsKept(t *testing.T) {
	if got := withFunctionIDBaggage("iii.function.id=a::b", "a::b"); got != "iii.function.id=a::b" {
		t.Fatal(got)
	}
	if got := withFunctionIDBaggage("iii.function.id=a::c", "a::b"); got != "iii.function.id=a::b" {
		t.Fatal(got)
	}
}
