package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/hose-project/hose/client"
	"github.com/hose-project/hose/handlers"
	"github.com/hose-project/hose/worker"
)

// run runs cfg and fails the test on error.
func run(t testing.TB, ctx context.Context, cfg Config) *Report {
	t.Helper()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// stallHandler echoes, except that job number at blocks until release is
// closed; stalled is closed when that job starts.
type stallHandler struct {
	at      int64
	n       atomic.Int64
	stalled chan struct{}
	release chan struct{}
}

func newStallHandler(at int64) *stallHandler {
	return &stallHandler{at: at, stalled: make(chan struct{}), release: make(chan struct{})}
}

func (h *stallHandler) Handle(ctx context.Context, j *worker.Job) ([]byte, error) {
	if h.n.Add(1) == h.at {
		close(h.stalled)
		select {
		case <-h.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return j.Payload, nil
}

// countAbove is the number of values in h at or above v.
func countAbove(h *hdrhistogram.Histogram, v time.Duration) int64 {
	var n int64
	for _, b := range h.Distribution() {
		if b.From >= int64(v) {
			n += b.Count
		}
	}
	return n
}

// TestCoordinatedOmission stalls the only worker for one second in the
// middle of a 300/s run. Every request due during the stall must show its
// wait in the corrected latency, whether the generator kept sending (the
// requests queue in the broker) or had to hold back (a small in-flight
// limit: the requests leave late, and only the uncorrected figure, what a
// naive tool reports, hides the stall).
func TestCoordinatedOmission(t *testing.T) {
	const (
		rate  = 300
		stall = time.Second
	)
	tests := []struct {
		name        string
		maxInFlight int
		naive       bool // requests wait in the generator: uncorrected misses the stall
	}{
		{"requests queue in the broker", 0, false},
		{"generator holds back", 4, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newStallHandler(150) // half a second in
			go func() {
				<-h.stalled
				// The stall's length is the stimulus, not synchronisation.
				time.AfterFunc(stall, func() { close(h.release) })
			}()
			cfg := Config{
				Rates: []float64{rate}, Workers: []int{1}, WorkerConcurrency: 1,
				Duration: 3 * time.Second, Warmup: -1, MaxInFlight: tt.maxInFlight,
				Handler: h,
			}
			rep := run(t, context.Background(), cfg)
			r := rep.Runs[0]
			if r.ErrorsAll != 0 || r.Missed != 0 || r.OK != 3*rate {
				t.Fatalf("ok %d errors %v missed %d, want %d ok and nothing else", r.OK, r.Errors, r.Missed, 3*rate)
			}
			// About rate*stall requests were due during the stall; all but
			// those due in its last 100ms waited at least 100ms. A few more
			// wait behind the backlog while it drains (slower under -race).
			slow := countAbove(r.LatencyHist, 100*time.Millisecond)
			wantSlow := int64(float64(rate) * (stall - 100*time.Millisecond).Seconds())
			if slow < wantSlow*9/10 {
				t.Errorf("corrected: %d requests at or above 100ms, want at least %d", slow, wantSlow*9/10)
			}
			maxLat := time.Duration(r.LatencyHist.Max())
			if maxLat < 900*time.Millisecond || maxLat > 1500*time.Millisecond {
				t.Errorf("corrected max %v, want about %v", maxLat, stall)
			}
			// A third of the run was stalled: p90 is deep in the stall.
			p90 := time.Duration(r.LatencyHist.ValueAtQuantile(90))
			if p90 < 200*time.Millisecond {
				t.Errorf("corrected p90 %v, want hundreds of ms", p90)
			}
			up90 := time.Duration(r.UncorrectedHist.ValueAtQuantile(90))
			naiveSlow := countAbove(r.UncorrectedHist, 100*time.Millisecond)
			t.Logf("corrected p90 %v max %v slow %d; uncorrected p90 %v slow %d; lag p99 %v",
				p90, maxLat, slow, up90, naiveSlow, usDur(r.Lag.P99))
			if tt.naive {
				// The generator waited for its in-flight places: the
				// requests left late, so from their send they look fast.
				if naiveSlow > slow/10 || up90 > p90/5 {
					t.Errorf("uncorrected: %d requests >= 100ms, p90 %v; want little more than the few in flight during the stall", naiveSlow, up90)
				}
				if r.Throttled == 0 || usDur(r.Lag.Max) < 800*time.Millisecond {
					t.Errorf("throttled %d, lag max %v: want the generator held back for the stall", r.Throttled, usDur(r.Lag.Max))
				}
				if len(r.Warnings) == 0 {
					t.Error("no warning about the in-flight limit")
				}
			} else if naiveSlow < slow*8/10 {
				t.Errorf("uncorrected: %d requests >= 100ms, want about %d (requests left on time)", naiveSlow, slow)
			}
		})
	}
}

// TestSweepKnee sweeps a 5ms sleep job (about 190/s per worker of
// concurrency 1) over 1 and 2 workers and three rates: one worker keeps up
// with 100/s only, two with 250/s too, and nobody with 600/s. The SLO is
// loose (p99 <= 250ms): this machine may be busy, and an overloaded run
// misses it by far anyway.
func TestSweepKnee(t *testing.T) {
	if testing.Short() {
		t.Skip("a 10s sweep")
	}
	slo, err := ParseSLO("p99=250ms")
	if err != nil {
		t.Fatal(err)
	}
	job, _ := handlers.Parse("sleep:5ms")
	want := []Knee{{Workers: 1, Rate: 100, Next: 250}, {Workers: 2, Rate: 250, Next: 600}}
	var rep *Report
	var progress atomic.Int64
	// A machine busy with other work can starve a run for a second (the
	// process, not the cluster, is then measured): one retry.
	for attempt := 1; ; attempt++ {
		cfg := Config{
			Rates: []float64{100, 250, 600}, Workers: []int{1, 2}, WorkerConcurrency: 1,
			Duration: time.Second, Warmup: 200 * time.Millisecond, Job: job, SLO: slo,
			Interval: 250 * time.Millisecond,
			Progress: func(Progress) { progress.Add(1) },
		}
		rep = run(t, context.Background(), cfg)
		if len(rep.Runs) != 6 {
			t.Fatalf("%d runs, want 6", len(rep.Runs))
		}
		var table bytes.Buffer
		if err := NewTableReporter(rep)(&table); err != nil {
			t.Fatal(err)
		}
		t.Logf("attempt %d:\n%s", attempt, table.String())
		err := checkKnees(rep.Knees, want)
		if err == nil {
			break
		}
		if attempt == 2 {
			t.Fatal(err)
		}
		t.Logf("%v; retrying", err)
	}
	if !rep.SLOMet() {
		t.Error("SLOMet false although every worker count has a knee")
	}
	if progress.Load() == 0 {
		t.Error("no progress reported")
	}
	var text bytes.Buffer
	if err := NewTextReporter(rep)(&text); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"knee", "1 worker: 100/s", "2 workers: 250/s", "MISS"} {
		if !strings.Contains(text.String(), s) {
			t.Errorf("sweep report lacks %q:\n%s", s, text.String())
		}
	}
}

func checkKnees(got, want []Knee) error {
	if len(got) != len(want) {
		return fmt.Errorf("knees %+v, want %+v", got, want)
	}
	for i, k := range got {
		if k.Workers != want[i].Workers || k.Rate != want[i].Rate || k.Next != want[i].Next {
			return fmt.Errorf("knee %d = %+v, want workers %d rate %g next %g", i, k, want[i].Workers, want[i].Rate, want[i].Next)
		}
	}
	return nil
}

func TestKnees(t *testing.T) {
	mk := func(w int, rate float64, met bool) *Result {
		return &Result{Mode: "open", Workers: w, TargetRate: rate, SLO: &SLOResult{Met: met}}
	}
	tests := []struct {
		name string
		runs []*Result
		want []Knee
	}{
		{"all met", []*Result{mk(1, 100, true), mk(1, 200, true)}, []Knee{{Workers: 1, Rate: 200}}},
		{"none met", []*Result{mk(1, 100, false), mk(1, 200, false)}, []Knee{{Workers: 1, Next: 100}}},
		{"unsorted", []*Result{mk(2, 300, false), mk(2, 100, true), mk(2, 200, true)}, []Knee{{Workers: 2, Rate: 200, Next: 300}}},
		{"pass above a failure is noise", []*Result{mk(1, 100, true), mk(1, 200, false), mk(1, 300, true)}, []Knee{{Workers: 1, Rate: 100, Next: 200}}},
		{"per worker count", []*Result{mk(1, 100, true), mk(1, 200, false), mk(2, 100, true), mk(2, 200, true)},
			[]Knee{{Workers: 1, Rate: 100, Next: 200}, {Workers: 2, Rate: 200}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := knees(tt.runs)
			if len(got) != len(tt.want) {
				t.Fatalf("knees %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i].Workers != tt.want[i].Workers || got[i].Rate != tt.want[i].Rate || got[i].Next != tt.want[i].Next {
					t.Errorf("knee %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestParseSLO(t *testing.T) {
	tests := []struct {
		in   string
		want []Objective
		err  bool
	}{
		{in: "p99=2ms", want: []Objective{{"p99", 99, 2 * time.Millisecond}}},
		{in: "p50=500us, p99.9=10ms", want: []Objective{{"p50", 50, 500 * time.Microsecond}, {"p99.9", 99.9, 10 * time.Millisecond}}},
		{in: "p999=1s", want: []Objective{{"p999", 99.9, time.Second}}},
		{in: "p9999<=1s", want: []Objective{{"p9999", 99.99, time.Second}}},
		{in: "max=30ms", want: []Objective{{"max", 100, 30 * time.Millisecond}}},
		{in: "P99=2ms", want: []Objective{{"p99", 99, 2 * time.Millisecond}}},
		{in: "", err: true},
		{in: "p99", err: true},
		{in: "p99=fast", err: true},
		{in: "p0=1ms", err: true},
		{in: "q99=1ms", err: true},
		{in: "p99=-1ms", err: true},
	}
	for _, tt := range tests {
		got, err := ParseSLO(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("ParseSLO(%q) error %v, want error %v", tt.in, err, tt.err)
			continue
		}
		if len(got) != len(tt.want) {
			t.Errorf("ParseSLO(%q) = %v, want %v", tt.in, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("ParseSLO(%q)[%d] = %+v, want %+v", tt.in, i, got[i], tt.want[i])
			}
		}
	}
}

// TestClosedLoop: with no rate, Concurrency callers run flat out.
func TestClosedLoop(t *testing.T) {
	cfg := Config{Rates: []float64{0}, Concurrency: 8, Duration: time.Second, Warmup: -1, Workers: []int{1}}
	rep := run(t, context.Background(), cfg)
	r := rep.Runs[0]
	if r.Mode != "closed" || r.Concurrency != 8 {
		t.Fatalf("mode %q concurrency %d, want closed and 8", r.Mode, r.Concurrency)
	}
	if r.OK < 500 || r.ErrorsAll != 0 || r.Sent != r.OK {
		t.Fatalf("sent %d ok %d errors %d: want hundreds of ok answers and nothing else", r.Sent, r.OK, r.ErrorsAll)
	}
	if r.Throughput < 500 || r.Latency.P50 == 0 || r.ServiceTime.Count != int64(r.OK) {
		t.Fatalf("throughput %.0f, p50 %v µs, service count %d", r.Throughput, r.Latency.P50, r.ServiceTime.Count)
	}
}

// TestInterrupt: cancelling the context ends the run early with a partial
// result and stops a sweep.
func TestInterrupt(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	cfg := Config{
		Rates: []float64{500, 1000}, Workers: []int{1}, Duration: time.Minute, Warmup: -1,
		Interval: 100 * time.Millisecond,
		Progress: func(p Progress) {
			if p.OK >= 200 {
				once.Do(cancel)
			}
		},
	}
	start := time.Now()
	rep := run(t, ctx, cfg)
	if el := time.Since(start); el > 20*time.Second {
		t.Fatalf("interrupted run took %v", el)
	}
	if !rep.Interrupted || len(rep.Runs) != 1 || !rep.Runs[0].Interrupted {
		t.Fatalf("interrupted %v, %d runs: want one interrupted run", rep.Interrupted, len(rep.Runs))
	}
	r := rep.Runs[0]
	if r.OK < 200 || r.DurationSeconds <= 0 || r.DurationSeconds > 20 || r.Missed != 0 {
		t.Fatalf("ok %d, duration %.2fs, missed %d", r.OK, r.DurationSeconds, r.Missed)
	}
	if r.OK+r.ErrorsAll+r.Cancelled != r.Sent {
		t.Fatalf("ok %d + errors %d + cancelled %d != sent %d", r.OK, r.ErrorsAll, r.Cancelled, r.Sent)
	}
}

// TestErrorKinds: failing jobs are counted by kind, not as latencies.
func TestErrorKinds(t *testing.T) {
	job, _ := handlers.Parse("fail:boom")
	cfg := Config{Rates: []float64{200}, Workers: []int{1}, Duration: 500 * time.Millisecond, Warmup: -1, Job: job}
	r := run(t, context.Background(), cfg).Runs[0]
	if r.OK != 0 || r.Errors["worker_error"] != 100 || r.ErrorsAll != 100 {
		t.Fatalf("ok %d errors %v", r.OK, r.Errors)
	}
	if len(r.Errors) != len(ErrorKinds) {
		t.Fatalf("errors has %d kinds, want all %d", len(r.Errors), len(ErrorKinds))
	}
	if r.Latency.Count != 0 {
		t.Fatalf("%d latencies recorded for failed requests", r.Latency.Count)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want Kind
	}{
		{nil, KindOK},
		{client.ErrTimeout, KindTimeout},
		{context.DeadlineExceeded, KindTimeout},
		{context.Canceled, KindCancelled},
		{client.ErrClosed, KindCancelled},
		{client.ErrNoWorker, KindNoWorker},
		{client.ErrBusy, KindBusy},
		{client.ErrWorkerLost, KindWorkerLost},
		{client.ErrBrokerGone, KindBrokerGone},
		{&client.WorkerError{Message: "x"}, KindWorkerError},
		{client.ErrTooLarge, KindTooLarge},
		{client.ErrShuttingDown, KindShuttingDown},
		{client.ErrBadRequest, KindOther},
		{errors.New("strange"), KindOther},
	}
	for _, tt := range tests {
		if got := Classify(tt.err); got != tt.want {
			t.Errorf("Classify(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// TestOutputs: the interval log reads back with hdrhistogram-go's reader
// and sums to the run's histogram; the .hgrm is a percentile distribution;
// -compare-direct measures the function-call baseline.
func TestOutputs(t *testing.T) {
	var hlog bytes.Buffer
	cfg := Config{
		Rates: []float64{1000}, Workers: []int{1}, Duration: time.Second, Warmup: 200 * time.Millisecond,
		Interval: 200 * time.Millisecond, IntervalLog: &hlog, CompareDirect: true,
	}
	rep := run(t, context.Background(), cfg)
	r := rep.Runs[0]

	reader := hdrhistogram.NewHistogramLogReader(&hlog)
	total := newHistogram()
	intervals := 0
	for {
		h, err := reader.NextIntervalHistogram()
		if err != nil {
			t.Fatal(err)
		}
		if h == nil {
			break
		}
		if h.Tag() != "w1-r1000" {
			t.Errorf("interval tag %q, want w1-r1000", h.Tag())
		}
		intervals++
		total.Merge(h)
	}
	if intervals < 3 || total.TotalCount() != r.LatencyHist.TotalCount() {
		t.Errorf("%d intervals holding %d values, want >= 3 holding %d", intervals, total.TotalCount(), r.LatencyHist.TotalCount())
	}

	var hgrm bytes.Buffer
	if err := NewHGRMReporter(r)(&hgrm); err != nil {
		t.Fatal(err)
	}
	if out := hgrm.String(); !strings.Contains(out, "Value\tPercentile\tTotalCount") || !strings.Contains(out, "#[Max") {
		t.Errorf("hgrm output:\n%s", hgrm.String())
	}

	if r.Direct == nil || r.Direct.Rate <= 0 || r.Direct.Ratio <= 0 || r.Direct.Ratio > 1 {
		t.Errorf("direct %+v, want a positive rate and a ratio in (0, 1]", r.Direct)
	}

	// The JSON of a single run is the Result itself.
	var js bytes.Buffer
	if err := NewJSONReporter(rep)(&js); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(js.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if m["target_rate"] != 1000.0 {
		t.Errorf("json target_rate %v", m["target_rate"])
	}
}

// TestLiveBrokerErrors: Validate refuses worker counts with a live
// broker, and an unreachable broker is an error, not a hang.
func TestLiveBrokerErrors(t *testing.T) {
	if err := (Config{Broker: []string{"tcp://127.0.0.1:1"}, Workers: []int{2}}).Validate(); err == nil {
		t.Error("Validate accepted -workers with -broker")
	}
	start := time.Now()
	_, err := Run(context.Background(), Config{Broker: []string{"tcp://127.0.0.1:1"}, Duration: time.Second})
	if err == nil || !strings.Contains(err.Error(), "no broker answers") {
		t.Errorf("Run against nothing: %v", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("took %v to give up", el)
	}
}

// TestInterruptStalled: interrupted while its requests are stuck behind a
// stalled worker, a run still reports promptly, counting them cancelled.
func TestInterruptStalled(t *testing.T) {
	h := newStallHandler(50)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-h.stalled
		// Timings are the stimulus: interrupt with requests piling up,
		// and free the worker after the client has given up on them so
		// the embedded cluster can stop.
		time.AfterFunc(300*time.Millisecond, cancel)
		time.AfterFunc(2*time.Second, func() { close(h.release) })
	}()
	cfg := Config{Rates: []float64{200}, Workers: []int{1}, WorkerConcurrency: 1, Duration: time.Minute, Warmup: -1, Handler: h}
	start := time.Now()
	rep := run(t, ctx, cfg)
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("took %v", el)
	}
	r := rep.Runs[0]
	if !r.Interrupted || r.Cancelled < 30 || r.OK+r.ErrorsAll+r.Cancelled != r.Sent {
		t.Fatalf("interrupted %v, sent %d ok %d errors %v cancelled %d", r.Interrupted, r.Sent, r.OK, r.Errors, r.Cancelled)
	}
}

// TestPoissonRun: a Poisson schedule with a fixed seed sends the same
// number of requests every time, near the target rate.
func TestPoissonRun(t *testing.T) {
	cfg := Config{Rates: []float64{1000}, Arrival: Poisson, Seed: 42, Workers: []int{1}, Duration: time.Second, Warmup: -1}
	r := run(t, context.Background(), cfg).Runs[0]
	if r.Arrival != "poisson" || r.ErrorsAll != 0 || r.Sent < 900 || r.Sent > 1100 {
		t.Fatalf("arrival %q sent %d errors %d", r.Arrival, r.Sent, r.ErrorsAll)
	}
	r2 := run(t, context.Background(), cfg).Runs[0]
	if r2.Sent != r.Sent {
		t.Fatalf("same seed, %d then %d requests", r.Sent, r2.Sent)
	}
}

// TestNoGoroutineLeak: after Run returns, every goroutine it started (the
// requests, the recorder, the embedded cluster, the client) has ended.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	run(t, context.Background(), Config{Rates: []float64{500}, Workers: []int{2}, Duration: 300 * time.Millisecond, Warmup: -1})
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for ; runtime.NumGoroutine() > before; <-tick.C {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
	}
}

func TestProgressLine(t *testing.T) {
	tests := []struct {
		p    Progress
		want string
	}{
		{Progress{Runs: 1, Elapsed: 1500 * time.Millisecond, Rate: 4999.6, OK: 7000, InFlight: 3, P99: 1200 * time.Microsecond},
			"  1.5s  rate 5000/s  ok 7000  errors 0  in flight 3  p99 1.20ms"},
		{Progress{Run: 2, Runs: 6, Workers: 4, Target: 5000, Elapsed: 500 * time.Millisecond, Warmup: true, Rate: 5000, OK: 2500, Errors: 1},
			"[2/6 4 workers, 5000/s]   0.5s warmup  rate 5000/s  ok 2500  errors 1  in flight 0"},
		{Progress{Run: 1, Runs: 2, Workers: 1, Elapsed: time.Second, Rate: 20000},
			"[1/2 1 worker, max]   1.0s  rate 20000/s  ok 0  errors 0  in flight 0"},
	}
	for _, tt := range tests {
		if got := ProgressLine(tt.p); got != tt.want {
			t.Errorf("ProgressLine =\n%q, want\n%q", got, tt.want)
		}
	}
}

func TestFmtDur(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0"}, {1, "1ns"}, {999, "999ns"}, {1500, "1.5µs"}, {250 * time.Microsecond, "250µs"},
		{1234 * time.Microsecond, "1.23ms"}, {45600 * time.Microsecond, "45.6ms"}, {678 * time.Millisecond, "678ms"},
		{2500 * time.Millisecond, "2.50s"},
	}
	for _, tt := range tests {
		if got := fmtDur(tt.d); got != tt.want {
			t.Errorf("fmtDur(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}
