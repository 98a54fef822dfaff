package iii

import (
	"context"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// The per-call and per-invocation metrics of a worker whose meter provider
// is its own are aggregated here, per function, with atomic counters, and
// handed to the provider's reader as an sdkmetric.Producer at each
// collection. Recording one through the SDK's instruments cost about half
// a microsecond and an allocation per instrument (attribute resolution and
// the variadic options), twice per invocation and twice per call. The
// exported data is what the SDK's instruments would export: cumulative
// monotonic sums and explicit-bucket histograms with min, max and sum,
// under the same names, units, descriptions and attributes.

// metricDef names an instrument.
type metricDef struct{ name, unit, desc string }

var (
	defInvocations        = metricDef{"iii.invocations", "{invocation}", "Invocations handled by this worker, by function and outcome"}
	defInvocationErrors   = metricDef{"iii.invocation.errors", "{invocation}", "Invocations that ended in an error, by function and error code"}
	defInvocationDuration = metricDef{"iii.invocation.duration", "s", "Handler duration of invocations, by function and outcome"}
	defCalls              = metricDef{"iii.calls", "{call}", "Calls this worker made, by function and outcome"}
	defCallErrors         = metricDef{"iii.call.errors", "{call}", "Calls that failed, by function and error type"}
	defCallDuration       = metricDef{"iii.call.duration", "s", "Duration of calls, from sending to the result, by function and outcome"}
)

// opMetrics aggregates the invocations (or the calls) of one function.
type opMetrics struct {
	ok, failed durationHist
	errMu      sync.Mutex
	errs       map[string]uint64 // by error.type; at most errLimit types
	otherErrs  uint64            // the errors of the types beyond errLimit
	errLimit   int               // TelemetryOptions.MaxMetricErrorTypes
}

func (m *opMetrics) init(errLimit int) {
	m.ok.init()
	m.failed.init()
	m.errLimit = errLimit
}

// countError counts an error of type errType and reports whether that type
// has a series of its own: the first errLimit types do; the errors of
// later ones count on the function's overflow series (see
// errorOverflowAttrs).
func (m *opMetrics) countError(errType string) bool {
	m.errMu.Lock()
	defer m.errMu.Unlock()
	if n, ok := m.errs[errType]; ok {
		m.errs[errType] = n + 1
		return true
	}
	if len(m.errs) >= m.errLimit {
		m.otherErrs++
		return false
	}
	if m.errs == nil {
		m.errs = map[string]uint64{}
	}
	m.errs[errType] = 1
	return true
}

// record counts one invocation or call that took seconds; errType is its
// error.type, "" if it succeeded.
func (m *opMetrics) record(seconds float64, failed bool, errType string) {
	if !failed {
		m.ok.record(seconds)
		return
	}
	m.failed.record(seconds)
	m.countError(errType)
}

// durationHist is an explicit-bucket histogram over durationBuckets; its
// count is the sum of its buckets.
type durationHist struct {
	buckets       [len(durationBounds) + 1]atomic.Uint64
	sum, min, max atomic.Uint64 // float64 bits
}

func (h *durationHist) init() {
	h.min.Store(math.Float64bits(math.Inf(1)))
	h.max.Store(math.Float64bits(math.Inf(-1)))
}

func (h *durationHist) record(v float64) {
	h.buckets[sort.SearchFloat64s(durationBuckets, v)].Add(1) // bucket i holds (bounds[i-1], bounds[i]]
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			break
		}
	}
	for {
		old := h.min.Load()
		if v >= math.Float64frombits(old) || h.min.CompareAndSwap(old, math.Float64bits(v)) {
			break
		}
	}
	for {
		old := h.max.Load()
		if v <= math.Float64frombits(old) || h.max.CompareAndSwap(old, math.Float64bits(v)) {
			break
		}
	}
}

// point returns the histogram's data point; ok is false if it is empty.
func (h *durationHist) point(attrs attribute.Set, start, now time.Time) (_ metricdata.HistogramDataPoint[float64], ok bool) {
	counts := make([]uint64, len(h.buckets))
	var n uint64
	for i := range h.buckets {
		counts[i] = h.buckets[i].Load()
		n += counts[i]
	}
	if n == 0 {
		return metricdata.HistogramDataPoint[float64]{}, false
	}
	return metricdata.HistogramDataPoint[float64]{Attributes: attrs, StartTime: start, Time: now, Count: n,
		Bounds: durationBuckets, BucketCounts: counts,
		Min: metricdata.NewExtrema(math.Float64frombits(h.min.Load())), Max: metricdata.NewExtrema(math.Float64frombits(h.max.Load())),
		Sum: math.Float64frombits(h.sum.Load())}, true
}

// metricsProducer hands the aggregates of every function to the reader.
type metricsProducer struct {
	t     *telemetry
	start time.Time
}

var _ sdkmetric.Producer = (*metricsProducer)(nil)

// Produce implements sdkmetric.Producer.
func (p *metricsProducer) Produce(context.Context) ([]metricdata.ScopeMetrics, error) {
	now := time.Now()
	var fns []*fnTelemetry
	p.t.fns.Range(func(_, v any) bool {
		fns = append(fns, v.(*fnTelemetry))
		return true
	})
	sort.Slice(fns, func(i, j int) bool { return fns[i].fn.Value.AsString() < fns[j].fn.Value.AsString() })
	fns = append(fns, p.t.other) // the series of the ids beyond the limit, if any were recorded
	var out []metricdata.Metrics
	add := func(def metricDef, data metricdata.Aggregation, n int) {
		if n > 0 {
			out = append(out, metricdata.Metrics{Name: def.name, Description: def.desc, Unit: def.unit, Data: data})
		}
	}
	for _, op := range []struct {
		count, errors, duration metricDef
		of                      func(*fnTelemetry) *opMetrics
	}{
		{defInvocations, defInvocationErrors, defInvocationDuration, func(f *fnTelemetry) *opMetrics { return f.inv }},
		{defCalls, defCallErrors, defCallDuration, func(f *fnTelemetry) *opMetrics { return f.call }},
	} {
		counts := metricdata.Sum[int64]{Temporality: metricdata.CumulativeTemporality, IsMonotonic: true}
		errs := metricdata.Sum[int64]{Temporality: metricdata.CumulativeTemporality, IsMonotonic: true}
		durations := metricdata.Histogram[float64]{Temporality: metricdata.CumulativeTemporality}
		for _, f := range fns {
			m := op.of(f)
			for _, h := range []struct {
				h     *durationHist
				attrs attribute.Set
			}{{&m.ok, f.okSet}, {&m.failed, f.failedSet}} {
				if dp, ok := h.h.point(h.attrs, p.start, now); ok {
					durations.DataPoints = append(durations.DataPoints, dp)
					counts.DataPoints = append(counts.DataPoints, metricdata.DataPoint[int64]{Attributes: h.attrs, StartTime: p.start, Time: now, Value: int64(dp.Count)})
				}
			}
			m.errMu.Lock()
			for typ, n := range m.errs {
				errs.DataPoints = append(errs.DataPoints, metricdata.DataPoint[int64]{Attributes: attribute.NewSet(f.fn, attrErrorType.String(typ)),
					StartTime: p.start, Time: now, Value: int64(n)})
			}
			if m.otherErrs > 0 {
				errs.DataPoints = append(errs.DataPoints, metricdata.DataPoint[int64]{Attributes: attribute.NewSet(errorOverflowAttrs(f.fn)...),
					StartTime: p.start, Time: now, Value: int64(m.otherErrs)})
			}
			m.errMu.Unlock()
		}
		add(op.count, counts, len(counts.DataPoints))
		add(op.errors, errs, len(errs.DataPoints))
		add(op.duration, durations, len(durations.DataPoints))
	}
	if len(out) == 0 {
		return nil, nil
	}
	return []metricdata.ScopeMetrics{{Scope: instrumentation.Scope{Name: scopeName, Version: Version}, Metrics: out}}, nil
}
