package iii_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// TestSizeGuardCountsTheWholeFrame: a payload, or a result, of exactly
// MaxMessageSize bytes is within the old payload-only guard, but its frame
// is not; the engine would drop the connection, so the worker refuses it.
func TestSizeGuardCountsTheWholeFrame(t *testing.T) {
	const limit = 1 << 10
	eng := iiitest.NewEngine(t)
	opts := fastOptions()
	opts.MaxMessageSize = limit
	handler := newWorker(t, eng, opts)
	caller := newWorker(t, eng, opts)
	mustRegister(t, eng, handler, "exact::result", func(ctx context.Context, _ json.RawMessage) (json.RawMessage, error) {
		return json.RawMessage(`"` + strings.Repeat("r", limit-2) + `"`), nil
	})
	exact := json.RawMessage(`"` + strings.Repeat("p", limit-2) + `"`)
	for _, action := range []*iii.TriggerAction{nil, iii.Void(), iii.Enqueue("q")} {
		_, err := caller.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "exact::result", Payload: exact, Action: action})
		if !errors.Is(err, iii.ErrPayloadTooLarge) {
			t.Fatalf("a %d-byte payload with action %v: %v; want ErrPayloadTooLarge", limit, action, err)
		}
	}
	_, err := caller.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "exact::result", Payload: 1})
	if iii.ErrorCode(err) != iii.CodeInvocationFailed || !strings.Contains(err.Error(), "limit is 1024") {
		t.Fatalf("a %d-byte result: %v; want invocation_failed for its size", limit, err)
	}
}
