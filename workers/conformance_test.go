// Package workers_test checks the Python (workers/python) and C++
// (workers/cpp) workers against a real hose broker, side by side with Go
// workers: results, worker errors, kill -9 mid-job, SIGTERM drain,
// retirement, a stopped worker re-registering, broker restarts, a CPU-bound
// job longer than the liveness window, and the raw Python client. Every
// worker process serves the same demo jobs (examples.jobs:demo, --job demo,
// and goDemo here), chosen by the first dot-separated word of the service.
package workers_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hose-project/hose/broker"
	"github.com/hose-project/hose/client"
)

func TestVectors(t *testing.T) {
	t.Parallel()
	vectors, err := filepath.Abs("../testdata/vectors/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("python", func(t *testing.T) {
		t.Parallel()
		cmd := exec.Command(pythonExe(t), "-m", "unittest", "discover", "-s", "tests", "-v")
		cmd.Dir = "python"
		cmd.Env = append(cmd.Environ(), "HOSE_VECTORS="+vectors, "PYTHONDONTWRITEBYTECODE=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("python vector tests: %v\n%s", err, out)
		}
		t.Logf("%s", bytes.TrimSpace(out))
	})
	t.Run("cpp", func(t *testing.T) {
		t.Parallel()
		out, err := exec.Command(cppBin(t, "hose-cpp-vectors"), vectors).CombinedOutput()
		if err != nil {
			t.Fatalf("C++ vector tests: %v\n%s", err, out)
		}
		t.Logf("%s", bytes.TrimSpace(out))
	})
}

// TestWorkerProtocol runs python/tests/test_worker_protocol.py, a scripted
// fake broker that checks the rules of PROTOCOL.md section 9 a real broker
// seldom exercises on cue (jobs after DRAIN, the DRAIN acknowledgement,
// DISCONNECT while jobs run, max_payload, garbage, silence), against the
// worker of each language.
func TestWorkerProtocol(t *testing.T) {
	t.Parallel()
	for _, l := range allLangs {
		t.Run(l.label, func(t *testing.T) {
			t.Parallel()
			py := pythonExe(t)
			var cmd []string
			env := []string{"PYTHONDONTWRITEBYTECODE=1"}
			switch l.name {
			case "go":
				cmd = []string{os.Args[0]}
				env = append(env, roleEnv+"=worker")
			case "python":
				cmd = []string{py, "-m", "hoseworker", "examples.jobs:demo"}
			case "cpp":
				cmd = []string{cppBin(t, "hose-cpp-worker"), "--job", "demo"}
			}
			js, err := json.Marshal(cmd)
			if err != nil {
				t.Fatal(err)
			}
			run := exec.Command(py, "-m", "unittest", "-v", "tests.test_worker_protocol")
			run.Dir = "python"
			run.Env = append(append(run.Environ(), env...), "HOSE_WORKER_CMD="+string(js))
			out, err := run.CombinedOutput()
			if err != nil {
				t.Fatalf("the %s worker against the scripted broker: %v\n%s", l.name, err, out)
			}
			t.Logf("%s", bytes.TrimSpace(out))
		})
	}
}

// TestMixedPool runs one worker of each language in one pool and checks
// each language's answers: echo of odd payloads, worker errors, headers,
// params and a CPU-bound hash, then a shared service served by all three.
func TestMixedPool(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	c := newClient(t, b.Frontend())
	procs := map[string]*proc{}
	for _, l := range allLangs {
		services := []string{"lang", "echo", "sha256"}
		for _, op := range []string{"echo", "fail", "headers", "params", "sha256"} {
			services = append(services, op+"."+l.name)
		}
		procs[l.name] = l.start(t, b.Backend(), services, "--param", "rounds=7", "--param", "lang="+l.name)
	}
	for _, p := range procs {
		waitRegistered(t, b, p)
	}

	t.Run("every language answers", func(t *testing.T) {
		seen := map[string]int{}
		waitFor(t, 10*time.Second, "an answer from every language", func() bool {
			var wg sync.WaitGroup
			var mu sync.Mutex
			for i := 0; i < 12; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					res, err := execute(t, c, "lang", "")
					if err != nil {
						t.Errorf("lang: %v", err)
						return
					}
					who, pid := whoAnswered(res)
					mu.Lock()
					defer mu.Unlock()
					if p, ok := procs[who]; !ok || p.PID() != pid {
						t.Errorf("lang answered %q: not one of the pool's workers", res)
					}
					seen[who]++
				}()
			}
			wg.Wait()
			return len(seen) == len(allLangs) || t.Failed()
		})
		t.Logf("answers by language: %v", seen)
	})

	for _, l := range allLangs {
		t.Run(l.label, func(t *testing.T) {
			t.Parallel()
			svc := func(op string) string { return op + "." + l.name }
			big := make([]byte, 1<<20)
			_, _ = rand.Read(big)
			all := make([]byte, 256)
			for i := range all {
				all[i] = byte(i)
			}
			for _, payload := range [][]byte{nil, []byte("hello"), all, bytes.Repeat(all, 64), big} {
				res, err := execute(t, c, svc("echo"), string(payload))
				if err != nil || !bytes.Equal(res, payload) {
					t.Errorf("echo of %d bytes: got %d bytes, %v", len(payload), len(res), err)
				}
			}

			_, err := execute(t, c, svc("fail"), "boom")
			var we *client.WorkerError
			if !errors.As(err, &we) {
				t.Fatalf("fail: got %v, want a *client.WorkerError", err)
			}
			want := map[string][]string{
				"go":     {"fail: boom"},
				"python": {"Traceback (most recent call last)", "ValueError: fail: boom", "jobs.py"},
				"cpp":    {"std::runtime_error: fail: boom"},
			}[l.name]
			for _, w := range want {
				if !strings.Contains(we.Message, w) {
					t.Errorf("worker error message %q lacks %q", we.Message, w)
				}
			}

			res, err := execute(t, c, svc("headers"), "", client.WithHeader("b", "2"), client.WithHeader("a", "1"),
				client.WithHeader("a", "ignored: the first value wins"))
			if err != nil || string(res) != "a=1\nb=2\n" {
				t.Errorf("headers: got %q, %v", res, err)
			}
			res, err = execute(t, c, svc("params"), "")
			if want := "lang=" + l.name + "\nrounds=7\n"; err != nil || string(res) != want {
				t.Errorf("params: got %q, %v; want %q", res, err, want)
			}
			res, err = execute(t, c, svc("sha256"), "abc", client.WithHeader("rounds", "1000"))
			if err != nil || !bytes.Equal(res, sha256Rounds([]byte("abc"), 1000)) {
				t.Errorf("sha256 x1000: got %x, %v", res, err)
			}
			res, err = execute(t, c, svc("sha256"), "abc") // rounds=7 from --param
			if err != nil || !bytes.Equal(res, sha256Rounds([]byte("abc"), 7)) {
				t.Errorf("sha256 x7: got %x, %v", res, err)
			}
		})
	}

	t.Run("shared service", func(t *testing.T) {
		t.Parallel()
		before := doneByPID(t, b)
		const n = 600
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				payload := fmt.Sprintf("job %d", i)
				res, err := execute(t, c, "echo", payload)
				if err != nil || string(res) != payload {
					t.Errorf("echo %q: got %q, %v", payload, res, err)
				}
				res, err = execute(t, c, "sha256", payload, client.WithHeader("rounds", "50"))
				if err != nil || !bytes.Equal(res, sha256Rounds([]byte(payload), 50)) {
					t.Errorf("sha256 %q: got %x, %v", payload, res, err)
				}
			}()
		}
		wg.Wait()
		after := doneByPID(t, b)
		for _, l := range allLangs {
			pid := procs[l.name].PID()
			if after[pid] <= before[pid] {
				t.Errorf("the %s worker served none of the %d shared jobs", l.name, 2*n)
			}
			t.Logf("%s worker: %d shared jobs", l.name, after[pid]-before[pid])
		}
	})
}

func doneByPID(t testing.TB, b *broker.Broker) map[int]uint64 {
	t.Helper()
	st, err := b.Stats()
	if err != nil {
		t.Fatal(err)
	}
	m := map[int]uint64{}
	for _, w := range st.Workers {
		m[int(w.PID)] = w.Done
	}
	return m
}

// TestCPUBoundJob runs a job that burns CPU for three liveness windows in
// each language (Python both on threads, where it holds the GIL, and on a
// process pool): the socket owner must keep heartbeating, so the job
// completes and the broker never drops the worker. It runs alone (not
// parallel) so other tests do not compete for the CPU.
func TestCPUBoundJob(t *testing.T) {
	window := testHeartbeat * testLiveness
	spin := 3 * window
	for _, l := range []lang{langGo, langPython, langPyProcs, langCpp} {
		t.Run(l.label, func(t *testing.T) {
			t.Parallel()
			b := newBroker(t)
			c := newClient(t, b.Frontend())
			w := l.start(t, b.Backend(), []string{"spin"})
			before := waitRegistered(t, b, w)
			start := time.Now()
			res, err := execute(t, c, "spin", fmt.Sprint(spin.Milliseconds()))
			if err != nil {
				t.Fatalf("a %v CPU-bound job (liveness window %v): %v", spin, window, err)
			}
			if who, pid := whoAnswered(res); who != l.name || pid != w.PID() {
				t.Errorf("answered by %q, want the %s worker (pid %d)", res, l.name, w.PID())
			}
			if took := time.Since(start); took < spin {
				t.Errorf("the job took %v, less than its %v", took, spin)
			}
			after, ok := workerStats(t, b, w.PID())
			if !ok || after.ID != before.ID {
				t.Errorf("the worker was dropped and registered again during the job (id %d, then %d, registered %v)", before.ID, after.ID, ok)
			}
			st, err := b.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if st.Counters.WorkersLost != 0 {
				t.Errorf("the broker lost %d workers during a CPU-bound job", st.Counters.WorkersLost)
			}
		})
	}
}

// TestKillMidJob kills -9 a worker holding a job: a plain job fails with
// ErrWorkerLost; an idempotent one is run again by another worker.
func TestKillMidJob(t *testing.T) {
	t.Parallel()
	for _, l := range allLangs {
		t.Run(l.label, func(t *testing.T) {
			t.Parallel()
			b := newBroker(t)
			c := newClient(t, b.Frontend())

			w := l.start(t, b.Backend(), []string{"sleep.lost"})
			waitRegistered(t, b, w)
			ch := execAsync(c, 30*time.Second, "20000", client.WithService("sleep.lost"))
			waitInFlight(t, b, w, 1)
			w.Signal(t, syscall.SIGKILL)
			if o := receive(t, ch, 10*time.Second, "a job whose worker was killed"); !errors.Is(o.err, client.ErrWorkerLost) {
				t.Errorf("job of a worker killed mid-job: got %q, %v; want ErrWorkerLost", o.res, o.err)
			}

			w1 := l.start(t, b.Backend(), []string{"sleep.retry"})
			w2 := l.start(t, b.Backend(), []string{"sleep.retry"})
			waitRegistered(t, b, w1)
			waitRegistered(t, b, w2)
			ch = execAsync(c, 30*time.Second, "1000", client.WithService("sleep.retry"), client.Idempotent())
			victim, survivor := holder(t, b, w1, w2)
			victim.Signal(t, syscall.SIGKILL)
			o := receive(t, ch, 15*time.Second, "an idempotent job whose worker was killed")
			if o.err != nil {
				t.Fatalf("idempotent job of a worker killed mid-job: %v; want a result from the other worker", o.err)
			}
			if who, pid := whoAnswered(o.res); who != l.name || pid != survivor.PID() {
				t.Errorf("idempotent job answered by %q, want the surviving worker (pid %d)", o.res, survivor.PID())
			}
		})
	}
}

// holder waits until one of a and b holds a job and returns it first.
func holder(t testing.TB, br *broker.Broker, a, b *proc) (has, other *proc) {
	t.Helper()
	waitFor(t, 10*time.Second, "a worker to hold the job", func() bool {
		if ws, ok := workerStats(t, br, a.PID()); ok && ws.InFlight == 1 {
			has, other = a, b
			return true
		}
		if ws, ok := workerStats(t, br, b.PID()); ok && ws.InFlight == 1 {
			has, other = b, a
			return true
		}
		return false
	})
	return has, other
}

// TestSigtermDrain stops a worker holding a job with SIGTERM: it takes no
// new job, finishes the one it holds, leaves the broker and exits 0.
func TestSigtermDrain(t *testing.T) {
	t.Parallel()
	for _, l := range []lang{langGo, langPython, langPyProcs, langCpp} {
		t.Run(l.label, func(t *testing.T) {
			t.Parallel()
			b := newBroker(t)
			c := newClient(t, b.Frontend())
			w1 := l.start(t, b.Backend(), []string{"sleep.drain"})
			w2 := l.start(t, b.Backend(), []string{"sleep.drain"})
			waitRegistered(t, b, w1)
			waitRegistered(t, b, w2)
			long := execAsync(c, 30*time.Second, "1500", client.WithService("sleep.drain"))
			victim, other := holder(t, b, w1, w2)
			victim.Signal(t, syscall.SIGTERM)
			waitFor(t, 5*time.Second, "the broker to see the worker draining", func() bool {
				ws, ok := workerStats(t, b, victim.PID())
				return !ok || ws.Draining
			})
			if ws, ok := workerStats(t, b, victim.PID()); ok {
				// Still draining with a free slot: the next job must go
				// to the other worker.
				if ws.InFlight != 1 {
					t.Errorf("draining worker holds %d jobs, want 1", ws.InFlight)
				}
				res, err := execute(t, c, "sleep.drain", "10")
				if _, pid := whoAnswered(res); err != nil || pid != other.PID() {
					t.Errorf("job sent during the drain: got %q, %v; want it from pid %d", res, err, other.PID())
				}
			}
			o := receive(t, long, 10*time.Second, "the job held at SIGTERM")
			if who, pid := whoAnswered(o.res); o.err != nil || who != l.name || pid != victim.PID() {
				t.Errorf("job held at SIGTERM: got %q, %v; want it finished by pid %d", o.res, o.err, victim.PID())
			}
			if code := victim.Wait(t, 10*time.Second); code != 0 {
				t.Errorf("exit code after SIGTERM: %d, want 0", code)
			}
			waitGone(t, b, victim)
			st, err := b.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if n := st.Counters.ErrorCount(7); n != 0 {
				t.Errorf("the broker answered %d jobs 'worker lost' during a graceful stop", n)
			}
		})
	}
}

// TestRetire checks --max-jobs and --max-age: the worker stops gracefully
// by itself, exit code 0, and leaves the broker.
func TestRetire(t *testing.T) {
	t.Parallel()
	for _, l := range allLangs {
		t.Run(l.label, func(t *testing.T) {
			t.Parallel()
			b := newBroker(t)
			c := newClient(t, b.Frontend())
			w := l.start(t, b.Backend(), []string{"echo.jobs"}, "--max-jobs", "3")
			waitRegistered(t, b, w)
			for i := 0; i < 3; i++ {
				if res, err := execute(t, c, "echo.jobs", "x"); err != nil || string(res) != "x" {
					t.Fatalf("job %d of 3: %q, %v", i+1, res, err)
				}
			}
			if code := w.Wait(t, 10*time.Second); code != 0 {
				t.Errorf("exit code after --max-jobs 3: %d, want 0", code)
			}
			waitGone(t, b, w)

			start := time.Now()
			w = l.start(t, b.Backend(), []string{"echo.age"}, "--max-age", "800ms")
			waitRegistered(t, b, w)
			if res, err := execute(t, c, "echo.age", "y"); err != nil || string(res) != "y" {
				t.Errorf("job before --max-age: %q, %v", res, err)
			}
			if code := w.Wait(t, 10*time.Second); code != 0 {
				t.Errorf("exit code after --max-age: %d, want 0", code)
			}
			if took := time.Since(start); took < 800*time.Millisecond {
				t.Errorf("retired after %v, before its max age of 800ms", took)
			}
			waitGone(t, b, w)
		})
	}
}

// TestStoppedWorkerRegistersAgain freezes a worker (SIGSTOP) until the
// broker drops it as lost, then thaws it: the worker learns it was dropped
// (DISCONNECT, or the broker's silence) and registers again.
func TestStoppedWorkerRegistersAgain(t *testing.T) {
	t.Parallel()
	for _, l := range allLangs {
		t.Run(l.label, func(t *testing.T) {
			t.Parallel()
			b := newBroker(t)
			c := newClient(t, b.Frontend())
			w := l.start(t, b.Backend(), []string{"echo.stop"})
			first := waitRegistered(t, b, w)
			w.Signal(t, syscall.SIGSTOP)
			waitGone(t, b, w)
			w.Signal(t, syscall.SIGCONT)
			waitFor(t, 10*time.Second, "the worker to register again", func() bool {
				ws, ok := workerStats(t, b, w.PID())
				return ok && ws.ID != first.ID
			})
			if res, err := execute(t, c, "echo.stop", "again"); err != nil || string(res) != "again" {
				t.Errorf("after registering again: %q, %v", res, err)
			}
		})
	}
}

// TestBrokerRestart replaces the broker under running workers twice: a
// broker that stops (it sends DISCONNECT) and a broker process killed -9
// (silence). Each time every language's worker registers with the new
// broker by itself and serves again.
func TestBrokerRestart(t *testing.T) {
	t.Parallel()
	// ipc:// endpoints: a TCP port left free while no broker runs could be
	// taken as the source port of another test's connection.
	dir := t.TempDir()
	front, back := "ipc://"+filepath.Join(dir, "front"), "ipc://"+filepath.Join(dir, "back")
	b := startBroker(t, front, back)
	procs := map[string]*proc{}
	for _, l := range allLangs {
		procs[l.name] = l.start(t, back, []string{"echo." + l.name})
	}
	for _, p := range procs {
		waitRegistered(t, b, p)
	}
	c := newClient(t, front)
	serves := func(t *testing.T, phase string) {
		for _, l := range allLangs {
			t.Run(phase+"/"+l.label, func(t *testing.T) {
				executeUntil(t, c, "echo."+l.name, phase, 15*time.Second)
			})
		}
	}
	serves(t, "first broker")

	_ = b.Close()
	b = startBroker(t, front, back)
	for _, p := range procs {
		waitRegistered(t, b, p)
	}
	serves(t, "after a graceful stop")

	// A broker process killed -9 says nothing: the workers notice its
	// silence and connect again.
	_ = b.Close()
	bp := startProc(t, "broker process", "", []string{roleEnv + "=broker"}, brokerArgs(front, back)...)
	serves(t, "broker process")
	bp.Signal(t, syscall.SIGKILL)
	bp.Wait(t, 5*time.Second)
	b = startBroker(t, front, back)
	for _, p := range procs {
		waitRegistered(t, b, p)
	}
	serves(t, "after kill -9 of the broker")
}

func brokerArgs(front, back string) []string {
	return []string{os.Args[0], "-frontend", front, "-backend", back}
}

// executeUntil retries a call until it returns payload (the broker or the
// worker may still be coming back), failing after limit.
func executeUntil(t testing.TB, c *client.Client, service, payload string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	var lastErr error
	var last []byte
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		res, err := c.Execute(ctx, []byte(payload), client.WithService(service))
		cancel()
		if err == nil && string(res) == payload {
			return
		}
		last, lastErr = res, err
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	t.Fatalf("%s: no correct answer within %v (last: %q, %v)", service, limit, last, lastErr)
}

// TestPythonClient drives the broker with examples/client.py, the raw
// protocol client in Python, against Go and Python workers.
func TestPythonClient(t *testing.T) {
	t.Parallel()
	py := pythonExe(t)
	b := newBroker(t)
	for _, l := range []lang{langGo, langPython} {
		w := l.start(t, b.Backend(), []string{"echo." + l.name, "fail." + l.name, "headers." + l.name})
		waitRegistered(t, b, w)
	}
	run := func(args ...string) (stdout, stderr string, code int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, py, append([]string{"examples/client.py", "--frontend", b.Frontend()}, args...)...)
		cmd.Dir = "python"
		cmd.Env = append(cmd.Environ(), "PYTHONDONTWRITEBYTECODE=1")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("client.py %v: %v", args, err)
		}
		return out.String(), errb.String(), cmd.ProcessState.ExitCode()
	}
	for _, name := range []string{"go", "python"} {
		if out, errs, code := run("--service", "echo."+name, "hello "+name); code != 0 || out != "hello "+name {
			t.Errorf("client.py echo via %s: %q (exit %d, stderr %q)", name, out, code, errs)
		}
		if out, errs, code := run("--service", "headers."+name, "--header", "k=v", "x"); code != 0 || out != "k=v\n" {
			t.Errorf("client.py headers via %s: %q (exit %d, stderr %q)", name, out, code, errs)
		}
	}
	if _, errs, code := run("--service", "fail.python", "boom"); code != 5 || !strings.Contains(errs, "ValueError: fail: boom") {
		t.Errorf("client.py worker error: exit %d, stderr %q; want exit 5 and the traceback", code, errs)
	}
	if out, errs, code := run("--ping"); code != 0 || !strings.Contains(out, "2 workers") {
		t.Errorf("client.py --ping: %q (exit %d, stderr %q)", out, code, errs)
	}
}

// TestBurst sends a burst of short jobs to one worker that accepts only 2
// at a time (--prefetch -1), so every job waits for a result to free a
// slot: a worker whose owner sleeps through finished jobs until its next
// heartbeat tick takes many times longer. (Such a lost wake-up, a race in
// the result pipe, once cut both workers to a few hundred jobs/s under
// load; this test catches it only when the race strikes within the burst.)
func TestBurst(t *testing.T) {
	t.Parallel()
	const jobs, callers = 1000, 32
	for _, l := range allLangs {
		t.Run(l.label, func(t *testing.T) {
			t.Parallel()
			b := newBroker(t)
			c := newClient(t, b.Frontend())
			w := l.start(t, b.Backend(), []string{"echo"}, "--prefetch", "-1")
			if ws := waitRegistered(t, b, w); ws.Capacity != 2 {
				t.Fatalf("capacity %d with --concurrency 2 --prefetch -1, want 2", ws.Capacity)
			}
			start := time.Now()
			var wg sync.WaitGroup
			next := make(chan int, jobs)
			for i := 0; i < jobs; i++ {
				next <- i
			}
			close(next)
			for g := 0; g < callers; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range next {
						payload := fmt.Sprint(i)
						if res, err := execute(t, c, "echo", payload); err != nil || string(res) != payload {
							t.Errorf("job %d: %q, %v", i, res, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			took := time.Since(start)
			t.Logf("%d jobs in %v (%.0f/s)", jobs, took, jobs/took.Seconds())
			// A worker stuck until each heartbeat tick (testHeartbeat/4)
			// would need jobs/2 ticks.
			if stuck := time.Duration(jobs/2) * testHeartbeat / 4; took > stuck/2 {
				t.Errorf("%d jobs took %v: the worker stalls (a worker woken only by its heartbeat tick needs %v)", jobs, took, stuck)
			}
		})
	}
}
