//go:build !linux

package iii

// processMemory: not measured on this platform.
func processMemory() (rss, virtual int64, ok bool) { return 0, 0, false }
