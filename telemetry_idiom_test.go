package iii_test

import (
	"context"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otellog "go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/log/embedded"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/test/iiitest"
)

// recLogs is an application's LoggerProvider that keeps what it is given.
type recLogs struct {
	embedded.LoggerProvider
	mu   sync.Mutex
	recs []recLog
}

type recLog struct {
	rec otellog.Record
	sc  trace.SpanContext // of the context the record was emitted with
}

func (p *recLogs) Logger(string, ...otellog.LoggerOption) otellog.Logger { return recLogger{p: p} }

func (p *recLogs) all() []recLog {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]recLog(nil), p.recs...)
}

type recLogger struct {
	embedded.Logger
	p *recLogs
}

func (l recLogger) Emit(ctx context.Context, r otellog.Record) {
	l.p.mu.Lock()
	defer l.p.mu.Unlock()
	l.p.recs = append(l.p.recs, recLog{rec: r.Clone(), sc: trace.SpanContextFromContext(ctx)})
}

func (recLogger) Enabled(context.Context, otellog.EnabledParameters) bool { return true }

// appProviders are an application's three providers, recording in memory.
type appProviders struct {
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
	mp     *sdkmetric.MeterProvider
	logs   *recLogs
}

func newAppProviders(t *testing.T) *appProviders {
	p := &appProviders{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader(), logs: &recLogs{}}
	p.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(p.spans))
	p.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(p.reader))
	t.Cleanup(func() {
		_ = p.tp.Shutdown(context.Background())
		_ = p.mp.Shutdown(context.Background())
	})
	return p
}

func (p *appProviders) ended(name string) (sdktrace.ReadOnlySpan, bool) {
	for _, s := range p.spans.Ended() {
		if s.Name() == name {
			return s, true
		}
	}
	return nil, false
}

// collect returns the data points of the sum metric name.
func (p *appProviders) sum(t *testing.T, name string) []metricdata.DataPoint[int64] {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := p.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				if s, ok := m.Data.(metricdata.Sum[int64]); ok {
					return s.DataPoints
				}
			}
		}
	}
	return nil
}

// countOtel counts the /otel connections made to an engine double.
func countOtel(n *atomic.Int32) iiitest.Option {
	return iiitest.WithAuth(func(r *http.Request) error {
		if r.URL.Path == "/otel" {
			n.Add(1)
		}
		return nil
	})
}

func TestTheApplicationsProvidersReplaceTheWorkersOwn(t *testing.T) {
	var otelConns atomic.Int32
	eng := iiitest.NewEngine(t, countOtel(&otelConns))
	app := newAppProviders(t)
	w := newWorker(t, eng, telemetryOptions(iii.TelemetryOptions{
		TracerProvider: app.tp, MeterProvider: app.mp, LoggerProvider: app.logs}))
	if w.TracerProvider() != trace.TracerProvider(app.tp) || w.MeterProvider() != app.mp {
		t.Fatal("the worker does not hand out the application's providers")
	}
	var handlerSpan atomic.Value
	mustRegister(t, eng, w, "app::work", func(ctx context.Context, _ any) (any, error) {
		handlerSpan.Store(trace.SpanContextFromContext(ctx))
		_, s := iii.Tracer(ctx).Start(ctx, "app step")
		s.End()
		w.Logger().Info(ctx, "from the worker's Logger", "n", 1)
		iii.Logger{}.Warn(ctx, "from the zero Logger", "ok", true)
		return nil, nil
	})
	if _, _, err := eng.Invoke(testCtx(t), "app::work", []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := w.FlushTelemetry(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	exec, ok := app.ended("execute app::work")
	if !ok {
		t.Fatalf("no invocation span in the application's provider")
	}
	step, ok := app.ended("app step")
	if !ok || step.Parent().SpanID() != exec.SpanContext().SpanID() {
		t.Fatalf("Tracer(ctx) inside the handler: span %v, parent %v, want child of %v", ok, step, exec.SpanContext().SpanID())
	}
	if sc := handlerSpan.Load().(trace.SpanContext); sc.SpanID() != exec.SpanContext().SpanID() {
		t.Fatalf("handler context span %s, want %s", sc.SpanID(), exec.SpanContext().SpanID())
	}
	pts := app.sum(t, "iii.invocations")
	if len(pts) != 1 || pts[0].Value != 1 {
		t.Fatalf("iii.invocations in the application's meter provider: %+v", pts)
	}
	if v, _ := pts[0].Attributes.Value("iii.function.id"); v.AsString() != "app::work" {
		t.Fatalf("iii.invocations attributes: %v", pts[0].Attributes)
	}
	recs := app.logs.all()
	if len(recs) != 2 {
		t.Fatalf("%d records in the application's logger provider, want 2", len(recs))
	}
	for _, r := range recs {
		if r.sc.SpanID() != exec.SpanContext().SpanID() {
			t.Fatalf("record %q emitted with span %s, want the invocation's %s", r.rec.Body().AsString(), r.sc.SpanID(), exec.SpanContext().SpanID())
		}
	}
	if r := recs[0].rec; r.Body().AsString() != "from the worker's Logger" || r.Severity() != otellog.SeverityInfo || r.AttributesLen() != 1 {
		t.Fatalf("record: %q severity %v, %d attributes", r.Body().AsString(), r.Severity(), r.AttributesLen())
	}
	w.Shutdown()
	if n := otelConns.Load(); n != 0 {
		t.Fatalf("%d connections to /otel with every provider the application's", n)
	}
	for k := wire.TelemetryTraces; k <= wire.TelemetryLogs; k++ {
		if n := eng.TelemetryFrames(k); n != 0 {
			t.Fatalf("%d %s frames sent to the engine", n, k.Prefix())
		}
	}
}

// One provider of the application's replaces that signal only: the others
// still go to /otel.
func TestTheApplicationsTracerProviderAloneKeepsLogsAndMetricsOnOtel(t *testing.T) {
	eng := iiitest.NewEngine(t)
	app := newAppProviders(t)
	w := newWorker(t, eng, telemetryOptions(iii.TelemetryOptions{TracerProvider: app.tp}))
	mustRegister(t, eng, w, "app::half", func(ctx context.Context, _ any) (any, error) {
		w.Logger().Info(ctx, "to the engine")
		return nil, nil
	})
	if _, _, err := eng.Invoke(testCtx(t), "app::half", nil); err != nil {
		t.Fatal(err)
	}
	if err := w.FlushTelemetry(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	exec, ok := app.ended("execute app::half")
	if !ok {
		t.Fatal("no invocation span in the application's provider")
	}
	logs, err := eng.WaitLogs(testCtx(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	if logs[0].SpanID != exec.SpanContext().SpanID().String() {
		t.Fatalf("log record on /otel has span %s, want the application's span %s", logs[0].SpanID, exec.SpanContext().SpanID())
	}
	waitMetric(t, eng, "iii.invocations", map[string]string{"iii.function.id": "app::half"}, 1)
	if n := eng.TelemetryFrames(wire.TelemetryTraces); n != 0 {
		t.Fatalf("%d span frames sent to /otel", n)
	}
}

// Tracer outside a handler never picks some worker of the process.
func TestTracerUsesTheContextNeverTheLatestWorker(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, telemetryOn())
	_, s := iii.Tracer(context.Background()).Start(context.Background(), "orphan")
	s.End()
	if s.IsRecording() {
		t.Fatal("Tracer without a span or worker in the context records (a process-global fallback)")
	}
	// A handler's context with the span taken out still names its worker.
	var recording atomic.Bool
	mustRegister(t, eng, w, "tracer::bare", func(ctx context.Context, _ any) (any, error) {
		bare := trace.ContextWithSpanContext(ctx, trace.SpanContext{})
		_, s := iii.Tracer(bare).Start(bare, "from the worker")
		recording.Store(s.IsRecording())
		s.End()
		return nil, nil
	})
	if _, _, err := eng.Invoke(testCtx(t), "tracer::bare", nil); err != nil {
		t.Fatal(err)
	}
	if !recording.Load() {
		t.Fatal("Tracer(ctx) of a handler's context without its span does not use the invocation's worker")
	}
	waitSpanNamed(t, eng, "from the worker")
}

func TestMetricSeriesPerFunctionAreBounded(t *testing.T) {
	eng := iiitest.NewEngine(t)
	app := newAppProviders(t)
	w := newWorker(t, eng, telemetryOptions(iii.TelemetryOptions{TracerProvider: app.tp, MeterProvider: app.mp, MaxMetricFunctions: 2}))
	ids := []string{"card::a", "card::b", "card::c", "card::d", "card::e"}
	for _, id := range ids {
		mustRegister(t, eng, w, id, func(ctx context.Context, _ any) (any, error) { return nil, nil })
	}
	for _, id := range ids {
		if _, _, err := eng.Invoke(testCtx(t), id, nil); err != nil {
			t.Fatal(err)
		}
	}
	series := map[string]int64{}
	for _, p := range app.sum(t, "iii.invocations") {
		key := "overflow"
		if v, ok := p.Attributes.Value("iii.function.id"); ok {
			key = v.AsString()
		} else if v, ok := p.Attributes.Value("otel.metric.overflow"); !ok || !v.AsBool() {
			t.Fatalf("a series with neither function id nor overflow mark: %v", p.Attributes)
		}
		series[key] += p.Value
	}
	if len(series) != 3 || series["card::a"] != 1 || series["card::b"] != 1 || series["overflow"] != 3 {
		t.Fatalf("iii.invocations series: %v; want card::a, card::b and 3 in the overflow series", series)
	}
	// Spans keep the real ids.
	for _, id := range ids {
		s, ok := app.ended("execute " + id)
		if !ok {
			t.Fatalf("no span for %s", id)
		}
		found := false
		for _, a := range s.Attributes() {
			found = found || (a.Key == "iii.function.id" && a.Value.AsString() == id)
		}
		if !found {
			t.Fatalf("span of %s lacks its id: %v", id, s.Attributes())
		}
	}
}

func eventAttrs(s sdktrace.ReadOnlySpan, name string) (map[attribute.Key]attribute.Value, bool) {
	for _, e := range s.Events() {
		if e.Name == name {
			m := map[attribute.Key]attribute.Value{}
			for _, a := range e.Attributes {
				m[a.Key] = a.Value
			}
			return m, true
		}
	}
	return nil, false
}

func TestInvocationPayloadsAreSpanEventsUnlessSwitchedOff(t *testing.T) {
	for _, how := range []string{"default", "TracePayloadMaxBytes", "DisableTracePayloads", "III_DISABLE_TRACE_PAYLOADS"} {
		t.Run(how, func(t *testing.T) {
			t.Setenv("III_DISABLE_TRACE_PAYLOADS", "")
			t.Setenv("III_TRACE_PAYLOAD_MAX_BYTES", "")
			eng := iiitest.NewEngine(t)
			app := newAppProviders(t)
			o := iii.TelemetryOptions{TracerProvider: app.tp}
			switch how {
			case "TracePayloadMaxBytes":
				o.TracePayloadMaxBytes = 30
			case "DisableTracePayloads":
				o.DisableTracePayloads = true
			case "III_DISABLE_TRACE_PAYLOADS":
				t.Setenv("III_DISABLE_TRACE_PAYLOADS", "TRUE")
			}
			w := newWorker(t, eng, telemetryOptions(o))
			type loginReq struct {
				User     string `json:"user"`
				Password string `json:"password"`
			}
			mustRegister(t, eng, w, "pay::login", func(ctx context.Context, in loginReq) (map[string]string, error) {
				return map[string]string{"user": in.User, "access_token": "tok-123"}, nil
			})
			mustRegister(t, eng, w, "pay::fail", func(ctx context.Context, _ any) (any, error) {
				return nil, iii.NewInvocationError("E_NO", "no way")
			})
			if _, _, err := eng.Invoke(testCtx(t), "pay::login", []byte(`{"user":"ann","password":"hunter2"}`)); err != nil {
				t.Fatal(err)
			}
			if _, _, err := eng.Invoke(testCtx(t), "pay::fail", []byte(`7`)); err != nil {
				t.Fatal(err)
			}
			login, _ := app.ended("execute pay::login")
			fail, _ := app.ended("execute pay::fail")
			if login == nil || fail == nil {
				t.Fatal("invocation spans missing")
			}
			in, hasIn := eventAttrs(login, "iii.invocation.input")
			out, hasOut := eventAttrs(login, "iii.invocation.output")
			fout, hasFail := eventAttrs(fail, "iii.invocation.output")
			if strings.HasPrefix(how, "Disable") || strings.HasPrefix(how, "III_") {
				if hasIn || hasOut || hasFail {
					t.Fatalf("payload events with payloads off: %v", login.Events())
				}
				return
			}
			if !hasIn || !hasOut || !hasFail {
				t.Fatalf("payload events missing: login %v, fail %v", login.Events(), fail.Events())
			}
			if how == "TracePayloadMaxBytes" {
				j := in["iii.payload.json"].AsString()
				if len(j) > 30 || !in["iii.payload.truncated"].AsBool() || !strings.HasSuffix(j, `"[TRUNCATED]"`) {
					t.Fatalf("cut input: %q truncated=%v", j, in["iii.payload.truncated"].AsBool())
				}
				return
			}
			for _, c := range []struct {
				attrs map[attribute.Key]attribute.Value
				want  string
				ok    bool
			}{
				{in, `{"password":"[REDACTED]","user":"ann"}`, true},
				{out, `{"access_token":"[REDACTED]","user":"ann"}`, true},
				{fout, `{"error":"no way"}`, false},
			} {
				if got := c.attrs["iii.payload.json"].AsString(); got != c.want || c.attrs["iii.payload.truncated"].AsBool() {
					t.Fatalf("payload %q (truncated %v), want %q", got, c.attrs["iii.payload.truncated"].AsBool(), c.want)
				}
			}
			if !out["iii.payload.ok"].AsBool() || fout["iii.payload.ok"].AsBool() {
				t.Fatalf("iii.payload.ok: login %v, fail %v", out["iii.payload.ok"].AsBool(), fout["iii.payload.ok"].AsBool())
			}
		})
	}
}

func TestLogsSwitchKeepsTracesAndSendsRecordsToSlog(t *testing.T) {
	for _, how := range []string{"DisableLogs", "OTEL_LOGS_ENABLED=false"} {
		t.Run(how, func(t *testing.T) {
			var buf syncBuffer
			prev := slog.Default()
			slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
			t.Cleanup(func() { slog.SetDefault(prev) })
			o := iii.TelemetryOptions{}
			if how == "DisableLogs" {
				o.DisableLogs = true
			} else {
				t.Setenv("OTEL_LOGS_ENABLED", "false")
			}
			app := newAppProviders(t)
			o.LoggerProvider = app.logs // ignored: logs are off
			eng := iiitest.NewEngine(t)
			w := newWorker(t, eng, telemetryOptions(o))
			mustRegister(t, eng, w, "logs::off", func(ctx context.Context, _ any) (any, error) {
				w.Logger().Info(ctx, "kept local")
				return nil, nil
			})
			if _, _, err := eng.Invoke(testCtx(t), "logs::off", nil); err != nil {
				t.Fatal(err)
			}
			if err := w.FlushTelemetry(testCtx(t)); err != nil {
				t.Fatal(err)
			}
			exec := waitSpanNamed(t, eng, "execute logs::off")
			if !strings.Contains(buf.String(), `msg="kept local" trace_id=`+exec.TraceID) {
				t.Fatalf("slog.Default() got %q", buf.String())
			}
			if n := eng.TelemetryFrames(wire.TelemetryLogs); n != 0 || len(app.logs.all()) != 0 {
				t.Fatalf("records exported with logs off: %d frames, %d to the provider", n, len(app.logs.all()))
			}
			if s := w.TelemetryStats(); s.LogsExported != 0 || s.LogsQueued != 0 {
				t.Fatalf("stats: %+v", s)
			}
		})
	}
}

func TestProcessGaugesAreExported(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, telemetryOn())
	if err := w.FlushTelemetry(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	names := []string{"iii.worker.uptime_seconds"}
	if runtime.GOOS != "windows" && runtime.GOOS != "plan9" {
		names = append(names, "iii.worker.cpu.percent", "iii.worker.cpu.user_micros", "iii.worker.cpu.system_micros")
	}
	if runtime.GOOS == "linux" {
		names = append(names, "iii.worker.memory.rss", "iii.worker.memory.virtual")
	}
	ctx := testCtx(t)
	for _, name := range names {
		for {
			ms := eng.Metrics()
			if v, ok := metricPoint(ms, name, map[string]string{"worker.id": w.WorkerID()}); ok {
				if v < 0 || (strings.Contains(name, "memory") && v == 0) {
					t.Fatalf("%s = %v", name, v)
				}
				break
			}
			if _, err := eng.WaitMetrics(ctx, len(ms)+1); err != nil {
				t.Fatalf("no %s with worker.id %s", name, w.WorkerID())
			}
		}
	}
}

// A half-open /otel connection (the engine's host froze, a middlebox lost
// its state) is noticed within the idle timeout, and telemetry reconnects.
func TestOtelConnectionNoticesAHalfOpenSocket(t *testing.T) {
	eng := iiitest.NewEngine(t)
	p := iiitest.NewProxy(t, eng.URL)
	opts := telemetryOptions(iii.TelemetryOptions{Endpoint: p.URL + "/otel"})
	opts.IdleTimeout = time.Second // for the main connection too, which stays healthy
	opts.DialTimeout = time.Second
	w := newWorker(t, eng, opts)
	waitFor(t, "the /otel connection", func() bool { return w.TelemetryStats().Connected })
	p.Stall()
	waitFor(t, "the stalled /otel connection to be dropped", func() bool { return !w.TelemetryStats().Connected })
	p.Resume()
	waitFor(t, "the /otel reconnect", func() bool {
		s := w.TelemetryStats()
		return s.Connected && s.Reconnects >= 1
	})
	// Telemetry flows on the new connection.
	mustRegister(t, eng, w, "otel::after", func(ctx context.Context, _ any) (any, error) { return nil, nil })
	if _, _, err := eng.Invoke(testCtx(t), "otel::after", nil); err != nil {
		t.Fatal(err)
	}
	waitSpanNamed(t, eng, "execute otel::after")
}

// The application's meter provider outlives the worker: once it is shut
// down, the worker's gauges are no longer observed.
func TestAShutDownWorkerLeavesNoGaugeInTheApplicationsMeterProvider(t *testing.T) {
	eng := iiitest.NewEngine(t)
	app := newAppProviders(t)
	w := newWorker(t, eng, telemetryOptions(iii.TelemetryOptions{MeterProvider: app.mp}))
	gauges := func() []string {
		var rm metricdata.ResourceMetrics
		if err := app.reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				switch d := m.Data.(type) {
				case metricdata.Gauge[int64]:
					if len(d.DataPoints) > 0 {
						names = append(names, m.Name)
					}
				case metricdata.Gauge[float64]:
					if len(d.DataPoints) > 0 {
						names = append(names, m.Name)
					}
				}
			}
		}
		return names
	}
	if got := strings.Join(gauges(), " "); !strings.Contains(got, "iii.invocations.active") || !strings.Contains(got, "iii.worker.uptime_seconds") {
		t.Fatalf("gauges of a running worker: %s", got)
	}
	w.Shutdown()
	if got := gauges(); len(got) != 0 {
		t.Fatalf("gauges observed after Shutdown: %v", got)
	}
}

// The payload events reach the engine with the worker's own provider.
func TestPayloadEventsReachTheEngine(t *testing.T) {
	eng := iiitest.NewEngine(t)
	w := newWorker(t, eng, telemetryOn())
	mustRegister(t, eng, w, "pay::echo", func(ctx context.Context, in map[string]any) (map[string]any, error) { return in, nil })
	if _, _, err := eng.Invoke(testCtx(t), "pay::echo", []byte(`{"sku":"A-1","api_key":"k"}`)); err != nil {
		t.Fatal(err)
	}
	s := waitSpanNamed(t, eng, "execute pay::echo")
	in, okIn := event(s, "iii.invocation.input")
	out, okOut := event(s, "iii.invocation.output")
	if !okIn || !okOut {
		t.Fatalf("span events: %+v", s.Events)
	}
	const want = `{"api_key":"[REDACTED]","sku":"A-1"}`
	if attr(in.Attributes, "iii.payload.json") != want || attr(out.Attributes, "iii.payload.json") != want {
		t.Fatalf("payloads: input %+v, output %+v", in.Attributes, out.Attributes)
	}
	if v, _ := out.Attributes.Get("iii.payload.ok"); v != "true" {
		t.Fatalf("iii.payload.ok = %q", v)
	}
}
