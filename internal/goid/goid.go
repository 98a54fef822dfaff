// Package goid reads the calling goroutine's id, and keeps sets of them:
// the goroutines that run a worker's user code (handlers, trigger
// providers), so that Shutdown called from one of them does not wait for
// itself.
//
// Go gives goroutines no public identity; the id is read from the header of
// the goroutine's own stack trace ("goroutine 42 [running]:"), which the
// runtime has printed in that form since Go 1.0. It costs about a
// microsecond, so it is read when such a goroutine starts and when Shutdown
// asks, never per invocation.
package goid

import (
	"runtime"
	"sync"
)

// ID returns the calling goroutine's id, or 0 if it cannot be read.
func ID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	const prefix = "goroutine "
	if len(b) < len(prefix) || string(b[:len(prefix)]) != prefix {
		return 0
	}
	var id uint64
	for _, c := range b[len(prefix):] {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + uint64(c-'0')
	}
	return id
}

// Set is a set of goroutines. The zero Set is empty and ready to use; a nil
// *Set is empty and ignores Enter.
type Set struct {
	mu sync.Mutex
	m  map[uint64]struct{}
}

// Enter adds the calling goroutine to s, until Leave is given the id it
// returns (no closure: a worker may hold ten thousand such goroutines).
func (s *Set) Enter() (id uint64) {
	if s == nil {
		return 0
	}
	if id = ID(); id == 0 {
		return 0
	}
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[uint64]struct{})
	}
	s.m[id] = struct{}{}
	s.mu.Unlock()
	return id
}

// Leave removes the goroutine Enter returned id for.
func (s *Set) Leave(id uint64) {
	if s == nil || id == 0 {
		return
	}
	s.mu.Lock()
	delete(s.m, id)
	s.mu.Unlock()
}

// Current reports whether the calling goroutine is in s.
func (s *Set) Current() bool {
	if s == nil {
		return false
	}
	id := ID()
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[id]
	return ok && id != 0
}
