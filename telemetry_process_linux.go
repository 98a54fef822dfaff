//go:build linux

package iii

import (
	"bytes"
	"os"
	"strconv"
)

// processMemory returns the resident and virtual size of the process in
// bytes, from /proc/self/statm.
func processMemory() (rss, virtual int64, ok bool) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, 0, false
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0, 0, false
	}
	size, err1 := strconv.ParseInt(string(f[0]), 10, 64)
	res, err2 := strconv.ParseInt(string(f[1]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	page := int64(os.Getpagesize())
	return res * page, size * page, true
}
