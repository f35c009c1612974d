package tui

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/hose-project/hose/stats"
)

func TestWaitingUntilTheFirstSnapshot(t *testing.T) {
	m := testModel(t, Config{}, 80, 24)
	if !m.waiting || m.shown != nil {
		t.Fatal("a new model is not waiting")
	}
	if v := plain(m); !strings.Contains(v, "waiting for broker at tcp://127.0.0.1:5557") {
		t.Fatalf("waiting view:\n%s", v)
	}
	w := newWorld()
	feed(m, w, step{ok: 100, workers: 2})
	if m.waiting || m.shown == nil || m.shown.Seq != 1 {
		t.Fatalf("after a snapshot: waiting %v, shown %v", m.waiting, m.shown)
	}
	// The broker goes away: the last figures stay, marked as stale.
	m.Update(WaitingMsg{Endpoint: "tcp://127.0.0.1:5557", LastSeen: m.lastSeen, At: m.lastSeen.Add(4 * time.Second)})
	if !m.waiting || m.shown == nil {
		t.Fatal("the model dropped its figures when the broker went away")
	}
	if v := plain(m); !strings.Contains(v, "waiting for broker at tcp://127.0.0.1:5557: last snapshot 4s ago") {
		t.Fatalf("stale view:\n%s", v)
	}
	// It comes back (restarted: another instance).
	w.inst, w.up, w.tot = "00000000000000b2", 1, stats.Counters{}
	feed(m, w, step{ok: 10, workers: 1})
	if m.waiting || m.shown.Broker.Instance != w.inst || !strings.Contains(m.status, "restarted") {
		t.Fatalf("after the restart: waiting %v, instance %s, status %q", m.waiting, m.shown.Broker.Instance, m.status)
	}
}

func TestDecodeErrorShown(t *testing.T) {
	m := testModel(t, Config{}, 80, 24)
	m.Update(WaitingMsg{Endpoint: "tcp://127.0.0.1:5557", At: t0, Err: "stats: unsupported snapshot schema 9"})
	if v := plain(m); !strings.Contains(v, "unsupported snapshot schema 9") {
		t.Fatalf("view:\n%s", v)
	}
}

func TestRefreshMergesSnapshots(t *testing.T) {
	m := testModel(t, Config{Refresh: 2 * time.Second}, 80, 24)
	w := newWorld()
	feed(m, w, step{ok: 100, workers: 2}) // the first is shown at once
	feed(m, w, step{ok: 300, workers: 2}, step{ok: 500, bad: 100, workers: 2})
	if m.hist.len() != 2 {
		t.Fatalf("%d chart points after 3 snapshots at a 2s refresh, want 2", m.hist.len())
	}
	pt, _ := m.hist.last()
	// Two one-second intervals merged: 900 answers in 2s, 100 of them errors:
	// 400 ok and 50 errors a second.
	if pt.Rate != 400 || pt.ErrRate != 50 || pt.Lat.Count != 900 {
		t.Fatalf("merged point %+v", pt)
	}
	// ] makes it faster: every snapshot is shown.
	press(m, "]", "]")
	if m.refreshEvery() != 500*time.Millisecond {
		t.Fatalf("refresh %v", m.refreshEvery())
	}
	feed(m, w, step{ok: 10, workers: 2})
	if m.hist.len() != 3 {
		t.Fatalf("%d points", m.hist.len())
	}
	press(m, "[", "[", "[", "[", "[", "[", "[")
	if m.refreshEvery() != 10*time.Second {
		t.Fatalf("slowest refresh %v", m.refreshEvery())
	}
}

func TestTickAppliesPendingSnapshots(t *testing.T) {
	m := testModel(t, Config{Refresh: 2 * time.Second}, 80, 24)
	w := newWorld()
	feed(m, w, step{ok: 100, workers: 2}, step{ok: 100, workers: 2})
	if m.hist.len() != 1 {
		t.Fatalf("%d points", m.hist.len())
	}
	m.Update(tickMsg(m.lastApply.Add(2 * time.Second)))
	if m.hist.len() != 2 {
		t.Fatalf("the tick did not apply the pending snapshot: %d points", m.hist.len())
	}
}

func TestPause(t *testing.T) {
	m := testModel(t, Config{}, 80, 24)
	w := newWorld()
	feed(m, w, step{ok: 100, workers: 2})
	press(m, "p")
	if !m.paused || !strings.Contains(plain(m), "PAUSED") {
		t.Fatal("p did not pause")
	}
	feed(m, w, step{ok: 200, workers: 3}, step{ok: 400, workers: 3})
	m.Update(tickMsg(t0.Add(time.Hour)))
	if m.shown.Seq != 1 || m.hist.len() != 1 {
		t.Fatalf("paused display moved: seq %d, %d points", m.shown.Seq, m.hist.len())
	}
	// The comparison keeps counting while paused.
	if m.cmp.cur != 3 {
		t.Fatalf("comparison saw %d workers", m.cmp.cur)
	}
	press(m, "space")
	if m.paused || m.shown.Seq != 3 || m.hist.len() != 2 {
		t.Fatalf("resume: paused %v, seq %d, %d points", m.paused, m.shown.Seq, m.hist.len())
	}
	if pt, _ := m.hist.last(); pt.Rate != 300 {
		t.Fatalf("resumed point %+v: want the two paused intervals merged", pt)
	}
}

func ids(rows []row) []uint32 {
	out := make([]uint32, len(rows))
	for i, r := range rows {
		out[i] = r.w.ID
	}
	return out
}

func eqIDs(a []uint32, b ...uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSortAndReverse(t *testing.T) {
	m := testModel(t, Config{}, 120, 40)
	w := newWorld()
	feed(m, w, step{ok: 100, workers: 4, busy: 1, lost: []uint32{9}})
	if got := ids(m.rows()); !eqIDs(got, 1, 2, 3, 4, 9) {
		t.Fatalf("default order %v", got)
	}
	press(m, "r")
	if got := ids(m.rows()); !eqIDs(got, 9, 4, 3, 2, 1) {
		t.Fatalf("reversed %v", got)
	}
	press(m, "r", ">") // STATE: busy, ready..., lost
	if columns[m.table.sortCol].title != "STATE" {
		t.Fatalf("sorted by %s", columns[m.table.sortCol].title)
	}
	if got := ids(m.rows()); !eqIDs(got, 1, 2, 3, 4, 9) {
		t.Fatalf("by state %v", got)
	}
	// Every column sorts; < wraps around to the last one.
	for range columns {
		press(m, ">")
		if len(m.rows()) != 5 {
			t.Fatal("sorting lost rows")
		}
	}
	press(m, "<", "<")
	if m.table.sortCol != len(columns)-1 {
		t.Fatalf("< from the first column gave %s", columns[m.table.sortCol].title)
	}
	// P99 descending: the highest worker id has the highest p99.
	for columns[m.table.sortCol].title != "P99" {
		press(m, "<")
	}
	press(m, "r")
	if got := ids(m.rows()); got[0] != 4 {
		t.Fatalf("by p99 descending %v", got)
	}
}

func TestNarrowTerminalSortsVisibleColumns(t *testing.T) {
	m := testModel(t, Config{}, 60, 20)
	seen := map[string]bool{}
	for range columns {
		press(m, ">")
		seen[columns[m.table.sortCol].title] = true
	}
	if seen["SERVICES"] || seen["AGE"] || !seen["P99"] {
		t.Fatalf("sort keys at 60 columns visited %v", seen)
	}
}

func TestFilter(t *testing.T) {
	m := testModel(t, Config{}, 100, 30)
	w := newWorld()
	feed(m, w, step{ok: 100, workers: 4, lost: []uint32{9}})
	press(m, "/", "n", "o", "d", "e", "-", "b")
	if m.input != inputFilter || m.table.filter != "node-b" {
		t.Fatalf("filter %q, input %v", m.table.filter, m.input)
	}
	if got := ids(m.rows()); !eqIDs(got, 1, 3) {
		t.Fatalf("node-b rows %v", got)
	}
	press(m, "enter")
	if m.input != inputNone || m.table.filter != "node-b" {
		t.Fatal("enter did not keep the filter")
	}
	if !strings.Contains(plain(m), "filter node-b") {
		t.Fatal("the footer does not show the filter")
	}
	// Inverse filter, edited with backspace.
	press(m, "/", "backspace", "backspace", "backspace", "backspace", "backspace", "backspace")
	press(m, "!", "l", "o", "s", "t", "enter")
	if got := ids(m.rows()); !eqIDs(got, 1, 2, 3, 4) {
		t.Fatalf("!lost rows %v", got)
	}
	press(m, "esc")
	if m.table.filter != "" || len(m.rows()) != 5 {
		t.Fatal("esc did not clear the filter")
	}
	// Esc while typing drops the filter too.
	press(m, "/", "z", "z", "esc")
	if m.table.filter != "" || m.input != inputNone {
		t.Fatal("esc while typing kept the filter")
	}
	// Keys typed into the filter are not commands.
	press(m, "/", "q", "p")
	if m.paused || m.table.filter != "qp" {
		t.Fatalf("typing q and p: paused %v filter %q", m.paused, m.table.filter)
	}
}

func TestNavigationAndDetail(t *testing.T) {
	m := testModel(t, Config{}, 100, 30)
	w := newWorld()
	feed(m, w, step{ok: 100, workers: 4})
	if m.table.selected != 1 {
		t.Fatalf("first selection %d", m.table.selected)
	}
	press(m, "down", "j", "down", "down", "down")
	if m.table.selected != 4 {
		t.Fatalf("selected %d after moving past the end", m.table.selected)
	}
	press(m, "g")
	if m.table.selected != 1 {
		t.Fatalf("g selected %d", m.table.selected)
	}
	press(m, "G", "k", "enter")
	if m.view != viewDetail || m.table.selected != 3 {
		t.Fatalf("view %v, selected %d", m.view, m.table.selected)
	}
	if v := plain(m); !strings.Contains(v, "worker 3") || !strings.Contains(v, "node-b") {
		t.Fatalf("detail:\n%s", v)
	}
	press(m, "up")
	if m.table.selected != 2 || !strings.Contains(plain(m), "worker 2") {
		t.Fatal("up in the detail view did not move to the previous worker")
	}
	press(m, "esc")
	if m.view != viewMain {
		t.Fatal("esc did not leave the detail view")
	}
	// The selection follows the worker when the order changes.
	press(m, "r")
	if m.table.selected != 2 {
		t.Fatal("reversing lost the selection")
	}
	// A selected worker that leaves: the selection moves to a worker shown.
	feed(m, w, step{ok: 100, workers: 1})
	if m.table.selected != 1 {
		t.Fatalf("selected %d after worker 2 left", m.table.selected)
	}
}

func TestViewsAndHelp(t *testing.T) {
	m := testModel(t, Config{}, 100, 30)
	w := newWorld()
	feed(m, w, step{ok: 100, bad: 5, expired: 2, workers: 2})
	for _, tc := range []struct {
		key  string
		want viewID
		text string
	}{
		{"e", viewErrors, "errors by kind"},
		{"e", viewMain, "JOBS/S"},
		{"c", viewCompare, "compare worker counts"},
		{"esc", viewMain, "JOBS/S"},
		{"tab", viewErrors, "deadline_exceeded"},
		{"tab", viewCompare, "WORKERS"},
		{"tab", viewMain, "JOBS/S"},
		{"?", viewHelp, "hosetop help"},
		{"?", viewMain, "JOBS/S"},
	} {
		press(m, tc.key)
		if m.view != tc.want || !strings.Contains(plain(m), tc.text) {
			t.Fatalf("after %q: view %v, want %v with %q:\n%s", tc.key, m.view, tc.want, tc.text, plain(m))
		}
	}
	press(m, "c", "?", "esc")
	if m.view != viewCompare {
		t.Fatal("esc from help did not return to the view it came from")
	}
	if cmd := press(m, "q"); cmd == nil || cmd() != tea.Quit() {
		t.Fatal("q does not quit")
	}
}

func TestControlRequestsDoNotOverlap(t *testing.T) {
	fc := &fakeControl{workers: 2}
	m := testModel(t, Config{Control: fc, ControlName: "demo"}, 100, 30)
	feed(m, newWorld(), step{ok: 1, workers: 2})
	run(m, m.getWorkers())
	if !m.ctl.known || m.ctl.workers != 2 || m.ctl.target != 2 {
		t.Fatalf("after get: %+v", m.ctl)
	}
	first := press(m, "+")
	if first == nil || !m.ctl.busy || m.ctl.target != 3 {
		t.Fatalf("+: busy %v target %d", m.ctl.busy, m.ctl.target)
	}
	// While the first request is in flight, + only moves the target.
	if cmd := press(m, "+", "+"); cmd != nil || m.ctl.target != 5 {
		t.Fatalf("+ while busy: cmd %v target %d", cmd != nil, m.ctl.target)
	}
	run(m, first)
	if m.ctl.busy || m.ctl.workers != 5 || len(fc.sets) != 2 || fc.sets[0] != 3 || fc.sets[1] != 5 {
		t.Fatalf("after the answers: %+v, sets %v", m.ctl, fc.sets)
	}
	run(m, press(m, "-"))
	run(m, press(m, "w", "1", "2", "enter"))
	if fc.workers != 12 || m.ctl.workers != 12 {
		t.Fatalf("w 12: cluster has %d", fc.workers)
	}
	if !strings.Contains(plain(m), "control demo 12 workers") {
		t.Fatalf("header:\n%s", plain(m))
	}
	// Never below 0.
	run(m, press(m, "w", "0", "enter"))
	run(m, press(m, "-"))
	if fc.workers != 0 {
		t.Fatalf("workers %d", fc.workers)
	}
	// A failing controller: the count stays, the error is shown.
	fc.fail = errors.New("no answer")
	run(m, press(m, "+"))
	if m.ctl.workers != 0 || m.ctl.target != 0 || !strings.Contains(m.status, "no answer") {
		t.Fatalf("after a failure: %+v, status %q", m.ctl, m.status)
	}
}

func TestNoControl(t *testing.T) {
	m := testModel(t, Config{}, 100, 30)
	for _, k := range []string{"+", "-", "w"} {
		if cmd := press(m, k); cmd != nil || !strings.Contains(m.status, "controls no cluster") {
			t.Fatalf("%s without a controller: status %q", k, m.status)
		}
	}
}

func TestCompareAndExport(t *testing.T) {
	dir := t.TempDir()
	fc := &fakeControl{workers: 2}
	m := testModel(t, Config{Control: fc, ControlName: "demo", Load: "echo at 1000/s", Settle: 2 * time.Second, ExportDir: dir}, 100, 30)
	w := newWorld()
	// 2 workers: the first snapshot starts the trial, the intervals of the
	// next two start within the settle time, then 4 are measured.
	feed(m, w, repeat(step{ok: 400, workers: 2, busy: 2, lat: 2000}, 7)...)
	// 4 workers, with a backlog draining at first: those intervals are left
	// out even once settled.
	feed(m, w, step{ok: 800, workers: 4, queue: 500}, step{ok: 800, workers: 4, queue: 300}, step{ok: 1000, workers: 4, queue: 100})
	feed(m, w, step{ok: 1000, workers: 4, queue: 0})
	if _, ok := m.cmp.trials[4]; ok || !m.cmp.draining {
		t.Fatalf("an interval of a draining backlog was measured: %+v", m.cmp.trials[4])
	}
	press(m, "c")
	if v := plain(m); !strings.Contains(v, "4 workers: waiting for the queue to drain") {
		t.Fatalf("comparison view:\n%s", v)
	}
	press(m, "c")
	// Once drained, it settles again before measuring.
	feed(m, w, repeat(step{ok: 1000, bad: 10, workers: 4, lat: 500}, 6)...)
	rows := m.cmp.rows()
	if len(rows) != 2 {
		t.Fatalf("trials %+v", rows)
	}
	two, four := rows[0], rows[1]
	near := func(got, want int64) bool { return got >= want && got <= want+want/100 }
	if two.Workers != 2 || two.Seconds != 4 || two.JobsPerS != 400 || !near(two.P50US, 2000) || two.ErrorRate != 0 {
		t.Fatalf("2 workers: %+v", two)
	}
	if four.Workers != 4 || four.Seconds != 4 || four.JobsPerS != 1000 || !near(four.P50US, 500) || four.ErrorRate != 40.0/4040 {
		t.Fatalf("4 workers: %+v", four)
	}
	if !near(four.P99US, 2500) {
		t.Fatalf("4 workers p99 %d", four.P99US)
	}
	press(m, "c")
	v := plain(m)
	if !strings.Contains(v, "1000") || !strings.Contains(v, "4 workers: measuring") {
		t.Fatalf("comparison view:\n%s", v)
	}
	m.now = t0.Add(time.Hour)
	run(m, press(m, "x"))
	if !strings.Contains(m.status, "exported") {
		t.Fatalf("status %q", m.status)
	}
	md, err := os.ReadFile(filepath.Join(dir, "hosetop-compare-20261204-130000.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "| 2 | 4s | 400.0 | 2.0ms | ") || !strings.Contains(string(md), "| 4 | 4s | 1000.0 | 501µs |") ||
		!strings.Contains(string(md), "load: echo at 1000/s") {
		t.Fatalf("markdown:\n%s", md)
	}
	js, err := os.ReadFile(filepath.Join(dir, "hosetop-compare-20261204-130000.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Load   string  `json:"load"`
		Trials []Trial `json:"trials"`
	}
	if err := json.Unmarshal(js, &doc); err != nil || len(doc.Trials) != 2 || doc.Trials[1].JobsPerS != 1000 || doc.Load != "echo at 1000/s" {
		t.Fatalf("json %s: %v", js, err)
	}
	press(m, "X")
	if len(m.cmp.rows()) != 0 {
		t.Fatal("X did not clear the comparison")
	}
	press(m, "x")
	if !strings.Contains(m.status, "nothing to export") {
		t.Fatalf("status %q", m.status)
	}
}

func TestCompareRestartsOnANewBroker(t *testing.T) {
	m := testModel(t, Config{Settle: time.Second}, 100, 30)
	w := newWorld()
	feed(m, w, repeat(step{ok: 100, workers: 2}, 4)...)
	w.inst, w.up, w.tot = "00000000000000c3", 1, stats.Counters{}
	feed(m, w, repeat(step{ok: 100, workers: 2}, 3)...)
	rows := m.cmp.rows()
	// 4 snapshots: first is the reference, the second settles, 2 counted;
	// after the restart the same again for one more.
	if len(rows) != 1 || rows[0].Seconds != 3 || rows[0].JobsPerS != 100 {
		t.Fatalf("rows %+v", rows)
	}
}

func TestPerWorkerRates(t *testing.T) {
	m := testModel(t, Config{}, 100, 30)
	w := newWorld()
	feed(m, w, step{ok: 100, workers: 2}, step{ok: 300, workers: 2, dt: 2})
	if r := m.rates[1]; r != 75 {
		t.Fatalf("worker 1 rate %g, want 150 jobs in 2s", r)
	}
	if h := m.whist[1]; h == nil || h.len() != 2 {
		t.Fatal("no worker history")
	}
	feed(m, w, step{ok: 300, workers: 1})
	if _, ok := m.whist[2]; ok {
		t.Fatal("the history of a worker that left is kept")
	}
}

// plain is the view without styles.
func plain(m *Model) string { return ansi.Strip(m.View().Content) }
