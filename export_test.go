package iii

// CrashConnectionActor makes the worker's connection actor panic, to test
// its supervision.
func CrashConnectionActor(w *III) { w.conn.Crash() }
