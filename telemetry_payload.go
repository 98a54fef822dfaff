package iii

import (
	"bytes"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/iii-go/iii/connection/wire"
)

// The span events of invocation payloads, and their attributes, as the
// Rust and Node SDKs record them.
const (
	eventInvocationInput  = "iii.invocation.input"
	eventInvocationOutput = "iii.invocation.output"
	attrPayloadJSON       = attribute.Key("iii.payload.json")
	attrPayloadTruncated  = attribute.Key("iii.payload.truncated")
	attrPayloadOK         = attribute.Key("iii.payload.ok")
)

// Placeholders of payload events: the value of a secret-looking key, and
// the end of a payload cut at its size bound.
const (
	redactedValue   = "[REDACTED]"
	truncatedMarker = `..."[TRUNCATED]"`
)

// payloadConfig says whether invocation spans get payload events.
type payloadConfig struct {
	on  bool
	max int // bytes of a payload's JSON; 0: unlimited
}

// newPayloadConfig applies the options, then the environment.
func newPayloadConfig(o *TelemetryOptions) payloadConfig {
	c := payloadConfig{on: !o.DisableTracePayloads && !payloadsDisabledByEnv(), max: o.TracePayloadMaxBytes}
	if c.max <= 0 {
		if n, err := strconv.Atoi(strings.TrimSpace(os.Getenv("III_TRACE_PAYLOAD_MAX_BYTES"))); err == nil && n > 0 {
			c.max = n
		}
	}
	return c
}

// payloadsDisabledByEnv reads III_DISABLE_TRACE_PAYLOADS: "1" or "true"
// (any case) turn the payload events off, as in the Rust and Node SDKs.
func payloadsDisabledByEnv() bool {
	v := strings.TrimSpace(os.Getenv("III_DISABLE_TRACE_PAYLOADS"))
	return v == "1" || strings.EqualFold(v, "true")
}

// input records the invocation's input on its span.
func (c payloadConfig) input(span trace.Span, data json.RawMessage) {
	if !span.IsRecording() {
		return
	}
	span.AddEvent(eventInvocationInput, trace.WithAttributes(c.inputAttrs(nil, data)...))
}

// output records the invocation's result, or its error as
// {"error": message}, on its span.
func (c payloadConfig) output(span trace.Span, res *wire.InvocationResult) {
	if !span.IsRecording() {
		return
	}
	span.AddEvent(eventInvocationOutput, trace.WithAttributes(c.outputAttrs(nil, res)...))
}

// inputAttrs appends the attributes of the input event to dst.
func (c payloadConfig) inputAttrs(dst []attribute.KeyValue, data json.RawMessage) []attribute.KeyValue {
	s, cut := c.render(data)
	return append(dst, attrPayloadJSON.String(s), attrPayloadTruncated.Bool(cut))
}

// outputAttrs appends the attributes of the output event to dst.
func (c payloadConfig) outputAttrs(dst []attribute.KeyValue, res *wire.InvocationResult) []attribute.KeyValue {
	data, ok := res.Result, res.Error == nil
	if !ok {
		data = errorPayload(res.Error.Message)
	}
	s, cut := c.render(data)
	return append(dst, attrPayloadJSON.String(s), attrPayloadTruncated.Bool(cut), attrPayloadOK.Bool(ok))
}

// errorPayload returns {"error": msg} as json.Marshal encodes that map,
// without the map.
func errorPayload(msg string) []byte {
	m, _ := json.Marshal(msg)
	b := make([]byte, 0, len(`{"error":}`)+len(m))
	return append(append(append(b, `{"error":`...), m...), '}')
}

// render returns the JSON of a payload with secrets redacted, cut to the
// size bound, and whether it was cut.
func (c payloadConfig) render(data json.RawMessage) (string, bool) {
	if len(bytes.TrimSpace(data)) == 0 {
		data = json.RawMessage("null")
	}
	s := string(redactJSON(data))
	if c.max <= 0 || len(s) <= c.max {
		return s, false
	}
	if c.max <= len(truncatedMarker) {
		return truncatedMarker[:c.max], true
	}
	cut := c.max - len(truncatedMarker)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + truncatedMarker, true
}

// Every key whose value is redacted contains one of the secret words
// (key, password, secret, credential, authorization, token, bearer) in
// some case; a payload without any of them is recorded as it is, without
// being parsed.

// redactJSON returns data with the values of secret-looking keys replaced
// by "[REDACTED]", at any depth. Data that cannot hold such a key is
// returned as it is.
func redactJSON(data []byte) []byte {
	if !mayHoldSecret(data) {
		return data
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return data // not JSON: no keys either
	}
	out, err := json.Marshal(redactValue(v))
	if err != nil {
		return data
	}
	return out
}

// mayHoldSecret reports whether data may hold a key whose value redactJSON
// replaces: an object key (a string followed by ':') containing one of
// secret words, in any case. It looks only at the strings just before each
// ':', so its cost is a fast byte search, not a scan per word. It errs on
// the side of true: a key it cannot delimit (escaped, or longer than
// maxKeyScan) counts as possibly secret, and so does a ':' inside a string
// value that looks like the end of a key.
func mayHoldSecret(data []byte) bool {
	for i := 0; ; i++ {
		j := bytes.IndexByte(data[i:], ':')
		if j < 0 {
			return false
		}
		i += j
		end := i - 1
		for end >= 0 && isJSONSpace(data[end]) {
			end--
		}
		if end < 0 || data[end] != '"' {
			continue
		}
		lo := max(end-maxKeyScan, 0)
		start := bytes.LastIndexByte(data[lo:end], '"')
		if start < 0 {
			return true // a key longer than maxKeyScan
		}
		start += lo
		key := data[start+1 : end]
		if bytes.IndexByte(key, '\\') >= 0 || start > 0 && data[start-1] == '\\' {
			return true // escapes: the decoded key may differ
		}
		if holdsSecretWord(key) {
			return true
		}
	}
}

// holdsSecretWord reports whether key contains one of the secret words, in any
// case: one pass, comparing a word only where its first letter is.
func holdsSecretWord(key []byte) bool {
	for i, c := range key {
		var w string
		switch c | 0x20 {
		case 'k':
			w = "key"
		case 'p':
			w = "password"
		case 's':
			w = "secret"
		case 'c':
			w = "credential"
		case 'a':
			w = "authorization"
		case 't':
			w = "token"
		case 'b':
			w = "bearer"
		default:
			continue
		}
		if hasPrefixFold(key[i:], w) {
			return true
		}
	}
	return false
}

// hasPrefixFold reports whether b starts with the lower-case ASCII word w
// in any case.
func hasPrefixFold(b []byte, w string) bool {
	if len(b) < len(w) {
		return false
	}
	for j := 0; j < len(w); j++ {
		if b[j]|0x20 != w[j] {
			return false
		}
	}
	return true
}

// maxKeyScan bounds how far back mayHoldSecret looks for a key's opening
// quote.
const maxKeyScan = 256

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func redactValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if secretKey(k) {
				x[k] = redactedValue
			} else {
				x[k] = redactValue(e)
			}
		}
	case []any:
		for i, e := range x {
			x[i] = redactValue(e)
		}
	}
	return v
}

// secretKey reports whether the value of key k is redacted: k contains
// (in any case) api_key, apikey, api-key, password, secret, credential,
// authorization, auth_token, access_token, refresh_token, bearer,
// private_key or client_secret, or is "token" or ends in _token or -token.
// (A plain "token" inside a word, as in "tokenizer", is not enough.)
func secretKey(k string) bool {
	l := strings.ToLower(k)
	for _, f := range []string{"api_key", "apikey", "api-key", "password", "secret", "credential",
		"authorization", "auth_token", "access_token", "refresh_token", "bearer", "private_key", "client_secret"} {
		if strings.Contains(l, f) {
			return true
		}
	}
	return l == "token" || strings.HasSuffix(l, "_token") || strings.HasSuffix(l, "-token")
}

// The parts of a payload event's OTLP JSON around its variable values, as
// otelws encodes an event with these attributes.
const (
	eventJSONTime      = `{"timeUnixNano":"`
	eventJSONInput     = `","name":"` + eventInvocationInput + `","attributes":[{"key":"` + string(attrPayloadJSON) + `","value":{"stringValue":`
	eventJSONOutput    = `","name":"` + eventInvocationOutput + `","attributes":[{"key":"` + string(attrPayloadJSON) + `","value":{"stringValue":`
	eventJSONTruncated = `}},{"key":"` + string(attrPayloadTruncated) + `","value":{"boolValue":`
	eventJSONOK        = `}},{"key":"` + string(attrPayloadOK) + `","value":{"boolValue":true`
	eventJSONEnd       = `}}]}`
)

// appendInputEvent appends the OTLP JSON of the iii.invocation.input event
// of data at time at: what otelws encodes for the event that inputAttrs
// describes, rendered straight from the payload's bytes.
func (c payloadConfig) appendInputEvent(b []byte, at time.Time, data json.RawMessage) []byte {
	b = append(b, eventJSONTime...)
	b = strconv.AppendInt(b, at.UnixNano(), 10)
	b = append(b, eventJSONInput...)
	b = c.appendRendered(b, data)
	return append(b, eventJSONEnd...)
}

// appendOutputEvent appends the OTLP JSON of the iii.invocation.output
// event of a successful invocation's result.
func (c payloadConfig) appendOutputEvent(b []byte, at time.Time, result json.RawMessage) []byte {
	b = append(b, eventJSONTime...)
	b = strconv.AppendInt(b, at.UnixNano(), 10)
	b = append(b, eventJSONOutput...)
	b = c.appendRendered(b, result)
	b = append(b, eventJSONOK...)
	return append(b, eventJSONEnd...)
}

// appendRendered appends what render returns as the JSON string of the
// payload attribute, then the end of that attribute and the start of the
// truncated one's value, without building the string: it is the same text.
func (c payloadConfig) appendRendered(b []byte, data json.RawMessage) []byte {
	if len(bytes.TrimSpace(data)) == 0 {
		data = json.RawMessage("null")
	}
	data = redactJSON(data)
	cut := false
	if c.max > 0 && len(data) > c.max {
		cut = true
		if c.max <= len(truncatedMarker) {
			b = wire.AppendString(b, truncatedMarker[:c.max])
			return append(append(b, eventJSONTruncated...), "true"...)
		}
		n := c.max - len(truncatedMarker)
		for n > 0 && !utf8.RuneStart(data[n]) {
			n--
		}
		// The escaped form of a string cut at a rune's start is the
		// escaped prefix followed by the escaped marker.
		b = wire.AppendString(b, unsafeString(data[:n]))
		b = append(b[:len(b)-1], truncatedMarkerJSON[1:]...) // the marker's escaped text replaces the closing quote
	} else {
		b = wire.AppendString(b, unsafeString(data))
	}
	b = append(b, eventJSONTruncated...)
	return strconv.AppendBool(b, cut)
}

// truncatedMarkerJSON is truncatedMarker as a JSON string.
var truncatedMarkerJSON = wire.AppendString(nil, truncatedMarker)

// unsafeString is b as a string without a copy, for functions that only
// read it while b does not change.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
