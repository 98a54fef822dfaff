package iii

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/iii-go/iii/connection/wire"
)

// DefaultMaxChannelRefs bounds the channel refs FindChannelRefs and
// OpenChannelRefs accept in one JSON value (InitOptions.MaxChannelRefs):
// each ref OpenChannelRefs opens is a socket, and the value comes from
// another worker.
const DefaultMaxChannelRefs = 16

// ErrTooManyChannelRefs: a JSON value holds more channel refs than the
// limit (DefaultMaxChannelRefs or InitOptions.MaxChannelRefs); nothing was
// opened.
var ErrTooManyChannelRefs = errors.New("iii: too many channel refs in one value")

// FindChannelRefsLimit is FindChannelRefs with at most max refs (max <= 0
// means DefaultMaxChannelRefs). It scans the value once, in time linear in
// its size and memory bounded by its nesting depth (at most 128) and max.
func FindChannelRefsLimit(data json.RawMessage, max int) ([]ChannelRefAt, error) {
	if max <= 0 {
		max = DefaultMaxChannelRefs
	}
	if !wire.Valid(data) {
		return nil, fmt.Errorf("%w: not one valid JSON value", ErrInvalidPayload)
	}
	f := refFinder{b: data, max: max}
	f.value()
	if f.err != nil {
		return nil, f.err
	}
	slices.SortFunc(f.found, func(a, b foundRef) int { return comparePaths(a.path, b.path) })
	out := make([]ChannelRefAt, len(f.found))
	for i, r := range f.found {
		var sb strings.Builder
		for _, s := range r.path {
			sb.WriteByte('/')
			if s.key {
				sb.WriteString(escapePointer(s.name))
			} else {
				sb.WriteString(strconv.Itoa(s.idx))
			}
		}
		out[i] = ChannelRefAt{Pointer: sb.String(), Ref: r.ref}
	}
	return out, nil
}

// pathSeg is a step into an object (key) or an array (idx).
type pathSeg struct {
	key  bool
	name string
	idx  int
}

type foundRef struct {
	path []pathSeg
	ref  StreamChannelRef
}

func comparePaths(a, b []pathSeg) int {
	for i := range min(len(a), len(b)) {
		x, y := a[i], b[i]
		if c := strings.Compare(x.name, y.name); x.key && y.key && c != 0 {
			return c
		}
		if !x.key && !y.key && x.idx != y.idx {
			return x.idx - y.idx
		}
	}
	return len(a) - len(b)
}

// refFinder walks a valid JSON value.
type refFinder struct {
	b     []byte
	i     int
	max   int
	path  []pathSeg
	found []foundRef
	err   error
}

func (f *refFinder) ws() {
	for f.i < len(f.b) {
		switch f.b[f.i] {
		case ' ', '\t', '\n', '\r':
			f.i++
		default:
			return
		}
	}
}

// str returns the string at f.i, unescaped, and moves past it.
func (f *refFinder) str() string {
	start := f.i
	f.i++
	esc := false
	for f.b[f.i] != '"' {
		if f.b[f.i] == '\\' {
			esc = true
			f.i++
		}
		f.i++
	}
	f.i++
	raw := f.b[start:f.i]
	if !esc {
		return string(raw[1 : len(raw)-1])
	}
	var s string
	_ = json.Unmarshal(raw, &s) // valid: checked by wire.Valid
	return s
}

// skipStr moves past the string at f.i.
func (f *refFinder) skipStr() {
	f.i++
	for f.b[f.i] != '"' {
		if f.b[f.i] == '\\' {
			f.i++
		}
		f.i++
	}
	f.i++
}

func (f *refFinder) value() {
	if f.err != nil {
		return
	}
	f.ws()
	switch f.b[f.i] {
	case '{':
		f.object()
	case '[':
		f.array()
	case '"':
		f.skipStr()
	default: // number, true, false, null
		for f.i < len(f.b) {
			switch f.b[f.i] {
			case ',', ']', '}', ' ', '\t', '\n', '\r':
				return
			}
			f.i++
		}
	}
}

func (f *refFinder) array() {
	f.i++
	f.ws()
	if f.b[f.i] == ']' {
		f.i++
		return
	}
	f.path = append(f.path, pathSeg{})
	for n := 0; f.err == nil; n++ {
		f.path[len(f.path)-1] = pathSeg{idx: n}
		f.value()
		f.ws()
		if f.err != nil || f.b[f.i] == ']' {
			break
		}
		f.i++ // ','
	}
	f.i++
	f.path = f.path[:len(f.path)-1]
}

func (f *refFinder) object() {
	f.i++
	mark := len(f.found)
	var id, key, dir string
	var hasID, hasKey, hasDir bool
	f.path = append(f.path, pathSeg{key: true})
	for f.err == nil {
		f.ws()
		if f.b[f.i] == '}' {
			break
		}
		name := f.str()
		f.ws()
		f.i++ // ':'
		f.ws()
		isStr := f.b[f.i] == '"'
		switch {
		case name == "channel_id" || name == "access_key" || name == "direction":
			// The last occurrence counts, as when decoding into a map.
			v := ""
			if isStr {
				v = f.str()
			} else {
				f.path[len(f.path)-1] = pathSeg{key: true, name: name}
				f.value()
			}
			switch name {
			case "channel_id":
				id, hasID = v, isStr
			case "access_key":
				key, hasKey = v, isStr
			default:
				dir, hasDir = v, isStr
			}
		default:
			f.path[len(f.path)-1] = pathSeg{key: true, name: name}
			f.value()
		}
		f.ws()
		if f.err != nil || f.b[f.i] == '}' {
			break
		}
		f.i++ // ','
	}
	f.i++
	f.path = f.path[:len(f.path)-1]
	if f.err != nil {
		return
	}
	if hasID && hasKey && hasDir && (dir == string(ChannelRead) || dir == string(ChannelWrite)) {
		f.found = f.found[:mark] // a ref's members are not searched
		f.add(StreamChannelRef{ChannelID: id, AccessKey: key, Direction: ChannelDirection(dir)})
	}
}

func (f *refFinder) add(ref StreamChannelRef) {
	if len(f.found) >= f.max {
		f.err = fmt.Errorf("%w: more than %d", ErrTooManyChannelRefs, f.max)
		return
	}
	f.found = append(f.found, foundRef{path: slices.Clone(f.path), ref: ref})
}
