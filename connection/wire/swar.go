package wire

import (
	"encoding/binary"
	"math/bits"
)

// Word-at-a-time scanning of JSON strings: eight bytes are loaded as one
// little-endian uint64 and tested at once for the bytes that need a closer
// look. Only a word that holds one falls back to byte-by-byte handling.

const (
	ones = 0x0101010101010101 // 0x01 in every byte
	high = 0x8080808080808080 // the top bit of every byte
)

// special returns the top bit of each byte of w that is '"', '\\', a control
// character (< 0x20) or not ASCII (>= 0x80); a plain word gives 0. The
// lowest set bit is exact: a byte is flagged wrongly only above a byte that
// is truly special (the subtractions borrow from there), so the first
// special byte is at index bits.TrailingZeros64(special(w))/8.
//
// For a byte x below 0x80 with no borrow coming in, x-0x20 has its top bit
// set exactly when x < 0x20, and (x^'"')-1 exactly when x == '"' (the xor is
// below 0x80 and is 0 only then); bytes at or above 0x80 are flagged by x
// itself.
func special(w uint64) uint64 {
	return (w | (w - 0x20*ones) | ((w ^ '"'*ones) - ones) | ((w ^ '\\'*ones) - ones)) & high
}

// quotes returns the top bit of each byte of w that is '"', exact up to and
// including the first byte special flags: m&-m&quotes(w) != 0, with m =
// special(w), tells that the first special byte of w is a quote.
func quotes(w uint64) uint64 {
	return ((w ^ '"'*ones) - ones) &^ w & high
}

// plainRun returns the index of the first byte of b at or after i that is
// not plain (see plain), or len(b).
func plainRun(b []byte, i int) int {
	for ; i+16 <= len(b); i += 16 {
		w0 := binary.LittleEndian.Uint64(b[i:])
		w1 := binary.LittleEndian.Uint64(b[i+8:])
		if m0, m1 := special(w0), special(w1); m0|m1 != 0 {
			if m0 != 0 {
				return i + bits.TrailingZeros64(m0)>>3
			}
			return i + 8 + bits.TrailingZeros64(m1)>>3
		}
	}
	if i+8 <= len(b) {
		if m := special(binary.LittleEndian.Uint64(b[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
		i += 8
	}
	for i < len(b) && plain[b[i]] {
		i++
	}
	return i
}

// load64 reads the 8 bytes of s at i as a little-endian word (one load once
// compiled, as binary.LittleEndian.Uint64 on a slice).
func load64(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// plainRunString is plainRun on a string.
func plainRunString(s string, i int) int {
	for ; i+16 <= len(s); i += 16 {
		if m0, m1 := special(load64(s, i)), special(load64(s, i+8)); m0|m1 != 0 {
			if m0 != 0 {
				return i + bits.TrailingZeros64(m0)>>3
			}
			return i + 8 + bits.TrailingZeros64(m1)>>3
		}
	}
	if i+8 <= len(s) {
		if m := special(load64(s, i)); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
		i += 8
	}
	for i < len(s) && plain[s[i]] {
		i++
	}
	return i
}
