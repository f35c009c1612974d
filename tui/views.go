package tui

import (
	"fmt"
	"strings"
	"time"

	"charm.land/lipgloss/v2"

	"github.com/hose-project/hose/stats"
)

// ---- worker detail ----

func (m *Model) detailView(w, h int) []string {
	st := m.styles
	lines := m.header(w)
	wk := m.shown.Worker(m.table.selected)
	if wk == nil {
		lines = append(lines, "", st.Dim.Render(fmt.Sprintf("worker %d is gone", m.table.selected)))
		return body(lines, h, m.viewFooter(w, "esc back"))
	}
	state := wk.State
	if s, ok := st.States[state]; ok {
		state = s.Render(state)
	}
	lines = append(lines, st.Title.Render(fmt.Sprintf("worker %d", wk.ID))+"  "+state+
		st.Dim.Render("   ↑/↓ other workers · esc back"))
	field := func(label, value string) string { return padRight(label, 11) + st.Value.Render(value) }
	heard := fmtAge(time.Duration(wk.LastHeardMS * float64(time.Millisecond)))
	grid := [][]string{
		{field("host", wk.Host), field("pid", fmt.Sprint(wk.PID)), field("version", wk.Version)},
		{field("services", strings.Join(wk.Services, ",")), field("capacity", fmt.Sprint(wk.Capacity)), field("in flight", fmt.Sprint(wk.InFlight))},
		{field("done", fmtCount(wk.Done)), field("errors", fmtCount(wk.Errors)), field("jobs/s", fmtRate(m.rates[wk.ID]))},
		{field("heard", heard+" ago"), field("age", fmtAge(time.Duration(wk.AgeS*float64(time.Second)))), field("interval", fmt.Sprintf("%d jobs", wk.Jobs))},
		{field("p50", fmtUS(wk.P50US)), field("p99", fmtUS(wk.P99US)), ""},
	}
	if wk.State == stats.StateLost {
		grid = append(grid, []string{field("lost", fmtAge(time.Duration(wk.LostS*float64(time.Second)))+" ago"), field("reason", wk.LostReason), ""})
	}
	colw := max((w-2)/3, 20)
	for _, g := range grid {
		var b strings.Builder
		b.WriteString(" ")
		for _, c := range g {
			b.WriteString(fit(c, colw))
		}
		lines = append(lines, b.String())
	}
	if rows := h - len(lines) - 2; rows >= 2 && w >= 40 {
		lines = append(lines, "")
		lines = append(lines, m.workerCharts(wk.ID, w, min(rows-1, 10))...)
	}
	return body(lines, h, m.viewFooter(w, "↑/↓ worker · esc back"))
}

// workerCharts draws a worker's service time and throughput.
func (m *Model) workerCharts(id uint32, w, rows int) []string {
	st := m.styles
	lw := (w - 1) / 2
	rw := w - 1 - lw
	var pts []workerPoint
	if r := m.whist[id]; r != nil {
		pts = r.tail(2 * max(lw, rw))
	}
	p50, p99, rate := make([]float64, len(pts)), make([]float64, len(pts)), make([]float64, len(pts))
	for i, p := range pts {
		p50[i], p99[i], rate[i] = float64(p.P50), float64(p.P99), p.Rate
	}
	left, lo, hi := lineChart([][]float64{p50, p99}, lw, rows, true, []lipgloss.Style{st.Series[0], st.Series[2]})
	right, top := areaChart(rate, rw, rows, 1, st.Throughput)
	lt := st.Heading.Render("service time") + " " + st.Series[0].Render("p50") + " " + st.Series[2].Render("p99")
	if hi > 0 {
		lt += st.Label.Render(fmt.Sprintf(" %s–%s log", fmtUS(int64(lo)), fmtUS(int64(hi))))
	}
	rt := st.Heading.Render("jobs/s") + st.Label.Render(" top ") + fmtRate(top)
	out := []string{fit(lt, lw) + " " + fit(rt, rw)}
	for i := 0; i < rows; i++ {
		out = append(out, fit(left[i], lw)+st.Dim.Render("│")+fit(right[i], rw))
	}
	return out
}

// ---- errors ----

func (m *Model) errorsView(w, h int) []string {
	st := m.styles
	s := m.shown
	lines := m.header(w)
	lines = append(lines, st.Title.Render("errors by kind")+st.Dim.Render("   rates over the last refresh; e or esc back"))
	head := padRight("KIND", 22) + padLeft("STATUS", 7) + padLeft("TOTAL", 9) + padLeft("PER S", 8) + padLeft("SHARE", 8)
	lines = append(lines, st.Heading.Render(head))
	var total uint64
	for _, e := range s.Errors {
		total += e.Total
	}
	if len(s.Errors) == 0 {
		lines = append(lines, st.Good.Render(" no errors since the broker started"))
	}
	for _, e := range s.Errors {
		share := 0.0
		if total > 0 {
			share = float64(e.Total) / float64(total)
		}
		lines = append(lines, padRight(e.Kind, 22)+padLeft(fmt.Sprint(e.Status), 7)+padLeft(fmtCount(e.Total), 9)+
			padLeft(fmtRate(e.Rate), 8)+padLeft(fmtPct(share), 8))
	}
	t := s.Totals
	answered := t.Answered()
	ratio := 0.0
	if answered > 0 {
		ratio = float64(t.Errors) / float64(answered)
	}
	item := func(label string, v uint64) string { return st.Label.Render(label+" ") + fmtCount(v) }
	lines = append(lines, "",
		st.Heading.Render("since start ")+strings.Join([]string{
			item("answered", answered), item("errors", t.Errors) + " (" + fmtPct(ratio) + ")",
			item("expired", t.Expired), item("requeued", t.Requeued)}, " · "),
		strings.Repeat(" ", 12)+strings.Join([]string{
			item("late", t.Late), item("cancelled", t.Cancelled), item("malformed", t.Malformed),
			item("unroutable", t.Unroutable), item("workers lost", t.WorkersLost)}, " · "),
		strings.Repeat(" ", 12)+item("auth denied", t.AuthDenied)+st.Dim.Render(" (CURVE keys refused)")+
			" · "+item("abandoned", t.Abandoned)+st.Dim.Render(" (gone clients)"))
	if rows := h - len(lines) - 3; rows >= 2 {
		pts := m.hist.tail(2 * w)
		vals := make([]float64, len(pts))
		for i, p := range pts {
			vals[i] = p.ErrRate
		}
		chart, top := areaChart(vals, w, min(rows, 8), 1, st.ErrorsBar)
		lines = append(lines, "", st.Heading.Render("errors/s")+st.Label.Render(" top ")+fmtRate(top))
		lines = append(lines, chart...)
	}
	return body(lines, h, m.viewFooter(w, "e/esc back"))
}

// ---- comparison ----

func (m *Model) compareView(w, h int) []string {
	st := m.styles
	lines := m.header(w)
	lines = append(lines, st.Title.Render("compare worker counts")+
		st.Dim.Render(fmt.Sprintf("   steady state from %v after each change", m.cfg.Settle)))
	now := ""
	switch {
	case m.cmp.cur < 0:
		now = "waiting for snapshots"
	case m.cmp.draining:
		now = fmt.Sprintf("%d workers: waiting for the queue to drain", m.cmp.cur)
	case m.cmp.settling(m.now) > 0:
		now = fmt.Sprintf("%d workers: settling %s", m.cmp.cur, fmtAge(m.cmp.settling(m.now)))
	default:
		now = fmt.Sprintf("%d workers: measuring", m.cmp.cur)
	}
	ctl := st.Warn.Render("read-only: " + noControl)
	if m.cfg.Control != nil {
		ctl = st.Label.Render("control ") + m.cfg.ControlName + st.Dim.Render(" · + / - / w change the count")
	}
	lines = append(lines, st.Label.Render("now ")+st.Value.Render(now)+"   "+ctl)
	head := padLeft("WORKERS", 8) + padLeft("MEASURED", 10) + padLeft("JOBS/S", 9) + padLeft("P50", 9) + padLeft("P99", 9) + padLeft("ERRORS", 8) + "  "
	lines = append(lines, st.Heading.Render(head))
	rows := m.cmp.rows()
	if len(rows) == 0 {
		lines = append(lines, st.Dim.Render(" nothing measured yet: keep a load running, change the worker count, and each"),
			st.Dim.Render(" count gets a row once it has run steadily."))
	}
	best := 0.0
	for _, r := range rows {
		best = max(best, r.JobsPerS)
	}
	barW := w - lipgloss.Width(head) - 1
	for _, r := range rows {
		line := padLeft(fmt.Sprint(r.Workers), 8) + padLeft(fmtAge(time.Duration(r.Seconds*float64(time.Second))), 10) +
			padLeft(fmtRate(r.JobsPerS), 9) + padLeft(fmtUS(r.P50US), 9) + padLeft(fmtUS(r.P99US), 9) +
			padLeft(fmtPct(r.ErrorRate), 8) + "  "
		if barW > 4 && best > 0 {
			line += st.Throughput.Render(strings.Repeat("█", int(float64(barW)*r.JobsPerS/best+0.5)))
		}
		if r.Workers == m.cmp.cur {
			line = st.Value.Render(line)
		}
		lines = append(lines, line)
	}
	return body(lines, h, m.viewFooter(w, "x export md+json · X clear · c/esc back"))
}

// ---- help ----

func (m *Model) helpView(w, h int) []string {
	st := m.styles
	lines := []string{st.Title.Render("hosetop help") + st.Dim.Render("   ? or esc closes")}
	two := w >= 60
	colw := w
	if two {
		colw = w / 2
	}
	var blocks [][]string
	for i, g := range m.keys.FullHelp() {
		block := []string{st.Heading.Render(helpGroups[i])}
		for _, b := range g {
			desc := b.Help().Desc
			if long, ok := longHelp[b.Help().Key]; ok && 11+len([]rune(long)) <= colw {
				desc = long
			}
			block = append(block, " "+st.Key.Render(padRight(b.Help().Key, 8))+" "+desc)
		}
		blocks = append(blocks, block)
	}
	if two {
		for i := 0; i < len(blocks); i += 2 {
			left, right := blocks[i], []string(nil)
			if i+1 < len(blocks) {
				right = blocks[i+1]
			}
			for k := 0; k < max(len(left), len(right)); k++ {
				l, r := "", ""
				if k < len(left) {
					l = left[k]
				}
				if k < len(right) {
					r = right[k]
				}
				lines = append(lines, fit(l, colw)+r)
			}
		}
	} else {
		for _, b := range blocks {
			lines = append(lines, b...)
		}
	}
	notes := []string{
		"Charts hold two points per character, newest on the right; latency is",
		"broker-side (arrival to result), p50 p90 p99 p99.9 on a log scale; jobs/s counts",
		"jobs answered ok, errors are apart. The",
		"broker publishes a snapshot per stats interval; [ and ] set how often the",
		"screen takes them in. The comparison measures each worker count's steady",
		"state from " + m.cfg.Settle.String() + " after it was set (-settle), drained backlogs left out.",
	}
	if len(lines)+1+len(notes) <= h-1 {
		lines = append(lines, "")
		for _, n := range notes {
			lines = append(lines, st.Dim.Render(n))
		}
	}
	return body(lines, h, m.viewFooter(w, "? or esc closes"))
}

// viewFooter is the footer of the secondary views: a message or the hint.
func (m *Model) viewFooter(w int, hint string) string {
	st := m.styles
	if m.status != "" && m.now.Sub(m.statusAt) < 5*time.Second {
		return st.Status.Render(m.status)
	}
	return fitItems([]string{st.Dim.Render(hint), st.Key.Render("q") + " " + st.Dim.Render("quit")}, w)
}
