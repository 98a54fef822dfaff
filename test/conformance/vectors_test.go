package conformance

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"testing"

	"github.com/iii-go/iii/connection/wire"
)

// testdata/engine-v0.22.1.jsonl holds frames a real iii engine v0.22.1
// sent (and what it was sent), recorded with TestCaptureVectors: facts
// about the protocol. Every frame must decode with the SDK's codec and
// encode back to the same JSON.
func TestEngineVectorsRoundTrip(t *testing.T) {
	f, err := os.Open("testdata/engine-v0.22.1.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		var v captured
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("line %d: %v", n+1, err)
		}
		n++
		m, err := wire.Decode(v.Frame)
		if err != nil {
			t.Errorf("%s %s: %s: %v", v.Scenario, v.Dir, v.Frame, err)
			continue
		}
		var want, got any
		json.Unmarshal(v.Frame, &want)
		json.Unmarshal(wire.Encode(m), &got)
		if !reflect.DeepEqual(want, got) {
			var b bytes.Buffer
			json.Compact(&b, v.Frame)
			t.Errorf("%s %s: re-encoded\n%s\nwant\n%s", v.Scenario, v.Dir, wire.Encode(m), b.Bytes())
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no vectors")
	}
}
