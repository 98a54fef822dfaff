package wire

import (
	"encoding/json"
	"errors"
	"testing"
)

// A NUL byte after the value is trailing data like any other: the engine's
// decoder rejects it, and so must Valid (which checks payloads before they
// are sent) and Decode. Both once took it for the end of the input.
func TestNULAfterTheValueIsTrailingData(t *testing.T) {
	for _, v := range []string{"0\x000", "{}\x00", "1 \x00", "\"x\"\x00"} {
		if Valid([]byte(v)) || json.Valid([]byte(v)) {
			t.Errorf("Valid(%q) = %v, encoding/json says %v; want false", v, Valid([]byte(v)), json.Valid([]byte(v)))
		}
	}
	for _, f := range []string{"{\"type\":\"ping\"}\x00", "{\"type\":\"ping\"} \x00{}"} {
		if _, err := Decode([]byte(f)); !errors.Is(err, ErrMalformed) {
			t.Errorf("Decode(%q) = %v, want ErrMalformed", f, err)
		}
	}
}
