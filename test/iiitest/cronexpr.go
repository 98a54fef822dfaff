package iiitest

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The cron expression dialect of the engine's cron worker (v0.22.1): six
// or seven fields, "sec min hour day-of-month month day-of-week [year]",
// in UTC, or one of @yearly, @monthly, @weekly, @daily, @hourly. A field is
// a comma-separated list of "*", "N", "N-M", a name (months JAN-DEC, days
// SUN-SAT, as in "MON" or "Monday"), a range of names, and any of those but
// a single name followed by "/step"; "?" is "*" in the day fields. Days of
// the week are numbered 1 (Sunday) to 7 (Saturday). A time matches when
// every field matches (day of month AND day of week). "N/step" runs from N
// to the field's maximum. The parser below follows the grammar of the
// engine's parser token for token (whitespace is allowed around numbers
// and names, and between fields it is optional where a token ends).

// cronUnit is one field of an expression.
type cronUnit struct {
	name     string
	min, max int
	names    map[string]int
}

var (
	cronSeconds = &cronUnit{name: "Seconds", min: 0, max: 59}
	cronMinutes = &cronUnit{name: "Minutes", min: 0, max: 59}
	cronHours   = &cronUnit{name: "Hours", min: 0, max: 23}
	cronDays    = &cronUnit{name: "Days of Month", min: 1, max: 31}
	cronMonths  = &cronUnit{name: "Months", min: 1, max: 12, names: map[string]int{
		"jan": 1, "january": 1, "feb": 2, "february": 2, "mar": 3, "march": 3,
		"apr": 4, "april": 4, "may": 5, "jun": 6, "june": 6, "jul": 7, "july": 7,
		"aug": 8, "august": 8, "sep": 9, "september": 9, "oct": 10, "october": 10,
		"nov": 11, "november": 11, "dec": 12, "december": 12,
	}}
	cronWeekdays = &cronUnit{name: "Days of Week", min: 1, max: 7, names: map[string]int{
		"sun": 1, "sunday": 1, "mon": 2, "monday": 2, "tue": 3, "tues": 3, "tuesday": 3,
		"wed": 4, "wednesday": 4, "thu": 5, "thurs": 5, "thursday": 5,
		"fri": 6, "friday": 6, "sat": 7, "saturday": 7,
	}}
	cronYears = &cronUnit{name: "Years", min: 1970, max: 2100}
)

// cronSet is a set of the ordinals of one unit, offset by the unit's min.
type cronSet [3]uint64

func (s *cronSet) add(i int)                 { s[i/64] |= 1 << (i % 64) }
func (s *cronSet) has(i int) bool            { return i >= 0 && i < 192 && s[i/64]&(1<<(i%64)) != 0 }
func (u *cronUnit) in(s cronSet, v int) bool { return s.has(v - u.min) }

// cronSchedule is a parsed expression.
type cronSchedule struct {
	sec, min, hour, dom, month, dow, year cronSet
}

// cronSpec is one specifier of a field, before validation.
type cronSpec struct {
	kind   int // cronAll, cronPoint, cronRange, cronNamedRange, cronNamedPoint
	a, b   int
	na, nb string
	period bool
	step   int
}

const (
	cronAll = iota
	cronPoint
	cronRange
	cronNamedRange
	cronNamedPoint
)

// cronParser is a backtracking parser over the expression.
type cronParser struct {
	s string
	i int
}

func isCronSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func (p *cronParser) ws() {
	for p.i < len(p.s) && isCronSpace(p.s[p.i]) {
		p.i++
	}
}

func (p *cronParser) lit(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// ordinal is [ws] digits [ws], as a u32.
func (p *cronParser) ordinal() (int, bool) {
	start := p.i
	p.ws()
	j := p.i
	for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
		j++
	}
	if j == p.i {
		p.i = start
		return 0, false
	}
	v, err := strconv.ParseUint(p.s[p.i:j], 10, 32)
	if err != nil {
		p.i = start
		return 0, false
	}
	p.i = j
	p.ws()
	return int(v), true
}

// name is [ws] ASCII letters [ws].
func (p *cronParser) name() (string, bool) {
	start := p.i
	p.ws()
	j := p.i
	for j < len(p.s) && (p.s[j] >= 'a' && p.s[j] <= 'z' || p.s[j] >= 'A' && p.s[j] <= 'Z') {
		j++
	}
	if j == p.i {
		p.i = start
		return "", false
	}
	n := p.s[p.i:j]
	p.i = j
	p.ws()
	return n, true
}

// specifier is "*" | ordinal "-" ordinal | ordinal | name "-" name; with
// any, "?" (as "*") first.
func (p *cronParser) specifier(withAny bool) (cronSpec, bool) {
	start := p.i
	if withAny && p.lit('?') {
		return cronSpec{kind: cronAll}, true
	}
	if p.lit('*') {
		return cronSpec{kind: cronAll}, true
	}
	if a, ok := p.ordinal(); ok {
		mid := p.i
		if p.lit('-') {
			if b, ok := p.ordinal(); ok {
				return cronSpec{kind: cronRange, a: a, b: b}, true
			}
		}
		p.i = mid
		return cronSpec{kind: cronPoint, a: a}, true
	}
	p.i = start
	if a, ok := p.name(); ok && p.lit('-') {
		if b, ok := p.name(); ok {
			return cronSpec{kind: cronNamedRange, na: a, nb: b}, true
		}
	}
	p.i = start
	return cronSpec{}, false
}

// rootSpecifier is specifier "/" ordinal | specifier | name.
func (p *cronParser) rootSpecifier(withAny bool) (cronSpec, bool) {
	start := p.i
	if s, ok := p.specifier(withAny); ok {
		if p.lit('/') {
			if step, ok := p.ordinal(); ok {
				s.period, s.step = true, step
				return s, true
			}
		}
	}
	p.i = start
	if s, ok := p.specifier(withAny); ok {
		return s, true
	}
	p.i = start
	if n, ok := p.name(); ok {
		return cronSpec{kind: cronNamedPoint, na: n}, true
	}
	p.i = start
	return cronSpec{}, false
}

// field is [ws] rootSpecifier ("," rootSpecifier)* [ws]. On failure the
// parser stays where the engine's does: after the leading whitespace.
func (p *cronParser) field(withAny bool) ([]cronSpec, bool) {
	p.ws()
	first, ok := p.rootSpecifier(withAny)
	if !ok {
		return nil, false
	}
	specs := []cronSpec{first}
	for {
		mark := p.i
		if !p.lit(',') {
			break
		}
		s, ok := p.rootSpecifier(withAny)
		if !ok {
			p.i = mark
			break
		}
		specs = append(specs, s)
	}
	p.ws()
	return specs, true
}

func (u *cronUnit) ordinalFromName(n string) (int, error) {
	if u.names == nil {
		return 0, cronErrorf("The '%s' field does not support using names. '%s' specified.", u.name, n)
	}
	v, ok := u.names[strings.ToLower(n)]
	if !ok {
		if u == cronMonths {
			return 0, cronErrorf("'%s' is not a valid month name.", n)
		}
		return 0, cronErrorf("'%s' is not a valid day of the week.", n)
	}
	return v, nil
}

func (u *cronUnit) validate(v int) error {
	if v < u.min {
		return cronErrorf("%s must be greater than or equal to %d. ('%d' specified.)", u.name, u.min, v)
	}
	if v > u.max {
		return cronErrorf("%s must be less than %d. ('%d' specified.)", u.name, u.max, v)
	}
	return nil
}

// ordinals expands a non-period specifier.
func (u *cronUnit) ordinals(s cronSpec) ([]int, error) {
	seq := func(a, b int) []int {
		out := make([]int, 0, b-a+1)
		for v := a; v <= b; v++ {
			out = append(out, v)
		}
		return out
	}
	switch s.kind {
	case cronAll:
		return seq(u.min, u.max), nil
	case cronPoint:
		return []int{s.a}, nil
	case cronRange:
		if u.validate(s.a) != nil || u.validate(s.b) != nil || s.a > s.b {
			return nil, cronErrorf("Invalid range for %s: %d-%d", u.name, s.a, s.b)
		}
		return seq(s.a, s.b), nil
	case cronNamedRange:
		a, err := u.ordinalFromName(s.na)
		if err != nil {
			return nil, err
		}
		b, err := u.ordinalFromName(s.nb)
		if err != nil {
			return nil, err
		}
		if u.validate(a) != nil || u.validate(b) != nil || a > b {
			return nil, cronErrorf("Invalid named range for %s: %s-%s", u.name, s.na, s.nb)
		}
		return seq(a, b), nil
	default: // cronNamedPoint
		v, err := u.ordinalFromName(s.na)
		if err != nil {
			return nil, err
		}
		return []int{v}, nil
	}
}

// build validates a field's specifiers into a set.
func (u *cronUnit) build(specs []cronSpec) (cronSet, error) {
	var set cronSet
	for _, s := range specs {
		var vals []int
		if s.period {
			if s.step == 0 {
				return set, cronErrorf("range step cannot be zero")
			}
			if s.step < 1 || s.step > u.max {
				return set, cronErrorf("%s must be between 1 and %d. ('%d' specified.)", u.name, u.max, s.step)
			}
			var base []int
			if s.kind == cronPoint {
				if err := u.validate(s.a); err != nil {
					return set, err
				}
				for v := s.a; v <= u.max; v++ {
					base = append(base, v)
				}
			} else {
				var err error
				if base, err = u.ordinals(s); err != nil {
					return set, err
				}
			}
			for i := 0; i < len(base); i += s.step {
				vals = append(vals, base[i])
			}
		} else {
			var err error
			if vals, err = u.ordinals(s); err != nil {
				return set, err
			}
		}
		for _, v := range vals {
			if err := u.validate(v); err != nil {
				return set, err
			}
			set.add(v - u.min)
		}
	}
	return set, nil
}

func (u *cronUnit) all() cronSet {
	var set cronSet
	for v := u.min; v <= u.max; v++ {
		set.add(v - u.min)
	}
	return set
}

func (u *cronUnit) one(v int) cronSet {
	var set cronSet
	set.add(v - u.min)
	return set
}

// cronFieldError is why a field's value is invalid, in the engine's
// words (capitalised and punctuated as they are).
type cronFieldError string

func (e cronFieldError) Error() string { return string(e) }

func cronErrorf(format string, args ...any) error {
	return cronFieldError(fmt.Sprintf(format, args...))
}

// cronParseError is an invalid expression: where the engine's parser
// stopped (a byte offset) and, for a field with an invalid value, why.
type cronParseError struct {
	expr   string
	offset int
	cause  string
}

// Error renders the error as the engine's parser library does: the
// expression, a caret under the offset, then the cause.
func (e *cronParseError) Error() string {
	var b strings.Builder
	in := e.expr
	if strings.Contains(in, "\n") {
		line, col := cronTranslatePosition(in, e.offset)
		content := strings.Split(in, "\n")[line]
		num := strconv.Itoa(line + 1)
		gutter := strings.Repeat(" ", len(num))
		fmt.Fprintf(&b, "parse error at line %s, column %d\n", num, col+1)
		b.WriteString(gutter + " |\n")
		b.WriteString(num + " | " + strings.ToValidUTF8(content, "\uFFFD") + "\n")
		b.WriteString(gutter + " | " + strings.Repeat(" ", col) + "^\n")
	} else {
		b.WriteString(strings.ToValidUTF8(in, "\uFFFD") + "\n")
		b.WriteString(strings.Repeat(" ", e.offset) + "^\n")
	}
	b.WriteString(e.cause)
	return b.String()
}

// cronTranslatePosition turns a byte offset into a line and a column (in
// characters), as the engine's parser library does.
func cronTranslatePosition(in string, index int) (line, col int) {
	if in == "" {
		return 0, index
	}
	safe := min(index, len(in)-1)
	extra := index - safe
	lineStart := strings.LastIndexByte(in[:safe], '\n') + 1
	line = strings.Count(in[:lineStart], "\n")
	seg := in[lineStart : safe+1]
	if utf8.ValidString(seg) {
		col = utf8.RuneCountInString(seg) - 1
	} else {
		col = safe - lineStart
	}
	return line, col + extra
}

// parseCron parses an expression of the engine's cron dialect.
func parseCron(expr string) (*cronSchedule, error) {
	if sc, ok, err := parseCronShorthand(expr); ok {
		return sc, err
	}
	p := &cronParser{s: expr}
	units := []*cronUnit{cronSeconds, cronMinutes, cronHours, cronDays, cronMonths, cronWeekdays, cronYears}
	sets := make([]cronSet, len(units))
	for i, u := range units {
		withAny := u == cronDays || u == cronWeekdays
		mark := p.i
		specs, ok := p.field(withAny)
		if !ok {
			if u == cronYears { // the year is optional
				p.i = mark
				sets[i] = u.all()
				break
			}
			return nil, &cronParseError{expr: expr, offset: p.i}
		}
		set, err := u.build(specs)
		if err != nil {
			p.i = mark
			if u == cronYears {
				// An invalid year leaves the input to the end-of-input
				// check, which fails.
				sets[i] = u.all()
				break
			}
			return nil, &cronParseError{expr: expr, offset: mark, cause: err.Error()}
		}
		sets[i] = set
	}
	if p.i != len(p.s) {
		return nil, &cronParseError{expr: expr, offset: p.i}
	}
	return &cronSchedule{sec: sets[0], min: sets[1], hour: sets[2], dom: sets[3], month: sets[4], dow: sets[5], year: sets[6]}, nil
}

// parseCronShorthand handles the @ keywords: ok reports that one was found
// (after optional whitespace); anything after it is an error.
func parseCronShorthand(expr string) (*cronSchedule, bool, error) {
	p := &cronParser{s: expr}
	p.ws()
	rest := p.s[p.i:]
	sc := &cronSchedule{
		sec: cronSeconds.one(0), min: cronMinutes.one(0), hour: cronHours.one(0),
		dom: cronDays.all(), month: cronMonths.all(), dow: cronWeekdays.all(), year: cronYears.all(),
	}
	var kw string
	for _, k := range []string{"@yearly", "@monthly", "@weekly", "@daily", "@hourly"} {
		if strings.HasPrefix(rest, k) {
			kw = k
			break
		}
	}
	switch kw {
	case "":
		return nil, false, nil
	case "@yearly":
		sc.dom, sc.month = cronDays.one(1), cronMonths.one(1)
	case "@monthly":
		sc.dom = cronDays.one(1)
	case "@weekly":
		sc.dow = cronWeekdays.one(1)
	case "@hourly":
		sc.hour = cronHours.all()
	}
	p.i += len(kw)
	p.ws()
	if p.i != len(p.s) {
		return nil, true, &cronParseError{expr: expr, offset: p.i}
	}
	return sc, true, nil
}

// next returns the first time the schedule names strictly after t, to the
// second, in UTC, as the engine's scheduler computes it: the search starts
// at t's second plus one. ok is false when there is none (up to 2100).
func (sc *cronSchedule) next(t time.Time) (time.Time, bool) {
	c := t.UTC().Truncate(time.Second).Add(time.Second)
	for c.Year() <= cronYears.max {
		y, mo, d := c.Date()
		switch {
		case !cronYears.in(sc.year, y):
			c = time.Date(y+1, 1, 1, 0, 0, 0, 0, time.UTC)
		case !cronMonths.in(sc.month, int(mo)):
			c = time.Date(y, mo+1, 1, 0, 0, 0, 0, time.UTC)
		case !cronDays.in(sc.dom, d) || !cronWeekdays.in(sc.dow, int(c.Weekday())+1):
			c = time.Date(y, mo, d+1, 0, 0, 0, 0, time.UTC)
		case !cronHours.in(sc.hour, c.Hour()):
			c = c.Truncate(time.Hour).Add(time.Hour)
		case !cronMinutes.in(sc.min, c.Minute()):
			c = c.Truncate(time.Minute).Add(time.Minute)
		case !cronSeconds.in(sc.sec, c.Second()):
			c = c.Add(time.Second)
		default:
			return c, true
		}
	}
	return time.Time{}, false
}
