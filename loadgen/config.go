// Package loadgen is hosebench's engine: it paces requests on a fixed
// open-loop schedule (or runs closed-loop callers), sends them to a hose
// cluster (an embedded one or a live broker), records every answer in HDR
// histograms and reports the results.
//
// Latency is measured from the moment each request was due, not from the
// moment it left, so a stalled cluster cannot hide its stall by slowing the
// generator down (coordinated omission); the uncorrected figure is kept
// beside it. Memory stays flat however long the run: no per-request data
// outlives its answer.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"time"

	"github.com/hose-project/hose/client"
	"github.com/hose-project/hose/handlers"
	"github.com/hose-project/hose/worker"
)

// Arrival is the shape of an open-loop schedule.
type Arrival string

// Arrivals.
const (
	Constant Arrival = "constant" // evenly spaced requests
	Poisson  Arrival = "poisson"  // exponential gaps: independent callers
)

// Executor sends one job and reports the broker's timing. *client.Client
// is one.
type Executor interface {
	ExecuteTimed(ctx context.Context, payload []byte, opts ...client.CallOption) ([]byte, client.Timing, error)
}

var _ Executor = (*client.Client)(nil)

// Config describes a hosebench invocation: one run, or a sweep over every
// combination of Rates and Workers.
type Config struct {
	// Rates are target rates in requests per second; each is one run (per
	// worker count). A rate of 0 is a closed-loop run at maximum speed with
	// Concurrency callers. Default [1000].
	Rates []float64
	// Workers are the embedded cluster's worker counts; each is one run
	// (per rate). Default [2]. Must be empty with Broker: a remote cluster
	// has the workers it has.
	Workers []int
	// Duration is the measured part of each run. Default 10s.
	Duration time.Duration
	// Warmup precedes the measured part of each run; its requests are sent
	// but left out of the results. Default 1s; a negative value means none.
	Warmup time.Duration
	// Arrival is the open-loop schedule. Default Constant.
	Arrival Arrival
	// Seed seeds the Poisson schedule (0: random).
	Seed uint64
	// MaxInFlight caps requests awaiting an answer in open-loop runs; when
	// reached, the schedule waits and the requests behind it are sent late
	// (their latency still counts from their due time); slots still unsent
	// at the end of the run are reported as missed. Default 10000.
	MaxInFlight int
	// Concurrency is the number of callers of a closed-loop run. Default 64.
	Concurrency int
	// Timeout bounds each request. Default 10s.
	Timeout time.Duration

	// Broker, when set, are the frontends of a live cluster to drive.
	// Empty: an embedded cluster (an in-process broker and Workers workers).
	Broker []string
	// CurveServerKey, when set, is the live broker's CURVE public key
	// (Z85); CurvePublicKey/CurveSecretKey are the client's pair, checked
	// against the broker's client allow-list (empty: a fresh pair). Only
	// with Broker.
	CurveServerKey string
	CurvePublicKey string
	CurveSecretKey string
	// Service names the service the jobs go to (default: the broker's
	// default service).
	Service string
	// Job is the embedded workers' job, and the one CompareDirect runs.
	// Default echo for an embedded cluster; with Broker it only names the
	// live workers' job in the report (empty: unknown).
	Job handlers.Spec
	// Handler, when set, replaces Job's handler in the embedded cluster
	// (tests use it to stall a worker).
	Handler worker.Handler
	// Size is the payload size in bytes. Default 100.
	Size int
	// WorkerConcurrency is the number of jobs each embedded worker runs at
	// once. Default: the worker's default (GOMAXPROCS).
	WorkerConcurrency int

	// SLO, when set, is checked on every run; in a sweep the knee (the
	// highest rate meeting it) is found for each worker count.
	SLO SLO
	// CompareDirect also runs the job as a plain function call on
	// GOMAXPROCS goroutines for Duration, and reports each run's throughput
	// as a ratio of it.
	CompareDirect bool

	// Interval is the period of progress reports and interval-log entries.
	// Default 1s.
	Interval time.Duration
	// Progress, when set, is called about once per Interval from the
	// recording goroutine; it must return quickly.
	Progress func(Progress)
	// IntervalLog, when set, receives an HdrHistogram interval log of the
	// corrected latency: one histogram per Interval, tagged with the run.
	IntervalLog io.Writer

	// Executor, when set, is used instead of a client of the cluster (the
	// cluster is still started when Broker is empty).
	Executor Executor
	// Logger receives progress messages about the cluster. Default: discard.
	Logger *slog.Logger
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{
		Rates:       []float64{1000},
		Workers:     []int{2},
		Duration:    10 * time.Second,
		Warmup:      time.Second,
		Arrival:     Constant,
		MaxInFlight: 10000,
		Concurrency: 64,
		Timeout:     10 * time.Second,
		Job:         handlers.Spec{Name: "echo"},
		Size:        100,
		Interval:    time.Second,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if len(c.Rates) == 0 {
		c.Rates = d.Rates
	}
	if len(c.Workers) == 0 && len(c.Broker) == 0 {
		c.Workers = d.Workers
	}
	if c.Duration <= 0 {
		c.Duration = d.Duration
	}
	if c.Warmup == 0 {
		c.Warmup = d.Warmup
	} else if c.Warmup < 0 {
		c.Warmup = 0
	}
	if c.Arrival == "" {
		c.Arrival = d.Arrival
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = d.MaxInFlight
	}
	if c.Concurrency <= 0 {
		c.Concurrency = d.Concurrency
	}
	if c.Timeout <= 0 {
		c.Timeout = d.Timeout
	}
	if c.Job.Name == "" && len(c.Broker) == 0 {
		c.Job = d.Job
	}
	if c.Size < 0 {
		c.Size = 0
	} else if c.Size == 0 {
		c.Size = d.Size
	}
	if c.Interval <= 0 {
		c.Interval = d.Interval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports a configuration hosebench cannot run.
func (c Config) Validate() error {
	c = c.withDefaults()
	for _, r := range c.Rates {
		if r < 0 || r > 10_000_000 {
			return fmt.Errorf("loadgen: rate %g: want 0 (closed loop) up to 10000000/s", r)
		}
	}
	if len(c.Broker) > 0 && len(c.Workers) > 0 {
		return errors.New("loadgen: workers are set by the live cluster, not by hosebench: drop -workers or -broker")
	}
	for _, w := range c.Workers {
		if w < 1 || w > 1024 {
			return fmt.Errorf("loadgen: %d workers: want 1..1024", w)
		}
	}
	switch c.Arrival {
	case Constant, Poisson:
	default:
		return fmt.Errorf("loadgen: arrival %q: want constant or poisson", c.Arrival)
	}
	if c.Size > 8<<20 {
		return fmt.Errorf("loadgen: payload size %d is over 8 MiB", c.Size)
	}
	if c.CompareDirect && c.Job.Name == "" && c.Handler == nil {
		return errors.New("loadgen: comparing with a direct call needs the job the live workers run (-job)")
	}
	if c.WorkerConcurrency < 0 {
		return fmt.Errorf("loadgen: worker concurrency %d is negative", c.WorkerConcurrency)
	}
	if c.MaxInFlight > 10_000_000 || c.Concurrency > 1_000_000 {
		return errors.New("loadgen: max in-flight or concurrency is unreasonably large")
	}
	return nil
}

// workerConcurrency is the concurrency the embedded workers actually get.
func (c Config) workerConcurrency() int {
	if c.WorkerConcurrency > 0 {
		return c.WorkerConcurrency
	}
	return runtime.GOMAXPROCS(0)
}
