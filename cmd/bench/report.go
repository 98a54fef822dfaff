package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// result is one run: one scenario shape for one implementation.
type result struct {
	Scenario     string `json:"scenario"`
	Impl         string `json:"impl"` // "sdk" or "raw"
	Label        string `json:"label"`
	Callers      int    `json:"callers,omitempty"`
	Concurrency  int    `json:"concurrency,omitempty"` // calls in flight in total (void: the window)
	PayloadBytes int    `json:"payload_bytes,omitempty"`

	Ops       uint64  `json:"ops"`
	Errors    uint64  `json:"errors,omitempty"`
	Seconds   float64 `json:"seconds"`
	OpsPerSec float64 `json:"ops_per_sec"`
	// MBPerSec is payload bytes (one way) per second, for large payloads
	// and channels.
	MBPerSec        float64    `json:"mb_per_sec,omitempty"`
	DeliveredPerSec float64    `json:"delivered_per_sec,omitempty"` // enqueue: jobs the queue delivered to the handler
	Latency         *latencyNs `json:"latency_ns,omitempty"`

	// This process: both workers in the default role, the caller alone
	// with -role caller or in the sides scenario.
	CPUUsPerOp   float64 `json:"cpu_us_per_op"`
	AllocsPerOp  float64 `json:"allocs_per_op"`
	PeakRSSBytes uint64  `json:"peak_rss_bytes,omitempty"`
	// The engine double, when it runs in a child process.
	EngineCPUUsPerOp *float64 `json:"engine_cpu_us_per_op,omitempty"`
	// The handler, when it runs in another process.
	HandlerCPUUsPerOp  *float64 `json:"handler_cpu_us_per_op,omitempty"`
	HandlerAllocsPerOp *float64 `json:"handler_allocs_per_op,omitempty"`

	Inflight *inflightFigures `json:"inflight,omitempty"`
	Chaos    *chaosFigures    `json:"chaos,omitempty"`
	VsRaw    *ratios          `json:"vs_raw,omitempty"`
	Notes    []string         `json:"notes,omitempty"`
	Error    string           `json:"error,omitempty"`
	// Rounds is how many runs of this shape were merged into it (-count).
	Rounds int `json:"rounds,omitempty"`

	hist *Hist // the latencies, for merging rounds
}

type latencyNs struct {
	P50  int64 `json:"p50"`
	P90  int64 `json:"p90"`
	P99  int64 `json:"p99"`
	P999 int64 `json:"p99_9"`
	Max  int64 `json:"max"`
	Mean int64 `json:"mean"`
}

type inflightFigures struct {
	N                 int     `json:"n"`
	HeapBytesPerCall  float64 `json:"heap_bytes_per_call"` // this process (both sides in the default role)
	StackBytesPerCall float64 `json:"stack_bytes_per_call"`
	GoroutinesPerCall float64 `json:"goroutines_per_call"`
	// HandlerHeapBytesPerCall is the handler's, when it runs in another process.
	HandlerHeapBytesPerCall *float64 `json:"handler_heap_bytes_per_call,omitempty"`
	ParkSeconds             float64  `json:"park_seconds"`
	ReleaseSeconds          float64  `json:"release_seconds"`
}

// ratios compare an SDK run with the raw run of the same shape.
type ratios struct {
	Throughput float64 `json:"throughput"`
	P99        float64 `json:"p99"`
	CPU        float64 `json:"cpu"`
	Heap       float64 `json:"heap,omitempty"` // inflight
}

func (r *result) setLatency(h *Hist) {
	r.hist = h
	if h == nil || h.Count() == 0 {
		return
	}
	r.Latency = &latencyNs{P50: int64(h.Quantile(0.50)), P90: int64(h.Quantile(0.90)), P99: int64(h.Quantile(0.99)),
		P999: int64(h.Quantile(0.999)), Max: int64(h.Max()), Mean: int64(h.Mean())}
}

// fill computes the figures of a measured window.
func (r *result) fill(ops, errs uint64, h *Hist, before, after sample) {
	r.Ops, r.Errors = ops, errs
	if r.Seconds > 0 {
		r.OpsPerSec = float64(ops) / r.Seconds
	}
	if r.PayloadBytes >= 1024 {
		r.MBPerSec = r.OpsPerSec * float64(r.PayloadBytes) / 1e6
	}
	r.setLatency(h)
	if ops == 0 {
		return
	}
	n := float64(ops)
	r.CPUUsPerOp = float64(after.self.CPU-before.self.CPU) / 1e3 / n
	r.AllocsPerOp = float64(after.self.Mallocs-before.self.Mallocs) / n
	if before.double != nil && after.double != nil {
		v := float64(after.double.CPU-before.double.CPU) / 1e3 / n
		r.EngineCPUUsPerOp = &v
	}
	if after.handler.PID != 0 && after.handler.PID != os.Getpid() {
		cpu := float64(after.handler.CPU-before.handler.CPU) / 1e3 / n
		allocs := float64(after.handler.Mallocs-before.handler.Mallocs) / n
		r.HandlerCPUUsPerOp, r.HandlerAllocsPerOp = &cpu, &allocs
	}
}

// summary is the one-line result for the progress output.
func (r *result) summary() string {
	if r.Error != "" {
		return "error: " + r.Error
	}
	if c := r.Chaos; c != nil {
		return fmt.Sprintf("%d faults, %d calls: %d ok, %d failed, %d hung, %d executed twice",
			c.Faults, c.Calls, c.OK, c.Calls-c.OK-c.Hung, c.Hung, c.Duplicated)
	}
	if r.Inflight != nil {
		return fmt.Sprintf("%s B heap per call in flight, %s B stack, parked in %.2fs",
			fmtNum(r.Inflight.HeapBytesPerCall), fmtNum(r.Inflight.StackBytesPerCall), r.Inflight.ParkSeconds)
	}
	s := fmtRate(r.OpsPerSec) + " ops/s"
	if r.MBPerSec > 0 {
		s += fmt.Sprintf(" (%.1f MB/s)", r.MBPerSec)
	}
	if r.Latency != nil {
		s += ", p99 " + fmtDur(r.Latency.P99)
	}
	s += fmt.Sprintf(", %.1f µs CPU and %.1f allocs per op", r.CPUUsPerOp, r.AllocsPerOp)
	return s
}

// mergeRounds merges the results of the same shape and implementation
// (the rounds of -count, run alternately so that a change in the machine's
// load weighs on both implementations alike) into one: operations and time
// add up, latencies merge, per-op figures are weighted by operations, and
// peak RSS is the highest. Results keep the order of their first round.
func mergeRounds(results []result) []result {
	var out []result
	idx := map[string]int{}
	for _, r := range results {
		k := r.Scenario + "\x00" + r.Label + "\x00" + r.Impl
		i, ok := idx[k]
		if !ok {
			idx[k] = len(out)
			r.Rounds = 1
			out = append(out, r)
			continue
		}
		m := &out[i]
		m.Rounds++
		if r.Error != "" {
			m.Notes = append(m.Notes, fmt.Sprintf("round %d: %s", m.Rounds, r.Error))
			continue
		}
		if m.Error != "" { // the first round failed: start over from this one
			rounds, notes := m.Rounds, append(m.Notes, "round 1: "+m.Error)
			*m = r
			m.Rounds, m.Notes = rounds, notes
			continue
		}
		m.merge(&r)
	}
	return out
}

func (m *result) merge(r *result) {
	ops := float64(m.Ops + r.Ops)
	if ops == 0 {
		return
	}
	wavg := func(a, b float64) float64 { return (a*float64(m.Ops) + b*float64(r.Ops)) / ops }
	wopt := func(a, b *float64) *float64 {
		if a == nil || b == nil {
			return nil
		}
		v := wavg(*a, *b)
		return &v
	}
	m.CPUUsPerOp = wavg(m.CPUUsPerOp, r.CPUUsPerOp)
	m.AllocsPerOp = wavg(m.AllocsPerOp, r.AllocsPerOp)
	m.EngineCPUUsPerOp = wopt(m.EngineCPUUsPerOp, r.EngineCPUUsPerOp)
	m.HandlerCPUUsPerOp = wopt(m.HandlerCPUUsPerOp, r.HandlerCPUUsPerOp)
	m.HandlerAllocsPerOp = wopt(m.HandlerAllocsPerOp, r.HandlerAllocsPerOp)
	m.DeliveredPerSec = (m.DeliveredPerSec*m.Seconds + r.DeliveredPerSec*r.Seconds) / (m.Seconds + r.Seconds)
	m.Ops += r.Ops
	m.Errors += r.Errors
	m.Seconds += r.Seconds
	m.OpsPerSec = float64(m.Ops) / m.Seconds
	if m.MBPerSec > 0 {
		m.MBPerSec = m.OpsPerSec * float64(m.PayloadBytes) / 1e6
	}
	m.PeakRSSBytes = max(m.PeakRSSBytes, r.PeakRSSBytes)
	h := &Hist{}
	h.Merge(m.hist)
	h.Merge(r.hist)
	m.setLatency(h)
	for _, n := range r.Notes {
		if !slices.Contains(m.Notes, n) {
			m.Notes = append(m.Notes, n)
		}
	}
}

// compare fills VsRaw of every SDK result that has a raw twin.
func compare(results []result) {
	for i := range results {
		s := &results[i]
		if s.Impl == "raw" || s.Error != "" {
			continue
		}
		for _, r := range results {
			if r.Impl != "raw" || r.Scenario != s.Scenario || r.Label != s.Label || r.Error != "" {
				continue
			}
			v := &ratios{}
			if r.OpsPerSec > 0 {
				v.Throughput = s.OpsPerSec / r.OpsPerSec
			}
			if s.Latency != nil && r.Latency != nil && r.Latency.P99 > 0 {
				v.P99 = float64(s.Latency.P99) / float64(r.Latency.P99)
			}
			if r.CPUUsPerOp > 0 {
				v.CPU = s.CPUUsPerOp / r.CPUUsPerOp
			}
			if s.Inflight != nil && r.Inflight != nil && r.Inflight.HeapBytesPerCall > 0 {
				v.Heap = s.Inflight.HeapBytesPerCall / r.Inflight.HeapBytesPerCall
			}
			s.VsRaw = v
		}
	}
}

// target is one of the performance targets, measured.
type target struct {
	Name   string  `json:"name"`
	Limit  string  `json:"limit"` // empty for a measurement that is not a target
	Value  float64 `json:"value"`
	Unit   string  `json:"unit,omitempty"`
	Met    bool    `json:"met"`
	Source string  `json:"source"` // which run(s) the value comes from
}

func find(results []result, scenario, impl, label string) *result {
	for i := range results {
		r := &results[i]
		if r.Scenario == scenario && r.Impl == impl && (label == "" || r.Label == label) && r.Error == "" {
			return r
		}
	}
	return nil
}

// targets evaluates the targets the results allow.
func targets(results []result) []target {
	var out []target
	ref := fmt.Sprintf("c=%d", refConcurrency)
	sdk, raw := find(results, scRPC, "sdk", ref), find(results, scRPC, "raw", ref)
	if sdk != nil && raw != nil && sdk.VsRaw != nil {
		out = append(out,
			target{Name: "rpc c=64 throughput, SDK / raw", Limit: "≥ 0.80", Value: sdk.VsRaw.Throughput, Unit: "×",
				Met: sdk.VsRaw.Throughput >= 0.8, Source: fmt.Sprintf("rpc c=64: %s vs %s ops/s", fmtRate(sdk.OpsPerSec), fmtRate(raw.OpsPerSec))},
			target{Name: "rpc c=64 p99 latency, SDK / raw", Limit: "≤ 2.0", Value: sdk.VsRaw.P99, Unit: "×",
				Met: sdk.VsRaw.P99 > 0 && sdk.VsRaw.P99 <= 2, Source: fmt.Sprintf("rpc c=64: %s vs %s", fmtDur(sdk.Latency.P99), fmtDur(raw.Latency.P99))})
	}
	side, src := find(results, scSides, "sdk", ""), "sides: handler in a child process, each side's own MemStats.Mallocs / round trips"
	if side == nil || side.HandlerAllocsPerOp == nil {
		side, src = sdk, "rpc c=64 with the handler in another process: each side's own MemStats.Mallocs / round trips"
	}
	if side != nil && side.HandlerAllocsPerOp != nil {
		out = append(out,
			target{Name: "allocations per round trip, SDK caller", Limit: "≤ 10", Value: side.AllocsPerOp,
				Met: side.AllocsPerOp <= 10, Source: src},
			target{Name: "allocations per round trip, SDK handler", Limit: "≤ 10", Value: *side.HandlerAllocsPerOp,
				Met: *side.HandlerAllocsPerOp <= 10, Source: src})
	} else if sdk != nil {
		v := sdk.AllocsPerOp / 2
		src := "estimate: rpc c=64, both workers in one process, allocs/op ÷ 2 (run the sides scenario for each side's own figure)"
		out = append(out, target{Name: "allocations per round trip per side, SDK (estimate)", Limit: "≤ 10", Value: v, Met: v <= 10, Source: src})
	}
	if on := find(results, scRPC, implOtel, ref); on != nil && sdk != nil && sdk.OpsPerSec > 0 && sdk.CPUUsPerOp > 0 {
		out = append(out,
			target{Name: "rpc c=64 throughput with telemetry on, SDK on / off", Value: on.OpsPerSec / sdk.OpsPerSec, Unit: "×",
				Source: fmt.Sprintf("rpc c=64: %s vs %s ops/s (spans, metrics and logs exported to the engine's /otel)", fmtRate(on.OpsPerSec), fmtRate(sdk.OpsPerSec))},
			target{Name: "rpc c=64 CPU per round trip with telemetry on, SDK on / off", Value: on.CPUUsPerOp / sdk.CPUUsPerOp, Unit: "×",
				Source: fmt.Sprintf("rpc c=64: %.1f vs %.1f µs of the workers' CPU", on.CPUUsPerOp, sdk.CPUUsPerOp)})
	}
	if in := find(results, scInflight, "sdk", ""); in != nil && in.Inflight != nil {
		v := in.Inflight.HeapBytesPerCall
		src := fmt.Sprintf("inflight n=%d: (HeapAlloc after GC with all parked − before) / n, caller and handler", in.Inflight.N)
		if h := in.Inflight.HandlerHeapBytesPerCall; h != nil {
			v += *h
			src += " (handler measured in its own process)"
		}
		if r := find(results, scInflight, "raw", ""); r != nil && r.Inflight != nil {
			src += fmt.Sprintf("; raw: %s B", fmtNum(r.Inflight.HeapBytesPerCall))
		}
		out = append(out, target{Name: "heap per invocation in flight, SDK caller + handler", Limit: "≤ 2048 B", Value: v, Unit: "B",
			Met: v <= 2048, Source: src})
	}
	return out
}

// report is the whole output, as -json writes it.
type report struct {
	Tool     string    `json:"tool"`
	Command  string    `json:"command"`
	Started  time.Time `json:"started"`
	Machine  machine   `json:"machine"`
	Engine   string    `json:"engine"`
	Role     string    `json:"role"`
	Duration float64   `json:"duration_seconds"`
	Warmup   float64   `json:"warmup_seconds"`
	Count    int       `json:"count"`
	Results  []result  `json:"results"`
	Targets  []target  `json:"targets"`
}

func (rep *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// writeText writes the tables.
func (rep *report) writeText(w io.Writer) {
	fmt.Fprintf(w, "%s: %s\n", rep.Tool, rep.Command)
	fmt.Fprintf(w, "%s\n", rep.Machine)
	fmt.Fprintf(w, "%s; role %s; %gs measured per run after %gs of warm-up", rep.Engine, rep.Role, rep.Duration, rep.Warmup)
	if rep.Count > 1 {
		fmt.Fprintf(w, "; %d rounds per shape, raw and SDK alternately, merged", rep.Count)
	}
	fmt.Fprint(w, "\n\n")

	var load, infl, chaos []result
	for _, r := range rep.Results {
		switch r.Scenario {
		case scInflight:
			infl = append(infl, r)
		case scChaos:
			chaos = append(chaos, r)
		default:
			load = append(load, r)
		}
	}
	if len(load) > 0 {
		remote, ratios := false, false
		for _, r := range load {
			remote = remote || r.HandlerCPUUsPerOp != nil
			ratios = ratios || r.VsRaw != nil
		}
		head := []string{"scenario", "impl", "ops/s", "MB/s", "p50", "p90", "p99", "p99.9", "CPU µs/op", "allocs/op", "peak RSS", "engine µs/op"}
		if remote {
			head = append(head, "hdl CPU µs/op", "hdl allocs/op")
		}
		if ratios {
			head = append(head, "thr ×raw", "p99 ×raw", "CPU ×raw")
		}
		t := &table{head: head}
		for _, r := range load {
			row := []string{r.Scenario + " " + r.Label, r.Impl}
			if r.Error != "" {
				if strings.HasPrefix(r.Error, errSkipped.Error()+":") {
					row = append(row, r.Error)
				} else {
					row = append(row, "error: "+r.Error)
				}
				t.rows = append(t.rows, row)
				continue
			}
			row = append(row, fmtRate(r.OpsPerSec), fmtMB(r.MBPerSec))
			if l := r.Latency; l != nil {
				row = append(row, fmtDur(l.P50), fmtDur(l.P90), fmtDur(l.P99), fmtDur(l.P999))
			} else {
				row = append(row, "", "", "", "")
			}
			allocs, rss := fmt.Sprintf("%.1f", r.AllocsPerOp), fmtBytes(r.PeakRSSBytes)
			if slices.Contains(knownPeers, r.Impl) {
				allocs, rss = "", "" // not a Go process of this benchmark
			}
			row = append(row, fmt.Sprintf("%.1f", r.CPUUsPerOp), allocs, rss, fmtOpt(r.EngineCPUUsPerOp))
			if remote {
				row = append(row, fmtOpt(r.HandlerCPUUsPerOp), fmtOpt(r.HandlerAllocsPerOp))
			}
			if v := r.VsRaw; v != nil {
				row = append(row, fmtRatio(v.Throughput), fmtRatio(v.P99), fmtRatio(v.CPU))
			}
			t.rows = append(t.rows, row)
		}
		t.write(w)
		fmt.Fprintln(w)
	}
	if len(infl) > 0 {
		head := []string{"inflight", "impl", "heap B/call", "stack B/call", "goroutines/call", "handler heap B/call", "park all", "release all", "peak RSS"}
		for _, r := range infl {
			if r.VsRaw != nil {
				head = append(head, "heap ×raw")
				break
			}
		}
		t := &table{head: head}
		for _, r := range infl {
			row := []string{r.Label, r.Impl}
			if r.Error != "" || r.Inflight == nil {
				row = append(row, "error: "+r.Error)
				t.rows = append(t.rows, row)
				continue
			}
			f := r.Inflight
			row = append(row, fmtNum(f.HeapBytesPerCall), fmtNum(f.StackBytesPerCall), fmt.Sprintf("%.2f", f.GoroutinesPerCall),
				fmtOpt(f.HandlerHeapBytesPerCall), fmt.Sprintf("%.0f ms", f.ParkSeconds*1e3), fmt.Sprintf("%.0f ms", f.ReleaseSeconds*1e3), fmtBytes(r.PeakRSSBytes))
			if r.VsRaw != nil {
				row = append(row, fmtRatio(r.VsRaw.Heap))
			}
			t.rows = append(t.rows, row)
		}
		t.write(w)
		fmt.Fprintln(w)
	}
	for _, r := range chaos {
		writeChaos(w, &r)
	}
	var notes []string
	for _, r := range rep.Results {
		for _, n := range r.Notes {
			if r.Scenario == scInflight || r.Scenario == scVoid && strings.HasPrefix(n, "latency:") {
				continue
			}
			notes = append(notes, fmt.Sprintf("%s %s %s: %s", r.Scenario, r.Label, r.Impl, n))
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w, "notes:")
		for _, n := range notes {
			fmt.Fprintln(w, "  "+n)
		}
		fmt.Fprintln(w)
	}
	if len(rep.Targets) > 0 {
		t := &table{head: []string{"target", "limit", "measured", "", "from"}}
		for _, tg := range rep.Targets {
			met := "met"
			switch {
			case tg.Limit == "":
				met = "" // a measurement, not a target
			case !tg.Met:
				met = "NOT MET"
			}
			v := fmt.Sprintf("%.1f", tg.Value)
			if tg.Unit == "B" {
				v = fmtNum(tg.Value) + " B"
			} else if tg.Unit == "×" {
				v = fmt.Sprintf("%.3f×", tg.Value) // 0.799 must not read 0.80
			}
			t.rows = append(t.rows, []string{tg.Name, tg.Limit, v, met, tg.Source})
		}
		t.write(w)
	}
}

// table writes aligned columns: text left, numbers right.
type table struct {
	head []string
	rows [][]string
}

func (t *table) write(w io.Writer) {
	width := make([]int, len(t.head))
	all := append([][]string{t.head}, t.rows...)
	for _, r := range all {
		for i, c := range r {
			if i < len(width) && !strings.HasPrefix(c, "error: ") {
				width[i] = max(width[i], len([]rune(c)))
			}
		}
	}
	for _, r := range all {
		var b strings.Builder
		for i, c := range r {
			if i > 0 {
				b.WriteString("  ")
			}
			pad := 0
			if i < len(width) {
				pad = width[i] - len([]rune(c))
			}
			if pad < 0 || strings.HasPrefix(c, "error: ") {
				pad = 0
			}
			if i >= 2 && isNumeric(c) {
				b.WriteString(strings.Repeat(" ", pad) + c)
			} else if i < len(r)-1 {
				b.WriteString(c + strings.Repeat(" ", pad))
			} else {
				b.WriteString(c)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

func isNumeric(s string) bool { return s != "" && (s[0] >= '0' && s[0] <= '9' || s[0] == '-') }

// fmtRate writes a rate with thousands separators.
func fmtRate(v float64) string {
	if v < 100 {
		return fmt.Sprintf("%.1f", v)
	}
	return fmtNum(v)
}

func fmtNum(v float64) string {
	neg := v < 0
	if neg {
		v = -v
	}
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func fmtDur(ns int64) string {
	d := time.Duration(ns)
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

func fmtBytes(b uint64) string {
	if b == 0 {
		return ""
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}

func fmtMB(v float64) string {
	if v == 0 {
		return ""
	}
	return fmt.Sprintf("%.1f", v)
}

func fmtOpt(v *float64) string {
	if v == nil {
		return ""
	}
	if *v >= 1000 {
		return fmtNum(*v)
	}
	return fmt.Sprintf("%.1f", *v)
}

func fmtRatio(v float64) string {
	if v == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f×", v)
}
