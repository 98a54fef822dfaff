package iii_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/test/iiitest"
)

// OTLP span kinds and status codes.
const (
	kindServer = 2
	kindClient = 3
)

// The tests of this package run with telemetry off unless they turn it on
// (or OTEL_ENABLED is set for the run): most do not look at it, and under
// the race detector it multiplies the CPU time of the load tests, whose
// deadlines do not budget for it. `OTEL_ENABLED=true go test` runs them
// all with telemetry on.
func init() {
	if _, set := os.LookupEnv("OTEL_ENABLED"); !set {
		os.Setenv("OTEL_ENABLED", "false")
	}
}

// telemetryOptions are fastOptions with telemetry settings; telemetry is
// on unless o says otherwise.
func telemetryOptions(o iii.TelemetryOptions) iii.InitOptions {
	if o.Enabled == nil {
		o.Enabled = new(true)
	}
	opts := fastOptions()
	opts.Telemetry = &o
	return opts
}

// telemetryOn are fastOptions with telemetry on.
func telemetryOn() iii.InitOptions { return telemetryOptions(iii.TelemetryOptions{}) }

func spanNames(spans []wire.Span) string {
	names := make([]string, len(spans))
	for i, s := range spans {
		names[i] = s.Name
	}
	return strings.Join(names, ", ")
}

// waitSpanNamed waits for a span called name.
func waitSpanNamed(t *testing.T, eng *iiitest.Engine, name string) wire.Span {
	t.Helper()
	ctx := testCtx(t)
	for n := 1; ; n++ {
		spans, err := eng.WaitSpans(ctx, n)
		if err != nil {
			t.Fatalf("no span %q: %v (got %s)", name, err, spanNames(eng.Spans()))
		}
		for _, s := range spans {
			if s.Name == name {
				return s
			}
		}
		n = len(spans)
	}
}

func event(s wire.Span, name string) (wire.SpanEvent, bool) {
	for _, e := range s.Events {
		if e.Name == name {
			return e, true
		}
	}
	return wire.SpanEvent{}, false
}

func attr(a wire.Attributes, key string) string {
	v, _ := a.Get(key)
	return v
}

func TestCallAcrossWorkersIsOneTraceWithTheCallersSpanAsParent(t *testing.T) {
	eng := iiitest.NewEngine(t)
	a := newWorker(t, eng, telemetryOn())
	b := newWorker(t, eng, telemetryOn())
	var inB atomic.Value // the span context B's handler saw
	mustRegister(t, eng, b, "trace::back", func(ctx context.Context, in string) (string, error) {
		inB.Store(trace.SpanContextFromContext(ctx))
		if got := baggage.FromContext(ctx).Member("tenant").Value(); got != "t1" {
			return "", fmt.Errorf("baggage member tenant = %q", got)
		}
		return "back:" + in, nil
	})
	mustRegister(t, eng, a, "trace::front", func(ctx context.Context, in string) (string, error) {
		m, _ := baggage.NewMember("tenant", "t1")
		bg, _ := baggage.New(m)
		return iii.Call[string](baggage.ContextWithBaggage(ctx, bg), a, "trace::back", in)
	})
	res, errBody, err := eng.Invoke(testCtx(t), "trace::front", []byte(`"x"`))
	if err != nil || errBody != nil || string(res) != `"back:x"` {
		t.Fatalf("Invoke: %s %+v %v", res, errBody, err)
	}
	front := waitSpanNamed(t, eng, "execute trace::front")
	call := waitSpanNamed(t, eng, "trigger trace::back")
	back := waitSpanNamed(t, eng, "execute trace::back")

	if front.Kind != kindServer || call.Kind != kindClient || back.Kind != kindServer {
		t.Fatalf("kinds: front %d, call %d, back %d", front.Kind, call.Kind, back.Kind)
	}
	if front.ParentSpanID != "" {
		t.Fatalf("the engine's call carried no trace, yet front has parent %s", front.ParentSpanID)
	}
	if call.TraceID != front.TraceID || back.TraceID != front.TraceID {
		t.Fatalf("trace ids: front %s, call %s, back %s", front.TraceID, call.TraceID, back.TraceID)
	}
	if call.ParentSpanID != front.SpanID {
		t.Fatalf("the call's parent is %s, want the front handler's span %s", call.ParentSpanID, front.SpanID)
	}
	if back.ParentSpanID != call.SpanID {
		t.Fatalf("B's server span has parent %s, want A's client span %s", back.ParentSpanID, call.SpanID)
	}
	if sc := inB.Load().(trace.SpanContext); sc.SpanID().String() != back.SpanID || sc.TraceID().String() != back.TraceID {
		t.Fatalf("B's handler context carries span %s, want %s", sc.SpanID(), back.SpanID)
	}
	for _, s := range []wire.Span{front, call, back} {
		if attr(s.Attributes, "iii.function.id") == "" || s.Status.Code != wire.StatusUnset || s.EndTimeUnixNano < s.StartTimeUnixNano {
			t.Fatalf("span %s: %+v", s.Name, s)
		}
	}
	if attr(back.Attributes, "iii.invocation.id") == "" {
		t.Fatalf("server span without invocation id: %+v", back.Attributes)
	}
}

func TestUserSpansInsideAHandlerAreChildrenOfTheInvocationSpan(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, telemetryOn())
	mustRegister(t, eng, w, "trace::steps", func(ctx context.Context, _ any) (any, error) {
		ctx1, s1 := iii.Tracer(ctx).Start(ctx, "step one")
		_, s2 := trace.SpanFromContext(ctx1).TracerProvider().Tracer("user").Start(ctx1, "step two")
		s2.End()
		s1.End()
		_, s3 := w.TracerProvider().Tracer("user").Start(ctx, "step three")
		s3.End()
		return nil, nil
	})
	if _, _, err := eng.Invoke(testCtx(t), "trace::steps", nil); err != nil {
		t.Fatal(err)
	}
	exec := waitSpanNamed(t, eng, "execute trace::steps")
	one := waitSpanNamed(t, eng, "step one")
	two := waitSpanNamed(t, eng, "step two")
	three := waitSpanNamed(t, eng, "step three")
	if one.ParentSpanID != exec.SpanID || three.ParentSpanID != exec.SpanID || two.ParentSpanID != one.SpanID {
		t.Fatalf("parents: one %s, two %s, three %s; handler span %s, step one %s",
			one.ParentSpanID, two.ParentSpanID, three.ParentSpanID, exec.SpanID, one.SpanID)
	}
	for _, s := range []wire.Span{one, two, three} {
		if s.TraceID != exec.TraceID {
			t.Fatalf("%s is in trace %s, want %s", s.Name, s.TraceID, exec.TraceID)
		}
	}
}

func TestFailedAndPanickingHandlersMarkTheirSpansWithAnException(t *testing.T) {
	eng := iiitest.NewEngine(t)
	a := newWorker(t, eng, telemetryOn())
	b := newWorker(t, eng, telemetryOn())
	mustRegister(t, eng, b, "trace::fail", func(ctx context.Context, _ any) (any, error) {
		return nil, iii.NewInvocationError("E_OUT_OF_STOCK", "no more A-1")
	})
	mustRegister(t, eng, b, "trace::panic", func(ctx context.Context, _ any) (any, error) {
		panic("kaboom")
	})
	ctx := testCtx(t)
	if _, err := a.Trigger(ctx, iii.TriggerRequest{FunctionID: "trace::fail"}); iii.ErrorCode(err) != "E_OUT_OF_STOCK" {
		t.Fatalf("trace::fail: %v", err)
	}
	if _, err := a.Trigger(ctx, iii.TriggerRequest{FunctionID: "trace::panic"}); iii.ErrorCode(err) != iii.CodeInvocationFailed {
		t.Fatalf("trace::panic: %v", err)
	}

	failed := waitSpanNamed(t, eng, "execute trace::fail")
	if failed.Status.Code != wire.StatusError || failed.Status.Message != "no more A-1" || attr(failed.Attributes, "error.type") != "E_OUT_OF_STOCK" {
		t.Fatalf("failed handler span: %+v", failed)
	}
	if e, ok := event(failed, "exception"); !ok || attr(e.Attributes, "exception.message") != "no more A-1" {
		t.Fatalf("failed handler span events: %+v", failed.Events)
	}
	call := waitSpanNamed(t, eng, "trigger trace::fail")
	if call.Status.Code != wire.StatusError || attr(call.Attributes, "error.type") != "E_OUT_OF_STOCK" {
		t.Fatalf("failed call span: %+v", call)
	}

	panicked := waitSpanNamed(t, eng, "execute trace::panic")
	e, ok := event(panicked, "exception")
	if panicked.Status.Code != wire.StatusError || !ok || attr(e.Attributes, "exception.type") != "panic" ||
		attr(e.Attributes, "exception.message") != "panic: kaboom" ||
		!strings.Contains(attr(e.Attributes, "exception.stacktrace"), "telemetry_test.go") {
		t.Fatalf("panicking handler span: %+v", panicked)
	}
}

func TestLoggerRecordsArriveAsLogsWithTheInvocationsTraceAndSpan(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, telemetryOn())
	log := w.Logger().With("component", "orders")
	slogger := slog.New(w.SlogHandler()).With("via", "slog").WithGroup("req")
	mustRegister(t, eng, w, "log::order", func(ctx context.Context, sku string) (any, error) {
		log.Info(ctx, "order accepted", "sku", sku, "qty", 2, slog.Group("price", "amount", 9.5, "currency", "EUR"))
		log.Debug(ctx, "debug detail")
		log.Warn(ctx, "stock low", "left", uint64(3))
		log.Error(ctx, "payment slow", "err", errors.New("gateway timeout"), "took", 1500*time.Millisecond)
		slogger.InfoContext(ctx, "through slog", "id", 7)
		slogger.DebugContext(ctx, "below the handler's level")
		return nil, nil
	})
	if _, _, err := eng.Invoke(testCtx(t), "log::order", []byte(`"A-1"`)); err != nil {
		t.Fatal(err)
	}
	recs, err := eng.WaitLogs(testCtx(t), 5)
	if err != nil {
		t.Fatalf("log records: %v (got %+v)", err, eng.Logs())
	}
	exec := waitSpanNamed(t, eng, "execute log::order")
	want := []struct {
		body, severityText string
		severity           int
		attrs              map[string]string
	}{
		{"order accepted", "INFO", 9, map[string]string{"component": "orders", "sku": "A-1", "qty": "2",
			"price": `{"kvlistValue":{"values":[{"key":"amount","value":{"doubleValue":9.5}},{"key":"currency","value":{"stringValue":"EUR"}}]}}`}},
		{"debug detail", "DEBUG", 5, map[string]string{"component": "orders"}},
		{"stock low", "WARN", 13, map[string]string{"left": "3"}},
		{"payment slow", "ERROR", 17, map[string]string{"err": "gateway timeout", "took": "1.5s"}},
		{"through slog", "INFO", 9, map[string]string{"via": "slog", "req.id": "7"}},
	}
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d: %+v", len(recs), len(want), recs)
	}
	for i, r := range recs {
		w := want[i]
		if r.Body.String() != w.body || r.SeverityText != w.severityText || r.SeverityNumber != w.severity {
			t.Fatalf("record %d: %s %s(%d), want %s %s(%d)", i, r.Body.String(), r.SeverityText, r.SeverityNumber, w.body, w.severityText, w.severity)
		}
		for k, v := range w.attrs {
			if got := attr(r.Attributes, k); got != v {
				t.Fatalf("record %d %q: attribute %s = %s, want %s", i, w.body, k, got, v)
			}
		}
		if r.TraceID != exec.TraceID || r.SpanID != exec.SpanID || attr(r.Attributes, "trace_id") != exec.TraceID || attr(r.Attributes, "span_id") != exec.SpanID {
			t.Fatalf("record %d is not correlated with the handler span %s/%s: %+v", i, exec.TraceID, exec.SpanID, r)
		}
	}
}

func TestLoggerWithoutAWorkerWritesToSlogDefault(t *testing.T) {
	var buf syncBuffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}})))
	t.Cleanup(func() { slog.SetDefault(prev) })

	var zero iii.Logger
	zero.With("a", 1).Info(context.Background(), "no worker", "b", true)
	// A handler installed as slog's default does not loop back into itself:
	// with no worker, its records go to stderr.
	def := slog.Default()
	slog.SetDefault(slog.New(iii.NewSlogHandler(iii.Logger{}, slog.LevelDebug)))
	iii.Logger{}.Info(context.Background(), "loop guard, on stderr")
	slog.SetDefault(def)
	// A worker with telemetry off: its Logger falls back too, with the
	// trace context its caller (telemetry on) sent.
	eng := iiitest.NewEngine(t)
	caller := newWorker(t, eng, telemetryOn())
	w := newWorker(t, eng, telemetryOptions(iii.TelemetryOptions{Enabled: new(false)}))
	mustRegister(t, eng, w, "log::off", func(ctx context.Context, _ any) (any, error) {
		w.Logger().Warn(ctx, "telemetry off")
		slog.New(w.SlogHandler()).WarnContext(ctx, "slog handler, telemetry off")
		return nil, nil
	})
	if _, err := caller.Trigger(testCtx(t), iii.TriggerRequest{FunctionID: "log::off"}); err != nil {
		t.Fatal(err)
	}
	call := waitSpanNamed(t, eng, "trigger log::off")
	out := buf.String()
	for _, want := range []string{
		`level=INFO msg="no worker" a=1 b=true`,
		`level=WARN msg="telemetry off" trace_id=` + call.TraceID + ` span_id=` + call.SpanID,
		`level=WARN msg="slog handler, telemetry off" trace_id=` + call.TraceID,
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("slog output lacks %q:\n%s", want, out)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// metricPoint returns the newest data point value of metric name whose
// attributes include want: the value of a sum or gauge, the count of a
// histogram.
func metricPoint(ms []wire.Metric, name string, want map[string]string) (float64, bool) {
	var v float64
	found := false
	for _, m := range ms {
		if m.Name != name {
			continue
		}
		match := func(a wire.Attributes) bool {
			for k, val := range want {
				if attr(a, k) != val {
					return false
				}
			}
			return true
		}
		switch {
		case m.Sum != nil:
			for _, p := range m.Sum.DataPoints {
				if match(p.Attributes) {
					v, found = p.Value(), true
				}
			}
		case m.Gauge != nil:
			for _, p := range m.Gauge.DataPoints {
				if match(p.Attributes) {
					v, found = p.Value(), true
				}
			}
		case m.Histogram != nil:
			for _, p := range m.Histogram.DataPoints {
				if match(p.Attributes) {
					v, found = float64(p.Count), true
				}
			}
		}
	}
	return v, found
}

func TestMetricsCountInvocationsCallsAndErrors(t *testing.T) {
	eng := iiitest.NewEngine(t)
	a := newWorker(t, eng, telemetryOn())
	b := newWorker(t, eng, telemetryOn())
	mustRegister(t, eng, b, "metrics::ok", func(ctx context.Context, _ any) (any, error) { return nil, nil })
	mustRegister(t, eng, b, "metrics::fail", func(ctx context.Context, _ any) (any, error) {
		return nil, iii.NewInvocationError("E_NOPE", "nope")
	})
	ctx := testCtx(t)
	for range 5 {
		if _, err := a.Trigger(ctx, iii.TriggerRequest{FunctionID: "metrics::ok"}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if _, err := a.Trigger(ctx, iii.TriggerRequest{FunctionID: "metrics::fail"}); err == nil {
			t.Fatal("metrics::fail succeeded")
		}
	}
	// Flushing sends a fresh collection; no waiting for the 60 s interval.
	for _, w := range []*iii.III{a, b} {
		if err := w.FlushTelemetry(ctx); err != nil {
			t.Fatalf("FlushTelemetry: %v", err)
		}
	}
	cases := []struct {
		metric string
		attrs  map[string]string
		want   float64
	}{
		{"iii.invocations", map[string]string{"iii.function.id": "metrics::ok", "iii.outcome": "ok"}, 5},
		{"iii.invocations", map[string]string{"iii.function.id": "metrics::fail", "iii.outcome": "error"}, 2},
		{"iii.invocation.errors", map[string]string{"iii.function.id": "metrics::fail", "error.type": "E_NOPE"}, 2},
		{"iii.invocation.duration", map[string]string{"iii.function.id": "metrics::ok", "iii.outcome": "ok"}, 5},
		{"iii.calls", map[string]string{"iii.function.id": "metrics::ok", "iii.outcome": "ok"}, 5},
		{"iii.call.errors", map[string]string{"iii.function.id": "metrics::fail", "error.type": "E_NOPE"}, 2},
		{"iii.call.duration", map[string]string{"iii.function.id": "metrics::fail", "iii.outcome": "error"}, 2},
		{"iii.invocations.active", nil, 0},
		{"iii.invocations.queued", nil, 0},
		{"iii.calls.pending", nil, 0},
	}
	// The frames are written; the double decodes them on its own time.
	for _, c := range cases {
		waitMetric(t, eng, c.metric, c.attrs, c.want)
	}
}

// waitMetric waits until the newest point of metric name with attrs has
// the value want (the frames are written when FlushTelemetry returns; the
// double decodes them on its own time).
func waitMetric(t *testing.T, eng *iiitest.Engine, name string, attrs map[string]string, want float64) {
	t.Helper()
	ctx := testCtx(t)
	for {
		ms := eng.Metrics()
		got, ok := metricPoint(ms, name, attrs)
		if ok && got == want {
			return
		}
		if _, err := eng.WaitMetrics(ctx, len(ms)+1); err != nil {
			t.Fatalf("%s%v = %v (found %v), want %v", name, attrs, got, ok, want)
		}
	}
}

func TestMetricsAreExportedAtTheConfiguredInterval(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, telemetryOptions(iii.TelemetryOptions{MetricsInterval: 20 * time.Millisecond}))
	mustRegister(t, eng, w, "metrics::tick", func(ctx context.Context, _ any) (any, error) { return nil, nil })
	if _, _, err := eng.Invoke(testCtx(t), "metrics::tick", nil); err != nil {
		t.Fatal(err)
	}
	// No flush: only the periodic export can deliver it.
	waitMetric(t, eng, "iii.invocations", map[string]string{"iii.function.id": "metrics::tick"}, 1)
}

func TestReconnectsAreCounted(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, telemetryOn())
	id := w.WorkerID()
	eng.DropWorker(id)
	waitFor(t, "a new connection", func() bool { return w.State() == iii.Connected && w.WorkerID() != id })
	// The state change reaches telemetry on the notifier's goroutine; flush
	// until a collection has seen it.
	ctx := testCtx(t)
	for {
		n := len(eng.Metrics())
		if err := w.FlushTelemetry(ctx); err != nil {
			t.Fatal(err)
		}
		ms, err := eng.WaitMetrics(ctx, n+1)
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := metricPoint(ms, "iii.connection.reconnects", nil); ok && v == 1 {
			return
		}
	}
}

// tcpProxy stands between workers and the double's /otel endpoint, so that
// a test can cut it, refuse it, or make it swallow connections.
type tcpProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	mode   string // "forward", "refuse" (close at once) or "hang" (accept, never answer)
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, mode: "forward"}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *tcpProxy) url() string { return "ws://" + p.ln.Addr().String() + "/otel" }

func (p *tcpProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		mode := p.mode
		if mode != "refuse" {
			p.conns = append(p.conns, c)
		}
		p.mu.Unlock()
		switch mode {
		case "refuse":
			c.Close()
		case "forward":
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, up)
			p.mu.Unlock()
			p.wg.Add(2)
			go p.pipe(up, c)
			go p.pipe(c, up)
		}
	}
}

func (p *tcpProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}

// set switches the mode and closes every connection.
func (p *tcpProxy) set(mode string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = mode
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *tcpProxy) close() {
	p.ln.Close()
	p.set("refuse")
	p.wg.Wait()
}

func TestDeadTelemetryEndpointLosesTelemetryNeverInvocations(t *testing.T) {
	for _, mode := range []string{"refuse", "hang"} {
		t.Run(mode, func(t *testing.T) {
			eng := iiitest.NewEngine(t)
			proxy := newTCPProxy(t, eng.Addr)
			proxy.set(mode)
			const maxFrames = 4
			opts := telemetryOptions(iii.TelemetryOptions{Endpoint: proxy.url(), MaxPendingFrames: maxFrames,
				MaxPendingBytes: 64 << 10, SpanFlushInterval: time.Millisecond, ShutdownTimeout: 50 * time.Millisecond})
			a := newWorker(t, eng, opts)
			b := newWorker(t, eng, opts)
			log := b.Logger()
			mustRegister(t, eng, b, "dead::echo", func(ctx context.Context, n int) (int, error) {
				log.Info(ctx, "echo", "n", n)
				return n, nil
			})
			ctx := testCtx(t)
			const calls = 300
			for i := range calls {
				if n, err := iii.Call[int](ctx, a, "dead::echo", i); err != nil || n != i {
					t.Fatalf("call %d: %d, %v", i, n, err)
				}
			}
			// Every span and record is accounted for: batched into a frame
			// (then held, within the bounds, or dropped) or dropped.
			waitFor(t, "the pipeline to batch everything", func() bool {
				s := b.TelemetryStats()
				return s.SpansExported+s.SpansDropped == calls && s.LogsExported+s.LogsDropped == calls
			})
			for name, w := range map[string]*iii.III{"caller": a, "handler": b} {
				s := w.TelemetryStats()
				if s.FramesSent != 0 || s.Connected {
					t.Fatalf("%s: frames went out through a dead endpoint: %+v", name, s)
				}
				if s.FramesQueued > maxFrames || s.BytesQueued > 64<<10 {
					t.Fatalf("%s: queue over its bounds: %+v", name, s)
				}
				if s.FramesDropped == 0 {
					t.Fatalf("%s: nothing dropped: %+v", name, s)
				}
			}
			for k := wire.TelemetryTraces; k <= wire.TelemetryLogs; k++ {
				if n := eng.TelemetryFrames(k); n != 0 {
					t.Fatalf("%d %s frames reached the engine", n, k.Prefix())
				}
			}
		})
	}
}

func TestTelemetryReconnectsAfterTheOtelConnectionDrops(t *testing.T) {
	eng := iiitest.NewEngine(t)
	proxy := newTCPProxy(t, eng.Addr)
	opts := telemetryOptions(iii.TelemetryOptions{Endpoint: proxy.url()})
	w := newWorker(t, eng, opts)
	mustRegister(t, eng, w, "otel::drop", func(ctx context.Context, s string) (string, error) { return s, nil })
	ctx := testCtx(t)
	invoke := func(payload string) {
		t.Helper()
		if res, _, err := eng.Invoke(ctx, "otel::drop", []byte(payload)); err != nil || string(res) != payload {
			t.Fatalf("Invoke: %s %v", res, err)
		}
	}
	invoke(`"before"`)
	waitSpanNamed(t, eng, "execute otel::drop")
	before := len(eng.Spans())
	proxy.set("refuse") // cut the connection and refuse the next ones
	for range 10 {
		invoke(`"while down"`)
	}
	proxy.set("forward")
	// Telemetry is at most once: a frame written on a connection that the
	// proxy cuts at that moment is lost. So call and flush until a span
	// arrives over a connection made after the drop.
	for {
		invoke(`"after"`)
		if err := w.FlushTelemetry(ctx); err != nil {
			t.Fatalf("FlushTelemetry after the endpoint came back: %v", err)
		}
		s := w.TelemetryStats()
		if s.Reconnects > 0 && s.Connected && len(eng.Spans()) > before {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no span arrived after the reconnect; stats %+v", s)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func TestTelemetryOffOpensNoOtelConnectionAndSendsNothing(t *testing.T) {
	for _, how := range []string{"OTEL_ENABLED=false", "Enabled=false"} {
		t.Run(how, func(t *testing.T) {
			opts := fastOptions()
			if how == "Enabled=false" {
				t.Setenv("OTEL_ENABLED", "true") // the option wins
				opts.Telemetry = &iii.TelemetryOptions{Enabled: new(false)}
			} else {
				t.Setenv("OTEL_ENABLED", "false")
			}
			var otelConns atomic.Int32
			eng := iiitest.NewEngine(t, iiitest.WithAuth(func(r *http.Request) error {
				if r.URL.Path == "/otel" {
					otelConns.Add(1)
				}
				return nil
			}))
			a := newWorker(t, eng, opts)
			b := newWorker(t, eng, opts)
			var recording atomic.Bool
			mustRegister(t, eng, b, "off::echo", func(ctx context.Context, s string) (string, error) {
				_, span := iii.Tracer(ctx).Start(ctx, "user span")
				recording.Store(span.IsRecording() || trace.SpanFromContext(ctx).IsRecording())
				span.End()
				return s, nil
			})
			if _, err := iii.Call[string](testCtx(t), a, "off::echo", "x"); err != nil {
				t.Fatal(err)
			}
			if err := a.FlushTelemetry(testCtx(t)); err != nil {
				t.Fatal(err)
			}
			a.Shutdown()
			b.Shutdown()
			if recording.Load() {
				t.Fatal("spans are recorded with telemetry off")
			}
			if n := otelConns.Load(); n != 0 {
				t.Fatalf("%d connections to /otel", n)
			}
			for k := wire.TelemetryTraces; k <= wire.TelemetryLogs; k++ {
				if n := eng.TelemetryFrames(k); n != 0 {
					t.Fatalf("%d %s frames", n, k.Prefix())
				}
			}
			if s := a.TelemetryStats(); s != (iii.TelemetryStats{}) {
				t.Fatalf("stats: %+v", s)
			}
		})
	}
}

func TestTelemetryUsesTheWorkersHandshakeHeaders(t *testing.T) {
	var sawToken atomic.Bool
	eng := iiitest.NewEngine(t, iiitest.WithAuth(func(r *http.Request) error {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			return errors.New("no token")
		}
		if r.URL.Path == "/otel" {
			sawToken.Store(true)
		}
		return nil
	}))
	opts := telemetryOn()
	opts.Headers = http.Header{"Authorization": {"Bearer s3cret"}}
	w := newWorker(t, eng, opts)
	mustRegister(t, eng, w, "auth::echo", func(ctx context.Context, s string) (string, error) { return s, nil })
	if _, _, err := eng.Invoke(testCtx(t), "auth::echo", []byte(`"x"`)); err != nil {
		t.Fatal(err)
	}
	waitSpanNamed(t, eng, "execute auth::echo")
	if !sawToken.Load() {
		t.Fatal("the /otel connection went without the worker's headers")
	}
}

func TestTelemetryResourceNamesTheService(t *testing.T) {
	t.Setenv("OTEL_SERVICE_NAME", "from-env")
	t.Setenv("SERVICE_VERSION", "1.2.3")
	eng := iiitest.NewEngine(t)
	sink := newFrameSink(t)
	w := newWorker(t, eng, telemetryOptions(iii.TelemetryOptions{Endpoint: sink.url(), ServiceName: "orders", ServiceInstanceID: "i-1"}))
	mustRegister(t, eng, w, "res::echo", func(ctx context.Context, s string) (string, error) { return s, nil })
	if _, _, err := eng.Invoke(testCtx(t), "res::echo", []byte(`"x"`)); err != nil {
		t.Fatal(err)
	}
	if err := w.FlushTelemetry(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	var req wire.TracesRequest
	if err := json.Unmarshal(sink.first(t, wire.TelemetryTraces), &req); err != nil {
		t.Fatal(err)
	}
	res := req.ResourceSpans[0].Resource.Attributes
	for k, want := range map[string]string{"service.name": "orders", "service.version": "1.2.3",
		"service.instance.id": "i-1", "telemetry.sdk.language": "go"} {
		if got := attr(res, k); got != want {
			t.Errorf("resource %s = %q, want %q", k, got, want)
		}
	}
	if sc := req.ResourceSpans[0].ScopeSpans[0].Scope; sc.Name != "github.com/iii-go/iii" || sc.Version != iii.Version {
		t.Errorf("scope %+v", sc)
	}
}

// frameSink is a WebSocket endpoint that keeps the telemetry frames it gets
// (or only counts them, with discard).
type frameSink struct {
	srv     *httptest.Server
	discard bool
	mu      sync.Mutex
	frames  [][]byte
	n       atomic.Int64
}

func newFrameSink(t testing.TB) *frameSink {
	s := &frameSink{}
	up := websocket.Upgrader{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		for {
			if s.discard { // read and dropped without a copy, to leave the SDK's own cost
				_, r, err := ws.NextReader()
				if err != nil {
					return
				}
				if _, err := io.Copy(io.Discard, r); err != nil {
					return
				}
				s.n.Add(1)
				continue
			}
			_, b, err := ws.ReadMessage()
			if err != nil {
				return
			}
			s.n.Add(1)
			{
				s.mu.Lock()
				s.frames = append(s.frames, b)
				s.mu.Unlock()
			}
		}
	}))
	t.Cleanup(func() {
		s.srv.CloseClientConnections()
		s.srv.Close()
	})
	return s
}

func (s *frameSink) url() string { return "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/otel" }

// first waits for a frame of kind k and returns its payload.
func (s *frameSink) first(t *testing.T, k wire.TelemetryKind) []byte {
	t.Helper()
	return s.waitFrame(t, "a "+k.Prefix()+" frame", k, nil)
}

// waitSpan waits for a traces frame with the span named name.
func (s *frameSink) waitSpan(t *testing.T, name string) {
	t.Helper()
	s.waitFrame(t, "the span "+name+" at the endpoint", wire.TelemetryTraces, []byte(`"`+name+`"`))
}

// waitFrame waits for a frame of kind k whose payload holds sub (any, if
// nil), and returns that payload.
func (s *frameSink) waitFrame(t *testing.T, what string, k wire.TelemetryKind, sub []byte) []byte {
	t.Helper()
	var payload []byte
	waitFor(t, what, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, f := range s.frames {
			if kind, p := wire.SplitTelemetry(f); kind == k && (sub == nil || bytes.Contains(p, sub)) {
				payload = p
				return true
			}
		}
		return false
	})
	return payload
}
