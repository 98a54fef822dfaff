package connection

import (
	"errors"
	"fmt"

	"github.com/iii-go/iii/connection/wire"
)

// ErrRegistrationRejected matches every *RegistrationRejectedError.
var ErrRegistrationRejected = errors.New("iii: registration rejected by the engine")

// RegistrationRejectedError is the engine's registrationrejected (engine
// v0.23): a worker name (WORKER_NAMESPACE_CONFLICT) or a function id
// (FUNCTION_NAMESPACE_CONFLICT) that another live worker already holds in
// the namespace. It matches ErrRegistrationRejected, and also unwraps to a
// *RefusedError with the same code.
type RegistrationRejectedError struct {
	Code          string // e.g. wire.WorkerNamespaceConflict
	Namespace     string // the namespace of the conflict
	WorkerName    string // the name in conflict (worker conflicts)
	FunctionID    string // the function id in conflict (function conflicts)
	OwnerWorkerID string // the live worker holding it; empty for a reserved id
}

// NewRegistrationRejectedError copies m.
func NewRegistrationRejectedError(m *wire.RegistrationRejected) *RegistrationRejectedError {
	return &RegistrationRejectedError{Code: m.Code, Namespace: m.Namespace, WorkerName: m.WorkerName,
		FunctionID: m.FunctionID, OwnerWorkerID: m.OwnerWorkerID}
}

// Error implements the error interface.
func (e *RegistrationRejectedError) Error() string {
	return "iii: registration rejected: " + e.Code + ": " + e.detail()
}

func (e *RegistrationRejectedError) detail() string {
	owner := "worker " + e.OwnerWorkerID
	if e.OwnerWorkerID == "" {
		owner = "the engine (reserved id)"
	}
	if e.FunctionID != "" {
		return fmt.Sprintf("function %q in namespace %q is held by %s", e.FunctionID, e.Namespace, owner)
	}
	return fmt.Sprintf("worker name %q in namespace %q is held by %s", e.WorkerName, e.Namespace, owner)
}

// Unwrap returns ErrRegistrationRejected and the equivalent *RefusedError.
func (e *RegistrationRejectedError) Unwrap() []error {
	return []error{ErrRegistrationRejected, &RefusedError{Code: e.Code, Message: e.detail()}}
}

// Fatal reports whether the rejection fails the whole worker: every code
// but FUNCTION_NAMESPACE_CONFLICT (which costs one function) does, as in
// the official SDKs of engine v0.23.
func (e *RegistrationRejectedError) Fatal() bool { return e.Code != wire.FunctionNamespaceConflict }
