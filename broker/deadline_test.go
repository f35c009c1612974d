package broker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hose-project/hose/client"
	"github.com/hose-project/hose/protocol"
)

// TestWorkerReportsDeadline: a worker that stopped a job at its deadline
// answers status 8; the caller gets ErrTimeout, not a worker error, and the
// worker's error count stays 0. Any other failure status is a worker error.
func TestWorkerReportsDeadline(t *testing.T) {
	checkGoroutines(t)
	b := startBroker(t, testConfig())
	c := newClient(t, client.Config{}, b.Frontend())
	p := newRawPeer(t, b.Backend())
	p.send(protocol.Worker, protocol.CmdReady, protocol.AppendReady(nil, &protocol.Ready{Capacity: 1, PID: 7, Host: "raw", Services: []string{"timed"}}))
	if _, ok := p.recvCmd(protocol.Worker, protocol.CmdWelcome, 2*time.Second); !ok {
		t.Fatal("no WELCOME")
	}
	for _, tc := range []struct {
		status protocol.Status
		want   error
	}{
		{protocol.StatusDeadline, client.ErrTimeout},
		{protocol.StatusBusy, client.ErrWorker},
	} {
		res := make(chan error, 1)
		go func() {
			_, err := c.Execute(context.Background(), []byte("x"), client.WithService("timed"), client.WithTimeout(10*time.Second))
			res <- err
		}()
		body, ok := p.recvCmd(protocol.Worker, protocol.CmdJob, 2*time.Second)
		if !ok {
			t.Fatal("raw worker got no job")
		}
		var j protocol.Job
		if _, err := protocol.NextJob(body, &j); err != nil {
			t.Fatal(err)
		}
		// Long before the 10 s deadline, so the answer can only be the
		// worker's.
		p.send(protocol.Worker, protocol.CmdResult, protocol.AppendResult(nil, j.ID, tc.status, []byte("stopped")))
		if err := <-res; !errors.Is(err, tc.want) {
			t.Errorf("worker status %v: Execute %v, want %v", tc.status, err, tc.want)
		}
	}
	st := stats(t, b)
	if len(st.Workers) != 1 || st.Workers[0].Errors != 1 {
		t.Errorf("worker rows %+v: want one worker with 1 error (the busy status, not the deadline)", st.Workers)
	}
}
