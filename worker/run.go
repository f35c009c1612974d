package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/hose-project/hose/protocol"
)

// run is one Worker.Run: what its sessions share.
type run struct {
	cfg      Config
	pool     *pool
	zctx     *zmq.Context
	start    time.Time
	retireAt int64  // since start; 0: never
	ready    []byte // READY body, the same for every broker
	sessions []*session

	jobs atomic.Int64 // jobs finished, from every broker

	stopped atomic.Bool // a graceful stop was requested (stopErr, stopWhy)
	allLost atomic.Bool // every broker is lost and ExitOnBrokerLoss is set

	mu      sync.Mutex
	stopErr error
	stopWhy string
	lost    int // sessions whose broker is lost (ExitOnBrokerLoss only)
}

func newRun(cfg Config, h Handler) (*run, error) {
	zctx, err := zmq.NewContext()
	if err != nil {
		return nil, fmt.Errorf("worker: zmq context: %w", err)
	}
	host, _ := os.Hostname()
	rd := protocol.Ready{Capacity: uint16(cfg.Concurrency + cfg.Prefetch), PID: uint32(os.Getpid()), Host: host,
		Version: protocol.Version, Services: cfg.Services}
	r := &run{
		cfg:   cfg,
		pool:  newPool(cfg, h),
		zctx:  zctx,
		start: time.Now(),
		ready: protocol.AppendReady(nil, &rd),
	}
	if cfg.MaxAge > 0 {
		age := cfg.MaxAge
		if cfg.MaxAgeDelta > 0 {
			age += rand.N(cfg.MaxAgeDelta)
		}
		r.retireAt = int64(age)
	}
	for _, ep := range cfg.Backends {
		r.sessions = append(r.sessions, newSession(r, ep))
	}
	return r, nil
}

func (r *run) now() int64 { return int64(time.Since(r.start)) }

// run starts the handlers and one session per broker, and returns when
// every session has ended.
func (r *run) run(ctx context.Context) error {
	r.cfg.Logger.Info("worker started", "backends", r.cfg.Backends, "services", r.cfg.Services,
		"concurrency", r.cfg.Concurrency, "prefetch", r.cfg.Prefetch)
	r.pool.start(r.cfg.Concurrency)
	errs := make([]error, len(r.sessions))
	var wg sync.WaitGroup
	for i, s := range r.sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.run()
			if isHard(errs[i]) {
				r.requestStop(nil, "error on another broker connection")
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-ctx.Done():
		r.requestStop(nil, "stop requested")
		<-done
	case <-done:
	}
	abandoned := false
	for _, s := range r.sessions {
		abandoned = abandoned || s.running > 0
	}
	r.pool.close()
	if !abandoned {
		r.pool.wg.Wait()
	}
	r.zctx.Term()
	r.cfg.Logger.Info("worker stopped", "jobs", r.jobs.Load())

	for _, err := range errs {
		if isHard(err) {
			return err
		}
	}
	for _, err := range errs {
		if errors.Is(err, ErrBrokerLost) {
			return ErrBrokerLost
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopErr
}

// isHard reports an error other than the ends Run documents.
func isHard(err error) bool {
	return err != nil && !errors.Is(err, ErrRetired) && !errors.Is(err, ErrBrokerLost)
}

// requestStop asks every session for a graceful stop; the first reason
// wins.
func (r *run) requestStop(reason error, why string) {
	r.mu.Lock()
	first := !r.stopped.Load()
	if first {
		r.stopErr, r.stopWhy = reason, why
		r.stopped.Store(true)
	}
	r.mu.Unlock()
	if first {
		r.wakeAll()
	}
}

// stopReason returns the reason requestStop recorded.
func (r *run) stopReason() (why string, reason error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopWhy, r.stopErr
}

// addJobs counts n finished jobs and retires the worker at MaxJobs.
func (r *run) addJobs(n int) {
	total := r.jobs.Add(int64(n))
	if r.cfg.MaxJobs > 0 && total >= int64(r.cfg.MaxJobs) && !r.stopped.Load() {
		r.requestStop(ErrRetired, "max jobs reached")
	}
}

// markLost counts a session's broker as lost (d = 1) or back (d = -1).
// When every broker is lost at once, allLost ends every session.
func (r *run) markLost(d int) {
	r.mu.Lock()
	r.lost += d
	all := r.lost == len(r.sessions)
	r.mu.Unlock()
	if all && r.allLost.CompareAndSwap(false, true) {
		r.cfg.Logger.Warn("every broker lost", "brokers", len(r.sessions))
		r.wakeAll()
	}
}

func (r *run) wakeAll() {
	for _, s := range r.sessions {
		s.waiter.Signal()
	}
}
