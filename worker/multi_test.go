package worker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hose-project/hose/broker"
	"github.com/hose-project/hose/client"
	"github.com/hose-project/hose/worker"

	"github.com/hose-project/hose/internal/testproc"
)

// waitWorkers waits until b lists n workers, each draining or not as told
// (draining < 0: either).
func waitWorkers(t *testing.T, b *broker.Broker, n int, draining int) []broker.WorkerStats {
	t.Helper()
	var ws []broker.WorkerStats
	testproc.WaitFor(t, 5*time.Second, fmt.Sprintf("%d workers at %s", n, b.Backend()), func() (bool, string) {
		st, err := b.Stats()
		if err != nil {
			return false, err.Error()
		}
		ws = st.Workers
		if len(ws) != n {
			return false, fmt.Sprintf("%d workers", len(ws))
		}
		for _, w := range ws {
			if draining >= 0 && w.Draining != (draining == 1) {
				return false, fmt.Sprintf("draining %v", w.Draining)
			}
		}
		return true, ""
	})
	return ws
}

// execAsync runs Execute in a goroutine with a 10 s deadline.
func execAsync(c *client.Client, payload string) <-chan error {
	ch := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := c.Execute(ctx, []byte(payload))
		if err == nil && string(res) != payload {
			err = fmt.Errorf("result %q for payload %q", res, payload)
		}
		ch <- err
	}()
	return ch
}

// awaitCall receives a call's result; the call's own deadline is 10 s.
func awaitCall(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(12 * time.Second):
		t.Fatal("Execute hung past its deadline")
		return nil
	}
}

var echo = worker.HandlerFunc(func(_ context.Context, j *worker.Job) ([]byte, error) { return j.Payload, nil })

func TestWorkerServesSeveralBrokers(t *testing.T) {
	b1, c1 := setup(t)
	b2, c2 := setup(t)
	w, err := worker.New(worker.Config{Backends: []string{b1.Backend(), b2.Backend()}, Concurrency: 2, Prefetch: 1}, echo)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := run(t, w, ctx)
	// Each broker sees the whole capacity, concurrency + prefetch.
	for _, b := range []*broker.Broker{b1, b2} {
		if ws := waitWorkers(t, b, 1, 0); ws[0].Capacity != 3 {
			t.Errorf("%s sees capacity %d, want 3", b.Backend(), ws[0].Capacity)
		}
	}
	const n = 40
	var calls []<-chan error
	for i := 0; i < n; i++ {
		calls = append(calls, execAsync(c1, fmt.Sprint("one-", i)), execAsync(c2, fmt.Sprint("two-", i)))
	}
	for _, ch := range calls {
		if err := awaitCall(t, ch); err != nil {
			t.Fatalf("call: %v", err)
		}
	}
	for _, b := range []*broker.Broker{b1, b2} {
		if ws := waitWorkers(t, b, 1, -1); ws[0].Done != n {
			t.Errorf("%s: the worker did %d jobs, want %d", b.Backend(), ws[0].Done, n)
		}
	}
	cancel()
	if err := waitResult(t, done, 5*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
	waitWorkers(t, b1, 0, -1)
	waitWorkers(t, b2, 0, -1)
}

// Concurrency is the worker's total: a job from the second broker waits
// for the handler busy with the first broker's job.
func TestConcurrencySharedAcrossBrokers(t *testing.T) {
	b1, c1 := setup(t)
	b2, c2 := setup(t)
	release := make(chan struct{})
	started := make(chan string, 2)
	var running, most atomic.Int64
	w, _ := worker.New(worker.Config{Backends: []string{b1.Backend(), b2.Backend()}, Concurrency: 1, Prefetch: -1},
		worker.HandlerFunc(func(_ context.Context, j *worker.Job) ([]byte, error) {
			n := running.Add(1)
			defer running.Add(-1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			started <- string(j.Payload)
			<-release
			return j.Payload, nil
		}))
	ctx, cancel := context.WithCancel(context.Background())
	done := run(t, w, ctx)
	waitWorkers(t, b1, 1, 0)
	waitWorkers(t, b2, 1, 0)
	first := execAsync(c1, "first")
	if got := <-started; got != "first" {
		t.Fatalf("started %q", got)
	}
	second := execAsync(c2, "second")
	// The second broker sent its job: the worker holds it, unstarted.
	testproc.WaitFor(t, 5*time.Second, "the second job at the worker", func() (bool, string) {
		st, _ := b2.Stats()
		return st.InFlight == 1, fmt.Sprintf("%d in flight", st.InFlight)
	})
	if n := running.Load(); n != 1 {
		t.Fatalf("%d handlers running, want 1", n)
	}
	close(release)
	for _, ch := range []<-chan error{first, second} {
		if err := awaitCall(t, ch); err != nil {
			t.Fatalf("call: %v", err)
		}
	}
	if m := most.Load(); m != 1 {
		t.Errorf("%d handlers ran at once, want 1", m)
	}
	cancel()
	if err := waitResult(t, done, 5*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestGracefulStopDrainsEveryBroker(t *testing.T) {
	b1, c1 := setup(t)
	b2, c2 := setup(t)
	release := make(chan struct{})
	var started sync.WaitGroup
	started.Add(4)
	w, _ := worker.New(worker.Config{Backends: []string{b1.Backend(), b2.Backend()}, Concurrency: 4},
		worker.HandlerFunc(func(_ context.Context, j *worker.Job) ([]byte, error) {
			started.Done()
			<-release
			return j.Payload, nil
		}))
	ctx, cancel := context.WithCancel(context.Background())
	done := run(t, w, ctx)
	waitWorkers(t, b1, 1, 0)
	waitWorkers(t, b2, 1, 0)
	calls := []<-chan error{execAsync(c1, "a"), execAsync(c1, "b"), execAsync(c2, "c"), execAsync(c2, "d")}
	started.Wait()
	cancel()
	// Both brokers see the worker draining; it must still finish the jobs
	// of both before it leaves.
	waitWorkers(t, b1, 1, 1)
	waitWorkers(t, b2, 1, 1)
	select {
	case err := <-done:
		t.Fatalf("Run returned with jobs running: %v", err)
	default:
	}
	close(release)
	for _, ch := range calls {
		if err := awaitCall(t, ch); err != nil {
			t.Fatalf("in-flight job: %v", err)
		}
	}
	if err := waitResult(t, done, 5*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
	waitWorkers(t, b1, 0, -1)
	waitWorkers(t, b2, 0, -1)
}

func TestMaxJobsCountsEveryBroker(t *testing.T) {
	b1, c1 := setup(t)
	b2, c2 := setup(t)
	var ran atomic.Int64
	w, _ := worker.New(worker.Config{Backends: []string{b1.Backend(), b2.Backend()}, MaxJobs: 6, Concurrency: 1},
		worker.HandlerFunc(func(_ context.Context, j *worker.Job) ([]byte, error) {
			ran.Add(1)
			return j.Payload, nil
		}))
	done := run(t, w, context.Background())
	waitWorkers(t, b1, 1, 0)
	waitWorkers(t, b2, 1, 0)
	// Three from each: neither broker alone reaches 6.
	for i := 0; i < 3; i++ {
		for _, c := range []*client.Client{c1, c2} {
			if err := awaitCall(t, execAsync(c, fmt.Sprint(i))); err != nil {
				t.Fatalf("job %d: %v", i, err)
			}
		}
	}
	if err := waitResult(t, done, 5*time.Second); !errors.Is(err, worker.ErrRetired) {
		t.Fatalf("Run: %v, want ErrRetired", err)
	}
	if n := ran.Load(); n != 6 {
		t.Errorf("ran %d jobs, want 6", n)
	}
	// It said goodbye to both.
	waitWorkers(t, b1, 0, -1)
	waitWorkers(t, b2, 0, -1)
}

// msgLog is a slog handler that hands each record's message to a channel.
type msgLog chan string

func (m msgLog) Enabled(context.Context, slog.Level) bool { return true }
func (m msgLog) WithAttrs([]slog.Attr) slog.Handler       { return m }
func (m msgLog) WithGroup(string) slog.Handler            { return m }
func (m msgLog) Handle(_ context.Context, r slog.Record) error {
	select {
	case m <- r.Message:
	default:
	}
	return nil
}

// waitLog waits for a log message.
func waitLog(t *testing.T, logs msgLog, limit time.Duration, msgs ...string) {
	t.Helper()
	timeout := time.After(limit)
	for {
		select {
		case m := <-logs:
			for _, want := range msgs {
				if m == want {
					return
				}
			}
		case <-timeout:
			t.Fatalf("no %q logged within %v", msgs, limit)
		}
	}
}

// With ExitOnBrokerLoss and two brokers, losing one leaves the worker
// serving the other; losing both ends Run with ErrBrokerLost.
func TestExitOnBrokerLossWaitsForEveryBroker(t *testing.T) {
	b1, _ := setup(t)
	b2, c2 := setup(t)
	logs := make(msgLog, 1024)
	w, _ := worker.New(worker.Config{Backends: []string{b1.Backend(), b2.Backend()}, ExitOnBrokerLoss: true,
		Logger: slog.New(logs)}, echo)
	done := run(t, w, context.Background())
	waitWorkers(t, b1, 1, 0)
	waitWorkers(t, b2, 1, 0)
	b1.Close()
	waitLog(t, logs, 5*time.Second, "broker said disconnect", "broker silent")
	if err := awaitCall(t, execAsync(c2, "still here")); err != nil {
		t.Fatalf("call through the surviving broker: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned with one broker left: %v", err)
	default:
	}
	b2.Close()
	if err := waitResult(t, done, 5*time.Second); !errors.Is(err, worker.ErrBrokerLost) {
		t.Fatalf("Run: %v, want ErrBrokerLost", err)
	}
}

func TestBackendsValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  worker.Config
		ok   bool
	}{
		{"backend alone", worker.Config{Backend: "tcp://127.0.0.1:1"}, true},
		{"backends win over backend", worker.Config{Backend: "tcp://127.0.0.1:1", Backends: []string{"tcp://127.0.0.1:1", "tcp://127.0.0.1:2"}}, true},
		{"duplicate backend", worker.Config{Backends: []string{"tcp://127.0.0.1:1", "tcp://127.0.0.1:1"}}, false},
		{"empty backend", worker.Config{Backends: []string{"tcp://127.0.0.1:1", ""}}, false},
		{"default HWM", worker.Config{Concurrency: 1000}, true},
		{"HWM at the minimum", worker.Config{Concurrency: 10, Prefetch: 5, HWM: 31}, true},
		{"HWM below concurrency + prefetch + 16", worker.Config{Concurrency: 10, Prefetch: 5, HWM: 30}, false},
		{"negative HWM", worker.Config{HWM: -1}, false},
		{"HWM over int32", worker.Config{HWM: 1 << 31}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate: %v, want ok %v", err, tt.ok)
			}
		})
	}
}

// A malformed endpoint among good ones stops the worker with an error.
func TestBadBackendStopsRun(t *testing.T) {
	b, _ := setup(t)
	w, err := worker.New(worker.Config{Backends: []string{b.Backend(), "nonsense://x"}}, echo)
	if err != nil {
		t.Fatal(err)
	}
	err = waitResult(t, run(t, w, context.Background()), 5*time.Second)
	if err == nil || errors.Is(err, worker.ErrRetired) || errors.Is(err, worker.ErrBrokerLost) {
		t.Fatalf("Run: %v, want a connect error", err)
	}
	waitWorkers(t, b, 0, -1)
}

// Jobs a lost broker left queued at the worker are dropped (their callers
// were answered by that broker), so they do not delay the other broker's.
func TestLostBrokersQueuedJobsAreDropped(t *testing.T) {
	b1, c1 := setup(t)
	b2, c2 := setup(t)
	logs := make(msgLog, 1024)
	release := make(chan struct{})
	started := make(chan string, 16)
	w, _ := worker.New(worker.Config{Backends: []string{b1.Backend(), b2.Backend()}, Concurrency: 1, Prefetch: 3,
		Logger: slog.New(logs)},
		worker.HandlerFunc(func(_ context.Context, j *worker.Job) ([]byte, error) {
			started <- string(j.Payload)
			if string(j.Payload) == "block" {
				<-release
			}
			return j.Payload, nil
		}))
	ctx, cancel := context.WithCancel(context.Background())
	done := run(t, w, ctx)
	waitWorkers(t, b1, 1, 0)
	waitWorkers(t, b2, 1, 0)
	execAsync(c1, "block")
	if got := <-started; got != "block" {
		t.Fatalf("started %q", got)
	}
	for i := 0; i < 3; i++ {
		execAsync(c1, fmt.Sprint("queued-", i))
	}
	testproc.WaitFor(t, 5*time.Second, "4 jobs at the worker", func() (bool, string) {
		st, _ := b1.Stats()
		return st.InFlight == 4, fmt.Sprintf("%d in flight", st.InFlight)
	})
	b1.Close()
	waitLog(t, logs, 5*time.Second, "broker said disconnect", "broker silent")
	next := execAsync(c2, "next")
	testproc.WaitFor(t, 5*time.Second, "the job at the worker", func() (bool, string) {
		st, _ := b2.Stats()
		return st.InFlight == 1, fmt.Sprintf("%d in flight", st.InFlight)
	})
	close(release)
	if got := <-started; got != "next" {
		t.Errorf("after the blocked job the worker ran %q, want the surviving broker's job", got)
	}
	if err := awaitCall(t, next); err != nil {
		t.Fatalf("call: %v", err)
	}
	cancel()
	if err := waitResult(t, done, 5*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
}
