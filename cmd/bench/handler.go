package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The functions a handler worker serves, as "bench::<ns><impl>::<op>": the
// SDK handler serves bench::sdk::*, the raw one bench::raw::*, so that both
// can be connected to one engine at once (function ids are global and the
// last registration wins).
const (
	opEcho = "echo" // rpc, payload, fan-in: returns its payload
	opSink = "sink" // void: counts, records the one-way latency, no result
	opJob  = "job"  // enqueue: the queue's deliveries; counts
	opPark = "park" // inflight: blocks until released
	opCtl  = "ctl"  // control: counters, process figures, release, GC
)

var handlerOps = []string{opEcho, opSink, opJob, opPark, opCtl}

func functionID(ns, impl, op string) string { return "bench::" + ns + impl + "::" + op }

// handlerState is what the handler of one implementation counts. The SDK
// and the raw handler share it so that both do the same work per call.
type handlerState struct {
	echo, sink, job, park atomic.Uint64
	parked                atomic.Int64 // park calls waiting now
	oneway                atomicHist   // sink: from the caller's stamp to the handler

	mu      sync.Mutex
	release chan struct{} // closed to release the parked calls
	// tokens, when set, gets one token per sink call: the void scenario's
	// flow control when caller and handler share a process.
	tokens atomic.Pointer[chan struct{}]
}

func newHandlerState() *handlerState { return &handlerState{release: make(chan struct{})} }

// onSink accounts for one void call.
func (h *handlerState) onSink(payload []byte) {
	h.sink.Add(1)
	if t := stampOf(payload); t > 0 {
		h.oneway.Record(time.Duration(time.Now().UnixNano() - t))
	}
	if tp := h.tokens.Load(); tp != nil {
		select {
		case *tp <- struct{}{}:
		default:
		}
	}
}

// parkChan returns the channel a park call waits on.
func (h *handlerState) parkChan() chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.release
}

// releaseParked releases the park calls waiting now.
func (h *handlerState) releaseParked() {
	h.mu.Lock()
	close(h.release)
	h.release = make(chan struct{})
	h.mu.Unlock()
}

// ctlRequest is the payload of the control function.
type ctlRequest struct {
	// Op is "ping" (counters only), "snap" (counters, process figures and
	// the one-way latencies), "reset" (clear the one-way latencies),
	// "release" (release the parked calls) or "gc" (collect garbage, then
	// snap).
	Op string `json:"op"`
}

// ctlReply is the control function's answer: the handler's counters and
// the figures of the process it runs in, from which a caller in another
// process computes the handler side's CPU and allocations per call.
type ctlReply struct {
	PID    int       `json:"pid"`
	Echo   uint64    `json:"echo"`
	Sink   uint64    `json:"sink"`
	Job    uint64    `json:"job"`
	Park   uint64    `json:"park"`
	Parked int64     `json:"parked"`
	Oneway *histJSON `json:"oneway,omitempty"`
	procSample
}

// ctl runs a control operation; release is done by the caller (the raw
// handler answers its parked calls itself).
func (h *handlerState) ctl(op string) ctlReply {
	var r ctlReply
	switch op {
	case "reset":
		h.oneway.Reset()
	case "snap":
		j := h.oneway.Snapshot().toJSON()
		r.Oneway = &j
		r.procSample = sampleSelf()
	case "gc":
		r.procSample = settledHeap()
	}
	r.PID = os.Getpid()
	r.Echo, r.Sink, r.Job, r.Park = h.echo.Load(), h.sink.Load(), h.job.Load(), h.park.Load()
	r.Parked = h.parked.Load()
	return r
}

// stampPrefix starts the void payload: the caller's clock in Unix
// nanoseconds, written as a fixed-width string so that the payload can be
// stamped in place (a JSON number cannot have leading zeros).
const stampPrefix = `{"t":"`

// stampedPayload returns a payload of about size bytes whose stamp
// (digits [6:25]) is filled by stamp.
func stampedPayload(size int) []byte {
	p := []byte(stampPrefix + "0000000000000000000" + `",`)
	return append(p, makePayload(max(size-len(p)+1, 20))[1:]...)
}

// stamp writes now into a payload made by stampedPayload.
func stamp(p []byte, now int64) {
	for i := len(stampPrefix) + 18; i >= len(stampPrefix); i-- {
		p[i] = byte('0' + now%10)
		now /= 10
	}
}

// stampOf reads the stamp of a payload (the engine may have put
// "_caller_worker_id" in front of it), or 0.
func stampOf(p []byte) int64 {
	i := bytes.Index(p, []byte(`"t":"`))
	if i < 0 || len(p) < i+5+19 {
		return 0
	}
	v, err := strconv.ParseInt(string(p[i+5:i+5+19]), 10, 64)
	if err != nil {
		return 0
	}
	return v
}

// makePayload returns a JSON object of exactly size bytes (at least 20)
// shaped like application data: records with numbers, strings, arrays and
// nested objects, then a padding string.
func makePayload(size int) []byte {
	size = max(size, 20)
	const item = `{"id":12345,"name":"benchmark payload","tags":["a","b","c"],"nested":{"x":1.5,"y":true}}`
	var b []byte
	if size < 2*len(item) {
		b = []byte(`{"item":` + item)
	} else {
		b = []byte(`{"items":[`)
		for i := 0; len(b)+len(item)+40 < size; i++ {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, item...)
		}
		b = append(b, ']')
	}
	// ,"pad":"xxxx"} fills the rest; an object too short for it is cut.
	if room := size - len(b) - len(`,"pad":""}`); room >= 0 {
		b = append(b, `,"pad":"`...)
		b = append(b, bytes.Repeat([]byte("x"), room)...)
		return append(b, `"}`...)
	}
	b = []byte(`{"pad":"`)
	b = append(b, bytes.Repeat([]byte("x"), size-len(`{"pad":""}`))...)
	return append(b, `"}`...)
}

// parseSize reads "100", "10KiB", "1MiB", "2KB" (KB/MB are 1000-based).
func parseSize(s string) (int, error) {
	units := []struct {
		suffix string
		mul    int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"KB", 1000}, {"MB", 1000 * 1000}, {"K", 1 << 10}, {"M", 1 << 20}, {"B", 1}}
	mul := 1
	for _, u := range units {
		if rest, ok := cutSuffixFold(s, u.suffix); ok {
			s, mul = rest, u.mul
			break
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mul, nil
}

func cutSuffixFold(s, suffix string) (string, bool) {
	if len(s) >= len(suffix) && bytes.EqualFold([]byte(s[len(s)-len(suffix):]), []byte(suffix)) {
		return s[:len(s)-len(suffix)], true
	}
	return s, false
}

// sizeString formats a payload size the way parseSize reads it.
func sizeString(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
