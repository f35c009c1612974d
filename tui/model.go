// Package tui is hosetop: a terminal dashboard of a hose broker's stats
// stream, in the manner of htop and k9s. It charts throughput and latency
// percentiles, lists the workers (sort, filter, detail), shows errors by
// kind, and, when it controls the cluster (its own demo or a `hose cluster`
// control endpoint), changes the worker count and compares the steady state
// reached at each count.
//
// The Model is plain state. Update switches on the message type and hands
// off to small methods; View is pure. Snapshots come from a Source, whose
// goroutine owns the ZeroMQ socket.
package tui

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/hose-project/hose/stats"
)

// Controller changes the worker count of a cluster: *cluster.ControlClient
// for a running `hose cluster`, or hosetop's own demo.
type Controller interface {
	Workers(ctx context.Context) (int, error)
	SetWorkers(ctx context.Context, n int) (int, error)
}

// Config configures the model.
type Config struct {
	// Endpoint is the stats endpoint, for the waiting screen.
	Endpoint string
	// Next returns the command that delivers the next message from the
	// stats source (Source.Next). Nil: messages come from elsewhere (tests).
	Next func() tea.Cmd
	// Refresh is the initial refresh interval of the display. Default 1s.
	Refresh time.Duration
	// Now is the clock the model's commands read. Default time.Now.
	Now func() time.Time
	// Control, when set, lets hosetop change the worker count; ControlName
	// describes it ("demo", "hose cluster at tcp://...").
	Control     Controller
	ControlName string
	// Load describes the load, when hosetop knows it (the demo's).
	Load string
	// Settle is how long after a worker-count change the comparison waits
	// before measuring. Default 3s.
	Settle time.Duration
	// ExportDir is where the comparison is exported. Default ".".
	ExportDir string
	// Keys and Styles default to DefaultKeyMap and DefaultStyles(true).
	Keys   *KeyMap
	Styles *Styles
}

// refreshSteps are the refresh intervals [ and ] step through.
var refreshSteps = []time.Duration{
	250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second,
}

// maxWorkers bounds the counts hosetop asks for.
const maxWorkers = 1024

type viewID int

const (
	viewMain viewID = iota
	viewDetail
	viewErrors
	viewCompare
	viewHelp
)

type inputKind int

const (
	inputNone inputKind = iota
	inputFilter
	inputWorkers
)

// Model is hosetop's state.
type Model struct {
	cfg    Config
	keys   KeyMap
	styles Styles
	width  int
	height int
	now    time.Time

	// Connection.
	waiting   bool // no snapshot arrives now
	lastSeen  time.Time
	waitSince time.Time
	decodeErr string

	// Data shown: the snapshot of the last refresh and the one before.
	shown     *stats.Snapshot
	shownPrev *stats.Snapshot
	rates     map[uint32]float64 // jobs/s per worker between the two
	hist      *ring[point]
	whist     map[uint32]*ring[workerPoint]
	lastApply time.Time

	// Received since the last refresh.
	pend pending

	paused  bool
	refresh int // index in refreshSteps

	view     viewID
	lastView viewID // where esc returns from help
	table    tableState
	input    inputKind
	text     string // the prompt's text

	ctl ctlState
	cmp *comparison

	status   string
	statusAt time.Time
}

// pending gathers the snapshots received since the last refresh.
type pending struct {
	last    *stats.Snapshot
	n       int
	seconds float64
	ok      float64 // answers with status ok
	errors  float64
	hist    *hdrhistogram.Histogram
}

type ctlState struct {
	known   bool // the controller answered at least once
	workers int  // its last answer
	target  int  // the count asked for
	busy    bool // a request is in flight
	err     string
}

// New returns a model in the waiting state.
func New(cfg Config) *Model {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 3 * time.Second
	}
	if cfg.ExportDir == "" {
		cfg.ExportDir = "."
	}
	m := &Model{
		cfg:     cfg,
		keys:    DefaultKeyMap(),
		styles:  DefaultStyles(true),
		waiting: true,
		hist:    newRing[point](historyLen),
		whist:   map[uint32]*ring[workerPoint]{},
		rates:   map[uint32]float64{},
		refresh: 2,
		cmp:     newComparison(cfg.Settle),
		now:     cfg.Now(),
	}
	m.waitSince = m.now
	m.pend.hist = stats.NewHistogram()
	if cfg.Keys != nil {
		m.keys = *cfg.Keys
	}
	if cfg.Styles != nil {
		m.styles = *cfg.Styles
	}
	if cfg.Refresh > 0 {
		m.refresh = len(refreshSteps) - 1
		for i, d := range refreshSteps {
			if d >= cfg.Refresh {
				m.refresh = i
				break
			}
		}
	}
	return m
}

// Init starts the clock, the stats source and the first control request.
func (m *Model) Init() tea.Cmd {
	return tea.Batch(m.next(), m.tick(), m.getWorkers())
}

func (m *Model) next() tea.Cmd {
	if m.cfg.Next == nil {
		return nil
	}
	return m.cfg.Next()
}

func (m *Model) tick() tea.Cmd {
	now := m.cfg.Now
	return tea.Tick(time.Second, func(time.Time) tea.Msg { return tickMsg(now()) })
}

// Update handles one message.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		return m, nil
	case tea.KeyPressMsg:
		return m, m.onKey(msg)
	case SnapshotMsg:
		m.onSnapshot(msg)
		return m, m.next()
	case WaitingMsg:
		m.onWaiting(msg)
		return m, m.next()
	case tickMsg:
		m.onTick(time.Time(msg))
		return m, m.tick()
	case controlMsg:
		return m, m.onControl(msg)
	case exportMsg:
		m.onExport(msg)
		return m, nil
	}
	return m, nil
}

// ---- stats ----

func (m *Model) onSnapshot(msg SnapshotMsg) {
	s := msg.Snap
	m.now = msg.At
	m.lastSeen = msg.At
	m.waiting = false
	m.decodeErr = ""
	m.cmp.observe(s, msg.Total)
	restarted := m.pend.last != nil && m.pend.last.Broker.Instance != s.Broker.Instance ||
		m.shown != nil && m.shown.Broker.Instance != s.Broker.Instance
	if restarted {
		// Another broker instance: its totals start again.
		m.flash("the broker restarted (pid %d)", s.Broker.PID)
		m.resetPending()
		m.shown, m.shownPrev = nil, nil
	}
	p := &m.pend
	p.last = s
	p.n++
	p.seconds += s.IntervalS
	p.ok += s.Rates.Replied * s.IntervalS
	p.errors += s.Rates.Errors * s.IntervalS
	if msg.Total != nil {
		p.hist.Merge(msg.Total)
	}
	if m.shown == nil || !m.paused && msg.At.Sub(m.lastApply) >= m.refreshEvery()*9/10 {
		m.apply(msg.At)
	}
}

func (m *Model) onWaiting(msg WaitingMsg) {
	m.now = msg.At
	if msg.Err != "" {
		m.decodeErr = msg.Err
		return
	}
	if !m.waiting {
		m.waitSince = msg.At
	}
	m.waiting = true
	if !msg.LastSeen.IsZero() {
		m.lastSeen = msg.LastSeen
	}
}

func (m *Model) onTick(t time.Time) {
	m.now = t
	if !m.paused && m.pend.last != nil && t.Sub(m.lastApply) >= m.refreshEvery() {
		m.apply(t)
	}
}

func (m *Model) refreshEvery() time.Duration { return refreshSteps[m.refresh] }

func (m *Model) resetPending() {
	h := m.pend.hist
	h.Reset()
	m.pend = pending{hist: h}
}

// apply moves what was received since the last refresh onto the screen.
func (m *Model) apply(at time.Time) {
	p := &m.pend
	s := p.last
	if s == nil {
		return
	}
	pt := point{At: s.Time, Queue: s.QueueDepth(), Live: s.Live(), Lat: stats.PercentilesOf(p.hist)}
	if p.seconds > 0 {
		pt.Rate = p.ok / p.seconds
		pt.ErrRate = p.errors / p.seconds
	}
	m.hist.push(pt)

	prev := m.shown
	m.shownPrev, m.shown = prev, s
	dt := stats.Elapsed(prev, s)
	rates := make(map[uint32]float64, len(s.Workers))
	seen := make(map[uint32]bool, len(s.Workers))
	for i := range s.Workers {
		w := &s.Workers[i]
		seen[w.ID] = true
		if dt > 0 {
			if pw := prev.Worker(w.ID); pw != nil && w.Done >= pw.Done {
				rates[w.ID] = float64(w.Done-pw.Done) / dt
			}
		}
		if w.State == stats.StateLost {
			continue
		}
		wh := m.whist[w.ID]
		if wh == nil {
			wh = newRing[workerPoint](workerHistoryLen)
			m.whist[w.ID] = wh
		}
		wh.push(workerPoint{Rate: rates[w.ID], P50: w.P50US, P99: w.P99US})
	}
	for id := range m.whist {
		if !seen[id] {
			delete(m.whist, id)
		}
	}
	m.rates = rates
	if m.table.selected == 0 || s.Worker(m.table.selected) == nil {
		// Nothing selected, or the selected worker left: take the row at
		// the top of the window.
		if rows := m.rows(); len(rows) > 0 {
			m.table.selected = rows[min(max(m.table.offset, 0), len(rows)-1)].w.ID
		}
	}
	m.lastApply = at
	m.resetPending()
}

// rows are the table rows of the shown snapshot.
func (m *Model) rows() []row { return buildRows(m.shown, m.rates, m.table) }

// ---- keys ----

func (m *Model) onKey(msg tea.KeyPressMsg) tea.Cmd {
	if m.input != inputNone {
		return m.onInputKey(msg)
	}
	k := m.keys
	switch {
	case key.Matches(msg, k.Quit):
		return tea.Quit
	case key.Matches(msg, k.Help):
		if m.view == viewHelp {
			m.view = m.lastView
		} else {
			m.lastView, m.view = m.view, viewHelp
		}
	case key.Matches(msg, k.Back):
		m.back()
	case key.Matches(msg, k.Pause):
		m.togglePause()
	case key.Matches(msg, k.Faster):
		m.setRefresh(m.refresh - 1)
	case key.Matches(msg, k.Slower):
		m.setRefresh(m.refresh + 1)
	case key.Matches(msg, k.Filter):
		m.input, m.text = inputFilter, m.table.filter
		m.view = viewMain
	case key.Matches(msg, k.SortNxt):
		m.sortStep(1)
	case key.Matches(msg, k.SortPrv):
		m.sortStep(-1)
	case key.Matches(msg, k.Reverse):
		m.table.reverse = !m.table.reverse
	case key.Matches(msg, k.Up):
		m.move(-1)
	case key.Matches(msg, k.Down):
		m.move(1)
	case key.Matches(msg, k.PgUp):
		m.move(-m.tableHeight())
	case key.Matches(msg, k.PgDown):
		m.move(m.tableHeight())
	case key.Matches(msg, k.Top):
		m.move(-1 << 30)
	case key.Matches(msg, k.Bottom):
		m.move(1 << 30)
	case key.Matches(msg, k.Detail):
		if m.view == viewMain && m.table.selected != 0 {
			m.view = viewDetail
		}
	case key.Matches(msg, k.Errors):
		m.view = toggle(m.view, viewErrors)
	case key.Matches(msg, k.Compare):
		m.view = toggle(m.view, viewCompare)
	case key.Matches(msg, k.Next):
		m.view = map[viewID]viewID{viewMain: viewErrors, viewErrors: viewCompare, viewCompare: viewMain, viewDetail: viewMain, viewHelp: viewMain}[m.view]
	case key.Matches(msg, k.Add):
		return m.stepWorkers(1)
	case key.Matches(msg, k.Remove):
		return m.stepWorkers(-1)
	case key.Matches(msg, k.SetN):
		if m.cfg.Control == nil {
			m.flash("%s", noControl)
			return nil
		}
		m.input, m.text = inputWorkers, ""
	case key.Matches(msg, k.Export):
		return m.export()
	case key.Matches(msg, k.Clear):
		m.cmp.clear()
		m.flash("comparison cleared")
	}
	return nil
}

func toggle(cur, v viewID) viewID {
	if cur == v {
		return viewMain
	}
	return v
}

func (m *Model) back() {
	switch {
	case m.view == viewHelp:
		m.view = m.lastView
	case m.view != viewMain:
		m.view = viewMain
	case m.table.filter != "":
		m.table.filter = ""
	}
}

func (m *Model) togglePause() {
	m.paused = !m.paused
	if !m.paused && m.pend.last != nil {
		m.apply(m.now)
	}
}

func (m *Model) setRefresh(i int) {
	m.refresh = min(max(i, 0), len(refreshSteps)-1)
	m.flash("refresh every %v", refreshSteps[m.refresh])
}

func (m *Model) sortStep(d int) {
	cols := visibleColumns(m.contentWidth())
	at := 0
	for i, c := range cols {
		if c == m.table.sortCol {
			at = i
		}
	}
	m.table.sortCol = cols[(at+d+len(cols))%len(cols)]
}

// move moves the selection by d rows, within the filtered, sorted rows.
func (m *Model) move(d int) {
	rows := m.rows()
	if len(rows) == 0 {
		return
	}
	i := selectedIndex(rows, m.table.selected) + d
	i = min(max(i, 0), len(rows)-1)
	m.table.selected = rows[i].w.ID
	m.table.offset = scrollOffset(m.table.offset, i, m.tableHeight()-1, len(rows))
}

// onInputKey edits the prompt: the filter applies as it is typed.
func (m *Model) onInputKey(msg tea.KeyPressMsg) tea.Cmd {
	switch msg.String() {
	case "esc":
		if m.input == inputFilter {
			m.table.filter = ""
		}
		m.input = inputNone
		return nil
	case "enter":
		kind := m.input
		m.input = inputNone
		if kind == inputWorkers {
			var n int
			if _, err := fmt.Sscan(m.text, &n); err != nil || n < 0 {
				m.flash("not a worker count: %q", m.text)
				return nil
			}
			return m.requestWorkers(n)
		}
		return nil
	case "backspace", "ctrl+h":
		if r := []rune(m.text); len(r) > 0 {
			m.text = string(r[:len(r)-1])
		}
	case "ctrl+u":
		m.text = ""
	case "ctrl+c":
		return tea.Quit
	default:
		if t := msg.Key().Text; t != "" && len([]rune(m.text)) < 64 {
			m.text += t
		}
	}
	if m.input == inputFilter {
		m.table.filter = m.text
		m.table.offset = 0
	}
	return nil
}

// ---- worker count ----

const noControl = "hosetop controls no cluster here: run hosetop -demo, or hose cluster with -control"

func (m *Model) getWorkers() tea.Cmd {
	c := m.cfg.Control
	if c == nil {
		return nil
	}
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := c.Workers(ctx)
		return controlMsg{workers: n, err: err}
	}
}

func (m *Model) stepWorkers(d int) tea.Cmd {
	if m.cfg.Control == nil {
		m.flash("%s", noControl)
		return nil
	}
	base := m.ctl.target
	if !m.ctl.known && !m.ctl.busy && m.shown != nil {
		base = m.shown.Live()
	}
	return m.requestWorkers(base + d)
}

// requestWorkers asks for n workers. Requests never overlap: while one is
// in flight, only the target moves, and the answer sends the next.
func (m *Model) requestWorkers(n int) tea.Cmd {
	if m.cfg.Control == nil {
		m.flash("%s", noControl)
		return nil
	}
	n = min(max(n, 0), maxWorkers)
	m.ctl.target = n
	if m.ctl.busy {
		return nil
	}
	m.ctl.busy = true
	c := m.cfg.Control
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		got, err := c.SetWorkers(ctx, n)
		return controlMsg{set: true, workers: got, err: err}
	}
}

func (m *Model) onControl(msg controlMsg) tea.Cmd {
	if msg.set {
		m.ctl.busy = false
	}
	if msg.err != nil {
		m.ctl.err = msg.err.Error()
		if msg.set {
			m.flash("worker count not changed: %v", msg.err)
			if m.ctl.known {
				m.ctl.target = m.ctl.workers
			}
		}
		return nil
	}
	m.ctl.err = ""
	first := !m.ctl.known
	m.ctl.known = true
	m.ctl.workers = msg.workers
	if !msg.set {
		if first || !m.ctl.busy {
			m.ctl.target = msg.workers
		}
		return nil
	}
	if m.ctl.target != msg.workers {
		return m.requestWorkers(m.ctl.target)
	}
	m.flash("%d workers", msg.workers)
	return nil
}

// ---- export ----

func (m *Model) export() tea.Cmd {
	rows := m.cmp.rows()
	if len(rows) == 0 {
		m.flash("nothing to export yet: the comparison fills %v after each change of the worker count", m.cfg.Settle)
		return nil
	}
	info := exportInfo{Generated: m.now, Load: m.cfg.Load, SettleS: m.cfg.Settle.Seconds(), Broker: m.cfg.Endpoint}
	if s := m.shown; s != nil {
		info.Broker = fmt.Sprintf("pid %d on %s (%s), stats %s", s.Broker.PID, s.Broker.Host, s.Broker.Version, m.cfg.Endpoint)
	}
	js, err := exportJSON(info, rows)
	if err != nil {
		m.flash("export: %v", err)
		return nil
	}
	md := exportMarkdown(info, rows)
	base := filepath.Join(m.cfg.ExportDir, "hosetop-compare-"+m.now.Format("20060102-150405"))
	return writeFiles(map[string][]byte{base + ".md": md, base + ".json": js})
}

func (m *Model) onExport(msg exportMsg) {
	if msg.err != nil {
		m.flash("export failed: %v", msg.err)
		return
	}
	m.flash("exported %s", joinPaths(msg.paths))
}

func (m *Model) flash(format string, args ...any) {
	m.status = fmt.Sprintf(format, args...)
	m.statusAt = m.now
}
