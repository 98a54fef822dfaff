package iii_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/invopop/jsonschema"

	"github.com/iii-go/iii"
)

// listNode contains itself, through a pointer and a slice.
type listNode struct {
	Value int        `json:"value"`
	Next  *listNode  `json:"next,omitempty"`
	Kids  []listNode `json:"kids,omitempty"`
}

func TestRecursiveTypesGetASchemaWithReferences(t *testing.T) {
	eng, handler, caller := twoWorkers(t)
	mustRegister(t, eng, handler, "list::len", func(ctx context.Context, n listNode) (listNode, error) {
		l := 0
		for p := &n; p != nil; p = p.Next {
			l++
		}
		return listNode{Value: l}, nil
	})
	got, err := iii.Call[listNode](testCtx(t), caller, "list::len", listNode{Next: &listNode{Next: &listNode{}}})
	if err != nil || got.Value != 3 {
		t.Fatalf("call: %+v, %v", got, err)
	}
	raw, err := caller.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "engine::functions::info", Payload: map[string]string{"function_id": "list::len"}})
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		RequestSchema json.RawMessage `json:"request_schema"`
	}
	if err := json.Unmarshal(raw, &info); err != nil {
		t.Fatal(err)
	}
	var s struct {
		Ref  string                     `json:"$ref"`
		Defs map[string]json.RawMessage `json:"$defs"`
	}
	if err := json.Unmarshal(info.RequestSchema, &s); err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(s.Ref, "#/$defs/")
	if def := s.Defs[name]; def == nil || !strings.Contains(string(def), `"next"`) || !strings.Contains(string(def), `"#/$defs/`+name+`"`) {
		t.Fatalf("request schema: %s", info.RequestSchema)
	}
}

// schemaProbe counts how often its schema is derived.
type schemaProbe struct{}

var schemaDerivations atomic.Int64

func (schemaProbe) JSONSchema() *jsonschema.Schema {
	schemaDerivations.Add(1)
	return &jsonschema.Schema{Type: "object"}
}

func TestWithoutSchemasDerivesNoSchema(t *testing.T) {
	eng, handler, _ := twoWorkers(t)
	h := func(context.Context, schemaProbe) (schemaProbe, error) { return schemaProbe{}, nil }
	before := schemaDerivations.Load()
	mustRegister(t, eng, handler, "probe::none", h, iii.WithoutSchemas())
	mustRegister(t, eng, handler, "probe::given", h,
		iii.WithRequestSchema(json.RawMessage(`{}`)), iii.WithResponseSchema(json.RawMessage(`{}`)))
	if n := schemaDerivations.Load() - before; n != 0 {
		t.Fatalf("schemas derived %d times", n)
	}
	mustRegister(t, eng, handler, "probe::derived", h)
	if n := schemaDerivations.Load() - before; n != 2 {
		t.Fatalf("schemas derived %d times, want 2 (request and response)", n)
	}
}
