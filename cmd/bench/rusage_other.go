//go:build !unix

package main

import "time"

// selfCPU is unknown here: CPU figures read 0.
func selfCPU() time.Duration { return 0 }

// maxRSS is unknown here.
func maxRSS() uint64 { return 0 }
