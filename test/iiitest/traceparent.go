package iiitest

import (
	"fmt"
	"math/big"
	"strings"
)

// normalizeTraceparent is the traceparent the engine forwards to a handler
// for the caller's: the engine (v0.22.1) extracts it with OpenTelemetry's
// W3C propagator and injects it again, so a header the propagator rejects is
// dropped ("" is returned) and an accepted one is rewritten as version 00
// with lowercase, zero-padded ids and only the sampled flag kept. Observed
// on the engine: "01-<trace>-<span>-09-x" becomes "00-<trace>-<span>-01",
// "00-…-02" becomes "00-…-00", "00-…-03", uppercase ids, all-zero ids and
// version ff are dropped.
func normalizeTraceparent(tp string) string {
	if canonicalTraceparent(tp) {
		return tp // what rewriteTraceparent would rebuild
	}
	return rewriteTraceparent(tp)
}

// rewriteTraceparent is normalizeTraceparent step by step.
func rewriteTraceparent(tp string) string {
	parts := strings.Split(strings.TrimSpace(tp), "-")
	if n := len(parts); n > 0 && parts[n-1] == "" {
		parts = parts[:n-1] // a trailing "-" makes no empty part
	}
	if len(parts) < 4 {
		return ""
	}
	version, ok := parseHexUint(parts[0], 8)
	if !ok || version.Uint64() > 254 || (version.Sign() == 0 && len(parts) != 4) {
		return ""
	}
	if strings.ToLower(parts[1]) != parts[1] || strings.ToLower(parts[2]) != parts[2] {
		return ""
	}
	traceID, ok := parseHexUint(parts[1], 128)
	if !ok || traceID.Sign() == 0 {
		return ""
	}
	spanID, ok := parseHexUint(parts[2], 64)
	if !ok || spanID.Sign() == 0 {
		return ""
	}
	flags, ok := parseHexUint(parts[3], 8)
	if !ok || (version.Sign() == 0 && flags.Uint64() > 2) {
		return ""
	}
	return fmt.Sprintf("00-%032x-%016x-%02x", traceID, spanID, flags.Uint64()&1)
}

// parseHexUint parses s as an unsigned hexadecimal number of at most bits
// bits, as Rust's from_str_radix(s, 16) does for the unsigned type of that
// size (an optional leading "+", no empty string).
func parseHexUint(s string, bits int) (*big.Int, bool) {
	s = strings.TrimPrefix(s, "+")
	if s == "" {
		return nil, false
	}
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return nil, false
		}
	}
	n, ok := new(big.Int).SetString(s, 16)
	if !ok || n.BitLen() > bits {
		return nil, false
	}
	return n, true
}

// canonicalTraceparent reports whether tp is already in the form
// normalizeTraceparent gives: version 00, lowercase non-zero ids, flags 00
// or 01.
func canonicalTraceparent(tp string) bool {
	if len(tp) != 55 || tp[:3] != "00-" || tp[35] != '-' || tp[52] != '-' || tp[53] != '0' || (tp[54] != '0' && tp[54] != '1') {
		return false
	}
	nonZero := func(h string) bool {
		nz := false
		for i := 0; i < len(h); i++ {
			c := h[i]
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
			nz = nz || c != '0'
		}
		return nz
	}
	return nonZero(tp[3:35]) && nonZero(tp[36:52])
}
