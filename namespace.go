package iii

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/iii-go/iii/connection"
	"github.com/iii-go/iii/connection/wire"
)

// DefaultNamespace is the engine's namespace for everything that names
// none (engine v0.23). On the wire, "default" and no namespace mean the
// same, so the SDK sends no namespace field for it: a worker that sets no
// namespace sends nothing an engine v0.22.1 has not seen.
const DefaultNamespace = "default"

// NamespaceEnv is the environment variable that gives a worker its
// namespace when InitOptions.Namespace is empty (the iii worker manager
// sets it). A blank value is ignored, as in the official SDKs.
const NamespaceEnv = "III_NAMESPACE"

// The codes of a RegistrationRejectedError.
const (
	// CodeWorkerNamespaceConflict: another live worker of the same name is
	// registered in the namespace. Fatal: the worker fails (state Failed)
	// and does not reconnect.
	CodeWorkerNamespaceConflict = wire.WorkerNamespaceConflict
	// CodeFunctionNamespaceConflict: another live worker in the namespace
	// exports the function id (or the id is engine::* outside the default
	// namespace). Only that function is refused: see FunctionRef.Err.
	CodeFunctionNamespaceConflict = wire.FunctionNamespaceConflict
	// CodeInvalidNamespace: a namespace that was named but blank reached
	// the engine (the SDK refuses those itself with ErrInvalidNamespace).
	CodeInvalidNamespace = "INVALID_NAMESPACE"
)

var (
	// ErrRegistrationRejected matches every *RegistrationRejectedError.
	ErrRegistrationRejected = connection.ErrRegistrationRejected
	// ErrInvalidNamespace: a namespace was set to a blank string (spaces
	// only). Leave it empty to mean the default namespace (or, for a
	// call or a binding, the worker's).
	ErrInvalidNamespace = errors.New("iii: invalid namespace")
)

// RegistrationRejectedError is the engine's refusal of a registration
// because another live worker holds the same worker name or function id in
// the namespace (engine v0.23). It matches ErrRegistrationRejected and
// unwraps to a *RefusedError of the same code.
//
// Code CodeWorkerNamespaceConflict (or a code this SDK does not know) is
// fatal: the engine closes the connection, the worker's state becomes
// Failed, every pending call fails with it, and Err returns it (wrapped in
// ErrConnectionFailed). It answers the worker's engine::workers::register,
// sent once connected: WaitConnected may have returned nil before it came,
// so watch InitOptions.OnStateChange or Err. Code CodeFunctionNamespaceConflict costs one
// function: the worker stays connected, the rejection is logged at Error
// and FunctionRef.Err returns it.
type RegistrationRejectedError = connection.RegistrationRejectedError

// workerNamespace resolves InitOptions.Namespace, then $III_NAMESPACE; ""
// means the default namespace.
func workerNamespace(opt string) (string, error) {
	ns := opt
	if ns == "" {
		ns = strings.TrimSpace(os.Getenv(NamespaceEnv))
	} else if strings.TrimSpace(ns) == "" {
		return "", fmt.Errorf("%w: InitOptions.Namespace is %q: leave it empty for the default namespace", ErrInvalidNamespace, ns)
	}
	if ns == DefaultNamespace {
		ns = ""
	}
	return ns, nil
}

// wireNamespace is what goes in a frame's namespace field: nothing for the
// default namespace.
func wireNamespace(ns string) string {
	if ns == DefaultNamespace {
		return ""
	}
	return ns
}

// checkNamespace refuses a namespace that was named but left blank.
func checkNamespace(ns, field string) error {
	if ns != "" && strings.TrimSpace(ns) == "" {
		return fmt.Errorf("%w: %s is %q: name one, or leave it empty", ErrInvalidNamespace, field, ns)
	}
	return nil
}

// callNamespace is the namespace a call of functionID resolves in: the
// explicit one, else the worker's, except for the engine's own engine::
// functions, which live in the default namespace.
func (w *III) callNamespace(explicit, functionID string) (string, error) {
	if explicit != "" {
		if err := checkNamespace(explicit, "TriggerRequest.Namespace"); err != nil {
			return "", err
		}
		return wireNamespace(explicit), nil
	}
	if strings.HasPrefix(functionID, "engine::") {
		return "", nil
	}
	return w.ns, nil
}

// waitNamespace is the namespace a call of functionID from w resolves in.
func (w *III) waitNamespace(functionID string) string {
	if strings.HasPrefix(functionID, "engine::") {
		return DefaultNamespace
	}
	return w.Namespace()
}

// waitKey is the WaitForFunction key of functionID in namespace ns.
func waitKey(ns, functionID string) string { return ns + "\x00" + functionID }

func splitWaitKey(key string) (ns, functionID string) {
	ns, functionID, _ = strings.Cut(key, "\x00")
	return ns, functionID
}

// Namespace returns the worker's namespace: InitOptions.Namespace, else
// $III_NAMESPACE, else DefaultNamespace.
func (w *III) Namespace() string {
	if w.ns == "" {
		return DefaultNamespace
	}
	return w.ns
}

// rejection holds the latest function conflict of a FunctionRef.
type rejection struct {
	mu  sync.Mutex
	err *RegistrationRejectedError
}

func (r *rejection) set(m *wire.RegistrationRejected) {
	err := connection.NewRegistrationRejectedError(m)
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
}

// Err returns the engine's latest rejection of the function, a
// *RegistrationRejectedError of code CodeFunctionNamespaceConflict: another
// live worker in the namespace exports the same id, so calls reach that
// worker, not this one. It is nil if none came (the engine does not
// acknowledge a registration that succeeds). The function stays registered
// in this worker and is sent again on every reconnect.
func (f *FunctionRef) Err() error {
	f.rej.mu.Lock()
	defer f.rej.mu.Unlock()
	if f.rej.err == nil {
		return nil
	}
	return f.rej.err
}

// WithCallNamespace makes Call resolve the function in namespace ns
// instead of the worker's; it is TriggerRequest.Namespace for Call.
func WithCallNamespace(ns string) CallOption {
	return func(c *callConfig) { c.namespace = ns }
}
