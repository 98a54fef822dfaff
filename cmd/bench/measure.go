package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// procSample is what a process reports about itself at the start and end
// of a measurement window: its CPU time (user + system, from getrusage),
// the heap objects it allocated so far (runtime.MemStats.Mallocs) and its
// current heap.
type procSample struct {
	CPU        time.Duration `json:"cpu_ns"`
	Mallocs    uint64        `json:"mallocs"`
	HeapAlloc  uint64        `json:"heap_alloc"`
	StackInuse uint64        `json:"stack_inuse"`
	Goroutines int           `json:"goroutines"`
}

// sampleSelf samples this process. ReadMemStats stops the world for a few
// tens of microseconds: it is called only at the edges of a window.
func sampleSelf() procSample {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return procSample{CPU: selfCPU(), Mallocs: ms.Mallocs, HeapAlloc: ms.HeapAlloc,
		StackInuse: ms.StackInuse, Goroutines: runtime.NumGoroutine()}
}

// settledHeap collects garbage until the heap stops shrinking (sync.Pools
// need two cycles to empty) and samples the process.
func settledHeap() procSample {
	runtime.GC()
	runtime.GC()
	return sampleSelf()
}

// resetPeakRSS returns memory to the OS and resets the peak resident set
// size, so that the next peakRSS reflects the coming run only. It reports
// whether the reset worked (Linux: /proc/self/clear_refs); otherwise
// peakRSS is the peak of the whole process so far.
func resetPeakRSS() bool {
	debug.FreeOSMemory()
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// peakRSS returns the peak resident set size in bytes: VmHWM from
// /proc/self/status, or getrusage's ru_maxrss where there is no /proc.
func peakRSS() uint64 {
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		if v, ok := procStatusKB(b, "VmHWM:"); ok {
			return v * 1024
		}
	}
	return maxRSS()
}

func procStatusKB(status []byte, key string) (uint64, bool) {
	for _, line := range bytes.Split(status, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte(key)); ok {
			f := strings.Fields(string(rest))
			if len(f) > 0 {
				v, err := strconv.ParseUint(f[0], 10, 64)
				return v, err == nil
			}
		}
	}
	return 0, false
}

// machine describes where the benchmark ran.
type machine struct {
	GoVersion  string  `json:"go_version"`
	OS         string  `json:"os"`
	Arch       string  `json:"arch"`
	CPUs       int     `json:"cpus"`
	GOMAXPROCS int     `json:"gomaxprocs"`
	CPUModel   string  `json:"cpu_model,omitempty"`
	LoadStart  float64 `json:"load_avg_start,omitempty"`
	LoadEnd    float64 `json:"load_avg_end,omitempty"`
}

func describeMachine() machine {
	m := machine{GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
		CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), LoadStart: loadAvg()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// loadAvg returns the 1-minute load average (0 if unknown): on a shared
// machine it says how much of the CPU others were using.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func (m machine) String() string {
	s := fmt.Sprintf("%s %s/%s, %d CPUs, GOMAXPROCS=%d", m.GoVersion, m.OS, m.Arch, m.CPUs, m.GOMAXPROCS)
	if m.CPUModel != "" {
		s += ", " + m.CPUModel
	}
	if m.LoadStart > 0 || m.LoadEnd > 0 {
		s += fmt.Sprintf(", load average %.2f at start, %.2f at end", m.LoadStart, m.LoadEnd)
	}
	return s
}
