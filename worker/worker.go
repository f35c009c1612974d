// Package worker owns the worker side of hose: it registers with a broker,
// runs jobs on a Handler with bounded concurrency, heartbeats, reconnects
// when the broker goes away, and retires itself gracefully on request, at a
// maximum age or after a maximum number of jobs.
//
// One goroutine owns the ZeroMQ DEALER socket; handlers run on a pool of
// goroutines and hand results back through a queue that the owner sends in
// batches.
package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"time"
)

// DefaultBackend is the broker backend used when Config names none.
const DefaultBackend = "tcp://127.0.0.1:5556"

// Errors returned by Run.
var (
	// ErrRetired: the worker reached its maximum age or job count and
	// stopped gracefully. A supervisor should start a fresh one.
	ErrRetired = errors.New("worker: retired")
	// ErrBrokerLost: the broker went away and Config.ExitOnBrokerLoss is set.
	ErrBrokerLost = errors.New("worker: broker lost")
)

// Config configures a Worker. Zero fields take the defaults of
// DefaultConfig.
type Config struct {
	// Backend is the broker's backend endpoint.
	Backend string
	// Services this worker serves. Default ["default"].
	Services []string
	// Concurrency is the number of jobs run at once. Default: GOMAXPROCS,
	// right for CPU-bound jobs; raise it for jobs that wait.
	Concurrency int
	// Prefetch is how many jobs beyond Concurrency the worker accepts and
	// queues locally, so a handler that finishes starts the next job
	// without waiting a round trip to the broker. The broker never sends
	// more than Concurrency+Prefetch. Default: equal to Concurrency;
	// negative: none (strict least-recently-used dispatch, at a cost in
	// throughput for short jobs).
	Prefetch int
	// TimeLimit, when set, is a hard limit per job: a handler still running
	// after it is abandoned and the job answered with a worker error.
	TimeLimit time.Duration
	// MaxAge retires the worker after this long (plus a random part up to
	// MaxAgeDelta, so a pool does not restart all at once). 0: never.
	MaxAge      time.Duration
	MaxAgeDelta time.Duration
	// MaxJobs retires the worker after this many jobs. 0: never.
	MaxJobs int
	// DrainTimeout bounds a graceful stop: jobs still running after it are
	// abandoned. Default 30s.
	DrainTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the backoff between attempts to
	// reach a lost broker. Defaults 100ms and 5s.
	ReconnectMin time.Duration
	ReconnectMax time.Duration
	// ExitOnBrokerLoss makes Run return ErrBrokerLost instead of
	// reconnecting when the broker goes away.
	ExitOnBrokerLoss bool
	// HeartbeatInterval and Liveness apply until the broker's WELCOME
	// replaces them. Defaults 500ms and 4.
	HeartbeatInterval time.Duration
	Liveness          int
	// CurveServerKey, when set, is the broker's CURVE public key (Z85):
	// the connection is encrypted and the broker authenticated.
	// CurvePublicKey/CurveSecretKey are this worker's pair, checked against
	// the broker's worker allow-list; left empty, a fresh pair is made.
	CurveServerKey string
	CurvePublicKey string
	CurveSecretKey string
	// Params reach every job as Job.Params (Powerhose's --params).
	Params map[string]string
	// Logger receives the worker's logs. Default: discard.
	Logger *slog.Logger
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{
		Backend:           DefaultBackend,
		Services:          []string{"default"},
		Concurrency:       runtime.GOMAXPROCS(0),
		DrainTimeout:      30 * time.Second,
		ReconnectMin:      100 * time.Millisecond,
		ReconnectMax:      5 * time.Second,
		HeartbeatInterval: 500 * time.Millisecond,
		Liveness:          4,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Backend == "" {
		c.Backend = d.Backend
	}
	if len(c.Services) == 0 {
		c.Services = d.Services
	}
	if c.Concurrency <= 0 {
		c.Concurrency = d.Concurrency
	}
	switch {
	case c.Prefetch == 0:
		c.Prefetch = c.Concurrency
	case c.Prefetch < 0:
		c.Prefetch = 0
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = d.DrainTimeout
	}
	if c.ReconnectMin <= 0 {
		c.ReconnectMin = d.ReconnectMin
	}
	if c.ReconnectMax <= 0 {
		c.ReconnectMax = d.ReconnectMax
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = d.HeartbeatInterval
	}
	if c.Liveness <= 0 {
		c.Liveness = d.Liveness
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}

// Validate reports a configuration the worker cannot run with.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.Concurrency+c.Prefetch > 65535 {
		return fmt.Errorf("worker: concurrency %d + prefetch %d is over 65535", c.Concurrency, c.Prefetch)
	}
	if len(c.Services) > 255 {
		return fmt.Errorf("worker: %d services, at most 255", len(c.Services))
	}
	for _, s := range c.Services {
		if s == "" || len(s) > 255 {
			return fmt.Errorf("worker: service name %q must be 1..255 bytes", s)
		}
	}
	if c.CurveServerKey == "" && (c.CurvePublicKey != "" || c.CurveSecretKey != "") {
		return fmt.Errorf("worker: a CURVE key pair without CurveServerKey")
	}
	if (c.CurvePublicKey == "") != (c.CurveSecretKey == "") {
		return fmt.Errorf("worker: CurvePublicKey and CurveSecretKey go together")
	}
	if c.MaxAge < 0 || c.MaxAgeDelta < 0 || c.MaxJobs < 0 {
		return fmt.Errorf("worker: negative max-age, max-age-delta or max-jobs")
	}
	return nil
}

// Worker serves jobs from one broker.
type Worker struct {
	cfg     Config
	handler Handler
}

// New returns a worker that runs jobs with h.
func New(cfg Config, h Handler) (*Worker, error) {
	if h == nil {
		return nil, errors.New("worker: nil handler")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Worker{cfg: cfg.withDefaults(), handler: h}, nil
}

// Run serves jobs until ctx ends, then stops gracefully: it tells the broker
// to send no more, finishes the jobs it holds (up to DrainTimeout), says
// goodbye and returns nil. It returns ErrRetired after a graceful stop caused
// by MaxAge or MaxJobs, and ErrBrokerLost when the broker goes away and
// ExitOnBrokerLoss is set.
func (w *Worker) Run(ctx context.Context) error {
	s, err := newSession(w.cfg, w.handler)
	if err != nil {
		return err
	}
	return s.run(ctx)
}
