package iiitest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/internal/bufconn"
)

// The routing benchmarks drive the double with raw gorilla/websocket
// clients that do as little as possible: one handler connection answers
// every invokefunction with a canned invocationresult, and benchCallers
// caller connections keep benchWindow awaited calls each in flight.
//
//	go test -run '^$' -bench Route -benchtime 200000x ./test/iiitest/
//
// BenchmarkRoute runs the double in the benchmark process: ns/op is the
// round-trip throughput of the whole setup, allocs/op and cpu-ns/op include
// the clients. BenchmarkRouteEngineProcess runs the double in a child
// process and reports engine-cpu-ns/op, the CPU the double alone spends per
// invocation (invokefunction in, dispatch out, result in, result out).
const (
	benchCallers = 4
	benchWindow  = 64
	benchFn      = "bench::echo"
)

var benchPayload = `{"id":12345,"name":"benchmark payload","tags":["a","b","c"],"nested":{"x":1.5,"y":true}}`

func BenchmarkRoute(b *testing.B) {
	for _, batched := range []bool{false, true} {
		b.Run(batchName(batched), func(b *testing.B) {
			e, err := Start("127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			benchRoute(b, e.URL, batched, nil)
		})
	}
}

// batchName names the client mode: "unbatched" clients write every frame
// with its own syscall, "batched" ones coalesce their writes the way an SDK
// does under load (so the double also reads several frames per syscall).
func batchName(batched bool) string {
	if batched {
		return "batched"
	}
	return "unbatched"
}

func BenchmarkRouteEngineProcess(b *testing.B) {
	for _, batched := range []bool{false, true} {
		b.Run(batchName(batched), func(b *testing.B) { benchRouteEngineProcess(b, batched) })
	}
}

func benchRouteEngineProcess(b *testing.B, batched bool) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "IIITEST_BENCH_SERVE=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	url, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	pid := cmd.Process.Pid
	var cpu0 time.Duration
	benchRoute(b, strings.TrimSpace(url), batched, func(start bool) {
		if start {
			cpu0 = procCPU(b, pid)
			return
		}
		b.ReportMetric(float64(procCPU(b, pid)-cpu0)/float64(b.N), "engine-cpu-ns/op")
	})
}

// serveForBench runs the double for BenchmarkRouteEngineProcess until
// stdin closes; IIITEST_BENCH_CPUPROFILE=file profiles it.
func serveForBench() {
	e, err := Start("127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if path := os.Getenv("IIITEST_BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	fmt.Println(e.URL)
	io.Copy(io.Discard, os.Stdin)
	e.Close()
	if os.Getenv("IIITEST_BENCH_STATS") != "" {
		fmt.Fprintf(os.Stderr, "flushes=%d invokes=%d results=%d\n", statFlushes.Load(), e.FrameCount(wire.KindInvokeFunction), e.FrameCount(wire.KindInvocationResult))
	}
}

// procCPU returns the user+system CPU time of process pid.
func procCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Skip("no /proc:", err)
	}
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // CLK_TCK = 100
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchDial connects a raw client; a batched one buffers its writes until
// it flushes.
func benchDial(b *testing.B, url string, batched bool) (*websocket.Conn, *bufconn.Conn) {
	var bc *bufconn.Conn
	d := websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		if err != nil {
			return nil, err
		}
		bc = &bufconn.Conn{Conn: c, Flushes: &statFlushes}
		return bc, nil
	}}
	ws, _, err := d.Dial(url, nil)
	if err != nil {
		b.Fatal(err)
	}
	if batched {
		bc.Buffer()
	}
	return ws, bc
}

func benchRoute(b *testing.B, url string, batched bool, measure func(start bool)) {
	handler, hbc := benchDial(b, url, batched)
	defer handler.Close()
	handler.WriteMessage(websocket.TextMessage, wire.Encode(&wire.RegisterFunction{ID: benchFn}))
	hbc.Flush()
	var hwg sync.WaitGroup
	hwg.Add(1)
	go func() {
		defer hwg.Done()
		benchHandler(handler, hbc)
	}()

	callers := make([]*benchCaller, benchCallers)
	for i := range callers {
		ws, bc := benchDial(b, url, batched)
		defer ws.Close()
		callers[i] = newBenchCaller(ws, bc)
	}
	// Warm up, and make sure the function is registered.
	for _, c := range callers {
		for {
			if c.run(b, 1) {
				break
			}
		}
	}
	b.ReportAllocs()
	if measure != nil {
		measure(true)
	}
	cpu0 := selfCPU()
	b.ResetTimer()
	var wg sync.WaitGroup
	per := b.N / len(callers)
	for i, c := range callers {
		n := per
		if i == 0 {
			n += b.N % len(callers)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.run(b, n)
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(selfCPU()-cpu0)/float64(b.N), "cpu-ns/op")
	if measure != nil {
		measure(false)
	}
	for _, c := range callers {
		c.ws.Close()
	}
	handler.Close()
	hwg.Wait()
}

// benchHandler answers every invokefunction with a canned result; its
// writer flushes whenever it has nothing more to write.
func benchHandler(ws *websocket.Conn, bc *bufconn.Conn) {
	ids := make(chan [36]byte, 4096)
	done := make(chan struct{})
	defer func() {
		close(ids)
		<-done
	}()
	go func() {
		defer close(done)
		const tmpl = `{"type":"invocationresult","invocation_id":"00000000-0000-0000-0000-000000000000","function_id":"bench::echo","result":{"ok":true}}`
		out := []byte(tmpl)
		at := strings.Index(tmpl, `"invocation_id":"`) + len(`"invocation_id":"`)
		failed := false
		for id := range ids {
			if failed {
				continue
			}
			copy(out[at:at+36], id[:])
			failed = ws.WriteMessage(websocket.TextMessage, out) != nil
			if len(ids) == 0 {
				bc.Flush()
			}
		}
	}()
	key := []byte(`"invocation_id":"`)
	buf := make([]byte, 0, 4096)
	for {
		_, r, err := ws.NextReader()
		if err != nil {
			return
		}
		buf = buf[:0]
		for {
			if len(buf) == cap(buf) {
				buf = append(buf, 0)[:len(buf)]
			}
			n, err := r.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			if err != nil {
				break
			}
		}
		i := bytes.Index(buf, key)
		if i < 0 {
			continue
		}
		var id [36]byte
		copy(id[:], buf[i+len(key):])
		ids <- id
	}
}

type benchCaller struct {
	ws      *websocket.Conn
	bc      *bufconn.Conn
	frame   []byte
	idAt    int
	results chan bool
	seq     atomic.Uint64
}

func newBenchCaller(ws *websocket.Conn, bc *bufconn.Conn) *benchCaller {
	c := &benchCaller{ws: ws, bc: bc, results: make(chan bool, benchWindow)}
	c.frame = wire.Encode(&wire.InvokeFunction{InvocationID: wire.NewUUID(), HasInvocationID: true, FunctionID: benchFn, Data: []byte(benchPayload)})
	c.idAt = bytes.Index(c.frame, []byte(`"invocation_id":"`)) + len(`"invocation_id":"`)
	go func() {
		buf := make([]byte, 0, 4096)
		for {
			_, r, err := ws.NextReader()
			if err != nil {
				close(c.results)
				return
			}
			buf = buf[:0]
			for {
				if len(buf) == cap(buf) {
					buf = append(buf, 0)[:len(buf)]
				}
				n, err := r.Read(buf[len(buf):cap(buf)])
				buf = buf[:len(buf)+n]
				if err != nil {
					break
				}
			}
			if bytes.HasPrefix(buf, []byte(`{"type":"invocationresult"`)) {
				c.results <- !bytes.Contains(buf, []byte(`"error"`))
			}
		}
	}()
	return c
}

// run makes n calls with up to benchWindow in flight; it reports whether
// all of them succeeded.
func (c *benchCaller) run(b *testing.B, n int) bool {
	ok := true
	inFlight := 0
	sent := 0
	for sent < n || inFlight > 0 {
		if sent < n && inFlight < benchWindow {
			// a distinct id per call: patch the hex digits of a counter in
			u := c.seq.Add(1)
			id := c.frame[c.idAt+24 : c.idAt+36]
			for j := 11; j >= 0; j-- {
				id[j] = "0123456789abcdef"[u&0xf]
				u >>= 4
			}
			if err := c.ws.WriteMessage(websocket.TextMessage, c.frame); err != nil {
				b.Error(err)
				return false
			}
			sent++
			inFlight++
			continue
		}
		c.bc.Flush()
		r, open := <-c.results
		if !open {
			b.Error("caller connection closed")
			return false
		}
		ok = ok && r
		inFlight--
	}
	return ok
}
