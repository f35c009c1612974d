package loadgen

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/hose-project/hose/client"
	"github.com/hose-project/hose/worker"
)

// Report is the outcome of an invocation: its runs in order, and the knees
// and the direct baseline when asked for.
type Report struct {
	Runs []*Result `json:"runs"`
	// Knees is the highest rate meeting the SLO for each worker count, when
	// an SLO was given.
	Knees  []Knee  `json:"knees,omitempty"`
	SLO    string  `json:"slo,omitempty"`
	Direct *Direct `json:"direct,omitempty"`
	// Interrupted: the invocation was cut short; Runs holds what ran,
	// the last one partial.
	Interrupted bool `json:"interrupted,omitempty"`
}

// Knee is the highest open-loop rate that met the SLO, every lower rate
// meeting it too, for one worker count.
type Knee struct {
	Workers int `json:"workers"`
	// Rate is the knee's target rate; 0 when no rate met the SLO.
	Rate float64 `json:"rate"`
	// Throughput and P99 are the knee run's (microseconds).
	Throughput float64 `json:"throughput,omitempty"`
	P99        float64 `json:"p99_us,omitempty"`
	// Next is the first rate that missed the SLO (0: all met), and NextWhy
	// says how it missed.
	Next    float64  `json:"next_rate,omitempty"`
	NextWhy []string `json:"next_why,omitempty"`
}

// SLOMet reports whether every worker count has a knee (true when no SLO
// was given).
func (r *Report) SLOMet() bool {
	for _, k := range r.Knees {
		if k.Rate == 0 {
			return false
		}
	}
	return true
}

// interruptGrace is how long an interrupted run waits for its requests in
// flight before abandoning them.
const interruptGrace = 500 * time.Millisecond

// Run runs every combination of cfg.Workers and cfg.Rates, in that order
// (worker counts outer), against the configured target. When ctx ends it
// stops, and returns the report so far with Interrupted set and a nil
// error: the caller prints the partial report. It returns an error only
// when the target cannot be set up.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	payload := make([]byte, cfg.Size)
	_, _ = rand.Read(payload)

	t, err := openTarget(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer t.close()
	if t.client != nil {
		// On interrupt, give the requests in flight a moment, then close
		// the client: its pending calls fail with ErrClosed, counted as
		// cancelled, and the run can report.
		stop := context.AfterFunc(ctx, func() {
			time.AfterFunc(interruptGrace, func() { _ = t.client.Close() })
		})
		defer stop()
	}

	rn := &runner{cfg: cfg, exec: t.exec, payload: payload, target: t.name}
	rn.opts = append(rn.opts, client.WithTimeout(cfg.Timeout))
	if cfg.Service != "" {
		rn.opts = append(rn.opts, client.WithService(cfg.Service))
	}
	if cfg.IntervalLog != nil {
		if rn.log, err = newIntervalLog(cfg.IntervalLog, time.Now()); err != nil {
			return nil, fmt.Errorf("loadgen: interval log: %w", err)
		}
	}

	rep := &Report{}
	workers := cfg.Workers
	if len(workers) == 0 {
		workers = []int{0} // a live cluster: whatever it has
	}
	count := len(workers) * len(cfg.Rates)
	for _, w := range workers {
		if ctx.Err() != nil {
			break
		}
		if t.local != nil {
			cfg.Logger.Info("setting workers", "workers", w)
			if err := t.setWorkers(w); err != nil {
				return rep, fmt.Errorf("loadgen: %d workers: %w", w, err)
			}
		}
		for _, rate := range cfg.Rates {
			if ctx.Err() != nil {
				break
			}
			n := w
			if t.local == nil {
				n = t.workers(ctx)
			}
			res := rn.run(ctx, runSpec{index: len(rep.Runs) + 1, count: count, rate: rate, workers: n})
			rep.Runs = append(rep.Runs, res)
		}
	}
	rep.Interrupted = ctx.Err() != nil

	if cfg.CompareDirect && !rep.Interrupted {
		h := cfg.Handler
		if h == nil {
			h = cfg.Job.Handler()
		}
		d := runDirect(ctx, h, payload, cfg.Duration)
		rep.Direct = &d
		for _, r := range rep.Runs {
			dr := d
			if d.Rate > 0 {
				dr.Ratio = roundSig(r.Throughput/d.Rate, 3)
			}
			r.Direct = &dr
		}
	}
	if cfg.SLO != nil {
		rep.SLO = cfg.SLO.String()
		rep.Knees = knees(rep.Runs)
	}
	return rep, nil
}

// knees finds, for each worker count, the knee: the highest open-loop rate
// that met the SLO with every lower rate meeting it too (a rate that passes
// above a failure is noise, not capacity).
func knees(runs []*Result) []Knee {
	var out []Knee
	byWorkers := map[int][]*Result{}
	var order []int
	for _, r := range runs {
		if r.Mode != "open" || r.SLO == nil || r.Interrupted {
			continue
		}
		if _, ok := byWorkers[r.Workers]; !ok {
			order = append(order, r.Workers)
		}
		byWorkers[r.Workers] = append(byWorkers[r.Workers], r)
	}
	for _, w := range order {
		rs := slices.Clone(byWorkers[w])
		slices.SortStableFunc(rs, func(a, b *Result) int {
			switch {
			case a.TargetRate < b.TargetRate:
				return -1
			case a.TargetRate > b.TargetRate:
				return 1
			}
			return 0
		})
		k := Knee{Workers: w}
		for _, r := range rs {
			if !r.SLO.Met {
				k.Next, k.NextWhy = r.TargetRate, r.SLO.Why
				break
			}
			k.Rate, k.Throughput, k.P99 = r.TargetRate, r.Throughput, r.Latency.P99
		}
		out = append(out, k)
	}
	return out
}

// runDirect calls h on GOMAXPROCS goroutines for d, without a broker.
func runDirect(ctx context.Context, h worker.Handler, payload []byte, d time.Duration) Direct {
	n := runtime.GOMAXPROCS(0)
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var calls atomic.Uint64
	var wg sync.WaitGroup
	start := time.Now()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local uint64
			for ctx.Err() == nil {
				job := &worker.Job{Payload: payload, Deadline: time.Now().Add(time.Hour)}
				_, _ = h.Handle(ctx, job)
				local++
			}
			calls.Add(local)
		}()
	}
	wg.Wait()
	el := time.Since(start)
	c := calls.Load()
	return Direct{Goroutines: n, Calls: c, Seconds: round3(el.Seconds()), Rate: round1(float64(c) / el.Seconds())}
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// roundSig rounds v to n significant digits.
func roundSig(v float64, n int) float64 {
	if v == 0 {
		return 0
	}
	scale := math.Pow(10, float64(n)-math.Ceil(math.Log10(math.Abs(v))))
	return math.Round(v*scale) / scale
}

// intervalLog writes an HdrHistogram interval log (the format of
// HdrHistogram's HistogramLogWriter, readable by HistogramLogProcessor and
// hdrhistogram-go's HistogramLogReader). Values are nanoseconds; the
// Interval_Max column is in milliseconds.
type intervalLog struct {
	w *hdrhistogram.HistogramLogWriter
}

func newIntervalLog(w io.Writer, start time.Time) (*intervalLog, error) {
	lw := hdrhistogram.NewHistogramLogWriter(w)
	ms := start.UnixMilli()
	lw.SetBaseTime(ms)
	for _, f := range []func() error{
		lw.OutputLogFormatVersion,
		func() error {
			return lw.OutputComment("[hosebench corrected latency (from the due time) of ok answers, in nanoseconds; tag wW-rR = W workers, target rate R/s]")
		},
		func() error { return lw.OutputStartTime(ms) },
		func() error { return lw.OutputBaseTime(ms) },
		lw.OutputLegend,
	} {
		if err := f(); err != nil {
			return nil, err
		}
	}
	return &intervalLog{w: lw}, nil
}

func (l *intervalLog) write(h *hdrhistogram.Histogram) error {
	return l.w.OutputIntervalHistogram(h)
}
