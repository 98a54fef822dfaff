// Package faults lets the SDK's own tests make its internal actors panic,
// to exercise their supervision. It is internal to the module: no program
// outside it can import it, and nothing here is API.
package faults

import "sync"

var (
	mu    sync.RWMutex
	hooks = map[string]func(target any, arg string){}
)

// Set installs how to crash the actor kind: the package that owns it calls
// Set from an init function.
func Set(kind string, crash func(target any, arg string)) {
	mu.Lock()
	defer mu.Unlock()
	hooks[kind] = crash
}

// Crash makes the actor of kind behind target panic; arg names a member
// when the kind needs one (a trigger type's id). Unknown kinds do nothing.
func Crash(kind string, target any, arg string) {
	mu.RLock()
	fn := hooks[kind]
	mu.RUnlock()
	if fn != nil {
		fn(target, arg)
	}
}
