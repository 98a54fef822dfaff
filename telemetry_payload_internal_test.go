package iii

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	metricapi "go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/iii-go/iii/connection/wire"
)

func TestPayloadRenderRedactsSecretKeysAtAnyDepth(t *testing.T) {
	c := payloadConfig{on: true}
	for in, want := range map[string]string{
		`{"a":1,"b":[true,null]}`:                                     `{"a":1,"b":[true,null]}`, // no secret word: as it is
		`{"API_KEY":"x","Model":"m"}`:                                 `{"API_KEY":"[REDACTED]","Model":"m"}`,
		`{"headers":{"Authorization":"Bearer x"},"keyboard":1}`:       `{"headers":{"Authorization":"[REDACTED]"},"keyboard":1}`,
		`{"accounts":[{"access_token":"a","user":"u"}]}`:              `{"accounts":[{"access_token":"[REDACTED]","user":"u"}]}`,
		`{"credentials":[{"token":"t"}]}`:                             `{"credentials":"[REDACTED]"}`,
		`{"token":1,"id-token":2,"tokenizer":3,"notification":"key"}`: `{"id-token":"[REDACTED]","notification":"key","token":"[REDACTED]","tokenizer":3}`,
		`{"n":12345678901234567890,"secret":{}}`:                      `{"n":12345678901234567890,"secret":"[REDACTED]"}`,
		``:                                                            `null`,
		`not json with a password`:                                    `not json with a password`,
	} {
		if got, cut := c.render(json.RawMessage(in)); got != want || cut {
			t.Errorf("render(%s) = %s (cut %v), want %s", in, got, cut, want)
		}
	}
}

func TestPayloadRenderCutsAtTheBoundOnARuneBoundary(t *testing.T) {
	in := json.RawMessage(`"` + strings.Repeat("é", 100) + `"`)
	for _, max := range []int{1, 5, len(truncatedMarker), len(truncatedMarker) + 1, 40, 41, 199} {
		got, cut := payloadConfig{on: true, max: max}.render(in)
		if !cut || len(got) > max || (max > len(truncatedMarker) && !strings.HasSuffix(got, truncatedMarker)) || !utf8.ValidString(got) {
			t.Errorf("max %d: %q (cut %v)", max, got, cut)
		}
	}
	if got, cut := (payloadConfig{on: true, max: 202}).render(in); cut || got != string(in) {
		t.Errorf("a payload within the bound is cut: %q", got)
	}
}

// benchInvocation measures the invocation span path, payload events on and
// off: go test -run '^$' -bench InvocationSpan -benchmem
func BenchmarkInvocationSpan(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "payloads-off"
		if on {
			name = "payloads-on"
		}
		b.Run(name, func(b *testing.B) {
			tp := sdktrace.NewTracerProvider() // no processor: the SDK's own cost only
			defer tp.Shutdown(context.Background())
			t := &telemetry{tracer: tp.Tracer(scopeName), payloads: payloadConfig{on: on}}
			t.initFunctionLimit(&TelemetryOptions{})
			t.instrument(metricNoop())
			m := &wire.InvokeFunction{FunctionID: "bench::echo", Data: json.RawMessage(`{"sku":"A-1","qty":2}`), HasInvocationID: true}
			res := &wire.InvocationResult{Result: json.RawMessage(`{"ok":true}`)}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				_, end := t.startInvocation(ctx, m)
				end(res)
			}
		})
	}
}

func metricNoop() metricapi.Meter { return metricnoop.NewMeterProvider().Meter(scopeName) }

func TestErrorPayloadIsTheMapsJSON(t *testing.T) {
	for _, msg := range []string{"", "no way", `quote " and \ backslash`, "<html> & \u2028 ünï\x01", "\xff invalid"} {
		want, _ := json.Marshal(map[string]string{"error": msg})
		if got := errorPayload(msg); string(got) != string(want) {
			t.Errorf("%q: %s, want %s", msg, got, want)
		}
	}
}

// mayHoldSecret is only a shortcut: whenever a full parse would redact a
// key, it must say so. Checked on generated documents with secret and
// harmless keys at any depth, values that look like keys, escapes and
// whitespace, and on hand-picked edge cases.
func TestMayHoldSecretMissesNoKeyTheParseWouldRedact(t *testing.T) {
	for _, doc := range []string{
		`{"password":1}`, `{ "Password" : 1 }`, "{\"a\":{\"b\":[{\"refresh_token\"\n:\t2}]}}",
		`{"\u0070assword":1}`, `{"pass\"word\"x":1,"x_token":2}`, `{"` + strings.Repeat("a", 300) + `_secret":1}`,
		`["a:b", {"api-key":1}]`, `{"v":"\"x\": 1","token":2}`,
	} {
		if parseFindsSecret(t, doc) && !mayHoldSecret([]byte(doc)) {
			t.Errorf("mayHoldSecret(%s) = false; the parse redacts it", doc)
		}
	}
	keys := []string{"a", "user", "Token", "api_key", "note", "AUTHORIZATION", "keyboard", "id-token", "x:y", "my secret", "pw\\\"d", "\\u0074oken"}
	vals := []string{`1`, `"password"`, `"a\": b"`, `null`, `"token: x"`}
	seed := uint64(1)
	rnd := func(n int) int { seed = seed*6364136223846793005 + 1442695040888963407; return int(seed>>33) % n }
	var gen func(depth int) string
	gen = func(depth int) string {
		if depth > 3 || rnd(3) == 0 {
			return vals[rnd(len(vals))]
		}
		if rnd(2) == 0 {
			parts := make([]string, rnd(3))
			for i := range parts {
				parts[i] = gen(depth + 1)
			}
			return "[" + strings.Join(parts, ",") + "]"
		}
		parts := make([]string, rnd(4))
		for i := range parts {
			parts[i] = `"` + keys[rnd(len(keys))] + `"` + []string{":", " : ", "\n:"}[rnd(3)] + gen(depth+1)
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	redacted := 0
	for range 20000 {
		doc := gen(0)
		if !json.Valid([]byte(doc)) {
			continue
		}
		if parseFindsSecret(t, doc) {
			redacted++
			if !mayHoldSecret([]byte(doc)) {
				t.Fatalf("mayHoldSecret(%s) = false; the parse redacts it", doc)
			}
		}
	}
	if redacted < 1000 {
		t.Fatalf("only %d generated documents had a secret key", redacted)
	}
}

// parseFindsSecret decodes doc and reports whether any of its keys, at any
// depth, is one redactJSON redacts (without mayHoldSecret's shortcut).
func parseFindsSecret(t *testing.T, doc string) bool {
	var v any
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatalf("%s: %v", doc, err)
	}
	var find func(v any) bool
	find = func(v any) bool {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if secretKey(k) || find(e) {
					return true
				}
			}
		case []any:
			for _, e := range x {
				if find(e) {
					return true
				}
			}
		}
		return false
	}
	return find(v)
}

// TestHoldsSecretWordAgreesWithASearchPerWord compares the one-pass search
// with a search for each secret word in turn.
func TestHoldsSecretWordAgreesWithASearchPerWord(t *testing.T) {
	parts := []string{"", "x", "K", "kEy", "ke", "PASSWORD", "passwor", "Secret", "credentiaL", "AUTHORIZATION", "tok", "Token", "bearer", "beare", "_", "é", "\x00", "[", "{"}
	for _, a := range parts {
		for _, b := range parts {
			for _, c := range parts {
				key := []byte(a + b + c)
				want := false
				for _, w := range secretWords {
					want = want || containsFold(key, w)
				}
				if got := holdsSecretWord(key); got != want {
					t.Errorf("holdsSecretWord(%q) = %v, want %v", key, got, want)
				}
			}
		}
	}
}

// secretWords are in every key whose value is redacted; a payload without
// any of them (in any case) is recorded as it is, without being parsed.
var secretWords = []string{"key", "password", "secret", "credential", "authorization", "token", "bearer"}

// containsFold reports whether b contains the lower-case ASCII word w in
// any case.
func containsFold(b []byte, w string) bool {
	for i := 0; i+len(w) <= len(b); i++ {
		j := 0
		for j < len(w) && b[i+j]|0x20 == w[j] {
			j++
		}
		if j == len(w) {
			return true
		}
	}
	return false
}
