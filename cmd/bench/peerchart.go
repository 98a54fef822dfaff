package main

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
)

// writePeerChart draws the -peer results as an SVG: for each shape, one bar
// per implementation, in three panels (throughput, p99 latency and the
// workers' CPU per call), each on a logarithmic axis since the SDKs differ
// by orders of magnitude.
func writePeerChart(path string, rep *report) error {
	var shapes, impls []string
	val := map[string]map[string]*result{}
	for i := range rep.Results {
		r := &rep.Results[i]
		if r.Scenario != scPeers || r.Error != "" || r.Ops == 0 {
			continue
		}
		if !slices.Contains(shapes, r.Label) {
			shapes = append(shapes, r.Label)
			val[r.Label] = map[string]*result{}
		}
		if !slices.Contains(impls, r.Impl) {
			impls = append(impls, r.Impl)
		}
		val[r.Label][r.Impl] = r
	}
	if len(shapes) == 0 {
		return fmt.Errorf("no peer results to chart")
	}
	colors := map[string]string{"raw": "#e07b16", "sdk": "#1f6fd1", "node": "#3c9a3c", "rust": "#b7410e", "python": "#7a4fbf"}
	names := map[string]string{"raw": "raw WebSocket (Go)", "sdk": "Go SDK (iii-go)", "node": "Node iii-sdk", "rust": "Rust iii-sdk", "python": "Python iii-sdk"}
	panels := []struct {
		title string
		get   func(*result) float64
		fmtV  func(float64) string
	}{
		{"throughput (calls/s; void: void calls/s)", func(r *result) float64 { return r.OpsPerSec }, shortNum},
		{"p99 latency (awaited calls)", func(r *result) float64 {
			if r.Latency == nil {
				return 0
			}
			return float64(r.Latency.P99)
		}, func(v float64) string { return fmtDur(int64(v)) }},
		{"CPU per call, caller + handler (µs)", func(r *result) float64 { return r.CPUUsPerOp }, func(v float64) string {
			if v >= 100 {
				return fmt.Sprintf("%.0f", v)
			}
			return fmt.Sprintf("%.1f", v)
		}},
	}
	const (
		W      = 960
		left   = 70
		panelW = W - left - 30
		panelH = 200
		gapH   = 80
		top0   = 90
	)
	H := top0 + len(panels)*(panelH+gapH) + 20
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif" font-size="12">`+"\n", W, H, W, H)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", W, H)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="16" font-weight="bold" text-anchor="middle">iii SDKs on the same engine double: handler and caller in each SDK</text>`+"\n", W/2)
	fmt.Fprintf(&b, `<text x="%d" y="42" font-size="11" fill="#555" text-anchor="middle">%s</text>`+"\n", W/2, xmlEscape(rep.Machine.String()))
	// Legend.
	lx := 80
	for _, impl := range impls {
		fmt.Fprintf(&b, `<rect x="%d" y="54" width="12" height="12" fill="%s"/><text x="%d" y="64">%s</text>`+"\n", lx, colors[impl], lx+16, xmlEscape(names[impl]))
		lx += 40 + 7*len(names[impl])
	}
	groupW := float64(panelW) / float64(len(shapes))
	barW := math.Min(28, (groupW-24)/float64(len(impls)))
	for pi, p := range panels {
		top := top0 + pi*(panelH+gapH) + 20
		lo, hi := math.Inf(1), 0.0
		for _, s := range shapes {
			for _, r := range val[s] {
				if v := p.get(r); v > 0 {
					lo, hi = math.Min(lo, v), math.Max(hi, v)
				}
			}
		}
		if hi == 0 {
			continue
		}
		dLo, dHi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
		if dHi <= dLo {
			dHi = dLo + 1
		}
		y := func(v float64) float64 { return float64(top+panelH) - (math.Log10(v)-dLo)/(dHi-dLo)*panelH }
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="13" font-weight="bold">%s</text>`+"\n", left, top-8, p.title)
		for d := dLo; d <= dHi; d++ {
			yy := y(math.Pow(10, d))
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e0e0e0"/><text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle" font-size="10">%s</text>`+"\n",
				left, yy, left+panelW, yy, left-6, yy, p.fmtV(math.Pow(10, d)))
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>`+"\n", left, top, panelW, panelH)
		for si, s := range shapes {
			gx := float64(left) + float64(si)*groupW + (groupW-barW*float64(len(impls)))/2
			for ii, impl := range impls {
				r := val[s][impl]
				if r == nil {
					continue
				}
				v := p.get(r)
				if v <= 0 {
					continue
				}
				x, yy := gx+float64(ii)*barW, y(v)
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s</title></rect>`+"\n",
					x+1, yy, barW-2, float64(top+panelH)-yy, colors[impl], xmlEscape(s), impl, p.fmtV(v))
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="8" text-anchor="middle" fill="#333">%s</text>`+"\n", x+barW/2, yy-3, p.fmtV(v))
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", float64(left)+(float64(si)+0.5)*groupW, top+panelH+16, xmlEscape(s))
		}
	}
	b.WriteString("</svg>\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
