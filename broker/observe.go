package broker

import (
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/hose-project/hose/stats"
)

// Latency histograms cover 1 µs to 1 hour with 2 significant digits: about
// 25 KiB each, so one per worker stays cheap with hundreds of workers.
const (
	histMinUS = stats.HistMinUS
	histMaxUS = stats.HistMaxUS
)

// lostKeep is how long a lost worker stays in the published snapshots, and
// lostMax bounds how many are kept.
const (
	lostKeep = 60 * time.Second
	lostMax  = 1000
)

// maxQueueRows bounds the queues listed in a snapshot (services are created
// on demand by request names).
const maxQueueRows = 256

func newHist() *hdrhistogram.Histogram { return stats.NewHistogram() }

// observations are what the stats publisher needs beyond the broker's own
// state: the latency histograms of the current interval, recently lost
// workers and the previous interval's totals. The loop goroutine owns them.
type observations struct {
	queue   *hdrhistogram.Histogram // arrival to dispatch
	service *hdrhistogram.Histogram // dispatch to result
	total   *hdrhistogram.Histogram // arrival to result

	lost    []lostWorker
	hwmEver map[string]int // deepest each queue has been

	seq      uint64
	lastPub  int64    // loop time of the previous snapshot
	lastTots Counters // totals at the previous snapshot

	enc     *stats.Encoder // compresses the histograms without garbage
	metrics *metricsServer // nil when Config.Metrics is off
}

// lostWorker is the last row of a worker dropped for silence, slowness or
// unreachability, kept for lostKeep.
type lostWorker struct {
	row    stats.Worker
	at     int64
	reason string
}

func newObservations() observations {
	return observations{queue: newHist(), service: newHist(), total: newHist(), hwmEver: make(map[string]int), enc: stats.NewEncoder()}
}

// record adds a duration in nanoseconds to h, clamped to its range.
func (o *observations) record(h *hdrhistogram.Histogram, ns int64) {
	us := ns / 1000
	if us < histMinUS {
		us = histMinUS
	} else if us > histMaxUS {
		us = histMaxUS
	}
	_ = h.RecordValue(us)
}

// dropped notes that w left the broker. A worker that said goodbye is
// simply gone; one dropped by the broker is listed as lost for a while.
func (o *observations) dropped(w *worker, now int64, why string) {
	if why == "disconnected" {
		return
	}
	row := workerRow(w, now)
	row.State = stats.StateLost
	row.LostReason = why
	if len(o.lost) >= lostMax {
		o.lost = append(o.lost[:0], o.lost[1:]...)
	}
	o.lost = append(o.lost, lostWorker{row: row, at: now, reason: why})
}

// workerRow describes w as a snapshot row.
func workerRow(w *worker, now int64) stats.Worker {
	row := stats.Worker{
		ID: w.wid, Host: w.host, PID: w.pid, Version: w.version, Capacity: w.capacity,
		InFlight: w.inflight, Done: w.done, Errors: w.errs, State: workerState(w),
		LastHeardMS: float64(now-w.lastSeen) / 1e6, AgeS: float64(now-w.joined) / 1e9,
		Services: make([]string, 0, len(w.svcs)),
	}
	for _, svc := range w.svcs {
		row.Services = append(row.Services, svc.name)
	}
	if n := w.service.TotalCount(); n > 0 {
		row.Jobs = n
		row.P50US = w.service.ValueAtQuantile(50)
		row.P99US = w.service.ValueAtQuantile(99)
	}
	return row
}

func workerState(w *worker) string {
	switch {
	case w.dead:
		return stats.StateLost
	case w.draining:
		return stats.StateDraining
	case w.inflight >= w.capacity:
		return stats.StateBusy
	}
	return stats.StateReady
}
