//go:build chaos

package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hose-project/hose/internal/testproc"
	"github.com/hose-project/hose/loadgen"
)

// The scenarios run one after another: each owns the machine's two cores
// while it runs, so its recovery time is its own.

func TestBaseline(t *testing.T) {
	run(t, scenario{name: "no fault (baseline)"})
}

func TestWorkerKilledMidJob(t *testing.T) {
	run(t, scenario{
		name: "worker kill -9 mid-job",
		fault: func(e *env) (time.Time, string) {
			pid := e.workerPID(0)
			at := time.Now()
			kill(e.t, pid, syscall.SIGKILL)
			return at, "the supervisor restarts it"
		},
		allowed: []loadgen.Kind{loadgen.KindWorkerLost},
	})
}

func TestWorkerStoppedThenContinued(t *testing.T) {
	run(t, scenario{
		name:     "worker SIGSTOP 3 s, then SIGCONT",
		duration: 8 * time.Second,
		fault: func(e *env) (time.Time, string) {
			pid := e.workerPID(0)
			at, back := outage(e, 3*time.Second,
				func() { kill(e.t, pid, syscall.SIGSTOP) }, func() { kill(e.t, pid, syscall.SIGCONT) })
			return at, "serves again " + back.String() + " after SIGCONT"
		},
		allowed: []loadgen.Kind{loadgen.KindWorkerLost},
	})
}

func TestBrokerKilledAndRestarted(t *testing.T) {
	run(t, scenario{
		name: "broker kill -9, restart 300 ms later",
		fault: func(e *env) (time.Time, string) {
			at := time.Now()
			kill(e.t, e.brokers[0].PID(), syscall.SIGKILL)
			e.brokers[0].Wait(e.t, 5*time.Second)
			time.Sleep(300 * time.Millisecond)
			e.startBroker(0)
			up := time.Now()
			back := waitBack(e, 0, e.spec.workers, 5*time.Second)
			return at, fmt.Sprintf("answering %v after the kill; all workers back %v after", up.Sub(at).Round(10*time.Millisecond),
				back.Sub(at).Round(10*time.Millisecond))
		},
		allowed: []loadgen.Kind{loadgen.KindBrokerGone},
	})
}

func TestBrokerGracefulRestart(t *testing.T) {
	run(t, scenario{
		name: "broker graceful restart (SIGTERM, start again)",
		fault: func(e *env) (time.Time, string) {
			at := time.Now()
			kill(e.t, e.brokers[0].PID(), syscall.SIGTERM)
			if code := e.brokers[0].Wait(e.t, 15*time.Second); code != 0 {
				e.t.Errorf("broker exited with %d after SIGTERM, want 0", code)
			}
			stopped := time.Now()
			e.startBroker(0)
			back := waitBack(e, 0, e.spec.workers, 5*time.Second)
			return at, fmt.Sprintf("drained and exited in %v; all workers back %v after SIGTERM",
				stopped.Sub(at).Round(10*time.Millisecond), back.Sub(at).Round(10*time.Millisecond))
		},
		// Calls refused during the drain never ran: the client holds them
		// for the restarted broker, so a graceful restart costs no error.
		allowed: []loadgen.Kind{},
	})
}

func TestFloodTenTimesCapacity(t *testing.T) {
	// Capacity: 3 workers × 2 jobs at once / 10 ms = 600 jobs/s. A second
	// client (a hosebench process) offers 6 000/s for 2 s while the tracked
	// load goes on at 200/s. The queue bound (-max-queue 1000, so each
	// client may hold 500) answers the excess "busy" at once instead of
	// letting it wait past its deadline.
	run(t, scenario{
		name: "flood at 10x capacity (second client, 2 s)",
		spec: clusterSpec{concurrency: 2, sleep: 10 * time.Millisecond, brokerFlags: []string{"-max-queue", "1000"}},
		rate: 200,
		fault: func(e *env) (time.Time, string) {
			out := filepath.Join(e.t.TempDir(), "flood.json")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bins.hosebench, "-broker", e.frontends[0], "-rate", "6000", "-duration", "2s",
				"-warmup", "0", "-timeout", "5s", "-quiet", "-json", out)
			if b, err := cmd.CombinedOutput(); err != nil && cmd.ProcessState.ExitCode() != 1 {
				e.t.Errorf("flood hosebench: %v: %s", err, b)
			}
			end := time.Now()
			// One run: hosebench writes its result object alone.
			var f loadgen.Result
			b, err := os.ReadFile(out)
			if err == nil {
				err = json.Unmarshal(b, &f)
			}
			if err != nil || f.Sent == 0 {
				e.t.Errorf("flood report: %v (%d sent)", err, f.Sent)
				return end, ""
			}
			if f.Errors["timeout"] != 0 || f.Errors["busy"] == 0 {
				e.t.Errorf("flood client: %d busy, %d timeouts; want busy answers and no timeout", f.Errors["busy"], f.Errors["timeout"])
			}
			return end, fmt.Sprintf("flood client: %d sent, %d ok, %d busy, %d timeouts; recovery from its end",
				f.Sent, f.OK, f.Errors["busy"], f.Errors["timeout"])
		},
		allowed: []loadgen.Kind{loadgen.KindBusy},
	})
}

func TestClientThatNeverReads(t *testing.T) {
	run(t, scenario{
		name: "a client that never reads its replies",
		fault: func(e *env) (time.Time, string) {
			self, _ := os.Executable()
			at := time.Now()
			p := testproc.Start(e.t, "noread", testproc.Options{Env: []string{roleEnv + "=noread"}},
				self, "-frontend", e.frontends[0], "-requests", "20000")
			testproc.WaitFor(e.t, 10*time.Second, "the reader-less client to send everything", func() (bool, string) {
				return p.Stdout.String() != "" || p.Exited(), "still sending"
			})
			if p.Exited() {
				e.t.Errorf("the reader-less client exited: %s", p.Stderr.String())
			}
			return at, "20 000 requests of 1 KiB sent, no reply read"
		},
		allowed: []loadgen.Kind{},
	})
}

func TestClientsKilledMidRequest(t *testing.T) {
	// The three clients stay within capacity (1 200 jobs/s with the
	// tracked load's 400/s), so the fault is the kill alone: their jobs in
	// flight finish with nobody to answer.
	run(t, scenario{
		name: "3 client processes killed mid-request",
		fault: func(e *env) (time.Time, string) {
			at := killClients(e, 3, 200, time.Second)
			return at, "each at 200/s, killed after 1 s"
		},
		allowed: []loadgen.Kind{},
	})
}

func TestOverloadingClientsKilled(t *testing.T) {
	// Three clients at 1 000/s each (with the tracked 400/s, 2.8x capacity)
	// build a backlog, then die with it queued. The fair queue keeps the
	// tracked client's turn; once the dead clients have been silent past
	// the heartbeat their PINGs promised (4 × 500 ms) the broker drops their
	// backlog, which never runs.
	metrics := "127.0.0.1:" + strconv.Itoa(freePort(t, "127.0.0.1"))
	run(t, scenario{
		name:     "3 overloading clients killed with a backlog queued",
		spec:     clusterSpec{brokerFlags: []string{"-metrics", metrics}},
		duration: 8 * time.Second,
		fault: func(e *env) (time.Time, string) {
			at := killClients(e, 3, 1000, time.Second)
			var dropped float64
			testproc.WaitFor(e.t, 10*time.Second, "the dead clients' backlog dropped", func() (bool, string) {
				dropped = metric(metrics, "hose_jobs_abandoned_total")
				return dropped > 0, fmt.Sprint(dropped)
			})
			return at, fmt.Sprintf("each at 1 000/s for 1 s; %.0f queued jobs of theirs dropped, never run, %v after the kill",
				dropped, time.Since(at).Round(10*time.Millisecond))
		},
		allowed: []loadgen.Kind{},
	})
}

func TestMaxAgeChurn(t *testing.T) {
	run(t, scenario{
		name:     "max-age churn (every worker retires every 1-2 s)",
		spec:     clusterSpec{workerFlags: []string{"-max-age", "1s", "-max-age-delta", "1s"}},
		duration: 8 * time.Second,
		fault: func(e *env) (time.Time, string) {
			before := e.sup.Restarts()
			time.Sleep(5 * time.Second)
			return time.Now(), fmt.Sprintf("%d workers retired and replaced in 5 s", e.sup.Restarts()-before)
		},
		noRecovery: true,
	})
}

func TestNetworkPartition(t *testing.T) {
	h := newHost(t, 1)
	run(t, scenario{
		name:     "partition of a worker host for 3 s, then heal",
		spec:     clusterSpec{backendHost: h.rootAddr, netns: map[int]string{0: h.ns}},
		duration: 10 * time.Second,
		fault: func(e *env) (time.Time, string) {
			at, back := outage(e, 3*time.Second, h.partition, h.heal)
			return at, "the worker serves again " + back.String() + " after the heal"
		},
		allowed: []loadgen.Kind{loadgen.KindWorkerLost},
	})
}

func TestTwoBrokersOneKilled(t *testing.T) {
	run(t, scenario{
		name: "two brokers, one killed for good (workers serve both)",
		spec: clusterSpec{brokers: 2},
		fault: func(e *env) (time.Time, string) {
			at := time.Now()
			kill(e.t, e.brokers[1].PID(), syscall.SIGKILL)
			e.brokers[1].Wait(e.t, 5*time.Second)
			e.brokers[1] = nil // not a failure: this one was meant to die
			return at, "the client fails over to the other broker"
		},
		allowed: []loadgen.Kind{loadgen.KindBrokerGone},
	})
}

// metric reads one unlabelled value from a broker's -metrics endpoint (-1:
// not there).
func metric(addr, name string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// killClients starts n hosebench processes at rate each against the
// broker, lets them run for d, kills them all with SIGKILL and returns when.
func killClients(e *env, n, rate int, d time.Duration) time.Time {
	var ps []*testproc.Proc
	for i := range n {
		ps = append(ps, testproc.Start(e.t, "hosebench"+strconv.Itoa(i), testproc.Options{Merge: true},
			bins.hosebench, "-broker", e.frontends[0], "-rate", strconv.Itoa(rate), "-duration", "30s", "-warmup", "0", "-quiet"))
	}
	time.Sleep(d)
	at := time.Now()
	for _, p := range ps {
		if p.Exited() {
			e.t.Errorf("%s exited early: %s", p.Name, p.Stdout.String())
			continue
		}
		p.Signal(e.t, syscall.SIGKILL)
	}
	return at
}

// outage cuts a worker off (down), waits d, restores it (up), and returns
// when it was cut off and how long after the restore the broker had all
// its workers again.
func outage(e *env, d time.Duration, down, up func()) (time.Time, time.Duration) {
	at := time.Now()
	down()
	time.Sleep(d)
	up()
	restored := time.Now()
	back := waitBack(e, 0, e.spec.workers, 6*time.Second)
	return at, back.Sub(restored).Round(10 * time.Millisecond)
}

// kill sends sig to pid.
func kill(t testing.TB, pid int, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatalf("kill -%d %d: %v", sig, pid, err)
	}
}

// waitBack waits until broker i has n workers and returns when it did.
func waitBack(e *env, i, n int, limit time.Duration) time.Time {
	e.t.Helper()
	deadline := time.Now().Add(limit)
	for e.workers(i) != n {
		if time.Now().After(deadline) {
			e.t.Errorf("broker %d: %d workers %v later, want %d", i, e.workers(i), limit, n)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Now()
}
