package iii

import (
	"fmt"
	"io"

	"github.com/iii-go/iii/connection"
)

var _ io.Closer = (*III)(nil)

// RefusedError is the engine's refusal of this worker's connection: an
// authentication failure (Code "AUTH_ERROR") or a registration the engine
// rejected for good (e.g. a worker namespace taken by another worker). Its
// Error text is "iii: engine refused: <code>: <message>". Read it with
// errors.As from Err, WaitConnected or a failed call.
type RefusedError = connection.RefusedError

// Err returns why the worker is unusable, or nil while it is healthy
// (connected, or connecting and reconnecting within its retry schedule):
//   - its address is invalid (RegisterWorker could not start it);
//   - the connection gave up: an error matching ErrConnectionFailed that
//     wraps the cause (the last dial error once the retries
//     (ReconnectConfig.MaxRetries) are exhausted, or the engine's refusal,
//     a *RefusedError, or a *RegistrationRejectedError when another live
//     worker of the same name is in the namespace);
//   - an internal actor cannot run: an *InternalError, matching ErrInternal;
//   - it was shut down: ErrShutdown.
//
// A worker whose Err is not nil stays so: shut it down and start a new one.
func (w *III) Err() error {
	if err := w.err(); err != nil {
		return err
	}
	if w.conn.State() == Failed {
		if cause := w.conn.LastError(); cause != nil {
			return fmt.Errorf("%w: %w", ErrConnectionFailed, cause)
		}
		return ErrConnectionFailed
	}
	return nil
}

// Close stops the worker at once; it is Shutdown, as an io.Closer, and
// always returns nil. For a graceful stop that lets running invocations
// finish, use Drain.
func (w *III) Close() error {
	w.Shutdown()
	return nil
}
