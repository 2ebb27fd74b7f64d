package acmeload

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"slices"
)

// Series is one line of the chart: a server's orders/s at each client
// count.
type Series struct {
	Name   string
	Points []Point
}

// Point is one measurement.
type Point struct {
	Clients int
	Value   float64
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"}

// Chart renders series as a standalone SVG line chart: clients on a log₂
// x axis (the client counts double or quadruple), value on a linear y
// axis from zero. It needs no plotting tool, so the benchmark script can
// regenerate it anywhere.
func Chart(title, yLabel string, series []Series) []byte {
	const (
		w, h                 = 640.0, 400.0
		left, right, top, bo = 70.0, 170.0, 40.0, 50.0
	)
	pw, ph := w-left-right, h-top-bo
	var xs []int
	ymax := 0.0
	for _, s := range series {
		for _, p := range s.Points {
			if !slices.Contains(xs, p.Clients) {
				xs = append(xs, p.Clients)
			}
			ymax = math.Max(ymax, p.Value)
		}
	}
	slices.Sort(xs)
	step := niceStep(ymax / 5)
	ytop := step * math.Ceil(ymax/step)
	if ytop == 0 {
		ytop = 1
	}
	lx := func(c int) float64 { return math.Log2(float64(max(c, 1))) }
	x0, x1 := 0.0, 1.0
	if len(xs) > 0 {
		x0, x1 = lx(xs[0]), lx(xs[len(xs)-1])
		if x1 == x0 {
			x1 = x0 + 1
		}
	}
	px := func(c int) float64 { return left + (lx(c)-x0)/(x1-x0)*pw }
	py := func(v float64) float64 { return top + ph - v/ytop*ph }

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(title))
	for v := 0.0; v <= ytop+step/2; v += step {
		y := py(v)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, y, left+pw, y)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y+4, trim(v))
	}
	for _, c := range xs {
		x := px(c)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", x, top, x, top+ph)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%d</text>`+"\n", x, top+ph+18, c)
	}
	fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#333"/>`+"\n", left, top, pw, ph)
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">concurrent clients</text>`+"\n", left+pw/2, h-10)
	fmt.Fprintf(&b, `<text transform="translate(18 %.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", top+ph/2, html.EscapeString(yLabel))
	for i, s := range series {
		col := palette[i%len(palette)]
		pts := slices.Clone(s.Points)
		slices.SortFunc(pts, func(a, b Point) int { return a.Clients - b.Clients })
		var path bytes.Buffer
		for j, p := range pts {
			if j > 0 {
				path.WriteByte(' ')
			}
			fmt.Fprintf(&path, "%.1f,%.1f", px(p.Clients), py(p.Value))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", col, path.String())
		for _, p := range pts {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"><title>%s, %d clients: %s</title></circle>`+"\n",
				px(p.Clients), py(p.Value), col, html.EscapeString(s.Name), p.Clients, trim(p.Value))
		}
		ly := top + 10 + float64(i)*20
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`+"\n", left+pw+12, ly, left+pw+32, ly, col)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", left+pw+38, ly+4, html.EscapeString(s.Name))
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// niceStep rounds a raw tick step up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

func trim(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}
