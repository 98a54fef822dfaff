package iii_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// TestPayloadsOutliveTheFramesAfterThem holds every invocation's input in
// its handler until all of them have arrived, and every call's result until
// all of them are back: the socket reads each frame into a buffer it reuses,
// so a payload that still pointed into it would show a later frame's bytes.
func TestPayloadsOutliveTheFramesAfterThem(t *testing.T) {
	eng := iiitest.NewEngine(t)
	handler := newWorker(t, eng, iii.InitOptions{})
	caller := newWorker(t, eng, iii.InitOptions{})
	const n = 40
	var arrived sync.WaitGroup
	arrived.Add(n)
	all := make(chan struct{})
	go func() { arrived.Wait(); close(all) }()
	payload := func(i int) string {
		// Sizes differ, so that a later frame overwrites only part of an
		// earlier one's bytes.
		return fmt.Sprintf(`{"i":%d,"pad":"%s"}`, i, strings.Repeat(string(rune('a'+i%26)), 10+i*7))
	}
	mustRegister(t, eng, handler, "owner::hold", func(ctx context.Context, in json.RawMessage) (json.RawMessage, error) {
		arrived.Done()
		select {
		case <-all:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		var v struct{ I int }
		// The engine puts "_caller_worker_id" first; the rest is the caller's.
		if err := json.Unmarshal(in, &v); err != nil || !strings.HasSuffix(string(in), payload(v.I)[1:]) {
			return nil, fmt.Errorf("input changed while held: %s", in)
		}
		return in, nil
	})
	results := make([]json.RawMessage, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			md := iii.TriggerRequest{FunctionID: "owner::hold", Payload: json.RawMessage(payload(i)), Metadata: map[string]int{"i": i}}
			results[i], errs[i] = caller.Trigger(testCtx(t), md)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("call %d: %v", i, errs[i])
		}
		if got := string(results[i]); !strings.Contains(got, fmt.Sprintf(`"i":%d,`, i)) || !strings.HasSuffix(got, strings.Repeat(string(rune('a'+i%26)), 10+i*7)+`"}`) {
			t.Errorf("result %d changed after it arrived: %s", i, got)
		}
	}
}
