package wire

import (
	"testing"
	"unsafe"
)

// TestInvokeFunctionIsSmall guards the size of a decoded invocation, which
// a worker holds for every invocation it runs: 160 bytes is a size class of
// the allocator, and a bool placed after the strings made it 168 (176
// allocated).
func TestInvokeFunctionIsSmall(t *testing.T) {
	if n := unsafe.Sizeof(InvokeFunction{}); n > 160 {
		t.Errorf("an InvokeFunction is %d bytes, want at most 160", n)
	}
}
