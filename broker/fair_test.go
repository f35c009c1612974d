package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/hose-project/hose/client"
	"github.com/hose-project/hose/worker"
)

// TestQueueIsFairBetweenClients queues a backlog from one client, then one
// job from another: the second client's job runs after one more of the
// backlog (clients take turns), not after all of it.
func TestQueueIsFairBetweenClients(t *testing.T) {
	checkGoroutines(t)
	b := startBroker(t, testConfig())
	gate := make(chan struct{})
	order := make(chan string, 64)
	startWorker(t, b, worker.Config{Concurrency: 1, Prefetch: -1}, worker.HandlerFunc(
		func(ctx context.Context, j *worker.Job) ([]byte, error) {
			select {
			case <-gate:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			order <- string(j.Payload)
			return j.Payload, nil
		}))
	waitWorkers(t, b, 1)
	greedy := newClient(t, client.Config{}, b.Frontend())
	polite := newClient(t, client.Config{}, b.Frontend())

	const backlog = 20
	done := make(chan error, backlog+1)
	call := func(c *client.Client, p string) {
		_, err := c.Execute(context.Background(), []byte(p), client.WithTimeout(20*time.Second))
		done <- err
	}
	for range backlog {
		go call(greedy, "greedy")
	}
	// One greedy job is at the worker, the rest wait.
	waitFor(t, 5*time.Second, "the backlog queued", func() bool { return stats(t, b).Queued["default"] == backlog-1 })
	go call(polite, "polite")
	waitFor(t, 5*time.Second, "the polite job queued", func() bool { return stats(t, b).Queued["default"] == backlog })

	go func() {
		for range backlog + 1 {
			gate <- struct{}{}
		}
	}()
	pos := 0
	for i := 1; i <= backlog+1; i++ {
		if p := <-order; p == "polite" {
			pos = i
		}
	}
	for range backlog + 1 {
		if err := <-done; err != nil {
			t.Fatalf("Execute: %v", err)
		}
	}
	// The job at the worker, the greedy client's next in turn, then ours.
	if pos != 3 {
		t.Fatalf("the polite client's job ran %d of %d; want 3rd (clients take turns)", pos, backlog+1)
	}
}
