package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The supervised processes are this test binary run again: a child sees
// HOSE_SUPERVISE_CHILD and behaves as that variable says instead of running
// the tests.
const childEnv = "HOSE_SUPERVISE_CHILD"

func TestSupervisorHelperProcess(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		t.Skip("helper process for the supervisor tests")
	}
	switch mode {
	case "serve":
		// Run until SIGTERM, then exit 0, as a worker does.
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		defer stop()
		fmt.Println("ready")
		<-ctx.Done()
		os.Exit(0)
	case "stubborn":
		// Ignore SIGTERM: only SIGKILL ends it.
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		select {}
	case "exit0":
		os.Exit(0)
	case "crash":
		os.Exit(1)
	}
	os.Exit(99)
}

// readySignal is a Stdout that reports each "ready" line on a channel.
type readySignal struct {
	mu  sync.Mutex
	buf []byte
	ch  chan struct{}
}

func (r *readySignal) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, p...)
	for {
		i := bytes.IndexByte(r.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		if string(r.buf[:i]) == "ready" {
			r.ch <- struct{}{}
		}
		r.buf = r.buf[i+1:]
	}
}

// helper returns a SupervisorConfig whose processes run mode, and a channel
// that receives the time of each start (buffered, so starts never block).
func helper(t testing.TB, mode string, count int) (SupervisorConfig, chan time.Time, chan struct{}) {
	t.Helper()
	starts := make(chan time.Time, 1000)
	ready := make(chan struct{}, 1000)
	cfg := SupervisorConfig{
		Count: count,
		Command: func(slot int) *exec.Cmd {
			starts <- time.Now()
			cmd := exec.Command(os.Args[0], "-test.run=^TestSupervisorHelperProcess$")
			cmd.Env = append(os.Environ(), childEnv+"="+mode)
			cmd.Stdout = &readySignal{ch: ready}
			cmd.Stderr = os.Stderr
			return cmd
		},
	}
	return cfg, starts, ready
}

// newSupervisor starts a supervisor and makes sure every process it ran is
// gone when the test ends.
func newSupervisor(t testing.TB, cfg SupervisorConfig) *Supervisor {
	t.Helper()
	s, err := NewSupervisor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Stop(ctx)
	})
	return s
}

// eventually polls cond every 5ms until it holds or limit passes.
func eventually(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		<-tick.C
	}
}

func waitN(t testing.TB, ch <-chan struct{}, n int, limit time.Duration) {
	t.Helper()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for i := 0; i < n; i++ {
		select {
		case <-ch:
		case <-timer.C:
			t.Fatalf("only %d of %d processes ready after %v", i, n, limit)
		}
	}
}

func pids(s *Supervisor) map[int]int {
	m := make(map[int]int)
	for _, c := range s.Children() {
		if !c.Retiring {
			m[c.Slot] = c.PID
		}
	}
	return m
}

func TestSupervisorRestartsKilledProcess(t *testing.T) {
	cfg, _, ready := helper(t, "serve", 3)
	s := newSupervisor(t, cfg)
	waitN(t, ready, 3, 10*time.Second)
	if got := s.Running(); got != 3 {
		t.Fatalf("Running = %d, want 3", got)
	}
	before := pids(s)
	victim := before[1]
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitN(t, ready, 1, 10*time.Second)
	eventually(t, 5*time.Second, "slot 1 restarted", func() bool {
		p := pids(s)[1]
		return p != 0 && p != victim
	})
	if got := s.Restarts(); got != 1 {
		t.Errorf("Restarts = %d, want 1", got)
	}
	after := pids(s)
	if after[0] != before[0] || after[2] != before[2] {
		t.Errorf("other slots changed: before %v, after %v", before, after)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if got := s.Running(); got != 0 {
		t.Errorf("Running after Stop = %d", got)
	}
	for slot, pid := range after {
		// A stopped child has been waited for: signalling its pid fails.
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("slot %d: pid %d still exists after Stop", slot, pid)
		}
	}
}

func TestSupervisorSetCount(t *testing.T) {
	cfg, _, ready := helper(t, "serve", 2)
	s, err := NewSupervisor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Before Start, SetCount changes the initial count.
	if err := s.SetCount(4); err != nil {
		t.Fatal(err)
	}
	if got := s.Count(); got != 4 {
		t.Fatalf("Count before Start = %d, want 4", got)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	if err := s.Start(); !errors.Is(err, ErrSupervisorStarted) {
		t.Errorf("second Start: %v, want ErrSupervisorStarted", err)
	}
	waitN(t, ready, 4, 10*time.Second)

	if err := s.SetCount(1); err != nil {
		t.Fatal(err)
	}
	if got := s.Count(); got != 1 {
		t.Errorf("Count = %d right after SetCount(1)", got)
	}
	eventually(t, 5*time.Second, "3 processes stopped", func() bool { return s.Running() == 1 })
	if got := len(s.Children()); got != 1 {
		t.Errorf("Children = %d, want 1", got)
	}
	if got := s.Restarts(); got != 0 {
		t.Errorf("Restarts = %d after lowering the count, want 0", got)
	}

	if err := s.SetCount(3); err != nil {
		t.Fatal(err)
	}
	waitN(t, ready, 2, 10*time.Second)
	eventually(t, 5*time.Second, "3 processes", func() bool { return s.Running() == 3 })
	if err := s.SetCount(-1); err == nil {
		t.Error("SetCount(-1) succeeded")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCount(2); !errors.Is(err, ErrSupervisorStopped) {
		t.Errorf("SetCount after Stop: %v, want ErrSupervisorStopped", err)
	}
	if err := s.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestSupervisorCrashLoopBacksOff(t *testing.T) {
	cfg, starts, _ := helper(t, "crash", 1)
	cfg.RestartMin = 40 * time.Millisecond
	cfg.RestartMax = 160 * time.Millisecond
	s := newSupervisor(t, cfg)
	var times []time.Time
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	for len(times) < 6 {
		select {
		case ts := <-starts:
			times = append(times, ts)
		case <-timer.C:
			t.Fatalf("only %d starts", len(times))
		}
	}
	// Each gap holds at least the backoff: 40, 80, 160, 160, 160 ms.
	want := []time.Duration{40, 80, 160, 160, 160}
	for i, w := range want {
		gap := times[i+1].Sub(times[i])
		if gap < w*time.Millisecond {
			t.Errorf("restart %d came %v after the previous start, want >= %v", i+1, gap, w*time.Millisecond)
		}
	}
	if got := s.Restarts(); got < 5 {
		t.Errorf("Restarts = %d, want >= 5", got)
	}
}

func TestSupervisorCleanExitRestartsAtOnce(t *testing.T) {
	cfg, starts, _ := helper(t, "exit0", 1)
	// A failure would wait 10s; a clean exit (a retired worker) must not.
	cfg.RestartMin = 10 * time.Second
	cfg.RestartMax = 10 * time.Second
	newSupervisor(t, cfg)
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	for i := 0; i < 4; i++ {
		select {
		case <-starts:
		case <-timer.C:
			t.Fatalf("only %d starts in 5s: clean exits were delayed", i)
		}
	}
}

func TestSupervisorStopKillsStubbornProcess(t *testing.T) {
	cfg, _, ready := helper(t, "stubborn", 2)
	s := newSupervisor(t, cfg)
	waitN(t, ready, 2, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Stop(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop: %v, want context.DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Stop took %v", took)
	}
	if got := s.Running(); got != 0 {
		t.Errorf("Running after Stop = %d", got)
	}
}

func TestSupervisorConfigValidate(t *testing.T) {
	if _, err := NewSupervisor(SupervisorConfig{}); err == nil {
		t.Error("nil Command accepted")
	}
	if _, err := NewSupervisor(SupervisorConfig{Command: func(int) *exec.Cmd { return nil }, Count: -1}); err == nil {
		t.Error("negative Count accepted")
	}
}
