package wire

// The implementations the codec had before its string and skipping loops were
// made to work a word at a time, kept as the reference the differential tests
// compare the codec against. They must not change.

import (
	"strconv"
	"unicode/utf8"
)

// refAppendString is appendString as it was: byte by byte.
func refAppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// refScanner is the scanner's validating part as it was.
type refScanner struct {
	b     []byte
	i     int
	depth int
	err   *DecodeError
}

func (s *refScanner) fail(reason string) {
	if s.err == nil {
		s.err = &DecodeError{Offset: s.i, Reason: reason}
	}
}

func (s *refScanner) ws() {
	for s.i < len(s.b) && isSpace(s.b[s.i]) {
		s.i++
	}
}

func (s *refScanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *refScanner) expect(c byte) bool {
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

func (s *refScanner) objectStart() bool {
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

func (s *refScanner) nextKey(first *bool) (key []byte, ok bool) {
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
	if !s.expect(':') {
		return nil, false
	}
	return raw, true
}

var refPlain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func (s *refScanner) rawString() (raw []byte, escaped bool) {
	s.i++ // opening quote
	start := s.i
	b := s.b
	for s.i < len(b) {
		i := s.i
		for i < len(b) && refPlain[b[i]] {
			i++
		}
		s.i = i
		if i == len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			raw = b[start:s.i]
			s.i++
			return raw, escaped
		case c == '\\':
			escaped = true
			if s.i+1 >= len(b) {
				s.i = len(b)
				s.fail("unexpected end of frame in string")
				return nil, false
			}
			switch b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(b) {
					s.i = len(b)
					s.fail("unexpected end of frame in string")
					return nil, false
				}
				for _, h := range b[s.i+2 : s.i+6] {
					if _, ok := unhex(h); !ok {
						s.fail("invalid \\u escape")
						return nil, false
					}
				}
				s.i += 6
			default:
				s.fail("invalid escape")
				return nil, false
			}
		case c < 0x20:
			s.fail("control character in string")
			return nil, false
		case c < utf8.RuneSelf:
			s.i++
		default:
			r, size := utf8.DecodeRune(b[s.i:])
			if r == utf8.RuneError && size == 1 {
				s.fail("invalid UTF-8 in string")
				return nil, false
			}
			s.i += size
		}
	}
	s.fail("unexpected end of frame in string")
	return nil, false
}

func (s *refScanner) skip() {
	if s.i >= len(s.b) {
		s.fail("unexpected end of frame")
		return
	}
	switch c := s.b[s.i]; c {
	case '{':
		if !s.objectStart() {
			return
		}
		first := true
		for {
			if _, ok := s.nextKey(&first); !ok {
				return
			}
			s.ws()
			s.skip()
			if s.err != nil {
				return
			}
		}
	case '[':
		s.i++
		s.depth++
		if s.depth > maxDepth {
			s.fail("nesting too deep")
			return
		}
		if s.peek() == ']' {
			s.i++
			s.depth--
			return
		}
		for {
			s.ws()
			s.skip()
			if s.err != nil {
				return
			}
			switch s.peek() {
			case ',':
				s.i++
			case ']':
				s.i++
				s.depth--
				return
			default:
				s.fail("expected ',' or ']'")
				return
			}
		}
	case '"':
		s.rawString()
	case 't':
		s.literal("true")
	case 'f':
		s.literal("false")
	case 'n':
		s.literal("null")
	default:
		if c == '-' || ('0' <= c && c <= '9') {
			s.number()
			return
		}
		s.fail("unexpected character " + strconv.QuoteRune(rune(c)))
	}
}

func (s *refScanner) literal(lit string) {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return
	}
	s.fail("invalid literal")
}

func (s *refScanner) number() (integer bool) {
	b := s.b
	if s.i < len(b) && b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(b) && b[s.i] == '0':
		s.i++
	case s.i < len(b) && '1' <= b[s.i] && b[s.i] <= '9':
		for s.i < len(b) && '0' <= b[s.i] && b[s.i] <= '9' {
			s.i++
		}
	default:
		s.fail("invalid number")
		return false
	}
	integer = true
	if s.i < len(b) && b[s.i] == '.' {
		integer = false
		s.i++
		if !s.digits() {
			return false
		}
	}
	if s.i < len(b) && (b[s.i] == 'e' || b[s.i] == 'E') {
		integer = false
		s.i++
		if s.i < len(b) && (b[s.i] == '+' || b[s.i] == '-') {
			s.i++
		}
		if !s.digits() {
			return false
		}
	}
	return integer
}

func (s *refScanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
	}
	if s.i == start {
		s.fail("invalid number")
		return false
	}
	return true
}

// refValid is Valid as it was, but for the end test: a NUL byte after the
// value is trailing data (TestNULAfterTheValueIsTrailingData), where
// peek() == 0 took it for the end.
func refValid(b []byte) bool {
	s := refScanner{b: b}
	s.ws()
	s.skip()
	s.ws()
	return s.err == nil && s.i == len(b)
}
