package update

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Apply applies ops in order to old, the stored value (nil or empty: no
// value), as the engine's state and stream stores do, and returns the new
// value and the errors of the operations it skipped. A missing value
// starts as an empty object ({}). The error is for an old value that is
// not JSON or an operand that does not encode to JSON.
//
// A custom stream provider (stream.Updater) can use it to implement
// updates the way the engine's own store does.
func Apply(old json.RawMessage, ops []Op) (json.RawMessage, []Error, error) {
	var cur any = map[string]any{}
	missing := len(bytes.TrimSpace(old)) == 0
	if !missing {
		v, err := decode(old)
		if err != nil {
			return nil, nil, fmt.Errorf("update: stored value: %w", err)
		}
		cur = v
	}
	var errs []Error
	fail := func(i int, code, format string, args ...any) {
		errs = append(errs, Error{OpIndex: i, Code: code, Message: fmt.Sprintf(format, args...), DocURL: docURL})
	}
	for i, op := range ops {
		var val any
		if op.Type == OpSet || op.Type == OpMerge || op.Type == OpAppend {
			v, err := operand(op.Value)
			if err != nil {
				return nil, nil, fmt.Errorf("update: op %d value: %w", i, err)
			}
			val = v
		}
		switch op.Type {
		case OpSet:
			if !validPath(string(op.Type), i, fieldSegments(op.Path), fail) {
				continue
			}
			if op.Path == "" {
				cur, missing = val, false
			} else if m, ok := cur.(map[string]any); ok {
				m[op.Path], missing = val, false
			} else {
				fail(i, CodeSetTargetNotObject, "Cannot set at path '%s': target is %s, expected object.", pathLabel(op.Path), typeName(cur))
			}
		case OpMerge:
			segs := op.segments()
			if !validPath("merge", i, segs, fail) || !validMergeValue(i, val, fail) {
				continue
			}
			src := val.(map[string]any)
			if len(segs) == 0 {
				if m, ok := cur.(map[string]any); ok {
					for k, v := range src {
						m[k] = v
					}
					missing = false
				}
				// Not an object: the engine skips the op without an error.
				continue
			}
			var target map[string]any
			cur, target = walkOrCreate(cur, segs)
			for k, v := range src {
				target[k] = v
			}
			missing = false
		case OpIncrement, OpDecrement:
			if !validPath(string(op.Type), i, fieldSegments(op.Path), fail) {
				continue
			}
			dec := op.Type == OpDecrement
			notNumber, notObject := CodeIncrementNotNumber, CodeIncrementTargetNotObject
			verb := "increment"
			if dec {
				notNumber, notObject, verb = CodeDecrementNotNumber, CodeDecrementTargetNotObject, "decrement"
			}
			if op.Path == "" {
				if missing {
					cur = startValue(op.By, dec)
				} else if n, ok := addNumber(cur, op.By, dec); ok {
					cur = n
				} else {
					fail(i, notNumber, "Expected number at path '%s', got %s.", pathLabel(op.Path), typeName(cur))
					continue
				}
				missing = false
			} else if m, ok := cur.(map[string]any); ok {
				if v, exists := m[op.Path]; exists {
					n, ok := addNumber(v, op.By, dec)
					if !ok {
						fail(i, notNumber, "Expected number at path '%s', got %s.", pathLabel(op.Path), typeName(v))
						continue
					}
					m[op.Path] = n
				} else {
					m[op.Path] = startValue(op.By, dec)
				}
				missing = false
			} else {
				fail(i, notObject, "Cannot %s at path '%s': target is %s, expected object.", verb, pathLabel(op.Path), typeName(cur))
			}
		case OpAppend:
			segs := op.segments()
			if !validPath("append", i, segs, fail) {
				continue
			}
			m, isObj := cur.(map[string]any)
			switch {
			case len(segs) == 0:
				if missing {
					cur = nil
				}
				var ok bool
				if cur, ok = appendTo(cur, val, "root", i, fail); ok {
					missing = false
				}
			case !isObj:
				fail(i, CodeAppendTargetNotObject, "Cannot append at path '%s': target is %s, expected object.", segmentsLabel(segs), typeName(cur))
			case len(segs) == 1:
				leaf := segs[0]
				if v, exists := m[leaf]; exists {
					m[leaf], _ = appendTo(v, val, leaf, i, fail)
				} else {
					m[leaf] = initialAppend(val)
				}
				missing = false
			default:
				leaf := segs[len(segs)-1]
				var parent map[string]any
				cur, parent = walkOrCreate(cur, segs[:len(segs)-1])
				if v, exists := parent[leaf]; exists {
					parent[leaf], _ = appendTo(v, val, leaf, i, fail)
				} else {
					parent[leaf] = []any{val}
				}
				missing = false
			}
		case OpRemove:
			if !validPath("remove", i, fieldSegments(op.Path), fail) {
				continue
			}
			if op.Path == "" {
				cur, missing = nil, false
			} else if m, ok := cur.(map[string]any); ok {
				delete(m, op.Path)
				missing = false
			} else {
				fail(i, CodeRemoveTargetNotObject, "Cannot remove at path '%s': target is %s, expected object.", pathLabel(op.Path), typeName(cur))
			}
		default:
			return nil, nil, fmt.Errorf("update: op %d: unknown operation type %q", i, op.Type)
		}
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false) // as the engine writes JSON
	if err := enc.Encode(cur); err != nil {
		return nil, nil, fmt.Errorf("update: new value: %w", err)
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n")), errs, nil
}

// decode parses JSON keeping numbers as written (json.Number).
func decode(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, fmt.Errorf("trailing data after JSON value")
	}
	return v, nil
}

// operand turns an Op's Value into a decoded JSON tree (a fresh one per
// use, so that the result never aliases the caller's data).
func operand(v any) (any, error) {
	var raw []byte
	switch v := v.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		raw = v
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		raw = b
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	return decode(raw)
}

func validPath(op string, i int, segs []string, fail func(int, string, string, ...any)) bool {
	code := func(reason string) string { return op + ".path." + reason }
	if len(segs) > maxPathDepth {
		fail(i, code("too_deep"), "Path depth %d exceeds maximum of %d", len(segs), maxPathDepth)
		return false
	}
	for _, s := range segs {
		switch {
		case s == "":
			fail(i, code("empty_segment"), "Path contains an empty segment")
			return false
		case len(s) > maxSegmentBytes:
			fail(i, code("segment_too_long"), "Path segment of %d bytes exceeds maximum of %d", len(s), maxSegmentBytes)
			return false
		case protoKey(s):
			fail(i, code("proto_polluted"), "Path segment '%s' is not allowed (prototype pollution).", s)
			return false
		}
	}
	return true
}

func validMergeValue(i int, v any, fail func(int, string, string, ...any)) bool {
	m, ok := v.(map[string]any)
	if !ok {
		fail(i, CodeMergeValueNotObject, "Merge value must be a JSON object")
		return false
	}
	if len(m) > maxValueKeys {
		fail(i, CodeMergeValueTooManyKeys, "Merge value has %d top-level keys, exceeds maximum of %d", len(m), maxValueKeys)
		return false
	}
	for _, k := range sortedKeys(m) {
		if protoKey(k) {
			fail(i, CodeMergeValueProto, "Merge value top-level key %s is a prototype-pollution sink", strconv.Quote(k))
			return false
		}
	}
	if d := depth(v); d > maxValueDepth {
		fail(i, CodeMergeValueTooDeep, "Merge value JSON nesting depth %d exceeds maximum of %d", d, maxValueDepth)
		return false
	}
	return true
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	// Insertion sort: merge values are small and this keeps imports down.
	for i := 1; i < len(ks); i++ {
		for j := i; j > 0 && ks[j] < ks[j-1]; j-- {
			ks[j], ks[j-1] = ks[j-1], ks[j]
		}
	}
	return ks
}

func depth(v any) int {
	d := 0
	switch v := v.(type) {
	case map[string]any:
		for _, c := range v {
			d = max(d, depth(c))
		}
		return 1 + d
	case []any:
		for _, c := range v {
			d = max(d, depth(c))
		}
		return 1 + d
	}
	return 0
}

// walkOrCreate makes cur an object if it is not one, then walks segs,
// creating (or replacing with) objects, and returns the new root and the
// object at the end.
func walkOrCreate(cur any, segs []string) (any, map[string]any) {
	root, ok := cur.(map[string]any)
	if !ok {
		root = map[string]any{}
	}
	node := root
	for _, s := range segs {
		next, ok := node[s].(map[string]any)
		if !ok {
			next = map[string]any{}
			node[s] = next
		}
		node = next
	}
	return root, node
}

func appendTo(target, v any, path string, i int, fail func(int, string, string, ...any)) (any, bool) {
	switch t := target.(type) {
	case []any:
		return append(t, v), true
	case string:
		if s, ok := v.(string); ok {
			return t + s, true
		}
		fail(i, CodeAppendTypeMismatch, "Expected string append value at path '%s', got %s.", pathLabel(path), typeName(v))
		return target, false
	case nil:
		return initialAppend(v), true
	}
	fail(i, CodeAppendTypeMismatch, "Cannot append at path '%s': target is %s, expected array, string, null, or missing field.", pathLabel(path), typeName(target))
	return target, false
}

func initialAppend(v any) any {
	if _, ok := v.(string); ok {
		return v
	}
	return []any{v}
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number, float64:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	}
	return "object"
}

func startValue(by int64, dec bool) json.Number {
	if !dec {
		return json.Number(strconv.FormatInt(by, 10))
	}
	if by == math.MinInt64 {
		return json.Number(strconv.FormatUint(1<<63, 10))
	}
	return json.Number(strconv.FormatInt(-by, 10))
}

// addNumber adds (or subtracts) by to a number as the engine does: as a
// signed integer if it fits, else as an unsigned one, else as a float; it
// fails on a non-number, an integer overflow or a non-finite float.
func addNumber(v any, by int64, dec bool) (json.Number, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return "", false
	}
	s := string(n)
	isInt := !strings.ContainsAny(s, ".eE")
	if isInt {
		i, ierr := strconv.ParseInt(s, 10, 64)
		if ierr == nil {
			var r int64
			var over bool
			if dec {
				r = i - by
				over = (by > 0 && r > i) || (by < 0 && r < i)
			} else {
				r = i + by
				over = (by > 0 && r < i) || (by < 0 && r > i)
			}
			if !over {
				return json.Number(strconv.FormatInt(r, 10)), true
			}
		}
		u, uerr := strconv.ParseUint(s, 10, 64)
		if uerr == nil {
			add := (by >= 0) != dec // adding a magnitude to u
			mag := uint64(by)
			if by < 0 {
				mag = uint64(-(by + 1)) + 1
			}
			if add {
				if u+mag < u {
					return "", false
				}
				return json.Number(strconv.FormatUint(u+mag, 10)), true
			}
			if mag > u {
				return "", false
			}
			return json.Number(strconv.FormatUint(u-mag, 10)), true
		}
		if ierr == nil {
			return "", false // an i64 that overflowed: the engine fails it
		}
		// Too big for 64 bits: the engine holds it as a float.
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return "", false
	}
	if dec {
		f -= float64(by)
	} else {
		f += float64(by)
	}
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return "", false
	}
	return json.Number(formatFloat(f)), true
}

// formatFloat writes a float the way the engine's JSON encoder does (the
// shortest form; integral values keep ".0"; exponent form outside
// 1e-5..1e16).
func formatFloat(f float64) string {
	a := math.Abs(f)
	if a == 0 || (a >= 1e-5 && a < 1e16) {
		s := strconv.FormatFloat(f, 'f', -1, 64)
		if !strings.Contains(s, ".") {
			s += ".0"
		}
		return s
	}
	s := strconv.FormatFloat(f, 'e', -1, 64)
	mant, exp, _ := strings.Cut(s, "e")
	exp = strings.TrimPrefix(exp, "+")
	neg := strings.HasPrefix(exp, "-")
	exp = strings.TrimLeft(strings.TrimPrefix(exp, "-"), "0")
	if neg {
		exp = "-" + exp
	}
	return mant + "e" + exp
}
