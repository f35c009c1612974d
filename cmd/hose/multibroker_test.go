package main

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hose-project/hose/client"

	"github.com/hose-project/hose/internal/testproc"
)

// Two brokers, two worker processes serving both, one client spreading
// calls over both frontends. One broker is SIGKILLed under load: every
// call ends, those that fail say the broker is gone, and from then on the
// surviving broker serves everything.
func TestWorkersServeTwoBrokersOneKilled(t *testing.T) {
	b1 := startBroker(t)
	b2 := startBroker(t)
	// Both spellings of -backend: a list, and the flag repeated.
	w1 := startWorker(t, "worker-list", b1.backend+","+b2.backend, "-handler", "echo", "-concurrency", "4")
	w2 := startWorker(t, "worker-repeat", b1.backend, "-backend", b2.backend, "-handler", "echo", "-concurrency", "4")
	waitWorkers(t, newClient(t, b1.frontend), 2, 10*time.Second)
	c2 := newClient(t, b2.frontend)
	waitWorkers(t, c2, 2, 10*time.Second)

	c, err := client.New(client.Config{Endpoints: []string{b1.frontend, b2.frontend}, HeartbeatInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	var (
		killedAt   atomic.Int64 // unix ns; 0 before the kill
		ok         atomic.Int64
		okAfter    atomic.Int64 // calls started after the kill that succeeded
		lateFailMu sync.Mutex
		lateFail   []string // calls started well after the kill that failed
	)
	before, after := &loadStats{}, &loadStats{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				payload := fmt.Sprintf("caller-%d-%d", g, i)
				start := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				res, err := c.Execute(ctx, []byte(payload))
				cancel()
				kind, wrong := errKind(err), err == nil && string(res) != payload
				k := killedAt.Load()
				if k == 0 || start.UnixNano() < k {
					before.add(kind, wrong, time.Now())
				} else {
					after.add(kind, wrong, time.Now())
				}
				if err == nil {
					ok.Add(1)
					if k != 0 && start.UnixNano() >= k {
						okAfter.Add(1)
					}
				} else if k != 0 && start.Sub(time.Unix(0, k)) > 2*time.Second {
					lateFailMu.Lock()
					lateFail = append(lateFail, fmt.Sprintf("%s at kill+%v", kind, start.Sub(time.Unix(0, k))))
					lateFailMu.Unlock()
				}
			}
		}()
	}
	loadDone := make(chan struct{})
	go func() {
		wg.Wait()
		close(loadDone)
	}()
	t.Cleanup(func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-loadDone
	})

	testproc.WaitFor(t, 10*time.Second, "200 calls answered", func() (bool, string) {
		return ok.Load() >= 200, fmt.Sprintf("%d ok", ok.Load())
	})
	killedAt.Store(time.Now().UnixNano())
	b1.Signal(t, syscall.SIGKILL)
	b1.Wait(t, 5*time.Second)
	testproc.WaitFor(t, 15*time.Second, "300 calls answered after the kill", func() (bool, string) {
		return okAfter.Load() >= 300, fmt.Sprintf("%d ok after the kill; before: %v; after: %v", okAfter.Load(), before, after)
	})
	close(stop)
	select {
	case <-loadDone:
	case <-time.After(15 * time.Second):
		t.Fatal("calls still unanswered 15 s after the load stopped (each has a 10 s deadline)")
	}
	t.Logf("calls started before the kill: %v", before)
	t.Logf("calls started after the kill:  %v", after)
	for _, st := range []*loadStats{before, after} {
		if st.wrong > 0 {
			t.Errorf("%d replies carried another call's payload", st.wrong)
		}
		for kind := range st.counts {
			if kind != "ok" && kind != "ErrBrokerGone" {
				t.Errorf("unexpected outcome %s: %v", kind, st)
			}
		}
	}
	if len(lateFail) > 0 {
		t.Errorf("calls started more than 2 s after the kill failed: %v", lateFail)
	}

	// Settled: every call now goes through the surviving broker.
	if st := echoLoad(c, 8, 200, nil); st.counts["ok"] != 200 {
		t.Errorf("after the failover: %v, want 200 ok", st)
	}
	for _, w := range []*proc{w1, w2} {
		if w.Exited() {
			t.Fatalf("%s exited after losing one of its brokers: %d", w.Name, w.Cmd.ProcessState.ExitCode())
		}
	}
	info, err := ping(c2)
	if err != nil || info.Workers != 2 {
		t.Errorf("surviving broker: %+v, %v; want 2 workers", info, err)
	}

	// A worker whose other broker is dead still stops gracefully.
	w1.Signal(t, syscall.SIGTERM)
	if code := w1.Wait(t, 10*time.Second); code != exitOK {
		t.Errorf("worker exit %d after SIGTERM, want 0", code)
	}
	waitWorkers(t, c2, 1, 5*time.Second)
}

// -exit-on-broker-loss with two brokers: the worker outlives the first
// broker and exits 3 when the second goes too.
func TestWorkerExitOnLossOfEveryBroker(t *testing.T) {
	b1 := startBroker(t)
	b2 := startBroker(t)
	w := startWorker(t, "worker", b1.backend+","+b2.backend, "-handler", "echo", "-exit-on-broker-loss")
	waitWorkers(t, newClient(t, b1.frontend), 1, 10*time.Second)
	c2 := newClient(t, b2.frontend)
	waitWorkers(t, c2, 1, 10*time.Second)
	b1.Signal(t, syscall.SIGKILL)
	b1.Wait(t, 5*time.Second)
	// Past the liveness window (4 heartbeats of 100ms) the worker has
	// noticed; it must still answer through the second broker.
	testproc.WaitFor(t, 5*time.Second, "the worker to notice the lost broker", func() (bool, string) {
		return strings.Contains(w.Stderr.String(), "broker silent"), "not yet"
	})
	if o := await(t, goExecute(c2, "still here")); o.err != nil || string(o.res) != "still here" {
		t.Fatalf("through the surviving broker: %q, %v", o.res, o.err)
	}
	if w.Exited() {
		t.Fatalf("worker exited with one broker left: %d", w.Cmd.ProcessState.ExitCode())
	}
	b2.Signal(t, syscall.SIGKILL)
	if code := w.Wait(t, 5*time.Second); code != exitBrokerLost {
		t.Errorf("worker exit %d, want %d", code, exitBrokerLost)
	}
}

func TestWorkerBackendAndHWMFlags(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		inStderr string
	}{
		{"empty endpoint in the list", []string{"worker", "-backend", "tcp://127.0.0.1:1,,tcp://127.0.0.1:2"}, "empty endpoint"},
		{"same broker twice", []string{"worker", "-backend", "tcp://127.0.0.1:1", "-backend", "tcp://127.0.0.1:1"}, "listed twice"},
		{"HWM under the capacity", []string{"worker", "-concurrency", "10", "-hwm", "20"}, "HWM 20"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs, code := runInProcess(tt.args...)
			if code != exitUsage || !strings.Contains(errs, tt.inStderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errs, exitUsage, tt.inStderr)
			}
		})
	}

	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	var c workerCmd
	c.register(fs)
	if got := c.backends.String(); got != "tcp://127.0.0.1:5556" {
		t.Errorf("default -backend %q", got)
	}
	if err := fs.Parse([]string{"-backend", "tcp://a:1, tcp://b:2", "-backend", "tcp://c:3", "-hwm", "5000"}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"tcp://a:1", "tcp://b:2", "tcp://c:3"}; !slices.Equal(c.backends.eps, want) || c.hwm != 5000 {
		t.Errorf("-backend %q, -hwm %d; want %q, 5000", c.backends.eps, c.hwm, want)
	}
}
