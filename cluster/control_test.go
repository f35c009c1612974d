package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hose-project/hose/broker"
	"github.com/hose-project/hose/handlers"
	"github.com/hose-project/hose/worker"
)

func serveControl(t testing.TB, s Scaler) (*ControlServer, *ControlClient) {
	t.Helper()
	srv, err := ServeControl(ControlConfig{Endpoint: "tcp://127.0.0.1:*", MaxWorkers: 16}, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	c, err := DialControl(srv.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return srv, c
}

// TestControlLocal changes the worker count of a real Local cluster through
// its control endpoint and checks that the broker sees the workers.
func TestControlLocal(t *testing.T) {
	l, err := StartLocal(LocalConfig{
		Broker:  broker.Config{HeartbeatInterval: 50 * time.Millisecond},
		Workers: 1,
		Worker:  worker.Config{Concurrency: 1, HeartbeatInterval: 50 * time.Millisecond},
		Handler: handlers.Echo(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	_, c := serveControl(t, l)
	ctx := context.Background()
	if n, err := c.Workers(ctx); err != nil || n != 1 {
		t.Fatalf("get: %d, %v", n, err)
	}
	for _, want := range []int{3, 0, 2} {
		n, err := c.SetWorkers(ctx, want)
		if err != nil || n != want {
			t.Fatalf("set %d: %d, %v", want, n, err)
		}
		// Local.SetWorkers returns once the broker sees them.
		st, err := l.Broker().Stats()
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Workers) != want || l.Workers() != want {
			t.Fatalf("after set %d: broker lists %d, cluster has %d", want, len(st.Workers), l.Workers())
		}
	}
	for _, n := range []int{-1, 17} {
		if _, err := c.SetWorkers(ctx, n); !errors.Is(err, ErrControlRefused) {
			t.Fatalf("set %d: %v", n, err)
		}
	}
	if got := l.Workers(); got != 2 {
		t.Fatalf("a refused request changed the count to %d", got)
	}
}

// TestControlSupervisor changes the process count of a real Supervisor.
func TestControlSupervisor(t *testing.T) {
	cfg, _, ready := helper(t, "serve", 1)
	s := newSupervisor(t, cfg)
	waitN(t, ready, 1, 10*time.Second)
	_, c := serveControl(t, SupervisorScaler(s))
	ctx := context.Background()
	if n, err := c.SetWorkers(ctx, 3); err != nil || n != 3 {
		t.Fatalf("set 3: %d, %v", n, err)
	}
	waitN(t, ready, 2, 10*time.Second)
	eventually(t, 10*time.Second, "3 processes", func() bool { return s.Running() == 3 })
	if n, err := c.SetWorkers(ctx, 1); err != nil || n != 1 {
		t.Fatalf("set 1: %d, %v", n, err)
	}
	eventually(t, 10*time.Second, "1 process", func() bool { return s.Running() == 1 })
	if n, err := c.Workers(ctx); err != nil || n != 1 {
		t.Fatalf("get: %d, %v", n, err)
	}
}

func TestControlErrors(t *testing.T) {
	srv, c := serveControl(t, SupervisorScaler(mustSupervisor(t)))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Raw requests the typed client cannot send.
	for _, body := range []string{`{"op":"explode"}`, `{"op":"set"}`, `not json`} {
		if _, err := c.roundTrip(ctx, []byte(body)); !errors.Is(err, ErrControlRefused) {
			t.Errorf("%s: %v", body, err)
		}
	}
	// Nothing listening: a bounded wait, then ErrNoControl.
	srv.Close()
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if _, err := c.Workers(short); !errors.Is(err, ErrNoControl) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("closed server: %v", err)
	}
	c.Close()
	if _, err := c.Workers(ctx); !errors.Is(err, ErrControlClosed) {
		t.Fatalf("closed client: %v", err)
	}
	if _, err := DialControl("localhost:5558"); err == nil {
		t.Fatal("an endpoint without a scheme was accepted")
	}
}

// mustSupervisor is a supervisor that was never started: SetCount only
// records the count.
func mustSupervisor(t testing.TB) *Supervisor {
	cfg, _, _ := helper(t, "serve", 0)
	s, err := NewSupervisor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestControlLoopbackOnly: the control endpoint starts processes and has no
// authentication, so it refuses to listen where other hosts could reach it.
func TestControlLoopbackOnly(t *testing.T) {
	s := SupervisorScaler(mustSupervisor(t))
	for _, ep := range []string{"tcp://0.0.0.0:*", "tcp://10.1.2.3:5558", "tcp://*:5558", "tcp://eth0:5558"} {
		if srv, err := ServeControl(ControlConfig{Endpoint: ep}, s); err == nil {
			srv.Close()
			t.Errorf("%s: accepted", ep)
		}
	}
	for _, ep := range []string{"tcp://127.0.0.1:*", "tcp://[::1]:*", "ipc://" + t.TempDir() + "/ctl"} {
		srv, err := ServeControl(ControlConfig{Endpoint: ep}, s)
		if err != nil {
			if ep == "tcp://[::1]:*" {
				continue // no IPv6 loopback on this host
			}
			t.Errorf("%s: %v", ep, err)
			continue
		}
		srv.Close()
	}
}
