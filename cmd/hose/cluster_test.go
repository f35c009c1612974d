package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hose-project/hose/internal/testproc"
)

// logLine is one JSON log record of a `hose cluster -log-format json` run:
// the cluster's own (component broker or supervisor) and its workers'.
type logLine struct {
	Msg       string `json:"msg"`
	Component string `json:"component"`
	Slot      *int   `json:"slot"`
	PID       int    `json:"pid"`
	Reason    string `json:"reason"`
	Status    string `json:"status"`
	Inflight  int    `json:"inflight"` // broker: jobs at the worker
	Running   int    `json:"running"`  // worker: jobs it holds
}

func parseLog(s string) []logLine {
	var out []logLine
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg != "" {
			out = append(out, l)
		}
	}
	return out
}

// clusterState is what the supervisor's and broker's logs say.
type clusterState struct {
	current    map[int]int  // slot -> pid of its latest process
	started    []int        // every worker pid started
	cleanExits int          // retirements: exited with status 0 and restarted
	failures   map[int]bool // pids that failed (crash, kill) and were restarted
	registered map[int]bool // pids the broker registered
	removed    map[int]string
	// Retirements as each side saw them: the worker's jobs in hand when it
	// began to drain, the broker's jobs at that worker when DRAIN arrived.
	workerDrains, workerDrainJobs int
	brokerDrains, brokerDrainJobs int
}

func readCluster(p *proc) clusterState {
	st := clusterState{current: map[int]int{}, failures: map[int]bool{}, registered: map[int]bool{}, removed: map[int]string{}}
	for _, l := range parseLog(p.Stderr.String()) {
		switch {
		case l.Component == "supervisor" && l.Slot != nil && (l.Msg == "process started" || l.Msg == "process restarted"):
			st.current[*l.Slot] = l.PID
			st.started = append(st.started, l.PID)
		case l.Component == "supervisor" && l.Msg == "process exited, restarting":
			st.cleanExits++
		case l.Component == "supervisor" && strings.HasPrefix(l.Msg, "process failed"):
			st.failures[l.PID] = true
		case l.Component == "broker" && l.Msg == "worker registered":
			st.registered[l.PID] = true
		case l.Component == "broker" && l.Msg == "worker removed":
			st.removed[l.PID] = l.Reason
		case l.Component == "broker" && l.Msg == "worker draining":
			st.brokerDrains++
			st.brokerDrainJobs += l.Inflight
		case l.Component == "" && l.Msg == "worker draining" && l.Reason != "stop requested":
			st.workerDrains++
			st.workerDrainJobs += l.Running
		}
	}
	return st
}

func startCluster(t *testing.T, extra ...string) (*proc, string) {
	t.Helper()
	eps := freeTCP(t, 2)
	args := append([]string{"cluster", "-frontend", eps[0], "-backend", eps[1],
		"-heartbeat", testHeartbeat, "-log-format", "json", "-log-level", "debug"}, extra...)
	return startHose(t, "cluster", true, args...), eps[0]
}

// stopCluster sends SIGTERM, expects exit 0, and checks that no worker
// process it ever started is left.
func stopCluster(t *testing.T, p *proc) {
	t.Helper()
	p.Signal(t, syscall.SIGTERM)
	if code := p.Wait(t, 20*time.Second); code != 0 {
		t.Errorf("cluster exit code %d after SIGTERM, want 0", code)
	}
	st := readCluster(p)
	for _, pid := range st.started {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("worker pid %d still exists after the cluster stopped (%v)", pid, err)
		}
	}
}

func TestClusterMaxJobsChurn(t *testing.T) {
	cl, frontend := startCluster(t, "-workers", "3", "-handler", "echo", "-max-jobs", "50")
	c := newClient(t, frontend)
	waitWorkers(t, c, 3, 15*time.Second)

	const calls = 3000
	start := time.Now()
	load := echoLoad(c, 16, calls, nil)
	took := time.Since(start)
	st := readCluster(cl)
	t.Logf("%v in %v (%.0f/s); %d retirements, %d worker processes started",
		load, took.Round(time.Millisecond), float64(calls)/took.Seconds(), st.cleanExits, len(st.started))
	if load.counts["ok"] != calls || load.wrong != 0 {
		t.Errorf("not every call succeeded: %v; first failures at %v (load began %v)", load, load.first, start.Format("15:04:05.000"))
	}
	if load.counts["ok"] != calls {
		st.logDrains(t)
	}
	// 3000 jobs at 50 a worker: about 60 retirements.
	if st.cleanExits < calls/50/2 {
		t.Errorf("%d retirements for %d calls at -max-jobs 50", st.cleanExits, calls)
	}
	waitWorkers(t, c, 3, 10*time.Second)

	// SIGKILL one worker: the supervisor starts another, which registers.
	victim := readCluster(cl).current[1]
	if victim == 0 {
		t.Fatal("no pid for slot 1 in the supervisor's log")
	}
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var replacement int
	testproc.WaitFor(t, 10*time.Second, "the killed worker replaced and registered", func() (bool, string) {
		st := readCluster(cl)
		replacement = st.current[1]
		switch {
		case !st.failures[victim]:
			return false, "supervisor has not seen the kill"
		case replacement == victim:
			return false, "not restarted yet"
		case st.removed[victim] == "":
			return false, "broker still lists the killed worker"
		case !st.registered[replacement]:
			return false, "replacement not registered"
		}
		return true, ""
	})
	t.Logf("slot 1: pid %d killed, pid %d took its place", victim, replacement)
	waitWorkers(t, c, 3, 10*time.Second)
	o := await(t, goExecute(c, "after the kill"))
	if o.err != nil || string(o.res) != "after the kill" {
		t.Errorf("Execute after the kill: %q, %v", o.res, o.err)
	}
	stopCluster(t, cl)
}

func TestClusterMaxAgeChurn(t *testing.T) {
	cl, frontend := startCluster(t, "-workers", "8", "-handler", "echo",
		"-max-age", "300ms", "-max-age-delta", "200ms")
	c := newClient(t, frontend)
	// Workers retire every 300-500 ms, so the count moves: wait for most.
	testproc.WaitFor(t, 15*time.Second, "at least 6 workers", func() (bool, string) {
		info, err := ping(c)
		if err != nil {
			return false, err.Error()
		}
		return info.Workers >= 6, fmt.Sprintf("%d workers", info.Workers)
	})

	stop := make(chan struct{})
	timer := time.AfterFunc(3*time.Second, func() { close(stop) })
	defer timer.Stop()
	start := time.Now()
	load := echoLoad(c, 16, 0, stop)
	took := time.Since(start)
	st := readCluster(cl)
	t.Logf("%v in %v (%.0f/s); %d retirements, %d worker processes started",
		load, took.Round(time.Millisecond), float64(load.total)/took.Seconds(), st.cleanExits, len(st.started))
	if st.cleanExits < 8 {
		t.Errorf("only %d retirements in 3s at -max-age 300ms", st.cleanExits)
	}
	for kind, n := range load.counts {
		if kind != "ok" && kind != "ErrWorkerLost" && kind != "ErrNoWorker" {
			t.Errorf("%d calls failed with %s", n, kind)
		}
	}
	// Retirement drains: a retiring worker must finish what it was sent.
	if load.counts["ok"] != load.total || load.wrong != 0 {
		t.Errorf("not every call succeeded under max-age churn: %v; first failures at %v (load began %s)",
			load, load.first, start.Format("15:04:05.000"))
	}
	if load.counts["ok"] != load.total {
		st.logDrains(t)
	}
	stopCluster(t, cl)
}

// logDrains reports how retirements went, as evidence when calls failed.
func (st clusterState) logDrains(t *testing.T) {
	t.Helper()
	reasons := map[string]int{}
	for _, why := range st.removed {
		reasons[why]++
	}
	t.Logf("broker removals by reason: %v", reasons)
	t.Logf("retiring workers held %d jobs in all when they began to drain (%d retirements); "+
		"the broker had %d jobs at them when their DRAIN arrived (%d drains)",
		st.workerDrainJobs, st.workerDrains, st.brokerDrainJobs, st.brokerDrains)
}
