package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/hose-project/hose/protocol"
	"github.com/hose-project/hose/worker"
)

// TestDeadlineIsNotAWorkerError plays the broker on a raw ROUTER: a
// handler that gives up when its job's deadline passes (returning a wrapped
// ctx.Err()) is answered status 8, deadline exceeded; a handler error of its
// own is status 6, worker error.
func TestDeadlineIsNotAWorkerError(t *testing.T) {
	router, err := zmq.NewSocket(zmq.ROUTER)
	if err != nil {
		t.Fatal(err)
	}
	defer router.Close()
	_ = router.SetLinger(0)
	_ = router.SetRcvtimeo(5 * time.Second)
	if err := router.Bind("tcp://127.0.0.1:*"); err != nil {
		t.Fatal(err)
	}
	ep, _ := router.GetLastEndpoint()

	w, err := worker.New(worker.Config{Backend: ep, Concurrency: 1}, worker.HandlerFunc(
		func(ctx context.Context, j *worker.Job) ([]byte, error) {
			if string(j.Payload) == "fail" {
				return nil, fmt.Errorf("no luck")
			}
			<-ctx.Done()
			return nil, fmt.Errorf("gave up: %w", ctx.Err())
		}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		// The raw broker never acknowledges DRAIN; Run ends at the drain
		// timeout or when the session gives up on it.
		_ = router.Close()
		select {
		case <-done:
		case <-time.After(40 * time.Second):
			t.Error("Run did not return")
		}
	}()

	// recv returns the next message of cmd from the worker, skipping others
	// (heartbeats).
	recv := func(cmd protocol.Command) (id, body []byte) {
		t.Helper()
		for {
			parts, err := router.RecvMessageBytes(0)
			if err != nil {
				t.Fatalf("waiting for command %#x: %v", cmd, err)
			}
			if len(parts) >= 2 {
				if c, err := protocol.ParseHeader(parts[1], protocol.Worker); err == nil && c == cmd {
					if len(parts) > 2 {
						body = parts[2]
					}
					return parts[0], body
				}
			}
		}
	}
	id, _ := recv(protocol.CmdReady)
	if _, err := router.SendMessage(id, protocol.Header(protocol.Worker, protocol.CmdWelcome),
		protocol.AppendWelcome(nil, &protocol.Welcome{WorkerID: 1, HeartbeatMS: 500, Liveness: 4, MaxPayload: 1 << 20, Instance: 1})); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		payload string
		want    protocol.Status
	}{{"wait", protocol.StatusDeadline}, {"fail", protocol.StatusWorkerError}} {
		job := protocol.AppendJob(nil, &protocol.Job{ID: 1, TimeoutMS: 50, Payload: []byte(tc.payload)})
		if _, err := router.SendMessage(id, protocol.Header(protocol.Worker, protocol.CmdJob), job); err != nil {
			t.Fatal(err)
		}
		_, body := recv(protocol.CmdResult)
		var r protocol.Result
		if _, err := protocol.NextResult(body, &r); err != nil {
			t.Fatal(err)
		}
		if r.Status != tc.want {
			t.Errorf("job %q: status %v (%q), want %v", tc.payload, r.Status, r.Payload, tc.want)
		}
	}
}
