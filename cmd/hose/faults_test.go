package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hose-project/hose/client"
)

// Process-level tests: real brokers and workers, each its own process, on
// loopback with a 100 ms heartbeat.

func TestExecAndPing(t *testing.T) {
	b := startBroker(t)
	startWorker(t, "echo-1", b.backend, "-handler", "echo")
	startWorker(t, "echo-2", b.backend, "-handler", "echo")
	c := newClient(t, b.frontend)
	waitWorkers(t, c, 2, 10*time.Second)

	out, errs, code := runHose(t, 10*time.Second, "", "exec", "-frontend", b.frontend, "hello, hose")
	if code != exitOK || out != "hello, hose" {
		t.Errorf("exec: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	out, errs, code = runHose(t, 10*time.Second, "from stdin\n", "exec", "-frontend", b.frontend, "-header", "k=v", "-idempotent")
	if code != exitOK || out != "from stdin\n" {
		t.Errorf("exec from stdin: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	out, errs, code = runHose(t, 10*time.Second, "dash", "exec", "-frontend", b.frontend, "-")
	if code != exitOK || out != "dash" {
		t.Errorf("exec -: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	out, errs, code = runHose(t, 10*time.Second, "", "ping", "-frontend", b.frontend)
	if code != exitOK {
		t.Errorf("ping: exit %d, stderr %q", code, errs)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			fields[f[0]] = f[1]
		}
	}
	for key, want := range map[string]string{"workers": "2", "pid": fmt.Sprint(b.PID()), "draining": "false", "in-flight": "0"} {
		if fields[key] != want {
			t.Errorf("ping output: %s is %q, want %q:\n%s", key, fields[key], want, out)
		}
	}
	out, errs, code = runHose(t, 10*time.Second, "", "ping", "-frontend", b.frontend, "-json")
	var rep pingReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitOK {
		t.Fatalf("ping -json: exit %d, %v, stdout %q, stderr %q", code, err, out, errs)
	}
	if rep.Workers != 2 || rep.PID != b.PID() || !rep.Healthy {
		t.Errorf("ping -json: %+v", rep)
	}

	start := time.Now()
	_, errs, code = runHose(t, 10*time.Second, "", "exec", "-frontend", b.frontend, "-service", "nosuch", "-timeout", "2s", "x")
	if code != exitNoWorker || !strings.Contains(errs, "no worker") {
		t.Errorf("exec -service nosuch: exit %d (want %d), stderr %q", code, exitNoWorker, errs)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("no-worker answer took %v; the broker's no-worker wait is 1s", took)
	}

	startWorker(t, "fail", b.backend, "-handler", "fail:disk on fire", "-service", "failing")
	waitWorkers(t, c, 3, 10*time.Second)
	out, errs, code = runHose(t, 10*time.Second, "", "exec", "-frontend", b.frontend, "-service", "failing", "x")
	if code != exitWorkerError || !strings.Contains(errs, "disk on fire") || out != "" {
		t.Errorf("exec to the fail handler: exit %d (want %d), stdout %q, stderr %q", code, exitWorkerError, out, errs)
	}
	// The same failure through the library is a *WorkerError.
	o := await(t, goExecute(c, "x", client.WithService("failing")))
	var we *client.WorkerError
	if !errors.As(o.err, &we) || !errors.Is(o.err, client.ErrWorker) || we.Message != "disk on fire" {
		t.Errorf("Execute to the fail handler: %v", o.err)
	}
}

func TestBrokerDown(t *testing.T) {
	nobody := freeTCP(t, 1)[0]
	c := newClient(t, nobody)
	o := await(t, goExecute(c, "x"))
	if !errors.Is(o.err, client.ErrBrokerGone) {
		t.Errorf("Execute with no broker: %v, want ErrBrokerGone", o.err)
	}
	// ConnectTimeout is 1s; the call's own deadline is 10s.
	if o.took > 2500*time.Millisecond {
		t.Errorf("Execute with no broker took %v, want about the 1s connect timeout", o.took)
	}
	t.Logf("Execute with no broker: %v after %v", o.err, o.took)

	start := time.Now()
	_, errs, code := runHose(t, 10*time.Second, "", "exec", "-frontend", nobody, "-timeout", "10s", "x")
	if code != exitUnreachable {
		t.Errorf("exec with no broker: exit %d, want %d; stderr %q", code, exitUnreachable, errs)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("exec with no broker took %v", took)
	}
	_, errs, code = runHose(t, 10*time.Second, "", "ping", "-frontend", nobody, "-timeout", "500ms")
	if code != exitUnreachable {
		t.Errorf("ping with no broker: exit %d, want %d; stderr %q", code, exitUnreachable, errs)
	}
}

func TestWorkerKilledMidJob(t *testing.T) {
	t.Run("plain call fails with ErrWorkerLost", func(t *testing.T) {
		b := startBroker(t)
		w := startWorker(t, "sleeper", b.backend, "-handler", "sleep:5s")
		c := newClient(t, b.frontend)
		waitWorkers(t, c, 1, 10*time.Second)
		call := goExecute(c, "doomed")
		waitInFlight(t, c, 1, 5*time.Second)
		killed := time.Now()
		w.Signal(t, syscall.SIGKILL)
		o := await(t, call)
		if !errors.Is(o.err, client.ErrWorkerLost) {
			t.Fatalf("Execute: %v (%q), want ErrWorkerLost", o.err, o.res)
		}
		if d := o.end.Sub(killed); d > 3*time.Second {
			t.Errorf("ErrWorkerLost came %v after the kill, want < 3s", d)
		} else {
			t.Logf("ErrWorkerLost %v after the kill", d.Round(time.Millisecond))
		}
	})
	t.Run("idempotent call runs again elsewhere", func(t *testing.T) {
		b := startBroker(t)
		first := startWorker(t, "first", b.backend, "-handler", "sleep:1s")
		c := newClient(t, b.frontend)
		waitWorkers(t, c, 1, 10*time.Second)
		// Only the first worker exists when the job is dispatched, so it
		// holds the job; the second one joins afterwards.
		call := goExecute(c, "survivor", client.Idempotent())
		waitInFlight(t, c, 1, 5*time.Second)
		startWorker(t, "second", b.backend, "-handler", "sleep:1s")
		waitWorkers(t, c, 2, 10*time.Second)
		killed := time.Now()
		first.Signal(t, syscall.SIGKILL)
		o := await(t, call)
		if o.err != nil || string(o.res) != "survivor" {
			t.Fatalf("idempotent Execute: %q, %v; want the payload back", o.res, o.err)
		}
		if d := o.end.Sub(killed); d > 4*time.Second {
			t.Errorf("the re-run ended %v after the kill (a 1s job), want < 4s", d)
		}
	})
}

func TestWorkerStoppedMidJob(t *testing.T) {
	b := startBroker(t)
	w := startWorker(t, "sleeper", b.backend, "-handler", "sleep:1s")
	c := newClient(t, b.frontend)
	waitWorkers(t, c, 1, 10*time.Second)
	call := goExecute(c, "stuck")
	waitInFlight(t, c, 1, 5*time.Second)
	stopped := time.Now()
	w.Signal(t, syscall.SIGSTOP)
	o := await(t, call)
	// SIGCONT before any assertion, so a failure leaves no stopped process.
	w.Signal(t, syscall.SIGCONT)
	if !errors.Is(o.err, client.ErrWorkerLost) {
		t.Fatalf("Execute to a stopped worker: %v (%q), want ErrWorkerLost", o.err, o.res)
	}
	if d := o.end.Sub(stopped); d > 3*time.Second {
		t.Errorf("ErrWorkerLost came %v after SIGSTOP, want < 3s", d)
	} else {
		t.Logf("ErrWorkerLost %v after SIGSTOP", d.Round(time.Millisecond))
	}
	// Woken, the worker learns it was dropped and registers again.
	waitWorkers(t, c, 1, 10*time.Second)
	o = await(t, goExecute(c, "again"))
	if o.err != nil || string(o.res) != "again" {
		t.Errorf("Execute after SIGCONT: %q, %v", o.res, o.err)
	}
	if w.Exited() {
		t.Errorf("worker exited: %d", w.Cmd.ProcessState.ExitCode())
	}
}

func TestBrokerRestart(t *testing.T) {
	b := startBroker(t)
	for i := 0; i < 2; i++ {
		startWorker(t, fmt.Sprintf("sleeper-%d", i), b.backend, "-handler", "sleep:2s", "-concurrency", "2")
	}
	c := newClient(t, b.frontend)
	waitWorkers(t, c, 2, 10*time.Second)
	var calls []<-chan outcome
	for i := 0; i < 4; i++ {
		calls = append(calls, goExecute(c, fmt.Sprintf("in-flight-%d", i)))
	}
	waitInFlight(t, c, 4, 5*time.Second)

	killed := time.Now()
	b.Signal(t, syscall.SIGKILL)
	b.Wait(t, 5*time.Second)
	b2 := startBrokerAt(t, b.frontend, b.backend)
	t.Logf("new broker (pid %d) answering %v after the kill", b2.PID(), time.Since(killed).Round(time.Millisecond))

	for i, ch := range calls {
		o := await(t, ch)
		if !errors.Is(o.err, client.ErrBrokerGone) {
			t.Errorf("call %d in flight at the kill: %q, %v; want ErrBrokerGone", i, o.res, o.err)
		}
		if d := o.end.Sub(killed); d > 5*time.Second {
			t.Errorf("call %d ended %v after the kill, want < 5s (its deadline is 10s)", i, d)
		} else {
			t.Logf("call %d: %v %v after the kill", i, errKind(o.err), d.Round(time.Millisecond))
		}
	}
	// The workers find the new broker by themselves.
	waitWorkers(t, c, 2, 10*time.Second)
	t.Logf("2 workers registered with the new broker %v after the kill", time.Since(killed).Round(time.Millisecond))
	var again []<-chan outcome
	for i := 0; i < 4; i++ {
		again = append(again, goExecute(c, fmt.Sprintf("after-%d", i)))
	}
	for i, ch := range again {
		o := await(t, ch)
		if o.err != nil || string(o.res) != fmt.Sprintf("after-%d", i) {
			t.Errorf("call %d after the restart: %q, %v", i, o.res, o.err)
		}
		if o.took > 5*time.Second {
			t.Errorf("call %d after the restart took %v (a 2s job)", i, o.took)
		}
	}
}

func TestWorkerGracefulStop(t *testing.T) {
	b := startBroker(t)
	w := startWorker(t, "sleeper", b.backend, "-handler", "sleep:500ms")
	c := newClient(t, b.frontend)
	waitWorkers(t, c, 1, 10*time.Second)
	call := goExecute(c, "finish me")
	waitInFlight(t, c, 1, 5*time.Second)
	w.Signal(t, syscall.SIGTERM)
	o := await(t, call)
	if o.err != nil || string(o.res) != "finish me" {
		t.Errorf("job running at SIGTERM: %q, %v; want its result", o.res, o.err)
	}
	if code := w.Wait(t, 5*time.Second); code != 0 {
		t.Errorf("worker exit code %d after SIGTERM, want 0", code)
	}
	waitWorkers(t, c, 0, 5*time.Second)
}

func TestBrokerRefusesSecondInstance(t *testing.T) {
	tests := []struct {
		name string
		eps  func(t *testing.T) (front, back, back2 string)
	}{
		{"ipc", func(t *testing.T) (string, string, string) {
			dir := t.TempDir()
			return "ipc://" + filepath.Join(dir, "f"), "ipc://" + filepath.Join(dir, "b"), "ipc://" + filepath.Join(dir, "b2")
		}},
		{"tcp", func(t *testing.T) (string, string, string) {
			eps := freeTCP(t, 3)
			return eps[0], eps[1], eps[2]
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			front, back, back2 := tt.eps(t)
			first := startBrokerAt(t, front, back)
			_, errs, code := runHose(t, 10*time.Second, "", "broker", "-frontend", front, "-backend", back2)
			if code != exitError {
				t.Errorf("second broker: exit %d, want %d", code, exitError)
			}
			if want := fmt.Sprintf("pid %d", first.PID()); !strings.Contains(errs, want) || !strings.Contains(errs, "already running") {
				t.Errorf("second broker's message lacks %q / %q:\n%s", want, "already running", errs)
			}
			// The first broker still owns the endpoint.
			info, err := ping(newClient(t, front))
			if err != nil || info.PID != first.PID() {
				t.Errorf("after the refusal, ping: %+v, %v; want pid %d", info, err, first.PID())
			}
		})
	}
}

func TestWorkerExitOnBrokerLoss(t *testing.T) {
	b := startBroker(t)
	stays := startWorker(t, "stays", b.backend, "-handler", "echo")
	leaves := startWorker(t, "leaves", b.backend, "-handler", "echo", "-exit-on-broker-loss")
	c := newClient(t, b.frontend)
	waitWorkers(t, c, 2, 10*time.Second)
	b.Signal(t, syscall.SIGKILL)
	// Silent for 4 heartbeats of 100ms: the worker gives up.
	if code := leaves.Wait(t, 5*time.Second); code != exitBrokerLost {
		t.Errorf("worker with -exit-on-broker-loss: exit %d, want %d", code, exitBrokerLost)
	}
	if stays.Exited() {
		t.Errorf("worker without -exit-on-broker-loss exited: %d", stays.Cmd.ProcessState.ExitCode())
	}
}
