//go:build unix

package iii

import (
	"syscall"
	"time"
)

// cpuNow returns the user + system CPU time of this process.
func cpuNow() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
