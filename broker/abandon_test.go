package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/hose-project/hose/client"
	"github.com/hose-project/hose/worker"
)

// TestGoneClientsQueuedJobsAreDropped: a client with a backlog queued goes
// away without a word (closed; a killed process looks the same). Once it
// has been silent past the heartbeat its PINGs promised, the broker drops
// its queued jobs, which never run, and the next client's job runs next.
func TestGoneClientsQueuedJobsAreDropped(t *testing.T) {
	checkGoroutines(t)
	cfg := testConfig()
	b := startBroker(t, cfg)
	gate := make(chan struct{})
	ran := make(chan string, 64)
	startWorker(t, b, worker.Config{Concurrency: 1, Prefetch: -1}, worker.HandlerFunc(
		func(ctx context.Context, j *worker.Job) ([]byte, error) {
			ran <- string(j.Payload)
			select {
			case <-gate:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return j.Payload, nil
		}))
	waitWorkers(t, b, 1)

	gone, err := client.New(client.Config{Endpoints: []string{b.Frontend()}, HeartbeatInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	const backlog = 10
	ended := make(chan error, backlog)
	for range backlog {
		go func() {
			_, err := gone.Execute(context.Background(), []byte("gone"), client.WithTimeout(30*time.Second))
			ended <- err
		}()
	}
	waitFor(t, 5*time.Second, "the backlog queued", func() bool { return stats(t, b).Queued["default"] == backlog-1 })
	if p := <-ran; p != "gone" {
		t.Fatalf("first job %q", p)
	}
	gone.Close()
	for range backlog {
		<-ended
	}
	start := time.Now()
	waitFor(t, 5*time.Second, "the queued jobs dropped", func() bool { return stats(t, b).Counters.Abandoned == backlog-1 })
	t.Logf("dropped %v after the client left (promised heartbeat 100ms, liveness %d)", time.Since(start).Round(time.Millisecond), cfg.Liveness)
	if q := stats(t, b).Queued["default"]; q != 0 {
		t.Fatalf("%d jobs still queued", q)
	}

	next := newClient(t, client.Config{}, b.Frontend())
	res := make(chan error, 1)
	go func() {
		_, err := next.Execute(context.Background(), []byte("next"), client.WithTimeout(30*time.Second))
		res <- err
	}()
	gate <- struct{}{} // the gone client's job at the worker finishes
	if p := <-ran; p != "next" {
		t.Fatalf("after the gone client's running job, %q ran; want the next client's", p)
	}
	gate <- struct{}{}
	if err := <-res; err != nil {
		t.Fatalf("next client: %v", err)
	}
}
