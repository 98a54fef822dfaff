package iii_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/iii-go/iii"
)

// The invocation supervisor is not restarted (a restart would stop the
// actors running handlers and lose the pool): its failure fails the worker
// visibly. The running handler's context ends with the *InternalError, the
// call waiting for it ends, and later calls fail with the same error.
func TestInvocationSupervisorFailureFailsTheWorker(t *testing.T) {
	eng, handler, caller := twoWorkers(t)
	started := make(chan struct{}, 1)
	cause := make(chan error, 1)
	mustRegister(t, eng, handler, "slow::op", func(ctx context.Context, _ any) (any, error) {
		started <- struct{}{}
		<-ctx.Done()
		cause <- context.Cause(ctx)
		return nil, ctx.Err()
	})
	errc := make(chan error, 1)
	go func() {
		_, err := caller.Trigger(context.Background(), iii.TriggerRequest{FunctionID: "slow::op"})
		errc <- err
	}()
	select {
	case <-started:
	case <-testCtx(t).Done():
		t.Fatal("the handler never ran")
	}
	iii.CrashInvocationSupervisor(handler)
	select {
	case err := <-cause:
		wantInternal(t, "the running handler's context", err, "invocations")
	case <-testCtx(t).Done():
		t.Fatal("the running handler's context did not end")
	}
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("the call to the failed worker's handler succeeded")
		}
	case <-testCtx(t).Done():
		t.Fatal("the call to the failed worker's handler never ended")
	}
	waitFor(t, "state Failed", func() bool { return handler.State() == iii.Failed })
	wantInternal(t, "Err", handler.Err(), "invocations")
	var ie *iii.InternalError
	if errors.As(handler.Err(), &ie) && (ie.Failures != 1 || !ie.NoRestart || !strings.Contains(ie.Error(), "cannot be restarted")) {
		t.Fatalf("failures %d, NoRestart %v, %q; want 1 failure, no restart", ie.Failures, ie.NoRestart, ie.Error())
	}
	_, err := handler.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "slow::op"})
	wantInternal(t, "a call after the failure", err, "invocations")
	returnsBy(t, testCtx(t), "Shutdown of a failed worker", handler.Shutdown)
}
