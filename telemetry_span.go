package iii

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"

	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/otelws"
)

// The worker's own spans (one per handled invocation, one per call) are
// recorded here without the OpenTelemetry SDK when the worker uses its own
// tracer provider with the default sampler: the SDK's span costs about a
// dozen allocations and a snapshot copy at its end, and its span processor
// then keeps every span alive until its batch is encoded. Here a span is a
// small struct encoded straight into the export batch as it ends. The
// output is the same: same names, kinds, attributes, events, statuses,
// parent links and sampling decisions (parent-based, always on), and every
// sampled span is exported. Spans the application starts itself (children
// of these, through Tracer(ctx) or the worker's TracerProvider) still go
// through the SDK.

// ownScope is the instrumentation scope of the worker's spans, as its
// tracer (scopeName, Version) names it.
var ownScope = instrumentation.Scope{Name: scopeName, Version: Version}

// Span limits of the worker's own spans: the SDK's defaults.
const (
	maxSpanAttributes = 128
	maxSpanEvents     = 128
	maxSpanLinks      = 128
	maxEventAttrs     = 128
)

// ownSpans reports whether the worker's own spans can skip the SDK: the
// sampler is the default one, parent-based always on.
func ownSpans(o *TelemetryOptions) bool {
	if o.Sampler != nil {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(os.Getenv("OTEL_TRACES_SAMPLER"))) {
	case "", "parentbased_always_on":
		return true
	}
	return false
}

// spanKey is the key under which package trace keeps a context's span,
// learnt once by asking trace.SpanFromContext. A handler's context answers
// it itself (see spanCtx), which saves a context.WithValue per invocation.
// nil if trace.SpanFromContext did not ask.
var spanKey = func() any {
	p := &keyProbe{Context: context.Background()}
	trace.SpanFromContext(p)
	return p.key
}()

type keyProbe struct {
	context.Context
	key any
}

func (p *keyProbe) Value(k any) any { p.key = k; return nil }

// baggageKey is the key under which package baggage keeps a context's
// baggage, learnt the same way: the invocation's baggage is parsed only if
// something asks for it. nil if baggage.FromContext did not ask.
var baggageKey = func() any {
	p := &keyProbe{Context: context.Background()}
	baggage.FromContext(p)
	return p.key
}()

// spanCtx is a handler's context with its invocation's span, in one
// allocation, and the invocation's baggage, parsed on first use.
type spanCtx struct {
	context.Context
	span       invocationSpan
	rawBaggage string
	// bag is the value under baggageKey, parsed on first read. (Not a
	// sync.Once and the value: a running invocation holds a spanCtx, and
	// this way it is 192 bytes, not 224.)
	bag atomic.Pointer[baggageValue]
}

// baggageValue is the parsed baggage of a spanCtx.
type baggageValue struct{ v any }

func (c *spanCtx) Value(k any) any {
	switch {
	case k == spanKey:
		return &c.span
	case k == baggageKey && c.rawBaggage != "":
		b := c.bag.Load()
		if b == nil {
			// As propagation.Baggage extracts it: the parent's if none.
			// Readers racing here parse the same value; one is kept.
			b = &baggageValue{propagation.Baggage{}.Extract(c.Context, &traceCarrier{baggage: c.rawBaggage}).Value(k)}
			if !c.bag.CompareAndSwap(nil, b) {
				b = c.bag.Load()
			}
		}
		return b.v
	}
	return c.Context.Value(k)
}

// invocationSpan is the server span of a handled invocation. The handler
// reaches it through trace.SpanFromContext and may add to it; what it adds
// lives in x, allocated on first use.
type invocationSpan struct {
	embedded.Span
	f        *fnTelemetry
	traceID  trace.TraceID
	spanID   trace.SpanID
	parent   trace.SpanID
	flags    trace.TraceFlags
	hasInvID bool
	invID    wire.UUID
	start    time.Time
	// payloadIn is the invocation's input, recorded as the span's
	// iii.invocation.input event (at start) when it is encoded, if
	// payloads is set.
	payloadIn json.RawMessage
	payloads  bool

	mu    sync.Mutex
	ended bool
	x     *spanExtras
}

// spanExtras is what was added to a span after its start.
type spanExtras struct {
	name          string // if renamed
	renamed       bool
	attrs         []attribute.KeyValue
	events        []sdktrace.Event
	links         []sdktrace.Link
	status        sdktrace.Status
	droppedAttrs  int
	droppedEvents int
	droppedLinks  int
	// evbuf backs events, and pattrs the payload events' attributes: an
	// invocation span's input and output events, and its exception, cost
	// no allocation beyond this struct's.
	evbuf  [3]sdktrace.Event
	pattrs [5]attribute.KeyValue
}

var _ trace.Span = (*invocationSpan)(nil)

// startOwnInvocation is startInvocation without the SDK.
func (t *telemetry) startOwnInvocation(ctx context.Context, m *wire.InvokeFunction, f *fnTelemetry) (context.Context, func(*wire.InvocationResult)) {
	c := &spanCtx{}
	s := &c.span
	s.f = f
	psc := parseTraceparent(m.Traceparent)
	if baggageKey != nil {
		c.rawBaggage = m.Baggage
	} else if m.Baggage != "" {
		ctx = propagation.Baggage{}.Extract(ctx, &traceCarrier{baggage: m.Baggage})
	}
	s.traceID, s.parent, s.flags = childOf(psc)
	s.spanID = newSpanID()
	s.invID, s.hasInvID = m.InvocationID, m.HasInvocationID
	c.Context = ctx
	var hctx context.Context = c
	if spanKey == nil {
		hctx = trace.ContextWithSpan(c, s)
	}
	t.running.Add(1)
	s.start = time.Now()
	s.payloadIn, s.payloads = m.Data, t.payloads.on
	return hctx, s.endInvocation // a method value: 16 bytes held while the handler runs, a closure 32
}

// endInvocation ends the span of an invocation with its reply, and records
// the invocation's metrics.
func (s *invocationSpan) endInvocation(res *wire.InvocationResult) {
	f := s.f
	t := f.t
	took := time.Since(s.start)
	t.running.Add(-1)
	end := s.start.Add(took)
	var out *wire.InvocationResult
	if t.payloads.on {
		if res.Error == nil {
			out = res // rendered straight into the span's encoding
		} else {
			s.payloadOutput(t.payloads, res, end) // before the exception event
		}
	}
	if res.Error != nil {
		recordFailure(s, res.Error)
	}
	s.endWith(end, out)
	t.invocationMetrics(f, took.Seconds(), res.Error)
}

// childOf returns the trace, parent span and flags of a new span under
// psc (a new trace if psc is not valid), sampled as parent-based always
// on samples it.
func childOf(psc trace.SpanContext) (trace.TraceID, trace.SpanID, trace.TraceFlags) {
	if !psc.IsValid() {
		return newTraceID(), trace.SpanID{}, trace.FlagsSampled
	}
	return psc.TraceID(), psc.SpanID(), psc.TraceFlags() // sampled if its parent is
}

// SpanContext implements trace.Span.
func (s *invocationSpan) SpanContext() trace.SpanContext {
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: s.traceID, SpanID: s.spanID, TraceFlags: s.flags})
}

// IsRecording implements trace.Span: sampled and not ended.
func (s *invocationSpan) IsRecording() bool {
	if !s.flags.IsSampled() {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.ended
}

// extras returns s.x, allocating it; s.mu is held and the span recording.
func (s *invocationSpan) extras() *spanExtras {
	if s.x == nil {
		s.x = &spanExtras{}
		s.x.events = s.x.evbuf[:0]
	}
	return s.x
}

// lockRecording locks s if it is recording and reports whether it did.
func (s *invocationSpan) lockRecording() bool {
	if !s.flags.IsSampled() {
		return false
	}
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return false
	}
	return true
}

// SetStatus implements trace.Span, as the SDK: Ok is final, and a
// description is kept for Error only.
func (s *invocationSpan) SetStatus(code codes.Code, description string) {
	if !s.lockRecording() {
		return
	}
	defer s.mu.Unlock()
	x := s.extras()
	if x.status.Code > code {
		return
	}
	x.status = sdktrace.Status{Code: code}
	if code == codes.Error {
		x.status.Description = description
	}
}

// SetName implements trace.Span.
func (s *invocationSpan) SetName(name string) {
	if !s.lockRecording() {
		return
	}
	defer s.mu.Unlock()
	x := s.extras()
	x.name, x.renamed = name, true
}

// SetAttributes implements trace.Span: a key set again keeps its last
// value; beyond the SDK's default limit of 128 attributes, new keys are
// dropped.
func (s *invocationSpan) SetAttributes(kv ...attribute.KeyValue) {
	if len(kv) == 0 || !s.lockRecording() {
		return
	}
	defer s.mu.Unlock()
	x := s.extras()
next:
	for _, a := range kv {
		if !a.Valid() {
			continue
		}
		for i := range x.attrs {
			if x.attrs[i].Key == a.Key {
				x.attrs[i] = a
				continue next
			}
		}
		if len(x.attrs)+s.fixedAttrs() >= maxSpanAttributes {
			x.droppedAttrs++
			continue
		}
		x.attrs = append(x.attrs, a)
	}
}

// fixedAttrs is how many attributes the span has from its start.
func (s *invocationSpan) fixedAttrs() int {
	if s.hasInvID {
		return 2
	}
	return 1
}

// AddEvent implements trace.Span; beyond 128 events the oldest go.
func (s *invocationSpan) AddEvent(name string, options ...trace.EventOption) {
	if !s.lockRecording() {
		return
	}
	defer s.mu.Unlock()
	s.addEventLocked(name, options...)
}

func (s *invocationSpan) addEventLocked(name string, options ...trace.EventOption) {
	c := trace.NewEventConfig(options...)
	e := sdktrace.Event{Name: name, Attributes: c.Attributes(), Time: c.Timestamp()}
	if len(e.Attributes) > maxEventAttrs {
		e.DroppedAttributeCount = len(e.Attributes) - maxEventAttrs
		e.Attributes = e.Attributes[:maxEventAttrs]
	}
	s.extras().addEvent(e)
}

// addEvent adds an event; beyond 128 the oldest go.
func (x *spanExtras) addEvent(e sdktrace.Event) {
	if len(x.events) == maxSpanEvents {
		copy(x.events, x.events[1:])
		x.events = x.events[:maxSpanEvents-1]
		x.droppedEvents++
	}
	x.events = append(x.events, e)
}

// payloadOutput adds the iii.invocation.output event, as
// payloadConfig.output adds it to an SDK span, at the span's end.
func (s *invocationSpan) payloadOutput(c payloadConfig, res *wire.InvocationResult, at time.Time) {
	if !s.lockRecording() {
		return
	}
	defer s.mu.Unlock()
	x := s.extras()
	x.addEvent(sdktrace.Event{Name: eventInvocationOutput, Attributes: c.outputAttrs(x.pattrs[2:2:5], res), Time: at})
}

// RecordError implements trace.Span, as the SDK: an "exception" event.
func (s *invocationSpan) RecordError(err error, options ...trace.EventOption) {
	if err == nil || !s.lockRecording() {
		return
	}
	defer s.mu.Unlock()
	options = append(options, trace.WithAttributes(attribute.String("exception.type", typeName(err)),
		attribute.String("exception.message", err.Error())))
	if c := trace.NewEventConfig(options...); c.StackTrace() {
		stack := make([]byte, 2048)
		stack = stack[:runtime.Stack(stack, false)]
		options = append(options, trace.WithAttributes(attribute.String("exception.stacktrace", string(stack))))
	}
	s.addEventLocked("exception", options...)
}

// typeName names an error's type as the SDK does.
func typeName(v any) string {
	t := reflect.TypeOf(v)
	if t.PkgPath() == "" && t.Name() == "" {
		return t.String()
	}
	return fmt.Sprintf("%s.%s", t.PkgPath(), t.Name())
}

// AddLink implements trace.Span.
func (s *invocationSpan) AddLink(link trace.Link) {
	if !link.SpanContext.IsValid() && len(link.Attributes) == 0 {
		return
	}
	if !s.lockRecording() {
		return
	}
	defer s.mu.Unlock()
	x := s.extras()
	if len(x.links) == maxSpanLinks {
		copy(x.links, x.links[1:])
		x.links = x.links[:maxSpanLinks-1]
		x.droppedLinks++
	}
	x.links = append(x.links, sdktrace.Link{SpanContext: link.SpanContext, Attributes: link.Attributes})
}

// TracerProvider implements trace.Span: the worker's, whose tracer starts
// the handler's own spans as children of this one.
func (s *invocationSpan) TracerProvider() trace.TracerProvider { return s.f.t.tp }

// End implements trace.Span: the span is encoded for export, if sampled.
// Later calls do nothing.
func (s *invocationSpan) End(options ...trace.SpanEndOption) {
	end := s.start.Add(time.Since(s.start)) // monotonic, as the SDK
	if len(options) > 0 {
		if c := trace.NewSpanEndConfig(options...); !c.Timestamp().IsZero() {
			end = c.Timestamp()
		}
	}
	s.endWith(end, nil)
}

// endWith ends the span at the given time; out, if not nil, is the
// successful result recorded as its iii.invocation.output event.
func (s *invocationSpan) endWith(end time.Time, out *wire.InvocationResult) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended = true
	s.mu.Unlock()
	// From here on nothing changes s.x.
	if !s.flags.IsSampled() {
		return
	}
	f := s.f
	d := otelws.SpanData{TraceID: s.traceID, SpanID: s.spanID, ParentSpanID: s.parent, Name: f.execName, NameJSON: f.execJSON,
		Kind: trace.SpanKindServer, Start: s.start, End: end, Attributes: f.attrs, AttributesJSON: f.attrsJSON}
	if s.hasInvID {
		d.IDAttribute = otelws.UUIDAttribute{Key: attrInvocationID, Value: s.invID}
	}
	if s.payloads || out != nil {
		// The payload events, as payloadConfig.input and output add them
		// to an SDK span: the input first, the output after the handler's
		// own events. They are encoded here, from the payloads' bytes.
		pc := f.t.payloads
		if x := s.x; x != nil && len(x.events)+2 > maxSpanEvents {
			d.Events = s.payloadEvents(pc, end, out)
		} else {
			sp := scratchEvents.Get().(*[]byte)
			buf := (*sp)[:0]
			if s.payloads {
				buf = pc.appendInputEvent(buf, s.start, s.payloadIn)
			}
			n := len(buf)
			if out != nil {
				buf = pc.appendOutputEvent(buf, end, out.Result)
			}
			d.EventsBefore, d.EventsAfter = buf[:n], buf[n:]
			defer func() {
				if cap(buf) <= 64<<10 {
					*sp = buf
					scratchEvents.Put(sp)
				}
			}()
		}
	}
	if x := s.x; x != nil {
		if x.renamed {
			d.Name, d.NameJSON = x.name, nil
		}
		if d.Events == nil {
			d.Events = x.events
		}
		d.Links, d.Status = x.links, x.status
		if len(x.attrs) > 0 {
			d.MoreAttributes = x.attrs
			if overrides(x.attrs) {
				// The handler set a key of the span's own: its value
				// takes that attribute's place, as in the SDK.
				all := make([]attribute.KeyValue, 0, 2+len(x.attrs))
				all = append(all, f.attrs...)
				if s.hasInvID {
					all = append(all, attrInvocationID.String(s.invID.String()))
				}
				n := len(all)
				for _, a := range x.attrs {
					if i := slices.IndexFunc(all[:n], func(o attribute.KeyValue) bool { return o.Key == a.Key }); i >= 0 {
						all[i] = a
					} else {
						all = append(all, a)
					}
				}
				d.Attributes, d.AttributesJSON, d.IDAttribute, d.MoreAttributes = all, nil, otelws.UUIDAttribute{}, nil
			}
		}
	}
	f.t.pipe.ExportSpan(&ownScope, &d)
}

// scratchEvents holds the buffers payload events are encoded into.
var scratchEvents = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// payloadEvents returns the span's events with its payload events, as an
// SDK span keeps them: at most maxSpanEvents, the oldest dropped first.
// Only a span with more than maxSpanEvents-2 events of its own needs it.
func (s *invocationSpan) payloadEvents(pc payloadConfig, end time.Time, out *wire.InvocationResult) []sdktrace.Event {
	evs := make([]sdktrace.Event, 0, len(s.x.events)+2)
	if s.payloads {
		evs = append(evs, sdktrace.Event{Name: eventInvocationInput, Attributes: pc.inputAttrs(nil, s.payloadIn), Time: s.start})
	}
	evs = append(evs, s.x.events...)
	if out != nil {
		evs = append(evs, sdktrace.Event{Name: eventInvocationOutput, Attributes: pc.outputAttrs(nil, out), Time: end})
	}
	if len(evs) > maxSpanEvents {
		evs = evs[len(evs)-maxSpanEvents:]
	}
	return evs
}

// overrides reports whether attrs set a key of the span's own.
func overrides(attrs []attribute.KeyValue) bool {
	for _, a := range attrs {
		if a.Key == attrFunctionID || a.Key == attrInvocationID {
			return true
		}
	}
	return false
}

// monoEpoch is the origin of the monotonic times an own call span keeps.
var monoEpoch = time.Now()

// startOwnCall is startCall without the SDK. The call's span is not in the
// returned context (nothing under Trigger reads it), so it needs no
// trace.Span of its own.
func (t *telemetry) startOwnCall(ctx context.Context, m *wire.InvokeFunction, f *fnTelemetry) (context.Context, func(error)) {
	psc := trace.SpanContextFromContext(ctx)
	bctx := ctx
	if !psc.IsValid() {
		// Not under a span: continue the invocation's trace, if any.
		if inv := invocationFrom(ctx); inv != nil {
			psc = parseTraceparent(inv.Traceparent())
			if b := inv.Baggage(); b != "" {
				bctx = propagation.Baggage{}.Extract(ctx, &traceCarrier{baggage: b})
			}
		}
	}
	traceID, parent, flags := childOf(psc)
	var tsp *trace.TraceState // nil if empty, as it mostly is: end's closure is held while the call waits
	if psc.TraceState().Len() > 0 {
		ts := psc.TraceState()
		tsp = &ts
	}
	spanID := newSpanID()
	m.Traceparent, m.Baggage = formatTraceparent(traceID, spanID, flags), ""
	if baggage.FromContext(bctx).Len() > 0 {
		var c traceCarrier
		propagation.Baggage{}.Inject(bctx, &c)
		m.Baggage = c.baggage
	}
	// The closure is held while the call waits: it keeps the start as
	// wall-clock and monotonic nanoseconds (16 bytes, not a time.Time's
	// 24) and reaches the telemetry through f, which puts it in the
	// allocator's 80-byte class instead of 112.
	now := time.Now()
	wall, mono := now.UnixNano(), now.Sub(monoEpoch)
	return ctx, func(err error) {
		took := time.Since(monoEpoch) - mono
		t := f.t
		start := time.Unix(0, wall)
		now := start.Add(took)
		d := took.Seconds()
		if flags.IsSampled() {
			var ts trace.TraceState
			if tsp != nil {
				ts = *tsp
			}
			sd := otelws.SpanData{TraceID: traceID, SpanID: spanID, ParentSpanID: parent, TraceState: ts, Name: f.callName, NameJSON: f.callJSON,
				Kind: trace.SpanKindClient, Start: start, End: now, Attributes: f.attrs, AttributesJSON: f.attrsJSON}
			if err != nil {
				typ, msg := callErrorType(err), err.Error()
				var events [1]sdktrace.Event
				var more [1]attribute.KeyValue
				sd.Status = sdktrace.Status{Code: codes.Error, Description: msg}
				more[0] = attrErrorType.String(typ)
				sd.MoreAttributes = more[:]
				events[0] = sdktrace.Event{Name: "exception", Time: now, Attributes: callExceptionAttrs(typ, msg, err)}
				sd.Events = events[:]
			}
			t.pipe.ExportSpan(&ownScope, &sd)
		}
		t.callMetrics(f, d, err)
	}
}

// parseTraceparent parses a W3C traceparent as propagation.TraceContext
// does: at once for the usual version-00 form, through the propagator for
// anything else. The zero SpanContext if it is missing or invalid.
func parseTraceparent(s string) trace.SpanContext {
	if s == "" {
		return trace.SpanContext{}
	}
	var scc trace.SpanContextConfig
	var flags [1]byte
	if len(s) == 55 && s[0] == '0' && s[1] == '0' && s[2] == '-' && s[35] == '-' && s[52] == '-' &&
		lowerHex(scc.TraceID[:], s[3:35]) && lowerHex(scc.SpanID[:], s[36:52]) && lowerHex(flags[:], s[53:55]) && flags[0] <= 3 {
		scc.TraceFlags = trace.TraceFlags(flags[0]) & (trace.FlagsSampled | trace.FlagsRandom)
		scc.Remote = true
		if sc := trace.NewSpanContext(scc); sc.IsValid() {
			return sc
		}
		return trace.SpanContext{}
	}
	return trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), &traceCarrier{traceparent: s}))
}

// lowerHex decodes lower-case hex (the W3C form) into dst.
func lowerHex(dst []byte, s string) bool {
	var bad byte
	for i := range dst {
		hi, lo := unhexLower[s[2*i]], unhexLower[s[2*i+1]]
		bad |= hi | lo
		dst[i] = hi<<4 | lo
	}
	return bad&0xf0 == 0
}

// unhexLower maps lower-case hex digits to their values, anything else
// to 0xff.
var unhexLower = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c-'a') + 10
	}
	return t
}()

// formatTraceparent formats a version-00 traceparent, keeping the flags
// propagation.TraceContext keeps.
func formatTraceparent(tid trace.TraceID, sid trace.SpanID, flags trace.TraceFlags) string {
	var b [55]byte
	b[0], b[1], b[2], b[35], b[52] = '0', '0', '-', '-', '-'
	hex.Encode(b[3:35], tid[:])
	hex.Encode(b[36:52], sid[:])
	hex.Encode(b[53:55], []byte{byte(flags & (trace.FlagsSampled | trace.FlagsRandom))})
	return string(b[:])
}

func newTraceID() trace.TraceID {
	var tid trace.TraceID
	for !tid.IsValid() {
		putUint64(tid[:8], rand.Uint64())
		putUint64(tid[8:], rand.Uint64())
	}
	return tid
}
