package tui

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/hose-project/hose/stats"
)

// t0 is the fixed wall clock of the synthetic broker.
var t0 = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

// world is a synthetic broker whose snapshots the tests feed to the model.
type world struct {
	inst string
	pid  uint32
	up   float64
	seq  uint64
	tot  stats.Counters
	errs map[string]uint64
	done map[uint32]uint64
	werr map[uint32]uint64
}

func newWorld() *world {
	return &world{inst: "00000000000000a1", pid: 4242, up: 100, errs: map[string]uint64{}, done: map[uint32]uint64{}, werr: map[uint32]uint64{}}
}

// step is one interval of the synthetic broker.
type step struct {
	dt      float64 // seconds; default 1
	ok, bad uint64  // answers in the interval; bad ones are worker errors
	expired uint64  // deadline errors
	workers int     // live workers, ids 1..workers
	busy    int     // the first busy ones are at capacity
	lost    []uint32
	queue   int
	lat     int64 // median latency in µs; default 800
}

func (w *world) next(s step) SnapshotMsg {
	if s.dt == 0 {
		s.dt = 1
	}
	if s.lat == 0 {
		s.lat = 800
	}
	w.up += s.dt
	w.seq++
	n := s.ok + s.bad + s.expired
	w.tot.Received += n
	w.tot.Dispatched += s.ok + s.bad
	w.tot.Replied += s.ok
	w.tot.Errors += s.bad + s.expired
	w.tot.Expired += s.expired
	w.errs["worker_error"] += s.bad
	w.errs["deadline_exceeded"] += s.expired

	h := stats.NewHistogram()
	if c := int64(s.ok + s.bad); c > 0 {
		_ = h.RecordValues(s.lat, c*50/100+c%2)
		_ = h.RecordValues(2*s.lat, c*40/100)
		_ = h.RecordValues(5*s.lat, c*9/100)
		_ = h.RecordValues(20*s.lat, c*1/100)
	}
	total, err := stats.Summarize(h)
	if err != nil {
		panic(err)
	}
	snap := &stats.Snapshot{
		Schema: stats.Schema, Seq: w.seq, Time: t0.Add(time.Duration(w.up * float64(time.Second))), IntervalS: s.dt,
		Broker: stats.Broker{
			PID: w.pid, Host: "broker-host", Version: "0.1.0", Instance: w.inst, Started: t0,
			UptimeS: w.up, Frontend: "tcp://127.0.0.1:5555", Backend: "tcp://127.0.0.1:5556", Queued: s.queue,
		},
		Totals: w.tot,
		Rates: stats.Rates{
			Received: float64(n) / s.dt, Dispatched: float64(s.ok+s.bad) / s.dt, Replied: float64(s.ok) / s.dt,
			Errors: float64(s.bad+s.expired) / s.dt, Expired: float64(s.expired) / s.dt,
		},
		Queues:       []stats.Queue{{Service: "default", Depth: s.queue, HighWater: s.queue + 3, HighWaterEver: 40, Workers: s.workers}},
		Latency:      stats.Latency{Total: total, Service: total},
		WorkerStates: map[string]int{},
	}
	for _, kind := range []string{"worker_error", "deadline_exceeded"} {
		if v := w.errs[kind]; v > 0 {
			st := map[string]int{"worker_error": 6, "deadline_exceeded": 8}[kind]
			r := float64(s.bad) / s.dt
			if kind == "deadline_exceeded" {
				r = float64(s.expired) / s.dt
			}
			snap.Errors = append(snap.Errors, stats.Error{Kind: kind, Status: st, Total: v, Rate: r})
		}
	}
	for id := uint32(1); id <= uint32(s.workers); id++ {
		share := (s.ok + s.bad) / uint64(max(s.workers, 1))
		w.done[id] += share
		if id == 2 {
			w.werr[id] += s.bad
		}
		row := stats.Worker{
			ID: id, Host: []string{"node-a", "node-b"}[id%2], PID: 1000 + id, Version: "0.1.0",
			Services: []string{"default"}, Capacity: 4, InFlight: int(id % 3), Done: w.done[id], Errors: w.werr[id],
			State: stats.StateReady, LastHeardMS: float64(100 + 7*id), AgeS: w.up - float64(id),
			Jobs: int64(share), P50US: s.lat + int64(id), P99US: 5*s.lat + int64(10*id),
		}
		if id%2 == 0 {
			row.Services = []string{"default", "resize"}
		}
		if int(id) <= s.busy {
			row.State, row.InFlight = stats.StateBusy, 4
		}
		snap.Workers = append(snap.Workers, row)
	}
	for _, id := range s.lost {
		snap.Workers = append(snap.Workers, stats.Worker{
			ID: id, Host: "node-c", PID: 1000 + id, Version: "0.1.0", Services: []string{"default"}, Capacity: 4,
			Done: 77, State: stats.StateLost, LastHeardMS: 4200, AgeS: 60, LostReason: "silent", LostS: 2,
		})
	}
	for i := range snap.Workers {
		snap.WorkerStates[snap.Workers[i].State]++
	}
	d, _ := total.Histogram()
	return SnapshotMsg{Snap: snap, Total: d, At: snap.Time.Add(3 * time.Millisecond)}
}

// fakeControl is a Controller that records what it is asked.
type fakeControl struct {
	mu      sync.Mutex
	workers int
	sets    []int
	fail    error
}

func (f *fakeControl) Workers(context.Context) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.workers, f.fail
}

func (f *fakeControl) SetWorkers(_ context.Context, n int) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.workers, f.fail
	}
	f.sets = append(f.sets, n)
	f.workers = n
	return n, nil
}

// testModel is a model on the fixed clock, sized w x h.
func testModel(t testing.TB, cfg Config, w, h int) *Model {
	t.Helper()
	if cfg.Endpoint == "" {
		cfg.Endpoint = "tcp://127.0.0.1:5557"
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return t0 }
	}
	m := New(cfg)
	m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	return m
}

// press sends keys (one string per key) and returns the last command.
func press(m *Model, keys ...string) tea.Cmd {
	var cmd tea.Cmd
	for _, k := range keys {
		_, cmd = m.Update(keyMsg(k))
	}
	return cmd
}

func keyMsg(k string) tea.KeyPressMsg {
	switch k {
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	case "up":
		return tea.KeyPressMsg{Code: tea.KeyUp}
	case "down":
		return tea.KeyPressMsg{Code: tea.KeyDown}
	case "tab":
		return tea.KeyPressMsg{Code: tea.KeyTab}
	case "backspace":
		return tea.KeyPressMsg{Code: tea.KeyBackspace}
	case "space":
		return tea.KeyPressMsg{Code: tea.KeySpace, Text: " "}
	}
	r := []rune(k)
	if len(r) != 1 {
		panic(fmt.Sprintf("key %q", k))
	}
	return tea.KeyPressMsg{Code: r[0], Text: k}
}

// run executes cmd (and the batches it holds) and feeds the messages back,
// skipping the clock and the source, until nothing is left.
func run(m *Model, cmd tea.Cmd) {
	queue := []tea.Cmd{cmd}
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		if c == nil {
			continue
		}
		msg := c()
		switch msg := msg.(type) {
		case tea.BatchMsg:
			queue = append(queue, msg...)
		case controlMsg, exportMsg:
			_, next := m.Update(msg)
			queue = append(queue, next)
		}
	}
}

// feed sends snapshots of steps to the model.
func feed(m *Model, w *world, steps ...step) {
	for _, s := range steps {
		m.Update(w.next(s))
	}
}

func repeat(s step, n int) []step {
	out := make([]step, n)
	for i := range out {
		out[i] = s
	}
	return out
}
