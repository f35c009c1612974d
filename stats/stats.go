// Package stats is the schema of the snapshots a hose broker publishes on its
// stats socket (see docs/STATS.md): Go types with their JSON names, decoding,
// HDR histogram helpers and rates between two snapshots. The broker encodes
// with it and hosetop decodes with it, so the two cannot disagree.
//
// A snapshot is one JSON object per ZeroMQ message. Totals count since the
// broker started; rates and histograms cover the interval since the previous
// snapshot (IntervalS seconds).
package stats

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Schema is the snapshot schema version this package writes and reads.
// Fields may be added without changing it; a reader ignores fields it does
// not know.
const Schema = 1

// Worker states.
const (
	StateReady    = "ready"    // registered, can take more jobs
	StateBusy     = "busy"     // every slot of its capacity holds a job
	StateDraining = "draining" // finishing its jobs, takes no new ones
	StateLost     = "lost"     // dropped: silent, slow or unreachable
)

// States lists the worker states in display order.
var States = []string{StateReady, StateBusy, StateDraining, StateLost}

// Snapshot is one stats message.
type Snapshot struct {
	Schema int `json:"schema"`
	// Seq numbers the snapshots of one broker instance from 1; a gap means
	// a subscriber missed some.
	Seq uint64 `json:"seq"`
	// Time is the broker's wall clock when it built the snapshot.
	Time time.Time `json:"time"`
	// IntervalS is the time the rates and histograms cover, in seconds.
	IntervalS float64 `json:"interval_s"`

	Broker  Broker   `json:"broker"`
	Totals  Counters `json:"totals"`
	Rates   Rates    `json:"rates"`
	Errors  []Error  `json:"errors"`
	Queues  []Queue  `json:"queues"`
	Latency Latency  `json:"latency"`
	// WorkerStates counts the rows of Workers by state.
	WorkerStates map[string]int `json:"worker_states"`
	Workers      []Worker       `json:"workers"`
}

// Broker identifies the publishing broker.
type Broker struct {
	PID     uint32 `json:"pid"`
	Host    string `json:"host"`
	Version string `json:"version"`
	// Instance is random per broker start (16 hex digits): a new value means
	// the broker restarted and its totals started again from zero.
	Instance string    `json:"instance"`
	Started  time.Time `json:"started"`
	UptimeS  float64   `json:"uptime_s"`
	Frontend string    `json:"frontend"`
	Backend  string    `json:"backend"`
	Draining bool      `json:"draining"`
	// InFlight is the number of jobs at workers; Queued the number waiting
	// in every queue; Clients the clients seen recently.
	InFlight int `json:"in_flight"`
	Queued   int `json:"queued"`
	Clients  int `json:"clients"`
}

// Counters are running totals since the broker started.
type Counters struct {
	Received   uint64 `json:"received"`   // request records accepted for decoding
	Dispatched uint64 `json:"dispatched"` // jobs sent to workers (a requeued job counts again)
	Replied    uint64 `json:"replied"`    // answers with status ok
	Errors     uint64 `json:"errors"`     // answers with any other status (see Snapshot.Errors)
	Expired    uint64 `json:"expired"`    // answered "deadline exceeded" (queued or running)
	Requeued   uint64 `json:"requeued"`   // idempotent jobs run again after their worker was lost
	Late       uint64 `json:"late"`       // results for jobs already answered or unknown
	Cancelled  uint64 `json:"cancelled"`  // queued jobs dropped because their caller left
	Malformed  uint64 `json:"malformed"`  // messages dropped or refused as malformed
	Unroutable uint64 `json:"unroutable"` // replies that could not reach their client
	// WorkersLost counts workers dropped for silence, slowness or
	// unreachability.
	WorkersLost uint64 `json:"workers_lost"`
	// AuthDenied counts CURVE handshakes the broker refused because the
	// peer's public key is not on the allow-list of that socket (clients on
	// the frontend, workers on the backend). A peer without CURVE or with
	// the wrong server key fails earlier, inside libzmq, and is not
	// counted. Always 0 without CURVE. Added within schema 1: a broker that
	// predates it sends none, which reads as 0.
	AuthDenied uint64 `json:"auth_denied"`
	// Abandoned counts queued jobs dropped, never run, because their
	// client went silent past the heartbeat it promised (killed, or cut
	// off). Added within schema 1.
	Abandoned uint64 `json:"abandoned"`
}

// Answered is the number of requests answered, ok or not.
func (c Counters) Answered() uint64 { return c.Replied + c.Errors }

// Rates are per-second rates of the Counters of the same names.
type Rates struct {
	Received   float64 `json:"received"`
	Dispatched float64 `json:"dispatched"`
	Replied    float64 `json:"replied"`
	Errors     float64 `json:"errors"`
	Expired    float64 `json:"expired"`
	Requeued   float64 `json:"requeued"`
	Late       float64 `json:"late"`
}

// Answered is the rate of requests answered, ok or not.
func (r Rates) Answered() float64 { return r.Replied + r.Errors }

// ErrorRatio is the share of answers that were errors (0..1), 0 when
// nothing was answered.
func (r Rates) ErrorRatio() float64 {
	if a := r.Answered(); a > 0 {
		return r.Errors / a
	}
	return 0
}

// Error is one kind of error answer.
type Error struct {
	Kind   string  `json:"kind"`   // e.g. "deadline_exceeded", "worker_error"
	Status int     `json:"status"` // the protocol status code
	Total  uint64  `json:"total"`
	Rate   float64 `json:"rate"` // per second over the interval
}

// Queue is one service's queue.
type Queue struct {
	Service string `json:"service"`
	// Depth is the number of jobs waiting now.
	Depth int `json:"depth"`
	// HighWater is the deepest the queue was during the interval;
	// HighWaterEver since the broker started.
	HighWater     int `json:"high_water"`
	HighWaterEver int `json:"high_water_ever"`
	// Workers is the number of registered workers serving it (draining
	// ones excluded).
	Workers int `json:"workers"`
}

// Latency holds the interval's broker-side histograms.
type Latency struct {
	// QueueWait runs from a request's arrival to its dispatch.
	QueueWait Hist `json:"queue_wait"`
	// Service runs from dispatch to the worker's result.
	Service Hist `json:"service"`
	// Total runs from arrival to the worker's result: the caller's latency
	// less the network.
	Total Hist `json:"total"`
}

// Hist summarises one HDR histogram of microseconds and carries it whole.
type Hist struct {
	Count  int64   `json:"count"`
	MinUS  int64   `json:"min_us"`
	MaxUS  int64   `json:"max_us"`
	MeanUS float64 `json:"mean_us"`
	P50US  int64   `json:"p50_us"`
	P90US  int64   `json:"p90_us"`
	P99US  int64   `json:"p99_us"`
	P999US int64   `json:"p999_us"`
	// HDR is the histogram in HdrHistogram's standard compressed form
	// (V2 compressed, base64), decodable by any HdrHistogram library.
	HDR string `json:"hdr"`
}

// Worker is one worker row.
type Worker struct {
	ID       uint32   `json:"id"` // assigned by the broker, unique per instance
	Host     string   `json:"host"`
	PID      uint32   `json:"pid"`
	Version  string   `json:"version"`
	Services []string `json:"services"`
	Capacity int      `json:"capacity"`
	InFlight int      `json:"in_flight"`
	Done     uint64   `json:"done"`
	Errors   uint64   `json:"errors"`
	State    string   `json:"state"`
	// LastHeardMS is the time since the broker last heard from the worker
	// (any message counts as a heartbeat).
	LastHeardMS float64 `json:"last_heard_ms"`
	AgeS        float64 `json:"age_s"`
	// Jobs is the number of results during the interval, and P50US/P99US
	// their service time; 0 when there were none.
	Jobs  int64 `json:"jobs"`
	P50US int64 `json:"p50_us"`
	P99US int64 `json:"p99_us"`
	// LostReason and LostS are set for lost workers: why they were dropped
	// and how long ago.
	LostReason string  `json:"lost_reason,omitempty"`
	LostS      float64 `json:"lost_s,omitempty"`
}

// Errors returned by Decode.
var (
	ErrSchema = errors.New("stats: unsupported snapshot schema")
)

// Decode parses one snapshot message.
func Decode(data []byte) (*Snapshot, error) {
	var s Snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("stats: decode snapshot: %w", err)
	}
	if s.Schema != Schema {
		return nil, fmt.Errorf("%w %d (this reader knows %d)", ErrSchema, s.Schema, Schema)
	}
	return &s, nil
}

// Encode is json.Marshal of s with the schema version set.
func Encode(s *Snapshot) ([]byte, error) {
	s.Schema = Schema
	return json.Marshal(s)
}

// Live is the number of workers that can take jobs (ready or busy).
func (s *Snapshot) Live() int {
	return s.WorkerStates[StateReady] + s.WorkerStates[StateBusy]
}

// QueueDepth is the number of jobs waiting in every queue.
func (s *Snapshot) QueueDepth() int {
	n := 0
	for _, q := range s.Queues {
		n += q.Depth
	}
	return n
}

// Worker returns the row of worker id, or nil.
func (s *Snapshot) Worker(id uint32) *Worker {
	for i := range s.Workers {
		if s.Workers[i].ID == id {
			return &s.Workers[i]
		}
	}
	return nil
}
