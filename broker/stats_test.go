package broker_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/hose-project/hose/broker"
	"github.com/hose-project/hose/client"
	"github.com/hose-project/hose/internal/zsock"
	"github.com/hose-project/hose/protocol"
	hstats "github.com/hose-project/hose/stats"
	"github.com/hose-project/hose/worker"
)

// statsSub is a SUB socket on a broker's stats endpoint.
type statsSub struct {
	t    testing.TB
	ctx  *zmq.Context
	sock *zmq.Socket
}

// subscribeStats subscribes to ep; curve, when given, is the broker's
// public key and the reader's key pair (a CURVE broker's stats stream
// admits listed clients only).
func subscribeStats(t testing.TB, ep string, curve ...string) *statsSub {
	t.Helper()
	ctx, err := zmq.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	s, err := ctx.NewSocket(zmq.SUB)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.SetLinger(0)
	if len(curve) == 3 {
		if err := zsock.CurveClient(s, curve[0], curve[1], curve[2]); err != nil {
			t.Fatal(err)
		}
	}
	_ = s.SetSubscribe("")
	if err := s.Connect(ep); err != nil {
		t.Fatal(err)
	}
	sub := &statsSub{t: t, ctx: ctx, sock: s}
	t.Cleanup(func() { s.Close(); ctx.Term() })
	return sub
}

// next waits up to limit for one snapshot.
func (s *statsSub) next(limit time.Duration) *hstats.Snapshot {
	s.t.Helper()
	_ = s.sock.SetRcvtimeo(limit)
	body, err := s.sock.RecvBytes(0)
	if err != nil {
		s.t.Fatalf("no snapshot within %v: %v", limit, err)
	}
	snap, err := hstats.Decode(body)
	if err != nil {
		s.t.Fatal(err)
	}
	return snap
}

// until reads snapshots until cond holds for one, and returns every snapshot
// read (the last one satisfies cond).
func (s *statsSub) until(limit time.Duration, what string, cond func(*hstats.Snapshot) bool) []*hstats.Snapshot {
	s.t.Helper()
	deadline := time.Now().Add(limit)
	var got []*hstats.Snapshot
	for {
		left := time.Until(deadline)
		if left <= 0 {
			s.t.Fatalf("timed out after %v waiting for a snapshot with %s", limit, what)
		}
		snap := s.next(left)
		got = append(got, snap)
		if cond(snap) {
			return got
		}
	}
}

func statsConfig() broker.Config {
	cfg := testConfig()
	cfg.Stats = "tcp://127.0.0.1:*"
	cfg.StatsInterval = 100 * time.Millisecond
	return cfg
}

// TestStatsSnapshotsMatchTheWork runs jobs through a real broker and checks
// the published totals, histograms and worker rows against them.
func TestStatsSnapshotsMatchTheWork(t *testing.T) {
	checkGoroutines(t)
	b := startBroker(t, statsConfig())
	if !strings.HasPrefix(b.StatsEndpoint(), "tcp://127.0.0.1:") {
		t.Fatalf("stats endpoint %q", b.StatsEndpoint())
	}
	startWorker(t, b, worker.Config{Concurrency: 4}, echo)
	startWorker(t, b, worker.Config{Concurrency: 4}, echo)
	startWorker(t, b, worker.Config{Concurrency: 2, Services: []string{"bad"}},
		worker.HandlerFunc(func(context.Context, *worker.Job) ([]byte, error) { return nil, errors.New("no") }))
	waitWorkers(t, b, 3)
	sub := subscribeStats(t, b.StatsEndpoint())
	// The first snapshot proves the subscription is up: every later one
	// reaches us, so their histograms add up to the work done after it.
	first := sub.until(5*time.Second, "3 workers", func(s *hstats.Snapshot) bool { return len(s.Workers) == 3 })
	start := first[len(first)-1]

	c := newClient(t, client.Config{}, b.Frontend())
	const n, nBad = 200, 7
	ctx := context.Background()
	for i := 0; i < n; i++ {
		if _, err := c.Execute(ctx, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < nBad; i++ {
		if _, err := c.Execute(ctx, []byte("x"), client.WithService("bad")); err == nil {
			t.Fatal("the failing service answered ok")
		}
	}
	snaps := sub.until(5*time.Second, "every job answered", func(s *hstats.Snapshot) bool {
		return s.Totals.Replied-start.Totals.Replied == n && s.Totals.Errors-start.Totals.Errors == nBad
	})
	last := snaps[len(snaps)-1]

	var svcCount, totalCount, queueCount, workerJobs int64
	prevSeq := start.Seq
	for _, s := range snaps {
		if s.Seq != prevSeq+1 {
			t.Fatalf("snapshot seq %d after %d", s.Seq, prevSeq)
		}
		prevSeq = s.Seq
		svcCount += s.Latency.Service.Count
		totalCount += s.Latency.Total.Count
		queueCount += s.Latency.QueueWait.Count
		for _, w := range s.Workers {
			workerJobs += w.Jobs
		}
		// The compressed histogram decodes to the summary beside it.
		h, err := s.Latency.Service.Histogram()
		if err != nil {
			t.Fatal(err)
		}
		if h.TotalCount() != s.Latency.Service.Count || (h.TotalCount() > 0 && h.ValueAtQuantile(99) != s.Latency.Service.P99US) {
			t.Fatalf("decoded histogram: %d values, p99 %d; summary says %d, %d", h.TotalCount(), h.ValueAtQuantile(99), s.Latency.Service.Count, s.Latency.Service.P99US)
		}
	}
	if want := int64(n + nBad); svcCount != want || totalCount != want || queueCount != want || workerJobs != want {
		t.Errorf("histogram counts: service %d, total %d, queue wait %d, workers %d; want %d", svcCount, totalCount, queueCount, workerJobs, want)
	}
	if last.Totals.Received-start.Totals.Received != n+nBad || last.Totals.Dispatched-start.Totals.Dispatched != n+nBad {
		t.Errorf("totals: %+v", last.Totals)
	}
	var kinds []string
	for _, e := range last.Errors {
		kinds = append(kinds, e.Kind)
		if e.Kind == "worker_error" && e.Total != nBad {
			t.Errorf("worker errors %d, want %d", e.Total, nBad)
		}
	}
	if strings.Join(kinds, ",") != "worker_error" {
		t.Errorf("error kinds %v", kinds)
	}
	var done, errs uint64
	for _, w := range last.Workers {
		done += w.Done
		errs += w.Errors
		if w.State != hstats.StateReady || w.Host == "" || w.PID == 0 || w.Capacity == 0 || len(w.Services) != 1 {
			t.Errorf("worker row %+v", w)
		}
	}
	if done != n+nBad || errs != nBad {
		t.Errorf("workers did %d jobs with %d errors, want %d and %d", done, errs, n+nBad, nBad)
	}
	if last.WorkerStates[hstats.StateReady] != 3 || last.Live() != 3 {
		t.Errorf("worker states %v", last.WorkerStates)
	}
	if last.Broker.PID == 0 || last.Broker.Frontend != b.Frontend() || last.Broker.Version != protocol.Version || len(last.Broker.Instance) != 16 {
		t.Errorf("broker %+v", last.Broker)
	}
	if r, ok := hstats.Between(start, last); !ok || r.Replied <= 0 {
		t.Errorf("rates between snapshots: %+v %v", r, ok)
	}
}

// TestStatsQueueAndLostWorkers checks the queue high-water mark and that a
// worker dropped for silence stays listed as lost.
func TestStatsQueueAndLostWorkers(t *testing.T) {
	b := startBroker(t, statsConfig())
	sub := subscribeStats(t, b.StatsEndpoint())
	sub.next(5 * time.Second)

	// Three requests for a service whose only worker holds one job at a time
	// and never answers: two wait in the queue.
	raw := newRawPeer(t, b.Backend())
	raw.send(protocol.Worker, protocol.CmdReady, protocol.AppendReady(nil, &protocol.Ready{Capacity: 1, PID: 42, Host: "rawhost", Services: []string{"slow"}}))
	if _, ok := raw.recvCmd(protocol.Worker, protocol.CmdWelcome, 2*time.Second); !ok {
		t.Fatal("no WELCOME")
	}
	c := newClient(t, client.Config{}, b.Frontend())
	for i := 0; i < 3; i++ {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, _ = c.Execute(ctx, nil, client.WithService("slow"))
		}()
	}
	sub.until(5*time.Second, "a queue of 2 and a busy worker", func(s *hstats.Snapshot) bool {
		for _, q := range s.Queues {
			if q.Service == "slow" && q.Depth == 2 && q.HighWater == 2 && q.HighWaterEver == 2 {
				return len(s.Workers) == 1 && s.Workers[0].State == hstats.StateBusy && s.Workers[0].InFlight == 1
			}
		}
		return false
	})
	// The raw worker never heartbeats: the broker drops it as silent.
	snaps := sub.until(5*time.Second, "the worker lost", func(s *hstats.Snapshot) bool {
		return s.WorkerStates[hstats.StateLost] == 1
	})
	w := snaps[len(snaps)-1].Workers[0]
	if w.State != hstats.StateLost || w.LostReason != "silent" || w.PID != 42 || w.Host != "rawhost" {
		t.Fatalf("lost worker row %+v", w)
	}
	if got := snaps[len(snaps)-1].Totals.WorkersLost; got != 1 {
		t.Fatalf("workers lost %d", got)
	}
	// It is not listed by Stats, which callers poll for live workers.
	if st := stats(t, b); len(st.Workers) != 0 {
		t.Fatalf("Stats lists %d workers", len(st.Workers))
	}
}

// TestMetrics scrapes the Prometheus endpoint of a broker without a stats
// socket.
func TestMetrics(t *testing.T) {
	cfg := testConfig()
	cfg.Metrics = "127.0.0.1:0"
	cfg.StatsInterval = 100 * time.Millisecond
	b := startBroker(t, cfg)
	startWorker(t, b, worker.Config{Concurrency: 2}, echo)
	waitWorkers(t, b, 1)
	c := newClient(t, client.Config{}, b.Frontend())
	for i := 0; i < 10; i++ {
		if _, err := c.Execute(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
	}
	url := "http://" + b.MetricsAddr() + "/metrics"
	var body string
	waitFor(t, 5*time.Second, "metrics to show the jobs", func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		body = string(data)
		return strings.Contains(body, "hose_replies_ok_total 10\n") && strings.Contains(body, "hose_latency_seconds_count 10\n")
	})
	for _, want := range []string{
		`hose_workers{state="ready"} 1`,
		`hose_queue_depth{service="default"} 0`,
		`hose_service_seconds_bucket{le="+Inf"} 10`,
		`hose_worker_jobs_total{host=`,
		`hose_broker_info{host=`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	b.Close()
	if _, err := http.Get(url); err == nil {
		t.Error("metrics still served after Close")
	}
}
