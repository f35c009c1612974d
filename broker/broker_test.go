package broker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hose-project/hose/broker"
	"github.com/hose-project/hose/client"
	"github.com/hose-project/hose/protocol"
	"github.com/hose-project/hose/worker"
)

func TestExecuteEchoServicesHeadersParams(t *testing.T) {
	checkGoroutines(t)
	b := startBroker(t, testConfig())
	startWorker(t, b, worker.Config{}, echo)
	startWorker(t, b, worker.Config{Services: []string{"upper"}, Params: map[string]string{"greeting": "hi"}},
		worker.HandlerFunc(func(_ context.Context, j *worker.Job) ([]byte, error) {
			return []byte(fmt.Sprintf("%s %s %s %s", j.Service, j.Params["greeting"], j.Header("who"), bytes.ToUpper(j.Payload))), nil
		}))
	waitWorkers(t, b, 2)
	c := newClient(t, client.Config{}, b.Frontend())
	ctx := context.Background()

	got, err := c.Execute(ctx, []byte("hello"))
	if err != nil || string(got) != "hello" {
		t.Fatalf("default service: %q, %v", got, err)
	}
	got, err = c.Execute(ctx, []byte("abc"), client.WithService("upper"), client.WithHeader("who", "bob"))
	if err != nil || string(got) != "upper hi bob ABC" {
		t.Fatalf("upper service: %q, %v", got, err)
	}
	got, err = c.Execute(ctx, nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("empty payload: %q, %v", got, err)
	}
	st := stats(t, b)
	if st.Counters.Replied != 3 || st.Counters.Dispatched != 3 {
		t.Fatalf("counters: %+v", st.Counters)
	}
}

func TestWorkerErrorAndPanicKeepWorkerAlive(t *testing.T) {
	checkGoroutines(t)
	b := startBroker(t, testConfig())
	startWorker(t, b, worker.Config{Concurrency: 1}, worker.HandlerFunc(func(_ context.Context, j *worker.Job) ([]byte, error) {
		switch string(j.Payload) {
		case "fail":
			return nil, errors.New("bad input: fail")
		case "panic":
			panic("handler exploded")
		}
		return j.Payload, nil
	}))
	waitWorkers(t, b, 1)
	c := newClient(t, client.Config{}, b.Frontend())
	ctx := context.Background()

	_, err := c.Execute(ctx, []byte("fail"))
	var we *client.WorkerError
	if !errors.Is(err, client.ErrWorker) || !errors.As(err, &we) || we.Message != "bad input: fail" {
		t.Fatalf("worker error: %v", err)
	}
	_, err = c.Execute(ctx, []byte("panic"))
	if !errors.As(err, &we) || !contains(we.Message, "handler exploded") {
		t.Fatalf("panic: %v", err)
	}
	// The same single worker still serves.
	if got, err := c.Execute(ctx, []byte("ok")); err != nil || string(got) != "ok" {
		t.Fatalf("after panic: %q, %v", got, err)
	}
}

func TestNoWorkerAfterBoundedWait(t *testing.T) {
	checkGoroutines(t)
	b := startBroker(t, testConfig())
	c := newClient(t, client.Config{}, b.Frontend())
	start := time.Now()
	_, err := c.Execute(context.Background(), []byte("x"), client.WithService("nobody"), client.WithTimeout(5*time.Second))
	el := time.Since(start)
	if !errors.Is(err, client.ErrNoWorker) {
		t.Fatalf("want ErrNoWorker, got %v", err)
	}
	if el < 150*time.Millisecond || el > 2*time.Second {
		t.Fatalf("no-worker answer after %v, want about the 200ms wait", el)
	}
}

func TestJobWaitsForWorkerThatArrives(t *testing.T) {
	cfg := testConfig()
	cfg.NoWorkerWait = 3 * time.Second
	b := startBroker(t, cfg)
	c := newClient(t, client.Config{}, b.Frontend())
	res := make(chan error, 1)
	go func() {
		_, err := c.Execute(context.Background(), []byte("x"))
		res <- err
	}()
	waitFor(t, 2*time.Second, "job to be queued", func() bool { return stats(t, b).Queued["default"] == 1 })
	startWorker(t, b, worker.Config{}, echo)
	if err := <-res; err != nil {
		t.Fatalf("queued job: %v", err)
	}
}

func TestDeadlineReachesHandlerAndTimedOutClientStaysUsable(t *testing.T) {
	checkGoroutines(t)
	b := startBroker(t, testConfig())
	deadlines := make(chan time.Time, 100)
	startWorker(t, b, worker.Config{Concurrency: 2}, worker.HandlerFunc(func(ctx context.Context, j *worker.Job) ([]byte, error) {
		dl, _ := ctx.Deadline()
		deadlines <- dl
		if string(j.Payload) == "slow" {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return j.Payload, nil
	}))
	waitWorkers(t, b, 1)
	c := newClient(t, client.Config{}, b.Frontend())

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	want, _ := ctx.Deadline()
	start := time.Now()
	_, err := c.Execute(ctx, []byte("slow"))
	if !errors.Is(err, client.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want ErrTimeout, got %v", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("timeout took %v", el)
	}
	if got := <-deadlines; got.Sub(want).Abs() > 50*time.Millisecond {
		t.Fatalf("handler deadline %v, caller deadline %v", got, want)
	}
	// Powerhose's bug: a client whose call timed out must stay usable.
	for i := 0; i < 10; i++ {
		if got, err := c.Execute(context.Background(), []byte("fast")); err != nil || string(got) != "fast" {
			t.Fatalf("after timeout: %q, %v", got, err)
		}
	}
	// The late reply of the slow job (the handler ends at its deadline) is
	// counted as late and never reaches another call.
	waitFor(t, 2*time.Second, "late reply to be counted", func() bool { return stats(t, b).Counters.Late >= 1 })
}

func TestFloodBeyondQueueBound(t *testing.T) {
	checkGoroutines(t)
	cfg := testConfig()
	cfg.MaxQueue = 20
	cfg.MaxClientInFlight = 1000
	b := startBroker(t, cfg)
	bl := newBlocker()
	startWorker(t, b, worker.Config{Concurrency: 2, Prefetch: -1}, bl)
	waitWorkers(t, b, 1)
	c := newClient(t, client.Config{}, b.Frontend())

	const n = 200
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := c.Execute(context.Background(), []byte("x"), client.WithTimeout(10*time.Second))
			errs <- err
		}()
	}
	// 2 at the worker + 20 queued; the other 178 are refused at once.
	busy := 0
	for busy < n-22 {
		err := <-errs
		if !errors.Is(err, client.ErrBusy) {
			t.Fatalf("before release: want ErrBusy, got %v", err)
		}
		busy++
	}
	close(bl.release)
	for i := 0; i < 22; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("admitted job: %v", err)
		}
	}
	st := stats(t, b)
	if got := st.Counters.ErrorCount(protocol.StatusBusy); got != n-22 {
		t.Fatalf("busy count %d, want %d", got, n-22)
	}
}

func TestClientLeavingMidRequestCancelsQueuedJob(t *testing.T) {
	checkGoroutines(t)
	b := startBroker(t, testConfig())
	bl := newBlocker()
	startWorker(t, b, worker.Config{Concurrency: 1, Prefetch: -1}, bl)
	waitWorkers(t, b, 1)
	c := newClient(t, client.Config{}, b.Frontend())

	first := make(chan error, 1)
	go func() {
		_, err := c.Execute(context.Background(), []byte("first"))
		first <- err
	}()
	<-bl.started // the worker is busy with "first"
	ctx, cancel := context.WithCancel(context.Background())
	second := make(chan error, 1)
	go func() {
		_, err := c.Execute(ctx, []byte("second"))
		second <- err
	}()
	waitFor(t, 2*time.Second, "second job queued", func() bool { return stats(t, b).Queued["default"] == 1 })
	cancel()
	if err := <-second; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v", err)
	}
	// The broker drops the job when it reaches the head of the queue,
	// which happens when the worker frees up.
	waitFor(t, 2*time.Second, "cancel to reach the broker", func() bool { return stats(t, b).Counters.CancelsSeen == 1 })
	close(bl.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "cancelled job dropped", func() bool { return stats(t, b).Counters.Cancelled == 1 })
	select {
	case id := <-bl.started:
		t.Fatalf("cancelled job %d ran", id)
	default:
	}
}

func TestThousandConcurrentCallers(t *testing.T) {
	checkGoroutines(t)
	b := startBroker(t, testConfig())
	startWorker(t, b, worker.Config{Concurrency: 64}, echo)
	startWorker(t, b, worker.Config{Concurrency: 64}, echo)
	waitWorkers(t, b, 2)
	c := newClient(t, client.Config{}, b.Frontend())

	const callers, each = 1000, 20
	var wg sync.WaitGroup
	var bad atomic.Int64
	for g := 0; g < callers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				want := fmt.Sprintf("caller %d call %d", g, i)
				got, err := c.Execute(context.Background(), []byte(want), client.WithTimeout(30*time.Second))
				if err != nil || string(got) != want {
					if bad.Add(1) < 5 {
						t.Errorf("got %q, %v; want %q", got, err, want)
					}
				}
			}
		}()
	}
	wg.Wait()
	if bad.Load() > 0 {
		t.Fatalf("%d calls failed or crossed", bad.Load())
	}
	if st := stats(t, b); st.Counters.Replied != callers*each {
		t.Fatalf("broker replied %d, want %d", st.Counters.Replied, callers*each)
	}
}

func TestShutdownAnswersPendingRequests(t *testing.T) {
	checkGoroutines(t)
	b, err := broker.New(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	bl := newBlocker()
	startWorker(t, b, worker.Config{Concurrency: 2, Prefetch: -1}, bl)
	waitWorkers(t, b, 1)
	c := newClient(t, client.Config{}, b.Frontend())

	const n = 20
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := c.Execute(context.Background(), []byte("x"), client.WithTimeout(20*time.Second))
			errs <- err
		}()
	}
	waitFor(t, 2*time.Second, "jobs to arrive", func() bool {
		st := stats(t, b)
		return st.InFlight == 2 && st.Queued["default"] == n-2
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := b.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v", err)
	}
	// The two jobs at the worker may have run: "worker lost". The queued
	// ones never ran: the broker answers "shutting down", the client looks
	// for another broker for its connect timeout, then reports that.
	lost := 0
	for i := 0; i < n; i++ {
		select {
		case err := <-errs:
			switch {
			case errors.Is(err, client.ErrWorkerLost):
				lost++
			case errors.Is(err, client.ErrShuttingDown):
			default:
				t.Fatalf("pending call: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("call %d still pending %v after shutdown", i, time.Since(start))
		}
	}
	if lost != 2 {
		t.Errorf("%d calls answered worker lost, want the 2 at the worker", lost)
	}
	close(bl.release)
}

func TestGracefulDrainFinishesJobsAndRefusesNewOnes(t *testing.T) {
	checkGoroutines(t)
	b, err := broker.New(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	bl := newBlocker()
	startWorker(t, b, worker.Config{Concurrency: 4, Prefetch: -1}, bl)
	waitWorkers(t, b, 1)
	c := newClient(t, client.Config{}, b.Frontend())
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		go func() {
			_, err := c.Execute(context.Background(), []byte("x"))
			errs <- err
		}()
	}
	for i := 0; i < 4; i++ {
		<-bl.started
	}
	done := make(chan error, 1)
	go func() { done <- b.Shutdown(context.Background()) }()
	// A new call is refused; the client holds it for another broker (or
	// this one, restarted) until its connect timeout, then says why.
	waitFor(t, 5*time.Second, "new calls to be refused", func() bool {
		_, err := c.Execute(context.Background(), []byte("late"), client.WithTimeout(5*time.Second))
		return errors.Is(err, client.ErrShuttingDown)
	})
	if st := stats(t, b); st.Counters.Dispatched != 4 {
		t.Errorf("%d jobs dispatched during the drain, want only the first 4", st.Counters.Dispatched)
	}
	close(bl.release)
	for i := 0; i < 4; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("in-flight job during drain: %v", err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func TestBrokerDownWhenExecuteIsCalled(t *testing.T) {
	checkGoroutines(t)
	// A port that was free a moment ago: nobody listens there.
	b := startBroker(t, testConfig())
	ep := b.Frontend()
	b.Close()
	c := newClient(t, client.Config{ConnectTimeout: 300 * time.Millisecond}, ep)
	start := time.Now()
	_, err := c.Execute(context.Background(), []byte("x"), client.WithTimeout(10*time.Second))
	if !errors.Is(err, client.ErrBrokerGone) {
		t.Fatalf("want ErrBrokerGone, got %v", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("took %v", el)
	}
}

func TestRefusesSecondBrokerOnSameIPCEndpoint(t *testing.T) {
	checkGoroutines(t)
	dir := t.TempDir()
	cfg := testConfig()
	cfg.Frontend = "ipc://" + filepath.Join(dir, "front")
	cfg.Backend = "ipc://" + filepath.Join(dir, "back")
	startBroker(t, cfg)
	_, err := broker.New(cfg)
	if !errors.Is(err, broker.ErrAlreadyRunning) || !contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("second broker: %v", err)
	}
}

func TestClientFailsOverBetweenBrokers(t *testing.T) {
	checkGoroutines(t)
	b1 := startBroker(t, testConfig())
	b2 := startBroker(t, testConfig())
	startWorker(t, b1, worker.Config{Concurrency: 8}, echo)
	startWorker(t, b2, worker.Config{Concurrency: 8}, echo)
	waitWorkers(t, b1, 1)
	waitWorkers(t, b2, 1)
	c := newClient(t, client.Config{}, b1.Frontend(), b2.Frontend())
	for i := 0; i < 200; i++ {
		if _, err := c.Execute(context.Background(), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if r1, r2 := stats(t, b1).Counters.Replied, stats(t, b2).Counters.Replied; r1 < 50 || r2 < 50 {
		t.Fatalf("load not spread: %d and %d", r1, r2)
	}
	// Kill the first broker while calls run: none may hang; after the
	// failover every call succeeds on the second.
	var wg sync.WaitGroup
	var failed, ok atomic.Int64
	stop := make(chan struct{})
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := c.Execute(context.Background(), []byte("x"), client.WithTimeout(5*time.Second))
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, client.ErrBrokerGone), errors.Is(err, client.ErrShuttingDown),
					errors.Is(err, client.ErrWorkerLost): // at a worker when its broker closed
					failed.Add(1)
				default:
					t.Errorf("unexpected error: %v", err)
				}
			}
		}()
	}
	waitFor(t, 5*time.Second, "some calls", func() bool { return ok.Load() > 100 })
	b1.Close()
	before := ok.Load()
	waitFor(t, 5*time.Second, "calls to succeed on the second broker", func() bool { return ok.Load() > before+500 })
	close(stop)
	wg.Wait()
	t.Logf("ok %d, failed over with error %d", ok.Load(), failed.Load())
}

// TestOneClientCannotStarveOthers floods from one client past its in-flight
// bound: its excess is answered "busy" while another client still gets its
// jobs queued and answered.
func TestOneClientCannotStarveOthers(t *testing.T) {
	checkGoroutines(t)
	cfg := testConfig()
	cfg.MaxQueue = 100
	cfg.MaxClientInFlight = 10
	b := startBroker(t, cfg)
	bl := newBlocker()
	startWorker(t, b, worker.Config{Concurrency: 1, Prefetch: -1}, bl)
	waitWorkers(t, b, 1)
	greedy := newClient(t, client.Config{}, b.Frontend())
	polite := newClient(t, client.Config{}, b.Frontend())

	const flood = 50
	errs := make(chan error, flood)
	for i := 0; i < flood; i++ {
		go func() {
			_, err := greedy.Execute(context.Background(), []byte("x"), client.WithTimeout(20*time.Second))
			errs <- err
		}()
	}
	for i := 0; i < flood-10; i++ {
		if err := <-errs; !errors.Is(err, client.ErrBusy) {
			t.Fatalf("flood beyond the client bound: want ErrBusy, got %v", err)
		}
	}
	res := make(chan error, 1)
	go func() {
		got, err := polite.Execute(context.Background(), []byte("mine"), client.WithTimeout(20*time.Second))
		if err == nil && string(got) != "mine" {
			err = fmt.Errorf("got %q", got)
		}
		res <- err
	}()
	waitFor(t, 2*time.Second, "the other client's job queued", func() bool { return stats(t, b).Queued["default"] == 10 })
	close(bl.release)
	if err := <-res; err != nil {
		t.Fatalf("the other client: %v", err)
	}
	for i := 0; i < 10; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("admitted job of the greedy client: %v", err)
		}
	}
}
