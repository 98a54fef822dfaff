package wire

import (
	"crypto/rand"
	"errors"
)

// UUID is a 128-bit identifier as used for invocation ids. It is a value type
// so that it can key maps and travel in messages without allocating.
type UUID [16]byte

// errInvalidUUID is wrapped into a DecodeError when an id does not parse.
var errInvalidUUID = errors.New("invalid UUID")

// NewUUID returns a random (version 4) UUID.
func NewUUID() UUID {
	var u UUID
	if _, err := rand.Read(u[:]); err != nil {
		panic("wire: crypto/rand failed: " + err.Error())
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}

// IsZero reports whether u is the nil UUID.
func (u UUID) IsZero() bool { return u == UUID{} }

// String returns u in the lower-case hyphenated form the engine emits.
func (u UUID) String() string { return string(u.appendText(make([]byte, 0, 36))) }

const hexDigits = "0123456789abcdef"

func (u UUID) appendText(dst []byte) []byte {
	for i, b := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hexDigits[b>>4], hexDigits[b&0x0f])
	}
	return dst
}

// MarshalText implements encoding.TextMarshaler.
func (u UUID) MarshalText() ([]byte, error) { return u.appendText(make([]byte, 0, 36)), nil }

// UnmarshalText implements encoding.TextUnmarshaler with the same rules as ParseUUID.
func (u *UUID) UnmarshalText(b []byte) error {
	v, err := parseUUID(b)
	if err != nil {
		return err
	}
	*u = v
	return nil
}

// ParseUUID parses the forms the engine accepts: hyphenated, simple (32 hex
// digits), braced ({...}) and urn:uuid:, with hex digits in either case.
func ParseUUID(s string) (UUID, error) { return parseUUID([]byte(s)) }

func parseUUID(b []byte) (UUID, error) {
	var u UUID
	switch len(b) {
	case 32:
		for i := range u {
			hi, ok1 := unhex(b[2*i])
			lo, ok2 := unhex(b[2*i+1])
			if !ok1 || !ok2 {
				return UUID{}, errInvalidUUID
			}
			u[i] = hi<<4 | lo
		}
		return u, nil
	case 38:
		if b[0] != '{' || b[37] != '}' {
			return UUID{}, errInvalidUUID
		}
		b = b[1:37]
	case 45:
		if string(b[:9]) != "urn:uuid:" {
			return UUID{}, errInvalidUUID
		}
		b = b[9:]
	case 36:
	default:
		return UUID{}, errInvalidUUID
	}
	if b[8] != '-' || b[13] != '-' || b[18] != '-' || b[23] != '-' {
		return UUID{}, errInvalidUUID
	}
	for j, i := range hyphenatedOffsets {
		hi, ok1 := unhex(b[i])
		lo, ok2 := unhex(b[i+1])
		if !ok1 || !ok2 {
			return UUID{}, errInvalidUUID
		}
		u[j] = hi<<4 | lo
	}
	return u, nil
}

// hyphenatedOffsets are the offsets of the 16 hex pairs in the 36-character form.
var hyphenatedOffsets = [16]int{0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// MustParseUUID is ParseUUID for constants; it panics on a malformed id.
func MustParseUUID(s string) UUID {
	u, err := ParseUUID(s)
	if err != nil {
		panic("wire: " + err.Error() + ": " + s)
	}
	return u
}
