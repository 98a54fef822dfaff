package iii

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/iii-go/iii/connection"
	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/invocation"
	"github.com/iii-go/iii/registry"
)

// Sentinel errors. Compare with errors.Is.
var (
	// ErrNotConnected: the call could not reach the engine because the worker
	// was not connected for as long as the call was allowed to wait.
	ErrNotConnected = errors.New("iii: not connected to the engine")
	// ErrTimeout: the call's timeout elapsed before its result arrived. A
	// context deadline also matches it (and context.DeadlineExceeded).
	ErrTimeout = invocation.ErrTimeout
	// ErrShutdown: the worker was shut down.
	ErrShutdown = errors.New("iii: worker shut down")
	// ErrConnectionLost: the socket the call was sent on died before its
	// result came. The engine can never answer it, and the call may or may
	// not have run.
	ErrConnectionLost = errors.New("iii: connection lost while the call was in flight; it may or may not have run")
	// ErrConnectionFailed: the connection gave up (retries exhausted, or the
	// engine refused this worker for good).
	ErrConnectionFailed = connection.ErrFailed
	// ErrDuplicate: the id is registered already by this worker.
	ErrDuplicate = registry.ErrDuplicate
	// ErrNotRegistered: the id is not registered by this worker.
	ErrNotRegistered = registry.ErrNotFound
	// ErrInvalidID: an id is empty.
	ErrInvalidID = errors.New("iii: invalid id")
	// ErrInvalidPayload: a payload, result or metadata is not valid JSON or
	// cannot be encoded as JSON.
	ErrInvalidPayload = errors.New("iii: invalid JSON payload")
	// ErrPayloadTooLarge: the frame of a call or result would exceed InitOptions.MaxMessageSize.
	ErrPayloadTooLarge = errors.New("iii: payload too large")
	// ErrDraining: the worker is draining and takes no new work.
	ErrDraining = errors.New("iii: worker is draining")
	// ErrInternal: the worker failed as a whole because one of the SDK's
	// internal actors cannot run (it failed more often than its restart
	// budget allows, or it stopped). Every pending and later call fails
	// with an *InternalError, which matches it; the state is Failed. Shut
	// the worker down and start a new one.
	ErrInternal = errors.New("iii: worker failed: an internal actor cannot run")
)

// InternalError is the failure of a worker whose internal actor cannot run;
// it matches ErrInternal and unwraps to its cause.
type InternalError struct {
	Actor    string // the actor, e.g. "worker/connection"
	Cause    error  // its last panic (as an error), or why it stopped
	Failures int    // failures within the restart window; 0 if it stopped without failing
	// NoRestart: the actor is one a restart cannot leave consistent (the
	// invocation supervisor), so its first failure failed the worker.
	NoRestart bool
}

// Error implements the error interface.
func (e *InternalError) Error() string {
	cause := oneLine(fmt.Sprint(e.Cause))
	if e.NoRestart {
		return fmt.Sprintf("iii: worker failed: internal actor %s failed and cannot be restarted: %s", e.Actor, cause)
	}
	if e.Failures > 0 {
		return fmt.Sprintf("iii: worker failed: internal actor %s failed %d times in a row and was stopped: %s", e.Actor, e.Failures, cause)
	}
	return fmt.Sprintf("iii: worker failed: internal actor %s stopped: %s", e.Actor, cause)
}

// Unwrap returns ErrInternal and the cause.
func (e *InternalError) Unwrap() []error { return []error{ErrInternal, e.Cause} }

// Error codes that travel in ErrorBody.Code. The engine's own codes are
// passed through unchanged; see the protocol specification for all of them.
const (
	CodeFunctionNotFound          = "function_not_found"          // no such function (engine or worker)
	CodeFunctionNotInvokable      = "function_not_invokable"      // HTTP-invoked function dispatched to a worker
	CodeInvocationFailed          = "invocation_failed"           // the handler returned an error, panicked or exited
	CodeInvocationStopped         = "invocation_stopped"          // the handler's connection closed before it replied
	CodeInvalidRequest            = "invalid_request"             // the payload does not decode into the handler's type
	CodeTriggerTypeNotFound       = "trigger_type_not_found"      // a binding for a type this worker does not provide
	CodeTriggerRegistrationFailed = "trigger_registration_failed" // a provider refused a binding
	CodeEnqueueError              = "enqueue_error"               // the queue provider is missing or failed
	CodeForbidden                 = "FORBIDDEN"                   // RBAC denial
	CodeChannelSendFailed         = "channel_send_failed"         // the handler's connection was closing at dispatch
	CodeDeserializationError      = "deserialization_error"       // a builtin's input did not match its schema
	CodeNotFound                  = "NOT_FOUND"                   // introspection: no such item
	CodeInvalidArguments          = "INVALID_ARGUMENTS"           // introspection: bad arguments

	// CodeWorkerOverloaded is this SDK's refusal of an invocation that
	// arrived while every handler slot was busy and the backlog was full
	// (InitOptions.MaxConcurrentInvocations, MaxQueuedInvocations,
	// MaxQueuedInvocationBytes). Nothing ran; the call may be retried.
	// Neither the engine nor the official SDKs define a code for this.
	CodeWorkerOverloaded = "worker_overloaded"
)

// ErrorBody is the error object of the protocol.
type ErrorBody struct {
	Code       string `json:"code"`
	Message    string `json:"message"`
	Stacktrace string `json:"stacktrace,omitempty"`
}

// RemoteError is a call that the engine or the handling worker answered with
// an error. Use errors.As to read it.
type RemoteError struct {
	FunctionID string
	ErrorBody
}

// Error implements the error interface.
func (e *RemoteError) Error() string {
	return fmt.Sprintf("iii: %s: %s: %s", e.FunctionID, e.Code, e.Message)
}

// Is makes a *RemoteError match a *RemoteError target with the same Code
// (and, if the target names one, the same FunctionID), so that
// errors.Is(err, &iii.RemoteError{ErrorBody: iii.ErrorBody{Code: iii.CodeFunctionNotFound}})
// works.
func (e *RemoteError) Is(target error) bool {
	t, ok := target.(*RemoteError)
	return ok && t.Code == e.Code && (t.FunctionID == "" || t.FunctionID == e.FunctionID)
}

// ErrorCode returns the protocol error code carried by err (a *RemoteError,
// *TriggerError or *InvocationError anywhere in its chain), or "".
func ErrorCode(err error) string {
	var re *RemoteError
	if errors.As(err, &re) {
		return re.Code
	}
	var te *TriggerError
	if errors.As(err, &te) {
		return te.Code
	}
	var ie *InvocationError
	if errors.As(err, &ie) {
		return ie.Code
	}
	return ""
}

// InvocationError is an error a handler returns to choose the code, message
// and stack trace of its error reply. Any other error is reported with code
// invocation_failed and the error's text.
type InvocationError struct {
	Code       string
	Message    string
	Stacktrace string
	Err        error // optional cause, for errors.Is/As on the handler's side
}

// NewInvocationError returns an InvocationError with a code and message.
func NewInvocationError(code, message string) *InvocationError {
	return &InvocationError{Code: code, Message: message}
}

// Error implements the error interface.
func (e *InvocationError) Error() string { return e.Code + ": " + e.Message }

// Unwrap returns the cause.
func (e *InvocationError) Unwrap() error { return e.Err }

// timeoutError is a call that ran out of time: it matches ErrTimeout and,
// when a context deadline was the cause, context.DeadlineExceeded.
type timeoutError struct {
	functionID string
	waiting    bool // never sent: the worker was not connected
	ctx        bool
	cause      error // while waiting: why the last connection attempt failed, if known
}

// Error implements the error interface.
func (e *timeoutError) Error() string {
	if e.waiting {
		if e.cause != nil {
			return fmt.Sprintf("iii: call to %s timed out waiting for a connection to the engine: %s", e.functionID, oneLine(e.cause.Error()))
		}
		return fmt.Sprintf("iii: call to %s timed out waiting for a connection to the engine", e.functionID)
	}
	return fmt.Sprintf("iii: call to %s timed out", e.functionID)
}

// Unwrap returns why the connection was down, if known.
func (e *timeoutError) Unwrap() error { return e.cause }

// oneLine joins the lines of an error text (errors.Join separates its
// errors with newlines) with "; ".
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }

func (e *timeoutError) Is(target error) bool {
	return target == ErrTimeout || (e.ctx && target == context.DeadlineExceeded) || (e.waiting && target == ErrNotConnected)
}

// timeoutErr is the timeout of call to functionID; one that was never sent
// carries the connection's last error as its cause.
func (w *III) timeoutErr(functionID string, call *invocation.Call, ctx bool) error {
	e := &timeoutError{functionID: functionID, waiting: call.Socket() == nil, ctx: ctx}
	if e.waiting {
		e.cause = w.conn.LastError()
	}
	return e
}

// connectionLostError wraps ErrConnectionLost with the socket's cause.
type connectionLostError struct {
	functionID string
	cause      error
}

// Error implements the error interface.
func (e *connectionLostError) Error() string {
	if e.functionID == "" {
		return ErrConnectionLost.Error() + ": " + oneLine(fmt.Sprint(e.cause))
	}
	return fmt.Sprintf("iii: call to %s: connection lost while it was in flight; it may or may not have run: %s", e.functionID, oneLine(fmt.Sprint(e.cause)))
}

func (e *connectionLostError) Unwrap() []error { return []error{ErrConnectionLost, e.cause} }

func remoteError(functionID string, b *wire.ErrorBody) *RemoteError {
	return &RemoteError{FunctionID: functionID, ErrorBody: ErrorBody{Code: b.Code, Message: b.Message, Stacktrace: b.Stacktrace}}
}
