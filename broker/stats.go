package broker

import (
	"fmt"
	"sort"
	"time"

	"github.com/hose-project/hose/protocol"
	"github.com/hose-project/hose/stats"
)

// Counters are the broker's running totals since it started.
type Counters struct {
	Received   uint64 // request records accepted for decoding
	Dispatched uint64 // jobs sent to workers (a requeued job counts again)
	Replied    uint64 // answers with status ok
	// Errors counts answers by status (index: protocol.Status).
	Errors        [16]uint64
	Requeued      uint64 // idempotent jobs run again after their worker was lost
	Late          uint64 // results for jobs already answered or unknown
	Cancelled     uint64 // queued jobs dropped because their caller left
	CancelsSeen   uint64 // request ids received in CANCEL messages
	Abandoned     uint64 // queued jobs dropped because their client went silent
	Malformed     uint64 // messages dropped or refused as malformed
	UnknownWorker uint64 // messages from unregistered workers (answered DISCONNECT)
	Unroutable    uint64 // replies that could not be delivered to their client
	WorkersLost   uint64 // workers dropped for silence, slowness or unreachability
	AuthDenied    uint64 // CURVE handshakes refused by the allow-lists (see stats.Counters)
}

// ErrorCount is the number of answers with status st.
func (c *Counters) ErrorCount(st protocol.Status) uint64 {
	if int(st) < len(c.Errors) {
		return c.Errors[st]
	}
	return 0
}

// ErrorTotal is the number of answers with a status other than ok.
func (c *Counters) ErrorTotal() uint64 {
	var n uint64
	for _, e := range c.Errors {
		n += e
	}
	return n
}

// WorkerStats describes one registered worker.
type WorkerStats struct {
	ID        uint32
	PID       uint32
	Host      string
	Version   string
	Services  []string
	Capacity  int
	InFlight  int
	Done      uint64
	Errors    uint64
	Draining  bool
	State     string        // stats.StateReady, StateBusy or StateDraining
	LastHeard time.Duration // since the last message from the worker
	Age       time.Duration
}

// Stats is a snapshot of the broker.
type Stats struct {
	PID      uint32
	Host     string
	Version  string
	Instance uint64
	Uptime   time.Duration
	Counters Counters
	Queued   map[string]int // jobs waiting, by service
	InFlight int
	Clients  int
	Workers  []WorkerStats // registered workers (lost ones are not listed)
}

// snapshot answers Broker.Stats: counters, queues and registered workers,
// without latency figures, cheap enough to poll.
func (b *Broker) snapshot(now int64) Stats {
	s := Stats{
		PID: b.pid, Host: b.host, Version: protocol.Version, Instance: b.instance,
		Uptime: time.Duration(now), Counters: b.counters, Queued: make(map[string]int),
		InFlight: len(b.jobs), Clients: len(b.clients),
	}
	for name, svc := range b.services {
		s.Queued[name] = svc.live
	}
	for _, w := range b.workers {
		ws := WorkerStats{
			ID: w.wid, PID: w.pid, Host: w.host, Version: w.version, Capacity: w.capacity,
			InFlight: w.inflight, Done: w.done, Errors: w.errs, Draining: w.draining, State: workerState(w),
			LastHeard: time.Duration(now - w.lastSeen), Age: time.Duration(now - w.joined),
		}
		for _, svc := range w.svcs {
			ws.Services = append(ws.Services, svc.name)
		}
		s.Workers = append(s.Workers, ws)
	}
	return s
}

// errorKind names a status in snapshots and metrics: its protocol name in
// snake case ("deadline_exceeded").
var errorKind [16]string

func init() {
	for st := range errorKind {
		name := []byte(protocol.Status(st).String())
		for i, c := range name {
			if c == ' ' || c == '(' || c == ')' {
				name[i] = '_'
			}
		}
		errorKind[st] = string(name)
	}
}

// statsSnapshot builds the published snapshot of the interval ending now.
// It reads the interval's histograms but does not reset them.
func (b *Broker) statsSnapshot(now int64) *stats.Snapshot {
	o := &b.obs
	o.seq++
	dt := float64(now-o.lastPub) / 1e9
	c := &b.counters
	s := &stats.Snapshot{
		Schema:    stats.Schema,
		Seq:       o.seq,
		Time:      b.start.Add(time.Duration(now)),
		IntervalS: dt,
		Broker: stats.Broker{
			PID: b.pid, Host: b.host, Version: protocol.Version,
			Instance: fmt.Sprintf("%016x", b.instance), Started: b.start,
			UptimeS: float64(now) / 1e9, Frontend: b.frontEP, Backend: b.backEP,
			Draining: b.draining, InFlight: len(b.jobs), Clients: len(b.clients),
		},
		Totals: stats.Counters{
			Received: c.Received, Dispatched: c.Dispatched, Replied: c.Replied,
			Errors: c.ErrorTotal(), Expired: c.Errors[protocol.StatusDeadline],
			Requeued: c.Requeued, Late: c.Late, Cancelled: c.Cancelled,
			Malformed: c.Malformed, Unroutable: c.Unroutable, WorkersLost: c.WorkersLost,
			AuthDenied: c.AuthDenied, Abandoned: c.Abandoned,
		},
		Errors:       []stats.Error{},
		Queues:       make([]stats.Queue, 0, min(len(b.services), maxQueueRows)),
		WorkerStates: make(map[string]int, len(stats.States)),
		Workers:      make([]stats.Worker, 0, len(b.workers)+len(o.lost)),
	}
	p := &o.lastTots
	rate := func(cur, prev uint64) float64 {
		if dt <= 0 || cur < prev {
			return 0
		}
		return float64(cur-prev) / dt
	}
	s.Rates = stats.Rates{
		Received:   rate(c.Received, p.Received),
		Dispatched: rate(c.Dispatched, p.Dispatched),
		Replied:    rate(c.Replied, p.Replied),
		Errors:     rate(c.ErrorTotal(), p.ErrorTotal()),
		Expired:    rate(c.Errors[protocol.StatusDeadline], p.Errors[protocol.StatusDeadline]),
		Requeued:   rate(c.Requeued, p.Requeued),
		Late:       rate(c.Late, p.Late),
	}
	for st, n := range c.Errors {
		if n > 0 {
			s.Errors = append(s.Errors, stats.Error{Kind: errorKind[st], Status: st, Total: n, Rate: rate(n, p.Errors[st])})
		}
	}

	for name, svc := range b.services {
		s.Broker.Queued += svc.live
		if svc.hwm > o.hwmEver[name] {
			o.hwmEver[name] = svc.hwm
		}
		s.Queues = append(s.Queues, stats.Queue{
			Service: name, Depth: svc.live, HighWater: svc.hwm,
			HighWaterEver: o.hwmEver[name], Workers: svc.workers,
		})
	}
	sort.Slice(s.Queues, func(i, k int) bool { return s.Queues[i].Service < s.Queues[k].Service })
	if len(s.Queues) > maxQueueRows {
		// Keep the deepest ones.
		sort.SliceStable(s.Queues, func(i, k int) bool { return s.Queues[i].HighWater > s.Queues[k].HighWater })
		s.Queues = s.Queues[:maxQueueRows]
		sort.Slice(s.Queues, func(i, k int) bool { return s.Queues[i].Service < s.Queues[k].Service })
	}

	for _, w := range b.workers {
		s.Workers = append(s.Workers, workerRow(w, now))
	}
	keep := o.lost[:0]
	for _, l := range o.lost {
		if now-l.at > int64(lostKeep) {
			continue
		}
		keep = append(keep, l)
		row := l.row
		row.LostS = float64(now-l.at) / 1e9
		row.LastHeardMS += float64(now-l.at) / 1e6
		row.Jobs, row.P50US, row.P99US = 0, 0, 0
		s.Workers = append(s.Workers, row)
	}
	clear(o.lost[len(keep):])
	o.lost = keep
	sort.Slice(s.Workers, func(i, k int) bool { return s.Workers[i].ID < s.Workers[k].ID })
	for _, st := range stats.States {
		s.WorkerStates[st] = 0
	}
	for i := range s.Workers {
		s.WorkerStates[s.Workers[i].State]++
	}

	s.Latency.QueueWait, _ = o.enc.Summarize(o.queue)
	s.Latency.Service, _ = o.enc.Summarize(o.service)
	s.Latency.Total, _ = o.enc.Summarize(o.total)
	return s
}
