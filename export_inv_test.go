package iii

import "github.com/iii-go/iii/internal/faults"

// CrashInvocationSupervisor makes the worker's invocation supervisor
// panic; it is not restarted, so the worker fails.
func CrashInvocationSupervisor(w *III) { faults.Crash("invocations", w.inbound, "") }
