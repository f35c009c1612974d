// Package cluster runs hose clusters: Local is a broker and in-process
// workers in this process (hosebench's embedded target, hosetop -demo, the
// tests), whose worker count can change while it runs.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hose-project/hose/broker"
	"github.com/hose-project/hose/worker"
)

// LocalConfig configures a Local cluster.
type LocalConfig struct {
	// Broker is the broker's configuration. Empty endpoints default to
	// loopback TCP on free ports (not the broker's well-known ports, so an
	// embedded cluster never collides with a real one).
	Broker broker.Config
	// Workers is the initial number of workers.
	Workers int
	// Worker is the template for each worker; Backend is filled in.
	Worker worker.Config
	// Handler runs the jobs.
	Handler worker.Handler
	// Logger for the cluster's own messages. Default: Broker.Logger.
	Logger *slog.Logger
}

// Local is a broker plus in-process workers.
type Local struct {
	cfg    LocalConfig
	broker *broker.Broker

	mu      sync.Mutex
	workers []*localWorker
	closed  bool
}

type localWorker struct {
	cancel context.CancelFunc
	done   chan error
}

// StartLocal starts the broker and the workers, and waits until the workers
// have registered.
func StartLocal(cfg LocalConfig) (*Local, error) {
	if cfg.Handler == nil {
		return nil, errors.New("cluster: nil handler")
	}
	if cfg.Broker.Frontend == "" {
		cfg.Broker.Frontend = "tcp://127.0.0.1:*"
	}
	if cfg.Broker.Backend == "" {
		cfg.Broker.Backend = "tcp://127.0.0.1:*"
	}
	b, err := broker.New(cfg.Broker)
	if err != nil {
		return nil, err
	}
	l := &Local{cfg: cfg, broker: b}
	if err := l.SetWorkers(cfg.Workers); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// Broker is the cluster's broker.
func (l *Local) Broker() *broker.Broker { return l.broker }

// Frontend is the endpoint clients connect to.
func (l *Local) Frontend() string { return l.broker.Frontend() }

// Workers is the current number of workers.
func (l *Local) Workers() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.workers)
}

// SetWorkers starts or gracefully stops workers until n run, and waits
// (up to 5 s) until the broker sees exactly n.
func (l *Local) SetWorkers(n int) error {
	if n < 0 {
		return fmt.Errorf("cluster: %d workers", n)
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return errors.New("cluster: closed")
	}
	var stopping []*localWorker
	for len(l.workers) > n {
		w := l.workers[len(l.workers)-1]
		l.workers = l.workers[:len(l.workers)-1]
		w.cancel()
		stopping = append(stopping, w)
	}
	for len(l.workers) < n {
		wc := l.cfg.Worker
		wc.Backend = l.broker.Backend()
		w, err := worker.New(wc, l.cfg.Handler)
		if err != nil {
			l.mu.Unlock()
			return err
		}
		ctx, cancel := context.WithCancel(context.Background())
		lw := &localWorker{cancel: cancel, done: make(chan error, 1)}
		go func() { lw.done <- w.Run(ctx) }()
		l.workers = append(l.workers, lw)
	}
	l.mu.Unlock()
	for _, w := range stopping {
		<-w.done
	}
	return l.waitWorkers(n, 5*time.Second)
}

// waitWorkers polls the broker's stats until it lists n live workers.
func (l *Local) waitWorkers(n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		st, err := l.broker.Stats()
		if err != nil {
			return err
		}
		live := 0
		for _, w := range st.Workers {
			if !w.Draining {
				live++
			}
		}
		if live == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster: broker sees %d workers, want %d", live, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Close stops the workers gracefully, then the broker.
func (l *Local) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	ws := l.workers
	l.workers = nil
	l.mu.Unlock()
	for _, w := range ws {
		w.cancel()
	}
	for _, w := range ws {
		<-w.done
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return l.broker.Shutdown(ctx)
}
