package wire

import "encoding/json"

// Salvaged is what can still be read of a frame that does not decode:
// enough to answer the invocation it carries, or to fail the call whose
// result it is.
type Salvaged struct {
	Kind         Kind
	InvocationID UUID
	FunctionID   string // empty if absent or not a string
}

// Salvage reads the "type", "invocation_id" and "function_id" members of
// a frame that failed to decode. It reports false unless the frame is a
// JSON object with a known type and an invocation_id that is a UUID. It
// is meant for the error path only: it is slower than Decode.
func Salvage(b []byte) (Salvaged, bool) {
	var top map[string]json.RawMessage
	if json.Unmarshal(b, &top) != nil {
		return Salvaged{}, false
	}
	var typ, id, fn string
	if json.Unmarshal(top["type"], &typ) != nil || json.Unmarshal(top["invocation_id"], &id) != nil {
		return Salvaged{}, false
	}
	k := KindOf(typ)
	u, err := ParseUUID(id)
	if k == KindInvalid || err != nil {
		return Salvaged{}, false
	}
	_ = json.Unmarshal(top["function_id"], &fn)
	return Salvaged{Kind: k, InvocationID: u, FunctionID: fn}, true
}
