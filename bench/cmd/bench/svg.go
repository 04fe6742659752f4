package main

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"time"
)

// chart draws the run's figures as a hand-written SVG (no dependency): per target, the proxy's
// CPU per request (JSON and SSE), the p99 latency at the workload's concurrency (JSON, and the
// SSE first event), and the p99 on one connection. Bars are medians over rounds.
func chart(res *runResult) []byte {
	type bars struct {
		name  string
		color string
		value func(t *target) (float64, bool)
	}
	type panel struct {
		title  string
		unit   string
		scale  float64 // divides nanoseconds into the unit
		series []bars
		skip   func(t *target) bool
	}
	med := func(w string, f series) func(t *target) (float64, bool) {
		return func(t *target) (float64, bool) {
			ms, ok := res.results[w][t.name]
			if !ok || len(ms) == 0 {
				return 0, false
			}
			return medianOf(ms, f), true
		}
	}
	var panels []panel
	if res.results["json"] != nil || res.results["sse"] != nil {
		panels = append(panels, panel{title: "Proxy CPU per request", unit: "µs", scale: float64(time.Microsecond),
			series: []bars{{"JSON", "#2b47c9", med("json", cpuReq)}, {"SSE", "#e07b00", med("sse", cpuReq)}},
			skip:   func(t *target) bool { return t.name == "direct" }})
		panels = append(panels, panel{title: "p99 latency under load", unit: "ms", scale: float64(time.Millisecond),
			series: []bars{{"JSON", "#2b47c9", med("json", p99)}, {"SSE first event", "#e07b00", med("sse", ttfe99)}}})
	}
	if res.results["latency"] != nil {
		panels = append(panels, panel{title: "p99 latency, one connection", unit: "µs", scale: float64(time.Microsecond),
			series: []bars{{"JSON", "#2a9d55", med("latency", p99)}}})
	}

	const (
		width  = 900
		labelW = 290
		barW   = 520
		rowH   = 13
		gap    = 9
		titleH = 46
	)
	var b bytes.Buffer
	y := 40
	var body bytes.Buffer
	for _, p := range panels {
		var ts []*target
		maxV := 0.0
		for _, t := range res.targets {
			if p.skip != nil && p.skip(t) {
				continue
			}
			found := false
			for _, s := range p.series {
				if v, ok := s.value(t); ok {
					found = true
					maxV = math.Max(maxV, v/p.scale)
				}
			}
			if found {
				ts = append(ts, t)
			}
		}
		if len(ts) == 0 || maxV == 0 {
			continue
		}
		top := niceCeil(maxV)
		fmt.Fprintf(&body, `<text x="10" y="%d" class="title">%s (%s)</text>`+"\n", y+16, html.EscapeString(p.title), p.unit)
		lx := labelW + 240
		for _, s := range p.series {
			fmt.Fprintf(&body, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d" class="legend">%s</text>`+"\n",
				lx, y+6, s.color, lx+16, y+16, html.EscapeString(s.name))
			lx += 24 + 8*len(s.name)
		}
		y += titleH - 16
		y0 := y
		for _, t := range ts {
			h := rowH * len(p.series)
			fmt.Fprintf(&body, `<text x="%d" y="%d" class="label" text-anchor="end">%s</text>`+"\n", labelW-8, y+h/2+4, html.EscapeString(t.label))
			for i, s := range p.series {
				v, ok := s.value(t)
				if !ok {
					continue
				}
				v /= p.scale
				w := int(math.Round(v / top * barW))
				fmt.Fprintf(&body, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`+"\n", labelW, y+i*rowH, max(w, 1), rowH-2, s.color)
				fmt.Fprintf(&body, `<text x="%d" y="%d" class="value">%s</text>`+"\n", labelW+max(w, 1)+4, y+i*rowH+rowH-3, formatValue(v))
			}
			y += h + gap
		}
		// Axis: the baseline and the scale's end.
		fmt.Fprintf(&body, `<line x1="%d" y1="%d" x2="%d" y2="%d" class="axis"/>`+"\n", labelW, y0-4, labelW, y-gap+4)
		fmt.Fprintf(&body, `<line x1="%d" y1="%d" x2="%d" y2="%d" class="grid"/>`+"\n", labelW+barW, y0-4, labelW+barW, y-gap+4)
		fmt.Fprintf(&body, `<text x="%d" y="%d" class="value" text-anchor="middle">0</text><text x="%d" y="%d" class="value" text-anchor="middle">%s %s</text>`+"\n",
			labelW, y+6, labelW+barW, y+6, formatValue(top), p.unit)
		y += 34
	}
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="system-ui, -apple-system, Segoe UI, sans-serif">`+"\n", width, y, width, y)
	b.WriteString(`<style>.title{font-size:15px;font-weight:600;fill:#111}.legend,.label{font-size:12px;fill:#222}.value{font-size:11px;fill:#444}.axis{stroke:#333;stroke-width:1}.grid{stroke:#bbb;stroke-dasharray:3 3}</style>` + "\n")
	b.WriteString(`<rect width="100%" height="100%" fill="#fff"/>` + "\n")
	rounds := fmt.Sprintf("%d rounds", roundsOf(res))
	if roundsOf(res) == 1 {
		rounds = "1 round"
	}
	fmt.Fprintf(&b, `<text x="10" y="22" class="title">mcpgate benchmark: medians of %s</text>`+"\n", rounds)
	b.Write(body.Bytes())
	b.WriteString("</svg>\n")
	return b.Bytes()
}

func roundsOf(res *runResult) int {
	n := 0
	for _, byTarget := range res.results {
		for _, ms := range byTarget {
			n = max(n, len(ms))
		}
	}
	return n
}

// niceCeil rounds v up to a round number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten).
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func formatValue(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
