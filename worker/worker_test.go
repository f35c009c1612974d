package worker_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hose-project/hose/broker"
	"github.com/hose-project/hose/client"
	"github.com/hose-project/hose/worker"
)

func setup(t *testing.T) (*broker.Broker, *client.Client) {
	t.Helper()
	b, err := broker.New(broker.Config{Frontend: "tcp://127.0.0.1:*", Backend: "tcp://127.0.0.1:*",
		HeartbeatInterval: 50 * time.Millisecond, NoWorkerWait: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	c, err := client.New(client.Config{Endpoints: []string{b.Frontend()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return b, c
}

// run starts w and returns a channel with Run's result.
func run(t *testing.T, w *worker.Worker, ctx context.Context) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	return done
}

func waitResult(t *testing.T, done <-chan error, limit time.Duration) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		t.Fatalf("worker still running after %v", limit)
		return nil
	}
}

func TestMaxJobsRetiresAfterFinishingJobs(t *testing.T) {
	b, c := setup(t)
	var ran atomic.Int64
	w, err := worker.New(worker.Config{Backend: b.Backend(), MaxJobs: 5, Concurrency: 1},
		worker.HandlerFunc(func(_ context.Context, j *worker.Job) ([]byte, error) {
			ran.Add(1)
			return j.Payload, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	done := run(t, w, context.Background())
	for i := 0; i < 5; i++ {
		if _, err := c.Execute(context.Background(), []byte("x")); err != nil {
			t.Fatalf("job %d: %v", i, err)
		}
	}
	if err := waitResult(t, done, 5*time.Second); !errors.Is(err, worker.ErrRetired) {
		t.Fatalf("Run: %v", err)
	}
	if ran.Load() != 5 {
		t.Fatalf("ran %d jobs", ran.Load())
	}
}

func TestMaxAgeDrainsInFlightJobs(t *testing.T) {
	b, c := setup(t)
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	w, _ := worker.New(worker.Config{Backend: b.Backend(), MaxAge: 200 * time.Millisecond, Concurrency: 1},
		worker.HandlerFunc(func(_ context.Context, j *worker.Job) ([]byte, error) {
			started <- struct{}{}
			<-release
			return j.Payload, nil
		}))
	done := run(t, w, context.Background())
	res := make(chan error, 1)
	go func() {
		_, err := c.Execute(context.Background(), []byte("x"))
		res <- err
	}()
	<-started
	// Past max age the worker drains: the broker sees it, and the worker
	// must still finish its job before leaving.
	waitDraining(t, b)
	select {
	case err := <-done:
		t.Fatalf("worker left with a job running: %v", err)
	default:
	}
	close(release)
	if err := <-res; err != nil {
		t.Fatalf("job of a retiring worker: %v", err)
	}
	if err := waitResult(t, done, 5*time.Second); !errors.Is(err, worker.ErrRetired) {
		t.Fatalf("Run: %v", err)
	}
}

func TestTimeLimitAbandonsStuckHandler(t *testing.T) {
	b, c := setup(t)
	stuck := make(chan struct{})
	defer close(stuck)
	w, _ := worker.New(worker.Config{Backend: b.Backend(), TimeLimit: 100 * time.Millisecond, Concurrency: 1},
		worker.HandlerFunc(func(_ context.Context, j *worker.Job) ([]byte, error) {
			if string(j.Payload) == "stuck" {
				<-stuck // ignores its context
			}
			return j.Payload, nil
		}))
	ctx, cancel := context.WithCancel(context.Background())
	done := run(t, w, ctx)
	_, err := c.Execute(context.Background(), []byte("stuck"), client.WithTimeout(5*time.Second))
	var we *client.WorkerError
	if !errors.As(err, &we) || !contains(we.Message, "time limit") {
		t.Fatalf("want a time-limit worker error, got %v", err)
	}
	// The slot is free again.
	if got, err := c.Execute(context.Background(), []byte("next")); err != nil || string(got) != "next" {
		t.Fatalf("after time limit: %q, %v", got, err)
	}
	cancel()
	if err := waitResult(t, done, 5*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestGracefulStopFinishesJobsAndLeavesBroker(t *testing.T) {
	b, c := setup(t)
	release := make(chan struct{})
	var started sync.WaitGroup
	started.Add(3)
	w, _ := worker.New(worker.Config{Backend: b.Backend(), Concurrency: 3},
		worker.HandlerFunc(func(_ context.Context, j *worker.Job) ([]byte, error) {
			started.Done()
			<-release
			return j.Payload, nil
		}))
	ctx, cancel := context.WithCancel(context.Background())
	done := run(t, w, ctx)
	res := make(chan error, 3)
	for i := 0; i < 3; i++ {
		go func() {
			_, err := c.Execute(context.Background(), []byte("x"))
			res <- err
		}()
	}
	started.Wait()
	cancel()
	// Draining: the broker stops sending it work.
	waitDraining(t, b)
	close(release)
	for i := 0; i < 3; i++ {
		if err := <-res; err != nil {
			t.Fatalf("in-flight job: %v", err)
		}
	}
	if err := waitResult(t, done, 5*time.Second); err != nil {
		t.Fatalf("Run: %v", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		st, _ := b.Stats()
		if len(st.Workers) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("broker still lists the stopped worker")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestExitOnBrokerLoss(t *testing.T) {
	b, _ := setup(t)
	w, _ := worker.New(worker.Config{Backend: b.Backend(), ExitOnBrokerLoss: true},
		worker.HandlerFunc(func(_ context.Context, j *worker.Job) ([]byte, error) { return j.Payload, nil }))
	done := run(t, w, context.Background())
	deadline := time.Now().Add(2 * time.Second)
	for {
		st, _ := b.Stats()
		if len(st.Workers) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("worker did not register")
		}
		time.Sleep(2 * time.Millisecond)
	}
	b.Close()
	if err := waitResult(t, done, 5*time.Second); !errors.Is(err, worker.ErrBrokerLost) {
		t.Fatalf("Run: %v", err)
	}
}

func TestJobHeadersAndValidation(t *testing.T) {
	if _, err := worker.New(worker.Config{}, nil); err == nil {
		t.Fatal("nil handler accepted")
	}
	if _, err := worker.New(worker.Config{Services: []string{""}}, worker.HandlerFunc(nil)); err == nil {
		t.Fatal("empty service name accepted")
	}
	b, c := setup(t)
	w, _ := worker.New(worker.Config{Backend: b.Backend()},
		worker.HandlerFunc(func(_ context.Context, j *worker.Job) ([]byte, error) {
			h := j.Headers()
			return []byte(j.Header("a") + "," + h["b"] + "," + j.Header("missing")), nil
		}))
	ctx, cancel := context.WithCancel(context.Background())
	done := run(t, w, ctx)
	got, err := c.Execute(context.Background(), nil, client.WithHeader("a", "1"), client.WithHeader("b", "2"))
	if err != nil || string(got) != "1,2," {
		t.Fatalf("headers: %q, %v", got, err)
	}
	cancel()
	waitResult(t, done, 5*time.Second)
}

func waitDraining(t *testing.T, b *broker.Broker) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		st, _ := b.Stats()
		if len(st.Workers) == 1 && st.Workers[0].Draining {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("broker never saw the worker draining")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
