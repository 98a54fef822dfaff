package main

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

// within reports whether got is within the histogram's resolution (1/128,
// plus one for rounding) of want.
func within(got, want time.Duration) bool {
	return math.Abs(float64(got-want)) <= float64(want)/subCount+1
}

func TestHistogramQuantilesOfAUniformDistribution(t *testing.T) {
	var h Hist
	for v := 1; v <= 100_000; v++ {
		h.Record(time.Duration(v) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.9, 90 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {0.999, 99900 * time.Microsecond}, {1, 100 * time.Millisecond}} {
		if got := h.Quantile(c.q); !within(got, c.want) {
			t.Errorf("Quantile(%v) = %v, want %v ± 0.8 %%", c.q, got, c.want)
		}
	}
	if h.Count() != 100_000 || h.Max() != 100*time.Millisecond {
		t.Errorf("Count, Max = %d, %v", h.Count(), h.Max())
	}
	if got, want := h.Mean(), 50000500*time.Nanosecond; got != want {
		t.Errorf("Mean = %v, want %v", got, want)
	}
}

func TestHistogramQuantilesMatchSortedSamples(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h Hist
	vals := make([]int64, 50_000)
	for i := range vals {
		vals[i] = int64(math.Exp(r.NormFloat64()*1.5 + 12)) // log-normal around 160 µs
		h.RecordN(vals[i], 1)
	}
	sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
	for _, q := range []float64{0.1, 0.5, 0.9, 0.99, 0.999} {
		want := time.Duration(vals[int(math.Ceil(q*float64(len(vals))))-1])
		if got := h.Quantile(q); got < want || !within(got, want) {
			t.Errorf("Quantile(%v) = %v, want %v (at most 0.8 %% above)", q, got, want)
		}
	}
}

func TestHistogramSmallValuesAreExact(t *testing.T) {
	var h Hist
	for _, v := range []int64{0, 1, 5, 127, 127} {
		h.RecordN(v, 1)
	}
	if got := h.Quantile(0.5); got != 5 {
		t.Errorf("median = %d, want 5", got)
	}
	if got := h.Quantile(0); got != 0 {
		t.Errorf("Quantile(0) = %d, want the minimum 0", got)
	}
	if got := h.Quantile(0.99); got != 127 {
		t.Errorf("Quantile(0.99) = %d, want 127", got)
	}
}

func TestHistogramEmptyAndHuge(t *testing.T) {
	var h Hist
	if h.Quantile(0.99) != 0 || h.Mean() != 0 || h.Count() != 0 {
		t.Error("an empty histogram reports something")
	}
	h.Record(time.Duration(math.MaxInt64))
	if got := h.Quantile(0.5); got != 1<<maxBits-1 {
		t.Errorf("a value beyond the range reads %d, want the top %d", got, int64(1<<maxBits-1))
	}
	h.Record(-time.Second)
	if got := h.Quantile(0); got != 0 {
		t.Errorf("a negative value reads %v, want 0", got)
	}
}

func TestHistogramBucketsTileTheRange(t *testing.T) {
	next := int64(0)
	for i := 0; i < histLen; i++ {
		lo, hi := bucketRange(i)
		if lo != next || hi < lo {
			t.Fatalf("bucket %d = [%d, %d], want it to start at %d", i, lo, hi, next)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d = [%d, %d] but bucketOf gives %d and %d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		if i >= subCount && float64(hi-lo+1)/float64(lo) > 1.0/subCount+1e-12 {
			t.Fatalf("bucket %d = [%d, %d] is wider than 1/%d of its values", i, lo, hi, subCount)
		}
		next = hi + 1
	}
	if next != 1<<maxBits {
		t.Fatalf("the buckets end at %d, want %d", next, int64(1<<maxBits))
	}
}

func TestHistogramMergeAndWireForm(t *testing.T) {
	var a, b Hist
	for v := 1; v <= 1000; v++ {
		a.Record(time.Duration(v) * time.Microsecond)
		b.Record(time.Duration(v+1000) * time.Microsecond)
	}
	a.Merge(&b)
	if got := a.Quantile(0.5); !within(got, time.Millisecond) {
		t.Errorf("merged median = %v, want 1ms", got)
	}
	back := a.toJSON().hist()
	for _, q := range []float64{0.5, 0.99, 1} {
		if back.Quantile(q) != a.Quantile(q) {
			t.Errorf("after the wire form, Quantile(%v) = %v, want %v", q, back.Quantile(q), a.Quantile(q))
		}
	}
	if back.Count() != a.Count() || back.Mean() != a.Mean() {
		t.Errorf("after the wire form: count %d mean %v, want %d %v", back.Count(), back.Mean(), a.Count(), a.Mean())
	}
}

func TestAtomicAndShardedHistogramsAgreeWithHist(t *testing.T) {
	var plain Hist
	var at atomicHist
	var sh shardedHist
	for v := 1; v <= 10_000; v++ {
		d := time.Duration(v*v) * time.Nanosecond
		plain.Record(d)
		at.Record(d)
		sh.Record(v, d)
	}
	for _, h := range []*Hist{at.Snapshot(), sh.Merged()} {
		for _, q := range []float64{0, 0.5, 0.9, 0.999, 1} {
			if h.Quantile(q) != plain.Quantile(q) {
				t.Errorf("Quantile(%v) = %v, want %v", q, h.Quantile(q), plain.Quantile(q))
			}
		}
		if h.Count() != plain.Count() || h.Max() != plain.Max() {
			t.Errorf("count %d max %v, want %d %v", h.Count(), h.Max(), plain.Count(), plain.Max())
		}
	}
	at.Reset()
	if at.Snapshot().Count() != 0 {
		t.Error("Reset left values")
	}
}

func TestPayloadsHaveTheirSizeAndParse(t *testing.T) {
	for _, n := range []int{20, 60, 100, 187, 10 << 10, 1 << 20} {
		p := makePayload(n)
		if len(p) != n {
			t.Errorf("makePayload(%d) has %d bytes", n, len(p))
		}
		if !jsonValid(p) {
			t.Errorf("makePayload(%d) is not valid JSON: %.80s", n, p)
		}
	}
	p := stampedPayload(100)
	stamp(p, 1732636800123456789)
	if !jsonValid(p) || stampOf(p) != 1732636800123456789 {
		t.Errorf("stamped payload %s reads %d", p, stampOf(p))
	}
	if got := stampOf([]byte(`{"_caller_worker_id":"w",` + string(p[1:]))); got != 1732636800123456789 {
		t.Errorf("stamp after the engine's injection reads %d", got)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int{"100": 100, "10KiB": 10240, "1MiB": 1 << 20, "2kb": 2000, "3M": 3 << 20, "64B": 64} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
		if n, _ := parseSize(in); parseSize2(sizeString(n)) != n {
			t.Errorf("sizeString(%d) = %q does not read back", n, sizeString(n))
		}
	}
	for _, bad := range []string{"", "x", "-1", "0", "10XB"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
}

func parseSize2(s string) int { n, _ := parseSize(s); return n }

func TestRoundsMergeIntoOneResultPerShape(t *testing.T) {
	mk := func(impl string, ops uint64, secs, cpu float64, lat time.Duration) result {
		var h Hist
		for range ops {
			h.Record(lat)
		}
		r := result{Scenario: scRPC, Label: "c=64", Impl: impl, Ops: ops, Seconds: secs, OpsPerSec: float64(ops) / secs, CPUUsPerOp: cpu, AllocsPerOp: 2, PeakRSSBytes: ops}
		r.setLatency(&h)
		return r
	}
	in := []result{mk("raw", 100, 1, 10, time.Millisecond), mk("sdk", 50, 1, 20, 2*time.Millisecond),
		mk("raw", 300, 1, 20, 3*time.Millisecond), {Scenario: scRPC, Label: "c=64", Impl: "sdk", Error: "boom"}}
	out := mergeRounds(in)
	if len(out) != 2 || out[0].Impl != "raw" || out[1].Impl != "sdk" {
		t.Fatalf("merged into %+v", out)
	}
	raw := out[0]
	if raw.Ops != 400 || raw.Seconds != 2 || raw.OpsPerSec != 200 || raw.Rounds != 2 || raw.PeakRSSBytes != 300 {
		t.Errorf("raw: ops %d secs %v ops/s %v rounds %d rss %d", raw.Ops, raw.Seconds, raw.OpsPerSec, raw.Rounds, raw.PeakRSSBytes)
	}
	if raw.CPUUsPerOp != 17.5 { // (100·10 + 300·20) / 400
		t.Errorf("raw CPU µs/op = %v, want the ops-weighted 17.5", raw.CPUUsPerOp)
	}
	if got := time.Duration(raw.Latency.P50); !within(got, 3*time.Millisecond) {
		t.Errorf("raw p50 = %v, want 3ms from the merged latencies", got)
	}
	sdk := out[1]
	if sdk.Error != "" || sdk.Ops != 50 || sdk.Rounds != 2 || len(sdk.Notes) != 1 {
		t.Errorf("a failed round should leave the good one and a note: %+v", sdk)
	}
}
