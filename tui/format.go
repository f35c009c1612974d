package tui

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"
)

// fmtRate formats a per-second figure in 5 characters or fewer: 0, 3.2,
// 812, 5.01k, 12.3k, 1.20M.
func fmtRate(v float64) string {
	switch {
	case v <= 0 || math.IsNaN(v):
		return "0"
	case v < 10:
		return trimZero(fmt.Sprintf("%.1f", v))
	case v < 1000:
		return fmt.Sprintf("%.0f", v)
	case v < 10e3:
		return fmt.Sprintf("%.2fk", v/1e3)
	case v < 100e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v < 1e6:
		return fmt.Sprintf("%.0fk", v/1e3)
	}
	return fmt.Sprintf("%.2fM", v/1e6)
}

func trimZero(s string) string {
	if strings.HasSuffix(s, ".0") {
		return s[:len(s)-2]
	}
	return s
}

// fmtCount formats a total: 812, 12.3k, 4.56M, 7.89G.
func fmtCount(n uint64) string {
	v := float64(n)
	switch {
	case n < 10000:
		return fmt.Sprintf("%d", n)
	case v < 1e6:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v < 1e9:
		return fmt.Sprintf("%.2fM", v/1e6)
	}
	return fmt.Sprintf("%.2fG", v/1e9)
}

// fmtUS formats microseconds: 85µs, 1.2ms, 35ms, 1.50s, "-" for none.
func fmtUS(us int64) string {
	switch {
	case us <= 0:
		return "-"
	case us < 1000:
		return fmt.Sprintf("%dµs", us)
	case us < 10_000:
		return fmt.Sprintf("%.1fms", float64(us)/1e3)
	case us < 1_000_000:
		return fmt.Sprintf("%.0fms", float64(us)/1e3)
	case us < 100_000_000:
		return fmt.Sprintf("%.2fs", float64(us)/1e6)
	}
	return fmt.Sprintf("%.0fs", float64(us)/1e6)
}

// fmtPct formats a ratio (0..1) as a percentage.
func fmtPct(r float64) string {
	switch {
	case r <= 0:
		return "0%"
	case r < 0.001:
		return "<0.1%"
	case r < 0.1:
		return fmt.Sprintf("%.1f%%", r*100)
	}
	return fmt.Sprintf("%.0f%%", r*100)
}

// fmtAge formats a duration coarsely: 850ms, 12s, 4m05s, 3h12m, 2d04h.
func fmtAge(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

// fit pads or truncates a (possibly styled) line to exactly w cells.
func fit(s string, w int) string {
	if w <= 0 {
		return ""
	}
	n := ansi.StringWidth(s)
	if n > w {
		return ansi.Truncate(s, w, "…")
	}
	return s + strings.Repeat(" ", w-n)
}

// padLeft right-aligns s in w cells (s is plain text).
func padLeft(s string, w int) string {
	n := ansi.StringWidth(s)
	if n >= w {
		return ansi.Truncate(s, w, "")
	}
	return strings.Repeat(" ", w-n) + s
}

// padRight left-aligns s in w cells (s is plain text).
func padRight(s string, w int) string {
	n := ansi.StringWidth(s)
	if n > w {
		return ansi.Truncate(s, w, "…")
	}
	return s + strings.Repeat(" ", w-n)
}
