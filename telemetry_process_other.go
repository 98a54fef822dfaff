//go:build !unix

package iii

import "time"

// processCPU: not measured on this platform.
func processCPU() (user, sys time.Duration, ok bool) { return 0, 0, false }
