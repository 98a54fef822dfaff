package iii

import (
	"time"

	"github.com/iii-go/iii/internal/faults"
)

// CrashConnectionActor makes the worker's connection actor panic, to test
// its supervision.
func CrashConnectionActor(w *III) { faults.Crash("connection", w.conn, "") }

// CrashRegistryActor makes the worker's registry actor panic.
func CrashRegistryActor(w *III) { faults.Crash("registry", w.reg, "") }

// CrashTriggerTypeActor makes the actor of trigger type id panic.
func CrashTriggerTypeActor(w *III, id string) { faults.Crash("triggertype", w.reg, id) }

// SetShutdownTimeout shortens the worker's Shutdown bound.
func SetShutdownTimeout(w *III, d time.Duration) { w.shutdownTimeout = d }

// LiveActors lists the ids of the worker's registered actors, for a test's
// failure message.
func LiveActors(w *III) []string {
	var ids []string
	for _, m := range w.sys.AS.ProcessRegistry.LocalPIDs.LocalPIDs {
		ids = append(ids, m.Keys()...)
	}
	return ids
}
