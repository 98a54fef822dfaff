package wire

import (
	"strings"
	"testing"
)

// TestSkipInlinePathsMatchTheReference runs skip and Valid against the
// reference on the cases where skip's inline paths hand over to scanString,
// scanNumber and skipSpace: a byte that needs a closer look at every offset
// of a key or string value across its first words, numbers of every shape
// (good, bad and cut short), and whitespace or a stray byte around every
// separator; each frame also cut short at every length.
func TestSkipInlinePathsMatchTheReference(t *testing.T) {
	var values []string
	long := strings.Repeat(filler, 2)
	for off := 0; off <= 44; off++ {
		for _, p := range []string{`"`, `\n`, `\u00e9`, `\x`, "é", "\xff", "\x01", ""} {
			x := long[:off] + p
			values = append(values,
				`{"`+x+`":1}`, `{"k":"`+x+`"}`, `["`+x+`",1]`, `"`+x+`"`, `{"`+x+`"  :  "`+x+`"}`)
		}
	}
	for _, n := range []string{
		"0", "-0", "7", "-7", "12345", "-12345", "1.5", "-1.5", "0.25", "10.0", "1e5", "1E+5", "-2.5e-3", "0e0",
		"01", "-01", "00", "-", "--1", "1.", "-.5", ".5", "1.e5", "1e", "1e+", "1.5E", "0x1", "+1", "1.5.5", "1-",
		"123456789012345678901234567890", "1.2345678901234567890123",
	} {
		values = append(values, n, "["+n+"]", `{"n":`+n+`}`, "["+n+","+n+"]", `{"a":`+n+`,"b":[`+n+`]}`)
	}
	for _, sp := range []string{"", " ", "\t", "\n", "\r", "  \n ", "\x01", "\x00", "x", "/"} {
		r := strings.NewReplacer("{", "{"+sp, "[", "["+sp, ",", sp+","+sp, ":", sp+":"+sp, "}", sp+"}", "]", sp+"]")
		for _, v := range []string{
			`{"a":1,"b":"x","c":[1,"y",true,false,null,{}],"d":{"e":1.5}}`,
			`[[],{},[[1]],{"a":{}},"s",-1]`, `{}`, `[]`, `{"a":[]}`,
		} {
			values = append(values, r.Replace(v))
		}
	}
	values = append(values, `tru`, `true`, `truex`, `nulL`, `fals`, `false`, `[true,false,null]`, `[t]`, `{"a":n}`)
	for _, v := range values {
		for i := range len(v) + 1 {
			checkSkip(t, []byte(v[:i]))
		}
	}
}
