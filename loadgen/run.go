package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hose-project/hose/client"
)

// runSpec is one point of a sweep.
type runSpec struct {
	index, count int // position in the sweep, from 1
	rate         float64
	workers      int
}

// runner holds what every run of an invocation shares.
type runner struct {
	cfg     Config
	exec    Executor
	opts    []client.CallOption
	payload []byte
	log     *intervalLog
	target  string
}

// lagWarning is the generator lag p99 above which the generator, not the
// cluster, is flagged as the bottleneck.
const lagWarning = 5 * time.Millisecond

// run performs one run. ctx ending interrupts it: the schedule stops, and
// once the requests in flight have ended (Run closes the client after
// interruptGrace) the partial result is returned.
func (rn *runner) run(ctx context.Context, spec runSpec) *Result {
	cfg := rn.cfg
	warmup, end := cfg.Warmup, cfg.Warmup+cfg.Duration

	rs := &runState{runner: rn, start: time.Now()}
	rec := newRecorder(rs.start, warmup, end, &rs.launched)
	rec.interval = cfg.Interval
	rec.progress = cfg.Progress
	rec.log = rn.log
	rec.tag = fmt.Sprintf("w%d-r%g", spec.workers, spec.rate)
	rec.base = Progress{Run: spec.index, Runs: spec.count, Workers: spec.workers, Target: spec.rate}
	rs.out = rec.in
	recDone := make(chan struct{})
	go func() { rec.run(); close(recDone) }()

	cpu0 := cpuTime()
	var st schedStats
	if spec.rate > 0 {
		st = rs.openLoop(ctx, spec.rate)
	} else {
		st = rs.closedLoop(ctx)
	}
	rs.wg.Wait()
	wall := time.Since(rs.start)
	cpu1 := cpuTime()
	close(rec.in)
	<-recDone

	res := &Result{
		TargetRate:      spec.rate,
		Target:          rn.target,
		Service:         cfg.Service,
		Job:             jobName(cfg),
		Size:            len(rn.payload),
		Workers:         spec.workers,
		Started:         rs.start,
		WarmupSeconds:   warmup.Seconds(),
		Missed:          st.missed,
		Throttled:       st.throttled,
		Interrupted:     ctx.Err() != nil,
		LatencyHist:     rec.latency,
		UncorrectedHist: rec.uncorrected,
		LagHist:         rec.lag,
		Errors:          make(map[string]uint64, len(ErrorKinds)),
	}
	if spec.rate > 0 {
		res.Mode, res.Arrival, res.MaxInFlight = "open", string(cfg.Arrival), cfg.MaxInFlight
	} else {
		res.Mode, res.Concurrency = "closed", cfg.Concurrency
	}
	if len(cfg.Broker) == 0 {
		res.WorkerConcurrency = cfg.workerConcurrency()
	}
	window := st.stopped - warmup
	if window <= 0 {
		window = 0
	}
	res.DurationSeconds = window.Seconds()
	for k, n := range rec.kinds {
		switch Kind(k) {
		case KindOK:
			res.OK = n
		case KindCancelled:
			res.Cancelled = n
		default:
			res.ErrorsAll += n
		}
		res.Sent += n
	}
	for _, k := range ErrorKinds {
		res.Errors[k.String()] = rec.kinds[k]
	}
	if window > 0 {
		res.AchievedRate = round1(float64(rec.sentInRange) / window.Seconds())
		res.Throughput = round1(float64(rec.okInRange) / window.Seconds())
	}
	res.Latency = summarise(rec.latency)
	res.Uncorrected = summarise(rec.uncorrected)
	res.QueueTime = summarise(rec.queue)
	res.ServiceTime = summarise(rec.service)
	res.Lag = summarise(rec.lag)
	res.CPU = cpu1.sub(cpu0, wall)
	if cfg.SLO != nil {
		res.SLO = cfg.SLO.Check(res)
	}
	res.Warnings = warnings(res, rec.logErr)
	return res
}

// noCancel is the context of every request. Its Done channel is nil, which
// spares the client a select per call (a quarter of the generator's CPU at
// high rates); the client's own timeout bounds each request, and an
// interrupt ends the requests in flight by closing the client (see Run).
var noCancel = context.Background()

// runState is one run in progress.
type runState struct {
	*runner
	start    time.Time
	out      chan<- *batch
	tokens   chan struct{}
	wg       sync.WaitGroup // requests and callers still running
	launched atomic.Uint64  // requests started
}

// openLoop sends the schedule, one goroutine per request, and returns when
// the schedule is done (requests may still be in flight: wg tracks them).
func (rs *runState) openLoop(ctx context.Context, rate float64) schedStats {
	cfg := rs.cfg
	var pacer Pacer = NewConstantPacer(rate)
	if cfg.Arrival == Poisson {
		seed := cfg.Seed
		if seed == 0 {
			seed = rand.Uint64()
		}
		pacer = NewPoissonPacer(rate, rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)))
	}
	rs.tokens = make(chan struct{}, cfg.MaxInFlight)
	for range cfg.MaxInFlight {
		rs.tokens <- struct{}{}
	}
	s := &scheduler{
		clock: newRealClock(), pacer: pacer, start: rs.start,
		end: cfg.Warmup + cfg.Duration, warmup: cfg.Warmup, tokens: rs.tokens,
		send: func(slots []slot) {
			b := newBatch(len(slots))
			rs.wg.Add(len(slots))
			rs.launched.Add(uint64(len(slots)))
			for i, sl := range slots {
				go rs.do(b, i, int64(sl.at))
			}
		},
	}
	return s.run(ctx)
}

// do sends one scheduled request and files its sample in its batch.
func (rs *runState) do(b *batch, i int, at int64) {
	sent := int64(time.Since(rs.start))
	_, tm, err := rs.exec.ExecuteTimed(noCancel, rs.payload, rs.opts...)
	b.samples[i] = sample{
		at: at, sent: sent, done: int64(time.Since(rs.start)),
		queue: int64(tm.Queue), service: int64(tm.Service), kind: Classify(err),
	}
	rs.tokens <- struct{}{}
	if b.pending.Add(-1) == 0 {
		rs.out <- b
	}
	rs.wg.Done()
}

// closedFlush bounds how long a closed-loop caller holds its samples.
const closedFlush = 10 * time.Millisecond

// closedLoop runs Concurrency callers until the end of the run: each sends
// its next request as soon as its last one is answered.
func (rs *runState) closedLoop(ctx context.Context) schedStats {
	cfg := rs.cfg
	end := int64(cfg.Warmup + cfg.Duration)
	for range cfg.Concurrency {
		rs.wg.Add(1)
		go func() {
			defer rs.wg.Done()
			b := newBatch(0)
			var first int64
			for {
				t0 := int64(time.Since(rs.start))
				if t0 >= end || ctx.Err() != nil {
					break
				}
				rs.launched.Add(1)
				_, tm, err := rs.exec.ExecuteTimed(noCancel, rs.payload, rs.opts...)
				done := int64(time.Since(rs.start))
				if len(b.samples) == 0 {
					first = done
				}
				b.samples = append(b.samples, sample{
					at: t0, sent: t0, done: done,
					queue: int64(tm.Queue), service: int64(tm.Service), kind: Classify(err),
				})
				// Flush a full batch, or one held for closedFlush, and
				// after a slow request (the next may be as slow).
				if len(b.samples) == maxBatch || done-first >= int64(closedFlush) || done-t0 >= int64(closedFlush) {
					rs.out <- b
					b = newBatch(0)
				}
			}
			if len(b.samples) > 0 {
				rs.out <- b
			}
		}()
	}
	// Wait for the end of the run or an interrupt.
	timer := time.NewTimer(time.Duration(end))
	defer timer.Stop()
	select {
	case <-timer.C:
		return schedStats{stopped: time.Duration(end)}
	case <-ctx.Done():
		return schedStats{stopped: min(time.Since(rs.start), time.Duration(end))}
	}
}

// batch carries the samples of up to maxBatch requests to the recorder in
// one channel send: the requests of one scheduler batch each fill their own
// entry, and the last to finish sends it.
type batch struct {
	samples []sample
	pending atomic.Int32
}

var batchPool = sync.Pool{New: func() any { return &batch{samples: make([]sample, 0, maxBatch)} }}

func newBatch(n int) *batch {
	b := batchPool.Get().(*batch)
	b.samples = b.samples[:n]
	b.pending.Store(int32(n))
	return b
}

func (b *batch) release() {
	b.samples = b.samples[:0]
	batchPool.Put(b)
}

func jobName(cfg Config) string {
	switch {
	case cfg.Handler != nil:
		return "custom"
	case cfg.Job.Name == "":
		return "unknown"
	}
	return cfg.Job.String()
}

// warnings explains results that need a second look.
func warnings(r *Result, logErr error) []string {
	var w []string
	hint := ""
	if r.Target == "embedded" {
		hint = fmt.Sprintf(" (each embedded worker runs %d jobs at once: -worker-concurrency raises it for cheap or waiting jobs, -workers adds workers)", r.WorkerConcurrency)
	}
	if r.Throttled > 0 {
		w = append(w, fmt.Sprintf("the in-flight limit (%d) was reached %d times: requests were sent late (lag max %s) and %d slots were missed; the cluster is not keeping up%s; -max-inflight raises the limit",
			r.MaxInFlight, r.Throttled, fmtDur(usDur(r.Lag.Max)), r.Missed, hint))
		hint = "" // said once
	} else if r.Mode == "open" && usDur(r.Lag.P99) > lagWarning {
		share := ""
		if r.Target == "embedded" {
			share = ", shared with the embedded cluster"
		}
		w = append(w, fmt.Sprintf("generator lag p99 is %s (max %s): hosebench could not send on time, short of CPU (this process used %.0f%% of a core%s) or on a busy machine; the corrected latencies include its delay",
			fmtDur(usDur(r.Lag.P99)), fmtDur(usDur(r.Lag.Max)), r.CPU.PercentOfCore, share))
	}
	if r.Mode == "open" && r.DurationSeconds > 0 && !r.Interrupted && r.AchievedRate < 0.99*r.TargetRate {
		w = append(w, fmt.Sprintf("achieved rate %.1f/s is %.1f%% below the target %g/s",
			r.AchievedRate, 100*(1-r.AchievedRate/r.TargetRate), r.TargetRate))
	}
	if r.Mode == "open" && r.DurationSeconds > 0 && r.Throughput < 0.9*r.AchievedRate && r.ErrorsAll == 0 {
		w = append(w, fmt.Sprintf("throughput %.1f/s is well below the offered %.1f/s: the cluster is saturated and its queue grew%s",
			r.Throughput, r.AchievedRate, hint))
	}
	if logErr != nil {
		w = append(w, "interval log: "+logErr.Error())
	}
	return w
}

func usDur(us float64) time.Duration { return time.Duration(us * 1e3) }
