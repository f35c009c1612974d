package tui

import (
	"math"
	"strings"

	"charm.land/lipgloss/v2"
)

// Charts are drawn in braille: each cell holds 2x4 dots, so a chart of w
// cells shows 2w points, newest on the right.

// brailleBits[x][y] is the dot at column x (0..1) and row y (0..3, top
// first) of a braille cell.
var brailleBits = [2][4]rune{{0x01, 0x02, 0x04, 0x40}, {0x08, 0x10, 0x20, 0x80}}

// canvas is a braille grid with one colour per cell.
type canvas struct {
	w, h   int
	dots   []rune
	colour []int // index into styles, -1 for none
}

func newCanvas(w, h int) *canvas {
	c := &canvas{w: w, h: h, dots: make([]rune, w*h), colour: make([]int, w*h)}
	for i := range c.colour {
		c.colour[i] = -1
	}
	return c
}

// set lights dot (x, y), y counted from the bottom, in colour col; a
// higher colour index wins a shared cell.
func (c *canvas) set(x, y, col int) {
	if x < 0 || y < 0 || x >= 2*c.w || y >= 4*c.h {
		return
	}
	cy := c.h - 1 - y/4
	i := cy*c.w + x/2
	c.dots[i] |= brailleBits[x%2][3-y%4]
	if col > c.colour[i] {
		c.colour[i] = col
	}
}

func (c *canvas) lines(styles []lipgloss.Style) []string {
	out := make([]string, c.h)
	var b strings.Builder
	for row := 0; row < c.h; row++ {
		b.Reset()
		for col := 0; col < c.w; col++ {
			i := row*c.w + col
			if c.dots[i] == 0 {
				b.WriteByte(' ')
				continue
			}
			ch := string(0x2800 + c.dots[i])
			if k := c.colour[i]; k >= 0 && k < len(styles) {
				ch = styles[k].Render(ch)
			}
			b.WriteString(ch)
		}
		out[row] = b.String()
	}
	return out
}

// scale maps values to dot rows.
type scale struct {
	lo, hi float64
	log    bool
	rows   int // dot rows
}

func (s scale) row(v float64) int {
	if s.hi <= s.lo {
		return s.rows / 2
	}
	var f float64
	if s.log {
		if v <= 0 {
			return 0
		}
		f = (math.Log(v) - math.Log(s.lo)) / (math.Log(s.hi) - math.Log(s.lo))
	} else {
		f = (v - s.lo) / (s.hi - s.lo)
	}
	r := int(math.Round(f * float64(s.rows-1)))
	return min(max(r, 0), s.rows-1)
}

// areaChart draws values as a filled area on a linear scale from 0 to the
// largest value (or floor, whichever is larger). It returns the lines and
// the top of the scale.
func areaChart(values []float64, w, h int, floor float64, st lipgloss.Style) ([]string, float64) {
	c := newCanvas(w, h)
	values = lastN(values, 2*w)
	hi := floor
	for _, v := range values {
		hi = max(hi, v)
	}
	sc := scale{lo: 0, hi: hi, rows: 4 * h}
	x0 := 2*w - len(values)
	for i, v := range values {
		if v <= 0 {
			continue
		}
		top := max(sc.row(v), 0)
		for y := 0; y <= top; y++ {
			c.set(x0+i, y, 0)
		}
	}
	return c.lines([]lipgloss.Style{st}), hi
}

// lineChart draws several series on one scale (log when logScale), each a
// line whose successive points are joined vertically. Later series win
// shared cells. It returns the lines and the scale's bounds.
func lineChart(series [][]float64, w, h int, logScale bool, styles []lipgloss.Style) ([]string, float64, float64) {
	c := newCanvas(w, h)
	lo, hi := math.Inf(1), 0.0
	for k := range series {
		series[k] = lastN(series[k], 2*w)
		for _, v := range series[k] {
			if v > 0 {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	if hi == 0 {
		return c.lines(styles), 0, 0
	}
	if logScale {
		lo, hi = lo/1.15, hi*1.15
	} else {
		lo = 0
	}
	sc := scale{lo: lo, hi: hi, log: logScale, rows: 4 * h}
	for k, vals := range series {
		x0 := 2*w - len(vals)
		prev := -1
		for i, v := range vals {
			if v <= 0 {
				prev = -1
				continue
			}
			y := sc.row(v)
			if prev >= 0 {
				a, b := min(prev, y), max(prev, y)
				// Join to the previous point halfway up on each side.
				mid := (a + b) / 2
				for yy := a; yy <= b; yy++ {
					if (yy <= mid) == (prev < y) {
						c.set(x0+i-1, yy, k)
					} else {
						c.set(x0+i, yy, k)
					}
				}
			}
			c.set(x0+i, y, k)
			prev = y
		}
	}
	return c.lines(styles), lo, hi
}

func lastN[T any](v []T, n int) []T {
	if len(v) > n {
		return v[len(v)-n:]
	}
	return v
}
