package bufconn

import "testing"

// TestMaskCopy checks maskCopy against the byte-at-a-time definition of
// masking (RFC 6455, 5.3) at every start offset and many lengths.
func TestMaskCopy(t *testing.T) {
	key := uint32(0x78563412)
	kb := [4]byte{0x12, 0x34, 0x56, 0x78}
	src := make([]byte, 300)
	for i := range src {
		src[i] = byte(i * 7)
	}
	for pos := range 4 {
		for n := range len(src) {
			dst := make([]byte, n)
			maskCopy(dst, src[:n], key, pos)
			for i := range n {
				if want := src[i] ^ kb[(pos+i)&3]; dst[i] != want {
					t.Fatalf("pos %d len %d: byte %d = %#x, want %#x", pos, n, i, dst[i], want)
				}
			}
		}
	}
}

func BenchmarkMaskCopy(b *testing.B) {
	src := make([]byte, 64<<10)
	dst := make([]byte, len(src))
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		maskCopy(dst, src, 0x12345678, 1)
	}
}
