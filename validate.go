package iii

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"

	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/registry"
)

// ErrInvalidSchema: ValidateInput was given for a function whose request
// schema is missing (WithoutSchemas, or a raw function without
// WithRequestSchema) or is not a JSON Schema the validator can compile.
var ErrInvalidSchema = errors.New("iii: invalid request schema")

// ValidateInput makes the function check each invocation's payload against
// the request schema it publishes (derived from Req, or given with
// WithRequestSchema) before the handler runs. A payload that does not
// match is answered with an invalid_request error whose message names each
// offending field and the rule it breaks, e.g.
//
//	payload of orders::place does not match its schema: qty: minimum: got 0, want 1
//
// and the handler does not run. The schema is compiled once, when the
// function is registered; registration fails with ErrInvalidSchema if there
// is none or it does not compile. Formats ("format" keyword, e.g.
// date-time or email) are asserted. The "_caller_worker_id" member the
// engine adds to object payloads is not checked.
//
// Without this option nothing is checked: the payload only has to decode
// into Req (encoding/json ignores unknown fields and leaves missing ones
// zero), so a handler sees values its schema forbids.
//
// Schemas derived from Go types: RegisterFunction derives the request and response schemas from Req and
// Resp with github.com/invopop/jsonschema (draft 2020-12), with nested
// types inlined. What it reads:
//
//   - json tags: the property name, "-" to leave a field out. A field is
//     required unless its json tag has omitempty or omitzero; a pointer
//     without omitempty is still required (it may be null only with
//     jsonschema:"nullable").
//   - jsonschema tags, comma-separated: required, nullable, title=,
//     description=, enum= (repeatable), default=, example=; for strings
//     minLength=, maxLength=, pattern=, format= (date-time, email, uri,
//     uuid, ...); for numbers minimum=, maximum=, exclusiveMinimum=,
//     exclusiveMaximum=, multipleOf=; for slices minItems=, maxItems=,
//     uniqueItems=true. jsonschema:"-" leaves a field out of the schema.
//   - jsonschema_description and jsonschema_extras tags, and a
//     JSONSchema() *jsonschema.Schema method on a type to replace its
//     schema altogether.
//
// Structs get additionalProperties: false, so with ValidateInput an
// unknown field is refused. Go types map to JSON types as encoding/json
// encodes them (time.Time is a date-time string, []byte a base64 string).
func ValidateInput() FunctionOption { return func(c *functionConfig) { c.validate = true } }

// validating wraps h so that it first checks each payload against the
// request schema of function id.
func validating(id string, schema json.RawMessage, h registry.Handler) (registry.Handler, error) {
	if schema == nil {
		return nil, fmt.Errorf("%w: ValidateInput on function %q, which publishes no request schema", ErrInvalidSchema, id)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return nil, fmt.Errorf("%w: function %q: %v", ErrInvalidSchema, id, err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	const loc = "iii:request-schema" // never fetched: the schema is the only resource
	if err := c.AddResource(loc, doc); err != nil {
		return nil, fmt.Errorf("%w: function %q: %v", ErrInvalidSchema, id, err)
	}
	sch, err := c.Compile(loc)
	if err != nil {
		return nil, fmt.Errorf("%w: function %q: %v", ErrInvalidSchema, id, err)
	}
	return func(ctx context.Context, m *wire.InvokeFunction) (json.RawMessage, error) {
		if err := validatePayload(sch, m.Data); err != nil {
			return nil, &InvocationError{Code: CodeInvalidRequest, Err: err,
				Message: fmt.Sprintf("payload of %s does not match its schema: %v", m.FunctionID, err)}
		}
		return h(ctx, m)
	}, nil
}

// validatePayload checks data (empty means null) against sch.
func validatePayload(sch *jsonschema.Schema, data json.RawMessage) error {
	var v any
	if len(bytes.TrimSpace(data)) > 0 {
		var err error
		if v, err = jsonschema.UnmarshalJSON(bytes.NewReader(data)); err != nil {
			return fmt.Errorf("not valid JSON: %v", err)
		}
	}
	if obj, ok := v.(map[string]any); ok {
		delete(obj, "_caller_worker_id")
	}
	err := sch.Validate(v)
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	return &violations{list: violationsOf(ve, nil)}
}

// violations is a payload's mismatches with its schema, one per line of
// the form "field: rule: detail", sorted.
type violations struct{ list []string }

// maxViolations bounds how many mismatches a message names.
const maxViolations = 5

func (v *violations) Error() string {
	if len(v.list) <= maxViolations {
		return strings.Join(v.list, "; ")
	}
	return strings.Join(v.list[:maxViolations], "; ") + fmt.Sprintf("; and %d more", len(v.list)-maxViolations)
}

// violationsOf flattens the leaves of e into sorted, distinct lines.
func violationsOf(e *jsonschema.ValidationError, out []string) []string {
	var walk func(*jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		out = append(out, violationLines(e)...)
	}
	walk(e)
	slices.Sort(out)
	return slices.Compact(out)
}

// violationLines describes one leaf error: which field, which rule, what.
func violationLines(e *jsonschema.ValidationError) []string {
	switch k := e.ErrorKind.(type) {
	case *kind.Required:
		lines := make([]string, len(k.Missing))
		for i, f := range k.Missing {
			lines[i] = fieldPath(append(slices.Clip(e.InstanceLocation), f)) + ": required: missing"
		}
		return lines
	case *kind.AdditionalProperties:
		lines := make([]string, len(k.Properties))
		for i, f := range k.Properties {
			lines[i] = fieldPath(append(slices.Clip(e.InstanceLocation), f)) + ": additionalProperties: not allowed (no such field)"
		}
		return lines
	}
	rule := strings.Join(e.ErrorKind.KeywordPath(), "/")
	// The library's English text of the leaf alone is "at '': <detail>".
	_, detail, _ := strings.Cut((&jsonschema.ValidationError{ErrorKind: e.ErrorKind}).Error(), ": ")
	detail = strings.TrimPrefix(detail, rule+": ")
	return []string{fieldPath(e.InstanceLocation) + ": " + rule + ": " + detail}
}

// fieldPath names a location in the payload: "qty", "items[2].sku", or
// "payload" for the payload itself.
func fieldPath(loc []string) string {
	if len(loc) == 0 {
		return "payload"
	}
	var b strings.Builder
	for _, p := range loc {
		if _, err := strconv.Atoi(p); err == nil {
			b.WriteString("[" + p + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String()
}

// decodeError is the invalid_request reply to a payload that does not
// decode into a handler's request type. Its message speaks JSON (the
// field, the JSON type found and the one expected), never Go type names,
// which mean nothing to a remote caller.
func decodeError(functionID string, err error) *InvocationError {
	var msg string
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "payload"
		}
		msg = fmt.Sprintf("%s: type: got %s, want %s", field, te.Value, jsonType(te.Type))
	case errors.As(err, &se):
		msg = "not valid JSON: " + se.Error()
	default:
		// A field's own UnmarshalJSON or UnmarshalText failed (say, a
		// time that does not parse); its text is the best there is.
		msg = err.Error()
	}
	return &InvocationError{Code: CodeInvalidRequest, Err: err,
		Message: fmt.Sprintf("payload of %s does not decode: %s", functionID, msg)}
}

// jsonType names the JSON type that decodes into t.
func jsonType(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.String:
		return "string"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return "string (base64)"
		}
		return "array"
	case reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	}
	return "another type"
}
