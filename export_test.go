package iii

import (
	"context"
	"time"
)

// CrashConnectionActor makes the worker's connection actor panic, to test
// its supervision.
func CrashConnectionActor(w *III) { w.conn.Crash() }

// CrashRegistryActor makes the worker's registry actor panic.
func CrashRegistryActor(w *III) { w.reg.Crash() }

// CrashTriggerTypeActor makes the actor of trigger type id panic.
func CrashTriggerTypeActor(w *III, id string) { w.reg.CrashTriggerType(context.Background(), id) }

// SetShutdownTimeout shortens the worker's Shutdown bound.
func SetShutdownTimeout(w *III, d time.Duration) { w.shutdownTimeout = d }
