package main

import (
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// The latency histogram is log-linear, as HdrHistogram's: values below
// 2^subBits are counted exactly, and every power-of-two range above is cut
// into 2^subBits linear buckets, so a recorded value is known to within
// 1/2^subBits (0.8 %) of itself. It covers 0 to 2^44 ns (4.9 hours);
// larger values count as 2^44-1.
const (
	subBits    = 7
	subCount   = 1 << subBits
	maxBits    = 44
	histShifts = maxBits - subBits
	histLen    = subCount + histShifts*subCount
)

// bucketOf returns the bucket index of v.
func bucketOf(v int64) int {
	if v < subCount {
		return int(max(v, 0))
	}
	v = min(v, 1<<maxBits-1)
	shift := bits.Len64(uint64(v)) - 1 - subBits
	return subCount + shift*subCount + int(v>>shift) - subCount
}

// bucketRange returns the smallest and largest value of bucket i.
func bucketRange(i int) (lo, hi int64) {
	if i < subCount {
		return int64(i), int64(i)
	}
	shift := (i - subCount) / subCount
	sub := int64((i-subCount)%subCount + subCount)
	return sub << shift, (sub+1)<<shift - 1
}

// Hist is a latency histogram in nanoseconds. The zero value is empty and
// ready to use. It is not safe for concurrent use: each goroutine records
// into its own and the results are merged.
type Hist struct {
	counts   []uint64 // histLen, allocated on first use
	n        uint64
	sum      float64
	min, max int64
}

// Record adds one value.
func (h *Hist) Record(d time.Duration) { h.RecordN(int64(d), 1) }

// RecordN adds value v n times.
func (h *Hist) RecordN(v int64, n uint64) {
	if n == 0 {
		return
	}
	if h.counts == nil {
		h.counts = make([]uint64, histLen)
	}
	v = min(max(v, 0), 1<<maxBits-1)
	h.counts[bucketOf(v)] += n
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n += n
	h.sum += float64(v) * float64(n)
}

// Merge adds o's values to h.
func (h *Hist) Merge(o *Hist) {
	if o == nil || o.n == 0 {
		return
	}
	if h.counts == nil {
		h.counts = make([]uint64, histLen)
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// Count returns the number of values recorded.
func (h *Hist) Count() uint64 { return h.n }

// Max returns the largest value recorded.
func (h *Hist) Max() time.Duration { return time.Duration(h.max) }

// Mean returns the mean of the values recorded.
func (h *Hist) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Quantile returns the value below or at which a fraction q of the
// recorded values lie: the largest value of the bucket holding the value
// of rank ⌈q·n⌉ (like HdrHistogram's highest equivalent value), clamped to
// the exact minimum and maximum. It returns 0 for an empty histogram.
func (h *Hist) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			_, hi := bucketRange(i)
			return time.Duration(min(max(hi, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}

// histJSON is a Hist on the wire (the handler's control function sends
// its one-way latencies this way): the non-empty buckets as index/count
// pairs.
type histJSON struct {
	Buckets [][2]uint64 `json:"b,omitempty"`
	Min     int64       `json:"min"`
	Max     int64       `json:"max"`
	Sum     float64     `json:"sum"`
}

func (h *Hist) toJSON() histJSON {
	j := histJSON{Min: h.min, Max: h.max, Sum: h.sum}
	for i, c := range h.counts {
		if c > 0 {
			j.Buckets = append(j.Buckets, [2]uint64{uint64(i), c})
		}
	}
	return j
}

func (j histJSON) hist() *Hist {
	h := &Hist{}
	for _, b := range j.Buckets {
		if b[0] < histLen && b[1] > 0 {
			if h.counts == nil {
				h.counts = make([]uint64, histLen)
			}
			h.counts[b[0]] += b[1]
			h.n += b[1]
		}
	}
	h.min, h.max, h.sum = j.Min, j.Max, j.Sum
	return h
}

// atomicHist is a histogram many goroutines record into at once (the
// handlers' one-way latencies). Snapshots are not atomic as a whole, which
// does not matter between runs.
type atomicHist struct {
	counts [histLen]atomic.Uint64
	sum    atomic.Int64
	min    atomic.Int64 // 0 means unset; values are stored +1
	max    atomic.Int64
}

func (a *atomicHist) Record(d time.Duration) {
	v := min(max(int64(d), 0), 1<<maxBits-1)
	a.counts[bucketOf(v)].Add(1)
	a.sum.Add(v)
	for {
		m := a.min.Load()
		if m != 0 && m-1 <= v || a.min.CompareAndSwap(m, v+1) {
			break
		}
	}
	for {
		m := a.max.Load()
		if v <= m || a.max.CompareAndSwap(m, v) {
			break
		}
	}
}

func (a *atomicHist) Reset() {
	for i := range a.counts {
		a.counts[i].Store(0)
	}
	a.sum.Store(0)
	a.min.Store(0)
	a.max.Store(0)
}

func (a *atomicHist) Snapshot() *Hist {
	h := &Hist{}
	for i := range a.counts {
		if c := a.counts[i].Load(); c > 0 {
			if h.counts == nil {
				h.counts = make([]uint64, histLen)
			}
			h.counts[i] = c
			h.n += c
		}
	}
	if m := a.min.Load(); m > 0 {
		h.min = m - 1
	}
	h.max = a.max.Load()
	h.sum = float64(a.sum.Load())
	return h
}

// shardedHist is a histogram many goroutines record into: goroutine i
// uses shard i%len, each behind its own (rarely contended) mutex.
type shardedHist struct {
	shards [8]struct {
		mu sync.Mutex
		h  Hist
		_  [64]byte
	}
}

func (s *shardedHist) Record(i int, d time.Duration) {
	sh := &s.shards[i%len(s.shards)]
	sh.mu.Lock()
	sh.h.Record(d)
	sh.mu.Unlock()
}

// Merged returns all shards merged into one histogram.
func (s *shardedHist) Merged() *Hist {
	out := &Hist{}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		out.Merge(&sh.h)
		sh.mu.Unlock()
	}
	return out
}
