package iii

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	otellog "go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/iii-go/iii/connection"
	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/otelws"
)

// Defaults of TelemetryOptions.
const (
	// DefaultServiceName is the service.name of a worker's telemetry unless
	// TelemetryOptions.ServiceName or $OTEL_SERVICE_NAME says otherwise (the
	// Node SDK's is "iii-node").
	DefaultServiceName = "iii-go"
	// DefaultSpanFlushInterval and DefaultLogFlushInterval bound how long a
	// span or log record waits to be batched (the Node SDK's 100 ms).
	DefaultSpanFlushInterval = otelws.DefaultFlushInterval // 100 ms
	DefaultLogFlushInterval  = otelws.DefaultFlushInterval // 100 ms
	// DefaultMetricsInterval is how often metrics are exported (the Node SDK's 60 s).
	DefaultMetricsInterval = 60 * time.Second
	// DefaultMaxQueuedSpans and DefaultMaxQueuedLogs bound the spans and log
	// records waiting to be batched.
	DefaultMaxQueuedSpans = otelws.DefaultMaxQueued // 2048
	DefaultMaxQueuedLogs  = otelws.DefaultMaxQueued // 2048
	// DefaultMaxPendingFrames and DefaultMaxPendingBytes bound the telemetry
	// frames held while the engine's /otel endpoint is unreachable.
	DefaultMaxPendingFrames = otelws.DefaultMaxPendingFrames // 1000
	DefaultMaxPendingBytes  = otelws.DefaultMaxPendingBytes  // 16 MiB
	// DefaultTelemetryShutdownTimeout bounds how long Shutdown waits for
	// buffered telemetry to be written.
	DefaultTelemetryShutdownTimeout = 2 * time.Second
)

// TelemetryOptions configures a worker's OpenTelemetry: a span per handled
// invocation and per call, metrics, and the records of Logger, all sent to
// the engine over a WebSocket of their own to <worker URL>/otel, as binary
// OTLP/JSON frames (see the protocol specification §9), unless the
// application gives its own providers (TracerProvider, MeterProvider,
// LoggerProvider below), which then take the signal instead. Telemetry is
// on by default, as in the Node SDK; it never delays or fails an
// invocation: when the engine cannot take it, it is dropped (and counted,
// see III.TelemetryStats). The /otel socket uses the worker's PingInterval
// and IdleTimeout: a dead or half-open endpoint is dropped and redialled
// once nothing has come back for IdleTimeout (noticed at the next ping).
//
// Environment variables, for the fields left zero (the official SDKs honour
// the same):
//   - OTEL_ENABLED=false (or 0, no, off) turns telemetry off unless Enabled
//     is set, as does OTEL_SDK_DISABLED=true;
//   - OTEL_METRICS_ENABLED=false turns metrics off, OTEL_LOGS_ENABLED=false
//     the export of Logger records (this one is the Go SDK's own);
//   - III_DISABLE_TRACE_PAYLOADS=1 (or true) leaves the payload events out,
//     III_TRACE_PAYLOAD_MAX_BYTES bounds them;
//   - OTEL_SERVICE_NAME, SERVICE_VERSION, SERVICE_NAMESPACE and
//     SERVICE_INSTANCE_ID describe the service; OTEL_RESOURCE_ATTRIBUTES
//     adds resource attributes;
//   - OTEL_SPANS_FLUSH_INTERVAL_MS, OTEL_LOGS_FLUSH_INTERVAL_MS and
//     OTEL_METRIC_EXPORT_INTERVAL (ms) set the intervals;
//   - OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG choose the sampler.
type TelemetryOptions struct {
	// Enabled turns telemetry on (new(true)) or off (new(false)) whatever
	// the environment says. nil, the default, means on unless OTEL_ENABLED
	// says otherwise. Off means no /otel connection, no goroutine and no
	// span; Logger records then go to slog.Default().
	Enabled *bool
	// DisableMetrics turns metrics off, keeping traces and logs.
	DisableMetrics bool
	// ServiceName is the resource's service.name; default DefaultServiceName.
	ServiceName string
	// ServiceVersion is service.version; default the main module's version,
	// or "unknown".
	ServiceVersion string
	// ServiceNamespace is service.namespace; default none.
	ServiceNamespace string
	// ServiceInstanceID is service.instance.id; default a random UUID.
	ServiceInstanceID string
	// Endpoint is the WebSocket URL telemetry is sent to; default the
	// worker URL with /otel appended. The worker's TLSConfig applies to
	// it. The worker's Headers (its credentials for the engine) go to it
	// only when it is on the engine's own host and port, and not over
	// plain ws:// when the engine is reached over wss://; an endpoint
	// elsewhere gets Headers below instead.
	Endpoint string
	// Headers are sent with the telemetry endpoint's handshake, on top of
	// (and taking precedence over) the worker's Headers when those apply.
	Headers http.Header
	// Sampler decides which traces are recorded; default parent-based,
	// always on (a call's sampling decision is its caller's).
	Sampler sdktrace.Sampler
	// SpanFlushInterval and LogFlushInterval bound how long a span or a log
	// record waits for its batch; default 100 ms.
	SpanFlushInterval time.Duration
	LogFlushInterval  time.Duration
	// MetricsInterval is how often metrics are exported; default 60 s.
	MetricsInterval time.Duration
	// MaxQueuedSpans and MaxQueuedLogs bound the spans and log records
	// waiting to be batched; beyond them new ones are dropped. Default 2048.
	MaxQueuedSpans int
	MaxQueuedLogs  int
	// MaxPendingFrames and MaxPendingBytes bound the frames waiting for the
	// /otel connection; beyond them the oldest are dropped. Defaults 1000
	// frames and 16 MiB.
	MaxPendingFrames int
	MaxPendingBytes  int
	// ShutdownTimeout bounds how long Shutdown waits to write buffered
	// telemetry (only while the /otel connection is up); default 2 s.
	// Shutdown first lets the handlers it cancels end, so that their
	// spans and records are written rather than dropped: for at most half
	// of ShutdownTimeout, and not beyond its own bound (iii.ShutdownTimeout).
	ShutdownTimeout time.Duration

	// TracerProvider, MeterProvider and LoggerProvider are the
	// application's own providers. Each one given replaces, for its
	// signal, the provider the worker would build:
	// the worker's spans, metrics or Logger records go to it, and nothing
	// of that signal is sent to the engine's /otel endpoint. When all
	// three are given (or the signals not given are off), the worker opens
	// no /otel connection at all. The worker never shuts them down or
	// flushes them: they are the application's. nil means the worker's
	// own provider, exporting to the engine. With telemetry off (Enabled,
	// OTEL_ENABLED) they are not used either, nor MeterProvider with
	// metrics off or LoggerProvider with logs off.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	LoggerProvider otellog.LoggerProvider

	// DisableLogs turns the Logger's export off, keeping traces and
	// metrics: records then go to slog.Default(), as with telemetry off.
	// $OTEL_LOGS_ENABLED=false does the same.
	DisableLogs bool
	// DisableTracePayloads leaves out the iii.invocation.input and
	// iii.invocation.output events that record, on each invocation span,
	// the handler's input and its output (or error) as JSON, with the
	// values of keys that look secret (password, api_key, token, ...)
	// replaced by "[REDACTED]". They are on by default, as in the Rust and
	// Node SDKs; $III_DISABLE_TRACE_PAYLOADS=1 (or true) turns them off.
	// The events are encoded as the span ends, from the payloads' bytes: a
	// handler given its input as a json.RawMessage must not change those
	// bytes (the SDK may also still send them back as an echoed result).
	DisableTracePayloads bool
	// TracePayloadMaxBytes bounds the JSON of a payload event; longer
	// payloads are cut and marked truncated. Default
	// $III_TRACE_PAYLOAD_MAX_BYTES, else unlimited (as in the Rust and
	// Node SDKs).
	TracePayloadMaxBytes int
	// MaxMetricFunctions bounds the distinct iii.function.id values of the
	// worker's metrics: the first MaxMetricFunctions function ids called
	// or invoked get series of their own; later ones share one series per
	// instrument and outcome, which has otel.metric.overflow=true instead
	// of iii.function.id (the OpenTelemetry SDKs' mark of an overflow
	// series). Spans always carry the real id. Default
	// DefaultMaxMetricFunctions.
	MaxMetricFunctions int
	// MaxMetricErrorTypes bounds the distinct error.type values (error
	// codes, "timeout", ...) of each function's error metrics
	// (iii.invocation.errors and iii.call.errors, each counted apart): the
	// first MaxMetricErrorTypes types of a function get series of their
	// own; the errors of later ones share one series per function, which
	// has error.type=_OTHER and otel.metric.overflow=true. A worker's error
	// series are thus at most (MaxMetricFunctions+1) ×
	// (MaxMetricErrorTypes+1) per instrument, whatever codes the handlers
	// and the engine return. Spans always carry the real error.type.
	// Default DefaultMaxMetricErrorTypes.
	MaxMetricErrorTypes int
}

// The instrumentation scope of the worker's own spans, metrics and logs.
const scopeName = "github.com/iii-go/iii"

// Attribute keys of the worker's spans and metrics.
const (
	attrFunctionID   = attribute.Key("iii.function.id")
	attrInvocationID = attribute.Key("iii.invocation.id")
	attrOutcome      = attribute.Key("iii.outcome") // "ok" or "error"
	attrErrorType    = attribute.Key("error.type")  // the error code, or "timeout", "connection_lost", ...
)

// durationBuckets are the latency histograms' bounds in seconds, 100 µs to 30 s.
var durationBuckets = durationBounds[:]

var durationBounds = [...]float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// telemetry is the worker's OpenTelemetry pipeline; nil when it is off, so
// that nothing extra runs on the hot path.
type telemetry struct {
	w *III
	// engineConn is the worker's engine connection, stored once
	// RegisterWorker has made it (collections start before that).
	engineConn atomic.Pointer[connection.Conn]
	conn       *otelws.Conn             // nil when nothing goes to /otel
	pipe       *otelws.Pipeline         // nil when neither spans nor logs go to /otel
	tp         *sdktrace.TracerProvider // the worker's own; nil with the application's
	appTP      trace.TracerProvider     // the application's, or nil
	appMP      metric.MeterProvider     // the application's, or nil (also when metrics are off)
	tracer     trace.Tracer
	mp         *sdkmetric.MeterProvider // the worker's own; nil when metrics are off or the application's
	m          instruments
	timeout    time.Duration

	logger   otellog.Logger      // the application's LoggerProvider's; nil: pipe
	logsOff  bool                // DisableLogs: Logger records go to slog.Default()
	payloads payloadConfig       // invocation input/output span events
	fnLimit  int64               // MaxMetricFunctions
	errLimit int                 // MaxMetricErrorTypes
	nfns     atomic.Int64        // function ids with series of their own
	other    *fnTelemetry        // the metric series of the ids beyond fnLimit
	gauges   metric.Registration // the process gauges' callback, or nil
	observed metric.Registration // the worker's own gauges' callback, or nil

	own bool // the worker's spans skip the SDK (see telemetry_span.go)
	// ownMetrics: the per-call and per-invocation metrics are aggregated
	// in fnTelemetry, not by the SDK's instruments (see telemetry_metrics.go).
	ownMetrics bool
	running    atomic.Int64 // handlers running
	connected  atomic.Bool  // the worker connected at least once
	fns        sync.Map     // function id -> *fnTelemetry
	closed     atomic.Bool
	closeOnce  sync.Once
}

// instruments are the worker's metrics; noop instruments when metrics are off.
type instruments struct {
	invocations        metric.Int64Counter
	invocationErrors   metric.Int64Counter
	invocationDuration metric.Float64Histogram
	calls              metric.Int64Counter
	callErrors         metric.Int64Counter
	callDuration       metric.Float64Histogram
	reconnects         metric.Int64Counter
}

// fnTelemetry is what the hot path needs per function id, built once.
type fnTelemetry struct {
	t                  *telemetry
	execName, callName string
	// fn is the function's attribute on its metrics: iii.function.id, or
	// otel.metric.overflow=true beyond TelemetryOptions.MaxMetricFunctions.
	fn                 attribute.KeyValue
	attrs              []attribute.KeyValue       // the spans' attributes: {iii.function.id}
	execJSON, callJSON []byte                     // the spans' names and kinds, encoded (otelws.SpanData.NameJSON); nil: not pre-encoded
	attrsJSON          []byte                     // attrs, encoded (otelws.SpanData.AttributesJSON); nil: not pre-encoded
	fnOpt              trace.SpanStartEventOption // trace.WithAttributes(attrs...)
	okSet, failedSet   attribute.Set              // the metrics' attributes: fn and iii.outcome
	ok, failed         metric.MeasurementOption
	inv, call          *opMetrics // the aggregates (when t.ownMetrics) and error types; shared by the ids beyond the limit
}

// Span start options of every invocation and call.
var (
	serverKind = trace.WithSpanKind(trace.SpanKindServer)
	clientKind = trace.WithSpanKind(trace.SpanKindClient)
)

// newTelemetry returns nil when telemetry is off.
func newTelemetry(w *III, o *TelemetryOptions) *telemetry {
	var opts TelemetryOptions
	if o != nil {
		opts = *o
	}
	if !telemetryEnabled(&opts) {
		return nil
	}
	t := &telemetry{w: w, timeout: opts.ShutdownTimeout, payloads: newPayloadConfig(&opts)}
	if t.timeout <= 0 {
		t.timeout = DefaultTelemetryShutdownTimeout
	}
	t.initFunctionLimit(&opts)
	metricsOn := !opts.DisableMetrics && !envOff("OTEL_METRICS_ENABLED")
	t.logsOff = opts.DisableLogs || envOff("OTEL_LOGS_ENABLED")
	own := t.useProviders(&opts, metricsOn) // what the application does not provide
	if own.any() {
		endpoint := opts.Endpoint
		if endpoint == "" {
			var err error
			if endpoint, err = otelws.EndpointURL(w.address); err != nil {
				w.log.Warn("iii: the worker's own telemetry is off: no endpoint", "err", err)
				if !t.app() {
					return nil
				}
				own = ownSignals{} // keep the application's providers
			}
		}
		if own.any() {
			t.dialOwn(w, &opts, endpoint, own)
		}
	}
	if t.tracer == nil { // no span provider: none given, and the own one could not be built
		t.tracer = tracenoop.NewTracerProvider().Tracer(scopeName)
	}
	var meter metric.Meter = metricnoop.NewMeterProvider().Meter(scopeName)
	switch {
	case t.mp != nil:
		meter = t.mp.Meter(scopeName, metric.WithInstrumentationVersion(Version))
	case metricsOn && opts.MeterProvider != nil:
		meter = opts.MeterProvider.Meter(scopeName, metric.WithInstrumentationVersion(Version))
	}
	t.instrument(meter)
	if metricsOn {
		t.processGauges(meter)
	}
	return t
}

// dialOwn builds the worker's own providers of the signals in own, which
// export to endpoint.
func (t *telemetry) dialOwn(w *III, opts *TelemetryOptions, endpoint string, own ownSignals) {
	res := telemetryResource(w, opts)
	wres := otelws.Resource(res)
	backoff := w.opts.Reconnect.backoff()
	backoff.MaxRetries = -1
	t.conn = otelws.Dial(otelws.Config{URL: endpoint, Header: telemetryHeader(w.address, endpoint, w.opts.Headers, opts.Headers), TLSConfig: w.opts.TLSConfig,
		DialTimeout: w.opts.DialTimeout, Backoff: backoff,
		PingInterval: w.opts.PingInterval, IdleTimeout: w.opts.IdleTimeout,
		MaxPendingFrames: opts.MaxPendingFrames, MaxPendingBytes: opts.MaxPendingBytes, Log: w.log})
	if own.spans || own.logs {
		t.pipe = otelws.NewPipeline(otelws.PipelineConfig{Conn: t.conn, Resource: wres,
			LogScope:          wire.Scope{Name: scopeName, Version: Version},
			SpanFlushInterval: firstDuration(opts.SpanFlushInterval, envMillis("OTEL_SPANS_FLUSH_INTERVAL_MS")),
			LogFlushInterval:  firstDuration(opts.LogFlushInterval, envMillis("OTEL_LOGS_FLUSH_INTERVAL_MS")),
			MaxQueuedSpans:    opts.MaxQueuedSpans, MaxQueuedLogs: opts.MaxQueuedLogs,
		})
	}
	if own.spans {
		topts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res), sdktrace.WithSpanProcessor(t.pipe),
			sdktrace.WithIDGenerator(randomIDs{})}
		if opts.Sampler != nil {
			topts = append(topts, sdktrace.WithSampler(opts.Sampler))
		}
		t.tp = sdktrace.NewTracerProvider(topts...)
		t.tracer = t.tp.Tracer(scopeName, trace.WithInstrumentationVersion(Version))
		t.own = ownSpans(opts) // never with the application's TracerProvider
	}
	if own.metrics {
		interval := firstDuration(opts.MetricsInterval, envMillis("OTEL_METRIC_EXPORT_INTERVAL"), DefaultMetricsInterval)
		t.mp = sdkmetric.NewMeterProvider(sdkmetric.WithResource(res),
			sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter),
			sdkmetric.WithReader(sdkmetric.NewPeriodicReader(&otelws.MetricExporter{Conn: t.conn}, sdkmetric.WithInterval(interval),
				sdkmetric.WithProducer(&metricsProducer{t: t, start: time.Now()}))))
		t.ownMetrics = true // never with the application's MeterProvider
	}
}

// instrument creates the worker's instruments on meter.
func (t *telemetry) instrument(meter metric.Meter) {
	if !t.ownMetrics {
		t.m = newInstruments(meter)
	}
	t.m.reconnects, _ = meter.Int64Counter("iii.connection.reconnects", metric.WithUnit("{connection}"),
		metric.WithDescription("Connections to the engine after the first"))
	w := t.w
	active, _ := meter.Int64ObservableGauge("iii.invocations.active", metric.WithUnit("{invocation}"),
		metric.WithDescription("Handlers running"))
	queued, _ := meter.Int64ObservableGauge("iii.invocations.queued", metric.WithUnit("{invocation}"),
		metric.WithDescription("Invocations received and waiting for a free handler slot"))
	pending, _ := meter.Int64ObservableGauge("iii.calls.pending", metric.WithUnit("{call}"),
		metric.WithDescription("Awaited calls waiting for their result"))
	dropped, _ := meter.Int64ObservableCounter("iii.telemetry.dropped", metric.WithUnit("{item}"),
		metric.WithDescription("Spans, log records and frames dropped because a telemetry queue was full or the engine unreachable"))
	signal := attribute.Key("iii.telemetry.signal")
	spans, logs, frames := metric.WithAttributes(signal.String("spans")), metric.WithAttributes(signal.String("logs")), metric.WithAttributes(signal.String("frames"))
	// One callback, unregistered by close: an application's meter provider
	// outlives the worker.
	t.observed, _ = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		running := t.running.Load()
		o.ObserveInt64(active, running)
		o.ObserveInt64(queued, max(int64(w.inbound.Active())-running, 0))
		o.ObserveInt64(pending, int64(w.pending.Len()))
		s := t.stats()
		o.ObserveInt64(dropped, int64(s.SpansDropped), spans)
		o.ObserveInt64(dropped, int64(s.LogsDropped), logs)
		o.ObserveInt64(dropped, int64(s.FramesDropped), frames)
		return nil
	}, active, queued, pending, dropped)
}

// newInstruments creates the per-call and per-invocation instruments on
// meter (when the worker's metrics are not aggregated by metricsProducer).
func newInstruments(meter metric.Meter) instruments {
	var m instruments
	counter := func(d metricDef) metric.Int64Counter {
		c, _ := meter.Int64Counter(d.name, metric.WithUnit(d.unit), metric.WithDescription(d.desc))
		return c
	}
	histogram := func(d metricDef) metric.Float64Histogram {
		h, _ := meter.Float64Histogram(d.name, metric.WithUnit(d.unit), metric.WithDescription(d.desc),
			metric.WithExplicitBucketBoundaries(durationBuckets...))
		return h
	}
	m.invocations, m.invocationErrors, m.invocationDuration = counter(defInvocations), counter(defInvocationErrors), histogram(defInvocationDuration)
	m.calls, m.callErrors, m.callDuration = counter(defCalls), counter(defCallErrors), histogram(defCallDuration)
	return m
}

// fn returns the per-function data of id. The first fnLimit ids are kept;
// beyond them the metric series are shared (see overflowFn).
func (t *telemetry) fn(id string) *fnTelemetry {
	if f, ok := t.fns.Load(id); ok {
		return f.(*fnTelemetry)
	}
	if t.nfns.Add(1) > t.fnLimit {
		t.nfns.Add(-1)
		return t.overflowFn(id)
	}
	v, loaded := t.fns.LoadOrStore(id, t.newFnTelemetry(id))
	if loaded {
		t.nfns.Add(-1)
	}
	return v.(*fnTelemetry)
}

// traceCarrier carries the two trace fields of the protocol.
type traceCarrier struct{ traceparent, baggage string }

func (c *traceCarrier) Get(key string) string {
	switch key {
	case "traceparent":
		return c.traceparent
	case "baggage":
		return c.baggage
	}
	return ""
}

func (c *traceCarrier) Set(key, value string) {
	switch key {
	case "traceparent":
		c.traceparent = value
	case "baggage":
		c.baggage = value
	}
}

func (c *traceCarrier) Keys() []string { return []string{"traceparent", "baggage"} }

// extract returns ctx with the remote span context and the baggage of the
// protocol's trace fields.
func extract(ctx context.Context, traceparent, bag string) context.Context {
	if traceparent != "" {
		ctx = propagation.TraceContext{}.Extract(ctx, &traceCarrier{traceparent: traceparent})
	}
	if bag != "" {
		ctx = propagation.Baggage{}.Extract(ctx, &traceCarrier{baggage: bag})
	}
	return ctx
}

// startInvocation starts the span of an inbound invocation, continuing the
// caller's trace; end finishes it with the reply about to be sent (and may
// set the reply's trace fields).
func (t *telemetry) startInvocation(ctx context.Context, m *wire.InvokeFunction) (_ context.Context, end func(*wire.InvocationResult)) {
	f := t.fn(m.FunctionID)
	if t.own {
		return t.startOwnInvocation(ctx, m, f)
	}
	parent := extract(ctx, m.Traceparent, m.Baggage)
	var hctx context.Context
	var span trace.Span
	if m.HasInvocationID {
		hctx, span = t.tracer.Start(parent, f.execName, serverKind, f.fnOpt,
			trace.WithAttributes(attrInvocationID.String(m.InvocationID.String())))
	} else {
		hctx, span = t.tracer.Start(parent, f.execName, serverKind, f.fnOpt)
	}
	if t.payloads.on {
		t.payloads.input(span, m.Data)
	}
	t.running.Add(1)
	start := time.Now()
	return hctx, func(res *wire.InvocationResult) {
		d := time.Since(start).Seconds()
		t.running.Add(-1)
		if t.payloads.on {
			t.payloads.output(span, res)
		}
		if res.Error != nil {
			recordFailure(span, res.Error)
		}
		span.End()
		t.invocationMetrics(f, d, res.Error)
	}
}

// invocationMetrics records a handled invocation's metrics.
func (t *telemetry) invocationMetrics(f *fnTelemetry, seconds float64, e *wire.ErrorBody) {
	if t.ownMetrics {
		if e != nil {
			f.inv.record(seconds, true, e.Code)
		} else {
			f.inv.record(seconds, false, "")
		}
		return
	}
	bg := context.Background() // exemplars are off; a span here would only cost
	if e != nil {
		t.m.invocations.Add(bg, 1, f.failed)
		t.m.invocationErrors.Add(bg, 1, f.errorAttrs(f.inv, e.Code))
		t.m.invocationDuration.Record(bg, seconds, f.failed)
		return
	}
	t.m.invocations.Add(bg, 1, f.ok)
	t.m.invocationDuration.Record(bg, seconds, f.ok)
}

// recordFailure marks a handler span failed, with an exception event (and
// the stack of a panic).
func recordFailure(span trace.Span, e *wire.ErrorBody) {
	span.SetStatus(codes.Error, e.Message)
	typ := e.Code
	if strings.HasPrefix(e.Message, "panic: ") && e.Stacktrace != "" {
		typ = "panic"
	}
	attrs := []attribute.KeyValue{attribute.String("exception.type", typ), attribute.String("exception.message", e.Message), attrErrorType.String(e.Code)}
	if e.Stacktrace != "" {
		attrs = append(attrs, attribute.String("exception.stacktrace", e.Stacktrace))
	}
	span.AddEvent("exception", trace.WithAttributes(attrs...))
	span.SetAttributes(attrErrorType.String(e.Code))
}

// startCall starts the span of an outbound call and injects its trace
// context into m; end finishes it with the call's outcome.
func (t *telemetry) startCall(ctx context.Context, m *wire.InvokeFunction) (_ context.Context, end func(error)) {
	f := t.fn(m.FunctionID)
	if t.own {
		return t.startOwnCall(ctx, m, f)
	}
	parent := ctx
	if !trace.SpanContextFromContext(ctx).IsValid() {
		// Not under a span of ours: continue the invocation's trace, if any.
		if inv := invocationFrom(ctx); inv != nil {
			parent = extract(ctx, inv.Traceparent(), inv.Baggage())
		}
	}
	cctx, span := t.tracer.Start(parent, f.callName, clientKind, f.fnOpt)
	var c traceCarrier
	propagation.TraceContext{}.Inject(cctx, &c)
	if baggage.FromContext(cctx).Len() > 0 {
		propagation.Baggage{}.Inject(cctx, &c)
	}
	m.Traceparent, m.Baggage = c.traceparent, c.baggage
	start := time.Now()
	return cctx, func(err error) {
		d := time.Since(start).Seconds()
		if err != nil {
			typ, msg := callErrorType(err), err.Error()
			span.SetStatus(codes.Error, msg)
			span.SetAttributes(attrErrorType.String(typ))
			span.AddEvent("exception", trace.WithAttributes(callExceptionAttrs(typ, msg, err)...))
		}
		span.End()
		t.callMetrics(f, d, err)
	}
}

// callExceptionAttrs are the attributes of a failed call's exception event.
func callExceptionAttrs(typ, msg string, err error) []attribute.KeyValue {
	attrs := []attribute.KeyValue{attribute.String("exception.type", typ), attribute.String("exception.message", msg)}
	var re *RemoteError
	if errors.As(err, &re) && re.Stacktrace != "" {
		attrs = append(attrs, attribute.String("exception.stacktrace", re.Stacktrace))
	}
	return attrs
}

// callMetrics records a call's metrics.
func (t *telemetry) callMetrics(f *fnTelemetry, seconds float64, err error) {
	if t.ownMetrics {
		if err != nil {
			f.call.record(seconds, true, callErrorType(err))
		} else {
			f.call.record(seconds, false, "")
		}
		return
	}
	bg := context.Background()
	if err != nil {
		t.m.calls.Add(bg, 1, f.failed)
		t.m.callErrors.Add(bg, 1, f.errorAttrs(f.call, callErrorType(err)))
		t.m.callDuration.Record(bg, seconds, f.failed)
		return
	}
	t.m.calls.Add(bg, 1, f.ok)
	t.m.callDuration.Record(bg, seconds, f.ok)
}

// callErrorType classifies a call's error for the error.type attribute:
// the protocol code when there is one.
func callErrorType(err error) string {
	if c := ErrorCode(err); c != "" {
		return c
	}
	switch {
	case errors.Is(err, ErrTimeout):
		return "timeout"
	case errors.Is(err, ErrConnectionLost):
		return "connection_lost"
	case errors.Is(err, ErrShutdown):
		return "shutdown"
	case errors.Is(err, ErrConnectionFailed):
		return "connection_failed"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "error"
}

// connectionState records a connection state change.
func (t *telemetry) connectionState(s connection.State) {
	if s == Connected && t.connected.Swap(true) {
		t.m.reconnects.Add(context.Background(), 1)
	}
}

// close flushes what is buffered and stops the pipeline.
func (t *telemetry) close() {
	ctx, cancel := context.WithTimeout(context.Background(), t.timeout)
	defer cancel()
	t.closeCtx(ctx)
}

// closeAfter is Shutdown's close: it first lets the handlers Shutdown has
// cancelled end, and their spans with them, so that the last flush takes
// those spans rather than counting them as dropped. idle waits until no
// invocation is running; the wait ends by the worker's shutdown deadline
// (ctx) and within half the telemetry ShutdownTimeout, leaving the rest
// for the flush (a handler that ignores its context does not delay
// Shutdown further).
func (t *telemetry) closeAfter(ctx context.Context, idle func(context.Context) error) {
	tctx, cancel := context.WithTimeout(context.Background(), t.timeout)
	defer cancel()
	wctx, wcancel := context.WithTimeout(ctx, t.timeout/2)
	_ = idle(wctx)
	wcancel()
	t.closeCtx(tctx)
}

// closeCtx flushes what is buffered, within ctx, and stops the pipeline.
func (t *telemetry) closeCtx(ctx context.Context) {
	t.closeOnce.Do(func() {
		t.closed.Store(true)
		for _, r := range []metric.Registration{t.observed, t.gauges} {
			if r != nil {
				_ = r.Unregister() // an application's meter outlives the worker
			}
		}
		if t.tp != nil {
			_ = t.tp.Shutdown(ctx) // batches the ended spans
		}
		if t.mp != nil {
			_ = t.mp.Shutdown(ctx) // a last collection
		}
		if t.pipe != nil {
			t.pipe.Close()
		}
		if t.conn != nil {
			t.conn.Close(ctx)
		}
	})
}

// flush hands everything recorded so far to the connection and waits until
// it is written.
func (t *telemetry) flush(ctx context.Context) error {
	if t.pipe != nil {
		if err := t.pipe.ForceFlush(ctx); err != nil {
			return err
		}
	}
	if t.mp != nil {
		if err := t.mp.ForceFlush(ctx); err != nil {
			return err
		}
	}
	if t.conn == nil {
		return nil
	}
	return t.conn.Flush(ctx, true)
}

func (t *telemetry) stats() TelemetryStats {
	var p otelws.PipelineStats
	var c otelws.ConnStats
	if t.pipe != nil {
		p = t.pipe.Stats()
	}
	if t.conn != nil {
		c = t.conn.Stats()
	}
	return TelemetryStats{
		SpansExported: p.SpansExported, SpansDropped: p.SpansDropped, SpansQueued: p.SpansQueued,
		LogsExported: p.LogsExported, LogsDropped: p.LogsDropped, LogsQueued: p.LogsQueued,
		FramesSent: c.Sent, FramesDropped: c.Dropped, FramesQueued: c.Queued, BytesQueued: c.QueuedSize,
		Reconnects: c.Reconnects, Connected: c.Connected,
	}
}

// TelemetryStats are the counters of a worker's telemetry pipeline. Spans
// and log records are queued, then batched into frames; frames (of spans,
// log records and metrics) wait for the /otel connection. What does not
// fit is dropped, never waited for.
//
// Whatever is lost is counted once: a span or log record that never gets
// into a frame queued for the connection counts in SpansDropped or
// LogsDropped; one that does counts as exported, and from then on its frame
// counts in FramesSent or FramesDropped (a frame dropped later does not
// count its spans again). The spans lost are thus SpansDropped plus those of
// FramesDropped.
type TelemetryStats struct {
	SpansExported uint64 // spans batched into frames queued for the connection
	SpansDropped  uint64 // spans dropped before that: the span queue was full, they ended after Shutdown, or their frame exceeded MaxPendingBytes
	SpansQueued   int    // spans waiting to be batched
	LogsExported  uint64 // log records batched into frames queued for the connection
	LogsDropped   uint64 // log records dropped before that: the log queue was full, or their frame exceeded MaxPendingBytes
	LogsQueued    int    // log records waiting to be batched
	FramesSent    uint64 // frames written to the /otel connection
	FramesDropped uint64 // frames queued and then dropped (the frame queue was full, their write failed, or Shutdown left them), and metric frames exceeding MaxPendingBytes
	FramesQueued  int    // frames waiting for the connection
	BytesQueued   int    // their size
	Reconnects    uint64 // /otel connections opened after the first
	Connected     bool   // the /otel connection is up
}

// TelemetryStats returns the counters of the worker's telemetry; all zero
// when telemetry is off.
func (w *III) TelemetryStats() TelemetryStats {
	if w.tel == nil {
		return TelemetryStats{}
	}
	return w.tel.stats()
}

// FlushTelemetry writes the telemetry recorded so far (ended spans, log
// records, and a fresh collection of metrics) to the engine, waiting for
// the /otel connection if it is down, until ctx ends. Shutdown flushes too,
// but only for a short while and only if the connection is up; a
// short-lived program that must not lose its telemetry calls FlushTelemetry
// first. It returns nil at once when telemetry is off. It flushes only what
// the worker exports itself: providers the application gave
// (TelemetryOptions.TracerProvider, ...) are the application's to flush.
func (w *III) FlushTelemetry(ctx context.Context) error {
	if w.tel == nil {
		return nil
	}
	return w.tel.flush(ctx)
}

// TracerProvider returns the tracer provider of the worker's spans: the
// application's TelemetryOptions.TracerProvider when it gave one, else the
// worker's own, whose spans are exported to the engine (a no-op provider
// when telemetry is off). Pass it to instrumentation libraries (see the
// otelhttp example), or install it with otel.SetTracerProvider. Inside a
// handler, trace.SpanFromContext(ctx) is the invocation's span and
// Tracer(ctx) starts children of it.
func (w *III) TracerProvider() trace.TracerProvider {
	switch {
	case w.tel == nil || (w.tel.tp == nil && w.tel.appTP == nil):
		return tracenoop.NewTracerProvider()
	case w.tel.appTP != nil:
		return w.tel.appTP
	}
	return w.tel.tp
}

// MeterProvider returns the meter provider of the worker's metrics: the
// application's TelemetryOptions.MeterProvider when it gave one, else the
// worker's own, whose metrics are exported to the engine with the
// worker's (a no-op provider when telemetry or metrics are off).
func (w *III) MeterProvider() metric.MeterProvider {
	switch {
	case w.tel == nil || (w.tel.mp == nil && w.tel.appMP == nil):
		return metricnoop.NewMeterProvider()
	case w.tel.appMP != nil:
		return w.tel.appMP
	}
	return w.tel.mp
}

// Tracer returns a tracer for spans of your own, so that
// Tracer(ctx).Start(ctx, "step") makes a child of the span in ctx. It
// takes the tracer provider of the span in ctx (inside a handler, the
// invocation's span); failing a recording span, that of the worker
// serving the invocation of ctx; failing both, a no-op tracer. It never
// picks a worker the context does not name: outside a handler, use
// w.TracerProvider().Tracer(name) for the worker you mean.
func Tracer(ctx context.Context) trace.Tracer {
	return tracerProvider(ctx).Tracer(scopeName, trace.WithInstrumentationVersion(Version))
}

// tracerProvider is the provider Tracer uses.
func tracerProvider(ctx context.Context) trace.TracerProvider {
	if ctx == nil {
		return tracenoop.NewTracerProvider()
	}
	span := trace.SpanFromContext(ctx)
	if span.IsRecording() {
		return span.TracerProvider()
	}
	if w := workerFrom(ctx); w != nil && w.tel != nil {
		return w.TracerProvider()
	}
	if span.SpanContext().IsValid() {
		return span.TracerProvider()
	}
	return tracenoop.NewTracerProvider()
}

// telemetryResource describes the process: options first, then the
// environment, then defaults.
func telemetryResource(w *III, o *TelemetryOptions) *resource.Resource {
	name := firstString(o.ServiceName, os.Getenv("OTEL_SERVICE_NAME"), DefaultServiceName)
	version := firstString(o.ServiceVersion, os.Getenv("SERVICE_VERSION"), mainVersion(), "unknown")
	instance := firstString(o.ServiceInstanceID, os.Getenv("SERVICE_INSTANCE_ID"))
	if instance == "" {
		instance = uuid.NewString()
	}
	attrs := []attribute.KeyValue{
		attribute.String("service.name", name),
		attribute.String("service.version", version),
		attribute.String("service.instance.id", instance),
		attribute.String("iii.worker.name", w.meta.Name),
	}
	if ns := firstString(o.ServiceNamespace, os.Getenv("SERVICE_NAMESPACE")); ns != "" {
		attrs = append(attrs, attribute.String("service.namespace", ns))
	}
	res, err := resource.New(context.Background(), resource.WithTelemetrySDK(), resource.WithFromEnv(), resource.WithAttributes(attrs...))
	if res == nil || (err != nil && !errors.Is(err, resource.ErrPartialResource)) {
		w.log.Warn("iii: telemetry resource", "err", err)
		return resource.NewSchemaless(attrs...)
	}
	return res
}

func mainVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return ""
}

func firstString(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func firstDuration(d ...time.Duration) time.Duration {
	for _, v := range d {
		if v > 0 {
			return v
		}
	}
	return 0
}

// telemetryEnabled applies the option, then the environment: on unless
// OTEL_ENABLED says false (the Node SDK's rule) or OTEL_SDK_DISABLED true.
func telemetryEnabled(o *TelemetryOptions) bool {
	if o.Enabled != nil {
		return *o.Enabled
	}
	return !envOff("OTEL_ENABLED") && !envOn("OTEL_SDK_DISABLED")
}

// envOff reports whether the boolean variable is set to false, 0, no or
// off (the Node SDK's parseBoolEnv).
func envOff(key string) bool {
	switch strings.ToLower(strings.TrimSpace(os.Getenv(key))) {
	case "false", "0", "no", "off":
		return true
	}
	return false
}

// envOn reports whether the boolean variable is set to true.
func envOn(key string) bool {
	v, err := strconv.ParseBool(strings.TrimSpace(os.Getenv(key)))
	return err == nil && v
}

// envMillis reads a duration in milliseconds; 0 if unset or invalid.
func envMillis(key string) time.Duration {
	n, err := strconv.ParseInt(strings.TrimSpace(os.Getenv(key)), 10, 64)
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(n) * time.Millisecond
}

// randomIDs generates trace and span ids from the runtime's per-thread
// random source, without the lock of the SDK's default generator.
type randomIDs struct{}

func (randomIDs) NewIDs(context.Context) (trace.TraceID, trace.SpanID) {
	return newTraceID(), newSpanID()
}

func (randomIDs) NewSpanID(context.Context, trace.TraceID) trace.SpanID { return newSpanID() }

func newSpanID() trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		putUint64(sid[:], rand.Uint64())
	}
	return sid
}

func putUint64(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (56 - 8*i))
	}
}

// telemetryHeader returns the handshake headers of the telemetry endpoint:
// own, plus the worker's auth headers if the endpoint is the engine's own
// host and port and the headers would not travel in clear where the
// engine's do not.
func telemetryHeader(workerURL, endpoint string, auth, own http.Header) http.Header {
	h := http.Header{}
	if sameOrigin(workerURL, endpoint) {
		for k, v := range auth {
			h[k] = slices.Clone(v)
		}
	}
	for k, v := range own {
		h[http.CanonicalHeaderKey(k)] = slices.Clone(v)
	}
	if len(h) == 0 {
		return nil
	}
	return h
}

// sameOrigin reports whether endpoint is on the host and port of the
// worker URL, and not in clear where the worker URL is encrypted.
func sameOrigin(workerURL, endpoint string) bool {
	a, err1 := url.Parse(workerURL)
	b, err2 := url.Parse(endpoint)
	if err1 != nil || err2 != nil {
		return false
	}
	if a.Scheme == "wss" && b.Scheme != "wss" {
		return false
	}
	return strings.EqualFold(a.Hostname(), b.Hostname()) && portOf(a) == portOf(b)
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "wss" || u.Scheme == "https" {
		return "443"
	}
	return "80"
}
