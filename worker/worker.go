// Package worker owns the worker side of hose: it registers with one broker
// or several, runs jobs on a Handler with bounded concurrency, heartbeats,
// reconnects when a broker goes away, and retires itself gracefully on
// request, at a maximum age or after a maximum number of jobs.
//
// Each broker has a session: one goroutine that owns that broker's ZeroMQ
// DEALER socket. Handlers run on one pool of goroutines shared by every
// session and hand each result back to the session its job came from,
// through a queue that the session sends in batches.
package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"runtime"
	"slices"
	"time"
)

// DefaultBackend is the broker backend used when Config names none.
const DefaultBackend = "tcp://127.0.0.1:5556"

// DefaultHWM is the default high-water mark of a worker's sockets.
const DefaultHWM = 100000

// hwmMargin is the room an HWM needs beyond the capacity, for READY,
// HEARTBEAT, DRAIN and DISCONNECT.
const hwmMargin = 16

// Errors returned by Run.
var (
	// ErrRetired: the worker reached its maximum age or job count and
	// stopped gracefully. A supervisor should start a fresh one.
	ErrRetired = errors.New("worker: retired")
	// ErrBrokerLost: every broker went away and Config.ExitOnBrokerLoss is
	// set.
	ErrBrokerLost = errors.New("worker: broker lost")
)

// Config configures a Worker. Zero fields take the defaults of
// DefaultConfig.
type Config struct {
	// Backend is the broker's backend endpoint, when the worker serves one
	// broker. Ignored when Backends is set.
	Backend string
	// Backends are the backend endpoints of several brokers to serve at
	// once; when set, Backend is ignored. The worker registers with each
	// on its own connection and takes jobs from all of them; see
	// Concurrency for how they share the handlers. Endpoints must differ.
	Backends []string
	// Services this worker serves. Default ["default"].
	Services []string
	// Concurrency is the number of jobs run at once. Default: GOMAXPROCS,
	// right for CPU-bound jobs; raise it for jobs that wait.
	//
	// With several Backends it is the worker's total: one pool of
	// Concurrency handlers runs the jobs of every broker, first come first
	// served. Each broker still sees the full capacity
	// Concurrency+Prefetch, so that work keeps coming from every broker
	// and one that is left alone (the others lost or idle) gets the whole
	// pool. While every broker keeps the worker full it therefore holds up
	// to len(Backends)*(Concurrency+Prefetch) jobs, running Concurrency and
	// queueing the rest.
	Concurrency int
	// Prefetch is how many jobs beyond Concurrency the worker accepts and
	// queues locally, so a handler that finishes starts the next job
	// without waiting a round trip to the broker. A broker never sends
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
	// MaxJobs retires the worker after this many jobs, counted across all
	// its brokers. 0: never. Jobs held when it is reached are finished
	// too, so a few more may run.
	MaxJobs int
	// DrainTimeout bounds a graceful stop: jobs still running after it are
	// abandoned. Default 30s.
	DrainTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the backoff between attempts to
	// reach a lost broker. Defaults 100ms and 5s.
	ReconnectMin time.Duration
	ReconnectMax time.Duration
	// ExitOnBrokerLoss makes Run return ErrBrokerLost when its broker goes
	// away instead of reconnecting. With several Backends, a lost broker
	// is retried as usual while another is still registered, and Run
	// returns ErrBrokerLost when every broker is lost at the same time: a
	// broker counts as lost from the moment it falls silent or sends
	// DISCONNECT until it welcomes the worker again.
	ExitOnBrokerLoss bool
	// HWM is the ZeroMQ send and receive high-water mark of each broker
	// connection, in messages. Default DefaultHWM. When set it must be at
	// least Concurrency+Prefetch+16: below that a burst of results could
	// overflow it and be lost.
	HWM int
	// HeartbeatInterval and Liveness apply until the broker's WELCOME
	// replaces them. Defaults 500ms and 4.
	HeartbeatInterval time.Duration
	Liveness          int
	// CurveServerKey, when set, is the broker's CURVE public key (Z85):
	// the connection is encrypted and the broker authenticated.
	// CurvePublicKey/CurveSecretKey are this worker's pair, checked against
	// the broker's worker allow-list; left empty, a fresh pair is made.
	// With several Backends every broker must have this key.
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
		HWM:               DefaultHWM,
		HeartbeatInterval: 500 * time.Millisecond,
		Liveness:          4,
	}
}

// withDefaults fills in the defaults. Backends then lists every endpoint
// the worker serves (Backend alone when Backends was empty).
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if len(c.Backends) > 0 {
		c.Backends = slices.Clone(c.Backends)
	} else {
		if c.Backend == "" {
			c.Backend = d.Backend
		}
		c.Backends = []string{c.Backend}
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
	if c.HWM == 0 {
		c.HWM = d.HWM
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
	seen := make(map[string]bool, len(c.Backends))
	for _, ep := range c.Backends {
		if ep == "" {
			return fmt.Errorf("worker: empty backend endpoint")
		}
		if seen[ep] {
			return fmt.Errorf("worker: backend %s listed twice", ep)
		}
		seen[ep] = true
	}
	capacity := c.Concurrency + c.Prefetch
	if capacity > 65535 {
		return fmt.Errorf("worker: concurrency %d + prefetch %d is over 65535", c.Concurrency, c.Prefetch)
	}
	if c.HWM < capacity+hwmMargin || c.HWM > math.MaxInt32 {
		return fmt.Errorf("worker: HWM %d: want concurrency + prefetch + %d (%d) up to %d", c.HWM, hwmMargin, capacity+hwmMargin, math.MaxInt32)
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

// Worker serves jobs from one broker or several.
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

// Run serves jobs until ctx ends, then stops gracefully: it tells every
// broker to send no more, finishes the jobs it holds (up to DrainTimeout),
// says goodbye to each and returns nil once all are done. It returns
// ErrRetired after a graceful stop caused by MaxAge or MaxJobs, and
// ErrBrokerLost when every broker went away and ExitOnBrokerLoss is set.
//
// With several backends, a broker that goes away does not disturb the
// others: the worker keeps serving them and reconnects to it with backoff.
// An error setting up one connection (a malformed endpoint, a bad CURVE
// key) stops the others gracefully and is returned.
func (w *Worker) Run(ctx context.Context) error {
	r, err := newRun(w.cfg, w.handler)
	if err != nil {
		return err
	}
	return r.run(ctx)
}
