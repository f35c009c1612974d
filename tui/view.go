package tui

import (
	"fmt"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/hose-project/hose/stats"
)

// View draws the model. It is pure: it reads the model and the time of
// the last message, nothing else.
func (m *Model) View() tea.View {
	v := tea.NewView(m.render())
	v.AltScreen = true
	v.WindowTitle = "hosetop"
	return v
}

// size is the terminal size, 80x24 until the first WindowSizeMsg.
func (m *Model) size() (int, int) {
	w, h := m.width, m.height
	if w <= 0 || h <= 0 {
		return 80, 24
	}
	return w, h
}

func (m *Model) contentWidth() int { w, _ := m.size(); return w }

// tiny terminals get a summary only.
func (m *Model) tiny() bool {
	w, h := m.size()
	return w < 40 || h < 8
}

func (m *Model) headerLines() int {
	_, h := m.size()
	switch {
	case h < 12:
		return 1
	case (m.cfg.Control != nil || m.cfg.Load != "") && h >= 16:
		return 3
	}
	return 2
}

// chartRows is the height of the charts (their title excluded), 0 when
// the terminal is too short for them.
func (m *Model) chartRows() int {
	_, h := m.size()
	switch {
	case h >= 40:
		return min(h/4, 14)
	case h >= 24:
		return 6
	case h >= 19:
		return 4
	case h >= 15:
		return 2
	}
	return 0
}

// tableHeight is the number of lines of the worker table, heading included.
func (m *Model) tableHeight() int {
	_, h := m.size()
	n := h - m.headerLines() - 1 // footer
	if c := m.chartRows(); c > 0 {
		n -= c + 1
	}
	return max(n, 1)
}

func (m *Model) render() string {
	w, h := m.size()
	var lines []string
	switch {
	case m.tiny():
		lines = m.tinyView(w, h)
	case m.shown == nil:
		lines = m.waitingView(w, h)
	case m.view == viewHelp:
		lines = m.helpView(w, h)
	case m.view == viewDetail:
		lines = m.detailView(w, h)
	case m.view == viewErrors:
		lines = m.errorsView(w, h)
	case m.view == viewCompare:
		lines = m.compareView(w, h)
	default:
		lines = m.mainView(w, h)
	}
	return frame(lines, w, h)
}

// frame makes exactly h lines of exactly w cells.
func frame(lines []string, w, h int) string {
	if len(lines) > h {
		lines = lines[:h]
	}
	var b strings.Builder
	for i := 0; i < h; i++ {
		l := ""
		if i < len(lines) {
			l = lines[i]
		}
		b.WriteString(fit(l, w))
		if i < h-1 {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// body fills the lines between the top and the footer.
func body(top []string, h int, footer string) []string {
	out := top
	for len(out) < h-1 {
		out = append(out, "")
	}
	if len(out) > h-1 {
		out = out[:h-1]
	}
	return append(out, footer)
}

// ---- main ----

func (m *Model) mainView(w, h int) []string {
	lines := m.header(w)
	if c := m.chartRows(); c > 0 {
		lines = append(lines, m.charts(w, c)...)
	}
	lines = append(lines, renderTable(m.rows(), m.table, w, m.tableHeight(), m.styles)...)
	return body(lines, h, m.footer(w))
}

func (m *Model) header(w int) []string {
	st := m.styles
	s := m.shown
	title := st.Title.Render("hosetop") + " " + st.Label.Render("broker") + " " +
		st.Value.Render(fmt.Sprintf("pid %d", s.Broker.PID)) + st.Label.Render(" on ") + st.Value.Render(s.Broker.Host) +
		st.Label.Render(" "+s.Broker.Version+" up ") + st.Value.Render(fmtAge(time.Duration(s.Broker.UptimeS*float64(time.Second))))
	if s.Broker.Draining {
		title += " " + st.Warn.Render("draining")
	}
	right := m.liveness()
	lines := []string{joinRight(title, right, w)}
	if m.headerLines() == 1 {
		return lines
	}
	if m.waiting {
		lines = append(lines, st.Waiting.Render(fmt.Sprintf("waiting for broker at %s: last snapshot %s ago, figures below are the last ones",
			m.cfg.Endpoint, fmtAge(m.now.Sub(m.lastSeen)))))
	} else {
		lines = append(lines, m.metricsLine())
	}
	if m.headerLines() == 3 {
		lines = append(lines, m.controlLine())
	}
	return lines
}

// liveness is the header's right side: live, paused or waiting.
func (m *Model) liveness() string {
	st := m.styles
	switch {
	case m.paused:
		return st.Paused.Render(" PAUSED ") + " " + st.Dim.Render("p resumes")
	case m.waiting:
		return st.Waiting.Render("○ waiting")
	}
	return st.Good.Render("●") + st.Label.Render(" refresh "+fmtRefresh(m.refreshEvery()))
}

func fmtRefresh(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return d.String()
}

func (m *Model) metricsLine() string {
	st := m.styles
	s := m.shown
	pt, _ := m.hist.last()
	label := func(l, v string) string { return st.Label.Render(l+" ") + v }
	errRatio := 0.0
	if a := pt.Rate + pt.ErrRate; a > 0 {
		errRatio = pt.ErrRate / a
	}
	errStyle := st.Value
	switch {
	case errRatio >= 0.05:
		errStyle = st.Bad
	case errRatio > 0:
		errStyle = st.Warn
	}
	hwm := 0
	for _, q := range s.Queues {
		hwm = max(hwm, q.HighWater)
	}
	ws := s.WorkerStates
	parts := []string{
		label("jobs/s", st.Value.Render(fmtRate(pt.Rate))),
		label("p99", st.Value.Render(fmtUS(pt.Lat.P99))),
		label("queue", st.Value.Render(fmt.Sprint(s.QueueDepth()))+st.Dim.Render(fmt.Sprintf("/%d", hwm))),
		label("err", errStyle.Render(fmtPct(errRatio))),
		label("workers", st.Value.Render(fmt.Sprint(s.Live()))) + st.Label.Render(":") + m.stateCounts(ws),
	}
	return strings.Join(parts, "  ")
}

// stateCounts lists the workers by state: ready and busy always, the
// others when there are some.
func (m *Model) stateCounts(ws map[string]int) string {
	var b strings.Builder
	for _, state := range stats.States {
		n := ws[state]
		if n == 0 && state != stats.StateReady && state != stats.StateBusy {
			continue
		}
		text := fmt.Sprintf(" %d %s", n, state)
		if n == 0 {
			b.WriteString(m.styles.Dim.Render(text))
		} else {
			b.WriteString(m.styles.States[state].Render(text))
		}
	}
	return b.String()
}

func (m *Model) controlLine() string {
	st := m.styles
	var parts []string
	if m.cfg.Control != nil {
		c := st.Label.Render("control ") + st.Value.Render(m.cfg.ControlName) + " "
		switch {
		case m.ctl.busy || m.ctl.known && m.ctl.target != m.ctl.workers:
			c += st.Warn.Render(fmt.Sprintf("%d → %d workers…", m.ctl.workers, m.ctl.target))
		case m.ctl.known:
			c += st.Value.Render(fmt.Sprintf("%d workers", m.ctl.workers)) + st.Dim.Render(" (+/-)")
		case m.ctl.err != "":
			c += st.Bad.Render("unreachable")
		default:
			c += st.Dim.Render("asking…")
		}
		parts = append(parts, c)
	}
	if m.cfg.Load != "" {
		parts = append(parts, st.Label.Render("load ")+m.cfg.Load)
	}
	if n := len(m.cmp.trials); n > 0 {
		parts = append(parts, st.Label.Render("compared ")+st.Value.Render(fmt.Sprint(n))+st.Label.Render(" counts (c)"))
	}
	return strings.Join(parts, st.Dim.Render(" · "))
}

// charts draws throughput and latency side by side: a title line and rows.
func (m *Model) charts(w, rows int) []string {
	lw := (w - 1) / 2
	rw := w - 1 - lw
	pts := m.hist.tail(2 * max(lw, rw))
	rate := make([]float64, len(pts))
	lat := make([][]float64, 4)
	for k := range lat {
		lat[k] = make([]float64, len(pts))
	}
	for i, p := range pts {
		rate[i] = p.Rate
		lat[0][i], lat[1][i], lat[2][i], lat[3][i] = float64(p.Lat.P50), float64(p.Lat.P90), float64(p.Lat.P99), float64(p.Lat.P999)
	}
	left, hi := areaChart(rate, lw, rows, 1, m.styles.Throughput)
	right, lo, top := lineChart(lat, rw, rows, true, m.styles.Series[:])
	st := m.styles
	now, _ := m.hist.last()
	lt := st.Heading.Render("jobs/s") + st.Label.Render(" now ") + st.Throughput.Render(fmtRate(now.Rate)) +
		st.Label.Render(" top ") + fmtRate(hi)
	rt := st.Heading.Render("latency") + " " + st.Series[0].Render("p50") + " " + st.Series[1].Render("p90") + " " +
		st.Series[2].Render("p99") + " " + st.Series[3].Render("p99.9")
	if top > 0 {
		rt += st.Label.Render(fmt.Sprintf(" %s–%s log", fmtUS(int64(lo)), fmtUS(int64(top))))
	}
	out := []string{fit(lt, lw) + " " + fit(rt, rw)}
	for i := 0; i < rows; i++ {
		out = append(out, fit(left[i], lw)+st.Dim.Render("│")+fit(right[i], rw))
	}
	return out
}

func (m *Model) footer(w int) string {
	st := m.styles
	switch m.input {
	case inputFilter:
		return st.Key.Render("/") + " " + m.text + "█" + st.Dim.Render("  enter keeps · esc clears · !text excludes")
	case inputWorkers:
		return st.Key.Render("workers:") + " " + m.text + "█" + st.Dim.Render("  enter sets · esc cancels")
	}
	if m.status != "" && m.now.Sub(m.statusAt) < 5*time.Second {
		return st.Status.Render(m.status)
	}
	var parts []string
	if m.table.filter != "" && m.view == viewMain {
		parts = append(parts, st.Key.Render("filter")+" "+m.table.filter)
	}
	k := m.keys
	for _, it := range []struct{ key, desc string }{
		{k.Help.Help().Key, "help"}, {k.Quit.Help().Key, "quit"}, {k.Filter.Help().Key, "filter"},
		{k.SortPrv.Help().Key + k.SortNxt.Help().Key, "sort"}, {k.Reverse.Help().Key, "reverse"},
		{k.Pause.Help().Key, "pause"}, {k.Add.Help().Key + "/" + k.Remove.Help().Key, "workers"},
		{k.Compare.Help().Key, "compare"}, {k.Errors.Help().Key, "errors"}, {k.Detail.Help().Key, "detail"},
	} {
		parts = append(parts, st.Key.Render(it.key)+" "+st.Dim.Render(it.desc))
	}
	return fitItems(parts, w)
}

// fitItems joins items with two spaces, as many as fit in w.
func fitItems(items []string, w int) string {
	var b strings.Builder
	used := 0
	for _, it := range items {
		n := lipgloss.Width(it)
		if used > 0 {
			n += 2
		}
		if used+n > w {
			break
		}
		if used > 0 {
			b.WriteString("  ")
		}
		b.WriteString(it)
		used += n
	}
	return b.String()
}

// joinRight puts right at the right edge of a line of width w.
func joinRight(left, right string, w int) string {
	lw, rw := lipgloss.Width(left), lipgloss.Width(right)
	if lw+rw+1 > w {
		return fit(left, w)
	}
	return left + strings.Repeat(" ", w-lw-rw) + right
}

// ---- waiting and tiny ----

func (m *Model) waitingView(w, h int) []string {
	st := m.styles
	lines := []string{
		st.Title.Render("hosetop") + " " + st.Dim.Render("hose cluster monitor"),
		"",
		st.Waiting.Render("waiting for broker at "+m.cfg.Endpoint) + st.Dim.Render(fmt.Sprintf(" (%s)", fmtAge(m.now.Sub(m.waitSince)))),
		"",
		st.Label.Render("No stats snapshot has arrived yet. hosetop keeps trying and connects by itself"),
		st.Label.Render("as soon as a broker publishes there. Start one with:"),
		"",
		"  hose broker -stats " + m.cfg.Endpoint,
		"  hose cluster -workers 4 -handler echo -stats " + m.cfg.Endpoint,
		"  hosetop -demo" + st.Dim.Render("   (a broker, workers and load in this process)"),
	}
	if m.decodeErr != "" {
		lines = append(lines, "", st.Bad.Render("the last message could not be read: "+m.decodeErr))
	}
	return body(lines, h, fitItems([]string{st.Key.Render("q") + " " + st.Dim.Render("quit"), st.Key.Render("?") + " " + st.Dim.Render("help")}, w))
}

func (m *Model) tinyView(w, h int) []string {
	if m.shown == nil {
		return []string{"hosetop: waiting for", m.cfg.Endpoint}
	}
	pt, _ := m.hist.last()
	s := m.shown
	lines := []string{
		fmt.Sprintf("%s/s p99 %s", fmtRate(pt.Rate), fmtUS(pt.Lat.P99)),
		fmt.Sprintf("%d workers q %d", s.Live(), s.QueueDepth()),
	}
	if m.waiting {
		lines = append(lines, "waiting for broker")
	} else if m.paused {
		lines = append(lines, "PAUSED")
	}
	return append(lines, "(enlarge: "+fmt.Sprintf("%dx%d", w, h)+")")
}
