package otelws_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/iii-go/iii/connection"
	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/otelws"
	"github.com/iii-go/iii/test/iiitest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var fast = connection.Backoff{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond, Multiplier: 2}

func TestEndpointURLAppendsOtelToThePath(t *testing.T) {
	for in, want := range map[string]string{
		"ws://127.0.0.1:49134":        "ws://127.0.0.1:49134/otel",
		"ws://127.0.0.1:49134/":       "ws://127.0.0.1:49134/otel",
		"wss://engine.example/iii//":  "wss://engine.example/iii/otel",
		"ws://h:1/otel":               "ws://h:1/otel",
		"ws://h:1/base?token=a%2Fb":   "ws://h:1/base/otel?token=a%2Fb",
		"ws://h:1/with%20space/otel/": "ws://h:1/with%20space/otel",
		"ws://h:1/a%2Fb":              "ws://h:1/a%2Fb/otel",
		"ws://user:pw@h:1/x?y=1":      "ws://user:pw@h:1/x/otel?y=1",
	} {
		got, err := otelws.EndpointURL(in)
		if err != nil || got != want {
			t.Errorf("EndpointURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := otelws.EndpointURL("http://h:1"); err == nil {
		t.Error("an http URL was accepted")
	}
}

func TestConnSendsFramesInOrderToTheEngine(t *testing.T) {
	eng := iiitest.NewEngine(t)
	url, _ := otelws.EndpointURL(eng.URL)
	c := otelws.Dial(otelws.Config{URL: url, Backoff: fast})
	defer c.Close(context.Background())
	for i := range 50 {
		name := "m" + string(rune('a'+i%26))
		payload, _ := json.Marshal(wire.MetricsRequest{ResourceMetrics: []wire.ResourceMetrics{{ScopeMetrics: []wire.ScopeMetrics{{
			Metrics: []wire.Metric{{Name: name}}}}}}})
		if !c.Send(wire.AppendTelemetry(nil, wire.TelemetryMetrics, payload)) {
			t.Fatal("Send refused a frame")
		}
	}
	if err := c.Flush(testCtx(t), true); err != nil {
		t.Fatal(err)
	}
	ms, err := eng.WaitMetrics(testCtx(t), 50)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		if want := "m" + string(rune('a'+i%26)); m.Name != want {
			t.Fatalf("metric %d is %s, want %s", i, m.Name, want)
		}
	}
	if s := c.Stats(); s.Sent != 50 || s.Dropped != 0 || s.Queued != 0 || !s.Connected {
		t.Fatalf("stats %+v", s)
	}
}

// refusing is an address where nothing listens.
func refusing(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "ws://" + addr + "/otel"
}

func TestConnKeepsTheNewestFramesWithinItsBoundsWhileDown(t *testing.T) {
	c := otelws.Dial(otelws.Config{URL: refusing(t), Backoff: fast, MaxPendingFrames: 3, MaxPendingBytes: 100})
	defer c.Close(context.Background())
	for i := range 10 {
		c.Send([]byte{byte('0' + i)})
	}
	if s := c.Stats(); s.Queued != 3 || s.QueuedSize != 3 || s.Dropped != 7 || s.Sent != 0 {
		t.Fatalf("after 10 one-byte frames with room for 3: %+v", s)
	}
	c.Send(make([]byte, 99)) // the oldest two go to make room
	if s := c.Stats(); s.Queued != 2 || s.QueuedSize != 100 || s.Dropped != 9 {
		t.Fatalf("after a 99-byte frame: %+v", s)
	}
	if c.Send(make([]byte, 101)) { // never fits
		t.Fatal("a frame over the byte bound was queued")
	}
	if s := c.Stats(); s.Queued != 2 || s.Dropped != 10 {
		t.Fatalf("after a 101-byte frame: %+v", s)
	}
}

func TestConnFlushGivesUpOnADownEndpointUnlessAskedToWait(t *testing.T) {
	c := otelws.Dial(otelws.Config{URL: refusing(t), Backoff: connection.Backoff{Initial: time.Hour, Max: time.Hour, Multiplier: 1}})
	c.Send([]byte("OTLP{}"))
	// The first dial fails at once; then the Conn waits an hour to retry.
	if err := c.Flush(testCtx(t), false); err != otelws.ErrUnavailable {
		t.Fatalf("Flush(no wait) = %v, want ErrUnavailable", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := c.Flush(ctx, true); err != context.DeadlineExceeded {
		t.Fatalf("Flush(wait) = %v, want the context's deadline", err)
	}
	c.Close(testCtx(t)) // never waits for the hour
	if s := c.Stats(); s.Dropped != 1 || s.Queued != 0 {
		t.Fatalf("after Close: %+v", s)
	}
	if err := c.Flush(testCtx(t), true); err != nil && err != otelws.ErrClosed {
		t.Fatalf("Flush after Close = %v", err)
	}
	if c.Send([]byte("OTLP{}")) {
		t.Fatal("Send after Close queued a frame")
	}
}

func TestConnReconnectsAndDeliversWhatWasQueuedMeanwhile(t *testing.T) {
	var mu sync.Mutex
	var got []string
	refuse := true
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		no := refuse
		mu.Unlock()
		if no {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				return
			}
			mu.Lock()
			got = append(got, string(b))
			mu.Unlock()
		}
	}))
	defer srv.Close()
	defer srv.CloseClientConnections()
	c := otelws.Dial(otelws.Config{URL: "ws" + strings.TrimPrefix(srv.URL, "http") + "/otel", Backoff: fast})
	defer c.Close(context.Background())
	c.Send([]byte("LOGSone"))
	c.Send([]byte("LOGStwo"))
	mu.Lock()
	refuse = false
	mu.Unlock()
	if err := c.Flush(testCtx(t), true); err != nil {
		t.Fatal(err)
	}
	srv.CloseClientConnections() // drop it: the next frame goes on a new connection
	c.Send([]byte("LOGSthree"))
	if err := c.Flush(testCtx(t), true); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	// A frame written just as the socket died may be lost; none is duplicated
	// and the order holds.
	if strings.Join(got, ",") != "LOGSone,LOGStwo,LOGSthree" && strings.Join(got, ",") != "LOGSone,LOGStwo" {
		t.Fatalf("frames received: %q", got)
	}
}

func TestPipelineBatchesSpansIntoOTLPFramesWithTheirParents(t *testing.T) {
	eng := iiitest.NewEngine(t)
	url, _ := otelws.EndpointURL(eng.URL)
	c := otelws.Dial(otelws.Config{URL: url, Backoff: fast})
	defer c.Close(context.Background())
	res := resource.NewSchemaless(attribute.String("service.name", "svc"))
	p := otelws.NewPipeline(otelws.PipelineConfig{Conn: c, Resource: otelws.Resource(res), MaxBatch: 2})
	defer p.Close()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(p), sdktrace.WithResource(res))
	tr := tp.Tracer("scope-a")
	ctx, root := tr.Start(context.Background(), "root", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.Int("n", 1), attribute.StringSlice("tags", []string{"x", "y"})))
	_, child := tp.Tracer("scope-b").Start(ctx, "child")
	child.AddEvent("exception", trace.WithAttributes(attribute.String("exception.message", "bad")))
	child.SetStatus(codes.Error, "bad")
	child.End()
	root.SetStatus(codes.Ok, "")
	root.End()
	_, third := tr.Start(context.Background(), "third")
	third.End()
	if err := tp.ForceFlush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	spans, err := eng.WaitSpans(testCtx(t), 3)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]wire.Span{}
	for _, s := range spans {
		byName[s.Name] = s
	}
	r, ch := byName["root"], byName["child"]
	if ch.ParentSpanID != r.SpanID || ch.TraceID != r.TraceID || r.ParentSpanID != "" || r.Kind != 2 || ch.Kind != 1 {
		t.Fatalf("root %+v\nchild %+v", r, ch)
	}
	if r.Status.Code != wire.StatusOK || ch.Status.Code != wire.StatusError || ch.Status.Message != "bad" || len(ch.Events) != 1 {
		t.Fatalf("statuses and events: root %+v, child %+v", r.Status, ch)
	}
	if v, _ := r.Attributes.Get("n"); v != "1" {
		t.Fatalf("root attributes %+v", r.Attributes)
	}
	if v, _ := r.Attributes.Get("tags"); v != `{"arrayValue":{"values":[{"stringValue":"x"},{"stringValue":"y"}]}}` {
		t.Fatalf("tags = %s", v)
	}
	if n := eng.TelemetryFrames(wire.TelemetryTraces); n != 2 {
		t.Fatalf("%d OTLP frames for 3 spans in batches of 2", n)
	}
	if s := p.Stats(); s.SpansExported != 3 || s.SpansDropped != 0 {
		t.Fatalf("stats %+v", s)
	}
	if err := tp.Shutdown(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

func TestPipelineDropsAndCountsWhatItsQueuesCannotHold(t *testing.T) {
	c := otelws.Dial(otelws.Config{URL: refusing(t), Backoff: fast})
	defer c.Close(context.Background())
	p := otelws.NewPipeline(otelws.PipelineConfig{Conn: c, MaxQueuedLogs: 1, LogFlushInterval: time.Hour})
	// The batching goroutine takes records off the queue as they come, so
	// how many are dropped depends on scheduling; each is counted once.
	const n = 1000
	for range n {
		p.EmitLog(wire.LogRecord{Body: otelws.String("x")})
	}
	p.Close()
	s := p.Stats()
	if s.LogsExported+s.LogsDropped != n || s.LogsQueued != 0 {
		t.Fatalf("after %d records and Close: %+v", n, s)
	}
	if p.EmitLog(wire.LogRecord{}) {
		t.Fatal("EmitLog after Close accepted a record")
	}
}

func TestMetricExporterSendsCollectionsAsMTRCFrames(t *testing.T) {
	eng := iiitest.NewEngine(t)
	url, _ := otelws.EndpointURL(eng.URL)
	c := otelws.Dial(otelws.Config{URL: url, Backoff: fast})
	defer c.Close(context.Background())
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	m := mp.Meter("m")
	counter, _ := m.Int64Counter("requests")
	hist, _ := m.Float64Histogram("latency")
	gauge, _ := m.Float64Gauge("temp")
	ctx := context.Background()
	counter.Add(ctx, 3)
	hist.Record(ctx, 0.5)
	hist.Record(ctx, 1.5)
	gauge.Record(ctx, 21.5)
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	if err := (&otelws.MetricExporter{Conn: c}).Export(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	ms, err := eng.WaitMetrics(testCtx(t), 3)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]wire.Metric{}
	for _, m := range ms {
		got[m.Name] = m
	}
	if s := got["requests"].Sum; s == nil || !s.IsMonotonic || s.AggregationTemporality != wire.TemporalityCumulative || s.DataPoints[0].Value() != 3 {
		t.Fatalf("requests: %+v", got["requests"])
	}
	if h := got["latency"].Histogram; h == nil || h.DataPoints[0].Count != 2 || *h.DataPoints[0].Sum != 2 || *h.DataPoints[0].Min != 0.5 || *h.DataPoints[0].Max != 1.5 {
		t.Fatalf("latency: %+v", got["latency"])
	}
	if g := got["temp"].Gauge; g == nil || g.DataPoints[0].Value() != 21.5 {
		t.Fatalf("temp: %+v", got["temp"])
	}
	_ = mp.Shutdown(ctx)
}

func TestPipelineDropsAndCountsSpansEndedAfterClose(t *testing.T) {
	c := otelws.Dial(otelws.Config{URL: refusing(t), Backoff: fast})
	defer c.Close(context.Background())
	p := otelws.NewPipeline(otelws.PipelineConfig{Conn: c})
	sc := instrumentation.Scope{Name: "s"}
	p.ExportSpan(&sc, &otelws.SpanData{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, Name: "before"})
	p.Close()
	p.ExportSpan(&sc, &otelws.SpanData{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, Name: "after"})
	if s := p.Stats(); s.SpansExported != 1 || s.SpansDropped != 1 || s.SpansQueued != 0 {
		t.Fatalf("stats after Close: %+v", s)
	}
}
