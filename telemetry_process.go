package iii

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// processGauges registers the process gauges of the Rust and Node SDKs on
// meter: iii.worker.memory.rss and iii.worker.memory.virtual (bytes, where
// the platform tells them: Linux), iii.worker.cpu.percent (CPU time over
// wall time since the previous collection, 100 per busy core),
// iii.worker.cpu.user_micros and iii.worker.cpu.system_micros (CPU time
// since the process started, on Unix), and iii.worker.uptime_seconds
// (since the worker was created), with the attributes worker.id (once the
// engine has assigned one) and worker.name. They are collected once per
// metric collection, by one callback, which close unregisters.
func (t *telemetry) processGauges(meter metric.Meter) {
	rss, _ := meter.Int64ObservableGauge("iii.worker.memory.rss", metric.WithUnit("By"),
		metric.WithDescription("Resident set size of the worker's process in bytes"))
	virt, _ := meter.Int64ObservableGauge("iii.worker.memory.virtual", metric.WithUnit("By"),
		metric.WithDescription("Virtual memory size of the worker's process in bytes"))
	cpu, _ := meter.Float64ObservableGauge("iii.worker.cpu.percent", metric.WithUnit("%"),
		metric.WithDescription("CPU usage of the worker's process since the previous collection, 100 per busy core"))
	user, _ := meter.Int64ObservableGauge("iii.worker.cpu.user_micros", metric.WithUnit("us"),
		metric.WithDescription("User CPU time of the worker's process in microseconds"))
	sys, _ := meter.Int64ObservableGauge("iii.worker.cpu.system_micros", metric.WithUnit("us"),
		metric.WithDescription("System CPU time of the worker's process in microseconds"))
	up, _ := meter.Float64ObservableGauge("iii.worker.uptime_seconds", metric.WithUnit("s"),
		metric.WithDescription("Time since the worker was created in seconds"))
	w, start := t.w, time.Now()
	var mu sync.Mutex // collections may overlap (a flush during a periodic one)
	var lastWall time.Time
	var lastCPU time.Duration
	reg, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		attrs := []attribute.KeyValue{attribute.String("worker.name", w.meta.Name)}
		if c := t.engineConn.Load(); c != nil {
			if id := c.WorkerID(); id != "" {
				attrs = append(attrs, attribute.String("worker.id", id))
			}
		}
		opt := metric.WithAttributes(attrs...)
		now := time.Now()
		o.ObserveFloat64(up, now.Sub(start).Seconds(), opt)
		if r, v, ok := processMemory(); ok {
			o.ObserveInt64(rss, r, opt)
			o.ObserveInt64(virt, v, opt)
		}
		if u, s, ok := processCPU(); ok {
			o.ObserveInt64(user, u.Microseconds(), opt)
			o.ObserveInt64(sys, s.Microseconds(), opt)
			mu.Lock()
			from, used := lastWall, u+s-lastCPU
			if from.IsZero() {
				from, used = processStart, u+s
			}
			lastWall, lastCPU = now, u+s
			mu.Unlock()
			if wall := now.Sub(from); wall > 0 {
				o.ObserveFloat64(cpu, 100*used.Seconds()/wall.Seconds(), opt)
			}
		}
		return nil
	}, rss, virt, cpu, user, sys, up)
	if err == nil {
		t.gauges = reg
	}
}

// processStart approximates when the process started: when the package
// was initialised.
var processStart = time.Now()
