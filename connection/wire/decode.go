package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/bits"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Decode errors. Every error Decode returns is a *DecodeError that matches
// exactly one of these with errors.Is.
var (
	// ErrUnknownType: the frame is a JSON object whose "type" is not a known message.
	ErrUnknownType = errors.New("wire: unknown message type")
	// ErrMalformed: the frame is not valid JSON, or lacks or mistypes a field.
	ErrMalformed = errors.New("wire: malformed frame")
)

// DecodeError describes a frame that could not be decoded. The engine drops
// such frames and keeps the connection open; callers should log and skip.
type DecodeError struct {
	Type    string // the frame's "type", if it was read
	Field   string // the offending field, if any
	Offset  int    // byte offset in the frame where decoding stopped
	Reason  string
	unknown bool
}

// Error implements the error interface.
func (e *DecodeError) Error() string {
	s := "wire: cannot decode"
	if e.Type != "" {
		s += " " + strconv.Quote(e.Type)
	}
	s += " frame"
	if e.Field != "" {
		s += ": field " + e.Field
	}
	return s + ": " + e.Reason + " (offset " + strconv.Itoa(e.Offset) + ")"
}

// Is makes a DecodeError match ErrUnknownType or ErrMalformed.
func (e *DecodeError) Is(target error) bool {
	if e.unknown {
		return target == ErrUnknownType
	}
	return target == ErrMalformed
}

// maxDepth is serde_json's recursion limit: the engine cannot decode deeper frames.
const maxDepth = 128

// Decode decodes one text frame (or a binary frame holding JSON). The
// returned message aliases b.
func Decode(b []byte) (Message, error) {
	d := decoder{s: scanner{b: b}}
	return d.decode()
}

// Interner remembers strings that recur across frames (function ids), so
// that decoding them does not allocate each time. It is not safe for
// concurrent use: give each read loop its own. The zero value is ready.
//
// The strings come from the peer (the engine relays other workers'
// function ids), so what it keeps is bounded: at most MaxInterned strings
// of at most MaxInternedLen bytes each, MaxInternedBytes in all. Other
// strings are decoded as usual, just not kept.
type Interner struct {
	m     map[string]string
	bytes int
}

// Bounds of an Interner.
const (
	MaxInterned      = 4096      // strings kept
	MaxInternedLen   = 256       // bytes of a string kept; longer ones are not
	MaxInternedBytes = 256 << 10 // bytes of all the strings kept
)

func (in *Interner) intern(b []byte) string {
	if len(b) > MaxInternedLen {
		return string(b)
	}
	if s, ok := in.m[string(b)]; ok { // no allocation for the lookup
		return s
	}
	s := string(b)
	if in.m == nil {
		in.m = make(map[string]string)
	}
	if len(in.m) < MaxInterned && in.bytes+len(s) <= MaxInternedBytes {
		in.m[s] = s
		in.bytes += len(s)
	}
	return s
}

// DecodeInterned is Decode with function ids interned in in.
func DecodeInterned(b []byte, in *Interner) (Message, error) {
	d := decoder{s: scanner{b: b, in: in}}
	return d.decode()
}

// Valid reports whether b is one valid JSON value (with the engine's
// nesting limit), faster than encoding/json.Valid.
func Valid(b []byte) bool {
	s := scanner{b: b}
	s.ws()
	s.skip()
	s.ws()
	return s.err == nil && s.i == len(b)
}

type scanner struct {
	b     []byte
	i     int
	depth int
	err   *DecodeError
	field string // field being decoded, for errors
	typ   string
	in    *Interner
}

func (s *scanner) fail(reason string) {
	if s.err == nil {
		s.err = &DecodeError{Type: s.typ, Field: s.field, Offset: s.i, Reason: reason}
	}
}

// isSpace reports whether c is JSON whitespace. Every other byte that can
// start a token is above ' ', so that the common case is one comparison.
func isSpace(c byte) bool { return c <= ' ' && (c == ' ' || c == '\t' || c == '\n' || c == '\r') }

func (s *scanner) ws() {
	for s.i < len(s.b) && isSpace(s.b[s.i]) {
		s.i++
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) expect(c byte) bool {
	if s.peek() != c {
		if s.i >= len(s.b) {
			s.fail("unexpected end of frame")
		} else {
			s.fail("expected " + strconv.QuoteRune(rune(c)))
		}
		return false
	}
	s.i++
	return true
}

// objectStart consumes '{' and accounts for depth.
func (s *scanner) objectStart() bool {
	if !s.expect('{') {
		return false
	}
	s.depth++
	if s.depth > maxDepth {
		s.fail("nesting too deep")
		return false
	}
	return true
}

// nextKey advances to the next member of the current object and returns its
// key (unescaped), or ok=false at the closing '}' or on error. first tells
// whether this is the first member.
func (s *scanner) nextKey(first *bool) (key []byte, ok bool) {
	c := s.peek()
	if c == '}' {
		s.i++
		s.depth--
		return nil, false
	}
	if !*first {
		if c != ',' {
			s.fail("expected ',' or '}'")
			return nil, false
		}
		s.i++
		c = s.peek()
	}
	*first = false
	if c != '"' {
		s.fail("expected a string key")
		return nil, false
	}
	raw, esc := s.rawString()
	if s.err != nil {
		return nil, false
	}
	if esc {
		raw = unescape(raw)
	}
	if s.i < len(s.b) && s.b[s.i] == ':' { // no space before the colon
		s.i++
		return raw, true
	}
	if !s.expect(':') {
		return nil, false
	}
	return raw, true
}

// plain marks the bytes a string can hold without a closer look: printable
// ASCII other than '"' and '\\'.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// rawString consumes a string (the scanner is at its opening quote) and
// returns its contents without the quotes, still escaped, validating escapes,
// control characters and UTF-8 on the way.
func (s *scanner) rawString() (raw []byte, escaped bool) {
	start := s.i + 1 // after the opening quote
	end, escaped, reason := scanString(s.b, start)
	if reason != "" {
		s.i = end
		s.fail(reason)
		return nil, false
	}
	s.i = end
	return s.b[start : end-1], escaped
}

// scanString scans the rest of a string from b[i], just after its opening
// quote. It returns the index after the closing quote, or, with a reason,
// the offset of what is wrong. Runs of plain bytes are skipped a word at a
// time (plainRun).
func scanString(b []byte, i int) (end int, escaped bool, reason string) {
	if i+8 <= len(b) { // short strings (keys) end in their first word
		if m := special(binary.LittleEndian.Uint64(b[i:])); m != 0 {
			i += bits.TrailingZeros64(m) >> 3
		} else {
			i = plainRun(b, i+8)
		}
	} else {
		i = plainRun(b, i)
	}
	for ; i < len(b); i = plainRun(b, i) { // at a byte that is not plain
		switch c := b[i]; {
		case c == '"':
			return i + 1, escaped, ""
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				return len(b), false, "unexpected end of frame in string"
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return len(b), false, "unexpected end of frame in string"
				}
				for _, h := range b[i+2 : i+6] {
					if _, ok := unhex(h); !ok {
						return i, false, "invalid \\u escape"
					}
				}
				i += 6
			default:
				return i, false, "invalid escape"
			}
		case c < 0x20:
			return i, false, "control character in string"
		default: // not ASCII: validate the run of multi-byte runes
			for i < len(b) && b[i] >= utf8.RuneSelf {
				if b[i] < 0xe0 && b[i] >= 0xc2 && i+1 < len(b) && b[i+1]&0xc0 == 0x80 {
					i += 2 // a 2-byte rune, the common case (Latin, Greek, Cyrillic...)
					continue
				}
				r, size := utf8.DecodeRune(b[i:])
				if r == utf8.RuneError && size == 1 {
					return i, false, "invalid UTF-8 in string"
				}
				i += size
			}
		}
	}
	return len(b), false, "unexpected end of frame in string"
}

// unescape decodes the escapes of a validated raw string. Lone surrogates
// become U+FFFD.
func unescape(raw []byte) []byte {
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		switch raw[i+1] {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hex4(raw[i+2 : i+6])
			i += 6
			if utf16.IsSurrogate(r) {
				if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					if r2 := hex4(raw[i+2 : i+6]); utf16.DecodeRune(r, r2) != utf8.RuneError {
						r = utf16.DecodeRune(r, r2)
						i += 6
					} else {
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
			continue
		default: // '"', '\\', '/'
			out = append(out, raw[i+1])
		}
		i += 2
	}
	return out
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		v, _ := unhex(c)
		r = r<<4 | rune(v)
	}
	return r
}

// str decodes a required string value.
func (s *scanner) str() string {
	if s.peek() != '"' {
		s.fail("expected a string")
		return ""
	}
	raw, esc := s.rawString()
	if esc {
		raw = unescape(raw)
	}
	return string(raw)
}

// functionID decodes a function id, interned when the decoder has an Interner.
func (s *scanner) functionID() string {
	if s.in == nil || s.peek() != '"' {
		return s.str()
	}
	raw, esc := s.rawString()
	if s.err != nil {
		return ""
	}
	if esc {
		return string(unescape(raw))
	}
	return s.in.intern(raw)
}

// typeName decodes the "type" string; known type names don't allocate.
func (s *scanner) typeName() string {
	if s.peek() != '"' {
		s.fail("expected a string")
		return ""
	}
	raw, esc := s.rawString()
	if esc {
		raw = unescape(raw)
	}
	for k := KindRegisterTriggerType; k < numKinds; k++ {
		if string(raw) == kindNames[k] {
			return kindNames[k]
		}
	}
	return string(raw)
}

// optStr decodes an optional string value: null reads as absent ("").
func (s *scanner) optStr() string {
	if s.null() {
		return ""
	}
	return s.str()
}

// engineBaggage is how the baggage the engine puts on every traced call
// begins: "iii.function.id=<the function called>".
const engineBaggage = "iii.function.id="

// baggage decodes an optional baggage string. The engine's own, one per
// function id, is interned as function ids are; other baggage is not,
// lest values that vary fill the interner.
func (s *scanner) baggage() string {
	if s.in == nil || s.peek() != '"' {
		return s.optStr()
	}
	raw, esc := s.rawString()
	if s.err != nil {
		return ""
	}
	if esc {
		return string(unescape(raw))
	}
	if len(raw) > len(engineBaggage) && string(raw[:len(engineBaggage)]) == engineBaggage && bytes.IndexByte(raw, ',') < 0 {
		return s.in.intern(raw)
	}
	return string(raw)
}

// null consumes a null literal if one is next.
func (s *scanner) null() bool {
	if s.peek() == 'n' {
		if len(s.b)-s.i >= 4 && string(s.b[s.i:s.i+4]) == "null" {
			s.i += 4
			return true
		}
		s.fail("invalid literal")
	}
	return false
}

// value consumes any JSON value, validating it, and returns its exact span.
func (s *scanner) value() json.RawMessage {
	s.ws()
	start := s.i
	s.skip()
	if s.err != nil {
		return nil
	}
	return json.RawMessage(s.b[start:s.i:s.i])
}

// skip consumes one JSON value, validating it. It walks nested values in a
// loop (not by recursion) with the scanner's position in a local. The common
// tokens are handled inline: strings that end within their first words with
// no byte that needs a closer look, a key's colon right after it, integers
// and decimals without an exponent, and the byte after a value when it is
// not whitespace. Anything else (escapes, non-ASCII, exponents, whitespace,
// errors) is left to scanString, scanNumber and skipSpace, from where the
// inline path stopped, so that what is accepted and every error's reason and
// offset are theirs.
func (s *scanner) skip() {
	b, i := s.b, s.i
	base, depth := s.depth, s.depth
	// arrays has bit d-1 set when the value open at depth d is an array;
	// inArray is that bit for the current depth.
	var arrays [(maxDepth + 63) / 64]uint64
	inArray := false
	var reason string
	var c byte
	var j int
value: // a value starts at i
	if i >= len(b) {
		reason = "unexpected end of frame"
		goto fail
	}
	c = b[i]
	if c == '"' {
		j = i + 1
		if r := b[j:]; len(r) >= 8 { // most strings end in their first word
			w := binary.LittleEndian.Uint64(r)
			if m := special(w); m != 0 {
				if m&-m&quotes(w) != 0 {
					i = j + bits.TrailingZeros64(m)>>3 + 1
					goto end
				}
				j += bits.TrailingZeros64(m) >> 3
				goto stringRest
			}
			for j += 8; j+8 <= len(b) && j-i <= 32; j += 8 {
				w := binary.LittleEndian.Uint64(b[j:])
				if m := special(w); m != 0 {
					if m&-m&quotes(w) != 0 {
						i = j + bits.TrailingZeros64(m)>>3 + 1
						goto end
					}
					j += bits.TrailingZeros64(m) >> 3
					break
				}
			}
		}
		goto stringRest
	}
	switch c {
	case '{':
		i++
		if depth++; depth > maxDepth {
			reason = "nesting too deep"
			goto fail
		}
		d := uint(depth - 1)
		arrays[d/64] &^= 1 << (d % 64)
		inArray = false
		if i < len(b) && b[i] <= ' ' {
			i = skipSpace(b, i)
		}
		if i < len(b) && b[i] == '}' {
			i++
			goto closed
		}
		goto key
	case '[':
		i++
		if depth++; depth > maxDepth {
			reason = "nesting too deep"
			goto fail
		}
		d := uint(depth - 1)
		arrays[d/64] |= 1 << (d % 64)
		inArray = true
		if i < len(b) && b[i] <= ' ' {
			i = skipSpace(b, i)
		}
		if i < len(b) && b[i] == ']' {
			i++
			goto closed
		}
		goto value
	case 't':
		if len(b)-i < 4 || string(b[i:i+4]) != "true" {
			reason = "invalid literal"
			goto fail
		}
		i += 4
		goto end
	case 'f':
		if len(b)-i < 5 || string(b[i:i+5]) != "false" {
			reason = "invalid literal"
			goto fail
		}
		i += 5
		goto end
	case 'n':
		if len(b)-i < 4 || string(b[i:i+4]) != "null" {
			reason = "invalid literal"
			goto fail
		}
		i += 4
		goto end
	}
	// A number: integers and decimals are read inline.
	if j = i + 1; c-'1' > 8 { // not '1'..'9'
		switch {
		case c == '0':
			goto fraction
		case c != '-':
			reason = "unexpected character " + strconv.QuoteRune(rune(c))
			goto fail
		case j < len(b) && b[j]-'1' <= 8:
			j++
		case j < len(b) && b[j] == '0':
			j++
			goto fraction
		default:
			goto number
		}
	}
	for j < len(b) && b[j]-'0' <= 9 {
		j++
	}
fraction: // after the integer part of a number, which starts at i
	if j < len(b) && b[j] == '.' {
		k := j + 1
		for k < len(b) && b[k]-'0' <= 9 {
			k++
		}
		if k == j+1 {
			goto number
		}
		j = k
	}
	if j < len(b) && b[j]|0x20 == 'e' {
		goto number
	}
	i = j
	goto end
stringRest: // the rest of a string value from j, which the inline path left
	if i, _, reason = scanString(b, j); reason != "" {
		goto fail
	}
	goto end
number: // a number the inline path left, from its start at i
	if i, _, reason = scanNumber(b, i); reason != "" {
		goto fail
	}
end: // a value ended just before i
	if depth == base {
		s.i, s.depth = i, depth
		return
	}
	if i < len(b) {
		if c = b[i]; c <= ' ' {
			if i = skipSpace(b, i); i >= len(b) {
				goto separator
			}
			c = b[i]
		}
		if c == ',' {
			if i++; i < len(b) && b[i] <= ' ' {
				i = skipSpace(b, i)
			}
			if inArray {
				goto value
			}
			goto key
		}
		if inArray {
			if c == ']' {
				i++
				goto closed
			}
		} else if c == '}' {
			i++
			goto closed
		}
	}
separator: // neither a ',' nor the closing bracket after a value
	if inArray {
		reason = "expected ',' or ']'"
	} else {
		reason = "expected ',' or '}'"
	}
	goto fail
closed: // the object or array open at depth ended just before i
	depth--
	if depth > base {
		d := uint(depth - 1)
		inArray = arrays[d/64]&(1<<(d%64)) != 0
	}
	goto end
key: // a member's key starts at i
	if i >= len(b) || b[i] != '"' {
		reason = "expected a string key"
		goto fail
	}
	if j = i + 1; len(b)-j >= 8 { // most keys end in their first word
		w := binary.LittleEndian.Uint64(b[j:])
		if m := special(w); m != 0 {
			if m&-m&quotes(w) != 0 {
				i = j + bits.TrailingZeros64(m)>>3 + 1
				goto colon
			}
			j += bits.TrailingZeros64(m) >> 3
			goto keyRest
		}
		for j += 8; j+8 <= len(b) && j-i <= 32; j += 8 {
			w := binary.LittleEndian.Uint64(b[j:])
			if m := special(w); m != 0 {
				if m&-m&quotes(w) != 0 {
					i = j + bits.TrailingZeros64(m)>>3 + 1
					goto colon
				}
				j += bits.TrailingZeros64(m) >> 3
				break
			}
		}
	}
keyRest: // the rest of a key from j, which the inline path left
	if i, _, reason = scanString(b, j); reason != "" {
		goto fail
	}
colon: // a key ended just before i
	if i < len(b) && b[i] == ':' {
		if i++; i < len(b) && b[i] <= ' ' {
			i = skipSpace(b, i)
		}
		goto value
	}
	if i = skipSpace(b, i); i >= len(b) {
		reason = "unexpected end of frame"
		goto fail
	}
	if b[i] != ':' {
		reason = "expected ':'"
		goto fail
	}
	i = skipSpace(b, i+1)
	goto value
fail:
	s.i, s.depth = i, depth
	s.fail(reason)
}

// skipSpace returns the index of the first byte at or after i that is not
// whitespace.
func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// number consumes a JSON number.
func (s *scanner) number() (integer bool) {
	end, integer, reason := scanNumber(s.b, s.i)
	s.i = end
	if reason != "" {
		s.fail(reason)
		return false
	}
	return integer
}

// scanNumber scans a JSON number from b[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
// It returns the index after it, or, with a reason, the offset of what is
// wrong.
func scanNumber(b []byte, i int) (end int, integer bool, reason string) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i++; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
		}
	default:
		return i, false, "invalid number"
	}
	integer = true
	if i < len(b) && b[i] == '.' {
		integer = false
		i++
		start := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		if i == start {
			return i, false, "invalid number"
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		integer = false
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		start := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		if i == start {
			return i, false, "invalid number"
		}
	}
	return i, integer, ""
}

// uint64 decodes a non-negative integer.
func (s *scanner) uint64() uint64 {
	s.ws()
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.fail("expected a non-negative integer")
		return 0
	}
	if !s.number() {
		s.fail("expected a non-negative integer")
		return 0
	}
	v, err := strconv.ParseUint(string(s.b[start:s.i]), 10, 64)
	if err != nil {
		s.fail("integer out of range")
	}
	return v
}

func (s *scanner) uuid() UUID {
	if s.peek() != '"' {
		s.fail("expected a UUID string")
		return UUID{}
	}
	raw, esc := s.rawString()
	if s.err != nil {
		return UUID{}
	}
	if esc {
		raw = unescape(raw)
	}
	u, err := parseUUID(raw)
	if err != nil {
		s.fail("invalid UUID")
	}
	return u
}

// errorBody decodes an ErrorBody object.
func (s *scanner) errorBody() *ErrorBody {
	if !s.objectStart() {
		return nil
	}
	var e ErrorBody
	var seen fieldSet
	first := true
	for {
		key, ok := s.nextKey(&first)
		if !ok {
			break
		}
		switch string(key) {
		case "code":
			s.once(&seen, 0, "code")
			e.Code = s.str()
		case "message":
			s.once(&seen, 1, "message")
			e.Message = s.str()
		case "stacktrace":
			s.once(&seen, 2, "stacktrace")
			e.Stacktrace = s.optStr()
		default:
			s.ws()
			s.skip()
		}
		if s.err != nil {
			return nil
		}
	}
	if s.err == nil {
		s.require(seen, 0, "code")
		s.require(seen, 1, "message")
	}
	return &e
}

// action decodes a TriggerAction (null reads as absent).
func (s *scanner) action() TriggerAction {
	if s.null() {
		return TriggerAction{}
	}
	if !s.objectStart() {
		return TriggerAction{}
	}
	var typ, queue string
	var seen fieldSet
	first := true
	for {
		key, ok := s.nextKey(&first)
		if !ok {
			break
		}
		switch string(key) {
		case "type":
			s.once(&seen, 0, "action.type")
			typ = s.str()
		case "queue":
			s.once(&seen, 1, "action.queue")
			queue = s.str()
		default:
			s.ws()
			s.skip()
		}
		if s.err != nil {
			return TriggerAction{}
		}
	}
	switch typ {
	case "void":
		return TriggerAction{Kind: ActionVoid}
	case "enqueue":
		if !seen.has(1) {
			s.fail("enqueue action without queue")
		}
		return TriggerAction{Kind: ActionEnqueue, Queue: queue}
	}
	s.fail("unknown action type " + strconv.Quote(typ))
	return TriggerAction{}
}

var httpMethods = map[string]bool{"GET": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true}

func (s *scanner) httpInvocation() *HTTPInvocationRef {
	if s.null() {
		return nil
	}
	if !s.objectStart() {
		return nil
	}
	ref := &HTTPInvocationRef{}
	var seen fieldSet
	first := true
	for {
		key, ok := s.nextKey(&first)
		if !ok {
			break
		}
		switch string(key) {
		case "url":
			s.once(&seen, 0, "invocation.url")
			ref.URL = s.str()
		case "method":
			s.once(&seen, 1, "invocation.method")
			ref.Method = s.str()
			if s.err == nil && !httpMethods[ref.Method] {
				s.fail("unknown HTTP method " + strconv.Quote(ref.Method))
			}
		case "timeout_ms":
			s.once(&seen, 2, "invocation.timeout_ms")
			if !s.null() {
				v := s.uint64()
				ref.TimeoutMS = &v
			}
		case "headers":
			s.once(&seen, 3, "invocation.headers")
			ref.Headers = s.stringMap()
		case "auth":
			s.once(&seen, 4, "invocation.auth")
			ref.Auth = s.httpAuth()
		default:
			s.ws()
			s.skip()
		}
		if s.err != nil {
			return nil
		}
	}
	s.require(seen, 0, "invocation.url")
	return ref
}

func (s *scanner) stringMap() map[string]string {
	if !s.objectStart() {
		return nil
	}
	m := map[string]string{}
	first := true
	for {
		key, ok := s.nextKey(&first)
		if !ok {
			break
		}
		m[string(key)] = s.str()
		if s.err != nil {
			return nil
		}
	}
	return m
}

func (s *scanner) httpAuth() *HTTPAuth {
	if s.null() {
		return nil
	}
	if !s.objectStart() {
		return nil
	}
	a := &HTTPAuth{}
	first := true
	for {
		key, ok := s.nextKey(&first)
		if !ok {
			break
		}
		switch string(key) {
		case "type":
			a.Type = s.str()
		case "secret_key":
			a.SecretKey = s.str()
		case "token_key":
			a.TokenKey = s.str()
		case "header":
			a.Header = s.str()
		case "value_key":
			a.ValueKey = s.str()
		default:
			s.ws()
			s.skip()
		}
		if s.err != nil {
			return nil
		}
	}
	var need []string
	switch a.Type {
	case "hmac":
		need = []string{a.SecretKey}
	case "bearer":
		need = []string{a.TokenKey}
	case "api_key":
		need = []string{a.Header, a.ValueKey}
	default:
		s.fail("unknown auth type " + strconv.Quote(a.Type))
		return nil
	}
	for _, v := range need {
		if v == "" {
			s.fail("auth " + a.Type + " lacks a required field")
		}
	}
	return a
}

// fieldSet tracks which fields of an object were seen.
type fieldSet uint32

func (f fieldSet) has(i int) bool { return f&(1<<i) != 0 }

// once marks field i as seen, failing on a duplicate key as the engine does.
func (s *scanner) once(f *fieldSet, i int, name string) {
	s.field = name
	if f.has(i) {
		s.fail("duplicate field")
	}
	*f |= 1 << i
}

func (s *scanner) require(f fieldSet, i int, name string) {
	if !f.has(i) {
		s.field = name
		s.fail("missing required field")
	}
}

type decoder struct {
	s     scanner
	fast  bool // "type" was the first member and decoding continues after it
	first bool // no member read yet at the current position
}

func (d *decoder) decode() (Message, error) {
	s := &d.s
	if s.peek() != '{' {
		if s.i >= len(s.b) {
			s.fail("empty frame")
		} else {
			s.fail("a frame must be a JSON object")
		}
		return nil, s.err
	}
	begin := s.i
	typ, fast, ok := d.findType()
	if !ok {
		return nil, s.err
	}
	s.typ = typ
	kind := KindOf(typ)
	if kind == KindInvalid {
		return nil, &DecodeError{Type: typ, Reason: "unknown message type", unknown: true}
	}
	d.fast = fast
	if fast {
		d.first = false
	} else {
		s.i, s.depth = begin, 0
		s.objectStart()
		d.first = true
	}
	var m Message
	switch kind {
	case KindRegisterFunction:
		m = d.registerFunction()
	case KindUnregisterFunction:
		m = d.idOnly(func(id string) Message { return &UnregisterFunction{ID: id} })
	case KindUnregisterTriggerType:
		m = d.idOnly(func(id string) Message { return &UnregisterTriggerType{ID: id} })
	case KindRegisterTriggerType:
		m = d.registerTriggerType()
	case KindRegisterTrigger:
		m = d.registerTrigger()
	case KindUnregisterTrigger:
		m = d.unregisterTrigger()
	case KindTriggerRegistrationResult:
		m = d.triggerRegistrationResult()
	case KindInvokeFunction:
		m = d.invokeFunction()
	case KindInvocationResult:
		m = d.invocationResult()
	case KindRegisterService:
		m = d.registerService()
	case KindPing:
		d.skipRest()
		m = &Ping{}
	case KindPong:
		d.skipRest()
		m = &Pong{}
	case KindReattach:
		m = d.reattach()
	case KindWorkerRegistered:
		m = d.workerRegistered()
	case KindRegistrationRejected:
		m = d.registrationRejected()
	case KindError:
		m = d.errorFrame()
	}
	if s.err == nil {
		if s.ws(); s.i < len(s.b) {
			s.field = ""
			s.fail("trailing data after the object")
		}
	}
	if s.err != nil {
		return nil, s.err
	}
	return m, nil
}

// findType reads the frame's "type". The engine and every SDK write it
// first, so the common case reads one key and decoding continues from there
// (fast is true). Otherwise the members are validated and skipped up to the
// end, and the caller rescans from the start.
func (d *decoder) findType() (typ string, fast, ok bool) {
	s := &d.s
	if !s.objectStart() {
		return "", false, false
	}
	first := true
	found := false
	for n := 0; ; n++ {
		key, more := s.nextKey(&first)
		if !more {
			break
		}
		if string(key) == "type" {
			if found {
				s.field = "type"
				s.fail("duplicate field")
				return "", false, false
			}
			s.field = "type"
			typ = s.typeName()
			s.field = ""
			found = true
			if n == 0 && s.err == nil {
				return typ, true, true
			}
		} else {
			s.ws()
			s.skip()
		}
		if s.err != nil {
			return "", false, false
		}
	}
	if s.err != nil {
		return "", false, false
	}
	if !found {
		s.field = "type"
		s.fail("missing required field")
		return "", false, false
	}
	return typ, false, true
}

// members iterates the members of the message object after its "type" and
// calls field for every other key. field returns false for keys it does not
// know, which are then skipped.
func (d *decoder) members(field func(key []byte) bool) {
	s := &d.s
	for {
		key, ok := s.nextKey(&d.first)
		if !ok {
			return
		}
		if string(key) == "type" {
			if d.fast { // "type" was the first member: this is a second one
				s.field = "type"
				s.fail("duplicate field")
				return
			}
			s.ws()
			s.skip()
		} else if !field(key) {
			s.ws()
			s.skip()
		}
		if s.err != nil {
			return
		}
	}
}

func (d *decoder) skipRest() { d.members(func([]byte) bool { return false }) }

func (d *decoder) idOnly(build func(id string) Message) Message {
	s := &d.s
	var id string
	var seen fieldSet
	d.members(func(k []byte) bool {
		if string(k) == "id" {
			s.once(&seen, 0, "id")
			id = s.str()
			return true
		}
		return false
	})
	s.require(seen, 0, "id")
	return build(id)
}

func (d *decoder) registerFunction() Message {
	s := &d.s
	m := &RegisterFunction{}
	var seen fieldSet
	d.members(func(k []byte) bool {
		switch string(k) {
		case "id":
			s.once(&seen, 0, "id")
			m.ID = s.str()
		case "description":
			s.once(&seen, 1, "description")
			m.Description = s.optStr()
		case "request_format":
			s.once(&seen, 2, "request_format")
			m.RequestFormat = s.value()
		case "response_format":
			s.once(&seen, 3, "response_format")
			m.ResponseFormat = s.value()
		case "metadata":
			s.once(&seen, 4, "metadata")
			m.Metadata = s.value()
		case "invocation":
			s.once(&seen, 5, "invocation")
			m.Invocation = s.httpInvocation()
		default:
			return false
		}
		return true
	})
	s.require(seen, 0, "id")
	return m
}

func (d *decoder) registerTriggerType() Message {
	s := &d.s
	m := &RegisterTriggerType{}
	var seen fieldSet
	d.members(func(k []byte) bool {
		switch string(k) {
		case "id":
			s.once(&seen, 0, "id")
			m.ID = s.str()
		case "description":
			s.once(&seen, 1, "description")
			m.Description = s.str()
		case "trigger_request_format":
			s.once(&seen, 2, "trigger_request_format")
			m.TriggerRequestFormat = s.value()
		case "call_request_format":
			s.once(&seen, 3, "call_request_format")
			m.CallRequestFormat = s.value()
		case "namespace":
			s.once(&seen, 4, "namespace")
			m.Namespace = s.optStr()
		default:
			return false
		}
		return true
	})
	s.require(seen, 0, "id")
	s.require(seen, 1, "description")
	return m
}

func (d *decoder) registerTrigger() Message {
	s := &d.s
	m := &RegisterTrigger{}
	var seen fieldSet
	d.members(func(k []byte) bool {
		switch string(k) {
		case "id":
			s.once(&seen, 0, "id")
			m.ID = s.str()
		case "trigger_type":
			s.once(&seen, 1, "trigger_type")
			m.TriggerType = s.str()
		case "function_id":
			s.once(&seen, 2, "function_id")
			m.FunctionID = s.functionID()
		case "config":
			s.once(&seen, 3, "config")
			m.Config = s.value()
		case "metadata":
			s.once(&seen, 4, "metadata")
			m.Metadata = s.value()
		case "namespace":
			s.once(&seen, 5, "namespace")
			m.Namespace = s.optStr()
		case "trigger_namespace":
			s.once(&seen, 6, "trigger_namespace")
			m.TriggerNamespace = s.optStr()
		default:
			return false
		}
		return true
	})
	s.require(seen, 0, "id")
	s.require(seen, 1, "trigger_type")
	s.require(seen, 2, "function_id")
	s.require(seen, 3, "config")
	return m
}

func (d *decoder) unregisterTrigger() Message {
	s := &d.s
	m := &UnregisterTrigger{}
	var seen fieldSet
	d.members(func(k []byte) bool {
		switch string(k) {
		case "id":
			s.once(&seen, 0, "id")
			m.ID = s.str()
		case "trigger_type":
			s.once(&seen, 1, "trigger_type")
			m.TriggerType = s.optStr()
		default:
			return false
		}
		return true
	})
	s.require(seen, 0, "id")
	return m
}

func (d *decoder) triggerRegistrationResult() Message {
	s := &d.s
	m := &TriggerRegistrationResult{}
	var seen fieldSet
	d.members(func(k []byte) bool {
		switch string(k) {
		case "id":
			s.once(&seen, 0, "id")
			m.ID = s.str()
		case "trigger_type":
			s.once(&seen, 1, "trigger_type")
			m.TriggerType = s.str()
		case "function_id":
			s.once(&seen, 2, "function_id")
			m.FunctionID = s.functionID()
		case "error":
			s.once(&seen, 3, "error")
			if !s.null() {
				m.Error = s.errorBody()
			}
		default:
			return false
		}
		return true
	})
	s.require(seen, 0, "id")
	s.require(seen, 1, "trigger_type")
	s.require(seen, 2, "function_id")
	return m
}

func (d *decoder) invokeFunction() Message {
	s := &d.s
	m := &InvokeFunction{}
	var seen fieldSet
	d.members(func(k []byte) bool {
		switch string(k) {
		case "invocation_id":
			s.once(&seen, 0, "invocation_id")
			if s.null() {
				m.nullID = true
			} else {
				m.InvocationID = s.uuid()
				m.HasInvocationID = true
			}
		case "function_id":
			s.once(&seen, 1, "function_id")
			m.FunctionID = s.functionID()
		case "data":
			s.once(&seen, 2, "data")
			m.Data = s.value()
		case "traceparent":
			s.once(&seen, 3, "traceparent")
			m.Traceparent = s.optStr()
		case "baggage":
			s.once(&seen, 4, "baggage")
			m.Baggage = s.baggage()
		case "action":
			s.once(&seen, 5, "action")
			m.Action = s.action()
		case "metadata":
			s.once(&seen, 6, "metadata")
			m.Metadata = s.value()
		case "namespace":
			s.once(&seen, 7, "namespace")
			m.Namespace = s.optStr()
		default:
			return false
		}
		return true
	})
	s.require(seen, 1, "function_id")
	s.require(seen, 2, "data")
	return m
}

func (d *decoder) invocationResult() Message {
	s := &d.s
	m := &InvocationResult{}
	var seen fieldSet
	d.members(func(k []byte) bool {
		switch string(k) {
		case "invocation_id":
			s.once(&seen, 0, "invocation_id")
			m.InvocationID = s.uuid()
		case "function_id":
			s.once(&seen, 1, "function_id")
			m.FunctionID = s.functionID()
		case "result":
			s.once(&seen, 2, "result")
			m.Result = s.value()
		case "error":
			s.once(&seen, 3, "error")
			if !s.null() {
				m.Error = s.errorBody()
			}
		case "traceparent":
			s.once(&seen, 4, "traceparent")
			m.Traceparent = s.optStr()
		case "baggage":
			s.once(&seen, 5, "baggage")
			m.Baggage = s.baggage()
		default:
			return false
		}
		return true
	})
	s.require(seen, 0, "invocation_id")
	s.require(seen, 1, "function_id")
	return m
}

func (d *decoder) registerService() Message {
	s := &d.s
	m := &RegisterService{}
	var seen fieldSet
	d.members(func(k []byte) bool {
		switch string(k) {
		case "id":
			s.once(&seen, 0, "id")
			m.ID = s.str()
		case "name":
			s.once(&seen, 1, "name")
			m.Name = s.str() // not nullable
		case "description":
			s.once(&seen, 2, "description")
			m.Description = s.optStr()
		case "parent_service_id":
			s.once(&seen, 3, "parent_service_id")
			m.ParentServiceID = s.optStr()
		default:
			return false
		}
		return true
	})
	s.require(seen, 0, "id")
	return m
}

func (d *decoder) reattach() Message {
	s := &d.s
	m := &Reattach{}
	var seen fieldSet
	d.members(func(k []byte) bool {
		switch string(k) {
		case "previous_worker_id":
			s.once(&seen, 0, "previous_worker_id")
			m.PreviousWorkerID = s.str()
		case "reattach_token":
			s.once(&seen, 1, "reattach_token")
			m.ReattachToken = s.optStr()
		default:
			return false
		}
		return true
	})
	s.require(seen, 0, "previous_worker_id")
	return m
}

func (d *decoder) workerRegistered() Message {
	s := &d.s
	m := &WorkerRegistered{}
	var seen fieldSet
	d.members(func(k []byte) bool {
		switch string(k) {
		case "worker_id":
			s.once(&seen, 0, "worker_id")
			m.WorkerID = s.str()
		case "reattach_token":
			s.once(&seen, 1, "reattach_token")
			m.ReattachToken = s.optStr()
		default:
			return false
		}
		return true
	})
	s.require(seen, 0, "worker_id")
	return m
}

func (d *decoder) registrationRejected() Message {
	s := &d.s
	m := &RegistrationRejected{}
	var seen fieldSet
	d.members(func(k []byte) bool {
		switch string(k) {
		case "code":
			s.once(&seen, 0, "code")
			m.Code = s.str()
		case "namespace":
			s.once(&seen, 1, "namespace")
			m.Namespace = s.str()
		case "worker_name":
			s.once(&seen, 2, "worker_name")
			m.WorkerName = s.optStr()
		case "function_id":
			s.once(&seen, 3, "function_id")
			m.FunctionID = s.optStr()
		case "owner_worker_id":
			s.once(&seen, 4, "owner_worker_id")
			m.OwnerWorkerID = s.str()
		default:
			return false
		}
		return true
	})
	s.require(seen, 0, "code")
	s.require(seen, 1, "namespace")
	s.require(seen, 4, "owner_worker_id")
	return m
}

func (d *decoder) errorFrame() Message {
	s := &d.s
	m := &ErrorFrame{}
	var seen fieldSet
	d.members(func(k []byte) bool {
		if string(k) == "error" {
			s.once(&seen, 0, "error")
			if e := s.errorBody(); e != nil {
				m.Error = *e
			}
			return true
		}
		return false
	})
	s.require(seen, 0, "error")
	return m
}
