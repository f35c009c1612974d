// Package demo is hosetop -demo: an in-process hose cluster (a broker with
// its stats stream, workers running a built-in handler) and an open-loop
// load at a fixed rate, whose worker count hosetop can change.
package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hose-project/hose/broker"
	"github.com/hose-project/hose/client"
	"github.com/hose-project/hose/cluster"
	"github.com/hose-project/hose/handlers"
	"github.com/hose-project/hose/loadgen"
	"github.com/hose-project/hose/worker"
)

// Config configures a demo.
type Config struct {
	// Job is the workers' built-in handler (handlers.Parse). Default
	// sleep:10ms.
	Job string
	// Workers is the initial worker count. Default 2.
	Workers int
	// Concurrency is the number of jobs each worker runs at once. Default 1.
	Concurrency int
	// Rate is the load in requests per second; 0 sends none.
	Rate float64
	// Size is the payload size in bytes. Default 100.
	Size int
	// Timeout bounds each request. Default 2s.
	Timeout time.Duration
	// Stats is the stats endpoint. Default a free loopback port.
	Stats string
	// StatsInterval is the broker's publishing interval. Default 1s.
	StatsInterval time.Duration
	// MaxInFlight caps the requests awaiting an answer; when reached, due
	// requests are skipped (and counted). Default 20000.
	MaxInFlight int
	// Logger for the cluster. Default: discard.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Job == "" {
		c.Job = "sleep:10ms"
	}
	if c.Workers < 0 {
		c.Workers = 0
	} else if c.Workers == 0 {
		c.Workers = 2
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 1
	}
	c.Rate = max(c.Rate, 0)
	if c.Size <= 0 {
		c.Size = 100
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Second
	}
	if c.Stats == "" {
		c.Stats = "tcp://127.0.0.1:*"
	}
	if c.StatsInterval <= 0 {
		c.StatsInterval = time.Second
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 20000
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Demo is a running demo cluster with its load.
type Demo struct {
	cfg    Config
	spec   handlers.Spec
	local  *cluster.Local
	client *client.Client
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	closed bool
}

// Start starts the cluster and the load.
func Start(cfg Config) (*Demo, error) {
	cfg = cfg.withDefaults()
	spec, err := handlers.Parse(cfg.Job)
	if err != nil {
		return nil, err
	}
	local, err := cluster.StartLocal(cluster.LocalConfig{
		Broker: broker.Config{
			Stats: cfg.Stats, StatsInterval: cfg.StatsInterval,
			DefaultTimeout: cfg.Timeout, Logger: cfg.Logger,
		},
		Workers: cfg.Workers,
		Worker:  worker.Config{Concurrency: cfg.Concurrency, Logger: cfg.Logger},
		Handler: spec.Handler(),
		Logger:  cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	c, err := client.New(client.Config{Endpoints: []string{local.Frontend()}, DefaultTimeout: cfg.Timeout, Logger: cfg.Logger})
	if err != nil {
		local.Close()
		return nil, fmt.Errorf("demo: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Demo{cfg: cfg, spec: spec, local: local, client: c, cancel: cancel}
	if cfg.Rate > 0 {
		d.wg.Add(1)
		go d.load(ctx)
	}
	return d, nil
}

// StatsEndpoint is the broker's stats endpoint.
func (d *Demo) StatsEndpoint() string { return d.local.Broker().StatsEndpoint() }

// Describe says what the demo runs, for hosetop's header and exports.
func (d *Demo) Describe() string {
	return fmt.Sprintf("%s at %g/s, concurrency %d", d.spec, d.cfg.Rate, d.cfg.Concurrency)
}

// Workers is the current worker count.
func (d *Demo) Workers(context.Context) (int, error) { return d.local.Workers(), nil }

// SetWorkers changes the worker count and returns once the broker sees it.
func (d *Demo) SetWorkers(_ context.Context, n int) (int, error) {
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return 0, errors.New("demo: closed")
	}
	err := d.local.SetWorkers(n)
	return d.local.Workers(), err
}

// Close stops the load, then the cluster.
func (d *Demo) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	d.cancel()
	d.wg.Wait()
	d.client.Close()
	return d.local.Close()
}

// load sends requests on a constant open-loop schedule: at each wake-up,
// every request that is due, each in its own goroutine. Go timers cannot
// pace below about a millisecond, so it wakes every 5ms and catches up.
func (d *Demo) load(ctx context.Context) {
	defer d.wg.Done()
	pacer := loadgen.NewConstantPacer(d.cfg.Rate)
	payload := make([]byte, d.cfg.Size)
	sem := make(chan struct{}, d.cfg.MaxInFlight)
	var calls sync.WaitGroup
	defer calls.Wait()
	start := time.Now()
	next := pacer.Next()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		elapsed := time.Since(start)
		for next <= elapsed {
			next = pacer.Next()
			select {
			case sem <- struct{}{}:
			default:
				continue // over the in-flight cap: skipped
			}
			calls.Add(1)
			go func() {
				defer calls.Done()
				defer func() { <-sem }()
				_, _ = d.client.Execute(ctx, payload)
			}()
		}
	}
}
