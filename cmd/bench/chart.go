package main

import (
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
)

// writeChart draws the rpc results as an SVG: throughput and p99 latency
// against concurrency, SDK and raw. It needs no library: the chart is two
// line plots on categorical x axes (the concurrency levels, evenly
// spaced), throughput on a linear y axis, p99 on a logarithmic one.
func writeChart(path string, rep *report) error {
	type point struct {
		c    int
		thr  float64
		p99  float64 // ns
		impl string
	}
	series := map[string][]point{}
	levelSet := map[int]bool{}
	for _, r := range rep.Results {
		if r.Scenario != scRPC || r.Error != "" || r.Latency == nil {
			continue
		}
		series[r.Impl] = append(series[r.Impl], point{c: r.Concurrency, thr: r.OpsPerSec, p99: float64(r.Latency.P99), impl: r.Impl})
		levelSet[r.Concurrency] = true
	}
	if len(levelSet) == 0 {
		return fmt.Errorf("no rpc results to chart")
	}
	var levels []int
	for c := range levelSet {
		levels = append(levels, c)
	}
	sort.Ints(levels)
	for _, s := range series {
		sort.Slice(s, func(i, j int) bool { return s[i].c < s[j].c })
	}

	const (
		W, H           = 960, 440
		panelW, panelH = 380, 270
		left1, left2   = 90, 570
		top            = 92
	)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif" font-size="12">`+"\n", W, H, W, H)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", W, H)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="16" font-weight="bold" text-anchor="middle">iii-go rpc round trips (100 B payload): SDK vs raw WebSocket client</text>`+"\n", W/2)
	fmt.Fprintf(&b, `<text x="%d" y="44" font-size="11" fill="#555" text-anchor="middle">%s</text>`+"\n", W/2, xmlEscape(rep.Machine.String()))

	colors := map[string]string{"sdk": "#1f6fd1", "raw": "#e07b16"}
	dashes := map[string]string{"sdk": "", "raw": ` stroke-dasharray="6 4"`}
	xOf := func(left int, c int) float64 {
		i := sort.SearchInts(levels, c)
		if len(levels) == 1 {
			return float64(left) + panelW/2
		}
		return float64(left) + 20 + float64(i)*(panelW-40)/float64(len(levels)-1)
	}

	// Left panel: throughput, linear from 0.
	maxThr := 0.0
	for _, s := range series {
		for _, p := range s {
			maxThr = math.Max(maxThr, p.thr)
		}
	}
	step := niceStep(maxThr / 5)
	yMax := math.Ceil(maxThr*1.1/step) * step
	yThr := func(v float64) float64 { return top + panelH - v/yMax*panelH }
	axes(&b, left1, top, panelW, panelH, "throughput (calls/s)", levels, xOf)
	for v := 0.0; v <= yMax+step/2; v += step {
		y := yThr(v)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e5e5e5"/>`+"\n", left1, y, left1+panelW, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", left1-6, y, shortNum(v))
	}
	// Right panel: p99, logarithmic.
	lo, hi := math.Inf(1), 0.0
	for _, s := range series {
		for _, p := range s {
			lo, hi = math.Min(lo, p.p99), math.Max(hi, p.p99)
		}
	}
	dLo, dHi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if dHi <= dLo {
		dHi = dLo + 1
	}
	yP99 := func(v float64) float64 { return top + panelH - (math.Log10(v)-dLo)/(dHi-dLo)*panelH }
	axes(&b, left2, top, panelW, panelH, "p99 latency (log scale)", levels, xOf)
	for d := dLo; d <= dHi; d++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, d)
			if d == dHi && m > 1 {
				break
			}
			y := yP99(v)
			stroke := "#f0f0f0"
			if m == 1 {
				stroke = "#dcdcdc"
			}
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`+"\n", left2, y, left2+panelW, y, stroke)
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", left2-6, y, tickDur(v))
		}
	}
	for _, impl := range []string{"raw", "sdk"} {
		s := series[impl]
		if len(s) == 0 {
			continue
		}
		var p1, p2 []string
		for _, p := range s {
			p1 = append(p1, fmt.Sprintf("%.1f,%.1f", xOf(left1, p.c), yThr(p.thr)))
			p2 = append(p2, fmt.Sprintf("%.1f,%.1f", xOf(left2, p.c), yP99(p.p99)))
		}
		col := colors[impl]
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2.5"%s/>`+"\n", strings.Join(p1, " "), col, dashes[impl])
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2.5"%s/>`+"\n", strings.Join(p2, " "), col, dashes[impl])
		other := series["sdk"]
		if impl == "sdk" {
			other = series["raw"]
		}
		for i, p := range s {
			x1, y1 := xOf(left1, p.c), yThr(p.thr)
			x2, y2 := xOf(left2, p.c), yP99(p.p99)
			// Each label goes on the outer side of its point: above for the
			// higher of the two series at this concurrency, below for the
			// lower one; the first and last stay inside the panel.
			dy1, dy2 := -9.0, -9.0
			for _, o := range other {
				if o.c == p.c {
					if o.thr > p.thr {
						dy1 = 17
					}
					if o.p99 > p.p99 {
						dy2 = 17
					}
				}
			}
			anchor := "middle"
			if len(s) > 1 && i == 0 {
				anchor = "start"
			} else if len(s) > 1 && i == len(s)-1 {
				anchor = "end"
			}
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/><text x="%.1f" y="%.1f" text-anchor="%s" font-size="10" fill="%s">%s</text>`+"\n", x1, y1, col, x1, y1+dy1, anchor, col, shortNum(p.thr))
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/><text x="%.1f" y="%.1f" text-anchor="%s" font-size="10" fill="%s">%s</text>`+"\n", x2, y2, col, x2, y2+dy2, anchor, col, fmtDur(int64(p.p99)))
		}
	}
	// Legend.
	ly := H - 22
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2.5"/><text x="%d" y="%d" dominant-baseline="middle">SDK (iii.RegisterFunction + w.Trigger)</text>`+"\n", W/2-260, ly, W/2-230, ly, colors["sdk"], W/2-222, ly)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2.5" stroke-dasharray="6 4"/><text x="%d" y="%d" dominant-baseline="middle">raw (hand-written WebSocket client)</text>`+"\n", W/2+40, ly, W/2+70, ly, colors["raw"], W/2+78, ly)
	b.WriteString("</svg>\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// axes draws a panel's frame, title and x axis.
func axes(b *strings.Builder, left, top, w, h int, title string, levels []int, xOf func(int, int) float64) {
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="13" font-weight="bold" text-anchor="middle">%s</text>`+"\n", left+w/2, top-12, title)
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>`+"\n", left, top, w, h)
	for _, c := range levels {
		x := xOf(left, c)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#999"/><text x="%.1f" y="%d" text-anchor="middle">%d</text>`+"\n", x, top+h, x, top+h+5, x, top+h+18, c)
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle" fill="#333">concurrent calls</text>`+"\n", left+w/2, top+h+36)
}

// tickDur formats a round duration (1, 2 or 5 times a power of ten ns).
func tickDur(ns float64) string {
	switch {
	case ns >= 1e9:
		return fmt.Sprintf("%gs", ns/1e9)
	case ns >= 1e6:
		return fmt.Sprintf("%gms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%gµs", ns/1e3)
	}
	return fmt.Sprintf("%gns", ns)
}

// niceStep rounds v up to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func shortNum(v float64) string {
	switch {
	case v >= 1e6:
		return strings.TrimSuffix(fmt.Sprintf("%.1f", v/1e6), ".0") + "M"
	case v >= 1e3:
		return strings.TrimSuffix(fmt.Sprintf("%.1f", v/1e3), ".0") + "k"
	}
	return fmt.Sprintf("%.0f", v)
}

func xmlEscape(s string) string {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;")
	return r.Replace(s)
}
