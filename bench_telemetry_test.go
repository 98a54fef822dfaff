package iii_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/iii-go/iii"
	"github.com/iii-go/iii/test/iiitest"
)

// BenchmarkRoundTripTelemetryOnOff measures what telemetry costs: awaited
// calls from a caller worker to a handler worker through the engine double,
// 64 in flight, with telemetry off, then on (a client span, a server span,
// metrics on both sides, and a Logger record per call when logging). The
// sinks:
//
//   - double: the engine double's own /otel endpoint, which decodes every
//     frame in this process, so its cost is counted too;
//   - discard: a WebSocket endpoint that reads and drops the frames, which
//     leaves the SDK's own cost.
//
// Everything runs in one process on the same cores, so compare ns/op (wall
// time) and cpu-ns/op (the process's CPU time, which other load on a shared
// machine disturbs less) of the sub-benchmarks of one run; the ratios are
// logged at the end:
//
//	go test -run '^$' -bench RoundTripTelemetryOnOff -benchmem -count 3
func BenchmarkRoundTripTelemetryOnOff(b *testing.B) {
	nsPerOp, cpuPerOp := map[string]float64{}, map[string]float64{}
	for _, c := range []struct {
		name string
		on   bool
		sink string // "double" or "discard"
		log  bool
	}{
		{name: "off"},
		{name: "on", on: true, sink: "double"},
		{name: "on-discard", on: true, sink: "discard"},
		{name: "on-discard-log", on: true, sink: "discard", log: true},
	} {
		b.Run(c.name, func(b *testing.B) {
			eng, err := iiitest.Start("127.0.0.1:0", iiitest.WithTelemetryLimit(1000))
			if err != nil {
				b.Fatal(err)
			}
			defer eng.Close()
			tel := &iii.TelemetryOptions{Enabled: new(c.on)}
			if c.sink == "discard" {
				sink := newFrameSink(b)
				sink.discard = true
				tel.Endpoint = sink.url()
			}
			opts := iii.InitOptions{Telemetry: tel}
			handler := iii.RegisterWorker(eng.URL, opts)
			defer handler.Shutdown()
			caller := iii.RegisterWorker(eng.URL, opts)
			defer caller.Shutdown()
			log := handler.Logger()
			iii.RegisterFunction(handler, "bench::echo", func(ctx context.Context, in json.RawMessage) (json.RawMessage, error) {
				if c.log {
					log.Info(ctx, "echo", "bytes", len(in))
				}
				return in, nil
			})
			if err := eng.WaitFunction(context.Background(), "bench::echo"); err != nil {
				b.Fatal(err)
			}
			elapsed, cpuUsed := driveRoundTrips(b, caller, "bench::echo")
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "calls/s")
			b.ReportMetric(float64(cpuUsed.Nanoseconds())/float64(b.N), "cpu-ns/op")
			nsPerOp[c.name] = float64(elapsed.Nanoseconds()) / float64(b.N)
			cpuPerOp[c.name] = float64(cpuUsed.Nanoseconds()) / float64(b.N)
			if c.on {
				s := handler.TelemetryStats()
				b.ReportMetric(float64(s.SpansDropped+s.LogsDropped), "dropped")
			}
		})
	}
	if off := nsPerOp["off"]; off > 0 {
		for _, name := range []string{"on", "on-discard", "on-discard-log"} {
			if on := nsPerOp[name]; on > 0 {
				b.Logf("telemetry %s / off: %.2f× the time per call (%.0f vs %.0f ns, %.1f%% fewer calls/s), %.2f× the CPU per call (%.0f vs %.0f ns)",
					name, on/off, on, off, 100*(1-off/on), cpuPerOp[name]/cpuPerOp["off"], cpuPerOp[name], cpuPerOp["off"])
			}
		}
	}
}
