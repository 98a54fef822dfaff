package wire

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// scanOutcome is what rawString or skip leaves behind: where the scanner
// stopped, what it returned and why it failed.
type scanOutcome struct {
	raw     string
	nilRaw  bool
	escaped bool
	i       int
	reason  string
	offset  int
}

// short cuts what a failure prints.
func short[T string | []byte](b T) string {
	if len(b) > 120 {
		return string(b[:60]) + "..." + string(b[len(b)-60:])
	}
	return string(b)
}

func (o scanOutcome) short() scanOutcome {
	o.raw = short(o.raw)
	return o
}

func newRawString(b []byte, at int) scanOutcome {
	s := scanner{b: b, i: at}
	raw, esc := s.rawString()
	return outcome(raw, esc, s.i, s.err)
}

func refRawString(b []byte, at int) scanOutcome {
	s := refScanner{b: b, i: at}
	raw, esc := s.rawString()
	return outcome(raw, esc, s.i, s.err)
}

func outcome(raw []byte, esc bool, i int, err *DecodeError) scanOutcome {
	o := scanOutcome{raw: string(raw), nilRaw: raw == nil, escaped: esc, i: i}
	if err != nil {
		o.reason, o.offset = err.Reason, err.Offset
	}
	return o
}

// checkRawString compares rawString on the string that opens at b[at] with
// the reference implementation, and with encoding/json where they agree on
// the input being UTF-8.
func checkRawString(t testing.TB, b []byte, at int) {
	t.Helper()
	got, want := newRawString(b, at), refRawString(b, at)
	if got != want {
		t.Fatalf("rawString(%q at %d) = %+v, the reference gives %+v", short(b), at, got.short(), want.short())
	}
	if got.reason != "" {
		// A string the codec rejects must be rejected by encoding/json too
		// (which lets invalid UTF-8 through and so cannot judge that).
		if utf8.Valid(b[at:]) && json.Valid(b[at:]) {
			t.Fatalf("rawString rejects %q (%s); encoding/json accepts it", b[at:], got.reason)
		}
		return
	}
	lit := b[at:got.i]
	var s string
	if err := json.Unmarshal(lit, &s); err != nil {
		t.Fatalf("rawString accepts %q; encoding/json: %v", lit, err)
	}
	val := []byte(got.raw)
	if got.escaped {
		val = unescape(val)
	}
	if utf8.Valid(lit) && string(val) != s {
		t.Fatalf("%q decodes as %q; encoding/json reads %q", lit, val, s)
	}
}

// checkAppendString compares appendString with the reference and checks that
// encoding/json reads back s with invalid bytes as U+FFFD.
func checkAppendString(t testing.TB, s string) {
	t.Helper()
	prefix := []byte("x")
	got := appendString(prefix, s)
	want := refAppendString([]byte("x"), s)
	if !bytes.Equal(got, want) {
		t.Fatalf("appendString(%q) = %q, the reference gives %q", short(s), short(got), short(want))
	}
	var back string
	if err := json.Unmarshal(got[1:], &back); err != nil {
		t.Fatalf("appendString(%q) = %q: encoding/json: %v", s, got, err)
	}
	if back != string([]rune(s)) {
		t.Fatalf("appendString(%q) reads back as %q", s, back)
	}
}

// checkSkip compares skip and Valid with the reference on b.
func checkSkip(t testing.TB, b []byte) {
	t.Helper()
	s := scanner{b: b}
	s.ws()
	s.skip()
	r := refScanner{b: b}
	r.ws()
	r.skip()
	got, want := outcome(nil, false, s.i, s.err), outcome(nil, false, r.i, r.err)
	if got != want {
		t.Fatalf("skip(%q) = %+v, the reference gives %+v", b, got, want)
	}
	v := Valid(b)
	if v != refValid(b) {
		t.Fatalf("Valid(%q) = %v, the reference says %v", b, v, !v)
	}
	if utf8.Valid(b) && (s.err == nil || s.err.Reason != "nesting too deep") && v != json.Valid(b) {
		t.Fatalf("Valid(%q) = %v, encoding/json says %v", b, v, !v)
	}
}

// filler is plain ASCII to put around the bytes under test.
const filler = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

// pieces are the parts of strings that leave the plain path: escapes (good,
// bad and cut short), multi-byte runes and invalid UTF-8.
var pieces = []string{
	`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`, `\u00e9`, `\u0000`, `\uD83D\uDE00`, `\ud800`, `\ud800\u0041`, `\udc00`,
	`\x`, `\u12g4`, `\uZZZZ`, `\u12`, `\`, `\'`, `\U0041`,
	"é", "€", "😀", "\ufffd", "\u2028", "\u07ff", "\U0010ffff", "\x7f",
	"\xff", "\xc0\x80", "\xed\xa0\x80", "\xe2\x82", "\xf4\x90\x80\x80", "\x80", "\xf0\x9f\x98", "\xc3",
	"\"", "\n", "\x00", "\x1f", " ",
}

// stringCases returns the contents (between the quotes) the deterministic
// tests run: every byte value and every piece at each offset 0..16 from the
// start, so at each position relative to an 8-byte word, strings of length
// 0..40, and random mixes.
func stringCases() []string {
	var cases []string
	for n := 0; n <= 40; n++ {
		cases = append(cases, strings.Repeat(filler, 1)[:min(n, len(filler))]+strings.Repeat("x", max(0, n-len(filler))))
	}
	for off := 0; off <= 16; off++ {
		for _, tail := range []int{0, 1, 7, 8, 9, 20} {
			for c := 0; c < 256; c++ {
				cases = append(cases, filler[:off]+string([]byte{byte(c)})+filler[off:off+tail])
			}
			for _, p := range pieces {
				cases = append(cases, filler[:off]+p+filler[off:off+tail])
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		var b strings.Builder
		for n := r.IntN(12); n > 0; n-- {
			switch r.IntN(3) {
			case 0:
				b.WriteString(pieces[r.IntN(len(pieces))])
			case 1:
				b.WriteString(filler[:r.IntN(20)])
			default:
				b.WriteByte(byte(r.IntN(256)))
			}
		}
		cases = append(cases, b.String())
	}
	return cases
}

func TestRawStringMatchesTheReference(t *testing.T) {
	for _, x := range stringCases() {
		for _, at := range []int{0, 3} {
			pad := strings.Repeat(" ", at)
			for _, frame := range []string{
				pad + `"` + x + `"`,
				pad + `"` + x + `","k":[1,"xx"]}`,
				pad + `"` + x, // cut short
			} {
				checkRawString(t, []byte(frame), at)
			}
		}
	}
}

func TestAppendStringMatchesTheReference(t *testing.T) {
	for _, x := range stringCases() {
		checkAppendString(t, x)
	}
	// Long runs, so that the word-at-a-time loops run many rounds.
	long := strings.Repeat(filler, 40)
	for _, p := range pieces {
		checkAppendString(t, long+p+long)
		checkRawString(t, []byte(`"`+long+p+long+`"`), 0)
	}
}

func TestSkipMatchesTheReference(t *testing.T) {
	values := []string{
		`{}`, `[]`, `{"a":1}`, `{"a" : [1, 2.5, -3e+7, 0, -0.0e-1], "b":{"c":null,"d":true,"e":false}}`,
		`[1,]`, `{"a"}`, `{"a":}`, `{,}`, `[01]`, `[-]`, `[1.]`, `[1e]`, `[1.5E+]`, `[.5]`, `[+1]`, `nul`, `tru`, `falsey`,
		`{"a":1,"a":2}`, " \t\n\r{\"a\" \n:\r\"b\" }\t", `[1 2]`, `{"a":1 "b":2}`, `"abc`, `{"\u00e9":"\ud83d\ude00"}`,
		`12345678901234567890`, `-12345678901234567890.12345678901234567890e-12345678901234567890`, `123abc`,
		strings.Repeat("[", 128) + strings.Repeat("]", 128), strings.Repeat("[", 129) + strings.Repeat("]", 129),
		strings.Repeat(`{"a":`, 130) + "1" + strings.Repeat("}", 130),
		string(recordsPayload(2000)), string(keysPayload()),
	}
	for _, v := range values {
		checkSkip(t, []byte(v))
		for i := range len(v) { // every prefix: frames cut short anywhere
			checkSkip(t, []byte(v[:i]))
		}
	}
	for _, x := range stringCases() {
		checkSkip(t, []byte(`{"k":"`+x+`","n":[12,-3.5e2,"`+x+`"]}`))
	}
}

func FuzzRawString(f *testing.F) {
	for _, p := range pieces {
		f.Add([]byte(filler[:5] + p + filler[:9] + `"`))
	}
	f.Add([]byte(`"`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkRawString(t, append([]byte{'"'}, b...), 0)
	})
}

func FuzzAppendString(f *testing.F) {
	for _, p := range pieces {
		f.Add(filler[:5] + p + filler[:9])
	}
	f.Add("")
	f.Add("\x00\x01\x1f\x7f\x80")
	f.Fuzz(func(t *testing.T, s string) {
		checkAppendString(t, s)
	})
}

func FuzzValid(f *testing.F) {
	f.Add([]byte(`{"a" : [1, 2.5, -3e+7, 0, true, false, null, "x\n"], "b":{}}`))
	f.Add([]byte(`[1,]`))
	f.Add([]byte(` "\ud800" `))
	f.Add(keysPayload())
	f.Add(recordsPayload(300))
	f.Add([]byte(`{"a":-0.5e1,"bb":[0,-1,12.25,"x\u00e9y"],"c" :{ } , "d":[ ]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkSkip(t, b)
	})
}
