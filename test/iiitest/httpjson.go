package iiitest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"strings"
)

// canonicalJSON re-encodes a JSON value the way the engine (serde_json
// without preserve_order) writes one it has parsed: compact, object keys
// sorted (the last of duplicate keys wins), floats in their shortest form
// with ".0" for whole numbers, and strings escaping only what JSON
// requires. Invalid JSON gives "null".
func canonicalJSON(raw []byte) []byte {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if d.Decode(&v) != nil {
		return []byte("null")
	}
	return appendCanonical(nil, v)
}

func appendCanonical(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		return strconv.AppendBool(b, v)
	case string:
		return appendJSONString(b, v)
	case json.Number:
		return appendNumber(b, string(v))
	case []any:
		b = append(b, '[')
		for i, x := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendCanonical(b, x)
		}
		return append(b, ']')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendCanonical(b, v[k])
		}
		return append(b, '}')
	}
	return append(b, "null"...)
}

// appendNumber writes a JSON number as serde_json does after parsing it:
// integers that fit 64 bits as they are, everything else as an f64.
func appendNumber(b []byte, s string) []byte {
	if !strings.ContainsAny(s, ".eE") {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return strconv.AppendInt(b, n, 10)
		}
		if n, err := strconv.ParseUint(s, 10, 64); err == nil {
			return strconv.AppendUint(b, n, 10)
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return append(b, "null"...)
	}
	return appendFloat(b, f)
}

// appendFloat formats a finite f64 like Rust's ryu: the shortest digits,
// in plain notation when the decimal point falls within -5 < k <= 16 and
// in scientific notation ("1e21", "1.5e-7") otherwise.
func appendFloat(b []byte, f float64) []byte {
	if f == 0 {
		if math.Signbit(f) {
			return append(b, "-0.0"...)
		}
		return append(b, "0.0"...)
	}
	if f < 0 {
		b = append(b, '-')
		f = -f
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±xx
	mant, exp, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	k := x + 1 // the decimal point is after k digits
	n := len(digits)
	switch {
	case 0 < k && k <= 16:
		if n <= k {
			b = append(b, digits...)
			b = append(b, strings.Repeat("0", k-n)...)
			return append(b, ".0"...)
		}
		b = append(b, digits[:k]...)
		b = append(b, '.')
		return append(b, digits[k:]...)
	case -5 < k && k <= 0:
		b = append(b, "0."...)
		b = append(b, strings.Repeat("0", -k)...)
		return append(b, digits...)
	}
	b = append(b, digits[0])
	if n > 1 {
		b = append(b, '.')
		b = append(b, digits[1:]...)
	}
	b = append(b, 'e')
	return strconv.AppendInt(b, int64(k-1), 10)
}

// appendJSONString writes s as a JSON string escaping only quotes,
// backslashes and control characters, as serde_json does.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		default:
			if c < 0x20 {
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			} else {
				b = append(b, c)
			}
		}
	}
	return append(b, '"')
}

// childTraceparent is the traceparent of a call the engine makes for an
// HTTP request: the request's trace (when its traceparent header is valid)
// with a new span id, else a new sampled trace (seen on engine v0.22.1).
func childTraceparent(header string) string {
	var span [8]byte
	rand.Read(span[:])
	if tp := normalizeTraceparent(header); tp != "" {
		parts := strings.Split(tp, "-")
		parts[2] = hex.EncodeToString(span[:])
		return strings.Join(parts, "-")
	}
	var trace [16]byte
	rand.Read(trace[:])
	return "00-" + hex.EncodeToString(trace[:]) + "-" + hex.EncodeToString(span[:]) + "-01"
}
