package update_test

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"testing"

	"github.com/iii-go/iii/update"
)

// The cases follow the engine's own unit tests of its update operations
// (engine/src/update_ops.rs, v0.22.1): same inputs, same outcomes.
func TestApply(t *testing.T) {
	maxI := strconv.FormatInt(math.MaxInt64, 10)
	cases := []struct {
		name  string
		old   string // "" = no value
		ops   []update.Op
		want  string
		codes []string // codes of the op errors, in order
		index []int    // their op indexes, if checked
	}{
		{"append to array", `{"events":[{"kind":"start"}]}`, []update.Op{update.Append("events", map[string]string{"kind": "chunk"})}, `{"events":[{"kind":"start"},{"kind":"chunk"}]}`, nil, nil},
		{"concatenate strings", `{"transcript":"hello"}`, []update.Op{update.Append("transcript", " world")}, `{"transcript":"hello world"}`, nil, nil},
		{"missing fields by kind", `{}`, []update.Op{update.Append("transcript", "hello"), update.Append("events", map[string]string{"kind": "chunk"})}, `{"events":[{"kind":"chunk"}],"transcript":"hello"}`, nil, nil},
		{"missing root string", "", []update.Op{update.Append("", "hello")}, `"hello"`, nil, nil},
		{"missing root array", "", []update.Op{update.Append("", map[string]string{"kind": "chunk"})}, `[{"kind":"chunk"}]`, nil, nil},
		{"set root null", `{"":"empty-field","keep":true}`, []update.Op{update.Set("", nil)}, `null`, nil, nil},
		{"string append mismatch", `{"transcript":"hello"}`, []update.Op{update.Append("transcript", map[string]string{"not": "string"})}, `{"transcript":"hello"}`, []string{update.CodeAppendTypeMismatch}, nil},
		{"object append target", `{"events":{}}`, []update.Op{update.Append("events", "chunk")}, `{"events":{}}`, []string{update.CodeAppendTypeMismatch}, nil},
		{"increment", `{"count":2}`, []update.Op{update.Increment("count", 3), update.Increment("missing", 3)}, `{"count":5,"missing":3}`, nil, nil},
		{"increment non-number", `{"count":2,"bad":"value"}`, []update.Op{update.Increment("count", 3), update.Increment("bad", 1), update.Increment("missing", 3)}, `{"bad":"value","count":5,"missing":3}`, []string{update.CodeIncrementNotNumber}, []int{1}},
		{"decrement", `{"count":5}`, []update.Op{update.Decrement("count", 3), update.Decrement("missing", 3)}, `{"count":2,"missing":-3}`, nil, nil},
		{"numeric order", `{"count":10}`, []update.Op{update.Increment("count", 5), update.Decrement("count", 3)}, `{"count":12}`, nil, nil},
		{"float", `{"count":1.5}`, []update.Op{update.Increment("count", 2), update.Decrement("count", 1)}, `{"count":2.5}`, nil, nil},
		{"float integral", `{"count":1.5}`, []update.Op{update.Increment("count", 1), update.Decrement("count", 1), update.Increment("count", 0)}, `{"count":1.5}`, nil, nil},
		{"float keeps .0", `{"n":0.5}`, []update.Op{update.Increment("n", 0)}, `{"n":0.5}`, nil, nil},
		{"null is not missing", `{"inc":null,"dec":null}`, []update.Op{update.Increment("inc", 1), update.Decrement("dec", 1)}, `{"dec":null,"inc":null}`, []string{update.CodeIncrementNotNumber, update.CodeDecrementNotNumber}, []int{0, 1}},
		{"zero still checks", `{"bad":"value","count":2}`, []update.Op{update.Increment("bad", 0)}, `{"bad":"value","count":2}`, []string{update.CodeIncrementNotNumber}, []int{0}},
		{"overflow to unsigned", `{"count":` + maxI + `}`, []update.Op{update.Increment("count", 1)}, `{"count":9223372036854775808}`, nil, nil},
		{"large unsigned", `{"inc":9223372036854775817,"dec":9223372036854775817}`, []update.Op{update.Increment("inc", 1), update.Decrement("dec", 1)}, `{"dec":9223372036854775816,"inc":9223372036854775818}`, nil, nil},
		{"decrement by min", `{}`, []update.Op{update.Decrement("count", math.MinInt64)}, `{"count":9223372036854775808}`, nil, nil},
		{"root numbers", `2`, []update.Op{update.Increment("", 3)}, `5`, nil, nil},
		{"root decrement", `5`, []update.Op{update.Decrement("", 3)}, `2`, nil, nil},
		{"missing root increment", "", []update.Op{update.Increment("", 3)}, `3`, nil, nil},
		{"remove root", `{"":"empty-field","keep":true}`, []update.Op{update.Remove("")}, `null`, nil, nil},
		{"remove field", `{"a":1,"b":2}`, []update.Op{update.Remove("a"), update.Remove("zz")}, `{"b":2}`, nil, nil},
		{"errors keep indexes", `{"bad":"value","events":{}}`, []update.Op{update.Increment("bad", 1), update.Set("__proto__", true), update.Append("events", "chunk"), update.Set("ok", true)}, `{"bad":"value","events":{},"ok":true}`, []string{update.CodeIncrementNotNumber, "set.path.proto_polluted", update.CodeAppendTypeMismatch}, []int{0, 1, 2}},
		{"dotted path is one field", `{"user.name":["A"],"user":{"name":["B"]}}`, []update.Op{update.Append("user.name", "C")}, `{"user":{"name":["B"]},"user.name":["A","C"]}`, nil, nil},
		{"append array as element", `{"events":[]}`, []update.Op{update.Append("events", []string{"nested", "array"})}, `{"events":[["nested","array"]]}`, nil, nil},
		{"append to null field", `{"string":null,"array":null}`, []update.Op{update.Append("string", "chunk"), update.Append("array", map[string]string{"kind": "chunk"})}, `{"array":[{"kind":"chunk"}],"string":"chunk"}`, nil, nil},
		{"merge at field", `{"session-1":{"ts1":"a"}}`, []update.Op{update.MergeAt(map[string]string{"ts2": "b"}, "session-1")}, `{"session-1":{"ts1":"a","ts2":"b"}}`, nil, nil},
		{"merge at missing field", `{}`, []update.Op{update.MergeAt(map[string]string{"author": "alice"}, "session-1")}, `{"session-1":{"author":"alice"}}`, nil, nil},
		{"merge replaces non-object", `{"sessions":{"abc":"garbage"}}`, []update.Op{update.MergeAt(map[string]string{"author": "alice"}, "sessions", "abc")}, `{"sessions":{"abc":{"author":"alice"}}}`, nil, nil},
		{"merge creates path", `{}`, []update.Op{update.MergeAt(map[string]int{"x": 1}, "a", "b", "c")}, `{"a":{"b":{"c":{"x":1}}}}`, nil, nil},
		{"merge root", `{"a":1,"b":{"c":1}}`, []update.Op{update.Merge(map[string]any{"b": 2, "d": 3})}, `{"a":1,"b":2,"d":3}`, nil, nil},
		{"merge root non-object skipped silently", `5`, []update.Op{update.Merge(map[string]any{"b": 2})}, `5`, nil, nil},
		{"merge non-object value", `{}`, []update.Op{update.Merge(5)}, `{}`, []string{update.CodeMergeValueNotObject}, nil},
		{"merge proto value", `{}`, []update.Op{update.Merge(map[string]int{"constructor": 1})}, `{}`, []string{update.CodeMergeValueProto}, nil},
		{"merge empty segment", `{}`, []update.Op{update.MergeAt(map[string]int{"x": 1}, "a", "")}, `{}`, []string{update.CodeMergeEmptySegment}, nil},
		{"set on non-object", `"s"`, []update.Op{update.Set("a", 1)}, `"s"`, []string{update.CodeSetTargetNotObject}, nil},
		{"increment on non-object", `[1]`, []update.Op{update.Increment("a", 1)}, `[1]`, []string{update.CodeIncrementTargetNotObject}, nil},
		{"append at path on non-object", `[1]`, []update.Op{update.AppendAt("x", "a", "b")}, `[1]`, []string{update.CodeAppendTargetNotObject}, nil},
		{"append at nested path", `{}`, []update.Op{update.AppendAt("x", "a", "b"), update.AppendAt("y", "a", "b")}, `{"a":{"b":["x","y"]}}`, nil, nil},
		{"remove on non-object", `1`, []update.Op{update.Remove("a")}, `1`, []string{update.CodeRemoveTargetNotObject}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var old json.RawMessage
			if c.old != "" {
				old = json.RawMessage(c.old)
			}
			got, errs, err := update.Apply(old, c.ops)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != c.want {
				t.Errorf("value = %s, want %s", got, c.want)
			}
			if len(errs) != len(c.codes) {
				t.Fatalf("errors = %+v, want codes %v", errs, c.codes)
			}
			for i, e := range errs {
				if e.Code != c.codes[i] {
					t.Errorf("error %d code = %s, want %s", i, e.Code, c.codes[i])
				}
				if c.index != nil && e.OpIndex != c.index[i] {
					t.Errorf("error %d index = %d, want %d", i, e.OpIndex, c.index[i])
				}
			}
		})
	}
}

func TestApplyMessages(t *testing.T) {
	_, errs, _ := update.Apply(json.RawMessage(`{"n":"x"}`), []update.Op{update.Increment("n", 1)})
	if len(errs) != 1 || errs[0].Message != "Expected number at path 'n', got string." || errs[0].DocURL == "" {
		t.Fatalf("errors = %+v", errs)
	}
	err := update.Errors(errs)
	var ue update.Error
	if !errors.As(err, &ue) || ue.Code != update.CodeIncrementNotNumber {
		t.Fatalf("errors.As: %v", err)
	}
	if update.Errors(nil) != nil {
		t.Fatal("Errors(nil) != nil")
	}
}

func TestApplyDoesNotAliasOperands(t *testing.T) {
	v := map[string]any{"k": []any{1}}
	out, errs, err := update.Apply(nil, []update.Op{update.Set("a", v), update.AppendAt(2, "a", "k")})
	if err != nil || len(errs) != 0 || string(out) != `{"a":{"k":[1,2]}}` {
		t.Fatalf("Apply = %s, %v, %v", out, errs, err)
	}
	if len(v["k"].([]any)) != 1 {
		t.Fatalf("operand changed: %v", v)
	}
}

func TestOpJSON(t *testing.T) {
	cases := []struct {
		op   update.Op
		want string
	}{
		{update.Set("a", 1), `{"type":"set","path":"a","value":1}`},
		{update.Set("", nil), `{"type":"set","path":"","value":null}`},
		{update.Merge(map[string]int{"x": 1}), `{"type":"merge","value":{"x":1}}`},
		{update.MergeAt(map[string]int{"x": 1}, "a", "b"), `{"type":"merge","path":["a","b"],"value":{"x":1}}`},
		{update.Increment("n", 2), `{"type":"increment","path":"n","by":2}`},
		{update.Decrement("n", 2), `{"type":"decrement","path":"n","by":2}`},
		{update.Append("l", "x"), `{"type":"append","path":"l","value":"x"}`},
		{update.Append("", "x"), `{"type":"append","value":"x"}`},
		{update.AppendAt("x", "a"), `{"type":"append","path":["a"],"value":"x"}`},
		{update.Remove("k"), `{"type":"remove","path":"k"}`},
	}
	for _, c := range cases {
		b, err := json.Marshal(c.op)
		if err != nil || string(b) != c.want {
			t.Errorf("Marshal(%+v) = %s, %v; want %s", c.op, b, err, c.want)
			continue
		}
		var back update.Op
		if err := json.Unmarshal(b, &back); err != nil {
			t.Errorf("Unmarshal(%s): %v", b, err)
			continue
		}
		b2, _ := json.Marshal(back)
		if string(b2) != c.want {
			t.Errorf("round trip of %s = %s", c.want, b2)
		}
	}
	for _, bad := range []string{`{"path":"a"}`, `{"type":"nope","path":"a"}`, `{"type":"increment","path":"a"}`, `{"type":"set","value":1}`, `{"type":"merge"}`} {
		var op update.Op
		if err := json.Unmarshal([]byte(bad), &op); err == nil {
			t.Errorf("Unmarshal(%s) succeeded", bad)
		}
	}
	if _, err := json.Marshal(update.Op{Type: "bogus"}); err == nil {
		t.Error("Marshal of an unknown type succeeded")
	}
}

func TestApplyWritesJSONAsTheEngine(t *testing.T) {
	out, _, err := update.Apply(json.RawMessage(`{"a":"<x>&"}`), []update.Op{update.Set("b", "<y>")})
	if err != nil || string(out) != `{"a":"<x>&","b":"<y>"}` {
		t.Fatalf("Apply = %s, %v", out, err)
	}
}
