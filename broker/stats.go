package broker

import (
	"time"

	"github.com/hose-project/hose/protocol"
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
	Malformed     uint64 // messages dropped or refused as malformed
	UnknownWorker uint64 // messages from unregistered workers (answered DISCONNECT)
	Unroutable    uint64 // replies that could not be delivered to their client
	WorkersLost   uint64 // workers dropped for silence, slowness or unreachability
}

// ErrorCount is the number of answers with status st.
func (c *Counters) ErrorCount(st protocol.Status) uint64 {
	if int(st) < len(c.Errors) {
		return c.Errors[st]
	}
	return 0
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
	Workers  []WorkerStats
}

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
			InFlight: w.inflight, Done: w.done, Errors: w.errs, Draining: w.draining,
			LastHeard: time.Duration(now - w.lastSeen), Age: time.Duration(now - w.joined),
		}
		for _, svc := range w.svcs {
			ws.Services = append(ws.Services, svc.name)
		}
		s.Workers = append(s.Workers, ws)
	}
	return s
}
