package broker_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/hose-project/hose/broker"
	"github.com/hose-project/hose/client"
	"github.com/hose-project/hose/protocol"
	"github.com/hose-project/hose/worker"
)

// TestGracefulRestartLosesNoCall restarts a broker gracefully on the same
// endpoints while a job runs and another call arrives during the drain:
// the running job finishes, the refused call is held by the client and runs
// on the new broker, and the caller sees no error at all.
func TestGracefulRestartLosesNoCall(t *testing.T) {
	checkGoroutines(t)
	dir := t.TempDir()
	cfg := testConfig()
	cfg.Frontend = "ipc://" + filepath.Join(dir, "front")
	cfg.Backend = "ipc://" + filepath.Join(dir, "back")
	cfg.NoWorkerWait = 5 * time.Second
	old, err := broker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	startWorker(t, old, worker.Config{Concurrency: 2, ReconnectMin: 20 * time.Millisecond}, worker.HandlerFunc(
		func(ctx context.Context, j *worker.Job) ([]byte, error) {
			if string(j.Payload) == "slow" {
				<-gate
			}
			return j.Payload, nil
		}))
	waitWorkers(t, old, 1)
	c := newClient(t, client.Config{ConnectTimeout: 3 * time.Second}, cfg.Frontend)

	call := func(p string) <-chan error {
		ch := make(chan error, 1)
		go func() {
			got, err := c.Execute(context.Background(), []byte(p), client.WithTimeout(10*time.Second))
			if err == nil && string(got) != p {
				t.Errorf("%q answered %q", p, got)
			}
			ch <- err
		}()
		return ch
	}
	slow := call("slow")
	waitFor(t, 2*time.Second, "the slow job at the worker", func() bool { return stats(t, old).InFlight == 1 })
	stopped := make(chan error, 1)
	go func() { stopped <- old.Shutdown(context.Background()) }()
	waitFor(t, 2*time.Second, "the drain", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		info, err := c.Ping(ctx)
		return err == nil && info.Draining
	})
	late := call("late")
	waitFor(t, 2*time.Second, "the late call refused", func() bool {
		st, err := old.Stats()
		return err == nil && st.Counters.ErrorCount(protocol.StatusShuttingDown) == 1
	})
	close(gate)
	if err := <-slow; err != nil {
		t.Fatalf("the job running during the drain: %v", err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	startBroker(t, cfg) // the new broker, same endpoints
	select {
	case err := <-late:
		if err != nil {
			t.Fatalf("the call refused during the drain: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the refused call never ended")
	}
}
