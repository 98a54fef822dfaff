package otelws

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/iii-go/iii/connection/wire"
)

// Defaults of PipelineConfig.
const (
	DefaultFlushInterval = 100 * time.Millisecond // the Node SDK's span and log flush interval
	DefaultMaxQueued     = 2048
	DefaultMaxBatch      = 512
)

// PipelineConfig configures a Pipeline.
type PipelineConfig struct {
	// Conn carries the frames.
	Conn *Conn
	// Resource describes the process (service.name, ...).
	Resource wire.Resource
	// LogScope is the instrumentation scope of the log records.
	LogScope wire.Scope
	// SpanFlushInterval and LogFlushInterval bound how long an ended span
	// or a log record waits for its batch to fill; default 100 ms.
	SpanFlushInterval time.Duration
	LogFlushInterval  time.Duration
	// MaxQueuedSpans and MaxQueuedLogs bound the spans and log records
	// waiting to be batched; beyond them new ones are dropped. Default 2048.
	MaxQueuedSpans int
	MaxQueuedLogs  int
	// MaxBatch is the most spans or log records in one frame; default 512.
	MaxBatch int
}

// Pipeline batches ended spans and log records into frames on a goroutine
// of its own and hands them to a Conn. It is an sdktrace.SpanProcessor.
// Putting a span or a record on its queue never blocks: when the queue is
// full the newcomer is dropped and counted.
//
// A span is encoded as it ends, on the goroutine that ends it, and appended
// to the current batch under a short lock; the goroutine only wakes to
// arm the flush timer and to turn full or due batches into frames. (A
// channel of spans woke it for every span and kept every span alive until
// its batch was encoded.)
type Pipeline struct {
	cfg   PipelineConfig
	logs  chan wire.LogRecord
	flush chan chan struct{}
	enc   *encoder // used by the batching goroutine only
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once

	kick chan struct{} // wakes the batching goroutine: a batch begun or filled

	mu     sync.Mutex   // guards the fields below
	batch  *spanBatch   // the batch being filled
	full   []*spanBatch // filled batches, for the batching goroutine to send
	free   []*spanBatch // sent batches, emptied, for reuse
	queued int          // spans in batch and full
	ended  bool         // the goroutine took its last batch: spans are dropped

	// closing is held for reading by EmitLog from its look at closed to
	// its send, and taken by Close to set closed: no record reaches the
	// queue once the batching goroutine has drained it for the last time.
	closing      sync.RWMutex
	closed       atomic.Bool
	spansDropped atomic.Uint64
	logsDropped  atomic.Uint64
	spansOut     atomic.Uint64
	logsOut      atomic.Uint64
}

// NewPipeline starts a Pipeline.
func NewPipeline(cfg PipelineConfig) *Pipeline {
	if cfg.SpanFlushInterval <= 0 {
		cfg.SpanFlushInterval = DefaultFlushInterval
	}
	if cfg.LogFlushInterval <= 0 {
		cfg.LogFlushInterval = DefaultFlushInterval
	}
	if cfg.MaxQueuedSpans <= 0 {
		cfg.MaxQueuedSpans = DefaultMaxQueued
	}
	if cfg.MaxQueuedLogs <= 0 {
		cfg.MaxQueuedLogs = DefaultMaxQueued
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	p := &Pipeline{cfg: cfg,
		kick:  make(chan struct{}, 1),
		batch: new(spanBatch),
		logs:  make(chan wire.LogRecord, cfg.MaxQueuedLogs),
		flush: make(chan chan struct{}),
		enc:   newEncoder(cfg.Resource),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	go p.run()
	return p
}

// PipelineStats are a Pipeline's counters.
// A span or log record is counted once: exported once its frame is queued
// on the Conn (from then on the frame's fate is counted in ConnStats),
// dropped if it never is.
type PipelineStats struct {
	SpansExported uint64 // spans in frames the Conn queued
	SpansDropped  uint64 // spans dropped: the queue was full, they ended after Close, or the Conn refused their frame
	SpansQueued   int    // spans waiting to be batched
	LogsExported  uint64 // log records in frames the Conn queued
	LogsDropped   uint64 // log records dropped: the queue was full, or the Conn refused their frame
	LogsQueued    int    // log records waiting to be batched
}

// Stats returns the Pipeline's counters.
func (p *Pipeline) Stats() PipelineStats {
	p.mu.Lock()
	queued := p.queued
	p.mu.Unlock()
	return PipelineStats{
		SpansExported: p.spansOut.Load(), SpansDropped: p.spansDropped.Load(), SpansQueued: queued,
		LogsExported: p.logsOut.Load(), LogsDropped: p.logsDropped.Load(), LogsQueued: len(p.logs),
	}
}

// OnStart implements sdktrace.SpanProcessor; it does nothing.
func (p *Pipeline) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd implements sdktrace.SpanProcessor: it queues a sampled span for
// export, or drops it if the queue is full.
func (p *Pipeline) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	if p.closed.Load() {
		p.spansDropped.Add(1)
		return
	}
	var d SpanData
	spanData(&d, s)
	sc := s.InstrumentationScope()
	p.export(&sc, &d)
}

// ExportSpan queues an ended span of scope sc for export, or drops it if
// the queue is full. The span is encoded before ExportSpan returns: the
// caller may reuse d and what it points to.
func (p *Pipeline) ExportSpan(sc *instrumentation.Scope, d *SpanData) {
	if p.closed.Load() {
		p.spansDropped.Add(1)
		return
	}
	p.export(sc, d)
}

func (p *Pipeline) export(sc *instrumentation.Scope, d *SpanData) {
	sp := scratchPool.Get().(*[]byte)
	span := appendSpanData((*sp)[:0], d)
	defer func() {
		if cap(span) <= 64<<10 {
			*sp = span
			scratchPool.Put(sp)
		}
	}()
	p.mu.Lock()
	if p.queued >= p.cfg.MaxQueuedSpans || p.ended {
		p.mu.Unlock()
		p.spansDropped.Add(1)
		return
	}
	p.queued++
	b := p.batch
	b.add(sc, span)
	kick := b.n == 1
	if b.n >= p.cfg.MaxBatch {
		p.full = append(p.full, b)
		p.batch = p.newBatchLocked()
		kick = true
	}
	p.mu.Unlock()
	if kick {
		select {
		case p.kick <- struct{}{}:
		default: // a kick is pending already; the goroutine looks at everything when it takes it
		}
	}
}

// scratchPool holds the buffers spans are encoded into before they join a
// batch (a buffer on the stack would grow every goroutine that ends a span,
// and with them the runtime's initial goroutine stack size).
var scratchPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// newBatchLocked returns an empty batch, reused if one is free.
func (p *Pipeline) newBatchLocked() *spanBatch {
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		return b
	}
	return new(spanBatch)
}

// Shutdown implements sdktrace.SpanProcessor: it batches what is queued.
// The Pipeline keeps running until Close.
func (p *Pipeline) Shutdown(ctx context.Context) error { return p.ForceFlush(ctx) }

// ForceFlush implements sdktrace.SpanProcessor: it returns once every span
// and log record queued before the call is in a frame handed to the Conn
// (not necessarily written yet; see Conn.Flush), or ctx ends.
func (p *Pipeline) ForceFlush(ctx context.Context) error {
	ack := make(chan struct{})
	select {
	case p.flush <- ack:
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ack:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// EmitLog queues a log record for export. It reports false if the
// Pipeline is closed (the record is not counted: the caller keeps it); a
// record that does not fit in the queue is dropped and counted, and
// EmitLog still reports true. Every record it accepts is counted once,
// exported or dropped, also when Close runs at the same time.
func (p *Pipeline) EmitLog(r wire.LogRecord) bool {
	p.closing.RLock()
	defer p.closing.RUnlock()
	if p.closed.Load() {
		return false
	}
	select {
	case p.logs <- r:
	default:
		p.logsDropped.Add(1)
	}
	return true
}

// Close batches what is queued and stops the Pipeline's goroutine. Spans
// and records arriving later are dropped. It does not close the Conn.
func (p *Pipeline) Close() {
	p.once.Do(func() {
		p.closing.Lock() // waits for the EmitLog calls under way
		p.closed.Store(true)
		p.closing.Unlock()
		close(p.stop)
	})
	<-p.done
}

func (p *Pipeline) run() {
	defer close(p.done)
	var (
		logs    []wire.LogRecord
		spanDue <-chan time.Time
		logDue  <-chan time.Time
	)
	spanTimer := time.NewTimer(time.Hour)
	spanTimer.Stop()
	logTimer := time.NewTimer(time.Hour)
	logTimer.Stop()
	defer spanTimer.Stop()
	defer logTimer.Stop()
	emitSpans := func() {
		p.emitSpans()
		spanTimer.Stop()
		spanDue = nil
	}
	emitLogs := func() {
		if len(logs) > 0 {
			p.emitLogs(logs)
			logs = logs[:0] // the frame holds a copy
		}
		logTimer.Stop()
		logDue = nil
	}
	addLog := func(r wire.LogRecord) {
		logs = append(logs, r)
		if len(logs) >= p.cfg.MaxBatch {
			emitLogs()
		} else if logDue == nil {
			logTimer.Reset(p.cfg.LogFlushInterval)
			logDue = logTimer.C
		}
	}
	drain := func() {
		for {
			select {
			case r := <-p.logs:
				addLog(r)
				continue
			default:
			}
			break
		}
		emitSpans()
		emitLogs()
	}
	for {
		select {
		case <-p.kick:
			if p.emitFull() > 0 && spanDue == nil {
				spanTimer.Reset(p.cfg.SpanFlushInterval)
				spanDue = spanTimer.C
			}
		case r := <-p.logs:
			addLog(r)
		case <-spanDue:
			spanDue = nil
			emitSpans()
		case <-logDue:
			logDue = nil
			emitLogs()
		case ack := <-p.flush:
			drain()
			close(ack)
		case <-p.stop:
			drain()
			p.mu.Lock()
			p.ended = true // a span ending from now on is dropped and counted, not left behind
			p.mu.Unlock()
			emitSpans()
			return
		}
	}
}

// emitFull sends the filled batches and returns how many spans the
// current batch holds.
func (p *Pipeline) emitFull() int {
	p.mu.Lock()
	full := p.full
	p.full = nil
	n := p.batch.n
	p.mu.Unlock()
	p.send(full)
	return n
}

// emitSpans sends the filled batches and the current one.
func (p *Pipeline) emitSpans() {
	p.mu.Lock()
	full := p.full
	p.full = nil
	if p.batch.n > 0 {
		full = append(full, p.batch)
		p.batch = p.newBatchLocked()
	}
	p.mu.Unlock()
	p.send(full)
}

// send turns batches into frames, then keeps a few of them for reuse.
func (p *Pipeline) send(batches []*spanBatch) {
	if len(batches) == 0 {
		return
	}
	for _, b := range batches {
		if p.cfg.Conn.enqueue(p.enc.tracesFrame(b)) {
			p.spansOut.Add(uint64(b.n))
		} else {
			p.spansDropped.Add(uint64(b.n))
		}
	}
	p.mu.Lock()
	for _, b := range batches {
		p.queued -= b.n
		b.reset()
		if len(p.free) < 2 {
			p.free = append(p.free, b)
		}
	}
	p.mu.Unlock()
}

func (p *Pipeline) emitLogs(logs []wire.LogRecord) {
	if p.cfg.Conn.enqueue(p.enc.logs(p.cfg.LogScope, logs)) {
		p.logsOut.Add(uint64(len(logs)))
	} else {
		p.logsDropped.Add(uint64(len(logs)))
	}
}

func sendJSON(c *Conn, k wire.TelemetryKind, v any) bool {
	payload, err := json.Marshal(v)
	if err != nil {
		return false
	}
	return c.Send(wire.AppendTelemetry(make([]byte, 0, 4+len(payload)), k, payload))
}

// MetricExporter is an sdkmetric.Exporter that sends each collection as one
// MTRC frame on a Conn. Use it with sdkmetric.NewPeriodicReader.
type MetricExporter struct {
	Conn *Conn
}

var _ sdkmetric.Exporter = (*MetricExporter)(nil)

// Temporality implements sdkmetric.Exporter: cumulative, as the Node SDK.
func (e *MetricExporter) Temporality(k sdkmetric.InstrumentKind) metricdata.Temporality {
	return sdkmetric.DefaultTemporalitySelector(k)
}

// Aggregation implements sdkmetric.Exporter: the SDK's defaults.
func (e *MetricExporter) Aggregation(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	return sdkmetric.DefaultAggregationSelector(k)
}

// Export implements sdkmetric.Exporter. It never waits on the network.
func (e *MetricExporter) Export(_ context.Context, rm *metricdata.ResourceMetrics) error {
	req := Metrics(rm)
	if len(req.ResourceMetrics[0].ScopeMetrics) == 0 {
		return nil
	}
	sendJSON(e.Conn, wire.TelemetryMetrics, req)
	return nil
}

// ForceFlush implements sdkmetric.Exporter; frames are queued on the Conn
// already.
func (e *MetricExporter) ForceFlush(context.Context) error { return nil }

// Shutdown implements sdkmetric.Exporter. The Conn is closed by its owner.
func (e *MetricExporter) Shutdown(context.Context) error { return nil }
