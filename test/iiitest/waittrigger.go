package iiitest

import "context"

// WaitTrigger waits until the trigger binding with the given id is live:
// registered and accepted by its trigger type's provider (not parked for a
// type nobody provides, not refused). Bind a queue subscriber, then wait
// for it before publishing: a message published to a topic nobody
// consumes yet is lost.
func (e *Engine) WaitTrigger(ctx context.Context, id string) error {
	return e.waitFor(ctx, func() bool { return e.st.bindings[id] != nil })
}
