// Package update describes the update operations of the iii engine's state
// and stream stores (state::update, stream::update) and applies them as the
// engine does.
//
// An update is a list of operations applied in order, atomically, to the
// value stored under one key. An operation that cannot apply (a wrong
// target type, an invalid path) is skipped and reported as an [Error] in
// the call's result; the others still apply, so a call with op errors
// still succeeds.
//
//	state.New[Counter](w, "counters").Update(ctx, "visits",
//		update.Increment("count", 1),
//		update.Set("last", time.Now().Unix()))
//
// Paths: Set, Increment, Decrement and Remove name ONE top-level field of
// an object value (a dot is part of the field name, not a separator); an
// empty path means the value itself. Merge and Append also take a nested
// path of segments (MergeAt, AppendAt), creating the missing objects on
// the way.
package update

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// OpType is the kind of an update operation, as named on the wire.
type OpType string

// The kinds of update operation.
const (
	// OpSet replaces the field at Path (the whole value for an empty path).
	OpSet OpType = "set"
	// OpMerge merges the object Value, shallowly, into the object at Path
	// or Segments (the value itself when both are empty).
	OpMerge OpType = "merge"
	// OpIncrement adds By to the number at Path (a missing field starts at 0).
	OpIncrement OpType = "increment"
	// OpDecrement subtracts By from the number at Path (a missing field starts at 0).
	OpDecrement OpType = "decrement"
	// OpAppend appends Value to the array at Path or Segments, or
	// concatenates it to a string there.
	OpAppend OpType = "append"
	// OpRemove deletes the field at Path (the value becomes null for an
	// empty path).
	OpRemove OpType = "remove"
)

// Op is one update operation. Build it with [Set], [Merge], [MergeAt],
// [Increment], [Decrement], [Append], [AppendAt] or [Remove]; its JSON form
// is the engine's ({"type": "increment", "path": "count", "by": 1}, ...).
type Op struct {
	// Type is the kind of operation.
	Type OpType
	// Path is the field the operation applies to; "" means the value
	// itself.
	Path string
	// Segments, for OpMerge and OpAppend, is a nested path; when it is not
	// nil it is sent instead of Path.
	Segments []string
	// Value is the operand of OpSet, OpMerge and OpAppend: any value that
	// encodes to JSON. An Op decoded from JSON holds a json.RawMessage.
	Value any
	// By is the operand of OpIncrement and OpDecrement.
	By int64
}

// Set replaces the field path (the whole value for "") with value.
func Set(path string, value any) Op { return Op{Type: OpSet, Path: path, Value: value} }

// Merge merges the object value, shallowly, into the stored value (which
// must be an object; a missing value counts as an empty object).
func Merge(value any) Op { return Op{Type: OpMerge, Value: value} }

// MergeAt merges the object value, shallowly, into the object at the nested
// path segments, creating (or replacing with) objects on the way.
func MergeAt(value any, segments ...string) Op {
	return Op{Type: OpMerge, Segments: nonNil(segments), Value: value}
}

// Increment adds by to the number in field path (the value itself for "").
// A missing field is created with the value by.
func Increment(path string, by int64) Op { return Op{Type: OpIncrement, Path: path, By: by} }

// Decrement subtracts by from the number in field path (the value itself
// for ""). A missing field is created with the value -by.
func Decrement(path string, by int64) Op { return Op{Type: OpDecrement, Path: path, By: by} }

// Append appends value to the array in field path (the value itself for
// ""), or concatenates it when both are strings. A missing or null field
// becomes [value], or value itself when value is a string.
func Append(path string, value any) Op { return Op{Type: OpAppend, Path: path, Value: value} }

// AppendAt is Append at a nested path of segments, creating objects on the
// way. A missing field at the end becomes [value] (an array even for a
// string value, as the engine does).
func AppendAt(value any, segments ...string) Op {
	return Op{Type: OpAppend, Segments: nonNil(segments), Value: value}
}

// Remove deletes the field path; for "" the value becomes null.
func Remove(path string) Op { return Op{Type: OpRemove, Path: path} }

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// MarshalJSON encodes the operation in the engine's form.
func (o Op) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"type":`)
	t, _ := json.Marshal(string(o.Type))
	b.Write(t)
	writeField := func(name string, v any) error {
		enc, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("update: %s operation %s: %w", o.Type, name, err)
		}
		b.WriteString(`,"` + name + `":`)
		b.Write(enc)
		return nil
	}
	var err error
	switch o.Type {
	case OpSet:
		if err = writeField("path", o.Path); err == nil {
			err = writeField("value", o.Value)
		}
	case OpIncrement, OpDecrement:
		if err = writeField("path", o.Path); err == nil {
			err = writeField("by", o.By)
		}
	case OpRemove:
		err = writeField("path", o.Path)
	case OpMerge, OpAppend:
		switch {
		case o.Segments != nil:
			err = writeField("path", o.Segments)
		case o.Path != "":
			err = writeField("path", o.Path)
		}
		if err == nil {
			err = writeField("value", o.Value)
		}
	default:
		return nil, fmt.Errorf("update: unknown operation type %q", o.Type)
	}
	if err != nil {
		return nil, err
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON decodes an operation in the engine's form; it fails, as
// the engine's decoding does, on an unknown type or a missing field.
func (o *Op) UnmarshalJSON(data []byte) error {
	var raw struct {
		Type  *string         `json:"type"`
		Path  json.RawMessage `json:"path"`
		Value json.RawMessage `json:"value"`
		By    *int64          `json:"by"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	if raw.Type == nil {
		return errors.New("missing field `type`")
	}
	op := Op{Type: OpType(*raw.Type)}
	needPath, needValue, needBy, multi := false, false, false, false
	switch op.Type {
	case OpSet:
		needPath = true
	case OpIncrement, OpDecrement:
		needPath, needBy = true, true
	case OpRemove:
		needPath = true
	case OpMerge, OpAppend:
		needValue, multi = true, true
	default:
		return fmt.Errorf("unknown variant `%s`, expected one of `set`, `merge`, `increment`, `decrement`, `append`, `remove`", *raw.Type)
	}
	if isNull(raw.Path) {
		if needPath {
			return errors.New("missing field `path`")
		}
	} else if err := json.Unmarshal(raw.Path, &op.Path); err != nil {
		if !multi || json.Unmarshal(raw.Path, &op.Segments) != nil {
			return fmt.Errorf("invalid field `path`: %w", err)
		}
		op.Segments = nonNil(op.Segments)
	}
	if raw.Value != nil {
		op.Value = json.RawMessage(bytes.Clone(raw.Value))
	} else if needValue {
		return errors.New("missing field `value`")
	}
	if raw.By != nil {
		op.By = *raw.By
	} else if needBy {
		return errors.New("missing field `by`")
	}
	*o = op
	return nil
}

func isNull(r json.RawMessage) bool {
	t := bytes.TrimSpace(r)
	return len(t) == 0 || string(t) == "null"
}

// Error is an operation the engine skipped: OpIndex is its place in the
// list, Code one of the Code* constants. It implements error, so a
// result's Err works with errors.As(err, &update.Error{}).
type Error struct {
	OpIndex int    `json:"op_index"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// DocURL points to the engine's documentation of the code.
	DocURL string `json:"doc_url,omitempty"`
}

// Error implements the error interface.
func (e Error) Error() string {
	return fmt.Sprintf("update: op %d: %s: %s", e.OpIndex, e.Code, e.Message)
}

// Errors joins op errors into one error (nil for none); each stays
// reachable with errors.As.
func Errors(errs []Error) error {
	if len(errs) == 0 {
		return nil
	}
	es := make([]error, len(errs))
	for i, e := range errs {
		es[i] = e
	}
	return errors.Join(es...)
}

// The codes of Error (those of the engine). A path error of an operation
// other than merge is "<op>.path.<reason>", e.g. "set.path.proto_polluted".
const (
	CodeMergePathTooDeep          = "merge.path.too_deep"
	CodeMergeSegmentTooLong       = "merge.path.segment_too_long"
	CodeMergeEmptySegment         = "merge.path.empty_segment"
	CodeMergePathProto            = "merge.path.proto_polluted"
	CodeMergeValueTooDeep         = "merge.value.too_deep"
	CodeMergeValueTooManyKeys     = "merge.value.too_many_keys"
	CodeMergeValueProto           = "merge.value.proto_polluted"
	CodeMergeValueNotObject       = "merge.value.not_an_object"
	CodeSetTargetNotObject        = "set.target_not_object"
	CodeAppendTargetNotObject     = "append.target_not_object"
	CodeAppendTypeMismatch        = "append.type_mismatch"
	CodeIncrementTargetNotObject  = "increment.target_not_object"
	CodeIncrementNotNumber        = "increment.not_number"
	CodeDecrementTargetNotObject  = "decrement.target_not_object"
	CodeDecrementNotNumber        = "decrement.not_number"
	CodeRemoveTargetNotObject     = "remove.target_not_object"
	docURL                        = "https://iii.dev/docs/workers/iii-state#error-codes"
	maxPathDepth, maxSegmentBytes = 32, 256
	maxValueDepth, maxValueKeys   = 16, 1024
)

func protoKey(s string) bool {
	return s == "__proto__" || s == "constructor" || s == "prototype"
}

// Segments of a path for validation: "" is none.
func fieldSegments(p string) []string {
	if p == "" {
		return nil
	}
	return []string{p}
}

func (o Op) segments() []string {
	if o.Segments != nil {
		return o.Segments
	}
	return fieldSegments(o.Path)
}

func pathLabel(p string) string {
	if p == "" {
		return "root"
	}
	return p
}

func segmentsLabel(s []string) string {
	if len(s) == 0 {
		return "root"
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// opSchema is the JSON shape of an Op, for the JSON Schemas the SDK
// derives from Go types.
type opSchema struct {
	Type  string `json:"type" jsonschema:"enum=set,enum=merge,enum=increment,enum=decrement,enum=append,enum=remove"`
	Path  any    `json:"path,omitempty" jsonschema:"oneof_type=string;array"`
	Value any    `json:"value,omitempty"`
	By    int64  `json:"by,omitempty"`
}

// JSONSchemaAlias makes JSON Schema reflection describe an Op by its JSON
// form.
func (Op) JSONSchemaAlias() any { return opSchema{} }
